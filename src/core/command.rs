//! Every operator action, defined once: its name, its arguments, which
//! transport may use it, and the shape of its result. The Unix socket
//! (`api`) and MQTT (`mqtt`) are thin adapters over this definition: they
//! parse their wire format into a [`Command`], the command layer
//! (`control`) carries it out, and they serialise the same result.
//!
//! Names are `noun.verb` (`session.start`, `recording.verify`). Names used
//! before this layer existed stay as [`ALIASES`] for at least one release,
//! returning what they returned then; the socket reference and the AsyncAPI
//! document mark them deprecated. Parsing is pure and never panics (fuzzed
//! below).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::status::ErrorCode;

/// The version of the command API (names, arguments, results) this box
/// speaks, published in the retained `status` so a NOC can tell a mixed
/// fleet apart during a staged update. 1: before the command layer (no
/// field); 2: `core::command`'s names, old ones as deprecated aliases.
pub const API_VERSION: u32 = 2;

/// Session metadata limits: entries, key length, value length.
pub const MAX_META: (usize, usize, usize) = (32, 64, 1024);

/// How a command reached the box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// The local Unix socket: someone at the box (the CLI, `doctor`).
    Socket,
    /// MQTT: the provincial NOC.
    Mqtt,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Socket => "the local socket",
            Transport::Mqtt => "MQTT",
        }
    }
}

/// What to do with a camera preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresetAction {
    Recall,
    Save,
    Delete,
}

/// Which still `snapshot` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StillSource {
    /// What the camera sends to the encoder.
    Camera,
    /// What the people in the room see on the screen.
    Screen,
}

impl StillSource {
    pub fn as_str(self) -> &'static str {
        match self {
            StillSource::Camera => "camera",
            StillSource::Screen => "screen",
        }
    }
}

/// The largest still (JPEG bytes) a reply carries: base64 makes it a third
/// larger, so the reply stays within 200 KB, which brokers' defaults and
/// the NOC's dashboards take without trouble.
pub const STILL_MAX_BYTES: usize = 150 * 1024;

/// A validated command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Status,
    SessionStart {
        metadata: BTreeMap<String, String>,
    },
    SessionStop,
    SessionHistory {
        limit: usize,
    },
    RecordingList,
    RecordingShow {
        id: String,
    },
    RecordingVerify {
        id: String,
    },
    RecordingManifest {
        id: String,
    },
    /// Socket only: a header line with the size, then the raw bytes.
    RecordingExport {
        id: String,
    },
    RecordingDelete {
        id: String,
        force: bool,
    },
    CameraPresets,
    CameraPreset {
        name: String,
        action: PresetAction,
    },
    ConfigGet,
    ConfigSet {
        toml: String,
    },
    /// The box's state; with `self_test`, also the technician's self-test
    /// (`diemcau doctor`, without the questions that need someone there).
    Diagnostics {
        self_test: bool,
    },
    UploadRetry {
        session: Option<String>,
    },
    Reboot,
    /// MQTT only: publish the retained topics again (handled by the adapter).
    Rebirth,
    ButtonTest {
        seconds: u64,
    },
    DisplayTest {
        seconds: u64,
    },
    SpeakerTest {
        seconds: u64,
    },
    /// A JPEG still of the camera or the screen, `width` pixels wide; in
    /// the reply, or in the archive's object store when `archive` is asked
    /// or the still is larger than a reply carries.
    Snapshot {
        source: StillSource,
        width: u32,
        archive: bool,
    },
    /// The schedules the box holds and the occurrences they make.
    ScheduleShow,
    /// The box's journal for a time range, secrets removed, compressed, to
    /// the archive's object store.
    LogsUpload {
        since: Option<chrono::DateTime<chrono::Utc>>,
        until: Option<chrono::DateTime<chrono::Utc>>,
    },
}

/// One argument, for the documents generated from [`SPECS`].
#[derive(Debug, Clone, Copy)]
pub struct Arg {
    pub name: &'static str,
    /// JSON Schema type.
    pub ty: &'static str,
    pub required: bool,
    pub doc: &'static str,
}

