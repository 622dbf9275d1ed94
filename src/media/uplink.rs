//! The SRT uplink to the hub: an actor per session that owns a small
//! `appsrc ! srtsink` pipeline, feeds it the encoded TS bytes, and rebuilds
//! it with backoff whenever the hub is unreachable or drops the link.
//!
//! Capture and encoding never wait for the uplink: bytes that arrive while
//! the link is down are dropped here (the recorder keeps its own copy). On
//! every (re)connect the encoder is asked for a keyframe so the hub shows
//! a picture at once. While connected, SRT statistics drive the
//! [`abr::Controller`](super::abr::Controller).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::abr::{latency_for, Collapse, Controller, LinkSample, Verdict};
use super::link_memory::{Learned, LinkMemory};
use super::pipeline;
use crate::config::{SrtPeer, Uplink as UplinkConfig, Video};
use crate::core::backoff::{Backoff, Jitter};
use crate::core::session::Degradation;
use crate::core::status::{MediaEvent, UplinkStats};
use crate::core::ts::{PictureGate, Scanner};
use crate::util::random_unit;

/// How long an SRT handshake may take before the link is rebuilt (libsrt's
/// own connect timeout is 3 s too).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A running uplink pipeline.
struct Link {
    /// The pipeline and its bus; `Null` off the runtime when the link goes.
    _run: super::runner::Running,
    src: gst_app::AppSrc,
    sink: gst::Element,
    created: Instant,
    connected: bool,
    /// A keyframe has been pushed; everything after it follows.
    started: bool,
    last: Counters,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    sent: u64,
    lost: u64,
    retrans: u64,
    dropped: u64,
    bytes: u64,
}

pub struct UplinkTask {
    pub peer: SrtPeer,
    pub cfg: UplinkConfig,
    pub video: Video,
    pub encoder: gst::glib::WeakRef<gst::Element>,
    pub buffers: mpsc::Receiver<gst::Buffer>,
    pub events: mpsc::UnboundedSender<MediaEvent>,
    pub stats: watch::Sender<UplinkStats>,
    /// The conference call's ceiling on the encoder's bitrate (kbit/s; 0:
    /// none). One encoder feeds both paths, so the lower target wins.
    pub call_cap: Arc<AtomicU32>,
    /// What the box learned about this hub's link in earlier sessions.
    pub links: Option<LinkMemory>,
}

/// Stats samples after a connect before its RTT is trusted: SRT reports
/// its default 100 ms until acknowledgements have measured the link.
const RTT_SAMPLES: u32 = 3;
/// Seconds between saves of what the link carries.
const LEARN_EVERY: u64 = 10;

