//! `create`: validate the bundle, plan the init, create the state directory
//! and cgroup, clone the init and wait until it is ready to start. On any
//! error everything created so far is removed again.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::cgroups::Cgroup;
use crate::container::{Container, Runtime};
use crate::error::{Error, IoContext, Result};
use crate::process::channel::Stage;
use crate::process::hooks;
use crate::process::keyring::KeyringPlan;
use crate::process::plan::{HookPlan, InitPlan, ProcessPlan};
use crate::process::spawn::{self, SpawnEvents};
use crate::rootfs::plan::PlanContext;
use crate::spec::{self, Linux, NamespaceType, Spec};
use crate::state::{self, SavedState, Status};
use crate::sys;

/// How to create a container.
#[derive(Debug, Default)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master (terminal: true).
    pub console_socket: Option<PathBuf>,
    /// An already connected console socket (in-process callers).
    pub console_fd: Option<OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// Pass fds 3..3+preserve_fds to the container process.
    pub preserve_fds: i32,
    /// fds for the container's stdin, stdout, stderr (default: inherit ours).
    pub stdio: Option<[RawFd; 3]>,
}

/// Container ids as runc accepts them.
pub fn validate_id(id: &str) -> Result<()> {
    let invalid = |reason| Error::InvalidId {
        id: id.to_string(),
        reason,
    };
    if id.is_empty() {
        return Err(invalid("it is empty"));
    }
    if id.len() > 1024 {
        return Err(invalid("it is longer than 1024 bytes"));
    }
    if id == "." || id == ".." {
        return Err(invalid("it is a relative path component"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b))
    {
        return Err(invalid(
            "only letters, digits, '_', '+', '-' and '.' are allowed",
        ));
    }
    Ok(())
}

/// Removes what a failed create left behind.
struct Cleanup {
    state_dir: Option<PathBuf>,
    cgroup: Option<Cgroup>,
    rootfs_mounts: Option<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(root) = self.rootfs_mounts.take() {
            crate::container::unmount_under(&root);
        }
        if let Some(cg) = self.cgroup.take() {
            if let Err(e) = cg.destroy() {
                tracing::warn!("removing cgroup after failed create: {e}");
            }
        }
        if let Some(dir) = self.state_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Runtime {
    /// Creates a container: on success its init exists and waits for `start`.
    pub fn create(&self, id: &str, opts: CreateOptions) -> Result<Container> {
        validate_id(id)?;
        let bundle = absolute(&opts.bundle)?;
        let spec = spec::load_bundle_config(&bundle)?;
        spec::validate(&spec)?;
        let state_dir = self.root.join(id);
        if state_dir.exists() {
            return Err(Error::AlreadyExists { id: id.to_string() });
        }
        let root = spec
            .root
            .as_ref()
            .map(|r| r.path.clone())
            .unwrap_or_default();
        let rootfs_in = if Path::new(&root).is_absolute() {
            PathBuf::from(&root)
        } else {
            bundle.join(&root)
        };
        let rootfs = rootfs_in
            .canonicalize()
            .map_err(|e| Error::invalid("root.path", format!("{}: {e}", rootfs_in.display())))?;
        if !rootfs.is_dir() {
            return Err(Error::invalid(
                "root.path",
                format!("{} is not a directory", rootfs.display()),
            ));
        }
        let linux = spec.linux.clone().unwrap_or_default();
        if self.systemd_cgroup {
            return Err(Error::Unsupported(
                "--systemd-cgroup: the systemd cgroup driver is not supported; use the cgroupfs driver (omit the flag)".into(),
            ));
        }
        let cgroup = Cgroup::resolve(linux.cgroups_path.as_deref(), id)?;
        let process = spec
            .process
            .as_ref()
            .ok_or_else(|| Error::invalid("process", "is required"))?;
        if process.terminal && opts.console_socket.is_none() && opts.console_fd.is_none() {
            return Err(Error::invalid(
                "process.terminal",
                "is true, so a console socket is required (--console-socket)",
            ));
        }
        if !process.terminal && (opts.console_socket.is_some() || opts.console_fd.is_some()) {
            return Err(Error::invalid(
                "process.terminal",
                "is false, so there is no console to send to --console-socket",
            ));
        }

        // Everything that can fail on bad input is planned before anything is created.
        let min_fd = 3 + opts.preserve_fds;
        let mut held: Vec<OwnedFd> = Vec::new();
        let ns = crate::process::namespaces::plan_namespaces(&linux, min_fd, &mut held)?;
        let in_userns = linux
            .namespaces
            .iter()
            .any(|n| n.typ == NamespaceType::User);
        let new_userns = linux
            .namespaces
            .iter()
            .any(|n| n.typ == NamespaceType::User && n.path.is_none());
        let cgroupns = linux
            .namespaces
            .iter()
            .any(|n| n.typ == NamespaceType::Cgroup);
        let hierarchies = cgroup.hierarchies();
        let mut rootfs_plan = crate::rootfs::plan::build(
            &spec,
            &rootfs,
            &PlanContext {
                bundle: &bundle,
                in_userns,
                cgroupns,
                cgroups: &hierarchies,
                no_pivot: opts.no_pivot,
                userns_maps: new_userns.then_some((&linux.uid_mappings, &linux.gid_mappings)),
            },
        )?;
        crate::rootfs::idmap::prepare(&mut rootfs_plan, min_fd, &mut held)?;
        let mut process_plan = ProcessPlan::build(
            process,
            linux.seccomp.as_ref(),
            "process",
            opts.preserve_fds,
        )?;
        let listener_path = linux
            .seccomp
            .as_ref()
            .and_then(|s| s.listener_path.as_deref());
        process_plan.connect_seccomp_agent(listener_path, min_fd, &mut held)?;
        if !opts.no_new_keyring {
            process_plan.keyring = Some(KeyringPlan::for_init(id, in_userns)?);
        }
        if in_userns
            && linux
                .namespaces
                .iter()
                .any(|n| n.typ == NamespaceType::User && n.path.is_some())
        {
            process_plan.set_groups =
                crate::process::namespaces::setgroups_allowed_in_joined_userns(&linux);
        }
        let hooks_cfg = spec.hooks.clone().unwrap_or_default();
        let init_hooks = |list: &[spec::Hook], kind: &str| -> Result<Vec<HookPlan>> {
            list.iter()
                .enumerate()
                .map(|(i, h)| HookPlan::build(h, &format!("hooks.{kind}[{i}]")))
                .collect()
        };
        let create_container_hooks = init_hooks(&hooks_cfg.create_container, "createContainer")?;
        let start_container_hooks = init_hooks(&hooks_cfg.start_container, "startContainer")?;
        let sysctls = linux
            .sysctl
            .iter()
            .map(|(k, v)| {
                let path = format!("/proc/sys/{}", k.replace('.', "/"));
                Ok((
                    cstring(&path, &format!("linux.sysctl.{k}"))?,
                    v.as_bytes().to_vec(),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let personality =
            linux
                .personality
                .as_ref()
                .map(|p| if p.domain == "LINUX32" { 0x0008 } else { 0 });

        // From here on, side effects: undo them on failure.
        std::fs::create_dir_all(&self.root)
            .context(|| format!("create state root {}", self.root.display()))?;
        match std::fs::create_dir(&state_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists { id: id.to_string() })
            }
            Err(e) => {
                return Err(Error::io(
                    format!("create state directory {}", state_dir.display()),
                    e,
                ))
            }
        }
        let mut cleanup = Cleanup {
            state_dir: Some(state_dir.clone()),
            cgroup: None,
            rootfs_mounts: None,
        };
        cgroup.create()?;
        cleanup.cgroup = Some(cgroup.clone());
        // The cgroup layer adds the devices every container needs (as runc does).
        cgroup.apply(&linux.resources.clone().unwrap_or_default())?;

        let notify = listen_notify(&state_dir, min_fd)?;
        let console = match (opts.console_fd, &opts.console_socket) {
            (Some(fd), _) => Some(crate::process::namespaces::move_fd(fd, min_fd)?),
            (None, Some(path)) => {
                let raw = sys::socket::connect_unix(path.as_os_str().as_bytes()).map_err(|e| {
                    Error::sys(format!("connect to console socket {}", path.display()), e)
                })?;
                // SAFETY: raw was just returned by socket(2) and is owned here.
                Some(crate::process::namespaces::move_fd(
                    unsafe { OwnedFd::from_raw_fd(raw) },
                    min_fd,
                )?)
            }
            (None, None) => None,
        };
        let (parent_sync, child_sync) = sys::socket::socketpair(libc::SOCK_SEQPACKET)
            .map_err(|e| Error::sys("create sync socket pair", e))?;
        // SAFETY: both fds were just created and are owned here.
        let parent_sync = crate::process::namespaces::move_fd(
            unsafe { OwnedFd::from_raw_fd(parent_sync) },
            min_fd,
        )?;
        // SAFETY: as above.
        let child_sync = crate::process::namespaces::move_fd(
            unsafe { OwnedFd::from_raw_fd(child_sync) },
            min_fd,
        )?;

        // The init joins its cgroup itself (cheap, see Cgroup::self_join),
        // unless it starts in a new user namespace, where it may not write
        // to the host's cgroup files: then we move it.
        let join = cgroup.self_join();
        let userns_in_clone = ns.clone_flags & libc::CLONE_NEWUSER as u64 != 0;
        let cgroup_dir = join
            .v2_dir
            .as_ref()
            .and_then(|d| std::fs::File::open(d).ok())
            .map(OwnedFd::from);
        let hooks_point = !hooks_cfg.prestart.is_empty()
            || !hooks_cfg.create_runtime.is_empty()
            || !create_container_hooks.is_empty()
            || !start_container_hooks.is_empty();
        let host_mounts = rootfs_plan.host_mount_ns;
        let mut plan = InitPlan {
            sync: child_sync.as_raw_fd(),
            cgroup_tasks: if userns_in_clone {
                Vec::new()
            } else {
                crate::process::cgroup_tasks(&join)
            },
            notify: notify.as_raw_fd(),
            console: console.as_ref().map(|c| c.as_raw_fd()),
            stdio: opts.stdio,
            ns,
            hostname: spec
                .hostname
                .as_deref()
                .filter(|h| !h.is_empty())
                .map(|h| cstring(h, "hostname"))
                .transpose()?,
            domainname: spec
                .domainname
                .as_deref()
                .filter(|h| !h.is_empty())
                .map(|h| cstring(h, "domainname"))
                .transpose()?,
            personality,
            rootfs: rootfs_plan,
            sysctls,
            process: process_plan,
            create_container_hooks,
            start_container_hooks,
            hooks_point,
            state_buf: vec![0; 256 * 1024],
            state_len: 0,
        };
        if host_mounts {
            cleanup.rootfs_mounts = Some(rootfs.clone());
        }

        let mut saved = SavedState {
            id: id.to_string(),
            pid: 0,
            pid_start_time: 0,
            bundle: bundle.clone(),
            rootfs: rootfs.clone(),
            created: state::rfc3339_now(),
            annotations: spec.annotations.clone(),
            cgroup: cgroup.clone(),
            config: spec.clone(),
            host_mounts,
            started: false,
            no_new_keyring: opts.no_new_keyring,
        };
        let mut events = CreateEvents {
            spec: &spec,
            cgroup: &cgroup,
            saved: &mut saved,
            parent_joins_v1: userns_in_clone,
        };
        // spawn_init closes our copy of the child's end once the child has it.
        let _ = child_sync.into_raw_fd();
        let pid = spawn::spawn_init(
            &mut plan,
            cgroup_dir.as_ref().map(|f| f.as_raw_fd()),
            parent_sync.as_raw_fd(),
            &mut events,
        )?;
        drop(cgroup_dir);
        drop(held);
        drop(notify);
        drop(console);

        saved.pid = pid;
        saved.pid_start_time = state::process_start_time(pid).unwrap_or(0);
        saved.save(&state_dir)?;
        if let Some(path) = &opts.pid_file {
            write_pid_file(path, pid)?;
        }
        cleanup.state_dir = None;
        cleanup.cgroup = None;
        cleanup.rootfs_mounts = None;
        Ok(Container::from_saved(self, saved))
    }
}

struct CreateEvents<'a> {
    spec: &'a Spec,
    cgroup: &'a Cgroup,
    saved: &'a mut SavedState,
    /// The init cannot join its v1 cgroups itself (new user namespace).
    parent_joins_v1: bool,
}

impl SpawnEvents for CreateEvents<'_> {
    fn on_clone(&mut self, pid: i32, into_cgroup: bool) -> Result<()> {
        let linux = self.spec.linux.as_ref();
        let userns_in_clone = linux.is_some_and(|l| {
            l.namespaces
                .iter()
                .any(|n| n.typ == NamespaceType::User && n.path.is_none())
                && !l.namespaces.iter().any(|n| n.path.is_some())
        });
        if userns_in_clone {
            crate::process::namespaces::write_id_maps(pid, linux.map(|l| l as &Linux))?;
        }
        if self.parent_joins_v1 {
            self.cgroup.add_process(pid)?;
        } else if !into_cgroup {
            self.cgroup.add_process_v2(pid)?;
        }
        Ok(())
    }

    fn on_user_namespace(&mut self, pid: i32) -> Result<()> {
        crate::process::namespaces::write_id_maps(pid, self.spec.linux.as_ref())
    }

    fn on_hooks(&mut self, init_pid: i32) -> Result<Option<Vec<u8>>> {
        self.saved.pid = init_pid;
        let hooks = self.spec.hooks.clone().unwrap_or_default();
        // prestart runs here, at create, as runc and crun do (containerd relies on it).
        hooks::run_all(
            &hooks.prestart,
            &self.saved.hook_state(Status::Created),
            "prestart",
        )?;
        hooks::run_all(
            &hooks.create_runtime,
            &self.saved.hook_state(Status::Creating),
            "createRuntime",
        )?;
        if hooks.create_container.is_empty() && hooks.start_container.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.saved.hook_state(Status::Creating)))
    }

    fn describe(&self, stage: Stage, index: u32) -> String {
        crate::process::describe::describe_stage(self.spec, stage, index)
    }

    fn seccomp_state(&mut self, pid: i32) -> Result<Vec<u8>> {
        self.saved.pid = pid;
        Ok(self.saved.seccomp_agent_state(pid, Status::Creating))
    }
}

