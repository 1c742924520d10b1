//! A process's stdio. Without a terminal the process gets pipes, and the
//! shim moves data between them and containerd's FIFOs with splice(2)
//! (in-kernel, no copy through user space) from the event loop. Pipes, not
//! the FIFOs themselves, because CRIU can checkpoint and restore pipes but
//! not FIFOs on a mount outside the container. The shim keeps a spare stdin
//! writer (closed by CloseIO) and a reader on each output FIFO, so output
//! never hits EPIPE while containerd restarts. With a terminal the shim
//! relays between the FIFOs and the pty master.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

/// The stdio request of a process (Create or Exec).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// What the shim holds for a process's stdio.
#[derive(Default)]
pub struct ProcessIo {
    /// Kept open until CloseIO so the process does not read EOF early.
    stdin_spare: Option<OwnedFd>,
    /// Readers on the output FIFOs that keep writes from failing.
    keepalive: Vec<OwnedFd>,
    /// Pipe <-> FIFO copies (non-terminal processes).
    pub copiers: Vec<Copier>,
    pub relay: Option<Relay>,
}

/// fds the process gets as 0, 1, 2 (the shim closes its copies after create).
pub struct ChildStdio {
    pub fds: [OwnedFd; 3],
}

impl ChildStdio {
    pub fn raw(&self) -> [RawFd; 3] {
        [
            self.fds[0].as_raw_fd(),
            self.fds[1].as_raw_fd(),
            self.fds[2].as_raw_fd(),
        ]
    }
}

fn open_fifo(path: &str, write: bool, nonblock: bool) -> io::Result<OwnedFd> {
    let mut o = OpenOptions::new();
    if write {
        o.write(true);
    } else {
        o.read(true);
    }
    let mut flags = libc::O_CLOEXEC;
    if nonblock {
        flags |= libc::O_NONBLOCK;
    }
    o.custom_flags(flags);
    o.open(path)
        .map(OwnedFd::from)
        .map_err(|e| io::Error::new(e.kind(), format!("open {path}: {e}")))
}

fn dev_null(write: bool) -> io::Result<OwnedFd> {
    OpenOptions::new()
        .read(!write)
        .write(write)
        .open("/dev/null")
        .map(OwnedFd::from)
}

/// Strips the `fifo://` scheme; `file://` targets are plain files.
enum Target<'a> {
    None,
    Fifo(&'a str),
    File(&'a str),
}

fn target(uri: &str) -> io::Result<Target<'_>> {
    if uri.is_empty() {
        return Ok(Target::None);
    }
    if let Some(p) = uri.strip_prefix("fifo://") {
        return Ok(Target::Fifo(p));
    }
    if let Some(p) = uri.strip_prefix("file://") {
        return Ok(Target::File(p));
    }
    if uri.starts_with("binary://") {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{uri}: logging binaries (binary://) are not supported by this shim"),
        ));
    }
    Ok(Target::Fifo(uri))
}

/// Opens a non-terminal process's stdio: pipes for the process, copiers
/// from/to the FIFOs for the shim.
pub fn open_piped(p: &StdioPaths) -> io::Result<(ChildStdio, ProcessIo)> {
    let mut io = ProcessIo::default();
    let stdin = match target(&p.stdin)? {
        Target::None => dev_null(false)?,
        Target::File(path) => OpenOptions::new()
            .read(true)
            .open(path)
            .map(OwnedFd::from)?,
        Target::Fifo(path) => {
            // Non-blocking: the open must not wait for a writer.
            let fifo = open_fifo(path, false, true)?;
            io.stdin_spare = Some(open_fifo(path, true, true)?);
            let (r, w) = pipe()?;
            set_nonblocking(&w)?;
            io.copiers.push(Copier {
                src: fifo,
                dst: w,
                is_stdin: true,
            });
            r
        }
    };
    let mut out = |uri: &str| -> io::Result<OwnedFd> {
        match target(uri)? {
            Target::None => dev_null(true),
            Target::File(path) => OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)
                .map(OwnedFd::from)
                .map_err(|e| io::Error::new(e.kind(), format!("open {path}: {e}"))),
            Target::Fifo(path) => {
                io.keepalive.push(open_fifo(path, false, true)?);
                // A reader exists now, so this open does not block.
                let fifo = open_fifo(path, true, true)?;
                let (r, w) = pipe()?;
                set_nonblocking(&r)?;
                io.copiers.push(Copier {
                    src: r,
                    dst: fifo,
                    is_stdin: false,
                });
                Ok(w)
            }
        }
    };
    let stdout = out(&p.stdout)?;
    let stderr = if !p.stderr.is_empty() && p.stderr == p.stdout {
        stdout.try_clone()?
    } else {
        out(&p.stderr)?
    };
    Ok((
        ChildStdio {
            fds: [stdin, stdout, stderr],
        },
        io,
    ))
}

