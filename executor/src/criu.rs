//! Checkpoint and restore through the `criu` binary. Bind mounts and the
//! cgroup mounts are declared external (they come from the host), the
//! container's stdio pipes are recorded at dump and re-attached at restore
//! (`--inherit-fd`), and cgroups are managed by us: criu runs inside the new
//! container's cgroup, so the restored tree lands there.

use std::ffi::CString;
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::cgroups::{Cgroup, CgroupFsType};
use crate::container::{Container, Runtime};
use crate::create::{absolute, validate_id};
use crate::error::{Error, IoContext, Result};
use crate::rootfs::plan::relative;
use crate::spec::{self, NamespaceType, Spec};
use crate::state::{self, SavedState, Status};

/// Options shared by checkpoint and restore (runc's flags).
#[derive(Debug, Clone, Default)]
pub struct CriuOptions {
    /// Where the images are written (checkpoint) or read (restore).
    pub image_path: PathBuf,
    /// Where criu puts its log and work files (default: the image path).
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    /// Namespaces criu leaves empty (e.g. "network").
    pub empty_ns: Vec<String>,
    /// criu's --manage-cgroups mode; default "ignore" (the runtime owns cgroups).
    pub manage_cgroups_mode: Option<String>,
}

/// How to checkpoint.
#[derive(Debug, Clone, Default)]
pub struct CheckpointOptions {
    pub criu: CriuOptions,
    pub leave_running: bool,
    /// A previous (pre-)dump to build on.
    pub parent_path: Option<PathBuf>,
    /// Dump memory only, leave the process running (iterative migration).
    pub pre_dump: bool,
}

/// How to restore.
#[derive(Debug, Default)]
pub struct RestoreOptions {
    pub criu: CriuOptions,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    /// The restored process's stdin, stdout, stderr (default: ours).
    pub stdio: Option<[std::os::fd::RawFd; 3]>,
}

/// The container's stdio at dump time, by /proc/<pid>/fd link.
const DESCRIPTORS: &str = "descriptors.json";

#[derive(Debug, Serialize, Deserialize)]
struct Descriptors {
    stdio: Vec<String>,
}

/// Mounts criu must treat as external: (mountpoint in the container, host source).
fn external_mounts(config: &Spec, cgroup: &Cgroup) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for m in &config.mounts {
        let is_bind = m.typ.as_deref() == Some("bind")
            || m.options.iter().any(|o| o == "bind" || o == "rbind");
        let dest = format!("/{}", relative(&m.destination));
        if is_bind {
            out.push((dest, PathBuf::from(m.source.clone().unwrap_or_default())));
        } else if m.typ.as_deref() == Some("cgroup") && !cgroupns(config) {
            for h in cgroup.hierarchies() {
                if h.fs_type == CgroupFsType::Cgroup && !h.name.is_empty() {
                    out.push((format!("{dest}/{}", h.name), h.dir.clone()));
                } else if cgroup.is_v2() {
                    out.push((dest.clone(), h.dir.clone()));
                }
            }
        }
    }
    out
}

fn cgroupns(config: &Spec) -> bool {
    config
        .linux
        .as_ref()
        .is_some_and(|l| l.namespaces.iter().any(|n| n.typ == NamespaceType::Cgroup))
}

fn common_args(cmd: &mut Command, o: &CriuOptions, work: &Path, log: &str) {
    cmd.arg("-D")
        .arg(&o.image_path)
        .arg("-W")
        .arg(work)
        .arg("-o")
        .arg(log)
        .arg("-v4");
    cmd.arg(format!(
        "--manage-cgroups={}",
        o.manage_cgroups_mode.as_deref().unwrap_or("ignore")
    ));
    for (flag, on) in [
        ("--tcp-established", o.tcp_established),
        ("--ext-unix-sk", o.ext_unix_sk),
        ("--shell-job", o.shell_job),
        ("--file-locks", o.file_locks),
    ] {
        if on {
            cmd.arg(flag);
        }
    }
    for ns in &o.empty_ns {
        let name = if ns == "network" { "net" } else { ns.as_str() };
        cmd.arg("--empty-ns").arg(name);
    }
}

