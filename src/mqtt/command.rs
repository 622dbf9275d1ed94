//! Commands from the NOC, pure: parse and validate `cmd/<name>` payloads
//! into [`Envelope`]s, and the reply format. The commands themselves and
//! their arguments are `core::command`'s, shared with the socket; this is
//! only MQTT's envelope around them.
//!
//! A command is `{"id": "...", "expires_at": "RFC 3339", "args": {...}}`.
//! Everything is checked before anything is done: size, UTF-8, JSON, the
//! envelope's fields (no unknown ones), the id, the command name, the
//! arguments of that command (no unknown ones), and the expiry. A failure
//! yields a [`Rejection`] carrying the reply status (`rejected` or
//! `expired`), the id if one could be read, and a reason a person can act
//! on. Nothing here can panic on any input (fuzzed by proptest below).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::core::command::{self, Alias, Command, Transport};
use serde_json::Value;

/// Largest command payload accepted, in bytes.
pub const MAX_PAYLOAD: usize = 16 * 1024;
/// Longest command id.
pub const MAX_ID: usize = 128;
/// Every command name MQTT takes (commands and deprecated aliases), for
/// the API document.
pub fn names() -> Vec<&'static str> {
    let mut n = command::names(Transport::Mqtt);
    n.extend(
        command::ALIASES
            .iter()
            .filter(|a| a.transport == Transport::Mqtt)
            .map(|a| a.name),
    );
    n
}

/// The status of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyStatus {
    /// Valid and under way; a `done` or `failed` reply follows.
    Accepted,
    Done,
    /// Malformed or refused in the current state; nothing was changed.
    Rejected,
    /// Accepted, but carrying it out failed.
    Failed,
    /// `expires_at` had passed when the box received it; not executed.
    Expired,
    /// This id was seen before; not executed again.
    Duplicate,
}

impl ReplyStatus {
    /// Whether no further reply follows.
    pub fn is_final(self) -> bool {
        self != ReplyStatus::Accepted
    }
}

/// A reply, published to the MQTT 5 response topic (with the correlation
/// data) and to `PREFIX/<site>/cmd/<name>/reply`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandReply {
    /// The command's id; `null` when the payload had none that could be read.
    pub id: Option<String>,
    /// The box that answers (fleet commands are answered by every box).
    pub site: String,
    pub command: String,
    pub status: ReplyStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    pub at: DateTime<Utc>,
}

/// A validated command with its envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub id: String,
    pub name: String,
    pub expires_at: DateTime<Utc>,
    pub command: Command,
    /// Set when the name is a deprecated one: the reply takes its old shape.
    pub alias: Option<&'static Alias>,
    /// The NOC's operator, as the command says (`by`, cleaned).
    pub by: Option<String>,
}

/// Why a command is not executed; becomes a reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub id: Option<String>,
    pub status: ReplyStatus,
    pub reason: String,
}

