//! The last steps before exec, shared by the container init and by processes
//! exec'd into a running container: limits, identity, capabilities,
//! seccomp, working directory, program lookup, and exec itself. Child side:
//! no allocation.

use std::os::fd::RawFd;

use super::channel::{self, Kind, Msg, Stage};
use super::plan::ProcessPlan;
use super::Failure;
use crate::error::Errno;
use crate::sys::{self, fd, fs, proc, socket};

fn fail(stage: Stage, index: usize, errno: Errno, what: &'static str) -> Failure {
    Failure::new(stage, index, errno, what)
}

/// Applies everything that must happen before the process waits for
/// `start`, in runc's order: limits and scores while still privileged,
/// seccomp before capabilities are dropped when no_new_privileges is off,
/// then groups, uid/gid, capabilities, cwd; finally resolves the program.
pub(crate) fn prepare(p: &mut ProcessPlan, sync: RawFd) -> Result<(), Failure> {
    if let Some(k) = &mut p.keyring {
        k.join()?;
    }
    if p.seccomp_listener.is_some() {
        fetch_seccomp_state(p, sync)?;
    }
    for (i, (res, soft, hard)) in p.rlimits.iter().enumerate() {
        proc::setrlimit(*res, *soft, *hard).map_err(|e| fail(Stage::Rlimit, i, e, "setrlimit"))?;
    }
    if let Some(adj) = &p.oom_score_adj {
        fs::write_file(c"/proc/self/oom_score_adj".as_ptr(), adj)
            .map_err(|e| fail(Stage::OomScoreAdj, 0, e, "write /proc/self/oom_score_adj"))?;
    }
    if let Some(prio) = p.io_priority {
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        // SAFETY: plain syscall with integer arguments.
        let r = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) };
        sys::cvt_long(r).map_err(|e| fail(Stage::IoPriority, 0, e, "ioprio_set"))?;
    }
    if let Some(attr) = &p.scheduler {
        proc::sched_setattr(attr).map_err(|e| fail(Stage::Scheduler, 0, e, "sched_setattr"))?;
    }
    if p.no_new_privileges {
        proc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1)
            .map_err(|e| fail(Stage::NoNewPrivileges, 0, e, "prctl(PR_SET_NO_NEW_PRIVS)"))?;
    }
    if let Some(profile) = &p.apparmor {
        fs::write_file(c"/proc/thread-self/attr/apparmor/exec".as_ptr(), profile)
            .or_else(|_| fs::write_file(c"/proc/thread-self/attr/exec".as_ptr(), profile))
            .map_err(|e| fail(Stage::Exec, 0, e, "set AppArmor profile"))?;
    }
    if !p.no_new_privileges {
        // Loading a filter without no_new_privs needs CAP_SYS_ADMIN, which
        // the process may be about to lose.
        load_seccomp(p)?;
    }
    if let Some(c) = &p.caps {
        proc::drop_bounding(c.bounding, p.last_cap)
            .map_err(|e| fail(Stage::Capabilities, 0, e, "drop bounding capabilities"))?;
    }
    set_identity(p)?;
    if let Some(c) = &p.caps {
        proc::capset(c.effective, c.permitted, c.inheritable)
            .map_err(|e| fail(Stage::Capabilities, 0, e, "capset"))?;
        proc::raise_ambient(c.ambient, p.last_cap)
            .map_err(|e| fail(Stage::Capabilities, 0, e, "raise ambient capabilities"))?;
    }
    fs::chdir(p.cwd.as_ptr())
        .map_err(|e| Failure::new(Stage::Cwd, 0, e, "chdir").with_detail(p.cwd.to_bytes()))?;
    fs::umask(p.umask);
    resolve_program(p)?;
    if p.needs_home {
        set_home(p);
    }
    Ok(())
}

fn set_identity(p: &ProcessPlan) -> Result<(), Failure> {
    if p.set_groups {
        proc::setgroups(&p.groups).map_err(|e| fail(Stage::Groups, 0, e, "setgroups"))?;
    }
    // Keep permitted capabilities across the uid change; capset follows.
    proc::prctl(libc::PR_SET_KEEPCAPS, 1)
        .map_err(|e| fail(Stage::User, 0, e, "prctl(PR_SET_KEEPCAPS)"))?;
    proc::setresgid(p.gid).map_err(|e| fail(Stage::User, 0, e, "setresgid"))?;
    proc::setresuid(p.uid).map_err(|e| fail(Stage::User, 0, e, "setresuid"))?;
    proc::prctl(libc::PR_SET_KEEPCAPS, 0)
        .map_err(|e| fail(Stage::User, 0, e, "prctl(PR_SET_KEEPCAPS)"))?;
    Ok(())
}

