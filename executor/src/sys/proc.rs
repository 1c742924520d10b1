//! Process-level calls: clone3, wait, signals, exec, namespaces, credentials,
//! capabilities and prctl.

use std::os::fd::RawFd;

use super::{cvt, cvt_long, retry, SysResult};
use crate::error::Errno;

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

pub const CLONE_PIDFD: u64 = 0x1000;
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The result of a fork-like clone.
pub enum Forked {
    /// In the parent: the child's pid, its pidfd if asked for, and whether
    /// CLONE_INTO_CGROUP placed it in the requested cgroup.
    Parent {
        pid: libc::pid_t,
        pidfd: Option<RawFd>,
        into_cgroup: bool,
    },
    /// In the child.
    Child,
}

/// clone3(2) used like fork(2): the child runs on a copy of the caller's
/// stack and returns `Forked::Child`. `flags` may hold CLONE_NEW* flags,
/// CLONE_PARENT and CLONE_PIDFD. Falls back to clone(2) when clone3 is
/// missing or denied.
///
/// # Safety
/// Like fork(2): the caller must be single-threaded or make sure the child
/// only does async-signal-safe work before exec or _exit.
pub unsafe fn fork_with(flags: u64, cgroup_fd: Option<RawFd>) -> SysResult<Forked> {
    let mut pidfd: libc::c_int = -1;
    // clone3 rejects an exit signal with CLONE_PARENT; the kernel then uses
    // the caller's own exit signal (SIGCHLD), so the shared parent is told.
    let exit_signal = if flags & libc::CLONE_PARENT as u64 != 0 {
        0
    } else {
        libc::SIGCHLD as u64
    };
    let mut args = CloneArgs {
        flags,
        exit_signal,
        ..Default::default()
    };
    if flags & CLONE_PIDFD != 0 {
        args.pidfd = &mut pidfd as *mut libc::c_int as u64;
    }
    let mut into_cgroup = false;
    if let Some(fd) = cgroup_fd {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
        into_cgroup = true;
    }
    // SAFETY: args is a valid clone_args of the size passed; no CLONE_VM, so
    // the child gets its own copy of memory and resumes here like fork.
    let mut r = libc::syscall(
        libc::SYS_clone3,
        &args as *const CloneArgs,
        std::mem::size_of::<CloneArgs>(),
    );
    if r == -1 && into_cgroup && super::errno() != Errno(libc::ENOSYS) {
        // The cgroup refused (e.g. it has a controller layout that does not
        // allow it): clone without it; the caller joins another way.
        args.flags &= !CLONE_INTO_CGROUP;
        args.cgroup = 0;
        into_cgroup = false;
        // SAFETY: as above.
        r = libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        );
    }
    // Fall back to clone(2) when clone3 is missing, or denied by a seccomp
    // filter already loaded in this process.
    let r = if r == -1 && matches!(super::errno(), Errno(libc::ENOSYS) | Errno(libc::EPERM)) {
        into_cgroup = false;
        // SAFETY: as above, with the legacy clone(2) ABI (x86_64 order:
        // flags, stack, parent_tid, child_tid, tls).
        libc::syscall(
            libc::SYS_clone,
            (flags & !CLONE_PIDFD) as libc::c_ulong | exit_signal as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    } else {
        r
    };
    match cvt_long(r)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: pid as libc::pid_t,
            pidfd: (pidfd >= 0).then_some(pidfd),
            into_cgroup,
        }),
    }
}

/// waitpid(2); returns (pid, raw status).
pub fn waitpid(pid: libc::pid_t, flags: libc::c_int) -> SysResult<(libc::pid_t, libc::c_int)> {
    let mut status = 0;
    // SAFETY: status is a valid out pointer.
    let r = retry(|| cvt(unsafe { libc::waitpid(pid, &mut status, flags) }))?;
    Ok((r, status))
}

pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> SysResult<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::kill(pid, sig) }).map(drop)
}

pub fn pidfd_open(pid: libc::pid_t) -> SysResult<RawFd> {
    // SAFETY: plain syscall.
    cvt_long(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) }).map(|fd| fd as RawFd)
}

/// _exit(2): ends the process without running atexit handlers or destructors.
pub fn exit(code: libc::c_int) -> ! {
    // SAFETY: _exit never returns and is async-signal-safe.
    unsafe { libc::_exit(code) }
}

/// execve(2); only returns on failure.
pub fn execve(
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
) -> Errno {
    // SAFETY: the caller passes NUL-terminated strings and NULL-terminated arrays.
    unsafe { libc::execve(path, argv, envp) };
    super::errno()
}

