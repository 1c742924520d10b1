//! The cgroup layer's error type. Every variant names the cgroup file or
//! directory involved and, when the config caused it, the JSON field.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A config field is invalid, or asks for something this host cannot
    /// provide (a controller that is not mounted, a file the kernel lacks).
    #[error("{field}: {message}")]
    Config { field: String, message: String },

    /// Something berth does not implement, such as the systemd cgroup driver.
    #[error("unsupported: {what}")]
    Unsupported { what: String },

    /// No usable cgroup hierarchy could be found on this host.
    #[error("cgroup hierarchy not found: {message}")]
    NotMounted { message: String },

    /// A filesystem operation other than a write failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The kernel rejected a write that does not come from a config field
    /// (cgroup.procs, freezer.state, cgroup.subtree_control...).
    #[error("write {value:?} to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },

    /// The kernel rejected a value taken from a config field.
    #[error("{field}: write {value:?} to {}: {source}", path.display())]
    Apply {
        field: String,
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },

    /// A cgroup file's content is not what the kernel documents.
    #[error("{}: cannot parse: {message}", path.display())]
    Parse { path: PathBuf, message: String },

    /// An operation on a cgroup did not reach the expected state (freezing
    /// timed out, the device list does not match...).
    #[error("{}: {message}", path.display())]
    State { path: PathBuf, message: String },

    /// A bpf(2) command for the cgroup v2 device filter failed.
    #[error("bpf({op}) for {}: {source}{log}", path.display())]
    Bpf {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
        /// The verifier log (empty unless BPF_PROG_LOAD failed), with a
        /// leading separator so the message reads well either way.
        log: String,
    },
}

pub type Result<T> = std::result::Result<T, CgroupError>;

impl CgroupError {
    pub(crate) fn config(field: impl Into<String>, message: impl Into<String>) -> CgroupError {
        CgroupError::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> CgroupError {
        CgroupError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The errno behind this error, when there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            CgroupError::Io { source, .. }
            | CgroupError::Write { source, .. }
            | CgroupError::Apply { source, .. }
            | CgroupError::Bpf { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