/// A close-on-exec pipe (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds points to two writable ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Moves data from one pipe-like fd to another with splice(2).
pub struct Copier {
    src: OwnedFd,
    dst: OwnedFd,
    /// Copies client input into the process (never ends on its own).
    is_stdin: bool,
}

impl Copier {
    /// Registers both ends: `src` for reading, `dst` for writing.
    pub fn register(
        &self,
        registry: &Registry,
        src_token: usize,
        dst_token: usize,
    ) -> io::Result<()> {
        registry.register(
            &mut SourceFd(&self.src.as_raw_fd()),
            Token(src_token),
            Interest::READABLE,
        )?;
        registry.register(
            &mut SourceFd(&self.dst.as_raw_fd()),
            Token(dst_token),
            Interest::WRITABLE,
        )
    }

    pub fn deregister(&self, registry: &Registry) {
        let _ = registry.deregister(&mut SourceFd(&self.src.as_raw_fd()));
        let _ = registry.deregister(&mut SourceFd(&self.dst.as_raw_fd()));
    }

    /// The source fd if this copier carries output (a pipe read end the
    /// process writes into), None for the stdin copier.
    pub fn output_fd(&self) -> Option<RawFd> {
        (!self.is_stdin).then_some(self.src.as_raw_fd())
    }

    /// Moves what can be moved without blocking. Returns false when the
    /// source reached EOF (every writer closed) or the copy failed for good.
    pub fn pump(&self) -> bool {
        loop {
            // SAFETY: splice between two fds we own; NULL offsets for pipes.
            let n = unsafe {
                libc::splice(
                    self.src.as_raw_fd(),
                    std::ptr::null_mut(),
                    self.dst.as_raw_fd(),
                    std::ptr::null_mut(),
                    1 << 16,
                    libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
                )
            };
            match n {
                0 => return false,
                n if n > 0 => continue,
                _ => {
                    let e = io::Error::last_os_error();
                    return matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR));
                }
            }
        }
    }
}

impl ProcessIo {
    /// CloseIO: drop the spare writer so the process sees EOF once the
    /// client's writer is gone too; a terminal relay stops forwarding stdin.
    pub fn close_stdin(&mut self, registry: &Registry) {
        self.stdin_spare = None;
        // Nothing more will come; a stdin copier still forwards what the
        // client wrote and then sees EOF.
        if let Some(r) = &mut self.relay {
            r.close_stdin(registry);
        }
    }

    /// Opens the FIFOs of a terminal process and wraps the pty master.
    pub fn with_relay(p: &StdioPaths, master: OwnedFd) -> io::Result<ProcessIo> {
        set_nonblocking(&master)?;
        let mut io = ProcessIo::default();
        let stdin = match target(&p.stdin)? {
            Target::Fifo(path) => {
                let r = open_fifo(path, false, true)?;
                io.stdin_spare = Some(open_fifo(path, true, true)?);
                Some(r)
            }
            _ => None,
        };
        let stdout = match target(&p.stdout)? {
            Target::Fifo(path) => {
                io.keepalive.push(open_fifo(path, false, true)?);
                let w = open_fifo(path, true, true)?;
                Some(w)
            }
            Target::File(path) => {
                let f = OpenOptions::new().append(true).create(true).open(path)?;
                Some(OwnedFd::from(f))
            }
            Target::None => None,
        };
        io.relay = Some(Relay {
            master,
            stdin,
            stdout,
            to_pty: Pending::default(),
            to_out: Pending::default(),
        });
        Ok(io)
    }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: plain fcntl calls on an fd we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Bytes read from one side and not yet written to the other.
#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    off: usize,
}

/// Copies pty output to the stdout FIFO and stdin FIFO input to the pty.
/// Edge-triggered: each side is read until EAGAIN, a full buffer waits for
/// the other side to become writable.
pub struct Relay {
    pub master: OwnedFd,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    to_pty: Pending,
    to_out: Pending,
}

const BUF: usize = 16 * 1024;

