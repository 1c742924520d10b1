//! Fixture trees: directories holding the files the kernel would show, so
//! writes land in real files and missing files behave like missing knobs.

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::super::{Cgroup, CgroupRoot};

/// Creates `dir` and the listed files (name, content).
pub fn populate(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).expect("create fixture dir");
    for (name, content) in files {
        fs::write(dir.join(name), content).expect("write fixture file");
    }
}

pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The v1 hierarchies of this host, each mounted separately.
pub const V1_HIERARCHIES: [&str; 8] = [
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
];

/// Files a fresh v1 cgroup has, per hierarchy (the subset we touch).
pub fn v1_files(hierarchy: &str) -> Vec<(&'static str, &'static str)> {
    let mut files = vec![("cgroup.procs", "")];
    files.extend_from_slice(match hierarchy {
        "cpu" => &[
            ("cpu.shares", "1024"),
            ("cpu.cfs_period_us", "100000"),
            ("cpu.cfs_quota_us", "-1"),
            ("cpu.cfs_burst_us", "0"),
            ("cpu.idle", "0"),
            ("cpu.rt_period_us", "1000000"),
            ("cpu.rt_runtime_us", "0"),
        ][..],
        "cpuset" => &[("cpuset.cpus", ""), ("cpuset.mems", "")][..],
        "memory" => &[
            ("memory.limit_in_bytes", "9223372036854771712"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712"),
            ("memory.soft_limit_in_bytes", "9223372036854771712"),
            ("memory.usage_in_bytes", "4096"),
            ("memory.max_usage_in_bytes", "8192"),
            ("memory.swappiness", "60"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
            ),
            ("memory.use_hierarchy", "1"),
        ][..],
        "devices" => &[
            ("devices.list", "a *:* rwm\n"),
            ("devices.allow", ""),
            ("devices.deny", ""),
        ][..],
        "freezer" => &[
            ("freezer.state", "THAWED\n"),
            ("freezer.self_freezing", "0\n"),
        ][..],
        "blkio" => &[
            ("blkio.bfq.weight", "100"),
            ("blkio.bfq.weight_device", ""),
            ("blkio.throttle.read_bps_device", ""),
            ("blkio.throttle.write_bps_device", ""),
            ("blkio.throttle.read_iops_device", ""),
            ("blkio.throttle.write_iops_device", ""),
        ][..],
        "pids" => &[("pids.max", "max"), ("pids.current", "0")][..],
        _ => &[][..],
    });
    files
}

pub struct V1Fixture {
    pub tmp: TempDir,
    pub root: CgroupRoot,
}

impl V1Fixture {
    /// A hybrid host like this one: the eight v1 hierarchies, name=systemd
    /// and an empty cgroup2 mount; the caller's own memory cgroup is
    /// `own_memory`, every other one "/".
    pub fn new(own_memory: &str) -> V1Fixture {
        let tmp = TempDir::new().expect("tempdir");
        let base = tmp.path();
        let mut mountinfo = String::new();
        let mut own = String::from("9:name=systemd:/\n");
        for (i, h) in V1_HIERARCHIES.iter().enumerate() {
            let own_path = if *h == "memory" { own_memory } else { "/" };
            mountinfo.push_str(&format!(
                "{} 31 0:{} / {}/{h} rw,relatime - cgroup cgroup rw,{h}\n",
                32 + i,
                29 + i,
                base.display()
            ));
            own.push_str(&format!("{}:{h}:{own_path}\n", i + 1));
            populate(&base.join(h), &[("cgroup.procs", "")]);
        }
        mountinfo.push_str(&format!(
            "40 31 0:37 / {}/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
             41 31 0:38 / {}/unified rw,relatime - cgroup2 cgroup2 rw\n",
            base.display(),
            base.display()
        ));
        own.push_str("0::/\n");
        populate(
            &base.join("cpuset"),
            &[("cpuset.cpus", "0-1\n"), ("cpuset.mems", "0\n")],
        );
        let root = CgroupRoot::parse(&mountinfo, &own, false).expect("parse fixture mountinfo");
        V1Fixture { tmp, root }
    }

    pub fn base(&self) -> &Path {
        self.tmp.path()
    }

    /// Resolves `path` and fills the leaf directories with fresh files.
    pub fn cgroup(&self, path: &str) -> Cgroup {
        let cg = Cgroup::resolve_in(&self.root, Some(path), "unused").expect("resolve");
        for h in cg.hierarchies() {
            populate(&h.dir, &v1_files(&h.name));
        }
        cg
    }

    pub fn dir(&self, cg: &Cgroup, name: &str) -> PathBuf {
        cg.hierarchies()
            .into_iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no hierarchy {name}"))
            .dir
    }
}

/// Files of a fresh v2 cgroup with every controller enabled.
pub const V2_LEAF_FILES: [(&str, &str); 20] = [
    ("cgroup.procs", ""),
    ("cgroup.freeze", "0\n"),
    ("cgroup.events", "populated 0\nfrozen 0\n"),
    ("pids.max", "max\n"),
    ("memory.max", "max\n"),
    ("memory.low", "0\n"),
    ("memory.swap.max", "max\n"),
    ("memory.current", "0\n"),
    ("memory.oom.group", "0\n"),
    ("cpu.weight", "100\n"),
    ("cpu.max", "max 100000\n"),
    ("cpu.max.burst", "0\n"),
    ("cpu.idle", "0\n"),
    ("cpuset.cpus", ""),
    ("cpuset.mems", ""),
    ("io.weight", "default 100\n"),
    ("io.max", ""),
    ("hugetlb.2MB.max", "max\n"),
    ("hugetlb.2MB.rsvd.max", "max\n"),
    ("rdma.max", ""),
];

pub struct V2Fixture {
    pub tmp: TempDir,
    pub root: CgroupRoot,
}

impl V2Fixture {
    /// A unified host whose caller sits in /user.slice/me.scope.
    pub fn new() -> V2Fixture {
        let tmp = TempDir::new().expect("tempdir");
        let base = tmp.path();
        let mountinfo = format!(
            "30 23 0:26 / {} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n",
            base.display()
        );
        populate(
            base,
            &[
                (
                    "cgroup.controllers",
                    "cpuset cpu io memory hugetlb pids rdma misc\n",
                ),
                ("cgroup.subtree_control", ""),
            ],
        );
        populate(
            &base.join("user.slice"),
            &[
                ("cgroup.controllers", "cpu io memory pids\n"),
                ("cgroup.subtree_control", ""),
            ],
        );
        populate(&base.join("user.slice/me.scope"), &[("cgroup.procs", "")]);
        let root = CgroupRoot::parse(&mountinfo, "0::/user.slice/me.scope\n", true).expect("parse");
        V2Fixture { tmp, root }
    }

    pub fn base(&self) -> &Path {
        self.tmp.path()
    }

    /// Resolves `path`, then gives the leaf the files of every controller.
    pub fn cgroup(&self, path: &str) -> (Cgroup, PathBuf) {
        let cg = Cgroup::resolve_in(&self.root, Some(path), "unused").expect("resolve");
        let dir = cg.hierarchies()[0].dir.clone();
        populate(&dir, &V2_LEAF_FILES);
        (cg, dir)
    }
}
