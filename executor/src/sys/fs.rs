//! Path and file-system calls, including `openat2(RESOLVE_IN_ROOT)`, which the
//! rootfs code uses so that no symlink inside the container can point a mount
//! or device node outside the root filesystem.

use std::ffi::CStr;
use std::os::fd::RawFd;

use super::{cvt, cvt_long, retry, PathBuf, SysResult};
use crate::error::Errno;

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

pub fn open(path: &CStr, flags: libc::c_int, mode: libc::mode_t) -> SysResult<RawFd> {
    // SAFETY: path is NUL-terminated.
    retry(|| cvt(unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode) }))
}

pub fn open_ptr(
    path: *const libc::c_char,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> SysResult<RawFd> {
    // SAFETY: callers pass a NUL-terminated path (a CStr or a sys::PathBuf).
    retry(|| cvt(unsafe { libc::open(path, flags | libc::O_CLOEXEC, mode) }))
}

pub fn openat(
    dir: RawFd,
    path: *const libc::c_char,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> SysResult<RawFd> {
    // SAFETY: callers pass a NUL-terminated path.
    retry(|| cvt(unsafe { libc::openat(dir, path, flags | libc::O_CLOEXEC, mode) }))
}

/// Opens `path` relative to `root` as if `root` were `/`: absolute symlinks
/// and `..` cannot leave it (openat2 with RESOLVE_IN_ROOT).
pub fn open_in_root(
    root: RawFd,
    path: *const libc::c_char,
    flags: libc::c_int,
) -> SysResult<RawFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: how is a valid open_how of the size passed; path is NUL-terminated.
    retry(|| {
        cvt_long(unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root,
                path,
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        })
    })
    .map(|fd| fd as RawFd)
}

pub fn mkdirat(dir: RawFd, name: *const libc::c_char, mode: libc::mode_t) -> SysResult<()> {
    // SAFETY: name is NUL-terminated.
    cvt(unsafe { libc::mkdirat(dir, name, mode) }).map(drop)
}

pub fn mknodat(
    dir: RawFd,
    name: *const libc::c_char,
    mode: libc::mode_t,
    dev: libc::dev_t,
) -> SysResult<()> {
    // SAFETY: name is NUL-terminated.
    cvt(unsafe { libc::mknodat(dir, name, mode, dev) }).map(drop)
}

pub fn symlinkat(
    target: *const libc::c_char,
    dir: RawFd,
    link: *const libc::c_char,
) -> SysResult<()> {
    // SAFETY: both strings are NUL-terminated.
    cvt(unsafe { libc::symlinkat(target, dir, link) }).map(drop)
}

pub fn unlinkat(dir: RawFd, name: *const libc::c_char, flags: libc::c_int) -> SysResult<()> {
    // SAFETY: name is NUL-terminated.
    cvt(unsafe { libc::unlinkat(dir, name, flags) }).map(drop)
}

pub fn fchown(fd: RawFd, uid: libc::uid_t, gid: libc::gid_t) -> SysResult<()> {
    // SAFETY: plain syscall; AT_EMPTY_PATH with "" operates on fd itself (works for O_PATH fds).
    cvt(unsafe { libc::fchownat(fd, c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH) }).map(drop)
}

pub fn stat_ptr(path: *const libc::c_char) -> SysResult<libc::stat> {
    // SAFETY: zeroed stat is a valid out buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: path is NUL-terminated, st a valid out pointer.
    cvt(unsafe { libc::stat(path, &mut st) })?;
    Ok(st)
}

/// fstatvfs(2): `f_flag` holds the mount flags (ST_*).
pub fn fstatvfs(fd: RawFd) -> SysResult<libc::statvfs> {
    // SAFETY: zeroed statvfs is a valid out buffer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid out pointer.
    cvt(unsafe { libc::fstatvfs(fd, &mut st) })?;
    Ok(st)
}

/// True when `path` names a regular file with an execute bit set (what Go's
/// exec.LookPath checks). Uses stat only: faccessat2 may already be denied
/// by the container's seccomp filter at this point.
pub fn is_executable_file(path: *const libc::c_char) -> bool {
    match stat_ptr(path) {
        Ok(st) => st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_mode & 0o111 != 0,
        Err(_) => false,
    }
}

