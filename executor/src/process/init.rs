//! The container init: the cloned child that joins or creates namespaces,
//! builds the root filesystem, applies the process's identity and limits,
//! waits for `start`, and execs the user's program. Reading this file top to
//! bottom tells the whole story of `create` from inside the container.
//!
//! Runs between clone and exec: only async-signal-safe system calls and the
//! buffers prepared in `InitPlan`.

use std::convert::Infallible;
use std::os::fd::RawFd;

use super::channel::{self, Kind, Msg, Stage};
use super::plan::{HookPlan, InitPlan};
use super::{finalize, Failure};
use crate::error::Errno;
use crate::rootfs::setup;
use crate::spec::NamespaceType;
use crate::sys::{self, fd, fs, proc, socket};

/// Entry point in the cloned child. Never returns.
pub(crate) fn run(plan: &mut InitPlan) -> ! {
    let sync = plan.sync;
    let failure = match run_steps(plan) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    failure.report(sync);
    proc::exit(1)
}

fn fail(stage: Stage, index: usize, errno: Errno, what: &'static str) -> Failure {
    Failure::new(stage, index, errno, what)
}

fn channel_fail(errno: Errno) -> Failure {
    fail(Stage::Channel, 0, errno, "sync with runtime")
}

/// Waits for the parent's go-ahead; EOF means the runtime is gone.
fn wait_continue(sync: RawFd, state: Option<(&mut Vec<u8>, &mut usize)>) -> Result<(), Failure> {
    let mut state = state;
    loop {
        match channel::recv(sync) {
            Ok(Some(m)) if m.kind == Kind::Continue => return Ok(()),
            Ok(Some(m)) if m.kind == Kind::State => {
                if let Some((buf, len)) = state.as_mut() {
                    **len = channel::recv_data(sync, buf).map_err(channel_fail)?;
                }
            }
            Ok(_) => return Err(channel_fail(Errno(libc::EPROTO))),
            Err(e) => return Err(channel_fail(e)),
        }
    }
}

fn run_steps(plan: &mut InitPlan) -> Result<Infallible, Failure> {
    let sync = plan.sync;
    // Into the container's cgroup before doing any work.
    super::join_cgroups(&plan.cgroup_tasks)?;
    let parent = proc::getppid();
    // Die with the runtime while setting up; cleared once ready.
    proc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong).map_err(channel_fail)?;
    if proc::getppid() != parent {
        return Err(channel_fail(Errno(libc::ESRCH)));
    }
    wait_continue(sync, None)?;

    if let Some(stdio) = plan.stdio {
        for (target, src) in stdio.iter().enumerate() {
            fd::dup2(*src, target as RawFd)
                .map_err(|e| fail(Stage::Channel, target, e, "dup2 stdio"))?;
        }
    }

    enter_namespaces(plan)?;
    if plan.ns.become_root {
        proc::setresgid(0).map_err(|e| {
            fail(
                Stage::UserNamespace,
                0,
                e,
                "setresgid(0) in the new user namespace",
            )
        })?;
        proc::setresuid(0).map_err(|e| {
            fail(
                Stage::UserNamespace,
                0,
                e,
                "setresuid(0) in the new user namespace",
            )
        })?;
    }
    if let Some(h) = &plan.hostname {
        proc::sethostname(h.to_bytes()).map_err(|e| fail(Stage::Hostname, 0, e, "sethostname"))?;
    }
    if let Some(d) = &plan.domainname {
        proc::setdomainname(d.to_bytes())
            .map_err(|e| fail(Stage::Domainname, 0, e, "setdomainname"))?;
    }
    if let Some(p) = plan.personality {
        proc::personality(p).map_err(|e| fail(Stage::Personality, 0, e, "personality"))?;
    }

    // Root filesystem, up to the point where hooks may look at it.
    fs::umask(0);
    let rootfd = setup::prepare(&plan.rootfs)?;
    let cwd = plan.process.cwd.to_bytes();
    let cwd_rel = cwd.strip_prefix(b"/").unwrap_or(cwd);
    match fs::open_or_create_in_root(rootfd, cwd_rel, fs::Create::Dir) {
        Ok(f) => fd::close(f),
        Err(e) => {
            return Err(Failure::new(Stage::Cwd, 0, e, "create working directory")
                .with_detail(plan.process.cwd.to_bytes()))
        }
    }

    if plan.hooks_point {
        channel::send(sync, &Msg::new(Kind::HooksPoint)).map_err(channel_fail)?;
        wait_continue(sync, Some((&mut plan.state_buf, &mut plan.state_len)))?;
    }
    let state = &plan.state_buf[..plan.state_len];
    run_hooks(
        &plan.create_container_hooks,
        state,
        Stage::CreateContainerHook,
    )?;

    setup::pivot(&plan.rootfs, rootfd)?;
    for (i, (path, value)) in plan.sysctls.iter().enumerate() {
        fs::write_file(path.as_ptr(), value)
            .map_err(|e| Failure::new(Stage::Sysctl, i, e, "write").with_detail(path.to_bytes()))?;
    }
    setup::finish(&plan.rootfs)?;

    // runc's init is always a session leader; with a terminal it also owns it.
    proc::setsid().map_err(|e| fail(Stage::Console, 0, e, "setsid"))?;
    if plan.process.terminal {
        let console = plan
            .console
            .ok_or_else(|| fail(Stage::Console, 0, Errno(libc::EINVAL), "no console socket"))?;
        setup_console(console, plan.process.console_size)?;
    }

    finalize::prepare(&mut plan.process, sync)?;

    // Ready: from here on the runtime may exit without taking us along.
    proc::prctl(libc::PR_SET_PDEATHSIG, 0).map_err(channel_fail)?;
    channel::send(sync, &Msg::new(Kind::Ready)).map_err(channel_fail)?;
    fd::close(sync);

    // Wait for `start`: one connection, one byte.
    let conn =
        socket::accept(plan.notify).map_err(|e| fail(Stage::Exec, 0, e, "wait for start"))?;
    fd::close(plan.notify);
    let mut byte = [0u8; 1];
    match fd::read(conn, &mut byte) {
        Ok(1) => {}
        Ok(_) => proc::exit(0), // start gave up; nobody to report to
        Err(e) => return Err(fail(Stage::Exec, 0, e, "read start request")),
    }
    // Errors from here on go to `start` over its connection.
    plan.sync = conn;
    // The state was captured during create, which has finished by now.
    mark_created(&mut plan.state_buf, &mut plan.state_len);
    let state = &plan.state_buf[..plan.state_len];
    run_hooks(
        &plan.start_container_hooks,
        state,
        Stage::StartContainerHook,
    )?;
    Err(finalize::exec(&plan.process))
}

