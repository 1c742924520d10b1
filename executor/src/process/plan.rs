//! Plans: everything a cloned process needs, prepared by the runtime before
//! clone (C strings, pointer arrays, bitmasks, compiled seccomp filters,
//! scratch buffers), so the child never allocates.

use std::ffi::CString;
use std::os::fd::RawFd;

use crate::caps::CapSets;
use crate::error::{Error, Result};
use crate::rootfs::RootfsPlan;
use crate::spec::{Hook, NamespaceType, Process, Seccomp};

/// A NULL-terminated array of C strings and the strings it points into.
pub(crate) struct CStrArray {
    _strings: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
    /// Number of real entries (spare slots and the NULL excluded).
    len: usize,
}

impl CStrArray {
    /// Builds the array with `spare` empty slots before the terminating NULL.
    pub(crate) fn new(items: &[String], spare: usize, field: &str) -> Result<CStrArray> {
        let strings = items
            .iter()
            .enumerate()
            .map(|(i, s)| {
                CString::new(s.as_bytes())
                    .map_err(|_| Error::invalid(format!("{field}[{i}]"), "contains a NUL byte"))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.extend(std::iter::repeat_n(std::ptr::null(), spare + 1));
        Ok(CStrArray {
            len: strings.len(),
            _strings: strings,
            ptrs,
        })
    }

    pub(crate) fn as_ptr(&self) -> *const *const libc::c_char {
        self.ptrs.as_ptr()
    }

    /// Puts `p` into the first spare slot (child side; no allocation).
    pub(crate) fn set_spare(&mut self, p: *const libc::c_char) {
        if self.len + 1 < self.ptrs.len() {
            self.ptrs[self.len] = p;
        }
    }

    pub(crate) fn get(&self, i: usize) -> Option<&CString> {
        self._strings.get(i)
    }
}

/// The process to exec and the identity, limits and confinement to give it.
pub(crate) struct ProcessPlan {
    pub args: CStrArray,
    pub env: CStrArray,
    /// HOME is missing from env: the child looks it up in /etc/passwd.
    pub needs_home: bool,
    pub home_buf: Vec<u8>,
    /// PATH for looking up a program name without a '/'.
    pub path_var: Vec<u8>,
    pub exec_path: Box<crate::sys::PathBuf>,
    pub cwd: CString,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Vec<libc::gid_t>,
    /// false when setgroups is denied in the user namespace.
    pub set_groups: bool,
    pub umask: libc::mode_t,
    pub caps: Option<CapSets>,
    pub last_cap: u32,
    pub no_new_privileges: bool,
    /// (resource, soft, hard)
    pub rlimits: Vec<(libc::c_int, u64, u64)>,
    pub oom_score_adj: Option<Vec<u8>>,
    pub seccomp: Option<crate::seccomp::Program>,
    /// ioprio_set value.
    pub io_priority: Option<libc::c_int>,
    pub scheduler: Option<crate::sys::proc::SchedAttr>,
    /// The session keyring to join (unless --no-new-keyring); set by the
    /// caller, which knows the container id.
    pub keyring: Option<super::keyring::KeyringPlan>,
    /// "exec <profile>" for /proc/thread-self/attr/apparmor/exec.
    pub apparmor: Option<Vec<u8>>,
    pub terminal: bool,
    /// (rows, cols)
    pub console_size: Option<(u16, u16)>,
    /// Scratch space for reading /etc/passwd.
    pub scratch: Vec<u8>,
    /// (st_dev, st_ino) of the runtime's own executable: never exec it in a container.
    pub runtime_exe: Option<(u64, u64)>,
    /// fds 3..3+preserve_fds are passed to the process.
    pub preserve_fds: i32,
    /// A connection to linux.seccomp.listenerPath: the seccomp agent gets
    /// the listener fd and `seccomp_state` (SCMP_ACT_NOTIFY profiles).
    pub seccomp_listener: Option<RawFd>,
    pub seccomp_state: Vec<u8>,
    pub seccomp_state_len: usize,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ProcessPlan {
    /// For SCMP_ACT_NOTIFY profiles: connects to the seccomp agent at
    /// `listener_path`; the connection must outlive the spawn (`held`).
    pub(crate) fn connect_seccomp_agent(
        &mut self,
        listener_path: Option<&str>,
        min_fd: RawFd,
        held: &mut Vec<std::os::fd::OwnedFd>,
    ) -> Result<()> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        if !self.seccomp.as_ref().is_some_and(|p| p.needs_listener) {
            return Ok(());
        }
        let path = listener_path.unwrap_or_default();
        let raw = crate::sys::socket::connect_unix(path.as_bytes()).map_err(|e| {
            Error::invalid(
                "linux.seccomp.listenerPath",
                format!("connect to the seccomp agent at {path:?}: {e}"),
            )
        })?;
        // SAFETY: raw was just returned by socket(2) and is owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let fd = if fd.as_raw_fd() < min_fd {
            let d = crate::sys::fd::dup_cloexec_at_least(fd.as_raw_fd(), min_fd)
                .map_err(|e| Error::sys("dup fd", e))?;
            // SAFETY: d was just created by fcntl(F_DUPFD_CLOEXEC).
            unsafe { OwnedFd::from_raw_fd(d) }
        } else {
            fd
        };
        self.seccomp_listener = Some(fd.as_raw_fd());
        self.seccomp_state = vec![0; 64 * 1024];
        held.push(fd);
        Ok(())
    }

    pub(crate) fn build(
        p: &Process,
        seccomp: Option<&Seccomp>,
        field: &str,
        preserve_fds: i32,
    ) -> Result<ProcessPlan> {
        crate::spec::validate_process(p, field)?;
        let apparmor = match p.apparmor_profile.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(profile) if apparmor_enabled() => Some(format!("exec {profile}").into_bytes()),
            Some(profile) => {
                return Err(Error::invalid(
                    format!("{field}.apparmorProfile"),
                    format!(
                        "profile {profile:?} requested but AppArmor is not enabled on this host"
                    ),
                ))
            }
        };
        if p.selinux_label.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(Error::invalid(
                format!("{field}.selinuxLabel"),
                "SELinux is not enabled on this host",
            ));
        }
        let needs_home = !p.env.iter().any(|e| e.starts_with("HOME="));
        let path_var = p
            .env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .as_bytes()
            .to_vec();
        let last_cap = crate::caps::last_cap();
        let io_priority = match &p.io_priority {
            None => None,
            Some(io) => {
                let class = match io.class.as_str() {
                    "IOPRIO_CLASS_RT" => 1,
                    "IOPRIO_CLASS_BE" => 2,
                    "IOPRIO_CLASS_IDLE" => 3,
                    other => {
                        return Err(Error::invalid(
                            format!("{field}.ioPriority.class"),
                            format!("unknown class {other:?}"),
                        ))
                    }
                };
                if !(0..=7).contains(&io.priority) {
                    return Err(Error::invalid(
                        format!("{field}.ioPriority.priority"),
                        "must be 0..=7",
                    ));
                }
                Some((class << 13) | io.priority)
            }
        };
        let scheduler = p
            .scheduler
            .as_ref()
            .map(|s| super::sched::plan(s, &format!("{field}.scheduler")))
            .transpose()?;
        Ok(ProcessPlan {
            args: CStrArray::new(&p.args, 0, &format!("{field}.args"))?,
            env: CStrArray::new(&p.env, 1, &format!("{field}.env"))?,
            needs_home,
            home_buf: vec![0; libc::PATH_MAX as usize + 8],
            path_var,
            exec_path: Box::new(crate::sys::PathBuf::new()),
            cwd: CString::new(p.cwd.as_bytes())
                .map_err(|_| Error::invalid(format!("{field}.cwd"), "contains a NUL byte"))?,
            uid: p.user.uid,
            gid: p.user.gid,
            groups: p.user.additional_gids.clone(),
            set_groups: true,
            umask: p.user.umask.unwrap_or(0o022) as libc::mode_t,
            caps: p
                .capabilities
                .as_ref()
                .map(|c| CapSets::from_spec(c, last_cap)),
            last_cap,
            no_new_privileges: p.no_new_privileges,
            rlimits: p
                .rlimits
                .iter()
                .filter_map(|r| {
                    crate::rlimits::resource_number(&r.typ).map(|n| (n, r.soft, r.hard))
                })
                .collect(),
            oom_score_adj: p.oom_score_adj.map(|v| v.to_string().into_bytes()),
            seccomp: seccomp.map(crate::seccomp::compile).transpose()?,
            io_priority,
            scheduler,
            keyring: None,
            apparmor,
            terminal: p.terminal,
            console_size: p
                .console_size
                .filter(|c| c.width > 0 || c.height > 0)
                .map(|c| {
                    (
                        c.height.min(u16::MAX as u32) as u16,
                        c.width.min(u16::MAX as u32) as u16,
                    )
                }),
            scratch: vec![0; 64 * 1024],
            runtime_exe: runtime_exe_id(),
            preserve_fds,
            seccomp_listener: None,
            seccomp_state: Vec::new(),
            seccomp_state_len: 0,
        })
    }
}

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

