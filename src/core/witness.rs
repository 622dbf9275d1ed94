//! A recording against the chain witnesses the NOC kept (`chain_witness`
//! events, docs/RECORDING-FORMAT.md "Time"): each says that at its time
//! the session's first `segments` segments hashed to `chain_head`. A copy
//! whose chain does not pass through a witnessed head, or that is shorter
//! than a witness says it was, is not the recording the box was making.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// One witness as the NOC stored it (the event, with its envelope).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Witness {
    /// When the box sent it, by the box's clock.
    pub at: DateTime<Utc>,
    /// When the NOC received it, by the NOC's clock, if the NOC kept that
    /// beside the event: the time that does not depend on the box.
    #[serde(default)]
    pub received_at: Option<DateTime<Utc>>,
    pub session: String,
    pub segments: u32,
    pub chain_head: String,
    #[serde(default)]
    pub far_segments: Option<u32>,
    #[serde(default)]
    pub far_chain_head: Option<String>,
    #[serde(default)]
    pub closing: bool,
}

/// The `chain_witness` events in `text`: JSON lines, or one JSON array, of
/// events as the NOC received them; other events are skipped.
pub fn read(text: &str) -> Result<Vec<Witness>, String> {
    let values: Vec<serde_json::Value> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text).map_err(|e| format!("not a JSON array of events: {e}"))?
    } else {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| format!("line {}: not JSON: {e}", i + 1))
            })
            .collect::<Result<_, _>>()?
    };
    values
        .into_iter()
        .filter(|v| v["type"] == "chain_witness")
        .map(|v| serde_json::from_value(v).map_err(|e| format!("a chain_witness event: {e}")))
        .collect()
}

/// What the witnesses say about one track.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Judged {
    /// Witnesses of this track that hold.
    pub held: usize,
    /// The latest that held, and how many segments it covered.
    pub last: Option<(DateTime<Utc>, u32)>,
    pub problems: Vec<String>,
}

/// Check one track's chain (`chains[i]` is segment i's `chain`, `head`
/// the manifest's `chain_head`) against its witnesses.
pub fn judge<'a>(
    chains: &[String],
    head: &str,
    witnessed: impl Iterator<Item = (DateTime<Utc>, u32, &'a str, bool)>,
) -> Judged {
    let mut j = Judged::default();
    for (at, n, w_head, closing) in witnessed {
        if n == 0 {
            continue;
        }
        let when = at.format("%Y-%m-%d %H:%M:%S UTC");
        match chains.get(n as usize - 1) {
            None => j.problems.push(format!(
                "the NOC witnessed {n} segments at {when}; this copy has {}",
                chains.len()
            )),
            Some(c) if c != w_head => j.problems.push(format!(
                "the NOC witnessed another chain at {when} (after {n} segments)"
            )),
            Some(_) if closing && (n as usize != chains.len() || head != w_head) => {
                j.problems.push(format!(
                    "the NOC witnessed the recording closed at {when} with {n} segments; this copy has {}",
                    chains.len()
                ))
            }
            Some(_) => {
                j.held += 1;
                if j.last.is_none_or(|(t, _)| at > t) {
                    j.last = Some((at, n));
                }
            }
        }
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn witnesses_hold_on_the_chain_and_catch_a_cut_or_a_changed_copy() {
        let chains: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let ok = judge(
            &chains,
            "d",
            [
                (t("2026-11-30T08:01:00Z"), 2, "b", false),
                (t("2026-11-30T08:02:00Z"), 4, "d", true),
            ]
            .into_iter(),
        );
        assert_eq!(ok.held, 2);
        assert_eq!(ok.last, Some((t("2026-11-30T08:02:00Z"), 4)));
        assert!(ok.problems.is_empty());
        // A copy cut after the third segment and re-signed.
        let cut = judge(
            &chains[..3],
            "c",
            [(t("2026-11-30T08:02:00Z"), 4, "d", true)].into_iter(),
        );
        assert_eq!(cut.held, 0);
        assert!(cut.problems[0].contains("has 3"), "{:?}", cut.problems);
        // Another chain.
        let other = judge(
            &chains,
            "d",
            [(t("2026-11-30T08:01:00Z"), 2, "x", false)].into_iter(),
        );
        assert!(other.problems[0].contains("another chain"));
    }

    #[test]
    fn events_are_read_from_lines_or_an_array() {
        let line = r#"{"id":"xa-1","seq":1,"site":"xa","at":"2026-11-30T08:01:00Z","type":"chain_witness","session":"s","segments":2,"bytes":9,"chain_head":"b","closing":false}"#;
        let other = r#"{"id":"xa-2","seq":2,"site":"xa","at":"2026-11-30T08:01:00Z","type":"session_started","session":"s"}"#;
        assert_eq!(read(&format!("{line}\n{other}\n")).unwrap().len(), 1);
        assert_eq!(read(&format!("[{line},{other}]")).unwrap().len(), 1);
        assert!(read("{not json").is_err());
    }
}
