//! A container's cgroup: where it lives (v1 hierarchies or the v2 unified
//! hierarchy), its creation, resource limits, membership, freezer, stats,
//! OOM notification and removal. Our own small layer over cgroupfs, with
//! runc 1.1's semantics (libcontainer/cgroups/{fs,fs2}, specconv).
//!
//! Order of use: `resolve` → `create` → `apply` → `add_process` (the
//! container's init, before it execs) → ... → `destroy`. `apply` again for
//! `update`, with the complete desired resources (it is declarative).

mod devices;
mod error;
mod fs;
mod oom;
mod root;
pub mod stats;
mod sys;
mod v1;
mod v1_freezer;
mod v1_stats;
mod v2;
mod v2_devices;
mod v2_stats;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use error::CgroupError;
pub use root::{CgroupFsType, CgroupMount, CgroupRoot};
pub use stats::Stats;

use crate::spec::{Rdma, Resources};
use error::Result;
use fs::{read_u64, write_raw};

/// See [`Cgroup::self_join`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelfJoin {
    /// (`<dir>/tasks`, failure is only a warning)
    pub v1_tasks: Vec<(PathBuf, bool)>,
    /// The cgroup2 directory to clone into.
    pub v2_dir: Option<PathBuf>,
}

/// One hierarchy the container's cgroup lives in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchy {
    /// Base name of the host mount point ("cpu", "cpu,cpuacct", "systemd",
    /// "unified" for the cgroup2 mount of a hybrid host), or "" for the v2
    /// unified hierarchy, which is mounted at /sys/fs/cgroup itself.
    pub name: String,
    /// v1 mount options naming the hierarchy: "cpu", "cpu,cpuacct",
    /// "name=systemd". Empty for cgroup2.
    pub options: String,
    pub fs_type: CgroupFsType,
    /// Host mount point of the hierarchy, e.g. /sys/fs/cgroup/memory.
    pub mount_point: PathBuf,
    /// The cgroup inside the hierarchy, as /proc/<pid>/cgroup shows it.
    pub path: String,
    /// Host directory of the container's cgroup in this hierarchy.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Version {
    V1,
    V2,
}

/// Where a container's cgroup lives. Serializable so the executor can keep
/// it in state.json and act on the same directories in later commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    version: Version,
    hierarchies: Vec<Hierarchy>,
}

impl Cgroup {
    /// Resolves the container's cgroup on this host (reads
    /// /proc/self/mountinfo and /proc/self/cgroup); creates nothing.
    /// `cgroups_path` is linux.cgroupsPath; when absent or empty,
    /// `default_relative` is used (the executor passes the container id).
    pub fn resolve(cgroups_path: Option<&str>, default_relative: &str) -> Result<Cgroup> {
        Cgroup::resolve_in(&CgroupRoot::from_host()?, cgroups_path, default_relative)
    }

    /// Like `resolve`, against explicit mounts (fixture trees, tests).
    ///
    /// An absolute path is taken from each hierarchy's root. A relative path
    /// is taken from the caller's own cgroup on v1 (runc's GetOwnCgroupPath;
    /// runtime-tools' linux_cgroups_relative_* tests check this) and from its
    /// parent on v2, since a v2 process sits in a leaf (runc fs2 defaultPath).
    pub fn resolve_in(
        root: &CgroupRoot,
        cgroups_path: Option<&str>,
        default_relative: &str,
    ) -> Result<Cgroup> {
        let raw = cgroups_path
            .filter(|p| !p.is_empty())
            .unwrap_or(default_relative);
        let (absolute, parts) = root::clean_cgroups_path(raw)?;
        if root.mounts.is_empty() {
            return Err(CgroupError::NotMounted {
                message: "no cgroup hierarchy given".into(),
            });
        }
        let v2 = root.is_v2();
        let hierarchies = root
            .mounts
            .iter()
            .map(|m| {
                let base = if absolute {
                    "/".to_string()
                } else if v2 {
                    root::parent_cgroup(&m.own_cgroup)
                } else {
                    m.own_cgroup.clone()
                };
                let path = root::join_cgroup(&base, &parts);
                let name = if v2 {
                    String::new()
                } else {
                    m.mount_point
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                };
                Hierarchy {
                    name,
                    options: m.options.clone(),
                    fs_type: m.fs_type,
                    mount_point: m.mount_point.clone(),
                    dir: root::host_dir(&m.mount_point, &m.root, &path),
                    path,
                }
            })
            .collect();
        Ok(Cgroup {
            version: if v2 { Version::V2 } else { Version::V1 },
            hierarchies,
        })
    }

    pub fn is_v2(&self) -> bool {
        self.version == Version::V2
    }

    fn v2_hierarchy(&self) -> Result<&Hierarchy> {
        self.hierarchies
            .first()
            .ok_or_else(|| CgroupError::NotMounted {
                message: "cgroup has no hierarchy".into(),
            })
    }

