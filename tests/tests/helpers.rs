//! The helpers themselves: the leak check finds what a container leaves,
//! a hung runtime times out, the probe is static.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use berth_tests::bundle::PROBE_PATH;
use berth_tests::leaks::{check_clean, Snapshot, Target};
use berth_tests::{probe, Bundle, Runtime};

#[test]
fn leak_check_reports_a_container_left_behind() {
    let rt = Runtime::from_env().unwrap();
    let mut bundle = Bundle::new("helpers-leak").unwrap();
    bundle.install_probe().unwrap();
    bundle.set_args(&[PROBE_PATH, "sleep", "60"]);
    bundle.write_config().unwrap();
    let id = format!("bt{}-helpers-leak", std::process::id());
    let target = Target {
        bundle: Some(bundle.dir.clone()),
        ids: vec![id.clone()],
        cgroup_paths: Vec::new(),
        state_root: Some(rt.root.path().to_path_buf()),
        pids: Vec::new(),
    };
    let before = Snapshot::take(&target);
    rt.create(&id, &bundle.dir).unwrap().ok("create").unwrap();
    let pid = rt.state(&id).unwrap()["pid"].as_i64().unwrap() as i32;
    let with_pid = Target {
        pids: vec![pid],
        ..target
    };
    let left = before.new_in(&Snapshot::take(&with_pid));
    assert!(
        left.iter().any(|l| l.starts_with("process: pid")),
        "{left:?}"
    );
    assert!(left.iter().any(|l| l.starts_with("state: ")), "{left:?}");
    assert!(left.iter().any(|l| l.starts_with("cgroup: ")), "{left:?}");
    rt.delete_force(&id).unwrap().ok("delete --force").unwrap();
    check_clean(&Snapshot {
        target: with_pid,
        ..before
    })
    .unwrap();
}

#[test]
fn a_hung_runtime_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("hung-runtime");
    std::fs::write(&fake, "#!/bin/sh\nexec sleep 30\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut rt = Runtime::new(fake.to_str().unwrap()).unwrap();
    rt.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = rt.state("x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn the_probe_is_static() {
    let path = probe::path().unwrap();
    probe::check_static(&path).unwrap();
    assert!(probe::check_static(std::path::Path::new("/bin/ls")).is_err());
}
