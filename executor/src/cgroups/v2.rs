//! cgroup v2: one directory in the unified hierarchy. Creation enables the
//! available controllers down the ancestors' cgroup.subtree_control; the
//! resources map onto v2 files with runc's conversions (libcontainer/cgroups/fs2).

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use super::devices::{self, RuleSet};
use super::error::{CgroupError, Result};
use super::fs::{
    append_field, field_error, read_optional, read_string, write, write_field, write_raw,
};
use super::{v2_devices, Hierarchy};
use crate::spec::{BlockIo, Cpu, Memory, Resources};

/// Creates the cgroup, making every ancestor pass its available controllers
/// down (cgroup.subtree_control) so they are usable in the new leaf.
/// Directories created before a failure are removed again.
pub fn create(h: &Hierarchy) -> Result<()> {
    let rel = h.dir.strip_prefix(&h.mount_point).unwrap_or(Path::new(""));
    let mut created: Vec<PathBuf> = Vec::new();
    let mut cur = h.mount_point.clone();
    let res = (|| {
        for comp in rel.components() {
            enable_controllers(&cur)?;
            cur = cur.join(comp);
            match std::fs::create_dir(&cur) {
                Ok(()) => created.push(cur.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(CgroupError::io("mkdir", &cur, e)),
            }
        }
        Ok(())
    })();
    if res.is_err() {
        for dir in created.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
    res
}

/// Writes "+c1 +c2 ..." (the controllers in `dir/cgroup.controllers`) to
/// `dir/cgroup.subtree_control`; if the kernel refuses the set, enables them
/// one at a time and leaves out the ones it refuses, as runc does.
fn enable_controllers(dir: &Path) -> Result<()> {
    let available = read_optional(&dir.join("cgroup.controllers"))?.unwrap_or_default();
    let wanted: Vec<String> = available
        .split_whitespace()
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let file = dir.join("cgroup.subtree_control");
    if write_raw(&file, &wanted.join(" ")).is_err() {
        for c in &wanted {
            if let Err(e) = write_raw(&file, c) {
                tracing::debug!(path = %file.display(), controller = %c, error = %e, "controller not enabled");
            }
        }
    }
    Ok(())
}

/// Applies everything, then the device filter.
pub fn apply(dir: &Path, r: &Resources) -> Result<()> {
    // Device rules are checked before anything is written.
    let device_rules = RuleSet::from_rules(&devices::rules_from_spec(&r.devices)?)?;
    set_resources(dir, r)?;
    v2_devices::apply(dir, &device_rules)
}

/// Every resource except devices, in runc's order: pids, memory, io, cpu,
/// cpuset, hugetlb, rdma, unified.
pub fn set_resources(dir: &Path, r: &Resources) -> Result<()> {
    check_config(r)?;
    if let Some(p) = &r.pids {
        let v = if p.limit > 0 {
            p.limit.to_string()
        } else {
            "max".into()
        };
        write_field(dir, "pids.max", &v, "linux.resources.pids.limit")?;
    }
    if let Some(m) = &r.memory {
        set_memory(dir, m)?;
    }
    if let Some(b) = &r.block_io {
        set_io(dir, b)?;
    }
    if let Some(c) = &r.cpu {
        set_cpu(dir, c)?;
        for (value, file, field) in [
            (&c.cpus, "cpuset.cpus", "linux.resources.cpu.cpus"),
            (&c.mems, "cpuset.mems", "linux.resources.cpu.mems"),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                write_field(dir, file, v, field)?;
            }
        }
    }
    for (i, l) in r.hugepage_limits.iter().enumerate() {
        let field = format!("linux.resources.hugepageLimits[{i}]");
        let prefix = super::hugetlb_prefix(&l.page_size, &field)?;
        let v = l.limit.to_string();
        write_field(dir, &format!("{prefix}.max"), &v, &field)?;
        super::write_hugetlb_rsvd(dir, &format!("{prefix}.rsvd.max"), &v, &field)?;
    }
    for line in super::rdma_lines(&r.rdma) {
        append_field(dir, "rdma.max", &line, "linux.resources.rdma")?;
    }
    for (key, value) in &r.unified {
        set_unified(dir, key, value)?;
    }
    Ok(())
}

/// Refuses, before anything is written, what cgroup v2 cannot express.
fn check_config(r: &Resources) -> Result<()> {
    if let Some(n) = &r.network {
        if n.class_id.is_some() || !n.priorities.is_empty() {
            return Err(CgroupError::config(
                "linux.resources.network",
                "net_cls and net_prio do not exist on cgroup v2",
            ));
        }
    }
    if let Some(c) = &r.cpu {
        for (set, name) in [
            (c.realtime_runtime.unwrap_or(0) != 0, "realtimeRuntime"),
            (c.realtime_period.unwrap_or(0) != 0, "realtimePeriod"),
        ] {
            if set {
                return Err(CgroupError::config(
                    format!("linux.resources.cpu.{name}"),
                    "real-time group scheduling is not available on cgroup v2",
                ));
            }
        }
    }
    if let Some(m) = &r.memory {
        swap_to_v2(m.swap.unwrap_or(0), m.limit.unwrap_or(0))
            .map_err(|e| CgroupError::config("linux.resources.memory.swap", e))?;
    }
    for (i, l) in r.hugepage_limits.iter().enumerate() {
        super::hugetlb_prefix(
            &l.page_size,
            &format!("linux.resources.hugepageLimits[{i}]"),
        )?;
    }
    for key in r.unified.keys() {
        check_unified_key(key)?;
    }
    Ok(())
}

fn check_unified_key(key: &str) -> Result<()> {
    if key.is_empty() || key.contains('/') || key.contains("..") || key.contains('\0') {
        return Err(CgroupError::config(
            format!("linux.resources.unified[{key:?}]"),
            "must be the name of a file in the cgroup directory",
        ));
    }
    Ok(())
}

/// runc 1.1's ConvertCPUSharesToCgroupV2Value: maps [2, 262144] linearly
/// onto [1, 10000].
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262142
}

