//! The Unix socket server. Each connection is its own task; requests are
//! forwarded to the supervisor's handle. A bad client (garbage, oversized
//! lines, a stalled connection) only ever affects its own connection.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use super::{parse_request, ErrorCode, Reply, Request, MAX_REQUEST};
use crate::recorder::store::RecStore;
use crate::core::session::Origin;
use crate::supervisor::SupervisorHandle;

/// Read access to the recording buffer, and the key manifests are signed with.
#[derive(Clone)]
pub struct Recordings {
    pub store: RecStore,
    pub key: ed25519_dalek::SigningKey,
    /// Camera presets and the camera they apply to.
    pub presets: crate::camera::Presets,
    pub camera: crate::config::VideoSource,
    /// The room's button, for the technician's test.
    pub button: Option<crate::button::TestHandle>,
    /// The room's screen and speaker, for the technician's test pattern
    /// and tone.
    pub display: Option<crate::display::TestSignal>,
    pub speaker: Option<crate::display::TestSignal>,
}

/// Connections served at once; more wait for a slot.
const MAX_CONNECTIONS: usize = 32;
/// A connection that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create the socket directory {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another diemcau is already serving {path}")]
    InUse { path: PathBuf },
    #[error("cannot listen on {path}: {source}")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Bind the socket with `mode`, replacing a stale socket file left by a crash.
pub async fn bind(path: &Path, mode: u32) -> Result<UnixListener, ServeError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ServeError::Dir {
            path: dir.to_owned(),
            source,
        })?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ServeError::InUse {
                path: path.to_owned(),
            });
        }
        // Nobody answers: a leftover of a crash.
        let _ = std::fs::remove_file(path);
    }
    let bind_err = |source| ServeError::Bind {
        path: path.to_owned(),
        source,
    };
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(bind_err)?;
    Ok(listener)
}

/// Accept connections until the task is dropped.
pub async fn serve(listener: UnixListener, sup: SupervisorHandle, rec: Recordings) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("api accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let sup = sup.clone();
        let rec = rec.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, sup, rec).await {
                tracing::debug!("api connection ended: {e}");
            }
            drop(permit);
        });
    }
}

async fn connection(
    stream: UnixStream,
    sup: SupervisorHandle,
    rec: Recordings,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    // Read at most one byte past the limit, so an endless line cannot grow
    // memory without bound.
    let mut reader = BufReader::new(read);
    loop {
        let mut line = Vec::new();
        let n = tokio::time::timeout(
            IDLE_TIMEOUT,
            (&mut reader)
                .take(MAX_REQUEST as u64 + 1)
                .read_until(b'\n', &mut line),
        )
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))??;
        if n == 0 {
            return Ok(());
        }
        let oversized = line.last() != Some(&b'\n') && line.len() > MAX_REQUEST;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let reply = match parse_request(&line) {
            Ok(Request::RecordingsExport { id }) => {
                export(&mut write, &rec, id).await?;
                continue;
            }
            Ok(req) => handle(req, &sup, &rec).await,
            Err(msg) => Reply::err(ErrorCode::BadRequest, msg),
        };
        let mut out = serde_json::to_vec(&reply).expect("replies always serialise");
        out.push(b'\n');
        write.write_all(&out).await?;
        if oversized {
            // The rest of the line is unread garbage; end the connection.
            return Ok(());
        }
    }
}

/// Run blocking store work off the runtime and turn it into a reply.
async fn blocking<T: serde::Serialize + Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::recorder::store::RecError> + Send + 'static,
) -> Reply {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Reply::ok(v),
        Ok(Err(e @ crate::recorder::store::RecError::NotFound(_))) => {
            Reply::err(ErrorCode::Rejected, e.to_string())
        }
        Ok(Err(
            e @ (crate::recorder::store::RecError::Live(_)
            | crate::recorder::store::RecError::Unconfirmed(_)),
        )) => Reply::err(ErrorCode::Rejected, e.to_string()),
        Ok(Err(e)) => Reply::err(ErrorCode::Failed, e.to_string()),
        Err(e) => Reply::err(ErrorCode::Failed, e.to_string()),
    }
}

/// Stream a recording: a JSON header line with the size, then the bytes,
/// one segment at a time (a session can be gigabytes).
async fn export(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    rec: &Recordings,
    id: String,
) -> std::io::Result<()> {
    let store = rec.store.clone();
    let sid = id.clone();
    let plan = tokio::task::spawn_blocking(move || {
        let segs = store.segments(&sid)?;
        store.session(&sid)?;
        Ok::<_, crate::recorder::store::RecError>(
            segs.into_iter()
                .filter(|m| m.quarantined.is_none() && !m.pruned)
                .map(|m| (m.seq, m.bytes))
                .collect::<Vec<_>>(),
        )
    })
    .await
    .map_err(std::io::Error::other)?;
    let plan = match plan {
        Ok(p) => p,
        Err(e) => {
            let code = if matches!(e, crate::recorder::store::RecError::NotFound(_)) {
                ErrorCode::Rejected
            } else {
                ErrorCode::Failed
            };
            let mut out =
                serde_json::to_vec(&Reply::err(code, e.to_string())).expect("replies serialise");
            out.push(b'\n');
            return write.write_all(&out).await;
        }
    };
    let total: u64 = plan.iter().map(|(_, b)| b).sum();
    let mut out = serde_json::to_vec(&Reply::ok(serde_json::json!({ "bytes": total })))
        .expect("replies serialise");
    out.push(b'\n');
    write.write_all(&out).await?;
    for (seq, _) in plan {
        let store = rec.store.clone();
        let sid = id.clone();
        let bytes = tokio::task::spawn_blocking(move || store.segment_bytes(&sid, seq))
            .await
            .map_err(std::io::Error::other)?
            .map_err(std::io::Error::other)?;
        write.write_all(&bytes).await?;
    }
    write.flush().await
}

