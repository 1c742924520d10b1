//! berth-runc against crun and runc: create+start+wait+delete and `run` of
//! /bin/true, interleaved (every iteration runs each runtime once, in a
//! rotating order), medians, ratios and peak RSS.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_tests::bundle::Bundle;

use crate::measure::{self, ms, Samples};

pub struct RuntimeBench {
    pub name: &'static str,
    pub path: PathBuf,
    root: tempfile::TempDir,
}

impl RuntimeBench {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.path);
        c.arg("--root").arg(self.root.path()).args(args);
        c
    }
}

pub fn runtimes(berth: &Path) -> std::io::Result<Vec<RuntimeBench>> {
    let mk = |name, path: &str| -> std::io::Result<RuntimeBench> {
        Ok(RuntimeBench {
            name,
            path: PathBuf::from(path),
            root: tempfile::tempdir()?,
        })
    };
    Ok(vec![
        RuntimeBench {
            name: "berth-runc",
            path: berth.to_path_buf(),
            root: tempfile::tempdir()?,
        },
        mk("crun", "/usr/bin/crun")?,
        mk("runc", "/usr/sbin/runc")?,
    ])
}

/// One create+start+wait+delete cycle; returns (wall ms, peak RSS KiB).
fn lifecycle(rt: &RuntimeBench, bundle: &Path, id: &str) -> Result<(f64, i64), String> {
    let pid_file = bundle.join(format!("{id}.pid"));
    let start = std::time::Instant::now();
    let b = bundle.display().to_string();
    let pf = pid_file.display().to_string();
    let create = measure::run(&mut rt.cmd(&["create", "--bundle", &b, "--pid-file", &pf, id]))
        .map_err(|e| e.to_string())?;
    if !create.ok {
        return Err(format!("{} create: {}", rt.name, create.stderr));
    }
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or("no pid file")?;
    let started = measure::run(&mut rt.cmd(&["start", id])).map_err(|e| e.to_string())?;
    if !started.ok {
        return Err(format!("{} start: {}", rt.name, started.stderr));
    }
    // We are a subreaper: the init was reparented to us.
    measure::reap(pid);
    let deleted = measure::run(&mut rt.cmd(&["delete", id])).map_err(|e| e.to_string())?;
    if !deleted.ok {
        return Err(format!("{} delete: {}", rt.name, deleted.stderr));
    }
    let elapsed = ms(start.elapsed());
    let _ = std::fs::remove_file(&pid_file);
    Ok((
        elapsed,
        create
            .max_rss_kib
            .max(started.max_rss_kib)
            .max(deleted.max_rss_kib),
    ))
}

pub fn bench(berth: &Path, runs: usize) -> Result<(Samples, Vec<&'static str>), String> {
    measure::set_subreaper();
    let rts = runtimes(berth).map_err(|e| e.to_string())?;
    let mut bundle = Bundle::new("bench").map_err(|e| e.to_string())?;
    bundle.set_args(&["/bin/true"]);
    // crun 1.8.1 refuses ociVersion 1.2; every runtime gets the same config.
    bundle.write_config().map_err(|e| e.to_string())?;
    let mut s = Samples::default();
    // One warm-up round, not recorded.
    for rt in &rts {
        lifecycle(rt, &bundle.dir, "warm")?;
    }
    for i in 0..runs {
        for k in 0..rts.len() {
            let rt = &rts[(i + k) % rts.len()];
            let id = format!("b{i}");
            let (t, rss) = lifecycle(rt, &bundle.dir, &id)?;
            s.add(rt.name, "lifecycle_ms", t);
            s.add(rt.name, "peak_rss_kib", rss as f64);
            let b = bundle.dir.display().to_string();
            let run = measure::run(&mut rt.cmd(&["run", "--bundle", &b, &format!("r{i}")]))
                .map_err(|e| e.to_string())?;
            if !run.ok {
                return Err(format!("{} run: {}", rt.name, run.stderr));
            }
            s.add(rt.name, "run_ms", ms(run.elapsed));
            s.add(rt.name, "run_rss_kib", run.max_rss_kib as f64);
            measure::reap_all();
        }
    }
    Ok((s, rts.iter().map(|r| r.name).collect()))
}

pub fn report(s: &Samples, names: &[&str], runs: usize) -> String {
    let get = |n: &str, m: &str| s.median(n, m).unwrap_or(f64::NAN);
    let mut out = String::new();
    out.push_str(
        "| runtime | create+start+wait+delete (median ms) | `run` (median ms) | peak RSS (median MiB) | vs crun (lifecycle / run) | vs runc (lifecycle / run) |\n\
         |---|---|---|---|---|---|\n"
    );
    for n in names {
        let (l, r) = (get(n, "lifecycle_ms"), get(n, "run_ms"));
        let rss = get(n, "peak_rss_kib").max(get(n, "run_rss_kib")) / 1024.0;
        out.push_str(&format!(
            "| {n} | {l:.1} | {r:.1} | {rss:.1} | {:.2}x / {:.2}x | {:.2}x / {:.2}x |\n",
            l / get("crun", "lifecycle_ms"),
            r / get("crun", "run_ms"),
            l / get("runc", "lifecycle_ms"),
            r / get("runc", "run_ms"),
        ));
    }
    out.push_str(&format!(
        "\n{runs} interleaved iterations per runtime (samples: {}), /bin/true from the busybox test image, \
         the default `spec` config (pid, net, ipc, uts, mount, cgroup namespaces; 7 mounts; masked and read-only paths).\n",
        s.count("berth-runc", "lifecycle_ms")
    ));
    out
}