impl UplinkTask {
    /// Run until `stop` fires or the buffer channel closes.
    pub async fn run(mut self, mut stop: tokio::sync::oneshot::Receiver<()>) {
        let mut backoff = Backoff::new(Duration::from_millis(250), self.cfg.reconnect_max)
            .with_jitter(Jitter::Spread(0.2));
        // Start where this link was last seen to carry its load, or from
        // the floor: never above the configured bitrate, and never more
        // than the link is known to take in the session's first seconds.
        let hub = format!("{}:{}", self.peer.host, self.peer.port);
        let learned = self.links.as_ref().and_then(|m| m.get(&hub));
        let start = if self.cfg.adaptive_bitrate {
            learned
                .map(|l| l.kbps)
                .unwrap_or(self.video.min_bitrate_kbps)
                .min(self.video.bitrate_kbps)
        } else {
            self.video.bitrate_kbps
        };
        let mut abr = Controller::new(
            self.video.min_bitrate_kbps,
            self.video.max_bitrate_kbps,
            start,
        );
        if let Some(l) = learned {
            abr = abr.with_known_rtt(l.rtt_ms);
        }
        if self.cfg.adaptive_bitrate {
            self.set_bitrate(abr.bitrate());
        }
        // SRT's latency: four round trips of this link if the configured one
        // is shorter, up to the ceiling; from what was learned, then from
        // what this connect measures.
        let (mut latency, mut latency_why) = latency_for(
            self.peer.latency_ms,
            learned.map(|l| l.rtt_ms),
            self.cfg.latency_max_ms,
        );
        let mut relatency_checked = false;
        let mut samples_since_connect = 0u32;
        let mut stats = UplinkStats {
            configured: true,
            bitrate_kbps: abr.bitrate(),
            start_kbps: abr.bitrate(),
            latency_ms: latency,
            latency_why,
            ..Default::default()
        };
        tracing::info!(
            "uplink to {hub}: starting at {} kbit/s, SRT latency {latency} ms ({latency_why:?}){}",
            abr.bitrate(),
            if learned.is_some() {
                ", as learned last time"
            } else {
                ""
            }
        );
        let mut last_learned = Instant::now();
        let (bus_tx, mut bus_rx) = mpsc::unbounded_channel::<(u64, gst::Message)>();
        let mut gen = 0u64;
        let mut link: Option<Link> = None;
        let mut retry_at = Some(Instant::now());
        let mut reported_down = false;
        let mut scanner = Scanner::default();
        // Speech first, when the link collapses (adaptive bitrate only:
        // it is the controller's verdicts that say so).
        let mut gate = PictureGate::default();
        let mut collapse = Collapse::default();
        let t0 = Instant::now();
        // Poll often while connecting (the first bytes wait for the
        // handshake), once a second for statistics after.
        let mut poll = tokio::time::interval(Duration::from_millis(100));
        let mut polls = 0u64;
        let mut failed: Option<String> = None;
        // Queue while connecting: two seconds of the maximum bitrate.
        let queue_bytes = u64::from(self.video.max_bitrate_kbps) * 1000 / 8 * 2;
        loop {
            let retry = async {
                match retry_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut stop => {
                    // What the link carried at the end is where the next
                    // session on it starts.
                    self.remember(&hub, &abr, None);
                    // What the encoder produced before the stop still goes out.
                    while let Ok(buf) = self.buffers.try_recv() {
                        let now_ms = t0.elapsed().as_millis() as u64;
                        feed(link.as_mut(), &mut scanner, &mut gate, now_ms, &mut stats, buf);
                    }
                    if let Some(l) = link.take() {
                        drain(l, &mut bus_rx, gen, latency).await;
                    }
                    break;
                }
                buf = self.buffers.recv() => {
                    let Some(buf) = buf else { break };
                    let now_ms = t0.elapsed().as_millis() as u64;
                    feed(link.as_mut(), &mut scanner, &mut gate, now_ms, &mut stats, buf);
                }
                _ = retry => {
                    retry_at = None;
                    gen += 1;
                    match self.connect(gen, queue_bytes, latency, bus_tx.clone()) {
                        Ok(l) => link = Some(l),
                        Err(e) => {
                            tracing::warn!("uplink pipeline cannot be built: {e}");
                            retry_at = Some(Instant::now() + backoff.next_delay(random_unit()));
                        }
                    }
                }
                Some((g, msg)) = bus_rx.recv() => {
                    if g != gen { continue; }
                    let why = match msg.view() {
                        gst::MessageView::Error(e) => Some(e.error().to_string()),
                        gst::MessageView::Eos(_) => Some("end of stream".to_owned()),
                        // srtsink reports a broken or timed-out connection as a
                        // warning and retries by itself, mid-stream. We rebuild
                        // instead, so that the new link starts at a keyframe.
                        gst::MessageView::Warning(w) => Some(w.error().to_string()),
                        _ => None,
                    };
                    if let Some(why) = why {
                        failed = Some(why);
                    }
                }
                _ = poll.tick() => {
                    let Some(l) = link.as_mut() else { continue };
                    polls += 1;
                    if !l.connected && l.created.elapsed() > CONNECT_TIMEOUT {
                        failed = Some(format!("no SRT handshake within {CONNECT_TIMEOUT:?}"));
                        continue;
                    }
                    if l.connected && polls % 10 != 0 {
                        continue;
                    }
                    // One copy of srtsink's statistics per poll.
                    let srt = SrtStats::read(&l.sink);
                    let now = srt.counters;
                    let sample = LinkSample {
                        sent: now.sent.saturating_sub(l.last.sent),
                        lost: now.lost.saturating_sub(l.last.lost),
                        retransmitted: now.retrans.saturating_sub(l.last.retrans),
                        dropped: now.dropped.saturating_sub(l.last.dropped),
                        rtt_ms: srt.rtt_ms,
                        bandwidth_mbps: srt.bandwidth_mbps,
                    };
                    if !l.connected && srt.connected {
                        samples_since_connect = 0;
                        l.connected = true;
                        stats.connected = true;
                        stats.connects += 1;
                        backoff.reset();
                        tracing::info!("uplink connected to {}:{}", self.peer.host, self.peer.port);
                        self.force_keyframe();
                        if reported_down {
                            reported_down = false;
                            let _ = self.events.send(MediaEvent::Restored(Degradation::UplinkDown));
                        }
                    }
                    // A connection's first sample carries SRT's initial
                    // RTT (100 ms) and not a measurement: taken as the
                    // link's own on a 200 ms link, it made every later
                    // second look 100 ms queued (speech first for 37 s on
                    // a link with room for 2 Mbit/s). An RTT of 0 is none.
                    let sample = LinkSample {
                        rtt_ms: if samples_since_connect == 0 { 0.0 } else { sample.rtt_ms },
                        ..sample
                    };
                    stats.bytes_sent += now.bytes.saturating_sub(l.last.bytes);
                    stats.packets_lost += sample.lost;
                    stats.packets_retransmitted += sample.retransmitted;
                    stats.rtt_ms = srt.rtt_ms;
                    stats.bandwidth_mbps = sample.bandwidth_mbps;
                    stats.send_rate_mbps = srt.send_rate_mbps;
                    l.last = now;
                    // Only a connected socket's figures: a closing one
                    // reads an RTT of 0 and counts what never left.
                    if self.cfg.adaptive_bitrate && l.connected && srt.connected {
                        // While thin the link carries the sound and stills
                        // only: whether it queues or drops says if it is
                        // calm; the bitrate waits at the floor.
                        let changed = if collapse.thin() {
                            abr.observe(sample);
                            None
                        } else {
                            abr.sample(sample)
                        };
                        stats.link = abr.verdict();
                        let at_floor = abr.bitrate() <= self.video.min_bitrate_kbps;
                        match collapse.sample(abr.queue_verdict(), at_floor) {
                            Some(true) => {
                                gate.set_thin(true);
                                stats.speech_first = true;
                                stats.speech_first_episodes += 1;
                                // The hub no longer gets the moving picture:
                                // the recording gets the configured bitrate.
                                self.set_bitrate(self.video.bitrate_kbps);
                                stats.bitrate_kbps = self.video.bitrate_kbps;
                                tracing::warn!(
                                    "uplink: the link does not carry the picture at {} kbit/s; speech first (sound whole, a still now and then) for at least {} s",
                                    self.video.min_bitrate_kbps,
                                    collapse.hold()
                                );
                            }
                            Some(false) => {
                                gate.set_thin(false);
                                stats.speech_first = false;
                                abr.restart_at_floor();
                                self.set_bitrate(abr.bitrate());
                                stats.bitrate_kbps = abr.bitrate();
                                self.force_keyframe();
                                tracing::info!("uplink: trying the moving picture again from {} kbit/s", abr.bitrate());
                            }
                            None => {
                                if let (Some(kbps), false) = (changed, collapse.thin()) {
                                    self.set_bitrate(kbps);
                                    stats.bitrate_kbps = kbps;
                                }
                            }
                        }
                        stats.stills_sent = gate.stills;
                    }
                    if l.connected {
                        samples_since_connect += 1;
                    }
                    // Once this connect has measured the link: a latency
                    // short of four round trips loses retransmissions (a 4G
                    // link with 200 ms of RTT and 200 ms of latency lost
                    // 10-20 s of picture per 40 s). Reconnect once with
                    // enough, at the start of the session; the next session
                    // starts with it.
                    if l.connected && !relatency_checked && samples_since_connect >= RTT_SAMPLES {
                        relatency_checked = true;
                        let (want, why) =
                            latency_for(self.peer.latency_ms, Some(srt.rtt_ms), self.cfg.latency_max_ms);
                        if want > latency + latency / 10 {
                            tracing::info!(
                                "uplink: RTT {:.0} ms needs an SRT latency of {want} ms ({why:?}), not {latency}; reconnecting with it",
                                srt.rtt_ms
                            );
                            latency = want;
                            latency_why = why;
                            stats.latency_ms = latency;
                            stats.latency_why = latency_why;
                            // Dropped, not drained: the hub sees a short
                            // gap at the session's start, not a stop.
                            link = None;
                            stats.connected = false;
                            retry_at = Some(Instant::now());
                            let _ = self.stats.send(stats.clone());
                            continue;
                        }
                    }
                    if l.connected
                        && abr.verdict() != Verdict::Congested
                        && last_learned.elapsed() >= Duration::from_secs(LEARN_EVERY)
                    {
                        last_learned = Instant::now();
                        self.remember(&hub, &abr, Some(srt.rtt_ms));
                    }
                    let _ = self.stats.send(stats.clone());
                }
            }
            if let Some(why) = failed.take() {
                let was = link.as_ref().is_some_and(|l| l.connected);
                link = None;
                stats.connected = false;
                let delay = backoff.next_delay(random_unit());
                if was {
                    tracing::warn!(
                        "uplink to {}:{} lost: {why}; reconnecting",
                        self.peer.host,
                        self.peer.port
                    );
                } else {
                    tracing::debug!("uplink connect failed: {why}; retry in {delay:?}");
                }
                if !reported_down {
                    reported_down = true;
                    let _ = self
                        .events
                        .send(MediaEvent::Degraded(Degradation::UplinkDown));
                }
                retry_at = Some(Instant::now() + delay);
                let _ = self.stats.send(stats.clone());
            }
        }
        drop(link);
        let _ = self.stats.send(UplinkStats {
            configured: true,
            ..Default::default()
        });
    }

