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

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::core::events::{Event, EventKind};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("event outbox: {0}")]
    Sled(#[from] sled::Error),
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
        })
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
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let tree = self.tree.clone();
                rt.spawn_blocking(move || {
                    if let Err(e) = tree.flush() {
                        tracing::error!("event outbox: cannot sync to disk: {e}");
                    }
                });
            }
            Err(_) => {
                self.tree.flush()?;
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
        let db = sled::open(dir.path()).unwrap();
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
