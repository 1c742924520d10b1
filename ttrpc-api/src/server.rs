//! The server side of one ttrpc connection as a non-blocking state machine for a mio loop.
//!
//! The loop owns the socket's registration; this type reads requests, queues responses (which
//! may be given later and in any order) and writes them when the socket allows.

use std::collections::HashSet;
use std::io::{self, Read, Write};

use mio::net::UnixStream;
use mio::{Interest, Registry, Token};

use crate::envelope::{Request, Response};
use crate::error::{Error, Result};
use crate::frame::{append_frame, Decoded, Frame, FrameDecoder, FrameType, Header, MAX_DATA};
use crate::status::{Code, Status};

/// Size of one `read(2)` from the socket.
const READ_CHUNK: usize = 64 * 1024;

/// One decoded request, handed to the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// The stream to answer on with [`ServerConnection::respond`].
    pub stream_id: u32,
    pub service: String,
    pub method: String,
    /// The encoded request message.
    pub payload: Vec<u8>,
    /// Client deadline in nanoseconds, 0 for none (containerd sets it for State and Shutdown).
    pub timeout_nano: i64,
    pub metadata: Vec<(String, String)>,
}

/// Server state for one accepted connection.
#[derive(Debug)]
pub struct ServerConnection {
    stream: UnixStream,
    decoder: FrameDecoder,
    /// Encoded frames not yet written; `out[out_pos..]` is pending.
    out: Vec<u8>,
    out_pos: usize,
    /// Requests handed to the service and not yet answered.
    awaiting: HashSet<u32>,
    last_request_id: u32,
    closed: bool,
    registration: Option<(Token, Interest)>,
}

impl ServerConnection {
    /// Wraps an accepted, non-blocking stream (see [`crate::listener::accept_same_user`]).
    pub fn new(stream: UnixStream) -> ServerConnection {
        ServerConnection {
            stream,
            decoder: FrameDecoder::new(),
            out: Vec::new(),
            out_pos: 0,
            awaiting: HashSet::new(),
            last_request_id: 0,
            closed: false,
            registration: None,
        }
    }

