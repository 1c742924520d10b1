//! One function per subcommand; each maps the flags onto the library.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_executor::error::{Error, Result};
use berth_executor::spec::{self, Process, Resources};
use berth_executor::{CreateOptions, ExecOptions, Runtime};

use crate::args::{Cli, Command, CreateArgs, ExecArgs, UpdateArgs};
use crate::foreground;

pub fn dispatch(cli: Cli) -> Result<u8> {
    let mut runtime = Runtime::new(&cli.root);
    runtime.criu = cli.criu.clone();
    runtime.systemd_cgroup = cli.systemd_cgroup;
    match cli.command {
        Command::Create(a) => {
            runtime.create(&a.id.clone(), create_options(a))?;
            Ok(0)
        }
        Command::Start { id } => {
            runtime.load(&id)?.start()?;
            Ok(0)
        }
        Command::Run {
            create,
            detach,
            keep,
            no_subreaper,
        } => foreground::run(
            &runtime,
            create_options_keep_id(create),
            detach,
            keep,
            no_subreaper,
        ),
        Command::State { id } => {
            let st = runtime.load(&id)?.oci_state();
            print_json_pretty(&st)?;
            Ok(0)
        }
        Command::Kill { all, id, signal } => {
            let sig = signal.as_deref().unwrap_or("SIGTERM");
            let n = berth_executor::signal::parse(sig)
                .ok_or_else(|| Error::Unsupported(format!("invalid signal {sig:?}")))?;
            runtime.load(&id)?.kill(n, all)?;
            Ok(0)
        }
        Command::Delete { force, id } => delete(&runtime, &id, force),
        Command::Exec(a) => exec(&runtime, a),
        Command::Pause { id } => runtime.load(&id)?.pause().map(|_| 0),
        Command::Resume { id } => runtime.load(&id)?.resume().map(|_| 0),
        Command::Ps {
            format,
            id,
            ps_args,
        } => ps(&runtime, &id, &format, ps_args),
        Command::List { format, quiet } => list(&runtime, &format, quiet),
        Command::Events {
            stats,
            interval,
            id,
        } => events(&runtime, &id, stats, &interval),
        Command::Update(a) => update(&runtime, a),
        Command::Checkpoint(a) => crate::foreground::checkpoint(&runtime, a),
        Command::Restore(a) => crate::foreground::restore(&runtime, a),
        Command::Spec { bundle, rootless } => write_spec(&bundle, rootless),
        Command::Features => {
            print_json_pretty(&features())?;
            Ok(0)
        }
    }
}

fn create_options(a: CreateArgs) -> CreateOptions {
    CreateOptions {
        bundle: a.bundle,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        console_fd: None,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        stdio: None,
    }
}

fn create_options_keep_id(a: CreateArgs) -> (String, CreateOptions) {
    (a.id.clone(), create_options(a))
}

fn print_json_pretty<T: serde::Serialize>(v: &T) -> Result<()> {
    let s =
        serde_json::to_string_pretty(v).map_err(|e| Error::Setup(format!("encode JSON: {e}")))?;
    println!("{s}");
    Ok(())
}

fn delete(runtime: &Runtime, id: &str, force: bool) -> Result<u8> {
    match runtime.load(id) {
        Ok(c) => c.delete(force).map(|_| 0),
        Err(Error::NotFound { .. }) => {
            // A create that died before writing its state leaves a bare
            // directory; remove it. With --force a missing container is fine.
            let stale = runtime.root.join(id);
            if berth_executor::create::validate_id(id).is_ok() && stale.is_dir() {
                let _ = std::fs::remove_dir_all(&stale);
            }
            if force {
                Ok(0)
            } else {
                Err(Error::NotFound { id: id.to_string() })
            }
        }
        Err(e) => Err(e),
    }
}

