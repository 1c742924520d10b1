//! The crate's one error type.
//!
//! Remote failures arrive as [`Error::Status`]; everything else is local (I/O, framing, codec).

use std::io;
use std::time::Duration;

use crate::status::Status;

/// Everything that can go wrong in the ttrpc wire layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A frame body larger than [`crate::frame::MAX_DATA`] was about to be sent.
    #[error("frame body of {length} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge { length: usize, max: usize },

    /// Fewer than 10 bytes were given to decode a frame header.
    #[error("frame header needs 10 bytes, got {got}")]
    ShortHeader { got: usize },

    /// A protobuf message could not be decoded.
    #[error("decode {what}: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: protobuf::Error,
    },

    /// A protobuf message could not be encoded.
    #[error("encode {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: protobuf::Error,
    },

    /// An I/O operation on a socket failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    /// The connection is closed (by the peer or after an error).
    #[error("connection closed")]
    Closed,

    /// `respond` was called for a stream id that has no request waiting for an answer.
    #[error("stream {0} has no request waiting for a response")]
    UnknownStream(u32),

    /// The remote side answered with a non-OK status.
    #[error("{0}")]
    Status(Status),

    /// A `google.protobuf.Any` did not hold the expected type.
    #[error("unexpected type url {got:?}, expected {expected}")]
    TypeUrl { got: String, expected: String },

    /// A socket address could not be understood.
    #[error("invalid ttrpc address {0:?}")]
    Address(String),

    /// A blocking call did not complete in time.
    #[error("no response within {0:?}")]
    Timeout(Duration),

    /// The event publisher's queue is full; the event was not queued.
    #[error("event queue full ({capacity} events), dropped {topic}")]
    QueueFull { capacity: usize, topic: String },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Local errors as the status a handler should answer with: the one place where this crate's
/// failures meet containerd's error classes (a remote status passes through unchanged).
impl From<Error> for Status {
    fn from(err: Error) -> Status {
        match err {
            Error::Status(status) => status,
            Error::Decode { .. } | Error::TypeUrl { .. } | Error::Address(_) => {
                Status::invalid_argument(err.to_string())
            }
            Error::FrameTooLarge { .. } | Error::QueueFull { .. } => {
                Status::resource_exhausted(err.to_string())
            }
            Error::Timeout(_) => Status::deadline_exceeded(err.to_string()),
            Error::Closed => Status::unavailable(err.to_string()),
            Error::ShortHeader { .. }
            | Error::Encode { .. }
            | Error::Io { .. }
            | Error::UnknownStream(_) => Status::internal(err.to_string()),
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Code;

    #[test]
    fn local_errors_map_to_containerd_classes() {
        let bad_url = Error::TypeUrl {
            got: "x".into(),
            expected: "y".into(),
        };
        let st = Status::from(bad_url);
        assert_eq!(st.code, Code::InvalidArgument);
        assert!(st.message.ends_with(": invalid argument"), "{}", st.message);
        assert_eq!(Status::from(Error::Closed).code, Code::Unavailable);
        let remote = Status::not_found("container c1");
        assert_eq!(Status::from(Error::Status(remote.clone())), remote);
        let timeout = Status::from(Error::Timeout(Duration::from_secs(1)));
        assert_eq!(timeout.code, Code::DeadlineExceeded);
    }
}
