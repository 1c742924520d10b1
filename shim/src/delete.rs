//! `delete`: containerd cleans up after a shim is gone (or after a normal
//! Shutdown). Force-delete the container if anything is left, unmount the
//! rootfs, remove the socket of a shim that died without doing so, print a
//! DeleteResponse. Idempotent.

use std::path::PathBuf;
use std::time::SystemTime;

use berth_executor::Runtime;
use berth_ttrpc_api::protobuf::{Message, MessageField};
use berth_ttrpc_api::task::DeleteResponse;

use crate::args::Args;
use crate::process::timestamp;

pub fn run(args: &Args) -> Result<Vec<u8>, String> {
    let bundle = if args.bundle.is_empty() {
        std::env::current_dir().map_err(|e| format!("current directory: {e}"))?
    } else {
        PathBuf::from(&args.bundle)
    };
    let runtime = Runtime::new(crate::start::runtime_root(&args.namespace));
    let mut pid = 0;
    match runtime.load(&args.id) {
        Ok(c) => {
            pid = c.pid();
            if let Err(e) = c.delete(true) {
                eprintln!("delete container {}: {e}", args.id);
            }
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => eprintln!("load container {}: {e}", args.id),
    }
    berth_executor::mount::unmount_all(&bundle.join("rootfs"));
    remove_dead_socket(&bundle);
    let mut resp = DeleteResponse::new();
    resp.pid = pid.max(0) as u32;
    resp.exit_status = 137;
    resp.exited_at = MessageField::some(timestamp(SystemTime::now()));
    resp.write_to_bytes()
        .map_err(|e| format!("encode DeleteResponse: {e}"))
}

/// A shim killed with SIGKILL leaves its socket behind (the runc shim's
/// too). Remove the one this bundle's `address` names, but only if it is
/// ours (under the socket directory) and nothing listens on it any more: a
/// shim serving a group of containers may still be alive.
fn remove_dead_socket(bundle: &std::path::Path) {
    let Ok(addr) = std::fs::read_to_string(bundle.join("address")) else {
        return;
    };
    let path = std::path::Path::new(crate::address::socket_path(addr.trim()));
    if path.parent() != Some(std::path::Path::new(crate::address::SOCKET_DIR)) {
        return;
    }
    if std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
}
