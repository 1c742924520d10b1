//! berth-runc against crun and runc: create+start+wait+delete and `run` of
//! /bin/true, interleaved (every iteration runs each runtime once, in a
//! rotating order), medians, ratios and peak RSS.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_tests::bundle::Bundle;

use crate::measure::{self, ms, MaxRss, Samples};

pub struct RuntimeBench {
    pub name: &'static str,
    pub path: PathBuf,
    root: tempfile::TempDir,
}

impl RuntimeBench {
    /// The runtime with `args`, run directly (for timing) or under the
    /// peak-RSS launcher.
    fn cmd(&self, rss: Option<&MaxRss>, args: &[&str]) -> Command {
        let mut c = match rss {
            Some(m) => m.command(&self.path),
            None => Command::new(&self.path),
        };
        c.arg("--root").arg(self.root.path()).args(args);
        c
    }

    /// Runs one runtime command; with `rss`, returns its peak RSS (KiB).
    fn call(&self, rss: Option<&MaxRss>, args: &[&str]) -> Result<(f64, i64), String> {
        let r = measure::run(&mut self.cmd(rss, args)).map_err(|e| e.to_string())?;
        if !r.ok {
            return Err(format!("{} {}: {}", self.name, args[0], r.stderr));
        }
        let kib = match rss {
            Some(m) => m.last_kib().map_err(|e| format!("peak RSS: {e}"))?,
            None => 0,
        };
        Ok((ms(r.elapsed), kib))
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

/// One create+start+wait+delete cycle; returns (wall ms, peak RSS KiB of
/// the three runtime calls, 0 unless `rss`).
fn lifecycle(
    rt: &RuntimeBench,
    rss: Option<&MaxRss>,
    bundle: &Path,
    id: &str,
) -> Result<(f64, i64), String> {
    let pid_file = bundle.join(format!("{id}.pid"));
    let start = std::time::Instant::now();
    let b = bundle.display().to_string();
    let pf = pid_file.display().to_string();
    let (_, created) = rt.call(rss, &["create", "--bundle", &b, "--pid-file", &pf, id])?;
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or("no pid file")?;
    let (_, started) = rt.call(rss, &["start", id])?;
    // We are a subreaper: the init was reparented to us.
    measure::reap(pid);
    let (_, deleted) = rt.call(rss, &["delete", id])?;
    let elapsed = ms(start.elapsed());
    let _ = std::fs::remove_file(&pid_file);
    Ok((elapsed, created.max(started).max(deleted)))
}

pub fn bench(berth: &Path, runs: usize) -> Result<(Samples, Vec<&'static str>), String> {
    measure::set_subreaper();
    let rts = runtimes(berth).map_err(|e| e.to_string())?;
    let rss = MaxRss::new(berth_integration::release_binary("berth-maxrss"))
        .map_err(|e| e.to_string())?;
    let mut bundle = Bundle::new("bench").map_err(|e| e.to_string())?;
    bundle.set_args(&["/bin/true"]);
    // crun 1.8.1 refuses ociVersion 1.2; every runtime gets the same config.
    bundle.write_config().map_err(|e| e.to_string())?;
    let b = bundle.dir.display().to_string();
    let mut s = Samples::default();
    // One warm-up round, not recorded.
    for rt in &rts {
        lifecycle(rt, None, &bundle.dir, "warm")?;
    }
    // Timed runs call the runtime directly.
    for i in 0..runs {
        for k in 0..rts.len() {
            let rt = &rts[(i + k) % rts.len()];
            let (t, _) = lifecycle(rt, None, &bundle.dir, &format!("b{i}"))?;
            s.add(rt.name, "lifecycle_ms", t);
            let (t, _) = rt.call(None, &["run", "--bundle", &b, &format!("r{i}")])?;
            s.add(rt.name, "run_ms", t);
            measure::reap_all();
        }
    }
    // Peak RSS in a second interleaved pass, through the launcher, so its
    // fork and exec neither count in nor shift the timings above.
    for i in 0..runs {
        for k in 0..rts.len() {
            let rt = &rts[(i + k) % rts.len()];
            let (_, kib) = lifecycle(rt, Some(&rss), &bundle.dir, &format!("m{i}"))?;
            s.add(rt.name, "peak_rss_kib", kib as f64);
            let (_, kib) = rt.call(Some(&rss), &["run", "--bundle", &b, &format!("n{i}")])?;
            s.add(rt.name, "run_rss_kib", kib as f64);
            measure::reap_all();
        }
    }
    Ok((s, rts.iter().map(|r| r.name).collect()))
}

pub fn report(s: &Samples, names: &[&str], runs: usize) -> String {
    let get = |n: &str, m: &str| s.median(n, m).unwrap_or(f64::NAN);
    let mut out = String::new();
    out.push_str(
        "| runtime | create+start+wait+delete (median ms) | `run` (median ms) | peak RSS (median MiB, lifecycle / run) | vs crun (lifecycle / run) | vs runc (lifecycle / run) |\n\
         |---|---|---|---|---|---|\n"
    );
    for n in names {
        let (l, r) = (get(n, "lifecycle_ms"), get(n, "run_ms"));
        let rss_l = get(n, "peak_rss_kib") / 1024.0;
        let rss_r = get(n, "run_rss_kib") / 1024.0;
        out.push_str(&format!(
            "| {n} | {l:.1} | {r:.1} | {rss_l:.2} / {rss_r:.2} | {:.2}x / {:.2}x | {:.2}x / {:.2}x |\n",
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
