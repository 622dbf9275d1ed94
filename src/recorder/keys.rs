//! The box's Ed25519 signing key: generated on first run, kept in the state
//! directory readable by the daemon only. The archive checks manifests
//! against the public key registered for the box.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

pub const KEY_FILE: &str = "device-ed25519.key";

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
    #[error("no randomness available to make a device key: {0}")]
    Random(String),
}

/// Load the key, or make and store a new one if there is none.
pub fn load_or_create(state_dir: &Path) -> Result<SigningKey, KeyError> {
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
        std::fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        assert!(load_or_create(dir.path()).is_err());
    }
}
