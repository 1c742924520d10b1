//! Builds the static `berth-probe` (tests/probe) once per test run and hands
//! out its path. The probe runs inside containers, so it must not need a
//! dynamic loader: the build is checked for a PT_INTERP program header.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::other;

const TARGET: &str = "x86_64-unknown-linux-gnu";

static PROBE: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The path of the static probe binary, building it on first use.
/// `BERTH_PROBE` names a prebuilt one instead.
pub fn path() -> io::Result<PathBuf> {
    PROBE
        .get_or_init(|| build().map_err(|e| e.to_string()))
        .clone()
        .map_err(other)
}

fn build() -> io::Result<PathBuf> {
    if let Some(prebuilt) = std::env::var_os("BERTH_PROBE") {
        let prebuilt = PathBuf::from(prebuilt);
        check_static(&prebuilt)?;
        return Ok(prebuilt);
    }
    let workspace = crate::workspace_root();
    let target_dir = crate::target_dir().join("probe");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "berth-probe",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .map_err(|e| other(format!("run cargo to build berth-probe: {e}")))?;
    if !output.status.success() {
        return Err(other(format!(
            "cargo build -p berth-probe failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let binary = target_dir.join(TARGET).join("release").join("berth-probe");
    check_static(&binary)?;
    Ok(binary)
}

/// Fails unless `path` is an ELF executable without a PT_INTERP header.
pub fn check_static(path: &Path) -> io::Result<()> {
    let elf = fs::read(path).map_err(|e| other(format!("read {}: {e}", path.display())))?;
    match has_interpreter(&elf) {
        Some(false) => Ok(()),
        Some(true) => Err(other(format!(
            "{} is dynamically linked (has PT_INTERP)",
            path.display()
        ))),
        None => Err(other(format!(
            "{} is not a 64-bit ELF file",
            path.display()
        ))),
    }
}

/// Whether a 64-bit little-endian ELF image has a PT_INTERP program header;
/// `None` if it is not one.
fn has_interpreter(elf: &[u8]) -> Option<bool> {
    if elf.get(..5)? != b"\x7fELF\x02" || *elf.get(5)? != 1 {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        if u32_at(phoff + i * phentsize)? == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}
