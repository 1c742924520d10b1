//! Run-to-completion scenarios: output, isolation, stdio, tty, signals.

use std::process::Stdio;
use std::time::Duration;

use berth_integration::*;
use libtest_mimic::Failed;

use crate::helpers::*;
use crate::Ctx;

pub(crate) fn run_output_env_cwd(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
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

/// `ctr run --seccomp` (containerd's default profile): the filter is on,
/// ordinary work runs, and a call the profile leaves out (unshare(2)) is
/// refused, while the same call succeeds without the profile.
pub(crate) fn default_seccomp_profile(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    ctx.ctd.import_test_image(ns);
    let script = "grep -E '^Seccomp:' /proc/self/status; \
                  ls / > /dev/null && echo ls-works; \
                  if unshare -U true; then echo unshare-allowed; else echo unshare-denied; fi";
    let (code, out, err) = run_rm(
        &ctx.ctd,
        ns,
        rt,
        &["--seccomp"],
        "sc1",
        &["sh", "-c", script],
    );
    check(code == 0, || format!("exit {code}: {err}"))?;
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    check(
        lines == ["Seccomp:\t2", "ls-works", "unshare-denied"],
        || format!("with --seccomp: {lines:?} (stderr {err:?})"),
    )?;
    clean(&ctx.ctd, ns, "sc1")?;
    let (code, out, err) = run_rm(&ctx.ctd, ns, rt, &[], "sc2", &["sh", "-c", script]);
    check(code == 0, || format!("exit {code}: {err}"))?;
    check(
        out.contains("Seccomp:\t0") && out.contains("unshare-allowed"),
        || format!("without --seccomp: {out:?} (stderr {err:?})"),
    )?;
    clean(&ctx.ctd, ns, "sc2")
}

pub(crate) fn namespaces_isolated(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
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

pub(crate) fn piped_stdin(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
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

pub(crate) fn tty_run(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
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

pub(crate) fn read_only_rootfs(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
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

pub(crate) fn signals(ctx: &Ctx, ns: &str, rt: &str) -> Result<(), Failed> {
    let ctd = &ctx.ctd;
    ctd.import_test_image(ns);
    // A trap makes SIGTERM end the shell with status 143; pid 1 ignores it otherwise.
    run_detached(
        ctd,
        ns,
        rt,
        &[],
        "s1",
        &[
            "sh",
            "-c",
            "trap 'exit 143' TERM; while true; do sleep 0.05; done",
        ],
    )?;
    run_detached(ctd, ns, rt, &[], "s2", &["sleep", "1000"])?;
    let r = (|| -> Result<(), Failed> {
        ctd.ctr_ok(ns, &["task", "kill", "s1"])?;
        ctd.ctr_ok(ns, &["task", "kill", "-s", "SIGKILL", "s2"])?;
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
