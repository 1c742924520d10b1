//! Carries out a `RootfsPlan` inside the container init. Runs between clone
//! and exec: raw system calls only, no allocation. Every destination is
//! resolved with RESOLVE_IN_ROOT relative to the rootfs, then mounted on via
//! its /proc/self/fd magic link, so a symlink in the image cannot redirect a
//! mount onto the host.

use std::os::fd::RawFd;

use super::{DeviceOp, MountOp, Op, Origin, PostOp, RootfsPlan};
use crate::error::Errno;
use crate::process::channel::Stage;
use crate::process::Failure;
use crate::sys::fs::{self, Create};
use crate::sys::mount;
use crate::sys::{fd, PathBuf};

const NULL: *const libc::c_char = std::ptr::null();

fn origin(o: Origin) -> (Stage, usize) {
    match o {
        Origin::Mount(i) => (Stage::Mount, i),
        Origin::Device(i) => (Stage::Device, i),
        Origin::Default(i) => (Stage::Symlink, i),
    }
}

fn fail(o: Origin, errno: Errno, what: &'static str, detail: &[u8]) -> Failure {
    let (stage, index) = origin(o);
    Failure::new(stage, index, errno, what).with_detail(detail)
}

/// Sets propagation, binds the rootfs onto itself and performs every mount,
/// device and link. Returns an O_PATH fd of the new root for `pivot`.
pub(crate) fn prepare(plan: &RootfsPlan) -> Result<RawFd, Failure> {
    let root_fail = |errno, what| {
        Failure::new(Stage::Propagation, 0, errno, what).with_detail(plan.rootfs.to_bytes())
    };
    if !plan.host_mount_ns {
        mount::set_propagation(c"/".as_ptr(), plan.propagation)
            .map_err(|e| root_fail(e, "set propagation of /"))?;
    }
    if plan.propagation & libc::MS_SHARED != 0 && !plan.host_mount_ns {
        if let Some(pm) = &plan.parent_mount {
            // pivot_root refuses a new root whose parent mount is shared.
            mount::set_propagation(pm.as_ptr(), libc::MS_PRIVATE)
                .map_err(|e| root_fail(e, "make the rootfs parent mount private"))?;
        }
    }
    mount::mount(
        plan.rootfs.as_ptr(),
        plan.rootfs.as_ptr(),
        NULL,
        libc::MS_BIND | libc::MS_REC,
        NULL,
    )
    .map_err(|e| root_fail(e, "bind mount the rootfs onto itself"))?;
    let rootfd = fs::open_ptr(plan.rootfs.as_ptr(), libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| root_fail(e, "open the rootfs"))?;
    for op in &plan.ops {
        let r = match op {
            Op::Mount(m) => do_mount(rootfd, m),
            Op::Device(d) => do_device(rootfd, d),
            Op::Symlink {
                origin,
                target,
                link,
                replace,
            } => do_symlink(
                rootfd,
                *origin,
                target.to_bytes_with_nul(),
                link.to_bytes(),
                *replace,
            ),
        };
        if let Err(e) = r {
            fd::close(rootfd);
            return Err(e);
        }
    }
    Ok(rootfd)
}

fn do_mount(rootfd: RawFd, m: &MountOp) -> Result<(), Failure> {
    let detail = m.dest.to_bytes();
    let f = |errno, what| fail(m.origin, errno, what, detail);
    let target_fd = fs::open_or_create_in_root(rootfd, detail, m.create)
        .map_err(|e| f(e, "create mount destination"))?;
    let target = PathBuf::proc_fd(target_fd);
    let source = m.source.as_ref().map_or(NULL, |s| s.as_ptr());
    let fstype = m.fstype.as_ref().map_or(NULL, |s| s.as_ptr());
    let data = m.data.as_ref().map_or(NULL, |s| s.as_ptr());
    let mut r = match m.tree_fd {
        Some(tree) => mount::move_mount_fd(tree, target_fd),
        None => mount::mount(source, target.as_ptr(), fstype, m.flags, data),
    };
    let mut remount = m.remount;
    if let (Err(Errno(libc::EPERM)), Some(fb)) = (r, &m.fallback_bind) {
        // sysfs/mqueue cannot be mounted in this user namespace setup; bind
        // the host's instance instead, read-only if the mount asked for it.
        r = mount::mount(
            fb.as_ptr(),
            target.as_ptr(),
            NULL,
            libc::MS_BIND | libc::MS_REC,
            NULL,
        );
        let rest = m.flags & (libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC);
        if rest != 0 {
            remount = Some(libc::MS_BIND | libc::MS_REMOUNT | rest);
        }
    }
    fd::close(target_fd);
    r.map_err(|e| f(e, "mount"))?;
    if remount.is_none() && m.propagation.is_empty() && m.attrs.is_none() {
        return Ok(());
    }
    // Reopen: the old fd points below the new mount.
    let mounted = fs::open_in_root(rootfd, m.dest.as_ptr(), libc::O_PATH)
        .map_err(|e| f(e, "reopen mount"))?;
    let target = PathBuf::proc_fd(mounted);
    let r = finish_mount(m, &target, mounted, remount);
    fd::close(mounted);
    r.map_err(|(e, what)| f(e, what))
}

