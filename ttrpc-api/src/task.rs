//! Typed dispatch for `containerd.task.v2.Task`: decode the request message, call the
//! matching [`TaskService`] method, encode its reply.
//!
//! The message types come from containerd-shim-protos, which generates them from the task
//! **v3** proto (package `containerd.task.v3`); the messages are field-for-field identical to
//! v2, so they decode what containerd 1.6 sends. Only the service *name* differs, and we serve
//! the v2 name, as the Go runc shim does (it answers v3 with "service containerd.task.v3.Task").

use std::time::Duration;

use protobuf::well_known_types::empty::Empty;
use protobuf::Message;

pub use containerd_shim_protos::api::{
    CheckpointTaskRequest, CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest,
    CreateTaskResponse, DeleteRequest, DeleteResponse, ExecProcessRequest, KillRequest,
    PauseRequest, PidsRequest, PidsResponse, ResizePtyRequest, ResumeRequest, ShutdownRequest,
    StartRequest, StartResponse, StateRequest, StateResponse, StatsRequest, StatsResponse,
    UpdateTaskRequest, WaitRequest, WaitResponse,
};

use crate::envelope::metadata_value;
use crate::server::Incoming;
use crate::status::{Code, Status};

/// The service name containerd 1.6-2.x use for runtime v2 shims.
pub const TASK_SERVICE: &str = "containerd.task.v2.Task";

/// Per-call context handed to every [`TaskService`] method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctx {
    /// Needed to answer a [`TaskReply::Deferred`] call later with `ServerConnection::respond`.
    pub stream_id: u32,
    /// Client deadline in nanoseconds, 0 for none.
    pub timeout_nano: i64,
    pub metadata: Vec<(String, String)>,
}

impl Ctx {
    /// The client deadline, if it set one.
    pub fn timeout(&self) -> Option<Duration> {
        u64::try_from(self.timeout_nano)
            .ok()
            .filter(|n| *n > 0)
            .map(Duration::from_nanos)
    }

    /// First metadata value for `key`.
    pub fn metadata_value(&self, key: &str) -> Option<&str> {
        metadata_value(&self.metadata, key)
    }
}

/// What a [`TaskService`] method returns.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskReply<T> {
    /// Answer now.
    Ready(Result<T, Status>),
    /// The service keeps `ctx.stream_id` (and its connection) and answers later through
    /// `ServerConnection::respond(stream_id, encode_reply(&resp))`, e.g. `Wait` until exit.
    Deferred,
}

impl<T> From<Result<T, Status>> for TaskReply<T> {
    fn from(r: Result<T, Status>) -> Self {
        TaskReply::Ready(r)
    }
}

/// Encodes a reply message for `ServerConnection::respond`. Use it for deferred replies.
pub fn encode_reply<M: Message>(message: &M) -> Result<Vec<u8>, Status> {
    message
        .write_to_bytes()
        .map_err(|e| Status::internal(format!("ttrpc: error marshaling payload: {e}")))
}

fn not_implemented<T>(method: &str) -> TaskReply<T> {
    TaskReply::Ready(Err(Status::unimplemented(method)))
}

