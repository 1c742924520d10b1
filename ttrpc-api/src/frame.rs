//! ttrpc framing: a 10-byte big-endian header {length u32, stream id u32, type u8, flags u8}
//! followed by `length` body bytes, plus an incremental decoder for non-blocking reads.

use crate::error::{Error, Result};

/// Size of the fixed frame header.
pub const HEADER_LEN: usize = 10;
/// Largest body accepted or sent (4 MiB, as in Go's `messageLengthMax`).
pub const MAX_DATA: usize = 4 << 20;

/// Data-frame flag: the sender closed its side of the stream (ttrpc 1.2 streaming).
pub const FLAG_REMOTE_CLOSED: u8 = 0x1;
/// Data-frame flag: the sender keeps its side open (ttrpc 1.2 streaming).
pub const FLAG_REMOTE_OPEN: u8 = 0x2;
/// Data-frame flag: the frame carries no data (ttrpc 1.2 streaming).
pub const FLAG_NO_DATA: u8 = 0x4;

/// The frame type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    /// 1: a `ttrpc.Request` envelope from a client.
    Request,
    /// 2: a `ttrpc.Response` envelope from a server.
    Response,
    /// 3: streaming data (ttrpc 1.2+); unused by unary calls.
    Data,
    /// Anything else; receivers ignore such frames for forward compatibility.
    Unknown(u8),
}

impl From<u8> for FrameType {
    fn from(v: u8) -> Self {
        match v {
            1 => FrameType::Request,
            2 => FrameType::Response,
            3 => FrameType::Data,
            other => FrameType::Unknown(other),
        }
    }
}

impl From<FrameType> for u8 {
    fn from(t: FrameType) -> u8 {
        match t {
            FrameType::Request => 1,
            FrameType::Response => 2,
            FrameType::Data => 3,
            FrameType::Unknown(v) => v,
        }
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Body length in bytes, header excluded.
    pub length: u32,
    /// Stream id: odd for client-initiated streams, reused by the response.
    pub stream_id: u32,
    pub frame_type: FrameType,
    pub flags: u8,
}

impl Header {
    /// Serialises the header in network byte order.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.length.to_be_bytes());
        b[4..8].copy_from_slice(&self.stream_id.to_be_bytes());
        b[8] = self.frame_type.into();
        b[9] = self.flags;
        b
    }

    /// Parses the first [`HEADER_LEN`] bytes of `buf`.
    pub fn decode(buf: &[u8]) -> Result<Header> {
        let Some(b) = buf.get(..HEADER_LEN) else {
            return Err(Error::ShortHeader { got: buf.len() });
        };
        Ok(Header {
            length: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            stream_id: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            frame_type: FrameType::from(b[8]),
            flags: b[9],
        })
    }
}

/// Appends one complete frame (header + body) to `out`.
pub fn append_frame(
    out: &mut Vec<u8>,
    stream_id: u32,
    frame_type: FrameType,
    flags: u8,
    body: &[u8],
) -> Result<()> {
    if body.len() > MAX_DATA {
        return Err(Error::FrameTooLarge {
            length: body.len(),
            max: MAX_DATA,
        });
    }
    let header = Header {
        // Cannot truncate: MAX_DATA fits in u32.
        length: body.len() as u32,
        stream_id,
        frame_type,
        flags,
    };
    out.reserve(HEADER_LEN + body.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(body);
    Ok(())
}

/// Encodes one complete frame into a new buffer.
pub fn encode_frame(
    stream_id: u32,
    frame_type: FrameType,
    flags: u8,
    body: &[u8],
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    append_frame(&mut out, stream_id, frame_type, flags, body)?;
    Ok(out)
}

/// A complete frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub header: Header,
    pub body: Vec<u8>,
}

/// What the decoder produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A frame within the size limit.
    Frame(Frame),
    /// A frame whose announced body exceeded [`MAX_DATA`]; its `length` body bytes were
    /// skipped (the event is emitted once the last of them has been consumed).
    Oversized(Header),
}

#[derive(Debug)]
enum State {
    Header { buf: [u8; HEADER_LEN], have: usize },
    Body { header: Header, body: Vec<u8> },
    Discard { header: Header, remaining: usize },
}

/// Incremental frame decoder: feed it whatever a non-blocking read returned.
#[derive(Debug)]
pub struct FrameDecoder {
    state: State,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    pub fn new() -> Self {
        FrameDecoder {
            state: State::Header {
                buf: [0; HEADER_LEN],
                have: 0,
            },
        }
    }

