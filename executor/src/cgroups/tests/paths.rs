//! Host layout parsing and linux.cgroupsPath resolution.

use std::path::{Path, PathBuf};

use super::super::{Cgroup, CgroupError, CgroupFsType, CgroupRoot};
use super::fixture::{V1Fixture, V2Fixture};

const HOST_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
const HOST_CGROUP: &str =
    "9:name=systemd:/\n4:memory:/process_api/6b77\n2:cpuacct:/\n1:cpu:/\n0::/\n";

fn dirs(cg: &Cgroup) -> Vec<(String, PathBuf)> {
    cg.hierarchies()
        .into_iter()
        .map(|h| (h.name, h.dir))
        .collect()
}

#[test]
fn hybrid_host_lists_every_v1_hierarchy_then_the_cgroup2_mount() {
    let root = CgroupRoot::parse(HOST_MOUNTINFO, HOST_CGROUP, false).unwrap();
    assert!(!root.is_v2());
    let summary: Vec<(&str, &str, CgroupFsType, &str)> = root
        .mounts
        .iter()
        .map(|m| {
            (
                m.options.as_str(),
                m.mount_point.to_str().unwrap(),
                m.fs_type,
                m.own_cgroup.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "name=systemd",
                "/sys/fs/cgroup/systemd",
                CgroupFsType::Cgroup,
                "/"
            ),
            (
                "memory",
                "/sys/fs/cgroup/memory",
                CgroupFsType::Cgroup,
                "/process_api/6b77"
            ),
            (
                "cpuacct",
                "/sys/fs/cgroup/cpuacct",
                CgroupFsType::Cgroup,
                "/"
            ),
            ("cpu", "/sys/fs/cgroup/cpu", CgroupFsType::Cgroup, "/"),
            ("", "/sys/fs/cgroup/unified", CgroupFsType::Cgroup2, "/"),
        ]
    );
}

#[test]
fn relative_v1_path_is_below_the_callers_own_cgroup_in_each_hierarchy() {
    let root = CgroupRoot::parse(HOST_MOUNTINFO, HOST_CGROUP, false).unwrap();
    let cg = Cgroup::resolve_in(&root, Some("runtime/c1"), "unused").unwrap();
    assert!(!cg.is_v2());
    let expect = |n: &str, d: &str| (n.to_string(), PathBuf::from(d));
    assert_eq!(
        dirs(&cg),
        vec![
            expect("systemd", "/sys/fs/cgroup/systemd/runtime/c1"),
            expect(
                "memory",
                "/sys/fs/cgroup/memory/process_api/6b77/runtime/c1"
            ),
            expect("cpuacct", "/sys/fs/cgroup/cpuacct/runtime/c1"),
            expect("cpu", "/sys/fs/cgroup/cpu/runtime/c1"),
            expect("unified", "/sys/fs/cgroup/unified/runtime/c1"),
        ]
    );
    let memory = &cg.hierarchies()[1];
    assert_eq!(memory.path, "/process_api/6b77/runtime/c1");
    assert_eq!(memory.options, "memory");
}

#[test]
fn absolute_v1_path_is_taken_from_each_hierarchy_root() {
    let root = CgroupRoot::parse(HOST_MOUNTINFO, HOST_CGROUP, false).unwrap();
    let cg = Cgroup::resolve_in(&root, Some("/berth//./c1/"), "unused").unwrap();
    let memory = &cg.hierarchies()[1];
    assert_eq!(memory.dir, Path::new("/sys/fs/cgroup/memory/berth/c1"));
    assert_eq!(memory.path, "/berth/c1");
}

#[test]
fn missing_or_empty_cgroups_path_uses_the_default_relative_path() {
    let root = CgroupRoot::parse(HOST_MOUNTINFO, HOST_CGROUP, false).unwrap();
    for given in [None, Some("")] {
        let cg = Cgroup::resolve_in(&root, given, "mycontainer").unwrap();
        assert_eq!(
            cg.hierarchies()[1].dir,
            Path::new("/sys/fs/cgroup/memory/process_api/6b77/mycontainer")
        );
    }
}

