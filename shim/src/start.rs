//! `start`: containerd asks for a shim. Find or create the socket for the
//! container's group, write `address` into the bundle, fork the server
//! (detached from containerd's pipe), print the address.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use berth_ttrpc_api::typeurl::{shim_options_from_stdin, ShimOptions};

use crate::address;
use crate::args::Args;
use crate::server::{self, ServerConfig};

/// Runs `start`; returns the address to print.
pub fn run(args: &Args) -> Result<String, String> {
    let mut options = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut options);
    let bundle = std::env::current_dir().map_err(|e| format!("current directory: {e}"))?;
    let group = address::group_id(&bundle, &args.id);
    let addr = address::socket_address(&args.address, &args.namespace, &group);
    let path = address::socket_path(&addr).to_string();
    if UnixStream::connect(&path).is_ok() {
        // A shim already serves this group: share it.
        write_address(&bundle, &addr)?;
        return Ok(addr);
    }
    let _ = std::fs::remove_file(&path);
    std::fs::create_dir_all(address::SOCKET_DIR)
        .map_err(|e| format!("create {}: {e}", address::SOCKET_DIR))?;
    let listener = UnixListener::bind(&path).map_err(|e| format!("listen on {path}: {e}"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod {path}: {e}"))?;
    if let Err(e) = write_address(&bundle, &addr) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    let opts = shim_options_from_stdin(&options).unwrap_or(ShimOptions::None);
    let cfg = ServerConfig {
        namespace: args.namespace.clone(),
        socket_path: PathBuf::from(&path),
        ttrpc_address: std::env::var("TTRPC_ADDRESS")
            .ok()
            .filter(|a| !a.is_empty()),
        runtime_root: runtime_root(&args.namespace),
    };
    // SAFETY: this process is single-threaded; the child continues as the
    // server and never returns here.
    match unsafe { libc::fork() } {
        -1 => {
            let _ = std::fs::remove_file(&path);
            Err(format!(
                "fork shim server: {}",
                std::io::Error::last_os_error()
            ))
        }
        0 => {
            // SAFETY: setsid in the new child.
            unsafe { libc::setsid() };
            server::redirect_stdio(&bundle.join("log"));
            let _ = berth_executor::logging::Logger::install(None, false, args.debug);
            if let Err(e) = server::set_subreaper() {
                tracing::warn!("set child subreaper: {e}");
            }
            let code = match server::serve(cfg, OwnedFd::from(listener)) {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!("shim server: {e}");
                    1
                }
            };
            std::process::exit(code)
        }
        child => {
            drop(listener);
            adjust_oom_score(child);
            if let ShimOptions::Runc(o) = &opts {
                if !o.shim_cgroup.is_empty() {
                    join_cgroup(child, &o.shim_cgroup);
                }
            }
            Ok(addr)
        }
    }
}

/// Where the executor keeps container state for a namespace.
pub fn runtime_root(namespace: &str) -> PathBuf {
    Path::new("/run/containerd/berth").join(namespace)
}

fn write_address(bundle: &Path, addr: &str) -> Result<(), String> {
    let tmp = bundle.join(".address.tmp");
    std::fs::write(&tmp, addr).map_err(|e| format!("write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, bundle.join("address")).map_err(|e| format!("write address: {e}"))
}

/// The server's OOM score is containerd's plus one, as with the runc shim:
/// under memory pressure shims go before containerd.
fn adjust_oom_score(pid: i32) {
    let own: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let _ = std::fs::write(
        format!("/proc/{pid}/oom_score_adj"),
        (own + 1).min(1000).to_string(),
    );
}

/// Moves the server into the `shim_cgroup` of the runc options.
fn join_cgroup(pid: i32, cgroup: &str) {
    let rel = cgroup.trim_start_matches('/');
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut joined = false;
    for e in entries.flatten() {
        let procs = e.path().join(rel).join("cgroup.procs");
        if procs.exists() && std::fs::write(&procs, pid.to_string()).is_ok() {
            joined = true;
        }
    }
    let unified = Path::new("/sys/fs/cgroup").join(rel).join("cgroup.procs");
    if unified.exists() && std::fs::write(&unified, pid.to_string()).is_ok() {
        joined = true;
    }
    if !joined {
        eprintln!("shim_cgroup {cgroup}: not found; the shim stays in containerd's cgroup");
    }
}
