use super::*;
use chrono::TimeZone;
use proptest::prelude::*;

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
}

fn machine() -> Machine {
    Machine::new(
        "xa-01",
        Timeouts {
            start: chrono::Duration::seconds(10),
            stop: chrono::Duration::seconds(5),
        },
    )
}

fn start(id: &str) -> Input {
    Input::Start {
        id: id.into(),
        by: Origin::Cli,
        metadata: BTreeMap::new(),
    }
}

fn stop() -> Input {
    Input::Stop { by: Origin::Cli }
}

/// Drive a machine to the given phase.
fn at(phase: Phase) -> Machine {
    let mut m = machine();
    match phase {
        Phase::Idle => {}
        Phase::Starting => {
            m.handle(start("s1"), t(0)).unwrap();
        }
        Phase::Live => {
            m.handle(start("s1"), t(0)).unwrap();
            m.handle(Input::MediaStarted, t(1)).unwrap();
        }
        Phase::Stopping => {
            m.handle(start("s1"), t(0)).unwrap();
            m.handle(Input::MediaStarted, t(1)).unwrap();
            m.handle(stop(), t(2)).unwrap();
        }
        Phase::Fault => {
            m.handle(start("s1"), t(0)).unwrap();
            m.handle(Input::MediaFailed("no encoder".into()), t(1))
                .unwrap();
        }
    }
    assert_eq!(m.phase(), phase);
    m
}

#[test]
fn happy_path() {
    let mut m = machine();
    let a = m.handle(start("s1"), t(0)).unwrap();
    assert!(
        matches!(a[0], Action::PersistCurrent(_)),
        "persist before media: {a:?}"
    );
    assert_eq!(
        a[1],
        Action::StartMedia {
            session_id: "s1".into()
        }
    );
    m.handle(Input::MediaStarted, t(1)).unwrap();
    assert_eq!(m.phase(), Phase::Live);
    assert_eq!(m.session().unwrap().live_at, Some(t(1)));
    let a = m.handle(stop(), t(5)).unwrap();
    assert!(a.contains(&Action::StopMedia));
    let a = m.handle(Input::MediaStopped, t(6)).unwrap();
    assert_eq!(m.phase(), Phase::Idle);
    let Action::PersistFinished(rec) = &a[0] else {
        panic!("{a:?}")
    };
    assert_eq!(rec.outcome, Some(Outcome::Ended));
    assert_eq!(rec.ended_at, Some(t(6)));
    assert_eq!(rec.stopped_by, Some(Origin::Cli));
}

/// Every (phase, input) pair: the expected next phase or rejection.
#[test]
fn exhaustive_transition_table() {
    use Phase::*;
    let inputs: Vec<(&str, Input)> = vec![
        ("start", start("s2")),
        ("stop", stop()),
        ("started", Input::MediaStarted),
        ("failed", Input::MediaFailed("x".into())),
        ("stopped", Input::MediaStopped),
        ("degraded", Input::Degraded(Degradation::CameraLost)),
        ("restored", Input::Restored(Degradation::CameraLost)),
        ("tick", Input::Tick),
    ];
    // Expected result: Ok(next phase) or Err(()) for a rejection.
    let expect = |p: Phase, name: &str| -> Result<Phase, ()> {
        match (p, name) {
            (Idle | Fault, "start") => Ok(Starting),
            (Idle | Fault, "stop") => Err(()),
            (Starting | Live | Stopping, "start") => Err(()),
            (Starting, "started") => Ok(Live),
            (Starting, "failed") => Ok(Fault),
            (Starting, "stop") => Ok(Stopping),
            (Live, "stop") => Ok(Stopping),
            (Stopping, "stop") => Err(()),
            (Stopping, "stopped" | "failed") => Ok(Idle),
            (p, _) => Ok(p),
        }
    };
    for p in [Idle, Starting, Live, Stopping, Fault] {
        for (name, input) in &inputs {
            let mut m = at(p);
            let before = m.state().clone();
            let got = m
                .handle(input.clone(), t(3))
                .map(|_| m.phase())
                .map_err(|_| ());
            assert_eq!(got, expect(p, name), "{p:?} + {name}");
            if got.is_err() {
                assert_eq!(
                    m.state(),
                    &before,
                    "rejection changed state: {p:?} + {name}"
                );
            }
        }
    }
}

