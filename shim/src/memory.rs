//! Keeping an idle shim small. Setting up a container runs a lot of code
//! (config parsing, the executor, protobuf); once the shim is idle again
//! those text pages are dropped from its mappings with MADV_DONTNEED (they
//! stay in the page cache and fault back in if needed), and freed heap is
//! returned to the kernel. Only never-written file mappings (r-xp) are
//! touched, so no data can be lost.

use std::time::{Duration, Instant};

/// How long the loop must have been quiet before trimming.
pub const IDLE_AFTER: Duration = Duration::from_millis(300);

/// Tracks activity and says when to trim.
#[derive(Debug, Default)]
pub struct Trimmer {
    dirty_since: Option<Instant>,
}

impl Trimmer {
    /// Call after handling requests or events.
    pub fn touched(&mut self, now: Instant) {
        self.dirty_since = Some(now);
    }

    /// When the loop should wake up to trim, if it has work pending.
    pub fn deadline(&self) -> Option<Instant> {
        self.dirty_since.map(|t| t + IDLE_AFTER)
    }

    /// Trims if the loop has been idle long enough.
    pub fn maybe_trim(&mut self, now: Instant) {
        if let Some(d) = self.deadline() {
            if now >= d {
                self.dirty_since = None;
                trim();
            }
        }
    }
}

/// Drops the resident pages of executable file mappings and trims the heap.
pub fn trim() {
    if let Ok(maps) = std::fs::read_to_string("/proc/self/maps") {
        for line in maps.lines() {
            let mut f = line.split_whitespace();
            let (Some(range), Some(perms)) = (f.next(), f.next()) else {
                continue;
            };
            let path = f.nth(3).unwrap_or("");
            if perms != "r-xp" || !path.starts_with('/') {
                continue;
            }
            let Some((a, b)) = range.split_once('-') else {
                continue;
            };
            let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            else {
                continue;
            };
            // SAFETY: the range is a private, read-only, executable file
            // mapping: its pages are clean copies of the file, so dropping
            // them only means they are read back on the next access.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
        }
    }
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
