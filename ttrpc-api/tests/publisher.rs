//! The event publisher against a fake containerd Events service (our own server module in a
//! thread) that goes away and comes back; plus the blocking client.

mod common;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use berth_ttrpc_api::envelope::NAMESPACE_METADATA_KEY;
use berth_ttrpc_api::protobuf::Message;
use berth_ttrpc_api::protos::shim::events::ForwardRequest;
use berth_ttrpc_api::publisher::{EVENTS_SERVICE, FORWARD_METHOD};
use berth_ttrpc_api::typeurl::{unpack, TaskExit, TaskStart};
use berth_ttrpc_api::{BlockingClient, Code, Error, Incoming, Publisher, PublisherConfig, Status};
use common::{temp_dir, Reply, TestServer};
use mio::{Events, Poll, Token};

const PUBLISHER: Token = Token(7);
const LIMIT: Duration = Duration::from_secs(15);

/// What the fake daemon saw.
#[derive(Debug, Clone)]
struct Seen {
    topic: String,
    namespace: String,
    md_namespace: Option<String>,
    pid: u32,
    has_timestamp: bool,
    timeout_nano: i64,
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Answer every Forward with Empty.
    Accept,
    /// Answer the first n Forwards with Unavailable, then accept.
    RejectFirst(usize),
    /// Read Forwards and never answer.
    Swallow,
}

struct FakeDaemon {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<usize>,
}

impl FakeDaemon {
    fn start(path: &Path, mode: Mode, tx: Sender<Seen>) -> FakeDaemon {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let path = path.to_path_buf();
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut srv = TestServer::bind(&path);
            ready_tx.send(()).expect("ready");
            let answered = Cell::new(0usize);
            let mut handler = |_t: Token, inc: &Incoming| -> Reply {
                if inc.service != EVENTS_SERVICE {
                    return Some(Err(Status::new(
                        Code::Unimplemented,
                        format!("service {}", inc.service),
                    )));
                }
                if inc.method != FORWARD_METHOD {
                    return Some(Err(Status::new(
                        Code::Unimplemented,
                        format!("method {}", inc.method),
                    )));
                }
                let req = ForwardRequest::parse_from_bytes(&inc.payload).expect("ForwardRequest");
                let env = req.envelope.get_or_default();
                let pid = if env.event.type_url == "containerd.events.TaskExit" {
                    unpack::<TaskExit>(&env.event).expect("TaskExit").pid
                } else {
                    unpack::<TaskStart>(&env.event).expect("TaskStart").pid
                };
                let _ = tx.send(Seen {
                    topic: env.topic.clone(),
                    namespace: env.namespace.clone(),
                    md_namespace: berth_ttrpc_api::envelope::metadata_value(
                        &inc.metadata,
                        NAMESPACE_METADATA_KEY,
                    )
                    .map(str::to_string),
                    pid,
                    has_timestamp: env.timestamp.is_some(),
                    timeout_nano: inc.timeout_nano,
                });
                let n = answered.get();
                answered.set(n + 1);
                match mode {
                    Mode::Accept => Some(Ok(Vec::new())),
                    Mode::RejectFirst(k) if n < k => {
                        Some(Err(Status::unavailable("exchange busy")))
                    }
                    Mode::RejectFirst(_) => Some(Ok(Vec::new())),
                    Mode::Swallow => None,
                }
            };
            while !flag.load(Ordering::SeqCst) {
                srv.turn(&mut handler, Duration::from_millis(10));
            }
            let accepted = srv.accepted;
            let path = srv.path.clone();
            drop(srv); // closes the listener and every connection
            std::fs::remove_file(path).expect("remove socket");
            accepted
        });
        ready_rx.recv().expect("daemon ready");
        FakeDaemon { stop, thread }
    }

    /// Stops the daemon; returns how many connections it accepted.
    fn stop(self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("daemon thread")
    }
}

struct Loop {
    poll: Poll,
    events: Events,
}

impl Loop {
    fn new() -> Loop {
        Loop {
            poll: Poll::new().expect("poll"),
            events: Events::with_capacity(16),
        }
    }

    /// One iteration of the shim's loop, as far as the publisher is concerned.
    fn turn(&mut self, p: &mut Publisher) {
        let now = Instant::now();
        let cap = Duration::from_millis(10);
        let timeout = p
            .next_deadline()
            .map_or(cap, |d| d.saturating_duration_since(now).min(cap));
        self.poll
            .poll(&mut self.events, Some(timeout))
            .expect("poll");
        for ev in self.events.iter() {
            assert_eq!(ev.token(), PUBLISHER);
            p.handle_event(ev);
        }
        p.on_timer(Instant::now());
    }

