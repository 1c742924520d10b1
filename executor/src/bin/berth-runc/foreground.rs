//! `run` and `exec` in the foreground: berth-runc stays the process's parent,
//! forwards the signals it receives, relays a terminal when the process has
//! one and no --console-socket was given, and exits with the process's status.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use berth_executor::error::{Error, Result};
use berth_executor::{Container, CreateOptions, ExecOptions, Runtime};

use crate::args::{CheckpointArgs, RestoreArgs};

mod sig {
    //! signalfd and terminal calls for the foreground loop.
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};

    /// Signals forwarded to the container (everything catchable but the
    /// ones the terminal and job control use internally), plus SIGCHLD.
    pub const FORWARDED: &[i32] = &[
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGTERM,
        libc::SIGALRM,
        libc::SIGCONT,
        libc::SIGWINCH,
        libc::SIGCHLD,
        libc::SIGPWR,
        libc::SIGURG,
    ];

    /// Blocks the forwarded signals and returns a signalfd reading them.
    pub fn block_and_watch() -> std::io::Result<OwnedFd> {
        // SAFETY: sigset operations on a local, zero-initialised set.
        let fd = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in FORWARDED {
                libc::sigaddset(&mut set, *s);
            }
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signalfd(-1, &set, libc::SFD_CLOEXEC)
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by signalfd and is owned here.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Reads one signal number from a signalfd.
    pub fn read_signal(fd: RawFd) -> Option<i32> {
        // SAFETY: zeroed siginfo is a valid buffer of the size read.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: info is valid for `size` bytes.
        let n = unsafe { libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
        (n == size as isize).then_some(info.ssi_signo as i32)
    }

    /// Puts a terminal into raw mode; returns the old settings.
    pub fn make_raw(fd: RawFd) -> Option<libc::termios> {
        // SAFETY: zeroed termios is a valid out buffer for tcgetattr.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: t is a valid termios.
        if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
            return None;
        }
        let old = t;
        // SAFETY: t is a valid termios.
        unsafe {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
        }
        Some(old)
    }

    pub fn restore(fd: RawFd, t: &libc::termios) {
        // SAFETY: t came from tcgetattr.
        unsafe {
            libc::tcsetattr(fd, libc::TCSANOW, t);
        }
    }

    /// Copies the window size of `from` to `to`.
    pub fn copy_winsize(from: RawFd, to: RawFd) {
        // SAFETY: zeroed winsize is a valid buffer for both ioctls.
        unsafe {
            let mut ws: libc::winsize = std::mem::zeroed();
            if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
                libc::ioctl(to, libc::TIOCSWINSZ, &ws);
            }
        }
    }

    pub fn set_subreaper() {
        // SAFETY: prctl with integer arguments.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
    }

    pub fn waitpid_nohang() -> Option<(i32, i32)> {
        let mut status = 0;
        // SAFETY: status is a valid out pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        (pid > 0).then_some((pid, status))
    }

    pub fn kill(pid: i32, sig: i32) {
        // SAFETY: plain syscall.
        unsafe {
            libc::kill(pid, sig);
        }
    }

    pub fn isatty(fd: RawFd) -> bool {
        // SAFETY: plain call.
        unsafe { libc::isatty(fd) == 1 }
    }

    pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> i32 {
        // SAFETY: fds is a valid slice of pollfd.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) }
    }
}

/// A terminal relayed between our stdio and a pty master.
struct Relay {
    master: OwnedFd,
    saved: Option<libc::termios>,
}

impl Relay {
    fn new(master: OwnedFd) -> Relay {
        let saved = if sig::isatty(0) {
            sig::copy_winsize(0, master.as_raw_fd());
            sig::make_raw(0)
        } else {
            None
        };
        Relay { master, saved }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            sig::restore(0, t);
        }
    }
}

/// A socket pair standing in for --console-socket: one end goes to the
/// container, the pty master arrives on the other.
fn console_pair() -> Result<(OwnedFd, OwnedFd)> {
    berth_executor::exec::console_pair().map_err(|e| Error::io("create console socket pair", e))
}

fn receive_master(sock: &OwnedFd) -> Result<OwnedFd> {
    berth_executor::exec::receive_fd(sock.as_raw_fd())
        .map_err(|e| Error::io("receive the pty master", e))
}