    /// The one directory of a v2 cgroup.
    fn v2_dir(&self) -> Result<&Path> {
        self.v2_hierarchy().map(|h| h.dir.as_path())
    }

    /// Creates the directories: v1 in every hierarchy (cpuset filled from
    /// its parents), v2 with the controllers enabled down the ancestors.
    pub fn create(&self) -> Result<()> {
        match self.version {
            Version::V1 => v1::create(&self.hierarchies),
            Version::V2 => v2::create(self.v2_hierarchy()?),
        }
    }

    /// Writes the resource limits, including device rules (runc's default
    /// allowed devices are appended to linux.resources.devices). Declarative:
    /// for `update`, pass the full merged resources, not only the changes.
    pub fn apply(&self, r: &Resources) -> Result<()> {
        match self.version {
            Version::V1 => v1::apply(&self.hierarchies, r),
            Version::V2 => v2::apply(self.v2_dir()?, r),
        }
    }

    /// Moves `pid` (the whole thread group) into the cgroup everywhere.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        for h in &self.hierarchies {
            match fs::write_procs(&h.dir, pid) {
                Err(e) if self.version == Version::V1 && v1::is_best_effort(h) => {
                    tracing::warn!(pid, path = %h.dir.display(), error = %e, "cannot join a named cgroup hierarchy, skipping");
                }
                other => other?,
            }
        }
        Ok(())
    }

    /// How a freshly cloned, single-threaded process can join this cgroup
    /// by itself, without the global cgroup_threadgroup_rwsem write lock
    /// that moving another process takes (whose first use in a while waits
    /// for an RCU grace period, ~10 ms): it writes "0" to each v1
    /// hierarchy's `tasks` file, and is cloned straight into the v2 cgroup
    /// with clone3(CLONE_INTO_CGROUP). Best-effort hierarchies (named ones,
    /// the hybrid cgroup2 mount) are marked so a failure there is ignored.
    pub fn self_join(&self) -> SelfJoin {
        let mut join = SelfJoin::default();
        for h in &self.hierarchies {
            match h.fs_type {
                CgroupFsType::Cgroup => join
                    .v1_tasks
                    .push((h.dir.join("tasks"), v1::is_best_effort(h))),
                CgroupFsType::Cgroup2 => join.v2_dir = Some(h.dir.clone()),
            }
        }
        join
    }

    /// Moves `pid` into the cgroup2 part only (when clone3 could not place
    /// it there); on a hybrid host that part is best-effort.
    pub fn add_process_v2(&self, pid: i32) -> Result<()> {
        for h in self
            .hierarchies
            .iter()
            .filter(|h| h.fs_type == CgroupFsType::Cgroup2)
        {
            match fs::write_procs(&h.dir, pid) {
                Err(e) if self.version == Version::V1 => {
                    tracing::warn!(pid, path = %h.dir.display(), error = %e, "cannot join the cgroup2 hierarchy, skipping");
                }
                other => other?,
            }
        }
        Ok(())
    }

    /// Freezes every task and returns once the kernel reports them frozen.
    pub fn freeze(&self) -> Result<()> {
        match self.version {
            Version::V1 => v1_freezer::freeze(&self.hierarchies),
            Version::V2 => v2::freeze(self.v2_dir()?),
        }
    }

    pub fn thaw(&self) -> Result<()> {
        match self.version {
            Version::V1 => v1_freezer::thaw(&self.hierarchies),
            Version::V2 => v2::thaw(self.v2_dir()?),
        }
    }

    pub fn is_frozen(&self) -> Result<bool> {
        match self.version {
            Version::V1 => v1_freezer::is_frozen(&self.hierarchies),
            Version::V2 => v2::is_frozen(self.v2_dir()?),
        }
    }

    /// Every process in the cgroup and its sub-cgroups (v1: read from the
    /// devices hierarchy, as runc does, or the freezer's).
    pub fn pids(&self) -> Result<Vec<i32>> {
        let dir = match self.version {
            Version::V2 => self.v2_dir()?,
            Version::V1 => ["devices", "freezer", "pids", "memory", "cpu"]
                .iter()
                .find_map(|c| v1::dir_of(&self.hierarchies, c))
                .or_else(|| self.hierarchies.first().map(|h| h.dir.as_path()))
                .ok_or_else(|| CgroupError::NotMounted {
                    message: "cgroup has no hierarchy".into(),
                })?,
        };
        fs::procs_recursive(dir)
    }

    pub fn stats(&self) -> Result<Stats> {
        match self.version {
            Version::V1 => v1_stats::stats(&self.hierarchies),
            Version::V2 => v2_stats::stats(self.v2_dir()?),
        }
    }

    /// Removes the container's cgroup (and any cgroups below it) in every
    /// hierarchy, retrying for about a second while exited tasks linger.
    /// Idempotent: a cgroup that is already gone is fine.
    pub fn destroy(&self) -> Result<()> {
        let mut first_err = None;
        for h in &self.hierarchies {
            if let Err(e) = fs::remove_tree(&h.dir) {
                tracing::warn!(path = %h.dir.display(), error = %e, "cannot remove cgroup");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// True while the cgroup directory exists in any hierarchy.
    pub fn exists(&self) -> bool {
        self.hierarchies.iter().any(|h| h.dir.is_dir())
    }

    /// The hierarchies, for mounting `type: cgroup` inside the container:
    ///
    /// * v1 without a cgroup namespace: tmpfs (mode=755) at the destination,
    ///   then for each hierarchy of `fs_type` Cgroup, a bind mount (MS_BIND |
    ///   MS_REC, then the requested read-only remount) of `dir` at
    ///   `<destination>/<name>`; for a co-mounted name like "cpu,cpuacct",
    ///   symlinks "cpu" and "cpuacct" to it.
    /// * v1 with a cgroup namespace (unshared after `add_process`): the same
    ///   tmpfs, then `mount("cgroup", <destination>/<name>, "cgroup", flags,
    ///   options)`; runc passes source "systemd" for "name=systemd".
    /// * v2 (name ""): with a cgroup namespace, mount cgroup2 at the
    ///   destination; without one runc mounts cgroup2 too (the whole host
    ///   tree is visible) and falls back to a bind of /sys/fs/cgroup on
    ///   EPERM/EBUSY; binding `dir` instead hides the host tree.
    /// * The cgroup2 entry of a v1 hybrid host ("unified") is joined but, as
    ///   in runc, not mounted in the container.
    pub fn hierarchies(&self) -> Vec<Hierarchy> {
        self.hierarchies.clone()
    }

    /// A descriptor that becomes readable on OOM events (CLOEXEC, NONBLOCK).
    /// v1: an eventfd on memory.oom_control, which also fires once when the
    /// cgroup is removed. v2: an inotify watch on memory.events, which fires
    /// on any memory event; compare `oom_kill_count` to tell. Drain it with
    /// a read of up to 4096 bytes.
    pub fn oom_eventfd(&self) -> Result<OwnedFd> {
        match self.version {
            Version::V1 => oom::v1_eventfd(self.memory_dir()?),
            Version::V2 => oom::v2_watch(self.v2_dir()?),
        }
    }

    /// How many times the OOM killer killed a task in this cgroup.
    pub fn oom_kill_count(&self) -> Result<u64> {
        match self.version {
            Version::V1 => oom::kill_count(&self.memory_dir()?.join("memory.oom_control")),
            Version::V2 => oom::kill_count(&self.v2_dir()?.join("memory.events")),
        }
    }

    /// SIGKILLs every process in the cgroup at once through cgroup.kill.
    /// Returns false when that is not possible (v1, or a kernel before
    /// 5.14); the caller then signals `pids()` itself.
    pub fn kill_all(&self) -> Result<bool> {
        match self.version {
            Version::V1 => Ok(false),
            Version::V2 => v2::kill_all(self.v2_dir()?),
        }
    }

    fn memory_dir(&self) -> Result<&Path> {
        v1::dir_of(&self.hierarchies, "memory").ok_or_else(|| CgroupError::Unsupported {
            what: "OOM notification: the memory controller is not mounted".into(),
        })
    }
}

/// "hugetlb.<size>" after checking the page size is a plain name like "2MB".
fn hugetlb_prefix(page_size: &str, field: &str) -> Result<String> {
    if page_size.is_empty() || !page_size.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(CgroupError::config(
            format!("{field}.pageSize"),
            format!("{page_size:?} is not a page size such as \"2MB\" or \"1GB\""),
        ));
    }
    Ok(format!("hugetlb.{page_size}"))
}

/// The reservation limit (Linux 5.7+) follows the plain one when it exists.
fn write_hugetlb_rsvd(dir: &Path, file: &str, value: &str, field: &str) -> Result<()> {
    let path = dir.join(file);
    match write_raw(&path, value) {
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
            Err(fs::field_error(field, &path, value, e))
        }
        _ => Ok(()),
    }
}

/// rdma.max lines: "<device> hca_handle=N hca_object=M", given keys only.
fn rdma_lines(rdma: &BTreeMap<String, Rdma>) -> Vec<String> {
    rdma.iter()
        .map(|(dev, l)| {
            let mut line = dev.clone();
            if let Some(h) = l.hca_handles {
                line.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = l.hca_objects {
                line.push_str(&format!(" hca_object={o}"));
            }
            line
        })
        .collect()
}

/// linux.resources.memory.checkBeforeUpdate: refuse a limit below usage.
fn check_usage_below(usage_file: &Path, limit: i64) -> Result<()> {
    let usage = read_u64(usage_file)?;
    if usage > limit as u64 {
        return Err(CgroupError::config(
            "linux.resources.memory.limit",
            format!(
                "new limit {limit} is below the current usage {usage} (checkBeforeUpdate is set)"
            ),
        ));
    }
    Ok(())
}
