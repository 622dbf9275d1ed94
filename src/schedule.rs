//! The scheduler: the actor that starts and ends the NOC's scheduled
//! sessions on time, by the box's own clock.
//!
//! It owns the schedules the NOC published (the site's, each group's, the
//! province's holidays), kept in the store so that a box with no broker and
//! no network still starts on time after a restart, and the planner's
//! memory (`core::schedule::Planner`: what was started or skipped, the
//! session running now), kept there too so that a box switched off across
//! an occurrence reports it when it is back. Documents come from the MQTT
//! adapter through a [`ScheduleHandle`]; sessions start and stop through
//! the supervisor, as `Origin::Schedule`; what happened goes to the NOC as
//! `scheduled` events through the outbox; where it stands goes into the
//! box's status on a `watch` the supervisor reads (no channel back to this
//! actor), and from there to the screen.
//!
//! A press of the button while the screen warns of the planned end puts
//! the end off: the button's short press while live is a hint, which this
//! actor watches.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::{civil::Date, Timestamp};
use tokio::sync::{mpsc, oneshot, watch};

use crate::button::Hint;
use crate::core::events::{EventKind, Scheduled};
use crate::core::schedule::{self as plan, Occurrence, Planner, Schedule, Step};
use crate::core::session::{Origin, Phase};
use crate::core::status::{
    Clock, ScheduleNotice, ScheduleSource, ScheduleStatus, ScheduledSession,
};
use crate::events::Outbox;
use crate::supervisor::SupervisorHandle;

/// How often the planner looks at the clock: a start is due within this
/// (plus the session's own start) of its time.
const TICK: Duration = Duration::from_millis(500);
/// Occurrences looked at: back far enough for a box off over a weekend to
/// report what it missed, forward for the standby screen.
const LOOK_BACK_S: i64 = 3 * 86_400;
const LOOK_AHEAD_S: i64 = 14 * 86_400;
/// How long the screen says the end was put off.
const EXTENDED_SHOWN_S: i64 = 6;

const TREE: &str = "schedule";
const PLANNER_KEY: &str = "planner";
const HOLIDAYS: &str = "holidays";

/// A document from the NOC: `source` is `site`, `group/NAME` or
/// `holidays`; an empty payload clears it (a retained message removed).
pub struct Document {
    pub source: String,
    pub payload: Vec<u8>,
}

enum Cmd {
    Document(Document),
    /// The schedules as the box holds them, for `schedule.show`.
    Show(oneshot::Sender<serde_json::Value>),
}

#[derive(Clone)]
pub struct ScheduleHandle {
    tx: mpsc::Sender<Cmd>,
}

impl ScheduleHandle {
    /// Hand a document over without waiting (the MQTT adapter's loop must
    /// not block); false when the scheduler is gone or busy.
    pub fn document(&self, d: Document) -> bool {
        self.tx.try_send(Cmd::Document(d)).is_ok()
    }

    /// A handle with no scheduler behind it, for a box built without one
    /// (the fleet simulation): every document is refused.
    pub fn none() -> Self {
        Self {
            tx: mpsc::channel(1).0,
        }
    }

    pub async fn show(&self) -> Option<serde_json::Value> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Show(tx)).await.ok()?;
        rx.await.ok()
    }
}