impl Rejection {
    fn new(id: Option<&str>, reason: impl Into<String>) -> Self {
        Self {
            id: id.map(str::to_owned),
            status: ReplyStatus::Rejected,
            reason: reason.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvelope {
    id: String,
    expires_at: DateTime<Utc>,
    #[serde(default)]
    args: Value,
    /// Who at the NOC sent it, as the NOC says (for the audit trail).
    #[serde(default)]
    by: Option<String>,
}

/// An id is 1 to [`MAX_ID`] printable ASCII characters: it is logged,
/// stored as a key and echoed into topics' payloads.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Parse and validate a command named `name` (the last topic level).
pub fn parse(
    name: &str,
    payload: &[u8],
    now: DateTime<Utc>,
    max_ttl: Duration,
) -> Result<Envelope, Rejection> {
    if payload.len() > MAX_PAYLOAD {
        return Err(Rejection::new(
            None,
            format!(
                "payload too large ({} bytes; at most {MAX_PAYLOAD})",
                payload.len()
            ),
        ));
    }
    let text = std::str::from_utf8(payload)
        .map_err(|_| Rejection::new(None, "payload is not UTF-8 text; expected a JSON object"))?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Rejection::new(
            None,
            format!("payload is not JSON ({e}); expected {{\"id\":..., \"expires_at\":..., \"args\":{{...}}}}"),
        )
    })?;
    // Read the id first, loosely, so that even a malformed envelope gets a
    // reply the NOC can match.
    let loose_id = value
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| valid_id(id))
        .map(str::to_owned);
    let id_ref = loose_id.as_deref();
    let raw: RawEnvelope = serde_json::from_value(value).map_err(|e| {
        Rejection::new(
            id_ref,
            format!("malformed command: {e}; expected {{\"id\": string, \"expires_at\": RFC 3339 time, \"args\": object}}"),
        )
    })?;
    if !valid_id(&raw.id) {
        return Err(Rejection::new(
            None,
            format!("id must be 1 to {MAX_ID} printable ASCII characters without spaces"),
        ));
    }
    let (command, alias) =
        parse_args(name, raw.args).map_err(|reason| Rejection::new(id_ref, reason))?;
    if raw.expires_at <= now {
        return Err(Rejection {
            id: Some(raw.id),
            status: ReplyStatus::Expired,
            reason: format!(
                "expired at {} (now {})",
                raw.expires_at.to_rfc3339(),
                now.to_rfc3339()
            ),
        });
    }
    let horizon = chrono::Duration::from_std(max_ttl).unwrap_or(chrono::Duration::days(7));
    if raw.expires_at > now + horizon {
        return Err(Rejection::new(
            Some(&raw.id),
            format!(
                "expires_at {} is more than {} s ahead; commands must expire sooner so that replays can be recognised",
                raw.expires_at.to_rfc3339(),
                max_ttl.as_secs()
            ),
        ));
    }
    Ok(Envelope {
        id: raw.id,
        name: name.to_owned(),
        expires_at: raw.expires_at,
        command,
        alias,
        by: raw.by.as_deref().and_then(crate::core::audit::clean_name),
    })
}

