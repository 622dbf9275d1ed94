//! The session supervisor: the actor that owns the session state machine and
//! the state store, and drives the media engine.
//!
//! Requests come through a cloneable [`SupervisorHandle`] (bounded channel,
//! `oneshot` replies). Media events come back on an unbounded channel, so
//! there is no cycle of bounded channels between the two actors. Every
//! transition's actions are carried out in order: the store is written before
//! media is touched, so a crash at any point leaves a record.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{Config, OnInterrupted};
use crate::core::events::EventKind;
use crate::core::session::{
    Action, Input, Machine, Origin, Phase, Rejection, SessionRecord, State, Timeouts,
};
use crate::core::status::MediaEvent;
use crate::core::status::{origin_name, ErrorCode, Status};
use crate::events::Outbox;
use crate::media::MediaHandle;
use crate::store::{self, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("the session could not start: {0}")]
    StartFailed(String),
    #[error("the session ended with a fault: {0}")]
    StopFailed(String),
    #[error("state store: {0}")]
    Store(#[from] StoreError),
    #[error("the daemon is shutting down")]
    ShuttingDown,
}

impl SessionError {
    pub fn code(&self) -> ErrorCode {
        match self {
            SessionError::Rejected(_) => ErrorCode::Rejected,
            SessionError::StartFailed(_) | SessionError::StopFailed(_) | SessionError::Store(_) => {
                ErrorCode::Failed
            }
            SessionError::ShuttingDown => ErrorCode::Unavailable,
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, SessionError>>;

enum Command {
    Start {
        by: Origin,
        metadata: BTreeMap<String, String>,
        reply: Reply<SessionRecord>,
    },
    Stop {
        by: Origin,
        reply: Reply<SessionRecord>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

#[derive(Clone)]
pub struct SupervisorHandle {
    tx: mpsc::Sender<Command>,
}

impl SupervisorHandle {
    /// Start a session; resolves when it is live or has failed.
    pub async fn start(
        &self,
        by: Origin,
        metadata: BTreeMap<String, String>,
    ) -> Result<SessionRecord, SessionError> {
        self.call(|reply| Command::Start {
            by,
            metadata,
            reply,
        })
        .await?
    }

    /// Stop the live session; resolves when it is closed.
    pub async fn stop(&self, by: Origin) -> Result<SessionRecord, SessionError> {
        self.call(|reply| Command::Stop { by, reply }).await?
    }

    pub async fn status(&self) -> Result<Status, SessionError> {
        self.call(|reply| Command::Status { reply }).await
    }

    /// End a live session cleanly and stop the actor.
    pub async fn shutdown(&self) {
        let _ = self.call(|reply| Command::Shutdown { reply }).await;
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SessionError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| SessionError::ShuttingDown)?;
        rx.await.map_err(|_| SessionError::ShuttingDown)
    }
}

struct Supervisor {
    config: Config,
    machine: Machine,
    store: Store,
    outbox: Outbox,
    media: MediaHandle,
    started: Instant,
    /// The session whose going live was announced.
    announced_live: Option<String>,
    upload: watch::Receiver<crate::core::status::UploadStats>,
    call: watch::Receiver<crate::core::status::CallStats>,
    schedule: watch::Receiver<crate::core::status::ScheduleStatus>,
    fault: Option<String>,
    last_session: Option<SessionRecord>,
    /// Callers of `start` waiting for Live (or failure).
    start_waiters: Vec<Reply<SessionRecord>>,
    /// Callers of `stop` waiting for the session to close.
    stop_waiters: Vec<Reply<SessionRecord>>,
    phase_tx: watch::Sender<Phase>,
    healthy_tx: watch::Sender<bool>,
    /// Session starts and stops nobody asked for through the command layer
    /// (the button, a call, the daemon itself) go into the audit trail
    /// here; the command layer records its own.
    audit: Option<crate::audit::Auditor>,
}

/// Who the audit trail names for a session started or stopped by `origin`,
/// when the command layer has not recorded it already.
fn audit_who(origin: &Origin) -> Option<crate::core::audit::Who> {
    use crate::core::audit::Who;
    match origin {
        Origin::Cli | Origin::Mqtt(_) => None,
        Origin::Button => Some(Who::via("button")),
        Origin::Call(from) => Some(Who {
            detail: Some(from.clone()),
            ..Who::via("call")
        }),
        Origin::Schedule(occurrence) => Some(Who {
            detail: Some(occurrence.clone()),
            ..Who::via("schedule")
        }),
        Origin::Daemon(why) => Some(Who {
            detail: Some(why.clone()),
            ..Who::via("daemon")
        }),
    }
}

pub struct Spawned {
    pub handle: SupervisorHandle,
    pub phase: watch::Receiver<Phase>,
    pub healthy: watch::Receiver<bool>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Recover from any crash, then start the actor.
#[allow(clippy::too_many_arguments)] // each is one actor's channel end; a struct would only rename them
pub fn spawn(
    config: Config,
    store: Store,
    outbox: Outbox,
    media: MediaHandle,
    media_events: mpsc::UnboundedReceiver<MediaEvent>,
    upload: watch::Receiver<crate::core::status::UploadStats>,
    call: watch::Receiver<crate::core::status::CallStats>,
    schedule: watch::Receiver<crate::core::status::ScheduleStatus>,
) -> Result<Spawned, StoreError> {
    let now = Utc::now();
    let recovered = store.recover(now)?;
    if let Some(r) = &recovered {
        tracing::warn!(
            session = %r.id,
            "found session {} still open from before a crash or power cut; closed it as interrupted",
            r.id
        );
        outbox.emit(EventKind::SessionInterrupted {
            session: r.id.clone(),
            reason: match &r.outcome {
                Some(crate::core::session::Outcome::Interrupted(why)) => why.clone(),
                _ => String::new(),
            },
        });
    }
    let last_session = store.history(1)?.into_iter().next();
    let machine = Machine::new(
        config.site.id.clone(),
        Timeouts {
            start: chrono::Duration::from_std(config.daemon.start_timeout)
                .expect("validated timeouts are small"),
            stop: chrono::Duration::from_std(config.daemon.stop_timeout)
                .expect("validated timeouts are small"),
        },
    );
    let resume = recovered.is_some() && config.daemon.on_interrupted == OnInterrupted::Resume;
    let resume_meta = recovered
        .map(|r| {
            let mut m = r.metadata.clone();
            m.insert("resumes".into(), r.id);
            m
        })
        .unwrap_or_default();
    let (tx, rx) = mpsc::channel(32);
    let (phase_tx, phase) = watch::channel(Phase::Idle);
    let (healthy_tx, healthy) = watch::channel(true);
    let audit = crate::audit::Auditor::new(
        crate::audit::AuditLog::new(&config.daemon.state_dir),
        outbox.clone(),
        store.db(),
    )
    .map_err(|e| tracing::error!("no audit trail for the button's sessions: {e}"))
    .ok();
    let mut sup = Supervisor {
        audit,
        config,
        machine,
        store,
        outbox,
        media,
        started: Instant::now(),
        announced_live: None,
        upload,
        call,
        schedule,
        fault: None,
        last_session,
        start_waiters: Vec::new(),
        stop_waiters: Vec::new(),
        phase_tx,
        healthy_tx,
    };
    let task = tokio::spawn(async move {
        if resume {
            let (reply, _) = oneshot::channel();
            sup.start(
                Origin::Daemon("resume after interruption".into()),
                resume_meta,
                reply,
            )
            .await;
        }
        sup.run(rx, media_events).await
    });
    Ok(Spawned {
        handle: SupervisorHandle { tx },
        phase,
        healthy,
        task,
    })
}

impl Supervisor {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        mut media_events: mpsc::UnboundedReceiver<MediaEvent>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Command::Start { by, metadata, reply }) => self.start(by, metadata, reply).await,
                    Some(Command::Stop { by, reply }) => self.stop(by, reply).await,
                    Some(Command::Status { reply }) => {
                        let _ = reply.send(self.status().await);
                    }
                    Some(Command::Shutdown { reply }) => {
                        self.shutdown(&mut media_events).await;
                        let _ = reply.send(());
                        return;
                    }
                    None => return,
                },
                Some(ev) = media_events.recv() => self.on_media(ev).await,
                _ = tick.tick() => self.input(Input::Tick).await,
            }
        }
    }

