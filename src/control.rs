//! The command layer: carries out every operator command
//! ([`crate::core::command::Command`]), whichever transport brought it. The
//! Unix socket (`api`) and MQTT (`mqtt`) parse their wire format, call
//! [`Control::execute`] and serialise what it returns; neither carries out
//! anything itself, and neither imports an actor.
//!
//! Which transport may use which command is decided here, once, from the
//! table in `core::command` ([`crate::core::command::allowed`]). Blocking
//! work (sled reads, V4L2 ioctls, the self-test) runs on tokio's blocking
//! pool, never on the two async workers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::audit::Auditor;
use crate::camera::{PresetError, Presets};
use crate::config::{Language, VideoSource};
use crate::core::audit::Who;
use crate::core::command::{self, Command, CommandError, PresetAction, StillSource, Transport};
use crate::core::session::{Origin, Phase};
use crate::core::status::ErrorCode;
use crate::lifecycle::Restart;
use crate::recorder::store::{RecError, RecStore};
use crate::store::Store;
use crate::supervisor::{SessionError, SupervisorHandle};

/// Who asked, for the record and for the table.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub transport: Transport,
    /// Recorded as who started or stopped a session.
    pub origin: Origin,
    /// Recorded in the audit trail.
    pub who: Who,
}

impl Ctx {
    /// Someone at the box: the Unix account the kernel vouches for (the
    /// socket's peer), and the name the CLI asked for, if any.
    pub fn socket(user: Option<String>, name: Option<String>) -> Self {
        Self {
            transport: Transport::Socket,
            origin: Origin::Cli,
            who: Who {
                via: "socket".into(),
                user,
                name,
                detail: None,
            },
        }
    }

    /// A command from the NOC with its id, and its sender as it says.
    pub fn mqtt(id: &str, by: Option<String>) -> Self {
        Self {
            transport: Transport::Mqtt,
            origin: Origin::Mqtt(id.to_owned()),
            who: Who {
                via: "mqtt".into(),
                user: None,
                name: by,
                detail: Some(id.to_owned()),
            },
        }
    }
}

/// The commands the audit trail records, with what they act on when the
/// command names it.
fn audited(cmd: &Command) -> Option<(&'static str, Option<String>)> {
    match cmd {
        Command::SessionStart { .. } => Some(("session.start", None)),
        Command::SessionStop => Some(("session.stop", None)),
        Command::RecordingVerify { id } => Some(("recording.verify", Some(id.clone()))),
        Command::RecordingDelete { id, .. } => Some(("recording.delete", Some(id.clone()))),
        Command::Reboot => Some(("reboot", None)),
        Command::LogsUpload { .. } => Some(("logs.upload", None)),
        // A still shows people's faces.
        Command::Snapshot { source, .. } => Some(("snapshot", Some(source.as_str().to_owned()))),
        _ => None,
    }
}

/// An object the NOC asked for (logs, a still), PUT to the archive; the
/// link that reads it for an hour, so the NOC needs no archive credentials.
/// Blocking: call it on a blocking thread.
fn put_for_the_noc(
    archive: &crate::config::Archive,
    key: &str,
    body: &[u8],
    content_type: &str,
) -> Result<String, String> {
    let client = crate::upload::Client::new(archive).map_err(|e| e.to_string())?;
    client
        .put(key, body, content_type)
        .map_err(|e| e.to_string())?;
    Ok(client.get_url(key, Duration::from_secs(3600)))
}

/// An outcome as the audit trail words it.
pub fn outcome<T>(r: &Result<T, CommandError>) -> String {
    match r {
        Ok(_) => "done".into(),
        Err(e) if e.code == ErrorCode::Failed => format!("failed: {}", e.message),
        Err(e) => format!("refused: {}", e.message),
    }
}