fn parse_args(name: &str, args: Value) -> Result<(Command, Option<&'static Alias>), String> {
    if let Some(alias) = command::alias(name, Transport::Mqtt) {
        return Ok((command::parse_alias(alias, args)?, Some(alias)));
    }
    if command::spec(name).is_some() && !command::allowed(name, Transport::Mqtt) {
        return Err(format!(
            "{name} is not available over MQTT; it is for someone at the box"
        ));
    }
    match command::parse(name, args) {
        Ok(c) => Ok((c, None)),
        Err(e) if e.starts_with("unknown command") => {
            let shown: String = name.chars().take(64).collect();
            Err(format!(
                "unknown command '{shown}'; expected one of: {}",
                names().join(", ")
            ))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TTL: Duration = Duration::from_secs(3600);

    fn now() -> DateTime<Utc> {
        "2026-03-01T08:00:00Z".parse().unwrap()
    }

    fn cmd(name: &str, json: &str) -> Result<Envelope, Rejection> {
        parse(name, json.as_bytes(), now(), TTL)
    }

    #[test]
    fn diagnostics_runs_the_self_test_only_when_asked() {
        let plain = cmd(
            "diagnostics",
            r#"{"id":"d1","expires_at":"2026-03-01T08:01:00Z"}"#,
        );
        assert_eq!(
            plain.unwrap().command,
            Command::Diagnostics { self_test: false }
        );
        let full = cmd(
            "diagnostics",
            r#"{"id":"d2","expires_at":"2026-03-01T08:01:00Z","args":{"self_test":true}}"#,
        );
        assert_eq!(
            full.unwrap().command,
            Command::Diagnostics { self_test: true }
        );
        let wrong = cmd(
            "diagnostics",
            r#"{"id":"d3","expires_at":"2026-03-01T08:01:00Z","args":{"selftest":true}}"#,
        );
        assert!(wrong.unwrap_err().reason.contains("selftest"));
    }

    #[test]
    fn parses_valid_commands() {
        let e = cmd(
            "session.start",
            r#"{"id":"c1","expires_at":"2026-03-01T08:01:00Z","args":{"metadata":{"case":"HS-1"}}}"#,
        )
        .unwrap();
        assert_eq!(e.id, "c1");
        assert_eq!(
            e.command,
            Command::SessionStart {
                metadata: [("case".into(), "HS-1".into())].into()
            }
        );
        let e = cmd(
            "rebirth",
            r#"{"id":"c2","expires_at":"2026-03-01T08:01:00+07:00"}"#,
        );
        assert_eq!(
            e.unwrap_err().status,
            ReplyStatus::Expired,
            "+07:00 is 01:01Z"
        );
        let e = cmd(
            "recordings.list",
            r#"{"id":"c3","expires_at":"2026-03-01T08:01:00Z","args":{}}"#,
        )
        .unwrap();
        assert_eq!(e.command, Command::SessionHistory { limit: 50 });
        assert_eq!(e.alias.map(|a| a.name), Some("recordings.list"));
    }

    #[test]
    fn rejections_say_why_and_keep_the_id() {
        let r = cmd(
            "session.stop",
            r#"{"id":"c1","expires_at":"2026-03-01T08:01:00Z","args":{"force":true}}"#,
        )
        .unwrap_err();
        assert_eq!(r.status, ReplyStatus::Rejected);
        assert_eq!(r.id.as_deref(), Some("c1"));
        assert!(r.reason.contains("force"), "{}", r.reason);

        let r = cmd("fly", r#"{"id":"c1","expires_at":"2026-03-01T08:01:00Z"}"#).unwrap_err();
        assert!(r.reason.contains("unknown command 'fly'"), "{}", r.reason);

        let r = cmd("rebirth", r#"{"id":"c1"}"#).unwrap_err();
        assert!(r.reason.contains("expires_at"), "{}", r.reason);
        assert_eq!(r.id.as_deref(), Some("c1"));

        let r = cmd(
            "rebirth",
            r#"{"id":"c1","expires_at":"2027-03-01T08:01:00Z"}"#,
        )
        .unwrap_err();
        assert!(r.reason.contains("ahead"), "{}", r.reason);

        let r = cmd("rebirth", "not json").unwrap_err();
        assert_eq!(r.id, None);
        assert!(r.reason.contains("not JSON"));

        let r = cmd(
            "rebirth",
            r#"{"id":"has space","expires_at":"2026-03-01T08:01:00Z"}"#,
        )
        .unwrap_err();
        assert!(r.reason.contains("printable"));

        let big = format!(
            r#"{{"id":"x","expires_at":"2026-03-01T08:01:00Z","pad":"{}"}}"#,
            "a".repeat(MAX_PAYLOAD)
        );
        assert!(cmd("rebirth", &big)
            .unwrap_err()
            .reason
            .contains("too large"));

        let r = cmd(
            "camera.preset",
            r#"{"id":"c","expires_at":"2026-03-01T08:01:00Z","args":{"preset":"one"}}"#,
        )
        .unwrap_err();
        assert!(
            r.reason.contains("bad args for camera.preset"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn expired_beats_nothing_else() {
        // A malformed and expired command is rejected for being malformed.
        let r = cmd(
            "session.stop",
            r#"{"id":"c","expires_at":"2020-01-01T00:00:00Z","args":{"x":1}}"#,
        )
        .unwrap_err();
        assert_eq!(r.status, ReplyStatus::Rejected);
        let r = cmd(
            "session.stop",
            r#"{"id":"c","expires_at":"2020-01-01T00:00:00Z"}"#,
        )
        .unwrap_err();
        assert_eq!(r.status, ReplyStatus::Expired);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(name in "[a-z.]{0,20}", bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            match parse(&name, &bytes, now(), TTL) {
                Ok(e) => prop_assert!(valid_id(&e.id)),
                Err(r) => prop_assert!(!r.reason.is_empty()),
            }
        }

        #[test]
        fn arbitrary_json_never_panics(
            id in proptest::option::of("[ -~]{0,200}"),
            exp in proptest::option::of("[0-9TZ:+-]{0,30}"),
            args in proptest::option::of(any::<u32>()),
            name in proptest::sample::select(names()),
        ) {
            let mut v = serde_json::Map::new();
            if let Some(id) = id { v.insert("id".into(), id.into()); }
            if let Some(e) = exp { v.insert("expires_at".into(), e.into()); }
            if let Some(a) = args { v.insert("args".into(), serde_json::json!({"preset": a, "limit": a})); }
            let bytes = serde_json::to_vec(&v).unwrap();
            if let Err(r) = parse(name, &bytes, now(), TTL) {
                prop_assert!(!r.reason.is_empty());
            }
        }
    }
}
