//! The configuration `berth-runc spec` writes: a small, locked-down
//! container (same shape as runc's example spec: private namespaces, a
//! read-only root, the usual /proc, /dev and /sys mounts, masked kernel
//! files, three capabilities).

use super::types::*;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    Mount {
        destination: dest.into(),
        typ: Some(typ.into()),
        source: Some(source.into()),
        options: strings(options),
        ..Default::default()
    }
}

/// The default spec; `rootless` maps the caller's ids into a user namespace.
pub fn default_spec(rootless: Option<(u32, u32)>) -> Spec {
    let caps = strings(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut namespaces: Vec<Namespace> = [
        NamespaceType::Pid,
        NamespaceType::Network,
        NamespaceType::Ipc,
        NamespaceType::Uts,
        NamespaceType::Mount,
        NamespaceType::Cgroup,
    ]
    .into_iter()
    .map(|typ| Namespace { typ, path: None })
    .collect();
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &[]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    ];
    let mut linux = Linux {
        resources: Some(Resources {
            devices: vec![DeviceCgroup {
                allow: false,
                access: Some("rwm".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        masked_paths: strings(&[
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
        ]),
        readonly_paths: strings(&[
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ]),
        ..Default::default()
    };
    if let Some((uid, gid)) = rootless {
        namespaces.retain(|n| n.typ != NamespaceType::Network);
        namespaces.push(Namespace {
            typ: NamespaceType::User,
            path: None,
        });
        linux.uid_mappings = vec![IdMapping {
            container_id: 0,
            host_id: uid,
            size: 1,
        }];
        linux.gid_mappings = vec![IdMapping {
            container_id: 0,
            host_id: gid,
            size: 1,
        }];
        linux.resources = None;
        mounts.retain(|m| m.destination != "/sys/fs/cgroup" && m.destination != "/sys");
        mounts.push(Mount {
            destination: "/sys".into(),
            typ: Some("none".into()),
            source: Some("/sys".into()),
            options: strings(&["rbind", "nosuid", "noexec", "nodev", "ro"]),
            ..Default::default()
        });
    }
    linux.namespaces = namespaces;
    Spec {
        oci_version: crate::state::OCI_VERSION.into(),
        root: Some(Root {
            path: "rootfs".into(),
            readonly: true,
        }),
        mounts,
        process: Some(Process {
            terminal: true,
            user: User::default(),
            args: strings(&["sh"]),
            env: strings(&[
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ]),
            cwd: "/".into(),
            capabilities: Some(Capabilities {
                bounding: Some(caps.clone()),
                effective: Some(caps.clone()),
                permitted: Some(caps),
                ambient: None,
                inheritable: None,
            }),
            rlimits: vec![Rlimit {
                typ: "RLIMIT_NOFILE".into(),
                hard: 1024,
                soft: 1024,
            }],
            no_new_privileges: true,
            ..Default::default()
        }),
        hostname: Some("berth".into()),
        linux: Some(linux),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_spec_is_valid_and_round_trips() {
        let spec = super::default_spec(None);
        crate::spec::validate(&spec).unwrap();
        let json = serde_json::to_vec(&spec).unwrap();
        assert_eq!(crate::spec::parse_config(&json).unwrap(), spec);
    }
}
