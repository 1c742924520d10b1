//! Where the cgroup hierarchies are: /proc/self/mountinfo and
//! /proc/self/cgroup parsed into a `CgroupRoot`, and linux.cgroupsPath
//! resolved against it into one `Hierarchy` per hierarchy.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{CgroupError, Result};
use super::fs::read_string;
use super::sys;

/// The filesystem type of a hierarchy's mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupFsType {
    /// A cgroup v1 hierarchy.
    Cgroup,
    /// The cgroup v2 unified hierarchy.
    Cgroup2,
}

impl CgroupFsType {
    /// The name to pass as mount(2)'s filesystem type.
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupFsType::Cgroup => "cgroup",
            CgroupFsType::Cgroup2 => "cgroup2",
        }
    }
}

/// One mounted hierarchy as the caller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    pub fs_type: CgroupFsType,
    /// For v1, the controllers (or `name=...`) as /proc/self/cgroup lists
    /// them, e.g. "cpu", "cpu,cpuacct", "name=systemd". Empty for cgroup2.
    pub options: String,
    /// Where the hierarchy is mounted, e.g. /sys/fs/cgroup/memory.
    pub mount_point: PathBuf,
    /// The path inside the hierarchy that is mounted there (mountinfo's
    /// fourth field), "/" unless the mount is a bind of a sub-cgroup.
    pub root: String,
    /// The calling process's own cgroup in this hierarchy, from
    /// /proc/self/cgroup, e.g. "/" or "/user.slice/session-1.scope".
    pub own_cgroup: String,
}

/// The cgroup mounts to work with: either v1 hierarchies (plus, on a hybrid
/// host, the cgroup2 mount) or the single v2 unified hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupRoot {
    pub mounts: Vec<CgroupMount>,
}

impl CgroupRoot {
    pub fn new(mounts: Vec<CgroupMount>) -> CgroupRoot {
        CgroupRoot { mounts }
    }

    /// Reads the calling process's view of the host. The unified (v2-only)
    /// layout is recognised the way runc does: /sys/fs/cgroup is cgroup2.
    pub fn from_host() -> Result<CgroupRoot> {
        let mountinfo = read_string(Path::new("/proc/self/mountinfo"))?;
        let own = read_string(Path::new("/proc/self/cgroup"))?;
        let unified = sys::statfs_type(Path::new("/sys/fs/cgroup"))
            .map(|t| t == sys::CGROUP2_SUPER_MAGIC)
            .unwrap_or(false);
        CgroupRoot::parse(&mountinfo, &own, unified)
    }

    /// Builds the root from the text of /proc/self/mountinfo and
    /// /proc/self/cgroup. `unified` says /sys/fs/cgroup is a cgroup2 mount.
    pub fn parse(mountinfo: &str, proc_cgroup: &str, unified: bool) -> Result<CgroupRoot> {
        let mounts = parse_mountinfo(mountinfo);
        let own = parse_proc_cgroup(proc_cgroup);
        let own_v2 = own
            .iter()
            .find(|(id, ctrls, _)| id == "0" && ctrls.is_empty())
            .map(|(_, _, p)| p.clone());
        let first_v2 = |prefer: Option<&Path>| {
            mounts
                .iter()
                .filter(|m| m.fs_type == "cgroup2")
                .find(|m| prefer.is_none_or(|p| m.mount_point == p))
        };

        let mut out = Vec::new();
        if unified {
            let m = first_v2(Some(Path::new("/sys/fs/cgroup")))
                .or_else(|| first_v2(None))
                .ok_or_else(|| CgroupError::NotMounted {
                    message:
                        "/sys/fs/cgroup is cgroup2 but no cgroup2 mount is listed in mountinfo"
                            .into(),
                })?;
            out.push(m.to_cgroup_mount("", own_v2.as_deref().unwrap_or("/")));
            return Ok(CgroupRoot { mounts: out });
        }
        for (_, ctrls, path) in own.iter().filter(|(_, c, _)| !c.is_empty()) {
            let wanted: Vec<&str> = ctrls.split(',').collect();
            let found = mounts.iter().find(|m| {
                m.fs_type == "cgroup"
                    && wanted
                        .iter()
                        .all(|w| m.super_options.iter().any(|o| o == w))
            });
            if let Some(m) = found {
                out.push(m.to_cgroup_mount(ctrls, path));
            }
        }
        if let Some(m) = first_v2(None) {
            out.push(m.to_cgroup_mount("", own_v2.as_deref().unwrap_or("/")));
        }
        if out.is_empty() {
            return Err(CgroupError::NotMounted {
                message: "no cgroup or cgroup2 mount in /proc/self/mountinfo".into(),
            });
        }
        Ok(CgroupRoot { mounts: out })
    }

