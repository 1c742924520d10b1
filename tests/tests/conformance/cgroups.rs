//! cgroups v1: limits visible in the host's cgroup files and in
//! /proc/<pid>/cgroup, absolute and relative cgroupsPath, device rules,
//! `update --resources` and `events --stats`.

use std::fs;

use berth_executor::spec::{Cpu, DeviceCgroup, Memory, NamespaceType, Pids, Resources};
use berth_tests::leaks::{self, cgroup_roots};
use berth_tests::runtime::Kind;
use libtest_mimic::Failed;
use serde_json::Value;

use crate::support::{parse_lines, read_out_log, Ctx, TestResult};
use crate::{ensure, Case};

pub fn cases() -> Vec<Case> {
    vec![
        Case::new("cgroups::limits_visible_on_host_and_inside", limits),
        Case::new("cgroups::relative_path_nests", relative_path),
        Case::new("cgroups::update_changes_limits", update),
        Case::new("cgroups::events_stats_report_usage", events_stats)
            .skip(&[(Kind::Crun, "crun 1.8.1 has no events command")]),
    ]
}

const MIB: i64 = 1024 * 1024;

/// The cgroup path of `pid` in the v1 hierarchy holding `controller`.
fn cgroup_of(pid: i32, controller: &str) -> Result<String, Failed> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    text.lines()
        .map(|l| l.splitn(3, ':').collect::<Vec<_>>())
        .find(|f| f.len() == 3 && f[1].split(',').any(|c| c == controller))
        .map(|f| f[2].to_string())
        .ok_or_else(|| format!("pid {pid} has no {controller} cgroup: {text}").into())
}

/// A file of `pid`'s cgroup in the `controller` hierarchy, trimmed.
fn read_cgroup_file(pid: i32, controller: &str, file: &str) -> Result<String, Failed> {
    let path = format!(
        "/sys/fs/cgroup/{controller}{}/{file}",
        cgroup_of(pid, controller)?
    );
    Ok(fs::read_to_string(&path)
        .map_err(|e| format!("read {path}: {e}"))?
        .trim()
        .to_string())
}

fn no_cgroup_ns(bundle: &mut berth_tests::Bundle) {
    bundle
        .linux()
        .namespaces
        .retain(|n| n.typ != NamespaceType::Cgroup);
}

fn limits(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    no_cgroup_ns(&mut bundle);
    let path = ctx.cgroup_path("limits");
    bundle.linux().cgroups_path = Some(path.clone());
    bundle.linux().resources = Some(Resources {
        devices: vec![
            DeviceCgroup {
                allow: false,
                access: Some("rwm".into()),
                ..Default::default()
            },
            DeviceCgroup {
                allow: true,
                typ: Some("c".into()),
                major: Some(10),
                minor: Some(229),
                access: Some("rw".into()),
            },
        ],
        memory: Some(Memory {
            limit: Some(64 * MIB),
            reservation: Some(32 * MIB),
            ..Default::default()
        }),
        cpu: Some(Cpu {
            shares: Some(512),
            quota: Some(20_000),
            period: Some(100_000),
            cpus: Some("0".into()),
            mems: Some("0".into()),
            ..Default::default()
        }),
        pids: Some(Pids { limit: 123 }),
        ..Default::default()
    });
    let id = ctx.id();
    let mut target = ctx.target(&bundle, &id);
    let before = leaks::Snapshot::take(&target);
    ctx.create(&bundle, &id)?;
    let checked = (|| -> TestResult {
        let pid = ctx.pid(&id)?;
        target.pids.push(pid);
        let want = [
            ("memory", "memory.limit_in_bytes", (64 * MIB).to_string()),
            (
                "memory",
                "memory.soft_limit_in_bytes",
                (32 * MIB).to_string(),
            ),
            ("cpu", "cpu.shares", "512".into()),
            ("cpu", "cpu.cfs_quota_us", "20000".into()),
            ("cpu", "cpu.cfs_period_us", "100000".into()),
            ("cpuset", "cpuset.cpus", "0".into()),
            ("cpuset", "cpuset.mems", "0".into()),
            ("pids", "pids.max", "123".into()),
        ];
        for (ctrl, file, value) in want {
            let cg = cgroup_of(pid, ctrl)?;
            ensure!(
                cg.trim_end_matches('/') == path,
                "{ctrl} cgroup of the init is {cg}, expected {path}"
            );
            let got = read_cgroup_file(pid, ctrl, file)?;
            ensure!(got == value, "{ctrl}/{file} = {got}, expected {value}");
        }
        let devices = read_cgroup_file(pid, "devices", "devices.list")?;
        ensure!(
            devices.lines().any(|l| l == "c 10:229 rw"),
            "devices.list lacks c 10:229 rw:\n{devices}"
        );
        ensure!(
            !devices.lines().any(|l| l == "a *:* rwm"),
            "devices.list allows everything"
        );
        ctx.rt.start(&id)?.ok("start")?;
        ctx.wait(&id, "stopped")?;
        let lines = parse_lines(&read_out_log(&bundle)?)?;
        let report = lines.first().ok_or("the probe printed nothing")?;
        for ctrl in ["memory", "pids", "cpu", "cpuset"] {
            let seen = report["cgroup"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|l| l.contains(ctrl) && l.ends_with(&format!(":{path}")));
            ensure!(
                seen,
                "/proc/self/cgroup inside lacks {ctrl} at {path}: {}",
                report["cgroup"]
            );
        }
        Ok(())
    })();
    ctx.destroy(&id);
    checked?;
    leaks::check_clean(&before)?;
    Ok(())
}

