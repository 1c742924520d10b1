//! Namespaces: each listed type is new, unlisted ones are inherited, joining
//! by path (pid via pid_for_children), type mismatch refused, and a user
//! namespace with id mappings and bind-mounted devices.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_executor::spec::{IdMapping, Namespace, NamespaceType};
use berth_tests::leaks;
use libtest_mimic::Failed;

use crate::support::{host_ns, skip, Ctx, TestResult};
use crate::{ensure, Case};

pub fn cases() -> Vec<Case> {
    vec![
        Case::new(
            "namespaces::each_listed_type_is_new",
            each_listed_type_is_new,
        ),
        Case::new(
            "namespaces::unlisted_types_are_inherited",
            unlisted_types_are_inherited,
        ),
        Case::new(
            "namespaces::join_by_path_incl_pid_for_children",
            join_by_path,
        ),
        Case::new(
            "namespaces::join_mount_namespace_by_path",
            join_mount_by_path,
        ),
        Case::new(
            "namespaces::path_of_wrong_type_is_refused",
            wrong_type_is_refused,
        ),
        Case::new(
            "namespaces::user_namespace_maps_ids_and_binds_devices",
            user_namespace,
        ),
    ]
}

const NS_FILES: [&str; 6] = ["cgroup", "ipc", "mnt", "net", "pid", "uts"];

fn each_listed_type_is_new(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let report = ctx.report(&mut bundle)?;
    for ns in NS_FILES {
        let inside = report["ns"][ns].as_str().unwrap_or("");
        ensure!(
            !inside.is_empty() && inside != host_ns(ns),
            "{ns} namespace is not new: {inside}"
        );
    }
    ensure!(
        report["ns"]["user"] == host_ns("user").as_str(),
        "user namespace is new but not listed"
    );
    ensure!(
        report["pid"] == 1,
        "the process is not pid 1 of its pid namespace: {}",
        report["pid"]
    );
    Ok(())
}

fn unlisted_types_are_inherited(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.linux().namespaces = vec![Namespace {
        typ: NamespaceType::Mount,
        path: None,
    }];
    bundle.spec.hostname = None;
    let report = ctx.report(&mut bundle)?;
    for ns in ["cgroup", "ipc", "net", "pid", "user", "uts"] {
        let inside = report["ns"][ns].as_str().unwrap_or("");
        ensure!(
            inside == host_ns(ns),
            "{ns} namespace is not the host's: {inside} vs {}",
            host_ns(ns)
        );
    }
    Ok(())
}

/// A process holding new namespaces (util-linux unshare), killed on drop.
struct Holder(Child);

