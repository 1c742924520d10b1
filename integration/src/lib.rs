//! End-to-end test harness: a private containerd 1.6 (its own root, state,
//! sockets and config, started and stopped by PID), stock `ctr` to drive it,
//! and checks that nothing is left behind on the host.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The workspace root (this crate lives in `<root>/integration`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

/// A release binary of this workspace; tests need `cargo build --release` first.
pub fn release_binary(name: &str) -> PathBuf {
    let p = berth_tests::release_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --release` first",
        p.display()
    );
    p
}

/// A containerd instance private to a test run.
pub struct Containerd {
    pub dir: tempfile::TempDir,
    pub address: PathBuf,
    child: Option<Child>,
}

const CONFIG: &str = r#"version = 2
root = "{dir}/root"
state = "{dir}/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]
[grpc]
  address = "{dir}/c.sock"
[ttrpc]
  address = "{dir}/c.sock.ttrpc"
[debug]
  level = "info"
"#;

impl Containerd {
    /// Starts containerd and waits until it answers.
    pub fn start() -> io::Result<Containerd> {
        let dir = tempfile::Builder::new()
            .prefix("berth-ctd-")
            .tempdir_in("/tmp")?;
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            CONFIG.replace("{dir}", &dir.path().display().to_string()),
        )?;
        let mut c = Containerd {
            address: dir.path().join("c.sock"),
            dir,
            child: None,
        };
        c.spawn()?;
        Ok(c)
    }

    fn spawn(&mut self) -> io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("containerd.log"))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .env("PATH", test_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if Command::new("ctr")
                .arg("-a")
                .arg(&self.address)
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(io::Error::other(format!(
            "containerd did not come up; log:\n{}",
            self.log()
        )))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Kills containerd with SIGKILL (tasks and shims keep running).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts containerd again with the same root, state and sockets.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr -a <address> -n <ns> args...`
    pub fn ctr(&self, ns: &str, args: &[&str]) -> Output {
        self.ctr_cmd(ns, args).output().expect("run ctr")
    }

    pub fn ctr_cmd(&self, ns: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("-a")
            .arg(&self.address)
            .arg("-n")
            .arg(ns)
            .args(args)
            .env("PATH", test_path());
        cmd
    }

    /// Runs ctr and returns its stdout; a failure is an error carrying
    /// ctr's output (a test failure, not a panic, so cleanup still runs).
    pub fn ctr_ok(&self, ns: &str, args: &[&str]) -> Result<String, String> {
        let out = self.ctr(ns, args);
        if out.status.success() {
            Ok(stdout(&out))
        } else {
            Err(format!(
                "ctr {args:?} failed ({}): {}{}",
                out.status,
                stdout(&out),
                stderr(&out)
            ))
        }
    }

    /// Imports the busybox test image into `ns` as `berth-test:latest`.
    pub fn import_test_image(&self, ns: &str) -> String {
        let image = berth_tests::image::TestImage::ensure().expect("build the test image");
        let tar = image.layout_tar.display().to_string();
        // The layout names the image (org.opencontainers.image.ref.name).
        if let Err(e) = self.ctr_ok(ns, &["images", "import", &tar]) {
            panic!("import the test image: {e}");
        }
        IMAGE.to_string()
    }

    /// The state directory of runtime v2 tasks in `ns`.
    pub fn task_state_dir(&self, ns: &str) -> PathBuf {
        self.dir
            .path()
            .join("state/io.containerd.runtime.v2.task")
            .join(ns)
    }
}

pub const IMAGE: &str = "berth-test:latest";

impl Containerd {
    /// Removes every task and container left in any namespace (after a
    /// failed test), so no shim or container outlives the harness.
    fn sweep(&self) {
        let namespaces = self.ctr("default", &["namespaces", "ls", "-q"]);
        for ns in String::from_utf8_lossy(&namespaces.stdout).lines() {
            let tasks = self.ctr(ns, &["task", "ls", "-q"]);
            for id in String::from_utf8_lossy(&tasks.stdout).lines() {
                let _ = self.ctr(ns, &["task", "kill", "-s", "9", id]);
                let _ = self.ctr(ns, &["task", "rm", "-f", id]);
            }
            let containers = self.ctr(ns, &["c", "ls", "-q"]);
            for id in String::from_utf8_lossy(&containers.stdout).lines() {
                let _ = self.ctr(ns, &["c", "rm", id]);
            }
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.sweep();
        }
        if let Some(mut c) = self.child.take() {
            // SAFETY: plain kill(2) of our own child.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        unmount_under(self.dir.path());
    }
}

/// PATH for containerd and ctr: our release binaries first (so the shim is
/// found by runtime name), then the system.
pub fn test_path() -> String {
    format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        berth_tests::release_dir().display()
    )
}

/// A containerd namespace unique to this process and test.
pub fn unique_ns(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let clean: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!(
        "bt{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        clean
    )
}

/// Lazily unmounts everything below `root`.
pub fn unmount_under(root: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(|s| s.replace("\\040", " ")))
        .filter(|m| Path::new(m).starts_with(root))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").arg("-l").arg(&p).status();
    }
}

