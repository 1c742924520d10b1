//! Shared test helpers for berth: the offline busybox test image, bundles,
//! the in-container probe, a wrapper around any runc-compatible CLI, console
//! sockets, and host-state snapshots that prove nothing was left behind.
//!
//! Used by the OCI conformance suite (tests/conformance), the integration
//! tests, the benchmark and the demo (`berth-fixture`).

pub mod bundle;
pub mod console;
pub mod image;
pub mod leaks;
pub mod probe;
pub mod runtime;

use std::path::PathBuf;

pub use bundle::Bundle;
pub use image::TestImage;
pub use runtime::Runtime;

/// The workspace root (the directory holding the top-level Cargo.toml).
/// `BERTH_WORKSPACE` overrides the compile-time location.
pub fn workspace_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("BERTH_WORKSPACE") {
        return PathBuf::from(dir);
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// `<workspace>/target`, or `CARGO_TARGET_DIR` when set.
/// The target triple every build uses (see .cargo/config.toml).
pub const TARGET_TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// Where `cargo build --release` puts our binaries.
pub fn release_dir() -> PathBuf {
    target_dir().join(TARGET_TRIPLE).join("release")
}

pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// An `io::Error` of kind `Other` carrying `msg`.
pub(crate) fn other(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::other(msg.into())
}