impl Holder {
    fn spawn(flags: &[&str]) -> Result<Holder, Failed> {
        if berth_tests::runtime::which("unshare").is_none() {
            skip("util-linux unshare is not installed")?;
        }
        let child = Command::new("unshare")
            .args(flags)
            .args(["--fork", "/bin/busybox", "sleep", "120"])
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("spawn unshare: {e}"))?;
        let holder = Holder(child);
        // unshare(2) happens right after exec: wait until it has.
        let deadline = Instant::now() + Duration::from_secs(5);
        let probe_ns = if flags.contains(&"--mount") {
            "mnt"
        } else {
            "uts"
        };
        while holder.ns(probe_ns) == host_ns(probe_ns) {
            ensure!(
                Instant::now() < deadline,
                "unshare {flags:?} never made its namespaces"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        if flags.contains(&"--pid") {
            while holder.ns("pid_for_children") == host_ns("pid") {
                ensure!(
                    Instant::now() < deadline,
                    "unshare --pid never made its namespace"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(holder)
    }

    fn path(&self, ns: &str) -> String {
        format!("/proc/{}/ns/{ns}", self.0.id())
    }

    fn ns(&self, ns: &str) -> String {
        std::fs::read_link(self.path(ns))
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the holder's own process group.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn join_by_path(ctx: &Ctx) -> TestResult {
    let holder = Holder::spawn(&["--ipc", "--uts", "--net", "--pid"])?;
    let mut bundle = ctx.bundle()?;
    bundle.spec.hostname = None;
    let joined = [
        (NamespaceType::Ipc, "ipc", "ipc"),
        (NamespaceType::Uts, "uts", "uts"),
        (NamespaceType::Network, "net", "net"),
        (NamespaceType::Pid, "pid_for_children", "pid"),
    ];
    let mut namespaces: Vec<Namespace> = joined
        .iter()
        .map(|(typ, file, _)| Namespace {
            typ: *typ,
            path: Some(holder.path(file)),
        })
        .collect();
    namespaces.push(Namespace {
        typ: NamespaceType::Mount,
        path: None,
    });
    bundle.linux().namespaces = namespaces;
    let report = ctx.report(&mut bundle)?;
    for (_, file, inside_name) in joined {
        let want = holder.ns(file);
        let got = report["ns"][inside_name].as_str().unwrap_or("");
        ensure!(
            got == want,
            "{inside_name}: joined {got}, expected {want} ({})",
            holder.path(file)
        );
    }
    ensure!(
        report["pid"] != 1,
        "the init is pid 1, so it did not join the existing pid namespace"
    );
    Ok(())
}

fn join_mount_by_path(ctx: &Ctx) -> TestResult {
    let holder = Holder::spawn(&["--mount"])?;
    let mut bundle = ctx.bundle()?;
    for ns in &mut bundle.linux().namespaces {
        if ns.typ == NamespaceType::Mount {
            ns.path = Some(holder.path("mnt"));
        }
    }
    let report = ctx.report(&mut bundle)?;
    let got = report["ns"]["mnt"].as_str().unwrap_or("");
    ensure!(
        got == holder.ns("mnt"),
        "mnt: joined {got}, expected {}",
        holder.ns("mnt")
    );
    ensure!(
        report["ns"]["uts"] != host_ns("uts").as_str(),
        "uts is not new"
    );
    Ok(())
}

fn wrong_type_is_refused(ctx: &Ctx) -> TestResult {
    for (typ, wrong) in [
        (NamespaceType::Uts, "ipc"),
        (NamespaceType::Ipc, "net"),
        (NamespaceType::Network, "uts"),
    ] {
        let mut bundle = ctx.bundle()?;
        for ns in &mut bundle.linux().namespaces {
            if ns.typ == typ {
                ns.path = Some(format!("/proc/self/ns/{wrong}"));
            }
        }
        bundle.write_config()?;
        let id = ctx.id();
        let before = ctx.snapshot(&bundle, &id);
        let out = ctx.rt.create(&id, &bundle.dir)?;
        let created = out.success();
        if created {
            ctx.destroy(&id);
        }
        ensure!(
            !created,
            "{} namespace given a {wrong} namespace path: create succeeded",
            typ.as_str()
        );
        if ctx.is_berth() {
            ensure!(
                out.stderr.contains(&format!("/proc/self/ns/{wrong}")),
                "the error does not name the path: {}",
                out.stderr
            );
        }
        leaks::check_clean(&before)?;
    }
    Ok(())
}

fn user_namespace(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let map = IdMapping {
        container_id: 0,
        host_id: 100_000,
        size: 65_536,
    };
    bundle.linux().namespaces.push(Namespace {
        typ: NamespaceType::User,
        path: None,
    });
    bundle.linux().uid_mappings = vec![map];
    bundle.linux().gid_mappings = vec![map];
    bundle
        .spec
        .mounts
        .retain(|m| m.destination != "/sys/fs/cgroup");
    let mut lines = ctx.probe(
        &mut bundle,
        &[
            "report",
            "+",
            "stat",
            "/dev/null",
            "+",
            "write",
            "/dev/null",
            "+",
            "stat",
            "/dev/zero",
        ],
    )?;
    ensure!(lines.len() == 4, "probe printed {lines:?}");
    let report = lines.remove(0);
    ensure!(
        report["ns"]["user"] != host_ns("user").as_str(),
        "user namespace is not new"
    );
    ensure!(
        report["uid"] == 0 && report["gid"] == 0,
        "ids inside: {} {}",
        report["uid"],
        report["gid"]
    );
    for key in ["uid_map", "gid_map"] {
        let map = &report[key];
        ensure!(
            map == &serde_json::json!(["0 100000 65536"]),
            "{key}: {map}"
        );
    }
    let null = &lines[0];
    ensure!(
        null["type"] == "c" && null["major"] == 1 && null["minor"] == 3,
        "/dev/null: {null}"
    );
    // mknod is impossible in the namespace: either the host's node is bound
    // (its owner, host root, shows as the overflow uid) or the runtime made
    // the node before entering it (crun: owned by the container's root).
    ensure!(
        null["uid"] == 65534 || null["uid"] == 0,
        "/dev/null owner: {null}"
    );
    ensure!(
        lines[1]["errno"] == 0,
        "writing /dev/null failed: {}",
        lines[1]
    );
    ensure!(
        lines[2]["type"] == "c" && lines[2]["minor"] == 5,
        "/dev/zero: {}",
        lines[2]
    );
    Ok(())
}
