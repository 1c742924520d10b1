//! Namespaces for a new container init: open and check the paths to join,
//! decide which namespaces come with clone3 and which need setns/unshare
//! (and a second fork for the pid namespace), and write user id maps.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::plan::{NsJoin, NsPlan};
use crate::error::{Error, Result};
use crate::spec::{Linux, NamespaceType};
use crate::sys;

/// Opens and checks namespace paths, and decides which namespaces come
/// with the clone and which need setns/unshare (and a second fork).
pub(crate) fn plan_namespaces(
    linux: &Linux,
    min_fd: RawFd,
    held: &mut Vec<OwnedFd>,
) -> Result<NsPlan> {
    let mut plan = NsPlan::default();
    let mut joins = Vec::new();
    let mut user_join = None;
    for (i, n) in linux.namespaces.iter().enumerate() {
        let Some(path) = &n.path else { continue };
        let field = format!("linux.namespaces[{i}].path");
        let file = std::fs::File::open(path)
            .map_err(|e| Error::invalid(&field, format!("{path}: {e}")))?;
        let fd = move_fd(OwnedFd::from(file), min_fd)?;
        check_ns_type(fd.as_raw_fd(), n.typ)
            .map_err(|m| Error::invalid(&field, format!("{path}: {m}")))?;
        let j = NsJoin {
            fd: fd.as_raw_fd(),
            typ: n.typ,
            index: i,
        };
        held.push(fd);
        if n.typ == NamespaceType::User {
            user_join = Some(j);
        } else {
            joins.push(j);
        }
    }
    let new = |t: NamespaceType| {
        linux
            .namespaces
            .iter()
            .any(|n| n.typ == t && n.path.is_none())
    };
    let joined_pid = joins.iter().any(|j| j.typ == NamespaceType::Pid);
    let flags_of = |skip: &[NamespaceType]| -> i64 {
        linux
            .namespaces
            .iter()
            .filter(|n| n.path.is_none() && !skip.contains(&n.typ))
            .fold(0i64, |f, n| f | n.typ.clone_flag() as i64)
    };
    let late = [NamespaceType::Cgroup, NamespaceType::Time];
    let fast =
        user_join.is_none() && !joined_pid && (joins.is_empty() || !new(NamespaceType::User));
    if fast {
        plan.clone_flags = flags_of(&late) as u64;
    } else {
        let mut skip = late.to_vec();
        skip.push(NamespaceType::User);
        plan.unshare_user = new(NamespaceType::User);
        plan.unshare_flags = flags_of(&skip) as libc::c_int;
        plan.fork_again = new(NamespaceType::Pid) || joined_pid;
    }
    plan.joins = joins;
    plan.user_join = user_join;
    plan.become_root = new(NamespaceType::User);
    plan.unshare_cgroup = new(NamespaceType::Cgroup);
    plan.unshare_time = new(NamespaceType::Time);
    if !linux.time_offsets.is_empty() {
        let mut text = String::new();
        for (clock, off) in &linux.time_offsets {
            text.push_str(&format!("{clock} {} {}\n", off.secs, off.nanosecs));
        }
        plan.time_offsets = Some(text.into_bytes());
    }
    Ok(plan)
}

/// Checks a namespace file's type with NS_GET_NSTYPE.
fn check_ns_type(fd: RawFd, want: NamespaceType) -> std::result::Result<(), String> {
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    let got = sys::proc::ioctl_int(fd, NS_GET_NSTYPE, 0)
        .map_err(|e| format!("not a namespace file ({e})"))?;
    if got == want.clone_flag() {
        return Ok(());
    }
    let name = NamespaceType::ALL
        .iter()
        .find(|t| t.clone_flag() == got)
        .map(|t| t.as_str())
        .unwrap_or("unknown");
    Err(format!(
        "is a {name} namespace, not a {} namespace",
        want.as_str()
    ))
}

/// In a joined user namespace, setgroups may be denied ("deny" in
/// /proc/<pid>/setgroups); we cannot know which pid, so allow and let the
/// kernel decide only when mappings exist.
pub(crate) fn setgroups_allowed_in_joined_userns(_linux: &Linux) -> bool {
    true
}

/// Writes uid_map and gid_map for the init's new user namespace.
pub(crate) fn write_id_maps(pid: i32, linux: Option<&Linux>) -> Result<()> {
    let Some(linux) = linux else { return Ok(()) };
    for (file, maps) in [
        ("uid_map", &linux.uid_mappings),
        ("gid_map", &linux.gid_mappings),
    ] {
        let text: String = maps
            .iter()
            .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
            .collect();
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, text).map_err(|e| {
            Error::invalid(
                if file == "uid_map" {
                    "linux.uidMappings"
                } else {
                    "linux.gidMappings"
                },
                format!("write {path}: {e}"),
            )
        })?;
    }
    Ok(())
}

/// Moves an fd to a number >= `min` so it cannot collide with --preserve-fds.
pub(crate) fn move_fd(fd: OwnedFd, min: RawFd) -> Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    if fd.as_raw_fd() >= min {
        return Ok(fd);
    }
    let new =
        sys::fd::dup_cloexec_at_least(fd.as_raw_fd(), min).map_err(|e| Error::sys("dup fd", e))?;
    // SAFETY: new was just returned by fcntl(F_DUPFD_CLOEXEC) and is owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}
