//! The media engine: the actor that owns every GStreamer pipeline.
//!
//! A session runs a camera pipeline, a microphone pipeline, an encode
//! pipeline and an uplink (see [`pipeline`] for how they join). The engine
//! restarts a capture pipeline that fails or stalls without touching the
//! encoder, reports what it sees as [`MediaEvent`]s, and publishes
//! [`MediaStats`] for health.

pub mod abr;
pub mod call;
pub mod link_memory;
pub mod pipeline;
pub mod return_feed;
pub mod runner;
pub mod snapshot;
pub mod uplink;
pub mod y4m;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::config::{Config, VideoSource};
use crate::core::sdp::Negotiated;
use crate::core::session::{Degradation, Origin, SessionRecord};
use crate::core::status::{CallMediaStats, MediaEvent, MediaStats, ReturnStats, UplinkStats};
use crate::recorder::{RecorderHandle, SessionStart};
use pipeline::Channels;
use return_feed::ReturnTask;
use runner::{launch, Running};
use uplink::UplinkTask;

enum Command {
    Start(SessionRecord),
    Stop(Option<Origin>),
    Call(Option<Negotiated>),
    /// The camera's last frame, while a session runs it.
    CameraFrame(tokio::sync::oneshot::Sender<Option<gst::Sample>>),
}

/// Handle to the engine. Commands are rare (start, stop) and must never
/// block the supervisor, so the channel is unbounded.
#[derive(Clone)]
pub struct MediaHandle {
    tx: mpsc::UnboundedSender<Command>,
    stats: watch::Receiver<MediaStats>,
}

impl MediaHandle {
    pub fn start(&self, session: SessionRecord) {
        let _ = self.tx.send(Command::Start(session));
    }

    /// Stop the session's media; `by` is recorded with the recording.
    pub fn stop(&self, by: Option<Origin>) {
        let _ = self.tx.send(Command::Stop(by));
    }

    /// The camera's last frame while a session runs it (`None` when no
    /// session does: the camera is then free for a still of its own).
    pub async fn camera_frame(&self) -> Option<gst::Sample> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx.send(Command::CameraFrame(tx)).ok()?;
        rx.await.ok().flatten()
    }

    /// The conference call's media as negotiated (`None`: no call). The
    /// RTP pipeline runs while a session is live and a call is up.
    pub fn call(&self, negotiated: Option<Negotiated>) {
        let _ = self.tx.send(Command::Call(negotiated));
    }

    pub fn stats(&self) -> MediaStats {
        self.stats.borrow().clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("GStreamer cannot be initialised: {0}")]
    Init(#[from] gst::glib::Error),
}

/// Initialise GStreamer (idempotent); call before building any pipeline.
pub fn init() -> Result<(), MediaError> {
    gst::init()?;
    Ok(())
}

/// Start the engine actor. It reports on `events`; the encoded stream also
/// goes to `recorder` when there is one.
pub fn spawn(
    config: Config,
    events: mpsc::UnboundedSender<MediaEvent>,
    recorder: Option<RecorderHandle>,
    presets: Option<crate::camera::Presets>,
    links: Option<link_memory::LinkMemory>,
) -> Result<MediaHandle, MediaError> {
    gst::init()?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (stats_tx, stats) = watch::channel(MediaStats::default());
    let engine = Engine {
        call: watch::channel(None).0,
        config,
        events,
        stats: stats_tx,
        seq: 0,
        recorder,
        presets,
        links,
        encoder: None,
    };
    tokio::spawn(engine.run(rx));
    Ok(MediaHandle { tx, stats })
}

/// Which pipeline a bus message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Branch {
    Camera,
    Mic,
    Encode,
}

/// A capture branch (camera or microphone) that is restarted when it fails.
struct Capture {
    branch: Branch,
    running: Option<Running>,
    gen: u64,
    retry_at: Option<Instant>,
    lost: bool,
    restarts: u64,
    /// Monotonic milliseconds of the last buffer seen, for the stall watchdog.
    last_buffer_ms: Arc<AtomicU64>,
    frames: Arc<AtomicU64>,
}

