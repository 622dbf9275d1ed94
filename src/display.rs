//! The room's screen and speaker: an actor that owns the display and speaker
//! pipelines for the daemon's whole life, and writes on the screen what the
//! commune staff need to know, in their language.
//!
//! What the screen says is a pure function of the daemon's status
//! ([`screen`]), worded by `core::words::display`; the actor polls the
//! supervisor and applies changes to the overlays. The session's pipelines
//! feed the picture through process-wide `inter` channels (see
//! `media::pipeline`), so the display keeps running when a session starts,
//! stops or loses its feed.

use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::{Config, Language};
use crate::core::session::{Degradation, Phase};
pub use crate::core::status::LinkQuality;
use crate::core::status::{Hint, ScheduleNotice, Status};
use crate::core::words::{self, display as say};
use crate::media::pipeline;
use crate::media::runner::{launch, Running};
use crate::supervisor::SupervisorHandle;

/// What the screen shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Screen {
    /// Large text in the middle (empty: the hub's picture is unobstructed).
    pub center: String,
    /// A line at the top: recording indicator, link quality, problems.
    pub banner: String,
    /// Show the room's own camera in a corner.
    pub self_view: bool,
    /// Colour bars over everything (the technician's display test).
    pub pattern: bool,
    /// At the foot: that the room is recorded.
    pub notice: String,
}

/// The screen during the technician's display test: colour bars, and words
/// saying what they mean, so nobody in the room takes them for a fault.
pub fn test_pattern_screen(lang: Language) -> Screen {
    Screen {
        center: say::test_pattern(lang).into(),
        banner: String::new(),
        self_view: false,
        pattern: true,
        notice: String::new(),
    }
}

/// The technician's test pattern or test tone, on for a while: the handle
/// the socket API holds; the display actor watches the other end.
#[derive(Clone)]
pub struct TestSignal(std::sync::Arc<watch::Sender<Option<std::time::Instant>>>);

impl TestSignal {
    /// A handle and the receiver the display actor watches.
    pub fn new() -> (Self, watch::Receiver<Option<std::time::Instant>>) {
        let (tx, rx) = watch::channel(None);
        (Self(std::sync::Arc::new(tx)), rx)
    }

    /// On for `d` from now.
    pub fn start(&self, d: Duration) {
        self.0.send_replace(Some(std::time::Instant::now() + d));
    }
}

/// Whether a test signal is on now.
fn on(until: &watch::Receiver<Option<std::time::Instant>>) -> bool {
    until
        .borrow()
        .is_some_and(|t| t > std::time::Instant::now())
}

/// How well the uplink carries the stream, for the mark on screen.
pub fn link_quality(s: &Status, configured_kbps: u32) -> LinkQuality {
    let up = &s.media.uplink;
    if !up.configured {
        LinkQuality::NotConfigured
    } else if !up.connected {
        LinkQuality::Lost
    } else if up.bitrate_kbps * 10 < configured_kbps * 7 {
        // Adaptive bitrate had to cut below 70% of the planned rate.
        LinkQuality::Weak
    } else {
        LinkQuality::Good
    }
}

