//! containerd-shim-berth-v2 under an unmodified containerd 1.6, driven by
//! stock `ctr`. Every scenario runs against our shim and against the stock
//! runc shim (io.containerd.runc.v2) in the same test run.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use berth_integration::*;
use libtest_mimic::{Arguments, Failed, Trial};

struct Ctx {
    ctd: Containerd,
}

type Test = fn(&Ctx, &str, &str) -> Result<(), Failed>;

const RUNTIMES: [(&str, &str); 2] = [
    ("berth", "io.containerd.berth.v2"),
    ("runc", "io.containerd.runc.v2"),
];

fn main() {
    let args = Arguments::from_args();
    let ctx = Arc::new(Ctx {
        ctd: Containerd::start().expect("start containerd"),
    });
    let tests: &[(&str, Test)] = &[
        ("run_output_exit_code_env_cwd", run_output_env_cwd),
        ("namespaces_are_isolated", namespaces_isolated),
        ("piped_stdin_reaches_the_container", piped_stdin),
        ("tty_run_has_a_terminal_of_the_client_size", tty_run),
        ("read_only_rootfs_refuses_writes", read_only_rootfs),
        (
            "detached_run_exec_ps_pause_resume_metrics",
            detached_exec_pause_metrics,
        ),
        ("sigterm_and_sigkill_exit_statuses", signals),
        ("memory_limit_is_applied_in_the_cgroup", memory_limit),
        ("oom_kill_reports_137_and_the_oom_event", oom_kill),
        ("events_of_a_full_lifecycle_in_order", lifecycle_events),
        (
            "checkpoint_and_live_restore_resume_the_process",
            checkpoint_restore,
        ),
        ("twenty_containers_in_parallel", twenty_in_parallel),
        ("killed_shim_is_cleaned_up_by_containerd", killed_shim),
    ];
    let mut trials = Vec::new();
    for (rt_name, runtime) in RUNTIMES {
        for (name, f) in tests {
            let (ctx, f, name) = (ctx.clone(), *f, *name);
            trials.push(Trial::test(format!("{rt_name}::{name}"), move || {
                let ns = unique_ns(name);
                let r = f(&ctx, &ns, runtime);
                let _ = ctx.ctd.ctr(&ns, &["images", "rm", IMAGE]);
                remove_namespace_cgroups(&ns);
                r
            }));
        }
        trials.push(Trial::test(
            format!("{rt_name}::containerd_killed_and_restarted_while_tasks_run"),
            move || containerd_restart(runtime),
        ));
    }
    trials.push(Trial::test("berth::shim_survives_bad_ttrpc_input", {
        let ctx = ctx.clone();
        move || bad_input(&ctx)
    }));
    let conclusion = libtest_mimic::run(&args, trials);
    drop(ctx);
    conclusion.exit();
}

/// Runs ctr; a failure is a test failure (not a panic), so cleanup still runs.
fn ok(ctd: &Containerd, ns: &str, args: &[&str]) -> Result<String, Failed> {
    let out = ctd.ctr(ns, args);
    if out.status.success() {
        Ok(stdout(&out))
    } else {
        Err(format!(
            "ctr {args:?} failed ({}): {}{}",
            out.status,
            stdout(&out),
            stderr(&out)
        )
        .into())
    }
}

fn check(cond: bool, msg: impl FnOnce() -> String) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(msg().into())
    }
}

fn clean(ctd: &Containerd, ns: &str, id: &str) -> Result<(), Failed> {
    let ok = wait_until(Duration::from_secs(10), || {
        leftovers(ns, id, ctd).is_empty()
    });
    check(ok, || {
        format!("left behind by {id}: {:?}", leftovers(ns, id, ctd))
    })
}

fn status(ctd: &Containerd, ns: &str, id: &str) -> String {
    let out = stdout(&ctd.ctr(ns, &["task", "ls"]));
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("")
        .to_string()
}

/// Waits for a task to stop and returns its exit status, from the warning
/// `ctr task rm` prints ("exit with non-zero exit code N"; 0 prints none).
/// ctr 1.6 has no `task wait`.
fn exit_status(ctd: &Containerd, ns: &str, id: &str) -> Option<u32> {
    if !wait_until(Duration::from_secs(10), || status(ctd, ns, id) == "STOPPED") {
        return None;
    }
    let out = ctd.ctr(ns, &["task", "rm", id]);
    let err = stderr(&out);
    match err.split("exit code ").nth(1) {
        Some(rest) => rest
            .trim_matches(|c: char| !c.is_ascii_digit())
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok(),
        None => out.status.success().then_some(0),
    }
}

