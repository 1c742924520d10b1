//! Client side: address parsing and a small blocking client for one-shot calls (tests, and
//! the shim's `start`/`delete` CLI modes). The non-blocking event publisher lives in
//! [`crate::publisher`].

use std::io::{self, Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::time::{Duration, Instant};

use protobuf::Message;

use crate::envelope::{Request, Response};
use crate::error::{Error, Result};
use crate::frame::{append_frame, Decoded, FrameDecoder, FrameType};

/// Parses a ttrpc address: `unix:///path`, a plain `/path` (as in `TTRPC_ADDRESS`), or an
/// abstract name written `unix://@name` / `@name`.
pub fn socket_addr(address: &str) -> Result<SocketAddr> {
    let rest = address.strip_prefix("unix://").unwrap_or(address);
    let addr = if let Some(name) = rest.strip_prefix('@') {
        SocketAddr::from_abstract_name(name.as_bytes())
    } else if rest.is_empty() {
        return Err(Error::Address(address.to_string()));
    } else {
        SocketAddr::from_pathname(rest)
    };
    addr.map_err(|_| Error::Address(address.to_string()))
}

/// Converts a timeout into `Request.timeout_nano` (0 = none).
pub(crate) fn timeout_nanos(timeout: Option<Duration>) -> i64 {
    timeout.map_or(0, |t| i64::try_from(t.as_nanos()).unwrap_or(i64::MAX))
}

/// A blocking ttrpc client over one connection; one call at a time.
#[derive(Debug)]
pub struct BlockingClient {
    stream: UnixStream,
    decoder: FrameDecoder,
    next_stream_id: u32,
    timeout: Option<Duration>,
}

impl BlockingClient {
    /// Connects to `address` (see [`socket_addr`]).
    pub fn connect(address: &str) -> Result<BlockingClient> {
        let addr = socket_addr(address)?;
        let stream = UnixStream::connect_addr(&addr)
            .map_err(|e| Error::io(format!("connect to {address}"), e))?;
        Ok(BlockingClient {
            stream,
            decoder: FrameDecoder::new(),
            next_stream_id: 1,
            timeout: None,
        })
    }

    /// Per-call deadline; also sent to the server as `timeout_nano`. `None` waits forever.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Sends one request and waits for its response payload. A non-OK status from the server
    /// is returned as [`Error::Status`].
    pub fn call_raw(
        &mut self,
        service: &str,
        method: &str,
        payload: Vec<u8>,
        metadata: &[(String, String)],
    ) -> Result<Vec<u8>> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let stream_id = self.next_stream_id;
        self.next_stream_id = self.next_stream_id.wrapping_add(2);
        let req = Request {
            service: service.to_string(),
            method: method.to_string(),
            payload,
            timeout_nano: timeout_nanos(self.timeout),
            metadata: metadata.to_vec(),
        };
        let mut wire = Vec::new();
        append_frame(&mut wire, stream_id, FrameType::Request, 0, &req.encode())?;
        self.stream
            .set_write_timeout(self.timeout)
            .map_err(|e| Error::io("set write timeout", e))?;
        self.stream.write_all(&wire).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                Error::Timeout(self.timeout.unwrap_or_default())
            }
            _ => Error::io(format!("send {service}/{method}"), e),
        })?;
        self.wait_response(stream_id, deadline)
    }

    fn wait_response(&mut self, stream_id: u32, deadline: Option<Instant>) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut decoded = Vec::new();
        loop {
            let remaining = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::Timeout(self.timeout.unwrap_or_default()));
                    }
                    Some(left)
                }
                None => None,
            };
            self.stream
                .set_read_timeout(remaining)
                .map_err(|e| Error::io("set read timeout", e))?;
            let n = match self.stream.read(&mut buf) {
                Ok(0) => return Err(Error::Closed),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(Error::Timeout(self.timeout.unwrap_or_default()))
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Err(Error::Closed),
                Err(e) => return Err(Error::io("read ttrpc response", e)),
            };
            self.decoder.push(&buf[..n], &mut decoded);
            for d in decoded.drain(..) {
                match d {
                    Decoded::Frame(f)
                        if f.header.stream_id == stream_id
                            && f.header.frame_type == FrameType::Response =>
                    {
                        return Response::decode(&f.body)?
                            .into_result()
                            .map_err(Error::Status);
                    }
                    Decoded::Oversized(h) if h.stream_id == stream_id => {
                        return Err(Error::FrameTooLarge {
                            length: h.length as usize,
                            max: crate::frame::MAX_DATA,
                        })
                    }
                    other => tracing::debug!(?other, "ignoring unexpected ttrpc frame"),
                }
            }
        }
    }

    /// Typed call: encodes `req`, decodes the reply as `Resp`.
    pub fn call<Req: Message, Resp: Message>(
        &mut self,
        service: &str,
        method: &str,
        req: &Req,
    ) -> Result<Resp> {
        let payload = req.write_to_bytes().map_err(|source| Error::Encode {
            what: Req::NAME,
            source,
        })?;
        let reply = self.call_raw(service, method, payload, &[])?;
        Resp::parse_from_bytes(&reply).map_err(|source| Error::Decode {
            what: Resp::NAME,
            source,
        })
    }
}

/// One-shot blocking call on a fresh connection.
pub fn call(
    address: &str,
    service: &str,
    method: &str,
    payload: Vec<u8>,
    timeout: Option<Duration>,
) -> Result<Vec<u8>> {
    let mut client = BlockingClient::connect(address)?;
    client.set_timeout(timeout);
    client.call_raw(service, method, payload, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = socket_addr("unix:///run/containerd/s/abc").unwrap();
        assert_eq!(
            a.as_pathname(),
            Some(std::path::Path::new("/run/containerd/s/abc"))
        );
        let b = socket_addr("/run/containerd/containerd.sock.ttrpc").unwrap();
        assert_eq!(
            b.as_pathname(),
            Some(std::path::Path::new(
                "/run/containerd/containerd.sock.ttrpc"
            ))
        );
        let c = socket_addr("unix://@shim-x").unwrap();
        assert_eq!(c.as_abstract_name(), Some(&b"shim-x"[..]));
        assert!(matches!(socket_addr("unix://"), Err(Error::Address(_))));
        let long = format!("/{}", "x".repeat(200));
        assert!(matches!(socket_addr(&long), Err(Error::Address(_))));
    }

    #[test]
    fn timeouts_in_nanos() {
        assert_eq!(timeout_nanos(None), 0);
        assert_eq!(timeout_nanos(Some(Duration::from_secs(5))), 5_000_000_000);
        assert_eq!(timeout_nanos(Some(Duration::MAX)), i64::MAX);
    }

    #[test]
    fn connect_to_missing_socket_fails() {
        let err = BlockingClient::connect("/nonexistent/berth/ttrpc.sock").unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }
}
