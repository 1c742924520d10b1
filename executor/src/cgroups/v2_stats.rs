//! cgroup v2 statistics from one directory: cpu.stat, memory.*, io.stat,
//! pids.*, hugetlb.* (runc libcontainer/cgroups/fs2 GetStats). A file the
//! kernel does not provide (controller not enabled) leaves its part empty.

use std::path::Path;

use super::error::{CgroupError, Result};
use super::fs::{parse_key_values, parse_u64, read_key, read_optional, read_u64};
use super::stats::{BlkioEntry, MemoryEntry, Stats};
use super::v1_stats::hugetlb_sizes;

pub fn stats(dir: &Path) -> Result<Stats> {
    let mut s = Stats::default();
    pids(dir, &mut s)?;
    memory(dir, &mut s)?;
    io(dir, &mut s)?;
    cpu(dir, &mut s)?;
    hugetlb(dir, &mut s)?;
    Ok(s)
}

fn pids(dir: &Path, s: &mut Stats) -> Result<()> {
    let current = dir.join("pids.current");
    match read_optional(&current)? {
        Some(c) => {
            s.pids.current = parse_u64(&current, &c)?;
            s.pids.limit = match read_u64(&dir.join("pids.max"))? {
                u64::MAX => 0,
                n => n,
            };
        }
        // Without the pids controller, count the members directly.
        None => {
            let procs = read_optional(&dir.join("cgroup.procs"))?.unwrap_or_default();
            s.pids.current = procs.lines().filter(|l| !l.trim().is_empty()).count() as u64;
        }
    }
    Ok(())
}

fn cpu(dir: &Path, s: &mut Stats) -> Result<()> {
    let path = dir.join("cpu.stat");
    let Some(content) = read_optional(&path)? else {
        return Ok(());
    };
    for (k, v) in parse_key_values(&path, &content)? {
        match k.as_str() {
            "usage_usec" => s.cpu.usage.total = v * 1000,
            "user_usec" => s.cpu.usage.user = v * 1000,
            "system_usec" => s.cpu.usage.kernel = v * 1000,
            "nr_periods" => s.cpu.throttling.periods = v,
            "nr_throttled" => s.cpu.throttling.throttled_periods = v,
            "throttled_usec" => s.cpu.throttling.throttled_time = v * 1000,
            _ => {}
        }
    }
    Ok(())
}

/// memory.<name>.{current,max,peak}; a missing optional group is zero.
fn memory_entry(dir: &Path, name: &str) -> Result<Option<MemoryEntry>> {
    let prefix = if name.is_empty() {
        "memory".to_string()
    } else {
        format!("memory.{name}")
    };
    let current = dir.join(format!("{prefix}.current"));
    let Some(usage) = read_optional(&current)? else {
        return Ok(None);
    };
    let peak = dir.join(format!("{prefix}.peak"));
    Ok(Some(MemoryEntry {
        usage: parse_u64(&current, &usage)?,
        limit: read_u64(&dir.join(format!("{prefix}.max")))?,
        max: match read_optional(&peak)? {
            Some(v) => parse_u64(&peak, &v)?,
            None => 0,
        },
        failcnt: 0,
    }))
}

fn memory(dir: &Path, s: &mut Stats) -> Result<()> {
    let path = dir.join("memory.stat");
    let Some(content) = read_optional(&path)? else {
        return Ok(());
    };
    s.memory.raw = parse_key_values(&path, &content)?.into_iter().collect();
    s.memory.cache = s.memory.raw.get("file").copied().unwrap_or(0);
    let usage = memory_entry(dir, "")?.unwrap_or_default();
    // v1's memsw counted memory plus swap; report v2 the same way (runc).
    let swap_only = memory_entry(dir, "swap")?.unwrap_or_default();
    s.memory.swap = MemoryEntry {
        usage: swap_only.usage + usage.usage,
        limit: if swap_only.limit == u64::MAX {
            u64::MAX
        } else {
            swap_only.limit.saturating_add(usage.limit)
        },
        max: 0,
        failcnt: swap_only.failcnt,
    };
    s.memory.usage = usage;
    let events = dir.join("memory.events");
    if events.exists() {
        s.memory.oom_kill = read_key(&events, "oom_kill")?;
    }
    Ok(())
}

/// io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0".
pub fn parse_io_stat(path: &Path, content: &str, s: &mut Stats) -> Result<()> {
    let bad = |m: String| CgroupError::Parse {
        path: path.to_path_buf(),
        message: m,
    };
    for line in content.lines() {
        let mut fields = line.split_whitespace();
        let Some((major, minor)) = fields.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let major = major
            .parse()
            .map_err(|_| bad(format!("bad device in {line:?}")))?;
        let minor = minor
            .parse()
            .map_err(|_| bad(format!("bad device in {line:?}")))?;
        for item in fields {
            let Some((key, value)) = item.split_once('=') else {
                continue;
            };
            let (op, list) = match key {
                "rbytes" => ("Read", &mut s.blkio.io_service_bytes_recursive),
                "wbytes" => ("Write", &mut s.blkio.io_service_bytes_recursive),
                "rios" => ("Read", &mut s.blkio.io_serviced_recursive),
                "wios" => ("Write", &mut s.blkio.io_serviced_recursive),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value: parse_u64(path, value)?,
            });
        }
    }
    Ok(())
}

fn io(dir: &Path, s: &mut Stats) -> Result<()> {
    let path = dir.join("io.stat");
    match read_optional(&path)? {
        Some(content) => parse_io_stat(&path, &content, s),
        None => Ok(()),
    }
}

fn hugetlb(dir: &Path, s: &mut Stats) -> Result<()> {
    for size in hugetlb_sizes(dir, ".max")? {
        let rsvd = format!("hugetlb.{size}.rsvd");
        let prefix = if dir.join(format!("{rsvd}.current")).exists() {
            rsvd
        } else {
            format!("hugetlb.{size}")
        };
        let usage = read_u64(&dir.join(format!("{prefix}.current")))?;
        // Only the plain counter has an events file ("max N": refused
        // allocations); there is no hugetlb.<size>.rsvd.events.
        let failcnt = read_key(&dir.join(format!("hugetlb.{size}.events")), "max")?.unwrap_or(0);
        let entry = s.hugetlb.entry(size).or_default();
        entry.usage = usage;
        entry.failcnt = failcnt;
    }
    Ok(())
}