pub struct Deps {
    pub config: crate::config::Schedule,
    pub supervisor: SupervisorHandle,
    pub phase: watch::Receiver<Phase>,
    pub db: sled::Db,
    pub outbox: Outbox,
    pub hints: watch::Receiver<Option<Hint>>,
    pub status: watch::Sender<ScheduleStatus>,
    pub stopping: crate::lifecycle::Stopping,
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleStoreError {
    #[error("schedule store: {0}")]
    Sled(#[from] sled::Error),
}

pub fn spawn(d: Deps) -> Result<(ScheduleHandle, tokio::task::JoinHandle<()>), ScheduleStoreError> {
    let tree = d.db.open_tree(TREE)?;
    let (tx, rx) = mpsc::channel(16);
    let task = tokio::spawn(run(d, tree, rx));
    Ok((ScheduleHandle { tx }, task))
}

/// The kernel's view of the clock (`util::clock`): a box whose clock was
/// never set still runs its schedule by it, and says so.
pub fn clock() -> Clock {
    crate::util::clock()
}

struct Scheduler {
    d: Deps,
    tree: sled::Tree,
    schedules: BTreeMap<String, Schedule>,
    holidays: BTreeSet<Date>,
    holidays_revision: u64,
    planner: Planner,
    /// Results of starts run aside (a start waits until live).
    started_tx: mpsc::UnboundedSender<(String, Result<String, String>)>,
    extended_at: Option<Timestamp>,
    last_hint: Option<u64>,
    /// The live session's id, as the supervisor last said.
    live: Option<String>,
    /// Starts in flight: the occurrence's title and how late it started.
    starting: BTreeMap<String, (String, i64)>,
}

async fn run(d: Deps, tree: sled::Tree, mut rx: mpsc::Receiver<Cmd>) {
    let (started_tx, mut started_rx) =
        mpsc::unbounded_channel::<(String, Result<String, String>)>();
    let last_hint = d.hints.borrow().as_ref().map(|h| h.seq);
    let mut s = Scheduler {
        d,
        tree,
        schedules: BTreeMap::new(),
        holidays: BTreeSet::new(),
        holidays_revision: 0,
        planner: Planner::default(),
        started_tx,
        extended_at: None,
        last_hint,
        live: None,
        starting: BTreeMap::new(),
    };
    s.load();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut stopping = s.d.stopping.clone();
    let mut hints = s.d.hints.clone();
    loop {
        tokio::select! {
            _ = stopping.wait() => return,
            cmd = rx.recv() => match cmd {
                Some(Cmd::Document(doc)) => {
                    s.on_document(doc);
                    // Shown at once, not at the next tick.
                    let now = Timestamp::now();
                    let occs = s.occurrences(now);
                    s.publish(now, &occs);
                }
                Some(Cmd::Show(reply)) => { let _ = reply.send(s.show()); }
                None => return,
            },
            Some((key, r)) = started_rx.recv() => s.on_started(&key, r),
            Ok(()) = hints.changed() => {
                let seq = hints.borrow_and_update().as_ref().map(|h| h.seq);
                if seq.is_some() && seq != s.last_hint {
                    s.last_hint = seq;
                    s.on_press();
                }
            }
            _ = tick.tick() => s.on_tick().await,
        }
    }
}

impl Scheduler {
    /// What the store kept: the documents and the planner's memory. A
    /// document that no longer reads (a newer box's, a damaged store) is
    /// logged and left out; the NOC's retained copy replaces it.
    fn load(&mut self) {
        for item in self.tree.iter().flatten() {
            let (k, v) = item;
            let key = String::from_utf8_lossy(&k).into_owned();
            if key == PLANNER_KEY {
                match serde_json::from_slice(&v) {
                    Ok(p) => self.planner = p,
                    Err(e) => tracing::error!(
                        "schedule: the planner's memory does not read ({e}); starting afresh"
                    ),
                }
            } else if let Some(source) = key.strip_prefix("doc/") {
                if let Err(e) = self.take(source, &v) {
                    tracing::error!("schedule: the stored {source} schedule does not read: {e}");
                }
            }
        }
        tracing::info!(
            schedules = self.schedules.len(),
            holidays = self.holidays.len(),
            "schedules loaded from the store"
        );
    }

    fn take(&mut self, source: &str, payload: &[u8]) -> Result<(u64, usize), plan::ScheduleError> {
        if source == HOLIDAYS {
            let raw: plan::RawHolidays = serde_json::from_slice(payload)
                .map_err(|e| plan::ScheduleError::Json(e.to_string()))?;
            let dates = plan::parse_holidays(payload)?;
            self.holidays = dates;
            self.holidays_revision = raw.revision;
            Ok((raw.revision, self.holidays.len()))
        } else {
            let s = plan::parse_schedule(payload)?;
            let out = (s.revision, s.entries.len());
            self.schedules.insert(source.to_owned(), s);
            Ok(out)
        }
    }

    fn on_document(&mut self, doc: Document) {
        let key = format!("doc/{}", doc.source);
        // Every connect brings the retained copy again: nothing new.
        if self.tree.get(&key).ok().flatten().as_deref() == Some(doc.payload.as_slice())
            || (doc.payload.is_empty() && self.tree.get(&key).ok().flatten().is_none())
        {
            return;
        }
        if doc.payload.is_empty() {
            tracing::info!(source = %doc.source, "schedule cleared by the NOC");
            if doc.source == HOLIDAYS {
                self.holidays.clear();
                self.holidays_revision = 0;
            } else {
                self.schedules.remove(&doc.source);
            }
            let _ = self.tree.remove(&key);
            self.d.outbox.emit(EventKind::ScheduleReceived {
                source: doc.source,
                revision: 0,
                entries: 0,
                error: None,
            });
            return;
        }
        match self.take(&doc.source, &doc.payload) {
            Ok((revision, entries)) => {
                if let Err(e) = self.tree.insert(&key, doc.payload.as_slice()) {
                    tracing::error!("schedule not stored ({e}); it holds until a restart");
                }
                tracing::info!(source = %doc.source, revision, entries, "schedule taken");
                // Occurrences already over were not this box's to run.
                let now = Timestamp::now();
                let occs = self.occurrences(now);
                self.planner.received(now, &occs, &self.d.config.rules);
                self.save_planner();
                self.d.outbox.emit(EventKind::ScheduleReceived {
                    source: doc.source,
                    revision,
                    entries,
                    error: None,
                });
            }
            Err(e) => {
                tracing::warn!(source = %doc.source, "schedule refused, the previous one stays: {e}");
                self.d.outbox.emit(EventKind::ScheduleReceived {
                    source: doc.source,
                    revision: 0,
                    entries: 0,
                    error: Some(e.to_string()),
                });
            }
        }
    }

    fn occurrences(&self, now: Timestamp) -> Vec<Occurrence> {
        // The site's schedule first: at equal times its entry names the
        // session.
        let mut sources: Vec<(&str, &Schedule)> = Vec::new();
        if let Some(s) = self.schedules.get("site") {
            sources.push(("site", s));
        }
        for (name, s) in &self.schedules {
            if name != "site" {
                sources.push((name.as_str(), s));
            }
        }
        let from = now - jiff::SignedDuration::from_secs(LOOK_BACK_S);
        let to = now + jiff::SignedDuration::from_secs(LOOK_AHEAD_S);
        plan::occurrences(&sources, &self.holidays, &self.d.config.time_zone, from, to)
    }

    async fn on_tick(&mut self) {
        let now = Timestamp::now();
        let phase = *self.d.phase.borrow();
        let live = match phase {
            Phase::Idle | Phase::Fault => None,
            _ => match self.d.supervisor.status().await {
                Ok(st) => st.session,
                Err(_) => return,
            },
        };
        self.live = live.as_ref().map(|r| r.id.clone());
        let occs = self.occurrences(now);
        // A session the schedule did not start, carrying an occurrence (the
        // button in an open occurrence, a session resumed after a crash):
        // the occurrence's session from now on. Only once it is live: a
        // start that fails stays the button's.
        if let Some(r) =
            live.filter(|r| r.live_at.is_some() && !matches!(r.started_by, Origin::Schedule(_)))
        {
            let key = r.metadata.get(plan::SCHEDULE_KEY).cloned();
            if let Some(o) = key.and_then(|k| {
                self.planner
                    .adopt(now, &k, &r.id, &occs, &self.d.config.rules)
            }) {
                tracing::info!(occurrence = %o.key, session = %r.id, "a session started in the room belongs to the scheduled occurrence");
                self.d.outbox.emit(EventKind::Scheduled(Scheduled {
                    occurrence: o.key.clone(),
                    title: o.title.clone(),
                    state: "resumed".into(),
                    session: Some(r.id.clone()),
                    late_s: Some(o.start.duration_until(now).as_secs()),
                    end: o.end.and_then(to_chrono),
                    clock_synchronized: clock().synchronized,
                    ..Scheduled::default()
                }));
                self.save_planner();
            }
        }
        let steps = self
            .planner
            .tick(now, &occs, self.live.as_deref(), &self.d.config.rules);
        let changed = !steps.is_empty();
        for step in steps {
            self.act(step);
        }
        if changed {
            self.save_planner();
        }
        self.publish(now, &occs);
    }

    fn act(&mut self, step: Step) {
        let clock_synchronized = clock().synchronized;
        let event = |occurrence: &str, title: &str, state: &str| Scheduled {
            occurrence: occurrence.to_owned(),
            title: title.to_owned(),
            state: state.to_owned(),
            clock_synchronized,
            ..Scheduled::default()
        };
        match step {
            Step::Start { occurrence, late } => {
                tracing::info!(
                    occurrence = %occurrence.key,
                    late_s = late.as_secs(),
                    clock_synchronized,
                    "scheduled session starting"
                );
                let metadata = plan::session_metadata(&occurrence);
                self.starting.insert(
                    occurrence.key.clone(),
                    (occurrence.title.clone(), late.as_secs()),
                );
                let sup = self.d.supervisor.clone();
                let tx = self.started_tx.clone();
                let key = occurrence.key;
                // A start resolves when the session is live: aside, so the
                // clock keeps ticking.
                tokio::spawn(async move {
                    let r = sup
                        .start(Origin::Schedule(key.clone()), metadata)
                        .await
                        .map(|rec| rec.id)
                        .map_err(|e| e.to_string());
                    let _ = tx.send((key, r));
                });
            }
            Step::Skip { occurrence, reason } => {
                tracing::warn!(
                    occurrence = %occurrence.key,
                    reason = reason.as_str(),
                    "scheduled session skipped"
                );
                self.d.outbox.emit(EventKind::Scheduled(Scheduled {
                    reason: Some(reason.as_str().into()),
                    ..event(&occurrence.key, &occurrence.title, "skipped")
                }));
            }
            Step::Warn {
                key,
                title,
                end,
                left,
            } => {
                tracing::info!(occurrence = %key, left_s = left.as_secs(), "the room is told the session ends soon");
                self.d.outbox.emit(EventKind::Scheduled(Scheduled {
                    end: to_chrono(end),
                    ..event(&key, &title, "warned")
                }));
            }
            Step::Stop { key } => {
                tracing::info!(occurrence = %key, "scheduled session at its planned end: stopping");
                let sup = self.d.supervisor.clone();
                tokio::spawn(async move {
                    if let Err(e) = sup.stop(Origin::Schedule(key)).await {
                        tracing::warn!("scheduled stop: {e}");
                    }
                });
            }
            Step::Ended {
                key,
                title,
                session,
                planned,
            } => {
                tracing::info!(occurrence = %key, planned, "scheduled session over");
                self.d.outbox.emit(EventKind::Scheduled(Scheduled {
                    planned: Some(planned),
                    session,
                    ..event(&key, &title, "ended")
                }));
            }
        }
    }

    fn on_started(&mut self, key: &str, r: Result<String, String>) {
        let (title, late_s) = self.starting.remove(key).unwrap_or_default();
        let clock_synchronized = clock().synchronized;
        match r {
            Ok(session) => {
                self.planner.started(key, &session);
                tracing::info!(occurrence = %key, %session, "scheduled session live");
                self.d.outbox.emit(EventKind::Scheduled(Scheduled {
                    occurrence: key.to_owned(),
                    title,
                    state: "started".into(),
                    session: Some(session),
                    reason: None,
                    late_s: Some(late_s),
                    end: self
                        .planner
                        .current
                        .as_ref()
                        .and_then(|c| c.end)
                        .and_then(to_chrono),
                    planned: None,
                    clock_synchronized,
                }));
            }
            Err(e) => {
                self.planner.start_failed(key);
                tracing::warn!(occurrence = %key, "scheduled session did not start: {e}");
                self.d.outbox.emit(EventKind::Scheduled(Scheduled {
                    occurrence: key.to_owned(),
                    title,
                    state: "skipped".into(),
                    session: None,
                    reason: Some(format!("failed: {e}")),
                    late_s: None,
                    end: None,
                    planned: None,
                    clock_synchronized,
                }));
            }
        }
        self.save_planner();
    }

    /// A short press while live: during a warning, the end is put off.
    fn on_press(&mut self) {
        let now = Timestamp::now();
        let Some(end) = self.planner.extend(now, &self.d.config.rules) else {
            return;
        };
        self.extended_at = Some(now);
        let c = self.planner.current.clone();
        tracing::info!(end = %end, "a press during the warning: the scheduled session goes on");
        if let Some(c) = c {
            self.d.outbox.emit(EventKind::Scheduled(Scheduled {
                occurrence: c.key,
                title: c.title,
                state: "extended".into(),
                session: c.session,
                reason: None,
                late_s: None,
                end: to_chrono(end),
                planned: None,
                clock_synchronized: clock().synchronized,
            }));
        }
        self.save_planner();
    }

    fn save_planner(&self) {
        match serde_json::to_vec(&self.planner) {
            Ok(v) => {
                if let Err(e) = self.tree.insert(PLANNER_KEY, v) {
                    tracing::error!("schedule: the planner's memory not stored: {e}");
                }
            }
            Err(e) => tracing::error!("schedule: the planner's memory not written: {e}"),
        }
    }

    fn local(&self, t: Timestamp) -> jiff::civil::DateTime {
        self.d.config.time_zone.to_datetime(t)
    }

    /// Where the schedules stand, for the status and the screen.
    fn publish(&mut self, now: Timestamp, occs: &[Occurrence]) {
        let tz = &self.d.config.time_zone;
        let session = |o: &Occurrence| ScheduledSession {
            occurrence: o.key.clone(),
            title: o.title.clone(),
            start: to_chrono(o.start).unwrap_or_default(),
            local_start: o.local_start.strftime("%Y-%m-%dT%H:%M").to_string(),
            weekday: o.local_start.weekday().to_monday_one_offset() as u8,
            starts_in_s: None,
            end: o.end.and_then(to_chrono),
            local_end: o
                .end
                .map(|e| tz.to_datetime(e).strftime("%H:%M").to_string()),
            session: None,
        };
        let next = self.planner.next(now, occs).map(|o| ScheduledSession {
            starts_in_s: Some(now.duration_until(o.start).as_secs()),
            ..session(o)
        });
        let current = self.planner.current.as_ref().map(|c| {
            let local_start = c.key.rsplit('/').next().unwrap_or_default().to_owned();
            ScheduledSession {
                occurrence: c.key.clone(),
                title: c.title.clone(),
                start: occs
                    .iter()
                    .find(|o| o.key == c.key)
                    .and_then(|o| to_chrono(o.start))
                    .unwrap_or_default(),
                weekday: local_start
                    .parse::<jiff::civil::DateTime>()
                    .map(|d| d.weekday().to_monday_one_offset() as u8)
                    .unwrap_or(1),
                local_start,
                starts_in_s: None,
                end: c.end.and_then(to_chrono),
                local_end: c.end.map(|e| self.local(e).strftime("%H:%M").to_string()),
                session: c.session.clone(),
            }
        });
        let end_local = current.as_ref().and_then(|c| c.local_end.clone());
        let notice = match (self.extended_at, self.planner.warning(now), end_local) {
            (Some(at), _, Some(end)) if now.duration_since(at).as_secs() < EXTENDED_SHOWN_S => {
                Some(ScheduleNotice::Extended { end })
            }
            (_, Some(_), Some(end)) => Some(ScheduleNotice::EndsAt { end }),
            _ => None,
        };
        let mut sources: Vec<ScheduleSource> = self
            .schedules
            .iter()
            .map(|(k, s)| ScheduleSource {
                source: k.clone(),
                revision: s.revision,
                entries: s.entries.len(),
            })
            .collect();
        if !self.holidays.is_empty() {
            sources.push(ScheduleSource {
                source: HOLIDAYS.into(),
                revision: self.holidays_revision,
                entries: self.holidays.len(),
            });
        }
        let st = ScheduleStatus {
            time_zone: self.d.config.time_zone_name.clone(),
            sources,
            next,
            current,
            notice,
            clock: clock(),
            open: self
                .planner
                .open(now, occs, &self.d.config.rules)
                .map(plan::session_metadata),
        };
        self.d.status.send_if_modified(|old| {
            let changed = *old != st;
            if changed {
                *old = st;
            }
            changed
        });
    }

    /// `schedule.show`: every document as the box holds it, and the
    /// occurrences of the next two weeks.
    fn show(&self) -> serde_json::Value {
        let docs: BTreeMap<String, serde_json::Value> = self
            .tree
            .scan_prefix("doc/")
            .flatten()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(&k[4..]).into_owned(),
                    serde_json::from_slice(&v).unwrap_or(serde_json::Value::Null),
                )
            })
            .collect();
        let now = Timestamp::now();
        let upcoming: Vec<serde_json::Value> = self
            .occurrences(now)
            .into_iter()
            .filter(|o| o.start > now)
            .map(|o| {
                serde_json::json!({
                    "occurrence": o.key,
                    "title": o.title,
                    "local_start": o.local_start.strftime("%Y-%m-%dT%H:%M").to_string(),
                    "start": to_chrono(o.start),
                    "end": o.end.and_then(to_chrono),
                    "also": o.also,
                })
            })
            .collect();
        serde_json::json!({
            "time_zone": self.d.config.time_zone_name,
            "documents": docs,
            "upcoming": upcoming,
            "clock": clock(),
        })
    }
}

fn to_chrono(t: Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond() as u32)
}