/// What the command layer needs from the rest of the daemon.
pub struct Deps {
    pub supervisor: SupervisorHandle,
    /// The supervisor's phase, for the checks that need only it.
    pub phase: tokio::sync::watch::Receiver<Phase>,
    pub store: Store,
    pub recordings: RecStore,
    /// The key manifests are signed with.
    pub key: ed25519_dalek::SigningKey,
    pub presets: Presets,
    pub camera: VideoSource,
    /// The room's button, screen and speaker, for the technician's tests
    /// (`None` when not configured).
    pub button: Option<crate::button::TestHandle>,
    pub display: Option<crate::display::TestSignal>,
    pub speaker: Option<crate::display::TestSignal>,
    pub upload: Option<crate::upload::RetryHandle>,
    /// Stills: the camera's frame from the media engine (or the camera
    /// itself when no session runs it), the screen's from the display.
    pub media: Option<crate::media::MediaHandle>,
    pub screen: Option<crate::display::ScreenHandle>,
    pub video: Option<crate::config::Video>,
    /// Where `logs.upload` puts the journal, and the secret values it takes
    /// out of it first.
    pub archive: Option<crate::config::Archive>,
    /// Encryption at rest (`[recording] recipients`): stills go to the
    /// archive as age files to these, never in clear.
    pub recipients: Vec<String>,
    pub secret_values: Vec<String>,
    /// The scheduler, for `schedule.show`.
    pub schedule: Option<crate::schedule::ScheduleHandle>,
    pub config_path: PathBuf,
    pub site_id: String,
    pub language: Language,
    pub allow_reboot: bool,
    pub restart: Restart,
    /// The audit trail (and its way to the NOC).
    pub audit: Auditor,
}

/// Cheap to clone; every transport holds one.
#[derive(Clone)]
pub struct Control {
    d: Arc<Deps>,
}

/// Run blocking work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CommandError> + Send + 'static,
) -> Result<T, CommandError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CommandError::failed(format!("the task stopped: {e}")))?
}

fn rec_err(e: RecError) -> CommandError {
    match e {
        RecError::NotFound(_) | RecError::Live(_) | RecError::Unconfirmed(_) => {
            CommandError::rejected(e.to_string())
        }
        e => CommandError::failed(e.to_string()),
    }
}

fn preset_err(e: PresetError) -> CommandError {
    match e {
        PresetError::Unknown(_)
        | PresetError::BadName(_)
        | PresetError::NotV4l2
        | PresetError::NoPtz => CommandError::rejected(e.to_string()),
        e => CommandError::failed(e.to_string()),
    }
}

fn session_err(e: SessionError) -> CommandError {
    CommandError::new(e.code(), e.to_string())
}

fn to_value(v: impl serde::Serialize) -> Result<Value, CommandError> {
    serde_json::to_value(v).map_err(|e| CommandError::failed(format!("result: {e}")))
}

impl Control {
    pub fn new(deps: Deps) -> Self {
        Self { d: Arc::new(deps) }
    }

    /// Carry out `cmd` for `ctx`; refused when the table does not allow it
    /// on that transport.
    pub async fn execute(&self, cmd: Command, ctx: &Ctx) -> Result<Value, CommandError> {
        if let Err(e) = self.precheck(&cmd, ctx).await {
            self.refused(&cmd, ctx, &e).await;
            return Err(e);
        }
        self.execute_prechecked(cmd, ctx).await
    }

    /// A command the quick checks refused: in the audit trail too, when it
    /// is one the trail records (a reboot asked for during a session).
    pub async fn refused(&self, cmd: &Command, ctx: &Ctx, e: &CommandError) {
        if let Some((action, target)) = audited(cmd) {
            let refused: Result<(), CommandError> = Err(e.clone());
            self.audit(ctx, action, target, outcome(&refused)).await;
        }
    }