/// The process for `exec`: from --process, or the container's process with
/// the command line and flags applied (as runc builds it).
fn exec_process(runtime: &Runtime, a: &ExecArgs) -> Result<Process> {
    let container = runtime.load(&a.id)?;
    let mut p = match &a.process {
        Some(path) => {
            let data = std::fs::read(path)
                .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
            spec::parse_json::<Process>(&data).map_err(|m| Error::Config {
                path: path.clone(),
                message: m,
            })?
        }
        None => {
            if a.command.is_empty() {
                return Err(Error::invalid(
                    "args",
                    "exec needs a command (or --process)",
                ));
            }
            let base = container.state.config.process.clone().unwrap_or_default();
            Process {
                args: a.command.clone(),
                env: base.env.clone(),
                cwd: base.cwd.clone(),
                user: base.user.clone(),
                capabilities: base.capabilities.clone(),
                no_new_privileges: base.no_new_privileges,
                apparmor_profile: base.apparmor_profile.clone(),
                rlimits: base.rlimits.clone(),
                ..Default::default()
            }
        }
    };
    if a.tty {
        p.terminal = true;
    }
    if let Some(cwd) = &a.cwd {
        p.cwd = cwd.clone();
    }
    p.env.extend(a.env.iter().cloned());
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, ""));
        p.user.uid = uid
            .parse()
            .map_err(|_| Error::invalid("--user", format!("{u:?} is not uid[:gid]")))?;
        if !gid.is_empty() {
            p.user.gid = gid
                .parse()
                .map_err(|_| Error::invalid("--user", format!("{u:?} is not uid[:gid]")))?;
        }
    }
    p.user
        .additional_gids
        .extend(a.additional_gids.iter().copied());
    if a.no_new_privs {
        p.no_new_privileges = true;
    }
    if let Some(ap) = &a.apparmor {
        p.apparmor_profile = Some(ap.clone());
    }
    if !a.cap.is_empty() {
        let caps = p.capabilities.get_or_insert_with(Default::default);
        for set in [
            &mut caps.bounding,
            &mut caps.effective,
            &mut caps.permitted,
            &mut caps.ambient,
            &mut caps.inheritable,
        ] {
            set.get_or_insert_with(Vec::new)
                .extend(a.cap.iter().cloned());
        }
    }
    if p.cwd.is_empty() {
        p.cwd = "/".into();
    }
    Ok(p)
}

fn exec(runtime: &Runtime, a: ExecArgs) -> Result<u8> {
    let process = exec_process(runtime, &a)?;
    let container = runtime.load(&a.id)?;
    let opts = ExecOptions {
        process,
        console_socket: a.console_socket.clone(),
        console_fd: None,
        preserve_fds: a.preserve_fds,
        stdio: None,
    };
    foreground::exec(&container, opts, a.detach, a.pid_file.as_deref())
}

