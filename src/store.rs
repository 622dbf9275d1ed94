//! The daemon's durable state in sled: the current session and the history
//! of finished ones.
//!
//! The current session is written (and flushed) before the media engine is
//! asked to start, so that a crash or power cut at any later moment leaves a
//! record behind; [`Store::recover`] closes such a record as interrupted on
//! the next start. A session is therefore never forgotten.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::session::{self, SessionRecord};

const CURRENT: &[u8] = b"current";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state store at {path}: {source}; is another diemcau running on this state directory?")]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("state store I/O on {what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: sled::Error,
    },
    #[error("state store record {key} is unreadable: {source}")]
    Decode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    session: sled::Tree,
    history: sled::Tree,
}

fn io(what: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |source| StoreError::Io { what, source }
}

impl Store {
    /// Open (or create) the store in `state_dir/db`.
    pub fn open(state_dir: &Path) -> Result<Self, StoreError> {
        let path = state_dir.join("db");
        let db = sled::Config::new()
            .path(&path)
            // Small box: keep sled's page cache modest.
            .cache_capacity(16 * 1024 * 1024)
            .flush_every_ms(Some(500))
            .open()
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        let session = db.open_tree("session").map_err(io("open tree session"))?;
        let history = db.open_tree("history").map_err(io("open tree history"))?;
        Ok(Self {
            db,
            session,
            history,
        })
    }

    /// The underlying database, for subsystems that keep their own trees.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Durably record the session in progress.
    pub fn put_current(&self, rec: &SessionRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(rec).expect("session records always serialise");
        self.session
            .insert(CURRENT, bytes)
            .map_err(io("write current session"))?;
        self.flush()
    }

    pub fn current(&self) -> Result<Option<SessionRecord>, StoreError> {
        match self
            .session
            .get(CURRENT)
            .map_err(io("read current session"))?
        {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|source| StoreError::Decode {
                    key: "session/current".into(),
                    source,
                }),
        }
    }

    /// Move a finished session to the history and clear the current one, in
    /// one transaction so a crash cannot lose or duplicate it.
    pub fn finish(&self, rec: &SessionRecord) -> Result<(), StoreError> {
        use sled::Transactional;
        let bytes = serde_json::to_vec(rec).expect("session records always serialise");
        (&self.session, &self.history)
            .transaction(|(s, h)| {
                h.insert(rec.id.as_bytes(), bytes.clone())?;
                s.remove(CURRENT)?;
                Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(source) => StoreError::Io {
                    what: "finish session",
                    source,
                },
                sled::transaction::TransactionError::Abort(()) => {
                    unreachable!("the transaction never aborts")
                }
            })?;
        self.flush()
    }

    /// Close a session left open by a crash: mark it interrupted, move it to
    /// the history, and return it.
    pub fn recover(&self, now: DateTime<Utc>) -> Result<Option<SessionRecord>, StoreError> {
        let Some(open) = self.current()? else {
            return Ok(None);
        };
        let rec = session::interrupted(
            open,
            now,
            "the daemon stopped while the session ran (crash, kill or power cut)",
        );
        self.finish(&rec)?;
        Ok(Some(rec))
    }

    /// The most recent finished sessions, newest first.
    pub fn history(&self, limit: usize) -> Result<Vec<SessionRecord>, StoreError> {
        self.history
            .iter()
            .rev()
            .take(limit)
            .map(|kv| {
                let (k, v) = kv.map_err(io("read history"))?;
                serde_json::from_slice(&v).map_err(|source| StoreError::Decode {
                    key: format!("history/{}", String::from_utf8_lossy(&k)),
                    source,
                })
            })
            .collect()
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(io("flush"))
    }
}

/// A new session id: UTC time (sortable) and 4 random hex digits.
pub fn new_session_id(now: DateTime<Utc>) -> String {
    let mut r = [0u8; 2];
    // A failed getrandom (no entropy source at all) only weakens uniqueness
    // of ids started in the same second; the time part still orders them.
    let _ = getrandom::getrandom(&mut r);
    format!("{}-{:02x}{:02x}", now.format("%Y%m%dT%H%M%SZ"), r[0], r[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Origin, Outcome};
    use std::collections::BTreeMap;

    fn rec(id: &str) -> SessionRecord {
        SessionRecord {
            id: id.into(),
            site: "xa".into(),
            requested_at: Utc::now(),
            live_at: None,
            ended_at: None,
            started_by: Origin::Cli,
            stopped_by: None,
            metadata: BTreeMap::new(),
            outcome: None,
        }
    }

    #[test]
    fn current_survives_reopen_and_is_recovered_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.put_current(&rec("a")).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let r = s.recover(Utc::now()).unwrap().unwrap();
        assert_eq!(r.id, "a");
        assert!(matches!(r.outcome, Some(Outcome::Interrupted(_))));
        assert!(s.recover(Utc::now()).unwrap().is_none());
        assert_eq!(s.history(10).unwrap()[0].id, "a");
    }

    #[test]
    fn history_is_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        for id in ["20260101T000000Z-0001", "20260102T000000Z-0001"] {
            s.finish(&rec(id)).unwrap();
        }
        let h = s.history(1).unwrap();
        assert_eq!(h[0].id, "20260102T000000Z-0001");
    }

    #[test]
    fn second_open_fails_with_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let _s = Store::open(dir.path()).unwrap();
        let e = Store::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("another diemcau"), "{e}");
    }
}