pub fn chdir(path: *const libc::c_char) -> SysResult<()> {
    // SAFETY: path is NUL-terminated.
    cvt(unsafe { libc::chdir(path) }).map(drop)
}

pub fn fchdir(fd: RawFd) -> SysResult<()> {
    // SAFETY: plain syscall on an fd.
    cvt(unsafe { libc::fchdir(fd) }).map(drop)
}

pub fn chroot(path: *const libc::c_char) -> SysResult<()> {
    // SAFETY: path is NUL-terminated.
    cvt(unsafe { libc::chroot(path) }).map(drop)
}

pub fn umask(mask: libc::mode_t) -> libc::mode_t {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask) }
}

/// Writes `data` to an existing file (procfs, sysfs, cgroupfs), no allocation.
pub fn write_file(path: *const libc::c_char, data: &[u8]) -> SysResult<()> {
    let fd = open_ptr(path, libc::O_WRONLY, 0)?;
    let r = super::fd::write_all(fd, data);
    super::fd::close(fd);
    r
}

/// Reads a whole (small) file into `buf`; returns the length read.
pub fn read_file(path: *const libc::c_char, buf: &mut [u8]) -> SysResult<usize> {
    let fd = open_ptr(path, libc::O_RDONLY, 0)?;
    let r = super::fd::read_full(fd, buf);
    super::fd::close(fd);
    r
}

/// What to create at the last component when it is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    Dir,
    File,
}

/// Opens `rel` (relative, no leading '/') inside `root` with O_PATH,
/// creating missing directories (and, if asked, an empty file as the last
/// component) along the way. Resolution never leaves `root`.
pub fn open_or_create_in_root(root: RawFd, rel: &[u8], last: Create) -> SysResult<RawFd> {
    let mut path = PathBuf::new();
    path.push(rel)?;
    if path.is_empty() {
        // The root itself.
        return open_in_root(root, c".".as_ptr(), libc::O_PATH);
    }
    match open_in_root(root, path.as_ptr(), libc::O_PATH) {
        Err(Errno(libc::ENOENT)) => {}
        r => return r,
    }
    // Walk component by component, creating what is missing.
    let bytes = path.as_bytes();
    let total = bytes.len();
    let mut comp_start = 0;
    let mut parent = open_in_root(root, c".".as_ptr(), libc::O_PATH)?;
    let mut prefix = PathBuf::new();
    while comp_start < total {
        let mut end = comp_start;
        while end < total && bytes[end] != b'/' {
            end += 1;
        }
        if end == comp_start {
            comp_start += 1;
            continue;
        }
        let is_last = end >= total || bytes[end..].iter().all(|b| *b == b'/');
        if !prefix.is_empty() {
            prefix.push(b"/")?;
        }
        prefix.push(&bytes[comp_start..end])?;
        let next = match open_in_root(root, prefix.as_ptr(), libc::O_PATH) {
            Ok(fd) => fd,
            Err(Errno(libc::ENOENT)) => {
                let mut name = PathBuf::new();
                name.push(&bytes[comp_start..end])?;
                let created = if is_last && last == Create::File {
                    // O_PATH directory fds are valid dirfds for *at() calls.
                    openat(
                        parent,
                        name.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW,
                        0o644,
                    )
                    .map(super::fd::close)
                } else {
                    match mkdirat(parent, name.as_ptr(), 0o755) {
                        Err(Errno(libc::EEXIST)) => Ok(()),
                        r => r,
                    }
                };
                if let Err(e) = created {
                    super::fd::close(parent);
                    return Err(e);
                }
                match open_in_root(root, prefix.as_ptr(), libc::O_PATH) {
                    Ok(fd) => fd,
                    Err(e) => {
                        super::fd::close(parent);
                        return Err(e);
                    }
                }
            }
            Err(e) => {
                super::fd::close(parent);
                return Err(e);
            }
        };
        super::fd::close(parent);
        parent = next;
        comp_start = end + 1;
    }
    Ok(parent)
}
