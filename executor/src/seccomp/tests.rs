//! Semantics of compiled filters, checked by running them in the test interpreter, and the
//! helpers the other test files share.

use super::arch::{Abi, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
use super::bpf::*;
use super::interp::{run, Call};
use super::{compile, Program};
use crate::spec::Seccomp;

pub(crate) const ALLOW: u32 = SECCOMP_RET_ALLOW;
pub(crate) const EPERM: u32 = SECCOMP_RET_ERRNO | libc::EPERM as u32;
pub(crate) const ENOSYS: u32 = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
const KILL_THREAD: u32 = SECCOMP_RET_KILL_THREAD;

pub(crate) fn parse(json: &str) -> Seccomp {
    serde_json::from_str(json).unwrap()
}

pub(crate) fn build(json: &str) -> Program {
    compile(&parse(json)).unwrap()
}

pub(crate) fn nr(abi: Abi, name: &str) -> u32 {
    abi.lookup(name)
        .unwrap_or_else(|| panic!("{name} not in {abi:?}"))
}

/// Action for a call of the ABI's syscall number `nr` with `args`.
pub(crate) fn action_of(p: &Program, abi: Abi, nr: u32, args: &[u64]) -> u32 {
    let arch = if abi == Abi::X86 {
        AUDIT_ARCH_I386
    } else {
        AUDIT_ARCH_X86_64
    };
    let mut call = Call {
        nr,
        arch,
        ..Call::default()
    };
    call.args[..args.len()].copy_from_slice(args);
    run(&p.filter, &call).unwrap()
}

fn x64(p: &Program, name: &str, args: &[u64]) -> u32 {
    action_of(p, Abi::X86_64, nr(Abi::X86_64, name), args)
}

#[test]
fn each_action_and_errno_value() {
    let p = build(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock", "syscalls": [
            {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22},
            {"names": ["kill"], "action": "SCMP_ACT_KILL"},
            {"names": ["tkill"], "action": "SCMP_ACT_KILL_THREAD"},
            {"names": ["tgkill"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["getpid"], "action": "SCMP_ACT_TRAP"},
            {"names": ["getppid"], "action": "SCMP_ACT_TRACE"},
            {"names": ["gettid"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
            {"names": ["uname"], "action": "SCMP_ACT_LOG"},
            {"names": ["sync"], "action": "SCMP_ACT_NOTIFY"}]}"#,
    );
    assert_eq!(x64(&p, "getcwd", &[]), EPERM);
    assert_eq!(x64(&p, "chmod", &[]), SECCOMP_RET_ERRNO | 22);
    assert_eq!(x64(&p, "kill", &[]), KILL_THREAD);
    assert_eq!(x64(&p, "tkill", &[]), KILL_THREAD);
    assert_eq!(x64(&p, "tgkill", &[]), SECCOMP_RET_KILL_PROCESS);
    assert_eq!(x64(&p, "getpid", &[]), SECCOMP_RET_TRAP);
    assert_eq!(
        x64(&p, "getppid", &[]),
        SECCOMP_RET_TRACE | libc::EPERM as u32
    );
    assert_eq!(x64(&p, "gettid", &[]), SECCOMP_RET_TRACE | 7);
    assert_eq!(x64(&p, "uname", &[]), SECCOMP_RET_LOG);
    assert_eq!(x64(&p, "sync", &[]), SECCOMP_RET_USER_NOTIF);
    assert_eq!(x64(&p, "read", &[]), ALLOW);
    assert!(p.needs_listener);
    assert_eq!(p.flags, 0);
}

#[test]
fn default_action_with_default_errno_ret() {
    let p = build(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 6,
            "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    assert_eq!(x64(&p, "read", &[]), ALLOW);
    assert_eq!(x64(&p, "close", &[]), SECCOMP_RET_ERRNO | 6);
    assert!(!p.needs_listener);
}

/// The reference meaning of one condition, straight from libseccomp's definitions.
fn holds(op: &str, value: u64, value_two: u64, arg: u64, wide: bool) -> bool {
    let w = |v: u64| if wide { v } else { v & 0xffff_ffff };
    let (a, v) = (w(arg), w(value));
    match op {
        "SCMP_CMP_EQ" => a == v,
        "SCMP_CMP_NE" => a != v,
        "SCMP_CMP_LT" => a < v,
        "SCMP_CMP_LE" => a <= v,
        "SCMP_CMP_GT" => a > v,
        "SCMP_CMP_GE" => a >= v,
        "SCMP_CMP_MASKED_EQ" => a & v == w(value_two) & v,
        _ => unreachable!(),
    }
}

const INTERESTING: [u64; 12] = [
    0,
    1,
    5,
    6,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0004,
    0x1_0000_0005,
    0x1_0000_0006,
    0x2_0000_0000,
    0x8000_0000_0000_0005,
    u64::MAX,
];

#[test]
fn every_operator_on_64_and_32_bit_abis() {
    let ops = [
        "SCMP_CMP_EQ",
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_GT",
        "SCMP_CMP_GE",
        "SCMP_CMP_MASKED_EQ",
    ];
    let pairs = [
        (0x1_0000_0005, 0),
        (0xff00_0000_0000_00f0, 0x1200_0000_0000_0035),
        (1, 3),
        (0, 7),
    ];
    for op in ops {
        for (value, value_two) in pairs {
            let p = build(&format!(
                r#"{{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
                    "syscalls": [{{"names": ["getpid"], "action": "SCMP_ACT_ERRNO",
                    "args": [{{"index": 2, "value": {value}, "valueTwo": {value_two}, "op": "{op}"}}]}}]}}"#
            ));
            for arg in INTERESTING
                .into_iter()
                .chain([0x12ab_0000_0000_0035, 0x1200_0000_0000_0045])
            {
                for (abi, wide) in [(Abi::X86_64, true), (Abi::X86, false)] {
                    // i386 arguments are 32-bit registers, zero-extended in seccomp_data.
                    let arg = if wide { arg } else { arg & 0xffff_ffff };
                    let want = if holds(op, value, value_two, arg, wide) {
                        EPERM
                    } else {
                        ALLOW
                    };
                    let got = action_of(&p, abi, nr(abi, "getpid"), &[0, 0, arg]);
                    assert_eq!(
                        got, want,
                        "{op} {value:#x}/{value_two:#x} arg {arg:#x} on {abi:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn x32_compares_low_words_like_libseccomp() {
    let p = build(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X32"],
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 4294967301, "op": "SCMP_CMP_EQ"}]}]}"#,
    );
    // 0x1_0000_0005 narrows to 5 for a 32-bit ABI, on x86_64 it stays 64-bit.
    assert_eq!(action_of(&p, Abi::X32, nr(Abi::X32, "getpid"), &[5]), EPERM);
    assert_eq!(
        action_of(&p, Abi::X86_64, nr(Abi::X86_64, "getpid"), &[5]),
        ALLOW
    );
    assert_eq!(
        action_of(&p, Abi::X86_64, nr(Abi::X86_64, "getpid"), &[0x1_0000_0005]),
        EPERM
    );
}

#[test]
fn conditions_of_a_rule_are_anded_rules_are_ored() {
    let p = build(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "args": [
                {"index": 0, "value": 7, "op": "SCMP_CMP_EQ"}]}]}"#,
    );
    assert_eq!(x64(&p, "getpid", &[1, 2]), EPERM);
    assert_eq!(x64(&p, "getpid", &[1, 3]), ALLOW);
    assert_eq!(x64(&p, "getpid", &[2, 2]), ALLOW);
    assert_eq!(x64(&p, "getpid", &[7, 9]), EPERM);
}

