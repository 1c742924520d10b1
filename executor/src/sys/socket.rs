//! Unix sockets: seqpacket pairs for the parent/child channel, SCM_RIGHTS
//! fd passing (console sockets, seccomp listeners), and path sockets.

use std::os::fd::RawFd;

use super::{cvt, cvt_long, retry, SysResult};
use crate::error::Errno;

/// A close-on-exec AF_UNIX socket pair of the given type.
pub fn socketpair(typ: libc::c_int) -> SysResult<(RawFd, RawFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds points to two writable ints.
    cvt(unsafe { libc::socketpair(libc::AF_UNIX, typ | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) })?;
    Ok((fds[0], fds[1]))
}

pub fn send(fd: RawFd, buf: &[u8]) -> SysResult<usize> {
    // SAFETY: buf is valid for buf.len() bytes.
    retry(|| {
        cvt_long(
            unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) }
                as libc::c_long,
        )
    })
    .map(|n| n as usize)
}

pub fn recv(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    // SAFETY: buf is valid for writes of buf.len() bytes.
    retry(|| {
        cvt_long(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) } as libc::c_long)
    })
    .map(|n| n as usize)
}

/// Space for one fd in a control message (CMSG_SPACE(sizeof(int)) on 64-bit).
const CMSG_BUF: usize = 24;

#[repr(C, align(8))]
struct CmsgBuf([u8; CMSG_BUF]);

/// Sends `data` with one file descriptor attached (SCM_RIGHTS).
pub fn send_fd(sock: RawFd, data: &[u8], fd: RawFd) -> SysResult<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cbuf = CmsgBuf([0; CMSG_BUF]);
    // SAFETY: zeroed msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure computation.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    // SAFETY: msg_control points to a buffer large enough for one cmsg with one fd.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
    }
    // SAFETY: msg is fully initialised.
    retry(|| cvt_long(unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) } as libc::c_long))
        .map(drop)
}

/// Receives data and at most one attached fd (made close-on-exec).
pub fn recv_fd(sock: RawFd, data: &mut [u8]) -> SysResult<(usize, Option<RawFd>)> {
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cbuf = CmsgBuf([0; CMSG_BUF]);
    // SAFETY: zeroed msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = CMSG_BUF;
    // SAFETY: msg is fully initialised.
    let n = retry(|| {
        cvt_long(unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) } as libc::c_long)
    })?;
    let mut fd = None;
    // SAFETY: the kernel filled msg_control; CMSG_* walk it within msg_controllen.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if !cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS
        {
            fd = Some(std::ptr::read_unaligned(
                libc::CMSG_DATA(cmsg).cast::<RawFd>(),
            ));
        }
    }
    Ok((n as usize, fd))
}

fn sockaddr(path: &[u8]) -> SysResult<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: zeroed sockaddr_un is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if path.len() >= addr.sun_path.len() {
        return Err(Errno(libc::ENAMETOOLONG));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + path.len() + 1;
    Ok((addr, len as libc::socklen_t))
}

/// A listening stream socket bound at `path` (bytes, no NUL).
pub fn listen_unix(path: &[u8], backlog: libc::c_int) -> SysResult<RawFd> {
    let (addr, len) = sockaddr(path)?;
    // SAFETY: plain syscall.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: addr is a valid sockaddr_un of length len.
    let r = cvt(unsafe { libc::bind(fd, (&addr as *const libc::sockaddr_un).cast(), len) })
        // SAFETY: plain syscall.
        .and_then(|_| cvt(unsafe { libc::listen(fd, backlog) }));
    if let Err(e) = r {
        super::fd::close(fd);
        return Err(e);
    }
    Ok(fd)
}

/// A stream socket connected to `path`.
pub fn connect_unix(path: &[u8]) -> SysResult<RawFd> {
    let (addr, len) = sockaddr(path)?;
    // SAFETY: plain syscall.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: addr is a valid sockaddr_un of length len.
    if let Err(e) =
        retry(|| cvt(unsafe { libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len) }))
    {
        super::fd::close(fd);
        return Err(e);
    }
    Ok(fd)
}

pub fn accept(fd: RawFd) -> SysResult<RawFd> {
    // SAFETY: NULL address pointers are allowed.
    retry(|| {
        cvt(unsafe {
            libc::accept4(
                fd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        })
    })
}
