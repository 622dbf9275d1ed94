//! The socket's client side, for the CLI and `doctor`: one command, one
//! reply. Speaks only `core::command`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::core::command::{Command, Reply};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the diemcau daemon at {path}: {source}; is it running? (systemctl status diemcau)")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to the daemon at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the daemon sent a reply that is not understood: {0}")]
    Decode(serde_json::Error),
}

pub fn request(socket: &Path, cmd: &Command, timeout: Duration) -> Result<Reply, ClientError> {
    request_as(socket, cmd, timeout, None)
}

/// The request's JSON, with `by` (the person asking) when given.
pub fn request_value(cmd: &Command, by: Option<&str>) -> serde_json::Value {
    let mut req = cmd.to_request();
    if let (Some(by), Some(obj)) = (by, req.as_object_mut()) {
        obj.insert("by".into(), by.into());
    }
    req
}

/// [`request`], saying who asks (`by`, the name the CLI asked for), which
/// the audit trail records beside the Unix account.
pub fn request_as(
    socket: &Path,
    cmd: &Command,
    timeout: Duration,
    by: Option<&str>,
) -> Result<Reply, ClientError> {
    let io = |source| ClientError::Io {
        path: socket.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        path: socket.to_owned(),
        source,
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_vec(&request_value(cmd, by)).map_err(ClientError::Decode)?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io)?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply).map_err(io)?;
    serde_json::from_str(&reply).map_err(ClientError::Decode)
}
