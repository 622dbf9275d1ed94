//! The box's Ed25519 signing key: generated on first run, kept in the state
//! directory readable by the daemon only. The archive checks manifests
//! against the public key registered for the box.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

use crate::core::device_key::DeviceKeyId;

pub const KEY_FILE: &str = "device-ed25519.key";
/// The public half, readable by the group (doctor, technicians): the key
/// file itself is the daemon's alone.
pub const PUBLIC_FILE: &str = "device-ed25519.pub";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the device key {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the device key {path} is not 32 bytes; move it away to have a new one made (manifests signed with it can still be checked with its public key)")]
    Malformed { path: PathBuf },
    #[error(
        "{path} is not a public key (64 hex digits); the daemon writes it again at its next start"
    )]
    PublicMalformed { path: PathBuf },
    #[error("no randomness available to make a device key: {0}")]
    Random(String),
}

/// The key as people compare it (fingerprint and public key).
pub fn id(key: &SigningKey) -> DeviceKeyId {
    DeviceKeyId::new(&hex::encode(key.verifying_key().as_bytes()))
}

/// The public key written beside the key by [`load_or_create`], for those
/// who may not read the key itself.
pub fn read_public(state_dir: &Path) -> Result<DeviceKeyId, KeyError> {
    let path = state_dir.join(PUBLIC_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| KeyError::Io {
        path: path.clone(),
        source,
    })?;
    let hex = text.trim();
    if !crate::core::device_key::is_public_key(hex) {
        return Err(KeyError::PublicMalformed { path });
    }
    Ok(DeviceKeyId::new(hex))
}

/// Load the key, or make and store a new one if there is none; either way
/// its public half is (re)written to [`PUBLIC_FILE`] when it differs.
pub fn load_or_create(state_dir: &Path) -> Result<SigningKey, KeyError> {
    let key = load_or_create_key(state_dir)?;
    let public = state_dir.join(PUBLIC_FILE);
    let text = format!("{}\n", id(&key).public_key);
    if std::fs::read_to_string(&public).ok().as_deref() != Some(text.as_str()) {
        // Best effort: the key signs without it; doctor says it is missing.
        if let Err(e) = crate::util::atomic_write(&public, text.as_bytes(), Some(0o640)) {
            tracing::warn!("cannot write {}: {e}", public.display());
        }
    }
    Ok(key)
}

fn load_or_create_key(state_dir: &Path) -> Result<SigningKey, KeyError> {
    let path = state_dir.join(KEY_FILE);
    let io = |source| KeyError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let seed: [u8; 32] = bytes
                .try_into()
                .map_err(|_| KeyError::Malformed { path: path.clone() })?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
            std::fs::create_dir_all(state_dir).map_err(io)?;
            crate::util::atomic_write(&path, &seed, Some(0o600)).map_err(io)?;
            tracing::info!("made a new device signing key at {}", path.display());
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_made_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let public = read_public(dir.path()).unwrap();
        assert_eq!(public, id(&a));
        std::fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        assert!(load_or_create(dir.path()).is_err());
    }
}
