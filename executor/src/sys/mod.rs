//! Thin wrappers over the system calls the executor makes. Every wrapper is
//! async-signal-safe (no allocation, no locks) so the container init can call
//! them between clone and exec. All `unsafe` for syscalls lives here.

pub mod fd;
pub mod fs;
pub mod keys;
pub mod mount;
pub mod proc;
pub mod socket;

use crate::error::Errno;

pub type SysResult<T> = Result<T, Errno>;

/// The calling thread's errno, read without allocating.
pub fn errno() -> Errno {
    // SAFETY: __errno_location returns a valid pointer to this thread's errno.
    Errno(unsafe { *libc::__errno_location() })
}

/// Maps a `-1`-on-error return value to `Err(errno)`.
pub fn cvt(ret: libc::c_int) -> SysResult<libc::c_int> {
    if ret == -1 {
        Err(errno())
    } else {
        Ok(ret)
    }
}

/// Same as [`cvt`] for `c_long` results (raw `syscall`).
pub fn cvt_long(ret: libc::c_long) -> SysResult<libc::c_long> {
    if ret == -1 {
        Err(errno())
    } else {
        Ok(ret)
    }
}

/// Retries a call while it fails with EINTR.
pub fn retry<T>(mut f: impl FnMut() -> SysResult<T>) -> SysResult<T> {
    loop {
        match f() {
            Err(Errno(libc::EINTR)) => continue,
            r => return r,
        }
    }
}

/// Formats a non-negative number into `buf` (no allocation); returns the digits.
pub fn fmt_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// A fixed-capacity, NUL-terminated path buffer built without allocating.
pub struct PathBuf {
    buf: [u8; libc::PATH_MAX as usize],
    len: usize,
}

impl PathBuf {
    pub const fn new() -> PathBuf {
        PathBuf {
            buf: [0; libc::PATH_MAX as usize],
            len: 0,
        }
    }

    /// Appends bytes; fails with ENAMETOOLONG when full.
    pub fn push(&mut self, bytes: &[u8]) -> SysResult<()> {
        if self.len + bytes.len() + 1 > self.buf.len() {
            return Err(Errno(libc::ENAMETOOLONG));
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        self.buf[self.len] = 0;
        Ok(())
    }

    pub fn clear(&mut self) {
        self.len = 0;
        self.buf[0] = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The buffer as a C string pointer (always NUL-terminated).
    pub fn as_ptr(&self) -> *const libc::c_char {
        self.buf.as_ptr().cast()
    }

    /// `/proc/self/fd/<fd>`, the magic link through which a resolved path is reused.
    pub fn proc_fd(fd: libc::c_int) -> PathBuf {
        let mut p = PathBuf::new();
        let mut digits = [0u8; 20];
        // Cannot overflow: the result is far shorter than PATH_MAX.
        let _ = p.push(b"/proc/self/fd/");
        let _ = p.push(fmt_u64(fd as u64, &mut digits));
        p
    }
}

impl Default for PathBuf {
    fn default() -> Self {
        PathBuf::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmt_u64_formats() {
        let mut b = [0u8; 20];
        assert_eq!(fmt_u64(0, &mut b), b"0");
        assert_eq!(fmt_u64(1234567, &mut b), b"1234567");
        assert_eq!(fmt_u64(u64::MAX, &mut b), b"18446744073709551615");
    }

    #[test]
    fn pathbuf_builds_and_clears() {
        let mut p = PathBuf::proc_fd(17);
        assert_eq!(p.as_bytes(), b"/proc/self/fd/17");
        p.clear();
        p.push(b"/proc/1").unwrap();
        // SAFETY: as_ptr is NUL-terminated.
        let s = unsafe { std::ffi::CStr::from_ptr(p.as_ptr()) };
        assert_eq!(s.to_bytes(), b"/proc/1");
    }
}
