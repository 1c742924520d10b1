//! cgroup v1 statistics, read per controller the way runc's fs package
//! reads them (cpu, cpuacct, cpuset, memory, pids, blkio, hugetlb).

use std::path::Path;

use super::error::{CgroupError, Result};
use super::fs::{parse_key_values, parse_u64, read_key, read_optional, read_string, read_u64};
use super::stats::{parse_cpu_list, BlkioEntry, BlkioStats, MemoryEntry, Stats};
use super::v1::dir_of;
use super::Hierarchy;

/// USER_HZ: cpuacct.stat counts in clock ticks of 1/100 s.
const CLOCK_TICKS: u64 = 100;
const NANOS_PER_SEC: u64 = 1_000_000_000;

pub fn stats(hs: &[Hierarchy]) -> Result<Stats> {
    let mut s = Stats::default();
    let existing = |c: &str| dir_of(hs, c).filter(|d| d.is_dir());
    if let Some(d) = existing("cpu") {
        cpu(d, &mut s)?;
    }
    if let Some(d) = existing("cpuacct") {
        cpuacct(d, &mut s)?;
    }
    if let Some(d) = existing("cpuset") {
        cpuset(d, &mut s)?;
    }
    if let Some(d) = existing("memory") {
        memory(d, &mut s)?;
    }
    if let Some(d) = existing("pids") {
        s.pids.current = read_u64(&d.join("pids.current"))?;
        s.pids.limit = match read_u64(&d.join("pids.max"))? {
            u64::MAX => 0,
            n => n,
        };
    }
    if let Some(d) = existing("blkio") {
        s.blkio = blkio(d)?;
    }
    if let Some(d) = existing("hugetlb") {
        hugetlb(d, &mut s)?;
    }
    Ok(s)
}

fn cpu(dir: &Path, s: &mut Stats) -> Result<()> {
    let path = dir.join("cpu.stat");
    let Some(content) = read_optional(&path)? else {
        return Ok(());
    };
    for (k, v) in parse_key_values(&path, &content)? {
        match k.as_str() {
            "nr_periods" => s.cpu.throttling.periods = v,
            "nr_throttled" => s.cpu.throttling.throttled_periods = v,
            "throttled_time" => s.cpu.throttling.throttled_time = v,
            _ => {}
        }
    }
    Ok(())
}

fn numbers(path: &Path, content: &str) -> Result<Vec<u64>> {
    content
        .split_whitespace()
        .map(|v| parse_u64(path, v))
        .collect()
}

fn cpuacct(dir: &Path, s: &mut Stats) -> Result<()> {
    let path = dir.join("cpuacct.stat");
    let stat = read_string(&path)?;
    let f: Vec<&str> = stat.split_whitespace().collect();
    if f.len() < 4 || f[0] != "user" || f[2] != "system" {
        return Err(CgroupError::Parse {
            path,
            message: format!("expected \"user N system M\", found {stat:?}"),
        });
    }
    s.cpu.usage.user = parse_u64(&path, f[1])? * NANOS_PER_SEC / CLOCK_TICKS;
    s.cpu.usage.kernel = parse_u64(&path, f[3])? * NANOS_PER_SEC / CLOCK_TICKS;
    s.cpu.usage.total = read_u64(&dir.join("cpuacct.usage"))?;
    let percpu = dir.join("cpuacct.usage_percpu");
    s.cpu.usage.percpu = numbers(&percpu, &read_string(&percpu)?)?;
    // "cpu user system" header, then one line per cpu.
    let all = dir.join("cpuacct.usage_all");
    if let Some(content) = read_optional(&all)? {
        for line in content.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() != 3 {
                continue;
            }
            s.cpu.usage.percpu_user.push(parse_u64(&all, cols[1])?);
            s.cpu.usage.percpu_kernel.push(parse_u64(&all, cols[2])?);
        }
    }
    Ok(())
}

