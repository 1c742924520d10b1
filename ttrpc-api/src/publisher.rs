//! Non-blocking event publisher: `containerd.services.events.ttrpc.v1.Events/Forward` on the
//! daemon's `TTRPC_ADDRESS`, driven by the shim's mio loop (no threads, no timers of its own).
//!
//! Delivery is strictly in order with one call in flight: the Go daemon runs each ttrpc request
//! in its own goroutine, so pipelined Forwards could be reordered there. A failed connection
//! keeps the head event and retries it with exponential backoff for as long as it takes (the
//! queue bound limits memory), so events raised while containerd restarts arrive after it is
//! back. An event the daemon *answers* with an error is retried `max_rejections` times and then
//! dropped, like the Go publisher's `maxRequeue`.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::SocketAddr;
use std::time::{Duration, Instant};

use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use mio::net::UnixStream;
use mio::{Interest, Registry, Token};
use protobuf::well_known_types::timestamp::Timestamp;
use protobuf::{Message, MessageField};

use crate::client::{socket_addr, timeout_nanos};
use crate::envelope::{Request, Response, NAMESPACE_METADATA_KEY};
use crate::error::{Error, Result};
use crate::frame::{append_frame, Decoded, FrameDecoder, FrameType};
use crate::typeurl::{pack, Any, Event};

/// The daemon's event service for shims.
pub const EVENTS_SERVICE: &str = "containerd.services.events.ttrpc.v1.Events";
/// Its only method.
pub const FORWARD_METHOD: &str = "Forward";

/// Publisher tuning; [`Default`] gives the values described on each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherConfig {
    /// Events held while undelivered (1024). `publish` fails with [`Error::QueueFull`] beyond.
    pub queue_capacity: usize,
    /// Deadline for one Forward call, also sent as `timeout_nano` (5 s, as runc-shim-rs).
    pub call_timeout: Duration,
    /// First retry delay after a failure (100 ms), doubled per failure up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Longest retry delay (5 s).
    pub backoff_max: Duration,
    /// Error answers tolerated per event before it is dropped (5).
    pub max_rejections: u32,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            queue_capacity: 1024,
            call_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            max_rejections: 5,
        }
    }
}

#[derive(Debug)]
struct Queued {
    topic: String,
    /// Encoded `ForwardRequest`.
    payload: Vec<u8>,
    rejections: u32,
}

#[derive(Debug)]
struct Connection {
    stream: UnixStream,
    decoder: FrameDecoder,
    out: Vec<u8>,
    out_pos: usize,
    next_stream_id: u32,
    interest: Interest,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    stream_id: u32,
    deadline: Instant,
}

/// Forwards events to containerd from a single-threaded mio loop.
#[derive(Debug)]
pub struct Publisher {
    address: String,
    addr: SocketAddr,
    namespace: String,
    config: PublisherConfig,
    registry: Registry,
    token: Token,
    queue: VecDeque<Queued>,
    conn: Option<Connection>,
    in_flight: Option<InFlight>,
    retry_at: Option<Instant>,
    backoff: Duration,
    delivered: u64,
    dropped: u64,
}

impl Publisher {
    /// A publisher for `address` (`TTRPC_ADDRESS`, a socket path) that stamps events with
    /// `namespace`. It connects lazily and registers its socket in `registry` under `token`.
    pub fn new(address: &str, namespace: &str, registry: &Registry, token: Token) -> Result<Self> {
        Self::with_config(
            address,
            namespace,
            registry,
            token,
            PublisherConfig::default(),
        )
    }

    pub fn with_config(
        address: &str,
        namespace: &str,
        registry: &Registry,
        token: Token,
        config: PublisherConfig,
    ) -> Result<Self> {
        let addr = socket_addr(address)?;
        let registry = registry
            .try_clone()
            .map_err(|e| Error::io("clone mio registry", e))?;
        Ok(Publisher {
            address: address.to_string(),
            addr,
            namespace: namespace.to_string(),
            backoff: config.backoff_initial,
            config,
            registry,
            token,
            queue: VecDeque::new(),
            conn: None,
            in_flight: None,
            retry_at: None,
            delivered: 0,
            dropped: 0,
        })
    }