    async fn start(
        &mut self,
        by: Origin,
        metadata: BTreeMap<String, String>,
        reply: Reply<SessionRecord>,
    ) {
        // The button in a scheduled occurrence's window after its session
        // ended early (or it was skipped): the room's restart belongs to
        // the occurrence, with its case metadata and group session, as
        // the schedule's own start would have.
        let metadata = match (&by, metadata.is_empty()) {
            (Origin::Button, true) => self.schedule.borrow().open.clone().unwrap_or_default(),
            _ => metadata,
        };
        let id = store::new_session_id(Utc::now());
        match self.apply(Input::Start { id, by, metadata }).await {
            Ok(()) => self.start_waiters.push(reply),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    async fn stop(&mut self, by: Origin, reply: Reply<SessionRecord>) {
        match self.apply(Input::Stop { by }).await {
            Ok(()) => self.stop_waiters.push(reply),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    async fn on_media(&mut self, ev: MediaEvent) {
        let session = self.machine.session().map(|s| s.id.clone());
        let input = match ev {
            MediaEvent::Started => Input::MediaStarted,
            MediaEvent::Stopped => Input::MediaStopped,
            MediaEvent::Failed(e) => Input::MediaFailed(e),
            MediaEvent::Degraded(d) => {
                self.outbox.emit(EventKind::Degraded {
                    condition: d,
                    session,
                });
                Input::Degraded(d)
            }
            MediaEvent::Restored(d) => {
                self.outbox.emit(EventKind::Restored {
                    condition: d,
                    session,
                });
                Input::Restored(d)
            }
        };
        self.input(input).await;
    }

    async fn input(&mut self, input: Input) {
        if let Err(e) = self.apply(input).await {
            tracing::debug!("input ignored: {e}");
        }
    }

    /// Feed the machine and carry out its actions, in order. The store's
    /// writes sync to disk, so they run on the blocking pool and are awaited
    /// there: the runtime's two workers go on serving the socket, MQTT and
    /// the display meanwhile, and media still starts only after the record
    /// is durable.
    async fn apply(&mut self, input: Input) -> Result<(), SessionError> {
        let actions = self.machine.handle(input, Utc::now())?;
        for action in actions {
            match action {
                Action::PersistCurrent(rec) => {
                    let (store, r) = (self.store.clone(), rec.clone());
                    let written = tokio::task::spawn_blocking(move || store.put_current(&r))
                        .await
                        .unwrap_or_else(|e| Err(StoreError::Task(e.to_string())));
                    if let Err(e) = written {
                        // Without a durable record the session must not run.
                        tracing::error!("cannot persist session {}: {e}", rec.id);
                        self.fault = Some(e.to_string());
                        let _ = self.healthy_tx.send(false);
                    }
                }
                Action::PersistFinished(rec) => {
                    let (store, r) = (self.store.clone(), rec.clone());
                    let written = tokio::task::spawn_blocking(move || store.finish(&r))
                        .await
                        .unwrap_or_else(|e| Err(StoreError::Task(e.to_string())));
                    if let Err(e) = written {
                        tracing::error!("cannot persist end of session {}: {e}", rec.id);
                        let _ = self.healthy_tx.send(false);
                    }
                    self.resolve_finished(&rec);
                    if let Some(who) = rec.stopped_by.as_ref().and_then(audit_who) {
                        self.audit_later(who, "session.stop", &rec.id, "done");
                    }
                    self.outbox.emit(match &rec.outcome {
                        Some(crate::core::session::Outcome::Failed(reason)) => {
                            EventKind::SessionFailed {
                                session: rec.id.clone(),
                                reason: reason.clone(),
                            }
                        }
                        _ => EventKind::SessionStopped {
                            session: rec.id.clone(),
                            by: origin_name(rec.stopped_by.as_ref()),
                        },
                    });
                    self.last_session = Some(rec);
                }
                Action::StartMedia { session_id } => match self.machine.session() {
                    Some(s) if s.id == session_id => self.media.start(s.clone()),
                    _ => tracing::error!("no session record for {session_id}"),
                },
                Action::StopMedia => self
                    .media
                    .stop(self.machine.session().and_then(|s| s.stopped_by.clone())),
                Action::Changed(phase) => self.changed(phase),
            }
        }
        Ok(())
    }

    /// Record in the audit trail without holding up the machine.
    fn audit_later(&self, who: crate::core::audit::Who, action: &str, id: &str, outcome: &str) {
        if let Some(a) = self.audit.clone() {
            let (action, id, outcome) = (action.to_owned(), id.to_owned(), outcome.to_owned());
            tokio::spawn(async move { a.record(who, &action, Some(id), outcome).await });
        }
    }

    fn changed(&mut self, phase: Phase) {
        match self.machine.state() {
            State::Live { session, degraded } => {
                if let Some(session) = Some(session.clone()) {
                    for w in self.start_waiters.drain(..) {
                        let _ = w.send(Ok(session.clone()));
                    }
                }
                tracing::info!(session = %session.id, ?degraded, "session live");
                self.fault = None;
                if self.announced_live.as_deref() != Some(session.id.as_str()) {
                    self.announced_live = Some(session.id.clone());
                    self.outbox.emit(EventKind::SessionStarted {
                        session: session.id.clone(),
                    });
                }
            }
            State::Fault { reason } => {
                tracing::error!("session could not start: {reason}");
                self.fault = Some(reason.clone());
            }
            State::Idle => self.fault = None,
            State::Starting { session, .. } => {
                tracing::info!(session = %session.id, by = ?session.started_by, "session starting");
                if let Some(who) = audit_who(&session.started_by) {
                    let id = session.id.clone();
                    self.audit_later(who, "session.start", &id, "done");
                }
                self.outbox.emit(EventKind::SessionStarting {
                    session: session.id.clone(),
                    by: origin_name(Some(&session.started_by)),
                    group_session: session
                        .metadata
                        .get(crate::core::session::GROUP_SESSION)
                        .cloned(),
                });
            }
            State::Stopping { session, .. } => {
                tracing::info!(session = %session.id, "session stopping")
            }
        }
        crate::systemd::status(crate::core::words::phase(
            crate::core::words::Language::En,
            phase,
        ));
        let _ = self.phase_tx.send(phase);
    }

    fn resolve_finished(&mut self, rec: &SessionRecord) {
        use crate::core::session::Outcome;
        for w in self.start_waiters.drain(..) {
            let reason = match &rec.outcome {
                Some(Outcome::Failed(r)) => r.clone(),
                _ => "the session was stopped before it went live".into(),
            };
            let _ = w.send(Err(SessionError::StartFailed(reason)));
        }
        for w in self.stop_waiters.drain(..) {
            let _ = w.send(match &rec.outcome {
                Some(Outcome::Failed(r)) => Err(SessionError::StopFailed(r.clone())),
                _ => Ok(rec.clone()),
            });
        }
        tracing::info!(session = %rec.id, outcome = ?rec.outcome, "session closed");
    }

    async fn status(&self) -> Status {
        // One copy of the engine's figures; the call's RTP part is shown
        // under `call`, beside its signalling state.
        let media = self.media.stats();
        let mut call = self.call.borrow().clone();
        call.media = media.call.clone();
        Status {
            version: env!("CARGO_PKG_VERSION").into(),
            site_id: self.config.site.id.clone(),
            site_name: self.config.site.name.clone(),
            phase: self.machine.phase(),
            fault: self.fault.clone(),
            session: self.machine.session().cloned(),
            degraded: self.machine.degraded(),
            last_session: self.last_session.clone(),
            uptime_s: self.started.elapsed().as_secs(),
            media,
            upload: self.upload.borrow().clone(),
            call,
            schedule: self.schedule.borrow().clone(),
        }
    }

    /// End a live session cleanly before the process exits.
    async fn shutdown(&mut self, media_events: &mut mpsc::UnboundedReceiver<MediaEvent>) {
        let (reply, _rx) = oneshot::channel();
        self.stop(Origin::Daemon("shutdown".into()), reply).await;
        let deadline = tokio::time::Instant::now() + self.config.daemon.stop_timeout;
        while matches!(self.machine.phase(), Phase::Stopping | Phase::Starting) {
            match tokio::time::timeout_at(deadline, media_events.recv()).await {
                Ok(Some(ev)) => self.on_media(ev).await,
                Ok(None) => break,
                Err(_) => {
                    // Past the deadline the machine's Tick closes the session as failed.
                    self.input(Input::Tick).await;
                    break;
                }
            }
        }
        if let Err(e) = self.store.flush() {
            tracing::error!("final flush of the state store failed: {e}");
        }
    }
}
