//! The loader: one seccomp(2) call, safe to make in a freshly cloned child (no allocation,
//! no locks, errno read straight from the thread's errno slot).

use super::compile::{Program, SECCOMP_FILTER_FLAG_NEW_LISTENER};

const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;

/// Loads the filter into the calling thread with seccomp(SECCOMP_SET_MODE_FILTER).
/// Async-signal-safe: no allocation, no locks, raw syscalls only (it runs in a freshly cloned child).
/// Returns the listener fd when `needs_listener` (flag NEW_LISTENER added), else None. Errors are raw errno values.
///
/// The caller must have set no_new_privs (prctl PR_SET_NO_NEW_PRIVS) or hold CAP_SYS_ADMIN in
/// its user namespace, else the kernel answers EACCES.
pub fn load(program: &Program) -> Result<Option<std::os::fd::RawFd>, i32> {
    let len = match u16::try_from(program.filter.len()) {
        Ok(len) if len > 0 => len,
        _ => return Err(libc::EINVAL),
    };
    let mut flags = program.flags;
    if program.needs_listener {
        flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
    }
    let prog = libc::sock_fprog {
        len,
        filter: program.filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `len` initialised sock_filter values owned by `program`, which
    // outlives the call; the kernel only reads them (copies the program in) and keeps no pointer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            // Variadic: pass full-width integers, the kernel reads whole registers.
            libc::c_ulong::from(SECCOMP_SET_MODE_FILTER),
            libc::c_ulong::from(flags),
            &prog as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        // Reading errno neither allocates nor locks.
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL));
    }
    if program.needs_listener {
        // seccomp(2) returns the listener fd, a small non-negative int, with NEW_LISTENER.
        return Ok(Some(ret as std::os::fd::RawFd));
    }
    Ok(None)
}
