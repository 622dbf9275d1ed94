//! The local control API: newline-delimited JSON over a Unix socket.
//!
//! One request per line, one reply per line:
//! `{"cmd":"status"}`, `{"cmd":"start","metadata":{"case":"HS-12"}}`,
//! `{"cmd":"stop"}`. Replies are `{"ok":true,"result":...}` or
//! `{"ok":false,"error":{"code":"...","message":"..."}}`. A request longer
//! than [`MAX_REQUEST`] bytes or that is not valid gets an error reply and
//! changes nothing.

pub mod client;
pub mod server;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::core::status::ErrorCode;

/// Largest request line accepted, in bytes.
pub const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    // Braces so that `deny_unknown_fields` applies to these too.
    Status {},
    Start {
        #[serde(default)]
        metadata: BTreeMap<String, String>,
    },
    Stop {},
    RecordingsList {},
    RecordingsShow {
        id: String,
    },
    RecordingsVerify {
        id: String,
    },
    RecordingsManifest {
        id: String,
    },
    /// Replies with `{"bytes":N}`, then N raw bytes of MPEG-TS.
    RecordingsExport {
        id: String,
    },
    RecordingsDelete {
        id: String,
        #[serde(default)]
        force: bool,
    },
    CameraPresets {},
    CameraPresetSave {
        name: String,
    },
    CameraPresetRecall {
        name: String,
    },
    CameraPresetDelete {
        name: String,
    },
    /// Wait up to `seconds` (1 to 60) for a press of the room's button, which
    /// then starts or ends nothing. Replies `{"pressed": bool}`. Idle only.
    ButtonTest {
        seconds: u64,
    },
    /// Show colour bars on the room's screen for `seconds` (1 to 30), with
    /// words saying it is a test. Idle only. Replies `{"seconds": n}`.
    DisplayTest {
        seconds: u64,
    },
    /// Play an 880 Hz beep on the room's speaker for `seconds` (1 to 10).
    /// Idle only. Replies `{"seconds": n}`.
    SpeakerTest {
        seconds: u64,
    },
}


#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

impl Reply {
    pub fn ok(result: impl Serialize) -> Self {
        Self {
            ok: true,
            result: Some(serde_json::to_value(result).expect("API results always serialise")),
            error: None,
        }
    }

    pub fn err(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            ok: false,
            result: None,
            error: Some(ApiError {
                code,
                message: message.into(),
            }),
        }
    }
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
    serde_json::from_str(text.trim()).map_err(|e| {
        format!(
            "malformed request: {e}; expected one JSON object per line such as {{\"cmd\":\"status\"}} (commands: status, start, stop, recordings_list, recordings_show, recordings_verify, recordings_manifest, recordings_export, recordings_delete)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_commands() {
        assert_eq!(
            parse_request(br#"{"cmd":"status"}"#),
            Ok(Request::Status {})
        );
        assert_eq!(
            parse_request(br#"{"cmd":"start","metadata":{"case":"HS-1"}}"#),
            Ok(Request::Start {
                metadata: [("case".to_owned(), "HS-1".to_owned())].into()
            })
        );
    }

    #[test]
    fn rejects_unknown_and_extra() {
        assert!(parse_request(br#"{"cmd":"reboot"}"#).is_err());
        assert!(parse_request(br#"{"cmd":"stop","force":true}"#).is_err());
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