impl Relay {
    /// Registers the relay's fds with three consecutive tokens from `base`.
    pub fn register(&self, registry: &Registry, base: usize) -> io::Result<()> {
        registry.register(
            &mut SourceFd(&self.master.as_raw_fd()),
            Token(base),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        if let Some(s) = &self.stdin {
            registry.register(
                &mut SourceFd(&s.as_raw_fd()),
                Token(base + 1),
                Interest::READABLE,
            )?;
        }
        if let Some(s) = &self.stdout {
            registry.register(
                &mut SourceFd(&s.as_raw_fd()),
                Token(base + 2),
                Interest::WRITABLE,
            )?;
        }
        Ok(())
    }

    pub fn deregister(&self, registry: &Registry) {
        let _ = registry.deregister(&mut SourceFd(&self.master.as_raw_fd()));
        if let Some(s) = &self.stdin {
            let _ = registry.deregister(&mut SourceFd(&s.as_raw_fd()));
        }
        if let Some(s) = &self.stdout {
            let _ = registry.deregister(&mut SourceFd(&s.as_raw_fd()));
        }
    }

    fn close_stdin(&mut self, registry: &Registry) {
        if let Some(s) = self.stdin.take() {
            let _ = registry.deregister(&mut SourceFd(&s.as_raw_fd()));
        }
    }

    /// Moves whatever can be moved now. Returns false once the pty has
    /// closed (the process and everything holding the slave are gone).
    pub fn pump(&mut self) -> bool {
        let master = self.master.as_raw_fd();
        let open = match &self.stdout {
            Some(out) => copy(master, out.as_raw_fd(), &mut self.to_out),
            None => copy(master, -1, &mut self.to_out),
        };
        if let Some(inp) = &self.stdin {
            if !copy(inp.as_raw_fd(), master, &mut self.to_pty) {
                // Client closed stdin: stop forwarding (the pty stays open).
                self.stdin = None;
            }
        }
        open
    }
}

/// Copies from `src` to `dst` (-1 = discard) until one side would block.
/// Returns false when `src` reached EOF or failed for good.
fn copy(src: RawFd, dst: RawFd, p: &mut Pending) -> bool {
    loop {
        if p.off < p.buf.len() {
            if dst < 0 {
                p.buf.clear();
                p.off = 0;
            } else {
                match raw_write(dst, &p.buf[p.off..]) {
                    Ok(n) => p.off += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(_) => {
                        // Nobody reads the output any more: discard it.
                        p.buf.clear();
                        p.off = 0;
                    }
                }
                continue;
            }
        }
        p.buf.clear();
        p.off = 0;
        p.buf.resize(BUF, 0);
        match raw_read(src, &mut p.buf) {
            Ok(0) => {
                p.buf.clear();
                return false;
            }
            Ok(n) => p.buf.truncate(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                p.buf.clear();
                return true;
            }
            // EIO on a pty master: every slave fd is closed.
            Err(_) => {
                p.buf.clear();
                return false;
            }
        }
    }
}

fn raw_read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    let f = std::mem::ManuallyDrop::new(
        // SAFETY: the fd stays owned by the relay; ManuallyDrop avoids closing it.
        unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) },
    );
    (&*f).read(buf)
}

fn raw_write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    let f = std::mem::ManuallyDrop::new(
        // SAFETY: the fd stays owned by the relay; ManuallyDrop avoids closing it.
        unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) },
    );
    (&*f).write(buf)
}

/// Sets the pty window size.
pub fn resize(master: &OwnedFd, width: u32, height: u32) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: height.min(u16::MAX as u32) as u16,
        ws_col: width.min(u16::MAX as u32) as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: ws is a valid winsize for TIOCSWINSZ.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(path: &std::path::Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: c is a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn piped_stdio_is_spliced_to_and_from_the_fifos() {
        let dir = tempfile::tempdir().unwrap();
        let (i, o) = (dir.path().join("in"), dir.path().join("out"));
        mkfifo(&i);
        mkfifo(&o);
        let paths = StdioPaths {
            stdin: i.display().to_string(),
            stdout: o.display().to_string(),
            stderr: String::new(),
            terminal: false,
        };
        // Opening must not block although no client holds the FIFOs.
        let (child, mut io) = open_piped(&paths).unwrap();
        assert_eq!(io.copiers.len(), 2);
        // The process's stdout reaches a reader of the FIFO.
        let mut reader = std::fs::File::open(&o).unwrap();
        (&std::fs::File::from(child.fds[1].try_clone().unwrap()))
            .write_all(b"hi")
            .unwrap();
        assert!(io.copiers[1].pump());
        let mut buf = [0u8; 2];
        reader.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
        // Client input reaches the process's stdin; EOF only comes after
        // CloseIO and the client writer closing.
        let mut client = std::fs::OpenOptions::new().write(true).open(&i).unwrap();
        client.write_all(b"x").unwrap();
        drop(client);
        assert!(io.copiers[0].pump(), "the spare writer keeps the FIFO open");
        let mut stdin = std::fs::File::from(child.fds[0].try_clone().unwrap());
        let mut one = [0u8; 1];
        stdin.read_exact(&mut one).unwrap();
        assert_eq!(&one, b"x");
        let poll = mio::Poll::new().unwrap();
        io.close_stdin(poll.registry());
        assert!(!io.copiers[0].pump(), "EOF once every writer is gone");
        io.copiers.remove(0);
        drop(child);
        assert_eq!(stdin.read(&mut one).unwrap(), 0, "EOF after CloseIO");
    }
}