/// One command as published: the socket reference and the AsyncAPI
/// document are generated from these, and [`allowed`] reads them.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub summary: &'static str,
    pub args: &'static [Arg],
    /// What `result` holds on success.
    pub result: &'static str,
    pub socket: bool,
    pub mqtt: bool,
    /// Over MQTT, an `accepted` reply comes first and the final one later.
    pub acknowledged: bool,
}

const fn arg(name: &'static str, ty: &'static str, required: bool, doc: &'static str) -> Arg {
    Arg {
        name,
        ty,
        required,
        doc,
    }
}

const ID: Arg = arg("id", "string", true, "the recording's session id");

/// Every command, and which transport may use it: the one table.
///
/// Deleting a recording is for an operator at the box (the socket), since
/// with `force` it removes what the archive never confirmed; the button test
/// needs someone to press; `config.set` restarts the daemon, which ends a
/// socket connection, and at the box the site file is the way; someone at
/// the box who wants a reboot has `systemctl reboot`.
pub const SPECS: &[Spec] = &[
    Spec { name: "status", summary: "What the box is doing: phase, session, devices, link, recording, upload.", args: &[], result: "the status object", socket: true, mqtt: true, acknowledged: false },
    Spec { name: "session.start", summary: "Start a session (waits until live).", args: &[arg("metadata", "object", false, "case metadata, string values: at most 32 entries, keys 1-64 bytes, values up to 1024 bytes")], result: "{\"session\": the session record}", socket: true, mqtt: true, acknowledged: true },
    Spec { name: "session.stop", summary: "End the session (waits until closed).", args: &[], result: "{\"session\": the session record}", socket: true, mqtt: true, acknowledged: true },
    Spec { name: "session.history", summary: "Finished sessions, newest first.", args: &[arg("limit", "integer", false, "1 to 1000, default 50")], result: "{\"sessions\": [session records]}", socket: true, mqtt: true, acknowledged: false },
    Spec { name: "recording.list", summary: "Recordings on the box, newest first, with upload state.", args: &[], result: "{\"recordings\": [recordings]}", socket: true, mqtt: true, acknowledged: false },
    Spec { name: "recording.show", summary: "One recording: its segments, gaps and upload state.", args: &[ID], result: "{\"session\": recording, \"segments\": [segments]}", socket: true, mqtt: true, acknowledged: false },
    Spec { name: "recording.verify", summary: "Check a recording's hash chain, signature and gaps.", args: &[ID], result: "the verification report", socket: true, mqtt: true, acknowledged: false },
    Spec { name: "recording.manifest", summary: "A recording's signed manifest.", args: &[ID], result: "the manifest", socket: true, mqtt: true, acknowledged: false },
    Spec { name: "recording.export", summary: "The recording as one MPEG-TS stream: a reply line {\"bytes\": N}, then N raw bytes.", args: &[ID], result: "{\"bytes\": N} then the bytes", socket: true, mqtt: false, acknowledged: false },
    Spec { name: "recording.delete", summary: "Delete a recording; without force only one the archive confirmed.", args: &[ID, arg("force", "boolean", false, "also delete what the archive has not confirmed (an operator's decision)")], result: "{\"freed_bytes\": N}", socket: true, mqtt: false, acknowledged: false },
    Spec { name: "camera.presets", summary: "The camera positions saved by name.", args: &[], result: "{\"presets\": [presets]}", socket: true, mqtt: true, acknowledged: false },
    Spec { name: "camera.preset", summary: "Recall, save (the current position) or delete a camera preset.", args: &[arg("name", "string", true, "the preset's name"), arg("action", "string", false, "recall (default), save or delete")], result: "the preset, or {\"deleted\": name}", socket: true, mqtt: true, acknowledged: false },
    Spec { name: "config.get", summary: "The configuration file, secrets replaced by ***.", args: &[], result: "{\"version\", \"path\", \"config\"}", socket: true, mqtt: true, acknowledged: false },
    Spec { name: "config.set", summary: "Replace the configuration between sessions: validated, written atomically, applied by a restart in place, rolled back if the box cannot start with it. A secret written *** (as config.get shows it) keeps the box's value.", args: &[arg("toml", "string", true, "the whole new configuration file")], result: "accepted, then done or failed from the restarted daemon", socket: false, mqtt: true, acknowledged: true },
    Spec { name: "diagnostics", summary: "The box's state; with self_test, also the technician's self-test (about half a minute).", args: &[arg("self_test", "boolean", false, "run doctor's checks (the questions for a person are skipped)")], result: "{\"status\", \"doctor\"?, \"mqtt\"? (over MQTT)}", socket: true, mqtt: true, acknowledged: false },
    Spec { name: "upload.retry", summary: "Retry the archive upload now instead of at the end of its backoff.", args: &[arg("session", "string", false, "accepted for compatibility; the upload always takes the oldest unconfirmed segment first")], result: "{\"retrying\": true, \"backlog_segments\": N}", socket: true, mqtt: true, acknowledged: false },
    Spec { name: "reboot", summary: "Reboot the box (not during a session; [mqtt] allow_reboot).", args: &[], result: "{}", socket: false, mqtt: true, acknowledged: true },
    Spec { name: "rebirth", summary: "Publish the retained status and state again.", args: &[], result: "{\"boot_id\"}", socket: false, mqtt: true, acknowledged: false },
    Spec { name: "button.test", summary: "Wait for a press of the room's button, which then starts or ends nothing. Idle only.", args: &[arg("seconds", "integer", true, "1 to 60")], result: "{\"pressed\": bool}", socket: true, mqtt: false, acknowledged: false },
    Spec { name: "snapshot", summary: "A JPEG still of the camera (what the encoder gets) or of the room's screen, idle or live, without touching the stream or the recording. It shows people: recorded in the audit trail.", args: &[arg("source", "string", true, "\"camera\" or \"screen\""), arg("width", "integer", false, "64 to 1920 pixels (never wider than the source), default 640"), arg("archive", "boolean", false, "true: put the still in the archive's object store and reply with its key and a link; a still above 150 KB (200 KB in the reply) goes there anyway, and is refused on a box with no archive")], result: "{\"source\", \"width\", \"height\", \"bytes\", and \"jpeg_base64\" or \"key\", \"url\" (valid an hour) and \"sealed\" (true on a box with [recording] recipients: the object is an age file, KEY ending in .jpg.age, that only a recipient opens)}", socket: true, mqtt: true, acknowledged: false },
    Spec { name: "schedule.show", summary: "The schedules the box holds (its own, its groups', the holidays) as it took them, the occurrences of the next two weeks in its time zone, and its clock.", args: &[], result: "{\"time_zone\", \"documents\", \"upcoming\": [...], \"clock\"}", socket: true, mqtt: true, acknowledged: false },
    Spec { name: "logs.upload", summary: "The box's journal (the daemon and provisioning) for a time range, every secret the box holds removed, gzip, to the archive's object store; the reply has the object key and a URL that reads it for an hour.", args: &[arg("since", "string", false, "RFC 3339; default an hour before until"), arg("until", "string", false, "RFC 3339; default now; at most 168 hours after since")], result: "{\"key\", \"url\", \"bytes\", \"lines\", \"since\", \"until\"}", socket: true, mqtt: true, acknowledged: true },
    Spec { name: "display.test", summary: "Colour bars with words saying it is a test on the room's screen. Idle only.", args: &[arg("seconds", "integer", true, "1 to 30")], result: "{\"seconds\": n}", socket: true, mqtt: true, acknowledged: false },
    Spec { name: "speaker.test", summary: "An 880 Hz beep on the room's speaker. Idle only.", args: &[arg("seconds", "integer", true, "1 to 10")], result: "{\"seconds\": n}", socket: true, mqtt: true, acknowledged: false },
];

