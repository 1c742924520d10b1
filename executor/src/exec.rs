//! `exec`: run another process inside a running container, in all of its
//! namespaces and its cgroup, with the container's seccomp profile.

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::container::Container;
use crate::error::{Error, Result};
use crate::process::channel::{self, Kind, Stage};
use crate::process::exec::ExecPlan;
use crate::process::keyring::KeyringPlan;
use crate::process::namespaces::move_fd;
use crate::process::plan::{NsJoin, ProcessPlan};
use crate::process::spawn::{self, SpawnEvents};
use crate::spec::{NamespaceType, Process};
use crate::state::Status;
use crate::sys;

/// How to exec a process.
#[derive(Debug, Default)]
pub struct ExecOptions {
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    /// An already connected console socket (in-process callers).
    pub console_fd: Option<OwnedFd>,
    pub preserve_fds: i32,
    /// fds for the process's stdin, stdout, stderr (default: inherit ours).
    pub stdio: Option<[RawFd; 3]>,
}

struct ExecEvents<'a> {
    container: &'a Container,
    process: &'a Process,
}

impl SpawnEvents for ExecEvents<'_> {
    fn on_clone(&mut self, pid: i32, into_cgroup: bool) -> Result<()> {
        // The process joined its v1 cgroups itself; cgroup2 came with clone3.
        if !into_cgroup {
            self.container.state.cgroup.add_process_v2(pid)?;
        }
        Ok(())
    }
    fn on_user_namespace(&mut self, _: i32) -> Result<()> {
        Ok(())
    }
    fn on_hooks(&mut self, _: i32) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    fn describe(&self, stage: Stage, index: u32) -> String {
        describe_exec_stage(self.container, self.process, stage, index)
    }

    fn seccomp_state(&mut self, pid: i32) -> Result<Vec<u8>> {
        Ok(self
            .container
            .state
            .seccomp_agent_state(pid, Status::Running))
    }
}

fn describe_exec_stage(c: &Container, p: &Process, stage: Stage, index: u32) -> String {
    match stage {
        Stage::Namespace => format!(
            "joining the namespaces of container {} (init pid {})",
            c.id(),
            c.pid()
        ),
        Stage::Rlimit => format!("process.rlimits[{index}]"),
        Stage::Executable => format!(
            "process.args ({:?})",
            p.args.first().cloned().unwrap_or_default()
        ),
        _ => crate::process::describe::describe_stage(&c.state.config, stage, index),
    }
}

