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
use crate::process::plan::{HookPlan, InitPlan, NsJoin, NsPlan, ProcessPlan};
use crate::process::spawn::{self, SpawnEvents};
use crate::rootfs::plan::{PlanContext, DEFAULT_DEVICES};
use crate::spec::{self, Linux, NamespaceType, Spec};
use crate::state::{self, SavedState, Status};
use crate::sys::{self, fd};

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
        let ns = plan_namespaces(&linux, min_fd, &mut held)?;
        let in_userns = linux
            .namespaces
            .iter()
            .any(|n| n.typ == NamespaceType::User);
        let cgroupns = linux
            .namespaces
            .iter()
            .any(|n| n.typ == NamespaceType::Cgroup);
        let hierarchies = cgroup.hierarchies();
        let rootfs_plan = crate::rootfs::plan::build(
            &spec,
            &rootfs,
            &PlanContext {
                bundle: &bundle,
                in_userns,
                cgroupns,
                cgroups: &hierarchies,
                no_pivot: opts.no_pivot,
            },
        )?;
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
        if in_userns
            && linux
                .namespaces
                .iter()
                .any(|n| n.typ == NamespaceType::User && n.path.is_some())
        {
            process_plan.set_groups = setgroups_allowed_in_joined_userns(&linux);
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
            (Some(fd), _) => Some(move_fd(fd, min_fd)?),
            (None, Some(path)) => {
                let raw = sys::socket::connect_unix(path.as_os_str().as_bytes()).map_err(|e| {
                    Error::sys(format!("connect to console socket {}", path.display()), e)
                })?;
                // SAFETY: raw was just returned by socket(2) and is owned here.
                Some(move_fd(unsafe { OwnedFd::from_raw_fd(raw) }, min_fd)?)
            }
            (None, None) => None,
        };
        let (parent_sync, child_sync) = sys::socket::socketpair(libc::SOCK_SEQPACKET)
            .map_err(|e| Error::sys("create sync socket pair", e))?;
        // SAFETY: both fds were just created and are owned here.
        let parent_sync = move_fd(unsafe { OwnedFd::from_raw_fd(parent_sync) }, min_fd)?;
        // SAFETY: as above.
        let child_sync = move_fd(unsafe { OwnedFd::from_raw_fd(child_sync) }, min_fd)?;

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
            write_id_maps(pid, linux.map(|l| l as &Linux))?;
        }
        if self.parent_joins_v1 {
            self.cgroup.add_process(pid)?;
        } else if !into_cgroup {
            self.cgroup.add_process_v2(pid)?;
        }
        Ok(())
    }

    fn on_user_namespace(&mut self, pid: i32) -> Result<()> {
        write_id_maps(pid, self.spec.linux.as_ref())
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
        describe_stage(self.spec, stage, index)
    }

    fn seccomp_state(&mut self, pid: i32) -> Result<Vec<u8>> {
        self.saved.pid = pid;
        Ok(self.saved.seccomp_agent_state(pid, Status::Creating))
    }
}