fn ps(runtime: &Runtime, id: &str, format: &str, ps_args: Vec<String>) -> Result<u8> {
    let c = runtime.load(id)?;
    let pids = c.pids()?;
    match format {
        "json" => {
            println!(
                "{}",
                serde_json::to_string(&pids).unwrap_or_else(|_| "[]".into())
            );
            Ok(0)
        }
        "table" => {
            let args = if ps_args.is_empty() {
                vec!["-ef".to_string()]
            } else {
                ps_args
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .map_err(|e| Error::io("run ps", e))?;
            if !out.status.success() {
                return Err(Error::Setup(format!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or("");
            let pid_col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .ok_or_else(|| Error::Setup("ps output has no PID column".into()))?;
            println!("{header}");
            for line in lines {
                let pid: Option<i32> = line
                    .split_whitespace()
                    .nth(pid_col)
                    .and_then(|p| p.parse().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    println!("{line}");
                }
            }
            Ok(0)
        }
        other => Err(Error::invalid(
            "--format",
            format!("{other:?} is not table or json"),
        )),
    }
}

fn list(runtime: &Runtime, format: &str, quiet: bool) -> Result<u8> {
    let containers = runtime.list()?;
    if quiet {
        for c in &containers {
            println!("{}", c.id());
        }
        return Ok(0);
    }
    let states: Vec<_> = containers.iter().map(|c| c.oci_state()).collect();
    match format {
        "json" => {
            println!(
                "{}",
                serde_json::to_string(&states).unwrap_or_else(|_| "[]".into())
            );
        }
        "table" => {
            let mut out = String::from("ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n");
            for s in &states {
                out.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\t{}\n",
                    s.id,
                    s.pid,
                    s.status,
                    s.bundle.display(),
                    s.created,
                    if s.owner.is_empty() { "root" } else { &s.owner }
                ));
            }
            print!("{}", align_columns(&out));
        }
        other => {
            return Err(Error::invalid(
                "--format",
                format!("{other:?} is not table or json"),
            ))
        }
    }
    Ok(0)
}

/// Aligns tab-separated columns with spaces (like Go's tabwriter).
fn align_columns(text: &str) -> String {
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                line.push_str(&format!("{c:<w$}   ", w = widths[i]));
            } else {
                line.push_str(c);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn parse_interval(s: &str) -> Result<Duration> {
    let bad = || {
        Error::invalid(
            "--interval",
            format!("{s:?} is not a duration like 5s or 500ms"),
        )
    };
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .ok_or_else(bad)?;
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(bad()),
    };
    if secs <= 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn events(runtime: &Runtime, id: &str, once: bool, interval: &str) -> Result<u8> {
    let c = runtime.load(id)?;
    let interval = parse_interval(interval)?;
    let emit = |typ: &str, data: Option<serde_json::Value>| {
        let mut ev = serde_json::json!({"type": typ, "id": id});
        if let Some(d) = data {
            ev["data"] = d;
        }
        println!("{ev}");
        let _ = std::io::stdout().flush();
    };
    if once {
        let stats = c.stats()?;
        emit("stats", serde_json::to_value(&stats).ok());
        return Ok(0);
    }
    let oom_fd = c.state.cgroup.oom_eventfd().ok();
    loop {
        if c.status() == berth_executor::Status::Stopped {
            return Ok(0);
        }
        if let Ok(stats) = c.stats() {
            emit("stats", serde_json::to_value(&stats).ok());
        }
        if let Some(fd) = &oom_fd {
            if foreground::wait_readable(fd, interval) {
                let mut buf = [0u8; 8];
                let _ = (&std::fs::File::from(
                    fd.try_clone()
                        .map_err(|e| Error::io("dup oom eventfd", e))?,
                ))
                    .read(&mut buf);
                emit("oom", None);
            }
        } else {
            std::thread::sleep(interval);
        }
    }
}

/// Parses runc's memory sizes: bytes, or with k/m/g (binary) suffix; -1 = unlimited.
fn parse_size(flag: &str, s: &str) -> Result<i64> {
    let bad = || Error::invalid(flag, format!("{s:?} is not a size"));
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.to_ascii_lowercase();
    let trimmed = lower.trim_end_matches('b');
    let (num, mult) = match trimmed.chars().last() {
        Some('k') => (&trimmed[..trimmed.len() - 1], 1i64 << 10),
        Some('m') => (&trimmed[..trimmed.len() - 1], 1 << 20),
        Some('g') => (&trimmed[..trimmed.len() - 1], 1 << 30),
        _ => (trimmed, 1),
    };
    num.parse::<i64>().map(|n| n * mult).map_err(|_| bad())
}

fn update(runtime: &Runtime, a: UpdateArgs) -> Result<u8> {
    let mut c = runtime.load(&a.id)?;
    let mut r: Resources = match &a.resources {
        Some(p) => {
            let data = if p == Path::new("-") {
                let mut v = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut v)
                    .map_err(|e| Error::io("read resources from stdin", e))?;
                v
            } else {
                std::fs::read(p).map_err(|e| Error::io(format!("read {}", p.display()), e))?
            };
            spec::parse_json(&data).map_err(|m| Error::Config {
                path: PathBuf::from(p),
                message: m,
            })?
        }
        None => Resources::default(),
    };
    if let Some(w) = a.blkio_weight {
        r.block_io.get_or_insert_with(Default::default).weight = Some(w);
    }
    let cpu_flags = a.cpu_period.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_share.is_some()
        || a.cpu_rt_period.is_some()
        || a.cpu_rt_runtime.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some();
    if cpu_flags {
        let cpu = r.cpu.get_or_insert_with(Default::default);
        cpu.period = a.cpu_period.or(cpu.period);
        cpu.quota = a.cpu_quota.or(cpu.quota);
        cpu.shares = a.cpu_share.or(cpu.shares);
        cpu.realtime_period = a.cpu_rt_period.or(cpu.realtime_period);
        cpu.realtime_runtime = a.cpu_rt_runtime.or(cpu.realtime_runtime);
        cpu.cpus = a.cpuset_cpus.clone().or(cpu.cpus.take());
        cpu.mems = a.cpuset_mems.clone().or(cpu.mems.take());
    }
    if let Some(v) = &a.memory {
        r.memory.get_or_insert_with(Default::default).limit = Some(parse_size("--memory", v)?);
    }
    if let Some(v) = &a.memory_reservation {
        r.memory.get_or_insert_with(Default::default).reservation =
            Some(parse_size("--memory-reservation", v)?);
    }
    if let Some(v) = &a.memory_swap {
        r.memory.get_or_insert_with(Default::default).swap = Some(parse_size("--memory-swap", v)?);
    }
    if let Some(v) = a.pids_limit {
        r.pids = Some(spec::Pids { limit: v });
    }
    c.update(&r)?;
    Ok(0)
}

fn write_spec(bundle: &Path, rootless: bool) -> Result<u8> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(Error::Setup(format!(
            "{} exists; remove it first",
            path.display()
        )));
    }
    let ids = rootless.then(|| {
        // SAFETY: getuid/getgid cannot fail.
        unsafe { (libc::getuid(), libc::getgid()) }
    });
    let spec = spec::default_spec(ids);
    let data =
        serde_json::to_vec_pretty(&spec).map_err(|e| Error::Setup(format!("encode spec: {e}")))?;
    std::fs::write(&path, data).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    Ok(0)
}

