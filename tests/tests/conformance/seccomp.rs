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
            "seccomp::notify_hands_the_listener_to_the_agent",
            notify_agent,
        ),
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

/// SCMP_ACT_NOTIFY: the runtime connects to listenerPath and sends the
/// listener fd with the container process state; our agent answers the
/// intercepted syscall with EXDEV, which the process must see.
fn notify_agent(ctx: &Ctx) -> TestResult {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path)?;
    let agent = std::thread::spawn(move || -> Result<(Value, u32), String> {
        // A runtime that never connects must fail the test, not hang it.
        let mut p = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 10_000) } <= 0 {
            return Err("the runtime never connected to listenerPath".into());
        }
        let (conn, _) = listener.accept().map_err(|e| e.to_string())?;
        let (state, fd) = agent::recv_fd(conn.as_raw_fd())?;
        // SAFETY: the kernel installed fd in our table for us.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let state: Value = serde_json::from_slice(&state).map_err(|e| e.to_string())?;
        let answered = agent::answer_all(fd.as_raw_fd(), libc::EXDEV);
        Ok((state, answered))
    });
    let mut filter = seccomp(
        SeccompAction::Allow,
        vec![rule(&["getpgid"], SeccompAction::Notify, None)],
    );
    filter.listener_path = Some(path.display().to_string());
    filter.listener_metadata = Some("berth-test".into());
    let mut bundle = ctx.bundle()?;
    bundle.linux().seccomp = Some(filter);
    let lines = ctx.probe(&mut bundle, &["syscall", "getpgid", "0"])?;
    let (state, answered) = agent
        .join()
        .map_err(|_| "agent thread panicked".to_string())??;
    ensure!(
        lines[0]["errno"] == libc::EXDEV,
        "the agent's answer did not reach the process: {}",
        lines[0]
    );
    ensure!(answered >= 1, "the agent got no notification");
    ensure!(
        state["fds"] == serde_json::json!(["seccompFd"]) && state["metadata"] == "berth-test",
        "container process state: {state}"
    );
    ensure!(
        state["state"]["bundle"] == bundle.dir.display().to_string()
            && state["pid"].as_i64() > Some(0),
        "container process state: {state}"
    );
    Ok(())
}

mod agent {
    //! A minimal seccomp agent: receive the listener fd, answer every
    //! notification with an errno until the filter goes away.
    use std::os::fd::RawFd;

    #[repr(C)]
    struct SeccompData {
        nr: i32,
        arch: u32,
        ip: u64,
        args: [u64; 6],
    }

    #[repr(C)]
    struct Notif {
        id: u64,
        pid: u32,
        flags: u32,
        data: SeccompData,
    }

    #[repr(C)]
    struct Resp {
        id: u64,
        val: i64,
        error: i32,
        flags: u32,
    }

    const NOTIF_RECV: libc::c_ulong = 0xc050_2100;
    const NOTIF_SEND: libc::c_ulong = 0xc018_2101;

    /// Receives a message with one fd attached.
    pub fn recv_fd(sock: RawFd) -> Result<(Vec<u8>, RawFd), String> {
        let mut data = vec![0u8; 65536];
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr().cast(),
            iov_len: data.len(),
        };
        let mut cbuf = [0u64; 8];
        // SAFETY: zeroed msghdr is valid; pointers outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        // SAFETY: msg is initialised.
        let n = unsafe { libc::recvmsg(sock, &mut msg, 0) };
        if n < 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        // SAFETY: walking the control buffer the kernel filled.
        let fd = unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
                return Err("no fd attached".into());
            }
            std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>())
        };
        data.truncate(n as usize);
        Ok((data, fd))
    }

    /// Answers notifications with `-errno` until the listener reports the
    /// filter is gone (or 10 s pass); returns how many it answered.
    pub fn answer_all(fd: RawFd, errno: i32) -> u32 {
        let mut answered = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut p, 1, 100) } <= 0 {
                continue;
            }
            if p.revents & libc::POLLHUP != 0 {
                break;
            }
            // SAFETY: zeroed notif is what NOTIF_RECV expects.
            let mut n: Notif = unsafe { std::mem::zeroed() };
            // SAFETY: n is a valid seccomp_notif.
            if unsafe { libc::ioctl(fd, NOTIF_RECV, &mut n) } != 0 {
                break;
            }
            let r = Resp {
                id: n.id,
                val: 0,
                error: -errno,
                flags: 0,
            };
            // SAFETY: r is a valid seccomp_notif_resp.
            if unsafe { libc::ioctl(fd, NOTIF_SEND, &r) } == 0 {
                answered += 1;
            }
        }
        answered
    }
}
