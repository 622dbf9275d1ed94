//! The button actor against a fake line source (behind the same trait as
//! the evdev and GPIO buttons) and a fake supervisor: presses reach the
//! session, every press is an event, a lost button is found again.

use std::sync::{Arc, Mutex};

use super::*;
use crate::core::events::Event;

/// A line source driven by the test: each item is what the device would do.
pub enum Step {
    Level(bool),
    /// The device disappears (USB unplugged).
    Unplug,
}

struct FakeLine {
    rx: mpsc::UnboundedReceiver<Step>,
    /// The level reported at open.
    level: Arc<Mutex<bool>>,
    opens: Arc<Mutex<u32>>,
    /// While false, open fails (the device is absent).
    present: Arc<Mutex<bool>>,
    lost: bool,
}

impl LineSource for FakeLine {
    fn describe(&self) -> String {
        "fake line".into()
    }

    fn open(&mut self) -> BoxFuture<'_, Result<bool, ButtonError>> {
        Box::pin(async move {
            if !*self.present.lock().unwrap() {
                return Err(ButtonError::Closed);
            }
            *self.opens.lock().unwrap() += 1;
            self.lost = false;
            Ok(*self.level.lock().unwrap())
        })
    }

    fn next_edge(&mut self) -> BoxFuture<'_, Result<Edge, ButtonError>> {
        Box::pin(async move {
            if self.lost {
                return Err(ButtonError::Closed);
            }
            match self.rx.recv().await {
                Some(Step::Level(pressed)) => {
                    *self.level.lock().unwrap() = pressed;
                    Ok(Edge {
                        pressed,
                        at: Instant::now(),
                    })
                }
                Some(Step::Unplug) | None => {
                    // Plugged back later, nobody is pressing it.
                    *self.level.lock().unwrap() = false;
                    self.lost = true;
                    *self.present.lock().unwrap() = false;
                    Err(ButtonError::Closed)
                }
            }
        })
    }
}

/// A supervisor stand-in: start goes Starting → Live, stop Stopping → Idle.
#[derive(Clone)]
struct FakeSessions {
    phase: Arc<watch::Sender<Phase>>,
    calls: Arc<Mutex<Vec<&'static str>>>,
}

impl Sessions for FakeSessions {
    fn start(&self) -> BoxFuture<'static, Result<(), String>> {
        let s = self.clone();
        Box::pin(async move {
            s.calls.lock().unwrap().push("start");
            if *s.phase.borrow() != Phase::Idle && *s.phase.borrow() != Phase::Fault {
                return Err("rejected".into());
            }
            s.phase.send_replace(Phase::Starting);
            tokio::time::sleep(Duration::from_millis(50)).await;
            s.phase.send_replace(Phase::Live);
            Ok(())
        })
    }

    fn stop(&self) -> BoxFuture<'static, Result<(), String>> {
        let s = self.clone();
        Box::pin(async move {
            s.calls.lock().unwrap().push("stop");
            if *s.phase.borrow() != Phase::Live {
                return Err("rejected".into());
            }
            s.phase.send_replace(Phase::Stopping);
            tokio::time::sleep(Duration::from_millis(50)).await;
            s.phase.send_replace(Phase::Idle);
            Ok(())
        })
    }
}

struct Rig {
    steps: mpsc::UnboundedSender<Step>,
    present: Arc<Mutex<bool>>,
    opens: Arc<Mutex<u32>>,
    sessions: FakeSessions,
    phase: watch::Receiver<Phase>,
    outbox: Outbox,
    spawned: Spawned,
    _dir: tempfile::TempDir,
}

const TIMING: Timing = Timing {
    debounce: Duration::from_millis(5),
    long_press: Duration::from_millis(400),
    repeat_guard: Duration::from_millis(200),
};

fn rig(initial_level: bool) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let outbox = Outbox::open(&db, "xa").unwrap();
    let (steps, rx) = mpsc::unbounded_channel();
    let present = Arc::new(Mutex::new(true));
    let opens = Arc::new(Mutex::new(0));
    let line = FakeLine {
        rx,
        level: Arc::new(Mutex::new(initial_level)),
        opens: opens.clone(),
        present: present.clone(),
        lost: false,
    };
    let (phase_tx, phase) = watch::channel(Phase::Idle);
    let sessions = FakeSessions {
        phase: Arc::new(phase_tx),
        calls: Arc::default(),
    };
    let spawned = spawn_with(
        line,
        TIMING,
        sessions.clone(),
        phase.clone(),
        outbox.clone(),
    );
    Rig {
        steps,
        present,
        opens,
        sessions,
        phase,
        outbox,
        spawned,
        _dir: dir,
    }
}

