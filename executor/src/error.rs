//! The executor's error type: every variant names what failed (a path, a
//! container id, a config field) so a user can act on the message alone.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A raw errno value from a failed system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// The calling thread's current errno.
    pub fn last() -> Errno {
        Errno(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", io::Error::from_raw_os_error(self.0))
    }
}

impl std::error::Error for Errno {}

impl From<Errno> for io::Error {
    fn from(e: Errno) -> io::Error {
        io::Error::from_raw_os_error(e.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// config.json could not be read or parsed.
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },

    /// A config field holds a value the runtime cannot honour.
    #[error("invalid config: {field}: {message}")]
    InvalidConfig { field: String, message: String },

    #[error("container id {id:?} is invalid: {reason}")]
    InvalidId { id: String, reason: &'static str },

    #[error("container {id} already exists")]
    AlreadyExists { id: String },

    #[error("container {id} does not exist")]
    NotFound { id: String },

    /// The operation is not allowed in the container's current status.
    #[error("container {id} is {status}: {message}")]
    InvalidState {
        id: String,
        status: String,
        message: String,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("{context}: {errno}")]
    Sys { context: String, errno: Errno },

    /// The container's init (or an exec'd process) failed while setting up.
    #[error("{0}")]
    Setup(String),

    #[error("hook {hook}: {message}")]
    Hook { hook: String, message: String },

    #[error("cgroup: {0}")]
    Cgroup(#[from] crate::cgroups::CgroupError),

    #[error("seccomp: {0}")]
    Seccomp(#[from] crate::seccomp::SeccompError),

    #[error("criu: {0}")]
    Criu(String),

    #[error("{0}")]
    Unsupported(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn sys(context: impl Into<String>, errno: Errno) -> Error {
        Error::Sys {
            context: context.into(),
            errno,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::InvalidConfig {
            field: field.into(),
            message: message.into(),
        }
    }

    /// True when the error means "no such container", which callers such as
    /// containerd treat as already gone.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

/// Adds a context string to io results.
pub trait IoContext<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}
