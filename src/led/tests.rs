//! The light's patterns, the sysfs writes against a fake LED class
//! directory, and the actor following a session.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::*;

const ALL: [Phase; 5] = [
    Phase::Idle,
    Phase::Starting,
    Phase::Live,
    Phase::Stopping,
    Phase::Fault,
];

#[test]
fn pattern_for_every_phase() {
    for phase in ALL {
        let want = match phase {
            Phase::Idle => Pattern::Off,
            Phase::Starting | Phase::Stopping => Pattern::SlowBlink,
            Phase::Live => Pattern::Steady,
            Phase::Fault => Pattern::FastBlink,
        };
        assert_eq!(pattern(phase, &[], false), want, "{phase:?}");
    }
}

#[test]
fn a_broken_record_calls_for_a_technician_a_down_link_does_not() {
    use Degradation::*;
    for d in [CameraLost, MicrophoneLost, RecordingHalted] {
        assert_eq!(
            pattern(Phase::Live, &[d], false),
            Pattern::FastBlink,
            "{d:?}"
        );
        // ... and beats the hint flicker.
        assert_eq!(
            pattern(Phase::Live, &[UplinkDown, d], true),
            Pattern::FastBlink
        );
    }
    for d in [UplinkDown, ReturnFeedLost] {
        assert_eq!(pattern(Phase::Live, &[d], false), Pattern::Steady, "{d:?}");
    }
}

#[test]
fn the_hint_flickers_only_while_live() {
    assert_eq!(pattern(Phase::Live, &[], true), Pattern::Flash);
    for phase in [Phase::Idle, Phase::Starting, Phase::Stopping, Phase::Fault] {
        assert_eq!(pattern(phase, &[], true), pattern(phase, &[], false));
    }
}

/// A directory shaped like `/sys/class/leds/NAME`.
fn fake_led(max: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("brightness"), "0\n").unwrap();
    std::fs::write(d.path().join("max_brightness"), format!("{max}\n")).unwrap();
    std::fs::write(d.path().join("trigger"), "[none] timer heartbeat\n").unwrap();
    d
}

fn read(d: &Path, f: &str) -> String {
    std::fs::read_to_string(d.join(f))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// (trigger, brightness, delay_on, delay_off) as the kernel would see them.
fn state(d: &Path) -> (String, String, String, String) {
    (
        read(d, "trigger"),
        read(d, "brightness"),
        read(d, "delay_on"),
        read(d, "delay_off"),
    )
}

fn s(t: &str, b: &str, on: &str, off: &str) -> (String, String, String, String) {
    (t.into(), b.into(), on.into(), off.into())
}

#[test]
fn sysfs_writes_for_each_pattern() {
    let dir = fake_led("255");
    let p = dir.path();
    let mut led = SysfsLed::new(p);
    assert!(show(&mut led, Pattern::Steady).unwrap());
    assert_eq!(state(p), s("none", "255", "", ""));
    assert!(show(&mut led, Pattern::SlowBlink).unwrap());
    assert_eq!(state(p), s("timer", "255", "500", "500"));
    assert!(show(&mut led, Pattern::FastBlink).unwrap());
    assert_eq!(state(p), s("timer", "255", "100", "100"));
    assert!(show(&mut led, Pattern::Flash).unwrap());
    assert_eq!(state(p), s("timer", "255", "60", "60"));
    assert!(show(&mut led, Pattern::Off).unwrap());
    assert_eq!(read(p, "trigger"), "none", "the timer must not relight it");
    assert_eq!(read(p, "brightness"), "0");
}

#[test]
fn sysfs_on_is_one_when_max_brightness_is_unreadable() {
    let dir = fake_led("255");
    std::fs::remove_file(dir.path().join("max_brightness")).unwrap();
    let mut led = SysfsLed::new(dir.path());
    led.set(true).unwrap();
    assert_eq!(read(dir.path(), "brightness"), "1");
}

#[test]
fn a_missing_led_is_an_error_naming_it() {
    let mut led = SysfsLed::new("/nonexistent/leds/tally");
    let e = led.set(true).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/leds/tally"), "{e}");
    assert!(e.contains("trigger"), "{e}");
}

#[derive(Clone, Default)]
struct FakeStatus(Arc<Mutex<Vec<Degradation>>>);

impl StatusSource for FakeStatus {
    fn degraded(&self) -> futures::future::BoxFuture<'static, Vec<Degradation>> {
        let v = self.0.lock().unwrap().clone();
        Box::pin(async move { v })
    }
}

