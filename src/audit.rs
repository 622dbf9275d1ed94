//! The audit trail on the box: `audit.log` in the state directory, one
//! JSON record per line (`core::audit`), append-only and hash-linked.
//!
//! Several processes write it: the daemon (commands over the socket and
//! MQTT, the button, calls), the CLI when it works on the store with the
//! daemon stopped, and provisioning (root, before the daemon). Each append
//! therefore takes an exclusive `flock`, reads the last record for its
//! sequence number and hash, writes one line with one `write` and
//! `fsync`s it. A power cut can tear only the line being written; the next
//! append cuts that torn tail off (it was never complete, so never told to
//! anyone) and says so in a record of its own.
//!
//! The daemon's [`Auditor`] also sends every record to the NOC as an
//! `audited` event through the outbox, including those written while it
//! was not running (it remembers in the store how far it has sent).

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::core::audit::{genesis, AuditRecord, Who};
use crate::core::events::EventKind;
use crate::events::Outbox;

pub const AUDIT_FILE: &str = "audit.log";

/// How much of the file's end is read to find the last record: far more
/// than one record (a few hundred bytes).
const TAIL: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("the audit trail {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the audit trail {path}, record {line}: {message}")]
    Record {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("the audit trail's progress in the store: {0}")]
    Store(#[from] sled::Error),
}

/// The trail's file.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    pub fn new(state_dir: &Path) -> AuditLog {
        AuditLog {
            path: state_dir.join(AUDIT_FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self) -> impl Fn(std::io::Error) -> AuditError + '_ {
        |source| AuditError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Append one record; returns it as written.
    pub fn append(
        &self,
        who: Who,
        action: &str,
        target: Option<String>,
        outcome: &str,
    ) -> Result<AuditRecord, AuditError> {
        let io = self.io();
        let fresh = !self.path.exists();
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o640)
            .open(&self.path)
            .map_err(&io)?;
        if fresh {
            give_to_state_dir_owner(&self.path);
        }
        // SAFETY: flock on a descriptor we own; released when `f` closes.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io(std::io::Error::last_os_error()));
        }
        let (last, torn) = self.last_record(&mut f)?;
        let mut out = Vec::new();
        let mut prev = last
            .as_ref()
            .map_or_else(|| hex::encode(genesis()), |r| r.hash.clone());
        let mut seq = last.as_ref().map_or(0, |r| r.seq);
        if let Some(bytes) = torn {
            // Cut the torn line off; the record that says so is the next.
            let len = f.metadata().map_err(&io)?.len();
            f.set_len(len - bytes).map_err(&io)?;
            seq += 1;
            let note = AuditRecord::new(
                seq,
                &prev,
                Utc::now(),
                Who::via("daemon"),
                "audit.torn_tail_removed",
                None,
                format!("done: {bytes} bytes of a record cut short by a power cut or crash"),
            );
            prev = note.hash.clone();
            out.extend(line(&note));
        }
        let r = AuditRecord::new(
            seq + 1,
            &prev,
            Utc::now(),
            who,
            action,
            target,
            outcome.into(),
        );
        out.extend(line(&r));
        f.write_all(&out).map_err(&io)?;
        f.sync_data().map_err(&io)?;
        if fresh {
            crate::util::sync_dir(self.path.parent().unwrap_or(Path::new(".")));
        }
        Ok(r)
    }

    /// The last whole record, and the length of a torn tail after it.
    fn last_record(
        &self,
        f: &mut std::fs::File,
    ) -> Result<(Option<AuditRecord>, Option<u64>), AuditError> {
        let io = self.io();
        let len = f.metadata().map_err(&io)?.len();
        let start = len.saturating_sub(TAIL);
        f.seek(SeekFrom::Start(start)).map_err(&io)?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).map_err(&io)?;
        let torn = match buf.iter().rposition(|b| *b == b'\n') {
            Some(i) if i + 1 < buf.len() => Some((buf.len() - i - 1) as u64),
            None if !buf.is_empty() && start == 0 => Some(buf.len() as u64),
            _ => None,
        };
        let whole = &buf[..buf.len() - torn.unwrap_or(0) as usize];
        let last = whole
            .split(|b| *b == b'\n')
            .rfind(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_slice::<AuditRecord>(l).map_err(|e| AuditError::Record {
                    path: self.path.clone(),
                    line: 0,
                    message: format!("the last record cannot be read ({e}); nothing appended"),
                })
            })
            .transpose()?;
        Ok((last, torn))
    }

    /// The trail's exclusive lock, held until the file is dropped.
    fn lock(&self) -> Result<std::fs::File, AuditError> {
        let f = std::fs::File::open(&self.path).map_err(self.io())?;
        // SAFETY: flock on a descriptor we own; released when `f` closes.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err((self.io())(std::io::Error::last_os_error()));
        }
        Ok(f)
    }

    /// Every record, in order (a torn last line is left out).
    pub fn read_all(&self) -> Result<Vec<AuditRecord>, AuditError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err((self.io())(e)),
        };
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        complete
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| AuditError::Record {
                    path: self.path.clone(),
                    line: i + 1,
                    message: e.to_string(),
                })
            })
            .collect()
    }
}