impl Capture {
    fn new(branch: Branch) -> Self {
        Self {
            branch,
            running: None,
            gen: 0,
            retry_at: Some(Instant::now()),
            lost: false,
            restarts: 0,
            last_buffer_ms: Arc::new(AtomicU64::new(0)),
            frames: Arc::new(AtomicU64::new(0)),
        }
    }

    fn degradation(&self) -> Degradation {
        match self.branch {
            Branch::Camera => Degradation::CameraLost,
            _ => Degradation::MicrophoneLost,
        }
    }
}

struct Session {
    id: String,
    encode: Running,
    encoder_name: String,
    camera: Capture,
    mic: Capture,
    ts_bytes: Arc<AtomicU64>,
    started_reported: bool,
    stopping_since: Option<Instant>,
    uplink_stop: Option<oneshot::Sender<()>>,
    uplink_stats: watch::Receiver<UplinkStats>,
    return_stop: Option<oneshot::Sender<()>>,
    return_stats: watch::Receiver<ReturnStats>,
    call_stop: Option<oneshot::Sender<()>>,
    call_stats: watch::Receiver<CallMediaStats>,
    /// Buffers the recorder could not take.
    rec_dropped: Arc<AtomicU64>,
    rec_drop_reported: bool,
    stopped_by: Option<String>,
    /// When the microphone was last louder than the silence threshold.
    mic_loud_at: Instant,
    encoded_frames: Arc<AtomicU64>,
    rate: (Instant, u64, f64),
    echo_cancel: bool,
    mic_level: (f64, f64),
    slate: gst::glib::WeakRef<gst::Element>,
}

struct Engine {
    /// The call's negotiated media, for the session's call task; it
    /// outlives sessions because a call can be answered before its session
    /// starts.
    call: watch::Sender<Option<Negotiated>>,
    config: Config,
    events: mpsc::UnboundedSender<MediaEvent>,
    stats: watch::Sender<MediaStats>,
    seq: u64,
    recorder: Option<RecorderHandle>,
    presets: Option<crate::camera::Presets>,
    /// What the uplink learned about each hub's link.
    links: Option<link_memory::LinkMemory>,
    /// The encoder chosen at the first session (its probe runs once).
    encoder: Option<pipeline::EncoderChoice>,
}

/// The encoder this box runs for `v` ([`pipeline::choose_encoder`]): the
/// hardware encoders' elements looked up, and the one that is present run
/// on a few frames. For the media actor's first session and the doctor.
pub fn choose_encoder(v: &crate::config::Video) -> pipeline::EncoderChoice {
    use crate::config::Encoder;
    let _ = gst::init();
    pipeline::choose_encoder(
        v.encoder,
        |e| {
            gst::ElementFactory::find(pipeline::encoder_factory(e)).is_some()
                && (e != Encoder::Vaapi || std::path::Path::new("/dev/dri/renderD128").exists())
        },
        |e| match runner::run_to_eos(&pipeline::encoder_probe(v, e), Duration::from_secs(5)) {
            Ok(_) => true,
            Err(why) => {
                tracing::warn!(
                    "{} did not start ({why}); trying the next encoder",
                    pipeline::encoder_factory(e)
                );
                false
            }
        },
    )
}

/// RMS below this is silence.
const SILENCE_DBFS: f64 = -60.0;
/// Silence this long is reported.
const SILENCE_AFTER: Duration = Duration::from_secs(10);
/// A peak at or above this is clipping.
const CLIP_DBFS: f64 = -0.1;

/// Milliseconds since an arbitrary process-wide origin.
fn mono_ms() -> u64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

type BusTx = mpsc::UnboundedSender<(Branch, u64, gst::Message)>;