async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !ok() {
        assert!(t0.elapsed() < Duration::from_secs(5), "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_actor_follows_the_session_not_the_button() {
    let dir = fake_led("1");
    let p = dir.path().to_owned();
    let (phase_tx, phase) = watch::channel(Phase::Idle);
    let (hint_tx, hint) = watch::channel(None);
    let status = FakeStatus::default();
    let led = spawn_with(SysfsLed::new(&p), status.clone(), phase, hint);

    let expect = |t: &'static str, b: &'static str, on: &'static str| {
        let p = p.clone();
        move || {
            let (tt, bb, oo, _) = state(&p);
            tt == t && bb == b && (on.is_empty() || oo == on)
        }
    };
    wait_for("idle: off", expect("none", "0", "")).await;
    phase_tx.send_replace(Phase::Starting);
    wait_for("starting: slow blink", expect("timer", "1", "500")).await;
    phase_tx.send_replace(Phase::Live);
    wait_for("live: steady", expect("none", "1", "")).await;

    // A short press while live: a flicker, then steady again.
    hint_tx.send_replace(Some(Hint {
        at: Instant::now(),
        seq: 1,
        hold: Duration::from_secs(2),
    }));
    wait_for("hint: flicker", expect("timer", "1", "60")).await;
    wait_for("after the hint: steady", expect("none", "1", "")).await;

    // The camera is lost while live: call a technician.
    status.0.lock().unwrap().push(Degradation::CameraLost);
    wait_for("camera lost: fast blink", expect("timer", "1", "100")).await;
    status.0.lock().unwrap().clear();
    wait_for("camera back: steady", expect("none", "1", "")).await;

    phase_tx.send_replace(Phase::Stopping);
    wait_for("stopping: slow blink", expect("timer", "1", "500")).await;
    phase_tx.send_replace(Phase::Fault);
    wait_for("fault: fast blink", expect("timer", "1", "100")).await;
    phase_tx.send_replace(Phase::Live);
    wait_for("live again", expect("none", "1", "")).await;

    led.shutdown().await;
    assert_eq!(state(&p).0, "none");
    assert_eq!(state(&p).1, "0", "the light goes out with the daemon");
}

/// A driver that cannot blink by itself (like a GPIO line): records levels.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(Instant, bool)>>>);

impl LedDriver for Recorder {
    fn set(&mut self, on: bool) -> Result<(), LedError> {
        self.0.lock().unwrap().push((Instant::now(), on));
        Ok(())
    }
    fn blink(&mut self, _: Duration, _: Duration) -> Result<bool, LedError> {
        Ok(false)
    }
}

#[tokio::test]
async fn software_blinking_for_lines_that_cannot_blink() {
    let rec = Recorder::default();
    let (phase_tx, phase) = watch::channel(Phase::Live);
    let (_hint_tx, hint) = watch::channel(None);
    let led = spawn_with(rec.clone(), FakeStatus::default(), phase, hint);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rec.0
            .lock()
            .unwrap()
            .iter()
            .map(|x| x.1)
            .collect::<Vec<_>>(),
        vec![true],
        "steady: one write, no toggling"
    );
    rec.0.lock().unwrap().clear();
    phase_tx.send_replace(Phase::Fault);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let levels: Vec<bool> = rec.0.lock().unwrap().iter().map(|x| x.1).collect();
    // 100 ms on / 100 ms off for about a second: about ten writes, alternating.
    assert!((7..=12).contains(&levels.len()), "{levels:?}");
    assert!(levels.windows(2).all(|w| w[0] != w[1]), "{levels:?}");
    phase_tx.send_replace(Phase::Idle);
    tokio::time::sleep(Duration::from_millis(100)).await;
    rec.0.lock().unwrap().clear();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(rec.0.lock().unwrap().is_empty(), "idle: no more toggling");
    led.shutdown().await;
}