/// A name kept from before the command layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alias {
    pub name: &'static str,
    pub transport: Transport,
    /// The command it stands for.
    pub command: &'static str,
    /// How its arguments or result differ.
    pub note: &'static str,
}

/// Deprecated names, still answered as before.
pub const ALIASES: &[Alias] = &[
    Alias {
        name: "start",
        transport: Transport::Socket,
        command: "session.start",
        note: "arguments beside cmd; the result is the session record itself",
    },
    Alias {
        name: "stop",
        transport: Transport::Socket,
        command: "session.stop",
        note: "the result is the session record itself",
    },
    Alias {
        name: "recordings_list",
        transport: Transport::Socket,
        command: "recording.list",
        note: "the result is the array itself",
    },
    Alias {
        name: "recordings_show",
        transport: Transport::Socket,
        command: "recording.show",
        note: "arguments beside cmd",
    },
    Alias {
        name: "recordings_verify",
        transport: Transport::Socket,
        command: "recording.verify",
        note: "arguments beside cmd",
    },
    Alias {
        name: "recordings_manifest",
        transport: Transport::Socket,
        command: "recording.manifest",
        note: "arguments beside cmd",
    },
    Alias {
        name: "recordings_export",
        transport: Transport::Socket,
        command: "recording.export",
        note: "arguments beside cmd",
    },
    Alias {
        name: "recordings_delete",
        transport: Transport::Socket,
        command: "recording.delete",
        note: "arguments beside cmd",
    },
    Alias {
        name: "camera_presets",
        transport: Transport::Socket,
        command: "camera.presets",
        note: "the result is the array itself",
    },
    Alias {
        name: "camera_preset_save",
        transport: Transport::Socket,
        command: "camera.preset",
        note: "{name} beside cmd; action save",
    },
    Alias {
        name: "camera_preset_recall",
        transport: Transport::Socket,
        command: "camera.preset",
        note: "{name} beside cmd; action recall",
    },
    Alias {
        name: "camera_preset_delete",
        transport: Transport::Socket,
        command: "camera.preset",
        note: "{name} beside cmd; action delete",
    },
    Alias {
        name: "button_test",
        transport: Transport::Socket,
        command: "button.test",
        note: "arguments beside cmd",
    },
    Alias {
        name: "display_test",
        transport: Transport::Socket,
        command: "display.test",
        note: "arguments beside cmd",
    },
    Alias {
        name: "speaker_test",
        transport: Transport::Socket,
        command: "speaker.test",
        note: "arguments beside cmd",
    },
    Alias {
        name: "recordings.list",
        transport: Transport::Mqtt,
        command: "session.history",
        note: "lists session history, not recordings; the result adds a note",
    },
];

