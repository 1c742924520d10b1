//! A minimal single-threaded shim loop: serves `containerd.task.v2.Task` on a unix socket and
//! forwards events to `TTRPC_ADDRESS`. It is the reference for wiring the crate into mio
//! (tokens, deferred replies, interest updates, publisher timer) and the binary used to
//! estimate the shim's size. Usage: `mini_shim SOCKET_PATH`; stops after a Shutdown call.

use std::collections::HashMap;
use std::time::Instant;

use berth_ttrpc_api::protobuf::well_known_types::empty::Empty;
use berth_ttrpc_api::task::{
    ConnectRequest, ConnectResponse, KillRequest, ShutdownRequest, WaitRequest, WaitResponse,
};
use berth_ttrpc_api::typeurl::TaskExit;
use berth_ttrpc_api::{
    accept_same_user, dispatch, encode_reply, Ctx, Publisher, ServerConnection, Status, TaskReply,
    TaskService,
};
use mio::net::UnixListener;
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(0);
const EVENTS: Token = Token(1);
const FIRST_CONNECTION: usize = 2;

/// A stand-in task service: Wait is deferred until Kill "exits" the task.
#[derive(Default)]
struct StubTask {
    /// Connection of the request being dispatched (set by the loop before `dispatch`).
    current: Option<Token>,
    waits: Vec<(Token, u32)>,
    replies: Vec<(Token, u32, Result<Vec<u8>, Status>)>,
    events: Vec<TaskExit>,
    shutdown: bool,
}

impl TaskService for StubTask {
    fn connect(&mut self, _ctx: &Ctx, _req: ConnectRequest) -> TaskReply<ConnectResponse> {
        let mut resp = ConnectResponse::new();
        resp.shim_pid = std::process::id();
        TaskReply::Ready(Ok(resp))
    }

    fn wait(&mut self, ctx: &Ctx, _req: WaitRequest) -> TaskReply<WaitResponse> {
        if let Some(token) = self.current {
            self.waits.push((token, ctx.stream_id));
        }
        TaskReply::Deferred
    }

    fn kill(&mut self, _ctx: &Ctx, req: KillRequest) -> TaskReply<Empty> {
        let mut resp = WaitResponse::new();
        resp.exit_status = 128 + req.signal;
        for (token, stream_id) in self.waits.drain(..) {
            self.replies.push((token, stream_id, encode_reply(&resp)));
        }
        let mut exit = TaskExit::new();
        exit.container_id = req.id.clone();
        exit.id = req.id;
        exit.exit_status = resp.exit_status;
        self.events.push(exit);
        TaskReply::Ready(Ok(Empty::new()))
    }

    fn shutdown(&mut self, _ctx: &Ctx, _req: ShutdownRequest) -> TaskReply<Empty> {
        self.shutdown = true;
        TaskReply::Ready(Ok(Empty::new()))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: mini_shim SOCKET_PATH")?;
    let mut poll = Poll::new()?;
    let mut listener = UnixListener::bind(&path)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut publisher = match std::env::var("TTRPC_ADDRESS") {
        Ok(addr) => Some(Publisher::new(&addr, "default", poll.registry(), EVENTS)?),
        Err(_) => None,
    };
    let mut conns: HashMap<Token, ServerConnection> = HashMap::new();
    let mut next_token = FIRST_CONNECTION;
    let mut svc = StubTask::default();
    let mut events = Events::with_capacity(64);

    while !(svc.shutdown && publisher.as_ref().is_none_or(Publisher::is_idle)) {
        let timeout = publisher
            .as_ref()
            .and_then(Publisher::next_deadline)
            .map(|d| d.saturating_duration_since(Instant::now()));
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        for event in events.iter() {
            match event.token() {
                LISTENER => {
                    // Edge-triggered: accept until the backlog is empty.
                    while let Some(stream) = accept_same_user(&listener)? {
                        let token = Token(next_token);
                        next_token += 1;
                        let mut conn = ServerConnection::new(stream);
                        conn.register(poll.registry(), token)?;
                        conns.insert(token, conn);
                    }
                }
                EVENTS => {
                    if let Some(p) = publisher.as_mut() {
                        p.handle_event(event);
                    }
                }
                token => {
                    let Some(conn) = conns.get_mut(&token) else {
                        continue;
                    };
                    if event.is_writable() {
                        let _ = conn.on_writable();
                    }
                    let incoming = conn.on_readable().unwrap_or_else(|e| {
                        eprintln!("connection {token:?}: {e}");
                        Vec::new()
                    });
                    for req in &incoming {
                        svc.current = Some(token);
                        if let Some(reply) = dispatch(&mut svc, req) {
                            let _ = conn.respond(req.stream_id, reply);
                        }
                    }
                }
            }
        }
        // Deferred answers produced while handling other calls.
        for (token, stream_id, reply) in svc.replies.drain(..) {
            if let Some(conn) = conns.get_mut(&token) {
                let _ = conn.respond(stream_id, reply);
            }
        }
        for exit in svc.events.drain(..) {
            if let Some(p) = publisher.as_mut() {
                if let Err(e) = p.publish_event(&exit) {
                    eprintln!("publish: {e}");
                }
            }
        }
        // Update WRITABLE interest; drop closed connections.
        conns.retain(|_, conn| {
            if conn.is_closed() {
                let _ = conn.deregister(poll.registry());
                return false;
            }
            conn.sync_interest(poll.registry()).is_ok()
        });
        if let Some(p) = publisher.as_mut() {
            p.on_timer(Instant::now());
        }
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}
