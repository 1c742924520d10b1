//! Creating processes inside containers. One file per role, as in youki:
//! `plan.rs` (what the runtime prepares before clone), `spawn.rs` (the
//! runtime's side of creating the init), `init.rs` (the container init, from
//! clone to exec), `exec.rs` (joining a running container), `finalize.rs`
//! (the last steps before exec, shared by both), `channel.rs` (their
//! messages), `hooks.rs` (OCI hooks run by the runtime), and the pieces
//! both kinds of process use: `namespaces.rs`, `pty.rs`, `keyring.rs`,
//! `sched.rs`, and `describe.rs` (the config field behind a failure).

pub(crate) mod channel;
pub(crate) mod describe;
pub(crate) mod exec;
pub(crate) mod finalize;
pub(crate) mod hooks;
pub(crate) mod init;
pub(crate) mod keyring;
pub(crate) mod namespaces;
pub(crate) mod plan;
pub(crate) mod pty;
pub(crate) mod sched;
pub(crate) mod spawn;

use std::ffi::CString;
use std::os::fd::RawFd;

use crate::error::Errno;
use channel::{Msg, Stage};

/// The v1 `tasks` files a child writes "0" to, to join its cgroup itself
/// (see `Cgroup::self_join`), and whether a failure there is only a warning.
pub(crate) type CgroupTasks = Vec<(CString, bool)>;

/// Child side: forks once more so the process lands in the pid namespace it
/// created or joined (a pid namespace only applies to children). The
/// intermediate reports the new pid to the runtime over `sync` and exits.
pub(crate) fn fork_into_pid_namespace(sync: RawFd) -> Result<(), Failure> {
    use crate::sys::proc;
    // SAFETY: the caller is single-threaded; the child continues with the
    // same async-signal-safe steps.
    match unsafe { proc::fork_with(libc::CLONE_PARENT as u64, None) } {
        Ok(proc::Forked::Child) => {
            // The death signal does not survive fork.
            proc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
                .map(drop)
                .map_err(|e| Failure::new(Stage::Channel, 0, e, "sync with runtime"))
        }
        Ok(proc::Forked::Parent { pid, .. }) => {
            let _ = channel::send(sync, &Msg::with_value(channel::Kind::Pid, pid as i64));
            proc::exit(0)
        }
        Err(e) => Err(Failure::new(
            Stage::Fork,
            0,
            e,
            "fork into the pid namespace",
        )),
    }
}

/// Child side: moves the calling (single-threaded) process into its cgroup
/// in every v1 hierarchy.
pub(crate) fn join_cgroups(tasks: &CgroupTasks) -> Result<(), Failure> {
    for (i, (path, best_effort)) in tasks.iter().enumerate() {
        match crate::sys::fs::write_file(path.as_ptr(), b"0") {
            Ok(()) => {}
            Err(_) if *best_effort => {}
            Err(e) => {
                return Err(
                    Failure::new(Stage::Cgroup, i, e, "join cgroup").with_detail(path.to_bytes())
                )
            }
        }
    }
    Ok(())
}

/// Converts `Cgroup::self_join` paths for a child plan.
pub(crate) fn cgroup_tasks(join: &crate::cgroups::SelfJoin) -> CgroupTasks {
    use std::os::unix::ffi::OsStrExt;
    join.v1_tasks
        .iter()
        .filter_map(|(p, best_effort)| {
            CString::new(p.as_os_str().as_bytes())
                .ok()
                .map(|c| (c, *best_effort))
        })
        .collect()
}

/// A failed step in a child process, reported to the runtime over the channel.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failure {
    pub stage: Stage,
    index: u32,
    pub errno: Errno,
    /// The call that failed.
    pub what: &'static str,
    /// A path or name from the plan (copied, truncated to fit; the runtime
    /// names the config field itself, this is only a hint).
    detail: [u8; DETAIL_LEN],
    detail_len: u8,
    /// Extra number (a hook's wait status).
    pub value: i64,
}

/// Small enough that `Result<_, Failure>` stays cheap to move (it lives on
/// the stack of a child that must not allocate).
const DETAIL_LEN: usize = 80;

impl Failure {
    pub(crate) fn new(stage: Stage, index: usize, errno: Errno, what: &'static str) -> Failure {
        Failure {
            stage,
            index: index.min(u32::MAX as usize) as u32,
            errno,
            what,
            detail: [0; DETAIL_LEN],
            detail_len: 0,
            value: 0,
        }
    }

    /// Adds a path or name (no allocation).
    pub(crate) fn with_detail(mut self, detail: &[u8]) -> Failure {
        let n = detail.len().min(DETAIL_LEN);
        self.detail[..n].copy_from_slice(&detail[..n]);
        self.detail_len = n as u8;
        self
    }

    /// Sends the failure on `fd` (async-signal-safe).
    pub(crate) fn report(&self, fd: RawFd) {
        let mut m = Msg::error(
            self.stage,
            self.index as usize,
            self.errno,
            self.what,
            &self.detail[..self.detail_len as usize],
        );
        m.value = self.value;
        let _ = channel::send(fd, &m);
    }
}
