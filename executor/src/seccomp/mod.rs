//! Seccomp: compiles the OCI `linux.seccomp` object into a classic-BPF filter (pure Rust, no
//! libseccomp) with runc's semantics, and loads it with an async-signal-safe seccomp(2) call.
//!
//! Where to start: `compile.rs` (profile → rules → program, every semantic decision is
//! documented there with the runc/libseccomp source it follows), `arch.rs` (ABIs and syscall
//! names), `bpf.rs` (instruction encoding and long jumps), `load.rs` (the only `unsafe`).

mod arch;
mod bpf;
mod codegen;
mod compile;
mod load;
mod tables;

#[cfg(test)]
mod interp;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_containerd;
#[cfg(test)]
mod tests_kernel;
#[cfg(test)]
mod tests_limits;
#[cfg(test)]
mod tests_random;

pub use compile::{compile, Program};
pub use load::load;

/// What is wrong with a `linux.seccomp` object; every message starts with the JSON path.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("linux.seccomp.architectures[{index}]: unknown architecture {name:?}")]
    UnknownArchitecture { index: usize, name: String },
    #[error("linux.seccomp.flags[{index}]: unknown flag {name:?}")]
    UnknownFlag { index: usize, name: String },
    #[error("{path}: {value} is out of range 0..=5")]
    ArgIndexOutOfRange { path: String, value: u32 },
    #[error("{path}: {value} is out of range 0..=65535")]
    ErrnoOutOfRange { path: String, value: u32 },
    #[error("{path}: {action} takes no errno value, only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do")]
    ErrnoNotSupported { path: String, action: &'static str },
    #[error("linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action")]
    NotifyAsDefault,
    #[error(
        "{path}: SCMP_ACT_NOTIFY cannot be used for write: the runtime must write after \
         loading the filter, before the agent has the listener"
    )]
    NotifyOnWrite { path: String },
    #[error("linux.seccomp.listenerPath: must be set when SCMP_ACT_NOTIFY is used")]
    ListenerPathMissing,
    #[error("linux.seccomp.listenerMetadata: must not be set without listenerPath")]
    MetadataWithoutListener,
    #[error("{path}: empty syscall name")]
    EmptySyscallName { path: String },
    #[error("linux.seccomp: filter needs {needed} instructions, the kernel allows 4096")]
    TooManyInstructions { needed: usize },
    #[error("linux.seccomp: seccomp filters are only built for x86_64 hosts, not {0}")]
    UnsupportedHost(&'static str),
    #[error("linux.seccomp: internal error while building the filter: {0}")]
    Internal(&'static str),
}
