//! HS256 secrets: the configured one, or a random 256-bit key generated once
//! and kept beside the store (mode 0600), so tokens survive a restart.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const KEY_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write the generated key {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the generated key {0} is not {KEY_BYTES} bytes; delete it to make a new one (issued tokens stop working)")]
    BadLength(PathBuf),
    #[error("cannot get random bytes for a key: {0}")]
    Random(getrandom::Error),
}

/// The key file for one kind of token: `<store file>.<kind>.key`.
pub fn key_path(store: &Path, kind: &str) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{kind}.key"));
    store.with_file_name(name)
}

/// The configured secret, else the persisted one, else a new one (persisted
/// before it is used).
pub fn secret(configured: Option<&[u8]>, store: &Path, kind: &str) -> Result<Vec<u8>, KeyError> {
    if let Some(s) = configured {
        return Ok(s.to_vec());
    }
    let path = key_path(store, kind);
    let io = |source| KeyError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read(&path) {
        Ok(key) if key.len() == KEY_BYTES => {
            let mode = std::fs::metadata(&path).map_err(io)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "a signing key file is readable by other users; chmod 600 it");
            }
            Ok(key)
        }
        Ok(_) => Err(KeyError::BadLength(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = random_key()?;
            persist(&path, &key).map_err(io)?;
            tracing::info!(path = %path.display(), kind, "generated a signing key and saved it beside the store");
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

/// A new random key.
pub fn random_key() -> Result<Vec<u8>, KeyError> {
    let mut key = vec![0u8; KEY_BYTES];
    getrandom::fill(&mut key).map_err(KeyError::Random)?;
    Ok(key)
}

/// Writes through a temporary file and a rename, so a crash leaves either no
/// key or the whole key, never a torn one.
fn persist(path: &Path, key: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("key.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(key)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("users.redb");
        let first = secret(None, &store, "access").unwrap();
        let again = secret(None, &store, "access").unwrap();
        let other = secret(None, &store, "refresh").unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(first, again);
        assert_ne!(first, other);
        let path = dir.path().join("users.redb.access.key");
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_configured_secret_wins_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("users.redb");
        let s = secret(Some(b"configured"), &store, "access").unwrap();
        assert_eq!(s, b"configured");
        assert!(!key_path(&store, "access").exists());
    }
}
