//! The conference call's media: RTP out of the session's one encode, and
//! the far end's picture and sound into the display and speaker.
//!
//! A task per session, like the uplink. The SIP actor tells the engine what
//! each call negotiated; the engine passes it here on a `watch`, and this
//! task rebuilds its RTP pipeline for every new call (a redial, a
//! re-INVITE) and tears it down when the call ends. Buffers from the
//! encode pipeline's taps come on a bounded channel and are dropped for
//! the call alone when no call is up or it cannot keep up: the recording
//! and the SRT uplink never wait for the call.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::{mpsc, oneshot, watch};

use super::return_feed::count_buffers;
use super::runner::Running;
use super::{force_keyframe, pipeline};
use crate::config::Display;
use crate::core::rtcp;
use crate::core::sdp::{Negotiated, SrtpKeys};
use crate::core::status::CallMediaStats;

/// What the encode pipeline's call taps produce.
pub enum Tap {
    Video(gst::Sample),
    Audio(gst::Sample),
}

pub struct CallTask {
    pub negotiated: watch::Receiver<Option<Negotiated>>,
    pub taps: mpsc::Receiver<Tap>,
    pub encoder: gst::glib::WeakRef<gst::Element>,
    pub display: Display,
    pub stats: watch::Sender<CallMediaStats>,
    /// The encoder's bitrate ceiling this call asks for (0: none); the
    /// uplink's adaptive bitrate reads it too.
    pub cap: Arc<AtomicU32>,
    /// The configured video bitrate, restored when a capped call ends.
    pub video_kbps: u32,
    /// The configured floor, below which a far end's TMMBR does not push
    /// the encoder.
    pub video_min_kbps: u32,
    /// The far track's channel, when the session records the far end.
    pub far: Option<String>,
    /// A meeting PIN for the conference the box dials, and the pause
    /// before it.
    pub pin: Option<(String, Duration)>,
}

struct Rtp {
    _run: Running,
    rtpbin: gst::Element,
    dtmf: Option<gst::Element>,
    video: Option<gst_app::AppSrc>,
    audio: Option<gst_app::AppSrc>,
    received: [Arc<AtomicU64>; 2],
    /// The far picture's depayloader, whose sink pad carries a keyframe
    /// request up to rtpbin, which sends it to the far end as a PLI.
    depay_video: Option<gst::Element>,
    picture: PictureWatch,
    keyframe_requests: u64,
}

