//! Id-mapped bind mounts (`idmap`, `ridmap`, a mount's own `uidMappings`
//! and `gidMappings`). The runtime prepares them before cloning the init:
//! it clones the source with open_tree(OPEN_TREE_CLONE), attaches a user
//! namespace carrying the mapping with mount_setattr(MOUNT_ATTR_IDMAP), and
//! hands the detached tree to the init, which move_mount()s it into place
//! (`setup.rs`). The user namespace comes from a short-lived helper process
//! cloned into it; nothing outlives the create call except the tree fds.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::options::MountOptions;
use super::{Op, Origin, RootfsPlan};
use crate::error::{Error, Result};
use crate::spec::{IdMapping, Mount};
use crate::sys::{fd, mount, proc};

/// The mapping one mount asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IdmapRequest {
    pub uid: Vec<IdMapping>,
    pub gid: Vec<IdMapping>,
    /// `ridmap`: submounts of an rbind are mapped too.
    pub recursive: bool,
}

/// The container's own user namespace mappings, if it gets a new one.
pub(crate) type UsernsMaps<'a> = Option<(&'a [IdMapping], &'a [IdMapping])>;

/// Decides whether mount `field` is id-mapped and with which mapping
/// (the mount's own, else the container's, as the runtime spec says).
pub(crate) fn request(
    m: &Mount,
    opts: &MountOptions,
    bind: bool,
    userns: UsernsMaps,
    field: &str,
) -> Result<Option<IdmapRequest>> {
    let own = !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty();
    if !opts.idmap && !own {
        return Ok(None);
    }
    if !bind {
        return Err(Error::invalid(
            format!("{field}.options"),
            "id-mapped mounts (idmap, ridmap, uidMappings) need a bind mount",
        ));
    }
    let (uid, gid) = if own {
        if m.uid_mappings.is_empty() || m.gid_mappings.is_empty() {
            return Err(Error::invalid(
                format!("{field}.uidMappings"),
                "uidMappings and gidMappings must be given together",
            ));
        }
        (m.uid_mappings.clone(), m.gid_mappings.clone())
    } else if let Some((u, g)) = userns.filter(|(u, g)| !u.is_empty() && !g.is_empty()) {
        (u.to_vec(), g.to_vec())
    } else {
        return Err(Error::invalid(
            format!("{field}.options"),
            "idmap needs uidMappings and gidMappings on the mount, or a new user \
             namespace with mappings to borrow",
        ));
    };
    for (name, maps) in [("uidMappings", &uid), ("gidMappings", &gid)] {
        if let Some(i) = maps.iter().position(|m| m.size == 0) {
            return Err(Error::invalid(
                format!("{field}.{name}[{i}].size"),
                "must not be 0",
            ));
        }
    }
    Ok(Some(IdmapRequest {
        uid,
        gid,
        recursive: opts.idmap_recursive,
    }))
}

/// Creates the detached, id-mapped trees of every id-mapped mount in the
/// plan. The fds go to `held` (numbered at or above `min_fd`) and must
/// stay open until the init has used them.
pub(crate) fn prepare(plan: &mut RootfsPlan, min_fd: RawFd, held: &mut Vec<OwnedFd>) -> Result<()> {
    let mut userns: Vec<(IdmapRequest, OwnedFd)> = Vec::new();
    for op in &mut plan.ops {
        let Op::Mount(m) = op else { continue };
        let Some(req) = &m.idmap else { continue };
        let field = match m.origin {
            Origin::Mount(i) => format!("mounts[{i}]"),
            _ => "mounts".to_string(),
        };
        let key = IdmapRequest {
            recursive: false,
            ..req.clone()
        };
        let ns_fd = match userns.iter().find(|(k, _)| *k == key) {
            Some((_, fd)) => fd.as_raw_fd(),
            None => {
                let fd = mapped_userns(&req.uid, &req.gid)
                    .map_err(|e| Error::invalid(format!("{field}.uidMappings"), e))?;
                let raw = fd.as_raw_fd();
                userns.push((key, fd));
                raw
            }
        };
        let source = m.source.clone().unwrap_or_default();
        let shown = source.to_string_lossy().into_owned();
        let tree = mount::open_tree_clone(source.as_ptr(), m.flags & libc::MS_REC != 0)
            .map_err(|e| Error::sys(format!("{field}: clone the mount at {shown}"), e))?;
        // SAFETY: tree was just returned by open_tree and is owned here.
        let tree = unsafe { OwnedFd::from_raw_fd(tree) };
        let tree = crate::process::namespaces::move_fd(tree, min_fd)?;
        mount::mount_setattr(
            tree.as_raw_fd(),
            c"".as_ptr(),
            req.recursive,
            mount::MOUNT_ATTR_IDMAP,
            0,
            Some(ns_fd),
        )
        .map_err(|e| {
            Error::invalid(
                format!("{field}.options"),
                format!(
                    "cannot id-map {shown}: {e} (does its filesystem support id-mapped mounts?)"
                ),
            )
        })?;
        m.tree_fd = Some(tree.as_raw_fd());
        held.push(tree);
    }
    Ok(())
}

