//! Random profiles run through the compiled filter and through a direct reading of the
//! documented semantics (x86_64 ABI), which must agree on every call tried.

use super::arch::Abi;
use super::tests::{action_of, build, nr, ENOSYS};
use crate::spec::{Seccomp, SeccompAction, SeccompOperator, SyscallArg};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const NAMES: [&str; 10] = [
    "read",
    "write",
    "getpid",
    "getppid",
    "personality",
    "mmap",
    "close",
    "futex_waitv",
    "chown32",
    "nosuchcall",
];
const VALUES: [u64; 10] = [
    0,
    1,
    5,
    0xf0,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0005,
    0xff00_0000_0000_00f0,
    0x1200_0000_0000_0035,
    u64::MAX,
];
const OPS: [&str; 7] = [
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];
const ACTIONS: [&str; 7] = [
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_LOG",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_KILL_PROCESS",
];

fn action_json(rng: &mut Rng) -> String {
    let action = rng.pick(&ACTIONS);
    let errno = match (action, rng.next() % 3) {
        ("SCMP_ACT_ERRNO" | "SCMP_ACT_TRACE", 0) => r#", "errnoRet": 22"#,
        _ => "",
    };
    format!(r#""action": "{action}"{errno}"#)
}

fn random_profile(rng: &mut Rng) -> String {
    let mut rules = Vec::new();
    for _ in 0..1 + rng.next() % 7 {
        let names: Vec<String> = (0..1 + rng.next() % 3)
            .map(|_| format!("{:?}", rng.pick(&NAMES)))
            .collect();
        let args: Vec<String> = (0..rng.next() % 4)
            .map(|_| {
                format!(
                    r#"{{"index": {}, "value": {}, "valueTwo": {}, "op": "{}"}}"#,
                    rng.next() % 3,
                    rng.pick(&VALUES),
                    rng.pick(&VALUES),
                    rng.pick(&OPS)
                )
            })
            .collect();
        rules.push(format!(
            r#"{{"names": [{}], {}, "args": [{}]}}"#,
            names.join(","),
            action_json(rng),
            args.join(",")
        ));
    }
    let default = action_json(rng)
        .replace("action", "defaultAction")
        .replace("errnoRet", "defaultErrnoRet");
    format!(r#"{{{default}, "syscalls": [{}]}}"#, rules.join(","))
}

fn value(action: SeccompAction, errno: Option<u32>) -> u32 {
    use super::bpf::*;
    let data = errno.unwrap_or(1);
    match action {
        SeccompAction::Kill | SeccompAction::KillThread => SECCOMP_RET_KILL_THREAD,
        SeccompAction::KillProcess => SECCOMP_RET_KILL_PROCESS,
        SeccompAction::Trap => SECCOMP_RET_TRAP,
        SeccompAction::Errno => SECCOMP_RET_ERRNO | data,
        SeccompAction::Trace => SECCOMP_RET_TRACE | data,
        SeccompAction::Allow => SECCOMP_RET_ALLOW,
        SeccompAction::Log => SECCOMP_RET_LOG,
        SeccompAction::Notify => SECCOMP_RET_USER_NOTIF,
    }
}

fn holds(a: &SyscallArg, arg: u64) -> bool {
    match a.op {
        SeccompOperator::Equal => arg == a.value,
        SeccompOperator::NotEqual => arg != a.value,
        SeccompOperator::LessThan => arg < a.value,
        SeccompOperator::LessOrEqual => arg <= a.value,
        SeccompOperator::GreaterThan => arg > a.value,
        SeccompOperator::GreaterOrEqual => arg >= a.value,
        SeccompOperator::MaskedEqual => arg & a.value == a.value_two & a.value,
    }
}

/// The documented semantics for an x86_64 call, evaluated directly on the profile.
fn reference(cfg: &Seccomp, call_nr: u32, args: &[u64; 6]) -> u32 {
    let default = value(cfg.default_action, cfg.default_errno_ret);
    let numbers = |names: &[String]| -> Vec<u32> {
        names.iter().filter_map(|n| Abi::X86_64.lookup(n)).collect()
    };
    let highest = cfg.syscalls.iter().flat_map(|s| numbers(&s.names)).max();
    let stub = !matches!(
        cfg.default_action,
        SeccompAction::Allow | SeccompAction::Log | SeccompAction::Trace
    );
    if stub && highest.is_some_and(|h| call_nr > h) {
        return ENOSYS;
    }
    let mut unconditional = None;
    let mut conditional = None;
    for s in &cfg.syscalls {
        let action = value(s.action, s.errno_ret);
        if action == default || !numbers(&s.names).contains(&call_nr) {
            continue;
        }
        let mut indices: Vec<u32> = s.args.iter().map(|a| a.index).collect();
        indices.sort();
        indices.dedup();
        let groups: Vec<Vec<SyscallArg>> = if indices.len() < s.args.len() {
            s.args.iter().map(|a| vec![*a]).collect()
        } else {
            vec![s.args.clone()]
        };
        for group in groups {
            let real: Vec<_> = group
                .iter()
                .filter(|a| !(a.op == SeccompOperator::MaskedEqual && a.value == 0))
                .collect();
            if real.is_empty() {
                unconditional = unconditional.or(Some(action));
            } else if conditional.is_none() && real.iter().all(|a| holds(a, args[a.index as usize]))
            {
                conditional = Some(action);
            }
        }
    }
    unconditional.or(conditional).unwrap_or(default)
}

#[test]
fn random_profiles_match_the_reference_semantics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
        let json = random_profile(&mut rng);
        let cfg: Seccomp = serde_json::from_str(&json).unwrap();
        let program = build(&json);
        let mut calls: Vec<u32> = NAMES.iter().filter_map(|n| Abi::X86_64.lookup(n)).collect();
        calls.extend([nr(Abi::X86_64, "open"), 448, 450, 1000, 0x3fff_ffff]);
        for call_nr in calls {
            for _ in 0..20 {
                let args = [0; 6].map(|_: u64| {
                    rng.pick(&VALUES)
                        .wrapping_add(rng.next() % 3)
                        .wrapping_sub(1)
                });
                let want = reference(&cfg, call_nr, &args);
                let got = action_of(&program, Abi::X86_64, call_nr, &args);
                assert_eq!(
                    got, want,
                    "round {round}, nr {call_nr}, args {args:x?}\n{json}"
                );
            }
        }
    }
}
