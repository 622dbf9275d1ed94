//! The audit trail's records: who did what to the recordings and the box,
//! and when, each record hash-linked to the one before, so that a record
//! removed, changed or reordered breaks every later link.
//!
//! ```text
//! prev[1]  = SHA-256("diemcau-audit-v1")
//! hash[n]  = SHA-256(prev[n] ‖ compact JSON of record n with "hash" = "")
//! prev[n+1] = hash[n]
//! ```
//!
//! (`prev` and `hash` are the 32 raw bytes in the formula, hex in the
//! record.) The file is `crate::audit`'s; the NOC receives every record as
//! an `audited` event.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Who acted, as far as the box can tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Who {
    /// How it reached the box: `socket` (someone at the box, through the
    /// daemon), `cli` (the CLI with the daemon stopped), `mqtt` (the NOC),
    /// `button`, `call` (an MCU's call), `daemon`, `provision`.
    pub via: String,
    /// The Unix account, from the socket's peer credentials (the kernel's
    /// word, not the client's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The person's name where people share an account: the name the CLI
    /// asked for, or the name the NOC's command carries (`by`). Said, not
    /// proven.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The MQTT command id, the caller's SIP address, the daemon's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Who {
    pub fn via(via: &str) -> Who {
        Who {
            via: via.into(),
            ..Who::default()
        }
    }

    /// One line for people: `socket root (Nguyễn Văn A)`.
    pub fn describe(&self) -> String {
        let mut s = self.via.clone();
        for part in [&self.user, &self.detail].into_iter().flatten() {
            s.push(' ');
            s.push_str(part);
        }
        if let Some(n) = &self.name {
            s.push_str(&format!(" ({n})"));
        }
        s
    }
}

/// A name someone typed or a command carried, as it may go into the
/// record: trimmed, at most 64 characters, no control characters.
pub fn clean_name(raw: &str) -> Option<String> {
    let s: String = raw
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    (!s.is_empty()).then_some(s)
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// 1, 2, 3, … with no gap.
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub who: Who,
    /// `session.start`, `recording.export`, `config.set`, `device_key.created`, …
    pub action: String,
    /// What it was done to (a session id), when anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `done`, or `refused: …` / `failed: …` with the reason.
    pub outcome: String,
    /// The previous record's `hash` (hex).
    pub prev: String,
    pub hash: String,
}

/// `prev` of the first record.
pub fn genesis() -> [u8; 32] {
    Sha256::digest(b"diemcau-audit-v1").into()
}

impl AuditRecord {
    /// The record's hash over `prev` and its own fields.
    pub fn compute_hash(&self) -> String {
        let mut r = self.clone();
        r.hash = String::new();
        let prev = hex::decode(&self.prev).unwrap_or_default();
        let mut h = Sha256::new();
        h.update(&prev);
        // A struct of strings and numbers: serialising cannot fail.
        h.update(serde_json::to_vec(&r).unwrap_or_default());
        hex::encode(h.finalize())
    }

    /// Record `seq` after `prev` (hex), hashed.
    pub fn new(
        seq: u64,
        prev: &str,
        at: DateTime<Utc>,
        who: Who,
        action: &str,
        target: Option<String>,
        outcome: String,
    ) -> AuditRecord {
        let mut r = AuditRecord {
            seq,
            at,
            who,
            action: action.into(),
            target,
            outcome,
            prev: prev.into(),
            hash: String::new(),
        };
        r.hash = r.compute_hash();
        r
    }
}

/// Where a chain stops holding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit record {seq}: {why}")]
pub struct Broken {
    pub seq: u64,
    pub why: String,
}

/// Check a whole trail from its first record.
pub fn verify(records: &[AuditRecord]) -> Result<(), Broken> {
    let mut prev = hex::encode(genesis());
    for (i, r) in records.iter().enumerate() {
        let want = i as u64 + 1;
        if r.seq != want {
            return Err(Broken {
                seq: r.seq,
                why: format!("out of place (expected record {want}): one was removed or moved"),
            });
        }
        if r.prev != prev {
            return Err(Broken {
                seq: r.seq,
                why: "does not follow the record before it".into(),
            });
        }
        if r.compute_hash() != r.hash {
            return Err(Broken {
                seq: r.seq,
                why: "its contents were changed after it was written".into(),
            });
        }
        prev = r.hash.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(n: u64) -> Vec<AuditRecord> {
        let mut prev = hex::encode(genesis());
        (1..=n)
            .map(|seq| {
                let r = AuditRecord::new(
                    seq,
                    &prev,
                    "2026-11-30T10:00:00Z".parse().unwrap(),
                    Who {
                        via: "socket".into(),
                        user: Some("root".into()),
                        name: Some("Nguyễn Văn A".into()),
                        detail: None,
                    },
                    "recording.export",
                    Some(format!("s{seq}")),
                    "done".into(),
                );
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    #[test]
    fn a_trail_verifies_and_any_change_breaks_it_where_it_was_made() {
        let t = trail(5);
        assert_eq!(verify(&t), Ok(()));
        let mut edited = t.clone();
        edited[2].who.name = Some("someone else".into());
        assert_eq!(verify(&edited).unwrap_err().seq, 3);
        let mut removed = t.clone();
        removed.remove(1);
        assert_eq!(verify(&removed).unwrap_err().seq, 3);
        let mut swapped = t.clone();
        swapped.swap(1, 2);
        assert!(verify(&swapped).is_err());
        // Rehashing an edited record does not help: the next one no
        // longer follows it.
        let mut rehashed = t.clone();
        rehashed[2].outcome = "refused".into();
        rehashed[2].hash = rehashed[2].compute_hash();
        assert_eq!(verify(&rehashed).unwrap_err().seq, 4);
        // Truncation is not detectable by the chain alone (the NOC holds
        // the events, with their hashes, for that).
        assert_eq!(verify(&t[..3]), Ok(()));
    }

    #[test]
    fn names_are_cleaned_and_described() {
        assert_eq!(clean_name("  Trần Thị B\n"), Some("Trần Thị B".into()));
        assert_eq!(clean_name(" \t "), None);
        assert_eq!(clean_name(&"x".repeat(100)).unwrap().len(), 64);
        let w = Who {
            via: "mqtt".into(),
            user: None,
            name: Some("noc-an".into()),
            detail: Some("cmd-7".into()),
        };
        assert_eq!(w.describe(), "mqtt cmd-7 (noc-an)");
    }
}
