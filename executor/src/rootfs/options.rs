//! Mount option strings (`ro`, `nosuid`, `rbind`, `rslave`, `rro`, `size=64m`,
//! ...) turned into mount(2) flags, propagation changes, mount_setattr(2)
//! attributes and the filesystem data string.

use crate::sys::mount::*;

/// The parsed options of one spec mount.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags set for mount(2).
    pub flags: libc::c_ulong,
    /// Propagation changes applied after mounting, in order.
    pub propagation: Vec<libc::c_ulong>,
    /// `bind` or `rbind` was given.
    pub bind: bool,
    /// `rbind`: the bind is recursive.
    pub recursive: bool,
    /// Recursive attributes (`rro`, `rnosuid`, ...) set and cleared with
    /// mount_setattr(AT_RECURSIVE) after mounting.
    pub attr_set: u64,
    pub attr_clear: u64,
    /// `idmap`/`ridmap`: an id-mapped mount.
    pub idmap: bool,
    pub idmap_recursive: bool,
    /// `tmpcopyup` (runc extension): copy the covered directory's contents into a tmpfs.
    pub tmpcopyup: bool,
    /// Everything else, comma-joined, for the filesystem.
    pub data: Vec<String>,
}

/// Parses spec mount options.
pub fn parse(options: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    for opt in options {
        let opt = opt.as_str();
        if let Some((set, clear)) = flag(opt) {
            o.flags = (o.flags | set) & !clear;
            continue;
        }
        if let Some(p) = propagation(opt) {
            o.propagation.push(p);
            continue;
        }
        if let Some(mode) = recursive_atime(opt) {
            // The atime mode is a field, not a bit: clear the whole field
            // and set the chosen value (relatime is zero).
            o.attr_set = (o.attr_set & !MOUNT_ATTR__ATIME) | mode;
            o.attr_clear |= MOUNT_ATTR__ATIME;
            continue;
        }
        if let Some((set, clear)) = recursive_attr(opt) {
            o.attr_set = (o.attr_set | set) & !clear;
            o.attr_clear = (o.attr_clear | clear) & !set;
            continue;
        }
        match opt {
            "bind" => o.bind = true,
            "rbind" => {
                o.bind = true;
                o.recursive = true;
            }
            "idmap" => o.idmap = true,
            "ridmap" => {
                o.idmap = true;
                o.idmap_recursive = true;
            }
            "tmpcopyup" => o.tmpcopyup = true,
            _ => o.data.push(opt.to_string()),
        }
    }
    o
}

/// (set, clear) for the plain mount(2) flag options.
fn flag(opt: &str) -> Option<(libc::c_ulong, libc::c_ulong)> {
    Some(match opt {
        "async" => (0, libc::MS_SYNCHRONOUS),
        "atime" => (0, libc::MS_NOATIME),
        "defaults" => (0, 0),
        "dev" => (0, libc::MS_NODEV),
        "diratime" => (0, libc::MS_NODIRATIME),
        "dirsync" => (libc::MS_DIRSYNC, 0),
        "exec" => (0, libc::MS_NOEXEC),
        "iversion" => (libc::MS_I_VERSION, 0),
        "lazytime" => (libc::MS_LAZYTIME, 0),
        "loud" => (0, libc::MS_SILENT),
        "mand" => (libc::MS_MANDLOCK, 0),
        "noatime" => (libc::MS_NOATIME, 0),
        "nodev" => (libc::MS_NODEV, 0),
        "nodiratime" => (libc::MS_NODIRATIME, 0),
        "noexec" => (libc::MS_NOEXEC, 0),
        "noiversion" => (0, libc::MS_I_VERSION),
        "nolazytime" => (0, libc::MS_LAZYTIME),
        "nomand" => (0, libc::MS_MANDLOCK),
        "norelatime" => (0, libc::MS_RELATIME),
        "nostrictatime" => (0, libc::MS_STRICTATIME),
        "nosuid" => (libc::MS_NOSUID, 0),
        "nosymfollow" => (MS_NOSYMFOLLOW, 0),
        "symfollow" => (0, MS_NOSYMFOLLOW),
        "relatime" => (libc::MS_RELATIME, 0),
        "remount" => (libc::MS_REMOUNT, 0),
        "ro" => (libc::MS_RDONLY, 0),
        "rw" => (0, libc::MS_RDONLY),
        "silent" => (libc::MS_SILENT, 0),
        "strictatime" => (libc::MS_STRICTATIME, 0),
        "suid" => (0, libc::MS_NOSUID),
        "sync" => (libc::MS_SYNCHRONOUS, 0),
        _ => return None,
    })
}

const MS_NOSYMFOLLOW: libc::c_ulong = 256;

fn propagation(opt: &str) -> Option<libc::c_ulong> {
    Some(match opt {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    })
}

/// The spec value of linux.rootfsPropagation as mount(2) flags.
pub fn rootfs_propagation(value: &str) -> Option<libc::c_ulong> {
    propagation(value)
}

/// The atime mode for the recursive atime options.
fn recursive_atime(opt: &str) -> Option<u64> {
    Some(match opt {
        "rrelatime" | "rnostrictatime" | "ratime" | "rnorelatime" => MOUNT_ATTR_RELATIME,
        "rnoatime" => MOUNT_ATTR_NOATIME,
        "rstrictatime" => MOUNT_ATTR_STRICTATIME,
        _ => return None,
    })
}

/// (set, clear) of MOUNT_ATTR_* for the recursive `r*` options (runc 1.1).
fn recursive_attr(opt: &str) -> Option<(u64, u64)> {
    Some(match opt {
        "rro" => (MOUNT_ATTR_RDONLY, 0),
        "rrw" => (0, MOUNT_ATTR_RDONLY),
        "rnosuid" => (MOUNT_ATTR_NOSUID, 0),
        "rsuid" => (0, MOUNT_ATTR_NOSUID),
        "rnodev" => (MOUNT_ATTR_NODEV, 0),
        "rdev" => (0, MOUNT_ATTR_NODEV),
        "rnoexec" => (MOUNT_ATTR_NOEXEC, 0),
        "rexec" => (0, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => (0, MOUNT_ATTR_NODIRATIME),
        "rnosymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_set_and_clear_in_order() {
        let o = p(&["nosuid", "noexec", "nodev", "ro", "rw"]);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NODEV);
        assert!(o.data.is_empty());
    }

    #[test]
    fn bind_propagation_and_data() {
        let o = p(&["rbind", "rslave", "mode=755", "size=65536k", "ro"]);
        assert!(o.bind && o.recursive);
        assert_eq!(o.propagation, vec![libc::MS_SLAVE | libc::MS_REC]);
        assert_eq!(
            o.data,
            vec!["mode=755".to_string(), "size=65536k".to_string()]
        );
        assert_eq!(o.flags, libc::MS_RDONLY);
    }

    #[test]
    fn recursive_attributes() {
        let o = p(&["rbind", "rro", "rnosuid", "rnoatime"]);
        assert_eq!(
            o.attr_set,
            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOATIME
        );
        assert_eq!(o.attr_clear, MOUNT_ATTR__ATIME);
    }
}