    /// Queues `event` under `topic` (stamped with the current time) and starts sending it if
    /// nothing is in flight. Fails only when the queue is full or the event cannot be encoded.
    pub fn publish(&mut self, topic: &str, event: Any) -> Result<()> {
        if self.queue.len() >= self.config.queue_capacity {
            tracing::error!(topic, "event queue full, dropping event");
            self.dropped += 1;
            return Err(Error::QueueFull {
                capacity: self.config.queue_capacity,
                topic: topic.to_string(),
            });
        }
        let mut envelope = Envelope::new();
        envelope.timestamp = MessageField::some(Timestamp::now());
        envelope.namespace = self.namespace.clone();
        envelope.topic = topic.to_string();
        envelope.event = MessageField::some(event);
        let mut req = ForwardRequest::new();
        req.envelope = MessageField::some(envelope);
        let payload = req.write_to_bytes().map_err(|source| Error::Encode {
            what: "ForwardRequest",
            source,
        })?;
        self.queue.push_back(Queued {
            topic: topic.to_string(),
            payload,
            rejections: 0,
        });
        self.pump(Instant::now());
        Ok(())
    }

    /// Packs and queues a task event under its own topic (e.g. `TaskExit` on `/tasks/exit`).
    pub fn publish_event<E: Event>(&mut self, event: &E) -> Result<()> {
        self.publish(E::TOPIC, pack(event)?)
    }

