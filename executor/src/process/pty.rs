//! The container's terminal (process.terminal): a pty pair made inside the
//! container's /dev/pts, the master sent to the console socket, the slave
//! made the controlling terminal and stdio. Child side, no allocation.

use std::os::fd::RawFd;

use super::channel::Stage;
use super::Failure;
use crate::error::Errno;
use crate::sys::{self, fd, proc, socket};

fn fail(e: Errno, what: &'static str) -> Failure {
    Failure::new(Stage::Console, 0, e, what)
}

/// Opens a new pty: returns (master, slave), with the window size set.
/// When `slave_path` is given it receives "/dev/pts/N".
pub(crate) fn open(
    size: Option<(u16, u16)>,
    slave_path: Option<&mut sys::PathBuf>,
) -> Result<(RawFd, RawFd), Failure> {
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    let master = sys::fs::open(c"/dev/ptmx", libc::O_RDWR | libc::O_NOCTTY, 0)
        .map_err(|e| fail(e, "open /dev/ptmx"))?;
    let mut unlock: libc::c_int = 0;
    proc::ioctl_ptr(master, libc::TIOCSPTLCK, &mut unlock).map_err(|e| fail(e, "unlock pty"))?;
    if let Some(path) = slave_path {
        let mut n: libc::c_uint = 0;
        proc::ioctl_ptr(master, libc::TIOCGPTN, &mut n).map_err(|e| fail(e, "get pty number"))?;
        let mut digits = [0u8; 20];
        path.push(b"/dev/pts/")
            .and_then(|_| path.push(sys::fmt_u64(n as u64, &mut digits)))
            .map_err(|e| fail(e, "pty path"))?;
    }
    let slave = proc::ioctl_int(
        master,
        TIOCGPTPEER,
        (libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) as libc::c_ulong,
    )
    .map_err(|e| fail(e, "open pty peer"))?;
    if let Some((rows, cols)) = size {
        let mut ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        proc::ioctl_ptr(master, libc::TIOCSWINSZ, &mut ws)
            .map_err(|e| fail(e, "set window size"))?;
    }
    Ok((master, slave))
}

/// Sends the master to the console socket, then makes the slave the
/// controlling terminal and fds 0-2. Closes `console`, `master` and `slave`.
pub(crate) fn hand_over(console: RawFd, master: RawFd, slave: RawFd) -> Result<(), Failure> {
    socket::send_fd(console, b"/dev/ptmx", master)
        .map_err(|e| fail(e, "send pty master to console socket"))?;
    fd::close(master);
    fd::close(console);
    proc::ioctl_int(slave, libc::TIOCSCTTY, 0).map_err(|e| fail(e, "set controlling terminal"))?;
    if slave <= 2 {
        // dup2 onto itself would keep close-on-exec.
        fd::set_cloexec(slave, false).map_err(|e| fail(e, "dup2 pty slave"))?;
    }
    for target in 0..3 {
        fd::dup2(slave, target).map_err(|e| fail(e, "dup2 pty slave"))?;
    }
    if slave > 2 {
        fd::close(slave);
    }
    Ok(())
}