    fn connect(
        &self,
        gen: u64,
        queue_bytes: u64,
        latency_ms: u32,
        bus_tx: mpsc::UnboundedSender<(u64, gst::Message)>,
    ) -> Result<Link, String> {
        let peer = SrtPeer {
            latency_ms,
            ..self.peer.clone()
        };
        let (pipeline, sink) = build(&peer, queue_bytes)?;
        let src = pipeline
            .by_name(pipeline::UPLINK_SRC)
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or("no appsrc in the uplink pipeline")?;
        // Null may wait for a pending SRT connect to give up; not on the runtime.
        let run =
            super::runner::Running::new(pipeline, bus_tx, move |m| (gen, m)).null_off_runtime();
        run.pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("uplink pipeline does not start: {e}"))?;
        Ok(Link {
            _run: run,
            src,
            sink,
            created: Instant::now(),
            connected: false,
            started: false,
            last: Counters::default(),
        })
    }

    /// Keep what the link to `hub` carries now, for the next session on
    /// it (with adaptive bitrate only: otherwise the rate says nothing
    /// about the link). `rtt_ms` stands in before the controller has one.
    fn remember(&self, hub: &str, abr: &Controller, rtt_ms: Option<f64>) {
        let (Some(m), true) = (&self.links, self.cfg.adaptive_bitrate) else {
            return;
        };
        let Some(rtt_ms) = abr.base_rtt_ms().or(rtt_ms) else {
            return;
        };
        m.put(
            hub,
            &Learned {
                kbps: abr.bitrate(),
                rtt_ms,
                at: chrono::Utc::now().timestamp(),
            },
        );
    }

    fn force_keyframe(&self) {
        super::force_keyframe(&self.encoder);
    }

    fn set_bitrate(&self, kbps: u32) {
        let kbps = match self.call_cap.load(Ordering::Relaxed) {
            0 => kbps,
            cap => kbps.min(cap),
        };
        let Some(enc) = self.encoder.upgrade() else {
            return;
        };
        if enc.find_property("bitrate").is_some() {
            tracing::debug!("uplink adapts encoder bitrate to {kbps} kbit/s");
            enc.set_property_from_str("bitrate", &kbps.to_string());
        }
    }
}