    /// [`Control::execute`] for a transport that already ran
    /// [`Control::precheck`] (MQTT, to answer `accepted` in between).
    pub async fn execute_prechecked(&self, cmd: Command, ctx: &Ctx) -> Result<Value, CommandError> {
        let audit = audited(&cmd);
        let result = self.run(cmd, ctx).await;
        if let Some((action, target)) = audit {
            // A session's id is known from its answer.
            let target = target.or_else(|| {
                result.as_ref().ok().and_then(|v| {
                    v.pointer("/session/id")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
            });
            self.audit(ctx, action, target, outcome(&result)).await;
        }
        result
    }

    /// Write `action` by `ctx`'s sender to the audit trail.
    pub async fn audit(&self, ctx: &Ctx, action: &str, target: Option<String>, outcome: String) {
        self.d
            .audit
            .record(ctx.who.clone(), action, target, outcome)
            .await;
    }

    async fn run(&self, cmd: Command, ctx: &Ctx) -> Result<Value, CommandError> {
        let d = &self.d;
        match cmd {
            Command::Status => to_value(
                d.supervisor
                    .status()
                    .await
                    .map_err(|e| CommandError::new(ErrorCode::Unavailable, e.to_string()))?,
            ),
            Command::SessionStart { metadata } => {
                let rec = d
                    .supervisor
                    .start(ctx.origin.clone(), metadata)
                    .await
                    .map_err(session_err)?;
                Ok(json!({ "session": rec }))
            }
            Command::SessionStop => {
                let rec = d
                    .supervisor
                    .stop(ctx.origin.clone())
                    .await
                    .map_err(session_err)?;
                Ok(json!({ "session": rec }))
            }
            Command::SessionHistory { limit } => {
                let store = d.store.clone();
                let h = blocking(move || {
                    store
                        .history(limit)
                        .map_err(|e| CommandError::failed(e.to_string()))
                })
                .await?;
                Ok(json!({ "sessions": h }))
            }
            Command::RecordingList => {
                let rec = d.recordings.clone();
                let l = blocking(move || rec.sessions().map_err(rec_err)).await?;
                Ok(json!({ "recordings": l }))
            }
            Command::RecordingShow { id } => {
                let rec = d.recordings.clone();
                blocking(move || {
                    let session = rec.session(&id).map_err(rec_err)?;
                    let segments = rec.segments(&id).map_err(rec_err)?;
                    Ok(json!({ "session": session, "segments": segments }))
                })
                .await
            }
            Command::RecordingVerify { id } => {
                let (rec, key) = (d.recordings.clone(), d.key.clone());
                to_value(blocking(move || rec.verify(&id, &key).map_err(rec_err)).await?)
            }
            Command::RecordingManifest { id } => {
                let (rec, key) = (d.recordings.clone(), d.key.clone());
                to_value(blocking(move || rec.manifest(&id, &key).map_err(rec_err)).await?)
            }
            Command::RecordingExport { .. } => Err(CommandError::bad_request(
                "recording.export is streamed by the socket, not answered in one reply",
            )),
            Command::RecordingDelete { id, force } => {
                let rec = d.recordings.clone();
                let freed = blocking(move || rec.delete(&id, force).map_err(rec_err)).await?;
                Ok(json!({ "freed_bytes": freed }))
            }
            Command::CameraPresets => {
                let presets = d.presets.clone();
                let l = blocking(move || presets.list().map_err(preset_err)).await?;
                Ok(json!({ "presets": l }))
            }
            Command::CameraPreset { name, action } => {
                let (presets, source) = (d.presets.clone(), d.camera.clone());
                blocking(move || match action {
                    PresetAction::Delete => match presets.delete(&name).map_err(preset_err)? {
                        true => Ok(json!({ "deleted": name })),
                        false => Err(CommandError::rejected(format!("no preset named '{name}'"))),
                    },
                    PresetAction::Save | PresetAction::Recall => {
                        let mut c = crate::camera::open_controls(&source).map_err(preset_err)?;
                        let p = if action == PresetAction::Save {
                            presets.save(&name, &mut c)
                        } else {
                            presets.recall(&name, &mut c)
                        }
                        .map_err(preset_err)?;
                        to_value(p)
                    }
                })
                .await
            }
            Command::ConfigGet => {
                let path = d.config_path.clone();
                blocking(move || config_document(&path).map_err(CommandError::failed)).await
            }
            Command::ConfigSet { .. } => Err(CommandError::bad_request(
                "config.set needs the transport's reply address; see Control::config_set",
            )),
            Command::Diagnostics { self_test } => {
                let status = d
                    .supervisor
                    .status()
                    .await
                    .map_err(|e| CommandError::failed(e.to_string()))?;
                let mut result = json!({ "status": status });
                if self_test {
                    // Blocking checks (capture, handshakes, a test write),
                    // on a thread of their own; they reach the daemon
                    // through this layer, not through its own socket.
                    let (path, lang) = (d.config_path.clone(), d.language);
                    let link = InProcess {
                        control: self.clone(),
                        rt: tokio::runtime::Handle::current(),
                        ctx: Ctx {
                            transport: ctx.transport,
                            origin: Origin::Daemon("self-test".into()),
                            who: ctx.who.clone(),
                        },
                    };
                    let report = tokio::task::spawn_blocking(move || {
                        crate::doctor::run_with(&path, lang, false, &link)
                    })
                    .await
                    .map_err(|e| CommandError::failed(format!("the self-test stopped: {e}")))?;
                    result["doctor"] = to_value(report)?;
                }
                Ok(result)
            }
            Command::UploadRetry { .. } => {
                let Some(upload) = &d.upload else {
                    return Err(CommandError::rejected(
                        "no archive is configured ([archive] in the configuration)",
                    ));
                };
                upload.retry();
                let rec = d.recordings.clone();
                let (segments, bytes, _) = blocking(move || rec.backlog().map_err(rec_err)).await?;
                Ok(
                    json!({ "retrying": true, "backlog_segments": segments, "backlog_bytes": bytes }),
                )
            }
            Command::Reboot => {
                // Allowed and between sessions: checked by `precheck`.
                match tokio::process::Command::new("systemctl")
                    .arg("reboot")
                    .status()
                    .await
                {
                    Ok(st) if st.success() => Ok(json!({})),
                    Ok(st) => Err(CommandError::failed(format!("systemctl reboot: {st}"))),
                    Err(e) => Err(CommandError::failed(format!("systemctl reboot: {e}"))),
                }
            }
            Command::Rebirth => Err(CommandError::bad_request(
                "rebirth is carried out by the MQTT connection itself",
            )),
            Command::ButtonTest { seconds } => {
                let Some(button) = &d.button else {
                    return Err(CommandError::rejected("no button is configured"));
                };
                self.require_idle("test the button when idle").await?;
                let pressed = button.wait_press(Duration::from_secs(seconds)).await;
                Ok(json!({ "pressed": pressed }))
            }
            Command::DisplayTest { seconds } => {
                self.test_signal(d.display.as_ref(), "display", seconds)
                    .await
            }
            Command::SpeakerTest { seconds } => {
                self.test_signal(d.speaker.as_ref(), "speaker", seconds)
                    .await
            }
            Command::Snapshot {
                source,
                width,
                archive,
            } => self.snapshot(source, width, archive).await,
            Command::LogsUpload { since, until } => self.logs_upload(since, until).await,
            Command::ScheduleShow => match &d.schedule {
                Some(s) => s
                    .show()
                    .await
                    .ok_or_else(|| CommandError::failed("the scheduler is not running")),
                None => Err(CommandError::rejected("this box runs no scheduler")),
            },
        }
    }

    /// The journal for a range, secrets out, gzip, to the archive. On a
    /// blocking thread: journalctl, compression and the PUT take seconds.
    async fn logs_upload(
        &self,
        since: Option<chrono::DateTime<chrono::Utc>>,
        until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Value, CommandError> {
        let d = &self.d;
        let archive = d.archive.clone().ok_or_else(|| {
            CommandError::rejected("no archive is configured: logs go to the archive's object store ([archive] endpoint)")
        })?;
        let (since, until) = crate::core::logs::range(since, until, chrono::Utc::now())
            .map_err(CommandError::bad_request)?;
        let secrets = d.secret_values.clone();
        let site = d.site_id.clone();
        tokio::task::spawn_blocking(move || -> Result<Value, String> {
            let fmt =
                |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
            let out = std::process::Command::new("journalctl")
                .args(["--utc", "-o", "short-iso", "--no-pager", "-q"])
                .args(["-u", "diemcau.service", "-u", "diemcau-provision.service"])
                .arg(format!("--since={}", fmt(since)))
                .arg(format!("--until={}", fmt(until)))
                .output()
                .map_err(|e| format!("journalctl does not run: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "journalctl failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            let text = crate::core::logs::redact(&String::from_utf8_lossy(&out.stdout), &secrets);
            let lines = text.lines().count();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            std::io::Write::write_all(&mut gz, text.as_bytes()).map_err(|e| e.to_string())?;
            let body = gz.finish().map_err(|e| e.to_string())?;
            let key = crate::core::logs::object_key(&archive.prefix, &site, since, until);
            let url = put_for_the_noc(&archive, &key, &body, "application/gzip")?;
            Ok(json!({
                "key": key,
                "url": url,
                "bytes": body.len(),
                "lines": lines,
                "since": since,
                "until": until,
            }))
        })
        .await
        .map_err(|e| CommandError::failed(format!("the logs were not uploaded: {e}")))?
        .map_err(|e| CommandError::failed(format!("the logs were not uploaded: {e}")))
    }

    /// A still, as JPEG in the reply (base64), or in the archive when asked
    /// or too large for a reply. The conversion runs on a blocking thread:
    /// a JPEG encode, or opening an idle camera, takes longer than an async
    /// worker may be held.
    async fn snapshot(
        &self,
        source: StillSource,
        width: u32,
        archive: bool,
    ) -> Result<Value, CommandError> {
        use crate::media::snapshot;
        let d = &self.d;
        if archive && d.archive.is_none() {
            return Err(CommandError::rejected(
                "no archive is configured: stills go to the archive's object store ([archive] endpoint)",
            ));
        }
        let still = match source {
            StillSource::Screen => {
                let screen = d
                    .screen
                    .as_ref()
                    .ok_or_else(|| CommandError::rejected("no screen is configured"))?;
                let frame = screen.frame().await.ok_or_else(|| {
                    CommandError::failed(
                        "the screen has drawn nothing yet (is it running? see diemcau doctor)",
                    )
                })?;
                tokio::task::spawn_blocking(move || snapshot::jpeg(&frame, width)).await
            }
            StillSource::Camera => {
                let media = d
                    .media
                    .as_ref()
                    .ok_or_else(|| CommandError::rejected("no camera on this box"))?;
                match media.camera_frame().await {
                    Some(frame) => {
                        tokio::task::spawn_blocking(move || snapshot::jpeg(&frame, width)).await
                    }
                    None => {
                        // Idle: the camera is free for a few frames of our own.
                        let video = d
                            .video
                            .clone()
                            .ok_or_else(|| CommandError::rejected("no camera on this box"))?;
                        tokio::task::spawn_blocking(move || snapshot::camera_once(&video, width))
                            .await
                    }
                }
            }
        }
        .map_err(|e| CommandError::failed(format!("the still was not taken: {e}")))?
        .map_err(|e| CommandError::failed(format!("the still was not taken: {e}")))?;
        let too_large = still.jpeg.len() > command::STILL_MAX_BYTES;
        if archive || too_large {
            let Some(store) = d.archive.clone() else {
                return Err(CommandError::rejected(format!(
                    "the still is {} KB, more than the {} KB a reply carries, and this box has no archive to put it in ([archive] endpoint): ask a smaller width",
                    still.jpeg.len() / 1024,
                    command::STILL_MAX_BYTES / 1024
                )));
            };
            let mut key = crate::core::logs::still_key(
                &store.prefix,
                &d.site_id,
                source.as_str(),
                chrono::Utc::now(),
            );
            let (w, h, bytes) = (still.width, still.height, still.jpeg.len());
            // A still of the room is media like the recording: sealed to
            // the same recipients (an age file, `age -d` opens it).
            let recipients = d.recipients.clone();
            if !recipients.is_empty() {
                key.push_str(".age");
            }
            let object = key.clone();
            let url = tokio::task::spawn_blocking(move || -> Result<String, String> {
                if recipients.is_empty() {
                    put_for_the_noc(&store, &object, &still.jpeg, "image/jpeg")
                } else {
                    let sealed = crate::recorder::seal::encrypt_to(&recipients, &still.jpeg)
                        .map_err(|e| e.to_string())?;
                    put_for_the_noc(&store, &object, &sealed, "application/octet-stream")
                }
            })
            .await
            .map_err(|e| CommandError::failed(format!("the still was not stored: {e}")))?
            .map_err(|e| CommandError::failed(format!("the still was not stored: {e}")))?;
            return Ok(json!({
                "source": source.as_str(),
                "width": w,
                "height": h,
                "bytes": bytes,
                "key": key,
                "url": url,
                "sealed": !d.recipients.is_empty(),
            }));
        }
        use base64::Engine;
        Ok(json!({
            "source": source.as_str(),
            "width": still.width,
            "height": still.height,
            "bytes": still.jpeg.len(),
            "jpeg_base64": base64::engine::general_purpose::STANDARD.encode(&still.jpeg),
        }))
    }

    /// The quick checks of `cmd`, made before a transport says `accepted`:
    /// the table, and for `reboot` whether it is allowed now. `execute`
    /// makes them again.
    pub async fn precheck(&self, cmd: &Command, ctx: &Ctx) -> Result<(), CommandError> {
        let name = cmd.name();
        if !command::allowed(name, ctx.transport) {
            return Err(CommandError::rejected(format!(
                "{name} is not available over {}",
                ctx.transport.name()
            )));
        }
        if matches!(cmd, Command::Reboot) {
            if !self.d.allow_reboot {
                return Err(CommandError::rejected(
                    "reboot is disabled on this box ([mqtt] allow_reboot = false)",
                ));
            }
            self.require_between_sessions("stop it first").await?;
        }
        Ok(())
    }

    /// `config.set`: validated like the file, refused during a session or
    /// for another site, written atomically beside the last-known-good copy
    /// with `pending` (where the restarted daemon sends its answer), then a
    /// restart in place is asked for. Returns what the `accepted` reply says.
    pub async fn config_set(
        &self,
        toml: String,
        pending: crate::config::apply::Pending,
        ctx: &Ctx,
    ) -> Result<Value, CommandError> {
        let result = self.config_set_inner(toml, pending).await;
        let said = match &result {
            Ok(_) => "accepted: the box restarts with it".to_owned(),
            Err(_) => outcome(&result),
        };
        self.audit(ctx, "config.set", None, said).await;
        result
    }

    async fn config_set_inner(
        &self,
        toml: String,
        pending: crate::config::apply::Pending,
    ) -> Result<Value, CommandError> {
        let d = &self.d;
        // A file made from `config.get` shows each secret as `***`: those
        // keep the box's current value, so the NOC can change one key
        // without knowing (or retyping) every password. A `***` inside a
        // URL cannot be told from the rest of it, and is refused.
        let path = d.config_path.clone();
        let current: Option<toml::Table> = blocking(move || {
            Ok::<_, CommandError>(
                std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.parse().ok()),
            )
        })
        .await?;
        let toml = crate::core::secrets::keep_marked(
            &toml,
            current.as_ref(),
            crate::core::secrets::REDACTED,
        )
        .map_err(|e| CommandError::rejected(format!("invalid configuration: {e}")))?;
        if let Some((section, key)) = toml
            .parse::<toml::Table>()
            .ok()
            .as_ref()
            .and_then(crate::core::secrets::redacted_url)
        {
            return Err(CommandError::rejected(format!(
                "invalid configuration: [{section}] {key} still holds *** (the secret config.get hides) inside a URL; write the URL with its secret, or put the secret in its own key"
            )));
        }
        let new = crate::config::Config::parse(&d.config_path, &toml)
            .map_err(|e| CommandError::rejected(format!("invalid configuration: {e}")))?;
        if new.site.id != d.site_id {
            return Err(CommandError::rejected(format!(
                "the new configuration is for site '{}', not '{}'",
                new.site.id, d.site_id
            )));
        }
        self.require_between_sessions("the configuration changes only between sessions")
            .await?;
        let path = d.config_path.clone();
        blocking(move || {
            crate::config::apply::persist(&path, &toml, &pending)
                .map_err(|e| CommandError::failed(format!("cannot write {}: {e}", path.display())))
        })
        .await?;
        d.restart.request();
        Ok(json!({"applying": "restarting with the new configuration"}))
    }

    /// Exports are streamed by the socket: the segments to send, in order,
    /// with their sizes (quarantined and pruned ones are left out).
    pub async fn export_plan(&self, id: String) -> Result<Vec<(u32, u64)>, CommandError> {
        let rec = self.d.recordings.clone();
        blocking(move || {
            let segs = rec.segments(&id).map_err(rec_err)?;
            rec.session(&id).map_err(rec_err)?;
            Ok(segs
                .into_iter()
                .filter(|m| m.quarantined.is_none() && !m.pruned)
                .map(|m| (m.seq, m.bytes))
                .collect())
        })
        .await
    }

    /// One segment's bytes, for a streamed export.
    pub async fn segment_bytes(&self, id: String, seq: u32) -> Result<Vec<u8>, CommandError> {
        let rec = self.d.recordings.clone();
        blocking(move || rec.segment_bytes(&id, seq).map_err(rec_err)).await
    }

    /// The daemon's status, for the transports' own reports (MQTT's
    /// retained state and health).
    pub async fn status(&self) -> Result<crate::core::status::Status, CommandError> {
        self.d
            .supervisor
            .status()
            .await
            .map_err(|e| CommandError::new(ErrorCode::Unavailable, e.to_string()))
    }

    fn phase(&self) -> Phase {
        *self.d.phase.borrow()
    }

    async fn require_idle(&self, what: &str) -> Result<(), CommandError> {
        match self.phase() {
            Phase::Idle => Ok(()),
            _ => Err(CommandError::rejected(format!(
                "a session is running; {what}"
            ))),
        }
    }

    async fn require_between_sessions(&self, what: &str) -> Result<(), CommandError> {
        match self.phase() {
            Phase::Idle | Phase::Fault => Ok(()),
            _ => Err(CommandError::rejected(format!(
                "a session is in progress; {what}"
            ))),
        }
    }

    async fn test_signal(
        &self,
        signal: Option<&crate::display::TestSignal>,
        what: &str,
        seconds: u64,
    ) -> Result<Value, CommandError> {
        let Some(signal) = signal else {
            return Err(CommandError::rejected(format!("no {what} is configured")));
        };
        self.require_idle(&format!("test the {what} when idle"))
            .await?;
        signal.start(Duration::from_secs(seconds));
        Ok(json!({ "seconds": seconds }))
    }
}

/// The self-test's way to the daemon when the daemon runs it: this layer,
/// from the blocking thread the checks run on.
struct InProcess {
    control: Control,
    rt: tokio::runtime::Handle,
    ctx: Ctx,
}

impl crate::doctor::DaemonLink for InProcess {
    fn call(&self, cmd: Command, timeout: Duration) -> Result<Value, String> {
        // On a blocking-pool thread, never an async worker: block_on is allowed.
        self.rt
            .block_on(tokio::time::timeout(
                timeout,
                self.control.execute(cmd, &self.ctx),
            ))
            .map_err(|_| format!("no answer within {} s", timeout.as_secs()))?
            .map_err(|e| e.message)
    }
}

/// The configuration file as JSON, with every secret replaced
/// (`core::secrets`).
fn config_document(path: &std::path::Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let toml: toml::Value =
        toml::from_str(&text).map_err(|e| format!("cannot parse {}: {e}", path.display()))?;
    let mut v = serde_json::to_value(toml).map_err(|e| e.to_string())?;
    crate::core::secrets::redact_config(&mut v);
    let version = crate::config::version(path);
    Ok(json!({"version": version, "path": path, "config": v}))
}
