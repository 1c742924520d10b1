//! Hooks: all six run at the right moment, in order, with the state on
//! stdin and their env; failing poststart/poststop hooks are warnings.
//! (A prestart timeout and a failing createRuntime hook are in bad_input.)

use std::fs;
use std::path::Path;

use berth_executor::spec::{Hook, Hooks};
use berth_tests::runtime::Kind;
use berth_tests::Bundle;
use serde_json::Value;

use crate::support::{bind, strings, Ctx, TestResult};
use crate::{ensure, Case};

const RUNC_POSTSTART: &str = "runc 1.1.5 runs poststart hooks inside create, before start";

pub fn cases() -> Vec<Case> {
    vec![
        Case::new("hooks::all_six_run_in_order_with_state", all_six).skip(&[
            (Kind::Runc, RUNC_POSTSTART),
            (
                Kind::Crun,
                "crun 1.8.1 runs poststart before the startContainer hooks and passes \
                 startContainer the status \"starting\"",
            ),
        ]),
        Case::new("hooks::failing_poststart_is_a_warning", failing_poststart).skip(&[(
            Kind::Runc,
            "runc 1.1.5 runs poststart inside create: a failing hook fails create and the \
             remaining hooks never run",
        )]),
        Case::new("hooks::failing_poststop_is_a_warning", failing_poststop).skip(&[(
            Kind::Runc,
            "runc 1.1.5 stops at the first failing poststop hook and delete exits non-zero",
        )]),
    ]
}

/// A hook running `script` with the bundle's busybox sh (a host path).
pub fn sh_hook(bundle: &Bundle, script: &str) -> Hook {
    Hook {
        path: bundle.host_path("/bin/sh").display().to_string(),
        args: strings(&["sh", "-c", script]),
        env: Vec::new(),
        timeout: None,
    }
}

/// A hook that records its stdin as `<dir>/<name>.json` and appends its name
/// to `<dir>/order`.
fn recording_hook(bundle: &Bundle, dir: &str, name: &str) -> Hook {
    sh_hook(
        bundle,
        &format!("cat > {dir}/{name}.json; echo {name} >> {dir}/order"),
    )
}