/// The screen for a status. Pure: what to show is decided here, not in the
/// actor; how it is worded, in `core::words::display`.
/// `notice` is a standing message for the technician (a refused site file);
/// it is shown under the idle and fault screens. `recorded` says the room
/// is recorded: at the foot whenever a session may run (not in fault).
pub fn screen(
    lang: Language,
    s: &Status,
    configured_kbps: u32,
    hint: Option<&str>,
    notice: Option<&str>,
    recorded: &str,
) -> Screen {
    let name = &s.site_name;
    let mut out = Screen::default();
    if s.phase != Phase::Fault && !recorded.is_empty() {
        out.notice = format!("● {recorded}");
    }
    match s.phase {
        Phase::Idle if s.call.state == crate::core::status::CallState::Ringing => {
            out.center = say::ringing(lang).into()
        }
        Phase::Idle => {
            out.center = say::idle(lang, name);
            // At the top, where the live banner goes: the centre is full
            // with a long commune name (the virtual room's screen showed
            // the line pushed down over the recording notice).
            if let Some(n) = &s.schedule.next {
                out.banner =
                    say::next_session(lang, n.weekday, &n.local_start, n.starts_in_s.unwrap_or(-1));
            }
        }
        Phase::Starting => out.center = say::starting(lang).into(),
        Phase::Stopping => out.center = say::stopping(lang).into(),
        Phase::Fault => {
            out.center = say::fault(lang, s.fault.as_deref().unwrap_or_default());
        }
        Phase::Live => {
            out.self_view = true;
            let mut banner = vec![say::recording(lang)];
            banner.extend(say::link(lang, link_quality(s, configured_kbps)));
            for d in &s.degraded {
                if matches!(
                    d,
                    Degradation::UplinkDown | Degradation::ReturnFeedLost | Degradation::CallDown
                ) {
                    continue; // shown by the link mark and the centre text
                }
                banner.push(words::degradation(lang, *d));
            }
            out.banner = banner.join("   ");
            let feed = &s.media.return_feed;
            let call = &s.call;
            if call.configured && call.state != crate::core::status::CallState::Connected {
                // The conference is the room's link to the province: without
                // it the room must know, like a lost SRT feed.
                out.center = say::feed_lost(lang).into();
            } else if feed.configured && !feed.live {
                out.center = say::feed_lost(lang).into();
            } else if !feed.configured && !call.configured {
                out.center = say::in_progress(lang, name);
            }
            // The planned end comes before anything else the centre says:
            // the room has minutes to react.
            match &s.schedule.notice {
                Some(ScheduleNotice::EndsAt { end }) => out.center = say::ends_at(lang, end),
                Some(ScheduleNotice::Extended { end }) => out.center = say::extended(lang, end),
                None => {}
            }
        }
    }
    if let (Some(n), Phase::Idle | Phase::Fault) = (notice, s.phase) {
        out.center = format!("{}\n\n⚠ {n}", out.center);
    }
    // A press during the warning shows the new end, not the hold hint.
    if let (Some(h), false) = (
        hint,
        matches!(s.schedule.notice, Some(ScheduleNotice::Extended { .. })),
    ) {
        out.center = h.to_owned();
    }
    out
}

/// The test pipelines' names, in logs and bus messages.
const PATTERN: &str = "test pattern";
const TONE: &str = "test tone";

/// Asks the display actor for the screen's last frame (`snapshot`).
#[derive(Clone)]
pub struct ScreenHandle {
    tx: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<Option<gst::Sample>>>,
}

/// The display actor's end of [`ScreenHandle`].
pub struct ScreenRequests(
    tokio::sync::mpsc::Receiver<tokio::sync::oneshot::Sender<Option<gst::Sample>>>,
);

pub fn screen_channel() -> (ScreenHandle, ScreenRequests) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    (ScreenHandle { tx }, ScreenRequests(rx))
}

impl ScreenHandle {
    /// What the room's screen shows now, as the screen's sink last drew it
    /// (`None` with no screen, or none drawn yet).
    pub async fn frame(&self) -> Option<gst::Sample> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx.send(tx).await.ok()?;
        rx.await.ok().flatten()
    }
}

/// Start the display actor. `hints` carries short messages from the button,
/// `pattern` and `tone` until when to show the test pattern and play the
/// test tone ([`TestSignal`]), `shots` requests for the screen's still.
pub fn spawn(
    config: Config,
    sup: SupervisorHandle,
    hints: Option<watch::Receiver<Option<Hint>>>,
    pattern: watch::Receiver<Option<std::time::Instant>>,
    tone: watch::Receiver<Option<std::time::Instant>>,
    shots: ScreenRequests,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(config, sup, hints, pattern, tone, shots))
}