/// Device and inode of /proc/self/exe, to refuse running the runtime binary
/// inside a container (CVE-2019-5736).
fn runtime_exe_id() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/exe")
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// A hook the container init runs itself (createContainer, startContainer).
pub(crate) struct HookPlan {
    pub path: CString,
    pub args: CStrArray,
    pub env: CStrArray,
    pub timeout_ms: libc::c_int,
}

impl HookPlan {
    pub(crate) fn build(h: &Hook, field: &str) -> Result<HookPlan> {
        let args = if h.args.is_empty() {
            vec![h.path.clone()]
        } else {
            h.args.clone()
        };
        Ok(HookPlan {
            path: CString::new(h.path.as_bytes())
                .map_err(|_| Error::invalid(format!("{field}.path"), "contains a NUL byte"))?,
            args: CStrArray::new(&args, 0, &format!("{field}.args"))?,
            env: CStrArray::new(&h.env, 0, &format!("{field}.env"))?,
            timeout_ms: h.timeout.map_or(-1, |t| {
                (t.min(i64::from(i32::MAX / 1000)) * 1000) as libc::c_int
            }),
        })
    }
}

/// A namespace to join: an open namespace file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NsJoin {
    pub fd: RawFd,
    pub typ: NamespaceType,
    /// Index in linux.namespaces.
    pub index: usize,
}