    /// True when no partial frame is buffered (an EOF here is clean).
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Header { have: 0, .. })
    }

    /// Consumes all of `input`, appending every completed frame to `out`.
    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<Decoded>) {
        while !input.is_empty() {
            match &mut self.state {
                State::Header { buf, have } => {
                    let take = (HEADER_LEN - *have).min(input.len());
                    buf[*have..*have + take].copy_from_slice(&input[..take]);
                    *have += take;
                    input = &input[take..];
                    if *have == HEADER_LEN {
                        let header = Header {
                            length: u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]),
                            stream_id: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
                            frame_type: FrameType::from(buf[8]),
                            flags: buf[9],
                        };
                        self.begin_body(header, out);
                    }
                }
                State::Body { header, body } => {
                    let need = header.length as usize - body.len();
                    let take = need.min(input.len());
                    body.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if body.len() == header.length as usize {
                        let frame = Frame {
                            header: *header,
                            body: std::mem::take(body),
                        };
                        out.push(Decoded::Frame(frame));
                        self.reset();
                    }
                }
                State::Discard { header, remaining } => {
                    let take = (*remaining).min(input.len());
                    *remaining -= take;
                    input = &input[take..];
                    if *remaining == 0 {
                        out.push(Decoded::Oversized(*header));
                        self.reset();
                    }
                }
            }
        }
    }

    fn begin_body(&mut self, header: Header, out: &mut Vec<Decoded>) {
        let length = header.length as usize;
        if length > MAX_DATA {
            self.state = State::Discard {
                header,
                remaining: length,
            };
        } else if length == 0 {
            out.push(Decoded::Frame(Frame {
                header,
                body: Vec::new(),
            }));
            self.reset();
        } else {
            self.state = State::Body {
                header,
                body: Vec::with_capacity(length),
            };
        }
    }

    fn reset(&mut self) {
        self.state = State::Header {
            buf: [0; HEADER_LEN],
            have: 0,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = Header {
            length: 0x0102_0304,
            stream_id: 0x0a0b_0c0d,
            frame_type: FrameType::Data,
            flags: FLAG_REMOTE_CLOSED | FLAG_NO_DATA,
        };
        let bytes = h.encode();
        assert_eq!(bytes, [1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 3, 5]);
        assert_eq!(Header::decode(&bytes).unwrap(), h);
    }

    #[test]
    fn short_header_is_an_error() {
        let err = Header::decode(&[0; 9]).unwrap_err();
        assert!(matches!(err, Error::ShortHeader { got: 9 }), "{err}");
    }

    #[test]
    fn unknown_type_survives_round_trip() {
        assert_eq!(FrameType::from(7), FrameType::Unknown(7));
        assert_eq!(u8::from(FrameType::Unknown(7)), 7);
        assert_eq!(u8::from(FrameType::Response), 2);
    }

    #[test]
    fn protocol_doc_connect_request_header() {
        // containerd-protocol.md B2a: Connect request for proto-u1 on stream 1.
        let mut body = vec![0x0a, 0x17];
        body.extend_from_slice(b"containerd.task.v2.Task");
        body.extend_from_slice(&[0x12, 0x07]);
        body.extend_from_slice(b"Connect");
        body.extend_from_slice(&[0x1a, 0x0a, 0x0a, 0x08]);
        body.extend_from_slice(b"proto-u1");
        let frame = encode_frame(1, FrameType::Request, 0, &body).unwrap();
        assert_eq!(&frame[..HEADER_LEN], &[0, 0, 0, 0x2e, 0, 0, 0, 1, 1, 0]);
        assert_eq!(frame.len(), HEADER_LEN + 0x2e);
    }

    #[test]
    fn oversized_body_is_refused_on_encode() {
        let body = vec![0u8; MAX_DATA + 1];
        let err = encode_frame(1, FrameType::Response, 0, &body).unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { length, .. } if length == MAX_DATA + 1));
        assert!(encode_frame(1, FrameType::Response, 0, &body[..MAX_DATA]).is_ok());
    }

    #[test]
    fn decoder_handles_byte_at_a_time_input() {
        let mut wire = encode_frame(1, FrameType::Request, 0, b"hello").unwrap();
        wire.extend(encode_frame(3, FrameType::Request, 0, b"").unwrap());
        wire.extend(encode_frame(5, FrameType::Unknown(9), 7, b"xyz").unwrap());
        let mut dec = FrameDecoder::new();
        let mut out = Vec::new();
        for b in &wire {
            dec.push(std::slice::from_ref(b), &mut out);
        }
        assert!(dec.at_boundary());
        let ids: Vec<_> = out
            .iter()
            .map(|d| match d {
                Decoded::Frame(f) => (f.header.stream_id, f.body.clone()),
                Decoded::Oversized(h) => panic!("unexpected oversized {h:?}"),
            })
            .collect();
        assert_eq!(
            ids,
            vec![(1, b"hello".to_vec()), (3, vec![]), (5, b"xyz".to_vec())]
        );
    }

    #[test]
    fn decoder_skips_exactly_the_oversized_body() {
        let big = (MAX_DATA + 3) as u32;
        let header = Header {
            length: big,
            stream_id: 7,
            frame_type: FrameType::Request,
            flags: 0,
        };
        let mut dec = FrameDecoder::new();
        let mut out = Vec::new();
        dec.push(&header.encode(), &mut out);
        let chunk = vec![0xffu8; 64 * 1024];
        let mut left = big as usize;
        while left > 0 {
            let n = left.min(chunk.len());
            dec.push(&chunk[..n], &mut out);
            left -= n;
            if left > 0 {
                assert!(out.is_empty(), "reported before the body was skipped");
            }
        }
        // The next frame starts right after the skipped body.
        dec.push(
            &encode_frame(9, FrameType::Request, 0, b"ok").unwrap(),
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], Decoded::Oversized(header));
        match &out[1] {
            Decoded::Frame(f) => {
                assert_eq!(f.header.stream_id, 9);
                assert_eq!(f.body, b"ok");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn decoder_reports_partial_frames() {
        let wire = encode_frame(1, FrameType::Request, 0, b"hello").unwrap();
        let mut dec = FrameDecoder::new();
        let mut out = Vec::new();
        dec.push(&wire[..12], &mut out);
        assert!(out.is_empty());
        assert!(!dec.at_boundary());
        dec.push(&wire[12..], &mut out);
        assert_eq!(out.len(), 1);
        assert!(dec.at_boundary());
    }
}