/// The spec of a command name (not an alias).
pub fn spec(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name)
}

/// The alias `name` on `transport`, if it is one.
pub fn alias(name: &str, transport: Transport) -> Option<&'static Alias> {
    ALIASES
        .iter()
        .find(|a| a.name == name && a.transport == transport)
}

/// Whether `transport` may use the command `name`.
pub fn allowed(name: &str, transport: Transport) -> bool {
    spec(name).is_some_and(|s| match transport {
        Transport::Socket => s.socket,
        Transport::Mqtt => s.mqtt,
    })
}

/// The names `transport` may use, for error messages.
pub fn names(transport: Transport) -> Vec<&'static str> {
    SPECS
        .iter()
        .filter(|s| allowed(s.name, transport))
        .map(|s| s.name)
        .collect()
}

impl Command {
    /// The command's one name.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Status => "status",
            Command::SessionStart { .. } => "session.start",
            Command::SessionStop => "session.stop",
            Command::SessionHistory { .. } => "session.history",
            Command::RecordingList => "recording.list",
            Command::RecordingShow { .. } => "recording.show",
            Command::RecordingVerify { .. } => "recording.verify",
            Command::RecordingManifest { .. } => "recording.manifest",
            Command::RecordingExport { .. } => "recording.export",
            Command::RecordingDelete { .. } => "recording.delete",
            Command::CameraPresets => "camera.presets",
            Command::CameraPreset { .. } => "camera.preset",
            Command::ConfigGet => "config.get",
            Command::ConfigSet { .. } => "config.set",
            Command::Diagnostics { .. } => "diagnostics",
            Command::UploadRetry { .. } => "upload.retry",
            Command::Reboot => "reboot",
            Command::Rebirth => "rebirth",
            Command::ButtonTest { .. } => "button.test",
            Command::DisplayTest { .. } => "display.test",
            Command::SpeakerTest { .. } => "speaker.test",
            Command::Snapshot { .. } => "snapshot",
            Command::LogsUpload { .. } => "logs.upload",
            Command::ScheduleShow => "schedule.show",
        }
    }
}

