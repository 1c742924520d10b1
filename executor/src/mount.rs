//! Mounting a container's root filesystem from a list of mounts, as
//! containerd hands them to a shim (overlay, bind), and undoing it.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::rootfs::options;

/// Mounts `typ` from `source` on `target` with fstab-style `options`
/// ("ro", "rbind", "lowerdir=...", ...).
pub fn mount(typ: &str, source: &str, target: &Path, opts: &[String]) -> Result<()> {
    let o = options::parse(opts);
    let bind = o.bind || typ == "bind";
    let c = |s: &str, what: &str| {
        CString::new(s).map_err(|_| Error::invalid(what, "contains a NUL byte"))
    };
    let target_c = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| Error::invalid("target", "contains a NUL byte"))?;
    let source_c = c(source, "source")?;
    let data = o.data.join(",");
    let data_c = c(&data, "options")?;
    let typ_c = c(typ, "type")?;
    let mut flags = o.flags;
    if bind {
        flags |= libc::MS_BIND;
        if o.recursive {
            flags |= libc::MS_REC;
        }
    }
    let null = std::ptr::null();
    // A bind ignores MS_RDONLY on the first call; it needs a remount.
    let first = if bind {
        flags & !libc::MS_RDONLY
    } else {
        flags
    };
    crate::sys::mount::mount(
        source_c.as_ptr(),
        target_c.as_ptr(),
        if bind { null } else { typ_c.as_ptr() },
        first,
        if data.is_empty() || bind {
            null
        } else {
            data_c.as_ptr()
        },
    )
    .map_err(|e| Error::sys(format!("mount {typ} {source} on {}", target.display()), e))?;
    if bind && flags & libc::MS_RDONLY != 0 {
        crate::sys::mount::mount(
            null,
            target_c.as_ptr(),
            null,
            libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
            null,
        )
        .map_err(|e| Error::sys(format!("remount {} read-only", target.display()), e))?;
    }
    for p in &o.propagation {
        crate::sys::mount::set_propagation(target_c.as_ptr(), *p)
            .map_err(|e| Error::sys(format!("set propagation of {}", target.display()), e))?;
    }
    Ok(())
}

/// Lazily unmounts everything at or below `target` (deepest first).
pub fn unmount_all(target: &Path) {
    crate::container::unmount_under(target);
}