pub fn setns(fd: RawFd, nstype: libc::c_int) -> SysResult<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::setns(fd, nstype) }).map(drop)
}

pub fn unshare(flags: libc::c_int) -> SysResult<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::unshare(flags) }).map(drop)
}

pub fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> SysResult<libc::c_int> {
    // SAFETY: the prctl options used here take integer arguments only.
    cvt(unsafe {
        libc::prctl(
            option,
            arg2,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
}

pub fn prctl3(
    option: libc::c_int,
    arg2: libc::c_ulong,
    arg3: libc::c_ulong,
) -> SysResult<libc::c_int> {
    // SAFETY: the prctl options used here take integer arguments only.
    cvt(unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) })
}

pub fn sethostname(name: &[u8]) -> SysResult<()> {
    // SAFETY: name is valid for name.len() bytes.
    cvt(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(drop)
}

pub fn setdomainname(name: &[u8]) -> SysResult<()> {
    // SAFETY: name is valid for name.len() bytes.
    cvt(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) }).map(drop)
}

// Raw syscalls for credentials: glibc's wrappers broadcast to all threads
// with signals, which is neither needed nor safe in a cloned child.
pub fn setresuid(uid: libc::uid_t) -> SysResult<()> {
    // SAFETY: plain syscall.
    cvt_long(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) }).map(drop)
}

pub fn setresgid(gid: libc::gid_t) -> SysResult<()> {
    // SAFETY: plain syscall.
    cvt_long(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) }).map(drop)
}

pub fn setgroups(gids: &[libc::gid_t]) -> SysResult<()> {
    // SAFETY: gids is valid for gids.len() entries.
    cvt_long(unsafe { libc::syscall(libc::SYS_setgroups, gids.len(), gids.as_ptr()) }).map(drop)
}

pub fn setsid() -> SysResult<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::setsid() }).map(drop)
}

pub fn setrlimit(resource: libc::c_int, soft: u64, hard: u64) -> SysResult<()> {
    let lim = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: lim is a valid rlimit64; NULL old limit.
    cvt(unsafe { libc::prlimit64(0, resource as _, &lim, std::ptr::null_mut()) }).map(drop)
}

pub fn personality(persona: libc::c_ulong) -> SysResult<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::personality(persona) }).map(drop)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// capset(2) for the calling thread with 64-bit masks.
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> SysResult<()> {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and data have the layout capset(2) expects (v3: two data structs).
    cvt_long(unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) }).map(drop)
}

/// Drops every capability not in `keep` from the bounding set, up to `last_cap`.
pub fn drop_bounding(keep: u64, last_cap: u32) -> SysResult<()> {
    for cap in 0..=last_cap.min(63) {
        if keep & (1 << cap) == 0 {
            match prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong) {
                Ok(_) | Err(Errno(libc::EINVAL)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Raises each capability in `mask` in the ambient set.
pub fn raise_ambient(mask: u64, last_cap: u32) -> SysResult<()> {
    for cap in 0..=last_cap.min(63) {
        if mask & (1 << cap) != 0 {
            prctl3(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
            )?;
        }
    }
    Ok(())
}

/// Sets every signal to its default disposition and unblocks all signals, so
/// an exec'd program does not inherit the runtime's signal setup (Rust
/// ignores SIGPIPE; a parent may have blocked signals for signalfd).
pub fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is always a valid disposition; errors for
        // signals that cannot be changed are ignored.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    // SAFETY: an empty set is valid; NULL old set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

pub fn ioctl_int(fd: RawFd, req: libc::c_ulong, arg: libc::c_ulong) -> SysResult<libc::c_int> {
    // SAFETY: the requests used here take an integer argument.
    cvt(unsafe { libc::ioctl(fd, req, arg) })
}

pub fn ioctl_ptr<T>(fd: RawFd, req: libc::c_ulong, arg: *mut T) -> SysResult<libc::c_int> {
    // SAFETY: the caller passes a pointer to the struct the request expects.
    cvt(unsafe { libc::ioctl(fd, req, arg) })
}

pub fn getppid() -> libc::pid_t {
    // SAFETY: cannot fail.
    unsafe { libc::getppid() }
}

/// `struct sched_attr` (SCHED_ATTR_SIZE_VER1).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
    pub util_min: u32,
    pub util_max: u32,
}

/// sched_setattr(2) for the calling thread.
pub fn sched_setattr(attr: &SchedAttr) -> SysResult<()> {
    // SAFETY: attr points to a sched_attr whose size field matches its layout.
    cvt_long(unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) })
        .map(drop)
}