fn cpuset(dir: &Path, s: &mut Stats) -> Result<()> {
    let list = |file: &str| -> Result<Vec<u16>> {
        let path = dir.join(file);
        match read_optional(&path)? {
            None => Ok(Vec::new()),
            Some(c) => parse_cpu_list(&c).ok_or_else(|| CgroupError::Parse {
                path,
                message: format!("bad cpu list {:?}", c.trim()),
            }),
        }
    };
    let num = |file: &str| -> Result<u64> {
        let path = dir.join(file);
        read_optional(&path)?.map_or(Ok(0), |c| parse_u64(&path, &c))
    };
    let c = &mut s.cpuset;
    c.cpus = list("cpuset.cpus")?;
    c.mems = list("cpuset.mems")?;
    c.cpu_exclusive = num("cpuset.cpu_exclusive")?;
    c.mem_hardwall = num("cpuset.mem_hardwall")?;
    c.mem_exclusive = num("cpuset.mem_exclusive")?;
    c.memory_migrate = num("cpuset.memory_migrate")?;
    c.memory_spread_page = num("cpuset.memory_spread_page")?;
    c.memory_spread_slab = num("cpuset.memory_spread_slab")?;
    c.memory_pressure = num("cpuset.memory_pressure")?;
    c.sched_load_balance = num("cpuset.sched_load_balance")?;
    let level = dir.join("cpuset.sched_relax_domain_level");
    if let Some(v) = read_optional(&level)? {
        c.sched_relax_domain_level = v.trim().parse().map_err(|_| CgroupError::Parse {
            path: level,
            message: format!("expected an integer, found {:?}", v.trim()),
        })?;
    }
    Ok(())
}

/// memory.<name>.{usage_in_bytes,max_usage_in_bytes,failcnt,limit_in_bytes};
/// the optional groups (memsw, kmem...) read as zero when absent.
fn memory_entry(dir: &Path, name: &str) -> Result<MemoryEntry> {
    let prefix = if name.is_empty() {
        "memory".to_string()
    } else {
        format!("memory.{name}")
    };
    let usage_path = dir.join(format!("{prefix}.usage_in_bytes"));
    let usage = match read_optional(&usage_path)? {
        Some(v) => parse_u64(&usage_path, &v)?,
        None if !name.is_empty() => return Ok(MemoryEntry::default()),
        None => {
            return Err(CgroupError::io(
                "read",
                usage_path,
                std::io::ErrorKind::NotFound.into(),
            ))
        }
    };
    let limit_path = dir.join(format!("{prefix}.limit_in_bytes"));
    Ok(MemoryEntry {
        usage,
        max: read_u64(&dir.join(format!("{prefix}.max_usage_in_bytes")))?,
        failcnt: read_u64(&dir.join(format!("{prefix}.failcnt")))?,
        // kmem.limit_in_bytes is gone from newer kernels.
        limit: match read_optional(&limit_path)? {
            Some(v) => parse_u64(&limit_path, &v)?,
            None => 0,
        },
    })
}

fn memory(dir: &Path, s: &mut Stats) -> Result<()> {
    let path = dir.join("memory.stat");
    let Some(content) = read_optional(&path)? else {
        return Ok(());
    };
    s.memory.raw = parse_key_values(&path, &content)?.into_iter().collect();
    s.memory.cache = s.memory.raw.get("cache").copied().unwrap_or(0);
    s.memory.usage = memory_entry(dir, "")?;
    s.memory.swap = memory_entry(dir, "memsw")?;
    s.memory.kernel = memory_entry(dir, "kmem")?;
    s.memory.kernel_tcp = memory_entry(dir, "kmem.tcp")?;
    let oom = dir.join("memory.oom_control");
    if oom.exists() {
        s.memory.oom_kill = read_key(&oom, "oom_kill")?;
    }
    Ok(())
}

/// "8:0 Read 123" (or "8:0 123"); the closing "Total N" line is skipped.
pub fn parse_blkio(path: &Path, content: &str) -> Result<Vec<BlkioEntry>> {
    let mut out = Vec::new();
    for line in content.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split([' ', ':']).filter(|s| !s.is_empty()).collect();
        let (op, value) = match f.len() {
            2 if f[0] == "Total" => continue,
            3 => ("", f[2]),
            4 => (f[2], f[3]),
            _ => {
                return Err(CgroupError::Parse {
                    path: path.to_path_buf(),
                    message: format!("malformed line {line:?}"),
                })
            }
        };
        out.push(BlkioEntry {
            major: parse_u64(path, f[0])?,
            minor: parse_u64(path, f[1])?,
            op: op.to_string(),
            value: parse_u64(path, value)?,
        });
    }
    Ok(out)
}

