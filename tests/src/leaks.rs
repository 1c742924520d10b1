//! Snapshots of host state that a container could leave behind: processes,
//! mounts, cgroup directories and runtime state entries. Take one before an
//! operation, then `assert_clean` proves nothing new is left afterwards.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to look for.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// Processes whose cmdline, cwd or root points into it; mounts under it.
    pub bundle: Option<PathBuf>,
    /// Container ids: cgroup directories and state entries named after them,
    /// processes in cgroups whose path contains them.
    pub ids: Vec<String>,
    /// cgroupsPath values from the config (absolute or relative).
    pub cgroup_paths: Vec<String>,
    /// The runtime's `--root`.
    pub state_root: Option<PathBuf>,
    /// Host pids known to belong to the container (e.g. `state.pid`).
    pub pids: Vec<i32>,
}

/// Everything matching a `Target` at one moment; each map goes from a
/// stable key to a description for messages.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub target: Target,
    pub processes: BTreeMap<String, String>,
    pub mounts: BTreeMap<String, String>,
    pub cgroups: BTreeMap<String, String>,
    pub state: BTreeMap<String, String>,
}

impl Snapshot {
    pub fn take(target: &Target) -> Snapshot {
        Snapshot {
            target: target.clone(),
            processes: processes(target),
            mounts: mounts_under_opt(target.bundle.as_deref()),
            cgroups: cgroup_dirs(target),
            state: state_entries(target),
        }
    }

    /// What is in `later` but not in `self`, one line per item.
    pub fn new_in(&self, later: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        let pairs = [
            ("process", &self.processes, &later.processes),
            ("mount", &self.mounts, &later.mounts),
            ("cgroup", &self.cgroups, &later.cgroups),
            ("state", &self.state, &later.state),
        ];
        for (kind, before, after) in pairs {
            for (key, desc) in after {
                if !before.contains_key(key) {
                    out.push(format!("{kind}: {desc}"));
                }
            }
        }
        out
    }

    /// Leftovers since this snapshot, waiting up to `timeout` for them to go
    /// (processes exit and are reaped asynchronously).
    pub fn leftovers(&self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = self.new_in(&Snapshot::take(&self.target));
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Ok if nothing new is left since `before` (within 3 s), else a message
/// listing every leftover.
pub fn check_clean(before: &Snapshot) -> Result<(), String> {
    let left = before.leftovers(Duration::from_secs(3));
    if left.is_empty() {
        return Ok(());
    }
    let mut msg = format!("left behind ({} item(s)):\n", left.len());
    for item in &left {
        let _ = writeln!(msg, "  {item}");
    }
    let _ = write!(msg, "looked for: {:?}", before.target);
    Err(msg)
}

/// Panics with the list of leftovers unless nothing is left since `before`.
pub fn assert_clean(before: &Snapshot) {
    if let Err(msg) = check_clean(before) {
        panic!("{msg}");
    }
}

fn processes(target: &Target) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let me = std::process::id() as i32;
    let Ok(dir) = fs::read_dir("/proc") else {
        return found;
    };
    let bundle = target
        .bundle
        .as_ref()
        .map(|b| b.to_string_lossy().into_owned());
    let mut needles: Vec<String> = target.ids.clone();
    needles.extend(
        target
            .cgroup_paths
            .iter()
            .map(|p| p.trim_start_matches('/').to_string())
            .filter(|p| !p.is_empty()),
    );
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let base = entry.path();
        let Ok(stat) = fs::read_to_string(base.join("stat")) else {
            continue;
        };
        // Fields after the ")" of comm: state is the first, starttime the 20th.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
            continue;
        }
        let start = fields.get(19).copied().unwrap_or("?");
        let cmdline = fs::read(base.join("cmdline"))
            .map(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default();
        let mut why = Vec::new();
        if target.pids.contains(&pid) {
            why.push("a container pid".to_string());
        }
        if let Some(bundle) = &bundle {
            if cmdline.contains(bundle.as_str()) {
                why.push("cmdline names the bundle".into());
            }
            for link in ["cwd", "root"] {
                if let Ok(p) = fs::read_link(base.join(link)) {
                    if p.starts_with(bundle) {
                        why.push(format!("{link} {}", p.display()));
                    }
                }
            }
        }
        if !needles.is_empty() {
            let cgroup = fs::read_to_string(base.join("cgroup")).unwrap_or_default();
            for line in cgroup.lines() {
                let path = line.splitn(3, ':').nth(2).unwrap_or("");
                if needles.iter().any(|n| path.contains(n.as_str())) {
                    why.push(format!("cgroup {line}"));
                    break;
                }
            }
        }
        if !why.is_empty() {
            found.insert(
                format!("{pid}@{start}"),
                format!("pid {pid} [{cmdline}]: {}", why.join("; ")),
            );
        }
    }
    found
}

/// Mount points at or under `dir` in this process's mount namespace.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .filter(|p| p.starts_with(dir))
        .collect()
}

fn mounts_under_opt(dir: Option<&Path>) -> BTreeMap<String, String> {
    let Some(dir) = dir else {
        return BTreeMap::new();
    };
    let mut found = BTreeMap::new();
    for (i, p) in mounts_under(dir).into_iter().enumerate() {
        let p = p.display().to_string();
        found.insert(format!("{p}#{i}"), format!("mounted at {p}"));
    }
    found
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let oct: String = chars.clone().take(3).collect();
            if let Ok(v) = u8::from_str_radix(&oct, 8) {
                out.push(v as char);
                for _ in 0..3 {
                    chars.next();
                }
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// The roots of every cgroup hierarchy mounted under /sys/fs/cgroup.
pub fn cgroup_roots() -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut roots: Vec<PathBuf> = info
        .lines()
        .filter(|l| l.contains(" - cgroup ") || l.contains(" - cgroup2 "))
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .collect();
    roots.sort();
    roots.dedup();
    roots
}

fn cgroup_dirs(target: &Target) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    if target.ids.is_empty() && target.cgroup_paths.is_empty() {
        return found;
    }
    let paths: Vec<String> = target
        .cgroup_paths
        .iter()
        .map(|p| p.trim_matches('/').to_string())
        .filter(|p| !p.is_empty())
        .collect();
    // A directory is the container's if it is named after an id or after the
    // first component of a cgroupsPath (tests make those unique), or if its
    // path ends with a whole cgroupsPath.
    let mut names = target.ids.clone();
    names.extend(
        paths
            .iter()
            .filter_map(|p| p.split('/').next().map(String::from)),
    );
    for root in cgroup_roots() {
        let mut stack = vec![(root.clone(), 0)];
        while let Some((dir, depth)) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    continue;
                }
                let path = entry.path();
                let rel = path.strip_prefix(&root).unwrap_or(&path).to_string_lossy();
                let name = entry.file_name().to_string_lossy().into_owned();
                let hit = names.contains(&name) || paths.iter().any(|p| rel.ends_with(p.as_str()));
                if hit {
                    let p = path.display().to_string();
                    found.insert(p.clone(), format!("directory {p}"));
                }
                if depth < 8 {
                    stack.push((path, depth + 1));
                }
            }
        }
    }
    found
}

fn state_entries(target: &Target) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let Some(root) = &target.state_root else {
        return found;
    };
    let Ok(entries) = fs::read_dir(root) else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if target.ids.iter().any(|id| name.contains(id.as_str())) {
            let p = entry.path().display().to_string();
            found.insert(p.clone(), format!("state entry {p}"));
        }
    }
    found
}
