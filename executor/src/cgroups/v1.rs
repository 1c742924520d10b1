//! cgroup v1: one directory per mounted hierarchy. Creation (with cpuset's
//! copy-down of cpus/mems), resources written per controller in runc's
//! subsystem order (runc libcontainer/cgroups/fs). The freezer is in v1_freezer.rs.

use std::path::Path;

use super::devices::{self, RuleSet};
use super::error::{CgroupError, Result};
use super::fs::{
    append_field, field_error, mkdir_all, read_optional, read_string, read_u64, write, write_field,
    write_raw,
};
use super::root::CgroupFsType;
use super::Hierarchy;
use crate::spec::{BlockIo, Cpu, Memory, Network, Resources};

/// The directory of this cgroup in the hierarchy that has `controller`.
pub fn dir_of<'a>(hs: &'a [Hierarchy], controller: &str) -> Option<&'a Path> {
    hs.iter()
        .find(|h| {
            h.fs_type == CgroupFsType::Cgroup && h.options.split(',').any(|o| o == controller)
        })
        .map(|h| h.dir.as_path())
}

/// Named hierarchies (name=systemd) and, on a hybrid host, the cgroup2
/// mount carry no resources: runc joins them but ignores failures.
pub fn is_best_effort(h: &Hierarchy) -> bool {
    h.fs_type == CgroupFsType::Cgroup2 || h.options.split(',').all(|o| o.starts_with("name="))
}

pub fn create(hs: &[Hierarchy]) -> Result<()> {
    for h in hs {
        let res = if h.options.split(',').any(|o| o == "cpuset") {
            create_cpuset(h)
        } else {
            mkdir_all(&h.dir)
        };
        match res {
            Err(e) if is_best_effort(h) => {
                tracing::warn!(path = %h.dir.display(), error = %e, "cannot create cgroup in a named hierarchy, skipping");
            }
            other => other?,
        }
    }
    Ok(())
}

/// A new v1 cpuset cgroup starts with empty cpus and mems, and a task cannot
/// join it like that: fill each level from its parent, top down (runc's
/// cpusetEnsureParent / cpusetCopyIfNeeded).
fn create_cpuset(h: &Hierarchy) -> Result<()> {
    let Ok(rel) = h.dir.strip_prefix(&h.mount_point) else {
        return mkdir_all(&h.dir);
    };
    let mut parent = h.mount_point.clone();
    for comp in rel.components() {
        let cur = parent.join(comp);
        match std::fs::create_dir(&cur) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(CgroupError::io("mkdir", &cur, e)),
        }
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let mine = read_optional(&cur.join(file))?.unwrap_or_default();
            if mine.trim().is_empty() {
                let theirs = read_string(&parent.join(file))?;
                write(&cur.join(file), theirs.trim())?;
            }
        }
        parent = cur;
    }
    Ok(())
}

fn need(hs: &[Hierarchy], controller: &str, field: &str) -> Result<()> {
    if dir_of(hs, controller).is_some() {
        Ok(())
    } else {
        Err(CgroupError::config(
            field,
            format!("{controller} controller is not available on this host"),
        ))
    }
}

fn memory_set(m: &Memory) -> bool {
    m.limit.is_some()
        || m.reservation.is_some()
        || m.swap.is_some()
        || m.kernel.is_some()
        || m.kernel_tcp.is_some()
        || m.swappiness.is_some()
        || m.disable_oom_killer.is_some()
        || m.use_hierarchy.is_some()
}

fn cpu_set(c: &Cpu) -> bool {
    c.shares.is_some()
        || c.quota.is_some()
        || c.period.is_some()
        || c.burst.is_some()
        || c.realtime_runtime.is_some()
        || c.realtime_period.is_some()
        || c.idle.is_some()
}

fn blkio_set(b: &BlockIo) -> bool {
    b.weight.is_some()
        || b.leaf_weight.is_some()
        || !b.weight_device.is_empty()
        || !b.throttle_read_bps_device.is_empty()
        || !b.throttle_write_bps_device.is_empty()
        || !b.throttle_read_iops_device.is_empty()
        || !b.throttle_write_iops_device.is_empty()
}