macro_rules! task_service {
    ($( $(#[$doc:meta])* $wire:literal => $method:ident($req:ty) -> $resp:ty; )*) => {
        /// One method per `containerd.task.v2.Task` RPC. Defaults answer
        /// Unimplemented `"<Method>: not implemented"`; the shim overrides what it supports.
        pub trait TaskService {
            $(
                $(#[$doc])*
                fn $method(&mut self, ctx: &Ctx, req: $req) -> TaskReply<$resp> {
                    let _ = (ctx, req);
                    not_implemented($wire)
                }
            )*
        }

        /// The 17 method names, as they appear on the wire.
        pub const TASK_METHODS: &[&str] = &[$($wire),*];

        /// Decodes `incoming`, calls the matching method and encodes its reply.
        ///
        /// Returns `None` when the method deferred its answer. Errors follow the Go server:
        /// another service gives Unimplemented "service X", an unknown method Unimplemented
        /// "method Y"; an undecodable payload gives InvalidArgument without calling the service.
        pub fn dispatch(
            service: &mut dyn TaskService,
            incoming: &Incoming,
        ) -> Option<Result<Vec<u8>, Status>> {
            if incoming.service != TASK_SERVICE {
                return Some(Err(Status::new(
                    Code::Unimplemented,
                    format!("service {}", incoming.service),
                )));
            }
            let ctx = Ctx {
                stream_id: incoming.stream_id,
                timeout_nano: incoming.timeout_nano,
                metadata: incoming.metadata.clone(),
            };
            match incoming.method.as_str() {
                $(
                    $wire => call(&incoming.payload, |req: $req| service.$method(&ctx, req)),
                )*
                other => Some(Err(Status::new(
                    Code::Unimplemented,
                    format!("method {other}"),
                ))),
            }
        }
    };
}

task_service! {
    /// Status of the init process (`exec_id` empty) or of an exec.
    "State" => state(StateRequest) -> StateResponse;
    /// Create the container (runc create); `checkpoint` set means restore at Start.
    "Create" => create(CreateTaskRequest) -> CreateTaskResponse;
    "Start" => start(StartRequest) -> StartResponse;
    /// Delete a stopped process; NotFound means "already gone" to containerd.
    "Delete" => delete(DeleteRequest) -> DeleteResponse;
    "Pids" => pids(PidsRequest) -> PidsResponse;
    "Pause" => pause(PauseRequest) -> Empty;
    "Resume" => resume(ResumeRequest) -> Empty;
    "Checkpoint" => checkpoint(CheckpointTaskRequest) -> Empty;
    "Kill" => kill(KillRequest) -> Empty;
    "Exec" => exec(ExecProcessRequest) -> Empty;
    "ResizePty" => resize_pty(ResizePtyRequest) -> Empty;
    "CloseIO" => close_io(CloseIORequest) -> Empty;
    "Update" => update(UpdateTaskRequest) -> Empty;
    /// Usually [`TaskReply::Deferred`] until the process exits; may arrive before Start.
    "Wait" => wait(WaitRequest) -> WaitResponse;
    "Stats" => stats(StatsRequest) -> StatsResponse;
    /// Also containerd's liveness probe; must report the init pid once created.
    "Connect" => connect(ConnectRequest) -> ConnectResponse;
    "Shutdown" => shutdown(ShutdownRequest) -> Empty;
}

fn call<Req: Message, Resp: Message>(
    payload: &[u8],
    handler: impl FnOnce(Req) -> TaskReply<Resp>,
) -> Option<Result<Vec<u8>, Status>> {
    let req = match Req::parse_from_bytes(payload) {
        Ok(req) => req,
        Err(e) => {
            return Some(Err(Status::new(
                Code::InvalidArgument,
                format!("ttrpc: error unmarshalling payload: {} {e}", Req::NAME),
            )))
        }
    };
    match handler(req) {
        TaskReply::Ready(Ok(resp)) => Some(encode_reply(&resp)),
        TaskReply::Ready(Err(status)) => Some(Err(status)),
        TaskReply::Deferred => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
    }

    impl TaskService for Recorder {
        fn connect(&mut self, ctx: &Ctx, req: ConnectRequest) -> TaskReply<ConnectResponse> {
            self.calls
                .push(format!("connect {} sid {}", req.id, ctx.stream_id));
            let mut resp = ConnectResponse::new();
            resp.shim_pid = 9872;
            resp.task_pid = 9911;
            TaskReply::Ready(Ok(resp))
        }

        fn wait(&mut self, ctx: &Ctx, req: WaitRequest) -> TaskReply<WaitResponse> {
            self.calls
                .push(format!("wait {} sid {}", req.id, ctx.stream_id));
            TaskReply::Deferred
        }

        fn kill(&mut self, _ctx: &Ctx, req: KillRequest) -> TaskReply<Empty> {
            self.calls.push(format!("kill {} {}", req.id, req.signal));
            Err(Status::not_found(format!("container {}", req.id))).into()
        }
    }

    fn incoming(method: &str, payload: Vec<u8>) -> Incoming {
        Incoming {
            stream_id: 7,
            service: TASK_SERVICE.into(),
            method: method.into(),
            payload,
            timeout_nano: 2_000_000_000,
            metadata: vec![],
        }
    }

    #[test]
    fn seventeen_methods() {
        assert_eq!(TASK_METHODS.len(), 17);
    }

    #[test]
    fn connect_reply_matches_protocol_doc_payload() {
        let mut svc = Recorder::default();
        let mut req = ConnectRequest::new();
        req.id = "proto-u1".into();
        let payload = req.write_to_bytes().unwrap();
        // containerd-protocol.md B2a: the request payload is `0a 08 "proto-u1"`.
        assert_eq!(payload, [&[0x0a, 0x08][..], b"proto-u1"].concat());
        let reply = dispatch(&mut svc, &incoming("Connect", payload))
            .unwrap()
            .unwrap();
        assert_eq!(reply, vec![0x08, 0x90, 0x4d, 0x10, 0xb7, 0x4d]);
        assert_eq!(svc.calls, ["connect proto-u1 sid 7"]);
    }

    #[test]
    fn deferred_wait_yields_none() {
        let mut svc = Recorder::default();
        let mut req = WaitRequest::new();
        req.id = "c1".into();
        assert!(dispatch(&mut svc, &incoming("Wait", req.write_to_bytes().unwrap())).is_none());
        assert_eq!(svc.calls, ["wait c1 sid 7"]);
    }

    #[test]
    fn errors_pass_through_and_empty_replies_are_empty() {
        let mut svc = Recorder::default();
        let mut req = KillRequest::new();
        req.id = "c9".into();
        req.signal = 9;
        let reply = dispatch(&mut svc, &incoming("Kill", req.write_to_bytes().unwrap())).unwrap();
        assert_eq!(
            reply,
            Err(Status::new(Code::NotFound, "container c9: not found"))
        );
        assert_eq!(encode_reply(&Empty::new()).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn default_methods_are_unimplemented() {
        let mut svc = Recorder::default();
        let reply = dispatch(&mut svc, &incoming("Pause", vec![])).unwrap();
        assert_eq!(
            reply,
            Err(Status::new(Code::Unimplemented, "Pause: not implemented"))
        );
    }

    #[test]
    fn unknown_method_and_service_read_like_go() {
        let mut svc = Recorder::default();
        let reply = dispatch(&mut svc, &incoming("Bogus", vec![])).unwrap();
        assert_eq!(reply, Err(Status::new(Code::Unimplemented, "method Bogus")));
        let mut other = incoming("State", vec![]);
        other.service = "containerd.task.v3.Task".into();
        assert_eq!(
            dispatch(&mut svc, &other).unwrap(),
            Err(Status::new(
                Code::Unimplemented,
                "service containerd.task.v3.Task"
            ))
        );
        assert!(svc.calls.is_empty());
    }

    #[test]
    fn garbage_payload_is_invalid_argument_and_service_is_not_called() {
        let mut svc = Recorder::default();
        let reply = dispatch(&mut svc, &incoming("Connect", vec![0x0a, 0x05, b'x'])).unwrap();
        let status = reply.unwrap_err();
        assert_eq!(status.code, Code::InvalidArgument);
        assert!(svc.calls.is_empty());
    }

    #[test]
    fn ctx_timeout() {
        let ctx = Ctx {
            stream_id: 1,
            timeout_nano: 2_000_000_000,
            metadata: vec![("k".into(), "v".into())],
        };
        assert_eq!(ctx.timeout(), Some(Duration::from_secs(2)));
        assert_eq!(ctx.metadata_value("k"), Some("v"));
        let none = Ctx {
            timeout_nano: 0,
            ..ctx
        };
        assert_eq!(none.timeout(), None);
    }
}