/// The technician's display or speaker test: idle only, bounded length.
async fn test_signal(
    sup: &SupervisorHandle,
    signal: Option<&crate::display::TestSignal>,
    what: &str,
    seconds: u64,
    max: u64,
) -> Reply {
    let Some(signal) = signal else {
        return Reply::err(ErrorCode::Rejected, format!("no {what} is configured"));
    };
    if !(1..=max).contains(&seconds) {
        return Reply::err(ErrorCode::BadRequest, format!("seconds must be 1 to {max}"));
    }
    match sup.status().await {
        Ok(s) if s.phase == crate::core::session::Phase::Idle => {}
        Ok(_) => {
            return Reply::err(
                ErrorCode::Rejected,
                format!("a session is running; test the {what} when idle"),
            )
        }
        Err(e) => return Reply::err(ErrorCode::Failed, e.to_string()),
    }
    signal.start(Duration::from_secs(seconds));
    Reply::ok(serde_json::json!({ "seconds": seconds }))
}

async fn handle(req: Request, sup: &SupervisorHandle, rec: &Recordings) -> Reply {
    let store = rec.store.clone();
    let key = rec.key.clone();
    match req {
        Request::RecordingsList {} => blocking(move || store.sessions()).await,
        Request::RecordingsShow { id } => {
            blocking(move || {
                let session = store.session(&id)?;
                let segments = store.segments(&id)?;
                Ok(serde_json::json!({ "session": session, "segments": segments }))
            })
            .await
        }
        Request::RecordingsVerify { id } => blocking(move || store.verify(&id, &key)).await,
        Request::RecordingsManifest { id } => blocking(move || store.manifest(&id, &key)).await,
        Request::RecordingsDelete { id, force } => {
            blocking(move || {
                store
                    .delete(&id, force)
                    .map(|freed| serde_json::json!({ "freed_bytes": freed }))
            })
            .await
        }
        Request::RecordingsExport { .. } => Reply::err(ErrorCode::BadRequest, "export is streamed"),
        Request::ButtonTest { seconds } => {
            let Some(button) = &rec.button else {
                return Reply::err(ErrorCode::Rejected, "no button is configured");
            };
            if !(1..=60).contains(&seconds) {
                return Reply::err(ErrorCode::BadRequest, "seconds must be 1 to 60");
            }
            match sup.status().await {
                Ok(s) if s.phase == crate::core::session::Phase::Idle => {}
                Ok(_) => {
                    return Reply::err(
                        ErrorCode::Rejected,
                        "a session is running; test the button when idle",
                    )
                }
                Err(e) => return Reply::err(ErrorCode::Failed, e.to_string()),
            }
            let pressed = button.wait_press(Duration::from_secs(seconds)).await;
            Reply::ok(serde_json::json!({ "pressed": pressed }))
        }
        Request::DisplayTest { seconds } => {
            test_signal(sup, rec.display.as_ref(), "display", seconds, 30).await
        }
        Request::SpeakerTest { seconds } => {
            test_signal(sup, rec.speaker.as_ref(), "speaker", seconds, 10).await
        }
        Request::CameraPresets {} => match rec.presets.list() {
            Ok(l) => Reply::ok(l),
            Err(e) => Reply::err(ErrorCode::Failed, e.to_string()),
        },
        Request::CameraPresetDelete { name } => match rec.presets.delete(&name) {
            Ok(true) => Reply::ok(serde_json::json!({ "deleted": name })),
            Ok(false) => Reply::err(ErrorCode::Rejected, format!("no preset named '{name}'")),
            Err(e) => Reply::err(ErrorCode::Failed, e.to_string()),
        },
        r @ (Request::CameraPresetSave { .. } | Request::CameraPresetRecall { .. }) => {
            let (presets, source) = (rec.presets.clone(), rec.camera.clone());
            let res = tokio::task::spawn_blocking(move || {
                let mut c = crate::camera::open_controls(&source)?;
                match r {
                    Request::CameraPresetSave { name } => presets.save(&name, &mut c),
                    Request::CameraPresetRecall { name } => presets.recall(&name, &mut c),
                    _ => unreachable!("matched above"),
                }
            })
            .await;
            match res {
                Ok(Ok(p)) => Reply::ok(p),
                Ok(Err(
                    e @ (crate::camera::PresetError::Unknown(_)
                    | crate::camera::PresetError::BadName(_)
                    | crate::camera::PresetError::NotV4l2
                    | crate::camera::PresetError::NoPtz),
                )) => Reply::err(ErrorCode::Rejected, e.to_string()),
                Ok(Err(e)) => Reply::err(ErrorCode::Failed, e.to_string()),
                Err(e) => Reply::err(ErrorCode::Failed, e.to_string()),
            }
        }
        Request::Status {} => match sup.status().await {
            Ok(s) => Reply::ok(s),
            Err(e) => Reply::err(ErrorCode::Unavailable, e.to_string()),
        },
        Request::Start { metadata } => match sup.start(Origin::Cli, metadata).await {
            Ok(rec) => Reply::ok(rec),
            Err(e) => Reply::err(e.code(), e.to_string()),
        },
        Request::Stop {} => match sup.stop(Origin::Cli).await {
            Ok(rec) => Reply::ok(rec),
            Err(e) => Reply::err(e.code(), e.to_string()),
        },
    }
}