    /// The underlying socket (e.g. for peer credentials).
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// Registers the socket with `token`: READABLE, plus WRITABLE while output is pending.
    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let interest = self.interest();
        registry.register(&mut self.stream, token, interest)?;
        self.registration = Some((token, interest));
        Ok(())
    }

    /// Re-registers if WRITABLE interest must be added or dropped. Call after `on_readable`,
    /// `on_writable` and `respond`; it makes no syscall when nothing changed.
    pub fn sync_interest(&mut self, registry: &Registry) -> io::Result<()> {
        let wanted = self.interest();
        match self.registration {
            Some((token, current)) if current != wanted => {
                registry.reregister(&mut self.stream, token, wanted)?;
                self.registration = Some((token, wanted));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Removes the socket from the poll set (before dropping a closed connection).
    pub fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        if self.registration.take().is_some() {
            registry.deregister(&mut self.stream)?;
        }
        Ok(())
    }

    fn interest(&self) -> Interest {
        if self.wants_write() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        }
    }

    /// True while encoded responses wait for the socket to become writable.
    pub fn wants_write(&self) -> bool {
        !self.closed && self.out_pos < self.out.len()
    }

    /// True once the peer closed the connection or an I/O error ended it. The loop should then
    /// deregister and drop it; deferred answers for it will fail with [`Error::Closed`].
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Number of requests handed out and not yet answered.
    pub fn awaiting_responses(&self) -> usize {
        self.awaiting.len()
    }

    /// Reads everything available (mio is edge-triggered) and returns the decoded requests.
    /// Protocol errors are answered here without involving the service. EOF and ECONNRESET
    /// close the connection cleanly (`Ok`, then [`Self::is_closed`] is true); other read errors
    /// close it and are returned.
    pub fn on_readable(&mut self) -> Result<Vec<Incoming>> {
        let mut incoming = Vec::new();
        if self.closed {
            return Ok(incoming);
        }
        let mut buf = [0u8; READ_CHUNK];
        let mut decoded = Vec::new();
        let mut failure = None;
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    if !self.decoder.at_boundary() {
                        tracing::debug!("ttrpc peer closed the connection mid-frame");
                    }
                    self.peer_gone();
                    break;
                }
                Ok(n) => {
                    self.decoder.push(&buf[..n], &mut decoded);
                    for d in decoded.drain(..) {
                        self.handle_decoded(d, &mut incoming);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    self.peer_gone();
                    break;
                }
                Err(e) => {
                    self.closed = true;
                    failure = Some(Error::io("read ttrpc connection", e));
                    break;
                }
            }
        }
        if let Some(err) = failure {
            return Err(err);
        }
        // Answers to protocol errors were queued above; a failed write closes the connection,
        // which the caller sees through `is_closed`.
        let _ = self.flush();
        Ok(incoming)
    }

    /// The peer went away: push out what we can (it may have only shut down its write side),
    /// then stop. Go's server also ends the connection on EOF or ECONNRESET.
    fn peer_gone(&mut self) {
        let _ = self.flush();
        self.closed = true;
    }

    fn handle_decoded(&mut self, decoded: Decoded, incoming: &mut Vec<Incoming>) {
        match decoded {
            Decoded::Oversized(h) => {
                tracing::warn!(
                    stream_id = h.stream_id,
                    length = h.length,
                    "oversized ttrpc frame discarded"
                );
                let msg = format!(
                    "message length {} exceed maximum message size of {}",
                    h.length, MAX_DATA
                );
                self.queue_status(h.stream_id, Status::new(Code::ResourceExhausted, msg));
            }
            Decoded::Frame(frame) => self.handle_frame(frame, incoming),
        }
    }

    fn handle_frame(&mut self, frame: Frame, incoming: &mut Vec<Incoming>) {
        let Frame { header, body } = frame;
        let Header {
            stream_id,
            frame_type,
            ..
        } = header;
        if stream_id % 2 != 1 {
            // Same check and text as Go's server: clients own the odd ids.
            self.queue_status(
                stream_id,
                Status::new(
                    Code::InvalidArgument,
                    "StreamID must be odd for client initiated streams",
                ),
            );
            return;
        }
        match frame_type {
            FrameType::Request => {
                if stream_id <= self.last_request_id {
                    self.queue_status(
                        stream_id,
                        Status::new(
                            Code::InvalidArgument,
                            "StreamID cannot be re-used and must increment",
                        ),
                    );
                    return;
                }
                self.last_request_id = stream_id;
                match Request::decode(&body) {
                    Ok(req) => {
                        self.awaiting.insert(stream_id);
                        incoming.push(Incoming {
                            stream_id,
                            service: req.service,
                            method: req.method,
                            payload: req.payload,
                            timeout_nano: req.timeout_nano,
                            metadata: req.metadata,
                        });
                    }
                    Err(e) => {
                        let source = match &e {
                            Error::Decode { source, .. } => source.to_string(),
                            other => other.to_string(),
                        };
                        self.queue_status(
                            stream_id,
                            Status::new(
                                Code::InvalidArgument,
                                format!("unmarshal request error: {source}"),
                            ),
                        );
                    }
                }
            }
            FrameType::Data => {
                // We serve no streaming methods, so no stream can be receiving data.
                self.queue_status(
                    stream_id,
                    Status::new(Code::InvalidArgument, "StreamID is no longer active"),
                );
            }
            FrameType::Response | FrameType::Unknown(_) => {
                // Ignored for forward compatibility, as the Go server does.
                tracing::debug!(stream_id, ?frame_type, "ignoring ttrpc frame");
            }
        }
    }

    fn queue_status(&mut self, stream_id: u32, status: Status) {
        let body = Response::from_result(Err(status)).encode();
        // A status-only response is far below MAX_DATA.
        let _ = append_frame(&mut self.out, stream_id, FrameType::Response, 0, &body);
    }

    /// Queues the answer for `stream_id` and tries to write it at once. `Ok(payload)` is the
    /// encoded response message (empty for `google.protobuf.Empty`); `Err(status)` is sent as
    /// the Response status. A payload above 4 MiB is replaced by RESOURCE_EXHAUSTED.
    ///
    /// Fails with [`Error::UnknownStream`] if the stream has no request waiting (answered twice
    /// or never received), and [`Error::Closed`] if the connection is gone.
    pub fn respond(
        &mut self,
        stream_id: u32,
        result: std::result::Result<Vec<u8>, Status>,
    ) -> Result<()> {
        if self.closed {
            self.awaiting.remove(&stream_id);
            return Err(Error::Closed);
        }
        if !self.awaiting.remove(&stream_id) {
            return Err(Error::UnknownStream(stream_id));
        }
        let mut body = Response::from_result(result).encode();
        if body.len() > MAX_DATA {
            let msg = format!(
                "response of {} bytes exceeds maximum message size of {}",
                body.len(),
                MAX_DATA
            );
            tracing::warn!(stream_id, "{msg}");
            body = Response::from_result(Err(Status::resource_exhausted(msg))).encode();
        }
        append_frame(&mut self.out, stream_id, FrameType::Response, 0, &body)?;
        self.flush()
    }

    /// Writes pending responses until done or the socket is full.
    pub fn on_writable(&mut self) -> Result<()> {
        self.flush()
    }

    fn flush(&mut self) -> Result<()> {
        while self.out_pos < self.out.len() {
            if self.closed {
                return Err(Error::Closed);
            }
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => {
                    self.closed = true;
                    return Err(Error::Closed);
                }
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    self.closed = true;
                    return Err(Error::Closed);
                }
                Err(e) => {
                    self.closed = true;
                    return Err(Error::io("write ttrpc connection", e));
                }
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > READ_CHUNK && self.out_pos * 2 > self.out.len() {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        Ok(())
    }
}