type Slot = fn(&mut BlkioStats) -> &mut Vec<BlkioEntry>;

/// Runc reads the first group whose first file exists and is not empty:
/// BFQ debug stats, BFQ, CFQ, throttle (recursive), throttle (this level).
fn blkio(dir: &Path) -> Result<BlkioStats> {
    let bytes: Slot = |b| &mut b.io_service_bytes_recursive;
    let ios: Slot = |b| &mut b.io_serviced_recursive;
    let debug = |p: &'static str| -> Vec<(String, Slot)> {
        let slots: [(&str, Slot); 6] = [
            ("sectors_recursive", |b| &mut b.sectors_recursive),
            ("io_service_time_recursive", |b| {
                &mut b.io_service_time_recursive
            }),
            ("io_wait_time_recursive", |b| &mut b.io_wait_time_recursive),
            ("io_merged_recursive", |b| &mut b.io_merged_recursive),
            ("io_queued_recursive", |b| &mut b.io_queued_recursive),
            ("time_recursive", |b| &mut b.io_time_recursive),
        ];
        slots
            .into_iter()
            .map(|(f, s)| (format!("{p}{f}"), s))
            .chain([
                (format!("{p}io_serviced_recursive"), ios),
                (format!("{p}io_service_bytes_recursive"), bytes),
            ])
            .collect()
    };
    let pair = |a: &str, b: &str| vec![(a.to_string(), ios), (b.to_string(), bytes)];
    let groups = [
        debug("blkio.bfq."),
        pair(
            "blkio.bfq.io_serviced_recursive",
            "blkio.bfq.io_service_bytes_recursive",
        ),
        debug("blkio."),
        pair(
            "blkio.throttle.io_serviced_recursive",
            "blkio.throttle.io_service_bytes_recursive",
        ),
        pair(
            "blkio.throttle.io_serviced",
            "blkio.throttle.io_service_bytes",
        ),
    ];
    for group in groups {
        let mut out = BlkioStats::default();
        let mut complete = true;
        for (i, (file, slot)) in group.iter().enumerate() {
            let path = dir.join(file);
            let entries = match read_optional(&path)? {
                Some(c) => parse_blkio(&path, &c)?,
                None => Vec::new(),
            };
            if entries.is_empty() && i == 0 {
                complete = false;
                break;
            }
            *slot(&mut out) = entries;
        }
        if complete {
            return Ok(out);
        }
    }
    Ok(BlkioStats::default())
}

/// Page sizes named by the limit files present ("hugetlb.2MB.limit_in_bytes").
pub fn hugetlb_sizes(dir: &Path, suffix: &str) -> Result<Vec<String>> {
    let mut sizes = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| CgroupError::io("read directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| CgroupError::io("read directory", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|n| n.strip_suffix(suffix))
        {
            if !size.contains('.') {
                sizes.push(size.to_string());
            }
        }
    }
    sizes.sort();
    Ok(sizes)
}

fn hugetlb(dir: &Path, s: &mut Stats) -> Result<()> {
    for size in hugetlb_sizes(dir, ".limit_in_bytes")? {
        // Prefer the reservation counters when the kernel has them.
        let rsvd = format!("hugetlb.{size}.rsvd");
        let prefix = if dir.join(format!("{rsvd}.usage_in_bytes")).exists() {
            rsvd
        } else {
            format!("hugetlb.{size}")
        };
        let entry = s.hugetlb.entry(size).or_default();
        entry.usage = read_u64(&dir.join(format!("{prefix}.usage_in_bytes")))?;
        entry.max = read_u64(&dir.join(format!("{prefix}.max_usage_in_bytes")))?;
        entry.failcnt = read_u64(&dir.join(format!("{prefix}.failcnt")))?;
    }
    Ok(())
}
