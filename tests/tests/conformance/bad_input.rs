//! Bad input: create must fail with a non-zero exit and leave no process,
//! mount, cgroup directory or state entry behind. berth-runc must also name
//! the offending field (peers word their errors differently).

use std::fs;
use std::time::{Duration, Instant};

use berth_executor::spec::{Hook, Hooks, Mount};
use berth_tests::leaks::{self, Snapshot};
use berth_tests::runtime::Kind;
use berth_tests::Bundle;
use libtest_mimic::Failed;
use serde_json::Value;

use crate::hooks::sh_hook;
use crate::support::{mount, Ctx, TestResult};
use crate::{ensure, Case};

const RUNC_SECUREJOIN: &str = "runc 1.1.5 resolves the destination inside the rootfs (securejoin) \
                               and runs the container instead of refusing it";
const CRUN_SAFE_OPENAT: &str =
    "crun 1.8.1 resolves the destination inside the rootfs and runs the \
                                container instead of refusing it";

pub fn cases() -> Vec<Case> {
    vec![
        Case::new("bad_input::missing_root", missing_root),
        Case::new("bad_input::unknown_namespace_type", unknown_namespace),
        Case::new("bad_input::malformed_json", malformed_json),
        Case::new("bad_input::invalid_seccomp_action", invalid_seccomp_action),
        Case::new(
            "bad_input::invalid_seccomp_operator",
            invalid_seccomp_operator,
        ),
        Case::new("bad_input::unknown_rlimit", unknown_rlimit),
        Case::new("bad_input::unknown_scheduler_policy", unknown_sched_policy).skip(&[
            (
                Kind::Runc,
                "runc 1.1.5 ignores process.scheduler (runtime-spec 1.2) and runs the container",
            ),
            (
                Kind::Crun,
                "crun 1.8.1 ignores process.scheduler (runtime-spec 1.2) and runs the container",
            ),
        ]),
        Case::new(
            "bad_input::relative_mount_destination",
            relative_destination,
        )
        .skip(&[
            (
                Kind::Runc,
                "runc 1.1.5 accepts a relative mount destination (deprecated; joined to /)",
            ),
            (
                Kind::Crun,
                "crun 1.8.1 accepts a relative mount destination (joined to /)",
            ),
        ]),
        Case::new(
            "bad_input::mount_destination_escaping_by_dotdot",
            escape_by_dotdot,
        )
        .skip(&[
            (Kind::Runc, RUNC_SECUREJOIN),
            (Kind::Crun, CRUN_SAFE_OPENAT),
        ]),
        Case::new(
            "bad_input::mount_destination_escaping_by_symlink",
            escape_by_symlink,
        )
        .skip(&[(Kind::Runc, RUNC_SECUREJOIN)]),
        Case::new("bad_input::cgroups_path_with_dotdot", cgroups_dotdot).skip(&[(
            Kind::Runc,
            "runc 1.1.5 cleans \"..\" lexically against each hierarchy root and creates the cgroup",
        )]),
        Case::new("bad_input::idmap_without_any_mapping", idmap_unmapped).skip(&[(
            Kind::Runc,
            "runc 1.1.5 ignores idmap (runtime-spec 1.2) and runs the container",
        )]),
        Case::new("bad_input::prestart_hook_times_out", prestart_timeout),
        Case::new("bad_input::create_runtime_hook_fails", create_runtime_fails),
        Case::new("bad_input::duplicate_container_id", duplicate_id),
        Case::new("bad_input::missing_bundle", missing_bundle),
    ]
}

/// Writes the config (passed through `edit` as JSON), runs create, and
/// checks it failed, left nothing behind, and (berth) named `field`.
fn refused(
    ctx: &Ctx,
    bundle: &Bundle,
    edit: impl FnOnce(&mut Value),
    field: &str,
) -> Result<String, Failed> {
    let mut json = serde_json::to_value(&bundle.spec).map_err(|e| e.to_string())?;
    edit(&mut json);
    fs::write(
        bundle.config_path(),
        serde_json::to_vec_pretty(&json).map_err(|e| e.to_string())?,
    )?;
    refused_as_is(ctx, bundle, field)
}

