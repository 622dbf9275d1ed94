//! Events for the NOC: what happened in the room, in order, never dropped.
//!
//! Every subsystem that has something to report pushes an [`Event`] into the
//! [`Outbox`], a sled tree keyed by a monotonically increasing sequence
//! number, synced to disk (off the async workers, see [`Outbox::push`]), so
//! an event survives a broker outage and a daemon restart. The MQTT publisher reads the outbox
//! in order ([`Outbox::pending`]), publishes, and removes an event only after
//! the broker acknowledged it ([`Outbox::ack`]).
//!
//! Pushing never blocks on the network: the publisher is woken through a
//! `Notify`, there is no channel that could fill up.
//!
//! Beside the store, the daemon's outbox keeps a mirror, `outbox.jsonl` in
//! the state directory: one line per event pushed and per event
//! acknowledged, compacted to the pending events when it grows. When sled
//! cannot reopen the store after a power cut (the store is set aside), the
//! events the NOC had not acknowledged come back from it, with their ids,
//! so the NOC still deduplicates them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::core::events::{Event, EventKind};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("event outbox: {0}")]
    Sled(#[from] sled::Error),
    #[error("event outbox mirror {0}: {1}")]
    Mirror(PathBuf, #[source] std::io::Error),
    #[error("event outbox entry {seq} is unreadable: {source}")]
    Decode {
        seq: u64,
        #[source]
        source: serde_json::Error,
    },
}

/// The durable, ordered event queue. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    db: sled::Db,
    tree: sled::Tree,
    site: String,
    notify: Arc<Notify>,
    /// Added to sled's id counter; raised when the store starts afresh.
    base: u64,
    mirror: Option<Arc<Mirror>>,
}

/// The mirror file's name in the state directory.
pub const MIRROR_FILE: &str = "outbox.jsonl";
/// Past this, the mirror is rewritten with only the pending events.
const MIRROR_COMPACT_BYTES: u64 = 1 << 20;

/// One line of the mirror.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum MirrorLine {
    Push(Box<Event>),
    Ack(u64),
}

/// The mirror file. Its lock orders appends against a compaction (the
/// only shared state here; held for one write or one rewrite).
struct Mirror {
    path: PathBuf,
    lock: Mutex<()>,
    /// Bytes appended since the last compaction.
    grown: AtomicU64,
}

impl Mirror {
    fn append(&self, line: &MirrorLine) {
        let Ok(mut bytes) = serde_json::to_vec(line) else {
            return;
        };
        bytes.push(b'\n');
        // A poisoned lock only means another append panicked; the file is
        // still whole lines or a torn last one, which replay skips.
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let written = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(&bytes));
        match written {
            Ok(()) => {
                self.grown.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            Err(e) => tracing::error!("event outbox mirror {}: {e}", self.path.display()),
        }
    }

    /// Rewrite with exactly the pending events in `tree`.
    fn compact(&self, tree: &sled::Tree) -> std::io::Result<()> {
        let _held = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for kv in tree.iter() {
            let (_, v) = kv.map_err(std::io::Error::other)?;
            if let Ok(ev) = serde_json::from_slice::<Event>(&v) {
                out.extend(
                    serde_json::to_vec(&MirrorLine::Push(Box::new(ev)))
                        .map_err(std::io::Error::other)?,
                );
                out.push(b'\n');
            }
        }
        crate::util::atomic_write(&self.path, &out, Some(0o640))?;
        self.grown.store(0, Ordering::Relaxed);
        Ok(())
    }

    fn sync(path: &Path) {
        if let Err(e) = std::fs::File::open(path).and_then(|f| f.sync_data()) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::error!("event outbox mirror: cannot sync to disk: {e}");
            }
        }
    }
}

const BASE_KEY: &[u8] = b"\0seq_base";

impl Outbox {
    pub fn open(db: &sled::Db, site: &str) -> Result<Self, OutboxError> {
        let meta = db.open_tree(crate::core::trees::OUTBOX_META)?;
        let base = meta
            .get(BASE_KEY)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        Ok(Self {
            db: db.clone(),
            tree: db.open_tree(crate::core::trees::OUTBOX)?,
            site: site.to_owned(),
            notify: Arc::new(Notify::new()),
            base,
            mirror: None,
        })
    }

