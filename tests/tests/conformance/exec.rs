//! exec into a running container (exit code, env, cwd, user, namespaces,
//! --tty via a console socket) and ps --format json.

use std::fs;
use std::time::Duration;

use berth_tests::console::{self, ConsoleSocket};
use berth_tests::leaks;
use berth_tests::runtime::Kind;
use berth_tests::Bundle;
use libtest_mimic::Failed;
use serde_json::json;

use crate::support::{first_report, Ctx, TestResult};
use crate::{ensure, Case};

pub fn cases() -> Vec<Case> {
    vec![
        Case::new("exec::exit_code_env_cwd_user_and_namespaces", exec_basics),
        Case::new("exec::env_extends_the_container_env", exec_env).skip(&[(
            Kind::Crun,
            "crun 1.8.1 exec --env replaces the container's environment instead of extending it",
        )]),
        Case::new("exec::tty_via_console_socket", exec_tty),
        Case::new("exec::ps_lists_init_and_exec_processes", ps),
    ]
}

/// A started container running `berth-probe sleep 60`, for exec tests.
pub(crate) fn running(ctx: &Ctx) -> Result<(Bundle, String), Failed> {
    let mut bundle = ctx.bundle()?;
    bundle.set_args(&["/berth-probe", "sleep", "60"]);
    bundle.process().env.push("FROM_CONFIG=1".into());
    let id = ctx.id();
    ctx.create(&bundle, &id)?;
    if let Err(e) = ctx
        .rt
        .start(&id)
        .map_err(Failed::from)
        .and_then(|o| Ok(o.ok("start")?))
    {
        ctx.destroy(&id);
        return Err(e);
    }
    Ok((bundle, id))
}

/// Runs `f` against a running container, then deletes it and checks leaks.
pub(crate) fn with_running(
    ctx: &Ctx,
    f: impl FnOnce(&Bundle, &str, i32) -> TestResult,
) -> TestResult {
    let (bundle, id) = running(ctx)?;
    let before = ctx.snapshot(&bundle, &id);
    let result = ctx.pid(&id).and_then(|pid| f(&bundle, &id, pid));
    ctx.destroy(&id);
    result?;
    leaks::check_clean(&before)?;
    Ok(())
}

fn ns_of(pid: i32, ns: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn exec_basics(ctx: &Ctx) -> TestResult {
    with_running(ctx, |_, id, pid| {
        let none: [&str; 0] = [];
        let out = ctx.rt.exec(id, &none, &["sh", "-c", "exit 7"])?;
        ensure!(
            out.code() == 7,
            "exec exit code {}, expected 7; stderr {}",
            out.code(),
            out.stderr
        );

        let out = ctx
            .rt
            .exec(
                id,
                &["--env", "FOO=bar", "--cwd", "/tmp"],
                &["/berth-probe"],
            )?
            .ok("exec probe")?;
        let report = first_report(&out.stdout, "exec")?;
        let env: Vec<&str> = report["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        ensure!(env.contains(&"FOO=bar"), "exec --env missing: {env:?}");
        ensure!(report["cwd"] == "/tmp", "exec --cwd: {}", report["cwd"]);
        for ns in ["pid", "mnt", "net", "ipc", "uts"] {
            ensure!(
                report["ns"][ns] == ns_of(pid, ns).as_str(),
                "exec is not in the container's {ns} namespace"
            );
        }
        ensure!(report["uid"] == 0, "default exec user: {}", report["uid"]);

        let out = ctx
            .rt
            .exec(id, &["--user", "1000:1000"], &["/berth-probe"])?
            .ok("exec --user")?;
        let report = first_report(&out.stdout, "exec")?;
        ensure!(
            report["uid"] == 1000 && report["gid"] == 1000,
            "exec --user 1000:1000: {} {}",
            report["uid"],
            report["gid"]
        );
        ensure!(
            ctx.rt.state(id)?["status"] == "running",
            "exec disturbed the container"
        );
        Ok(())
    })
}

fn exec_env(ctx: &Ctx) -> TestResult {
    with_running(ctx, |_, id, _| {
        let out = ctx
            .rt
            .exec(id, &["--env", "FOO=bar"], &["/berth-probe"])?
            .ok("exec probe")?;
        let report = first_report(&out.stdout, "exec")?;
        let env: Vec<&str> = report["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .collect();
        ensure!(env.contains(&"FOO=bar"), "exec --env missing: {env:?}");
        ensure!(
            env.contains(&"FROM_CONFIG=1"),
            "exec lacks the container's env: {env:?}"
        );
        Ok(())
    })
}

fn exec_tty(ctx: &Ctx) -> TestResult {
    with_running(ctx, |bundle, id, _| {
        let socket = ConsoleSocket::new()?;
        let sock = socket.path.display().to_string();
        let pid_file = bundle.dir.join("exec.pid").display().to_string();
        let opts = [
            "--tty",
            "--detach",
            "--console-socket",
            sock.as_str(),
            "--pid-file",
            pid_file.as_str(),
        ];
        let out = ctx
            .rt
            .exec(id, &opts, &["sh", "-c", "/berth-probe; echo tty-done"])?;
        out.ok("exec --tty --detach")?;
        let master = socket.receive(Duration::from_secs(10))?;
        let text = String::from_utf8(
            console::spawn_reader(master, Duration::from_secs(15))
                .join()
                .map_err(|_| "reader panicked")?,
        )
        .map_err(|e| e.to_string())?;
        ensure!(
            text.contains("tty-done"),
            "exec output on the pty: {text:?}"
        );
        let report = first_report(&text, "exec on the pty")?;
        ensure!(
            report["isatty"] == json!([true, true, true]),
            "exec stdio are not the terminal: {}",
            report["isatty"]
        );
        Ok(())
    })
}

fn ps(ctx: &Ctx) -> TestResult {
    with_running(ctx, |bundle, id, pid| {
        let pid_file = bundle.dir.join("exec.pid");
        let file = pid_file.display().to_string();
        let out = ctx.rt.exec(
            id,
            &["--detach", "--pid-file", file.as_str()],
            &["/berth-probe", "sleep", "60"],
        )?;
        out.ok("exec --detach")?;
        let exec_pid: i64 = fs::read_to_string(&pid_file)?
            .trim()
            .parse()
            .map_err(|e| format!("exec pid file: {e}"))?;
        let pids = ctx.rt.ps(id)?;
        ensure!(
            pids.contains(&i64::from(pid)),
            "ps {pids:?} lacks the init {pid}"
        );
        ensure!(
            pids.contains(&exec_pid),
            "ps {pids:?} lacks the exec'd process {exec_pid}"
        );
        Ok(())
    })
}