impl Engine {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let (bus_tx, mut bus_rx) = mpsc::unbounded_channel();
        let mut session: Option<Session> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut last_publish = Instant::now();
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Command::Start(rec)) => {
                        let id = rec.id.clone();
                        if session.is_some() {
                            tracing::warn!("media start while a session runs; ignored");
                            continue;
                        }
                        // Devices opened and pipelines brought up: blocking,
                        // and slow on a loaded CPU.
                        match runner::blocking(|| self.start(&rec, &bus_tx)) {
                            Ok(s) => session = Some(s),
                            Err(e) => {
                                tracing::error!("media cannot start session {id}: {e}");
                                let _ = self.events.send(MediaEvent::Failed(e));
                            }
                        }
                    }
                    Some(Command::Call(n)) => {
                        self.call.send_replace(n);
                    }
                    Some(Command::CameraFrame(reply)) => {
                        let frame = session
                            .as_ref()
                            .and_then(|s| s.camera.running.as_ref())
                            .and_then(|r| r.pipeline.by_name(pipeline::CAMERA_SINK))
                            .and_then(|e| snapshot::last_frame(&e));
                        let _ = reply.send(frame);
                    }
                    Some(Command::Stop(by)) => match session.as_mut() {
                        Some(s) if s.stopping_since.is_none() => {
                            s.stopped_by = by.as_ref().map(|o| crate::core::status::origin_name(Some(o)));
                            s.stopping_since = Some(Instant::now());
                            // EOS lets the muxer and the recorder finish the last segment.
                            s.encode.pipeline.send_event(gst::event::Eos::new());
                        }
                        Some(_) => {}
                        None => {
                            let _ = self.events.send(MediaEvent::Stopped);
                        }
                    },
                    None => return,
                },
                Some((branch, gen, msg)) = bus_rx.recv() => {
                    if let Some(s) = session.as_mut() {
                        if self.on_bus(s, branch, gen, &msg) {
                            self.finish(&mut session);
                        }
                    }
                }
                _ = tick.tick() => {
                    if let Some(s) = session.as_mut() {
                        if s.stopping_since.is_some_and(|t| t.elapsed() > Duration::from_millis(1500)) {
                            tracing::warn!("encoder did not drain within 1.5 s; closing");
                            self.finish(&mut session);
                            continue;
                        }
                        self.supervise(s, &bus_tx);
                    }
                    if last_publish.elapsed() >= Duration::from_millis(250) {
                        last_publish = Instant::now();
                        self.publish(session.as_mut());
                    }
                }
            }
        }
    }

    fn start(&mut self, rec: &SessionRecord, bus_tx: &BusTx) -> Result<Session, String> {
        let id = rec.id.as_str();
        self.seq += 1;
        let cfg = &self.config;
        let sip = cfg.sip.is_some();
        // The far end is recorded whenever there is one to hear: a call or
        // a return feed.
        let record_far = self.recorder.is_some() && (sip || cfg.return_feed.peer.is_some());
        let ch = Channels {
            video: format!("diemcau-v{}", self.seq),
            audio: format!("diemcau-a{}", self.seq),
            far: record_far.then(|| format!("diemcau-f{}", self.seq)),
        };
        let choice = match &self.encoder {
            Some(c) => c.clone(),
            None => {
                let c = choose_encoder(&cfg.video);
                match &c.fallback {
                    Some(why) => tracing::warn!("video encoder: x264 ({why})"),
                    None => {
                        tracing::info!("video encoder: {}", pipeline::encoder_factory(c.encoder))
                    }
                }
                self.encoder = Some(c.clone());
                c
            }
        };
        let enc = choice.encoder;
        let desc = pipeline::encode(&cfg.video, &cfg.audio, enc, &ch, sip);
        tracing::debug!("encode pipeline: {desc}");
        let encode = launch(&desc).map_err(|e| format!("encode pipeline: {e}"))?;
        let encoder = encode
            .by_name(pipeline::ENCODER)
            .ok_or("encode pipeline has no encoder")?;
        let encoder_name = encoder
            .factory()
            .map(|f| f.name().to_string())
            .unwrap_or_default();
        let slate = encode
            .by_name(pipeline::SLATE)
            .ok_or("encode pipeline has no slate")?;
        let appsink = encode
            .by_name(pipeline::TS_SINK)
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or("encode pipeline has no appsink")?;

        // The uplink gets the TS bytes through a bounded channel; when it is
        // full the bytes are dropped for the uplink only (counted there).
        let (up_tx, up_rx) = mpsc::channel::<gst::Buffer>(1024);
        let ts_bytes = Arc::new(AtomicU64::new(0));
        let counter = ts_bytes.clone();
        let uplink_on = cfg.uplink.peer.is_some();
        let recorder = self.recorder.clone();
        let rec_dropped = Arc::new(AtomicU64::new(0));
        let dropped = rec_dropped.clone();
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(buf) = sample.buffer_owned() {
                        counter.fetch_add(buf.size() as u64, Ordering::Relaxed);
                        // The recorder gets the same bytes as the hub (a
                        // reference, not a copy). It must never miss one;
                        // if it ever cannot keep up, that is counted and raised.
                        if let Some(r) = &recorder {
                            if !r.offer(buf.clone()) {
                                dropped.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        if uplink_on {
                            let _ = up_tx.try_send(buf);
                        }
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );

        // The far end's track goes to the recorder alone; a full queue is
        // counted with the room's, and raised the same way.
        if let (Some(r), true) = (&self.recorder, record_far) {
            let far_sink = encode
                .by_name(pipeline::FAR_SINK)
                .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                .ok_or("encode pipeline has no far-end appsink")?;
            let (r, dropped) = (r.clone(), rec_dropped.clone());
            far_sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if let Some(buf) = sample.buffer_owned() {
                            if !r.offer_far(buf) {
                                dropped.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }

        // The call's taps: dropped for the call alone when it lags.
        let (tap_tx, tap_rx) = mpsc::channel::<call::Tap>(256);
        if sip {
            for (name, video) in [
                (pipeline::CALL_VIDEO_TAP, true),
                (pipeline::CALL_AUDIO_TAP, false),
            ] {
                let sink = encode
                    .by_name(name)
                    .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                    .ok_or("encode pipeline has no call tap")?;
                let tx = tap_tx.clone();
                sink.set_callbacks(
                    gst_app::AppSinkCallbacks::builder()
                        .new_sample(move |sink| {
                            let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                            let _ = tx.try_send(if video {
                                call::Tap::Video(sample)
                            } else {
                                call::Tap::Audio(sample)
                            });
                            Ok(gst::FlowSuccess::Ok)
                        })
                        .build(),
                );
            }
        }
        drop(tap_tx);
        let encode = Running::new(encode, bus_tx.clone(), |m| (Branch::Encode, 0, m));
        // The microphone's gain, as configured.
        if let (crate::config::AudioSource::Alsa(dev), Some(pct)) =
            (&cfg.audio.source, cfg.audio.gain_percent)
        {
            let dev = dev.clone();
            tokio::task::spawn_blocking(move || {
                match crate::audio_devices::set_capture_gain(&dev, pct) {
                    Ok(c) => {
                        tracing::info!(device = %dev, controls = ?c, "microphone gain set to {pct}%")
                    }
                    Err(e) => tracing::warn!(device = %dev, "microphone gain not set: {e}"),
                }
            });
        }
        // Point the camera at the default preset (off the runtime: ioctls).
        if let (Some(name), Some(presets)) =
            (cfg.video.default_preset.clone(), self.presets.clone())
        {
            let source = cfg.video.source.clone();
            tokio::task::spawn_blocking(move || {
                let r = crate::camera::open_controls(&source)
                    .and_then(|mut c| presets.recall(&name, &mut c));
                match r {
                    Ok(p) => {
                        tracing::info!(preset = %name, ?p, "camera moved to the default preset")
                    }
                    Err(e) => tracing::warn!(preset = %name, "default preset not recalled: {e}"),
                }
            });
        }
        // The recorder learns of the session before the first byte arrives
        // (same channel, so in order).
        if let Some(r) = &self.recorder {
            r.start(SessionStart {
                id: rec.id.clone(),
                started_by: crate::core::status::origin_name(Some(&rec.started_by)),
                metadata: rec.metadata.clone(),
            });
        }
        encode
            .pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("encode pipeline does not start: {e}"))?;

        // The call's ceiling on the encoder's bitrate, which the uplink's
        // adaptive bitrate must respect: one atomic between the two tasks
        // of this session, written by the call, read by the uplink.
        let call_cap = Arc::new(AtomicU32::new(0));
        let (ustats_tx, uplink_stats) = watch::channel(UplinkStats::default());
        let uplink_stop = if let Some(peer) = cfg.uplink.peer.clone() {
            let (stop_tx, stop_rx) = oneshot::channel();
            let task = UplinkTask {
                peer,
                cfg: cfg.uplink.clone(),
                video: cfg.video.clone(),
                encoder: encoder.downgrade(),
                buffers: up_rx,
                events: self.events.clone(),
                stats: ustats_tx,
                call_cap: call_cap.clone(),
                links: self.links.clone(),
            };
            tokio::spawn(task.run(stop_rx));
            Some(stop_tx)
        } else {
            None
        };

        let (rstats_tx, return_stats) = watch::channel(ReturnStats::default());
        let return_stop = cfg.return_feed.peer.clone().map(|peer| {
            let (stop_tx, stop_rx) = oneshot::channel();
            let task = ReturnTask {
                peer,
                display: cfg.display.clone(),
                reconnect_max: cfg.uplink.reconnect_max,
                events: self.events.clone(),
                stats: rstats_tx,
                far: ch.far.clone(),
            };
            tokio::spawn(task.run(stop_rx));
            stop_tx
        });
        let (cstats_tx, call_stats) = watch::channel(CallMediaStats::default());
        let call_stop = sip.then(|| {
            let (stop_tx, stop_rx) = oneshot::channel();
            let task = call::CallTask {
                negotiated: self.call.subscribe(),
                taps: tap_rx,
                encoder: encoder.downgrade(),
                display: cfg.display.clone(),
                stats: cstats_tx,
                cap: call_cap.clone(),
                video_kbps: cfg.video.bitrate_kbps,
                video_min_kbps: cfg.video.min_bitrate_kbps,
                far: ch.far.clone(),
                pin: cfg
                    .sip
                    .as_ref()
                    .and_then(|s| s.pin.clone().map(|p| (p, s.pin_delay))),
            };
            tokio::spawn(task.run(stop_rx));
            stop_tx
        });
        let encoded_frames = Arc::new(AtomicU64::new(0));
        if let Some(pad) = encoder.static_pad("src") {
            let n = encoded_frames.clone();
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                n.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        }
        // Echo cancellation needs the speaker pipeline's probe (the reference
        // signal) and a return feed worth cancelling.
        let echo_cancel = cfg.audio.echo_cancel
            && (cfg.return_feed.peer.is_some() || sip)
            && cfg.speaker != crate::config::SpeakerSink::None;

        let mut s = Session {
            id: id.to_owned(),
            encode,
            encoder_name,
            camera: Capture::new(Branch::Camera),
            mic: Capture::new(Branch::Mic),
            ts_bytes,
            started_reported: false,
            stopping_since: None,
            uplink_stop,
            uplink_stats,
            return_stop,
            return_stats,
            call_stop,
            call_stats,
            rec_dropped,
            rec_drop_reported: false,
            stopped_by: None,
            mic_loud_at: Instant::now(),
            encoded_frames,
            rate: (Instant::now(), 0, 0.0),
            echo_cancel,
            mic_level: (-100.0, -100.0),
            slate: slate.downgrade(),
        };
        // Start the capture branches now rather than on the next tick: every
        // 100 ms counts towards "button to live".
        self.supervise(&mut s, bus_tx);
        tracing::info!(session = id, encoder = %s.encoder_name, "media session started");
        Ok(s)
    }

    /// Restart capture branches that are due, detect stalls, report Started.
    fn supervise(&self, s: &mut Session, bus_tx: &BusTx) {
        if s.stopping_since.is_some() {
            return;
        }
        let stall = self.config.video.stall_timeout.as_millis() as u64;
        let ch = Channels {
            video: format!("diemcau-v{}", self.seq),
            audio: format!("diemcau-a{}", self.seq),
            far: None,
        };
        let echo_cancel = s.echo_cancel;
        for cap in [&mut s.camera, &mut s.mic] {
            // Stall watchdog: a running branch that produced nothing for too long.
            if cap.running.is_some() {
                let last = cap.last_buffer_ms.load(Ordering::Relaxed);
                if last > 0 && mono_ms().saturating_sub(last) > stall {
                    tracing::warn!(
                        "{:?} branch stalled for {} ms; restarting it",
                        cap.branch,
                        stall
                    );
                    self.lose(cap, "stalled");
                }
            }
            if cap.running.is_none() && cap.retry_at.is_some_and(|t| Instant::now() >= t) {
                cap.retry_at = None;
                match self.start_capture(cap, &ch, echo_cancel, bus_tx) {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::warn!("{:?} branch cannot start: {e}", cap.branch);
                        self.lose(cap, &e);
                    }
                }
            }
            // A branch that came back: buffers flow again after a loss.
            if cap.lost && cap.running.is_some() && cap.frames.load(Ordering::Relaxed) > 0 {
                cap.lost = false;
                tracing::info!("{:?} branch is back", cap.branch);
                let _ = self.events.send(MediaEvent::Restored(cap.degradation()));
            }
        }
        if let Some(slate) = s.slate.upgrade() {
            let text = if s.camera.lost {
                crate::core::words::display::camera_lost_slate(self.config.daemon.language)
            } else {
                ""
            };
            if slate.property::<String>("text") != text {
                slate.set_property("text", text);
            }
        }
        if !s.rec_drop_reported && s.rec_dropped.load(Ordering::Relaxed) > 0 {
            s.rec_drop_reported = true;
            tracing::error!(session = %s.id, "the recorder fell behind and missed buffers: the recording has a gap");
            let _ = self
                .events
                .send(MediaEvent::Degraded(Degradation::RecordingHalted));
        }
        if !s.started_reported && s.ts_bytes.load(Ordering::Relaxed) > 0 {
            s.started_reported = true;
            let _ = self.events.send(MediaEvent::Started);
        }
    }

    fn start_capture(
        &self,
        cap: &mut Capture,
        ch: &Channels,
        echo_cancel: bool,
        bus_tx: &BusTx,
    ) -> Result<(), String> {
        // A raw clip the engine reads itself (`y4m`): its header, read once.
        let mut clip = None;
        let desc = match cap.branch {
            Branch::Camera => {
                if let VideoSource::V4l2(dev) = &self.config.video.source {
                    if !dev.exists() {
                        return Err(format!("camera {} is not connected", dev.display()));
                    }
                }
                let self_view = self.config.display.sink != crate::config::DisplaySink::None;
                // The camera's best mode for the configured size and rate.
                let caps = match &self.config.video.source {
                    VideoSource::V4l2(dev) => {
                        let v = &self.config.video;
                        match crate::camera::probe_modes(dev) {
                            Ok(modes) => {
                                let m = crate::camera::choose_mode(
                                    &modes,
                                    v.width,
                                    v.height,
                                    v.framerate,
                                );
                                tracing::info!(camera = %dev.display(), mode = ?m, "camera mode chosen");
                                m.and_then(|m| m.gst_caps())
                            }
                            Err(e) => {
                                tracing::warn!("cannot read the camera's modes ({e}); letting GStreamer choose");
                                None
                            }
                        }
                    }
                    // A raw clip laid out as GStreamer's frames is read
                    // straight into them (`y4m`); any other, by y4mdec.
                    VideoSource::File(path) if pipeline::is_y4m(path) => {
                        let h = y4m::Header::read(path).map_err(|e| e.to_string())?;
                        let caps = h.direct().then(|| h.caps());
                        clip = caps.is_some().then_some(h);
                        caps
                    }
                    _ => None,
                };
                pipeline::camera(&self.config.video, ch, self_view, caps.as_deref())
            }
            _ => pipeline::microphone(&self.config.audio, ch, echo_cancel),
        };
        let p = launch(&desc)?;
        if let (Some(h), VideoSource::File(path)) = (&clip, &self.config.video.source) {
            let src = p
                .by_name(pipeline::CAMERA_FILE)
                .and_then(|e| e.downcast::<gstreamer_app::AppSrc>().ok())
                .ok_or("the camera pipeline has no appsrc for its clip")?;
            y4m::feed(&src, path, h).map_err(|e| e.to_string())?;
        }
        cap.gen += 1;
        cap.frames.store(0, Ordering::Relaxed);
        cap.last_buffer_ms.store(0, Ordering::Relaxed);
        // Count buffers at the branch's output for the stall watchdog.
        let probe_el = match cap.branch {
            Branch::Camera => p.by_name(pipeline::CAMERA_OUT),
            _ => p.by_name(pipeline::MIC_LEVEL),
        };
        if let Some(pad) = probe_el.and_then(|e| e.static_pad("src")) {
            let (last, frames) = (cap.last_buffer_ms.clone(), cap.frames.clone());
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                last.store(mono_ms().max(1), Ordering::Relaxed);
                frames.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        }
        let (branch, gen) = (cap.branch, cap.gen);
        let running = Running::new(p, bus_tx.clone(), move |m| (branch, gen, m));
        running
            .pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("does not start: {e}"))?;
        cap.running = Some(running);
        Ok(())
    }

    /// Tear a capture branch down, report the loss once, schedule a retry.
    fn lose(&self, cap: &mut Capture, why: &str) {
        cap.running = None;
        cap.restarts += 1;
        cap.retry_at = Some(Instant::now() + Duration::from_secs(2));
        if !cap.lost {
            cap.lost = true;
            tracing::warn!("{:?} lost: {why}", cap.branch);
            let _ = self.events.send(MediaEvent::Degraded(cap.degradation()));
        }
    }

    /// Handle one bus message; true when the session is finished.
    fn on_bus(&self, s: &mut Session, branch: Branch, gen: u64, msg: &gst::Message) -> bool {
        use gst::MessageView as M;
        match branch {
            Branch::Encode => match msg.view() {
                M::Eos(_) => return s.stopping_since.is_some(),
                M::Error(e) => {
                    let why = format!(
                        "{} ({})",
                        e.error(),
                        e.src()
                            .map(|s| s.path_string().to_string())
                            .unwrap_or_default()
                    );
                    tracing::error!(session = %s.id, "encode pipeline error: {why}");
                    if s.stopping_since.is_some() {
                        return true;
                    }
                    let _ = self.events.send(MediaEvent::Failed(why));
                }
                _ => {}
            },
            Branch::Camera | Branch::Mic => {
                let current = if branch == Branch::Camera {
                    s.camera.gen
                } else {
                    s.mic.gen
                };
                if gen != current {
                    return false;
                }
                let why = match msg.view() {
                    M::Error(e) => Some(e.error().to_string()),
                    M::Eos(_) => Some("end of stream".to_owned()),
                    M::Element(el) if branch == Branch::Mic => {
                        if let Some(st) = el.structure().filter(|st| st.name() == "level") {
                            s.mic_level = (first_db(st, "peak"), first_db(st, "rms"));
                            if s.mic_level.1 > SILENCE_DBFS {
                                s.mic_loud_at = Instant::now();
                            }
                        }
                        None
                    }
                    _ => None,
                };
                if let Some(why) = why {
                    // Without the speaker's echo probe the canceller cannot
                    // start; a microphone without it beats no microphone.
                    if branch == Branch::Mic && s.echo_cancel && why.contains("probe") {
                        tracing::warn!(
                            "echo cancellation unavailable ({why}); microphone without it"
                        );
                        s.echo_cancel = false;
                    }
                    let cap = if branch == Branch::Camera {
                        &mut s.camera
                    } else {
                        &mut s.mic
                    };
                    self.lose(cap, &why);
                }
            }
        }
        false
    }
    fn finish(&self, session: &mut Option<Session>) {
        if let Some(mut s) = session.take() {
            if let Some(stop) = s.uplink_stop.take() {
                let _ = stop.send(());
            }
            if let Some(stop) = s.return_stop.take() {
                let _ = stop.send(());
            }
            if let Some(stop) = s.call_stop.take() {
                let _ = stop.send(());
            }
            // After EOS: every byte the encoder produced is in the recorder's
            // queue ahead of this.
            if let Some(r) = &self.recorder {
                r.stop(s.stopped_by.take());
            }
            tracing::info!(session = %s.id, bytes = s.ts_bytes.load(Ordering::Relaxed), "media session stopped");
            drop(s);
            let _ = self.events.send(MediaEvent::Stopped);
        }
    }

    fn publish(&self, s: Option<&mut Session>) {
        let stats = match s {
            None => MediaStats {
                recording: self
                    .recorder
                    .as_ref()
                    .map(|r| r.stats())
                    .unwrap_or_default(),
                mic_peak_dbfs: -100.0,
                mic_rms_dbfs: -100.0,
                ..Default::default()
            },
            Some(s) => {
                let bytes = s.ts_bytes.load(Ordering::Relaxed);
                let dt = s.rate.0.elapsed().as_secs_f64();
                if dt >= 1.0 {
                    s.rate = (
                        Instant::now(),
                        bytes,
                        (bytes - s.rate.1) as f64 * 8.0 / 1000.0 / dt,
                    );
                }
                MediaStats {
                    running: true,
                    encoder: s.encoder_name.clone(),
                    encoder_fallback: self.encoder.as_ref().and_then(|c| c.fallback.clone()),
                    camera_present: !s.camera.lost && s.camera.running.is_some(),
                    microphone_present: !s.mic.lost && s.mic.running.is_some(),
                    video_frames_in: s.camera.frames.load(Ordering::Relaxed),
                    ts_bytes_out: s.ts_bytes.load(Ordering::Relaxed),
                    camera_restarts: s.camera.restarts,
                    microphone_restarts: s.mic.restarts,
                    echo_canceller: s.echo_cancel && !s.mic.lost && s.mic.running.is_some(),
                    mic_peak_dbfs: s.mic_level.0,
                    mic_rms_dbfs: s.mic_level.1,
                    uplink: s.uplink_stats.borrow().clone(),
                    return_feed: s.return_stats.borrow().clone(),
                    call: s.call_stats.borrow().clone(),
                    recording: self
                        .recorder
                        .as_ref()
                        .map(|r| r.stats())
                        .unwrap_or_default(),
                    recorder_dropped_buffers: s.rec_dropped.load(Ordering::Relaxed),
                    mic_silent: s.mic.running.is_none() || s.mic_loud_at.elapsed() > SILENCE_AFTER,
                    mic_clipping: s.mic_level.0 >= CLIP_DBFS,
                    video_frames_encoded: s.encoded_frames.load(Ordering::Relaxed),
                    output_kbps: s.rate.2,
                }
            }
        };
        self.stats.send_replace(stats);
    }
}

