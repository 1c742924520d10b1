//! berth-executor: an OCI runtime library. It drives the kernel directly
//! (namespaces, mounts, pivot_root, cgroups, capabilities, seccomp, rlimits,
//! hooks, ptys, CRIU) to create and manage containers, and backs both the
//! runc-compatible `berth-runc` CLI and the containerd shim, which links it
//! in-process.
//!
//! Start reading at [`Runtime::create`] (create.rs) and `process/init.rs`.

pub mod caps;
pub mod cgroups;
pub mod container;
pub mod create;
pub mod criu;
pub mod error;
pub mod exec;
pub mod logging;
pub mod mount;
pub(crate) mod process;
pub mod rlimits;
pub(crate) mod rootfs;
pub mod seccomp;
pub mod signal;
pub mod spec;
pub mod state;
pub(crate) mod sys;

pub use container::{Container, Runtime};
pub use create::CreateOptions;
pub use error::{Error, Result};
pub use exec::ExecOptions;
pub use state::{OciState, Status};