/// Push one buffer of TS to the link, if there is one, through the
/// picture gate (speech first). A new link starts at a keyframe, behind the
/// PAT and PMT, so the hub decodes from its first byte.
fn feed(
    link: Option<&mut Link>,
    scanner: &mut Scanner,
    gate: &mut PictureGate,
    now_ms: u64,
    stats: &mut UplinkStats,
    buf: gst::Buffer,
) {
    let gated = |gate: &mut PictureGate, buf: gst::Buffer| -> Option<gst::Buffer> {
        let thinned = match buf.map_readable() {
            Ok(m) => gate.filter(&m, now_ms),
            Err(_) => None,
        };
        match thinned {
            None => Some(buf),
            Some(v) if v.is_empty() => None,
            Some(v) => Some(gst::Buffer::from_mut_slice(v)),
        }
    };
    let key = match buf.map_readable() {
        Ok(m) => scanner.scan(&m),
        Err(_) => None,
    };
    match link {
        // Nothing goes into a link before SRT has connected: bytes written
        // during the handshake do not reliably reach the hub.
        Some(l) if !l.connected => stats.bytes_dropped_while_down += buf.size() as u64,
        Some(l) if !l.started => match key {
            Some(at) => {
                l.started = true;
                let _ = l.src.push_buffer(gst::Buffer::from_slice(scanner.psi()));
                let tail = buf
                    .copy_region(gst::BufferCopyFlags::MEMORY, at..)
                    .unwrap_or(buf);
                if let Some(b) = gated(gate, tail) {
                    let _ = l.src.push_buffer(b);
                }
            }
            None => stats.bytes_dropped_while_down += buf.size() as u64,
        },
        Some(l) => {
            if let Some(b) = gated(gate, buf) {
                let _ = l.src.push_buffer(b);
            }
        }
        None => stats.bytes_dropped_while_down += buf.size() as u64,
    }
}