/// Rewrites `"status":"creating"` to `"status":"created"` in a state JSON, in
/// place (no allocation after fork).
fn mark_created(buf: &mut [u8], len: &mut usize) {
    const FROM: &[u8] = b"\"status\":\"creating\"";
    const TO: &[u8] = b"\"status\":\"created\"";
    if let Some(i) = buf[..*len].windows(FROM.len()).position(|w| w == FROM) {
        buf[i..i + TO.len()].copy_from_slice(TO);
        buf.copy_within(i + FROM.len()..*len, i + TO.len());
        *len -= FROM.len() - TO.len();
    }
}

/// Joins namespaces by path, creates the ones the clone flags did not, and
/// forks once more when the pid namespace only applies to children.
fn enter_namespaces(plan: &InitPlan) -> Result<(), Failure> {
    let ns = &plan.ns;
    let sync = plan.sync;
    // Join non-user namespaces first: we still have the runtime's privileges.
    // A namespace owned by the target user namespace may refuse (EPERM);
    // retry those once we are in that user namespace.
    let mut deferred = [false; 8];
    for (k, j) in ns.joins.iter().enumerate() {
        match proc::setns(j.fd, j.typ.clone_flag()) {
            Ok(()) => fd::close(j.fd),
            Err(Errno(libc::EPERM)) if ns.user_join.is_some() && k < deferred.len() => {
                deferred[k] = true
            }
            Err(e) => return Err(fail(Stage::Namespace, j.index, e, "setns")),
        }
    }
    if let Some(u) = ns.user_join {
        proc::setns(u.fd, libc::CLONE_NEWUSER)
            .map_err(|e| fail(Stage::Namespace, u.index, e, "setns"))?;
        fd::close(u.fd);
        for (k, j) in ns.joins.iter().enumerate() {
            if k < deferred.len() && deferred[k] {
                proc::setns(j.fd, j.typ.clone_flag())
                    .map_err(|e| fail(Stage::Namespace, j.index, e, "setns"))?;
                fd::close(j.fd);
            }
        }
    }
    if ns.unshare_user {
        proc::unshare(libc::CLONE_NEWUSER)
            .map_err(|e| fail(Stage::UserNamespace, 0, e, "unshare user namespace"))?;
        channel::send(sync, &Msg::new(Kind::UserNsReady)).map_err(channel_fail)?;
        wait_continue(sync, None)?;
    }
    if ns.unshare_flags != 0 {
        proc::unshare(ns.unshare_flags)
            .map_err(|e| fail(Stage::Namespace, usize::MAX, e, "unshare"))?;
    }
    if ns.unshare_cgroup {
        proc::unshare(libc::CLONE_NEWCGROUP)
            .map_err(|e| fail(Stage::CgroupNamespace, 0, e, "unshare cgroup namespace"))?;
    }
    if ns.unshare_time {
        proc::unshare(NamespaceType::Time.clone_flag())
            .map_err(|e| fail(Stage::TimeNamespace, 0, e, "unshare time namespace"))?;
        if let Some(offsets) = &ns.time_offsets {
            fs::write_file(c"/proc/self/timens_offsets".as_ptr(), offsets).map_err(|e| {
                fail(
                    Stage::TimeNamespace,
                    0,
                    e,
                    "write /proc/self/timens_offsets",
                )
            })?;
        }
    }
    if ns.fork_again {
        super::fork_into_pid_namespace(sync)?;
    }
    Ok(())
}

