//! One server connection at the socket level, on a socket pair without a poll loop: EOF,
//! ECONNRESET, partial writes, oversized and misdirected responses.

use std::io::{ErrorKind, Read, Write};

use berth_ttrpc_api::envelope::{Request as WireRequest, Response};
use berth_ttrpc_api::frame::{FrameType, MAX_DATA};
use berth_ttrpc_api::protobuf::Message;
use berth_ttrpc_api::task::{WaitRequest, WaitResponse};
use berth_ttrpc_api::{encode_reply, Error, ServerConnection, Status, TASK_SERVICE};

fn response_status(body: &[u8]) -> Result<Vec<u8>, Status> {
    Response::decode(body).expect("response").into_result()
}

fn pair() -> (ServerConnection, mio::net::UnixStream) {
    let (server, client) = mio::net::UnixStream::pair().expect("pair");
    (ServerConnection::new(server), client)
}

fn wait_frame(id: &str, sid: u32) -> Vec<u8> {
    let mut w = WaitRequest::new();
    w.id = id.into();
    let body = WireRequest {
        service: TASK_SERVICE.into(),
        method: "Wait".into(),
        payload: w.write_to_bytes().expect("encode"),
        ..Default::default()
    }
    .encode();
    berth_ttrpc_api::frame::encode_frame(sid, FrameType::Request, 0, &body).expect("frame")
}

#[test]
fn eof_closes_cleanly_and_deferred_answers_then_fail() {
    let (mut conn, mut client) = pair();
    client.write_all(&wait_frame("c1", 1)).expect("write");
    drop(client);
    let incoming = conn.on_readable().expect("clean close");
    assert_eq!(
        incoming.len(),
        1,
        "requests read before EOF are still returned"
    );
    assert_eq!(incoming[0].method, "Wait");
    assert!(conn.is_closed());
    assert!(!conn.wants_write());
    let err = conn.respond(1, Ok(vec![])).unwrap_err();
    assert!(matches!(err, Error::Closed), "{err}");
    assert!(conn.on_readable().expect("idempotent").is_empty());
}

#[test]
fn connection_reset_closes_cleanly() {
    // Precondition: closing a unix socket with unread data makes the peer's read fail
    // with ECONNRESET.
    let (probe_a, mut probe_b) = std::os::unix::net::UnixStream::pair().expect("pair");
    probe_b.write_all(b"unread").expect("write");
    drop(probe_a);
    let mut b = [0u8; 8];
    assert_eq!(
        probe_b.read(&mut b).unwrap_err().kind(),
        ErrorKind::ConnectionReset
    );

    let (mut conn, mut client) = pair();
    client.write_all(&wait_frame("c1", 1)).expect("write");
    let incoming = conn.on_readable().expect("read");
    assert_eq!(incoming.len(), 1);
    conn.respond(1, encode_reply(&WaitResponse::new()))
        .expect("respond");
    drop(client); // the response is still unread in the client's buffer
    assert!(conn
        .on_readable()
        .expect("reset is a clean close")
        .is_empty());
    assert!(conn.is_closed());
}

#[test]
fn partial_writes_finish_through_on_writable() {
    let (mut conn, mut client) = pair();
    client.write_all(&wait_frame("c1", 1)).expect("write");
    assert_eq!(conn.on_readable().expect("read").len(), 1);
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    conn.respond(1, Ok(payload.clone())).expect("respond");
    assert!(conn.wants_write(), "3 MB cannot fit in the socket buffer");
    let mut received = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match client.read(&mut buf) {
            Ok(0) => panic!("unexpected EOF"),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if !conn.wants_write() {
                    break;
                }
                conn.on_writable().expect("flush");
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    let header = berth_ttrpc_api::frame::Header::decode(&received).expect("header");
    assert_eq!(header.stream_id, 1);
    let body = &received[10..];
    assert_eq!(body.len(), header.length as usize);
    assert_eq!(response_status(body).expect("ok"), payload);
}

#[test]
fn oversized_response_becomes_resource_exhausted() {
    let (mut conn, mut client) = pair();
    client.write_all(&wait_frame("c1", 1)).expect("write");
    assert_eq!(conn.on_readable().expect("read").len(), 1);
    conn.respond(1, Ok(vec![0; MAX_DATA + 1])).expect("respond");
    let mut buf = vec![0u8; 4096];
    let n = client.read(&mut buf).expect("read");
    let st = response_status(&buf[10..n]).unwrap_err();
    assert_eq!(st.code, berth_ttrpc_api::Code::ResourceExhausted);
}

#[test]
fn responding_to_an_unknown_stream_fails() {
    let (mut conn, _client) = pair();
    let err = conn.respond(3, Ok(vec![])).unwrap_err();
    assert!(matches!(err, Error::UnknownStream(3)), "{err}");
}