    /// Feeds a mio event for this publisher's token.
    pub fn handle_event(&mut self, event: &mio::event::Event) {
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.on_readable();
        }
        if event.is_writable() {
            self.on_writable();
        }
    }

    /// Reads responses (and notices a daemon that went away).
    pub fn on_readable(&mut self) {
        let now = Instant::now();
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mut buf = [0u8; 4096];
        let mut decoded = Vec::new();
        let lost = loop {
            match conn.stream.read(&mut buf) {
                Ok(0) => break Some("daemon closed the connection".to_string()),
                Ok(n) => conn.decoder.push(&buf[..n], &mut decoded),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Some(format!("read: {e}")),
            }
        };
        for d in decoded {
            if let Decoded::Frame(f) = d {
                if f.header.frame_type == FrameType::Response {
                    self.on_response(f.header.stream_id, &f.body, now);
                }
            }
        }
        match lost {
            Some(reason) => self.connection_lost(&reason, now),
            None => self.pump(now),
        }
    }

    /// Writes the pending request.
    pub fn on_writable(&mut self) {
        self.flush(Instant::now());
    }

    /// Call when [`Self::next_deadline`] has passed: retries after backoff and abandons a
    /// call without an answer after `call_timeout`.
    pub fn on_timer(&mut self, now: Instant) {
        if self.in_flight.is_some_and(|f| f.deadline <= now) {
            self.connection_lost("Forward call timed out", now);
        }
        self.pump(now);
    }

    /// When the loop must call [`Self::on_timer`] at the latest (use as the poll timeout).
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.in_flight.map(|f| f.deadline), self.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Events not yet acknowledged by the daemon (including the one in flight).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// True when every published event has been delivered or dropped.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// Events acknowledged by the daemon so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Events dropped (queue full, or rejected `max_rejections` times).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// True while a connection to the daemon is open.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    fn on_response(&mut self, stream_id: u32, body: &[u8], now: Instant) {
        if self.in_flight.map(|f| f.stream_id) != Some(stream_id) {
            tracing::debug!(stream_id, "ignoring response to an abandoned Forward call");
            return;
        }
        self.in_flight = None;
        let outcome = Response::decode(body).and_then(|r| r.into_result().map_err(Error::Status));
        match outcome {
            Ok(_) => {
                self.queue.pop_front();
                self.delivered += 1;
                self.backoff = self.config.backoff_initial;
            }
            Err(err) => {
                let Some(head) = self.queue.front_mut() else {
                    return;
                };
                head.rejections += 1;
                tracing::warn!(topic = %head.topic, attempt = head.rejections, "forward event: {err}");
                if head.rejections >= self.config.max_rejections {
                    tracing::error!(topic = %head.topic, "evicting event after {} rejections", head.rejections);
                    self.queue.pop_front();
                    self.dropped += 1;
                } else {
                    self.schedule_retry(now);
                }
            }
        }
    }

    /// Sends the head of the queue if nothing is in flight and no retry is pending.
    fn pump(&mut self, now: Instant) {
        if self.in_flight.is_some() || self.queue.is_empty() {
            return;
        }
        if let Some(at) = self.retry_at {
            if at > now {
                return;
            }
            self.retry_at = None;
        }
        if self.conn.is_none() {
            match self.connect() {
                Ok(conn) => self.conn = Some(conn),
                Err(e) => {
                    tracing::debug!(address = %self.address, "events connect: {e}");
                    self.schedule_retry(now);
                    return;
                }
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let Some(head) = self.queue.front() else {
            return;
        };
        let stream_id = conn.next_stream_id;
        conn.next_stream_id = match conn.next_stream_id.checked_add(2) {
            Some(next) => next,
            None => {
                // Ids exhausted on this connection; start a fresh one.
                self.connection_lost("stream ids exhausted", now);
                self.retry_at = None;
                return self.pump(now);
            }
        };
        let req = Request {
            service: EVENTS_SERVICE.to_string(),
            method: FORWARD_METHOD.to_string(),
            payload: head.payload.clone(),
            timeout_nano: timeout_nanos(Some(self.config.call_timeout)),
            metadata: vec![(NAMESPACE_METADATA_KEY.to_string(), self.namespace.clone())],
        };
        if let Err(e) = append_frame(
            &mut conn.out,
            stream_id,
            FrameType::Request,
            0,
            &req.encode(),
        ) {
            tracing::error!(topic = %head.topic, "dropping unsendable event: {e}");
            self.queue.pop_front();
            self.dropped += 1;
            return self.pump(now);
        }
        self.in_flight = Some(InFlight {
            stream_id,
            deadline: now + self.config.call_timeout,
        });
        self.flush(now);
    }

    fn connect(&mut self) -> Result<Connection> {
        let mut stream = UnixStream::connect_addr(&self.addr)
            .map_err(|e| Error::io(format!("connect to {}", self.address), e))?;
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.registry
            .register(&mut stream, self.token, interest)
            .map_err(|e| Error::io("register events socket", e))?;
        Ok(Connection {
            stream,
            decoder: FrameDecoder::new(),
            out: Vec::new(),
            out_pos: 0,
            next_stream_id: 1,
            interest,
        })
    }

    fn flush(&mut self, now: Instant) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mut failure = None;
        while conn.out_pos < conn.out.len() {
            match conn.stream.write(&conn.out[conn.out_pos..]) {
                Ok(0) => {
                    failure = Some("write returned 0".to_string());
                    break;
                }
                Ok(n) => conn.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failure = Some(format!("write: {e}"));
                    break;
                }
            }
        }
        if let Some(reason) = failure {
            return self.connection_lost(&reason, now);
        }
        if conn.out_pos == conn.out.len() {
            conn.out.clear();
            conn.out_pos = 0;
        }
        let wanted = if conn.out.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        if wanted != conn.interest {
            match self
                .registry
                .reregister(&mut conn.stream, self.token, wanted)
            {
                Ok(()) => conn.interest = wanted,
                Err(e) => self.connection_lost(&format!("reregister: {e}"), now),
            }
        }
    }

    /// Drops the connection; the head event (if any) is retried after backoff.
    fn connection_lost(&mut self, reason: &str, now: Instant) {
        if let Some(mut conn) = self.conn.take() {
            tracing::debug!(address = %self.address, "events connection lost: {reason}");
            let _ = self.registry.deregister(&mut conn.stream);
        }
        self.in_flight = None;
        if !self.queue.is_empty() {
            self.schedule_retry(now);
        }
    }

    fn schedule_retry(&mut self, now: Instant) {
        self.retry_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(self.config.backoff_max);
    }
}
