//! The ttrpc wire layer for containerd's runtime-v2 shim protocol, built to be driven from a
//! single-threaded mio loop: no threads, no async runtime.
//!
//! Map of the crate:
//! - [`frame`]: the 10-byte frame header and an incremental decoder.
//! - [`envelope`]: `ttrpc.Request` / `ttrpc.Response`.
//! - [`status`]: gRPC codes and `google.rpc.Status`, with containerd errdefs-style messages.
//! - [`listener`]: non-blocking accept with the SO_PEERCRED same-user check.
//! - [`server`]: one server connection as a state machine (`on_readable` / `respond` /
//!   `on_writable`); answers may come later and out of order.
//! - [`task`]: the `containerd.task.v2.Task` service trait and its dispatcher.
//! - [`publisher`]: the non-blocking `Events/Forward` publisher for `TTRPC_ADDRESS`.
//! - [`client`]: address parsing and a blocking client for one-shot calls.
//! - [`typeurl`]: `Any` packing with containerd's type URLs, runtime options.
//!
//! Message types are those of `containerd-shim-protos` (re-exported as [`protos`]), generated
//! for rust-protobuf 3.7.2 (re-exported as [`protobuf`]); depend on these re-exports so the
//! versions always match.
//!
//! Driving it from mio (see `examples/mini_shim.rs` for the whole loop):
//! - Listener token: on READABLE, `while let Some(s) = accept_same_user(&l)?` →
//!   `ServerConnection::new(s)` + `register(registry, token)`.
//! - Connection token: `on_writable()` if writable, then `on_readable()`; pass each
//!   [`Incoming`] to [`dispatch`] and `respond(stream_id, reply)` when it returns `Some`.
//!   Remember `(token, ctx.stream_id)` for [`TaskReply::Deferred`] calls and answer later with
//!   `respond(stream_id, encode_reply(&msg))`.
//! - After handling events and deferred answers: `sync_interest(registry)` on each
//!   connection; deregister and drop those with `is_closed()`.
//! - Publisher: give it its own token; `handle_event` on its events; poll with a timeout no
//!   later than `next_deadline()` and call `on_timer(now)` every iteration.

pub mod client;
pub mod envelope;
pub mod error;
pub mod frame;
pub mod listener;
pub mod publisher;
pub mod server;
pub mod status;
pub mod task;
pub mod typeurl;

pub use containerd_shim_protos as protos;
pub use protobuf;

pub use client::{call, BlockingClient};
pub use error::{Error, Result};
pub use listener::accept_same_user;
pub use publisher::{Publisher, PublisherConfig};
pub use server::{Incoming, ServerConnection};
pub use status::{Code, Status};
pub use task::{dispatch, encode_reply, Ctx, TaskReply, TaskService, TASK_SERVICE};
