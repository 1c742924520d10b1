//! Lifecycle and state: create → created, start → running, exit → stopped,
//! delete; kill semantics; pause/resume; --pid-file; list.

use std::fs;
use std::time::{Duration, Instant};

use berth_tests::leaks::{self, Snapshot};
use berth_tests::runtime::CreateOptions;
use serde_json::Value;

use crate::support::{read_out_log, Ctx, TestResult};
use crate::{ensure, Case};

pub fn cases() -> Vec<Case> {
    vec![
        Case::new(
            "lifecycle::create_start_kill_delete",
            create_start_kill_delete,
        ),
        Case::new(
            "lifecycle::exit_is_stopped_until_delete",
            exit_is_stopped_until_delete,
        ),
        Case::new(
            "lifecycle::kill_delivers_named_numbered_and_default_signals",
            kill_signals,
        ),
        Case::new("lifecycle::pause_freezes_and_resume_thaws", pause_resume),
        Case::new("lifecycle::pid_file_has_init_pid_without_newline", pid_file),
        Case::new("lifecycle::list_shows_every_container", list),
        Case::new(
            "lifecycle::delete_refuses_running_unless_forced",
            delete_running,
        ),
        Case::new("lifecycle::commands_on_unknown_id_fail", unknown_id),
    ]
}

fn create_start_kill_delete(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.set_args(&["/berth-probe", "sleep", "60"]);
    bundle
        .spec
        .annotations
        .insert("org.berth.test".into(), "lifecycle".into());
    let id = ctx.id();
    let mut target = ctx.target(&bundle, &id);
    let before = Snapshot::take(&target);
    ctx.create(&bundle, &id)?;
    let state = ctx.rt.state(&id)?;
    ensure!(state["status"] == "created", "after create: {state}");
    ensure!(state["id"] == id.as_str(), "state id: {state}");
    ensure!(
        state["bundle"] == bundle.dir.to_string_lossy().as_ref(),
        "state bundle {} != {}",
        state["bundle"],
        bundle.dir.display()
    );
    ensure!(
        !state["ociVersion"].as_str().unwrap_or("").is_empty(),
        "no ociVersion: {state}"
    );
    ensure!(
        state["annotations"]["org.berth.test"] == "lifecycle",
        "annotations: {state}"
    );
    let pid = ctx.pid(&id)?;
    target.pids.push(pid);
    ensure!(
        fs::metadata(format!("/proc/{pid}")).is_ok(),
        "init {pid} is not alive after create"
    );

    ctx.rt.start(&id)?.ok("start")?;
    ctx.wait(&id, "running")?;
    ensure!(ctx.pid(&id)? == pid, "pid changed on start");
    let again = ctx.rt.start(&id)?;
    ensure!(
        !again.success(),
        "a second start of a running container succeeded"
    );

    ctx.rt.kill(&id, "KILL")?.ok("kill KILL")?;
    ctx.wait(&id, "stopped")?;
    let dead = ctx.rt.kill(&id, "KILL")?;
    ensure!(!dead.success(), "kill of a stopped container succeeded");
    ctx.rt.delete(&id)?.ok("delete")?;
    ensure!(ctx.rt.state(&id).is_err(), "state still works after delete");
    leaks::check_clean(&before)?;
    Ok(())
}

fn exit_is_stopped_until_delete(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.set_args(&[
        "/berth-probe",
        "read",
        "/etc/hostname-missing",
        "+",
        "exit",
        "3",
    ]);
    let id = ctx.id();
    let before = ctx.snapshot(&bundle, &id);
    ctx.create(&bundle, &id)?;
    ensure!(
        read_out_log(&bundle)?.is_empty(),
        "the process ran before start"
    );
    ctx.rt.start(&id)?.ok("start")?;
    ctx.wait(&id, "stopped")?;
    // Still queryable until delete, and stays so.
    std::thread::sleep(Duration::from_millis(100));
    let state = ctx.rt.state(&id)?;
    ensure!(state["status"] == "stopped", "exited container: {state}");
    let out = read_out_log(&bundle)?;
    ensure!(
        out.contains("\"errno\":2"),
        "the process's output is missing: {out:?}"
    );
    ctx.rt.delete(&id)?.ok("delete")?;
    leaks::check_clean(&before)?;
    Ok(())
}

