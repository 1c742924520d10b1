//! ctr wrappers shared by the scenarios: failures become test failures
//! (not panics) so cleanup still runs.

use std::time::Duration;

use berth_integration::*;
use libtest_mimic::Failed;

pub(crate) fn clean(ctd: &Containerd, ns: &str, id: &str) -> Result<(), Failed> {
    let ok = wait_until(Duration::from_secs(10), || {
        leftovers(ns, id, ctd).is_empty()
    });
    check(ok, || {
        format!("left behind by {id}: {:?}", leftovers(ns, id, ctd))
    })
    .map_err(Failed::from)
}

pub(crate) fn status(ctd: &Containerd, ns: &str, id: &str) -> String {
    let out = stdout(&ctd.ctr(ns, &["task", "ls"]));
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("")
        .to_string()
}

/// Waits for a task to stop and returns its exit status, from the warning
/// `ctr task rm` prints ("exit with non-zero exit code N"; 0 prints none).
/// ctr 1.6 has no `task wait`.
pub(crate) fn exit_status(ctd: &Containerd, ns: &str, id: &str) -> Option<u32> {
    if !wait_until(Duration::from_secs(10), || status(ctd, ns, id) == "STOPPED") {
        return None;
    }
    let out = ctd.ctr(ns, &["task", "rm", id]);
    let err = stderr(&out);
    match err.split("exit code ").nth(1) {
        Some(rest) => rest
            .trim_matches(|c: char| !c.is_ascii_digit())
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok(),
        None => out.status.success().then_some(0),
    }
}

pub(crate) fn remove(ctd: &Containerd, ns: &str, id: &str) {
    let _ = ctd.ctr(ns, &["task", "kill", "-s", "9", id]);
    wait_until(Duration::from_secs(5), || {
        matches!(status(ctd, ns, id).as_str(), "" | "STOPPED")
    });
    let _ = ctd.ctr(ns, &["task", "rm", "-f", id]);
    let _ = ctd.ctr(ns, &["c", "rm", id]);
}

/// `ctr run --rm` with the runtime; returns (exit code, stdout, stderr).
pub(crate) fn run_rm(
    ctd: &Containerd,
    ns: &str,
    rt: &str,
    extra: &[&str],
    id: &str,
    cmd: &[&str],
) -> (i32, String, String) {
    let mut args = vec!["run", "--rm", "--runtime", rt];
    args.extend_from_slice(extra);
    args.push(IMAGE);
    args.push(id);
    args.extend_from_slice(cmd);
    let out = ctd.ctr(ns, &args);
    (out.status.code().unwrap_or(-1), stdout(&out), stderr(&out))
}

/// `ctr run -d` with the runtime; returns ctr's stdout.
pub(crate) fn run_detached(
    ctd: &Containerd,
    ns: &str,
    rt: &str,
    extra: &[&str],
    id: &str,
    cmd: &[&str],
) -> Result<String, Failed> {
    let mut args = vec!["run", "-d", "--runtime", rt];
    args.extend_from_slice(extra);
    args.push(IMAGE);
    args.push(id);
    args.extend_from_slice(cmd);
    Ok(ctd.ctr_ok(ns, &args)?)
}