impl Command {
    /// The socket request line for this command (without the newline):
    /// `{"cmd": NAME, "args": {...}}`.
    pub fn to_request(&self) -> Value {
        let args = match self {
            Command::SessionStart { metadata } => serde_json::json!({ "metadata": metadata }),
            Command::SessionHistory { limit } => serde_json::json!({ "limit": limit }),
            Command::RecordingShow { id }
            | Command::RecordingVerify { id }
            | Command::RecordingManifest { id }
            | Command::RecordingExport { id } => serde_json::json!({ "id": id }),
            Command::RecordingDelete { id, force } => {
                serde_json::json!({ "id": id, "force": force })
            }
            Command::CameraPreset { name, action } => {
                serde_json::json!({ "name": name, "action": action })
            }
            Command::ConfigSet { toml } => serde_json::json!({ "toml": toml }),
            Command::Diagnostics { self_test } => serde_json::json!({ "self_test": self_test }),
            Command::UploadRetry { session } => serde_json::json!({ "session": session }),
            Command::ButtonTest { seconds }
            | Command::DisplayTest { seconds }
            | Command::SpeakerTest { seconds } => serde_json::json!({ "seconds": seconds }),
            Command::Snapshot {
                source,
                width,
                archive,
            } => {
                serde_json::json!({ "source": source, "width": width, "archive": archive })
            }
            Command::LogsUpload { since, until } => {
                serde_json::json!({ "since": since, "until": until })
            }
            Command::Status
            | Command::ScheduleShow
            | Command::SessionStop
            | Command::RecordingList
            | Command::CameraPresets
            | Command::ConfigGet
            | Command::Reboot
            | Command::Rebirth => serde_json::json!({}),
        };
        serde_json::json!({ "cmd": self.name(), "args": args })
    }
}

/// Why a command was not carried out; the same on both transports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    pub code: ErrorCode,
    pub message: String,
}

impl CommandError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn rejected(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Rejected, message)
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Failed, message)
    }
}

/// A reply on the socket: `{"ok":true,"result":...}` or
/// `{"ok":false,"error":{"code":"...","message":"..."}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CommandError>,
}

impl Reply {
    pub fn ok(result: impl Serialize) -> Self {
        Self {
            ok: true,
            // A serialisation failure is reported, not panicked on.
            result: Some(
                serde_json::to_value(result)
                    .unwrap_or_else(|e| Value::String(format!("result not serialisable: {e}"))),
            ),
            error: None,
        }
    }

