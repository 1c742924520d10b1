//! keyctl(2): the session keyring a container process gets.

use std::ffi::CStr;

use super::{cvt_long, SysResult};

const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
const KEYCTL_SETPERM: libc::c_int = 5;
const KEYCTL_DESCRIBE: libc::c_int = 6;

/// Joins the session keyring called `name`, creating it if there is none
/// the caller may search; returns its serial.
pub fn join_session_keyring(name: &CStr) -> SysResult<i32> {
    // SAFETY: name is a valid C string for the duration of the call.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    cvt_long(r).map(|serial| serial as i32)
}

/// Writes the key's description ("type;uid;gid;perm;name\0") into `buf`;
/// returns the full length, which may exceed `buf` (then nothing is copied).
pub fn describe_key(serial: i32, buf: &mut [u8]) -> SysResult<usize> {
    // SAFETY: buf is valid for buf.len() bytes.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_DESCRIBE,
            serial,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    cvt_long(r).map(|n| n as usize)
}

/// Sets a key's permission mask.
pub fn set_key_perm(serial: i32, perm: u32) -> SysResult<()> {
    // SAFETY: integer arguments only.
    cvt_long(unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_SETPERM, serial, perm) }).map(drop)
}
