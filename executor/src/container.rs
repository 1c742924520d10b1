//! The container API: a `Runtime` (a state root) holds containers; a
//! `Container` is loaded from its state directory and offers the lifecycle
//! operations runc has. `create` lives in create.rs, `exec` in exec.rs.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cgroups::Stats;
use crate::error::{Error, IoContext, Result};
use crate::process::channel::{self, Kind};
use crate::process::hooks;
use crate::spec::Resources;
use crate::state::{self, OciState, SavedState, Status, NOTIFY_SOCKET, OCI_VERSION};
use crate::sys::{self, fd, proc};

/// A runtime instance: where container state lives and how to reach CRIU.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// State root (runc's --root), e.g. /run/berth-runc.
    pub root: PathBuf,
    /// The criu binary (name or path).
    pub criu: PathBuf,
    /// --systemd-cgroup was given (not supported: create fails clearly).
    pub systemd_cgroup: bool,
}

/// The default state root.
pub const DEFAULT_ROOT: &str = "/run/berth-runc";

impl Default for Runtime {
    fn default() -> Self {
        Runtime::new(DEFAULT_ROOT)
    }
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Runtime {
        Runtime {
            root: root.into(),
            criu: PathBuf::from("criu"),
            systemd_cgroup: false,
        }
    }

    /// Loads a container by id.
    pub fn load(&self, id: &str) -> Result<Container> {
        crate::create::validate_id(id).map_err(|_| Error::NotFound { id: id.to_string() })?;
        let dir = self.root.join(id);
        let saved = SavedState::load(&dir, id)?;
        Ok(Container::from_saved(self, saved))
    }

    /// All containers under the root, sorted by id. Directories without a
    /// readable state (a create in progress) are skipped.
    pub fn list(&self) -> Result<Vec<Container>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("read {}", self.root.display()), e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if let Ok(c) = self.load(&id) {
                out.push(c);
            }
        }
        out.sort_by(|a, b| a.id().cmp(b.id()));
        Ok(out)
    }
}

/// A container known to the runtime.
#[derive(Debug, Clone)]
pub struct Container {
    runtime: Runtime,
    pub state: SavedState,
}

