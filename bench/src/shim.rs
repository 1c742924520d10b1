//! containerd-shim-berth-v2 against containerd's stock runc shim (with runc
//! and with crun), under one private containerd 1.6 driven by `ctr`:
//! `run --rm` latency (sequential and 20 in parallel), exec, pause, resume
//! and metrics latency, and per-shim RSS/PSS/threads with 20 idle containers.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_integration::{shim_pid, Containerd, IMAGE};

use crate::measure::{ms, Samples};

pub struct Shim {
    pub name: &'static str,
    /// Extra `ctr run` arguments selecting the shim and runtime.
    pub args: Vec<String>,
}

pub fn shims() -> Vec<Shim> {
    vec![
        Shim {
            name: "berth shim",
            args: vec!["--runtime".into(), "io.containerd.berth.v2".into()],
        },
        Shim {
            name: "runc shim + runc",
            args: vec!["--runtime".into(), "io.containerd.runc.v2".into()],
        },
        Shim {
            name: "runc shim + crun",
            args: vec![
                "--runtime".into(),
                "io.containerd.runc.v2".into(),
                "--runc-binary".into(),
                "/usr/bin/crun".into(),
            ],
        },
    ]
}

fn timed(ctd: &Containerd, ns: &str, args: &[&str]) -> Result<f64, String> {
    let start = Instant::now();
    let out = ctd
        .ctr_cmd(ns, args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ctr {args:?}: {e}"))?;
    let t = ms(start.elapsed());
    if !out.status.success() {
        return Err(format!(
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(t)
}

fn run_args<'a>(shim: &'a Shim, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = vec!["run"];
    v.extend(shim.args.iter().map(|s| s.as_str()));
    v.extend_from_slice(extra);
    v
}

pub fn bench(runs: usize, idle: usize) -> Result<(Samples, Vec<&'static str>), String> {
    let ctd = Containerd::start().map_err(|e| e.to_string())?;
    let ns = "bench";
    ctd.import_test_image(ns);
    let shims = shims();
    let mut s = Samples::default();

    // Warm up every path once.
    for sh in &shims {
        let mut a = run_args(sh, &["--rm", IMAGE, "warm", "true"]);
        a.truncate(a.len());
        timed(&ctd, ns, &a)?;
    }
    // Sequential `ctr run --rm` of /bin/true, interleaved.
    eprintln!("shim bench: sequential ctr run --rm ({runs} rounds)");
    for i in 0..runs {
        for k in 0..shims.len() {
            let sh = &shims[(i + k) % shims.len()];
            let id = format!("seq{i}");
            let a = run_args(sh, &["--rm", IMAGE, &id, "true"]);
            s.add(sh.name, "run_rm_ms", timed(&ctd, ns, &a)?);
        }
    }
    // 20 in parallel: wall time until all 20 have finished.
    let rounds = (runs / 6).max(3);
    eprintln!("shim bench: 20 in parallel ({rounds} rounds)");
    for r in 0..rounds {
        for k in 0..shims.len() {
            let sh = &shims[(r + k) % shims.len()];
            let start = Instant::now();
            let children: Vec<_> = (0..20)
                .map(|j| {
                    let id = format!("par{r}-{j}");
                    let a = run_args(sh, &["--rm", IMAGE, &id, "true"]);
                    ctd.ctr_cmd(ns, &a)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                })
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            for mut c in children {
                let st = c.wait().map_err(|e| e.to_string())?;
                if !st.success() {
                    return Err(format!("{}: parallel run failed", sh.name));
                }
            }
            s.add(sh.name, "parallel20_ms", ms(start.elapsed()));
        }
    }
    // exec / pause / resume / metrics on a long-running task per shim.
    eprintln!("shim bench: exec, pause, resume, metrics ({runs} rounds)");
    for sh in &shims {
        let id = long_id(sh);
        let a = run_args(sh, &["-d", IMAGE, &id, "sleep", "100000"]);
        timed(&ctd, ns, &a)?;
    }
    for i in 0..runs {
        for k in 0..shims.len() {
            let sh = &shims[(i + k) % shims.len()];
            let id = long_id(sh);
            let e = format!("e{i}");
            s.add(
                sh.name,
                "exec_ms",
                timed(&ctd, ns, &["task", "exec", "--exec-id", &e, &id, "true"])?,
            );
            s.add(
                sh.name,
                "pause_ms",
                timed(&ctd, ns, &["task", "pause", &id])?,
            );
            s.add(
                sh.name,
                "resume_ms",
                timed(&ctd, ns, &["task", "resume", &id])?,
            );
            s.add(
                sh.name,
                "metrics_ms",
                timed(&ctd, ns, &["task", "metrics", &id])?,
            );
        }
    }
    for sh in &shims {
        remove(&ctd, ns, &long_id(sh));
    }
    // Memory: `idle` idle containers per shim kind, measured together.
    eprintln!("shim bench: memory with {idle} idle containers per shim");
    for sh in &shims {
        let ids: Vec<String> = (0..idle).map(|j| format!("idle-{}-{j}", tag(sh))).collect();
        for id in &ids {
            let a = run_args(sh, &["-d", IMAGE, id, "sleep", "100000"]);
            timed(&ctd, ns, &a)?;
        }
        // Let shims settle (our shim trims itself after 300 ms of quiet).
        std::thread::sleep(Duration::from_secs(2));
        for id in &ids {
            if let Some(pid) = shim_pid(&ctd, ns, id) {
                let (rss, pss) = smaps_rollup(pid);
                s.add(sh.name, "rss_kib", rss);
                s.add(sh.name, "pss_kib", pss);
                s.add(sh.name, "threads", threads(pid));
            }
        }
        for id in &ids {
            remove(&ctd, ns, id);
        }
    }
    let _ = ctd.ctr(ns, &["images", "rm", IMAGE]);
    berth_integration::remove_namespace_cgroups(ns);
    Ok((s, shims.iter().map(|s| s.name).collect()))
}

fn tag(sh: &Shim) -> String {
    sh.name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

fn long_id(sh: &Shim) -> String {
    format!("long-{}", tag(sh))
}

fn remove(ctd: &Containerd, ns: &str, id: &str) {
    let _ = ctd.ctr(ns, &["task", "kill", "-s", "9", id]);
    for _ in 0..100 {
        let out = ctd.ctr(ns, &["task", "ls"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !text
            .lines()
            .any(|l| l.starts_with(id) && l.contains("RUNNING"))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = ctd.ctr(ns, &["task", "rm", "-f", id]);
    let _ = ctd.ctr(ns, &["c", "rm", id]);
}

fn smaps_rollup(pid: i32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    (field("Rss:"), field("Pss:"))
}

fn threads(pid: i32) -> f64 {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(f64::NAN, |d| d.count() as f64)
}

pub fn report(s: &Samples, names: &[&str], runs: usize, idle: usize) -> String {
    let get = |n: &str, m: &str| s.median(n, m).unwrap_or(f64::NAN);
    let base = "runc shim + runc";
    let mut out = String::from(
        "| shim | `ctr run --rm` true (ms) | 20 parallel (ms) | exec (ms) | pause (ms) | resume (ms) | metrics (ms) | RSS (MiB) | PSS (MiB) | threads |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for n in names {
        out.push_str(&format!(
            "| {n} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.0} |\n",
            get(n, "run_rm_ms"),
            get(n, "parallel20_ms"),
            get(n, "exec_ms"),
            get(n, "pause_ms"),
            get(n, "resume_ms"),
            get(n, "metrics_ms"),
            get(n, "rss_kib") / 1024.0,
            get(n, "pss_kib") / 1024.0,
            get(n, "threads"),
        ));
    }
    let b = "berth shim";
    out.push_str(&format!(
        "\nRatios, berth shim / runc shim + runc: `run --rm` {:.2}x, 20 parallel {:.2}x, exec {:.2}x, pause {:.2}x, resume {:.2}x, metrics {:.2}x, RSS {:.2}x, PSS {:.2}x.\n",
        get(b, "run_rm_ms") / get(base, "run_rm_ms"),
        get(b, "parallel20_ms") / get(base, "parallel20_ms"),
        get(b, "exec_ms") / get(base, "exec_ms"),
        get(b, "pause_ms") / get(base, "pause_ms"),
        get(b, "resume_ms") / get(base, "resume_ms"),
        get(b, "metrics_ms") / get(base, "metrics_ms"),
        get(b, "rss_kib") / get(base, "rss_kib"),
        get(b, "pss_kib") / get(base, "pss_kib"),
    ));
    out.push_str(&format!(
        "\nLatencies are medians of {runs} interleaved runs (20-parallel: medians of {} rounds), measured as ctr's wall time, so containerd's and ctr's own work is included. \
         Memory is the median over {idle} idle containers per shim kind, all running at once, 2 s after the last start (`/proc/<pid>/smaps_rollup`).\n",
        s.count(b, "parallel20_ms"),
    ));
    out
}

/// ctr is in PATH, the shim binary must be next to containerd's PATH entries.
pub fn check_tools() -> Result<(), String> {
    for tool in [
        "containerd",
        "ctr",
        "containerd-shim-runc-v2",
        "runc",
        "crun",
    ] {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return Err(format!("{tool} not found: run scripts/install-deps.sh"));
        }
    }
    Ok(())
}
