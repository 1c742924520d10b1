//! Our server, driven by a mio loop in the test thread, against the ttrpc crate's own
//! synchronous client (an independent implementation) and against hand-made frames.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use berth_ttrpc_api::envelope::Request as WireRequest;
use berth_ttrpc_api::frame::{FrameType, MAX_DATA};
use berth_ttrpc_api::protobuf::well_known_types::empty::Empty;
use berth_ttrpc_api::protobuf::Message;
use berth_ttrpc_api::protos::api::Status as TaskStatus;
use berth_ttrpc_api::task::{
    ConnectRequest, ConnectResponse, DeleteRequest, DeleteResponse, KillRequest, StateRequest,
    StateResponse, WaitRequest, WaitResponse,
};
use berth_ttrpc_api::{
    dispatch, encode_reply, Ctx, Incoming, Status, TaskReply, TaskService, TASK_SERVICE,
};
use common::{read_frame, read_frame_bytes, send_frame, temp_dir, Reply, TestServer};
use mio::Token;

const LIMIT: Duration = Duration::from_secs(20);

/// A task service that answers from memory and defers what the scenarios need deferred.
#[derive(Default)]
struct FakeTask {
    current: Option<Token>,
    calls: Vec<String>,
    /// (connection, stream id, container id) of deferred Wait calls.
    waits: Vec<(Token, u32, String)>,
    /// (connection, stream id) of deferred State{id: "slow"} calls.
    slow_states: Vec<(Token, u32)>,
    exited: HashMap<String, u32>,
}

impl TaskService for FakeTask {
    fn state(&mut self, ctx: &Ctx, req: StateRequest) -> TaskReply<StateResponse> {
        self.calls.push(format!("State {}", req.id));
        if req.id == "slow" {
            self.slow_states
                .push((self.current.expect("conn"), ctx.stream_id));
            return TaskReply::Deferred;
        }
        let mut resp = StateResponse::new();
        resp.id = req.id;
        resp.pid = 42;
        resp.status = TaskStatus::RUNNING.into();
        TaskReply::Ready(Ok(resp))
    }

    fn connect(&mut self, _ctx: &Ctx, req: ConnectRequest) -> TaskReply<ConnectResponse> {
        self.calls.push(format!("Connect {}", req.id));
        let mut resp = ConnectResponse::new();
        resp.shim_pid = 9872;
        resp.task_pid = 9911;
        TaskReply::Ready(Ok(resp))
    }

    fn wait(&mut self, ctx: &Ctx, req: WaitRequest) -> TaskReply<WaitResponse> {
        self.calls.push(format!("Wait {}", req.id));
        if let Some(status) = self.exited.get(&req.id) {
            let mut resp = WaitResponse::new();
            resp.exit_status = *status;
            return TaskReply::Ready(Ok(resp));
        }
        self.waits
            .push((self.current.expect("conn"), ctx.stream_id, req.id));
        TaskReply::Deferred
    }

    fn kill(&mut self, _ctx: &Ctx, req: KillRequest) -> TaskReply<Empty> {
        self.calls.push(format!("Kill {} {}", req.id, req.signal));
        self.exited.insert(req.id, 128 + req.signal);
        TaskReply::Ready(Ok(Empty::new()))
    }

    fn delete(&mut self, _ctx: &Ctx, req: DeleteRequest) -> TaskReply<DeleteResponse> {
        self.calls.push(format!("Delete {}", req.id));
        Err(Status::not_found(format!("container {}", req.id))).into()
    }
}

fn handler(svc: &RefCell<FakeTask>) -> impl FnMut(Token, &Incoming) -> Reply + '_ {
    move |token, inc| {
        let mut s = svc.borrow_mut();
        s.current = Some(token);
        dispatch(&mut *s, inc)
    }
}

/// A unary Task call through the ttrpc crate's sync client.
fn ttrpc_call<Resp: Message>(
    client: &ttrpc::Client,
    service: &str,
    method: &str,
    payload: Vec<u8>,
) -> Result<Resp, ttrpc::proto::Status> {
    let mut req = ttrpc::proto::Request::new();
    req.service = service.to_string();
    req.method = method.to_string();
    req.payload = payload;
    match client.request(req) {
        Ok(resp) => Ok(Resp::parse_from_bytes(&resp.payload).expect("decode reply")),
        Err(ttrpc::Error::RpcStatus(s)) => Err(s),
        Err(e) => panic!("ttrpc transport error: {e:?}"),
    }
}