fn line(r: &AuditRecord) -> Vec<u8> {
    // Plain data: serialising cannot fail.
    let mut l = serde_json::to_vec(r).unwrap_or_default();
    l.push(b'\n');
    l
}

/// A trail made by root (provisioning, a technician's CLI) must stay
/// writable by the daemon: it gets the state directory's owner.
fn give_to_state_dir_owner(path: &Path) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    if let Some(meta) = path.parent().and_then(|d| std::fs::metadata(d).ok()) {
        let _ = std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid()));
    }
}

/// The daemon's side: append, then send what the NOC has not had yet.
#[derive(Clone)]
pub struct Auditor {
    log: AuditLog,
    outbox: Outbox,
    /// `forwarded` → the last sequence number given to the outbox.
    progress: sled::Tree,
}

const FORWARDED: &[u8] = b"forwarded";

impl Auditor {
    pub fn new(log: AuditLog, outbox: Outbox, db: &sled::Db) -> Result<Auditor, AuditError> {
        Ok(Auditor {
            log,
            outbox,
            progress: db.open_tree(crate::core::trees::AUDIT)?,
        })
    }

    /// Record, off the async workers. A trail that cannot be written is
    /// logged loudly; the action itself has already happened and is not
    /// undone.
    pub async fn record(&self, who: Who, action: &str, target: Option<String>, outcome: String) {
        let me = self.clone();
        let action = action.to_owned();
        let done = tokio::task::spawn_blocking(move || {
            me.log.append(who, &action, target, &outcome)?;
            me.forward()
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("audit trail not written: {e}"),
            Err(e) => tracing::error!("audit trail not written: {e}"),
        }
    }

    /// Give the outbox every record after the last one it had (those
    /// written while the daemon was stopped, too). Blocking. Under the
    /// trail's own lock: two forwards (the command layer's and the
    /// supervisor's) never send one record twice, and no line another
    /// process is still writing is read.
    pub fn forward(&self) -> Result<(), AuditError> {
        let _lock = match self.log.lock() {
            Ok(l) => l,
            // No trail yet: nothing to send.
            Err(AuditError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        let done = self
            .progress
            .get(FORWARDED)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        let records = self.log.read_all()?;
        let mut last = done;
        for r in records.into_iter().filter(|r| r.seq > done) {
            last = r.seq;
            self.outbox.emit(EventKind::Audited {
                record: r.seq,
                action: r.action,
                who: r.who,
                target: r.target,
                outcome: r.outcome,
                hash: r.hash,
            });
        }
        if last != done {
            self.progress.insert(FORWARDED, &last.to_be_bytes())?;
            self.progress.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_chain_across_writers_and_a_torn_tail_is_cut_and_said() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path());
        // Two writers at once (the daemon and a CLI): one chain.
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..20 {
                        log.append(
                            Who::via("cli"),
                            "recording.verify",
                            Some(format!("t{t}-{i}")),
                            "done",
                        )
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let all = log.read_all().unwrap();
        assert_eq!(all.len(), 40);
        crate::core::audit::verify(&all).unwrap();
        // A power cut mid-line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(log.path())
            .unwrap();
        f.write_all(br#"{"seq":41,"at":"2026-"#).unwrap();
        assert_eq!(
            log.read_all().unwrap().len(),
            40,
            "the torn line is not a record"
        );
        log.append(Who::via("socket"), "session.start", None, "done")
            .unwrap();
        let all = log.read_all().unwrap();
        assert_eq!(all.len(), 42);
        assert_eq!(all[40].action, "audit.torn_tail_removed");
        assert_eq!(all[41].action, "session.start");
        crate::core::audit::verify(&all).unwrap();
        // An edited record is found by the chain.
        let text = std::fs::read_to_string(log.path()).unwrap();
        std::fs::write(log.path(), text.replacen("t0-3", "t0-X", 1)).unwrap();
        assert!(crate::core::audit::verify(&log.read_all().unwrap()).is_err());
    }
}