#[test]
fn conditions_on_the_same_argument_become_separate_rules() {
    // runc splits them, so this reads "arg0 == 1 OR arg0 == 2 OR arg1 == 9".
    let p = build(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]}]}"#,
    );
    assert_eq!(x64(&p, "getpid", &[1, 0]), EPERM);
    assert_eq!(x64(&p, "getpid", &[2, 0]), EPERM);
    assert_eq!(x64(&p, "getpid", &[3, 9]), EPERM);
    assert_eq!(x64(&p, "getpid", &[3, 0]), ALLOW);
}

#[test]
fn unconditional_rule_wins_over_conditional_ones_in_either_order() {
    for (first, second) in [(0, 1), (1, 0)] {
        let rules = [
            r#"{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22}"#,
            r#"{"names": ["getpid"], "action": "SCMP_ACT_TRAP",
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}"#,
        ];
        let p = build(&format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{}, {}]}}"#,
            rules[first], rules[second]
        ));
        assert_eq!(x64(&p, "getpid", &[1]), SECCOMP_RET_ERRNO | 22);
        assert_eq!(x64(&p, "getpid", &[0]), SECCOMP_RET_ERRNO | 22);
    }
}

#[test]
fn first_unconditional_rule_wins_and_conditionals_go_in_profile_order() {
    let p = build(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 6},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_GT"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2,
             "args": [{"index": 0, "value": 100, "op": "SCMP_CMP_GT"}]}]}"#,
    );
    assert_eq!(x64(&p, "getpid", &[]), SECCOMP_RET_ERRNO | 5);
    assert_eq!(x64(&p, "getppid", &[1000]), SECCOMP_RET_ERRNO | 1);
    assert_eq!(x64(&p, "getppid", &[11]), SECCOMP_RET_ERRNO | 1);
    assert_eq!(x64(&p, "getppid", &[10]), ALLOW);
}

