//! The processes a shim tracks: each container's init and its exec'd
//! processes, with the state transitions and refusals of containerd's runc
//! shim (created → running → stopped; exec needs a running init).

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::SystemTime;

use berth_ttrpc_api::protobuf::well_known_types::timestamp::Timestamp;

use crate::io::{ProcessIo, StdioPaths};

/// Where a process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcState {
    /// Created (init) or registered by Exec, not started yet.
    Created,
    Running,
    Stopped,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub status: u32,
    pub at: SystemTime,
}

impl Exit {
    /// From a raw wait status: the exit code, or 128 + signal.
    pub fn from_wait_status(status: i32, at: SystemTime) -> Exit {
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status) as u32
        } else if libc::WIFSIGNALED(status) {
            128 + libc::WTERMSIG(status) as u32
        } else {
            255
        };
        Exit { status: code, at }
    }
}

/// A deferred Wait call: the connection and stream to answer.
pub type Waiter = (mio::Token, u32);

/// One process: an init or an exec.
pub struct Proc {
    /// "" for the init.
    pub exec_id: String,
    pub pid: i32,
    pub state: ProcState,
    pub exit: Option<Exit>,
    pub stdio: StdioPaths,
    pub io: ProcessIo,
    /// Base token of the terminal relay's fds, if it has one.
    pub relay_token: Option<usize>,
    /// Tokens of the stdio copiers' fds.
    pub copy_tokens: Vec<usize>,
    /// The OCI process of an exec, kept until Start.
    pub spec: Option<berth_executor::spec::Process>,
    pub waiters: Vec<Waiter>,
}

impl Proc {
    pub fn new(exec_id: &str, stdio: StdioPaths) -> Proc {
        Proc {
            exec_id: exec_id.to_string(),
            pid: 0,
            state: ProcState::Created,
            exit: None,
            stdio,
            io: ProcessIo::default(),
            relay_token: None,
            copy_tokens: Vec::new(),
            spec: None,
            waiters: Vec::new(),
        }
    }
}

/// What a checkpoint restore needs at Start.
pub struct Restore {
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
}

/// One container served by this shim.
pub struct Ctr {
    pub bundle: PathBuf,
    /// The executor's handle, once created (or restored at Start).
    pub container: Option<berth_executor::Container>,
    pub init: Proc,
    pub execs: BTreeMap<String, Proc>,
    pub restore: Option<Restore>,
    /// The container has its own pid namespace: when the init exits the
    /// kernel kills the rest; otherwise the shim does.
    pub own_pid_ns: bool,
    /// rootfs mounts the shim made (undone at Delete).
    pub rootfs_mounted: bool,
    /// The OOM notification fd and its token.
    pub oom: Option<(usize, OwnedFd)>,
}

impl Ctr {
    pub fn process(&self, exec_id: &str) -> Option<&Proc> {
        if exec_id.is_empty() {
            Some(&self.init)
        } else {
            self.execs.get(exec_id)
        }
    }

    pub fn process_mut(&mut self, exec_id: &str) -> Option<&mut Proc> {
        if exec_id.is_empty() {
            Some(&mut self.init)
        } else {
            self.execs.get_mut(exec_id)
        }
    }

    /// The process with host pid `pid`, if it is one of ours.
    pub fn by_pid_mut(&mut self, pid: i32) -> Option<&mut Proc> {
        if self.init.pid == pid && self.init.state != ProcState::Stopped {
            return Some(&mut self.init);
        }
        self.execs
            .values_mut()
            .find(|p| p.pid == pid && p.state != ProcState::Stopped)
    }
}

/// A protobuf timestamp from a system time.
pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = d.as_secs() as i64;
    ts.nanos = d.subsec_nanos() as i32;
    ts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_shell_conventions() {
        let now = SystemTime::now();
        // Exit code 3: status word 3 << 8.
        assert_eq!(Exit::from_wait_status(3 << 8, now).status, 3);
        // Killed by SIGKILL: status word 9.
        assert_eq!(Exit::from_wait_status(9, now).status, 137);
    }
}
