//! Builds the rootfs operation list in the runtime process, where allocating
//! and reading the host are allowed. Escaping destinations are refused here,
//! before anything is created.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::options::{self, MountOptions};
use super::{DeviceOp, MountOp, Op, Origin, PostOp, RootfsPlan};
use crate::error::{Error, Result};
use crate::spec::{Mount, NamespaceType, Spec};
use crate::sys::fs::Create;

/// Host facts the plan depends on.
pub(crate) struct PlanContext<'a> {
    pub bundle: &'a Path,
    /// The container runs in a user namespace (new or joined).
    pub in_userns: bool,
    /// The container has its own cgroup namespace.
    pub cgroupns: bool,
    /// The container's cgroup hierarchies (for `type: cgroup` mounts).
    pub cgroups: &'a [crate::cgroups::Hierarchy],
    pub no_pivot: bool,
    /// The mappings of the container's new user namespace (idmap mounts
    /// without their own mappings borrow them).
    pub userns_maps: super::idmap::UsernsMaps<'a>,
}

/// Devices every container gets unless the config lists them itself
/// (path, type, major, minor), as runc does.
pub(crate) const DEFAULT_DEVICES: &[(&str, libc::mode_t, u32, u32)] = &[
    ("/dev/null", libc::S_IFCHR, 1, 3),
    ("/dev/zero", libc::S_IFCHR, 1, 5),
    ("/dev/full", libc::S_IFCHR, 1, 7),
    ("/dev/random", libc::S_IFCHR, 1, 8),
    ("/dev/urandom", libc::S_IFCHR, 1, 9),
    ("/dev/tty", libc::S_IFCHR, 5, 0),
];

/// Links created in /dev: (target, link).
const DEV_SYMLINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "dev/fd"),
    ("/proc/self/fd/0", "dev/stdin"),
    ("/proc/self/fd/1", "dev/stdout"),
    ("/proc/self/fd/2", "dev/stderr"),
];

fn cstr(s: impl AsRef<[u8]>, field: &str) -> Result<CString> {
    CString::new(s.as_ref()).map_err(|_| Error::invalid(field, "contains a NUL byte"))
}

