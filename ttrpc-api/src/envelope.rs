//! The ttrpc envelopes carried in frame bodies: `ttrpc.Request` (type 1) and `ttrpc.Response`
//! (type 2).
//!
//! Why hand-written rather than `ttrpc::proto::{Request, Response}`: the ttrpc crate documents
//! those types as not part of its stable API (they changed with the 0.10 backend split), the
//! messages are five and two fields, and keeping our own codec makes the tests against the
//! ttrpc crate's client a check of two independent implementations. rust-protobuf's coded
//! streams do the varint/length work.

use protobuf::{CodedInputStream, CodedOutputStream};

use crate::error::{Error, Result};
use crate::status::{skip, Status};

/// Metadata key under which the Go ttrpc library and containerd carry the namespace.
pub const NAMESPACE_METADATA_KEY: &str = "containerd-namespace-ttrpc";

/// `ttrpc.Request{1 service, 2 method, 3 payload, 4 timeout_nano, 5 metadata[]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub service: String,
    pub method: String,
    pub payload: Vec<u8>,
    /// Client deadline in nanoseconds; 0 means none.
    pub timeout_nano: i64,
    /// `KeyValue{1 key, 2 value}` pairs in wire order; keys may repeat.
    pub metadata: Vec<(String, String)>,
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload.len() + 64);
        // Writing into a Vec cannot fail.
        let _ = self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) -> protobuf::Result<()> {
        let mut os = CodedOutputStream::vec(out);
        if !self.service.is_empty() {
            os.write_string(1, &self.service)?;
        }
        if !self.method.is_empty() {
            os.write_string(2, &self.method)?;
        }
        if !self.payload.is_empty() {
            os.write_bytes(3, &self.payload)?;
        }
        if self.timeout_nano != 0 {
            os.write_int64(4, self.timeout_nano)?;
        }
        for (k, v) in &self.metadata {
            let mut kv = Vec::with_capacity(k.len() + v.len() + 4);
            {
                let mut kos = CodedOutputStream::vec(&mut kv);
                if !k.is_empty() {
                    kos.write_string(1, k)?;
                }
                if !v.is_empty() {
                    kos.write_string(2, v)?;
                }
                kos.flush()?;
            }
            os.write_bytes(5, &kv)?;
        }
        os.flush()
    }

    pub fn decode(buf: &[u8]) -> Result<Request> {
        Self::read(buf).map_err(|source| Error::Decode {
            what: "ttrpc.Request",
            source,
        })
    }

    fn read(buf: &[u8]) -> protobuf::Result<Request> {
        let mut is = CodedInputStream::from_bytes(buf);
        let mut req = Request::default();
        while let Some(tag) = is.read_raw_tag_or_eof()? {
            match tag {
                10 => req.service = is.read_string()?,
                18 => req.method = is.read_string()?,
                26 => req.payload = is.read_bytes()?,
                32 => req.timeout_nano = is.read_int64()?,
                42 => {
                    let kv = is.read_bytes()?;
                    req.metadata.push(read_key_value(&kv)?);
                }
                other => skip(&mut is, other)?,
            }
        }
        Ok(req)
    }

    /// First value for `key`, if any.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        metadata_value(&self.metadata, key)
    }
}

/// First value for `key` in a metadata list.
pub fn metadata_value<'a>(metadata: &'a [(String, String)], key: &str) -> Option<&'a str> {
    metadata
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn read_key_value(buf: &[u8]) -> protobuf::Result<(String, String)> {
    let mut is = CodedInputStream::from_bytes(buf);
    let (mut k, mut v) = (String::new(), String::new());
    while let Some(tag) = is.read_raw_tag_or_eof()? {
        match tag {
            10 => k = is.read_string()?,
            18 => v = is.read_string()?,
            other => skip(&mut is, other)?,
        }
    }
    Ok((k, v))
}

/// `ttrpc.Response{1 status google.rpc.Status, 2 payload}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// Absent on success (Go sends no status for OK).
    pub status: Option<Status>,
    pub payload: Vec<u8>,
}

impl Response {
    /// The response for a handler result: payload on success, status (and no payload) on error.
    pub fn from_result(result: std::result::Result<Vec<u8>, Status>) -> Response {
        match result {
            Ok(payload) => Response {
                status: None,
                payload,
            },
            Err(status) => Response {
                status: Some(status),
                payload: Vec::new(),
            },
        }
    }

    /// Payload on success; the status when it is present and not OK.
    pub fn into_result(self) -> std::result::Result<Vec<u8>, Status> {
        match self.status {
            Some(st) if !st.is_ok() => Err(st),
            _ => Ok(self.payload),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload.len() + 16);
        // Writing into a Vec cannot fail.
        let _ = self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) -> protobuf::Result<()> {
        let mut os = CodedOutputStream::vec(out);
        if let Some(st) = &self.status {
            os.write_bytes(1, &st.encode())?;
        }
        if !self.payload.is_empty() {
            os.write_bytes(2, &self.payload)?;
        }
        os.flush()
    }

