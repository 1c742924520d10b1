//! Accepting shim connections: a non-blocking accept plus the SO_PEERCRED check the Go shim
//! applies (`ttrpc.UnixSocketRequireSameUser`: peer uid and gid must equal ours).

use std::io;
use std::os::fd::AsRawFd;

use mio::net::{UnixListener, UnixStream};

use crate::error::{Error, Result};

/// Credentials of the process at the other end of a unix socket, from SO_PEERCRED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// Reads SO_PEERCRED from a connected unix socket.
pub fn peer_credentials(socket: &impl AsRawFd) -> io::Result<PeerCred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a valid, writable ucred and `len` holds its exact size; the kernel
    // writes at most `len` bytes. An invalid fd only makes the call fail with EBADF.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCred {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// Our own real uid and gid, which peers must match.
pub fn own_ids() -> (u32, u32) {
    // SAFETY: getuid and getgid take no arguments, cannot fail and touch no memory.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// Accepts the next connection whose peer has our uid and gid.
///
/// Returns `Ok(None)` once the backlog is empty (`WouldBlock`); since mio is edge-triggered,
/// call it in a loop until then. Peers with other credentials (or whose credentials cannot be
/// read) are closed and skipped. The returned stream is non-blocking and not yet registered.
pub fn accept_same_user(listener: &UnixListener) -> Result<Option<UnixStream>> {
    let (uid, gid) = own_ids();
    loop {
        let stream = match listener.accept() {
            Ok((stream, _addr)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) =>
            {
                continue
            }
            Err(e) => return Err(Error::io("accept on shim socket", e)),
        };
        match peer_credentials(&stream) {
            Ok(cred) if cred.uid == uid && cred.gid == gid => return Ok(Some(stream)),
            Ok(cred) => {
                tracing::warn!(
                    peer_pid = cred.pid,
                    peer_uid = cred.uid,
                    peer_gid = cred.gid,
                    "ttrpc: refusing connection: invalid credentials"
                );
            }
            Err(e) => tracing::warn!("ttrpc: refusing connection: SO_PEERCRED: {e}"),
        }
        // Dropping `stream` closes it.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_same_user_peer_and_reports_its_pid() {
        let dir = std::env::temp_dir().join(format!("berth-ttrpc-listener-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        assert!(accept_same_user(&listener).unwrap().is_none());
        let _client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let accepted = accept_same_user(&listener).unwrap().expect("a connection");
        let cred = peer_credentials(&accepted).unwrap();
        assert_eq!(cred.pid as u32, std::process::id());
        assert_eq!((cred.uid, cred.gid), own_ids());
        assert!(accept_same_user(&listener).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_a_peer_with_another_uid() {
        // SAFETY: geteuid cannot fail and touches no memory.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root to connect as another uid");
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("berth-ttrpc-refuse-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();

        // The raw syscalls change only the calling thread's credentials (glibc's wrappers
        // would change every thread), so this thread connects as nobody.
        let p = path.clone();
        let stranger = std::thread::spawn(move || {
            // SAFETY: plain syscalls with integer arguments; they affect only this thread.
            let rc = unsafe {
                libc::syscall(libc::SYS_setresgid, 65534, 65534, 65534)
                    | libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534)
            };
            assert_eq!(rc, 0, "setres[ug]id: {}", io::Error::last_os_error());
            let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
            // The server closes us: reading gives EOF.
            let mut b = [0u8; 1];
            s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            std::io::Read::read(&mut s, &mut b).unwrap()
        });
        // Wait until the stranger is in the backlog, then check it is refused.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline && !stranger.is_finished() {
            assert!(accept_same_user(&listener).unwrap().is_none());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(stranger.join().unwrap(), 0, "refused peer must see EOF");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