fn remove(ctd: &Containerd, ns: &str, id: &str) {
    let _ = ctd.ctr(ns, &["task", "kill", "-s", "9", id]);
    wait_until(Duration::from_secs(5), || {
        matches!(status(ctd, ns, id).as_str(), "" | "STOPPED")
    });
    let _ = ctd.ctr(ns, &["task", "rm", "-f", id]);
    let _ = ctd.ctr(ns, &["c", "rm", id]);
}

/// `ctr run --rm` with the runtime; returns (exit code, stdout, stderr).
fn run_rm(
    ctd: &Containerd,
    ns: &str,
    rt: &str,
    extra: &[&str],
    id: &str,
    cmd: &[&str],
) -> (i32, String, String) {
    let mut args = vec!["run", "--rm", "--runtime", rt];
    args.extend_from_slice(extra);
    args.push(IMAGE);
    args.push(id);
    args.extend_from_slice(cmd);
    let out = ctd.ctr(ns, &args);
    (out.status.code().unwrap_or(-1), stdout(&out), stderr(&out))
}

fn run_output_env_cwd(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    ctx.ctd.import_test_image(ns);
    let (code, out, err) = run_rm(
        &ctx.ctd,
        ns,
        rt,
        &["--env", "GREETING=hi there", "--cwd", "/tmp"],
        "o1",
        &[
            "sh",
            "-c",
            "echo \"$GREETING\"; pwd; echo to-stderr >&2; exit 3",
        ],
    );
    check(code == 3, || format!("exit code {code}, stderr {err}"))?;
    check(out == "hi there\n/tmp\n", || format!("stdout {out:?}"))?;
    check(err.contains("to-stderr"), || format!("stderr {err:?}"))?;
    clean(&ctx.ctd, ns, "o1")
}

fn namespaces_isolated(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    ctx.ctd.import_test_image(ns);
    let host_pid_ns = std::fs::read_link("/proc/self/ns/pid")?
        .display()
        .to_string();
    let host_net_ns = std::fs::read_link("/proc/self/ns/net")?
        .display()
        .to_string();
    let (code, out, err) = run_rm(
        &ctx.ctd,
        ns,
        rt,
        &[],
        "n1",
        &["sh", "-c", "echo $$; readlink /proc/self/ns/uts; readlink /proc/self/ns/pid; readlink /proc/self/ns/net; ls /sys/class/net"],
    );
    check(code == 0, || format!("exit {code}: {err}"))?;
    let lines: Vec<&str> = out.lines().collect();
    check(lines.first() == Some(&"1"), || {
        format!("shell is not pid 1: {out}")
    })?;
    let host_uts = std::fs::read_link("/proc/self/ns/uts")?
        .display()
        .to_string();
    check(lines.get(1) != Some(&host_uts.as_str()), || {
        "shares the host uts namespace".into()
    })?;
    check(
        lines
            .get(2)
            .is_some_and(|l| l.starts_with("pid:") && *l != host_pid_ns),
        || format!("pid namespace: {out}"),
    )?;
    check(
        lines
            .get(3)
            .is_some_and(|l| l.starts_with("net:") && *l != host_net_ns),
        || format!("network namespace: {out}"),
    )?;
    check(lines.get(4) == Some(&"lo") && lines.len() == 5, || {
        format!("network interfaces: {out}")
    })?;
    clean(&ctx.ctd, ns, "n1")
}

