//! Checks on a parsed spec that need no host access. Each failure names the
//! JSON field. Checks that need the host (paths exist, namespace files are of
//! the right type) happen while planning the container.

use std::collections::BTreeSet;

use super::types::*;
use crate::error::{Error, Result};

const ROOTFS_PROPAGATIONS: &[&str] = &[
    "shared",
    "slave",
    "private",
    "unbindable",
    "rshared",
    "rslave",
    "rprivate",
    "runbindable",
];

/// Validates a spec for `create`/`run`.
pub fn validate(spec: &Spec) -> Result<()> {
    let root = spec
        .root
        .as_ref()
        .ok_or_else(|| Error::invalid("root", "is required"))?;
    if root.path.is_empty() {
        return Err(Error::invalid("root.path", "must not be empty"));
    }
    let process = spec
        .process
        .as_ref()
        .ok_or_else(|| Error::invalid("process", "is required to create a container"))?;
    validate_process(process, "process")?;

    let linux = spec.linux.clone().unwrap_or_default();
    if linux.intel_rdt.is_some() {
        // runc refuses it where resctrl is missing; ignoring a resource
        // request silently would be worse than refusing it.
        return Err(Error::Unsupported(
            "linux.intelRdt: Intel RDT (resctrl) is not supported by berth".into(),
        ));
    }
    let ns = validate_namespaces(&linux)?;
    let owns = |t: NamespaceType| {
        linux
            .namespaces
            .iter()
            .any(|n| n.typ == t && n.path.is_none())
    };
    let has = |t: NamespaceType| ns.contains(&t);

    if (!linux.uid_mappings.is_empty() || !linux.gid_mappings.is_empty())
        && !owns(NamespaceType::User)
    {
        return Err(Error::invalid(
            "linux.uidMappings",
            "uid/gid mappings need a new user namespace (a \"user\" entry without a path)",
        ));
    }
    if owns(NamespaceType::User) && (linux.uid_mappings.is_empty() || linux.gid_mappings.is_empty())
    {
        return Err(Error::invalid(
            "linux.uidMappings",
            "a new user namespace needs both uidMappings and gidMappings",
        ));
    }
    for (field, maps) in [
        ("linux.uidMappings", &linux.uid_mappings),
        ("linux.gidMappings", &linux.gid_mappings),
    ] {
        for (i, m) in maps.iter().enumerate() {
            if m.size == 0 {
                return Err(Error::invalid(
                    format!("{field}[{i}].size"),
                    "must be greater than 0",
                ));
            }
        }
    }
    if spec.hostname.as_deref().is_some_and(|h| !h.is_empty()) && !has(NamespaceType::Uts) {
        return Err(Error::invalid(
            "hostname",
            "setting the hostname needs a private uts namespace",
        ));
    }
    if spec.domainname.as_deref().is_some_and(|h| !h.is_empty()) && !has(NamespaceType::Uts) {
        return Err(Error::invalid(
            "domainname",
            "setting the domainname needs a private uts namespace",
        ));
    }
    if !linux.time_offsets.is_empty() && !owns(NamespaceType::Time) {
        return Err(Error::invalid(
            "linux.timeOffsets",
            "time offsets need a new time namespace",
        ));
    }
    for key in linux.time_offsets.keys() {
        if key != "monotonic" && key != "boottime" {
            return Err(Error::invalid(
                format!("linux.timeOffsets.{key}"),
                "only \"monotonic\" and \"boottime\" clocks can be offset",
            ));
        }
    }
    validate_sysctls(&linux, &has)?;
    if let Some(p) = &linux.rootfs_propagation {
        if !ROOTFS_PROPAGATIONS.contains(&p.as_str()) {
            return Err(Error::invalid(
                "linux.rootfsPropagation",
                format!("unknown propagation {p:?}, expected one of {ROOTFS_PROPAGATIONS:?}"),
            ));
        }
    }
    if let Some(cg) = &linux.cgroups_path {
        if cg.split('/').any(|c| c == "..") {
            return Err(Error::invalid(
                "linux.cgroupsPath",
                format!("{cg:?} must not contain \"..\""),
            ));
        }
    }
    for (i, m) in spec.mounts.iter().enumerate() {
        validate_mount(m, &format!("mounts[{i}]"))?;
    }
    for (i, d) in linux.devices.iter().enumerate() {
        let field = format!("linux.devices[{i}]");
        if !matches!(d.typ.as_str(), "c" | "b" | "u" | "p") {
            return Err(Error::invalid(
                format!("{field}.type"),
                format!("{:?} is not one of c, b, u, p", d.typ),
            ));
        }
        if !d.path.starts_with('/') || escapes_root(&d.path) {
            return Err(Error::invalid(
                format!("{field}.path"),
                format!("{:?} must be an absolute path inside the container", d.path),
            ));
        }
    }
    for (field, paths) in [
        ("linux.maskedPaths", &linux.masked_paths),
        ("linux.readonlyPaths", &linux.readonly_paths),
    ] {
        for (i, p) in paths.iter().enumerate() {
            if !p.starts_with('/') {
                return Err(Error::invalid(
                    format!("{field}[{i}]"),
                    format!("{p:?} must be an absolute path"),
                ));
            }
        }
    }
    if let Some(p) = &linux.personality {
        if p.domain != "LINUX" && p.domain != "LINUX32" {
            return Err(Error::invalid(
                "linux.personality.domain",
                format!("{:?} is not LINUX or LINUX32", p.domain),
            ));
        }
    }
    if let Some(hooks) = &spec.hooks {
        for (kind, list) in hook_lists(hooks) {
            for (i, h) in list.iter().enumerate() {
                if !h.path.starts_with('/') {
                    return Err(Error::invalid(
                        format!("hooks.{kind}[{i}].path"),
                        format!("{:?} must be an absolute path", h.path),
                    ));
                }
                if h.timeout.is_some_and(|t| t <= 0) {
                    return Err(Error::invalid(
                        format!("hooks.{kind}[{i}].timeout"),
                        "must be greater than zero",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The hook lists in spec order with their JSON names.
pub(crate) fn hook_lists(h: &Hooks) -> [(&'static str, &Vec<Hook>); 6] {
    [
        ("prestart", &h.prestart),
        ("createRuntime", &h.create_runtime),
        ("createContainer", &h.create_container),
        ("startContainer", &h.start_container),
        ("poststart", &h.poststart),
        ("poststop", &h.poststop),
    ]
}

/// Validates a process (container init, or an exec'd process).
pub fn validate_process(p: &Process, field: &str) -> Result<()> {
    if p.args.is_empty() || p.args[0].is_empty() {
        return Err(Error::invalid(
            format!("{field}.args"),
            "must name a program to run",
        ));
    }
    if !p.cwd.starts_with('/') {
        return Err(Error::invalid(
            format!("{field}.cwd"),
            format!("{:?} must be an absolute path", p.cwd),
        ));
    }
    if escapes_root(&p.cwd) {
        return Err(Error::invalid(
            format!("{field}.cwd"),
            format!("{:?} escapes the container root", p.cwd),
        ));
    }
    for (i, e) in p.env.iter().enumerate() {
        if !e.contains('=') {
            return Err(Error::invalid(
                format!("{field}.env[{i}]"),
                format!("{e:?} is not of the form KEY=value"),
            ));
        }
    }
    if let Some(adj) = p.oom_score_adj {
        if !(-1000..=1000).contains(&adj) {
            return Err(Error::invalid(
                format!("{field}.oomScoreAdj"),
                format!("{adj} is outside -1000..=1000"),
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (i, r) in p.rlimits.iter().enumerate() {
        let f = format!("{field}.rlimits[{i}]");
        if crate::rlimits::resource_number(&r.typ).is_none() {
            return Err(Error::invalid(
                format!("{f}.type"),
                format!("unknown rlimit {:?}", r.typ),
            ));
        }
        if !seen.insert(r.typ.as_str()) {
            return Err(Error::invalid(
                format!("{f}.type"),
                format!("{} is set more than once", r.typ),
            ));
        }
        if r.soft > r.hard {
            return Err(Error::invalid(
                f,
                format!("soft limit {} is above hard limit {}", r.soft, r.hard),
            ));
        }
    }
    if p.terminal
        && p.console_size
            .is_some_and(|c| c.width == 0 && c.height == 0)
    {
        // A zero size is what some callers send for "unknown"; accept it.
    }
    Ok(())
}

fn validate_namespaces(linux: &Linux) -> Result<BTreeSet<NamespaceType>> {
    let mut seen = BTreeSet::new();
    for (i, n) in linux.namespaces.iter().enumerate() {
        if !seen.insert(n.typ) {
            return Err(Error::invalid(
                format!("linux.namespaces[{i}].type"),
                format!("namespace {:?} is listed more than once", n.typ.as_str()),
            ));
        }
        if let Some(p) = &n.path {
            if !p.starts_with('/') {
                return Err(Error::invalid(
                    format!("linux.namespaces[{i}].path"),
                    format!("{p:?} must be an absolute path"),
                ));
            }
        }
    }
    Ok(seen)
}

fn validate_mount(m: &Mount, field: &str) -> Result<()> {
    if !m.destination.starts_with('/') {
        return Err(Error::invalid(
            format!("{field}.destination"),
            format!("{:?} must be an absolute path", m.destination),
        ));
    }
    if escapes_root(&m.destination) {
        return Err(Error::invalid(
            format!("{field}.destination"),
            format!("{:?} escapes the container root", m.destination),
        ));
    }
    Ok(())
}

/// True when `..` components climb above `/`.
pub(crate) fn escapes_root(path: &str) -> bool {
    let mut depth: i32 = 0;
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

fn validate_sysctls(linux: &Linux, has: &dyn Fn(NamespaceType) -> bool) -> Result<()> {
    for key in linux.sysctl.keys() {
        let field = format!("linux.sysctl.{key}");
        if key.contains('/') || key.split('.').any(|c| c.is_empty() || c == "..") {
            return Err(Error::invalid(field, "is not a valid sysctl name"));
        }
        let ipc = matches!(
            key.as_str(),
            "kernel.msgmax"
                | "kernel.msgmnb"
                | "kernel.msgmni"
                | "kernel.sem"
                | "kernel.shmall"
                | "kernel.shmmax"
                | "kernel.shmmni"
                | "kernel.shm_rmid_forced"
        ) || key.starts_with("fs.mqueue.");
        if ipc {
            if !has(NamespaceType::Ipc) {
                return Err(Error::invalid(field, "needs a private ipc namespace"));
            }
            continue;
        }
        if key.starts_with("net.") {
            if !has(NamespaceType::Network) {
                return Err(Error::invalid(field, "needs a private network namespace"));
            }
            continue;
        }
        if key == "kernel.hostname" || key == "kernel.domainname" {
            if !has(NamespaceType::Uts) {
                return Err(Error::invalid(field, "needs a private uts namespace"));
            }
            continue;
        }
        return Err(Error::invalid(
            field,
            "is not namespaced; changing it would affect the whole host",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Spec {
        crate::spec::parse_config(
            br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
                 "process":{"cwd":"/","args":["sh"]},
                 "linux":{"namespaces":[{"type":"mount"},{"type":"pid"}]}}"#,
        )
        .unwrap()
    }

    fn field_of(spec: &Spec) -> String {
        match validate(spec).unwrap_err() {
            Error::InvalidConfig { field, .. } => field,
            e => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn base_is_valid() {
        validate(&base()).unwrap();
    }

    #[test]
    fn intel_rdt_is_refused_not_ignored() {
        let mut s = base();
        s.linux.as_mut().unwrap().intel_rdt = Some(serde_json::json!({"closID": "x"}));
        let e = validate(&s).unwrap_err().to_string();
        assert!(e.contains("linux.intelRdt"), "{e}");
    }

    #[test]
    fn missing_root_is_rejected() {
        let mut s = base();
        s.root = None;
        assert_eq!(field_of(&s), "root");
    }

    #[test]
    fn relative_and_escaping_mount_destinations_are_rejected() {
        let mut s = base();
        s.mounts.push(Mount {
            destination: "tmp".into(),
            ..Default::default()
        });
        assert_eq!(field_of(&s), "mounts[0].destination");
        s.mounts[0].destination = "/../../etc".into();
        assert_eq!(field_of(&s), "mounts[0].destination");
        s.mounts[0].destination = "/a/../b".into();
        validate(&s).unwrap();
    }

    #[test]
    fn cgroups_path_with_dotdot_is_rejected() {
        let mut s = base();
        s.linux.as_mut().unwrap().cgroups_path = Some("/a/../../b".into());
        assert_eq!(field_of(&s), "linux.cgroupsPath");
    }

    #[test]
    fn duplicate_namespace_is_rejected() {
        let mut s = base();
        s.linux.as_mut().unwrap().namespaces.push(Namespace {
            typ: NamespaceType::Pid,
            path: None,
        });
        assert_eq!(field_of(&s), "linux.namespaces[2].type");
    }

    #[test]
    fn host_wide_sysctl_is_rejected() {
        let mut s = base();
        s.linux
            .as_mut()
            .unwrap()
            .sysctl
            .insert("vm.swappiness".into(), "10".into());
        assert_eq!(field_of(&s), "linux.sysctl.vm.swappiness");
    }

    #[test]
    fn rlimit_soft_above_hard_is_rejected() {
        let mut s = base();
        s.process.as_mut().unwrap().rlimits.push(Rlimit {
            typ: "RLIMIT_NOFILE".into(),
            hard: 10,
            soft: 20,
        });
        assert_eq!(field_of(&s), "process.rlimits[0]");
    }

    #[test]
    fn escapes_root_detects_climbing() {
        assert!(escapes_root("/.."));
        assert!(escapes_root("/a/../../b"));
        assert!(!escapes_root("/a/../b"));
        assert!(!escapes_root("/"));
    }
}
