//! The shim's state and the work the event loop does for it besides RPCs:
//! reaping children and turning exits into events and Wait answers, OOM
//! notifications, terminal relays, and mapping executor errors to
//! containerd's status codes.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::SystemTime;

use berth_executor::Runtime;
use berth_ttrpc_api::protobuf::MessageField;
use berth_ttrpc_api::task::WaitResponse;
use berth_ttrpc_api::typeurl::{Event, TaskExit, TaskOOM};
use berth_ttrpc_api::{encode_reply, Code, Publisher, Status};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::process::{timestamp, Ctr, Exit, Proc, ProcState};

/// What a registered fd (other than connections) belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watch {
    /// One of a terminal relay's three fds (base token owns the relay).
    Relay {
        container: String,
        exec_id: String,
        base: usize,
    },
    /// A cgroup OOM notification fd.
    Oom { container: String },
    /// One end of a process's pipe <-> FIFO copiers.
    Copy { container: String, exec_id: String },
}

/// Tokens below this are fixed; see server.rs.
pub const FIRST_DYNAMIC_TOKEN: usize = 8;

pub struct Service {
    /// The executor, rooted at /run/containerd/berth/<namespace>.
    pub runtime: Runtime,
    pub containers: HashMap<String, Ctr>,
    pub publisher: Option<Publisher>,
    pub registry: Registry,
    /// The connection whose request is being dispatched.
    pub current: Option<Token>,
    /// Deferred answers ready to send: (connection, stream, reply).
    pub replies: Vec<(Token, u32, Result<Vec<u8>, Status>)>,
    /// Exits of pids that were not ours (yet): kept, never lost.
    pub unclaimed: HashMap<i32, Exit>,
    pub watches: HashMap<usize, Watch>,
    next_token: usize,
    pub shutdown: bool,
}

impl Service {
    pub fn new(runtime: Runtime, registry: Registry, publisher: Option<Publisher>) -> Service {
        Service {
            runtime,
            containers: HashMap::new(),
            publisher,
            registry,
            current: None,
            replies: Vec::new(),
            unclaimed: HashMap::new(),
            watches: HashMap::new(),
            next_token: FIRST_DYNAMIC_TOKEN,
            shutdown: false,
        }
    }

    /// Hands out `n` consecutive tokens.
    pub fn alloc_tokens(&mut self, n: usize) -> usize {
        let base = self.next_token;
        self.next_token += n;
        base
    }

    pub fn publish<E: Event>(&mut self, event: &E) {
        if let Some(p) = self.publisher.as_mut() {
            if let Err(e) = p.publish_event(event) {
                tracing::warn!("publish {}: {e}", E::TOPIC);
            }
        }
    }

    pub fn container(&self, id: &str) -> Result<&Ctr, Status> {
        self.containers
            .get(id)
            .ok_or_else(|| Status::not_found(format!("container {id}")))
    }