    fn run_until(&mut self, p: &mut Publisher, mut done: impl FnMut(&Publisher) -> bool) {
        let deadline = Instant::now() + LIMIT;
        while !done(p) {
            assert!(Instant::now() < deadline, "publisher scenario timed out");
            self.turn(p);
        }
    }

    fn run_for(&mut self, p: &mut Publisher, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.turn(p);
        }
    }
}

fn fast_config() -> PublisherConfig {
    PublisherConfig {
        backoff_initial: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        call_timeout: Duration::from_secs(2),
        ..PublisherConfig::default()
    }
}

fn exit_event(pid: u32) -> TaskExit {
    let mut e = TaskExit::new();
    e.container_id = "c1".into();
    e.id = "c1".into();
    e.pid = pid;
    e.exit_status = 137;
    e
}

fn setup(name: &str, config: PublisherConfig) -> (PathBuf, PathBuf, Loop, Publisher) {
    let dir = temp_dir(name);
    let path = dir.join("containerd.sock.ttrpc");
    let lp = Loop::new();
    let addr = path.to_str().expect("utf-8 path").to_string();
    let p = Publisher::with_config(&addr, "berth-test", lp.poll.registry(), PUBLISHER, config)
        .expect("publisher");
    (dir, path, lp, p)
}

fn drain(rx: &Receiver<Seen>) -> Vec<Seen> {
    rx.try_iter().collect()
}

