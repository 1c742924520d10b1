//! The runtime's side of creating a container init: clone it, write user
//! namespace maps, place it in its cgroup, run the hooks it stops for, and
//! turn the failures it reports into errors that name the config field.

use std::os::fd::RawFd;

use super::channel::{self, Kind, Msg, Stage};
use super::plan::InitPlan;
use crate::error::{Errno, Error, Result};
use crate::sys::{fd, proc};

/// Callbacks for the moments the runtime must act for the child.
pub(crate) trait SpawnEvents {
    /// Right after clone, before the child goes on: write id maps (if the
    /// user namespace came with the clone) and put the child in its cgroup
    /// where it cannot join by itself. `into_cgroup`: clone3 already placed
    /// it in the cgroup2 directory it was given.
    fn on_clone(&mut self, pid: i32, into_cgroup: bool) -> Result<()>;
    /// The child created a user namespace with unshare: write its id maps.
    fn on_user_namespace(&mut self, pid: i32) -> Result<()>;
    /// Namespaces and mounts exist: run prestart/createRuntime hooks and
    /// return the state JSON the init's own hooks get (if any).
    fn on_hooks(&mut self, init_pid: i32) -> Result<Option<Vec<u8>>>;
    /// Describes a failure the child reported, naming the config field.
    fn describe(&self, stage: Stage, index: u32) -> String;
    /// The container process state (runtime-spec) a seccomp agent receives
    /// with the listener fd of process `pid`.
    fn seccomp_state(&mut self, pid: i32) -> Result<Vec<u8>>;
}

/// Clones the init and drives it until it is ready to start. Returns the
/// init's host pid. On error the child is killed and reaped.
pub(crate) fn spawn_init(
    plan: &mut InitPlan,
    cgroup_fd: Option<RawFd>,
    parent_sync: RawFd,
    events: &mut dyn SpawnEvents,
) -> Result<i32> {
    let flags = plan.ns.clone_flags;
    let child_sync = plan.sync;
    spawn(flags, cgroup_fd, child_sync, parent_sync, events, || {
        super::init::run(plan)
    })
}

/// Clones a child that runs `child` (which must only do async-signal-safe
/// work and end in exec or _exit; it never returns) and drives the set-up protocol until the
/// child reports Ready. Returns the pid of the process that will exec.
pub(crate) fn spawn(
    flags: u64,
    cgroup_fd: Option<RawFd>,
    child_sync: RawFd,
    parent_sync: RawFd,
    events: &mut dyn SpawnEvents,
    child: impl FnOnce(),
) -> Result<i32> {
    // SAFETY: the child only runs `child`, which is async-signal-safe and
    // ends in exec or _exit.
    let forked = unsafe { proc::fork_with(flags, cgroup_fd) }
        .map_err(|e| Error::sys("clone container process", e))?;
    let (pid, into_cgroup) = match forked {
        proc::Forked::Child => {
            fd::close(parent_sync);
            child();
            // `child` ends in exec or _exit; never fall back into the runtime.
            proc::exit(127)
        }
        proc::Forked::Parent {
            pid, into_cgroup, ..
        } => (pid, into_cgroup),
    };
    fd::close(child_sync);
    let mut tracker = Children {
        first: pid,
        init: pid,
    };
    match drive(parent_sync, &mut tracker, into_cgroup, events) {
        Ok(()) => Ok(tracker.init),
        Err(e) => {
            tracker.kill();
            Err(e)
        }
    }
}

/// Kills and reaps a process that failed after Ready (exec of an exec'd process).
pub(crate) fn kill_and_reap(pid: i32) {
    let _ = proc::kill(pid, libc::SIGKILL);
    let _ = proc::waitpid(pid, 0);
}

/// The processes cloned so far, to kill and reap on failure.
struct Children {
    first: i32,
    init: i32,
}

impl Children {
    fn kill(&self) {
        for pid in [self.init, self.first] {
            let _ = proc::kill(pid, libc::SIGKILL);
            let _ = proc::waitpid(pid, 0);
        }
    }
}

fn drive(
    sync: RawFd,
    children: &mut Children,
    into_cgroup: bool,
    events: &mut dyn SpawnEvents,
) -> Result<()> {
    let send =
        |m: Msg| channel::send(sync, &m).map_err(|e| Error::sys("sync with container init", e));
    events.on_clone(children.first, into_cgroup)?;
    send(Msg::new(Kind::Continue))?;
    loop {
        let msg = match channel::recv(sync) {
            Ok(Some(m)) => m,
            Ok(None) => return Err(died(children)),
            Err(e) => return Err(Error::sys("read from container init", e)),
        };
        match msg.kind {
            Kind::UserNsReady => {
                events.on_user_namespace(children.first)?;
                send(Msg::new(Kind::Continue))?;
            }
            Kind::Pid => {
                children.init = msg.value as i32;
                // The intermediate process exits right after reporting.
                let _ = proc::waitpid(children.first, 0);
                children.first = children.init;
            }
            Kind::HooksPoint => {
                if let Some(state) = events.on_hooks(children.init)? {
                    send(Msg::new(Kind::State))?;
                    crate::sys::socket::send(sync, &state)
                        .map_err(|e| Error::sys("send state to container init", e))?;
                }
                send(Msg::new(Kind::Continue))?;
            }
            Kind::SeccompStateRequest => {
                let state = events.seccomp_state(children.init)?;
                send(Msg::new(Kind::SeccompState))?;
                crate::sys::socket::send(sync, &state)
                    .map_err(|e| Error::sys("send the seccomp agent state", e))?;
            }
            Kind::Ready => return Ok(()),
            Kind::Error => {
                return Err(describe_failure(&msg, &|stage, index| {
                    events.describe(stage, index)
                }))
            }
            Kind::Continue | Kind::State | Kind::SeccompState => {
                return Err(Error::Setup(
                    "container init sent an unexpected message".into(),
                ))
            }
        }
    }
}

/// Formats a failure reported by a child process.
pub(crate) fn describe_failure(msg: &Msg, describe: &dyn Fn(Stage, u32) -> String) -> Error {
    let stage = Stage::from_u32(msg.stage);
    let field = describe(stage, msg.index);
    let text = msg.text();
    let reason = if matches!(
        stage,
        Stage::CreateContainerHook | Stage::StartContainerHook
    ) && msg.errno == 0
    {
        format!("{text}: {}", describe_wait_status(msg.value as i32))
    } else {
        format!("{text}: {}", Errno(msg.errno))
    };
    if matches!(
        stage,
        Stage::CreateContainerHook | Stage::StartContainerHook
    ) {
        return Error::Hook {
            hook: field,
            message: reason,
        };
    }
    Error::Setup(format!("{field}: {reason}"))
}

fn describe_wait_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exit status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status}")
    }
}

fn died(children: &Children) -> Error {
    match proc::waitpid(children.init, libc::WNOHANG) {
        Ok((p, status)) if p == children.init => Error::Setup(format!(
            "container init exited during set-up ({})",
            describe_wait_status(status)
        )),
        _ => Error::Setup("container init closed its channel during set-up".into()),
    }
}