    pub fn err(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            ok: false,
            result: None,
            error: Some(CommandError::new(code, message)),
        }
    }

    pub fn from_result(r: Result<Value, CommandError>) -> Self {
        match r {
            Ok(v) => Self {
                ok: true,
                result: Some(v),
                error: None,
            },
            Err(e) => Self {
                ok: false,
                result: None,
                error: Some(e),
            },
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StartArgs {
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdArgs {
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteArgs {
    id: String,
    #[serde(default)]
    force: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresetArgs {
    name: String,
    #[serde(default)]
    action: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NameArgs {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigSetArgs {
    toml: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DiagnosticsArgs {
    #[serde(default)]
    self_test: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogsArgs {
    since: Option<String>,
    until: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotArgs {
    source: String,
    width: Option<u32>,
    archive: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RetryArgs {
    session: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecondsArgs {
    seconds: u64,
}

fn optional<T: for<'de> Deserialize<'de> + Default>(name: &str, v: Value) -> Result<T, String> {
    if v.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(v).map_err(|e| format!("bad args for {name}: {e}"))
}

fn required<T: for<'de> Deserialize<'de>>(name: &str, v: Value) -> Result<T, String> {
    serde_json::from_value(v).map_err(|e| format!("bad args for {name}: {e}"))
}

fn seconds(name: &str, v: Value, max: u64) -> Result<u64, String> {
    let s = required::<SecondsArgs>(name, v)?.seconds;
    if !(1..=max).contains(&s) {
        return Err(format!("bad args for {name}: seconds must be 1 to {max}"));
    }
    Ok(s)
}

/// Parse the arguments of the command `name` (a JSON object, or null for
/// none). Unknown names and unknown or malformed arguments are refused with
/// a reason a person can act on; nothing here is transport-specific.
pub fn parse(name: &str, args: Value) -> Result<Command, String> {
    Ok(match name {
        "status" => optional::<NoArgs>(name, args).map(|_| Command::Status)?,
        "session.start" => {
            let a: StartArgs = optional(name, args)?;
            let (n, k, l) = MAX_META;
            if a.metadata.len() > n
                || a.metadata
                    .iter()
                    .any(|(key, val)| key.is_empty() || key.len() > k || val.len() > l)
            {
                return Err(format!(
                    "bad args for {name}: metadata takes at most {n} entries, keys 1 to {k} bytes, values up to {l} bytes"
                ));
            }
            Command::SessionStart {
                metadata: a.metadata,
            }
        }
        "session.stop" => optional::<NoArgs>(name, args).map(|_| Command::SessionStop)?,
        "session.history" => {
            let a: ListArgs = optional(name, args)?;
            let limit = a.limit.unwrap_or(50);
            if !(1..=1000).contains(&limit) {
                return Err(format!(
                    "bad args for {name}: limit {limit} is out of range; expected 1 to 1000"
                ));
            }
            Command::SessionHistory { limit }
        }
        "recording.list" => optional::<NoArgs>(name, args).map(|_| Command::RecordingList)?,
        "recording.show" => Command::RecordingShow {
            id: required::<IdArgs>(name, args)?.id,
        },
        "recording.verify" => Command::RecordingVerify {
            id: required::<IdArgs>(name, args)?.id,
        },
        "recording.manifest" => Command::RecordingManifest {
            id: required::<IdArgs>(name, args)?.id,
        },
        "recording.export" => Command::RecordingExport {
            id: required::<IdArgs>(name, args)?.id,
        },
        "recording.delete" => {
            let a: DeleteArgs = required(name, args)?;
            Command::RecordingDelete {
                id: a.id,
                force: a.force,
            }
        }
        "camera.presets" => optional::<NoArgs>(name, args).map(|_| Command::CameraPresets)?,
        "camera.preset" => {
            let a: PresetArgs = required(name, args)?;
            let action = match a.action.as_deref() {
                None | Some("recall") => PresetAction::Recall,
                Some("save") => PresetAction::Save,
                Some("delete") => PresetAction::Delete,
                Some(other) => {
                    let shown: String = other.chars().take(32).collect();
                    return Err(format!(
                        "bad args for camera.preset: action '{shown}'; expected \"recall\", \"save\" or \"delete\""
                    ));
                }
            };
            Command::CameraPreset {
                name: a.name,
                action,
            }
        }
        "config.get" => optional::<NoArgs>(name, args).map(|_| Command::ConfigGet)?,
        "config.set" => Command::ConfigSet {
            toml: required::<ConfigSetArgs>(name, args)?.toml,
        },
        "diagnostics" => optional::<DiagnosticsArgs>(name, args).map(|a| Command::Diagnostics {
            self_test: a.self_test,
        })?,
        "upload.retry" => Command::UploadRetry {
            session: optional::<RetryArgs>(name, args)?.session,
        },
        "reboot" => optional::<NoArgs>(name, args).map(|_| Command::Reboot)?,
        "rebirth" => optional::<NoArgs>(name, args).map(|_| Command::Rebirth)?,
        "button.test" => Command::ButtonTest {
            seconds: seconds(name, args, 60)?,
        },
        "display.test" => Command::DisplayTest {
            seconds: seconds(name, args, 30)?,
        },
        "speaker.test" => Command::SpeakerTest {
            seconds: seconds(name, args, 10)?,
        },
        "schedule.show" => optional::<NoArgs>(name, args).map(|_| Command::ScheduleShow)?,
        "logs.upload" => {
            let a: LogsArgs = optional(name, args)?;
            let time = |field: &str, v: Option<String>| {
                v.map(|t| {
                    chrono::DateTime::parse_from_rfc3339(&t)
                        .map(|d| d.with_timezone(&chrono::Utc))
                        .map_err(|_| {
                            let shown: String = t.chars().take(40).collect();
                            format!("bad args for logs.upload: {field} '{shown}' is not an RFC 3339 time (2026-12-03T08:00:00+07:00)")
                        })
                })
                .transpose()
            };
            Command::LogsUpload {
                since: time("since", a.since)?,
                until: time("until", a.until)?,
            }
        }
        "snapshot" => {
            let a: SnapshotArgs = required(name, args)?;
            let source = match a.source.as_str() {
                "camera" => StillSource::Camera,
                "screen" => StillSource::Screen,
                other => {
                    let shown: String = other.chars().take(32).collect();
                    return Err(format!(
                        "bad args for snapshot: source '{shown}'; expected \"camera\" or \"screen\""
                    ));
                }
            };
            let width = a.width.unwrap_or(640);
            if !(64..=1920).contains(&width) {
                return Err(format!(
                    "bad args for snapshot: width {width}; expected 64 to 1920 pixels"
                ));
            }
            Command::Snapshot {
                source,
                width,
                archive: a.archive.unwrap_or(false),
            }
        }
        other => {
            let shown: String = other.chars().take(64).collect();
            let all: Vec<&str> = SPECS.iter().map(|s| s.name).collect();
            return Err(format!(
                "unknown command '{shown}'; expected one of: {}",
                all.join(", ")
            ));
        }
    })
}

/// Parse a deprecated name's arguments into the command it stands for.
pub fn parse_alias(alias: &Alias, args: Value) -> Result<Command, String> {
    let preset = |action| -> Result<Command, String> {
        Ok(Command::CameraPreset {
            name: required::<NameArgs>(alias.name, args.clone())?.name,
            action,
        })
    };
    match alias.name {
        "camera_preset_save" => preset(PresetAction::Save),
        "camera_preset_recall" => preset(PresetAction::Recall),
        "camera_preset_delete" => preset(PresetAction::Delete),
        _ => parse(alias.command, args).map_err(|e| e.replace(alias.command, alias.name)),
    }
}

/// A unified result in the shape the deprecated name returned.
pub fn shape_alias(alias: &Alias, result: Value) -> Value {
    let unwrap = |mut v: Value, field: &str| v.get_mut(field).map(Value::take).unwrap_or(v);
    match alias.name {
        "start" | "stop" => unwrap(result, "session"),
        "recordings_list" => unwrap(result, "recordings"),
        "camera_presets" => unwrap(result, "presets"),
        "recordings.list" => {
            let mut v = result;
            if let Value::Object(m) = &mut v {
                m.insert(
                    "note".into(),
                    "session history; use recording.list for recordings (this name is deprecated)"
                        .into(),
                );
            }
            v
        }
        _ => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn every_spec_parses_and_names_itself() {
        for s in SPECS {
            let mut args = serde_json::Map::new();
            for a in s.args.iter().filter(|a| a.required) {
                let v = match (a.ty, a.name) {
                    ("integer", _) => json!(1),
                    ("boolean", _) => json!(true),
                    (_, "source") => json!("camera"),
                    _ => json!("x"),
                };
                args.insert(a.name.into(), v);
            }
            let c =
                parse(s.name, Value::Object(args)).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            assert_eq!(c.name(), s.name);
            assert!(s.socket || s.mqtt, "{} reachable by nothing", s.name);
        }
        for a in ALIASES {
            assert!(spec(a.command).is_some(), "{} stands for nothing", a.name);
            assert!(
                spec(a.name).is_none(),
                "{} is both a name and an alias",
                a.name
            );
        }
    }

    #[test]
    fn requests_round_trip() {
        let cmds = [
            Command::SessionStart {
                metadata: [("case".into(), "HS-1".into())].into(),
            },
            Command::RecordingDelete {
                id: "s".into(),
                force: true,
            },
            Command::CameraPreset {
                name: "p".into(),
                action: PresetAction::Delete,
            },
            Command::UploadRetry { session: None },
            Command::SpeakerTest { seconds: 2 },
            Command::Status,
        ];
        for c in cmds {
            let r = c.to_request();
            let back = parse(r["cmd"].as_str().unwrap(), r["args"].clone()).unwrap();
            assert_eq!(back, c);
        }
    }

    #[test]
    fn the_table_keeps_operator_actions_at_the_box() {
        assert!(allowed("recording.delete", Transport::Socket));
        assert!(!allowed("recording.delete", Transport::Mqtt));
        assert!(!allowed("recording.export", Transport::Mqtt));
        assert!(!allowed("button.test", Transport::Mqtt));
        assert!(!allowed("config.set", Transport::Socket));
        assert!(allowed("session.start", Transport::Mqtt));
        assert!(!allowed("nonsense", Transport::Socket));
    }

    #[test]
    fn aliases_parse_and_shape_as_before() {
        let a = alias("camera_preset_save", Transport::Socket).unwrap();
        assert_eq!(
            parse_alias(a, json!({"name": "ban"})).unwrap(),
            Command::CameraPreset {
                name: "ban".into(),
                action: PresetAction::Save
            }
        );
        let a = alias("start", Transport::Socket).unwrap();
        assert_eq!(
            shape_alias(a, json!({"session": {"id": "s"}})),
            json!({"id": "s"})
        );
        let a = alias("recordings.list", Transport::Mqtt).unwrap();
        assert_eq!(
            parse_alias(a, json!({})).unwrap(),
            Command::SessionHistory { limit: 50 }
        );
        assert!(shape_alias(a, json!({"sessions": []}))["note"].is_string());
        assert!(alias("recordings.list", Transport::Socket).is_none());
        let e = parse_alias(
            alias("recordings_show", Transport::Socket).unwrap(),
            json!({}),
        )
        .unwrap_err();
        assert!(e.contains("recordings_show"), "{e}");
    }

    #[test]
    fn bad_arguments_say_why() {
        let e = parse("session.stop", json!({"force": true})).unwrap_err();
        assert!(e.contains("force"), "{e}");
        let e = parse("display.test", json!({"seconds": 31})).unwrap_err();
        assert!(e.contains("1 to 30"), "{e}");
        let e = parse("camera.preset", json!({"name": "a", "action": "fly"})).unwrap_err();
        assert!(e.contains("fly"), "{e}");
        let e = parse("session.history", json!({"limit": 0})).unwrap_err();
        assert!(e.contains("1 to 1000"), "{e}");
        let big: BTreeMap<String, String> =
            (0..33).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(parse("session.start", json!({ "metadata": big })).is_err());
        let e = parse("fly", Value::Null).unwrap_err();
        assert!(e.contains("unknown command 'fly'"), "{e}");
    }

    proptest! {
        #[test]
        fn arbitrary_arguments_never_panic(
            name in proptest::sample::select(SPECS.iter().map(|s| s.name).collect::<Vec<_>>()),
            key in "[a-z_]{0,10}",
            n in any::<i64>(),
            s in "[ -~]{0,40}",
        ) {
            for v in [json!({}), json!({ key.clone(): n }), json!({ key.clone(): s.clone() }), json!(s.clone()), json!(n), Value::Null] {
                if let Ok(c) = parse(name, v) {
                    prop_assert_eq!(c.name(), name);
                }
            }
        }
    }
}