#[test]
fn start_timeout_faults_and_closes_record() {
    let mut m = at(Phase::Starting);
    assert!(m.handle(Input::Tick, t(9)).unwrap().is_empty());
    let a = m.handle(Input::Tick, t(10)).unwrap();
    assert_eq!(m.phase(), Phase::Fault);
    assert!(a.iter().any(
        |a| matches!(a, Action::PersistFinished(r) if matches!(r.outcome, Some(Outcome::Failed(_))))
    ));
    assert!(a.contains(&Action::StopMedia));
    // A fault does not block the next try.
    m.handle(start("s2"), t(11)).unwrap();
    assert_eq!(m.phase(), Phase::Starting);
}

#[test]
fn stop_timeout_ends_as_failed() {
    let mut m = at(Phase::Stopping);
    m.handle(Input::Tick, t(8)).unwrap();
    assert_eq!(m.phase(), Phase::Idle);
}

#[test]
fn degradations_accumulate_and_clear() {
    let mut m = at(Phase::Live);
    m.handle(Input::Degraded(Degradation::CameraLost), t(2))
        .unwrap();
    m.handle(Input::Degraded(Degradation::UplinkDown), t(2))
        .unwrap();
    assert!(m
        .handle(Input::Degraded(Degradation::UplinkDown), t(2))
        .unwrap()
        .is_empty());
    assert_eq!(
        m.degraded(),
        vec![Degradation::CameraLost, Degradation::UplinkDown]
    );
    m.handle(Input::Restored(Degradation::CameraLost), t(3))
        .unwrap();
    assert_eq!(m.degraded(), vec![Degradation::UplinkDown]);
    assert_eq!(m.phase(), Phase::Live);
}

#[test]
fn media_failure_while_live_does_not_end_session() {
    let mut m = at(Phase::Live);
    m.handle(Input::MediaFailed("encoder".into()), t(4))
        .unwrap();
    assert_eq!(m.phase(), Phase::Live);
    assert_eq!(m.degraded(), vec![Degradation::RecordingHalted]);
}

#[test]
fn interrupted_marks_outcome() {
    let m = at(Phase::Live);
    let rec = interrupted(m.session().unwrap().clone(), t(100), "restart");
    assert_eq!(rec.outcome, Some(Outcome::Interrupted("restart".into())));
    assert_eq!(rec.ended_at, Some(t(100)));
}

fn any_input() -> impl Strategy<Value = Input> {
    prop_oneof![
        "[a-z]{1,4}".prop_map(|id| start(&id)),
        Just(stop()),
        Just(Input::MediaStarted),
        Just(Input::MediaFailed("x".into())),
        Just(Input::MediaStopped),
        Just(Input::Degraded(Degradation::UplinkDown)),
        Just(Input::Restored(Degradation::UplinkDown)),
        Just(Input::Tick),
    ]
}

proptest! {
    /// Whatever happens, a session that was persisted as current is either
    /// still running or was persisted as finished: no session is forgotten.
    #[test]
    fn no_session_is_forgotten(inputs in proptest::collection::vec((any_input(), 0i64..20), 0..60)) {
        let mut m = machine();
        let mut now = 0;
        let mut open: Option<String> = None;
        for (input, dt) in inputs {
            now += dt;
            let before = m.state().clone();
            match m.handle(input, t(now)) {
                Ok(actions) => {
                    for a in actions {
                        match a {
                            Action::PersistCurrent(r) => {
                                if let Some(o) = &open { prop_assert_eq!(o, &r.id); }
                                open = Some(r.id);
                            }
                            Action::PersistFinished(r) => {
                                prop_assert_eq!(open.take(), Some(r.id.clone()));
                                prop_assert!(r.outcome.is_some());
                                prop_assert!(r.ended_at.is_some());
                            }
                            _ => {}
                        }
                    }
                }
                Err(_) => prop_assert_eq!(m.state(), &before),
            }
            // The machine's idea of the open session matches what was persisted.
            prop_assert_eq!(m.session().map(|s| s.id.clone()), open.clone());
            if m.phase() == Phase::Live {
                prop_assert!(m.session().unwrap().live_at.is_some());
            }
        }
    }
}
