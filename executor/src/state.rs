//! Container state on disk: `<root>/<id>/state.json`, written atomically,
//! plus the status a container is in right now (derived from its init
//! process, the start socket and the freezer, never trusted from disk).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroups::Cgroup;
use crate::error::{Error, IoContext, Result};
use crate::spec::Spec;

/// What the runtime remembers about a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedState {
    pub id: String,
    /// Host pid of the init (0 before it exists).
    pub pid: i32,
    /// The init's start time (/proc/<pid>/stat field 22), to notice pid reuse.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    pub annotations: BTreeMap<String, String>,
    pub cgroup: Cgroup,
    /// The config as it was at create (later edits to config.json do not matter).
    pub config: Spec,
    /// The container shares the host mount namespace: its mounts under the
    /// rootfs are undone at delete.
    #[serde(default)]
    pub host_mounts: bool,
    /// Set by `start` once the process has been started.
    #[serde(default)]
    pub started: bool,
    /// Created with --no-new-keyring: exec'd processes keep the caller's
    /// session keyring instead of joining the container's.
    #[serde(default)]
    pub no_new_keyring: bool,
}

/// The OCI status of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON `state` prints, field for field as runc prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The state passed to hooks on stdin (runtime-spec state.md).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookState<'a> {
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: Status,
    pub pid: i32,
    pub bundle: &'a Path,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: &'a BTreeMap<String, String>,
}

pub const OCI_VERSION: &str = "1.2.0";
pub(crate) const STATE_FILE: &str = "state.json";
/// The socket the init listens on until `start`.
pub(crate) const NOTIFY_SOCKET: &str = "notify.sock";

impl SavedState {
    pub(crate) fn load(dir: &Path, id: &str) -> Result<SavedState> {
        let path = dir.join(STATE_FILE);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound { id: id.to_string() })
            }
            Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
        };
        serde_json::from_slice(&data)
            .map_err(|e| Error::Setup(format!("{}: corrupt state: {e}", path.display())))
    }

    /// Writes state.json atomically (temp file + rename).
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let data =
            serde_json::to_vec(self).map_err(|e| Error::Setup(format!("encode state: {e}")))?;
        let tmp = dir.join(".state.json.tmp");
        std::fs::write(&tmp, data).context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join(STATE_FILE)).context(|| format!("rename {}", tmp.display()))
    }

    /// The "container process state" a seccomp agent receives with the
    /// listener fd of process `pid` (runtime-spec, config-linux.md).
    pub fn seccomp_agent_state(&self, pid: i32, status: Status) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct ProcessState<'a> {
            oci_version: &'a str,
            fds: [&'a str; 1],
            pid: i32,
            #[serde(skip_serializing_if = "str::is_empty")]
            metadata: &'a str,
            state: HookState<'a>,
        }
        let metadata = self
            .config
            .linux
            .as_ref()
            .and_then(|l| l.seccomp.as_ref())
            .and_then(|s| s.listener_metadata.as_deref())
            .unwrap_or("");
        serde_json::to_vec(&ProcessState {
            oci_version: OCI_VERSION,
            fds: ["seccompFd"],
            pid,
            metadata,
            state: HookState {
                oci_version: OCI_VERSION,
                id: &self.id,
                status,
                pid: self.pid,
                bundle: &self.bundle,
                annotations: &self.annotations,
            },
        })
        .unwrap_or_default()
    }

    pub fn hook_state(&self, status: Status) -> Vec<u8> {
        serde_json::to_vec(&HookState {
            oci_version: OCI_VERSION,
            id: &self.id,
            status,
            pid: self.pid,
            bundle: &self.bundle,
            annotations: &self.annotations,
        })
        .unwrap_or_default()
    }
}

/// Start time of a process in clock ticks since boot, or None if it is gone.
pub(crate) fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// The process state letter (R, S, Z, ...) from /proc/<pid>/stat.
pub(crate) fn process_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

/// True when `pid` is still the process that was recorded (not exited, not reused).
pub(crate) fn init_alive(pid: i32, start_time: u64) -> bool {
    pid > 0 && process_start_time(pid) == Some(start_time) && process_state(pid) != Some('Z')
}

/// The current time as RFC 3339 with nanoseconds, UTC.
pub fn rfc3339_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

/// Formats seconds since the epoch (UTC) as RFC 3339.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_795_000_000, 0), "2026-11-18T11:06:40.000000000Z");
    }

    #[test]
    fn own_process_is_alive_and_has_a_start_time() {
        let pid = std::process::id() as i32;
        let st = process_start_time(pid).unwrap();
        assert!(init_alive(pid, st));
        assert!(!init_alive(pid, st + 1));
    }
}