/// Let a connected link send what it has queued (the end of the session)
/// before it is closed; gives up after a second.
async fn drain(
    l: Link,
    bus_rx: &mut mpsc::UnboundedReceiver<(u64, gst::Message)>,
    gen: u64,
    latency_ms: u32,
) {
    if !l.connected {
        return;
    }
    let _ = l.src.end_of_stream();
    let wait = async {
        while let Some((g, msg)) = bus_rx.recv().await {
            if g == gen
                && matches!(
                    msg.view(),
                    gst::MessageView::Eos(_) | gst::MessageView::Error(_)
                )
            {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), wait).await;
    // The hub holds what it received for the SRT latency before it passes it
    // on, and a live-mode socket drops that on close: keep the link open
    // until the last bytes are through.
    tokio::time::sleep(
        Duration::from_millis(u64::from(latency_ms) + 100).min(Duration::from_secs(2)),
    )
    .await;
}

/// The uplink pipeline for `peer` and its `srtsink`, configured.
fn build(peer: &SrtPeer, queue_bytes: u64) -> Result<(gst::Pipeline, gst::Element), String> {
    let desc = pipeline::uplink(peer, queue_bytes);
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| format!("{e} in `{desc}`"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline".to_owned())?;
    let sink = pipeline
        .by_name(pipeline::UPLINK_SINK)
        .ok_or("no srtsink in the uplink pipeline")?;
    if let Some(p) = &peer.passphrase {
        sink.set_property("passphrase", p);
        sink.set_property_from_str("pbkeylen", &peer.pbkeylen.to_string());
    }
    if let Some(s) = &peer.streamid {
        sink.set_property("streamid", s);
    }
    Ok((pipeline, sink))
}

/// Check that the hub answers an SRT handshake with this box's settings
/// (address, passphrase, stream id), sending no media: the pipeline is the
/// uplink's own, closed as soon as the handshake completes. Returns the RTT
/// in milliseconds. For `diemcau doctor`.
pub fn handshake(peer: &SrtPeer, timeout: Duration) -> Result<f64, String> {
    gst::init().map_err(|e| e.to_string())?;
    let (pipeline, sink) = build(peer, 1 << 20)?;
    let bus = pipeline.bus().ok_or("pipeline without a bus")?;
    // Closes the socket whatever happens below.
    struct Null(gst::Pipeline);
    impl Drop for Null {
        fn drop(&mut self) {
            let _ = self.0.set_state(gst::State::Null);
        }
    }
    let pipeline = Null(pipeline);
    pipeline
        .0
        .set_state(gst::State::Playing)
        .map_err(|e| format!("cannot start: {e}"))?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let s = SrtStats::read(&sink);
        if s.connected {
            return Ok(s.rtt_ms);
        }
        if let Some(m) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(100),
            &[gst::MessageType::Error],
        ) {
            if let gst::MessageView::Error(e) = m.view() {
                return Err(e.error().to_string());
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("no SRT handshake within {} s", timeout.as_secs()));
        }
    }
}

/// What one read of `srtsink`'s `stats` property says.
#[derive(Debug, Default)]
struct SrtStats {
    /// Statistics exist for a socket only once its handshake completed.
    connected: bool,
    counters: Counters,
    rtt_ms: f64,
    bandwidth_mbps: f64,
    send_rate_mbps: f64,
}

impl SrtStats {
    fn read(sink: &gst::Element) -> Self {
        let Some(s) = sink.property::<Option<gst::Structure>>("stats") else {
            return Self::default();
        };
        tracing::trace!("srt stats: {s}");
        let f = |name: &str| s.get::<f64>(name).unwrap_or(0.0);
        Self {
            connected: s.has_field("rtt-ms") || s.has_field("packets-sent"),
            counters: Counters {
                sent: field_u64(&s, "packets-sent"),
                lost: field_u64(&s, "packets-sent-lost"),
                retrans: field_u64(&s, "packets-retransmitted"),
                dropped: field_u64(&s, "packets-sent-dropped"),
                bytes: field_u64(&s, "bytes-sent").max(field_u64(&s, "bytes-sent-total")),
            },
            rtt_ms: f("rtt-ms"),
            bandwidth_mbps: f("bandwidth-mbps"),
            send_rate_mbps: f("send-rate-mbps"),
        }
    }
}

fn field_u64(s: &gst::StructureRef, name: &str) -> u64 {
    if let Ok(v) = s.get::<u64>(name) {
        return v;
    }
    if let Ok(v) = s.get::<i64>(name) {
        return v.max(0) as u64;
    }
    if let Ok(v) = s.get::<i32>(name) {
        return v.max(0) as u64;
    }
    s.get::<u32>(name).map(u64::from).unwrap_or(0)
}
