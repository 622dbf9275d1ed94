//! TLS for the broker connection: rustls with the ring provider, the CA
//! from the config (or the system's roots) and the per-device client
//! certificate for mutual TLS.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::MqttError;

/// Debian's bundle of system roots, used when no CA is configured.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

fn certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, MqttError> {
    CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| MqttError::Pem {
            what,
            path: path.to_owned(),
            source,
        })
}

pub fn client_config(
    ca: Option<&Path>,
    client_cert: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, MqttError> {
    let ca_path = ca.unwrap_or(Path::new(SYSTEM_ROOTS));
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs("CA certificate", ca_path)?);
    if added == 0 {
        return Err(MqttError::NoRoots(ca_path.to_owned()));
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
    let config = match client_cert {
        Some((cert, key)) => {
            let chain = certs("client certificate", cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|source| MqttError::Pem {
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