/// runc's ConvertBlkIOToIOWeightValue: [10, 1000] onto [1, 10000].
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (u64::from(weight).saturating_sub(10)) * 9999 / 990
}

/// runc's ConvertMemorySwapToCgroupV2Value: OCI swap is memory+swap, v2's
/// memory.swap.max is swap alone. -1 stays -1 ("max"), 0 stays unset.
pub fn swap_to_v2(swap: i64, limit: i64) -> std::result::Result<i64, String> {
    if limit == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if limit == 0 || limit == -1 {
        return Err("unable to set swap limit without memory limit".into());
    }
    if limit < 0 {
        return Err(format!("invalid memory value: {limit}"));
    }
    if swap < limit {
        return Err("memory+swap limit should be >= memory limit".into());
    }
    Ok(swap - limit)
}

/// 0 is "leave alone", -1 is "max".
fn num_to_str(v: i64) -> Option<String> {
    match v {
        0 => None,
        -1 => Some("max".into()),
        n => Some(n.to_string()),
    }
}

fn set_memory(dir: &Path, m: &Memory) -> Result<()> {
    let limit = m.limit.unwrap_or(0);
    let swap = m.swap.unwrap_or(0);
    let reservation = m.reservation.unwrap_or(0);
    if m.check_before_update == Some(true) && limit > 0 {
        super::check_usage_below(&dir.join("memory.current"), limit)?;
    }
    if limit != 0 || swap != 0 || reservation != 0 {
        let f = "linux.resources.memory.swap";
        let v2 = swap_to_v2(swap, limit).map_err(|m| CgroupError::config(f, m))?;
        // A swap equal to the limit means "no swap": write 0, not nothing.
        let swap_str = num_to_str(v2).or_else(|| (v2 == 0 && swap > 0).then(|| "0".to_string()));
        if let Some(s) = swap_str {
            write_field(dir, "memory.swap.max", &s, f)?;
        }
        if let Some(s) = num_to_str(limit) {
            write_field(dir, "memory.max", &s, "linux.resources.memory.limit")?;
        }
        if let Some(s) = num_to_str(reservation) {
            write_field(dir, "memory.low", &s, "linux.resources.memory.reservation")?;
        }
    }
    for (set, name) in [
        (m.kernel.is_some(), "kernel"),
        (m.kernel_tcp.is_some(), "kernelTCP"),
        (m.swappiness.is_some_and(|s| s != u64::MAX), "swappiness"),
        (m.disable_oom_killer == Some(true), "disableOOMKiller"),
        (m.use_hierarchy == Some(false), "useHierarchy"),
    ] {
        if set {
            tracing::warn!(field = %format!("linux.resources.memory.{name}"), "ignored: cgroup v2 has no such setting");
        }
    }
    Ok(())
}