fn load_seccomp(p: &ProcessPlan) -> Result<(), Failure> {
    let Some(prog) = &p.seccomp else {
        return Ok(());
    };
    let listener = crate::seccomp::load(prog)
        .map_err(|e| fail(Stage::Seccomp, 0, Errno(e), "load seccomp filter"))?;
    if let (Some(notify_fd), Some(agent)) = (listener, p.seccomp_listener) {
        // runtime-spec: the agent gets the listener fd with the container
        // process state as the message.
        let r = socket::send_fd(agent, &p.seccomp_state[..p.seccomp_state_len], notify_fd);
        fd::close(notify_fd);
        fd::close(agent);
        r.map_err(|e| {
            fail(
                Stage::Seccomp,
                0,
                e,
                "send the seccomp listener fd to linux.seccomp.listenerPath",
            )
        })?;
    }
    Ok(())
}

/// Asks the runtime for the container process state the seccomp agent gets.
fn fetch_seccomp_state(p: &mut ProcessPlan, sync: RawFd) -> Result<(), Failure> {
    let ch = |e| fail(Stage::Channel, 0, e, "sync with runtime");
    channel::send(sync, &Msg::new(Kind::SeccompStateRequest)).map_err(ch)?;
    match channel::recv(sync).map_err(ch)? {
        Some(m) if m.kind == Kind::SeccompState => {}
        _ => return Err(ch(Errno(libc::EPROTO))),
    }
    p.seccomp_state_len = channel::recv_data(sync, &mut p.seccomp_state).map_err(ch)?;
    Ok(())
}

/// Finds the program like execvp would, with the process's PATH, and refuses
/// the runtime's own binary.
fn resolve_program(p: &mut ProcessPlan) -> Result<(), Failure> {
    let prog = match p.args.get(0) {
        Some(s) => s.to_bytes(),
        None => {
            return Err(fail(
                Stage::Executable,
                0,
                Errno(libc::ENOENT),
                "no program",
            ))
        }
    };
    let not_found = |errno| {
        Failure::new(Stage::Executable, 0, errno, "executable file not found:").with_detail(prog)
    };
    let out = &mut *p.exec_path;
    out.clear();
    if prog.contains(&b'/') {
        out.push(prog).map_err(not_found)?;
        if let Err(e) = fs::stat_ptr(out.as_ptr()) {
            return Err(not_found(e));
        }
    } else {
        let mut found = false;
        for dir in p.path_var.split(|b| *b == b':') {
            out.clear();
            let dir = if dir.is_empty() { &b"."[..] } else { dir };
            if out
                .push(dir)
                .and_then(|_| out.push(b"/"))
                .and_then(|_| out.push(prog))
                .is_err()
            {
                continue;
            }
            if fs::is_executable_file(out.as_ptr()) {
                found = true;
                break;
            }
        }
        if !found {
            return Err(not_found(Errno(libc::ENOENT)));
        }
    }
    if let (Some((dev, ino)), Ok(st)) = (p.runtime_exe, fs::stat_ptr(out.as_ptr())) {
        if st.st_dev == dev && st.st_ino == ino {
            return Err(Failure::new(
                Stage::Executable,
                0,
                Errno(libc::EACCES),
                "refusing to run the container runtime's own binary inside the container:",
            )
            .with_detail(prog));
        }
    }
    Ok(())
}

/// Adds HOME from the container's /etc/passwd (or "/") to the environment.
fn set_home(p: &mut ProcessPlan) {
    let n = fs::read_file(c"/etc/passwd".as_ptr(), &mut p.scratch).unwrap_or(0);
    let mut home: &[u8] = b"/";
    let mut digits = [0u8; 20];
    let uid = sys::fmt_u64(p.uid as u64, &mut digits);
    for line in p.scratch[..n].split(|b| *b == b'\n') {
        let mut fields = line.split(|b| *b == b':');
        let (_name, _pw, fuid) = (fields.next(), fields.next(), fields.next());
        if fuid == Some(uid) {
            let _gid = fields.next();
            let _gecos = fields.next();
            if let Some(h) = fields.next().filter(|h| !h.is_empty()) {
                home = h;
            }
            break;
        }
    }
    let buf = &mut p.home_buf;
    let prefix = b"HOME=";
    let len = home.len().min(buf.len() - prefix.len() - 1);
    buf[..prefix.len()].copy_from_slice(prefix);
    buf[prefix.len()..prefix.len() + len].copy_from_slice(&home[..len]);
    buf[prefix.len() + len] = 0;
    let ptr = p.home_buf.as_ptr().cast();
    p.env.set_spare(ptr);
}

/// Closes what the process must not inherit, loads seccomp if it was left
/// for last, and execs. Returns only on failure.
pub(crate) fn exec(p: &ProcessPlan) -> Failure {
    let first_closed = 3 + p.preserve_fds;
    if let Err(e) = fd::cloexec_from(first_closed) {
        return fail(Stage::Exec, 0, e, "mark fds close-on-exec");
    }
    for f in 3..first_closed {
        let _ = fd::set_cloexec(f, false);
    }
    proc::reset_signals();
    if p.no_new_privileges {
        if let Err(f) = load_seccomp(p) {
            return f;
        }
    }
    let errno = proc::execve(p.exec_path.as_ptr(), p.args.as_ptr(), p.env.as_ptr());
    fail(Stage::Exec, 0, errno, "execve")
}