/// Fails before writing anything when the config needs a controller this
/// host does not have.
fn check_available(hs: &[Hierarchy], r: &Resources) -> Result<()> {
    need(hs, "devices", "linux.resources.devices")?;
    if r.memory.as_ref().is_some_and(memory_set) {
        need(hs, "memory", "linux.resources.memory")?;
    }
    if let Some(c) = &r.cpu {
        if cpu_set(c) {
            need(hs, "cpu", "linux.resources.cpu")?;
        }
        if c.cpus.is_some() || c.mems.is_some() {
            need(hs, "cpuset", "linux.resources.cpu.cpus/mems")?;
        }
    }
    if r.pids.is_some() {
        need(hs, "pids", "linux.resources.pids")?;
    }
    if r.block_io.as_ref().is_some_and(blkio_set) {
        need(hs, "blkio", "linux.resources.blockIO")?;
    }
    if !r.hugepage_limits.is_empty() {
        need(hs, "hugetlb", "linux.resources.hugepageLimits")?;
    }
    if let Some(n) = &r.network {
        if n.class_id.is_some() {
            need(hs, "net_cls", "linux.resources.network.classID")?;
        }
        if !n.priorities.is_empty() {
            need(hs, "net_prio", "linux.resources.network.priorities")?;
        }
    }
    if !r.rdma.is_empty() {
        need(hs, "rdma", "linux.resources.rdma")?;
    }
    if !r.unified.is_empty() {
        return Err(CgroupError::config(
            "linux.resources.unified",
            "needs cgroup v2; this host uses cgroup v1",
        ));
    }
    Ok(())
}

/// Writes `r` in runc's subsystem order: cpuset, devices, memory, cpu,
/// pids, blkio, hugetlb, net_cls, net_prio, rdma.
pub fn apply(hs: &[Hierarchy], r: &Resources) -> Result<()> {
    check_available(hs, r)?;
    // Device rules are checked before anything is written.
    let ordered_rules = devices::rules_from_spec(&r.devices)?;
    let device_rules = RuleSet::from_rules(&ordered_rules)?;
    let dir = |c: &str| dir_of(hs, c).unwrap_or(Path::new(""));
    if let Some(c) = &r.cpu {
        for (value, file, field) in [
            (&c.cpus, "cpuset.cpus", "linux.resources.cpu.cpus"),
            (&c.mems, "cpuset.mems", "linux.resources.cpu.mems"),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                write_field(dir("cpuset"), file, v, field)?;
            }
        }
    }
    devices::apply_v1(dir("devices"), &ordered_rules, &device_rules)?;
    if let Some(m) = r.memory.as_ref().filter(|m| memory_set(m)) {
        set_memory(dir("memory"), m)?;
    }
    if let Some(c) = r.cpu.as_ref().filter(|c| cpu_set(c)) {
        set_cpu(dir("cpu"), c)?;
    }
    if let Some(p) = &r.pids {
        let v = if p.limit > 0 {
            p.limit.to_string()
        } else {
            "max".into()
        };
        write_field(dir("pids"), "pids.max", &v, "linux.resources.pids.limit")?;
    }
    if let Some(b) = r.block_io.as_ref().filter(|b| blkio_set(b)) {
        set_blkio(dir("blkio"), b)?;
    }
    for (i, l) in r.hugepage_limits.iter().enumerate() {
        let field = format!("linux.resources.hugepageLimits[{i}]");
        let prefix = super::hugetlb_prefix(&l.page_size, &field)?;
        let v = l.limit.to_string();
        write_field(
            dir("hugetlb"),
            &format!("{prefix}.limit_in_bytes"),
            &v,
            &field,
        )?;
        super::write_hugetlb_rsvd(
            dir("hugetlb"),
            &format!("{prefix}.rsvd.limit_in_bytes"),
            &v,
            &field,
        )?;
    }
    if let Some(n) = &r.network {
        set_network(hs, n)?;
    }
    for line in super::rdma_lines(&r.rdma) {
        append_field(dir("rdma"), "rdma.max", &line, "linux.resources.rdma")?;
    }
    Ok(())
}

