//! Shared test scaffolding: a mio loop serving ttrpc on a unix socket with our server module,
//! and raw-frame helpers for speaking the wire protocol by hand.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_ttrpc_api::frame::{encode_frame, FrameType, Header, HEADER_LEN};
use berth_ttrpc_api::{accept_same_user, Incoming, ServerConnection, Status};
use mio::net::UnixListener;
use mio::{Events, Interest, Poll, Token};

pub const LISTENER: Token = Token(0);

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "berth-ttrpc-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// What a handler returns for a request: an answer now, or `None` to answer later.
pub type Reply = Option<Result<Vec<u8>, Status>>;

/// A single-threaded ttrpc server loop, as the shim would run it.
pub struct TestServer {
    pub poll: Poll,
    events: Events,
    listener: UnixListener,
    pub conns: HashMap<Token, ServerConnection>,
    next_token: usize,
    pub accepted: usize,
    pub closed: usize,
    pub path: PathBuf,
}

impl TestServer {
    pub fn bind(path: &Path) -> TestServer {
        let poll = Poll::new().expect("poll");
        let mut listener = UnixListener::bind(path).expect("bind");
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .expect("register listener");
        TestServer {
            poll,
            events: Events::with_capacity(64),
            listener,
            conns: HashMap::new(),
            next_token: 1,
            accepted: 0,
            closed: 0,
            path: path.to_path_buf(),
        }
    }

    /// One poll iteration; every request goes to `handler(token, &incoming)`.
    pub fn turn(&mut self, handler: &mut dyn FnMut(Token, &Incoming) -> Reply, timeout: Duration) {
        self.poll
            .poll(&mut self.events, Some(timeout))
            .expect("poll");
        let ready: Vec<_> = self
            .events
            .iter()
            .map(|e| {
                (
                    e.token(),
                    e.is_readable() || e.is_read_closed() || e.is_error(),
                    e.is_writable(),
                )
            })
            .collect();
        for (token, readable, writable) in ready {
            if token == LISTENER {
                while let Some(stream) = accept_same_user(&self.listener).expect("accept") {
                    let t = Token(self.next_token);
                    self.next_token += 1;
                    let mut conn = ServerConnection::new(stream);
                    conn.register(self.poll.registry(), t)
                        .expect("register conn");
                    self.conns.insert(t, conn);
                    self.accepted += 1;
                }
                continue;
            }
            let Some(conn) = self.conns.get_mut(&token) else {
                continue;
            };
            if writable {
                let _ = conn.on_writable();
            }
            if readable {
                let incoming = conn.on_readable().expect("on_readable");
                for inc in &incoming {
                    if let Some(reply) = handler(token, inc) {
                        let conn = self.conns.get_mut(&token).expect("conn");
                        match conn.respond(inc.stream_id, reply) {
                            Ok(()) | Err(berth_ttrpc_api::Error::Closed) => {}
                            Err(e) => panic!("respond: {e}"),
                        }
                    }
                }
            }
            self.reap(token);
        }
    }

    fn reap(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if conn.is_closed() {
            conn.deregister(self.poll.registry()).expect("deregister");
            self.conns.remove(&token);
            self.closed += 1;
        } else {
            conn.sync_interest(self.poll.registry())
                .expect("sync interest");
        }
    }

    /// Answers a deferred call, as the shim does when e.g. a process exits.
    pub fn respond(
        &mut self,
        token: Token,
        stream_id: u32,
        reply: Result<Vec<u8>, Status>,
    ) -> berth_ttrpc_api::Result<()> {
        let conn = self
            .conns
            .get_mut(&token)
            .ok_or(berth_ttrpc_api::Error::Closed)?;
        let r = conn.respond(stream_id, reply);
        self.reap(token);
        r
    }

    /// Runs the loop until `done` holds, panicking after `limit`.
    pub fn run_until(
        &mut self,
        handler: &mut dyn FnMut(Token, &Incoming) -> Reply,
        limit: Duration,
        mut done: impl FnMut(&mut TestServer) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            assert!(Instant::now() < deadline, "test scenario timed out");
            self.turn(handler, Duration::from_millis(10));
        }
    }
}

/// Writes one frame on a blocking std socket.
pub fn send_frame(
    s: &mut std::os::unix::net::UnixStream,
    stream_id: u32,
    t: FrameType,
    body: &[u8],
) {
    let frame = encode_frame(stream_id, t, 0, body).expect("encode frame");
    s.write_all(&frame).expect("write frame");
}

/// Reads one frame on a blocking std socket (with a 10 s read timeout).
pub fn read_frame(s: &mut std::os::unix::net::UnixStream) -> (Header, Vec<u8>) {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut h = [0u8; HEADER_LEN];
    s.read_exact(&mut h).expect("read header");
    let header = Header::decode(&h).expect("header");
    let mut body = vec![0u8; header.length as usize];
    s.read_exact(&mut body).expect("read body");
    (header, body)
}

/// Reads one frame and returns it with the header bytes, for byte-exact checks.
pub fn read_frame_bytes(s: &mut std::os::unix::net::UnixStream) -> Vec<u8> {
    let (h, body) = read_frame(s);
    let mut all = h.encode().to_vec();
    all.extend(body);
    all
}