impl CallTask {
    pub async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let (bus_tx, mut bus_rx) = mpsc::unbounded_channel::<(u64, gst::Message)>();
        // The far end's TMMBR, from rtpbin's streaming thread: the call's
        // generation and the ceiling it asks for.
        let (tmmbr_tx, mut tmmbr_rx) = mpsc::unbounded_channel::<(u64, u32)>();
        let mut gen = 0u64;
        let mut current = self.negotiated.borrow_and_update().clone();
        let mut tmmbr: Option<u32> = None;
        let mut rtp: Option<Rtp> = self.rebuild(&mut gen, &bus_tx, &tmmbr_tx);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = &mut stop => break,
                changed = self.negotiated.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let now = self.negotiated.borrow_and_update().clone();
                    // A new `b=AS` alone (a re-INVITE from an MCU adapting
                    // to its link) moves the encoder's ceiling; the call's
                    // pipeline, its ports and keys stay as they are.
                    if rtp.is_some() && same_streams(current.as_ref(), now.as_ref()) {
                        self.apply_cap(now.as_ref(), tmmbr);
                        current = now;
                        continue;
                    }
                    current = now;
                    // A new call (or new streams): the last one's TMMBR is
                    // forgotten. The old pipeline lets go of its ports first.
                    tmmbr = None;
                    drop(rtp.take());
                    rtp = self.rebuild(&mut gen, &bus_tx, &tmmbr_tx);
                    if rtp.is_none() {
                        // No call: no figures from the last one linger.
                        self.stats.send_replace(CallMediaStats::default());
                    }
                }
                tap = self.taps.recv() => match (tap, rtp.as_ref()) {
                    (None, _) => break,
                    (Some(Tap::Video(s)), Some(Rtp { video: Some(src), .. })) => {
                        let _ = src.push_sample(&s);
                    }
                    (Some(Tap::Audio(s)), Some(Rtp { audio: Some(src), .. })) => {
                        let _ = src.push_sample(&s);
                    }
                    _ => {}
                },
                Some((g, kbps)) = tmmbr_rx.recv() => {
                    if g == gen && rtp.is_some() && tmmbr != Some(kbps) {
                        tracing::info!("the far end asks for at most {kbps} kbit/s of video (TMMBR)");
                        tmmbr = Some(kbps);
                        self.apply_cap(current.as_ref(), tmmbr);
                    }
                }
                Some((g, msg)) = bus_rx.recv() => {
                    if g == gen {
                        if let gst::MessageView::Error(e) = msg.view() {
                            // The call's media is not the record: log it and
                            // go on; the SIP actor sees the call itself.
                            tracing::warn!(
                                "call media error: {} ({})",
                                e.error(),
                                e.src().map(|s| s.path_string().to_string()).unwrap_or_default()
                            );
                        }
                    }
                }
                _ = tick.tick() => {
                    if let Some(r) = &mut rtp {
                        let mut st = read_stats(r);
                        if r.picture.tick(
                            st.video_rtp_received,
                            st.video_packets_received,
                            std::time::Instant::now(),
                        ) {
                            request_keyframe(r);
                        }
                        st.keyframe_requests = r.keyframe_requests;
                        st.video_cap_kbps = match self.cap.load(Ordering::Relaxed) {
                            0 => None,
                            c => Some(c),
                        };
                        self.stats.send_replace(st);
                    }
                }
            }
        }
        drop(rtp);
        self.stats.send_replace(CallMediaStats::default());
    }

    fn rebuild(
        &self,
        gen: &mut u64,
        bus_tx: &mpsc::UnboundedSender<(u64, gst::Message)>,
        tmmbr_tx: &mpsc::UnboundedSender<(u64, u32)>,
    ) -> Option<Rtp> {
        let n = self.negotiated.borrow().clone();
        self.apply_cap(n.as_ref(), None);
        let n = n?;
        *gen += 1;
        let g = *gen;
        let floor = self.video_min_kbps;
        let on_tmmbr = {
            let tx = tmmbr_tx.clone();
            move |kbps| {
                let _ = tx.send((g, kbps));
            }
        };
        // Parsing and starting the call's pipeline blocks (sockets bound,
        // decoders opened, every element brought to Playing): seconds on a
        // loaded CPU, while the SIP dialog waits for its ACK.
        let start = || {
            build(
                &n,
                &self.display,
                self.far.as_deref(),
                bus_tx.clone(),
                g,
                (floor, on_tmmbr),
            )
        };
        match super::runner::blocking(start) {
            Ok(r) => {
                tracing::info!(codecs = %n.describe(), "call media running");
                // The far end decodes from the first keyframe: ask for one
                // now rather than wait for the next interval.
                force_keyframe(&self.encoder);
                if let (true, Some((pin, delay))) = (n.outgoing, &self.pin) {
                    match &r.dtmf {
                        Some(src) => {
                            tokio::spawn(send_pin(src.downgrade(), pin.clone(), *delay));
                        }
                        None => tracing::warn!(
                            "the conference takes no keypad events (RFC 4733 telephone-event): the meeting PIN is not sent"
                        ),
                    }
                }
                // A far end's PLI or FIR reaches the payloader as an
                // upstream force-key-unit event: pass it to the encoder.
                if let Some(pad) = r.video.as_ref().and_then(|v| v.static_pad("src")) {
                    let enc = self.encoder.clone();
                    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
                        if let Some(gst::PadProbeData::Event(ev)) = &info.data {
                            if gstreamer_video::ForceKeyUnitEvent::is(ev) {
                                tracing::debug!("the far end asked for a keyframe");
                                force_keyframe(&enc);
                            }
                        }
                        gst::PadProbeReturn::Ok
                    });
                }
                Some(r)
            }
            Err(e) => {
                tracing::error!(codecs = %n.describe(), "call media cannot start: {e}");
                None
            }
        }
    }
}