fn set_memory(dir: &Path, m: &Memory) -> Result<()> {
    let limit = m.limit.unwrap_or(0);
    let mut swap = m.swap.unwrap_or(0);
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    // Unlimited memory without a swap value means unlimited swap too.
    if limit == -1 && swap == 0 && memsw.exists() {
        swap = -1;
    }
    if swap != 0 && !memsw.exists() {
        return Err(CgroupError::config(
            "linux.resources.memory.swap",
            format!(
                "swap accounting is not available: {} does not exist",
                memsw.display()
            ),
        ));
    }
    if m.check_before_update == Some(true) && limit > 0 {
        super::check_usage_below(&dir.join("memory.usage_in_bytes"), limit)?;
    }
    // memory.memsw.limit_in_bytes may never be below memory.limit_in_bytes,
    // so the order of the two writes depends on where the limit moves.
    let swap_first = limit != 0
        && swap != 0
        && (swap == -1 || read_u64(&dir.join("memory.limit_in_bytes"))? < swap as u64);
    if swap_first {
        set_swap(dir, swap)?;
        set_limit(dir, limit)?;
    } else {
        set_limit(dir, limit)?;
        set_swap(dir, swap)?;
    }
    // Kernel memory limits: written where the kernel still has the files
    // (crun does; recent kernels accept kmem writes as no-ops but still
    // enforce the TCP buffer limit); skipped with a warning where not.
    for (value, file, f) in [
        (
            m.kernel,
            "memory.kmem.limit_in_bytes",
            "linux.resources.memory.kernel",
        ),
        (
            m.kernel_tcp,
            "memory.kmem.tcp.limit_in_bytes",
            "linux.resources.memory.kernelTCP",
        ),
    ] {
        let Some(v) = value.filter(|v| *v != 0) else {
            continue;
        };
        if dir.join(file).exists() {
            write_field(dir, file, &v.to_string(), f)?;
        } else {
            tracing::warn!("{f} is ignored: {file} does not exist on this kernel");
        }
    }
    if let Some(v) = m.reservation.filter(|v| *v != 0) {
        let f = "linux.resources.memory.reservation";
        write_field(dir, "memory.soft_limit_in_bytes", &v.to_string(), f)?;
    }
    if let Some(d) = m.disable_oom_killer {
        let f = "linux.resources.memory.disableOOMKiller";
        write_field(dir, "memory.oom_control", if d { "1" } else { "0" }, f)?;
    }
    // -1 cast to u64 (some callers send it) means "leave as is", as in runc.
    if let Some(s) = m.swappiness.filter(|s| *s != u64::MAX) {
        let f = "linux.resources.memory.swappiness";
        if s > 100 {
            return Err(CgroupError::config(f, format!("{s} is outside 0-100")));
        }
        write_field(dir, "memory.swappiness", &s.to_string(), f)?;
    }
    if let Some(h) = m.use_hierarchy {
        let want = u64::from(h);
        // Kernels since 5.x are always hierarchical and refuse "0".
        if read_u64(&dir.join("memory.use_hierarchy"))? != want {
            let f = "linux.resources.memory.useHierarchy";
            write_field(dir, "memory.use_hierarchy", &want.to_string(), f)?;
        }
    }
    Ok(())
}

fn set_limit(dir: &Path, limit: i64) -> Result<()> {
    if limit == 0 {
        return Ok(());
    }
    let path = dir.join("memory.limit_in_bytes");
    let value = limit.to_string();
    match write_raw(&path, &value) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            let usage = read_u64(&dir.join("memory.usage_in_bytes"))?;
            let peak = read_u64(&dir.join("memory.max_usage_in_bytes"))?;
            Err(CgroupError::config(
                "linux.resources.memory.limit",
                format!("unable to set memory limit to {limit} (current usage: {usage}, peak usage: {peak})"),
            ))
        }
        Err(e) => Err(field_error(
            "linux.resources.memory.limit",
            &path,
            &value,
            e,
        )),
    }
}

fn set_swap(dir: &Path, swap: i64) -> Result<()> {
    if swap == 0 {
        return Ok(());
    }
    let f = "linux.resources.memory.swap";
    write_field(dir, "memory.memsw.limit_in_bytes", &swap.to_string(), f)
}

/// Writes a value the kernel may refuse with EINVAL until a later value is
/// written; returns the value to retry then (runc's period/quota dance).
fn write_or_defer(
    dir: &Path,
    file: &str,
    value: String,
    field: &str,
    later: bool,
) -> Result<Option<String>> {
    let path = dir.join(file);
    match write_raw(&path, &value) {
        Ok(()) => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) && later => Ok(Some(value)),
        Err(e) => Err(field_error(field, &path, &value, e)),
    }
}

fn set_cpu(dir: &Path, c: &Cpu) -> Result<()> {
    if let Some(shares) = c.shares.filter(|s| *s != 0) {
        let f = "linux.resources.cpu.shares";
        write_field(dir, "cpu.shares", &shares.to_string(), f)?;
        let got = read_u64(&dir.join("cpu.shares"))?;
        if shares > got {
            return Err(CgroupError::config(
                f,
                format!("the maximum allowed cpu-shares is {got}"),
            ));
        } else if shares < got {
            return Err(CgroupError::config(
                f,
                format!("the minimum allowed cpu-shares is {got}"),
            ));
        }
    }
    let quota = c.quota.unwrap_or(0);
    let mut period_retry = None;
    if let Some(p) = c.period.filter(|p| *p != 0) {
        let f = "linux.resources.cpu.period";
        period_retry = write_or_defer(dir, "cpu.cfs_period_us", p.to_string(), f, quota != 0)?;
    }
    let mut burst_retry = None;
    if let Some(b) = c.burst {
        let f = "linux.resources.cpu.burst";
        burst_retry = write_or_defer(dir, "cpu.cfs_burst_us", b.to_string(), f, quota != 0)?;
    }
    if quota != 0 {
        write_field(
            dir,
            "cpu.cfs_quota_us",
            &quota.to_string(),
            "linux.resources.cpu.quota",
        )?;
        if let Some(p) = period_retry {
            write_field(dir, "cpu.cfs_period_us", &p, "linux.resources.cpu.period")?;
        }
        if let Some(b) = burst_retry {
            write_field(dir, "cpu.cfs_burst_us", &b, "linux.resources.cpu.burst")?;
        }
    }
    if let Some(idle) = c.idle {
        write_field(
            dir,
            "cpu.idle",
            &idle.to_string(),
            "linux.resources.cpu.idle",
        )?;
    }
    let runtime = c.realtime_runtime.unwrap_or(0);
    let mut rt_period_retry = None;
    if let Some(p) = c.realtime_period.filter(|p| *p != 0) {
        let f = "linux.resources.cpu.realtimePeriod";
        rt_period_retry = write_or_defer(dir, "cpu.rt_period_us", p.to_string(), f, runtime != 0)?;
    }
    if runtime != 0 {
        let f = "linux.resources.cpu.realtimeRuntime";
        write_field(dir, "cpu.rt_runtime_us", &runtime.to_string(), f)?;
        if let Some(p) = rt_period_retry {
            write_field(
                dir,
                "cpu.rt_period_us",
                &p,
                "linux.resources.cpu.realtimePeriod",
            )?;
        }
    }
    Ok(())
}

