//! Load and failure scenarios: parallel tasks, killed shim, containerd
//! restart, hostile ttrpc input.

use std::process::Stdio;
use std::time::Duration;

use berth_integration::*;
use libtest_mimic::Failed;

use crate::helpers::*;
use crate::Ctx;

pub(crate) fn twenty_in_parallel(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    let ctd = &ctx.ctd;
    ctd.import_test_image(ns);
    let children: Vec<_> = (0..20)
        .map(|i| {
            ctd.ctr_cmd(
                ns,
                &[
                    "run",
                    "--rm",
                    "--runtime",
                    rt,
                    IMAGE,
                    &format!("par{i}"),
                    "sh",
                    "-c",
                    &format!("echo par{i}"),
                ],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        })
        .collect::<Result<_, _>>()?;
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output()?;
        check(
            out.status.success() && stdout(&out) == format!("par{i}\n"),
            || {
                format!(
                    "par{i}: {} {:?} {:?}",
                    out.status,
                    stdout(&out),
                    stderr(&out)
                )
            },
        )?;
    }
    for i in 0..20 {
        clean(ctd, ns, &format!("par{i}"))?;
    }
    Ok(())
}

pub(crate) fn killed_shim(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    let ctd = &ctx.ctd;
    ctd.import_test_image(ns);
    run_detached(ctd, ns, rt, &[], "k1", &["sleep", "1000"])?;
    let pid = shim_pid(ctd, ns, "k1").ok_or("shim pid not found")?;
    let socket = shim_socket(ctd, ns, "k1");
    check(socket.exists(), || {
        format!("the shim's socket is not at {}", socket.display())
    })?;
    // SAFETY: plain kill(2) of the shim.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    // containerd notices the connection close and runs `shim delete`.
    let stopped = wait_until(Duration::from_secs(10), || {
        matches!(status(ctd, ns, "k1").as_str(), "STOPPED" | "")
    });
    check(stopped, || format!("task still {}", status(ctd, ns, "k1")))?;
    let _ = ctd.ctr(ns, &["task", "rm", "-f", "k1"]);
    ctd.ctr_ok(ns, &["c", "rm", "k1"])?;
    if rt == "io.containerd.runc.v2" {
        // The stock runc shim leaves its socket behind after SIGKILL; ours
        // is removed by `delete`, which `clean` checks.
        let _ = std::fs::remove_file(shim_socket(ctd, ns, "k1"));
    }
    clean(ctd, ns, "k1")
}

pub(crate) fn containerd_restart(rt: &str) -> Result<(), Failed> {
    let mut ctd = Containerd::start()?;
    let ns = unique_ns("restart");
    ctd.import_test_image(&ns);
    run_detached(&ctd, &ns, rt, &[], "long", &["sleep", "1000"])?;
    run_detached(
        &ctd,
        &ns,
        rt,
        &[],
        "short",
        &["sh", "-c", "sleep 1; exit 9"],
    )?;
    ctd.kill();
    // "short" exits while containerd is down.
    std::thread::sleep(Duration::from_millis(1500));
    ctd.restart()?;
    let r = (|| {
        check(status(&ctd, &ns, "long") == "RUNNING", || {
            format!("long is {}", status(&ctd, &ns, "long"))
        })?;
        let out = ctd.ctr(
            &ns,
            &[
                "task",
                "exec",
                "--exec-id",
                "after",
                "long",
                "sh",
                "-c",
                "exit 2",
            ],
        );
        check(out.status.code() == Some(2), || {
            format!("exec after restart: {}", out.status)
        })?;
        let got = exit_status(&ctd, &ns, "short");
        check(got == Some(9), || {
            format!("exit status of short after restart: {got:?}")
        })
    })();
    remove(&ctd, &ns, "long");
    remove(&ctd, &ns, "short");
    r?;
    clean(&ctd, &ns, "long")?;
    clean(&ctd, &ns, "short")?;
    remove_namespace_cgroups(&ns);
    Ok(())
}

