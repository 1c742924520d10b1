//! The shim's one event loop (one thread): ttrpc connections, SIGCHLD
//! reaping, SIGTERM, the events publisher and its retry timer, terminal
//! relays and OOM notifications, all on one mio Poll.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_executor::Runtime;
use berth_ttrpc_api::{accept_same_user, dispatch, Publisher, ServerConnection};
use mio::net::UnixListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::service::{Service, Watch};

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
const EVENTS: Token = Token(2);

/// How long a shutting-down shim keeps trying to deliver queued events.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

pub struct ServerConfig {
    pub namespace: String,
    /// Socket path to remove on exit.
    pub socket_path: PathBuf,
    /// containerd's ttrpc socket for events (TTRPC_ADDRESS).
    pub ttrpc_address: Option<String>,
    /// The executor's state root.
    pub runtime_root: PathBuf,
}

mod signals {
    //! signalfd for SIGCHLD, SIGTERM and SIGINT.
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};

    pub fn watch() -> std::io::Result<OwnedFd> {
        // SAFETY: sigset operations on a local set; signalfd returns a new fd.
        let fd = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT] {
                libc::sigaddset(&mut set, s);
            }
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd was just created and is owned here.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Drains the signalfd; returns the signal numbers read.
    pub fn read(fd: RawFd) -> Vec<i32> {
        let mut out = Vec::new();
        loop {
            // SAFETY: zeroed siginfo is a valid buffer.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: info is valid for `size` bytes.
            let n =
                unsafe { libc::read(fd, (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
            if n != size as isize {
                return out;
            }
            out.push(info.ssi_signo as i32);
        }
    }
}

/// Serves until Shutdown (with no containers left) or SIGTERM.
pub fn serve(cfg: ServerConfig, listener_fd: OwnedFd) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let std_listener = std::os::unix::net::UnixListener::from(listener_fd);
    std_listener.set_nonblocking(true)?;
    let mut listener = UnixListener::from_std(std_listener);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let sigfd = signals::watch()?;
    poll.registry().register(
        &mut SourceFd(&sigfd.as_raw_fd()),
        SIGNALS,
        Interest::READABLE,
    )?;
    let publisher = match &cfg.ttrpc_address {
        Some(addr) => match Publisher::new(addr, &cfg.namespace, poll.registry(), EVENTS) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!("events will not be published: {e}");
                None
            }
        },
        None => {
            tracing::warn!("TTRPC_ADDRESS is not set: events will not be published");
            None
        }
    };
    let mut svc = Service::new(
        Runtime::new(&cfg.runtime_root),
        poll.registry().try_clone()?,
        publisher,
    );
    let mut conns: HashMap<Token, ServerConnection> = HashMap::new();
    let mut events = Events::with_capacity(64);
    let mut flush_deadline: Option<Instant> = None;
    let mut trimmer = crate::memory::Trimmer::default();
    let mut served_a_container = false;

    loop {
        if svc.shutdown {
            let idle = svc.publisher.as_ref().is_none_or(Publisher::is_idle);
            let deadline = *flush_deadline.get_or_insert_with(|| Instant::now() + FLUSH_TIMEOUT);
            if idle || Instant::now() >= deadline {
                break;
            }
        }
        let mut timeout = svc
            .publisher
            .as_ref()
            .and_then(Publisher::next_deadline)
            .map(|d| d.saturating_duration_since(Instant::now()));
        if let Some(d) = trimmer.deadline() {
            let t = d.saturating_duration_since(Instant::now());
            timeout = Some(timeout.map_or(t, |x| x.min(t)));
        }
        if svc.shutdown {
            timeout = Some(
                timeout
                    .unwrap_or(Duration::from_millis(50))
                    .min(Duration::from_millis(50)),
            );
        }
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            match event.token() {
                LISTENER => loop {
                    match accept_same_user(&listener) {
                        Ok(Some(stream)) => {
                            let token = Token(svc.alloc_tokens(1));
                            let mut conn = ServerConnection::new(stream);
                            if conn.register(poll.registry(), token).is_ok() {
                                conns.insert(token, conn);
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!("accept: {e}");
                            break;
                        }
                    }
                },
                SIGNALS => {
                    for sig in signals::read(sigfd.as_raw_fd()) {
                        match sig {
                            libc::SIGCHLD => svc.reap(),
                            _ => {
                                tracing::info!("signal {sig}: shutting down");
                                svc.shutdown = true;
                            }
                        }
                    }
                }
                EVENTS => {
                    if let Some(p) = svc.publisher.as_mut() {
                        p.handle_event(event);
                    }
                }
                token => {
                    if let Some(conn) = conns.get_mut(&token) {
                        if event.is_writable() {
                            let _ = conn.on_writable();
                        }
                        let incoming = conn.on_readable().unwrap_or_else(|e| {
                            tracing::debug!("connection {token:?}: {e}");
                            Vec::new()
                        });
                        if !incoming.is_empty() {
                            trimmer.touched(Instant::now());
                        }
                        for req in &incoming {
                            svc.current = Some(token);
                            if let Some(reply) = dispatch(&mut svc, req) {
                                let _ = conn.respond(req.stream_id, reply);
                            }
                        }
                        svc.current = None;
                        continue;
                    }
                    match svc.watches.get(&token.0).cloned() {
                        Some(Watch::Relay {
                            container, exec_id, ..
                        }) => svc.pump_relay(&container, &exec_id),
                        Some(Watch::Oom { container }) => svc.on_oom(&container),
                        Some(Watch::Copy { container, exec_id }) => {
                            svc.pump_copiers(&container, &exec_id)
                        }
                        None => {}
                    }
                }
            }
        }
        let now = Instant::now();
        if let Some(p) = svc.publisher.as_mut() {
            p.on_timer(now);
        }
        if events.is_empty() {
            trimmer.maybe_trim(now);
        }
        for (token, stream, reply) in svc.replies.drain(..) {
            if let Some(conn) = conns.get_mut(&token) {
                let _ = conn.respond(stream, reply);
            }
        }
        conns.retain(|_, conn| {
            if conn.is_closed() {
                let _ = conn.deregister(poll.registry());
                return false;
            }
            let _ = conn.sync_interest(poll.registry());
            true
        });
        // Nothing left to serve and nobody connected (containerd deleted
        // our last container but its Shutdown never arrived): exit rather
        // than linger. Before the first Create there is always a connection.
        served_a_container |= !svc.containers.is_empty();
        if served_a_container && svc.containers.is_empty() && conns.is_empty() && !svc.shutdown {
            tracing::info!("no containers and no connections left: shutting down");
            svc.shutdown = true;
        }
    }
    // Flush what is still queued for connected clients.
    for conn in conns.values_mut() {
        let _ = conn.on_writable();
    }
    let _ = std::fs::remove_file(&cfg.socket_path);
    Ok(())
}

/// Becomes a child subreaper: orphans in the containers are reparented to
/// the shim, which reaps them and reports exits of our processes.
pub fn set_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Points fds 0 and 1 at /dev/null and fd 2 at `log` (the bundle's log
/// FIFO, which containerd holds open), so nothing keeps containerd's
/// `start` pipe open and our log lines reach containerd's log.
pub fn redirect_stdio(log: &std::path::Path) {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null");
    // Non-blocking: containerd already holds the FIFO open, and a slow or
    // gone reader must never stall the event loop (lines are dropped instead).
    let logf = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(log);
    let dup = |from: RawFd, to: RawFd| {
        // SAFETY: dup2 onto a standard fd number.
        unsafe { libc::dup2(from, to) };
    };
    if let Ok(n) = &null {
        dup(n.as_raw_fd(), 0);
        dup(n.as_raw_fd(), 1);
    }
    match (&logf, &null) {
        (Ok(l), _) => dup(l.as_raw_fd(), 2),
        (Err(_), Ok(n)) => dup(n.as_raw_fd(), 2),
        _ => {}
    }
}
