//! The container's root filesystem: the runtime turns config.json's root,
//! mounts, devices, masked and read-only paths into a list of operations
//! (`plan.rs`, in the runtime process), which the container init carries out
//! (`setup.rs`, between clone and exec, without allocating).

pub(crate) mod idmap;
pub mod options;
pub(crate) mod plan;
pub(crate) mod setup;

use std::ffi::CString;

use crate::sys::fs::Create;

/// Which config entry an operation came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `mounts[i]`.
    Mount(usize),
    /// `linux.devices[i]`.
    Device(usize),
    /// A device or link the runtime adds by default (index into a fixed table).
    Default(usize),
}

/// One mount(2) (plus the follow-up remount and propagation changes).
#[derive(Debug)]
pub(crate) struct MountOp {
    pub origin: Origin,
    /// Destination relative to the rootfs, without a leading '/'.
    pub dest: CString,
    pub source: Option<CString>,
    pub fstype: Option<CString>,
    /// Flags for the first mount(2) call (MS_BIND[|MS_REC] for binds).
    pub flags: libc::c_ulong,
    pub data: Option<CString>,
    /// For binds with flags: the MS_REMOUNT|MS_BIND flags applied next.
    pub remount: Option<libc::c_ulong>,
    pub propagation: Vec<libc::c_ulong>,
    /// mount_setattr(AT_RECURSIVE) attributes (set, clear) for `rro` and friends.
    pub attrs: Option<(u64, u64)>,
    /// What to create at the destination when it is missing.
    pub create: Create,
    /// If mounting fails with EPERM (sysfs or mqueue in a user namespace
    /// without its own network/ipc namespace), bind this host path instead.
    pub fallback_bind: Option<CString>,
    /// An id-mapped bind: the mapping it asks for (planning) ...
    pub idmap: Option<idmap::IdmapRequest>,
    /// ... and the detached, mapped tree the runtime prepared for it, which
    /// the init moves into place instead of calling mount(2).
    pub tree_fd: Option<std::os::fd::RawFd>,
}

/// A device node (or, in a user namespace, a bind of the host's node).
#[derive(Debug)]
pub(crate) struct DeviceOp {
    pub origin: Origin,
    pub path: CString,
    /// S_IFCHR/S_IFBLK/S_IFIFO plus permission bits.
    pub mode: libc::mode_t,
    pub dev: libc::dev_t,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    /// In a user namespace mknod is not allowed: bind this host path instead.
    pub bind_from: Option<CString>,
}

#[derive(Debug)]
pub(crate) enum Op {
    Mount(MountOp),
    Device(DeviceOp),
    /// A symlink at `link` (relative) pointing to `target`; `replace`
    /// removes whatever is there first (used for /dev/ptmx).
    Symlink {
        origin: Origin,
        target: CString,
        link: CString,
        replace: bool,
    },
}

/// Steps after pivot_root, with container paths.
#[derive(Debug)]
pub(crate) enum PostOp {
    Mask { index: usize, path: CString },
    Readonly { index: usize, path: CString },
}

/// Everything the init needs to build the root filesystem.
#[derive(Debug)]
pub(crate) struct RootfsPlan {
    /// Absolute host path of the root filesystem.
    pub rootfs: CString,
    /// Propagation applied to the whole mount tree first (MS_REC|...).
    pub propagation: libc::c_ulong,
    /// The mount point containing the rootfs, made private so pivot_root
    /// works and our binds do not propagate back.
    pub parent_mount: Option<CString>,
    pub ops: Vec<Op>,
    /// pivot_root, or MS_MOVE + chroot when false.
    pub pivot: bool,
    /// The container shares the runtime's mount namespace: leave the host's
    /// propagation alone and only chroot (mounts are undone at delete).
    pub host_mount_ns: bool,
    pub post: Vec<PostOp>,
    pub readonly: bool,
    /// linux.rootfsPropagation applied to the new root after pivot_root.
    pub final_propagation: Option<libc::c_ulong>,
}