/// Waits until `path` (on the host) contains `text`.
fn wait_file(path: &std::path::Path, text: &str) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = fs::read_to_string(path).unwrap_or_default();
        if now.contains(text) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{} never contained {text:?}: {now:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn kill_signals(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.set_readonly(false);
    // sh is pid 1 of its pid namespace: only signals it handles reach it.
    bundle.set_args(&[
        "sh",
        "-c",
        "trap 'echo USR1 >> /tmp/sig' USR1; trap 'echo TERM >> /tmp/sig; exit 0' TERM; \
         echo ready > /tmp/ready; while :; do sleep 0.05; done",
    ]);
    let id = ctx.id();
    let before = ctx.snapshot(&bundle, &id);
    ctx.create(&bundle, &id)?;
    ctx.rt.start(&id)?.ok("start")?;
    wait_file(&bundle.host_path("/tmp/ready"), "ready")?;
    let sig = bundle.host_path("/tmp/sig");
    // One at a time: a second SIGUSR1 pending with the first is merged.
    for (n, signal) in ["USR1", "SIGUSR1", "10"].iter().enumerate() {
        ctx.rt.kill(&id, signal)?.ok(&format!("kill {signal}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs::read_to_string(&sig)
            .unwrap_or_default()
            .matches("USR1")
            .count()
            <= n
        {
            ensure!(
                Instant::now() < deadline,
                "kill {signal} was not delivered as SIGUSR1"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    ensure!(
        ctx.rt.state(&id)?["status"] == "running",
        "USR1 stopped the container"
    );
    // No signal argument: SIGTERM.
    ctx.rt
        .call(&["kill", id.as_str()])?
        .ok("kill (default signal)")?;
    ctx.wait(&id, "stopped")?;
    wait_file(&sig, "TERM")?;
    ctx.rt.delete(&id)?.ok("delete")?;
    leaks::check_clean(&before)?;
    Ok(())
}

/// The freezer.state of a host pid's v1 freezer cgroup.
fn freezer_state(pid: i32) -> Result<String, libtest_mimic::Failed> {
    let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let path = cgroup
        .lines()
        .map(|l| l.splitn(3, ':').collect::<Vec<_>>())
        .find(|f| f.len() == 3 && f[1] == "freezer")
        .map(|f| f[2].to_string())
        .ok_or_else(|| format!("pid {pid} has no freezer cgroup: {cgroup}"))?;
    let file = format!("/sys/fs/cgroup/freezer{path}/freezer.state");
    Ok(fs::read_to_string(&file)
        .map_err(|e| format!("read {file}: {e}"))?
        .trim()
        .to_string())
}

fn pause_resume(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.set_args(&["/berth-probe", "sleep", "60"]);
    let id = ctx.id();
    let before = ctx.snapshot(&bundle, &id);
    ctx.create(&bundle, &id)?;
    ctx.rt.start(&id)?.ok("start")?;
    let pid = ctx.pid(&id)?;
    ctx.rt.pause(&id)?.ok("pause")?;
    let state = ctx.rt.state(&id)?;
    ensure!(state["status"] == "paused", "after pause: {state}");
    let frozen = freezer_state(pid)?;
    ensure!(frozen == "FROZEN", "freezer.state after pause: {frozen}");
    ctx.rt.resume(&id)?.ok("resume")?;
    let state = ctx.rt.state(&id)?;
    ensure!(state["status"] == "running", "after resume: {state}");
    let thawed = freezer_state(pid)?;
    ensure!(thawed == "THAWED", "freezer.state after resume: {thawed}");
    ctx.rt.delete_force(&id)?.ok("delete --force")?;
    leaks::check_clean(&before)?;
    Ok(())
}

fn pid_file(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.set_args(&["/berth-probe", "sleep", "60"]);
    let id = ctx.id();
    let pid_file = bundle.dir.join("init.pid");
    let opts = CreateOptions {
        pid_file: Some(pid_file.clone()),
        ..CreateOptions::default()
    };
    ctx.create_with(&bundle, &id, &opts)?;
    let result = (|| -> TestResult {
        let text = fs::read_to_string(&pid_file)?;
        ensure!(
            !text.ends_with('\n'),
            "pid file ends with a newline: {text:?}"
        );
        let pid: i32 = text
            .parse()
            .map_err(|e| format!("pid file {text:?}: {e}"))?;
        ensure!(pid == ctx.pid(&id)?, "pid file {pid} != state pid");
        Ok(())
    })();
    ctx.destroy(&id);
    result
}

fn list(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.set_args(&["/berth-probe", "sleep", "60"]);
    let ids = [ctx.id(), ctx.id()];
    let result = (|| -> TestResult {
        for id in &ids {
            ctx.create(&bundle, id)?;
        }
        let quiet = ctx.rt.call(&["list", "-q"])?.ok("list -q")?;
        let mut listed: Vec<&str> = quiet.stdout.lines().collect();
        listed.sort();
        let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
        want.sort();
        ensure!(
            listed == want,
            "list -q printed {listed:?}, expected {want:?}"
        );
        let json = ctx
            .rt
            .call(&["list", "--format", "json"])?
            .ok("list --format json")?;
        let value: Value = serde_json::from_str(&json.stdout)
            .map_err(|e| format!("list JSON ({e}): {}", json.stdout))?;
        let entries = value.as_array().cloned().unwrap_or_default();
        for id in &ids {
            let entry = entries.iter().find(|e| e["id"] == id.as_str());
            ensure!(
                entry.is_some_and(|e| e["status"] == "created" && e["pid"].as_i64() > Some(0)),
                "list JSON lacks {id} as created with a pid: {value}"
            );
        }
        Ok(())
    })();
    for id in &ids {
        ctx.destroy(id);
    }
    result
}

fn delete_running(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.set_args(&["/berth-probe", "sleep", "60"]);
    let id = ctx.id();
    let before = ctx.snapshot(&bundle, &id);
    ctx.create(&bundle, &id)?;
    ctx.rt.start(&id)?.ok("start")?;
    let pid = ctx.pid(&id)?;
    let refused = ctx.rt.delete(&id)?;
    ensure!(
        !refused.success(),
        "delete of a running container succeeded"
    );
    let state = ctx.rt.state(&id)?;
    ensure!(
        state["status"] == "running" && state["pid"] == pid,
        "refused delete changed it: {state}"
    );
    ctx.rt.delete_force(&id)?.ok("delete --force")?;
    ensure!(
        ctx.rt.state(&id).is_err(),
        "state works after delete --force"
    );
    leaks::check_clean(&before)?;
    Ok(())
}

fn unknown_id(ctx: &Ctx) -> TestResult {
    let id = ctx.id();
    for args in [
        vec!["state", id.as_str()],
        vec!["start", id.as_str()],
        vec!["kill", id.as_str(), "KILL"],
        vec!["delete", id.as_str()],
        vec!["pause", id.as_str()],
    ] {
        let out = ctx.rt.call(&args)?;
        ensure!(!out.success(), "{args:?} on an unknown id succeeded");
        if ctx.is_berth() {
            ensure!(
                out.stderr.contains(&id),
                "{args:?}: the error does not name the id: {}",
                out.stderr
            );
        }
    }
    Ok(())
}