/// The last lines of a criu log, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Error") || l.contains("error"))
        .collect();
    let pick = if lines.is_empty() {
        text.lines().rev().take(3).collect::<Vec<_>>()
    } else {
        lines.into_iter().rev().take(3).collect()
    };
    pick.into_iter().rev().collect::<Vec<_>>().join("; ")
}

fn run_criu(mut cmd: Command, what: &str, log: &Path) -> Result<()> {
    tracing::debug!(?cmd, "running criu");
    let status = cmd.status().map_err(|e| {
        Error::Criu(format!(
            "{what}: cannot run criu ({:?}): {e}",
            cmd.get_program()
        ))
    })?;
    if !status.success() {
        return Err(Error::Criu(format!(
            "{what} failed ({status}); {}: {}",
            log.display(),
            log_tail(log)
        )));
    }
    Ok(())
}

impl Container {
    /// Checkpoints the container into `opts.criu.image_path`.
    pub fn checkpoint(&self, opts: &CheckpointOptions) -> Result<()> {
        let status = self.status();
        if !matches!(status, Status::Running | Status::Paused) {
            return Err(Error::InvalidState {
                id: self.id().to_string(),
                status: status.to_string(),
                message: "only a running or paused container can be checkpointed".into(),
            });
        }
        let o = &opts.criu;
        std::fs::create_dir_all(&o.image_path)
            .context(|| format!("create image path {}", o.image_path.display()))?;
        let work = o.work_path.clone().unwrap_or_else(|| o.image_path.clone());
        std::fs::create_dir_all(&work)
            .context(|| format!("create work path {}", work.display()))?;
        // Remember the stdio pipes so restore can hand in new ones.
        let stdio = (0..3)
            .map(|i| {
                std::fs::read_link(format!("/proc/{}/fd/{i}", self.pid()))
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        let desc = serde_json::to_vec(&Descriptors { stdio })
            .map_err(|e| Error::Criu(format!("encode descriptors: {e}")))?;
        std::fs::write(o.image_path.join(DESCRIPTORS), desc)
            .context(|| "write descriptors.json".into())?;

        let mut cmd = Command::new(&self.runtime().criu);
        cmd.arg(if opts.pre_dump { "pre-dump" } else { "dump" });
        cmd.arg("-t").arg(self.pid().to_string());
        common_args(
            &mut cmd,
            o,
            &work,
            if opts.pre_dump {
                "pre-dump.log"
            } else {
                "dump.log"
            },
        );
        cmd.arg("--root").arg(&self.state.rootfs);
        if let Some(p) = &opts.parent_path {
            cmd.arg("--prev-images-dir").arg(p).arg("--track-mem");
        }
        if opts.leave_running && !opts.pre_dump {
            cmd.arg("--leave-running");
        }
        if let Some(freezer) = self
            .state
            .cgroup
            .hierarchies()
            .iter()
            .find(|h| h.name == "freezer")
        {
            cmd.arg("--freeze-cgroup").arg(&freezer.dir);
        }
        for (dest, _) in external_mounts(&self.state.config, &self.state.cgroup) {
            cmd.arg("--external").arg(format!("mnt[{dest}]:{dest}"));
        }
        // A network namespace joined by path belongs to someone else.
        if let Some(inode) = self.external_netns_inode() {
            cmd.arg("--external")
                .arg(format!("net[{inode}]:extRootNetNS"));
        }
        cmd.stdin(Stdio::null());
        run_criu(
            cmd,
            "criu dump",
            &work.join(if opts.pre_dump {
                "pre-dump.log"
            } else {
                "dump.log"
            }),
        )
    }

    fn external_netns_inode(&self) -> Option<u64> {
        use std::os::unix::fs::MetadataExt;
        let linux = self.state.config.linux.as_ref()?;
        let ns = linux
            .namespaces
            .iter()
            .find(|n| n.typ == NamespaceType::Network)?;
        let path = ns.path.as_ref()?;
        std::fs::metadata(path).ok().map(|m| m.ino())
    }
}

impl Runtime {
    /// Restores a container from a checkpoint into a new container `id`
    /// whose process runs again; our stdio becomes its stdio pipes.
    pub fn restore(&self, id: &str, opts: RestoreOptions) -> Result<Container> {
        validate_id(id)?;
        let bundle = absolute(&opts.bundle)?;
        let config = spec::load_bundle_config(&bundle)?;
        spec::validate(&config)?;
        let state_dir = self.root.join(id);
        if state_dir.exists() {
            return Err(Error::AlreadyExists { id: id.to_string() });
        }
        let root = config
            .root
            .as_ref()
            .map(|r| r.path.clone())
            .unwrap_or_default();
        let rootfs = (if Path::new(&root).is_absolute() {
            PathBuf::from(&root)
        } else {
            bundle.join(&root)
        })
        .canonicalize()
        .map_err(|e| Error::invalid("root.path", e.to_string()))?;
        let o = &opts.criu;
        let desc: Descriptors = std::fs::read(o.image_path.join(DESCRIPTORS))
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .ok_or_else(|| {
                Error::Criu(format!(
                    "{}: no {DESCRIPTORS}: not a berth checkpoint",
                    o.image_path.display()
                ))
            })?;
        let linux = config.linux.clone().unwrap_or_default();
        let cgroup = Cgroup::resolve(linux.cgroups_path.as_deref(), id)?;

        std::fs::create_dir_all(&self.root)
            .context(|| format!("create {}", self.root.display()))?;
        std::fs::create_dir(&state_dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::AlreadyExists { id: id.to_string() },
            _ => Error::io(format!("create {}", state_dir.display()), e),
        })?;
        let undo = RestoreUndo {
            state_dir: state_dir.clone(),
            cgroup: Some(cgroup.clone()),
            criu_root: state_dir.join("criu-root"),
        };
        cgroup.create()?;
        cgroup.apply(&linux.resources.clone().unwrap_or_default())?;
        // criu needs the rootfs as a mount point of its own.
        std::fs::create_dir(&undo.criu_root).context(|| "create criu root".into())?;
        let criu_root = CString::new(undo.criu_root.as_os_str().as_bytes())
            .map_err(|_| Error::invalid("root.path", "NUL byte"))?;
        let src = CString::new(rootfs.as_os_str().as_bytes())
            .map_err(|_| Error::invalid("root.path", "NUL byte"))?;
        crate::sys::mount::mount(
            src.as_ptr(),
            criu_root.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        )
        .map_err(|e| Error::sys(format!("bind {} for criu", rootfs.display()), e))?;

        let work = o.work_path.clone().unwrap_or_else(|| o.image_path.clone());
        std::fs::create_dir_all(&work)
            .context(|| format!("create work path {}", work.display()))?;
        let pidfile = state_dir.join("criu.pid");
        let mut cmd = Command::new(&self.criu);
        cmd.arg("restore");
        common_args(&mut cmd, o, &work, "restore.log");
        cmd.arg("--root").arg(&undo.criu_root);
        cmd.arg("--restore-detached")
            .arg("--restore-sibling")
            .arg("--pidfile")
            .arg(&pidfile);
        for (dest, source) in external_mounts(&config, &cgroup) {
            cmd.arg("--external")
                .arg(format!("mnt[{dest}]:{}", source.display()));
        }
        for (fd, link) in desc.stdio.iter().enumerate() {
            if link.starts_with("pipe:") || link.starts_with("socket:") {
                cmd.arg("--inherit-fd").arg(format!("fd[{fd}]:{link}"));
            }
        }
        // A network namespace joined by path: hand it to criu as the
        // external namespace the dump referred to.
        let mut netns_file = None;
        if let Some(path) = linux
            .namespaces
            .iter()
            .find(|n| n.typ == NamespaceType::Network)
            .and_then(|n| n.path.clone())
        {
            let f = std::fs::File::open(&path).context(|| format!("open {path}"))?;
            let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
            crate::sys::fd::set_cloexec(fd, false)
                .map_err(|e| Error::sys("pass the network namespace to criu", e))?;
            cmd.arg("--inherit-fd")
                .arg(format!("fd[{fd}]:extRootNetNS"));
            netns_file = Some(f);
        }
        // criu (and so the restored tree) starts inside the new cgroup.
        let procs: Vec<CString> = cgroup
            .hierarchies()
            .iter()
            .filter_map(|h| CString::new(h.dir.join("cgroup.procs").as_os_str().as_bytes()).ok())
            .collect();
        // SAFETY: the closure only makes raw open/write/close calls on
        // prepared strings, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                for p in &procs {
                    let _ = crate::sys::fs::write_file(p.as_ptr(), b"0");
                }
                Ok(())
            });
        }
        if let Some(fds) = opts.stdio {
            // criu hands its own fds 0-2 to the restored process (--inherit-fd).
            let dup = |fd| -> Result<Stdio> {
                // SAFETY: fd is a valid descriptor owned by the caller; we
                // duplicate it and own the duplicate.
                let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
                if d < 0 {
                    return Err(Error::io(
                        "dup stdio for criu",
                        std::io::Error::last_os_error(),
                    ));
                }
                // SAFETY: d was just created and is owned here.
                Ok(Stdio::from(unsafe { std::os::fd::OwnedFd::from_raw_fd(d) }))
            };
            cmd.stdin(dup(fds[0])?)
                .stdout(dup(fds[1])?)
                .stderr(dup(fds[2])?);
        }
        let result = run_criu(cmd, "criu restore", &work.join("restore.log"));
        drop(netns_file);
        let _ = crate::sys::mount::umount2(criu_root.as_ptr(), libc::MNT_DETACH);
        let _ = std::fs::remove_dir(&undo.criu_root);
        result?;
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| {
                Error::Criu(format!(
                    "criu restore wrote no pid to {}",
                    pidfile.display()
                ))
            })?;
        let _ = std::fs::remove_file(&pidfile);
        let saved = SavedState {
            id: id.to_string(),
            pid,
            pid_start_time: state::process_start_time(pid).unwrap_or(0),
            bundle,
            rootfs,
            created: state::rfc3339_now(),
            annotations: config.annotations.clone(),
            cgroup,
            config,
            host_mounts: false,
            // CRIU does not restore keyrings: the restored process keeps
            // the restorer's session keyring, as with runc.
            no_new_keyring: true,
            started: true,
        };
        saved.save(&state_dir)?;
        if let Some(p) = &opts.pid_file {
            std::fs::write(p, pid.to_string())
                .context(|| format!("write pid file {}", p.display()))?;
        }
        undo.disarm();
        Ok(Container::from_saved(self, saved))
    }
}

/// Removes the state directory and cgroup of a failed restore.
struct RestoreUndo {
    state_dir: PathBuf,
    cgroup: Option<Cgroup>,
    criu_root: PathBuf,
}

impl RestoreUndo {
    fn disarm(mut self) {
        self.cgroup = None;
        self.state_dir = PathBuf::new();
    }
}

impl Drop for RestoreUndo {
    fn drop(&mut self) {
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.destroy();
        }
        if !self.state_dir.as_os_str().is_empty() {
            if let Ok(c) = CString::new(self.criu_root.as_os_str().as_bytes()) {
                let _ = crate::sys::mount::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
            let _ = std::fs::remove_dir_all(&self.state_dir);
        }
    }
}