fn relative_path(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    no_cgroup_ns(&mut bundle);
    let parent = ctx.cgroup_path("rel").trim_start_matches('/').to_string();
    let path = format!("{parent}/c1");
    bundle.linux().cgroups_path = Some(path.clone());
    bundle
        .linux()
        .resources
        .get_or_insert_with(Default::default)
        .pids = Some(Pids { limit: 77 });
    let id = ctx.id();
    ctx.create(&bundle, &id)?;
    let checked = (|| -> TestResult {
        let pid = ctx.pid(&id)?;
        for ctrl in ["pids", "memory", "cpu"] {
            let cg = cgroup_of(pid, ctrl)?;
            ensure!(
                cg.ends_with(&format!("/{path}")),
                "{ctrl} cgroup {cg} does not end with {path}"
            );
        }
        let max = read_cgroup_file(pid, "pids", "pids.max")?;
        ensure!(max == "77", "pids.max = {max}");
        Ok(())
    })();
    let before = ctx.snapshot(&bundle, "no-such-id");
    ctx.destroy(&id);
    checked?;
    // The runtime removes the container's cgroup; the parent it created on
    // the way is left, as runc does. Remove those here.
    let leaves: Vec<_> = cgroup_roots()
        .into_iter()
        .flat_map(|root| walk_named(&root, &parent))
        .collect();
    for dir in &leaves {
        ensure!(
            !dir.join("c1").exists(),
            "{} survived delete",
            dir.join("c1").display()
        );
        let _ = fs::remove_dir(dir);
    }
    leaks::check_clean(&before)?;
    Ok(())
}

/// Directories named `name` under `root` (a few levels deep).
fn walk_named(root: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                if entry.file_name() == name {
                    found.push(entry.path());
                } else if depth < 4 {
                    stack.push((entry.path(), depth + 1));
                }
            }
        }
    }
    found
}

fn running(ctx: &Ctx, tag: &str) -> Result<(berth_tests::Bundle, String), Failed> {
    let mut bundle = ctx.bundle()?;
    bundle.set_args(&["/berth-probe", "sleep", "60"]);
    bundle.linux().cgroups_path = Some(ctx.cgroup_path(tag));
    bundle
        .linux()
        .resources
        .get_or_insert_with(Default::default)
        .memory = Some(Memory {
        limit: Some(64 * MIB),
        ..Default::default()
    });
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

fn update(ctx: &Ctx) -> TestResult {
    let (bundle, id) = running(ctx, "update")?;
    let before = ctx.snapshot(&bundle, &id);
    let checked = (|| -> TestResult {
        let pid = ctx.pid(&id)?;
        let file = bundle.dir.join("resources.json");
        fs::write(
            &file,
            br#"{"memory":{"limit":134217728},"pids":{"limit":50}}"#,
        )?;
        let path = file.display().to_string();
        ctx.rt
            .call(&["update", "--resources", path.as_str(), id.as_str()])?
            .ok("update --resources")?;
        let limit = read_cgroup_file(pid, "memory", "memory.limit_in_bytes")?;
        ensure!(
            limit == "134217728",
            "memory.limit_in_bytes after update: {limit}"
        );
        let pids = read_cgroup_file(pid, "pids", "pids.max")?;
        ensure!(pids == "50", "pids.max after update: {pids}");
        ensure!(
            ctx.rt.state(&id)?["status"] == "running",
            "update disturbed the container"
        );
        Ok(())
    })();
    ctx.destroy(&id);
    checked?;
    leaks::check_clean(&before)?;
    Ok(())
}

fn events_stats(ctx: &Ctx) -> TestResult {
    let (bundle, id) = running(ctx, "events")?;
    let before = ctx.snapshot(&bundle, &id);
    let checked = (|| -> TestResult {
        let call = ctx.rt.call(&["events", "--stats", id.as_str()])?;
        let call = call.ok("events --stats")?;
        let event: Value = serde_json::from_str(call.stdout.trim())
            .map_err(|e| format!("events --stats JSON ({e}): {}", call.stdout))?;
        ensure!(
            event["type"] == "stats" && event["id"] == id.as_str(),
            "event header: {event}"
        );
        let data = &event["data"];
        ensure!(
            data["pids"]["current"].as_u64() >= Some(1),
            "pids.current: {data}"
        );
        let usage = data["memory"]["usage"]["usage"].as_u64().unwrap_or(0);
        ensure!(usage > 0, "memory usage: {}", data["memory"]);
        let limit = data["memory"]["usage"]["limit"].as_u64().unwrap_or(0);
        ensure!(limit == 64 * MIB as u64, "memory limit in stats: {limit}");
        ensure!(
            data["cpu"]["usage"]["total"].as_u64().is_some(),
            "cpu usage: {}",
            data["cpu"]
        );
        Ok(())
    })();
    ctx.destroy(&id);
    checked?;
    leaks::check_clean(&before)?;
    Ok(())
}
