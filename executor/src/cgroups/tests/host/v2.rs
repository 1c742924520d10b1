//! cgroup v2 on the real cgroup2 mount (controller-less here): the device
//! filter and its replacement, freezer, cgroup.kill; the verifier accepts
//! the generated programs.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::thread::sleep;
use std::time::Duration;

use super::super::super::devices::{rules_from_spec, Access, DeviceRule, RuleSet, ANY};
use super::super::super::{sys, v2_devices, Cgroup, CgroupFsType, CgroupRoot};
use super::*;
use crate::spec::*;

fn child_checks_devices() -> i32 {
    // Bit per unexpected result, so the parent can tell which one failed.
    let mut code = 0;
    if try_open(c"/dev/null", libc::O_WRONLY) != 1 {
        code |= 1;
    }
    if try_open(c"/dev/null", libc::O_RDWR) != 1 {
        code |= 2;
    }
    if try_open(c"/dev/null", libc::O_RDONLY) != 0 {
        code |= 4;
    }
    if try_open(c"/dev/zero", libc::O_RDWR) != 0 {
        code |= 8;
    }
    code
}

fn child_checks_kmsg() -> i32 {
    let mut code = 0;
    if try_open(c"/dev/kmsg", libc::O_WRONLY) != 1 {
        code |= 1;
    }
    if try_open(c"/dev/kmsg", libc::O_RDWR) != 1 {
        code |= 2;
    }
    if try_open(c"/dev/null", libc::O_WRONLY) != 0 {
        code |= 4;
    }
    code
}

fn child_writes_dev_null() -> i32 {
    try_open(c"/dev/null", libc::O_WRONLY)
}

#[test]
fn host_v2_freezer_kill_and_device_filter() {
    let Some(root) = host_root() else { return };
    let Some(mount) = root
        .mounts
        .iter()
        .find(|m| m.fs_type == CgroupFsType::Cgroup2)
    else {
        eprintln!("skipped: no cgroup2 mount");
        return;
    };
    let v2root = CgroupRoot::new(vec![mount.clone()]);
    let path = format!("/berth-test-{}-v2", std::process::id());
    let cg = Cgroup::resolve_in(&v2root, Some(&path), "unused").unwrap();
    assert!(cg.is_v2());
    let mut g = Guard::new(&cg);
    cg.create().unwrap();
    let dir = cg.hierarchies()[0].dir.clone();

    let dir_fd: OwnedFd = std::fs::File::open(&dir).unwrap().into();
    let programs = || sys::prog_query_cgroup_device(dir_fd.as_fd()).unwrap().len();
    let deny = |major, minor| DeviceCgroup {
        allow: false,
        typ: Some("c".into()),
        major: Some(major),
        minor: Some(minor),
        access: Some("w".into()),
    };
    let allow_all = DeviceCgroup {
        allow: true,
        access: Some("rwm".into()),
        ..Default::default()
    };

    // Through apply: runc's default devices are appended after the config's
    // rules, so they stay usable even when the config denies them; other
    // devices (/dev/kmsg, 1:11) are denied as asked.
    if Path::new("/dev/kmsg").exists() {
        let devices = vec![allow_all.clone(), deny(1, 11), deny(1, 3)];
        cg.apply(&Resources {
            devices,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(programs(), 1);
        let (pid, gate) = spawn_gated(child_checks_kmsg);
        g.children.push(pid);
        cg.add_process(pid).unwrap();
        release(gate);
        assert_eq!(
            exit_code(g.reap(pid)),
            0,
            "bits: 1 kmsg wronly, 2 kmsg rdwr, 4 null wronly"
        );
    }

    // The filter itself: everything allowed except writing /dev/null.
    let set = RuleSet::from_rules(&[
        DeviceRule {
            allow: true,
            typ: 'a',
            major: ANY,
            minor: ANY,
            access: Access::ALL,
        },
        DeviceRule {
            allow: false,
            typ: 'c',
            major: 1,
            minor: 3,
            access: Access(Access::WRITE),
        },
    ])
    .unwrap();
    v2_devices::apply(&dir, &set).unwrap();
    assert_eq!(programs(), 1);
    let (pid, gate) = spawn_gated(child_checks_devices);
    g.children.push(pid);
    cg.add_process(pid).unwrap();
    release(gate);
    assert_eq!(
        exit_code(g.reap(pid)),
        0,
        "device checks failed (bits: 1 wronly, 2 rdwr, 4 rdonly, 8 zero)"
    );

    // An update replaces our program instead of stacking another one.
    cg.apply(&Resources {
        devices: vec![allow_all],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(programs(), 1);
    let (pid, gate) = spawn_gated(child_writes_dev_null);
    g.children.push(pid);
    cg.add_process(pid).unwrap();
    release(gate);
    assert_eq!(
        exit_code(g.reap(pid)),
        0,
        "/dev/null still not writable after the update"
    );

    let counter = SharedCounter::new();
    let pid = spawn_spinner(&counter);
    g.children.push(pid);
    cg.add_process(pid).unwrap();
    assert_eq!(cg.pids().unwrap(), vec![pid]);
    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    assert!(read(&dir.join("cgroup.events")).contains("frozen 1"));
    let before = counter.get();
    sleep(Duration::from_millis(100));
    assert_eq!(counter.get(), before, "frozen child kept running");
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());
    sleep(Duration::from_millis(100));
    assert!(counter.get() > before, "thawed child does not run");
    assert_eq!(cg.stats().unwrap().pids.current, 1);

    assert!(cg.kill_all().unwrap(), "cgroup.kill missing");
    let status = g.reap(pid);
    assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
    drop(dir_fd);
    cg.destroy().unwrap();
    assert!(!dir.exists());
}

#[test]
fn host_device_programs_pass_the_verifier() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let defaults = RuleSet::from_rules(&rules_from_spec(&deny_all()).unwrap()).unwrap();
    let blacklist = RuleSet::from_rules(&[
        DeviceRule {
            allow: true,
            typ: 'a',
            major: ANY,
            minor: ANY,
            access: Access::ALL,
        },
        DeviceRule {
            allow: false,
            typ: 'b',
            major: 8,
            minor: ANY,
            access: Access(Access::WRITE | Access::MKNOD),
        },
    ])
    .unwrap();
    for set in [defaults, blacklist, RuleSet::default()] {
        let insns = v2_devices::build_program(&set).unwrap();
        sys::prog_load_cgroup_device(&insns, c"Apache", None).unwrap();
    }
}
