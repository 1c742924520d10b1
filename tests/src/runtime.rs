//! A runc-compatible CLI under test (berth-runc, runc, crun or any other),
//! with a private `--root` state directory and a timeout on every call so a
//! hung runtime fails the test instead of hanging CI.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::other;

/// Which implementation a runtime binary is; tests use it for known
/// per-runtime differences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Berth,
    Runc,
    Crun,
    Other,
}

/// A runtime binary plus the private state directory passed as `--root`.
#[derive(Debug)]
pub struct Runtime {
    /// Short name: "berth-runc", "runc", "crun", or the binary's file name.
    pub name: String,
    pub path: PathBuf,
    pub root: TempDir,
    pub kind: Kind,
    /// The limit for one call.
    pub timeout: Duration,
}

/// What a call printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code, or 128 + signal if a signal ended the process.
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }

    /// `Ok(self)` if the call succeeded, else an error quoting its stderr.
    pub fn ok(self, what: &str) -> io::Result<Output> {
        if self.success() {
            Ok(self)
        } else {
            Err(other(format!(
                "{what}: exit {}\nstdout: {}\nstderr: {}",
                self.code(),
                self.stdout.trim_end(),
                self.stderr.trim_end()
            )))
        }
    }
}

/// Per-call plumbing beyond the arguments.
#[derive(Debug, Default)]
pub struct Io {
    /// Where the runtime's (and a created container's) stdout and stderr go
    /// (the caller reads it; `Output` stays empty then). By default anonymous
    /// files whose contents end up in `Output`.
    pub output: Option<File>,
    /// Fds passed to the runtime as 3, 4, ... (for `--preserve-fds`).
    pub fds: Vec<OwnedFd>,
    /// Overrides `Runtime::timeout`.
    pub timeout: Option<Duration>,
    /// The working directory of the call.
    pub cwd: Option<PathBuf>,
}

/// Options of `create` and `run`.
#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: usize,
}

impl Runtime {
    /// The runtime named by `BERTH_RUNTIME`: a path, or `runc`, `crun`,
    /// `berth-runc`; by default `<target>/release/berth-runc`.
    pub fn from_env() -> io::Result<Runtime> {
        let spec = std::env::var("BERTH_RUNTIME").unwrap_or_else(|_| "berth-runc".into());
        Runtime::new(&spec)
    }