/// Malformed frames, unknown services and methods, oversized messages,
/// garbage protobuf, unknown ids, duplicate exec ids: each gets an error
/// status and the shim keeps serving its container.
pub(crate) fn bad_input(ctx: &Ctx) -> Result<(), Failed> {
    use berth_ttrpc_api::task::{ConnectRequest, ExecProcessRequest, StateRequest};
    use berth_ttrpc_api::{BlockingClient, Code};
    let ctd = &ctx.ctd;
    let ns = unique_ns("badinput");
    ctd.import_test_image(&ns);
    ctd.ctr_ok(
        &ns,
        &[
            "run",
            "-d",
            "--runtime",
            "io.containerd.berth.v2",
            IMAGE,
            "b1",
            "sleep",
            "1000",
        ],
    )?;
    let addr = std::fs::read_to_string(ctd.task_state_dir(&ns).join("b1/address"))?;
    let r = (|| -> Result<(), Failed> {
        let svc = berth_ttrpc_api::TASK_SERVICE;
        let mut c = BlockingClient::connect(&addr)?;
        let code = |r: Result<Vec<u8>, berth_ttrpc_api::Error>| match r {
            Err(berth_ttrpc_api::Error::Status(s)) => Some(s.code),
            _ => None,
        };
        check(
            code(c.call_raw("bogus.Service", "State", Vec::new(), &[]))
                == Some(Code::Unimplemented),
            || "unknown service".into(),
        )?;
        check(
            code(c.call_raw(svc, "Bogus", Vec::new(), &[])) == Some(Code::Unimplemented),
            || "unknown method".into(),
        )?;
        check(
            code(c.call_raw(svc, "State", vec![0xff, 0xff, 0xff], &[]))
                == Some(Code::InvalidArgument),
            || "garbage protobuf".into(),
        )?;
        let mut req = StateRequest::new();
        req.id = "no-such-container".into();
        check(
            code(
                c.call::<_, berth_ttrpc_api::task::StateResponse>(svc, "State", &req)
                    .map(|_| Vec::new()),
            ) == Some(Code::NotFound),
            || "unknown id".into(),
        )?;
        let mut exec = ExecProcessRequest::new();
        exec.id = "b1".into();
        exec.exec_id = "dup".into();
        exec.spec =
            berth_ttrpc_api::protobuf::MessageField::some(berth_ttrpc_api::typeurl::pack_json(
                berth_ttrpc_api::typeurl::OCI_PROCESS,
                r#"{"args":["true"],"cwd":"/"}"#,
            ));
        c.call::<_, berth_ttrpc_api::protobuf::well_known_types::empty::Empty>(svc, "Exec", &exec)?;
        let again = c.call::<_, berth_ttrpc_api::protobuf::well_known_types::empty::Empty>(
            svc, "Exec", &exec,
        );
        check(
            matches!(again, Err(berth_ttrpc_api::Error::Status(ref s)) if s.code == Code::AlreadyExists),
            || format!("duplicate exec id: {again:?}"),
        )?;
        // Raw frames: an oversized message and a malformed header.
        raw_abuse(addr.trim())?;
        // Still serving: Connect works and ctr still controls the task.
        let mut c = BlockingClient::connect(&addr)?;
        let resp: berth_ttrpc_api::task::ConnectResponse = c.call(svc, "Connect", &{
            let mut r = ConnectRequest::new();
            r.id = "b1".into();
            r
        })?;
        check(resp.task_pid > 0, || "Connect after abuse".into())?;
        let out = ctd.ctr(
            &ns,
            &[
                "task",
                "exec",
                "--exec-id",
                "ok",
                "b1",
                "sh",
                "-c",
                "exit 5",
            ],
        );
        check(out.status.code() == Some(5), || {
            format!("exec after abuse: {}", out.status)
        })
        .map_err(Failed::from)
    })();
    remove(ctd, &ns, "b1");
    r?;
    clean(ctd, &ns, "b1")?;
    remove_namespace_cgroups(&ns);
    Ok(())
}

pub(crate) fn raw_abuse(addr: &str) -> Result<(), Failed> {
    use std::io::{Read, Write};
    let path = addr.trim_start_matches("unix://");
    // An oversized request (length field says 5 MiB): answered, skipped.
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let len: u32 = 5 << 20;
    let mut frame = Vec::new();
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&1u32.to_be_bytes());
    frame.extend_from_slice(&[1, 0]);
    s.write_all(&frame)?;
    s.write_all(&vec![0u8; len as usize])?;
    let mut header = [0u8; 10];
    s.read_exact(&mut header)?;
    let body_len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let mut body = vec![0u8; body_len];
    s.read_exact(&mut body)?;
    // Response{status{code 8 = RESOURCE_EXHAUSTED}}: bytes 0a .. 08 08.
    check(body.windows(2).any(|w| w == [0x08, 0x08]), || {
        format!("oversized: reply {body:02x?}")
    })?;
    // A truncated header followed by a close must not hurt the shim.
    let mut s = std::os::unix::net::UnixStream::connect(path)?;
    s.write_all(&[0, 0, 0])?;
    drop(s);
    Ok(())
}
