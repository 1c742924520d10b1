//! Timing and memory measurement helpers: spawn a command and collect its
//! wall time, or its peak RSS through the `berth-maxrss` launcher; medians
//! and ratios.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One finished command: how long it took and its status.
pub struct Run {
    pub elapsed: Duration,
    pub ok: bool,
    pub stderr: String,
}

/// Measures peak RSS by running programs under `berth-maxrss` (see
/// bench/src/bin/berth-maxrss.rs for why wait4 from here would not do).
pub struct MaxRss {
    launcher: PathBuf,
    out: tempfile::TempDir,
}

impl MaxRss {
    pub fn new(launcher: PathBuf) -> std::io::Result<MaxRss> {
        Ok(MaxRss {
            launcher,
            out: tempfile::tempdir()?,
        })
    }

    /// A command that runs `program` under the launcher.
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(&self.launcher);
        c.arg(self.out.path().join("maxrss")).arg(program);
        c
    }

    /// The peak RSS (KiB) of the last program run through `command`.
    pub fn last_kib(&self) -> std::io::Result<i64> {
        let text = std::fs::read_to_string(self.out.path().join("maxrss"))?;
        text.trim()
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{e}")))
    }
}

/// Runs `cmd` to completion and reports its wall time.
pub fn run(cmd: &mut Command) -> std::io::Result<Run> {
    use std::os::unix::process::ExitStatusExt;
    // stderr goes to a file, not a pipe: a container init inherits it, and
    // reading a pipe to EOF would wait for the container.
    let mut errfile = tempfile::tempfile()?;
    cmd.stdout(std::process::Stdio::null())
        .stderr(errfile.try_clone()?);
    let start = Instant::now();
    let child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: waitpid on our own child with a valid out pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    let elapsed = start.elapsed();
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut err = String::new();
    {
        use std::io::{Read, Seek};
        let _ = errfile.rewind();
        let _ = errfile.read_to_string(&mut err);
    }
    // The child is reaped; keep `Child` from waiting again.
    std::mem::forget(child);
    let st = std::process::ExitStatus::from_raw(status);
    Ok(Run {
        elapsed,
        ok: st.success(),
        stderr: err,
    })
}

pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Samples collected per runtime and metric.
#[derive(Default)]
pub struct Samples {
    rows: Vec<(String, String, Vec<f64>)>,
}

impl Samples {
    pub fn add(&mut self, who: &str, metric: &str, value: f64) {
        match self
            .rows
            .iter_mut()
            .find(|(w, m, _)| w == who && m == metric)
        {
            Some((_, _, v)) => v.push(value),
            None => self.rows.push((who.into(), metric.into(), vec![value])),
        }
    }

    pub fn median(&self, who: &str, metric: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|(w, m, _)| w == who && m == metric)
            .map(|(_, _, v)| median(&mut v.clone()))
    }

    pub fn count(&self, who: &str, metric: &str) -> usize {
        self.rows
            .iter()
            .find(|(w, m, _)| w == who && m == metric)
            .map_or(0, |(_, _, v)| v.len())
    }
}

/// Enters a private mount namespace without the cgroup2 mount, so crun
/// 1.8.1 (which refuses this host's hybrid layout) runs; every runtime in
/// the benchmark runs in the same namespace.
pub fn private_v1_mount_namespace() -> std::io::Result<()> {
    // SAFETY: unshare/mount/umount2 with valid arguments; the process is
    // single-threaded at this point.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        libc::umount2(c"/sys/fs/cgroup/unified".as_ptr(), libc::MNT_DETACH);
    }
    Ok(())
}

/// Becomes a child subreaper so container inits are reparented to us.
pub fn set_subreaper() {
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// Waits for `pid` (a child or an orphan reparented to us).
pub fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: waitpid with a valid out pointer.
    unsafe {
        libc::waitpid(pid, &mut status, 0);
    }
}

/// Reaps every exited child without blocking.
pub fn reap_all() {
    let mut status = 0;
    // SAFETY: waitpid with a valid out pointer.
    while unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } > 0 {}
}
