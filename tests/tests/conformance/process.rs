//! The process: args, env, cwd, user ids and groups, umask, HOME, rlimits,
//! the five capability sets, no_new_privileges, oom_score_adj, hostname and
//! domainname, sysctl, terminal via a console socket and --preserve-fds.

use std::io::{Seek, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use berth_executor::spec::{Capabilities, ConsoleSize, Rlimit, Scheduler, User};
use berth_tests::console::{self, ConsoleSocket};
use berth_tests::leaks;
use berth_tests::runtime::{CreateOptions, Io, Kind};
use serde_json::{json, Value};

use crate::support::{parse_lines, strings, Ctx, TestResult};
use crate::{ensure, Case};

pub fn cases() -> Vec<Case> {
    vec![
        Case::new("process::args_env_cwd", args_env_cwd),
        Case::new("process::user_ids_groups_and_umask", user_ids),
        Case::new("process::home_defaults_from_passwd", home_default),
        Case::new("process::rlimits", rlimits),
        Case::new("process::capabilities_all_five_sets", capabilities),
        Case::new("process::unknown_capability_is_skipped", unknown_capability),
        Case::new("process::no_new_privileges", no_new_privileges),
        Case::new("process::oom_score_adj", oom_score_adj),
        Case::new("process::scheduler_policy_nice_and_flags", scheduler).skip(&[
            (
                Kind::Runc,
                "runc 1.1.5 ignores process.scheduler (runtime-spec 1.2; runc 1.2 and later set it)",
            ),
            (
                Kind::Crun,
                "crun 1.8.1 ignores process.scheduler (runtime-spec 1.2)",
            ),
        ]),
        Case::new("process::hostname", hostname),
        Case::new("process::domainname", domainname).skip(&[(
            Kind::Runc,
            "runc 1.1.5 ignores domainname (a runtime-spec 1.1 field, set by runc 1.2 and later)",
        )]),
        Case::new("process::sysctl", sysctl),
        Case::new("process::terminal_via_console_socket", terminal),
        Case::new(
            "process::preserve_fds_passes_fd_3_and_nothing_else",
            preserve_fds,
        ),
    ]
}

fn env_of(report: &Value) -> Vec<String> {
    report["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

fn args_env_cwd(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.process().env = strings(&["PATH=/bin:/usr/bin", "FOO=bar baz", "EMPTY=", "HOME=/tmp"]);
    bundle.process().cwd = "/home/berth".into();
    let report = ctx.probe(&mut bundle, &["report"])?.remove(0);
    ensure!(
        report["args"] == json!(["/berth-probe", "report"]),
        "args: {}",
        report["args"]
    );
    let mut env = env_of(&report);
    env.sort();
    let want = ["EMPTY=", "FOO=bar baz", "HOME=/tmp", "PATH=/bin:/usr/bin"];
    ensure!(env == want, "env is {env:?}, expected exactly {want:?}");
    ensure!(report["cwd"] == "/home/berth", "cwd: {}", report["cwd"]);
    Ok(())
}

fn user_ids(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.set_readonly(false);
    bundle.process().user = User {
        uid: 1000,
        gid: 1000,
        umask: Some(0o027),
        additional_gids: vec![5, 100],
        username: None,
    };
    let lines = ctx.probe(&mut bundle, &["report", "+", "write", "/tmp/made-by-berth"])?;
    let r = &lines[0];
    for key in ["uid", "euid", "gid", "egid"] {
        ensure!(r[key] == 1000, "{key} = {}", r[key]);
    }
    let mut groups: Vec<u64> = r["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect();
    groups.sort();
    ensure!(
        groups == [5, 100],
        "supplementary groups {groups:?}, expected [5, 100]"
    );
    ensure!(
        r["umask"] == 0o027,
        "umask {:o}",
        r["umask"].as_u64().unwrap_or(0)
    );
    ensure!(
        lines[1]["errno"] == 0,
        "write /tmp as uid 1000: {}",
        lines[1]
    );
    let meta = std::fs::metadata(bundle.host_path("/tmp/made-by-berth"))?;
    ensure!(
        meta.mode() & 0o777 == 0o640,
        "file mode {:o} ignores the umask",
        meta.mode() & 0o777
    );
    ensure!(
        meta.uid() == 1000 && meta.gid() == 1000,
        "file owned by {}:{}",
        meta.uid(),
        meta.gid()
    );
    Ok(())
}

fn home_default(ctx: &Ctx) -> TestResult {
    for (uid, home) in [(1000, "/home/berth"), (0, "/root")] {
        let mut bundle = ctx.bundle()?;
        bundle.process().env = strings(&["PATH=/bin"]);
        bundle.process().user.uid = uid;
        bundle.process().user.gid = uid;
        let report = ctx.probe(&mut bundle, &["report"])?.remove(0);
        let env = env_of(&report);
        ensure!(
            env.contains(&format!("HOME={home}")),
            "uid {uid} without HOME in env: {env:?}, expected HOME={home} from /etc/passwd"
        );
    }
    Ok(())
}

fn rlimits(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let limits = [
        ("RLIMIT_NOFILE", 512, 1024),
        ("RLIMIT_CORE", 0, 4096),
        ("RLIMIT_NPROC", 2000, 3000),
        ("RLIMIT_MSGQUEUE", 4096, 8192),
    ];
    bundle.process().rlimits = limits
        .iter()
        .map(|(typ, soft, hard)| Rlimit {
            typ: typ.to_string(),
            soft: *soft,
            hard: *hard,
        })
        .collect();
    let report = ctx.report(&mut bundle)?;
    for (typ, soft, hard) in limits {
        let got = &report["rlimits"][typ];
        ensure!(
            got == &json!([soft, hard]),
            "{typ} = {got}, expected [{soft}, {hard}]"
        );
    }
    Ok(())
}

const CAP_NUMBERS: [(&str, u32); 8] = [
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_RAW", 13),
    ("CAP_AUDIT_WRITE", 29),
];

/// The /proc/self/status hex mask of capability names.
fn mask(names: &[&str]) -> String {
    let bits = names
        .iter()
        .filter_map(|n| CAP_NUMBERS.iter().find(|(name, _)| name == n))
        .fold(0u64, |m, (_, bit)| m | 1 << bit);
    format!("{bits:016x}")
}

fn caps(b: &[&str], e: &[&str], p: &[&str], i: &[&str], a: &[&str]) -> Capabilities {
    Capabilities {
        bounding: Some(strings(b)),
        effective: Some(strings(e)),
        permitted: Some(strings(p)),
        inheritable: Some(strings(i)),
        ambient: Some(strings(a)),
    }
}

fn check_caps(report: &Value, want: [(&str, &[&str]); 5]) -> TestResult {
    for (set, names) in want {
        let got = report["caps"][set].as_str().unwrap_or("");
        ensure!(
            got == mask(names),
            "{set} = {got}, expected {} ({names:?})",
            mask(names)
        );
    }
    Ok(())
}

fn capabilities(ctx: &Ctx) -> TestResult {
    let all: &[&str] = &[
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETUID",
    ];
    let inh: &[&str] = &["CAP_NET_BIND_SERVICE"];
    // Root: exec keeps the bounding set as permitted and effective.
    let mut bundle = ctx.bundle()?;
    bundle.process().capabilities = Some(caps(all, all, all, inh, inh));
    let report = ctx.report(&mut bundle)?;
    check_caps(
        &report,
        [
            ("bounding", all),
            ("effective", all),
            ("permitted", all),
            ("inheritable", inh),
            ("ambient", inh),
        ],
    )?;
    // Not root: only the ambient set survives exec into permitted and effective.
    let amb: &[&str] = &["CAP_KILL", "CAP_NET_BIND_SERVICE"];
    bundle.process().user.uid = 1000;
    bundle.process().user.gid = 1000;
    bundle.process().capabilities = Some(caps(all, amb, amb, amb, amb));
    let report = ctx.report(&mut bundle)?;
    check_caps(
        &report,
        [
            ("bounding", all),
            ("effective", amb),
            ("permitted", amb),
            ("inheritable", amb),
            ("ambient", amb),
        ],
    )
}

fn unknown_capability(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let known: &[&str] = &["CAP_CHOWN", "CAP_KILL"];
    let with_bogus: &[&str] = &["CAP_CHOWN", "CAP_BERTH_NO_SUCH_CAP", "CAP_KILL"];
    bundle.process().capabilities = Some(caps(with_bogus, with_bogus, with_bogus, &[], &[]));
    bundle.set_args(&["/berth-probe"]);
    let out = ctx.run(&bundle)?;
    if ctx.is_berth() {
        ensure!(
            out.stderr.contains("CAP_BERTH_NO_SUCH_CAP"),
            "the unknown capability was not logged: {}",
            out.stderr
        );
    }
    let report = parse_lines(&out.stdout)?
        .into_iter()
        .next()
        .ok_or("no report")?;
    check_caps(
        &report,
        [
            ("bounding", known),
            ("effective", known),
            ("permitted", known),
            ("inheritable", &[]),
            ("ambient", &[]),
        ],
    )
}

fn no_new_privileges(ctx: &Ctx) -> TestResult {
    for nnp in [true, false] {
        let mut bundle = ctx.bundle()?;
        bundle.process().no_new_privileges = nnp;
        let report = ctx.report(&mut bundle)?;
        ensure!(
            report["no_new_privs"] == u32::from(nnp),
            "noNewPrivileges {nnp}: NoNewPrivs {}",
            report["no_new_privs"]
        );
    }
    Ok(())
}

fn scheduler(ctx: &Ctx) -> TestResult {
    const SCHED_BATCH: i64 = 3;
    const SCHED_RESET_ON_FORK: i64 = 0x4000_0000;
    let mut bundle = ctx.bundle()?;
    bundle.process().scheduler = Some(Scheduler {
        policy: "SCHED_BATCH".into(),
        nice: 5,
        flags: strings(&["SCHED_FLAG_RESET_ON_FORK"]),
        ..Default::default()
    });
    let report = ctx.report(&mut bundle)?;
    let sched = &report["sched"];
    ensure!(
        sched["policy"] == SCHED_BATCH | SCHED_RESET_ON_FORK && sched["nice"] == 5,
        "expected SCHED_BATCH|SCHED_RESET_ON_FORK with nice 5, the process has {sched}"
    );
    Ok(())
}

fn oom_score_adj(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.process().oom_score_adj = Some(500);
    let report = ctx.report(&mut bundle)?;
    ensure!(
        report["oom_score_adj"] == 500,
        "oom_score_adj {}",
        report["oom_score_adj"]
    );
    Ok(())
}

fn hostname(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.spec.hostname = Some("berth-host".into());
    let report = ctx.report(&mut bundle)?;
    ensure!(
        report["hostname"] == "berth-host",
        "hostname {}",
        report["hostname"]
    );
    Ok(())
}

fn domainname(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.spec.domainname = Some("berth.example".into());
    let report = ctx.report(&mut bundle)?;
    ensure!(
        report["domainname"] == "berth.example",
        "domainname {}",
        report["domainname"]
    );
    Ok(())
}

fn sysctl(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let want = [
        ("net.ipv4.ip_forward", "1"),
        ("net.core.somaxconn", "1234"),
        ("kernel.msgmax", "12345"),
    ];
    for (k, v) in want {
        bundle.linux().sysctl.insert(k.into(), v.into());
    }
    let mut args = Vec::new();
    for (k, _) in want {
        args.extend(["sysctl", k, "+"]);
    }
    args.pop();
    let lines = ctx.probe(&mut bundle, &args)?;
    for (i, (k, v)) in want.iter().enumerate() {
        ensure!(lines[i]["value"] == *v, "{k} = {}, expected {v}", lines[i]);
    }
    Ok(())
}

fn terminal(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.process().terminal = true;
    bundle.process().console_size = Some(ConsoleSize {
        height: 30,
        width: 100,
    });
    bundle.set_args(&["sh", "-c", "/berth-probe report; stty size"]);
    let socket = ConsoleSocket::new()?;
    let id = ctx.id();
    let before = ctx.snapshot(&bundle, &id);
    let opts = CreateOptions {
        console_socket: Some(socket.path.clone()),
        ..CreateOptions::default()
    };
    ctx.create_with(&bundle, &id, &opts)?;
    let checked = (|| -> TestResult {
        let master: OwnedFd = socket.receive(Duration::from_secs(10))?;
        let reader = console::spawn_reader(master, Duration::from_secs(20));
        ctx.rt.start(&id)?.ok("start")?;
        ctx.wait(&id, "stopped")?;
        let out = String::from_utf8_lossy(&reader.join().map_err(|_| "pty reader panicked")?)
            .into_owned();
        let report = parse_lines(&out)?
            .into_iter()
            .next()
            .ok_or_else(|| format!("no report on the pty: {out:?}"))?;
        ensure!(
            report["isatty"] == json!([true, true, true]),
            "stdio are not the terminal: {}",
            report["isatty"]
        );
        ensure!(
            out.contains("\n30 100"),
            "consoleSize not applied, stty size printed: {out:?}"
        );
        Ok(())
    })();
    ctx.destroy(&id);
    checked?;
    leaks::check_clean(&before)?;
    Ok(())
}

fn preserve_fds(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let mut file = tempfile::tempfile()?;
    file.write_all(b"payload through fd 3")?;
    file.rewind()?;
    bundle.set_args(&["/berth-probe", "read", "/proc/self/fd/3", "+", "fds"]);
    let opts = CreateOptions {
        preserve_fds: 1,
        ..CreateOptions::default()
    };
    let io = Io {
        fds: vec![OwnedFd::from(file)],
        ..Io::default()
    };
    let out = ctx.run_with(&bundle, &opts, io)?;
    let lines = parse_lines(&out.stdout)?;
    ensure!(
        lines[0]["data"] == "payload through fd 3",
        "fd 3 inside: {}",
        lines[0]
    );
    let fds: Vec<i64> = lines[1]["fds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["fd"].as_i64())
        .collect();
    ensure!(
        fds == [0, 1, 2, 3],
        "open fds {fds:?}, expected [0, 1, 2, 3]: {}",
        lines[1]
    );

    bundle.set_args(&["/berth-probe", "fds"]);
    let out = ctx.run(&bundle)?;
    let lines = parse_lines(&out.stdout)?;
    let fds: Vec<i64> = lines[0]["fds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["fd"].as_i64())
        .collect();
    ensure!(
        fds == [0, 1, 2],
        "without --preserve-fds the process has fds {fds:?}: {}",
        lines[0]
    );
    Ok(())
}