#[test]
fn dot_dot_component_is_rejected_naming_linux_cgroups_path() {
    let root = CgroupRoot::parse(HOST_MOUNTINFO, HOST_CGROUP, false).unwrap();
    for bad in ["../escape", "/a/../../b", "a/.."] {
        let err = Cgroup::resolve_in(&root, Some(bad), "id").unwrap_err();
        assert!(matches!(err, CgroupError::Config { .. }), "{bad}: {err:?}");
        assert!(err.to_string().starts_with("linux.cgroupsPath: "), "{err}");
    }
    // A name merely containing dots is fine.
    assert!(Cgroup::resolve_in(&root, Some("a..b/c."), "id").is_ok());
    let err = Cgroup::resolve_in(&root, Some("/"), "id").unwrap_err();
    assert!(err.to_string().contains("root cgroup"), "{err}");
}

#[test]
fn systemd_style_path_is_an_ordinary_name_for_the_cgroupfs_driver() {
    let root = CgroupRoot::parse(HOST_MOUNTINFO, HOST_CGROUP, false).unwrap();
    let cg = Cgroup::resolve_in(&root, Some("system.slice:docker:abc"), "id").unwrap();
    assert_eq!(
        cg.hierarchies()[3].dir,
        Path::new("/sys/fs/cgroup/cpu/system.slice:docker:abc")
    );
}

#[test]
fn unified_host_uses_only_the_cgroup2_mount_and_relative_paths_are_siblings() {
    let mountinfo = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n\
                     50 23 0:26 / /mnt/other\\040place rw - cgroup2 cgroup2 rw\n";
    let root = CgroupRoot::parse(
        mountinfo,
        "0::/user.slice/user-0.slice/session-1.scope\n",
        true,
    )
    .unwrap();
    assert!(root.is_v2());
    assert_eq!(root.mounts.len(), 1);
    let cg = Cgroup::resolve_in(&root, Some("c1"), "unused").unwrap();
    assert!(cg.is_v2());
    let h = &cg.hierarchies()[0];
    assert_eq!(h.name, "");
    assert_eq!(h.options, "");
    assert_eq!(h.path, "/user.slice/user-0.slice/c1");
    assert_eq!(
        h.dir,
        Path::new("/sys/fs/cgroup/user.slice/user-0.slice/c1")
    );
    let abs = Cgroup::resolve_in(&root, Some("/machine/c1"), "unused").unwrap();
    assert_eq!(
        abs.hierarchies()[0].dir,
        Path::new("/sys/fs/cgroup/machine/c1")
    );
}

#[test]
fn mountinfo_escapes_and_bind_mounted_roots_are_honoured() {
    // Inside a container without a cgroup namespace: the hierarchy's mount
    // shows the container's cgroup, which is also the caller's own.
    let mountinfo =
        "60 50 0:32 /docker/abc /sys/fs/cgroup/mem\\040ory rw - cgroup cgroup rw,memory\n";
    let root = CgroupRoot::parse(mountinfo, "4:memory:/docker/abc\n", false).unwrap();
    assert_eq!(
        root.mounts[0].mount_point,
        Path::new("/sys/fs/cgroup/mem ory")
    );
    let cg = Cgroup::resolve_in(&root, Some("inner"), "unused").unwrap();
    assert_eq!(
        cg.hierarchies()[0].dir,
        Path::new("/sys/fs/cgroup/mem ory/inner")
    );
    assert_eq!(cg.hierarchies()[0].path, "/docker/abc/inner");
}

#[test]
fn no_cgroup_mount_is_an_error() {
    let err =
        CgroupRoot::parse("22 1 0:21 / /proc rw - proc proc rw\n", "0::/\n", false).unwrap_err();
    assert!(matches!(err, CgroupError::NotMounted { .. }), "{err:?}");
}

#[test]
fn cgroup_round_trips_through_json_for_state_json() {
    let fx = V1Fixture::new("/");
    let cg = Cgroup::resolve_in(&fx.root, Some("/berth/c1"), "unused").unwrap();
    let json = serde_json::to_string(&cg).unwrap();
    assert!(json.contains("\"version\":\"v1\""), "{json}");
    let back: Cgroup = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cg);

    let fx2 = V2Fixture::new();
    let (cg2, _) = fx2.cgroup("/berth/c2");
    let back2: Cgroup = serde_json::from_str(&serde_json::to_string(&cg2).unwrap()).unwrap();
    assert!(back2.is_v2());
    assert_eq!(back2, cg2);
}
