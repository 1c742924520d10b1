//! Filters loaded into the running kernel, in forked children that only make raw syscalls.

use super::tests::build;
use super::{load, Program};

/// Forks; the child sets no_new_privs, loads `p`, runs `body` (raw syscalls only) and
/// exits with its result; returns the child's exit code.
fn in_child(p: &Program, body: fn() -> i32) -> i32 {
    // SAFETY: the child only makes raw syscalls (prctl, seccomp, the body's) and _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: raw syscalls in the child; _exit never returns.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                libc::_exit(101);
            }
            let code = match load(p) {
                Ok(_) => body(),
                Err(_) => 102,
            };
            libc::_exit(code);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "child status {status:#x}");
    libc::WEXITSTATUS(status)
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[test]
fn kernel_runs_an_errno_rule() {
    let p = build(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18}]}"#,
    );
    let code = in_child(&p, || {
        // SAFETY: plain syscalls without pointers.
        let (ppid, pid) = unsafe {
            (
                libc::syscall(libc::SYS_getppid),
                libc::syscall(libc::SYS_getpid),
            )
        };
        match (ppid, errno(), pid > 0) {
            (-1, libc::EXDEV, true) => 0,
            (-1, _, _) => 1,
            _ => 2,
        }
    });
    assert_eq!(code, 0);
}

#[test]
fn kernel_runs_masked_eq_and_64_bit_conditions() {
    let p = build(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18,
             "args": [{"index": 0, "value": 240, "valueTwo": 16, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 33,
             "args": [{"index": 1, "value": 4294967296, "op": "SCMP_CMP_GT"}]}]}"#,
    );
    let code = in_child(&p, || {
        let call = |a: u64, b: u64| {
            // SAFETY: getppid ignores its arguments; the filter sees the registers.
            let r = unsafe { libc::syscall(libc::SYS_getppid, a, b) };
            if r == -1 {
                errno()
            } else {
                0
            }
        };
        let results = [
            call(0x13, 0),
            call(0x23, 0),
            call(0, 0x1_0000_0001),
            call(0, 0x1_0000_0000),
            call(0, 0xffff_ffff),
        ];
        if results == [libc::EXDEV, 0, libc::EDOM, 0, 0] {
            0
        } else {
            1
        }
    });
    assert_eq!(code, 0);
}

#[test]
fn kernel_hands_out_a_listener_for_notify() {
    let p = build(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x", "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]}"#,
    );
    // SAFETY: see in_child; only raw syscalls after fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: raw syscalls, then _exit.
        unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            let code = match load(&p) {
                Ok(Some(fd)) if fd > 2 && libc::fcntl(fd, libc::F_GETFD) >= 0 => 0,
                Ok(_) => 1,
                Err(_) => 2,
            };
            libc::_exit(code);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{status:#x}"
    );
}