impl CallTask {
    /// The far end's `b=AS` for video caps the one encoder: with two paths,
    /// the lower target wins. `b=AS` counts the RTP, UDP and IP headers
    /// too, so the encoder gets nine tenths of it. A TMMBR (`tmmbr`, already
    /// a ceiling) lowers it further while the call lasts, or raises it back
    /// up to `b=AS`. Without a call (or a limit) the configured bitrate
    /// comes back; the uplink's adaptive bitrate moves it from there as
    /// before.
    fn apply_cap(&self, n: Option<&Negotiated>, tmmbr: Option<u32>) {
        let sdp = n
            .and_then(|n| n.video.as_ref())
            .and_then(|v| v.bandwidth_kbps)
            .map(|b| b * 9 / 10)
            .filter(|c| *c > 0);
        let cap = [sdp, tmmbr.filter(|_| n.is_some())]
            .into_iter()
            .flatten()
            .min()
            .filter(|c| *c < self.video_kbps)
            .unwrap_or(0);
        let before = self.cap.swap(cap, Ordering::Relaxed);
        if cap == before {
            return;
        }
        let Some(enc) = self.encoder.upgrade() else {
            return;
        };
        if enc.find_property("bitrate").is_none() {
            return;
        }
        let kbps = if cap == 0 { self.video_kbps } else { cap };
        tracing::info!("call: encoder bitrate {kbps} kbit/s (the far end's limit: {cap})");
        enc.set_property_from_str("bitrate", &kbps.to_string());
    }
}

/// Whether two negotiations differ at most in the far end's `b=AS`.
fn same_streams(a: Option<&Negotiated>, b: Option<&Negotiated>) -> bool {
    let strip = |n: Option<&Negotiated>| {
        n.map(|n| {
            let mut n = n.clone();
            for s in [&mut n.audio, &mut n.video].into_iter().flatten() {
                s.bandwidth_kbps = None;
            }
            n.outgoing = false;
            n
        })
    };
    a.is_some() && strip(a) == strip(b)
}

/// RFC 4733 event code of a keypad key.
fn event_code(key: char) -> Option<i32> {
    match key {
        '0'..='9' => Some(key as i32 - '0' as i32),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(12 + key as i32 - 'A' as i32),
        _ => None,
    }
}