impl Container {
    pub(crate) fn from_saved(runtime: &Runtime, state: SavedState) -> Container {
        Container {
            runtime: runtime.clone(),
            state,
        }
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    pub fn pid(&self) -> i32 {
        self.state.pid
    }

    pub fn bundle(&self) -> &Path {
        &self.state.bundle
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The state directory.
    pub fn dir(&self) -> PathBuf {
        self.runtime.root.join(&self.state.id)
    }

    /// The container's status right now.
    pub fn status(&self) -> Status {
        if !state::init_alive(self.state.pid, self.state.pid_start_time) {
            return Status::Stopped;
        }
        if self.dir().join(NOTIFY_SOCKET).exists() {
            return Status::Created;
        }
        if self.state.cgroup.is_frozen().unwrap_or(false) {
            return Status::Paused;
        }
        Status::Running
    }

    /// The runc-compatible `state` document.
    pub fn oci_state(&self) -> OciState {
        let status = self.status();
        OciState {
            oci_version: OCI_VERSION.into(),
            id: self.state.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.state.pid
            },
            status,
            bundle: self.state.bundle.clone(),
            rootfs: self.state.rootfs.clone(),
            created: self.state.created.clone(),
            owner: String::new(),
            annotations: self.state.annotations.clone(),
        }
    }

    fn invalid_state(&self, status: Status, message: &str) -> Error {
        Error::InvalidState {
            id: self.state.id.clone(),
            status: status.to_string(),
            message: message.to_string(),
        }
    }

    /// Starts the user process of a created container, then runs the
    /// poststart hooks (failures there are warnings, as the spec says).
    pub fn start(&mut self) -> Result<()> {
        let status = self.status();
        if status != Status::Created {
            return Err(self.invalid_state(status, "only a created container can be started"));
        }
        let dir = self.dir();
        let dirf = std::fs::File::open(&dir).context(|| format!("open {}", dir.display()))?;
        let path = format!("/proc/self/fd/{}/{NOTIFY_SOCKET}", dirf.as_raw_fd());
        let raw = sys::socket::connect_unix(path.as_bytes()).map_err(|e| {
            Error::sys(
                format!(
                    "connect to the container init ({})",
                    dir.join(NOTIFY_SOCKET).display()
                ),
                e,
            )
        })?;
        // SAFETY: raw was just returned by socket(2) and is owned here.
        let conn = unsafe { OwnedFd::from_raw_fd(raw) };
        fd::write_all(conn.as_raw_fd(), &[1])
            .map_err(|e| Error::sys("signal the container init", e))?;
        // The init closes the connection by exec'ing (close-on-exec), or
        // writes what went wrong first.
        let mut buf = [0u8; channel::MSG_LEN];
        let n = fd::read_full(conn.as_raw_fd(), &mut buf)
            .map_err(|e| Error::sys("wait for the container process", e))?;
        let _ = std::fs::remove_file(dir.join(NOTIFY_SOCKET));
        if n > 0 {
            let err = match channel::decode(&buf[..n]) {
                Some(msg) if msg.kind == Kind::Error => {
                    crate::process::spawn::describe_failure(&msg, &|stage, index| {
                        crate::process::describe::describe_stage(&self.state.config, stage, index)
                    })
                }
                _ => Error::Setup("the container init failed to start the process".into()),
            };
            return Err(err);
        }
        self.state.started = true;
        self.state.save(&dir)?;
        let hooks = self.state.config.hooks.clone().unwrap_or_default();
        if !hooks.poststart.is_empty() {
            hooks::run_all_warn(
                &hooks.poststart,
                &self.state.hook_state(Status::Running),
                "poststart",
                &self.state.id,
            );
        }
        Ok(())
    }

    /// Sends `signal` to the init, or with `all` to every process in the
    /// container's cgroup.
    pub fn kill(&self, signal: i32, all: bool) -> Result<()> {
        let status = self.status();
        if status == Status::Stopped {
            return Err(self.invalid_state(status, "container not running"));
        }
        if all {
            return self.signal_all(signal);
        }
        proc::kill(self.state.pid, signal)
            .map_err(|e| Error::sys(format!("signal {signal} to pid {}", self.state.pid), e))?;
        if status == Status::Paused && signal == libc::SIGKILL {
            let _ = self.state.cgroup.thaw();
        }
        Ok(())
    }

    /// Signals every process in the cgroup; the freezer keeps new forks from
    /// slipping through (as runc does).
    fn signal_all(&self, signal: i32) -> Result<()> {
        let cg = &self.state.cgroup;
        let was_frozen = cg.is_frozen().unwrap_or(false);
        let froze = !was_frozen && cg.freeze().is_ok();
        let pids = cg.pids()?;
        for pid in pids {
            let _ = proc::kill(pid, signal);
        }
        if froze || (was_frozen && signal == libc::SIGKILL) {
            cg.thaw()?;
        }
        Ok(())
    }

    /// Deletes the container. A created container is killed first (as runc
    /// does: containerd relies on it); a running or paused one needs `force`.
    pub fn delete(self, force: bool) -> Result<()> {
        let status = self.status();
        match status {
            Status::Stopped | Status::Creating => {}
            Status::Created => {
                let _ = proc::kill(self.state.pid, libc::SIGKILL);
                self.wait_exit(Duration::from_secs(10));
            }
            Status::Running | Status::Paused if !force => {
                return Err(self.invalid_state(
                    status,
                    "cannot delete a container that is not stopped (stop it first or use --force)",
                ))
            }
            Status::Running | Status::Paused => {
                let _ = self.signal_all(libc::SIGKILL);
                let _ = proc::kill(self.state.pid, libc::SIGKILL);
                if status == Status::Paused {
                    let _ = self.state.cgroup.thaw();
                }
                if !self.wait_exit(Duration::from_secs(10)) {
                    return Err(Error::Setup(format!(
                        "container {}: init {} did not exit after SIGKILL",
                        self.state.id, self.state.pid
                    )));
                }
            }
        }
        self.destroy()
    }

    /// Removes the container's resources, then runs poststop hooks.
    pub(crate) fn destroy(self) -> Result<()> {
        // Without its own pid namespace, processes may outlive the init.
        if self.state.cgroup.exists() {
            let _ = self.signal_all(libc::SIGKILL);
        }
        let cg_result = self.state.cgroup.destroy();
        if self.state.host_mounts {
            unmount_under(&self.state.rootfs);
        }
        let dir = self.dir();
        std::fs::remove_dir_all(&dir).context(|| format!("remove {}", dir.display()))?;
        let hooks = self.state.config.hooks.clone().unwrap_or_default();
        if !hooks.poststop.is_empty() {
            hooks::run_all_warn(
                &hooks.poststop,
                &self.state.hook_state(Status::Stopped),
                "poststop",
                &self.state.id,
            );
        }
        cg_result.map_err(Error::from)
    }

    /// Waits until the init has exited (it need not be our child).
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        let pid = self.state.pid;
        if let Ok(pfd) = proc::pidfd_open(pid) {
            let ready = fd::poll_readable(pfd, timeout.as_millis().min(i32::MAX as u128) as i32);
            fd::close(pfd);
            if ready.unwrap_or(false) {
                // Exited; it may linger as a zombie until its parent reaps it.
                return true;
            }
            return !state::init_alive(pid, self.state.pid_start_time);
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !state::init_alive(pid, self.state.pid_start_time) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    pub fn pause(&self) -> Result<()> {
        match self.status() {
            Status::Running => self.state.cgroup.freeze().map_err(Error::from),
            s => Err(self.invalid_state(s, "only a running container can be paused")),
        }
    }

    pub fn resume(&self) -> Result<()> {
        match self.status() {
            Status::Paused => self.state.cgroup.thaw().map_err(Error::from),
            s => Err(self.invalid_state(s, "container is not paused")),
        }
    }

    /// Host pids of every process in the container.
    pub fn pids(&self) -> Result<Vec<i32>> {
        if self.status() == Status::Stopped && !self.state.cgroup.exists() {
            return Ok(Vec::new());
        }
        Ok(self.state.cgroup.pids()?)
    }

    pub fn stats(&self) -> Result<Stats> {
        Ok(self.state.cgroup.stats()?)
    }

    /// Applies new resource limits and remembers them.
    pub fn update(&mut self, r: &Resources) -> Result<()> {
        let status = self.status();
        if status == Status::Stopped {
            return Err(self.invalid_state(status, "cannot update a stopped container"));
        }
        // The cgroup layer applies resources declaratively (device rules
        // included), so apply the merged set, then remember it.
        let linux = self.state.config.linux.get_or_insert_with(Default::default);
        let mut merged = linux.resources.clone().unwrap_or_default();
        merge_resources(&mut merged, r);
        self.state.cgroup.apply(&merged)?;
        linux.resources = Some(merged);
        self.state.save(&self.dir())
    }
}

/// Overwrites the fields `new` sets.
fn merge_resources(current: &mut Resources, new: &Resources) {
    if !new.devices.is_empty() {
        current.devices = new.devices.clone();
    }
    macro_rules! merge_opt {
        ($($f:ident),*) => {$(
            if let Some(n) = &new.$f {
                let c = current.$f.get_or_insert_with(Default::default);
                merge_struct(c, n);
            }
        )*};
    }
    merge_opt!(memory, cpu, block_io, network);
    if let Some(p) = &new.pids {
        current.pids = Some(p.clone());
    }
    if !new.hugepage_limits.is_empty() {
        current.hugepage_limits = new.hugepage_limits.clone();
    }
    current.unified.extend(new.unified.clone());
    current.rdma.extend(new.rdma.clone());
}

/// Field-wise merge through JSON: set fields of `new` replace those of `current`.
fn merge_struct<T: serde::Serialize + serde::de::DeserializeOwned>(current: &mut T, new: &T) {
    let (Ok(mut cur), Ok(newv)) = (serde_json::to_value(&*current), serde_json::to_value(new))
    else {
        return;
    };
    if let (Some(c), Some(n)) = (cur.as_object_mut(), newv.as_object()) {
        for (k, v) in n {
            c.insert(k.clone(), v.clone());
        }
    }
    if let Ok(merged) = serde_json::from_value(cur) {
        *current = merged;
    }
}

/// Lazily unmounts every mount at or below `root` (deepest first): the
/// mounts of a container that shared the host mount namespace.
pub(crate) fn unmount_under(root: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(root))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    points.dedup();
    for p in points {
        if let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) {
            let _ = sys::mount::umount2(c.as_ptr(), libc::MNT_DETACH);
        }
    }
}