/// Names the config field behind a child failure.
pub(crate) fn describe_stage(spec: &Spec, stage: Stage, index: u32) -> String {
    let i = index as usize;
    let linux = spec.linux.clone().unwrap_or_default();
    match stage {
        Stage::Namespace if i < linux.namespaces.len() => {
            let n = &linux.namespaces[i];
            match &n.path {
                Some(p) => format!(
                    "linux.namespaces[{i}] ({} namespace at {p})",
                    n.typ.as_str()
                ),
                None => format!("linux.namespaces[{i}] ({} namespace)", n.typ.as_str()),
            }
        }
        Stage::Namespace => "linux.namespaces".into(),
        Stage::UserNamespace => "linux.namespaces (user)".into(),
        Stage::CgroupNamespace => "linux.namespaces (cgroup)".into(),
        Stage::TimeNamespace => "linux.timeOffsets".into(),
        Stage::Hostname => "hostname".into(),
        Stage::Domainname => "domainname".into(),
        Stage::Personality => "linux.personality".into(),
        Stage::Propagation => "linux.rootfsPropagation / root.path".into(),
        Stage::Mount if i < spec.mounts.len() => {
            format!("mounts[{i}] (destination {})", spec.mounts[i].destination)
        }
        Stage::Mount => "mounts".into(),
        Stage::Device if i < linux.devices.len() => {
            format!("linux.devices[{i}] ({})", linux.devices[i].path)
        }
        Stage::Device => "linux.devices".into(),
        Stage::Symlink => DEFAULT_DEVICES
            .get(i)
            .map(|d| format!("default device {}", d.0))
            .unwrap_or_else(|| "default /dev entries".into()),
        Stage::PivotRoot => "root.path (pivot_root)".into(),
        Stage::Sysctl => linux
            .sysctl
            .keys()
            .nth(i)
            .map(|k| format!("linux.sysctl.{k}"))
            .unwrap_or_else(|| "linux.sysctl".into()),
        Stage::MaskedPath => format!("linux.maskedPaths[{i}]"),
        Stage::ReadonlyPath => format!("linux.readonlyPaths[{i}]"),
        Stage::ReadonlyRoot => "root.readonly".into(),
        Stage::Console => "process.terminal".into(),
        Stage::OomScoreAdj => "process.oomScoreAdj".into(),
        Stage::Rlimit => format!("process.rlimits[{i}]"),
        Stage::NoNewPrivileges => "process.noNewPrivileges".into(),
        Stage::Seccomp => "linux.seccomp".into(),
        Stage::Groups => "process.user.additionalGids".into(),
        Stage::User => "process.user".into(),
        Stage::Capabilities => "process.capabilities".into(),
        Stage::Cwd => "process.cwd".into(),
        Stage::Executable => "process.args".into(),
        Stage::CreateContainerHook => format!("hooks.createContainer[{i}]"),
        Stage::StartContainerHook => format!("hooks.startContainer[{i}]"),
        Stage::Exec => "process".into(),
        Stage::IoPriority => "process.ioPriority".into(),
        Stage::Scheduler => "process.scheduler".into(),
        Stage::Fork => "linux.namespaces (pid)".into(),
        Stage::Channel => "container init".into(),
        Stage::Cgroup => "linux.cgroupsPath (joining the cgroup)".into(),
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

/// Moves an fd to a number >= `min` so it cannot collide with --preserve-fds.
fn move_fd(fd: OwnedFd, min: RawFd) -> Result<OwnedFd> {
    if fd.as_raw_fd() >= min {
        return Ok(fd);
    }
    let new = fd::dup_cloexec_at_least(fd.as_raw_fd(), min).map_err(|e| Error::sys("dup fd", e))?;
    // SAFETY: new was just returned by fcntl(F_DUPFD_CLOEXEC) and is owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
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
    move_fd(unsafe { OwnedFd::from_raw_fd(raw) }, min_fd)
}

/// Opens and checks namespace paths, and decides which namespaces come
/// with the clone and which need setns/unshare (and a second fork).
fn plan_namespaces(linux: &Linux, min_fd: RawFd, held: &mut Vec<OwnedFd>) -> Result<NsPlan> {
    let mut plan = NsPlan::default();
    let mut joins = Vec::new();
    let mut user_join = None;
    for (i, n) in linux.namespaces.iter().enumerate() {
        let Some(path) = &n.path else { continue };
        let field = format!("linux.namespaces[{i}].path");
        let file = std::fs::File::open(path)
            .map_err(|e| Error::invalid(&field, format!("{path}: {e}")))?;
        let fd = move_fd(OwnedFd::from(file), min_fd)?;
        check_ns_type(fd.as_raw_fd(), n.typ)
            .map_err(|m| Error::invalid(&field, format!("{path}: {m}")))?;
        let j = NsJoin {
            fd: fd.as_raw_fd(),
            typ: n.typ,
            index: i,
        };
        held.push(fd);
        if n.typ == NamespaceType::User {
            user_join = Some(j);
        } else {
            joins.push(j);
        }
    }
    let new = |t: NamespaceType| {
        linux
            .namespaces
            .iter()
            .any(|n| n.typ == t && n.path.is_none())
    };
    let joined_pid = joins.iter().any(|j| j.typ == NamespaceType::Pid);
    let flags_of = |skip: &[NamespaceType]| -> i64 {
        linux
            .namespaces
            .iter()
            .filter(|n| n.path.is_none() && !skip.contains(&n.typ))
            .fold(0i64, |f, n| f | n.typ.clone_flag() as i64)
    };
    let late = [NamespaceType::Cgroup, NamespaceType::Time];
    let fast =
        user_join.is_none() && !joined_pid && (joins.is_empty() || !new(NamespaceType::User));
    if fast {
        plan.clone_flags = flags_of(&late) as u64;
    } else {
        let mut skip = late.to_vec();
        skip.push(NamespaceType::User);
        plan.unshare_user = new(NamespaceType::User);
        plan.unshare_flags = flags_of(&skip) as libc::c_int;
        plan.fork_again = new(NamespaceType::Pid) || joined_pid;
    }
    plan.joins = joins;
    plan.user_join = user_join;
    plan.become_root = new(NamespaceType::User);
    plan.unshare_cgroup = new(NamespaceType::Cgroup);
    plan.unshare_time = new(NamespaceType::Time);
    if !linux.time_offsets.is_empty() {
        let mut text = String::new();
        for (clock, off) in &linux.time_offsets {
            text.push_str(&format!("{clock} {} {}\n", off.secs, off.nanosecs));
        }
        plan.time_offsets = Some(text.into_bytes());
    }
    Ok(plan)
}

/// Checks a namespace file's type with NS_GET_NSTYPE.
fn check_ns_type(fd: RawFd, want: NamespaceType) -> std::result::Result<(), String> {
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    let got = sys::proc::ioctl_int(fd, NS_GET_NSTYPE, 0)
        .map_err(|e| format!("not a namespace file ({e})"))?;
    if got == want.clone_flag() {
        return Ok(());
    }
    let name = NamespaceType::ALL
        .iter()
        .find(|t| t.clone_flag() == got)
        .map(|t| t.as_str())
        .unwrap_or("unknown");
    Err(format!(
        "is a {name} namespace, not a {} namespace",
        want.as_str()
    ))
}

/// In a joined user namespace, setgroups may be denied ("deny" in
/// /proc/<pid>/setgroups); we cannot know which pid, so allow and let the
/// kernel decide only when mappings exist.
fn setgroups_allowed_in_joined_userns(_linux: &Linux) -> bool {
    true
}

/// Writes uid_map and gid_map for the init's new user namespace.
fn write_id_maps(pid: i32, linux: Option<&Linux>) -> Result<()> {
    let Some(linux) = linux else { return Ok(()) };
    for (file, maps) in [
        ("uid_map", &linux.uid_mappings),
        ("gid_map", &linux.gid_mappings),
    ] {
        let text: String = maps
            .iter()
            .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
            .collect();
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, text).map_err(|e| {
            Error::invalid(
                if file == "uid_map" {
                    "linux.uidMappings"
                } else {
                    "linux.gidMappings"
                },
                format!("write {path}: {e}"),
            )
        })?;
    }
    Ok(())
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
