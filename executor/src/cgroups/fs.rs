//! Reading and writing cgroup files, shared by v1 and v2: one write(2) per
//! value as the kernel expects, "max" parsing, key/value files, removal.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::error::{CgroupError, Result};

pub fn read_string(path: &Path) -> Result<String> {
    let mut s = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .map_err(|e| CgroupError::io("read", path, e))?;
    Ok(s)
}

/// Like `read_string`, but a missing file is `None`.
pub fn read_optional(path: &Path) -> Result<Option<String>> {
    match read_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses a single number; "max" is `u64::MAX`, as runc reads it.
pub fn parse_u64(path: &Path, s: &str) -> Result<u64> {
    let s = s.trim();
    if s == "max" {
        return Ok(u64::MAX);
    }
    s.parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        message: format!("expected a number or \"max\", found {s:?}"),
    })
}

pub fn read_u64(path: &Path) -> Result<u64> {
    parse_u64(path, &read_string(path)?)
}

/// Parses `key value` lines (memory.stat, cpu.stat, memory.events...).
/// Lines that are not exactly two fields with a numeric value are an error.
pub fn parse_key_values(path: &Path, content: &str) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for line in content.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.split_whitespace();
        match (it.next(), it.next(), it.next()) {
            (Some(k), Some(v), None) => out.push((k.to_string(), parse_u64(path, v)?)),
            _ => {
                return Err(CgroupError::Parse {
                    path: path.to_path_buf(),
                    message: format!("malformed line {line:?}"),
                })
            }
        }
    }
    Ok(out)
}

/// The value of `key` in a `key value` file.
pub fn read_key(path: &Path, key: &str) -> Result<Option<u64>> {
    let content = read_string(path)?;
    Ok(parse_key_values(path, &content)?
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v))
}

/// One write(2) of `value` into an existing file, truncating it first as a
/// shell redirection would. Never creates the file: on cgroupfs a missing
/// file means a missing controller or feature, and ENOENT must say so.
pub fn write_raw(path: &Path, value: &str) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    f.write_all(value.as_bytes())
}

/// One write(2) of `value` plus a newline, appending. For files that take one
/// entry per write (devices.allow, io.max, blkio.throttle.*): the kernel
/// ignores the offset, and on a fixture tree every entry stays visible.
pub fn append_raw(path: &Path, value: &str) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    f.write_all(format!("{value}\n").as_bytes())
}

/// Writes a value that does not come from the config.
pub fn write(path: &Path, value: &str) -> Result<()> {
    write_raw(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

/// Maps a failed write of a config value: ENOENT means the host lacks the
/// controller or knob, anything else is the kernel rejecting the value.
pub fn field_error(field: &str, path: &Path, value: &str, source: io::Error) -> CgroupError {
    if source.raw_os_error() == Some(libc::ENOENT) {
        CgroupError::config(
            field,
            format!(
                "{} does not exist: the controller or this setting is not available on this host",
                path.display()
            ),
        )
    } else {
        CgroupError::Apply {
            field: field.to_string(),
            path: path.to_path_buf(),
            value: value.to_string(),
            source,
        }
    }
}

/// Writes the value of config field `field` into `dir/file`.
pub fn write_field(dir: &Path, file: &str, value: &str, field: &str) -> Result<()> {
    let path = dir.join(file);
    write_raw(&path, value).map_err(|e| field_error(field, &path, value, e))
}

/// Appends one entry of config field `field` to `dir/file`.
pub fn append_field(dir: &Path, file: &str, value: &str, field: &str) -> Result<()> {
    let path = dir.join(file);
    append_raw(&path, value).map_err(|e| field_error(field, &path, value, e))
}

pub fn mkdir_all(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| CgroupError::io("mkdir", dir, e))
}

/// Writes `pid` to `dir/cgroup.procs`, retrying EINVAL a few times: a task
/// that is still being set up (or exiting) can be refused briefly (runc's
/// WriteCgroupProc does the same).
pub fn write_procs(dir: &Path, pid: i32) -> Result<()> {
    let path = dir.join("cgroup.procs");
    let value = pid.to_string();
    let mut attempt = 0;
    loop {
        match write_raw(&path, &value) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && attempt < 5 => {
                attempt += 1;
                sleep(Duration::from_millis(30));
            }
            Err(source) => {
                return Err(CgroupError::Write {
                    path,
                    value,
                    source,
                })
            }
        }
    }
}

/// The pids listed in `dir/cgroup.procs` and in every sub-cgroup below it.
pub fn procs_recursive(dir: &Path) -> Result<Vec<i32>> {
    let mut pids = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let path = d.join("cgroup.procs");
        let content = read_string(&path)?;
        for line in content.lines().map(str::trim).filter(|l| !l.is_empty()) {
            pids.push(line.parse().map_err(|_| CgroupError::Parse {
                path: path.clone(),
                message: format!("bad pid {line:?}"),
            })?);
        }
        for sub in subdirs(&d)? {
            stack.push(sub);
        }
    }
    Ok(pids)
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| CgroupError::io("read directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| CgroupError::io("read directory", dir, e))?;
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// Removes `dir` and the cgroups below it, deepest first. A cgroup directory
/// holds only kernel files, so rmdir(2) is the whole job. ENOENT is success.
fn remove_tree_once(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(_) => {}
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_tree_once(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
        _ => Ok(()),
    }
}

/// Removes a cgroup tree, retrying for about a second: tasks that have just
/// exited keep a cgroup busy (EBUSY) until the kernel finishes reaping them.
pub fn remove_tree(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_millis(1000);
    let mut delay = Duration::from_millis(10);
    loop {
        match remove_tree_once(dir) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(path = %dir.display(), error = %e, "cgroup removal failed, retrying");
                sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(200));
            }
            Err(e) => return Err(CgroupError::io("rmdir", dir, e)),
        }
    }
}