pub fn run(
    runtime: &Runtime,
    (id, mut opts): (String, CreateOptions),
    detach: bool,
    keep: bool,
    no_subreaper: bool,
) -> Result<u8> {
    let spec =
        berth_executor::spec::load_bundle_config(&berth_executor::create::absolute(&opts.bundle)?)?;
    let terminal = spec.process.as_ref().is_some_and(|p| p.terminal);
    let mut console_peer = None;
    if terminal && opts.console_socket.is_none() {
        if detach {
            return Err(Error::invalid(
                "process.terminal",
                "is true: with --detach a --console-socket is required to receive the terminal",
            ));
        }
        let (ours, theirs) = console_pair()?;
        opts.console_fd = Some(theirs);
        console_peer = Some(ours);
    }
    if !detach && !no_subreaper {
        sig::set_subreaper();
    }
    let sigfd = if detach {
        None
    } else {
        Some(sig::block_and_watch().map_err(|e| Error::io("set up signal forwarding", e))?)
    };
    let mut container = runtime.create(&id, opts)?;
    let relay = match &console_peer {
        Some(peer) => match receive_master(peer) {
            Ok(m) => Some(Relay::new(m)),
            Err(e) => {
                let _ = container.delete(true);
                return Err(e);
            }
        },
        None => None,
    };
    if let Err(e) = container.start() {
        if let Ok(c) = runtime.load(&id) {
            let _ = c.delete(true);
        }
        return Err(e);
    }
    let Some(sigfd) = sigfd else { return Ok(0) };
    let code = wait_forwarding(container.pid(), &sigfd, relay.as_ref());
    drop(relay);
    if !keep {
        if let Ok(c) = runtime.load(&id) {
            c.delete(true)?;
        }
    }
    Ok(code)
}

pub fn exec(
    container: &Container,
    mut opts: ExecOptions,
    detach: bool,
    pid_file: Option<&Path>,
) -> Result<u8> {
    let mut console_peer = None;
    if opts.process.terminal && opts.console_socket.is_none() {
        if detach {
            return Err(Error::invalid(
                "--tty",
                "with --detach a --console-socket is required",
            ));
        }
        let (ours, theirs) = console_pair()?;
        opts.console_fd = Some(theirs);
        console_peer = Some(ours);
    }
    let sigfd = if detach {
        None
    } else {
        Some(sig::block_and_watch().map_err(|e| Error::io("set up signal forwarding", e))?)
    };
    let pid = container.exec(opts)?;
    if let Some(path) = pid_file {
        std::fs::write(path, pid.to_string())
            .map_err(|e| Error::io(format!("write pid file {}", path.display()), e))?;
    }
    let relay = console_peer
        .map(|p| receive_master(&p))
        .transpose()?
        .map(Relay::new);
    let Some(sigfd) = sigfd else { return Ok(0) };
    Ok(wait_forwarding(pid, &sigfd, relay.as_ref()))
}