    pub fn container_mut(&mut self, id: &str) -> Result<&mut Ctr, Status> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| Status::not_found(format!("container {id}")))
    }

    /// Reaps every exited child and records the exits.
    pub fn reap(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a valid out pointer.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            let exit = Exit::from_wait_status(status, SystemTime::now());
            if !self.record_exit(pid, exit) {
                // Not ours (yet): a process whose pid we learn later, or
                // something reparented to us as subreaper.
                if self.unclaimed.len() > 4096 {
                    self.unclaimed.clear();
                }
                self.unclaimed.insert(pid, exit);
            }
        }
    }

    /// Looks up an exit that arrived before its pid was registered.
    pub fn take_unclaimed(&mut self, pid: i32) -> Option<Exit> {
        self.unclaimed.remove(&pid)
    }

    /// Marks `pid` exited: publishes /tasks/exit and answers its waiters.
    /// Returns false if no process of ours has that pid.
    pub fn record_exit(&mut self, pid: i32, exit: Exit) -> bool {
        let Some((cid, exec_id)) = self
            .containers
            .iter_mut()
            .find_map(|(cid, c)| c.by_pid_mut(pid).map(|p| (cid.clone(), p.exec_id.clone())))
        else {
            return false;
        };
        let Some(c) = self.containers.get_mut(&cid) else {
            return false;
        };
        let is_init = exec_id.is_empty();
        if is_init && !c.own_pid_ns {
            // Without its own pid namespace nothing else dies with the init.
            if let Some(container) = &c.container {
                let _ = container.kill(libc::SIGKILL, true);
            }
        }
        // Output written just before exiting goes out before the exit event.
        for copier in c
            .process(&exec_id)
            .map(|p| &p.io.copiers)
            .into_iter()
            .flatten()
        {
            copier.pump();
        }
        let Some(p) = c.process_mut(&exec_id) else {
            return false;
        };
        p.state = ProcState::Stopped;
        p.exit = Some(exit);
        let waiters = std::mem::take(&mut p.waiters);
        let mut resp = WaitResponse::new();
        resp.exit_status = exit.status;
        resp.exited_at = MessageField::some(timestamp(exit.at));
        let reply = encode_reply(&resp);
        for (token, stream) in waiters {
            self.replies.push((token, stream, reply.clone()));
        }
        let mut ev = TaskExit::new();
        ev.container_id = cid.clone();
        ev.id = if is_init { cid.clone() } else { exec_id };
        ev.pid = pid as u32;
        ev.exit_status = exit.status;
        ev.exited_at = MessageField::some(timestamp(exit.at));
        self.publish(&ev);
        true
    }

    /// Registers the container's OOM notification, if its cgroup has one.
    pub fn watch_oom(&mut self, id: &str) {
        let Some(c) = self.containers.get(id) else {
            return;
        };
        let Some(container) = &c.container else {
            return;
        };
        let Ok(fd) = container.state.cgroup.oom_eventfd() else {
            return;
        };
        let token = self.alloc_tokens(1);
        if self
            .registry
            .register(
                &mut SourceFd(&fd.as_raw_fd()),
                Token(token),
                Interest::READABLE,
            )
            .is_err()
        {
            return;
        }
        self.watches.insert(
            token,
            Watch::Oom {
                container: id.to_string(),
            },
        );
        if let Some(c) = self.containers.get_mut(id) {
            c.oom = Some((token, fd));
        }
    }

    /// An OOM fd fired: drain it and publish /tasks/oom if the cgroup still exists.
    pub fn on_oom(&mut self, id: &str) {
        let Some(c) = self.containers.get(id) else {
            return;
        };
        let Some((_, fd)) = &c.oom else { return };
        let mut buf = [0u8; 4096];
        // SAFETY: reading into a local buffer from our own non-blocking fd.
        while unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        let exists = c
            .container
            .as_ref()
            .is_some_and(|k| k.state.cgroup.exists());
        if exists {
            let mut ev = TaskOOM::new();
            ev.container_id = id.to_string();
            self.publish(&ev);
        }
    }

    /// Stops watching a container's fds (OOM, relays).
    pub fn unwatch(&mut self, id: &str) {
        let registry = &self.registry;
        if let Some(c) = self.containers.get_mut(id) {
            if let Some((token, fd)) = c.oom.take() {
                let _ = registry.deregister(&mut SourceFd(&fd.as_raw_fd()));
                self.watches.remove(&token);
            }
        }
        self.watches.retain(|_, w| match w {
            Watch::Relay { container, .. }
            | Watch::Oom { container }
            | Watch::Copy { container, .. } => container != id,
        });
    }

    /// Registers a process's stdio copiers and moves what is already there.
    pub fn watch_copiers(&mut self, container: &str, exec_id: &str) {
        let n = self
            .containers
            .get(container)
            .and_then(|c| c.process(exec_id))
            .map_or(0, |p| p.io.copiers.len());
        if n == 0 {
            return;
        }
        let base = self.alloc_tokens(2 * n);
        let watch = Watch::Copy {
            container: container.to_string(),
            exec_id: exec_id.to_string(),
        };
        if let Some(p) = process_mut(&mut self.containers, container, exec_id) {
            for (i, c) in p.io.copiers.iter().enumerate() {
                if let Err(e) = c.register(&self.registry, base + 2 * i, base + 2 * i + 1) {
                    tracing::warn!("watch stdio of {container}/{exec_id}: {e}");
                }
            }
            p.copy_tokens = (base..base + 2 * n).collect();
        }
        for t in base..base + 2 * n {
            self.watches.insert(t, watch.clone());
        }
        self.pump_copiers(container, exec_id);
    }

    /// Moves stdio data of one process; drops copiers that are done (which
    /// closes the FIFO writer or the process's stdin pipe: EOF downstream).
    pub fn pump_copiers(&mut self, container: &str, exec_id: &str) {
        let registry = &self.registry;
        let Some(p) = process_mut(&mut self.containers, container, exec_id) else {
            return;
        };
        p.io.copiers.retain(|c| {
            let open = c.pump();
            if !open {
                c.deregister(registry);
            }
            open
        });
    }

    /// Before a process is deleted: deliver the output still in its pipes
    /// (bounded wait in case nobody reads the FIFO).
    pub fn flush_io(&mut self, container: &str, exec_id: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            self.pump_copiers(container, exec_id);
            let Some(p) = self
                .containers
                .get(container)
                .and_then(|c| c.process(exec_id))
            else {
                return;
            };
            // The stdin copier never ends by itself; only output matters here.
            let pending: Vec<i32> = p.io.copiers.iter().filter_map(|c| c.output_fd()).collect();
            if pending.is_empty() || std::time::Instant::now() >= deadline {
                return;
            }
            let mut fds: Vec<libc::pollfd> = pending
                .iter()
                .map(|fd| libc::pollfd {
                    fd: *fd,
                    events: libc::POLLIN | libc::POLLOUT,
                    revents: 0,
                })
                .collect();
            // SAFETY: fds is a valid slice of pollfd.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 20) };
        }
    }

    /// Stops watching a process's stdio fds.
    pub fn unwatch_process(&mut self, container: &str, exec_id: &str) {
        let registry = &self.registry;
        let Some(p) = process_mut(&mut self.containers, container, exec_id) else {
            return;
        };
        for c in p.io.copiers.drain(..) {
            c.deregister(registry);
        }
        if let Some(relay) = p.io.relay.take() {
            relay.deregister(registry);
        }
        let mut tokens: Vec<usize> = std::mem::take(&mut p.copy_tokens);
        if let Some(base) = p.relay_token.take() {
            tokens.extend(base..base + 3);
        }
        for t in tokens {
            self.watches.remove(&t);
        }
    }

    /// Moves data for a terminal relay after one of its fds fired.
    pub fn pump_relay(&mut self, container: &str, exec_id: &str) {
        let registry = &self.registry;
        let Some(c) = self.containers.get_mut(container) else {
            return;
        };
        let Some(p) = c.process_mut(exec_id) else {
            return;
        };
        let Some(relay) = p.io.relay.as_mut() else {
            return;
        };
        if !relay.pump() {
            relay.deregister(registry);
            if let Some(base) = p.relay_token.take() {
                for t in base..base + 3 {
                    self.watches.remove(&t);
                }
            }
            p.io.relay = None;
        }
    }

    /// Registers a new terminal relay for a process.
    pub fn watch_relay(
        &mut self,
        container: &str,
        exec_id: &str,
        master: OwnedFd,
    ) -> Result<(), Status> {
        let base = self.alloc_tokens(3);
        let registry = self
            .registry
            .try_clone()
            .map_err(|e| Status::unknown(e.to_string()))?;
        let c = self.container_mut(container)?;
        let p = c
            .process_mut(exec_id)
            .ok_or_else(|| Status::not_found(format!("process {exec_id}")))?;
        let io = crate::io::ProcessIo::with_relay(&p.stdio, master).map_err(io_status)?;
        p.io = io;
        if let Some(r) = &p.io.relay {
            r.register(&registry, base).map_err(io_status)?;
        }
        p.relay_token = Some(base);
        for t in base..base + 3 {
            self.watches.insert(
                t,
                Watch::Relay {
                    container: container.to_string(),
                    exec_id: exec_id.to_string(),
                    base,
                },
            );
        }
        // Output may already be waiting.
        self.pump_relay(container, exec_id);
        Ok(())
    }
}

/// Maps an executor error to the status containerd expects.
pub fn status(e: berth_executor::Error) -> Status {
    use berth_executor::Error as E;
    let msg = e.to_string();
    match e {
        E::NotFound { .. } => Status::new(Code::NotFound, msg),
        E::AlreadyExists { .. } => Status::new(Code::AlreadyExists, msg),
        E::InvalidState { .. } => Status::new(Code::FailedPrecondition, msg),
        E::InvalidConfig { .. } | E::Config { .. } | E::InvalidId { .. } => {
            Status::new(Code::InvalidArgument, msg)
        }
        E::Unsupported(_) => Status::new(Code::Unimplemented, msg),
        _ => Status::new(Code::Unknown, msg),
    }
}

pub fn io_status(e: std::io::Error) -> Status {
    Status::new(Code::Unknown, e.to_string())
}

/// One process of one container, for the stdio bookkeeping above (a free
/// function so callers can hold `&self.registry` at the same time).
fn process_mut<'a>(
    containers: &'a mut HashMap<String, Ctr>,
    container: &str,
    exec_id: &str,
) -> Option<&'a mut Proc> {
    containers
        .get_mut(container)
        .and_then(|c| c.process_mut(exec_id))
}