    /// True when only the v2 unified hierarchy is in use.
    pub fn is_v2(&self) -> bool {
        !self
            .mounts
            .iter()
            .any(|m| m.fs_type == CgroupFsType::Cgroup)
    }
}

struct MountLine {
    root: String,
    mount_point: PathBuf,
    fs_type: String,
    super_options: Vec<String>,
}

impl MountLine {
    fn to_cgroup_mount(&self, options: &str, own: &str) -> CgroupMount {
        CgroupMount {
            fs_type: if self.fs_type == "cgroup2" {
                CgroupFsType::Cgroup2
            } else {
                CgroupFsType::Cgroup
            },
            options: options.to_string(),
            mount_point: self.mount_point.clone(),
            root: self.root.clone(),
            own_cgroup: own.to_string(),
        }
    }
}

/// Decodes mountinfo's octal escapes (\040 for a space, ...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(v) = u8::try_from(v) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_mountinfo(content: &str) -> Vec<MountLine> {
    let mut out = Vec::new();
    for line in content.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if sep < 6 || fields.len() < sep + 4 {
            continue;
        }
        let fs_type = fields[sep + 1];
        if fs_type != "cgroup" && fs_type != "cgroup2" {
            continue;
        }
        out.push(MountLine {
            root: unescape(fields[3]),
            mount_point: PathBuf::from(unescape(fields[4])),
            fs_type: fs_type.to_string(),
            super_options: fields[sep + 3].split(',').map(str::to_string).collect(),
        });
    }
    out
}

/// (hierarchy id, controllers, path) per line of /proc/<pid>/cgroup.
fn parse_proc_cgroup(content: &str) -> Vec<(String, String, String)> {
    content
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            Some((
                it.next()?.to_string(),
                it.next()?.to_string(),
                it.next()?.to_string(),
            ))
        })
        .collect()
}

/// Checks linux.cgroupsPath (or the default) and returns whether it is
/// absolute and its cleaned components.
pub(crate) fn clean_cgroups_path(raw: &str) -> Result<(bool, Vec<String>)> {
    const FIELD: &str = "linux.cgroupsPath";
    if raw.split('/').any(|c| c == "..") {
        return Err(CgroupError::config(
            FIELD,
            format!("{raw:?} must not contain a \"..\" component"),
        ));
    }
    if raw.contains('\0') {
        return Err(CgroupError::config(FIELD, "must not contain a NUL byte"));
    }
    let parts: Vec<String> = raw
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .collect();
    if parts.is_empty() {
        return Err(CgroupError::config(
            FIELD,
            format!("{raw:?} names the root cgroup; a container needs a cgroup of its own"),
        ));
    }
    Ok((raw.starts_with('/'), parts))
}

/// Joins cgroup path components onto `base` ("/" or "/a/b").
pub(crate) fn join_cgroup(base: &str, parts: &[String]) -> String {
    let mut out = base.trim_end_matches('/').to_string();
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The parent of a cgroup path ("/a/b" -> "/a", "/a" -> "/").
pub(crate) fn parent_cgroup(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some((p, _)) if !p.is_empty() => p.to_string(),
        _ => "/".to_string(),
    }
}

/// The host directory of cgroup `path` in a hierarchy mounted at
/// `mount_point` whose mounted root is `root`.
pub(crate) fn host_dir(mount_point: &Path, root: &str, path: &str) -> PathBuf {
    let rel = if root != "/" && (path == root || path.starts_with(&format!("{root}/"))) {
        &path[root.len()..]
    } else {
        path
    };
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        mount_point.to_path_buf()
    } else {
        mount_point.join(rel)
    }
}