async fn run(
    config: Config,
    sup: SupervisorHandle,
    hints: Option<watch::Receiver<Option<Hint>>>,
    pattern_until: watch::Receiver<Option<std::time::Instant>>,
    tone_until: watch::Receiver<Option<std::time::Instant>>,
    ScreenRequests(mut shots): ScreenRequests,
) {
    let display_desc = pipeline::display(&config.display);
    let speaker_desc = pipeline::speaker(&config.speaker);
    if display_desc.is_none() && speaker_desc.is_none() {
        return;
    }
    let (bus_tx, mut bus_rx) =
        tokio::sync::mpsc::unbounded_channel::<(&'static str, gst::Message)>();
    let mut display: Option<Running> = None;
    // Held only to keep the speaker pipeline (and its echo probe) alive.
    let mut _speaker: Option<Running> = None;
    // Held only while the technician's test pattern is shown, or the test
    // tone played.
    let mut _pattern: Option<Running> = None;
    let mut tone: Option<Running> = None;
    let mut retry_display = Some(Instant::now());
    let mut retry_speaker = Some(Instant::now());
    let mut shown = Screen {
        center: "\u{0}".into(),
        ..Default::default()
    };
    // A site file the box refused at boot stays on the screen until fixed.
    let notice = crate::provision::read_status(&config.path)
        .filter(|s| !s.ok)
        .map(|s| s.message(config.daemon.language));
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            Some(reply) = shots.recv() => {
                let frame = display
                    .as_ref()
                    .and_then(|d| d.pipeline.by_name(pipeline::SCREEN_SINK))
                    .and_then(|e| crate::media::snapshot::last_frame(&e));
                let _ = reply.send(frame);
            }
            Some((which, msg)) = bus_rx.recv() => {
                if let gst::MessageView::Error(e) = msg.view() {
                    tracing::warn!("{which} pipeline failed: {}; restarting it in 2 s", e.error());
                    let again = Some(Instant::now() + Duration::from_secs(2));
                    if which == "display" {
                        display = None;
                        retry_display = again;
                        shown.center = "\u{0}".into();
                    } else if which == PATTERN {
                        // Not retried: the doctor's line says what it saw.
                        _pattern = None;
                    } else if which == TONE {
                        tone = None;
                    } else {
                        _speaker = None;
                        retry_speaker = again;
                    }
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if let (Some(d), true) = (&display_desc, retry_display.is_some_and(|t| now >= t)) {
                    retry_display = None;
                    match start(d, "display", bus_tx.clone()) {
                        Ok(r) => display = Some(r),
                        Err(e) => {
                            tracing::warn!("display cannot start: {e}");
                            retry_display = Some(now + Duration::from_secs(5));
                        }
                    }
                }
                if let (Some(d), true) = (&speaker_desc, retry_speaker.is_some_and(|t| now >= t)) {
                    retry_speaker = None;
                    match start(d, "speaker", bus_tx.clone()) {
                        Ok(r) => _speaker = Some(r),
                        Err(e) => {
                            tracing::warn!("speaker cannot start: {e}");
                            retry_speaker = Some(now + Duration::from_secs(5));
                        }
                    }
                }
                let Ok(status) = sup.status().await else { return };
                // Both tests only while idle: a session's start ends them.
                let idle = matches!(status.phase, Phase::Idle | Phase::Fault);
                let toning = on(&tone_until) && idle && speaker_desc.is_some();
                if toning != tone.is_some() {
                    tone = None;
                    if toning {
                        match start(&pipeline::test_tone(), TONE, bus_tx.clone()) {
                            Ok(r) => tone = Some(r),
                            Err(e) => tracing::warn!("test tone cannot start: {e}"),
                        }
                    }
                }
                let Some(d) = &display else { continue };
                let hint = hints.as_ref().and_then(|h| {
                    h.borrow().as_ref().filter(|h| h.until > std::time::Instant::now()).map(|h| h.text.clone())
                });
                let testing = on(&pattern_until) && idle;
                let next = if testing {
                    test_pattern_screen(config.daemon.language)
                } else {
                    screen(
                        config.daemon.language,
                        &status,
                        config.video.bitrate_kbps,
                        hint.as_deref(),
                        notice.as_deref(),
                        // Said only when it is true.
                        if config.recording.enabled {
                            config
                                .display
                                .recording_notice
                                .as_deref()
                                .unwrap_or_else(|| say::recording_notice(config.daemon.language))
                        } else {
                            ""
                        },
                    )
                };
                if next.pattern != shown.pattern {
                    _pattern = None;
                    if next.pattern {
                        match start(&pipeline::test_pattern(&config.display), PATTERN, bus_tx.clone()) {
                            Ok(r) => _pattern = Some(r),
                            Err(e) => tracing::warn!("test pattern cannot start: {e}"),
                        }
                    }
                }
                if next != shown {
                    apply(&d.pipeline, &next, &config);
                    shown = next;
                }
            }
        }
    }
}

fn start(
    desc: &str,
    which: &'static str,
    bus_tx: tokio::sync::mpsc::UnboundedSender<(&'static str, gst::Message)>,
) -> Result<Running, String> {
    let running = Running::new(launch(desc)?, bus_tx, move |m| (which, m));
    running
        .pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("{e}"))?;
    tracing::info!("{which} running");
    Ok(running)
}

