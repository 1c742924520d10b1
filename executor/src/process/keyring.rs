//! The session keyring of container processes, as runc does it: the init
//! joins a new keyring named `_ses.<container id>` (so keys are not shared
//! with the caller's session) and makes it searchable by its owner (or, in
//! a user namespace, by others) so processes exec'd later can join the same
//! one. `--no-new-keyring` keeps the caller's session keyring.

use std::ffi::CString;

use super::channel::Stage;
use super::Failure;
use crate::error::{Errno, Error, Result};
use crate::sys::keys;

const KEY_USR_SEARCH: u32 = 0x0008_0000;
const KEY_OTH_SEARCH: u32 = 0x0000_0008;

/// Prepared in the parent; `join` runs between clone and exec.
pub(crate) struct KeyringPlan {
    name: CString,
    /// Permission bits the init adds after creating the keyring; `None`
    /// for exec'd processes, which only join.
    add_perm: Option<u32>,
    describe_buf: Vec<u8>,
}

/// The keyring name for a container.
fn ring_name(container_id: &str) -> Result<CString> {
    CString::new(format!("_ses.{container_id}"))
        .map_err(|_| Error::invalid("container id", "contains a NUL byte"))
}

impl KeyringPlan {
    /// For the container init.
    pub(crate) fn for_init(container_id: &str, user_namespace: bool) -> Result<KeyringPlan> {
        let name = ring_name(container_id)?;
        Ok(KeyringPlan {
            describe_buf: vec![0; name.as_bytes().len() + 128],
            name,
            add_perm: Some(if user_namespace {
                KEY_OTH_SEARCH
            } else {
                KEY_USR_SEARCH
            }),
        })
    }

    /// For a process exec'd into a running container.
    pub(crate) fn for_exec(container_id: &str) -> Result<KeyringPlan> {
        Ok(KeyringPlan {
            name: ring_name(container_id)?,
            add_perm: None,
            describe_buf: Vec::new(),
        })
    }

    /// Joins the keyring (in the child; no allocation). A kernel without
    /// keyrings (ENOSYS) is not an error, as in runc.
    pub(crate) fn join(&mut self) -> std::result::Result<(), Failure> {
        let fail = |e, what| Failure::new(Stage::Keyring, 0, e, what);
        let serial = match keys::join_session_keyring(&self.name) {
            Ok(s) => s,
            Err(Errno(libc::ENOSYS)) => return Ok(()),
            Err(e) => return Err(fail(e, "join session keyring")),
        };
        let Some(add) = self.add_perm else {
            return Ok(());
        };
        let n = keys::describe_key(serial, &mut self.describe_buf)
            .map_err(|e| fail(e, "describe session keyring"))?;
        let perm = self
            .describe_buf
            .get(..n)
            .and_then(parse_perm)
            .ok_or_else(|| fail(Errno(libc::EINVAL), "parse session keyring permissions"))?;
        keys::set_key_perm(serial, perm | add)
            .map_err(|e| fail(e, "set session keyring permissions"))
    }
}

/// The permission field of a KEYCTL_DESCRIBE result
/// ("type;uid;gid;perm;description", perm in hex). No allocation.
fn parse_perm(desc: &[u8]) -> Option<u32> {
    let field = desc.split(|&b| b == b';').nth(3)?;
    if field.is_empty() || field.len() > 8 {
        return None;
    }
    let mut v: u32 = 0;
    for &b in field {
        let d = (b as char).to_digit(16)?;
        v = (v << 4) | d;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_field_is_parsed_as_hex() {
        assert_eq!(
            parse_perm(b"keyring;0;0;3f130000;_ses.abc\0"),
            Some(0x3f13_0000)
        );
        assert_eq!(parse_perm(b"keyring;0;0;zz;x"), None);
        assert_eq!(parse_perm(b"keyring;0;0"), None);
        assert_eq!(parse_perm(b"keyring;0;0;123456789;x"), None);
    }

    #[test]
    fn names_carry_the_container_id() {
        let p = KeyringPlan::for_init("web-1", false).unwrap();
        assert_eq!(p.name.as_bytes(), b"_ses.web-1");
        assert_eq!(p.add_perm, Some(KEY_USR_SEARCH));
        let p = KeyringPlan::for_init("web-1", true).unwrap();
        assert_eq!(p.add_perm, Some(KEY_OTH_SEARCH));
        assert!(KeyringPlan::for_exec("web-1").unwrap().add_perm.is_none());
    }

    #[test]
    fn joining_in_a_child_gives_it_its_own_named_keyring() {
        // A forked child (not this test thread) joins, then reports the
        // description of its session keyring through a pipe.
        let mut plan =
            KeyringPlan::for_init(&format!("unit-{}", std::process::id()), false).unwrap();
        let mut fds = [0; 2];
        // SAFETY: fds has room for two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child only makes raw system calls and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ok = plan.join().is_ok();
            let mut buf = [0u8; 256];
            let n = keys::describe_key(-3, &mut buf).unwrap_or(0).min(buf.len());
            // SAFETY: writing our own buffer to our own pipe, then exiting.
            unsafe {
                libc::write(fds[1], buf.as_ptr().cast(), n);
                libc::_exit(if ok { 0 } else { 1 });
            }
        }
        // SAFETY: closing our copy of the write end.
        unsafe { libc::close(fds[1]) };
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let mut out = [0u8; 256];
        // SAFETY: reading into our own buffer.
        let n = unsafe { libc::read(fds[0], out.as_mut_ptr().cast(), out.len()) };
        // SAFETY: closing our read end.
        unsafe { libc::close(fds[0]) };
        assert_eq!(status, 0, "join failed in the child");
        let desc = String::from_utf8_lossy(&out[..n.max(0) as usize]).to_string();
        let name = format!("_ses.unit-{}", std::process::id());
        assert!(desc.trim_end_matches('\0').ends_with(&name), "{desc}");
        let perm = parse_perm(desc.as_bytes()).unwrap();
        assert_ne!(perm & KEY_USR_SEARCH, 0, "{desc}");
    }
}
