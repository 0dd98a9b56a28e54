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

/// The reason of an I/O error in the words of `ls` and friends (the common
/// kinds spelled out, without the "(os error 2)" tail).
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_reasons() {
        let e = std::fs::read("/nonexistent/kaswatch").unwrap_err();
        assert_eq!(io_reason(&e), "no such file or directory");
        let e = std::io::Error::other("disk on fire");
        assert_eq!(io_reason(&e), "disk on fire");
        assert_eq!(Error::Usage("x".into()).exit_code(), 2);
        assert_eq!(Error::input("f", "bad").to_string(), "f: bad");
    }
}
