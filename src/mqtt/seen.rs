//! Idempotency: the command ids this box has seen, persisted in sled.
//!
//! An id is marked, and made durable ([`Seen::sync`], on the blocking pool),
//! *before* its command runs, so that a
//! replay — by the NOC, by the broker redelivering after a reconnect, or
//! after a crash of this box half way through — is answered `duplicate`
//! and never executed twice. Entries are kept for the longest command
//! lifetime (`command_max_ttl`): any replay older than that would be
//! `expired` anyway, so the window is complete by construction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::command::ReplyStatus;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeenEntry {
    pub at: DateTime<Utc>,
    pub command: String,
    /// The last reply sent for it (`accepted` while it runs).
    pub status: ReplyStatus,
}

#[derive(Debug, thiserror::Error)]
pub enum SeenError {
    #[error("seen command ids: {0}")]
    Sled(#[from] sled::Error),
}

#[derive(Clone)]
pub struct Seen {
    tree: sled::Tree,
    window: Duration,
}

/// Whether an entry recorded at `at` still counts at `now`.
pub fn within_window(at: DateTime<Utc>, now: DateTime<Utc>, window: Duration) -> bool {
    let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::days(7));
    now - at <= window
}

impl Seen {
    pub fn open(db: &sled::Db, window: Duration) -> Result<Self, SeenError> {
        Ok(Self {
            tree: db.open_tree(crate::core::trees::MQTT_SEEN)?,
            window,
        })
    }

    /// Mark `id` as seen; returns the earlier entry if it was seen within
    /// the window (a duplicate), `None` if this is its first time.
    pub fn mark(
        &self,
        id: &str,
        command: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SeenEntry>, SeenError> {
        if let Some(prev) = self.get(id)? {
            if within_window(prev.at, now, self.window) {
                return Ok(Some(prev));
            }
        }
        self.put(
            id,
            &SeenEntry {
                at: now,
                command: command.to_owned(),
                status: ReplyStatus::Accepted,
            },
        )?;
        Ok(None)
    }

    /// Record the final status of a command.
    pub fn finish(&self, id: &str, status: ReplyStatus) -> Result<(), SeenError> {
        if let Some(mut e) = self.get(id)? {
            e.status = status;
            // No flush: losing the final status in a crash only makes a
            // later duplicate report `accepted`; sled flushes soon anyway.
            let bytes = serde_json::to_vec(&e).expect("seen entries always serialise");
            self.tree.insert(id.as_bytes(), bytes)?;
        }
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<SeenEntry>, SeenError> {
        Ok(self
            .tree
            .get(id.as_bytes())?
            // An unreadable entry (older format) counts as seen long ago.
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    fn put(&self, id: &str, e: &SeenEntry) -> Result<(), SeenError> {
        let bytes = serde_json::to_vec(e).expect("seen entries always serialise");
        // Visible at once to the next `mark`; durable by `sync`, which the
        // command's task awaits before it runs (not here: this is called
        // on the MQTT actor, an async worker, and a flush is an fsync).
        self.tree.insert(id.as_bytes(), bytes)?;
        Ok(())
    }

    /// Make every mark durable. Blocking: call it from the blocking pool.
    pub fn sync(&self) -> Result<(), SeenError> {
        self.tree.flush()?;
        Ok(())
    }

    /// Forget entries older than the window; returns how many.
    pub fn prune(&self, now: DateTime<Utc>) -> Result<usize, SeenError> {
        let mut old = Vec::new();
        for kv in self.tree.iter() {
            let (k, v) = kv?;
            let keep = serde_json::from_slice::<SeenEntry>(&v)
                .is_ok_and(|e| within_window(e.at, now, self.window));
            if !keep {
                old.push(k);
            }
        }
        for k in &old {
            self.tree.remove(k)?;
        }
        Ok(old.len())
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_within_window_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let t0: DateTime<Utc> = "2026-03-01T08:00:00Z".parse().unwrap();
        let w = Duration::from_secs(60);
        {
            let db = sled::open(dir.path()).unwrap();
            let s = Seen::open(&db, w).unwrap();
            assert_eq!(s.mark("a", "rebirth", t0).unwrap(), None);
            s.finish("a", ReplyStatus::Done).unwrap();
        }
        let db = crate::util::reopen_sled(dir.path());
        let s = Seen::open(&db, w).unwrap();
        let prev = s
            .mark("a", "rebirth", t0 + chrono::Duration::seconds(30))
            .unwrap()
            .unwrap();
        assert_eq!(prev.status, ReplyStatus::Done);
        // Past the window the id is new again (a replay would be expired).
        let later = t0 + chrono::Duration::seconds(61);
        assert_eq!(s.prune(later).unwrap(), 1);
        assert_eq!(s.mark("a", "rebirth", later).unwrap(), None);
    }
}
