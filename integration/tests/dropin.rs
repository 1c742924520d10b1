//! berth-runc as a drop-in for runc under containerd 1.6's stock runc shim
//! (`ctr run --runc-binary`). Every scenario also runs with runc itself in
//! the same test run, which proves the scenario (and the harness) right.

use std::sync::Arc;
use std::time::Duration;

use berth_integration::*;
use libtest_mimic::{Arguments, Failed, Trial};

struct Ctx {
    ctd: Containerd,
}

type Test = fn(&Ctx, &str, &str) -> Result<(), Failed>;

fn main() {
    let args = Arguments::from_args();
    let ctd = Containerd::start().expect("start containerd");
    let ctx = Arc::new(Ctx { ctd });
    let runtimes = [
        (
            "berth-runc",
            release_binary("berth-runc").display().to_string(),
        ),
        ("runc", "/usr/sbin/runc".to_string()),
    ];
    let tests: [(&str, Test); 5] = [
        (
            "run_prints_output_and_returns_exit_code",
            run_output_and_exit_code,
        ),
        (
            "containerd_default_seccomp_profile_loads_and_blocks",
            default_seccomp,
        ),
        ("exec_ps_pause_resume_and_sigkill", exec_pause_resume_kill),
        (
            "checkpoint_then_live_restore_resumes_process",
            checkpoint_restore,
        ),
        ("bad_config_fails_cleanly", bad_config_fails_cleanly),
    ];
    let mut trials = Vec::new();
    for (rt_name, rt_path) in &runtimes {
        for (name, f) in tests {
            let ctx = ctx.clone();
            let rt = rt_path.clone();
            let label = format!("{rt_name}::{name}");
            trials.push(Trial::test(label, move || {
                let ns = unique_ns(name);
                let r = f(&ctx, &ns, &rt);
                remove_namespace_cgroups(&ns);
                r
            }));
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);
    drop(ctx);
    conclusion.exit();
}

fn assert_clean(ctx: &Ctx, ns: &str, id: &str) -> Result<(), Failed> {
    let ok = wait_until(Duration::from_secs(5), || {
        leftovers(ns, id, &ctx.ctd).is_empty()
    });
    check(ok, || {
        format!("left behind: {:?}", leftovers(ns, id, &ctx.ctd))
    })
    .map_err(Failed::from)
}

fn task_status(ctx: &Ctx, ns: &str, id: &str) -> String {
    let out = stdout(&ctx.ctd.ctr(ns, &["task", "ls"]));
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("")
        .to_string()
}

fn remove(ctx: &Ctx, ns: &str, id: &str) {
    let _ = ctx.ctd.ctr(ns, &["task", "kill", "-s", "9", id]);
    wait_until(Duration::from_secs(5), || {
        let s = task_status(ctx, ns, id);
        s.is_empty() || s == "STOPPED"
    });
    let _ = ctx.ctd.ctr(ns, &["task", "rm", "-f", id]);
    let _ = ctx.ctd.ctr(ns, &["c", "rm", id]);
}

fn run_output_and_exit_code(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    let image = ctx.ctd.import_test_image(ns);
    let out = ctx.ctd.ctr(
        ns,
        &[
            "run",
            "--rm",
            "--runc-binary",
            rt,
            &image,
            "r1",
            "sh",
            "-c",
            "echo hello from a container; exit 7",
        ],
    );
    check(out.status.code() == Some(7), || {
        format!("exit status {} ({})", out.status, stderr(&out))
    })?;
    check(stdout(&out) == "hello from a container\n", || {
        format!("stdout: {:?}", stdout(&out))
    })?;
    assert_clean(ctx, ns, "r1")
}

/// `ctr run --seccomp`: containerd's default profile is loaded by the
/// runtime, ordinary work runs and unshare(2), which the profile leaves
/// out, is refused with EPERM.
fn default_seccomp(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    let image = ctx.ctd.import_test_image(ns);
    let script = "grep -E '^Seccomp:' /proc/self/status; ls / > /dev/null && echo ls-works; \
                  unshare -U true 2>&1; echo unshare=$?";
    let out = ctx.ctd.ctr(
        ns,
        &[
            "run",
            "--rm",
            "--seccomp",
            "--runc-binary",
            rt,
            &image,
            "sc1",
            "sh",
            "-c",
            script,
        ],
    );
    let text = stdout(&out);
    check(out.status.success(), || {
        format!("exit status {} ({})", out.status, stderr(&out))
    })?;
    check(
        text.contains("Seccomp:\t2")
            && text.contains("ls-works")
            && text.contains("Operation not permitted")
            && text.contains("unshare=1"),
        || format!("output under the default profile: {text:?}"),
    )?;
    assert_clean(ctx, ns, "sc1")
}

fn exec_pause_resume_kill(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    let image = ctx.ctd.import_test_image(ns);
    let id = "d1";
    ctx.ctd.ctr_ok(
        ns,
        &[
            "run",
            "-d",
            "--runc-binary",
            rt,
            &image,
            id,
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done",
        ],
    )?;
    let result = (|| {
        check(task_status(ctx, ns, id) == "RUNNING", || {
            "task is not RUNNING".into()
        })?;
        let out = ctx.ctd.ctr(
            ns,
            &[
                "task",
                "exec",
                "--exec-id",
                "e1",
                id,
                "sh",
                "-c",
                "echo in-exec; exit 3",
            ],
        );
        check(out.status.code() == Some(3), || {
            format!("exec exit status {}", out.status)
        })?;
        check(stdout(&out).contains("in-exec"), || {
            format!("exec stdout {:?}", stdout(&out))
        })?;
        let ps = ctx.ctd.ctr_ok(ns, &["task", "ps", id])?;
        check(ps.lines().count() >= 2, || format!("task ps: {ps}"))?;
        ctx.ctd.ctr_ok(ns, &["task", "pause", id])?;
        check(task_status(ctx, ns, id) == "PAUSED", || {
            "task is not PAUSED".into()
        })?;
        let count = || ctx.ctd.task_state_dir(ns).join(id).join("rootfs/tmp/count");
        let before = std::fs::read_to_string(count()).unwrap_or_default();
        std::thread::sleep(Duration::from_millis(300));
        let after = std::fs::read_to_string(count()).unwrap_or_default();
        check(before == after, || {
            format!("counter moved while paused: {before:?} -> {after:?}")
        })?;
        ctx.ctd.ctr_ok(ns, &["task", "resume", id])?;
        check(task_status(ctx, ns, id) == "RUNNING", || {
            "task is not RUNNING after resume".into()
        })?;
        let moved = wait_until(Duration::from_secs(3), || {
            std::fs::read_to_string(count()).unwrap_or_default() != after
        });
        check(moved, || "counter did not move after resume".into())?;
        ctx.ctd.ctr_ok(ns, &["task", "kill", "-s", "9", id])?;
        let stopped = wait_until(Duration::from_secs(5), || {
            task_status(ctx, ns, id) == "STOPPED"
        });
        check(stopped, || {
            format!(
                "task not STOPPED after SIGKILL: {}",
                task_status(ctx, ns, id)
            )
        })?;
        let out = stdout(&ctx.ctd.ctr(ns, &["task", "ls"]));
        check(out.contains("STOPPED"), || out.clone())
    })();
    remove(ctx, ns, id);
    result?;
    assert_clean(ctx, ns, id)
}

fn checkpoint_restore(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    let image = ctx.ctd.import_test_image(ns);
    ctx.ctd.ctr_ok(
        ns,
        &[
            "run",
            "-d",
            "--runc-binary",
            rt,
            &image,
            "c1",
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done",
        ],
    )?;
    let read_count = |id: &str| -> u64 {
        let out = ctx.ctd.ctr(
            ns,
            &[
                "task",
                "exec",
                "--exec-id",
                &format!("x{}", rand_suffix()),
                id,
                "cat",
                "/tmp/count",
            ],
        );
        stdout(&out).trim().parse().unwrap_or(0)
    };
    let result = (|| {
        wait_until(Duration::from_secs(3), || read_count("c1") > 3);
        ctx.ctd.ctr_ok(
            ns,
            &["c", "checkpoint", "--task", "--image", "--rw", "c1", "cp:1"],
        )?;
        let at_checkpoint = read_count("c1");
        remove(ctx, ns, "c1");
        ctx.ctd
            .ctr_ok(ns, &["c", "restore", "--live", "--rw", "c2", "cp:1"])?;
        check(task_status(ctx, ns, "c2") == "RUNNING", || {
            "restored task not RUNNING".into()
        })?;
        let first = read_count("c2");
        check(
            first >= at_checkpoint.saturating_sub(20) && first > 0,
            || format!("restored counter {first} does not continue from {at_checkpoint}"),
        )?;
        let advanced = wait_until(Duration::from_secs(3), || read_count("c2") > first);
        check(advanced, || "restored process is not running".into())
    })();
    remove(ctx, ns, "c2");
    remove(ctx, ns, "c1");
    result?;
    assert_clean(ctx, ns, "c1")?;
    assert_clean(ctx, ns, "c2")
}

fn bad_config_fails_cleanly(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    let image = ctx.ctd.import_test_image(ns);
    // A working directory that is not absolute: the runtime must refuse it
    // and the shim must report the error.
    let out = ctx.ctd.ctr(
        ns,
        &[
            "run",
            "--rm",
            "--runc-binary",
            rt,
            "--cwd",
            "relative/dir",
            &image,
            "b1",
            "true",
        ],
    );
    check(!out.status.success(), || {
        "a relative cwd was accepted".into()
    })?;
    let _ = ctx.ctd.ctr(ns, &["c", "rm", "b1"]);
    assert_clean(ctx, ns, "b1")
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
