//! mount(2), umount2(2) and pivot_root(2).

use super::{cvt, cvt_long, SysResult};

/// mount(2). `None` pointers are passed as NULL.
pub fn mount(
    source: *const libc::c_char,
    target: *const libc::c_char,
    fstype: *const libc::c_char,
    flags: libc::c_ulong,
    data: *const libc::c_char,
) -> SysResult<()> {
    // SAFETY: every pointer is NULL or a NUL-terminated string owned by the caller.
    cvt(unsafe { libc::mount(source, target, fstype, flags, data.cast()) }).map(drop)
}

/// Changes the propagation type of the mount at `target`.
pub fn set_propagation(target: *const libc::c_char, flags: libc::c_ulong) -> SysResult<()> {
    mount(
        std::ptr::null(),
        target,
        std::ptr::null(),
        flags,
        std::ptr::null(),
    )
}

pub fn umount2(target: *const libc::c_char, flags: libc::c_int) -> SysResult<()> {
    // SAFETY: target is NUL-terminated.
    cvt(unsafe { libc::umount2(target, flags) }).map(drop)
}

pub fn pivot_root(new_root: *const libc::c_char, put_old: *const libc::c_char) -> SysResult<()> {
    // SAFETY: both paths are NUL-terminated.
    cvt_long(unsafe { libc::syscall(libc::SYS_pivot_root, new_root, put_old) }).map(drop)
}

/// Maps statfs(2) `f_flags` (ST_*) to the MS_* flags a bind remount must keep:
/// the kernel refuses to clear "locked" flags in a user namespace.
pub fn locked_flags(statfs_flags: libc::c_ulong) -> libc::c_ulong {
    let mut f = 0;
    for (st, ms) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
        (libc::ST_RDONLY, libc::MS_RDONLY),
    ] {
        if statfs_flags & st != 0 {
            f |= ms;
        }
    }
    f
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x200000;
const AT_RECURSIVE: libc::c_int = 0x8000;
const SYS_MOUNT_SETATTR: libc::c_long = 442;

/// mount_setattr(2) on `dirfd`/`path`, recursively when `recursive`.
pub fn mount_setattr(
    dirfd: libc::c_int,
    path: *const libc::c_char,
    recursive: bool,
    set: u64,
    clear: u64,
    userns_fd: Option<libc::c_int>,
) -> SysResult<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: userns_fd.map(|f| f as u64).unwrap_or(0),
    };
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    // SAFETY: attr is a valid mount_attr of the size passed; path is NUL-terminated.
    cvt_long(unsafe {
        libc::syscall(
            SYS_MOUNT_SETATTR,
            dirfd,
            path,
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// open_tree(2) with OPEN_TREE_CLONE: a detached copy of the mount at
/// `path` (with its submounts when `recursive`), close-on-exec.
pub fn open_tree_clone(path: *const libc::c_char, recursive: bool) -> SysResult<libc::c_int> {
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: path is a NUL-terminated string owned by the caller.
    cvt_long(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path, flags) })
        .map(|fd| fd as libc::c_int)
}

/// move_mount(2) of the detached tree `from_fd` onto the directory or file
/// open as `target_fd` (an O_PATH fd is enough).
pub fn move_mount_fd(from_fd: libc::c_int, target_fd: libc::c_int) -> SysResult<()> {
    // SAFETY: "" is NUL-terminated; both fds are owned by the caller.
    cvt_long(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from_fd,
            c"".as_ptr(),
            target_fd,
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map(drop)
}
