//! The test side of `--console-socket`: a listening unix socket that receives
//! the container's pty master over SCM_RIGHTS, and a reader for its output.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::other;

/// A console socket in its own short-named temp directory.
#[derive(Debug)]
pub struct ConsoleSocket {
    pub path: PathBuf,
    listener: UnixListener,
    _dir: TempDir,
}

impl ConsoleSocket {
    pub fn new() -> io::Result<ConsoleSocket> {
        // sun_path holds 108 bytes: stay in /tmp whatever TMPDIR says.
        let dir = tempfile::Builder::new()
            .prefix("berth-cs-")
            .tempdir_in("/tmp")?;
        let path = dir.path().join("sock");
        let listener = UnixListener::bind(&path)?;
        listener.set_nonblocking(true)?;
        Ok(ConsoleSocket {
            path,
            listener,
            _dir: dir,
        })
    }

    /// Accepts one connection and returns the fd it carries (the pty master).
    pub fn receive(&self, timeout: Duration) -> io::Result<OwnedFd> {
        if !poll_in(self.listener.as_raw_fd(), timeout)? {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no connection on the console socket",
            ));
        }
        let (stream, _) = self.listener.accept()?;
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(timeout))?;
        recv_fd(stream.as_raw_fd())
    }
}

/// Receives one fd passed with SCM_RIGHTS on a connected unix socket.
pub fn recv_fd(sock: RawFd) -> io::Result<OwnedFd> {
    let mut data = [0u8; 4096];
    let mut cmsg_buf = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain old data; zeroed is a valid initial value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg_buf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg_buf);
    // SAFETY: msg points at live buffers of the stated sizes.
    let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: walking the control messages recvmsg filled in, within
    // msg_controllen, with the libc CMSG helpers.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
                return Ok(OwnedFd::from_raw_fd(fd));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Err(other("console socket message carried no fd"))
}

/// Reads a pty master on a thread until the other side is closed (EIO or
/// hang-up) or `timeout` passes; the thread returns what it read, with the
/// terminal's "\r\n" turned into "\n".
pub fn spawn_reader(master: OwnedFd, timeout: Duration) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !poll_in(master.as_raw_fd(), left).unwrap_or(false) {
                break;
            }
            // SAFETY: reading into a live buffer of the stated size.
            let n = unsafe { libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
        let text = String::from_utf8_lossy(&out).replace("\r\n", "\n");
        text.into_bytes()
    })
}

/// Writes all of `data` to a pty master (or any fd).
pub fn write_all(fd: &OwnedFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: writing from a live buffer of the stated size.
        let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        data = &data[n as usize..];
    }
    Ok(())
}

/// Whether `fd` becomes readable (or hung up) within `timeout`.
fn poll_in(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    loop {
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(n > 0);
    }
}
