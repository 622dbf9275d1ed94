//! The session state machine: pure, no I/O, time passed in.
//!
//! ```text
//!            start            media started
//!   Idle ───────────▶ Starting ─────────────▶ Live
//!    ▲  ▲               │ failed/timeout       │ stop
//!    │  └── Fault ◀─────┘                      ▼
//!    │        │ start (retry)               Stopping
//!    │        ▼                                │ media stopped / timeout
//!    │     Starting                            │
//!    └─────────────────────────────────────────┘
//! ```
//!
//! While `Live`, faults that do not stop the session (camera lost, uplink
//! down, recording halted) are kept as a set of [`Degradation`]s: the session
//! carries on and the staff and NOC see what is wrong.
//!
//! The machine turns [`Input`]s into [`Action`]s for the supervisor to carry
//! out; it never touches the store or the media engine itself.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The metadata key of a multi-point session's group session id: the same
/// in every member's session, state, events and manifest (a group command's
/// `GROUP/COMMAND-ID`, or a group schedule's occurrence), so the hub and the
/// archive can line the communes' recordings up. Each box's own session
/// keeps its own id and its own recording.
pub const GROUP_SESSION: &str = "group_session";

/// Who or what asked for a transition; kept in the session record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum Origin {
    /// The local CLI / Unix socket.
    Cli,
    /// The hardware button in the room.
    Button,
    /// An MQTT command, with the command id.
    Mqtt(String),
    /// The daemon itself (shutdown, resume after a crash, start timeout).
    Daemon(String),
    /// A conference call the box answered (the caller's SIP URI).
    Call(String),
    /// The NOC's schedule (the occurrence's key).
    Schedule(String),
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum Outcome {
    /// Stopped on request, media closed cleanly.
    Ended,
    /// The daemon died (crash, kill, power cut) while the session ran; found
    /// and closed on the next start.
    Interrupted(String),
    /// The media engine could not start or stop the session.
    Failed(String),
}

/// One session: one reception sitting, one recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub site: String,
    pub requested_at: DateTime<Utc>,
    pub live_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub started_by: Origin,
    pub stopped_by: Option<Origin>,
    pub metadata: BTreeMap<String, String>,
    pub outcome: Option<Outcome>,
}

/// A fault that does not end a live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Degradation {
    CameraLost,
    MicrophoneLost,
    UplinkDown,
    ReturnFeedLost,
    RecordingHalted,
    /// The conference call dropped or cannot be set up; redialling.
    CallDown,
}

/// The phase of the machine, without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Idle,
    Starting,
    Live,
    Stopping,
    Fault,
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Idle,
    Starting {
        session: SessionRecord,
        deadline: DateTime<Utc>,
    },
    Live {
        session: SessionRecord,
        degraded: BTreeSet<Degradation>,
    },
    Stopping {
        session: SessionRecord,
        deadline: DateTime<Utc>,
    },
    /// The last start failed; the box needs attention but a new start may
    /// be tried at any time.
    Fault {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Start {
        id: String,
        by: Origin,
        metadata: BTreeMap<String, String>,
    },
    Stop {
        by: Origin,
    },
    MediaStarted,
    MediaFailed(String),
    MediaStopped,
    Degraded(Degradation),
    Restored(Degradation),
    /// Time passed; checks start and stop deadlines.
    Tick,
}

/// What the supervisor must do after a transition.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write this record as the current session (durably) before anything else.
    PersistCurrent(SessionRecord),
    /// Move this finished record to the history and clear the current one.
    PersistFinished(SessionRecord),
    StartMedia {
        session_id: String,
    },
    StopMedia,
    /// Announce the change (status, LED, display, MQTT).
    Changed(Phase),
}

/// Why an input was refused; the state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("a session is already live ({0})")]
    AlreadyLive(String),
    #[error("the box is busy {0}; try again in a moment")]
    Busy(&'static str),
    #[error("no session is running")]
    NotRunning,
}

/// Timeouts the machine enforces.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub start: chrono::Duration,
    pub stop: chrono::Duration,
}

#[derive(Debug, Clone)]
pub struct Machine {
    site: String,
    state: State,
    timeouts: Timeouts,
}

