//! Opt-in check against a real containerd (Go ttrpc server): set
//! `BERTH_INTEROP_CONTAINERD=<grpc socket path>` for a running daemon whose ttrpc socket is
//! `<grpc socket path>.ttrpc` and `ctr` on PATH. Skipped (passes) otherwise.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use berth_ttrpc_api::protobuf::MessageField;
use berth_ttrpc_api::protos::shim::events::ForwardRequest;
use berth_ttrpc_api::publisher::{EVENTS_SERVICE, FORWARD_METHOD};
use berth_ttrpc_api::typeurl::{pack, TaskExit};
use berth_ttrpc_api::{BlockingClient, Code, Error, Publisher};
use mio::{Events, Poll, Token};

#[test]
fn forward_events_to_a_real_containerd() {
    let Ok(grpc) = std::env::var("BERTH_INTEROP_CONTAINERD") else {
        eprintln!("skipped: BERTH_INTEROP_CONTAINERD not set");
        return;
    };
    let ttrpc = format!("{grpc}.ttrpc");

    // The Go server's answers to mistakes, as our server imitates them.
    let mut client = BlockingClient::connect(&ttrpc).expect("connect");
    client.set_timeout(Some(Duration::from_secs(5)));
    let bogus = client
        .call_raw(EVENTS_SERVICE, "Bogus", vec![], &[])
        .unwrap_err();
    let Error::Status(st) = bogus else {
        panic!("{bogus}")
    };
    assert_eq!(
        (st.code, st.message.as_str()),
        (Code::Unimplemented, "method Bogus")
    );
    let mut no_ts = ForwardRequest::new();
    let env = no_ts.envelope.mut_or_insert_default();
    env.namespace = "default".into();
    env.topic = "/tasks/exit".into();
    env.event = MessageField::some(pack(&TaskExit::new()).expect("pack"));
    let err = client
        .call::<_, berth_ttrpc_api::protobuf::well_known_types::empty::Empty>(
            EVENTS_SERVICE,
            FORWARD_METHOD,
            &no_ts,
        )
        .unwrap_err();
    let Error::Status(st) = err else {
        panic!("{err}")
    };
    assert_eq!(st.code, Code::InvalidArgument);
    assert!(
        st.message.contains("timestamp must be set"),
        "{}",
        st.message
    );

    // A subscriber, then an event through the publisher.
    let mut ctr = Command::new("ctr")
        .args(["--address", &grpc, "events"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn ctr events");
    let stdout = ctr.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));

    let mut poll = Poll::new().expect("poll");
    let mut events = Events::with_capacity(8);
    let mut p = Publisher::new(&ttrpc, "default", poll.registry(), Token(1)).expect("publisher");
    let mut exit = TaskExit::new();
    exit.container_id = "berth-interop".into();
    exit.id = "berth-interop".into();
    exit.pid = 4242;
    exit.exit_status = 137;
    p.publish_event(&exit).expect("publish");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.is_idle() {
        assert!(Instant::now() < deadline, "not delivered");
        poll.poll(&mut events, Some(Duration::from_millis(20)))
            .expect("poll");
        for ev in events.iter() {
            p.handle_event(ev);
        }
        p.on_timer(Instant::now());
    }
    assert_eq!((p.delivered(), p.dropped()), (1, 0));

    let line = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("ctr events line");
        if line.contains("berth-interop") {
            break line;
        }
    };
    let _ = ctr.kill();
    let _ = ctr.wait();
    eprintln!("ctr events: {line}");
    assert!(line.contains("default /tasks/exit"), "{line}");
    assert!(line.contains("\"pid\":4242"), "{line}");
    assert!(line.contains("\"exit_status\":137"), "{line}");
}
