//! seccomp, checked from inside with raw syscalls: defaultAction with
//! defaultErrnoRet, per-syscall actions, argument conditions (incl.
//! MASKED_EQ), architectures, unknown names, and loading without NNP.

use berth_executor::spec::{Seccomp, SeccompAction, SeccompOperator, Syscall, SyscallArg};
use berth_tests::runtime::Kind;
use berth_tests::Bundle;
use serde_json::Value;

use crate::support::{parse_lines, strings, Ctx, TestResult};
use crate::{ensure, Case};

pub fn cases() -> Vec<Case> {
    vec![
        Case::new("seccomp::default_action_with_errno_ret", default_action),
        Case::new("seccomp::per_syscall_actions", per_syscall_actions),
        Case::new("seccomp::argument_conditions", argument_conditions),
        Case::new(
            "seccomp::architectures_cover_compat_syscalls",
            architectures,
        ),
        Case::new("seccomp::unknown_syscall_name_is_skipped", unknown_syscall),
        Case::new(
            "seccomp::loaded_before_dropping_privileges_without_nnp",
            without_nnp,
        )
        .skip(&[(
            Kind::Runc,
            "Debian's runc 1.1.5 (CVE-2024-21626 backport) calls getcwd after loading the filter \
             when noNewPrivileges is false, so create fails when getcwd is blocked",
        )]),
    ]
}

/// What a process needs to start (runtime tail, exec, libc and Rust start-up).
const ALLOWED: &str = "access arch_prctl brk capget capset chdir clock_gettime clock_nanosleep \
    clone clone3 close close_range dup dup2 dup3 epoll_create1 epoll_ctl epoll_pwait epoll_wait \
    execve execveat exit exit_group faccessat faccessat2 fchdir fchmod fchown fcntl fstat fstatfs \
    futex getcwd getdents64 getegid geteuid getgid getgroups getpid getppid getrandom getrlimit \
    getsid gettid gettimeofday getuid ioctl kill lseek madvise mmap mprotect munmap nanosleep \
    newfstatat open openat openat2 pipe pipe2 poll ppoll prctl pread64 prlimit64 read readlink \
    readlinkat rseq rt_sigaction rt_sigprocmask rt_sigreturn sched_getaffinity sched_yield \
    set_robust_list set_tid_address setgid setgroups setresgid setresuid setuid sigaltstack \
    stat statx sysinfo tgkill umask uname wait4 write writev";