    /// A runtime from a name (`runc`, `crun`, `berth-runc`) or a path.
    pub fn new(spec: &str) -> io::Result<Runtime> {
        let path = match spec {
            "berth-runc" | "berth" => crate::release_dir().join("berth-runc"),
            _ if spec.contains('/') => PathBuf::from(spec),
            _ => which(spec).ok_or_else(|| other(format!("{spec} not found in PATH")))?,
        };
        if !path.is_file() {
            return Err(other(format!(
                "runtime {} does not exist (build it with cargo build --release -p berth-executor)",
                path.display()
            )));
        }
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let kind = match file.as_str() {
            "berth-runc" => Kind::Berth,
            "runc" => Kind::Runc,
            "crun" => Kind::Crun,
            _ => Kind::Other,
        };
        let base = std::env::var_os("BERTH_TEST_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let root = tempfile::Builder::new()
            .prefix("berth-rt-root-")
            .tempdir_in(base)?;
        let timeout = std::env::var("BERTH_RUNTIME_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(30));
        Ok(Runtime {
            name: file,
            path,
            root,
            kind,
            timeout,
        })
    }

    /// The command line for `args`, with `--root` and, for crun, the private
    /// mount namespace without /sys/fs/cgroup/unified that crun 1.8.1 needs
    /// on a hybrid cgroup host.
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = if self.kind == Kind::Crun {
            let mut c = Command::new("unshare");
            c.args(["-m", "sh", "-c"])
                .arg("umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$0\" \"$@\"")
                .arg(&self.path);
            c
        } else {
            Command::new(&self.path)
        };
        cmd.arg("--root").arg(self.root.path());
        cmd.args(args);
        cmd
    }

    /// Runs the runtime with `args` and default plumbing.
    pub fn call<S: AsRef<OsStr>>(&self, args: &[S]) -> io::Result<Output> {
        self.call_with(args, Io::default())
    }

    /// Runs the runtime with `args`, waiting at most the timeout; on timeout
    /// its process group is killed and an error of kind `TimedOut` returned.
    pub fn call_with<S: AsRef<OsStr>>(&self, args: &[S], io: Io) -> io::Result<Output> {
        let mut cmd = self.command(args);
        let what = format!(
            "{} {}",
            self.name,
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        );
        execute(&mut cmd, io, self.timeout, &what)
    }

    pub fn create(&self, id: &str, bundle: &Path) -> io::Result<Output> {
        self.create_with(id, bundle, &CreateOptions::default(), Io::default())
    }

    pub fn create_with(
        &self,
        id: &str,
        bundle: &Path,
        opts: &CreateOptions,
        io: Io,
    ) -> io::Result<Output> {
        self.call_with(&create_args("create", id, bundle, opts), io)
    }

    /// `run` in the foreground: create, start, wait, delete.
    pub fn run(&self, id: &str, bundle: &Path) -> io::Result<Output> {
        self.run_with(id, bundle, &CreateOptions::default(), Io::default())
    }

    pub fn run_with(
        &self,
        id: &str,
        bundle: &Path,
        opts: &CreateOptions,
        io: Io,
    ) -> io::Result<Output> {
        self.call_with(&create_args("run", id, bundle, opts), io)
    }

    pub fn start(&self, id: &str) -> io::Result<Output> {
        self.call(&["start", id])
    }

    /// `state`, parsed; an error if the call fails or prints no JSON.
    pub fn state(&self, id: &str) -> io::Result<Value> {
        let out = self.call(&["state", id])?.ok("state")?;
        serde_json::from_str(&out.stdout)
            .map_err(|e| other(format!("state {id}: bad JSON ({e}): {}", out.stdout)))
    }

    pub fn kill(&self, id: &str, signal: &str) -> io::Result<Output> {
        self.call(&["kill", id, signal])
    }

    pub fn delete(&self, id: &str) -> io::Result<Output> {
        self.call(&["delete", id])
    }

    pub fn delete_force(&self, id: &str) -> io::Result<Output> {
        self.call(&["delete", "--force", id])
    }

    /// `exec` of `args` (runtime options first, e.g. `["--cwd", "/tmp"]`).
    pub fn exec<S: AsRef<OsStr>>(&self, id: &str, opts: &[S], args: &[S]) -> io::Result<Output> {
        let mut all: Vec<OsString> = vec!["exec".into()];
        all.extend(opts.iter().map(|s| s.as_ref().to_os_string()));
        all.push(id.into());
        all.extend(args.iter().map(|s| s.as_ref().to_os_string()));
        self.call(&all)
    }

    pub fn pause(&self, id: &str) -> io::Result<Output> {
        self.call(&["pause", id])
    }

    pub fn resume(&self, id: &str) -> io::Result<Output> {
        self.call(&["resume", id])
    }

    /// `ps --format json`: the host pids of the container's processes.
    pub fn ps(&self, id: &str) -> io::Result<Vec<i64>> {
        let out = self.call(&["ps", "--format", "json", id])?.ok("ps")?;
        let value: Value = serde_json::from_str(&out.stdout)
            .map_err(|e| other(format!("ps {id}: bad JSON ({e}): {}", out.stdout)))?;
        value
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_i64).collect())
            .ok_or_else(|| other(format!("ps {id}: not a JSON array: {}", out.stdout)))
    }

    /// Polls `state` until the status is `status`.
    pub fn wait_status(&self, id: &str, status: &str, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let state = self.state(id)?;
            let now = state["status"].as_str().unwrap_or("").to_string();
            if now == status {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{id} is still {now:?} after {timeout:?}, expected {status:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Runtime {
    /// Force-deletes every container under this runtime's root (`list -q`,
    /// then `delete --force`); returns the ids it found.
    pub fn delete_all(&self) -> io::Result<Vec<String>> {
        let out = self.call(&["list", "-q"])?.ok("list -q")?;
        let ids: Vec<String> = out.stdout.split_whitespace().map(String::from).collect();
        for id in &ids {
            let _ = self.delete_force(id);
        }
        Ok(ids)
    }
}

/// The state root goes away with the `Runtime`: containers still listed in
/// it would be orphaned for good, so they are force-deleted first.
impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.delete_all();
    }
}

fn create_args(verb: &str, id: &str, bundle: &Path, opts: &CreateOptions) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![verb.into(), "--bundle".into(), bundle.into()];
    if let Some(sock) = &opts.console_socket {
        args.push("--console-socket".into());
        args.push(sock.into());
    }
    if let Some(pid_file) = &opts.pid_file {
        args.push("--pid-file".into());
        args.push(pid_file.into());
    }
    if opts.no_pivot {
        args.push("--no-pivot".into());
    }
    if opts.no_new_keyring {
        args.push("--no-new-keyring".into());
    }
    if opts.preserve_fds > 0 {
        args.push(format!("--preserve-fds={}", opts.preserve_fds).into());
    }
    args.push(id.into());
    args
}

fn execute(cmd: &mut Command, io: Io, timeout: Duration, what: &str) -> io::Result<Output> {
    let timeout = io.timeout.unwrap_or(timeout);
    if let Some(dir) = &io.cwd {
        cmd.current_dir(dir);
    }
    let (mut out, mut err, shared) = match io.output {
        Some(file) => (file.try_clone()?, file, true),
        None => (tempfile::tempfile()?, tempfile::tempfile()?, false),
    };
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(err.try_clone()?)
        .process_group(0);
    if !io.fds.is_empty() {
        let mut raw = [-1 as RawFd; 16];
        if io.fds.len() > raw.len() {
            return Err(other("too many fds to pass"));
        }
        for (slot, fd) in raw.iter_mut().zip(&io.fds) {
            *slot = fd.as_raw_fd();
        }
        let n = io.fds.len();
        // SAFETY: the closure only calls async-signal-safe fcntl/dup2 on fds
        // this process owns, and touches no heap memory.
        unsafe {
            cmd.pre_exec(move || {
                let mut high = [-1 as RawFd; 16];
                for i in 0..n {
                    high[i] = libc::fcntl(raw[i], libc::F_DUPFD_CLOEXEC, 64);
                    if high[i] < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                for (i, fd) in high.iter().enumerate().take(n) {
                    if libc::dup2(*fd, 3 + i as RawFd) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| other(format!("spawn {what}: {e}")))?;
    drop(io.fds);
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(timeout) {
        Ok(status) => status?,
        Err(_) => {
            // SAFETY: kill(2) on the child's own process group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = rx.recv();
            let mut stderr = String::new();
            err.rewind()?;
            let _ = err.read_to_string(&mut stderr);
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{what}: timed out after {timeout:?}; stderr: {stderr}"),
            ));
        }
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    // A caller-supplied file stays with the caller (a created container may
    // still be writing to it); only our own capture files are read here.
    if !shared {
        out.rewind()?;
        out.read_to_string(&mut stdout)?;
        err.rewind()?;
        err.read_to_string(&mut stderr)?;
    }
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Looks `name` up in PATH (and the sbin directories root's PATH may lack).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