fn finish_mount(
    m: &MountOp,
    target: &PathBuf,
    mounted: RawFd,
    remount: Option<libc::c_ulong>,
) -> Result<(), (Errno, &'static str)> {
    if let Some(flags) = remount {
        remount_keeping_locked(target.as_ptr(), mounted, flags).map_err(|e| (e, "remount"))?;
    }
    for p in &m.propagation {
        mount::set_propagation(target.as_ptr(), *p).map_err(|e| (e, "set mount propagation"))?;
    }
    if let Some((set, clear)) = m.attrs {
        mount::mount_setattr(mounted, c"".as_ptr(), true, set, clear, None)
            .map_err(|e| (e, "set recursive mount attributes"))?;
    }
    Ok(())
}

/// MS_REMOUNT|MS_BIND with `flags`; if the kernel refuses (EPERM: flags
/// locked by a user namespace), retry keeping the mount's current flags.
fn remount_keeping_locked(
    target: *const libc::c_char,
    fd: RawFd,
    flags: libc::c_ulong,
) -> Result<(), Errno> {
    match mount::mount(NULL, target, NULL, flags, NULL) {
        Err(Errno(libc::EPERM)) => {
            let st = fs::fstatvfs(fd)?;
            let locked = mount::locked_flags(st.f_flag as libc::c_ulong) & !libc::MS_RDONLY;
            mount::mount(NULL, target, NULL, flags | locked, NULL)
        }
        r => r,
    }
}

/// Splits "a/b/c" into ("a/b", "c").
fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

fn do_device(rootfd: RawFd, d: &DeviceOp) -> Result<(), Failure> {
    let detail = d.path.to_bytes();
    let f = |errno, what| fail(d.origin, errno, what, detail);
    if let Some(src) = &d.bind_from {
        let target_fd = fs::open_or_create_in_root(rootfd, detail, Create::File)
            .map_err(|e| f(e, "create device bind target"))?;
        let target = PathBuf::proc_fd(target_fd);
        let r = mount::mount(src.as_ptr(), target.as_ptr(), NULL, libc::MS_BIND, NULL);
        fd::close(target_fd);
        return r.map_err(|e| f(e, "bind mount host device"));
    }
    let (parent, name) = split_last(detail);
    let dirfd = fs::open_or_create_in_root(rootfd, parent, Create::Dir)
        .map_err(|e| f(e, "create device directory"))?;
    let mut cname = PathBuf::new();
    let r = cname
        .push(name)
        .and_then(
            |_| match fs::mknodat(dirfd, cname.as_ptr(), d.mode, d.dev) {
                Err(Errno(libc::EEXIST)) => Ok(()),
                r => r,
            },
        )
        .map_err(|e| (e, "mknod"))
        .and_then(|_| {
            let node = fs::openat(dirfd, cname.as_ptr(), libc::O_PATH | libc::O_NOFOLLOW, 0)
                .map_err(|e| (e, "open device node"))?;
            let r = fs::fchown(node, d.uid, d.gid).map_err(|e| (e, "chown device node"));
            fd::close(node);
            r
        });
    fd::close(dirfd);
    r.map_err(|(e, what)| f(e, what))
}

fn do_symlink<'a>(
    rootfd: RawFd,
    o: Origin,
    target: &'a [u8],
    link: &'a [u8],
    replace: bool,
) -> Result<(), Failure> {
    let f = |errno, what| fail(o, errno, what, link);
    let (parent, name) = split_last(link);
    let dirfd = fs::open_or_create_in_root(rootfd, parent, Create::Dir)
        .map_err(|e| f(e, "create link directory"))?;
    let mut cname = PathBuf::new();
    let r = cname.push(name).and_then(|_| {
        if replace {
            match fs::unlinkat(dirfd, cname.as_ptr(), 0) {
                Err(Errno(libc::ENOENT)) => {}
                Err(e) => return Err(e),
                Ok(()) => {}
            }
        }
        match fs::symlinkat(target.as_ptr().cast(), dirfd, cname.as_ptr()) {
            Err(Errno(libc::EEXIST)) => Ok(()),
            r => r,
        }
    });
    fd::close(dirfd);
    r.map_err(|e| f(e, "symlink"))
}