fn apply(p: &gst::Pipeline, s: &Screen, config: &Config) {
    if let Some(t) = p.by_name(pipeline::CENTER_TEXT) {
        t.set_property("text", &s.center);
    }
    if let Some(t) = p.by_name(pipeline::NOTICE_TEXT) {
        t.set_property("text", &s.notice);
    }
    if let Some(t) = p.by_name(pipeline::BANNER_TEXT) {
        t.set_property("text", &s.banner);
        // Red while recording, so the room sees it from afar.
        let color: u32 = if s.self_view {
            0xffff_3030
        } else {
            0xffff_ffff
        };
        t.set_property("color", color);
    }
    if let Some(pad) = p
        .by_name(pipeline::COMPOSITOR)
        .and_then(|c| c.static_pad("sink_1"))
    {
        let (w, h) = (config.display.width as i32, config.display.height as i32);
        pad.set_property("xpos", w - 320 - w / 40);
        pad.set_property("ypos", h - 180 - h / 12);
        pad.set_property("alpha", if s.self_view { 1.0f64 } else { 0.0 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::status::MediaStats;

    fn status(phase: Phase) -> Status {
        Status {
            version: "0".into(),
            site_id: "xa".into(),
            site_name: "UBND xã Nghi Lộc".into(),
            phase,
            fault: None,
            session: None,
            degraded: vec![],
            last_session: None,
            uptime_s: 0,
            media: MediaStats::default(),
            upload: Default::default(),
            call: Default::default(),
            schedule: Default::default(),
        }
    }

    /// The province's wording of the recording notice, in the tests.
    const N: &str = "Phiên được ghi âm, ghi hình";

    #[test]
    fn the_room_is_told_it_is_recorded_whenever_a_session_may_run() {
        for phase in [Phase::Idle, Phase::Starting, Phase::Live, Phase::Stopping] {
            let s = screen(Language::Vi, &status(phase), 2500, None, None, N);
            assert_eq!(s.notice, format!("● {N}"), "{phase:?}");
        }
        let fault = screen(Language::Vi, &status(Phase::Fault), 2500, None, None, N);
        assert!(fault.notice.is_empty());
        assert!(test_pattern_screen(Language::Vi).notice.is_empty());
    }

    #[test]
    fn idle_shows_commune_and_instruction_in_vietnamese() {
        let s = screen(Language::Vi, &status(Phase::Idle), 2500, None, None, N);
        assert!(s.center.starts_with("UBND xã Nghi Lộc\n"), "{}", s.center);
        assert!(s.center.contains("nhấn nút để bắt đầu"));
        assert!(!s.self_view);
        let e = screen(Language::En, &status(Phase::Idle), 2500, None, None, N);
        assert!(e.center.contains("press the button"));
    }

    #[test]
    fn live_shows_recording_link_and_feed_loss() {
        let mut st = status(Phase::Live);
        st.media.uplink.configured = true;
        st.media.uplink.connected = true;
        st.media.uplink.bitrate_kbps = 2500;
        st.media.return_feed.configured = true;
        st.media.return_feed.live = true;
        let s = screen(Language::Vi, &st, 2500, None, None, N);
        assert!(s.self_view);
        assert!(
            s.banner.contains("ĐANG GHI HÌNH") && s.banner.contains("tốt"),
            "{}",
            s.banner
        );
        assert_eq!(s.center, "", "the hub's picture is unobstructed");

        st.media.uplink.bitrate_kbps = 1000;
        assert!(screen(Language::Vi, &st, 2500, None, None, N)
            .banner
            .contains("yếu"));

        st.media.return_feed.live = false;
        st.degraded = vec![Degradation::ReturnFeedLost, Degradation::CameraLost];
        let s = screen(Language::Vi, &st, 2500, None, None, N);
        assert!(s.center.starts_with("MẤT KẾT NỐI"), "{}", s.center);
        assert!(s.banner.contains("mất tín hiệu camera"), "{}", s.banner);
    }

    #[test]
    fn uplink_lost_is_marked() {
        let mut st = status(Phase::Live);
        st.media.uplink.configured = true;
        let s = screen(Language::Vi, &st, 2500, None, None, N);
        assert!(s.banner.contains("Tín hiệu: mất"), "{}", s.banner);
    }

    #[test]
    fn the_test_pattern_says_what_it_is() {
        let s = test_pattern_screen(Language::Vi);
        assert!(s.pattern && !s.self_view && s.banner.is_empty());
        assert!(s.center.starts_with("MÀN HÌNH THỬ"), "{}", s.center);
        assert!(test_pattern_screen(Language::En)
            .center
            .contains("Colour bars"));
        // Nothing else ever shows it.
        for phase in [Phase::Idle, Phase::Live, Phase::Fault] {
            assert!(!screen(Language::Vi, &status(phase), 2500, None, None, N).pattern);
        }
    }

    #[test]
    fn hint_overrides_center() {
        let s = screen(
            Language::Vi,
            &status(Phase::Live),
            2500,
            Some("Giữ nút 2 giây để kết thúc"),
            None,
            N,
        );
        assert_eq!(s.center, "Giữ nút 2 giây để kết thúc");
    }

    #[test]
    fn the_standby_screen_shows_the_next_scheduled_session_and_counts_down() {
        use crate::core::status::ScheduledSession;
        let mut st = status(Phase::Idle);
        let next = ScheduledSession {
            occurrence: "site/thu/2026-11-26T08:00".into(),
            title: "Tiếp công dân".into(),
            start: chrono::DateTime::default(),
            local_start: "2026-11-27T08:00".into(),
            weekday: 4,
            starts_in_s: Some(86_400),
            end: None,
            local_end: None,
            session: None,
        };
        st.schedule.next = Some(next.clone());
        let s = screen(Language::Vi, &st, 2500, None, None, N);
        assert_eq!(s.banner, "Phiên tiếp theo: Thứ Năm 27/11, 08:00");
        assert!(s.center.starts_with("UBND xã Nghi Lộc"), "{}", s.center);
        st.schedule.next = Some(ScheduledSession {
            starts_in_s: Some(585),
            ..next
        });
        let s = screen(Language::Vi, &st, 2500, None, None, N);
        assert_eq!(s.banner, "Phiên tiếp theo bắt đầu sau 9:45");
    }

    #[test]
    fn the_planned_end_is_announced_and_a_press_shows_the_new_end() {
        let mut st = status(Phase::Live);
        st.schedule.notice = Some(ScheduleNotice::EndsAt {
            end: "11:00".into(),
        });
        let s = screen(Language::Vi, &st, 2500, None, None, N);
        assert_eq!(
            s.center,
            "Phiên sẽ kết thúc lúc 11:00 — nhấn nút để tiếp tục"
        );
        // The press's own hint gives way to the new end.
        st.schedule.notice = Some(ScheduleNotice::Extended {
            end: "11:15".into(),
        });
        let s = screen(
            Language::Vi,
            &st,
            2500,
            Some("Giữ nút 2 giây để kết thúc"),
            None,
            N,
        );
        assert_eq!(s.center, "Phiên được kéo dài đến 11:15");
    }

    #[test]
    fn fault_asks_for_a_technician() {
        let mut st = status(Phase::Fault);
        st.fault = Some("no encoder".into());
        let s = screen(Language::Vi, &st, 2500, None, None, N);
        assert!(s.center.contains("gọi kỹ thuật viên") && s.center.contains("no encoder"));
    }

    #[test]
    fn a_refused_site_file_is_shown_while_idle() {
        let n = "site.toml, dòng 7 (video.sourse): …";
        let s = screen(Language::Vi, &status(Phase::Idle), 2500, None, Some(n), N);
        assert!(
            s.center.contains("Sẵn sàng") && s.center.ends_with(n),
            "{}",
            s.center
        );
        let live = screen(Language::Vi, &status(Phase::Live), 2500, None, Some(n), N);
        assert!(!live.center.contains(n), "the hub's picture stays clear");
    }

    #[test]
    fn the_conference_call_on_screen() {
        use crate::core::status::CallState;
        let mut s = status(Phase::Idle);
        s.call.configured = true;
        s.call.state = CallState::Ringing;
        let ring = screen(Language::Vi, &s, 2500, None, None, N);
        assert!(ring.center.contains("Nhấn nút để nhận"), "{}", ring.center);
        // Live in the call: the MCU's picture, nothing over it.
        s.phase = Phase::Live;
        s.call.state = CallState::Connected;
        assert_eq!(screen(Language::Vi, &s, 2500, None, None, N).center, "");
        // Live, the call lost: the room is told, the session goes on.
        s.call.state = CallState::Redialing;
        let lost = screen(Language::Vi, &s, 2500, None, None, N);
        assert!(lost.center.starts_with("MẤT KẾT NỐI"), "{}", lost.center);
    }
}
