//! gRPC status codes and `google.rpc.Status`, as carried in `ttrpc.Response.status`.
//!
//! containerd maps codes to its errdefs classes (errdefs/grpc.go `FromGRPC`) and strips a
//! trailing `": <class text>"` from the message, so the class constructors here append that
//! suffix the way Go's `fmt.Errorf("...: %w", errdefs.ErrNotFound)` does.

use std::fmt;

use protobuf::rt::WireType;
use protobuf::{CodedInputStream, CodedOutputStream};

use crate::error::{Error, Result};

/// gRPC status codes (google.rpc.Code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    /// Maps a wire value; values outside 0..=16 become [`Code::Unknown`], as in grpc-go.
    pub fn from_i32(v: i32) -> Code {
        match v {
            0 => Code::Ok,
            1 => Code::Cancelled,
            2 => Code::Unknown,
            3 => Code::InvalidArgument,
            4 => Code::DeadlineExceeded,
            5 => Code::NotFound,
            6 => Code::AlreadyExists,
            7 => Code::PermissionDenied,
            8 => Code::ResourceExhausted,
            9 => Code::FailedPrecondition,
            10 => Code::Aborted,
            11 => Code::OutOfRange,
            12 => Code::Unimplemented,
            13 => Code::Internal,
            14 => Code::Unavailable,
            15 => Code::DataLoss,
            16 => Code::Unauthenticated,
            _ => Code::Unknown,
        }
    }

    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// The name grpc-go prints for the code.
    pub fn name(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Cancelled => "Canceled",
            Code::Unknown => "Unknown",
            Code::InvalidArgument => "InvalidArgument",
            Code::DeadlineExceeded => "DeadlineExceeded",
            Code::NotFound => "NotFound",
            Code::AlreadyExists => "AlreadyExists",
            Code::PermissionDenied => "PermissionDenied",
            Code::ResourceExhausted => "ResourceExhausted",
            Code::FailedPrecondition => "FailedPrecondition",
            Code::Aborted => "Aborted",
            Code::OutOfRange => "OutOfRange",
            Code::Unimplemented => "Unimplemented",
            Code::Internal => "Internal",
            Code::Unavailable => "Unavailable",
            Code::DataLoss => "DataLoss",
            Code::Unauthenticated => "Unauthenticated",
        }
    }

    /// The containerd errdefs class text for codes that have one.
    pub fn errdefs_text(self) -> Option<&'static str> {
        match self {
            Code::InvalidArgument => Some("invalid argument"),
            Code::NotFound => Some("not found"),
            Code::AlreadyExists => Some("already exists"),
            Code::FailedPrecondition => Some("failed precondition"),
            Code::Unavailable => Some("unavailable"),
            Code::Unimplemented => Some("not implemented"),
            _ => None,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A gRPC status: a code and a developer-facing message (`details` are not used by containerd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub message: String,
}

impl Status {
    /// A status with `message` used verbatim.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    /// A status in the errdefs style: `"<message>: <class text>"`, e.g.
    /// `Status::not_found("container c1")` gives "container c1: not found". An empty message
    /// gives just the class text; a message already ending in it is kept as is.
    pub fn errdefs(code: Code, message: impl Into<String>) -> Status {
        let message = message.into();
        let Some(class) = code.errdefs_text() else {
            return Status::new(code, message);
        };
        let message = if message.is_empty() {
            class.to_string()
        } else if message == class || message.ends_with(&format!(": {class}")) {
            message
        } else {
            format!("{message}: {class}")
        };
        Status { code, message }
    }

    /// errdefs NotFound: `"<msg>: not found"`. containerd treats it specially (e.g. Delete).
    pub fn not_found(message: impl Into<String>) -> Status {
        Status::errdefs(Code::NotFound, message)
    }

    /// errdefs AlreadyExists: `"<msg>: already exists"`.
    pub fn already_exists(message: impl Into<String>) -> Status {
        Status::errdefs(Code::AlreadyExists, message)
    }

    /// errdefs InvalidArgument: `"<msg>: invalid argument"`.
    pub fn invalid_argument(message: impl Into<String>) -> Status {
        Status::errdefs(Code::InvalidArgument, message)
    }

    /// errdefs FailedPrecondition: `"<msg>: failed precondition"`.
    pub fn failed_precondition(message: impl Into<String>) -> Status {
        Status::errdefs(Code::FailedPrecondition, message)
    }

    /// errdefs Unavailable: `"<msg>: unavailable"`.
    pub fn unavailable(message: impl Into<String>) -> Status {
        Status::errdefs(Code::Unavailable, message)
    }

    /// errdefs NotImplemented (code Unimplemented): `"<msg>: not implemented"`.
    pub fn unimplemented(message: impl Into<String>) -> Status {
        Status::errdefs(Code::Unimplemented, message)
    }

    /// Unknown, message verbatim: what a plain Go error (e.g. a runc failure) becomes.
    pub fn unknown(message: impl Into<String>) -> Status {
        Status::new(Code::Unknown, message)
    }

    pub fn internal(message: impl Into<String>) -> Status {
        Status::new(Code::Internal, message)
    }

    pub fn cancelled(message: impl Into<String>) -> Status {
        Status::new(Code::Cancelled, message)
    }

    pub fn deadline_exceeded(message: impl Into<String>) -> Status {
        Status::new(Code::DeadlineExceeded, message)
    }

    pub fn permission_denied(message: impl Into<String>) -> Status {
        Status::new(Code::PermissionDenied, message)
    }

    pub fn resource_exhausted(message: impl Into<String>) -> Status {
        Status::new(Code::ResourceExhausted, message)
    }

    pub fn aborted(message: impl Into<String>) -> Status {
        Status::new(Code::Aborted, message)
    }

    pub fn out_of_range(message: impl Into<String>) -> Status {
        Status::new(Code::OutOfRange, message)
    }

    pub fn data_loss(message: impl Into<String>) -> Status {
        Status::new(Code::DataLoss, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Status {
        Status::new(Code::Unauthenticated, message)
    }

    pub fn is_ok(&self) -> bool {
        self.code == Code::Ok
    }

    /// Encodes as `google.rpc.Status{1 code, 2 message}`; default values are omitted.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.message.len() + 8);
        // Writing into a Vec cannot fail.
        let _ = self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) -> protobuf::Result<()> {
        let mut os = CodedOutputStream::vec(out);
        if self.code != Code::Ok {
            os.write_int32(1, self.code.as_i32())?;
        }
        if !self.message.is_empty() {
            os.write_string(2, &self.message)?;
        }
        os.flush()
    }

    /// Decodes a `google.rpc.Status`, ignoring `details`.
    pub fn decode(buf: &[u8]) -> Result<Status> {
        Self::read(buf).map_err(|source| Error::Decode {
            what: "google.rpc.Status",
            source,
        })
    }

    pub(crate) fn read(buf: &[u8]) -> protobuf::Result<Status> {
        let mut is = CodedInputStream::from_bytes(buf);
        let mut status = Status::new(Code::Ok, "");
        while let Some(tag) = is.read_raw_tag_or_eof()? {
            match tag {
                // field 1, varint
                8 => status.code = Code::from_i32(is.read_int32()?),
                // field 2, length-delimited
                18 => status.message = is.read_string()?,
                other => skip(&mut is, other)?,
            }
        }
        Ok(status)
    }
}

/// Skips an unknown field given its raw tag.
pub(crate) fn skip(is: &mut CodedInputStream<'_>, tag: u32) -> protobuf::Result<()> {
    match WireType::new(tag & 7) {
        Some(wt) if tag >> 3 != 0 => is.skip_field(wt),
        _ => Err(protobuf::Error::from(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("invalid protobuf tag {tag}"),
        ))),
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The shape grpc-go and ttrpc use when printing a status error.
        write!(f, "rpc error: code = {} desc = {}", self.code, self.message)
    }
}

impl std::error::Error for Status {}

impl From<Status> for Error {
    fn from(s: Status) -> Error {
        Error::Status(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_match_grpc_numbers() {
        for v in 0..=16 {
            assert_eq!(Code::from_i32(v).as_i32(), v);
        }
        assert_eq!(Code::from_i32(99), Code::Unknown);
        assert_eq!(Code::from_i32(-1), Code::Unknown);
        assert_eq!(Code::ResourceExhausted.as_i32(), 8);
        assert_eq!(Code::Unimplemented.as_i32(), 12);
        assert_eq!(Code::Unauthenticated.as_i32(), 16);
    }

    #[test]
    fn errdefs_suffixes_read_like_containerd() {
        assert_eq!(
            Status::not_found("container c1").message,
            "container c1: not found"
        );
        assert_eq!(Status::not_found("").message, "not found");
        assert_eq!(
            Status::not_found("process does not exist e1: not found").message,
            "process does not exist e1: not found"
        );
        assert_eq!(
            Status::failed_precondition("cannot delete a running process").message,
            "cannot delete a running process: failed precondition"
        );
        assert_eq!(
            Status::unimplemented("checkpoint").code,
            Code::Unimplemented
        );
        assert_eq!(
            Status::unimplemented("checkpoint").message,
            "checkpoint: not implemented"
        );
        // Codes without an errdefs class keep the message verbatim.
        assert_eq!(Status::internal("boom").message, "boom");
        assert_eq!(
            Status::unknown("runc did not terminate").code,
            Code::Unknown
        );
    }

    #[test]
    fn protocol_doc_unknown_method_status_bytes() {
        // containerd-protocol.md B2a: Response{status{code 12, "method Bogus"}}; the
        // status sub-message is `08 0c 12 0c "method Bogus"`.
        let st = Status::new(Code::Unimplemented, "method Bogus");
        let mut want = vec![0x08, 0x0c, 0x12, 0x0c];
        want.extend_from_slice(b"method Bogus");
        assert_eq!(st.encode(), want);
        assert_eq!(Status::decode(&want).unwrap(), st);
    }

    #[test]
    fn ok_status_encodes_empty_and_details_are_skipped() {
        assert!(Status::new(Code::Ok, "").encode().is_empty());
        // code 5, message "x", one details entry (field 3) that must be skipped.
        let wire = [0x08, 0x05, 0x12, 0x01, b'x', 0x1a, 0x02, 0x0a, 0x00];
        assert_eq!(
            Status::decode(&wire).unwrap(),
            Status::new(Code::NotFound, "x")
        );
    }

    #[test]
    fn garbage_status_is_a_decode_error() {
        let err = Status::decode(&[0x12, 0x05, b'a']).unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err}");
    }

    #[test]
    fn display_matches_grpc_go() {
        let st = Status::not_found("container c1");
        assert_eq!(
            st.to_string(),
            "rpc error: code = NotFound desc = container c1: not found"
        );
    }
}