fn cstring(s: &str, field: &str) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| Error::invalid(field, "contains a NUL byte"))
}

/// Makes a path absolute without resolving symlinks (runc keeps the bundle
/// path as given, made absolute).
pub fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let cwd = std::env::current_dir().context(|| "current directory".into())?;
    Ok(cwd.join(p))
}

/// The listening socket `start` connects to, bound through the state
/// directory's fd so long paths stay under the sun_path limit.
fn listen_notify(state_dir: &Path, min_fd: RawFd) -> Result<OwnedFd> {
    let dir = std::fs::File::open(state_dir).context(|| format!("open {}", state_dir.display()))?;
    let path = format!("/proc/self/fd/{}/{}", dir.as_raw_fd(), state::NOTIFY_SOCKET);
    let raw = sys::socket::listen_unix(path.as_bytes(), 1).map_err(|e| {
        Error::sys(
            format!(
                "listen on {}",
                state_dir.join(state::NOTIFY_SOCKET).display()
            ),
            e,
        )
    })?;
    // SAFETY: raw was just returned by socket(2) and is owned here.
    crate::process::namespaces::move_fd(unsafe { OwnedFd::from_raw_fd(raw) }, min_fd)
}

fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    // runc writes the pid without a newline, atomically.
    let tmp = path.with_extension("berth-tmp");
    std::fs::write(&tmp, pid.to_string())
        .context(|| format!("write pid file {}", tmp.display()))?;
    std::fs::rename(&tmp, path).context(|| format!("write pid file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_follow_runc_rules() {
        validate_id("abc-1.2_x+y").unwrap();
        assert!(validate_id("").is_err());
        assert!(validate_id("..").is_err());
        assert!(validate_id("a/b").is_err());
        assert!(validate_id("a b").is_err());
    }
}
