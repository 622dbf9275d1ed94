//! The return feed: the hub's program pulled over SRT (caller mode) while a
//! session is live, decoded into the display's and speaker's channels.
//!
//! An actor per session, like the uplink: it rebuilds its pipeline with
//! backoff when the hub is unreachable, the link breaks, or pictures stop
//! arriving for [`STALL`]; meanwhile the display says the connection to the
//! hub is lost (see `crate::display`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::pipeline;
use crate::config::{Display, SrtPeer};
use crate::core::backoff::{Backoff, Jitter};
use crate::core::session::Degradation;
use crate::core::status::{MediaEvent, ReturnStats};

/// No picture for this long means the feed is lost.
pub const STALL: Duration = Duration::from_secs(3);
/// A new pipeline has this long to deliver its first picture.
const FIRST_PICTURE: Duration = Duration::from_secs(5);

pub struct ReturnTask {
    pub peer: SrtPeer,
    pub display: Display,
    pub reconnect_max: Duration,
    pub events: mpsc::UnboundedSender<MediaEvent>,
    pub stats: watch::Sender<ReturnStats>,
    /// The far track's channel, when the session records the hub's sound.
    pub far: Option<String>,
}

struct Feed {
    /// `Null` off the runtime when dropped: srtsrc may wait for its socket.
    _run: super::runner::Running,
    created: Instant,
    video: Arc<AtomicU64>,
    audio: Arc<AtomicU64>,
    last_video: u64,
    last_progress: Instant,
}

/// Count the buffers leaving element `name`'s src pad.
pub(super) fn count_buffers(p: &gst::Pipeline, name: &str) -> Arc<AtomicU64> {
    let n = Arc::new(AtomicU64::new(0));
    if let Some(pad) = p.by_name(name).and_then(|e| e.static_pad("src")) {
        let c = n.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            c.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    }
    n
}

impl ReturnTask {
    pub async fn run(self, mut stop: oneshot::Receiver<()>) {
        let mut backoff = Backoff::new(Duration::from_millis(250), self.reconnect_max)
            .with_jitter(Jitter::Spread(0.2));
        let (bus_tx, mut bus_rx) = mpsc::unbounded_channel::<(u64, gst::Message)>();
        let mut gen = 0u64;
        let mut feed: Option<Feed> = None;
        let mut retry_at = Some(Instant::now());
        let mut stats = ReturnStats {
            configured: true,
            ..Default::default()
        };
        let mut reported_lost = false;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            let mut failed: Option<String> = None;
            let retry = async {
                match retry_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut stop => break,
                _ = retry => {
                    retry_at = None;
                    gen += 1;
                    match self.build(gen, bus_tx.clone()) {
                        Ok(f) => feed = Some(f),
                        Err(e) => failed = Some(e),
                    }
                }
                Some((g, msg)) = bus_rx.recv() => {
                    if g == gen {
                        match msg.view() {
                            gst::MessageView::Error(e) => failed = Some(e.error().to_string()),
                            gst::MessageView::Eos(_) => failed = Some("the hub ended its feed".into()),
                            _ => {}
                        }
                    }
                }
                _ = tick.tick() => {
                    if let Some(f) = feed.as_mut() {
                        let v = f.video.load(Ordering::Relaxed);
                        stats.video_frames += v - f.last_video;
                        stats.audio_buffers = f.audio.load(Ordering::Relaxed);
                        if v > f.last_video {
                            f.last_video = v;
                            f.last_progress = Instant::now();
                            if !stats.live {
                                stats.live = true;
                                stats.connects += 1;
                                backoff.reset();
                                tracing::info!("return feed from {}:{} is live", self.peer.host, self.peer.port);
                                if reported_lost {
                                    reported_lost = false;
                                    let _ = self.events.send(MediaEvent::Restored(Degradation::ReturnFeedLost));
                                }
                            }
                        } else if stats.live && f.last_progress.elapsed() > STALL {
                            failed = Some(format!("no picture for {STALL:?}"));
                        } else if !stats.live && f.created.elapsed() > FIRST_PICTURE {
                            failed = Some(format!("no picture within {FIRST_PICTURE:?}"));
                        }
                    }
                    let _ = self.stats.send(stats.clone());
                }
            }
            if let Some(why) = failed {
                feed = None;
                let delay = backoff.next_delay(crate::util::random_unit());
                if stats.live {
                    tracing::warn!("return feed lost: {why}; reconnecting");
                } else {
                    tracing::debug!("return feed not up: {why}; retry in {delay:?}");
                }
                stats.live = false;
                if !reported_lost {
                    reported_lost = true;
                    let _ = self
                        .events
                        .send(MediaEvent::Degraded(Degradation::ReturnFeedLost));
                }
                retry_at = Some(Instant::now() + delay);
                let _ = self.stats.send(stats.clone());
            }
        }
        drop(feed);
        let _ = self.stats.send(ReturnStats::default());
    }

    fn build(
        &self,
        gen: u64,
        bus_tx: mpsc::UnboundedSender<(u64, gst::Message)>,
    ) -> Result<Feed, String> {
        let desc = pipeline::return_feed(&self.peer, &self.display, self.far.as_deref());
        let p = gst::parse::launch(&desc)
            .map_err(|e| format!("{e} in `{desc}`"))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "not a pipeline".to_owned())?;
        let src = p.by_name(pipeline::RETURN_SRC).ok_or("no srtsrc")?;
        if let Some(pw) = &self.peer.passphrase {
            src.set_property("passphrase", pw);
            src.set_property_from_str("pbkeylen", &self.peer.pbkeylen.to_string());
        }
        if let Some(id) = &self.peer.streamid {
            src.set_property("streamid", id);
        }
        let video = count_buffers(&p, pipeline::RETURN_VIDEO);
        let audio = count_buffers(&p, pipeline::RETURN_AUDIO);
        let run =
            super::runner::Running::new(p.clone(), bus_tx, move |m| (gen, m)).null_off_runtime();
        // srtsrc may block in its SRT connect: change state off the runtime.
        // A failure posts an error on the bus, which rebuilds the feed.
        p.call_async(|p| {
            if let Err(e) = p.set_state(gst::State::Playing) {
                tracing::debug!("return feed pipeline does not start: {e}");
            }
        });
        Ok(Feed {
            _run: run,
            created: Instant::now(),
            video,
            audio,
            last_video: 0,
            last_progress: Instant::now(),
        })
    }
}