impl Container {
    /// Starts `opts.process` inside the container; returns its host pid.
    /// The process is a child of the caller.
    pub fn exec(&self, opts: ExecOptions) -> Result<i32> {
        let status = self.status();
        if !matches!(status, Status::Running | Status::Created) {
            return Err(Error::InvalidState {
                id: self.id().to_string(),
                status: status.to_string(),
                message: "can only exec into a running container".into(),
            });
        }
        let p = &opts.process;
        if p.terminal && opts.console_socket.is_none() && opts.console_fd.is_none() {
            return Err(Error::invalid(
                "process.terminal",
                "is true, so a console socket is required (--console-socket)",
            ));
        }
        let min_fd = 3 + opts.preserve_fds;
        let linux = self.state.config.linux.clone().unwrap_or_default();
        let mut process =
            ProcessPlan::build(p, linux.seccomp.as_ref(), "process", opts.preserve_fds)?;
        let mut held = Vec::new();
        let listener_path = linux
            .seccomp
            .as_ref()
            .and_then(|s| s.listener_path.as_deref());
        process.connect_seccomp_agent(listener_path, min_fd, &mut held)?;
        if !self.state.no_new_keyring {
            process.keyring = Some(KeyringPlan::for_exec(self.id())?);
        }

        // The init's namespaces: every type the container has (new or joined).
        let mut joins = Vec::new();
        for (i, n) in linux.namespaces.iter().enumerate() {
            let path = format!("/proc/{}/ns/{}", self.pid(), n.typ.proc_name());
            let file =
                std::fs::File::open(&path).map_err(|e| Error::io(format!("open {path}"), e))?;
            let owned = move_fd(OwnedFd::from(file), min_fd)?;
            joins.push(NsJoin {
                fd: owned.as_raw_fd(),
                typ: n.typ,
                index: i,
            });
            held.push(owned);
        }
        let fork_again = linux.namespaces.iter().any(|n| n.typ == NamespaceType::Pid);
        let console = match (opts.console_fd, &opts.console_socket) {
            (Some(fd), _) => Some(move_fd(fd, min_fd)?),
            (None, Some(path)) => {
                let raw = sys::socket::connect_unix(path.as_os_str().as_bytes()).map_err(|e| {
                    Error::sys(format!("connect to console socket {}", path.display()), e)
                })?;
                // SAFETY: raw was just returned by socket(2) and is owned here.
                Some(move_fd(unsafe { OwnedFd::from_raw_fd(raw) }, min_fd)?)
            }
            (None, None) => None,
        };
        let (parent_sync, child_sync) = sys::socket::socketpair(libc::SOCK_SEQPACKET)
            .map_err(|e| Error::sys("create sync socket pair", e))?;
        // SAFETY: both fds were just created and are owned here.
        let parent_sync = move_fd(unsafe { OwnedFd::from_raw_fd(parent_sync) }, min_fd)?;
        // SAFETY: as above.
        let child_sync =
            move_fd(unsafe { OwnedFd::from_raw_fd(child_sync) }, min_fd)?.into_raw_fd();
        let join = self.state.cgroup.self_join();
        let cgroup_dir = join
            .v2_dir
            .as_ref()
            .and_then(|d| std::fs::File::open(d).ok())
            .map(OwnedFd::from);
        let mut plan = ExecPlan {
            sync: child_sync,
            cgroup_tasks: crate::process::cgroup_tasks(&join),
            console: console.as_ref().map(|c| c.as_raw_fd()),
            stdio: opts.stdio,
            joins,
            fork_again,
            process,
        };
        let mut events = ExecEvents {
            container: self,
            process: p,
        };
        let cgroup_fd = cgroup_dir.as_ref().map(|f| f.as_raw_fd());
        let pid = spawn::spawn(
            0,
            cgroup_fd,
            child_sync,
            parent_sync.as_raw_fd(),
            &mut events,
            || crate::process::exec::run(&mut plan),
        )?;
        drop(held);
        drop(console);
        // Ready was sent just before execve: EOF means it ran, a message means it failed.
        match channel::recv(parent_sync.as_raw_fd()) {
            Ok(None) => Ok(pid),
            Ok(Some(m)) if m.kind == Kind::Error => {
                spawn::kill_and_reap(pid);
                Err(spawn::describe_failure(&m, &|s, i| {
                    describe_exec_stage(self, p, s, i)
                }))
            }
            Ok(Some(_)) => {
                spawn::kill_and_reap(pid);
                Err(Error::Setup(
                    "exec: unexpected message from the process".into(),
                ))
            }
            Err(e) => {
                spawn::kill_and_reap(pid);
                Err(Error::sys("exec: wait for the process to start", e))
            }
        }
    }
}

/// A connected socket pair standing in for a console socket, for callers
/// that take the pty master in-process: pass the first end as
/// `console_fd`, then `receive_fd` on the second.
pub fn console_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = sys::socket::socketpair(libc::SOCK_STREAM).map_err(std::io::Error::from)?;
    // SAFETY: both fds were just created by socketpair and are owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(a), OwnedFd::from_raw_fd(b)) })
}

/// Receives the pty master a container process sends to its console socket.
pub fn receive_fd(sock: RawFd) -> std::io::Result<OwnedFd> {
    let mut buf = [0u8; 256];
    let (_, fd) = sys::socket::recv_fd(sock, &mut buf).map_err(std::io::Error::from)?;
    let fd = fd.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no file descriptor received",
        )
    })?;
    // SAFETY: the kernel just installed fd in our table; we own it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
