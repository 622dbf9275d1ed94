//! Changing the configuration remotely (`config.set`): the new file is
//! validated, written atomically beside a last-known-good copy, and applied
//! by restarting the daemon in place. If the daemon cannot start with it,
//! the last-known-good file is put back and the command is answered
//! `failed` with the reason; otherwise `done`.
//!
//! The files next to the configuration:
//! - `NAME.last-good`: the configuration in force before the change;
//! - `NAME.pending`: the change waiting for its answer (who asked, where to
//!   reply, and, after a rollback, why it failed).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub id: String,
    pub name: String,
    pub response_topic: Option<String>,
    /// Correlation data, hex.
    pub correlation: Option<String>,
    /// Set when the change was rolled back: why it could not be applied.
    pub failed: Option<String>,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub fn pending_path(config: &Path) -> PathBuf {
    with_suffix(config, ".pending")
}

pub fn last_good_path(config: &Path) -> PathBuf {
    with_suffix(config, ".last-good")
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::util::atomic_write(path, bytes, None)
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::util::sync_dir(dir);
    }
}

/// Replace the configuration with `text` (already validated), keeping the
/// current one as last-known-good and recording `pending`. Atomic: a power
/// cut leaves either the old or the new file, never a mix.
pub fn persist(config: &Path, text: &str, pending: &Pending) -> std::io::Result<()> {
    let current = std::fs::read(config)?;
    write_synced(&last_good_path(config), &current)?;
    write_synced(
        &pending_path(config),
        &serde_json::to_vec(pending).expect("pending changes serialise"),
    )?;
    write_synced(config, text.as_bytes())
}

/// If a change is pending, put the last-known-good file back and record why.
/// Returns whether it rolled back.
pub fn rollback(config: &Path, why: &str) -> std::io::Result<bool> {
    let pp = pending_path(config);
    let Ok(bytes) = std::fs::read(&pp) else {
        return Ok(false);
    };
    let lg = last_good_path(config);
    if !lg.exists() {
        return Ok(false);
    }
    let mut p: Pending = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
    if p.failed.is_some() {
        // Already rolled back once: the last-good file itself fails. Leave it.
        return Ok(false);
    }
    std::fs::rename(&lg, config)?;
    p.failed = Some(why.to_owned());
    write_synced(
        &pp,
        &serde_json::to_vec(&p).expect("pending changes serialise"),
    )?;
    sync_dir(config);
    tracing::error!(
        "the new configuration could not be applied ({why}); the last known good one is back"
    );
    Ok(true)
}

/// The pending change, if any, removed from disk (it is answered once).
pub fn take_pending(config: &Path) -> Option<Pending> {
    let pp = pending_path(config);
    let bytes = std::fs::read(&pp).ok()?;
    let _ = std::fs::remove_file(&pp);
    let _ = std::fs::remove_file(last_good_path(config));
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> Pending {
        Pending {
            id: "c1".into(),
            name: "config.set".into(),
            response_topic: None,
            correlation: None,
            failed: None,
        }
    }

    #[test]
    fn persist_then_take() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("config.toml");
        std::fs::write(&c, "old").unwrap();
        persist(&c, "new", &pending()).unwrap();
        assert_eq!(std::fs::read_to_string(&c).unwrap(), "new");
        assert_eq!(std::fs::read_to_string(last_good_path(&c)).unwrap(), "old");
        let p = take_pending(&c).unwrap();
        assert_eq!(p.failed, None);
        assert!(!pending_path(&c).exists() && !last_good_path(&c).exists());
    }

    #[test]
    fn rollback_restores_and_records_once() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("config.toml");
        std::fs::write(&c, "old").unwrap();
        persist(&c, "new", &pending()).unwrap();
        assert!(rollback(&c, "socket in use").unwrap());
        assert_eq!(std::fs::read_to_string(&c).unwrap(), "old");
        assert!(!rollback(&c, "again").unwrap());
        assert_eq!(
            take_pending(&c).unwrap().failed.as_deref(),
            Some("socket in use")
        );
        assert!(!rollback(&c, "nothing pending").unwrap());
    }
}
