//! OOM notification for the shim: on v1 an eventfd registered through
//! cgroup.event_control on memory.oom_control; on v2 an inotify watch on
//! memory.events, whose "oom_kill" counter tells whether the change was a kill.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use super::error::{CgroupError, Result};
use super::fs::{read_key, write};
use super::sys;

/// v1: the eventfd counts OOM events of the memory cgroup `dir`. The kernel
/// also signals it once when the cgroup is removed, so a reader should check
/// that the cgroup still exists before reporting an OOM.
pub fn v1_eventfd(dir: &Path) -> Result<OwnedFd> {
    let efd = sys::eventfd().map_err(|e| CgroupError::io("eventfd", dir, e))?;
    let control = dir.join("memory.oom_control");
    let oom = File::open(&control).map_err(|e| CgroupError::io("open", &control, e))?;
    // The registration keeps its own reference to the eventfd; the
    // oom_control descriptor is only needed while writing it.
    write(
        &dir.join("cgroup.event_control"),
        &format!("{} {}", efd.as_raw_fd(), oom.as_raw_fd()),
    )?;
    Ok(efd)
}

/// v2: an inotify descriptor that becomes readable when memory.events
/// changes (any counter: low, high, max, oom, oom_kill).
pub fn v2_watch(dir: &Path) -> Result<OwnedFd> {
    let events = dir.join("memory.events");
    sys::inotify_watch(&events, libc::IN_MODIFY)
        .map_err(|e| CgroupError::io("inotify_add_watch", &events, e))
}

/// The "oom_kill" counter of memory.oom_control (v1) or memory.events (v2).
pub fn kill_count(file: &Path) -> Result<u64> {
    Ok(read_key(file, "oom_kill")?.unwrap_or(0))
}