/// Runs hooks from inside the container (createContainer, startContainer):
/// fork, feed the state on stdin, wait with the hook's timeout.
fn run_hooks(hooks: &[HookPlan], state: &[u8], stage: Stage) -> Result<(), Failure> {
    for (i, h) in hooks.iter().enumerate() {
        match run_hook(h, state) {
            Ok(0) => {}
            Ok(status) => {
                let mut f = fail(stage, i, Errno(0), "hook failed");
                f.value = status as i64;
                return Err(f);
            }
            Err((e, what)) => return Err(fail(stage, i, e, what)),
        }
    }
    Ok(())
}

/// Returns the hook's raw wait status.
fn run_hook(h: &HookPlan, state: &[u8]) -> Result<libc::c_int, (Errno, &'static str)> {
    let (r, w) = fd::pipe().map_err(|e| (e, "pipe"))?;
    // Let the whole state fit in the pipe so a hook that ignores stdin cannot block us.
    // SAFETY: plain fcntl on our own pipe.
    unsafe { libc::fcntl(w, libc::F_SETPIPE_SZ, state.len().max(4096) as libc::c_int) };
    let _ = fd::set_nonblocking(w, true);
    // SAFETY: single-threaded; the child only dups, resets signals and execs.
    let forked = unsafe { proc::fork_with(sys::proc::CLONE_PIDFD, None) };
    match forked {
        Ok(proc::Forked::Child) => {
            let _ = fd::dup2(r, 0);
            proc::reset_signals();
            proc::execve(h.path.as_ptr(), h.args.as_ptr(), h.env.as_ptr());
            proc::exit(127)
        }
        Ok(proc::Forked::Parent { pid, pidfd, .. }) => {
            fd::close(r);
            let _ = fd::write_all(w, state);
            fd::close(w);
            let done = match pidfd {
                Some(pfd) => {
                    let ready = fd::poll_readable(pfd, h.timeout_ms);
                    fd::close(pfd);
                    ready.unwrap_or(true)
                }
                None => true,
            };
            if !done {
                let _ = proc::kill(pid, libc::SIGKILL);
                let _ = proc::waitpid(pid, 0);
                return Err((Errno(libc::ETIMEDOUT), "hook timed out"));
            }
            proc::waitpid(pid, 0)
                .map(|(_, status)| status)
                .map_err(|e| (e, "wait for hook"))
        }
        Err(e) => {
            fd::close(r);
            fd::close(w);
            Err((e, "fork hook"))
        }
    }
}

/// The init's terminal; /dev/console is the slave, bind-mounted (as runc
/// does).
fn setup_console(console: RawFd, size: Option<(u16, u16)>) -> Result<(), Failure> {
    let f = |e, what| fail(Stage::Console, 0, e, what);
    let mut slave_path = sys::PathBuf::new();
    let (master, slave) = super::pty::open(size, Some(&mut slave_path))?;
    match fs::open(
        c"/dev/console",
        libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW,
        0o600,
    ) {
        Ok(c) => fd::close(c),
        Err(e) => return Err(f(e, "create /dev/console")),
    }
    crate::sys::mount::mount(
        slave_path.as_ptr(),
        c"/dev/console".as_ptr(),
        std::ptr::null(),
        libc::MS_BIND,
        std::ptr::null(),
    )
    .map_err(|e| f(e, "bind mount /dev/console"))?;
    super::pty::hand_over(console, master, slave)
}
