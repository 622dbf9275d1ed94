//! TLS for the broker connection: rustls with the ring provider, the CA
//! from the config (or the system's roots) and the per-device client
//! certificate for mutual TLS. Also the SIP server's certificate check
//! ahead of the SIP stack's own connection, whose failures it only
//! reports as a timeout.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// Why a TLS client configuration could not be made. The messages name no
/// protocol: the broker's and the SIP server's callers say whose it is.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Pem {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error(transparent)]
    Tls(#[from] rustls::Error),
    #[error("no usable CA certificate in {0}")]
    NoRoots(std::path::PathBuf),
}

/// Debian's bundle of system roots, used when no CA is configured.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

fn certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Pem {
            what,
            path: path.to_owned(),
            source,
        })
}

pub fn client_config(
    ca: Option<&Path>,
    client_cert: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let ca_path = ca.unwrap_or(Path::new(SYSTEM_ROOTS));
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs("CA certificate", ca_path)?);
    if added == 0 {
        return Err(TlsError::NoRoots(ca_path.to_owned()));
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
    let config = match client_cert {
        Some((cert, key)) => {
            let chain = certs("client certificate", cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Pem {
                what: "client key",
                path: key.to_owned(),
                source,
            })?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Check the broker's TLS identity the way the MQTT client will: a TLS
/// handshake to `host:port` with `config` (the CA the broker must chain to,
/// and the box's client certificate). Returns the protocol and cipher suite.
/// For `diemcau doctor`; sends no MQTT.
pub fn handshake(
    config: Arc<ClientConfig>,
    host: &str,
    port: u16,
    timeout: std::time::Duration,
) -> Result<String, String> {
    use std::io::Read;
    use std::net::ToSocketAddrs;
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let mut tcp =
        std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let name =
        rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
    let mut conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).map_err(|e| e.to_string())?;
    }
    // With TLS 1.3 the broker judges the client certificate after the
    // handshake: a refusal arrives as an alert on the first read.
    tcp.set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    match rustls::Stream::new(&mut conn, &mut tcp).read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        Err(e) => return Err(format!("the broker refused this box: {e}")),
        Ok(_) => {}
    }
    Ok(format!(
        "{:?}, {:?}",
        conn.protocol_version()
            .unwrap_or(rustls::ProtocolVersion::Unknown(0)),
        conn.negotiated_cipher_suite()
            .map(|s| s.suite())
            .unwrap_or(rustls::CipherSuite::Unknown(0))
    ))
}

/// Whether a TLS server at `addr` proves to be `name` to `config`'s
/// authorities: `Ok` when it does or cannot be reached at all (that is
/// another problem, reported elsewhere), `Err` with rustls's words when
/// the handshake fails. Blocking; `timeout` for the connection and each read.
pub fn server_trusted(
    config: Arc<ClientConfig>,
    name: &str,
    addr: std::net::SocketAddr,
    timeout: std::time::Duration,
) -> Result<(), String> {
    let Ok(mut tcp) = std::net::TcpStream::connect_timeout(&addr, timeout) else {
        return Ok(());
    };
    tcp.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    client_handshake(&mut tcp, config, name).map(|_| ())
}

/// A client handshake over a connected stream, checking that the server
/// proves to be `name` to `config`'s authorities; the connection, ready
/// for `rustls::Stream`, or rustls's words for what failed.
pub fn client_handshake(
    tcp: &mut std::net::TcpStream,
    config: Arc<ClientConfig>,
    name: &str,
) -> Result<rustls::ClientConnection, String> {
    let server = rustls::pki_types::ServerName::try_from(name.to_owned())
        .map_err(|e| format!("'{name}' is not a server name: {e}"))?;
    let mut conn = rustls::ClientConnection::new(config, server).map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(tcp).map_err(|e| e.to_string())?;
    }
    Ok(conn)
}
