//! The real kernel, as root: a v1 cgroup in every hierarchy through its whole
//! life, the v2 freezer and device filter on the cgroup2 mount, OOM
//! notification. Each test uses its own path and cleans up in a drop guard.
//! Skipped (with a note) when not root or the hierarchy is missing.

mod v1;
mod v2;

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::super::{Cgroup, CgroupRoot};
use crate::spec::*;

pub(super) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub(super) fn host_root() -> Option<CgroupRoot> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return None;
    }
    CgroupRoot::from_host().ok()
}

pub(super) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Kills the children, thaws and destroys the cgroup, whatever happened;
/// on v2 also turns off the controllers `create` enabled in the mount's
/// root, so the host is left as it was.
pub(super) struct Guard {
    pub(super) cg: Cgroup,
    pub(super) children: Vec<i32>,
    subtree_control: Option<(PathBuf, String)>,
}

impl Guard {
    pub(super) fn new(cg: &Cgroup) -> Guard {
        let subtree_control = cg.is_v2().then(|| {
            let file = cg.hierarchies()[0]
                .mount_point
                .join("cgroup.subtree_control");
            let before = std::fs::read_to_string(&file).unwrap_or_default();
            (file, before)
        });
        Guard {
            cg: cg.clone(),
            children: Vec::new(),
            subtree_control,
        }
    }

    /// Waits for `pid` and forgets it; returns the wait status.
    pub(super) fn reap(&mut self, pid: i32) -> i32 {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer; `pid` is our child.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(rc, pid, "waitpid");
        self.children.retain(|p| *p != pid);
        status
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for pid in &self.children {
            // SAFETY: `pid` is a child we forked and have not reaped.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        let _ = self.cg.thaw();
        for pid in std::mem::take(&mut self.children) {
            let mut status = 0;
            // SAFETY: as above; reaping it makes the pid free for reuse.
            unsafe { libc::waitpid(pid, &mut status, 0) };
        }
        let _ = self.cg.destroy();
        if let Some((file, before)) = &self.subtree_control {
            let now = std::fs::read_to_string(file).unwrap_or_default();
            for c in now
                .split_whitespace()
                .filter(|c| !before.split_whitespace().any(|b| b == *c))
            {
                let _ = std::fs::write(file, format!("-{c}"));
            }
        }
    }
}

/// A page shared with forked children.
pub(super) struct SharedCounter(*mut AtomicU64);

impl SharedCounter {
    pub(super) fn new() -> SharedCounter {
        // SAFETY: an anonymous shared mapping with no address hint.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        SharedCounter(p.cast())
    }

    pub(super) fn get(&self) -> u64 {
        // SAFETY: the mapping is live, page-aligned and zero-initialised.
        unsafe { (*self.0).load(Ordering::Relaxed) }
    }
}

/// Forks a child that counts in `counter` forever.
pub(super) fn spawn_spinner(counter: &SharedCounter) -> i32 {
    let ptr = counter.0 as usize;
    // SAFETY: the child only touches the shared page in a loop; it never
    // returns into the (multi-threaded) test harness.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let c = &*(ptr as *const AtomicU64);
            loop {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        pid
    }
}

/// Forks a child that waits for a byte on a pipe, then runs `after` and
/// exits with its result. `after` must only make raw system calls.
pub(super) fn spawn_gated(after: fn() -> i32) -> (i32, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors are fresh and owned here.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the child makes only raw system calls and leaves via _exit.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let mut b = 0u8;
            libc::read(rd.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(after());
        }
        (pid, wr)
    }
}

pub(super) fn release(gate: OwnedFd) {
    // SAFETY: writes one byte from a live local.
    let n = unsafe { libc::write(gate.as_raw_fd(), b"x".as_ptr().cast(), 1) };
    assert_eq!(n, 1);
}

pub(super) fn exit_code(status: i32) -> i32 {
    assert!(
        libc::WIFEXITED(status),
        "child did not exit normally: {status:#x}"
    );
    libc::WEXITSTATUS(status)
}

/// 0 when the open succeeds, 1 on EPERM, 2 on anything else.
pub(super) fn try_open(path: &CStr, flags: i32) -> i32 {
    // SAFETY: `path` is NUL-terminated; the descriptor is closed at once.
    unsafe {
        let fd = libc::open(path.as_ptr(), flags);
        if fd >= 0 {
            libc::close(fd);
            0
        } else if *libc::__errno_location() == libc::EPERM {
            1
        } else {
            2
        }
    }
}

pub(super) fn deny_all() -> Vec<DeviceCgroup> {
    vec![DeviceCgroup {
        allow: false,
        access: Some("rwm".into()),
        ..Default::default()
    }]
}

pub(super) fn memory(limit: i64, swap: i64) -> Option<Memory> {
    Some(Memory {
        limit: Some(limit),
        swap: Some(swap),
        ..Default::default()
    })
}

#[test]
fn host_relative_path_resolves_below_our_own_cgroups() {
    let Some(root) = host_root() else { return };
    let cg = Cgroup::resolve(None, "berth-relative-check").unwrap();
    let own = read(Path::new("/proc/self/cgroup"));
    for h in cg.hierarchies() {
        let m = root
            .mounts
            .iter()
            .find(|m| m.mount_point == h.mount_point)
            .unwrap();
        let base = if cg.is_v2() {
            super::super::root::parent_cgroup(&m.own_cgroup)
        } else {
            m.own_cgroup.clone()
        };
        assert!(own.contains(&m.own_cgroup), "{own} lacks {}", m.own_cgroup);
        assert_eq!(
            h.path,
            super::super::root::join_cgroup(&base, &["berth-relative-check".to_string()])
        );
        assert!(h.dir.starts_with(&h.mount_point));
    }
    assert!(!cg.exists());
}
