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

use super::{parse_request, Request, MAX_REQUEST};
use crate::control::{outcome, Control, Ctx};
use crate::core::command::{self, Command, Reply};
use crate::core::status::ErrorCode;

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
pub async fn serve(listener: UnixListener, control: Control) {
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
        let control = control.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, control).await {
                tracing::debug!("api connection ended: {e}");
            }
            drop(permit);
        });
    }
}

async fn connection(stream: UnixStream, control: Control) -> std::io::Result<()> {
    // Who is asking, as the kernel says (SO_PEERCRED), for the audit trail.
    let user = stream
        .peer_cred()
        .ok()
        .map(|c| crate::util::user_name(c.uid()));
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
            Ok(Request {
                command: Command::RecordingExport { id },
                by,
                ..
            }) => {
                let ctx = Ctx::socket(user.clone(), by);
                export(&mut write, &control, id, &ctx).await?;
                continue;
            }
            Ok(Request { command, alias, by }) => {
                let ctx = Ctx::socket(user.clone(), by);
                let result = control.execute(command, &ctx).await;
                Reply::from_result(result.map(|v| match alias {
                    Some(a) => command::shape_alias(a, v),
                    None => v,
                }))
            }
            Err(msg) => Reply::err(ErrorCode::BadRequest, msg),
        };
        write_reply(&mut write, &reply).await?;
        if oversized {
            // The rest of the line is unread garbage; end the connection.
            return Ok(());
        }
    }
}

async fn write_reply(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    reply: &Reply,
) -> std::io::Result<()> {
    let mut out = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await
}

/// Stream a recording: a JSON header line with the size, then the bytes,
/// one segment at a time (a session can be gigabytes).
/// Every export is in the audit trail: who took a copy of which
/// recording, and whether it was all sent.
async fn export(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    control: &Control,
    id: String,
    ctx: &Ctx,
) -> std::io::Result<()> {
    let plan = match control.export_plan(id.clone()).await {
        Ok(p) => p,
        Err(e) => {
            let refused = Err(e);
            control
                .audit(ctx, "recording.export", Some(id), outcome(&refused))
                .await;
            return write_reply(write, &Reply::from_result(refused)).await;
        }
    };
    let total: u64 = plan.iter().map(|(_, b)| b).sum();
    let sent = async {
        write_reply(write, &Reply::ok(serde_json::json!({ "bytes": total }))).await?;
        for (seq, _) in plan {
            let bytes = control
                .segment_bytes(id.clone(), seq)
                .await
                .map_err(std::io::Error::other)?;
            write.write_all(&bytes).await?;
        }
        write.flush().await
    }
    .await;
    let said = match &sent {
        Ok(()) => format!("done: {total} bytes"),
        Err(e) => format!("failed: {e}"),
    };
    control.audit(ctx, "recording.export", Some(id), said).await;
    sent
}