fn set_blkio(dir: &Path, b: &BlockIo) -> Result<()> {
    // CFQ had blkio.weight; since its removal only BFQ offers weights.
    let weight_files = if dir.join("blkio.weight").exists() {
        Some(("blkio.weight", "blkio.weight_device"))
    } else if dir.join("blkio.bfq.weight").exists() {
        Some(("blkio.bfq.weight", "blkio.bfq.weight_device"))
    } else {
        None
    };
    let no_weight = |field: &str| {
        CgroupError::config(
            field,
            format!(
                "neither blkio.weight nor blkio.bfq.weight exists in {}: no I/O scheduler with weights (CFQ/BFQ) on this host",
                dir.display()
            ),
        )
    };
    if let Some(w) = b.weight.filter(|w| *w != 0) {
        let f = "linux.resources.blockIO.weight";
        let (file, _) = weight_files.ok_or_else(|| no_weight(f))?;
        write_field(dir, file, &w.to_string(), f)?;
    }
    if let Some(w) = b.leaf_weight.filter(|w| *w != 0) {
        write_field(
            dir,
            "blkio.leaf_weight",
            &w.to_string(),
            "linux.resources.blockIO.leafWeight",
        )?;
    }
    for (i, wd) in b.weight_device.iter().enumerate() {
        let f = format!("linux.resources.blockIO.weightDevice[{i}]");
        if let Some(w) = wd.weight.filter(|w| *w != 0) {
            let (_, file) = weight_files.ok_or_else(|| no_weight(&f))?;
            append_field(dir, file, &format!("{}:{} {w}", wd.major, wd.minor), &f)?;
        }
        if let Some(w) = wd.leaf_weight.filter(|w| *w != 0) {
            let line = format!("{}:{} {w}", wd.major, wd.minor);
            append_field(dir, "blkio.leaf_weight_device", &line, &f)?;
        }
    }
    for (list, file, name) in [
        (
            &b.throttle_read_bps_device,
            "blkio.throttle.read_bps_device",
            "throttleReadBpsDevice",
        ),
        (
            &b.throttle_write_bps_device,
            "blkio.throttle.write_bps_device",
            "throttleWriteBpsDevice",
        ),
        (
            &b.throttle_read_iops_device,
            "blkio.throttle.read_iops_device",
            "throttleReadIOPSDevice",
        ),
        (
            &b.throttle_write_iops_device,
            "blkio.throttle.write_iops_device",
            "throttleWriteIOPSDevice",
        ),
    ] {
        for (i, t) in list.iter().enumerate() {
            let f = format!("linux.resources.blockIO.{name}[{i}]");
            append_field(
                dir,
                file,
                &format!("{}:{} {}", t.major, t.minor, t.rate),
                &f,
            )?;
        }
    }
    Ok(())
}

fn set_network(hs: &[Hierarchy], n: &Network) -> Result<()> {
    if let Some(id) = n.class_id {
        let dir = dir_of(hs, "net_cls").unwrap_or(Path::new(""));
        write_field(
            dir,
            "net_cls.classid",
            &id.to_string(),
            "linux.resources.network.classID",
        )?;
    }
    for (i, p) in n.priorities.iter().enumerate() {
        let dir = dir_of(hs, "net_prio").unwrap_or(Path::new(""));
        let f = format!("linux.resources.network.priorities[{i}]");
        append_field(
            dir,
            "net_prio.ifpriomap",
            &format!("{} {}", p.name, p.priority),
            &f,
        )?;
    }
    Ok(())
}
