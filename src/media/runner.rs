//! The one pipeline runner: a GStreamer pipeline, the task that forwards its
//! bus messages into the owning actor's single loop, and `Null` on drop.
//! Used by the session's capture and encode pipelines, the uplink, the
//! return feed and the display, so that each of them is torn down the same
//! way whatever path drops it.
//!
//! Bus messages become a stream handled in the actor's one `select!` loop;
//! `wrap` tags each with what the actor needs to tell pipelines apart (a
//! branch, a generation number), so messages from a pipeline already torn
//! down are recognised and ignored.

use futures::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::mpsc;

/// Parse a `gst-launch` description into a pipeline.
/// Run `f`, which blocks on GStreamer (parsing, state changes, sockets,
/// devices), without holding up the runtime's other work: on the daemon's
/// multi-threaded runtime the worker hands its queue to another thread
/// meanwhile (`block_in_place`); elsewhere it just runs. On a loaded CPU a
/// session's pipelines take seconds to start (34 s for a call's under
/// software emulation), and the SIP dialog, MQTT and the watchdog must go
/// on.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

pub fn launch(desc: &str) -> Result<gst::Pipeline, String> {
    gst::parse::launch(desc)
        .map_err(|e| format!("{e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "description is not a pipeline".to_owned())
}

/// Run a short pipeline (a probe, a test tone) to EOS on this thread: its
/// messages, or the first error. For the doctor and the encoder's probe,
/// never for a session's pipelines, which the actors run.
pub fn run_to_eos(desc: &str, timeout: std::time::Duration) -> Result<Vec<gst::Message>, String> {
    gst::init().map_err(|e| e.to_string())?;
    let p = launch(desc)?;
    p.set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;
    let bus = p.bus().ok_or("no bus")?;
    let mut msgs = Vec::new();
    let deadline = std::time::Instant::now() + timeout;
    let result = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Some(m) = bus.timed_pop(gst::ClockTime::from_mseconds(left.as_millis() as u64)) else {
            break Err("timed out".to_owned());
        };
        match m.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => break Err(e.error().to_string()),
            _ => msgs.push(m),
        }
    };
    let _ = p.set_state(gst::State::Null);
    result.map(|()| msgs)
}

/// How the pipeline reaches `Null` when dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NullOn {
    /// In the dropping thread: local sources and sinks stop at once.
    Caller,
    /// On a thread of its own: SRT elements may wait for a pending connect
    /// or a socket close, which must not hold an async worker.
    Thread,
}

/// A pipeline and the task forwarding its bus. Dropping it stops both.
pub struct Running {
    pub pipeline: gst::Pipeline,
    forward: tokio::task::JoinHandle<()>,
    null: NullOn,
}

impl Running {
    /// Start forwarding `pipeline`'s bus messages, each made into an `M` by
    /// `wrap`, to `tx` (the owning actor's loop). The pipeline's state is
    /// the caller's to change; call this before setting it to `Playing` so
    /// that no message is missed.
    pub fn new<M: Send + 'static>(
        pipeline: gst::Pipeline,
        tx: mpsc::UnboundedSender<M>,
        wrap: impl Fn(gst::Message) -> M + Send + 'static,
    ) -> Self {
        let forward = match pipeline.bus() {
            Some(bus) => {
                let mut stream = bus.stream();
                tokio::spawn(async move {
                    while let Some(msg) = stream.next().await {
                        if tx.send(wrap(msg)).is_err() {
                            break;
                        }
                    }
                })
            }
            // A pipeline always has a bus; without one there is nothing to forward.
            None => tokio::spawn(async {}),
        };
        Self {
            pipeline,
            forward,
            null: NullOn::Caller,
        }
    }

    /// Reach `Null` on a thread of its own when dropped (SRT elements).
    pub fn null_off_runtime(mut self) -> Self {
        self.null = NullOn::Thread;
        self
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.forward.abort();
        match self.null {
            NullOn::Caller => {
                let _ = self.pipeline.set_state(gst::State::Null);
            }
            NullOn::Thread => {
                let p = self.pipeline.clone();
                std::thread::spawn(move || {
                    let _ = p.set_state(gst::State::Null);
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forwards_bus_messages_and_stops_on_drop() {
        gst::init().expect("GStreamer is installed wherever the tests run");
        let p = launch("videotestsrc num-buffers=3 ! fakesink").expect("a pipeline");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let r = Running::new(p.clone(), tx, |m| (7u64, m));
        r.pipeline.set_state(gst::State::Playing).unwrap();
        let eos = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while let Some((tag, m)) = rx.recv().await {
                if matches!(m.view(), gst::MessageView::Eos(_)) {
                    return tag;
                }
            }
            0
        })
        .await
        .expect("EOS arrives");
        assert_eq!(eos, 7);
        drop(r);
        assert_eq!(p.current_state(), gst::State::Null);
    }
}