#[test]
fn rule_with_the_default_action_does_not_shadow_conditional_rules() {
    let p = build(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#,
    );
    assert_eq!(x64(&p, "personality", &[0]), ALLOW);
    assert_eq!(x64(&p, "personality", &[8]), EPERM);
}

#[test]
fn masked_eq_with_empty_mask_makes_the_rule_unconditional() {
    let p = build(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_TRAP",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 0, "valueTwo": 5, "op": "SCMP_CMP_MASKED_EQ"}]}]}"#,
    );
    assert_eq!(x64(&p, "getpid", &[1]), EPERM);
    assert_eq!(x64(&p, "getpid", &[2]), EPERM);
}

#[test]
fn arch_dispatch_with_all_three_abis() {
    let p = build(
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"],
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]}"#,
    );
    for abi in Abi::ALL {
        assert_eq!(action_of(&p, abi, nr(abi, "getpid"), &[]), EPERM, "{abi:?}");
        assert_eq!(action_of(&p, abi, nr(abi, "read"), &[]), ALLOW, "{abi:?}");
    }
    // i386 getpid is 20, x86_64 20 is writev: numbers are per ABI.
    assert_eq!(action_of(&p, Abi::X86_64, 20, &[]), ALLOW);
    let aarch64 = Call {
        nr: 172,
        arch: 0xc000_00b7,
        ..Call::default()
    };
    assert_eq!(run(&p.filter, &aarch64).unwrap(), KILL_THREAD);
}

#[test]
fn unlisted_abis_get_the_bad_arch_action() {
    for arches in [r#"["SCMP_ARCH_X86_64"]"#, "[]"] {
        let p = build(&format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", "architectures": {arches},
                "syscalls": [{{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}}]}}"#
        ));
        assert_eq!(x64(&p, "getpid", &[]), EPERM);
        assert_eq!(
            action_of(&p, Abi::X86, nr(Abi::X86, "read"), &[]),
            KILL_THREAD
        );
        assert_eq!(
            action_of(&p, Abi::X32, nr(Abi::X32, "read"), &[]),
            KILL_THREAD
        );
        assert_eq!(
            action_of(&p, Abi::X32, X32_SYSCALL_BIT | 39, &[]),
            KILL_THREAD
        );
        // nr -1 (a tracer skipping the syscall) is not a foreign ABI.
        assert_eq!(action_of(&p, Abi::X86_64, u32::MAX, &[]), ALLOW);
        // libseccomp's x86_64 filter: any nr >= 0x4000_0000 is x32, bit 30 or not.
        assert_eq!(action_of(&p, Abi::X86_64, 0x8000_0000, &[]), KILL_THREAD);
    }
    // With x32 listed, such numbers are just unknown syscalls.
    let p = build(r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X32"]}"#);
    assert_eq!(action_of(&p, Abi::X86_64, 0x8000_0000, &[]), ALLOW);
}

