//! /dev: the default nodes and symlinks, extra linux.devices with mode and
//! owner, and the device cgroup refusing nodes it does not allow.

use berth_executor::spec::{Device, DeviceCgroup};
use serde_json::Value;

use crate::support::{Ctx, TestResult};
use crate::{ensure, Case};

pub fn cases() -> Vec<Case> {
    vec![
        Case::new("devices::default_nodes_and_symlinks", default_nodes),
        Case::new("devices::extra_devices_with_mode_and_owner", extra_devices),
        Case::new("devices::cgroup_allows_only_listed_devices", cgroup_rules),
    ]
}

fn default_nodes(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let nodes = [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
        ("/dev/ptmx", 5, 2),
    ];
    let links = [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ];
    let mut args: Vec<String> = Vec::new();
    for (path, _, _) in nodes {
        args.extend(["stat".into(), path.into(), "+".into()]);
    }
    for (path, _) in links {
        args.extend(["lstat".into(), path.into(), "+".into()]);
    }
    args.extend([
        "write".into(),
        "/dev/null".into(),
        "+".into(),
        "stat".into(),
        "/dev/pts".into(),
    ]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let lines = ctx.probe(&mut bundle, &refs)?;
    for (i, (path, major, minor)) in nodes.iter().enumerate() {
        let s = &lines[i];
        ensure!(
            s["type"] == "c" && s["major"] == *major && s["minor"] == *minor,
            "{path}: expected c {major}:{minor}, got {s}"
        );
    }
    for (i, (path, target)) in links.iter().enumerate() {
        let s = &lines[nodes.len() + i];
        ensure!(
            s["type"] == "l" && s["target"] == *target,
            "{path}: expected a symlink to {target}, got {s}"
        );
    }
    let n = nodes.len() + links.len();
    ensure!(lines[n]["errno"] == 0, "writing /dev/null: {}", lines[n]);
    ensure!(lines[n + 1]["type"] == "d", "/dev/pts: {}", lines[n + 1]);
    Ok(())
}

fn device(path: &str, typ: &str, major: i64, minor: i64, mode: u32, owner: Option<u32>) -> Device {
    Device {
        typ: typ.into(),
        path: path.into(),
        major,
        minor,
        file_mode: Some(mode),
        uid: owner,
        gid: owner,
    }
}

fn extra_devices(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.linux().devices = vec![
        device("/dev/test-char", "c", 10, 666, 0o660, Some(0)),
        device("/dev/test-block", "b", 8, 666, 0o640, Some(1000)),
        device("/dev/test-fifo", "p", 0, 0, 0o600, None),
    ];
    let lines = ctx.probe(
        &mut bundle,
        &[
            "stat",
            "/dev/test-char",
            "+",
            "stat",
            "/dev/test-block",
            "+",
            "stat",
            "/dev/test-fifo",
        ],
    )?;
    let check = |s: &Value, typ: &str, major: i64, minor: i64, mode: u32, owner: u32| {
        s["type"] == typ
            && (typ == "p" || (s["major"] == major && s["minor"] == minor))
            && s["mode"] == mode
            && s["uid"] == owner
            && s["gid"] == owner
    };
    ensure!(
        check(&lines[0], "c", 10, 666, 0o660, 0),
        "char device: {}",
        lines[0]
    );
    ensure!(
        check(&lines[1], "b", 8, 666, 0o640, 1000),
        "block device: {}",
        lines[1]
    );
    ensure!(check(&lines[2], "p", 0, 0, 0o600, 0), "fifo: {}", lines[2]);
    Ok(())
}

fn cgroup_rules(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.linux().devices = vec![
        device("/dev/allowed-full", "c", 1, 7, 0o666, Some(0)),
        device("/dev/denied-kmsg", "c", 1, 11, 0o666, Some(0)),
    ];
    // /dev/full is allowed by every runtime's defaults; 1:11 is not.
    bundle
        .linux()
        .resources
        .get_or_insert_with(Default::default)
        .devices = vec![
        DeviceCgroup {
            allow: false,
            access: Some("rwm".into()),
            ..Default::default()
        },
        DeviceCgroup {
            allow: true,
            typ: Some("c".into()),
            major: Some(1),
            minor: Some(7),
            access: Some("rw".into()),
        },
    ];
    let lines = ctx.probe(
        &mut bundle,
        &[
            "write",
            "/dev/allowed-full",
            "+",
            "read",
            "/dev/denied-kmsg",
        ],
    )?;
    ensure!(
        lines[0]["errno"] == libc::ENOSPC,
        "writing an allowed /dev/full: {}",
        lines[0]
    );
    ensure!(
        lines[1]["errno"] == libc::EPERM,
        "opening a device the cgroup does not allow: {}",
        lines[1]
    );
    Ok(())
}