/// Like `refused`, with config.json already written.
fn refused_as_is(ctx: &Ctx, bundle: &Bundle, field: &str) -> Result<String, Failed> {
    let id = ctx.id();
    let before = ctx.snapshot(bundle, &id);
    let out = ctx.rt.create(&id, &bundle.dir)?;
    if out.success() {
        ctx.destroy(&id);
        return Err(format!("create succeeded; stderr: {}", out.stderr).into());
    }
    if ctx.is_berth() {
        ensure!(
            out.stderr.contains(field),
            "the error does not name {field:?}: {}",
            out.stderr.trim_end()
        );
    }
    leaks::check_clean(&before)?;
    Ok(out.stderr)
}

fn no_edit(_: &mut Value) {}

fn missing_root(ctx: &Ctx) -> TestResult {
    let bundle = ctx.bundle()?;
    refused(
        ctx,
        &bundle,
        |v| drop(v.as_object_mut().map(|o| o.remove("root"))),
        "root",
    )?;
    Ok(())
}

fn unknown_namespace(ctx: &Ctx) -> TestResult {
    let bundle = ctx.bundle()?;
    refused(
        ctx,
        &bundle,
        |v| v["linux"]["namespaces"][0]["type"] = "bogus".into(),
        "linux.namespaces[0].type",
    )?;
    Ok(())
}

fn malformed_json(ctx: &Ctx) -> TestResult {
    let bundle = ctx.bundle()?;
    fs::write(
        bundle.config_path(),
        b"{\"ociVersion\": \"1.0.2\", \"process\": {\"args\": [\"sh\"],",
    )?;
    refused_as_is(ctx, &bundle, "config.json")?;
    Ok(())
}

fn invalid_seccomp_action(ctx: &Ctx) -> TestResult {
    let bundle = ctx.bundle()?;
    let edit = |v: &mut Value| {
        v["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_BOGUS"}],
        })
    };
    refused(ctx, &bundle, edit, "linux.seccomp.syscalls[0].action")?;
    Ok(())
}

fn invalid_seccomp_operator(ctx: &Ctx) -> TestResult {
    let bundle = ctx.bundle()?;
    let edit = |v: &mut Value| {
        v["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_BOGUS"}]}],
        })
    };
    refused(ctx, &bundle, edit, "linux.seccomp.syscalls[0].args[0].op")?;
    Ok(())
}

