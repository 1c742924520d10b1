//! The CLI surface beyond the lifecycle: spec and features.

use berth_tests::runtime::{Io, Kind};
use serde_json::Value;

use crate::support::{Ctx, TestResult};
use crate::{ensure, Case};

pub fn cases() -> Vec<Case> {
    vec![
        Case::new("cli::spec_writes_a_runnable_default_config", spec),
        Case::new("cli::features_describes_the_runtime", features)
            .skip(&[(Kind::Crun, "crun 1.8.1 has no features command")]),
    ]
}

fn spec(ctx: &Ctx) -> TestResult {
    for rootless in [false, true] {
        let dir = tempfile::tempdir()?;
        let mut args = vec!["spec"];
        if rootless {
            args.push("--rootless");
        }
        let io = Io {
            cwd: Some(dir.path().to_path_buf()),
            ..Io::default()
        };
        ctx.rt.call_with(&args, io)?.ok("spec")?;
        let text = std::fs::read_to_string(dir.path().join("config.json"))?;
        let config: Value =
            serde_json::from_str(&text).map_err(|e| format!("spec wrote bad JSON ({e})"))?;
        ensure!(
            config["ociVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("1.")),
            "ociVersion: {}",
            config["ociVersion"]
        );
        ensure!(
            config["root"]["path"] == "rootfs",
            "root.path: {}",
            config["root"]
        );
        ensure!(
            config["process"]["args"] == serde_json::json!(["sh"]),
            "process.args: {}",
            config["process"]["args"]
        );
        let namespaces: Vec<&str> = config["linux"]["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n["type"].as_str())
            .collect();
        for ns in ["pid", "mount", "ipc", "uts"] {
            ensure!(
                namespaces.contains(&ns),
                "spec lacks a {ns} namespace: {namespaces:?}"
            );
        }
        ensure!(
            namespaces.contains(&"user") == rootless,
            "rootless={rootless} but namespaces {namespaces:?}"
        );
        // crun leaves the mappings to be computed at create time.
        let maps = &config["linux"]["uidMappings"];
        if rootless && !maps.is_null() {
            ensure!(
                maps[0]["hostID"] == 0 && maps[0]["size"] == 1,
                "rootless uidMappings for root: {maps}"
            );
        }
        // The config parses with berth's own types.
        berth_executor::spec::parse_config(text.as_bytes())
            .map_err(|e| format!("spec output does not parse: {e}"))?;
    }
    Ok(())
}

fn features(ctx: &Ctx) -> TestResult {
    let out = ctx.rt.call(&["features"])?.ok("features")?;
    let f: Value = serde_json::from_str(&out.stdout)
        .map_err(|e| format!("features JSON ({e}): {}", out.stdout))?;
    ensure!(
        f["ociVersionMin"].as_str().is_some() && f["ociVersionMax"].as_str().is_some(),
        "oci versions: {f}"
    );
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    };
    let hooks = list(&f["hooks"]);
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        ensure!(
            hooks.iter().any(|x| x == h),
            "features.hooks lacks {h}: {hooks:?}"
        );
    }
    let opts = list(&f["mountOptions"]);
    for o in ["ro", "nosuid", "bind", "rbind", "rro"] {
        ensure!(
            opts.iter().any(|x| x == o),
            "features.mountOptions lacks {o}"
        );
    }
    let ns = list(&f["linux"]["namespaces"]);
    for n in ["pid", "network", "mount", "ipc", "uts", "user", "cgroup"] {
        ensure!(
            ns.iter().any(|x| x == n),
            "features.linux.namespaces lacks {n}: {ns:?}"
        );
    }
    let actions = list(&f["linux"]["seccomp"]["actions"]);
    ensure!(
        actions.iter().any(|a| a == "SCMP_ACT_ERRNO"),
        "seccomp actions: {actions:?}"
    );
    ensure!(
        f["linux"]["cgroup"]["v1"] == true,
        "cgroup v1 support not reported: {}",
        f["linux"]["cgroup"]
    );
    Ok(())
}