/// Forwards signals to `pid` and relays the terminal until `pid` exits;
/// returns its exit code (128+signal when killed).
fn wait_forwarding(pid: i32, sigfd: &OwnedFd, relay: Option<&Relay>) -> u8 {
    let mut stdin_open = relay.is_some();
    let mut master_open = relay.is_some();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let mut fds = vec![libc::pollfd {
            fd: sigfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(r) = relay {
            if master_open {
                fds.push(libc::pollfd {
                    fd: r.master.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            if stdin_open {
                fds.push(libc::pollfd {
                    fd: 0,
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
        }
        if sig::poll(&mut fds, -1) < 0 {
            continue;
        }
        for p in &fds {
            if p.revents == 0 {
                continue;
            }
            if p.fd == sigfd.as_raw_fd() {
                let Some(signo) = sig::read_signal(p.fd) else {
                    continue;
                };
                match signo {
                    libc::SIGCHLD => {
                        while let Some((reaped, status)) = sig::waitpid_nohang() {
                            if reaped == pid {
                                if let Some(r) = relay.filter(|_| master_open) {
                                    drain(r.master.as_raw_fd(), &mut buf);
                                }
                                return exit_code(status);
                            }
                        }
                    }
                    libc::SIGWINCH => {
                        if let Some(r) = relay {
                            sig::copy_winsize(0, r.master.as_raw_fd());
                        }
                    }
                    s => sig::kill(pid, s),
                }
            } else if let Some(r) = relay {
                if p.fd == r.master.as_raw_fd() {
                    master_open = copy_once(p.fd, 1, &mut buf);
                } else if p.fd == 0 {
                    stdin_open = copy_once(0, r.master.as_raw_fd(), &mut buf);
                }
            }
        }
    }
}

/// Copies one read's worth; false at EOF or error.
fn copy_once(from: RawFd, to: RawFd, buf: &mut [u8]) -> bool {
    let f = std::mem::ManuallyDrop::new(
        // SAFETY: the fd stays owned by the caller; ManuallyDrop keeps us from closing it.
        unsafe { std::fs::File::from_raw_fd(from) },
    );
    let t = std::mem::ManuallyDrop::new(
        // SAFETY: as above.
        unsafe { std::fs::File::from_raw_fd(to) },
    );
    use std::io::{Read, Write};
    match (&*f).read(buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => (&*t).write_all(&buf[..n]).is_ok(),
    }
}

/// Copies whatever output is left on the pty after the process exited.
fn drain(master: RawFd, buf: &mut [u8]) {
    let mut fds = [libc::pollfd {
        fd: master,
        events: libc::POLLIN,
        revents: 0,
    }];
    while sig::poll(&mut fds, 0) > 0 && fds[0].revents & libc::POLLIN != 0 {
        if !copy_once(master, 1, buf) {
            break;
        }
    }
}

fn exit_code(status: i32) -> u8 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as u8
    } else if libc::WIFSIGNALED(status) {
        (128 + libc::WTERMSIG(status)) as u8
    } else {
        255
    }
}

/// Waits until `fd` is readable or `timeout` passes.
pub fn wait_readable(fd: &OwnedFd, timeout: Duration) -> bool {
    let mut fds = [libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    sig::poll(&mut fds, timeout.as_millis().min(i32::MAX as u128) as i32) > 0
}

fn criu_options(a: &crate::args::CriuArgs) -> Result<berth_executor::criu::CriuOptions> {
    let image_path = match &a.image_path {
        Some(p) => p.clone(),
        None => std::env::current_dir()
            .map_err(|e| Error::io("current directory", e))?
            .join("checkpoint"),
    };
    Ok(berth_executor::criu::CriuOptions {
        image_path,
        work_path: a.work_path.clone(),
        tcp_established: a.tcp_established,
        ext_unix_sk: a.ext_unix_sk,
        shell_job: a.shell_job,
        file_locks: a.file_locks,
        empty_ns: a.empty_ns.clone(),
        manage_cgroups_mode: a.manage_cgroups_mode.clone(),
    })
}

pub fn checkpoint(runtime: &Runtime, a: CheckpointArgs) -> Result<u8> {
    if a.page_server.is_some() || a.criu.lazy_pages {
        return Err(Error::Unsupported(
            "--page-server and --lazy-pages are not supported".into(),
        ));
    }
    let opts = berth_executor::criu::CheckpointOptions {
        criu: criu_options(&a.criu)?,
        leave_running: a.leave_running,
        parent_path: a.parent_path.clone(),
        pre_dump: a.pre_dump,
    };
    runtime.load(&a.id)?.checkpoint(&opts)?;
    Ok(0)
}

pub fn restore(runtime: &Runtime, a: RestoreArgs) -> Result<u8> {
    if a.console_socket.is_some() {
        return Err(Error::Unsupported(
            "restore of a container with a terminal is not supported".into(),
        ));
    }
    if !a.detach && !a.no_subreaper {
        sig::set_subreaper();
    }
    let sigfd = if a.detach {
        None
    } else {
        Some(sig::block_and_watch().map_err(|e| Error::io("set up signal forwarding", e))?)
    };
    let opts = berth_executor::criu::RestoreOptions {
        criu: criu_options(&a.criu)?,
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        no_pivot: a.no_pivot,
        stdio: None,
    };
    let container = runtime.restore(&a.id, opts)?;
    let Some(sigfd) = sigfd else { return Ok(0) };
    let code = wait_forwarding(container.pid(), &sigfd, None);
    if let Ok(c) = runtime.load(&a.id) {
        c.delete(true)?;
    }
    Ok(code)
}