/// Press the PIN's keys, `delay` after the call's media starts: each key
/// 200 ms down, 150 ms apart (what MCUs' PIN prompts take from a keypad).
/// Stops quietly when the call's pipeline is gone. The digits are never
/// logged.
async fn send_pin(src: gst::glib::WeakRef<gst::Element>, pin: String, delay: Duration) {
    tokio::time::sleep(delay).await;
    let event = |code: i32, start: bool| {
        let mut st = gst::Structure::builder("dtmf-event")
            .field("type", 1i32)
            .field("number", code)
            .field("start", start);
        if start {
            st = st.field("volume", 10i32);
        }
        gst::event::CustomUpstream::new(st.build())
    };
    // Into the source's pad, as if from downstream: `GstBaseSrc` does not
    // hand custom upstream events given to the element to its subclass.
    let press = |code: i32, start: bool| -> bool {
        let Some(pad) = src.upgrade().and_then(|e| e.static_pad("src")) else {
            return false;
        };
        pad.send_event(event(code, start));
        true
    };
    for key in pin.chars() {
        let Some(code) = event_code(key) else {
            continue;
        };
        if !press(code, true) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if !press(code, false) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tracing::info!(keys = pin.len(), "meeting PIN sent to the conference");
}

fn build(
    n: &Negotiated,
    d: &Display,
    far: Option<&str>,
    bus_tx: mpsc::UnboundedSender<(u64, gst::Message)>,
    gen: u64,
    (tmmbr_floor, on_tmmbr): (u32, impl Fn(u32) + Send + Sync + 'static),
) -> Result<Rtp, String> {
    let desc = pipeline::call(n, d, far);
    tracing::debug!("call pipeline: {desc}");
    let p = super::runner::launch(&desc)?;
    // Symmetric RTP: each stream sends from the socket it receives on. The
    // udpsrc binds its port in Ready; its socket then goes to the udpsink.
    for id in 0..2 {
        for (src, sink) in [
            (format!("rtp_in_{id}"), format!("rtp_out_{id}")),
            (format!("rtcp_in_{id}"), format!("rtcp_out_{id}")),
        ] {
            let (Some(src), Some(sink)) = (p.by_name(&src), p.by_name(&sink)) else {
                continue;
            };
            src.set_state(gst::State::Ready)
                .map_err(|_| format!("cannot bind {} (is the RTP port in use?)", src.name()))?;
            let sock = src.property_value("used-socket");
            sink.set_property_from_value("socket", &sock);
            sink.set_property("close-socket", false);
        }
    }
    for (id, stream) in [(0, &n.audio), (1, &n.video)] {
        if let Some(keys) = stream.as_ref().and_then(|s| s.srtp.as_ref()) {
            set_srtp_keys(&p, id, keys)?;
        }
    }
    let rtpbin = p.by_name(pipeline::CALL_RTPBIN).ok_or("no rtpbin")?;
    // A receive pad is named recv_rtp_src_SESSION_SSRC_PT: link it to its
    // session's depayloader. Weak: the pipeline owns rtpbin and the depayloaders.
    let weak = p.downgrade();
    rtpbin.connect_pad_added(move |_, pad| {
        let name = pad.name();
        let Some(rest) = name.strip_prefix("recv_rtp_src_") else {
            return;
        };
        let session = rest.split('_').next().unwrap_or_default();
        let Some(p) = weak.upgrade() else { return };
        let Some(sink) = p
            .by_name(&format!("depay_{session}"))
            .and_then(|d| d.static_pad("sink"))
        else {
            return;
        };
        if sink.is_linked() {
            // A new SSRC from the far end (an MCU switching sources):
            // the newest stream is the one to show and play.
            if let Some(old) = sink.peer() {
                let _ = old.unlink(&sink);
            }
        }
        if let Err(e) = pad.link(&sink) {
            tracing::warn!("call media: cannot link {name}: {e:?}");
        }
    });
    // A far end's TMMBR about the room's video (RFC 5104): rtpbin parses
    // RTCP but acts only on PLI, FIR and NACK itself; every feedback
    // message is offered to this signal, on its streaming thread. The box
    // answers with a TMMBN in its next RTCP compounds, which rtpbin lets a
    // handler of `on-sending-rtcp` extend.
    if n.video.is_some() {
        if let Some(session) =
            rtpbin.emit_by_name::<Option<gst::glib::Object>>("get-internal-session", &[&1u32])
        {
            // Shared by the two signal handlers of this one session, on
            // its streaming threads, and nothing else: a lock held for a
            // few instructions, not a channel to an actor.
            let answer = Arc::new(std::sync::Mutex::new(Tmmbn::default()));
            let noted = answer.clone();
            session.connect("on-feedback-rtcp", false, move |args| {
                let ty = args.get(1).and_then(|v| v.get::<u32>().ok());
                let fmt = args.get(2).and_then(|v| v.get::<u32>().ok());
                if (ty, fmt) != (Some(rtcp::RTPFB), Some(rtcp::FMT_TMMBR)) {
                    return None;
                }
                let requester = args.get(3).and_then(|v| v.get::<u32>().ok())?;
                let fci = args.get(5).and_then(|v| v.get::<gst::Buffer>().ok())?;
                let map = fci.map_readable().ok()?;
                let entries = rtcp::parse_tmmbr(&map);
                if let Some(kbps) = rtcp::tmmbr_ceiling_kbps(&entries, tmmbr_floor) {
                    on_tmmbr(kbps);
                }
                if let Some(t) = entries.iter().min_by_key(|t| t.bitrate_bps) {
                    noted
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .note(rtcp::Tmmbr {
                            ssrc: requester,
                            ..*t
                        });
                }
                None
            });
            session.connect("on-sending-rtcp", false, move |args| {
                let added = args.get(1).is_some_and(|v| append_tmmbn(v, &answer));
                Some(added.to_value())
            });
        }
    }
    let appsrc = |name: &str| {
        p.by_name(name)
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
    };
    let (video, audio) = (
        appsrc(pipeline::CALL_VIDEO_SRC),
        appsrc(pipeline::CALL_AUDIO_SRC),
    );
    let received = [
        count_buffers(&p, pipeline::RETURN_AUDIO),
        count_buffers(&p, pipeline::RETURN_VIDEO),
    ];
    let p_dtmf = p.by_name(pipeline::CALL_DTMF);
    let depay_video = p.by_name("depay_1");
    let run = Running::new(p.clone(), bus_tx, move |m| (gen, m));
    p.set_state(gst::State::Playing)
        .map_err(|e| format!("does not start: {e}"))?;
    Ok(Rtp {
        _run: run,
        rtpbin,
        dtmf: p_dtmf,
        video,
        audio,
        received,
        depay_video,
        picture: PictureWatch::default(),
        keyframe_requests: 0,
    })
}

/// Ask the far end for a keyframe: the same upstream event the
/// depayloader sends on packet loss, which rtpbin turns into a PLI.
fn request_keyframe(r: &mut Rtp) {
    let Some(pad) = r.depay_video.as_ref().and_then(|d| d.static_pad("sink")) else {
        return;
    };
    r.keyframe_requests += 1;
    if r.keyframe_requests == 1 {
        tracing::info!(
            "the far end's picture arrives but none decodes yet: asking it for a keyframe"
        );
    }
    let ev = gstreamer_video::UpstreamForceKeyUnitEvent::builder()
        .all_headers(true)
        .build();
    pad.push_event(ev);
}

/// When to ask the far end for a keyframe, from the far picture's RTP
/// packets and decoded frames, read once a second. The depayloader asks
/// by itself when it sees a packet lost, but not when the stream's first
/// keyframe went by before the box listened, and an MCU may send the next
/// one only when asked (baresip sent one every 10 s; some MCUs send none
/// unasked): the screen stayed black while the call was up. So: packets
/// arriving and no frame decoded for 2 s, ask; then at most once every
/// 2 s while that lasts, which is RFC 4585's rate for a PLI more or less.
#[derive(Default)]
struct PictureWatch {
    rtp: u64,
    decoded: u64,
    stalled_since: Option<std::time::Instant>,
    asked: Option<std::time::Instant>,
}

impl PictureWatch {
    const WAIT: Duration = Duration::from_secs(2);

    fn tick(&mut self, rtp: u64, decoded: u64, now: std::time::Instant) -> bool {
        let (rtp_grew, decoded_grew) = (rtp > self.rtp, decoded > self.decoded);
        (self.rtp, self.decoded) = (rtp, decoded);
        if decoded_grew || !rtp_grew {
            self.stalled_since = None;
            return false;
        }
        let since = *self.stalled_since.get_or_insert(now);
        let waited = now.duration_since(since) >= Self::WAIT;
        let rested = self
            .asked
            .is_none_or(|a| now.duration_since(a) >= Self::WAIT);
        if waited && rested {
            self.asked = Some(now);
            return true;
        }
        false
    }
}

/// The TMMBN the box owes: the latest request of each far end, and how
/// many more RTCP compounds carry the answer. Three, since RTCP goes over
/// UDP and an MCU that hears nothing repeats its request.
#[derive(Default)]
struct Tmmbn {
    latest: Vec<rtcp::Tmmbr>,
    repeats: u8,
}

impl Tmmbn {
    fn note(&mut self, t: rtcp::Tmmbr) {
        self.latest.retain(|o| o.ssrc != t.ssrc);
        self.latest.push(t);
        self.repeats = 3;
    }
}

/// Appends the TMMBN owed, if any, to the compound RTCP packet about to be
/// sent (`value`, the buffer of `on-sending-rtcp`). True when it did.
fn append_tmmbn(value: &gst::glib::Value, answer: &std::sync::Mutex<Tmmbn>) -> bool {
    use gst::glib::translate::ToGlibPtr;
    // SAFETY: the signal declares its buffer `G_SIGNAL_TYPE_STATIC_SCOPE`:
    // the value holds rtpsession's own buffer, not a reference taken for
    // the handlers, so that they can add packets to it (as webrtcbin does).
    // It stays valid for the handler's call, and is changed only when
    // GStreamer says it is writable.
    let buf = unsafe {
        let ptr = gst::glib::gobject_ffi::g_value_get_boxed(value.to_glib_none().0)
            as *mut gst::ffi::GstBuffer;
        if ptr.is_null() || gst::ffi::gst_mini_object_is_writable(ptr.cast()) == 0 {
            return false;
        }
        gst::BufferRef::from_mut_ptr(ptr)
    };
    // The SSRC of the compound's first packet (its SR or RR) is the box's
    // own for this session: the TMMBN's sender. Read from the bytes rather
    // than the session's properties, whose lock the sender may hold.
    let mut own = [0u8; 4];
    if buf.copy_to_slice(4, &mut own).is_err() {
        return false;
    }
    let packet = {
        let mut a = answer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if a.repeats == 0 {
            return false;
        }
        a.repeats -= 1;
        rtcp::tmmbn(u32::from_be_bytes(own), &rtcp::bounding_set(&a.latest))
    };
    buf.append_memory(gst::Memory::from_slice(packet));
    true
}

/// The box's key on `srtpenc_N`; the far end's, for every SSRC it sends
/// from, through `srtpdec_N`'s `request-key`.
fn set_srtp_keys(p: &gst::Pipeline, id: u32, keys: &SrtpKeys) -> Result<(), String> {
    let enc = p
        .by_name(&format!("srtpenc_{id}"))
        .ok_or("no srtpenc in the call pipeline")?;
    enc.set_property("key", gst::Buffer::from_slice(keys.send.clone()));
    enc.set_property_from_str("rtp-cipher", "aes-128-icm");
    enc.set_property_from_str("rtp-auth", keys.suite.rtp_auth());
    enc.set_property_from_str("rtcp-cipher", "aes-128-icm");
    enc.set_property_from_str("rtcp-auth", "hmac-sha1-80");
    let dec = p
        .by_name(&format!("srtpdec_{id}"))
        .ok_or("no srtpdec in the call pipeline")?;
    let caps = gst::Caps::builder("application/x-srtp")
        .field("srtp-key", gst::Buffer::from_slice(keys.recv.clone()))
        .field("srtp-cipher", "aes-128-icm")
        .field("srtp-auth", keys.suite.rtp_auth())
        .field("srtcp-cipher", "aes-128-icm")
        .field("srtcp-auth", "hmac-sha1-80")
        .build();
    dec.connect("request-key", false, move |_| Some(caps.to_value()));
    Ok(())
}

/// RTP and RTCP figures from rtpbin's sessions (0 audio, 1 video).
fn read_stats(r: &Rtp) -> CallMediaStats {
    let mut out = CallMediaStats {
        audio_packets_received: r.received[0].load(Ordering::Relaxed),
        video_packets_received: r.received[1].load(Ordering::Relaxed),
        ..Default::default()
    };
    let (mut rtts, mut jitters, mut counts) = (Vec::new(), Vec::new(), Vec::new());
    for id in 0..2u32 {
        let Some(session) = r
            .rtpbin
            .emit_by_name::<Option<gst::Element>>("get-session", &[&id])
        else {
            continue;
        };
        let stats = session.property::<gst::Structure>("stats");
        let Ok(sources) = stats.get::<gst::glib::ValueArray>("source-stats") else {
            continue;
        };
        for v in sources.iter() {
            let Ok(s) = v.get::<gst::Structure>() else {
                continue;
            };
            let internal = s.get::<bool>("internal").unwrap_or(false);
            if internal {
                let sent = s.get::<u64>("packets-sent").unwrap_or(0);
                if id == 0 {
                    out.audio_packets_sent += sent;
                } else {
                    out.video_packets_sent += sent;
                }
                continue;
            }
            // The far end's receiver report about what the box sends.
            if s.get::<bool>("have-rb").unwrap_or(false) {
                let rtt = s.get::<u32>("rb-round-trip").unwrap_or(0);
                if rtt > 0 {
                    rtts.push(f64::from(rtt) * 1000.0 / 65536.0);
                }
            }
            // What the box receives from the far end.
            if s.get::<bool>("is-sender").unwrap_or(false) {
                let clock = s.get::<i32>("clock-rate").unwrap_or(0);
                if clock > 0 {
                    let j = s.get::<u32>("jitter").unwrap_or(0);
                    jitters.push(f64::from(j) * 1000.0 / f64::from(clock));
                }
                let received = s.get::<u64>("packets-received").unwrap_or(0);
                if id == 1 {
                    out.video_rtp_received += received;
                }
                counts.push((
                    i64::from(s.get::<i32>("packets-lost").unwrap_or(0)),
                    received,
                ));
            }
        }
    }
    let max = |v: &[f64]| v.iter().copied().reduce(f64::max);
    out.rtt_ms = max(&rtts);
    out.jitter_ms = max(&jitters);
    out.loss_percent = loss_percent(&counts);
    out
}

/// The share of the far end's packets lost, from each of its sources'
/// (lost, received) counters. A far end that restarts its sequence numbers
/// under the same SSRC (linphone when its in-call player takes over) has
/// GStreamer count a whole extra cycle, 65 536 packets, as lost: the box
/// showed 96-99% loss of a stream that arrived whole. Whole cycles are not
/// loss (a real loss that long would be 20 minutes of a call's audio).
fn loss_percent(sources: &[(i64, u64)]) -> Option<f64> {
    let (lost, received) = sources
        .iter()
        .fold((0i64, 0u64), |(l, r), (lost, received)| {
            (l + lost.max(&0).rem_euclid(65_536), r + received)
        });
    (received > 0).then(|| lost as f64 * 100.0 / (received as f64 + lost as f64))
}

#[cfg(test)]
mod tests {
    use super::{event_code, loss_percent, PictureWatch};
    use std::time::Duration;

    #[test]
    fn a_restarted_sequence_is_not_counted_as_loss() {
        // linphone's audio, as rtpbin counted it: 129 received, 65 536 lost.
        assert_eq!(loss_percent(&[(65_536, 129), (-1, 224)]), Some(0.0));
        assert_eq!(loss_percent(&[(10, 90)]), Some(10.0));
        assert_eq!(loss_percent(&[(65_546, 90)]), Some(10.0));
        assert_eq!(loss_percent(&[]), None);
    }

    #[test]
    fn a_picture_that_arrives_and_does_not_decode_asks_for_a_keyframe() {
        let t0 = std::time::Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut w = PictureWatch::default();
        // Nothing arrives: nothing to ask for.
        assert!(!w.tick(0, 0, at(0)));
        assert!(!w.tick(0, 0, at(5)));
        // Packets, no frame: asks after 2 s, then every 2 s.
        assert!(!w.tick(10, 0, at(6)));
        assert!(!w.tick(20, 0, at(7)));
        assert!(w.tick(30, 0, at(8)));
        assert!(!w.tick(40, 0, at(9)));
        assert!(w.tick(50, 0, at(10)));
        // Frames decode: quiet again.
        assert!(!w.tick(60, 5, at(11)));
        assert!(!w.tick(70, 15, at(14)));
        // The far end stops sending: no request either.
        assert!(!w.tick(70, 15, at(20)));
        // The picture freezes while packets still come (an MCU that
        // switched sources): asks again.
        assert!(!w.tick(80, 15, at(21)));
        assert!(!w.tick(90, 15, at(22)));
        assert!(w.tick(100, 15, at(23)));
    }

    #[test]
    fn keypad_keys_are_rfc_4733_codes() {
        let codes: Vec<_> = "0159*#AD".chars().map(event_code).collect();
        assert_eq!(codes, [0, 1, 5, 9, 10, 11, 12, 15].map(Some).to_vec());
        assert_eq!(event_code('x'), None);
    }
}
