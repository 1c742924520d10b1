//! Names the config field behind a failure a container process reported,
//! so errors read "mounts[3] (destination /proc): mount: Permission denied".

use super::channel::Stage;
use crate::rootfs::plan::DEFAULT_DEVICES;
use crate::spec::Spec;

/// Names the config field behind a child failure.
pub(crate) fn describe_stage(spec: &Spec, stage: Stage, index: u32) -> String {
    let i = index as usize;
    let linux = spec.linux.clone().unwrap_or_default();
    match stage {
        Stage::Namespace if i < linux.namespaces.len() => {
            let n = &linux.namespaces[i];
            match &n.path {
                Some(p) => format!(
                    "linux.namespaces[{i}] ({} namespace at {p})",
                    n.typ.as_str()
                ),
                None => format!("linux.namespaces[{i}] ({} namespace)", n.typ.as_str()),
            }
        }
        Stage::Namespace => "linux.namespaces".into(),
        Stage::UserNamespace => "linux.namespaces (user)".into(),
        Stage::CgroupNamespace => "linux.namespaces (cgroup)".into(),
        Stage::TimeNamespace => "linux.timeOffsets".into(),
        Stage::Hostname => "hostname".into(),
        Stage::Domainname => "domainname".into(),
        Stage::Personality => "linux.personality".into(),
        Stage::Propagation => "linux.rootfsPropagation / root.path".into(),
        Stage::Mount if i < spec.mounts.len() => {
            format!("mounts[{i}] (destination {})", spec.mounts[i].destination)
        }
        Stage::Mount => "mounts".into(),
        Stage::Device if i < linux.devices.len() => {
            format!("linux.devices[{i}] ({})", linux.devices[i].path)
        }
        Stage::Device => "linux.devices".into(),
        Stage::Symlink => DEFAULT_DEVICES
            .get(i)
            .map(|d| format!("default device {}", d.0))
            .unwrap_or_else(|| "default /dev entries".into()),
        Stage::PivotRoot => "root.path (pivot_root)".into(),
        Stage::Sysctl => linux
            .sysctl
            .keys()
            .nth(i)
            .map(|k| format!("linux.sysctl.{k}"))
            .unwrap_or_else(|| "linux.sysctl".into()),
        Stage::MaskedPath => format!("linux.maskedPaths[{i}]"),
        Stage::ReadonlyPath => format!("linux.readonlyPaths[{i}]"),
        Stage::ReadonlyRoot => "root.readonly".into(),
        Stage::Console => "process.terminal".into(),
        Stage::OomScoreAdj => "process.oomScoreAdj".into(),
        Stage::Rlimit => format!("process.rlimits[{i}]"),
        Stage::NoNewPrivileges => "process.noNewPrivileges".into(),
        Stage::Seccomp => "linux.seccomp".into(),
        Stage::Groups => "process.user.additionalGids".into(),
        Stage::User => "process.user".into(),
        Stage::Capabilities => "process.capabilities".into(),
        Stage::Cwd => "process.cwd".into(),
        Stage::Executable => "process.args".into(),
        Stage::CreateContainerHook => format!("hooks.createContainer[{i}]"),
        Stage::StartContainerHook => format!("hooks.startContainer[{i}]"),
        Stage::Exec => "process".into(),
        Stage::IoPriority => "process.ioPriority".into(),
        Stage::Scheduler => "process.scheduler".into(),
        Stage::Fork => "linux.namespaces (pid)".into(),
        Stage::Channel => "container init".into(),
        Stage::Cgroup => "linux.cgroupsPath (joining the cgroup)".into(),
        Stage::Keyring => "session keyring (--no-new-keyring skips it)".into(),
    }
}