fn features() -> serde_json::Value {
    let caps: Vec<&str> = (0..=berth_executor::caps::last_cap())
        .filter_map(berth_executor::caps::name)
        .collect();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": berth_executor::state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": [
            "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "idmap", "iversion", "lazytime",
            "loud", "mand", "noatime", "nodev", "nodiratime", "noexec", "noiversion", "nolazytime", "nomand",
            "norelatime", "nostrictatime", "nosuid", "nosymfollow", "private", "ratime", "rbind", "rdev",
            "rdiratime", "relatime", "remount", "rexec", "ridmap", "rnoatime", "rnodev", "rnodiratime", "rnoexec",
            "rnorelatime", "rnostrictatime", "rnosuid", "rnosymfollow", "ro", "rprivate", "rrelatime", "rro",
            "rrw", "rshared", "rslave", "rstrictatime", "rsuid", "rsymfollow", "runbindable", "rw", "shared",
            "silent", "slave", "strictatime", "suid", "symfollow", "sync", "unbindable"
        ],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                              "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
            },
            "apparmor": {"enabled": true},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": true}}
        },
        "annotations": {
            "org.opencontainers.runc.checkpoint.enabled": "true",
            "io.github.berth.runtime": "berth-runc"
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_intervals() {
        assert_eq!(parse_size("--memory", "100m").unwrap(), 100 << 20);
        assert_eq!(parse_size("--memory", "-1").unwrap(), -1);
        assert_eq!(parse_size("--memory", "1024").unwrap(), 1024);
        assert!(parse_size("--memory", "lots").is_err());
        assert_eq!(parse_interval("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert!(parse_interval("5").is_err());
    }

    #[test]
    fn columns_are_aligned() {
        assert_eq!(align_columns("ID\tPID\nabc\t1\n"), "ID    PID\nabc   1\n");
    }
}