impl Rig {
    async fn press(&self, hold_ms: u64) {
        self.steps.send(Step::Level(true)).unwrap();
        tokio::time::sleep(Duration::from_millis(hold_ms)).await;
        self.steps.send(Step::Level(false)).unwrap();
        // Let the release settle and the actor act.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }

    async fn wait_phase(&self, want: Phase) {
        let t0 = Instant::now();
        while *self.phase.borrow() != want {
            assert!(
                t0.elapsed() < Duration::from_secs(3),
                "phase stayed {:?}, want {want:?}",
                *self.phase.borrow()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn events(&self) -> Vec<(String, String)> {
        self.outbox
            .pending(100)
            .unwrap()
            .into_iter()
            .filter_map(|e: Event| match e.kind {
                EventKind::ButtonPressed { press, effect } => Some((press, effect)),
                _ => None,
            })
            .collect()
    }

    fn calls(&self) -> Vec<&'static str> {
        self.sessions.calls.lock().unwrap().clone()
    }
}

fn ev(press: &str, effect: &str) -> (String, String) {
    (press.into(), effect.into())
}

#[tokio::test]
async fn press_starts_hint_then_long_press_stops() {
    let r = rig(false);
    let mut hint = r.spawned.hint.clone();
    r.press(50).await;
    r.wait_phase(Phase::Live).await;
    assert_eq!(r.calls(), vec!["start"]);
    // After the repeat guard, a short press only hints.
    tokio::time::sleep(TIMING.repeat_guard).await;
    r.press(50).await;
    assert!(hint.has_changed().unwrap(), "the hint was published");
    let h = (*hint.borrow_and_update()).expect("a hint");
    assert_eq!(h.seq, 1);
    assert_eq!(h.text(Language::Vi), "Giữ nút 0,4 giây để kết thúc");
    assert_eq!(*r.phase.borrow(), Phase::Live, "a short press never stops");
    // A long press stops, while still held.
    r.steps.send(Step::Level(true)).unwrap();
    r.wait_phase(Phase::Idle).await;
    r.steps.send(Step::Level(false)).unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(r.calls(), vec!["start", "stop"]);
    assert_eq!(
        r.events(),
        vec![
            ev("short", "start"),
            ev("short", "hint"),
            ev("long", "stop")
        ]
    );
}

#[tokio::test]
async fn a_test_press_is_reported_and_starts_nothing() {
    let r = rig(false);
    let test = r.spawned.test.clone();
    let waiting = tokio::spawn(async move { test.wait_press(Duration::from_secs(2)).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    r.press(50).await;
    assert!(waiting.await.unwrap(), "the test press was not reported");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(r.calls().is_empty(), "a test press started a session");
    assert_eq!(*r.phase.borrow(), Phase::Idle);
    // No press: the test says so when its time is up.
    assert!(!r.spawned.test.wait_press(Duration::from_millis(100)).await);
    // After the test, the button works as before.
    tokio::time::sleep(TIMING.repeat_guard).await;
    r.press(50).await;
    r.wait_phase(Phase::Live).await;
    assert_eq!(r.calls(), vec!["start"]);
}

#[tokio::test]
async fn presses_while_starting_are_ignored_events() {
    let r = rig(false);
    // Make the start slow: the fake stays Starting for 50 ms; press twice
    // inside it (the second inside the repeat guard as well).
    r.steps.send(Step::Level(true)).unwrap();
    tokio::time::sleep(Duration::from_millis(15)).await;
    r.steps.send(Step::Level(false)).unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    r.press(10).await;
    r.wait_phase(Phase::Live).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(r.calls(), vec!["start"], "one session, not two");
    assert_eq!(
        r.events(),
        vec![ev("short", "start"), ev("short", "ignored")]
    );
}

#[tokio::test]
async fn an_unplugged_button_is_found_again() {
    let r = rig(false);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(*r.opens.lock().unwrap(), 1);
    // Unplugged in the middle of a press: the press is forgotten.
    r.steps.send(Step::Level(true)).unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(r.calls(), vec!["start"]);
    r.wait_phase(Phase::Live).await;
    r.steps.send(Step::Unplug).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        *r.phase.borrow(),
        Phase::Live,
        "unplugging mid-hold must not stop"
    );
    // Plugged back: opened again within the reopen interval, and works.
    *r.present.lock().unwrap() = true;
    let t0 = Instant::now();
    while *r.opens.lock().unwrap() < 2 {
        assert!(t0.elapsed() < REOPEN_INTERVAL * 3, "not reopened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r.steps.send(Step::Level(true)).unwrap();
    r.wait_phase(Phase::Idle).await;
    assert_eq!(r.calls(), vec!["start", "stop"]);
}

#[tokio::test]
async fn a_button_held_at_start_up_does_nothing_until_released() {
    let r = rig(true);
    tokio::time::sleep(Duration::from_millis(600)).await;
    r.steps.send(Step::Level(false)).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(r.calls().is_empty(), "{:?}", r.calls());
    assert!(r.events().is_empty());
    r.press(20).await;
    r.wait_phase(Phase::Live).await;
}

#[tokio::test]
async fn no_button_configured_still_gives_a_hint_channel() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    let outbox = Outbox::open(&db, "xa").unwrap();
    let (phase_tx, phase) = watch::channel(Phase::Idle);
    let sessions = FakeSessions {
        phase: Arc::new(phase_tx),
        calls: Arc::default(),
    };
    let cfg = Button {
        input: ButtonInput::None,
        debounce: TIMING.debounce,
        long_press: TIMING.long_press,
        repeat_guard: TIMING.repeat_guard,
    };
    let s = spawn(&cfg, sessions, phase, outbox);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(s.hint.borrow().is_none());
    assert!(!s.task.is_finished());
}

#[test]
fn hint_text_in_both_languages() {
    let h = Hint {
        at: Instant::now(),
        seq: 1,
        hold: Duration::from_secs(2),
    };
    assert_eq!(h.text(Language::Vi), "Giữ nút 2 giây để kết thúc");
    assert_eq!(h.text(Language::En), "Hold the button 2 s to end");
}
