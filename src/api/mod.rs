//! The local control API: newline-delimited JSON over a Unix socket, a thin
//! adapter over the command layer (`control`).
//!
//! One request per line, one reply per line:
//! `{"cmd":"status"}`, `{"cmd":"session.start","args":{"metadata":{"case":"HS-12"}}}`,
//! `{"cmd":"session.stop"}`. The commands and their arguments are those of
//! `core::command` (`docs/socket-api.md` lists them); names from before the
//! command layer (`start`, `recordings_list`, ...) are still answered as
//! they were, arguments beside `cmd`. Replies are `{"ok":true,"result":...}`
//! or `{"ok":false,"error":{"code":"...","message":"..."}}`. A request
//! longer than [`MAX_REQUEST`] bytes or that is not valid gets an error
//! reply and changes nothing.

pub mod server;

use serde_json::Value;

use crate::core::command::{self, Alias, Command, Transport};

/// Largest request line accepted, in bytes.
pub const MAX_REQUEST: usize = 64 * 1024;

/// A parsed request line.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub command: Command,
    /// Set when the request used a deprecated name: the reply takes that
    /// name's old shape.
    pub alias: Option<&'static Alias>,
    /// The person's name the CLI asked for (`"by"`), for the audit trail.
    pub by: Option<String>,
}

/// Parse one request line. The error text is what the client is told.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    if line.len() > MAX_REQUEST {
        return Err(format!(
            "request too large ({} bytes; at most {MAX_REQUEST})",
            line.len()
        ));
    }
    let text = std::str::from_utf8(line).map_err(|_| "request is not UTF-8 text".to_owned())?;
    let expected = || {
        format!(
            "expected one JSON object per line such as {{\"cmd\":\"status\"}} or {{\"cmd\":\"recording.show\",\"args\":{{\"id\":\"...\"}}}} (commands: {})",
            command::names(Transport::Socket).join(", ")
        )
    };
    let value: Value = serde_json::from_str(text.trim())
        .map_err(|e| format!("malformed request: {e}; {}", expected()))?;
    let Value::Object(mut fields) = value else {
        return Err(format!("malformed request: not an object; {}", expected()));
    };
    let name = match fields.remove("cmd") {
        Some(Value::String(n)) => n,
        _ => {
            return Err(format!(
                "malformed request: no \"cmd\" string; {}",
                expected()
            ))
        }
    };
    if let Some(alias) = command::alias(&name, Transport::Socket) {
        // The old form: arguments beside `cmd`.
        let command = command::parse_alias(alias, Value::Object(fields))?;
        return Ok(Request {
            command,
            alias: Some(alias),
            by: None,
        });
    }
    let args = fields.remove("args").unwrap_or(Value::Null);
    let by = match fields.remove("by") {
        None | Some(Value::Null) => None,
        Some(Value::String(b)) => crate::core::audit::clean_name(&b),
        Some(_) => {
            return Err(
                "malformed request: \"by\" is the name of the person asking, a string".into(),
            )
        }
    };
    if let Some(extra) = fields.keys().next() {
        let shown: String = extra.chars().take(64).collect();
        return Err(format!(
            "malformed request: unknown field '{shown}'; arguments go in \"args\""
        ));
    }
    if command::spec(&name).is_some() && !command::allowed(&name, Transport::Socket) {
        return Err(format!(
            "{name} is not available over {}",
            Transport::Socket.name()
        ));
    }
    let command = command::parse(&name, args)?;
    Ok(Request {
        command,
        alias: None,
        by,
    })
}

/// The socket's reference (`docs/socket-api.md`), generated from the one
/// table in `core::command`; `tests/generated_docs.rs` keeps the file
/// current.
pub fn reference() -> String {
    use std::fmt::Write;
    let mut out = String::from(
        "# The local socket API\n\n\
         <!-- Generated from src/core/command.rs by src/api/mod.rs; a test fails if this file differs. -->\n\n\
         The daemon listens on a Unix socket (`/run/diemcau/api.sock`, group `diemcau`). \
         One request per line, one reply per line, JSON:\n\n\
         ```text\n\
         {\"cmd\":\"recording.show\",\"args\":{\"id\":\"...\"}}\n\
         {\"ok\":true,\"result\":...}\n\
         {\"ok\":false,\"error\":{\"code\":\"bad_request|rejected|failed|unavailable\",\"message\":\"...\"}}\n\
         ```\n\n\
         A line is at most 64 KiB. `bad_request`: the request is malformed (nothing was done); \
         `rejected`: valid but refused now (nothing was changed); `failed`: carrying it out failed; \
         `unavailable`: the daemon is stopping. The same commands, with the same results, \
         are MQTT's `cmd/<name>` (`docs/mqtt-api.asyncapi.yaml`); the last column says which \
         transport may use each.\n\n\
         ## Commands\n\n\
         | command | arguments | result | socket | MQTT |\n\
         |---|---|---|---|---|\n",
    );
    let yes = |b: bool| if b { "yes" } else { "no" };
    for s in command::SPECS {
        let args: Vec<String> = s
            .args
            .iter()
            .map(|a| {
                format!(
                    "`{}` ({}{}): {}",
                    a.name,
                    a.ty,
                    if a.required { ", required" } else { "" },
                    a.doc
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "| `{}` — {} | {} | {} | {} | {} |",
            s.name,
            s.summary,
            if args.is_empty() {
                "none".to_owned()
            } else {
                args.join("; ")
            },
            s.result.replace('|', "\\|"),
            yes(s.socket),
            yes(s.mqtt)
        );
    }
    out.push_str(
        "\n## Deprecated names\n\n\
         Kept for at least one release; they answer exactly as before the command layer. \
         Their arguments stand beside `cmd` (`{\"cmd\":\"recordings_show\",\"id\":\"...\"}`).\n\n\
         | name | transport | use instead | difference |\n|---|---|---|---|\n",
    );
    for a in command::ALIASES {
        let _ = writeln!(
            out,
            "| `{}` | {} | `{}` | {} |",
            a.name,
            a.transport.name(),
            a.command,
            a.note
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_commands_and_old_names() {
        assert_eq!(
            parse_request(br#"{"cmd":"status"}"#).unwrap().command,
            Command::Status
        );
        let r = parse_request(br#"{"cmd":"start","metadata":{"case":"HS-1"}}"#).unwrap();
        assert_eq!(
            r.command,
            Command::SessionStart {
                metadata: [("case".to_owned(), "HS-1".to_owned())].into()
            }
        );
        assert_eq!(r.alias.map(|a| a.name), Some("start"));
        let r = parse_request(br#"{"cmd":"session.start","args":{"metadata":{"case":"HS-1"}}}"#)
            .unwrap();
        assert!(r.alias.is_none());
        assert!(matches!(r.command, Command::SessionStart { .. }));
    }

    #[test]
    fn rejects_unknown_and_extra() {
        assert!(parse_request(br#"{"cmd":"fly"}"#).is_err());
        assert!(parse_request(br#"{"cmd":"stop","force":true}"#).is_err());
        assert!(parse_request(br#"{"cmd":"session.stop","force":true}"#).is_err());
        assert!(parse_request(br#"{"cmd":"config.set","args":{"toml":""}}"#)
            .unwrap_err()
            .contains("not available"));
        assert!(parse_request(br#"["status"]"#).is_err());
        assert!(parse_request(b"\xff\xfe").is_err());
        assert!(parse_request(&vec![b' '; MAX_REQUEST + 1])
            .unwrap_err()
            .contains("too large"));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_request(&bytes);
        }
    }
}