fn set_cpu(dir: &Path, c: &Cpu) -> Result<()> {
    if let Some(idle) = c.idle {
        write_field(
            dir,
            "cpu.idle",
            &idle.to_string(),
            "linux.resources.cpu.idle",
        )?;
    }
    if let Some(shares) = c.shares.filter(|s| *s != 0) {
        let w = shares_to_weight(shares).to_string();
        write_field(dir, "cpu.weight", &w, "linux.resources.cpu.shares")?;
    }
    let quota = c.quota.unwrap_or(0);
    let period = c.period.unwrap_or(0);
    // A burst above the current quota is refused until the quota is written.
    let mut burst_retry = None;
    if let Some(b) = c.burst {
        let path = dir.join("cpu.max.burst");
        let value = b.to_string();
        match write_raw(&path, &value) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && quota != 0 => {
                burst_retry = Some(value)
            }
            Err(e) => return Err(field_error("linux.resources.cpu.burst", &path, &value, e)),
        }
    }
    if quota != 0 || period != 0 {
        let q = if quota > 0 {
            quota.to_string()
        } else {
            "max".into()
        };
        let p = if period == 0 { 100_000 } else { period };
        write_field(
            dir,
            "cpu.max",
            &format!("{q} {p}"),
            "linux.resources.cpu.quota",
        )?;
        if let Some(b) = burst_retry {
            write_field(dir, "cpu.max.burst", &b, "linux.resources.cpu.burst")?;
        }
    }
    Ok(())
}

/// io.bfq.weight holds per-device lines ("default 100") only on kernels
/// that accept per-device BFQ weights; older ones show a bare number.
fn bfq_per_device(content: &str) -> bool {
    content.trim().parse::<i64>().is_err()
}

fn set_io(dir: &Path, b: &BlockIo) -> Result<()> {
    let bfq = read_optional(&dir.join("io.bfq.weight"))?;
    if let Some(w) = b.weight.filter(|w| *w != 0) {
        let f = "linux.resources.blockIO.weight";
        // BFQ takes the blkio range as it is; io.weight needs converting.
        if bfq.is_some() {
            write_field(dir, "io.bfq.weight", &w.to_string(), f)?;
        } else {
            write_field(
                dir,
                "io.weight",
                &blkio_weight_to_io_weight(w).to_string(),
                f,
            )?;
        }
    }
    if b.leaf_weight.is_some() || b.weight_device.iter().any(|d| d.leaf_weight.is_some()) {
        tracing::warn!(
            "linux.resources.blockIO leafWeight is ignored: cgroup v2 has no leaf weights"
        );
    }
    for (i, wd) in b.weight_device.iter().enumerate() {
        let Some(w) = wd.weight.filter(|w| *w != 0) else {
            continue;
        };
        let f = format!("linux.resources.blockIO.weightDevice[{i}]");
        if bfq.as_deref().is_some_and(bfq_per_device) {
            append_field(
                dir,
                "io.bfq.weight",
                &format!("{}:{} {w}", wd.major, wd.minor),
                &f,
            )?;
        } else {
            let line = format!("{}:{} {}", wd.major, wd.minor, blkio_weight_to_io_weight(w));
            append_field(dir, "io.weight", &line, &f)?;
        }
    }
    for line in io_max_lines(b) {
        append_field(dir, "io.max", &line, "linux.resources.blockIO.throttle")?;
    }
    Ok(())
}