#[test]
fn events_survive_a_daemon_restart_and_arrive_in_order() {
    let (dir, path, mut lp, mut p) = setup("restart", fast_config());
    let (tx, rx) = mpsc::channel();
    let daemon = FakeDaemon::start(&path, Mode::Accept, tx.clone());

    let mut start = TaskStart::new();
    start.container_id = "c1".into();
    start.pid = 1;
    p.publish_event(&start).expect("publish");
    p.publish_event(&exit_event(2)).expect("publish");
    lp.run_until(&mut p, |p| p.delivered() == 2);
    let seen = drain(&rx);
    assert_eq!(seen.iter().map(|s| s.pid).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(seen[0].topic, "/tasks/start");
    assert_eq!(seen[1].topic, "/tasks/exit");
    for s in &seen {
        assert_eq!(s.namespace, "berth-test");
        assert_eq!(s.md_namespace.as_deref(), Some("berth-test"));
        assert!(s.has_timestamp);
        assert_eq!(s.timeout_nano, 2_000_000_000);
    }

    // containerd goes away; the idle connection's EOF is noticed.
    assert_eq!(daemon.stop(), 1);
    lp.run_until(&mut p, |p| !p.is_connected());

    // Events produced while it is down stay queued.
    for pid in 3..=10 {
        p.publish_event(&exit_event(pid))
            .expect("publish while down");
    }
    lp.run_for(&mut p, Duration::from_millis(300));
    assert_eq!(p.queued(), 8);
    assert_eq!(p.delivered(), 2);
    assert!(p.next_deadline().is_some(), "a retry must be scheduled");

    // It comes back: everything arrives, once, in order.
    let daemon = FakeDaemon::start(&path, Mode::Accept, tx);
    lp.run_until(&mut p, |p| p.is_idle());
    let pids: Vec<_> = drain(&rx).iter().map(|s| s.pid).collect();
    assert_eq!(pids, (3..=10).collect::<Vec<_>>());
    assert_eq!((p.delivered(), p.dropped()), (10, 0));
    assert_eq!(daemon.stop(), 1, "one reconnection");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unanswered_event_is_resent_after_the_daemon_dies() {
    let (dir, path, mut lp, mut p) = setup("inflight", fast_config());
    let (tx, rx) = mpsc::channel();
    let daemon = FakeDaemon::start(&path, Mode::Swallow, tx.clone());
    p.publish_event(&exit_event(1)).expect("publish");
    p.publish_event(&exit_event(2)).expect("publish");
    let mut first = Vec::new();
    lp.run_until(&mut p, |_| {
        first.extend(rx.try_iter());
        !first.is_empty()
    });
    assert_eq!(first[0].pid, 1);
    lp.run_for(&mut p, Duration::from_millis(100));
    assert!(drain(&rx).is_empty(), "one call in flight at a time");
    daemon.stop();

    let daemon = FakeDaemon::start(&path, Mode::Accept, tx);
    lp.run_until(&mut p, |p| p.is_idle());
    let pids: Vec<_> = drain(&rx).iter().map(|s| s.pid).collect();
    assert_eq!(pids, [1, 2], "at-least-once, still in order");
    daemon.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rejected_events_are_retried_and_then_dropped() {
    // Two rejections are tolerated per event: the third attempt succeeds.
    let (dir, path, mut lp, mut p) = setup("reject", fast_config());
    let (tx, rx) = mpsc::channel();
    let daemon = FakeDaemon::start(&path, Mode::RejectFirst(2), tx.clone());
    p.publish_event(&exit_event(1)).expect("publish");
    p.publish_event(&exit_event(2)).expect("publish");
    lp.run_until(&mut p, |p| p.is_idle());
    let pids: Vec<_> = drain(&rx).iter().map(|s| s.pid).collect();
    assert_eq!(pids, [1, 1, 1, 2]);
    assert_eq!((p.delivered(), p.dropped()), (2, 0));
    daemon.stop();

    // With max_rejections = 2 the first event is evicted after its second rejection.
    let config = PublisherConfig {
        max_rejections: 2,
        ..fast_config()
    };
    let (dir2, path2, mut lp2, mut p2) = setup("reject-drop", config);
    let daemon = FakeDaemon::start(&path2, Mode::RejectFirst(2), tx);
    p2.publish_event(&exit_event(1)).expect("publish");
    p2.publish_event(&exit_event(2)).expect("publish");
    lp2.run_until(&mut p2, |p| p.is_idle());
    let pids: Vec<_> = drain(&rx).iter().map(|s| s.pid).collect();
    assert_eq!(pids, [1, 1, 2]);
    assert_eq!((p2.delivered(), p2.dropped()), (1, 1));
    daemon.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

#[test]
fn a_hung_daemon_is_abandoned_after_the_call_timeout() {
    let config = PublisherConfig {
        call_timeout: Duration::from_millis(150),
        ..fast_config()
    };
    let (dir, path, mut lp, mut p) = setup("hung", config);
    let (tx, rx) = mpsc::channel();
    let daemon = FakeDaemon::start(&path, Mode::Swallow, tx);
    p.publish_event(&exit_event(1)).expect("publish");
    let mut seen = Vec::new();
    lp.run_until(&mut p, |_| {
        seen.extend(rx.try_iter());
        seen.len() >= 2
    });
    assert!(seen.iter().all(|s| s.pid == 1));
    assert_eq!(p.queued(), 1);
    assert!(daemon.stop() >= 2, "each timeout reconnects");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_queue_is_bounded() {
    let config = PublisherConfig {
        queue_capacity: 3,
        ..fast_config()
    };
    let (dir, _path, _lp, mut p) = setup("bounded", config);
    for pid in 0..3 {
        p.publish_event(&exit_event(pid)).expect("fits");
    }
    let err = p.publish_event(&exit_event(3)).unwrap_err();
    assert!(matches!(err, Error::QueueFull { capacity: 3, .. }), "{err}");
    assert_eq!((p.queued(), p.dropped()), (3, 1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn blocking_client_calls_forward_and_reports_status_and_timeouts() {
    let dir = temp_dir("blocking");
    let path = dir.join("containerd.sock.ttrpc");
    let (tx, rx) = mpsc::channel();
    let daemon = FakeDaemon::start(&path, Mode::Accept, tx.clone());
    let addr = format!("unix://{}", path.display());

    let mut req = ForwardRequest::new();
    let env = req.envelope.mut_or_insert_default();
    env.topic = "/tasks/exit".into();
    env.namespace = "ns".into();
    env.event = berth_ttrpc_api::protobuf::MessageField::some(
        berth_ttrpc_api::typeurl::pack(&exit_event(5)).expect("pack"),
    );
    let mut client = BlockingClient::connect(&addr).expect("connect");
    client.set_timeout(Some(Duration::from_secs(5)));
    let reply: berth_ttrpc_api::protobuf::well_known_types::empty::Empty = client
        .call(EVENTS_SERVICE, FORWARD_METHOD, &req)
        .expect("forward");
    assert_eq!(reply, Default::default());
    assert_eq!(rx.recv_timeout(LIMIT).expect("seen").pid, 5);
    let err = client
        .call_raw(EVENTS_SERVICE, "Publish", vec![], &[])
        .unwrap_err();
    match err {
        Error::Status(st) => assert_eq!(st, Status::new(Code::Unimplemented, "method Publish")),
        other => panic!("unexpected {other}"),
    }
    // The one-shot helper on a fresh connection.
    let raw = berth_ttrpc_api::call(
        path.to_str().expect("utf-8"),
        EVENTS_SERVICE,
        FORWARD_METHOD,
        req.write_to_bytes().expect("encode"),
        Some(Duration::from_secs(5)),
    )
    .expect("call");
    assert!(raw.is_empty());
    daemon.stop();

    let daemon = FakeDaemon::start(&path, Mode::Swallow, tx);
    let mut client = BlockingClient::connect(&addr).expect("connect");
    client.set_timeout(Some(Duration::from_millis(200)));
    let err = client
        .call_raw(
            EVENTS_SERVICE,
            FORWARD_METHOD,
            req.write_to_bytes().expect("encode"),
            &[],
        )
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    daemon.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