fn order(out: &Path) -> Vec<String> {
    fs::read_to_string(out.join("order"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn position(order: &[String], name: &str) -> Option<usize> {
    order.iter().position(|n| n == name)
}

fn all_six(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let out = bundle.dir.join("out");
    fs::create_dir(&out)?;
    let host = out.display().to_string();
    bundle
        .spec
        .mounts
        .push(bind("/out", &out, &["rbind", "rw"]));
    bundle
        .spec
        .annotations
        .insert("org.berth.hook".into(), "yes".into());
    // The process waits for poststart, so `start` cannot race it to the end.
    bundle.set_args(&[
        "sh",
        "-c",
        "echo process >> /out/order; while [ ! -e /out/poststart.done ]; do sleep 0.01; done",
    ]);
    let mut prestart = recording_hook(&bundle, &host, "prestart");
    prestart.env = strings(&["BERTH_HOOK_VAR=from-config"]);
    prestart.args[2].push_str(&format!("; echo \"$BERTH_HOOK_VAR\" > {host}/prestart.env"));
    let mut poststart = recording_hook(&bundle, &host, "poststart");
    poststart.args[2].push_str(&format!("; touch {host}/poststart.done"));
    let start_container = Hook {
        path: "/bin/sh".into(),
        args: strings(&[
            "sh",
            "-c",
            "cat > /out/startContainer.json; echo startContainer >> /out/order",
        ]),
        ..Default::default()
    };
    bundle.spec.hooks = Some(Hooks {
        prestart: vec![prestart],
        create_runtime: vec![recording_hook(&bundle, &host, "createRuntime")],
        create_container: vec![recording_hook(&bundle, &host, "createContainer")],
        start_container: vec![start_container],
        poststart: vec![poststart],
        poststop: vec![recording_hook(&bundle, &host, "poststop")],
    });
    ctx.with_created(&bundle, |id| {
        let pid = ctx.pid(id)?;
        let at_create = order(&out);
        let mut sorted = at_create.clone();
        sorted.sort();
        ensure!(
            sorted == ["createContainer", "createRuntime", "prestart"],
            "hooks run by create: {at_create:?}"
        );
        ensure!(
            at_create[2] == "createContainer",
            "createContainer before the runtime's hooks: {at_create:?}"
        );
        ctx.rt.start(id)?.ok("start")?;
        let at_start = order(&out);
        ensure!(
            position(&at_start, "poststart").is_some(),
            "start returned before poststart ran: {at_start:?}"
        );
        ctx.wait(id, "stopped")?;
        let run = order(&out);
        let (sc, p, ps) = (
            position(&run, "startContainer"),
            position(&run, "process"),
            position(&run, "poststart"),
        );
        ensure!(
            sc.is_some() && sc < p && sc < ps,
            "startContainer must precede the process and poststart: {run:?}"
        );
        ensure!(
            position(&run, "poststop").is_none(),
            "poststop ran before delete: {run:?}"
        );
        ctx.rt.delete(id)?.ok("delete")?;
        let all = order(&out);
        ensure!(
            all.last().map(String::as_str) == Some("poststop"),
            "poststop is not last: {all:?}"
        );
        let env = fs::read_to_string(out.join("prestart.env")).unwrap_or_default();
        ensure!(
            env.trim() == "from-config",
            "the hook's env was not applied: {env:?}"
        );
        let mut wrong = Vec::new();
        for (name, statuses) in [
            ("prestart", &["creating", "created"][..]),
            ("createRuntime", &["creating", "created"]),
            ("createContainer", &["creating", "created"]),
            ("startContainer", &["created"]),
            ("poststart", &["running"]),
            ("poststop", &["stopped"]),
        ] {
            let text = fs::read_to_string(out.join(format!("{name}.json")))?;
            let state: Value =
                serde_json::from_str(&text).map_err(|e| format!("{name} stdin ({e}): {text:?}"))?;
            ensure!(state["id"] == id, "{name}: id in {state}");
            ensure!(
                state["bundle"] == bundle.dir.to_string_lossy().as_ref(),
                "{name}: bundle in {state}"
            );
            ensure!(
                state["annotations"]["org.berth.hook"] == "yes",
                "{name}: annotations in {state}"
            );
            let status = state["status"].as_str().unwrap_or("");
            if !statuses.contains(&status) {
                wrong.push(format!(
                    "{name}: status {status:?}, expected one of {statuses:?}"
                ));
            }
            if name != "poststop" && state["pid"] != pid {
                wrong.push(format!("{name}: pid {}, expected {pid}", state["pid"]));
            }
        }
        ensure!(
            wrong.is_empty(),
            "state on the hooks' stdin:\n{}",
            wrong.join("\n")
        );
        Ok(())
    })
}

fn failing_poststart(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.set_args(&["/berth-probe", "exit", "0"]);
    let marker = bundle.dir.join("second-poststart");
    bundle.spec.hooks = Some(Hooks {
        poststart: vec![
            // The failing hook drains its stdin first: crun 1.8.1 dies of
            // SIGPIPE when a hook exits before it has written the state.
            sh_hook(&bundle, "cat > /dev/null; exit 1"),
            sh_hook(&bundle, &format!("touch {}", marker.display())),
        ],
        ..Default::default()
    });
    ctx.with_created(&bundle, |id| {
        ctx.rt
            .start(id)?
            .ok("start with a failing poststart hook")?;
        ensure!(
            marker.exists(),
            "the poststart hook after the failing one did not run"
        );
        ctx.wait(id, "stopped")?;
        ctx.rt.delete(id)?.ok("delete")?;
        Ok(())
    })
}

fn failing_poststop(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.set_args(&["/berth-probe", "exit", "0"]);
    let marker = bundle.dir.join("second-poststop");
    bundle.spec.hooks = Some(Hooks {
        poststop: vec![
            sh_hook(&bundle, "cat > /dev/null; exit 1"),
            sh_hook(&bundle, &format!("touch {}", marker.display())),
        ],
        ..Default::default()
    });
    ctx.with_created(&bundle, |id| {
        ctx.rt.start(id)?.ok("start")?;
        ctx.wait(id, "stopped")?;
        ctx.rt
            .delete(id)?
            .ok("delete with a failing poststop hook")?;
        ensure!(
            marker.exists(),
            "the poststop hook after the failing one did not run"
        );
        ensure!(ctx.rt.state(id).is_err(), "the container survived delete");
        Ok(())
    })
}