fn seccomp(default_action: SeccompAction, syscalls: Vec<Syscall>) -> Seccomp {
    Seccomp {
        default_action,
        architectures: strings(&["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
        syscalls,
        ..Default::default()
    }
}

fn rule(names: &[&str], action: SeccompAction, errno: Option<u32>) -> Syscall {
    Syscall {
        names: strings(names),
        action,
        errno_ret: errno,
        args: Vec::new(),
    }
}

fn arg(index: u32, value: u64, value_two: u64, op: SeccompOperator) -> SyscallArg {
    SyscallArg {
        index,
        value,
        value_two,
        op,
    }
}

/// Runs a shell script in a container whose filter is `filter` and returns
/// the JSON lines and the other lines it printed.
fn run_script(
    ctx: &Ctx,
    filter: Seccomp,
    script: &str,
) -> Result<(Vec<Value>, Vec<String>), libtest_mimic::Failed> {
    let mut bundle: Bundle = ctx.bundle()?;
    bundle.linux().seccomp = Some(filter);
    bundle.set_args(&["sh", "-c", script]);
    let out = ctx.run(&bundle)?;
    let other = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with('{'))
        .map(String::from)
        .collect();
    Ok((parse_lines(&out.stdout)?, other))
}

fn default_action(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let allowed: Vec<&str> = ALLOWED.split_whitespace().collect();
    let mut filter = seccomp(
        SeccompAction::Errno,
        vec![rule(&allowed, SeccompAction::Allow, None)],
    );
    filter.default_errno_ret = Some(libc::EOPNOTSUPP as u32);
    bundle.linux().seccomp = Some(filter);
    let lines = ctx.probe(
        &mut bundle,
        &[
            "syscall", "getpgid", "0", "+", "syscall", "getpid", "+", "report",
        ],
    )?;
    ensure!(
        lines[0]["errno"] == libc::EOPNOTSUPP,
        "a syscall outside the allow list: {}",
        lines[0]
    );
    ensure!(lines[1]["errno"] == 0, "an allowed syscall: {}", lines[1]);
    ensure!(
        lines[2]["seccomp"] == 2,
        "Seccomp mode {}",
        lines[2]["seccomp"]
    );
    Ok(())
}

fn per_syscall_actions(ctx: &Ctx) -> TestResult {
    let filter = seccomp(
        SeccompAction::Allow,
        vec![
            rule(&["getcwd"], SeccompAction::Errno, Some(libc::ENOMSG as u32)),
            rule(&["uname"], SeccompAction::Errno, None),
            rule(&["sethostname"], SeccompAction::Kill, None),
            rule(&["acct"], SeccompAction::Trap, None),
            rule(&["getppid"], SeccompAction::Log, None),
        ],
    );
    let script = "/berth-probe syscall getcwd + syscall uname + syscall getppid; \
                  /berth-probe syscall sethostname s:x 1; echo kill=$?; \
                  /berth-probe syscall acct 0; echo trap=$?";
    let (lines, other) = run_script(ctx, filter, script)?;
    ensure!(
        lines[0]["errno"] == libc::ENOMSG,
        "ERRNO with errnoRet: {}",
        lines[0]
    );
    ensure!(
        lines[1]["errno"] == libc::EPERM,
        "ERRNO without errnoRet must be EPERM: {}",
        lines[1]
    );
    ensure!(
        lines[2]["errno"] == 0 && lines[2]["ret"].as_i64() > Some(0),
        "LOG must allow: {}",
        lines[2]
    );
    ensure!(
        lines.len() == 3,
        "KILL or TRAP let the syscall return: {lines:?}"
    );
    let sigsys = format!("{}", 128 + libc::SIGSYS);
    ensure!(
        other.contains(&format!("kill={sigsys}")),
        "KILL did not end the process by SIGSYS: {other:?}"
    );
    ensure!(
        other.contains(&format!("trap={sigsys}")),
        "TRAP did not raise SIGSYS: {other:?}"
    );
    Ok(())
}

fn argument_conditions(ctx: &Ctx) -> TestResult {
    let with_args = |names: &[&str], errno: i32, args: Vec<SyscallArg>| Syscall {
        args,
        ..rule(names, SeccompAction::Errno, Some(errno as u32))
    };
    let filter = seccomp(
        SeccompAction::Allow,
        vec![
            with_args(
                &["personality"],
                71,
                vec![arg(0, 8, 0, SeccompOperator::Equal)],
            ),
            // MASKED_EQ: value is the mask, valueTwo the datum.
            with_args(
                &["unshare"],
                72,
                vec![arg(
                    0,
                    0x1000_0000,
                    0x1000_0000,
                    SeccompOperator::MaskedEqual,
                )],
            ),
            with_args(
                &["getpriority"],
                73,
                vec![arg(0, 1, 0, SeccompOperator::GreaterThan)],
            ),
            with_args(
                &["getpgid"],
                74,
                vec![arg(0, 0, 0, SeccompOperator::NotEqual)],
            ),
        ],
    );
    let script = "/berth-probe syscall personality 8 + syscall personality 0xffffffff \
                  + syscall unshare 0x10000000 + syscall unshare 0x30000000 + syscall unshare 0 \
                  + syscall getpriority 2 0 + syscall getpriority 0 0 \
                  + syscall getpgid 1 + syscall getpgid 0";
    let (l, _) = run_script(ctx, filter, script)?;
    let expect = [
        ("personality(8) [EQ 8]", 71),
        ("personality(query)", 0),
        ("unshare(CLONE_NEWUSER) [MASKED_EQ]", 72),
        ("unshare(CLONE_NEWUSER|CLONE_NEWPID) [MASKED_EQ]", 72),
        ("unshare(0)", 0),
        ("getpriority(2) [GT 1]", 73),
        ("getpriority(0)", 0),
        ("getpgid(1) [NE 0]", 74),
        ("getpgid(0)", 0),
    ];
    ensure!(l.len() == expect.len(), "probe printed {l:?}");
    for (i, (what, errno)) in expect.iter().enumerate() {
        ensure!(
            l[i]["errno"] == *errno,
            "{what}: errno {}, expected {errno}",
            l[i]["errno"]
        );
    }
    Ok(())
}

fn architectures(ctx: &Ctx) -> TestResult {
    let rules = vec![rule(&["getpid"], SeccompAction::Errno, Some(75))];
    let script = "/berth-probe syscall32 getpid; echo rc=$?";
    let (lines, _) = run_script(ctx, seccomp(SeccompAction::Allow, rules.clone()), script)?;
    ensure!(
        lines.first().is_some_and(|l| l["errno"] == 75),
        "i386 getpid with SCMP_ARCH_X86 listed: {lines:?}"
    );
    let mut native_only = seccomp(SeccompAction::Allow, rules);
    native_only.architectures = strings(&["SCMP_ARCH_X86_64"]);
    let (lines, other) = run_script(ctx, native_only, script)?;
    ensure!(
        !lines.iter().any(|l| l["errno"] == 75),
        "the rule applied to an architecture that is not listed: {lines:?} {other:?}"
    );
    Ok(())
}

fn unknown_syscall(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let rules = vec![rule(
        &["berth_no_such_syscall", "uname"],
        SeccompAction::Errno,
        Some(76),
    )];
    bundle.linux().seccomp = Some(seccomp(SeccompAction::Allow, rules));
    bundle.set_args(&["/berth-probe", "syscall", "uname"]);
    let out = ctx.run(&bundle)?;
    if ctx.is_berth() {
        ensure!(
            out.stderr.contains("berth_no_such_syscall"),
            "the unknown syscall was not logged: {}",
            out.stderr
        );
    }
    let lines = parse_lines(&out.stdout)?;
    ensure!(
        lines[0]["errno"] == 76,
        "the known name in a rule with an unknown one: {}",
        lines[0]
    );
    Ok(())
}

fn without_nnp(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.process().no_new_privileges = false;
    bundle.process().user.uid = 1000;
    bundle.process().user.gid = 1000;
    let rules = vec![rule(&["getcwd"], SeccompAction::Errno, None)];
    bundle.linux().seccomp = Some(seccomp(SeccompAction::Allow, rules));
    let lines = ctx.probe(&mut bundle, &["syscall", "getcwd", "+", "report"])?;
    ensure!(lines[0]["errno"] == libc::EPERM, "getcwd: {}", lines[0]);
    ensure!(
        lines[1]["no_new_privs"] == 0 && lines[1]["seccomp"] == 2,
        "NoNewPrivs/Seccomp: {}",
        lines[1]
    );
    Ok(())
}