fn unknown_rlimit(ctx: &Ctx) -> TestResult {
    let bundle = ctx.bundle()?;
    let edit = |v: &mut Value| {
        v["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}])
    };
    refused(ctx, &bundle, edit, "RLIMIT_BOGUS")?;
    Ok(())
}

fn unknown_sched_policy(ctx: &Ctx) -> TestResult {
    let bundle = ctx.bundle()?;
    let edit =
        |v: &mut Value| v["process"]["scheduler"] = serde_json::json!({"policy": "SCHED_TURBO"});
    refused(ctx, &bundle, edit, "process.scheduler.policy")?;
    Ok(())
}

/// idmap with no mappings on the mount and no user namespace to borrow
/// them from: the spec says this MUST be an error.
fn idmap_unmapped(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let src = bundle.dir.join("idsrc");
    fs::create_dir_all(&src)?;
    bundle
        .spec
        .mounts
        .push(crate::support::bind("/data", &src, &["bind", "idmap"]));
    let field = format!("mounts[{}].options", bundle.spec.mounts.len() - 1);
    refused(ctx, &bundle, no_edit, &field)?;
    Ok(())
}

fn relative_destination(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle
        .spec
        .mounts
        .push(mount("relative/dir", "tmpfs", "tmpfs", &[]));
    let field = format!("mounts[{}].destination", bundle.spec.mounts.len() - 1);
    refused(ctx, &bundle, no_edit, &field)?;
    Ok(())
}

fn escape_by_dotdot(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    fs::create_dir(bundle.dir.join("escape"))?;
    bundle
        .spec
        .mounts
        .push(mount("/../escape", "tmpfs", "tmpfs", &[]));
    let field = format!("mounts[{}].destination", bundle.spec.mounts.len() - 1);
    refused(ctx, &bundle, no_edit, &field)?;
    Ok(())
}

/// The symlink's target exists outside the rootfs but not inside it, so a
/// runtime that resolves it inside the rootfs has nothing to mount on.
/// (mounts::destinations_never_land_outside_the_rootfs covers the case
/// where the target exists inside too.)
fn escape_by_symlink(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let outside = bundle.dir.join("escape");
    fs::create_dir(&outside)?;
    std::os::unix::fs::symlink(&outside, bundle.host_path("/evil"))?;
    bundle.spec.mounts.push(Mount {
        destination: "/evil".into(),
        ..mount("", "tmpfs", "tmpfs", &[])
    });
    let field = format!("mounts[{}]", bundle.spec.mounts.len() - 1);
    refused(ctx, &bundle, no_edit, &field)?;
    Ok(())
}

fn cgroups_dotdot(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let path = format!("/../..{}", ctx.cgroup_path("dotdot"));
    bundle.linux().cgroups_path = Some(path);
    refused(ctx, &bundle, no_edit, "cgroupsPath")?;
    Ok(())
}

fn prestart_timeout(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    // The probe as the hook: its command line names the bundle, so a hook
    // left running is found by the leak check.
    let probe = bundle.host_path("/berth-probe").display().to_string();
    bundle.spec.hooks = Some(Hooks {
        prestart: vec![Hook {
            path: probe.clone(),
            args: vec![probe, "sleep".into(), "30".into()],
            env: Vec::new(),
            timeout: Some(1),
        }],
        ..Default::default()
    });
    bundle.write_config()?;
    let started = Instant::now();
    refused_as_is(ctx, &bundle, "hooks.prestart[0]")?;
    let took = started.elapsed();
    ensure!(
        took < Duration::from_secs(10),
        "create took {took:?} with a 1 s hook timeout"
    );
    Ok(())
}

fn create_runtime_fails(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let marker = bundle.dir.join("process-ran");
    bundle.set_args(&["sh", "-c", "touch /process-ran"]);
    bundle.spec.hooks = Some(Hooks {
        create_runtime: vec![sh_hook(&bundle, "exit 3")],
        ..Default::default()
    });
    bundle.write_config()?;
    refused_as_is(ctx, &bundle, "hooks.createRuntime[0]")?;
    ensure!(
        !marker.exists(),
        "the process ran although createRuntime failed"
    );
    Ok(())
}

fn duplicate_id(ctx: &Ctx) -> TestResult {
    let mut first = ctx.bundle()?;
    first.set_args(&["/berth-probe", "sleep", "60"]);
    let id = ctx.id();
    ctx.create(&first, &id)?;
    let checked = (|| -> TestResult {
        let pid = ctx.pid(&id)?;
        let second = ctx.bundle()?;
        second.write_config()?;
        let mut target = ctx.target(&second, &id);
        target.bundle = Some(second.dir.clone());
        let before = Snapshot::take(&target);
        let out = ctx.rt.create(&id, &second.dir)?;
        ensure!(!out.success(), "a second create with the same id succeeded");
        if ctx.is_berth() {
            ensure!(
                out.stderr.contains(&id),
                "the error does not name the id: {}",
                out.stderr
            );
        }
        leaks::check_clean(&before)?;
        let state = ctx.rt.state(&id)?;
        ensure!(
            state["status"] == "created" && state["pid"] == pid,
            "the first container changed: {state}"
        );
        ensure!(
            state["bundle"] == first.dir.to_string_lossy().as_ref(),
            "the first container's bundle changed: {state}"
        );
        ensure!(
            fs::metadata(format!("/proc/{pid}")).is_ok(),
            "the first container's init died"
        );
        ctx.rt.start(&id)?.ok("start the first container")?;
        ctx.wait(&id, "running")?;
        Ok(())
    })();
    ctx.destroy(&id);
    checked
}

fn missing_bundle(ctx: &Ctx) -> TestResult {
    let bundle = ctx.bundle()?;
    let missing = bundle.dir.join("no-such-bundle");
    let id = ctx.id();
    let before = ctx.snapshot(&bundle, &id);
    let out = ctx.rt.create(&id, &missing)?;
    if out.success() {
        ctx.destroy(&id);
    }
    ensure!(!out.success(), "create with a missing bundle succeeded");
    if ctx.is_berth() {
        let named = missing.display().to_string();
        ensure!(
            out.stderr.contains(&named),
            "the error does not name {named}: {}",
            out.stderr
        );
    }
    leaks::check_clean(&before)?;
    Ok(())
}
