//! The cgroup v1 freezer: freezer.state, with runc's retry loop.

use std::path::Path;
use std::thread::sleep;
use std::time::Duration;

use super::error::{CgroupError, Result};
use super::fs::{read_optional, read_string, write, write_raw};
use super::v1::dir_of;
use super::Hierarchy;

fn freezer_dir(hs: &[Hierarchy]) -> Result<&Path> {
    dir_of(hs, "freezer").ok_or_else(|| CgroupError::Unsupported {
        what: "freezing a container: the freezer controller is not mounted".into(),
    })
}

/// Freezes like runc: write FROZEN until freezer.state says FROZEN; every
/// 50 tries thaw briefly, because a task stuck in FREEZING (vfork, an
/// exiting task) can block the freeze indefinitely otherwise.
pub fn freeze(hs: &[Hierarchy]) -> Result<()> {
    let dir = freezer_dir(hs)?;
    let state = dir.join("freezer.state");
    let res = (|| {
        for i in 0..1000 {
            if i % 50 == 49 {
                let _ = write_raw(&state, "THAWED");
                sleep(Duration::from_millis(10));
            }
            write(&state, "FROZEN")?;
            if i % 25 == 24 {
                sleep(Duration::from_micros(10));
            }
            match read_string(&state)?.trim() {
                "FREEZING" => continue,
                "FROZEN" => return Ok(()),
                other => {
                    return Err(CgroupError::State {
                        path: state.clone(),
                        message: format!("unexpected state {other:?} while freezing"),
                    })
                }
            }
        }
        Err(CgroupError::State {
            path: state.clone(),
            message: "unable to freeze: still FREEZING after 1000 attempts".into(),
        })
    })();
    if res.is_err() {
        let _ = write_raw(&state, "THAWED");
    }
    res
}

pub fn thaw(hs: &[Hierarchy]) -> Result<()> {
    write(&freezer_dir(hs)?.join("freezer.state"), "THAWED")
}

/// Frozen means frozen by us (freezer.self_freezing), not only because an
/// ancestor is frozen.
pub fn is_frozen(hs: &[Hierarchy]) -> Result<bool> {
    let Some(dir) = dir_of(hs, "freezer") else {
        return Ok(false);
    };
    for _ in 0..1000 {
        let Some(state) = read_optional(&dir.join("freezer.state"))? else {
            return Ok(false);
        };
        match state.trim() {
            "THAWED" => return Ok(false),
            "FROZEN" => {
                return Ok(match read_optional(&dir.join("freezer.self_freezing"))? {
                    Some(s) => s.trim() == "1",
                    None => true,
                })
            }
            _ => sleep(Duration::from_millis(1)),
        }
    }
    Ok(false)
}