    /// Keep the mirror in `state_dir` from now on, starting it afresh from
    /// the pending events. Call after [`Outbox::restore_mirror`], before
    /// cloning the outbox.
    pub fn with_mirror(mut self, state_dir: &Path) -> Result<Self, OutboxError> {
        let m = Mirror {
            path: state_dir.join(MIRROR_FILE),
            lock: Mutex::new(()),
            grown: AtomicU64::new(0),
        };
        m.compact(&self.tree)
            .map_err(|e| OutboxError::Mirror(m.path.clone(), e))?;
        self.mirror = Some(Arc::new(m));
        Ok(self)
    }

    /// After the store was set aside: put back the events the mirror in
    /// `state_dir` holds and the broker never acknowledged, under their
    /// old sequence numbers (below the rebased ones, so they go first).
    /// Returns how many.
    pub fn restore_mirror(&mut self, state_dir: &Path) -> Result<usize, OutboxError> {
        let path = state_dir.join(MIRROR_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(OutboxError::Mirror(path, e)),
        };
        let mut pending = std::collections::BTreeMap::new();
        // A line a power cut tore does not parse, and is skipped.
        for line in text.lines() {
            match serde_json::from_str::<MirrorLine>(line) {
                Ok(MirrorLine::Push(ev)) => {
                    pending.insert(ev.seq, *ev);
                }
                Ok(MirrorLine::Ack(seq)) => {
                    pending.remove(&seq);
                }
                Err(_) => {}
            }
        }
        let n = pending.len();
        let highest = pending.keys().next_back().copied();
        for (seq, ev) in pending {
            let bytes = serde_json::to_vec(&ev).expect("events always serialise");
            self.tree.insert(seq.to_be_bytes(), bytes)?;
        }
        self.tree.flush()?;
        // A clock that went back (no battery clock after a power cut) must
        // not give new events ids below the ones brought back.
        if let Some(h) = highest {
            if self.base + self.db.generate_id()? <= h {
                let meta = self.db.open_tree(crate::core::trees::OUTBOX_META)?;
                self.base = h + 1;
                meta.insert(BASE_KEY, &self.base.to_be_bytes())?;
                meta.flush()?;
            }
        }
        Ok(n)
    }

    /// For a store that replaced one set aside: its id counter starts again
    /// at zero, and the NOC deduplicates on `<site>-<seq>`, so sequence
    /// numbers continue from the clock (milliseconds × 1000), above any the
    /// old store can have issued. Call before cloning the outbox.
    pub fn rebase(&mut self, now: DateTime<Utc>) -> Result<(), OutboxError> {
        let base = u64::try_from(now.timestamp_millis()).unwrap_or(0) * 1000;
        let meta = self.db.open_tree(crate::core::trees::OUTBOX_META)?;
        meta.insert(BASE_KEY, &base.to_be_bytes())?;
        meta.flush()?;
        self.base = base;
        Ok(())
    }

