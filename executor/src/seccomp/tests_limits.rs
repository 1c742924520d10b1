//! Error messages and the instruction budget: JSON paths in errors, long jumps in big
//! programs, and the 4096-instruction limit.

use super::arch::Abi;
use super::bpf::*;
use super::tests::{action_of, build, nr, parse, ALLOW};
use super::{compile, SeccompError};

fn compile_err(json: &str) -> String {
    compile(&parse(json)).unwrap_err().to_string()
}

fn x64(p: &super::Program, name: &str, args: &[u64]) -> u32 {
    action_of(p, Abi::X86_64, nr(Abi::X86_64, name), args)
}

#[test]
fn errors_name_the_json_path() {
    let cases = [
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["a"], "action": "SCMP_ACT_ERRNO"}, {"names": ["b"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["c"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
            "linux.seccomp.syscalls[3].args[1].index: 6 is out of range 0..=5",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_FOO"]}"#,
            r#"linux.seccomp.architectures[2]: unknown architecture "SCMP_ARCH_FOO""#,
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FOO"]}"#,
            r#"linux.seccomp.flags[0]: unknown flag "SECCOMP_FILTER_FLAG_FOO""#,
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}"#,
            "linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_KILL takes no errno value, only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}"#,
            "linux.seccomp.defaultErrnoRet: 70000 is out of range 0..=65535",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/a"}"#,
            "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a", "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}]}"#,
            "linux.seccomp.syscalls[0].names[1]: SCMP_ACT_NOTIFY cannot be used for write: the runtime must write after loading the filter, before the agent has the listener",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}"#,
            "linux.seccomp.listenerPath: must be set when SCMP_ACT_NOTIFY is used",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"}"#,
            "linux.seccomp.listenerMetadata: must not be set without listenerPath",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read", ""], "action": "SCMP_ACT_KILL"}]}"#,
            "linux.seccomp.syscalls[0].names[1]: empty syscall name",
        ),
    ];
    for (json, want) in cases {
        assert_eq!(compile_err(json), want);
    }
}

fn many_conditional_rules(n: usize) -> String {
    let rules: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": {},
                    "args": [{{"index": 0, "value": {}, "op": "SCMP_CMP_EQ"}}]}}"#,
                i % 4000 + 1,
                i * 3
            )
        })
        .collect();
    format!(
        r#"{{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"], "syscalls": [{}]}}"#,
        rules.join(",")
    )
}

#[test]
fn long_programs_use_long_jumps_and_stay_correct() {
    let p = build(&many_conditional_rules(400));
    assert!(p.filter.len() > 1000, "{}", p.filter.len());
    assert!(p.filter.iter().any(|i| i.code == BPF_JMP | BPF_JA));
    for i in [0u64, 1, 199, 398, 399] {
        let want = SECCOMP_RET_ERRNO | (i as u32 + 1);
        assert_eq!(x64(&p, "getpid", &[i * 3]), want);
        assert_eq!(
            action_of(&p, Abi::X86, nr(Abi::X86, "getpid"), &[i * 3]),
            want
        );
        assert_eq!(x64(&p, "getpid", &[i * 3 + 1]), ALLOW);
    }
    assert_eq!(x64(&p, "read", &[]), ALLOW);
}

#[test]
fn too_many_instructions_is_an_error() {
    let err = compile(&parse(&many_conditional_rules(2000))).unwrap_err();
    assert!(matches!(err, SeccompError::TooManyInstructions { needed } if needed > 4096));
    let msg = err.to_string();
    assert!(msg.starts_with("linux.seccomp: filter needs "), "{msg}");
    assert!(
        msg.ends_with(" instructions, the kernel allows 4096"),
        "{msg}"
    );
}