/// Ask the session's encoder for a keyframe with SPS and PPS: a new SRT
/// link or a new call decodes from it, and a far end's PLI is answered.
pub(crate) fn force_keyframe(encoder: &gst::glib::WeakRef<gst::Element>) {
    let Some(enc) = encoder.upgrade() else {
        return;
    };
    let ev = gstreamer_video::UpstreamForceKeyUnitEvent::builder()
        .all_headers(true)
        .build();
    if let Some(pad) = enc.static_pad("src") {
        pad.send_event(ev);
    }
}

/// The first channel's value of a `level` message field, in dBFS.
fn first_db(st: &gst::StructureRef, field: &str) -> f64 {
    st.get::<gst::glib::ValueArray>(field)
        .ok()
        .and_then(|a| a.first().and_then(|v| v.get::<f64>().ok()))
        .filter(|v| v.is_finite())
        .unwrap_or(-100.0)
        .max(-100.0)
}

#[cfg(test)]
mod tests {
    /// The TS scanner (`core::ts`) on what the engine's muxer really makes.
    #[test]
    fn real_mux_output_has_keyframes() {
        // Produced by mpegtsmux alignment=7 in the engine's configuration.
        gstreamer::init().expect("GStreamer is installed wherever the tests run");
        use gstreamer::prelude::*;
        let p = gstreamer::parse::launch(
            "videotestsrc num-buffers=75 ! video/x-raw,width=160,height=120,framerate=25/1 ! x264enc key-int-max=25 speed-preset=ultrafast tune=zerolatency ! h264parse ! mpegtsmux alignment=7 ! appsink name=s sync=false",
        );
        let p = p
            .expect("x264enc and mpegtsmux are installed")
            .downcast::<gstreamer::Pipeline>()
            .unwrap();
        let sink = p
            .by_name("s")
            .unwrap()
            .downcast::<gstreamer_app::AppSink>()
            .unwrap();
        p.set_state(gstreamer::State::Playing).unwrap();
        let mut s = crate::core::ts::Scanner::default();
        let mut keys = 0;
        while let Ok(sample) = sink.pull_sample() {
            let buf = sample.buffer().unwrap().map_readable().unwrap();
            keys += usize::from(s.scan(&buf).is_some());
        }
        p.set_state(gstreamer::State::Null).unwrap();
        assert_eq!(keys, 3, "75 frames at one keyframe per 25");
        assert_eq!(s.psi().len(), 2 * crate::core::ts::PACKET);
    }
}
