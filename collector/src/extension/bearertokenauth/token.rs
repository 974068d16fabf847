//! The token itself: fixed, or read from a file and read again whenever the file's
//! modification time changes, so a rotated secret is used without a restart.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::component::auth::AuthError;

/// Why the token file gave no token. Never holds the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("token file {}: cannot read: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("token file {}: empty", path.display())]
    Empty { path: PathBuf },
}

pub enum TokenSource {
    Fixed(String),
    File {
        path: PathBuf,
        cached: Mutex<(Option<SystemTime>, String)>,
    },
}

impl TokenSource {
    /// Reads the file now, so a missing or empty one fails start-up naming it.
    pub fn file(path: PathBuf) -> Result<TokenSource, TokenFileError> {
        let modified = modified(&path);
        let token = read(&path)?;
        Ok(TokenSource::File {
            path,
            cached: Mutex::new((modified, token)),
        })
    }

    /// The current token. A file that became unreadable keeps failing (no stale token is
    /// used for a secret someone removed).
    pub fn current(&self) -> Result<String, AuthError> {
        match self {
            TokenSource::Fixed(t) => Ok(t.clone()),
            TokenSource::File { path, cached } => {
                let mut cached = cached.lock().unwrap_or_else(|p| p.into_inner());
                let now = modified(path);
                if now.is_none() || now != cached.0 {
                    let token = read(path).map_err(|e| AuthError::Unavailable(e.to_string()))?;
                    *cached = (now, token);
                }
                Ok(cached.1.clone())
            }
        }
    }
}

fn modified(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read(path: &std::path::Path) -> Result<String, TokenFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(TokenFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(token)
}
