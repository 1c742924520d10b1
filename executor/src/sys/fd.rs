//! File descriptor plumbing: close, dup, flags, pipes, raw read/write, poll.

use std::os::fd::RawFd;

use super::{cvt, cvt_long, retry, SysResult};
use crate::error::Errno;

pub fn close(fd: RawFd) {
    // SAFETY: closing an fd we own; errors (EBADF) are irrelevant here.
    unsafe {
        libc::close(fd);
    }
}

pub fn dup2(old: RawFd, new: RawFd) -> SysResult<()> {
    // SAFETY: plain syscall on integer fds.
    retry(|| cvt(unsafe { libc::dup2(old, new) })).map(drop)
}

/// Duplicates `fd` to the lowest free number >= `min`, close-on-exec.
pub fn dup_cloexec_at_least(fd: RawFd, min: RawFd) -> SysResult<RawFd> {
    // SAFETY: plain fcntl on an integer fd.
    cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) })
}

pub fn set_cloexec(fd: RawFd, on: bool) -> SysResult<()> {
    // SAFETY: plain fcntl on an integer fd.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    let new = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    if new != flags {
        // SAFETY: as above.
        cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, new) })?;
    }
    Ok(())
}

pub fn set_nonblocking(fd: RawFd, on: bool) -> SysResult<()> {
    // SAFETY: plain fcntl on an integer fd.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, new) }).map(drop)
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> SysResult<(RawFd, RawFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds points to two writable ints.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok((fds[0], fds[1]))
}

pub fn read(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    // SAFETY: buf is valid for writes of buf.len() bytes.
    retry(|| {
        cvt_long(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } as libc::c_long)
    })
    .map(|n| n as usize)
}

pub fn write(fd: RawFd, buf: &[u8]) -> SysResult<usize> {
    // SAFETY: buf is valid for reads of buf.len() bytes.
    retry(|| cvt_long(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) } as libc::c_long))
        .map(|n| n as usize)
}

/// Writes all of `buf`, looping over short writes.
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> SysResult<()> {
    while !buf.is_empty() {
        let n = write(fd, buf)?;
        if n == 0 {
            return Err(Errno(libc::EIO));
        }
        buf = &buf[n..];
    }
    Ok(())
}

/// Reads until `buf` is full or EOF; returns the number of bytes read.
pub fn read_full(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    let mut off = 0;
    while off < buf.len() {
        let n = read(fd, &mut buf[off..])?;
        if n == 0 {
            break;
        }
        off += n;
    }
    Ok(off)
}

/// Marks every fd from `first` upwards close-on-exec (close_range(2) with
/// CLOSE_RANGE_CLOEXEC), falling back to walking the fd numbers one by one.
pub fn cloexec_from(first: RawFd) -> SysResult<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid out pointer.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    let max = lim.rlim_cur.min(1 << 20) as RawFd;
    for fd in first..max {
        let _ = set_cloexec(fd, true);
    }
    Ok(())
}

/// Waits until `fd` is readable or `timeout_ms` passes (-1 = forever).
/// Returns false on timeout.
pub fn poll_readable(fd: RawFd, timeout_ms: libc::c_int) -> SysResult<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: p is one valid pollfd.
    let n = retry(|| cvt(unsafe { libc::poll(&mut p, 1, timeout_ms) }))?;
    Ok(n > 0)
}