    /// Store an event, make it durable, and wake the publisher. Returns the
    /// event.
    ///
    /// On a thread of its own (the recorder) the sync happens before
    /// `push` returns. Called from the async runtime, the sync goes to the
    /// blocking pool and `push` returns at once: it used to fsync on
    /// whichever of the two async workers emitted the event, and the socket,
    /// MQTT and the display waited on the disk meanwhile. The event is then
    /// durable a few milliseconds later (at worst sled's own flush interval,
    /// 500 ms, the same bound a power cut has on the recording).
    pub fn push(&self, kind: EventKind) -> Result<Event, OutboxError> {
        // sled's generate_id is monotonic across restarts.
        let seq = self.base + self.db.generate_id()?;
        let ev = Event {
            id: format!("{}-{seq}", self.site),
            seq,
            site: self.site.clone(),
            at: Utc::now(),
            kind,
        };
        let bytes = serde_json::to_vec(&ev).expect("events always serialise");
        self.tree.insert(seq.to_be_bytes(), bytes)?;
        if let Some(m) = &self.mirror {
            m.append(&MirrorLine::Push(Box::new(ev.clone())));
        }
        let mirror = self.mirror.as_ref().map(|m| m.path.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let tree = self.tree.clone();
                rt.spawn_blocking(move || {
                    if let Err(e) = tree.flush() {
                        tracing::error!("event outbox: cannot sync to disk: {e}");
                    }
                    if let Some(p) = mirror {
                        Mirror::sync(&p);
                    }
                });
            }
            Err(_) => {
                self.tree.flush()?;
                if let Some(p) = mirror {
                    Mirror::sync(&p);
                }
            }
        }
        self.notify.notify_one();
        Ok(ev)
    }

    /// Push, logging instead of failing: for callers that must go on.
    pub fn emit(&self, kind: EventKind) {
        if let Err(e) = self.push(kind.clone()) {
            tracing::error!("event {kind:?} could not be stored: {e}");
        }
    }

    /// Up to `limit` unacknowledged events, oldest first.
    ///
    /// An entry that no longer reads as an event (written by another
    /// version) is moved to its own tree and logged, never left in front:
    /// it used to stop every event behind it from reaching the NOC.
    pub fn pending(&self, limit: usize) -> Result<Vec<Event>, OutboxError> {
        let mut out = Vec::new();
        for kv in self.tree.iter() {
            if out.len() >= limit {
                break;
            }
            let (k, v) = kv?;
            match serde_json::from_slice(&v) {
                Ok(ev) => out.push(ev),
                Err(source) => {
                    let seq = u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0; 8]));
                    tracing::error!(
                        "{}; kept aside in the store's {} tree",
                        OutboxError::Decode { seq, source },
                        crate::core::trees::OUTBOX_UNREADABLE
                    );
                    self.db
                        .open_tree(crate::core::trees::OUTBOX_UNREADABLE)?
                        .insert(&k, v)?;
                    self.tree.remove(&k)?;
                }
            }
        }
        Ok(out)
    }

    /// The broker acknowledged this event: forget it.
    pub fn ack(&self, seq: u64) -> Result<(), OutboxError> {
        self.tree.remove(seq.to_be_bytes())?;
        if let Some(m) = &self.mirror {
            // Not synced: an ack lost to a power cut only sends the event
            // again, which the NOC deduplicates.
            m.append(&MirrorLine::Ack(seq));
            if m.grown.load(Ordering::Relaxed) > MIRROR_COMPACT_BYTES {
                // One compaction at a time: the counter starts again now.
                m.grown.store(0, Ordering::Relaxed);
                // A rewrite with fsyncs: off the async workers when there
                // are any.
                let (m, tree) = (m.clone(), self.tree.clone());
                let compact = move || {
                    if let Err(e) = m.compact(&tree) {
                        tracing::error!("event outbox mirror not compacted: {e}");
                    }
                };
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => drop(rt.spawn_blocking(compact)),
                    Err(_) => compact(),
                }
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Resolves when an event was pushed since the last call.
    pub async fn wait(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::session::Degradation;

    #[test]
    fn events_are_ordered_durable_and_acked() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let o = Outbox::open(&db, "xa").unwrap();
            for i in 0..3 {
                o.push(EventKind::SessionStarted {
                    session: format!("s{i}"),
                })
                .unwrap();
            }
        }
        let db = crate::util::reopen_sled(dir.path());
        let o = Outbox::open(&db, "xa").unwrap();
        let p = o.pending(10).unwrap();
        assert_eq!(p.len(), 3);
        assert!(p.windows(2).all(|w| w[0].seq < w[1].seq));
        o.ack(p[0].seq).unwrap();
        let next = o
            .push(EventKind::ConfigChanged {
                version: "2".into(),
            })
            .unwrap();
        assert!(
            next.seq > p[2].seq,
            "sequence keeps growing across restarts"
        );
        let p2 = o.pending(10).unwrap();
        assert_eq!(p2.len(), 3);
        assert_eq!(p2[0].id, p[1].id);
    }

    #[test]
    fn an_entry_that_does_not_read_is_set_aside_not_in_the_way() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let o = Outbox::open(&db, "xa").unwrap();
        let first = o
            .push(EventKind::SessionStarted {
                session: "s".into(),
            })
            .unwrap();
        let after = o
            .push(EventKind::ConfigChanged {
                version: "2".into(),
            })
            .unwrap();
        // The first, as another version might have left it.
        o.tree
            .insert(first.seq.to_be_bytes(), &b"{\"seq\":1,\"seq\":2}"[..])
            .unwrap();
        let p = o.pending(10).unwrap();
        assert_eq!(p.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![after.seq]);
        let aside = db.open_tree(crate::core::trees::OUTBOX_UNREADABLE).unwrap();
        assert_eq!(aside.len(), 1);
    }

    #[test]
    fn the_mirror_brings_back_what_was_not_acknowledged_and_stays_small() {
        let state = tempfile::tempdir().unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let o = Outbox::open(&sled::open(a.path()).unwrap(), "xa")
            .unwrap()
            .with_mirror(state.path())
            .unwrap();
        let evs: Vec<Event> = (0..5)
            .map(|i| {
                o.push(EventKind::SessionStarted {
                    session: format!("s{i}"),
                })
                .unwrap()
            })
            .collect();
        o.ack(evs[0].seq).unwrap();
        o.ack(evs[3].seq).unwrap();
        // A power cut tore the last line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(state.path().join(MIRROR_FILE))
            .unwrap();
        f.write_all(br#"{"push":{"id":"xa-9","#).unwrap();
        // sled cannot reopen: a fresh store, the mirror replayed.
        let mut fresh = Outbox::open(&sled::open(b.path()).unwrap(), "xa").unwrap();
        fresh.rebase(Utc::now()).unwrap();
        assert_eq!(fresh.restore_mirror(state.path()).unwrap(), 3);
        let later = fresh
            .push(EventKind::ConfigChanged {
                version: "2".into(),
            })
            .unwrap();
        let ids: Vec<String> = fresh
            .pending(10)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(
            ids,
            vec![
                evs[1].id.clone(),
                evs[2].id.clone(),
                evs[4].id.clone(),
                later.id
            ]
        );
        // Compaction keeps only the pending events.
        let fresh = fresh.with_mirror(state.path()).unwrap();
        let lines = std::fs::read_to_string(state.path().join(MIRROR_FILE)).unwrap();
        assert_eq!(lines.lines().count(), 4, "{lines}");
        drop(fresh);
    }

    #[test]
    fn a_fresh_store_after_a_set_aside_continues_the_sequence() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let old = {
            let db = sled::open(a.path()).unwrap();
            let o = Outbox::open(&db, "xa").unwrap();
            (0..5)
                .map(|_| {
                    o.push(EventKind::ConfigChanged {
                        version: "1".into(),
                    })
                    .unwrap()
                    .seq
                })
                .max()
                .unwrap()
        };
        let db = sled::open(b.path()).unwrap();
        let mut o = Outbox::open(&db, "xa").unwrap();
        o.rebase(Utc::now()).unwrap();
        let first = o
            .push(EventKind::ConfigChanged {
                version: "2".into(),
            })
            .unwrap();
        assert!(first.seq > old, "{} after {old}", first.seq);
        drop(o);
        // The base is kept: a restart of the fresh store goes on above it.
        let o = Outbox::open(&db, "xa").unwrap();
        let next = o
            .push(EventKind::ConfigChanged {
                version: "3".into(),
            })
            .unwrap();
        assert!(next.seq > first.seq);
    }

    #[test]
    fn event_json_is_flat() {
        let ev = Event {
            id: "xa-1".into(),
            seq: 1,
            site: "xa".into(),
            at: Utc::now(),
            kind: EventKind::Degraded {
                condition: Degradation::CameraLost,
                session: Some("s".into()),
            },
        };
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["type"], "degraded");
        assert_eq!(v["condition"], "camera_lost");
    }
}