/// One io.max line per device, "MAJ:MIN rbps=N wbps=N riops=N wiops=N",
/// with only the limits the config gives, devices in first-mention order.
pub fn io_max_lines(b: &BlockIo) -> Vec<String> {
    let mut lines: Vec<((i64, i64), String)> = Vec::new();
    for (list, key) in [
        (&b.throttle_read_bps_device, "rbps"),
        (&b.throttle_write_bps_device, "wbps"),
        (&b.throttle_read_iops_device, "riops"),
        (&b.throttle_write_iops_device, "wiops"),
    ] {
        for t in list {
            let dev = (t.major, t.minor);
            let item = format!(" {key}={}", t.rate);
            match lines.iter_mut().find(|(d, _)| *d == dev) {
                Some((_, line)) => line.push_str(&item),
                None => lines.push((dev, format!("{}:{}{item}", t.major, t.minor))),
            }
        }
    }
    lines.into_iter().map(|(_, l)| l).collect()
}

fn set_unified(dir: &Path, key: &str, value: &str) -> Result<()> {
    check_unified_key(key)?;
    let field = format!("linux.resources.unified[{key:?}]");
    let path = dir.join(key);
    match write_raw(&path, value) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::EPERM | libc::EACCES)
            ) =>
        {
            let controller = key.split('.').next().unwrap_or(key);
            Err(CgroupError::config(
                field,
                format!(
                    "cannot write {}: {e} (is the {controller:?} controller enabled for this cgroup?)",
                    path.display()
                ),
            ))
        }
        Err(e) => Err(field_error(&field, &path, value, e)),
    }
}

pub fn freeze(dir: &Path) -> Result<()> {
    let path = dir.join("cgroup.freeze");
    if let Err(e) = write_raw(&path, "1") {
        if e.raw_os_error() == Some(libc::ENOENT) {
            return Err(CgroupError::Unsupported {
                what: format!(
                    "freezing: {} does not exist (kernel older than 5.2?)",
                    path.display()
                ),
            });
        }
        return Err(CgroupError::Write {
            path,
            value: "1".into(),
            source: e,
        });
    }
    let res = wait_frozen(dir);
    if res.is_err() {
        let _ = write_raw(&path, "0");
    }
    res
}

pub fn thaw(dir: &Path) -> Result<()> {
    let path = dir.join("cgroup.freeze");
    if !path.exists() {
        return Ok(());
    }
    write(&path, "0")
}

/// Freezing is asynchronous: cgroup.events says "frozen 1" once every task
/// has stopped. Wait up to 10 s like runc.
fn wait_frozen(dir: &Path) -> Result<()> {
    let events = dir.join("cgroup.events");
    for _ in 0..1000 {
        let content = read_string(&events)?;
        if content.lines().any(|l| l.trim() == "frozen 1") {
            return Ok(());
        }
        sleep(Duration::from_millis(10));
    }
    Err(CgroupError::State {
        path: events,
        message: "timed out after 10s waiting for \"frozen 1\"".into(),
    })
}

pub fn is_frozen(dir: &Path) -> Result<bool> {
    match read_optional(&dir.join("cgroup.freeze"))? {
        Some(s) if s.trim() == "1" => wait_frozen(dir).map(|()| true),
        _ => Ok(false),
    }
}

/// SIGKILLs every process in the cgroup and below through cgroup.kill
/// (Linux 5.14+). False when the kernel has no cgroup.kill.
pub fn kill_all(dir: &Path) -> Result<bool> {
    let path = dir.join("cgroup.kill");
    if !path.exists() {
        return Ok(false);
    }
    write(&path, "1")?;
    Ok(true)
}
