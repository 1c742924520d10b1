//! Operations on a running task: exec, pause, metrics, limits, OOM,
//! events, checkpoint/restore.

use std::time::Duration;

use berth_integration::*;
use libtest_mimic::Failed;

use crate::helpers::*;
use crate::Ctx;

const COUNTER: &str = "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done";

pub(crate) fn detached_exec_pause_metrics(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    let ctd = &ctx.ctd;
    ctd.import_test_image(ns);
    run_detached(ctd, ns, rt, &[], "d1", &["sh", "-c", COUNTER])?;
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
        let ps = ctd.ctr_ok(ns, &["task", "ps", "d1"])?;
        check(ps.lines().count() >= 2, || format!("ps: {ps}"))?;
        let count = || ctd.task_state_dir(ns).join("d1/rootfs/tmp/count");
        ctd.ctr_ok(ns, &["task", "pause", "d1"])?;
        check(status(ctd, ns, "d1") == "PAUSED", || "not PAUSED".into())?;
        let a = std::fs::read_to_string(count()).unwrap_or_default();
        std::thread::sleep(Duration::from_millis(250));
        let b = std::fs::read_to_string(count()).unwrap_or_default();
        check(a == b, || format!("ran while paused: {a:?} -> {b:?}"))?;
        let out = ctd.ctr(ns, &["task", "exec", "--exec-id", "e2", "d1", "true"]);
        check(!out.status.success(), || {
            "exec into a paused task was allowed".into()
        })?;
        ctd.ctr_ok(ns, &["task", "resume", "d1"])?;
        check(
            wait_until(Duration::from_secs(3), || {
                std::fs::read_to_string(count()).unwrap_or_default() != b
            }),
            || "did not run after resume".into(),
        )?;
        let metrics = ctd.ctr_ok(ns, &["task", "metrics", "d1"])?;
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

pub(crate) fn memory_limit(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    let ctd = &ctx.ctd;
    ctd.import_test_image(ns);
    run_detached(
        ctd,
        ns,
        rt,
        &["--memory-limit", "33554432"],
        "m1",
        &["sleep", "1000"],
    )?;
    let file = format!("/sys/fs/cgroup/memory/{ns}/m1/memory.limit_in_bytes");
    let got = std::fs::read_to_string(&file).unwrap_or_default();
    remove(ctd, ns, "m1");
    check(got.trim() == "33554432", || format!("{file}: {got:?}"))?;
    clean(ctd, ns, "m1")
}

pub(crate) fn oom_kill(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
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

pub(crate) fn lifecycle_events(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    let ctd = &ctx.ctd;
    ctd.import_test_image(ns);
    let events = EventWatcher::start(ctd);
    run_detached(ctd, ns, rt, &[], "ev1", &["sleep", "1000"])?;
    ctd.ctr_ok(ns, &["task", "exec", "--exec-id", "x1", "ev1", "true"])?;
    ctd.ctr_ok(ns, &["task", "pause", "ev1"])?;
    ctd.ctr_ok(ns, &["task", "resume", "ev1"])?;
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

pub(crate) fn checkpoint_restore(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    let ctd = &ctx.ctd;
    ctd.import_test_image(ns);
    run_detached(ctd, ns, rt, &[], "c1", &["sh", "-c", COUNTER])?;
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
        ctd.ctr_ok(
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
        ctd.ctr_ok(ns, &["c", "restore", "--live", "--rw", "c2", "cp-c1:1"])?;
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