/// "containerID hostID size" lines for a uid_map/gid_map file.
fn map_text(maps: &[IdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect()
}

/// A user namespace with the given mappings, as an fd: a helper process is
/// cloned into a new user namespace, waits until we have written its maps
/// and opened its namespace, and exits when we close its pipe.
fn mapped_userns(uid: &[IdMapping], gid: &[IdMapping]) -> std::result::Result<OwnedFd, String> {
    let (r, w) = fd::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: the runtime is single-threaded here; the child only makes
    // raw system calls (close, read, _exit).
    let forked = unsafe { proc::fork_with(libc::CLONE_NEWUSER as u64, None) };
    let pid = match forked {
        Ok(proc::Forked::Child) => {
            fd::close(w);
            let mut b = [0u8; 1];
            let _ = fd::read(r, &mut b);
            proc::exit(0)
        }
        Ok(proc::Forked::Parent { pid, .. }) => pid,
        Err(e) => {
            fd::close(r);
            fd::close(w);
            return Err(format!("clone a user namespace: {e}"));
        }
    };
    fd::close(r);
    let result = (|| {
        std::fs::write(format!("/proc/{pid}/uid_map"), map_text(uid))
            .map_err(|e| format!("write uid_map: {e}"))?;
        std::fs::write(format!("/proc/{pid}/gid_map"), map_text(gid))
            .map_err(|e| format!("write gid_map: {e}"))?;
        let path = CString::new(format!("/proc/{pid}/ns/user")).map_err(|e| e.to_string())?;
        let ns = crate::sys::fs::open_ptr(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC, 0)
            .map_err(|e| format!("open the user namespace: {e}"))?;
        // SAFETY: ns was just opened and is owned here.
        Ok(unsafe { OwnedFd::from_raw_fd(ns) })
    })();
    fd::close(w);
    let _ = proc::waitpid(pid, 0);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::options;

    fn map(c: u32, h: u32, s: u32) -> IdMapping {
        IdMapping {
            container_id: c,
            host_id: h,
            size: s,
        }
    }

    fn bind_mount(opts: &[&str]) -> Mount {
        Mount {
            destination: "/data".into(),
            source: Some("/tmp".into()),
            options: opts.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn mount_mappings_win_over_the_containers() {
        let mut m = bind_mount(&["rbind", "ridmap"]);
        m.uid_mappings = vec![map(0, 1000, 1)];
        m.gid_mappings = vec![map(0, 1000, 1)];
        let ns = [map(0, 100_000, 65536)];
        let r = request(
            &m,
            &options::parse(&m.options),
            true,
            Some((&ns, &ns)),
            "mounts[0]",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.uid, vec![map(0, 1000, 1)]);
        assert!(r.recursive);
        let plain = bind_mount(&["bind", "idmap"]);
        let r = request(
            &plain,
            &options::parse(&plain.options),
            true,
            Some((&ns, &ns)),
            "m",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.gid, ns.to_vec());
        assert!(!r.recursive);
    }

    #[test]
    fn idmap_without_any_mapping_or_on_a_non_bind_is_refused() {
        let m = bind_mount(&["bind", "idmap"]);
        let e = request(&m, &options::parse(&m.options), true, None, "mounts[2]").unwrap_err();
        assert!(e.to_string().contains("mounts[2].options"), "{e}");
        let e = request(&m, &options::parse(&m.options), false, None, "mounts[2]").unwrap_err();
        assert!(e.to_string().contains("bind mount"), "{e}");
        let mut half = bind_mount(&["bind"]);
        half.uid_mappings = vec![map(0, 1, 1)];
        let e = request(
            &half,
            &options::parse(&half.options),
            true,
            None,
            "mounts[1]",
        )
        .unwrap_err();
        assert!(e.to_string().contains("mounts[1].uidMappings"), "{e}");
        let plain = bind_mount(&["bind"]);
        assert!(
            request(&plain, &options::parse(&plain.options), true, None, "m")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn helper_user_namespace_carries_the_mapping() {
        let fd = mapped_userns(&[map(0, 1000, 10)], &[map(5, 2000, 1)]).unwrap();
        // The namespace is alive as long as the fd is; its maps are visible
        // through any process in it, so check via setns in a child instead:
        // here it is enough that we got a user namespace fd.
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert!(link.to_string_lossy().starts_with("user:["), "{link:?}");
        let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
        assert_ne!(link, ours);
    }
}