    pub fn decode(buf: &[u8]) -> Result<Response> {
        Self::read(buf).map_err(|source| Error::Decode {
            what: "ttrpc.Response",
            source,
        })
    }

    fn read(buf: &[u8]) -> protobuf::Result<Response> {
        let mut is = CodedInputStream::from_bytes(buf);
        let mut resp = Response::default();
        while let Some(tag) = is.read_raw_tag_or_eof()? {
            match tag {
                10 => {
                    let st = is.read_bytes()?;
                    resp.status = Some(Status::read(&st)?);
                }
                18 => resp.payload = is.read_bytes()?,
                other => skip(&mut is, other)?,
            }
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Code;

    /// containerd-protocol.md B2a, body of the Connect request for task proto-u1.
    fn doc_connect_body() -> Vec<u8> {
        let mut body = vec![0x0a, 0x17];
        body.extend_from_slice(b"containerd.task.v2.Task");
        body.extend_from_slice(&[0x12, 0x07]);
        body.extend_from_slice(b"Connect");
        body.extend_from_slice(&[0x1a, 0x0a, 0x0a, 0x08]);
        body.extend_from_slice(b"proto-u1");
        body
    }

    #[test]
    fn protocol_doc_connect_request_round_trip() {
        let body = doc_connect_body();
        assert_eq!(body.len(), 0x2e);
        let req = Request::decode(&body).unwrap();
        assert_eq!(req.service, "containerd.task.v2.Task");
        assert_eq!(req.method, "Connect");
        assert_eq!(req.payload, [&[0x0a, 0x08][..], b"proto-u1"].concat());
        assert_eq!(req.timeout_nano, 0);
        assert!(req.metadata.is_empty());
        assert_eq!(req.encode(), body);
    }

    #[test]
    fn protocol_doc_connect_reply_bytes() {
        // Response{payload = ConnectResponse{shim_pid 9872, task_pid 9911}}.
        let resp = Response::from_result(Ok(vec![0x08, 0x90, 0x4d, 0x10, 0xb7, 0x4d]));
        assert_eq!(
            resp.encode(),
            vec![0x12, 0x06, 0x08, 0x90, 0x4d, 0x10, 0xb7, 0x4d]
        );
    }

    #[test]
    fn protocol_doc_unknown_method_reply_bytes() {
        let resp = Response::from_result(Err(Status::new(Code::Unimplemented, "method Bogus")));
        let mut want = vec![0x0a, 0x10, 0x08, 0x0c, 0x12, 0x0c];
        want.extend_from_slice(b"method Bogus");
        assert_eq!(resp.encode(), want);
        assert_eq!(want.len(), 18);
        let back = Response::decode(&want).unwrap();
        assert_eq!(
            back.into_result(),
            Err(Status::new(Code::Unimplemented, "method Bogus"))
        );
    }

    #[test]
    fn empty_reply_is_a_zero_length_body() {
        assert!(Response::from_result(Ok(Vec::new())).encode().is_empty());
        assert_eq!(Response::decode(&[]).unwrap().into_result(), Ok(vec![]));
    }

    #[test]
    fn request_with_timeout_and_metadata_round_trips() {
        let req = Request {
            service: "containerd.services.events.ttrpc.v1.Events".into(),
            method: "Forward".into(),
            payload: vec![1, 2, 3],
            timeout_nano: 5_000_000_000,
            metadata: vec![
                (NAMESPACE_METADATA_KEY.into(), "default".into()),
                ("k".into(), String::new()),
            ],
        };
        let back = Request::decode(&req.encode()).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.metadata_value(NAMESPACE_METADATA_KEY), Some("default"));
        assert_eq!(back.metadata_value("missing"), None);
    }

    #[test]
    fn explicit_ok_status_is_success() {
        // Some implementations send status{code 0}; that is not an error.
        let wire = [0x0a, 0x00, 0x12, 0x01, 0x07];
        assert_eq!(Response::decode(&wire).unwrap().into_result(), Ok(vec![7]));
    }

    #[test]
    fn garbage_envelope_is_a_decode_error() {
        for garbage in [
            &[0x0a, 0x05, b'a'][..],
            &[0xff; 3],
            &[0x0f, 0x00],
            &[0x0a, 0x02, 0xff, 0xfe],
        ] {
            let err = Request::decode(garbage).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Decode {
                        what: "ttrpc.Request",
                        ..
                    }
                ),
                "{err}"
            );
        }
    }
}
