//! A process exec'd into a running container (`exec`): the cloned child
//! joins the init's namespaces, forks into its pid namespace, applies the
//! process's identity and confinement, and execs. Between clone and exec:
//! async-signal-safe calls only.

use std::convert::Infallible;
use std::os::fd::RawFd;

use super::channel::{self, Kind, Msg, Stage};
use super::plan::{NsJoin, ProcessPlan};
use super::{finalize, Failure};
use crate::error::Errno;
use crate::spec::NamespaceType;
use crate::sys::{fd, proc};

/// Everything the exec'd process needs.
pub(crate) struct ExecPlan {
    pub sync: RawFd,
    /// v1 cgroup `tasks` files to write "0" to first.
    pub cgroup_tasks: super::CgroupTasks,
    pub console: Option<RawFd>,
    pub stdio: Option<[RawFd; 3]>,
    /// The init's namespaces (user last).
    pub joins: Vec<NsJoin>,
    /// Fork after joining: the pid namespace only applies to children.
    pub fork_again: bool,
    pub process: ProcessPlan,
}

fn fail(stage: Stage, index: usize, errno: Errno, what: &'static str) -> Failure {
    Failure::new(stage, index, errno, what)
}

/// Entry point in the cloned child.
pub(crate) fn run(plan: &mut ExecPlan) -> ! {
    let sync = plan.sync;
    let failure = match run_steps(plan) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    failure.report(sync);
    proc::exit(1)
}

fn channel_fail(errno: Errno) -> Failure {
    fail(Stage::Channel, 0, errno, "sync with runtime")
}

fn run_steps(plan: &mut ExecPlan) -> Result<Infallible, Failure> {
    let sync = plan.sync;
    super::join_cgroups(&plan.cgroup_tasks)?;
    proc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong).map_err(channel_fail)?;
    match channel::recv(sync) {
        Ok(Some(m)) if m.kind == Kind::Continue => {}
        Ok(_) => return Err(channel_fail(Errno(libc::EPROTO))),
        Err(e) => return Err(channel_fail(e)),
    }
    if let Some(stdio) = plan.stdio {
        for (target, src) in stdio.iter().enumerate() {
            fd::dup2(*src, target as RawFd)
                .map_err(|e| fail(Stage::Channel, target, e, "dup2 stdio"))?;
        }
    }
    // Non-user namespaces first, while we hold the runtime's privileges.
    for j in plan.joins.iter().filter(|j| j.typ != NamespaceType::User) {
        proc::setns(j.fd, j.typ.clone_flag())
            .map_err(|e| fail(Stage::Namespace, j.index, e, "setns"))?;
    }
    for j in plan.joins.iter().filter(|j| j.typ == NamespaceType::User) {
        proc::setns(j.fd, libc::CLONE_NEWUSER)
            .map_err(|e| fail(Stage::Namespace, j.index, e, "setns"))?;
    }
    for j in &plan.joins {
        fd::close(j.fd);
    }
    if plan.fork_again {
        super::fork_into_pid_namespace(sync)?;
    }
    if plan.process.terminal {
        let console = plan
            .console
            .ok_or_else(|| fail(Stage::Console, 0, Errno(libc::EINVAL), "no console socket"))?;
        proc::setsid().map_err(|e| fail(Stage::Console, 0, e, "setsid"))?;
        setup_pty(console, plan.process.console_size)?;
    }
    finalize::prepare(&mut plan.process, sync)?;
    proc::prctl(libc::PR_SET_PDEATHSIG, 0).map_err(channel_fail)?;
    channel::send(sync, &Msg::new(Kind::Ready)).map_err(channel_fail)?;
    Err(finalize::exec(&plan.process))
}

/// The exec'd process's terminal (no /dev/console for it).
fn setup_pty(console: RawFd, size: Option<(u16, u16)>) -> Result<(), Failure> {
    let (master, slave) = super::pty::open(size, None)?;
    super::pty::hand_over(console, master, slave)
}