#[test]
fn enosys_above_the_highest_syscall_the_profile_names() {
    let p = build(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["read", "clone3"], "action": "SCMP_ACT_ALLOW"},
                         {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]}"#,
    );
    for abi in Abi::ALL {
        let clone3 = nr(abi, "clone3");
        assert_eq!(action_of(&p, abi, clone3, &[]), ALLOW);
        assert_eq!(action_of(&p, abi, clone3 + 1, &[]), ENOSYS, "{abi:?}");
        assert_eq!(action_of(&p, abi, clone3 + 1000, &[]), ENOSYS, "{abi:?}");
        assert_eq!(action_of(&p, abi, nr(abi, "write"), &[]), EPERM);
    }
    // x32's own numbers 512..=547 lie above clone3 there.
    assert_eq!(
        action_of(&p, Abi::X32, nr(Abi::X32, "rt_sigaction"), &[]),
        ENOSYS
    );
    // The stub tests bit 30 only; 0x8000_0000 is above every x86_64 number.
    assert_eq!(action_of(&p, Abi::X86_64, 0x8000_0000, &[]), ENOSYS);

    // i386 socket calls count as socketcall (102) for the limit, as libseccomp resolves them
    // for runc, so a direct connect (362) above the limit answers ENOSYS and libc falls back
    // to socketcall, where the rule applies.
    let p = build(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"], "syscalls": [
            {"names": ["connect", "read"], "action": "SCMP_ACT_ALLOW"}]}"#,
    );
    assert_eq!(
        action_of(&p, Abi::X86, nr(Abi::X86, "connect"), &[]),
        ENOSYS
    );
    assert_eq!(
        action_of(&p, Abi::X86, nr(Abi::X86, "socketcall"), &[3]),
        ALLOW
    );
    assert_eq!(
        action_of(&p, Abi::X86, nr(Abi::X86, "socketcall"), &[1]),
        EPERM
    );
    assert_eq!(action_of(&p, Abi::X86, 103, &[]), ENOSYS);

    // Rules dropped for having the default action still count (runc findLastSyscalls).
    let p = build(
        r#"{"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["futex_waitv"], "action": "SCMP_ACT_KILL_PROCESS"}]}"#,
    );
    assert_eq!(
        action_of(&p, Abi::X86_64, 449, &[]),
        SECCOMP_RET_KILL_PROCESS
    );
    assert_eq!(
        action_of(&p, Abi::X86_64, 448, &[]),
        SECCOMP_RET_KILL_PROCESS
    );
    assert_eq!(action_of(&p, Abi::X86_64, 450, &[]), ENOSYS);
}

#[test]
fn no_enosys_stub_when_the_default_lets_calls_through() {
    for (default, want) in [
        ("SCMP_ACT_ALLOW", ALLOW),
        ("SCMP_ACT_LOG", SECCOMP_RET_LOG),
        ("SCMP_ACT_TRACE", SECCOMP_RET_TRACE | 1),
    ] {
        let p = build(&format!(
            r#"{{"defaultAction": "{default}",
                "syscalls": [{{"names": ["read"], "action": "SCMP_ACT_KILL"}}]}}"#
        ));
        assert_eq!(action_of(&p, Abi::X86_64, 500, &[]), want, "{default}");
        assert_eq!(x64(&p, "read", &[]), KILL_THREAD);
    }
}

#[test]
fn unknown_syscall_names_are_skipped() {
    let p = build(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["no_such_syscall", "getpid", "chown32"], "action": "SCMP_ACT_ERRNO"}]}"#,
    );
    assert_eq!(x64(&p, "getpid", &[]), EPERM);
    assert_eq!(x64(&p, "read", &[]), ALLOW);
}

#[test]
fn i386_socket_calls_are_also_matched_through_socketcall() {
    let p = build(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"], "syscalls": [
            {"names": ["socket", "recv"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["shmat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    );
    let socketcall = nr(Abi::X86, "socketcall");
    assert_eq!(action_of(&p, Abi::X86, socketcall, &[1]), EPERM); // SYS_SOCKET
    assert_eq!(action_of(&p, Abi::X86, socketcall, &[10]), EPERM); // SYS_RECV
    assert_eq!(action_of(&p, Abi::X86, socketcall, &[3]), ALLOW); // SYS_CONNECT
    assert_eq!(action_of(&p, Abi::X86, nr(Abi::X86, "socket"), &[]), EPERM);
    assert_eq!(
        action_of(&p, Abi::X86, nr(Abi::X86, "ipc"), &[21]),
        SECCOMP_RET_ERRNO | 13
    );
    assert_eq!(action_of(&p, Abi::X86, nr(Abi::X86, "ipc"), &[22]), ALLOW);
    assert_eq!(x64(&p, "socket", &[]), EPERM);
}

#[test]
fn flags() {
    let p = build(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_TSYNC",
            "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#,
    );
    assert_eq!(p.flags, (1 << 1) | (1 << 2));
    let p = build(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "listenerPath": "/a", "syscalls": [{"names": ["sync"], "action": "SCMP_ACT_NOTIFY"}]}"#,
    );
    assert_eq!(p.flags, 1 << 5);
    assert!(p.needs_listener);
}