/// Makes the prepared rootfs the process's root: pivot_root(".", ".") and a
/// lazy unmount of the old root, or MS_MOVE + chroot without pivot.
pub(crate) fn pivot(plan: &RootfsPlan, rootfd: RawFd) -> Result<(), Failure> {
    let f = |errno, what| {
        Failure::new(Stage::PivotRoot, 0, errno, what).with_detail(plan.rootfs.to_bytes())
    };
    fs::fchdir(rootfd).map_err(|e| f(e, "chdir to rootfs"))?;
    fd::close(rootfd);
    if plan.host_mount_ns {
        // No mount namespace of our own: moving mounts would change the host.
        fs::chroot(c".".as_ptr()).map_err(|e| f(e, "chroot"))?;
    } else if plan.pivot {
        // After pivot_root(".", ".") the cwd is the new root, and MS_REC there
        // would make every container mount a slave, undoing the mounts' own
        // propagation options. Act on the old root through an fd, as runc does.
        let oldroot = fs::open_ptr(c"/".as_ptr(), libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(|e| f(e, "open old root"))?;
        let r = mount::pivot_root(c".".as_ptr(), c".".as_ptr())
            .map_err(|e| (e, "pivot_root"))
            .and_then(|()| fs::fchdir(oldroot).map_err(|e| (e, "chdir to old root")))
            // Keep the old root's unmount from reaching the host.
            .and_then(|()| {
                mount::set_propagation(c".".as_ptr(), libc::MS_SLAVE | libc::MS_REC)
                    .map_err(|e| (e, "make old root slave"))
            })
            .and_then(|()| {
                mount::umount2(c".".as_ptr(), libc::MNT_DETACH).map_err(|e| (e, "unmount old root"))
            });
        fd::close(oldroot);
        r.map_err(|(e, what)| f(e, what))?;
    } else {
        mount::mount(c".".as_ptr(), c"/".as_ptr(), NULL, libc::MS_MOVE, NULL)
            .map_err(|e| f(e, "move rootfs to /"))?;
        fs::chroot(c".".as_ptr()).map_err(|e| f(e, "chroot"))?;
    }
    fs::chdir(c"/".as_ptr()).map_err(|e| f(e, "chdir /"))
}

/// After pivot_root: masked and read-only paths, a read-only root, and the
/// requested root propagation.
pub(crate) fn finish(plan: &RootfsPlan) -> Result<(), Failure> {
    for op in &plan.post {
        match op {
            PostOp::Mask { index, path } => mask(path.as_ptr()).map_err(|e| {
                Failure::new(Stage::MaskedPath, *index, e, "mask").with_detail(path.to_bytes())
            })?,
            PostOp::Readonly { index, path } => readonly(path.as_ptr()).map_err(|e| {
                Failure::new(Stage::ReadonlyPath, *index, e, "make read-only")
                    .with_detail(path.to_bytes())
            })?,
        }
    }
    if plan.readonly {
        let root = c"/".as_ptr();
        let f = |e| Failure::new(Stage::ReadonlyRoot, 0, e, "remount / read-only");
        let rootfd = fs::open_ptr(root, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(f)?;
        let r = remount_ro(root, rootfd);
        fd::close(rootfd);
        r.map_err(f)?;
    }
    if let Some(p) = plan.final_propagation.filter(|_| !plan.host_mount_ns) {
        mount::set_propagation(c"/".as_ptr(), p).map_err(|e| {
            Failure::new(Stage::Propagation, 0, e, "set linux.rootfsPropagation on /")
        })?;
    }
    Ok(())
}

fn mask(path: *const libc::c_char) -> Result<(), Errno> {
    match mount::mount(c"/dev/null".as_ptr(), path, NULL, libc::MS_BIND, NULL) {
        Ok(()) | Err(Errno(libc::ENOENT)) => Ok(()),
        Err(Errno(libc::ENOTDIR)) => mount::mount(
            c"tmpfs".as_ptr(),
            path,
            c"tmpfs".as_ptr(),
            libc::MS_RDONLY,
            NULL,
        ),
        Err(e) => Err(e),
    }
}

fn readonly(path: *const libc::c_char) -> Result<(), Errno> {
    match mount::mount(path, path, NULL, libc::MS_BIND | libc::MS_REC, NULL) {
        Err(Errno(libc::ENOENT)) => return Ok(()),
        r => r?,
    }
    let fd = fs::open_ptr(path, libc::O_PATH, 0)?;
    let r = remount_ro(path, fd);
    fd::close(fd);
    r
}

/// Bind-remounts read-only, keeping the flags the kernel would refuse to
/// drop; retries EBUSY a few times as runc does.
fn remount_ro(path: *const libc::c_char, fd: RawFd) -> Result<(), Errno> {
    let st = fs::fstatvfs(fd)?;
    let keep = mount::locked_flags(st.f_flag as libc::c_ulong);
    let flags = keep | libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
    let mut last = Ok(());
    for _ in 0..5 {
        last = mount::mount(NULL, path, NULL, flags, NULL);
        if last != Err(Errno(libc::EBUSY)) {
            break;
        }
    }
    last
}