/// Cleans an absolute container path into a relative one ("/a/./b/" → "a/b").
pub(crate) fn relative(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

pub(crate) fn build(spec: &Spec, rootfs: &Path, ctx: &PlanContext) -> Result<RootfsPlan> {
    let linux = spec.linux.clone().unwrap_or_default();
    let has_ns = |t: NamespaceType| linux.namespaces.iter().any(|n| n.typ == t);
    let mut ops = Vec::new();
    let mut covered: Vec<String> = Vec::new();

    for (i, m) in spec.mounts.iter().enumerate() {
        let field = format!("mounts[{i}]");
        let dest = relative(&m.destination);
        check_no_escape(rootfs, &dest, &covered, &format!("{field}.destination"))?;
        let opts = options::parse(&m.options);
        let typ = m.typ.as_deref().unwrap_or("");
        if typ == "cgroup" || typ == "cgroup2" {
            cgroup_ops(&mut ops, i, &dest, &opts, ctx)?;
        } else {
            ops.push(Op::Mount(mount_op(m, i, &dest, &opts, ctx, &has_ns)?));
        }
        covered.push(dest);
    }

    let setup_dev = !spec
        .mounts
        .iter()
        .any(|m| relative(&m.destination) == "dev" && is_bind(m));
    if setup_dev {
        device_ops(&mut ops, spec, rootfs, ctx, &covered)?;
    }

    let mut post = Vec::new();
    for (i, p) in linux.masked_paths.iter().enumerate() {
        post.push(PostOp::Mask {
            index: i,
            path: cstr(p, &format!("linux.maskedPaths[{i}]"))?,
        });
    }
    for (i, p) in linux.readonly_paths.iter().enumerate() {
        post.push(PostOp::Readonly {
            index: i,
            path: cstr(p, &format!("linux.readonlyPaths[{i}]"))?,
        });
    }

    let final_propagation = linux
        .rootfs_propagation
        .as_deref()
        .and_then(options::rootfs_propagation);
    Ok(RootfsPlan {
        rootfs: cstr(rootfs.as_os_str().as_bytes(), "root.path")?,
        propagation: match final_propagation {
            // Shared roots keep their peer group; everything else starts as
            // a slave of the host so nothing we mount leaks out.
            Some(p) if p & libc::MS_SHARED != 0 => libc::MS_SHARED | libc::MS_REC,
            _ => libc::MS_SLAVE | libc::MS_REC,
        },
        parent_mount: parent_mount(rootfs)
            .map(|p| cstr(p.as_os_str().as_bytes(), "root.path"))
            .transpose()?,
        ops,
        pivot: !ctx.no_pivot && !root_is_ramfs(),
        host_mount_ns: !has_ns(NamespaceType::Mount),
        post,
        readonly: spec.root.as_ref().is_some_and(|r| r.readonly),
        final_propagation,
    })
}

fn is_bind(m: &Mount) -> bool {
    m.typ.as_deref() == Some("bind") || m.options.iter().any(|o| o == "bind" || o == "rbind")
}

fn mount_op(
    m: &Mount,
    i: usize,
    dest: &str,
    opts: &MountOptions,
    ctx: &PlanContext,
    has_ns: &dyn Fn(NamespaceType) -> bool,
) -> Result<MountOp> {
    let field = format!("mounts[{i}]");
    let typ = m.typ.as_deref().unwrap_or("");
    let bind = opts.bind || typ == "bind";
    let mut source = m.source.clone().unwrap_or_default();
    let mut create = Create::Dir;
    if bind {
        if source.is_empty() {
            return Err(Error::invalid(
                format!("{field}.source"),
                "a bind mount needs a source",
            ));
        }
        if !source.starts_with('/') {
            source = ctx.bundle.join(&source).to_string_lossy().into_owned();
        }
        match std::fs::metadata(&source) {
            Ok(md) if !md.is_dir() => create = Create::File,
            Ok(_) => {}
            Err(e) => {
                return Err(Error::invalid(
                    format!("{field}.source"),
                    format!("bind source {source:?}: {e}"),
                ))
            }
        }
    }
    let idmap = super::idmap::request(m, opts, bind, ctx.userns_maps, &field)?;
    if opts.tmpcopyup {
        return Err(Error::Unsupported(format!(
            "{field}.options: tmpcopyup is not supported"
        )));
    }
    let data = opts.data.join(",");
    let (flags, remount) = if bind {
        let mut f = libc::MS_BIND;
        if opts.recursive {
            f |= libc::MS_REC;
        }
        // Flags other than bind/rec need a remount to take effect on a bind.
        let rest = opts.flags & !(libc::MS_REC | libc::MS_BIND | libc::MS_REMOUNT);
        let remount = (rest != 0).then_some(libc::MS_BIND | libc::MS_REMOUNT | rest);
        (f, remount)
    } else {
        (opts.flags, None)
    };
    let fallback_bind = match typ {
        "sysfs" if ctx.in_userns && !has_ns(NamespaceType::Network) => Some(cstr("/sys", &field)?),
        "sysfs" if ctx.in_userns => None,
        "mqueue" if ctx.in_userns => Some(cstr("/dev/mqueue", &field)?),
        _ => None,
    };
    Ok(MountOp {
        origin: Origin::Mount(i),
        dest: cstr(dest, &format!("{field}.destination"))?,
        source: Some(cstr(&source, &format!("{field}.source"))?),
        fstype: if bind || typ.is_empty() {
            None
        } else {
            Some(cstr(typ, &format!("{field}.type"))?)
        },
        flags,
        data: if data.is_empty() || bind {
            None
        } else {
            Some(cstr(&data, &format!("{field}.options"))?)
        },
        remount,
        propagation: opts.propagation.clone(),
        attrs: (opts.attr_set != 0 || opts.attr_clear != 0)
            .then_some((opts.attr_set, opts.attr_clear)),
        create,
        fallback_bind,
        idmap,
        tree_fd: None,
    })
}

/// A `type: cgroup` mount: a tmpfs with one bind (or, in a cgroup namespace,
/// one fresh cgroup mount) per hierarchy, then read-only if asked (runc's
/// layout). On a cgroup2 host it is a single mount.
fn cgroup_ops(
    ops: &mut Vec<Op>,
    i: usize,
    dest: &str,
    opts: &MountOptions,
    ctx: &PlanContext,
) -> Result<()> {
    let field = format!("mounts[{i}]");
    let base_flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    let ro = opts.flags & libc::MS_RDONLY != 0;
    let unified = ctx.cgroups.len() == 1 && ctx.cgroups[0].name.is_empty();
    // On a hybrid host only the v1 hierarchies are mounted (as runc does).
    let v1: Vec<&crate::cgroups::Hierarchy> = ctx
        .cgroups
        .iter()
        .filter(|h| h.fs_type != crate::cgroups::CgroupFsType::Cgroup2)
        .collect();
    let mount = |dest: String,
                 source: Option<&str>,
                 fstype: Option<&str>,
                 flags,
                 data: Option<&str>,
                 remount|
     -> Result<Op> {
        Ok(Op::Mount(MountOp {
            origin: Origin::Mount(i),
            dest: cstr(&dest, &format!("{field}.destination"))?,
            source: source.map(|s| cstr(s, &field)).transpose()?,
            fstype: fstype.map(|s| cstr(s, &field)).transpose()?,
            flags,
            data: data.map(|s| cstr(s, &field)).transpose()?,
            remount,
            propagation: Vec::new(),
            attrs: None,
            create: Create::Dir,
            fallback_bind: None,
            idmap: None,
            tree_fd: None,
        }))
    };
    let rdonly = if ro { libc::MS_RDONLY } else { 0 };
    if unified {
        let h = &ctx.cgroups[0];
        if ctx.cgroupns {
            ops.push(mount(
                dest.to_string(),
                Some("cgroup2"),
                Some("cgroup2"),
                base_flags | rdonly,
                None,
                None,
            )?);
        } else {
            let src = h.dir.to_string_lossy().into_owned();
            ops.push(mount(
                dest.to_string(),
                Some(&src),
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
                Some(libc::MS_BIND | libc::MS_REMOUNT | base_flags | rdonly),
            )?);
        }
        return Ok(());
    }
    ops.push(mount(
        dest.to_string(),
        Some("tmpfs"),
        Some("tmpfs"),
        base_flags,
        Some("mode=755"),
        None,
    )?);
    for h in v1 {
        let sub = format!("{dest}/{}", h.name);
        if ctx.cgroupns {
            ops.push(mount(
                sub.clone(),
                Some("cgroup"),
                Some("cgroup"),
                base_flags | rdonly,
                Some(&h.options),
                None,
            )?);
        } else {
            let src = h.dir.to_string_lossy().into_owned();
            ops.push(mount(
                sub.clone(),
                Some(&src),
                None,
                libc::MS_BIND,
                None,
                Some(libc::MS_BIND | libc::MS_REMOUNT | base_flags | rdonly),
            )?);
        }
        // Co-mounted controllers ("cpu,cpuacct") get one link per name.
        if h.name.contains(',') {
            for single in h.name.split(',') {
                ops.push(Op::Symlink {
                    origin: Origin::Mount(i),
                    target: cstr(&h.name, &field)?,
                    link: cstr(format!("{dest}/{single}"), &field)?,
                    replace: false,
                });
            }
        }
    }
    if ro {
        ops.push(mount(
            dest.to_string(),
            Some(dest),
            None,
            libc::MS_BIND | libc::MS_REMOUNT | base_flags | libc::MS_RDONLY,
            None,
            None,
        )?);
    }
    Ok(())
}

fn device_ops(
    ops: &mut Vec<Op>,
    spec: &Spec,
    rootfs: &Path,
    ctx: &PlanContext,
    covered: &[String],
) -> Result<()> {
    let linux = spec.linux.clone().unwrap_or_default();
    let listed = |p: &str| {
        linux
            .devices
            .iter()
            .any(|d| relative(&d.path) == relative(p))
    };
    for (i, (path, typ, major, minor)) in DEFAULT_DEVICES.iter().enumerate() {
        if listed(path) {
            continue;
        }
        ops.push(Op::Device(DeviceOp {
            origin: Origin::Default(i),
            path: cstr(relative(path), path)?,
            mode: typ | 0o666,
            dev: libc::makedev(*major, *minor),
            uid: 0,
            gid: 0,
            bind_from: ctx.in_userns.then(|| cstr(path, path)).transpose()?,
        }));
    }
    for (i, d) in linux.devices.iter().enumerate() {
        let field = format!("linux.devices[{i}]");
        let rel = relative(&d.path);
        check_no_escape(rootfs, &rel, covered, &format!("{field}.path"))?;
        let typ = match d.typ.as_str() {
            "c" | "u" => libc::S_IFCHR,
            "b" => libc::S_IFBLK,
            _ => libc::S_IFIFO,
        };
        let perm = d.file_mode.unwrap_or(0o666) & 0o7777;
        if d.major < 0 || d.minor < 0 {
            return Err(Error::invalid(
                &field,
                "major and minor must not be negative",
            ));
        }
        ops.push(Op::Device(DeviceOp {
            origin: Origin::Device(i),
            path: cstr(&rel, &format!("{field}.path"))?,
            mode: typ | perm as libc::mode_t,
            dev: libc::makedev(d.major as u32, d.minor as u32),
            uid: d.uid.unwrap_or(0),
            gid: d.gid.unwrap_or(0),
            bind_from: ctx.in_userns.then(|| cstr(&d.path, &field)).transpose()?,
        }));
    }
    for (i, (target, link)) in DEV_SYMLINKS.iter().enumerate() {
        ops.push(Op::Symlink {
            origin: Origin::Default(i),
            target: cstr(target, link)?,
            link: cstr(link, link)?,
            replace: false,
        });
    }
    if Path::new("/proc/kcore").exists() {
        ops.push(Op::Symlink {
            origin: Origin::Default(0),
            target: cstr("/proc/kcore", "dev/core")?,
            link: cstr("dev/core", "dev/core")?,
            replace: false,
        });
    }
    ops.push(Op::Symlink {
        origin: Origin::Default(0),
        target: cstr("pts/ptmx", "dev/ptmx")?,
        link: cstr("dev/ptmx", "dev/ptmx")?,
        replace: true,
    });
    Ok(())
}

/// Refuses a destination whose symlinks, followed on the host, would leave
/// the rootfs. Parts of the path covered by an earlier mount are not checked
/// here (their content only exists once mounted); the init resolves every
/// destination with RESOLVE_IN_ROOT anyway, so nothing can escape at mount time.
fn check_no_escape(rootfs: &Path, rel: &str, covered: &[String], field: &str) -> Result<()> {
    let mut stack: Vec<String> = Vec::new();
    let mut pending: Vec<String> = rel
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(String::from)
        .collect();
    let mut last_link: Option<(String, PathBuf)> = None;
    let mut hops = 0;
    while let Some(comp) = pending.pop() {
        if comp == "." {
            continue;
        }
        if comp == ".." {
            if stack.pop().is_none() {
                return Err(match last_link {
                    Some((link, target)) => Error::invalid(
                        field,
                        format!(
                            "\"/{rel}\" goes through the symlink /{link} -> {} which points outside the container root",
                            target.display()
                        ),
                    ),
                    None => Error::invalid(field, format!("\"/{rel}\" escapes the container root")),
                });
            }
            continue;
        }
        stack.push(comp);
        let sofar = stack.join("/");
        if covered
            .iter()
            .any(|c| sofar == *c || sofar.starts_with(&format!("{c}/")))
        {
            return Ok(());
        }
        let host = rootfs.join(&sofar);
        match std::fs::symlink_metadata(&host) {
            Ok(md) if md.file_type().is_symlink() => {}
            Ok(_) => continue,
            Err(_) => return Ok(()),
        }
        hops += 1;
        if hops > 40 {
            return Err(Error::invalid(
                field,
                format!("\"/{rel}\": too many levels of symbolic links"),
            ));
        }
        let target = std::fs::read_link(&host)
            .map_err(|e| Error::io(format!("readlink {}", host.display()), e))?;
        stack.pop();
        if target.is_absolute() {
            // Absolute links resolve from the container's root.
            stack.clear();
        }
        for c in target.components().rev() {
            match c {
                Component::Normal(n) => pending.push(os(n)),
                Component::ParentDir => pending.push("..".into()),
                _ => {}
            }
        }
        last_link = Some((sofar, target));
    }
    Ok(())
}

fn os(s: &OsStr) -> String {
    s.to_string_lossy().into_owned()
}

/// The mount point that contains `path`, from /proc/self/mountinfo.
fn parent_mount(path: &Path) -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<PathBuf> = None;
    for line in info.lines() {
        let mp = match line.split(' ').nth(4) {
            Some(m) => PathBuf::from(unescape_mountinfo(m)),
            None => continue,
        };
        if path.starts_with(&mp)
            && best
                .as_ref()
                .is_none_or(|b| mp.as_os_str().len() > b.as_os_str().len())
        {
            best = Some(mp);
        }
    }
    best
}

fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// True when "/" is the initial ramfs, where pivot_root cannot work.
fn root_is_ramfs() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                let mut fields = l.split(' ');
                let mp = fields.nth(4)?;
                if mp != "/" {
                    return None;
                }
                let after = l.split(" - ").nth(1)?;
                Some(after.starts_with("rootfs ") || after.starts_with("ramfs "))
            })
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_cleans_paths() {
        assert_eq!(relative("/proc"), "proc");
        assert_eq!(relative("/a/./b//c/"), "a/b/c");
        assert_eq!(relative("/a/../b"), "b");
        assert_eq!(relative("/"), "");
    }

    #[test]
    fn symlink_escaping_the_rootfs_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("../../../../tmp", root.join("evil")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("etc", root.join("rel")).unwrap();
        let err = check_no_escape(root, "evil/x", &[], "mounts[0].destination").unwrap_err();
        assert!(
            err.to_string()
                .contains("points outside the container root"),
            "{err}"
        );
        check_no_escape(root, "abs/x", &[], "f").unwrap();
        check_no_escape(root, "rel/x", &[], "f").unwrap();
        check_no_escape(root, "missing/x", &[], "f").unwrap();
        // Covered by an earlier mount: not checked on the host.
        check_no_escape(root, "evil/x", &["evil".into()], "f").unwrap();
    }
}
