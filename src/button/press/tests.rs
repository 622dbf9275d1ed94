//! The press rules under a simulated clock: every rule, every session phase,
//! and properties over random button noise.

use super::*;
use proptest::prelude::*;

const T: Timing = Timing {
    debounce: Duration::from_millis(30),
    long_press: Duration::from_millis(2000),
    repeat_guard: Duration::from_millis(1000),
};

use Effect as E;
use Output::*;
use PressKind::*;

/// Drives a machine the way the actor does: levels at given milliseconds,
/// `poll` at every deadline in between. Records outputs with their time.
struct Sim {
    m: Presses,
    t0: Instant,
    log: Vec<(u64, Output)>,
}

impl Sim {
    fn new(phase: Phase) -> Self {
        Self::with(T, phase)
    }

    fn with(timing: Timing, phase: Phase) -> Self {
        let t0 = Instant::now();
        Self {
            m: Presses::new(timing, phase, t0),
            t0,
            log: Vec::new(),
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn ms(&self, i: Instant) -> u64 {
        (i - self.t0).as_millis() as u64
    }

    fn record(&mut self, at: Instant, outs: Vec<Output>) {
        let ms = self.ms(at);
        self.log.extend(outs.into_iter().map(|o| (ms, o)));
    }

    /// Let time pass to `ms`, polling at each deadline like the actor.
    fn advance(&mut self, ms: u64) {
        let to = self.at(ms);
        for _ in 0..1000 {
            match self.m.deadline() {
                Some(d) if d <= to => {
                    let outs = self.m.poll(d);
                    self.record(d, outs);
                }
                _ => return,
            }
        }
        panic!("deadline never moves on");
    }

    fn set(&mut self, ms: u64, pressed: bool) {
        self.advance(ms);
        let at = self.at(ms);
        let outs = self.m.level(pressed, at);
        self.record(at, outs);
    }

    fn press(&mut self, at: u64, len: u64) {
        self.set(at, true);
        self.set(at + len, false);
    }

    fn take(&mut self) -> Vec<(u64, Output)> {
        std::mem::take(&mut self.log)
    }

    fn outputs(&mut self) -> Vec<Output> {
        self.take().into_iter().map(|(_, o)| o).collect()
    }
}

#[test]
fn short_press_when_idle_starts_at_once() {
    let mut s = Sim::new(Phase::Idle);
    s.press(100, 150);
    s.advance(5000);
    assert_eq!(
        s.take(),
        vec![
            // Recognised after the debounce, not at release.
            (130, Start),
            (
                280,
                Pressed {
                    press: Short,
                    effect: E::Start
                }
            )
        ]
    );
    assert_eq!(
        s.m.phase(),
        Phase::Starting,
        "assumed until the supervisor says"
    );
}

#[test]
fn long_press_when_idle_starts_too() {
    let mut s = Sim::new(Phase::Idle);
    s.press(0, 3000);
    s.advance(6000);
    assert_eq!(
        s.take(),
        vec![
            (30, Start),
            (
                2000,
                Pressed {
                    press: Long,
                    effect: E::Start
                }
            )
        ]
    );
}

#[test]
fn long_press_when_live_stops_at_the_threshold_not_at_release() {
    let mut s = Sim::new(Phase::Live);
    s.press(1000, 5000);
    s.advance(9000);
    assert_eq!(
        s.take(),
        vec![
            (3000, Stop),
            (
                3000,
                Pressed {
                    press: Long,
                    effect: E::Stop
                }
            )
        ]
    );
    assert_eq!(s.m.phase(), Phase::Stopping);
}

#[test]
fn short_press_when_live_only_hints() {
    let mut s = Sim::new(Phase::Live);
    s.press(0, 400);
    s.advance(5000);
    assert_eq!(
        s.take(),
        vec![
            (430, Hint),
            (
                430,
                Pressed {
                    press: Short,
                    effect: E::Hint
                }
            )
        ]
    );
    assert_eq!(s.m.phase(), Phase::Live);
}

#[test]
fn the_long_threshold_is_exact() {
    // Down settles at 30 (raw 0), so the press began at 0.
    let mut s = Sim::new(Phase::Live);
    s.press(0, 1999);
    s.advance(5000);
    assert_eq!(
        s.outputs(),
        vec![
            Hint,
            Pressed {
                press: Short,
                effect: E::Hint
            }
        ]
    );

    let mut s = Sim::new(Phase::Live);
    s.press(0, 2000);
    s.advance(5000);
    assert_eq!(
        s.outputs(),
        vec![
            Stop,
            Pressed {
                press: Long,
                effect: E::Stop
            }
        ]
    );
}

#[test]
fn a_late_poll_still_sees_a_release_before_the_threshold_as_short() {
    // The actor may poll late (a busy runtime): the release at 1990 must win.
    let mut m = Presses::new(T, Phase::Live, Instant::now());
    let t0 = Instant::now();
    let ms = |x| t0 + Duration::from_millis(x);
    m.sync(false, ms(0));
    assert!(m.level(true, ms(0)).is_empty());
    assert!(m.poll(ms(30)).is_empty());
    assert!(m.level(false, ms(1990)).is_empty());
    assert_eq!(
        m.poll(ms(2500)),
        vec![
            Hint,
            Pressed {
                press: Short,
                effect: E::Hint
            }
        ]
    );
}

/// Every phase × short/long: what the press does. Exhaustive over `Phase`.
#[test]
fn presses_in_every_session_state() {
    let all = [
        Phase::Idle,
        Phase::Starting,
        Phase::Live,
        Phase::Stopping,
        Phase::Fault,
    ];
    for phase in all {
        // A compile error here when a phase is added: decide its row.
        let (short, long): (Vec<Output>, Vec<Output>) = match phase {
            Phase::Idle | Phase::Fault => (
                vec![
                    Start,
                    Pressed {
                        press: Short,
                        effect: E::Start,
                    },
                ],
                vec![
                    Start,
                    Pressed {
                        press: Long,
                        effect: E::Start,
                    },
                ],
            ),
            Phase::Live => (
                vec![
                    Hint,
                    Pressed {
                        press: Short,
                        effect: E::Hint,
                    },
                ],
                vec![
                    Stop,
                    Pressed {
                        press: Long,
                        effect: E::Stop,
                    },
                ],
            ),
            Phase::Starting | Phase::Stopping => (
                vec![Pressed {
                    press: Short,
                    effect: E::Ignored,
                }],
                vec![Pressed {
                    press: Long,
                    effect: E::Ignored,
                }],
            ),
        };
        let mut s = Sim::new(phase);
        s.press(0, 200);
        s.advance(10_000);
        assert_eq!(s.outputs(), short, "short press while {phase:?}");
        let mut s = Sim::new(phase);
        s.press(0, 2500);
        s.advance(10_000);
        assert_eq!(s.outputs(), long, "long press while {phase:?}");
    }
}

#[test]
fn bounce_makes_one_press() {
    let mut s = Sim::new(Phase::Idle);
    // Contact bounce on the way down and on the way up.
    for (ms, level) in [
        (100, true),
        (102, false),
        (105, true),
        (109, false),
        (111, true),
        (400, false),
        (403, true),
        (404, false),
        (410, true),
        (412, false),
    ] {
        s.set(ms, level);
    }
    s.advance(5000);
    assert_eq!(
        s.take(),
        vec![
            (141, Start),
            (
                442,
                Pressed {
                    press: Short,
                    effect: E::Start
                }
            )
        ]
    );
}

#[test]
fn a_glitch_shorter_than_the_debounce_is_nothing() {
    for phase in [Phase::Idle, Phase::Live] {
        let mut s = Sim::new(phase);
        s.press(100, 29);
        s.press(500, 5);
        s.advance(5000);
        assert_eq!(s.outputs(), vec![], "{phase:?}");
    }
}

#[test]
fn a_bounce_during_a_long_hold_does_not_restart_it() {
    let mut s = Sim::new(Phase::Live);
    s.set(0, true);
    // A 10 ms drop (worn contact) in the middle of the hold.
    s.set(1000, false);
    s.set(1010, true);
    s.set(3000, false);
    s.advance(5000);
    assert_eq!(
        s.take(),
        vec![
            (2000, Stop),
            (
                2000,
                Pressed {
                    press: Long,
                    effect: E::Stop
                }
            )
        ]
    );
}

#[test]
fn key_repeat_does_not_restart_the_hold_or_add_presses() {
    let mut s = Sim::new(Phase::Live);
    s.set(0, true);
    // A keyboard-like button repeating "pressed" every 33 ms.
    for ms in (250..2500).step_by(33) {
        s.set(ms, true);
    }
    s.set(2500, false);
    s.advance(6000);
    assert_eq!(
        s.take(),
        vec![
            (2000, Stop),
            (
                2000,
                Pressed {
                    press: Long,
                    effect: E::Stop
                }
            )
        ]
    );
}

#[test]
fn a_double_press_does_not_stop_or_hint_what_it_started() {
    let mut s = Sim::new(Phase::Idle);
    s.press(0, 100);
    // The supervisor reports the session live quickly (synthetic media).
    s.advance(300);
    s.m.set_phase(Phase::Live);
    s.press(400, 100);
    // A long hold that begins inside the guard stays ignored even when it
    // reaches the threshold: it is the same nervous gesture.
    s.press(800, 2500);
    s.advance(4000);
    assert_eq!(
        s.outputs(),
        vec![
            Start,
            Pressed {
                press: Short,
                effect: E::Start
            },
            Pressed {
                press: Short,
                effect: E::Ignored
            },
            Pressed {
                press: Long,
                effect: E::Ignored
            },
        ]
    );
    // After the guard, presses count again.
    s.press(5000, 100);
    s.advance(6000);
    assert_eq!(
        s.outputs(),
        vec![
            Hint,
            Pressed {
                press: Short,
                effect: E::Hint
            }
        ]
    );
}

#[test]
fn holding_on_after_a_stop_never_starts_a_new_session() {
    let mut s = Sim::new(Phase::Live);
    s.set(0, true);
    s.advance(2300);
    s.m.set_phase(Phase::Idle); // the session closed at 2.3 s
    s.set(6000, false);
    s.advance(8000);
    assert_eq!(
        s.outputs(),
        vec![
            Stop,
            Pressed {
                press: Long,
                effect: E::Stop
            }
        ]
    );
    // A fresh press after the guard starts the next session.
    s.press(8000, 100);
    s.advance(9000);
    assert_eq!(
        s.outputs(),
        vec![
            Start,
            Pressed {
                press: Short,
                effect: E::Start
            }
        ]
    );
}

#[test]
fn a_stop_from_elsewhere_during_a_hold_makes_the_hold_meaningless() {
    let mut s = Sim::new(Phase::Live);
    s.set(0, true);
    s.advance(1000);
    s.m.set_phase(Phase::Stopping); // the NOC stopped the session
    s.advance(1500);
    s.m.set_phase(Phase::Idle);
    s.set(2500, false);
    s.advance(5000);
    assert_eq!(
        s.outputs(),
        vec![Pressed {
            press: Long,
            effect: E::Ignored
        }]
    );
}

#[test]
fn a_button_held_at_start_up_is_not_a_press() {
    let mut s = Sim::new(Phase::Idle);
    s.m.sync(true, s.at(0));
    s.advance(5000);
    s.set(6000, false);
    s.advance(7000);
    assert_eq!(s.outputs(), vec![], "stuck button must not start a session");
    s.press(8000, 100);
    s.advance(9000);
    assert_eq!(
        s.outputs(),
        vec![
            Start,
            Pressed {
                press: Short,
                effect: E::Start
            }
        ]
    );
}

#[test]
fn a_lost_button_forgets_its_press() {
    let mut s = Sim::new(Phase::Live);
    s.set(0, true);
    s.advance(1000);
    s.m.lost(s.at(1000));
    s.advance(5000);
    assert_eq!(s.outputs(), vec![], "unplugging mid-hold must not stop");
    assert!(!s.m.is_down());
}

#[test]
fn zero_debounce_acts_on_the_edge() {
    let timing = Timing {
        debounce: Duration::ZERO,
        ..T
    };
    let mut s = Sim::with(timing, Phase::Idle);
    s.press(10, 50);
    assert_eq!(
        s.take(),
        vec![
            (10, Start),
            (
                60,
                Pressed {
                    press: Short,
                    effect: E::Start
                }
            )
        ]
    );
}

#[test]
fn deadline_is_quiet_when_nothing_is_pending() {
    let mut s = Sim::new(Phase::Idle);
    assert_eq!(s.m.deadline(), None);
    s.set(0, true);
    assert_eq!(s.m.deadline(), Some(s.at(30)));
    s.advance(30);
    assert_eq!(s.m.deadline(), Some(s.at(2000)));
    s.advance(2000);
    assert_eq!(
        s.m.deadline(),
        None,
        "a reported press waits only for release"
    );
}

proptest! {
    /// Random button noise in a random phase: whatever happens, every
    /// Start/Stop/Hint belongs to exactly one Pressed with that effect, at
    /// most one session action happens per repeat guard, and a Stop only
    /// comes from a phase that was live, after a hold of the full length.
    #[test]
    fn noise_never_breaks_the_rules(
        phase in prop::sample::select(vec![Phase::Idle, Phase::Starting, Phase::Live, Phase::Stopping, Phase::Fault]),
        gaps in prop::collection::vec(1u64..3000, 0..40),
    ) {
        let mut s = Sim::new(phase);
        let mut t = 0;
        let mut level = false;
        let mut edges = vec![];
        for g in gaps {
            t += g;
            level = !level;
            s.set(t, level);
            edges.push((t, level));
        }
        s.set(t + 1, false);
        edges.push((t + 1, false));
        s.advance(t + 10_000);
        let log = s.take();
        let mut acts = vec![];
        for (i, (at, o)) in log.iter().enumerate() {
            let want = match o {
                Start => Some(Effect::Start),
                Stop => Some(Effect::Stop),
                Hint => Some(Effect::Hint),
                Pressed { .. } => None,
            };
            if let Some(e) = want {
                let has = log[i + 1..].iter().any(|(_, p)| matches!(p, Pressed { effect, .. } if *effect == e));
                prop_assert!(has, "{o:?} at {at} without its press: {log:?}");
                if e != Effect::Hint {
                    acts.push(*at);
                }
            }
            if *o == Stop {
                prop_assert_eq!(phase, Phase::Live);
                // The press began exactly long_press before the stop, and no
                // release in between lasted the debounce time.
                let down = at - 2000;
                prop_assert!(edges.contains(&(down, true)), "stop at {at}: {edges:?}");
                for (i, &(et, el)) in edges.iter().enumerate() {
                    let next = edges.get(i + 1).map_or(u64::MAX, |e| e.0);
                    if !el && et > down && et < *at {
                        prop_assert!(next - et < 30, "stop at {at} after a release at {et}: {edges:?}");
                    }
                }
            }
        }
        // Phase is never re-synchronised here, so only the first press acts.
        prop_assert!(acts.len() <= 1, "{acts:?} {log:?}");
        let presses = log.iter().filter(|(_, o)| matches!(o, Pressed { .. })).count();
        let starts = log.iter().filter(|(_, o)| *o == Start).count();
        prop_assert!(starts <= presses);
    }
}