fn task_call<Req: Message, Resp: Message>(
    client: &ttrpc::Client,
    method: &str,
    req: &Req,
) -> Result<Resp, ttrpc::proto::Status> {
    ttrpc_call::<Resp>(
        client,
        TASK_SERVICE,
        method,
        req.write_to_bytes().expect("encode"),
    )
}

fn state_req(id: &str) -> StateRequest {
    let mut r = StateRequest::new();
    r.id = id.into();
    r
}

fn connect_client(srv: &TestServer) -> ttrpc::Client {
    ttrpc::Client::connect(&format!("unix://{}", srv.path.display())).expect("ttrpc connect")
}

#[test]
fn out_of_order_answers_and_deferred_wait_share_one_connection() {
    let dir = temp_dir("ooo");
    let mut srv = TestServer::bind(&dir.join("shim.sock"));
    let svc = RefCell::new(FakeTask::default());
    let mut h = handler(&svc);
    let client = connect_client(&srv);
    let (done_tx, done_rx) = mpsc::channel::<&'static str>();
    let mut done = Vec::new();

    // 1. State("slow") is deferred by the service.
    let (c, tx) = (client.clone(), done_tx.clone());
    let slow = thread::spawn(move || {
        let r = task_call::<_, StateResponse>(&c, "State", &state_req("slow"));
        tx.send("state").expect("send");
        r
    });
    srv.run_until(&mut h, LIMIT, |_| !svc.borrow().slow_states.is_empty());

    // 2. A later Connect on the same connection is answered first.
    let (c, tx) = (client.clone(), done_tx.clone());
    let connect = thread::spawn(move || {
        let mut req = ConnectRequest::new();
        req.id = "c1".into();
        let r = task_call::<_, ConnectResponse>(&c, "Connect", &req);
        tx.send("connect").expect("send");
        r
    });
    srv.run_until(&mut h, LIMIT, |_| {
        done.extend(done_rx.try_iter());
        done.contains(&"connect")
    });
    let cr = connect.join().expect("join").expect("connect ok");
    assert_eq!((cr.shim_pid, cr.task_pid), (9872, 9911));
    assert!(!slow.is_finished(), "State must still be pending");

    // 3. Now the deferred State is answered.
    let (tok, sid) = svc.borrow_mut().slow_states.pop().expect("deferred state");
    let mut late = StateResponse::new();
    late.id = "slow".into();
    late.pid = 7;
    srv.respond(tok, sid, encode_reply(&late)).expect("respond");
    srv.run_until(&mut h, LIMIT, |_| slow.is_finished());
    let sr = slow.join().expect("join").expect("state ok");
    assert_eq!((sr.id.as_str(), sr.pid), ("slow", 7));

    // 4. Wait blocks; a later Kill is answered; then Wait completes with the exit status.
    let (c, tx) = (client.clone(), done_tx.clone());
    let wait = thread::spawn(move || {
        let mut req = WaitRequest::new();
        req.id = "c1".into();
        let r = task_call::<_, WaitResponse>(&c, "Wait", &req);
        tx.send("wait").expect("send");
        r
    });
    srv.run_until(&mut h, LIMIT, |_| !svc.borrow().waits.is_empty());
    // Other calls keep flowing while Wait is outstanding.
    let c = client.clone();
    let states = thread::spawn(move || {
        (0..3)
            .map(|_| task_call::<_, StateResponse>(&c, "State", &state_req("c1")).map(|r| r.pid))
            .collect::<Vec<_>>()
    });
    srv.run_until(&mut h, LIMIT, |_| states.is_finished());
    let pids: Vec<_> = states
        .join()
        .expect("join")
        .into_iter()
        .map(|r| r.ok())
        .collect();
    assert_eq!(pids, [Some(42); 3]);
    assert!(!wait.is_finished());
    let (c, tx) = (client.clone(), done_tx.clone());
    let kill = thread::spawn(move || {
        let mut req = KillRequest::new();
        req.id = "c1".into();
        req.signal = 9;
        let r = task_call::<_, Empty>(&c, "Kill", &req);
        tx.send("kill").expect("send");
        r
    });
    srv.run_until(&mut h, LIMIT, |_| {
        done.extend(done_rx.try_iter());
        done.contains(&"kill")
    });
    kill.join().expect("join").expect("kill ok");
    assert!(!wait.is_finished(), "Wait must still be pending after Kill");
    let (tok, sid, id) = svc.borrow_mut().waits.pop().expect("deferred wait");
    let mut wr = WaitResponse::new();
    wr.exit_status = svc.borrow().exited[&id];
    srv.respond(tok, sid, encode_reply(&wr))
        .expect("respond wait");
    srv.run_until(&mut h, LIMIT, |_| wait.is_finished());
    assert_eq!(
        wait.join().expect("join").expect("wait ok").exit_status,
        137
    );
    done.extend(done_rx.try_iter());
    assert_eq!(done, ["connect", "state", "kill", "wait"]);

    // A second answer for the same stream is refused.
    let err = srv.respond(tok, sid, encode_reply(&wr)).unwrap_err();
    assert!(
        matches!(err, berth_ttrpc_api::Error::UnknownStream(s) if s == sid),
        "{err}"
    );
    assert_eq!(srv.accepted, 1, "all calls multiplexed on one connection");

    // The client going away ends the connection; the loop drops it.
    drop(client);
    srv.run_until(&mut h, LIMIT, |s| s.closed == 1);
    assert!(srv.conns.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_method_and_service_are_unimplemented_like_go() {
    let dir = temp_dir("unimpl");
    let mut srv = TestServer::bind(&dir.join("shim.sock"));
    let svc = RefCell::new(FakeTask::default());
    let mut h = handler(&svc);
    let client = connect_client(&srv);
    let c = client.clone();
    let t = thread::spawn(move || {
        let bogus = ttrpc_call::<Empty>(&c, TASK_SERVICE, "Bogus", vec![]).unwrap_err();
        // containerd-shim-protos' generated client speaks task v3, which we do not serve.
        let v3 = berth_ttrpc_api::protos::TaskClient::new(c.clone());
        let err = v3
            .state(ttrpc::context::with_timeout(0), &state_req("c1"))
            .unwrap_err();
        let ttrpc::Error::RpcStatus(v3_status) = err else {
            panic!("unexpected {err:?}")
        };
        // The service answers NotFound (errdefs text) through the same path.
        let mut del = DeleteRequest::new();
        del.id = "gone".into();
        let nf = task_call::<_, DeleteResponse>(&c, "Delete", &del).unwrap_err();
        (bogus, v3_status, nf)
    });
    srv.run_until(&mut h, LIMIT, |_| t.is_finished());
    let (bogus, v3, nf) = t.join().expect("join");
    assert_eq!(bogus.code(), ttrpc::Code::UNIMPLEMENTED);
    assert_eq!(bogus.message(), "method Bogus");
    assert_eq!(v3.code(), ttrpc::Code::UNIMPLEMENTED);
    assert_eq!(v3.message(), "service containerd.task.v3.Task");
    assert_eq!(nf.code(), ttrpc::Code::NOT_FOUND);
    assert_eq!(nf.message(), "container gone: not found");
    assert_eq!(svc.borrow().calls, ["Delete gone"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn garbage_payload_is_invalid_argument_and_the_connection_keeps_working() {
    let dir = temp_dir("garbage");
    let mut srv = TestServer::bind(&dir.join("shim.sock"));
    let svc = RefCell::new(FakeTask::default());
    let mut h = handler(&svc);
    let client = connect_client(&srv);
    let c = client.clone();
    let t = thread::spawn(move || {
        // Field 1 claims 5 bytes but only 1 follows.
        let bad = ttrpc_call::<StateResponse>(&c, TASK_SERVICE, "State", vec![0x0a, 0x05, b'x'])
            .unwrap_err();
        let good = task_call::<_, StateResponse>(&c, "State", &state_req("c1")).expect("state");
        (bad, good)
    });
    srv.run_until(&mut h, LIMIT, |_| t.is_finished());
    let (bad, good) = t.join().expect("join");
    assert_eq!(bad.code(), ttrpc::Code::INVALID_ARGUMENT);
    assert!(bad.message().contains("unmarshalling"), "{}", bad.message());
    assert_eq!((good.id.as_str(), good.pid), ("c1", 42));
    assert_eq!(
        svc.borrow().calls,
        ["State c1"],
        "service not called for garbage"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `f` on a raw blocking socket in a client thread while the loop serves it.
fn with_raw_client<T: Send + 'static>(
    name: &str,
    f: impl FnOnce(UnixStream) -> T + Send + 'static,
) -> (T, FakeTask, TestServer) {
    let dir = temp_dir(name);
    let mut srv = TestServer::bind(&dir.join("shim.sock"));
    let svc = RefCell::new(FakeTask::default());
    let path = srv.path.clone();
    let t = thread::spawn(move || f(UnixStream::connect(path).expect("connect")));
    {
        let mut h = handler(&svc);
        srv.run_until(&mut h, LIMIT, |_| t.is_finished());
    }
    let out = t.join().expect("client thread");
    let _ = std::fs::remove_dir_all(&dir);
    (out, svc.into_inner(), srv)
}

fn connect_body(service: &str, method: &str, id: &str) -> Vec<u8> {
    let mut payload = ConnectRequest::new();
    payload.id = id.into();
    WireRequest {
        service: service.into(),
        method: method.into(),
        payload: payload.write_to_bytes().expect("encode"),
        ..Default::default()
    }
    .encode()
}

fn response_status(body: &[u8]) -> Result<Vec<u8>, Status> {
    berth_ttrpc_api::envelope::Response::decode(body)
        .expect("response")
        .into_result()
}

#[test]
fn protocol_doc_worked_example_bytes_on_the_wire() {
    let ((connect_reply, bogus_reply), _, _) = with_raw_client("doc", |mut s| {
        // containerd-protocol.md B2a, byte for byte.
        let mut req = vec![0, 0, 0, 0x2e, 0, 0, 0, 1, 1, 0, 0x0a, 0x17];
        req.extend_from_slice(b"containerd.task.v2.Task");
        req.extend_from_slice(&[0x12, 0x07]);
        req.extend_from_slice(b"Connect");
        req.extend_from_slice(&[0x1a, 0x0a, 0x0a, 0x08]);
        req.extend_from_slice(b"proto-u1");
        std::io::Write::write_all(&mut s, &req).expect("write");
        let a = read_frame_bytes(&mut s);
        let mut bogus = vec![0x0a, 0x17];
        bogus.extend_from_slice(b"containerd.task.v2.Task");
        bogus.extend_from_slice(&[0x12, 0x05]);
        bogus.extend_from_slice(b"Bogus");
        send_frame(&mut s, 3, FrameType::Request, &bogus);
        (a, read_frame_bytes(&mut s))
    });
    assert_eq!(
        connect_reply,
        [0, 0, 0, 8, 0, 0, 0, 1, 2, 0, 0x12, 0x06, 0x08, 0x90, 0x4d, 0x10, 0xb7, 0x4d]
    );
    let mut want = vec![
        0, 0, 0, 0x12, 0, 0, 0, 3, 2, 0, 0x0a, 0x10, 0x08, 0x0c, 0x12, 0x0c,
    ];
    want.extend_from_slice(b"method Bogus");
    assert_eq!(bogus_reply, want);
}

#[test]
fn oversized_request_is_skipped_answered_resource_exhausted_then_calls_work() {
    let ((first, second), svc, _) = with_raw_client("oversize", |mut s| {
        let len = (MAX_DATA + 1) as u32;
        let mut frame = len.to_be_bytes().to_vec();
        frame.extend_from_slice(&[0, 0, 0, 1, 1, 0]);
        std::io::Write::write_all(&mut s, &frame).expect("header");
        std::io::Write::write_all(&mut s, &vec![0x5a; MAX_DATA + 1]).expect("body");
        let first = read_frame(&mut s);
        send_frame(
            &mut s,
            3,
            FrameType::Request,
            &connect_body(TASK_SERVICE, "Connect", "c1"),
        );
        (first, read_frame(&mut s))
    });
    assert_eq!(first.0.stream_id, 1);
    assert_eq!(first.0.frame_type, FrameType::Response);
    let st = response_status(&first.1).unwrap_err();
    assert_eq!(st.code, berth_ttrpc_api::Code::ResourceExhausted);
    assert_eq!(
        st.message,
        "message length 4194305 exceed maximum message size of 4194304"
    );
    assert_eq!(second.0.stream_id, 3);
    let payload = response_status(&second.1).expect("connect ok");
    assert_eq!(
        ConnectResponse::parse_from_bytes(&payload)
            .expect("decode")
            .task_pid,
        9911
    );
    assert_eq!(svc.calls, ["Connect c1"]);
}

#[test]
fn even_reused_and_unknown_stream_ids_and_frame_types() {
    let (frames, svc, _) = with_raw_client("ids", |mut s| {
        let body = connect_body(TASK_SERVICE, "Connect", "c1");
        let mut got = Vec::new();
        send_frame(&mut s, 2, FrameType::Request, &body); // even: server-side id
        got.push(read_frame(&mut s));
        send_frame(&mut s, 1, FrameType::Unknown(9), b"junk"); // ignored
        send_frame(&mut s, 5, FrameType::Request, &body); // ok
        got.push(read_frame(&mut s));
        send_frame(&mut s, 5, FrameType::Request, &body); // reused
        got.push(read_frame(&mut s));
        send_frame(&mut s, 3, FrameType::Request, &body); // lower than last
        got.push(read_frame(&mut s));
        send_frame(&mut s, 7, FrameType::Data, b"x"); // no streaming methods
        got.push(read_frame(&mut s));
        send_frame(&mut s, 9, FrameType::Request, &[0x0a, 0x10, b'x']); // bad envelope
        got.push(read_frame(&mut s));
        send_frame(&mut s, 11, FrameType::Request, &body); // still works
        got.push(read_frame(&mut s));
        got
    });
    let summary: Vec<_> = frames
        .iter()
        .map(|(h, body)| {
            (
                h.stream_id,
                response_status(body)
                    .map(|_| ())
                    .map_err(|e| (e.code, e.message)),
            )
        })
        .collect();
    use berth_ttrpc_api::Code::InvalidArgument as IA;
    assert_eq!(
        summary[0],
        (
            2,
            Err((
                IA,
                "StreamID must be odd for client initiated streams".into()
            ))
        )
    );
    assert_eq!(summary[1], (5, Ok(())));
    assert_eq!(
        summary[2],
        (
            5,
            Err((IA, "StreamID cannot be re-used and must increment".into()))
        )
    );
    assert_eq!(
        summary[3],
        (
            3,
            Err((IA, "StreamID cannot be re-used and must increment".into()))
        )
    );
    assert_eq!(
        summary[4],
        (7, Err((IA, "StreamID is no longer active".into())))
    );
    assert_eq!(summary[5].0, 9);
    let (code, msg) = summary[5].1.clone().unwrap_err();
    assert_eq!(code, IA);
    assert!(msg.starts_with("unmarshal request error: "), "{msg}");
    assert_eq!(summary[6], (11, Ok(())));
    assert_eq!(svc.calls, ["Connect c1", "Connect c1"]);
}

#[test]
fn several_connections_are_served_independently() {
    let dir = temp_dir("multi");
    let mut srv = TestServer::bind(&dir.join("shim.sock"));
    let svc = RefCell::new(FakeTask::default());
    let mut h = handler(&svc);
    let (a, b) = (connect_client(&srv), connect_client(&srv));
    let t = thread::spawn(move || {
        let ra = task_call::<_, StateResponse>(&a, "State", &state_req("a")).expect("a");
        let rb = task_call::<_, StateResponse>(&b, "State", &state_req("b")).expect("b");
        (ra.id, rb.id)
    });
    srv.run_until(&mut h, LIMIT, |_| t.is_finished());
    assert_eq!(t.join().expect("join"), ("a".to_string(), "b".to_string()));
    assert_eq!(srv.accepted, 2);
    let _ = std::fs::remove_dir_all(&dir);
}