/// How the init gets into its namespaces.
#[derive(Debug, Default)]
pub(crate) struct NsPlan {
    /// CLONE_NEW* flags given to clone3 directly (the common, fast case).
    pub clone_flags: u64,
    /// Namespaces joined by path after clone (user excluded).
    pub joins: Vec<NsJoin>,
    /// A user namespace joined by path.
    pub user_join: Option<NsJoin>,
    /// Create the user namespace with unshare after the joins, then ask the
    /// parent to write its id maps.
    pub unshare_user: bool,
    /// Namespaces created with unshare after the user namespace.
    pub unshare_flags: libc::c_int,
    /// The pid namespace was joined or unshared: fork once more so the
    /// process that execs is inside it.
    pub fork_again: bool,
    /// Create the cgroup namespace after the parent placed us in our cgroup.
    pub unshare_cgroup: bool,
    /// Create the time namespace and write these offsets before exec.
    pub time_offsets: Option<Vec<u8>>,
    pub unshare_time: bool,
    /// A new user namespace exists: become root in it.
    pub become_root: bool,
}

/// Everything the container init does, in order.
pub(crate) struct InitPlan {
    pub sync: RawFd,
    /// v1 cgroup `tasks` files the init writes "0" to first (empty when the
    /// runtime places it, e.g. when it starts in a new user namespace).
    pub cgroup_tasks: super::CgroupTasks,
    /// Listening socket; `start` connects to it.
    pub notify: RawFd,
    /// Connected console socket (terminal: true).
    pub console: Option<RawFd>,
    /// fds to make the process's stdin, stdout, stderr.
    pub stdio: Option<[RawFd; 3]>,
    pub ns: NsPlan,
    pub hostname: Option<CString>,
    pub domainname: Option<CString>,
    pub personality: Option<libc::c_ulong>,
    pub rootfs: RootfsPlan,
    /// (/proc/sys/... path, value)
    pub sysctls: Vec<(CString, Vec<u8>)>,
    pub process: ProcessPlan,
    pub create_container_hooks: Vec<HookPlan>,
    pub start_container_hooks: Vec<HookPlan>,
    /// Stop at the hook point so the runtime runs prestart/createRuntime hooks.
    pub hooks_point: bool,
    /// Receives the container state JSON for the init's own hooks.
    pub state_buf: Vec<u8>,
    pub state_len: usize,
}
