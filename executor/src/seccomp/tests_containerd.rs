//! containerd 1.6.20's default profile (contrib/seccomp/seccomp_default.go) as `ctr run
//! --seccomp` renders it on x86_64 with ctr's default capabilities: testdata/containerd-default.json.

use super::arch::Abi;
use super::bpf::*;
use super::tests::{action_of, build, nr, ALLOW, ENOSYS, EPERM};
use super::Program;

fn x64(p: &Program, name: &str, args: &[u64]) -> u32 {
    action_of(p, Abi::X86_64, nr(Abi::X86_64, name), args)
}

fn containerd_default() -> Program {
    build(include_str!("testdata/containerd-default.json"))
}

#[test]
fn containerd_default_profile() {
    let p = containerd_default();
    eprintln!(
        "containerd 1.6.20 default profile: {} instructions",
        p.filter.len()
    );
    assert!(p.filter.len() < MAX_INSNS);
    assert_eq!((p.flags, p.needs_listener), (0, false));

    assert_eq!(x64(&p, "read", &[]), ALLOW);
    assert_eq!(x64(&p, "clone", &[libc::SIGCHLD as u64]), ALLOW);
    let thread_flags =
        (libc::CLONE_VM | libc::CLONE_FS | libc::CLONE_FILES | libc::CLONE_THREAD) as u64;
    assert_eq!(x64(&p, "clone", &[thread_flags]), ALLOW);
    assert_eq!(
        x64(
            &p,
            "clone",
            &[libc::CLONE_NEWUSER as u64 | libc::SIGCHLD as u64]
        ),
        EPERM
    );
    assert_eq!(x64(&p, "clone", &[libc::CLONE_NEWNET as u64]), EPERM);
    assert_eq!(x64(&p, "clone3", &[]), ENOSYS);
    assert_eq!(x64(&p, "personality", &[0]), ALLOW);
    assert_eq!(x64(&p, "personality", &[0xffff_ffff]), ALLOW);
    assert_eq!(x64(&p, "personality", &[0x1234]), EPERM);
    for denied in [
        "unshare",
        "mount",
        "kexec_load",
        "setns",
        "reboot",
        "init_module",
        "bpf",
    ] {
        assert_eq!(x64(&p, denied, &[]), EPERM, "{denied}");
    }
    for allowed in [
        "ptrace",
        "chroot",
        "arch_prctl",
        "futex_waitv",
        "socket",
        "io_uring_setup",
    ] {
        assert_eq!(x64(&p, allowed, &[]), ALLOW, "{allowed}");
    }
    // Newer than anything the profile names → ENOSYS, so libc can fall back.
    assert_eq!(action_of(&p, Abi::X86_64, 450, &[]), ENOSYS);
    assert_eq!(action_of(&p, Abi::X86_64, 462, &[]), ENOSYS);

    assert_eq!(action_of(&p, Abi::X86, nr(Abi::X86, "read"), &[]), ALLOW);
    assert_eq!(action_of(&p, Abi::X86, nr(Abi::X86, "chown32"), &[]), ALLOW);
    assert_eq!(
        action_of(&p, Abi::X86, nr(Abi::X86, "socketcall"), &[1]),
        ALLOW
    );
    assert_eq!(action_of(&p, Abi::X86, nr(Abi::X86, "mount"), &[]), EPERM);
    assert_eq!(
        action_of(
            &p,
            Abi::X86,
            nr(Abi::X86, "clone"),
            &[libc::CLONE_NEWUSER as u64]
        ),
        EPERM
    );
    assert_eq!(action_of(&p, Abi::X32, nr(Abi::X32, "read"), &[]), ALLOW);
    assert_eq!(action_of(&p, Abi::X32, nr(Abi::X32, "unshare"), &[]), EPERM);
}