fn piped_stdin(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    ctx.ctd.import_test_image(ns);
    // ctr only sends CloseIO once the task exists, so delay EOF a little.
    let mut child = ctx
        .ctd
        .ctr_cmd(
            ns,
            &[
                "run",
                "--rm",
                "--runtime",
                rt,
                IMAGE,
                "p1",
                "sh",
                "-c",
                "tr a-z A-Z; echo done",
            ],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    std::thread::spawn(move || {
        use std::io::Write;
        std::thread::sleep(Duration::from_millis(500));
        let _ = stdin.write_all(b"piped words\n");
    });
    let out = child.wait_with_output()?;
    let text = stdout(&out);
    check(out.status.success(), || format!("status {}", out.status))?;
    check(text == "PIPED WORDS\ndone\n", || format!("stdout {text:?}"))?;
    clean(&ctx.ctd, ns, "p1")
}

fn tty_run(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    ctx.ctd.import_test_image(ns);
    // script(1) gives ctr a terminal of 40x100; ctr sends ResizePty only
    // after Start, hence the sleep before reading the size. script's stdin
    // stays open (a pipe) so it does not hang up the terminal early.
    let cmd = format!(
        "stty rows 40 cols 100; ctr -a {} -n {ns} run -t --rm --runtime {rt} {IMAGE} t1 sh -c 'tty; sleep 0.5; stty size; exit 4'",
        ctx.ctd.address.display()
    );
    let out = std::process::Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .env("PATH", test_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?
        .wait_with_output()?;
    let text = stdout(&out);
    check(out.status.code() == Some(4), || {
        format!("status {} output {text:?}", out.status)
    })?;
    check(
        text.contains("/dev/pts/0") || text.contains("/dev/console"),
        || format!("no terminal: {text:?}"),
    )?;
    check(text.contains("40 100"), || {
        format!("window size not applied: {text:?}")
    })?;
    clean(&ctx.ctd, ns, "t1")
}

fn read_only_rootfs(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    ctx.ctd.import_test_image(ns);
    let (code, out, _) = run_rm(
        &ctx.ctd,
        ns,
        rt,
        &["--read-only"],
        "ro1",
        &["sh", "-c", "touch /newfile 2>&1; echo rc=$?"],
    );
    check(code == 0, || format!("exit {code}"))?;
    check(
        out.contains("Read-only file system") && out.contains("rc=1"),
        || format!("write was allowed: {out:?}"),
    )?;
    clean(&ctx.ctd, ns, "ro1")
}

const COUNTER: &str = "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done";

fn detached_exec_pause_metrics(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    let ctd = &ctx.ctd;
    ctd.import_test_image(ns);
    ok(
        ctd,
        ns,
        &[
            "run",
            "-d",
            "--runtime",
            rt,
            IMAGE,
            "d1",
            "sh",
            "-c",
            COUNTER,
        ],
    )?;
    let r = (|| {
        check(status(ctd, ns, "d1") == "RUNNING", || "not RUNNING".into())?;
        let out = ctd.ctr(
            ns,
            &[
                "task",
                "exec",
                "--exec-id",
                "e1",
                "d1",
                "sh",
                "-c",
                "echo exec-out; exit 6",
            ],
        );
        check(out.status.code() == Some(6), || {
            format!("exec status {}", out.status)
        })?;
        check(stdout(&out) == "exec-out\n", || {
            format!("exec stdout {:?}", stdout(&out))
        })?;
        let ps = ok(ctd, ns, &["task", "ps", "d1"])?;
        check(ps.lines().count() >= 2, || format!("ps: {ps}"))?;
        let count = || ctd.task_state_dir(ns).join("d1/rootfs/tmp/count");
        ok(ctd, ns, &["task", "pause", "d1"])?;
        check(status(ctd, ns, "d1") == "PAUSED", || "not PAUSED".into())?;
        let a = std::fs::read_to_string(count()).unwrap_or_default();
        std::thread::sleep(Duration::from_millis(250));
        let b = std::fs::read_to_string(count()).unwrap_or_default();
        check(a == b, || format!("ran while paused: {a:?} -> {b:?}"))?;
        let out = ctd.ctr(ns, &["task", "exec", "--exec-id", "e2", "d1", "true"]);
        check(!out.status.success(), || {
            "exec into a paused task was allowed".into()
        })?;
        ok(ctd, ns, &["task", "resume", "d1"])?;
        check(
            wait_until(Duration::from_secs(3), || {
                std::fs::read_to_string(count()).unwrap_or_default() != b
            }),
            || "did not run after resume".into(),
        )?;
        let metrics = ok(ctd, ns, &["task", "metrics", "d1"])?;
        for key in ["memory.usage_in_bytes", "cpuacct.usage", "pids.current"] {
            check(metrics.contains(key), || {
                format!("metrics lack {key}: {metrics}")
            })?;
        }
        let pids_line = metrics
            .lines()
            .find(|l| l.starts_with("pids.current"))
            .unwrap_or("");
        check(
            pids_line
                .split_whitespace()
                .nth(1)
                .is_some_and(|v| v != "0"),
            || format!("pids.current: {pids_line}"),
        )
    })();
    remove(ctd, ns, "d1");
    r?;
    clean(ctd, ns, "d1")
}

fn signals(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    let ctd = &ctx.ctd;
    ctd.import_test_image(ns);
    // A trap makes SIGTERM end the shell with status 143; pid 1 ignores it otherwise.
    ok(
        ctd,
        ns,
        &[
            "run",
            "-d",
            "--runtime",
            rt,
            IMAGE,
            "s1",
            "sh",
            "-c",
            "trap 'exit 143' TERM; while true; do sleep 0.05; done",
        ],
    )?;
    ok(
        ctd,
        ns,
        &["run", "-d", "--runtime", rt, IMAGE, "s2", "sleep", "1000"],
    )?;
    let r = (|| -> Result<(), Failed> {
        ok(ctd, ns, &["task", "kill", "s1"])?;
        ok(ctd, ns, &["task", "kill", "-s", "SIGKILL", "s2"])?;
        for (id, want) in [("s1", 143), ("s2", 137)] {
            let got = exit_status(ctd, ns, id);
            check(got == Some(want), || {
                format!("{id}: exit status {got:?}, want {want}")
            })?;
        }
        Ok(())
    })();
    remove(ctd, ns, "s1");
    remove(ctd, ns, "s2");
    r?;
    clean(ctd, ns, "s1")?;
    clean(ctd, ns, "s2")
}

fn memory_limit(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    let ctd = &ctx.ctd;
    ctd.import_test_image(ns);
    ok(
        ctd,
        ns,
        &[
            "run",
            "-d",
            "--runtime",
            rt,
            "--memory-limit",
            "33554432",
            IMAGE,
            "m1",
            "sleep",
            "1000",
        ],
    )?;
    let file = format!("/sys/fs/cgroup/memory/{ns}/m1/memory.limit_in_bytes");
    let got = std::fs::read_to_string(&file).unwrap_or_default();
    remove(ctd, ns, "m1");
    check(got.trim() == "33554432", || format!("{file}: {got:?}"))?;
    clean(ctd, ns, "m1")
}

fn oom_kill(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    let ctd = &ctx.ctd;
    ctd.import_test_image(ns);
    let events = EventWatcher::start(ctd);
    let (code, _, err) = run_rm(
        ctd,
        ns,
        rt,
        &["--memory-limit", "16777216"],
        "oom1",
        // The pause lets the stock shim register its OOM watch (it does so
        // after Start returns).
        &[
            "sh",
            "-c",
            "sleep 0.5; exec dd if=/dev/zero of=/dev/null bs=64M count=1",
        ],
    );
    check(code == 137, || {
        format!("allocation above the limit: exit {code}: {err}")
    })?;
    check(
        events.wait_for(ns, "/tasks/oom", "oom1", Duration::from_secs(5)),
        || format!("no /tasks/oom event; saw {:?}", events.topics(ns)),
    )?;
    clean(ctd, ns, "oom1")
}

fn lifecycle_events(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    let ctd = &ctx.ctd;
    ctd.import_test_image(ns);
    let events = EventWatcher::start(ctd);
    ok(
        ctd,
        ns,
        &["run", "-d", "--runtime", rt, IMAGE, "ev1", "sleep", "1000"],
    )?;
    ok(ctd, ns, &["task", "exec", "--exec-id", "x1", "ev1", "true"])?;
    ok(ctd, ns, &["task", "pause", "ev1"])?;
    ok(ctd, ns, &["task", "resume", "ev1"])?;
    remove(ctd, ns, "ev1");
    check(
        events.wait_for(ns, "/tasks/delete", "ev1", Duration::from_secs(5)),
        || "no /tasks/delete".into(),
    )?;
    let topics: Vec<String> = events
        .topics(ns)
        .into_iter()
        .filter(|(t, _)| t.starts_with("/tasks/"))
        .map(|(t, _)| t)
        .collect();
    let expected = [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exec-added",
        "/tasks/exec-started",
        "/tasks/exit",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/exit",
        "/tasks/delete",
    ];
    check(topics == expected, || {
        format!("events {topics:?}, expected {expected:?}")
    })?;
    clean(ctd, ns, "ev1")
}

fn checkpoint_restore(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    let ctd = &ctx.ctd;
    ctd.import_test_image(ns);
    ok(
        ctd,
        ns,
        &[
            "run",
            "-d",
            "--runtime",
            rt,
            IMAGE,
            "c1",
            "sh",
            "-c",
            COUNTER,
        ],
    )?;
    let n = std::sync::atomic::AtomicU32::new(0);
    let read = |id: &str| -> u64 {
        let e = format!("r{}", n.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        stdout(&ctd.ctr(
            ns,
            &["task", "exec", "--exec-id", &e, id, "cat", "/tmp/count"],
        ))
        .trim()
        .parse()
        .unwrap_or(0)
    };
    let r = (|| {
        check(
            wait_until(Duration::from_secs(3), || read("c1") > 5),
            || "counter did not start".into(),
        )?;
        ok(
            ctd,
            ns,
            &[
                "c",
                "checkpoint",
                "--task",
                "--image",
                "--rw",
                "c1",
                "cp-c1:1",
            ],
        )?;
        let at = read("c1");
        remove(ctd, ns, "c1");
        ok(
            ctd,
            ns,
            &["c", "restore", "--live", "--rw", "c2", "cp-c1:1"],
        )?;
        check(status(ctd, ns, "c2") == "RUNNING", || {
            "restored task not RUNNING".into()
        })?;
        let first = read("c2");
        check(first > 0 && first + 40 >= at, || {
            format!("restored counter {first} does not continue from {at}")
        })?;
        check(
            wait_until(Duration::from_secs(3), || read("c2") > first),
            || "restored process does not run".into(),
        )
    })();
    remove(ctd, ns, "c2");
    remove(ctd, ns, "c1");
    let _ = ctd.ctr(ns, &["images", "rm", "cp-c1:1"]);
    r?;
    clean(ctd, ns, "c1")?;
    clean(ctd, ns, "c2")
}

fn twenty_in_parallel(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
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

fn killed_shim(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    let ctd = &ctx.ctd;
    ctd.import_test_image(ns);
    ok(
        ctd,
        ns,
        &["run", "-d", "--runtime", rt, IMAGE, "k1", "sleep", "1000"],
    )?;
    let pid = shim_pid(ctd, ns, "k1").ok_or("shim pid not found")?;
    // SAFETY: plain kill(2) of the shim.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    // containerd notices the connection close and runs `shim delete`.
    let stopped = wait_until(Duration::from_secs(10), || {
        matches!(status(ctd, ns, "k1").as_str(), "STOPPED" | "")
    });
    check(stopped, || format!("task still {}", status(ctd, ns, "k1")))?;
    let _ = ctd.ctr(ns, &["task", "rm", "-f", "k1"]);
    ok(ctd, ns, &["c", "rm", "k1"])?;
    clean(ctd, ns, "k1")
}

fn containerd_restart(rt: &str) -> Result<(), Failed> {
    let mut ctd = Containerd::start()?;
    let ns = unique_ns("restart");
    ctd.import_test_image(&ns);
    ok(
        &ctd,
        &ns,
        &["run", "-d", "--runtime", rt, IMAGE, "long", "sleep", "1000"],
    )?;
    ok(
        &ctd,
        &ns,
        &[
            "run",
            "-d",
            "--runtime",
            rt,
            IMAGE,
            "short",
            "sh",
            "-c",
            "sleep 1; exit 9",
        ],
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
fn bad_input(ctx: &Ctx) -> Result<(), Failed> {
    use berth_ttrpc_api::task::{ConnectRequest, ExecProcessRequest, StateRequest};
    use berth_ttrpc_api::{BlockingClient, Code};
    let ctd = &ctx.ctd;
    let ns = unique_ns("badinput");
    ctd.import_test_image(&ns);
    ok(
        ctd,
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
    })();
    remove(ctd, &ns, "b1");
    r?;
    clean(ctd, &ns, "b1")?;
    remove_namespace_cgroups(&ns);
    Ok(())
}

fn raw_abuse(addr: &str) -> Result<(), Failed> {
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