impl Machine {
    pub fn new(site: impl Into<String>, timeouts: Timeouts) -> Self {
        Self {
            site: site.into(),
            state: State::Idle,
            timeouts,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn phase(&self) -> Phase {
        match self.state {
            State::Idle => Phase::Idle,
            State::Starting { .. } => Phase::Starting,
            State::Live { .. } => Phase::Live,
            State::Stopping { .. } => Phase::Stopping,
            State::Fault { .. } => Phase::Fault,
        }
    }

    /// The session in progress, if any.
    pub fn session(&self) -> Option<&SessionRecord> {
        match &self.state {
            State::Starting { session, .. }
            | State::Live { session, .. }
            | State::Stopping { session, .. } => Some(session),
            State::Idle | State::Fault { .. } => None,
        }
    }

    pub fn degraded(&self) -> Vec<Degradation> {
        match &self.state {
            State::Live { degraded, .. } => degraded.iter().copied().collect(),
            _ => Vec::new(),
        }
    }

    /// Feed one input. On `Err` the state is unchanged.
    pub fn handle(&mut self, input: Input, now: DateTime<Utc>) -> Result<Vec<Action>, Rejection> {
        let state = std::mem::replace(&mut self.state, State::Idle);
        match self.step(state.clone(), input, now) {
            Ok((next, actions)) => {
                self.state = next;
                Ok(actions)
            }
            Err(r) => {
                self.state = state;
                Err(r)
            }
        }
    }

    fn step(
        &self,
        state: State,
        input: Input,
        now: DateTime<Utc>,
    ) -> Result<(State, Vec<Action>), Rejection> {
        use Input as I;
        Ok(match (state, input) {
            (State::Idle | State::Fault { .. }, I::Start { id, by, metadata }) => {
                let session = SessionRecord {
                    id: id.clone(),
                    site: self.site.clone(),
                    requested_at: now,
                    live_at: None,
                    ended_at: None,
                    started_by: by,
                    stopped_by: None,
                    metadata,
                    outcome: None,
                };
                let actions = vec![
                    Action::PersistCurrent(session.clone()),
                    Action::StartMedia { session_id: id },
                    Action::Changed(Phase::Starting),
                ];
                (
                    State::Starting {
                        session,
                        deadline: now + self.timeouts.start,
                    },
                    actions,
                )
            }
            (State::Live { session, .. }, I::Start { .. }) => {
                return Err(Rejection::AlreadyLive(session.id))
            }
            (State::Starting { .. }, I::Start { .. }) => return Err(Rejection::Busy("starting")),
            (State::Stopping { .. }, I::Start { .. }) => return Err(Rejection::Busy("stopping")),

            (State::Starting { mut session, .. }, I::MediaStarted) => {
                session.live_at = Some(now);
                (
                    State::Live {
                        session: session.clone(),
                        degraded: BTreeSet::new(),
                    },
                    vec![
                        Action::PersistCurrent(session),
                        Action::Changed(Phase::Live),
                    ],
                )
            }
            (State::Starting { session, .. }, I::MediaFailed(reason)) => {
                self.fail(session, reason, now)
            }
            (State::Starting { session, deadline }, I::Tick) if now >= deadline => self.fail(
                session,
                format!(
                    "media did not start within {} s",
                    self.timeouts.start.num_seconds()
                ),
                now,
            ),
            (State::Starting { mut session, .. }, I::Stop { by }) => {
                // A stop while starting is honoured: nobody wants a session
                // they already cancelled.
                session.stopped_by = Some(by);
                (
                    State::Stopping {
                        session: session.clone(),
                        deadline: now + self.timeouts.stop,
                    },
                    vec![
                        Action::PersistCurrent(session),
                        Action::StopMedia,
                        Action::Changed(Phase::Stopping),
                    ],
                )
            }

            (State::Live { mut session, .. }, I::Stop { by }) => {
                session.stopped_by = Some(by);
                (
                    State::Stopping {
                        session: session.clone(),
                        deadline: now + self.timeouts.stop,
                    },
                    vec![
                        Action::PersistCurrent(session),
                        Action::StopMedia,
                        Action::Changed(Phase::Stopping),
                    ],
                )
            }
            (
                State::Live {
                    session,
                    mut degraded,
                },
                I::Degraded(d),
            ) => {
                let changed = degraded.insert(d);
                let actions = if changed {
                    vec![Action::Changed(Phase::Live)]
                } else {
                    vec![]
                };
                (State::Live { session, degraded }, actions)
            }
            (
                State::Live {
                    session,
                    mut degraded,
                },
                I::Restored(d),
            ) => {
                let changed = degraded.remove(&d);
                let actions = if changed {
                    vec![Action::Changed(Phase::Live)]
                } else {
                    vec![]
                };
                (State::Live { session, degraded }, actions)
            }
            // The media engine died under a live session. The session is not
            // stopped: the media supervisor restarts what failed, and the
            // recording records the gap. Shown as a degradation.
            (
                State::Live {
                    session,
                    mut degraded,
                },
                I::MediaFailed(_),
            ) => {
                degraded.insert(Degradation::RecordingHalted);
                (
                    State::Live { session, degraded },
                    vec![Action::Changed(Phase::Live)],
                )
            }

            (State::Stopping { session, .. }, I::MediaStopped) => {
                self.finish(session, Outcome::Ended, now)
            }
            (State::Stopping { session, .. }, I::MediaFailed(reason)) => {
                self.finish(session, Outcome::Failed(reason), now)
            }
            (State::Stopping { session, deadline }, I::Tick) if now >= deadline => self.finish(
                session,
                Outcome::Failed(format!(
                    "media did not stop within {} s",
                    self.timeouts.stop.num_seconds()
                )),
                now,
            ),
            (State::Stopping { .. }, I::Stop { .. }) => return Err(Rejection::Busy("stopping")),

            (State::Idle | State::Fault { .. }, I::Stop { .. }) => {
                return Err(Rejection::NotRunning)
            }

            // Everything else is a no-op: late media reports, ticks before a
            // deadline, degradations outside a live session.
            (state, _) => (state, vec![]),
        })
    }

    fn fail(
        &self,
        mut session: SessionRecord,
        reason: String,
        now: DateTime<Utc>,
    ) -> (State, Vec<Action>) {
        session.ended_at = Some(now);
        session.outcome = Some(Outcome::Failed(reason.clone()));
        (
            State::Fault { reason },
            vec![
                Action::StopMedia,
                Action::PersistFinished(session),
                Action::Changed(Phase::Fault),
            ],
        )
    }

    fn finish(
        &self,
        mut session: SessionRecord,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> (State, Vec<Action>) {
        session.ended_at = Some(now);
        session.outcome = Some(outcome);
        (
            State::Idle,
            vec![
                Action::PersistFinished(session),
                Action::Changed(Phase::Idle),
            ],
        )
    }
}

/// Close a session found open after a crash. Pure; the caller persists it.
pub fn interrupted(mut session: SessionRecord, now: DateTime<Utc>, reason: &str) -> SessionRecord {
    session.ended_at = Some(now);
    session.outcome = Some(Outcome::Interrupted(reason.to_owned()));
    session
}

#[cfg(test)]
mod tests;
