//! Setup errors (bad files, signatures, flags): each renders as one line naming
//! the file, line or thing, and maps to the process exit code in `main.rs`.

use std::path::PathBuf;

/// An error that stops a run before or while reading input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {reason}")]
    Input { path: PathBuf, reason: String },
    #[error("{path}:{line}: {reason}")]
    Signature {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{0}")]
    Usage(String),
    #[error("{what}: {reason}")]
    Runtime { what: String, reason: String },
}

impl Error {
    pub fn input(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Error::Input {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
    pub fn runtime(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Runtime {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
    /// Process exit code: 2 for usage errors, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