/// What a container may leave on the host, checked after it is gone.
pub fn leftovers(ns: &str, id: &str, ctd: &Containerd) -> Vec<String> {
    let mut found = Vec::new();
    // cgroup directories named after the container, in every hierarchy.
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in entries.flatten() {
            let dir = e.path().join(ns).join(id);
            if dir.exists() {
                found.push(format!("cgroup {}", dir.display()));
            }
        }
    }
    // Mounts of the container's rootfs.
    if let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") {
        for l in info.lines() {
            if let Some(mp) = l.split(' ').nth(4) {
                if mp.contains(&format!("/{ns}/{id}")) {
                    found.push(format!("mount {mp}"));
                }
            }
        }
    }
    // Processes in the container's cgroup (any hierarchy).
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let name = p.file_name().to_string_lossy().into_owned();
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if let Ok(cg) = std::fs::read_to_string(p.path().join("cgroup")) {
                if cg.lines().any(|l| l.ends_with(&format!("/{ns}/{id}"))) {
                    let cmd = std::fs::read_to_string(p.path().join("cmdline"))
                        .unwrap_or_default()
                        .replace('\0', " ");
                    found.push(format!("process {name} ({cmd})"));
                }
            }
        }
    }
    // Bundle and runtime state.
    let bundle = ctd.task_state_dir(ns).join(id);
    if bundle.exists() {
        found.push(format!("bundle {}", bundle.display()));
    }
    for root in ["/run/containerd/runc", "/run/containerd/berth"] {
        let state = Path::new(root).join(ns).join(id);
        if state.exists() {
            found.push(format!("runtime state {}", state.display()));
        }
    }
    let socket = shim_socket(ctd, ns, id);
    if socket.exists() {
        found.push(format!("shim socket {}", socket.display()));
    }
    found
}

/// The socket a shim for container `id` listens on: containerd 1.6's
/// scheme, /run/containerd/s/<sha256 of "<address>/<ns>/<id>">.
pub fn shim_socket(ctd: &Containerd, ns: &str, id: &str) -> PathBuf {
    use sha2::{Digest, Sha256};
    let key = format!("{}/{ns}/{id}", ctd.address.display());
    let hex: String = Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Path::new("/run/containerd/s").join(hex)
}

/// Waits until `f` returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `Err(msg())` unless `cond`: an assertion that fails a test without
/// panicking.
pub fn check(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `ctr events` running in the background, collecting lines.
pub struct EventWatcher {
    child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl EventWatcher {
    pub fn start(ctd: &Containerd) -> EventWatcher {
        let mut child = ctd
            .ctr_cmd("default", &["events"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ctr events");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("ctr events stdout");
        let sink = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        // Give the subscription a moment to be established.
        std::thread::sleep(Duration::from_millis(150));
        EventWatcher { child, lines }
    }

    /// Topics seen for namespace `ns`, in order, with their JSON payloads.
    pub fn topics(&self, ns: &str) -> Vec<(String, String)> {
        let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
        lines
            .iter()
            .filter_map(|l| {
                // "<date> <time> <tz> <zone> <ns> <topic> <json>"
                let f: Vec<&str> = l.splitn(7, ' ').collect();
                (f.len() == 7 && f[4] == ns).then(|| (f[5].to_string(), f[6].to_string()))
            })
            .collect()
    }

    /// Waits until an event of `topic` in `ns` whose payload contains `needle` shows up.
    pub fn wait_for(&self, ns: &str, topic: &str, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || {
            self.topics(ns)
                .iter()
                .any(|(t, j)| t == topic && j.contains(needle))
        })
    }
}

impl Drop for EventWatcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pid of the shim serving container `id` in `ns` (from its cmdline
/// or, for forked shims, the bundle's address socket owner).
pub fn shim_pid(ctd: &Containerd, ns: &str, id: &str) -> Option<i32> {
    let bundle = ctd.task_state_dir(ns).join(id);
    let address = std::fs::read_to_string(bundle.join("address")).ok()?;
    let socket = address.trim().trim_start_matches("unix://").to_string();
    // Find the process holding the listening socket inode.
    let inode = std::fs::read_to_string("/proc/net/unix")
        .ok()?
        .lines()
        .find(|l| l.ends_with(&socket))
        .and_then(|l| l.split_whitespace().nth(6).map(String::from))?;
    let needle = format!("socket:[{inode}]");
    for p in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = p.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<i32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path())
                .map(|l| l.to_string_lossy() == needle)
                .unwrap_or(false)
            {
                let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
                if comm.starts_with("containerd-shim") {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// Removes the (empty) per-namespace parent cgroups containerd's default
/// cgroup path `/<ns>/<id>` leaves in every hierarchy once a test's
/// containers are gone, and the (empty) per-namespace runtime roots.
pub fn remove_namespace_cgroups(ns: &str) {
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in entries.flatten() {
            let _ = std::fs::remove_dir(e.path().join(ns));
        }
    }
    // The per-namespace runtime roots (runc's and ours), once empty.
    for root in ["/run/containerd/runc", "/run/containerd/berth"] {
        let _ = std::fs::remove_dir(Path::new(root).join(ns));
    }
}
