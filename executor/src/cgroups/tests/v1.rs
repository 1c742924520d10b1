//! cgroup v1 on fixture trees: creation, every resource's file and value,
//! device rule writes, freezer, stats parsing.

use std::collections::BTreeMap;

use super::super::CgroupError;
use super::fixture::{populate, read, V1Fixture};
use crate::spec::*;

fn deny_all() -> Vec<DeviceCgroup> {
    vec![DeviceCgroup {
        allow: false,
        access: Some("rwm".into()),
        ..Default::default()
    }]
}

#[test]
fn create_fills_empty_cpuset_levels_from_their_parents_top_down() {
    let fx = V1Fixture::new("/");
    let cpuset = fx.base().join("cpuset");
    // Fresh v1 cpuset cgroups start empty, the intermediate one included.
    populate(
        &cpuset.join("berth"),
        &[("cpuset.cpus", "\n"), ("cpuset.mems", "\n")],
    );
    let cg = fx.cgroup("/berth/c1");
    cg.create().unwrap();
    for dir in [cpuset.join("berth"), cpuset.join("berth/c1")] {
        assert_eq!(read(&dir.join("cpuset.cpus")), "0-1", "{}", dir.display());
        assert_eq!(read(&dir.join("cpuset.mems")), "0");
    }
    // A level that already has values keeps them.
    populate(
        &cpuset.join("berth2"),
        &[("cpuset.cpus", "1\n"), ("cpuset.mems", "0\n")],
    );
    let cg2 = fx.cgroup("/berth2/c1");
    cg2.create().unwrap();
    assert_eq!(read(&cpuset.join("berth2/cpuset.cpus")), "1\n");
    assert_eq!(read(&cpuset.join("berth2/c1/cpuset.cpus")), "1");
    assert!(cg.exists());
}

#[test]
fn resources_land_in_the_v1_files_with_runc_values() {
    let fx = V1Fixture::new("/");
    populate(
        &fx.base().join("cpuset/berth"),
        &[("cpuset.cpus", ""), ("cpuset.mems", "")],
    );
    let cg = fx.cgroup("/berth/c1");
    cg.create().unwrap();
    let r = Resources {
        devices: deny_all(),
        memory: Some(Memory {
            limit: Some(64 << 20),
            reservation: Some(32 << 20),
            swap: Some(128 << 20),
            kernel: Some(1 << 20),
            swappiness: Some(10),
            disable_oom_killer: Some(true),
            use_hierarchy: Some(true),
            ..Default::default()
        }),
        cpu: Some(Cpu {
            shares: Some(512),
            quota: Some(50_000),
            period: Some(200_000),
            burst: Some(10_000),
            realtime_runtime: Some(900),
            realtime_period: Some(1000),
            cpus: Some("1".into()),
            mems: Some("0".into()),
            idle: Some(1),
        }),
        pids: Some(Pids { limit: 42 }),
        block_io: Some(BlockIo {
            weight: Some(500),
            weight_device: vec![WeightDevice {
                major: 8,
                minor: 0,
                weight: Some(300),
                leaf_weight: None,
            }],
            throttle_read_bps_device: vec![ThrottleDevice {
                major: 8,
                minor: 0,
                rate: 1000,
            }],
            throttle_write_bps_device: vec![ThrottleDevice {
                major: 8,
                minor: 0,
                rate: 2000,
            }],
            throttle_read_iops_device: vec![ThrottleDevice {
                major: 8,
                minor: 16,
                rate: 30,
            }],
            throttle_write_iops_device: vec![ThrottleDevice {
                major: 8,
                minor: 16,
                rate: 40,
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    cg.apply(&r).unwrap();
    let f = |h: &str, file: &str| read(&fx.dir(&cg, h).join(file));
    assert_eq!(f("memory", "memory.limit_in_bytes"), "67108864");
    assert_eq!(f("memory", "memory.memsw.limit_in_bytes"), "134217728");
    assert_eq!(f("memory", "memory.soft_limit_in_bytes"), "33554432");
    assert_eq!(f("memory", "memory.swappiness"), "10");
    assert_eq!(f("memory", "memory.oom_control"), "1");
    assert_eq!(f("memory", "memory.use_hierarchy"), "1");
    assert_eq!(f("cpu", "cpu.shares"), "512");
    assert_eq!(f("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(f("cpu", "cpu.cfs_period_us"), "200000");
    assert_eq!(f("cpu", "cpu.cfs_burst_us"), "10000");
    assert_eq!(f("cpu", "cpu.idle"), "1");
    assert_eq!(f("cpu", "cpu.rt_runtime_us"), "900");
    assert_eq!(f("cpu", "cpu.rt_period_us"), "1000");
    assert_eq!(f("cpuset", "cpuset.cpus"), "1");
    assert_eq!(f("cpuset", "cpuset.mems"), "0");
    assert_eq!(f("pids", "pids.max"), "42");
    // No blkio.weight (CFQ is gone): the BFQ files take the weights.
    assert_eq!(f("blkio", "blkio.bfq.weight"), "500");
    assert_eq!(f("blkio", "blkio.bfq.weight_device"), "8:0 300\n");
    assert_eq!(f("blkio", "blkio.throttle.read_bps_device"), "8:0 1000\n");
    assert_eq!(f("blkio", "blkio.throttle.write_bps_device"), "8:0 2000\n");
    assert_eq!(f("blkio", "blkio.throttle.read_iops_device"), "8:16 30\n");
    assert_eq!(f("blkio", "blkio.throttle.write_iops_device"), "8:16 40\n");
}

#[test]
fn pids_limit_zero_or_negative_means_max() {
    let fx = V1Fixture::new("/");
    let cg = fx.cgroup("/c");
    let pids = fx.dir(&cg, "pids").join("pids.max");
    for (limit, want) in [(5, "5"), (0, "max"), (-1, "max")] {
        std::fs::write(&pids, "x").unwrap();
        let r = Resources {
            pids: Some(Pids { limit }),
            ..Default::default()
        };
        cg.apply(&r).unwrap();
        assert_eq!(read(&pids), want, "limit {limit}");
    }
}

#[test]
fn unlimited_memory_without_swap_sets_swap_unlimited_too() {
    let fx = V1Fixture::new("/");
    let cg = fx.cgroup("/c");
    let mem = fx.dir(&cg, "memory");
    std::fs::write(mem.join("memory.memsw.limit_in_bytes"), "100").unwrap();
    let r = Resources {
        memory: Some(Memory {
            limit: Some(-1),
            ..Default::default()
        }),
        ..Default::default()
    };
    cg.apply(&r).unwrap();
    assert_eq!(read(&mem.join("memory.limit_in_bytes")), "-1");
    assert_eq!(read(&mem.join("memory.memsw.limit_in_bytes")), "-1");
}

#[test]
fn config_errors_name_the_field_and_nothing_is_written() {
    let fx = V1Fixture::new("/");
    let cg = fx.cgroup("/c");
    let limit_file = fx.dir(&cg, "memory").join("memory.limit_in_bytes");
    let with_memory = |r: Resources| Resources {
        memory: Some(Memory {
            limit: Some(1 << 20),
            ..Default::default()
        }),
        ..r
    };
    let cases: Vec<(Resources, &str)> = vec![
        (
            with_memory(Resources {
                hugepage_limits: vec![HugepageLimit {
                    page_size: "2MB".into(),
                    limit: 1 << 21,
                }],
                ..Default::default()
            }),
            "linux.resources.hugepageLimits: hugetlb controller is not available on this host",
        ),
        (
            with_memory(Resources {
                network: Some(Network {
                    class_id: Some(0x100001),
                    priorities: vec![],
                }),
                ..Default::default()
            }),
            "linux.resources.network.classID: net_cls controller is not available on this host",
        ),
        (
            with_memory(Resources {
                network: Some(Network {
                    class_id: None,
                    priorities: vec![InterfacePriority {
                        name: "eth0".into(),
                        priority: 1,
                    }],
                }),
                ..Default::default()
            }),
            "linux.resources.network.priorities: net_prio controller is not available on this host",
        ),
        (
            with_memory(Resources {
                rdma: BTreeMap::from([("mlx5_0".to_string(), Rdma::default())]),
                ..Default::default()
            }),
            "linux.resources.rdma: rdma controller is not available on this host",
        ),
        (
            with_memory(Resources {
                unified: BTreeMap::from([("memory.high".to_string(), "1G".to_string())]),
                ..Default::default()
            }),
            "linux.resources.unified: needs cgroup v2; this host uses cgroup v1",
        ),
    ];
    for (r, want) in cases {
        let err = cg.apply(&r).unwrap_err();
        assert!(matches!(err, CgroupError::Config { .. }), "{err:?}");
        assert_eq!(err.to_string(), want);
        assert_eq!(
            read(&limit_file),
            "9223372036854771712",
            "written despite {want}"
        );
    }
}

#[test]
fn missing_knobs_and_bad_values_are_reported_against_their_field() {
    let fx = V1Fixture::new("/");
    let cg = fx.cgroup("/c");
    let blkio = fx.dir(&cg, "blkio");
    std::fs::remove_file(blkio.join("blkio.bfq.weight")).unwrap();
    let r = Resources {
        block_io: Some(BlockIo {
            weight: Some(100),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = cg.apply(&r).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "linux.resources.blockIO.weight: neither blkio.weight nor blkio.bfq.weight exists"
        ),
        "{err}"
    );
    let r = Resources {
        block_io: Some(BlockIo {
            leaf_weight: Some(100),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = cg.apply(&r).unwrap_err().to_string();
    assert!(
        err.starts_with("linux.resources.blockIO.leafWeight: "),
        "{err}"
    );
    assert!(err.contains("blkio.leaf_weight does not exist"), "{err}");

    let mem = fx.dir(&cg, "memory");
    std::fs::remove_file(mem.join("memory.memsw.limit_in_bytes")).unwrap();
    let r = Resources {
        memory: Some(Memory {
            limit: Some(1 << 20),
            swap: Some(2 << 20),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = cg.apply(&r).unwrap_err().to_string();
    assert!(
        err.starts_with("linux.resources.memory.swap: swap accounting is not available"),
        "{err}"
    );
    let r = Resources {
        memory: Some(Memory {
            swappiness: Some(101),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = cg.apply(&r).unwrap_err().to_string();
    assert_eq!(
        err,
        "linux.resources.memory.swappiness: 101 is outside 0-100"
    );
}

#[test]
fn devices_on_a_fresh_cgroup_are_written_in_config_order_then_defaults() {
    let fx = V1Fixture::new("/");
    let cg = fx.cgroup("/c");
    let mut devices = deny_all();
    devices.push(DeviceCgroup {
        allow: true,
        typ: Some("b".into()),
        major: Some(8),
        minor: Some(0),
        access: Some("r".into()),
    });
    cg.apply(&Resources {
        devices,
        ..Default::default()
    })
    .unwrap();
    let dir = fx.dir(&cg, "devices");
    assert_eq!(read(&dir.join("devices.deny")), "a *:* rwm\n");
    assert_eq!(
        read(&dir.join("devices.allow")),
        "b 8:0 r\nc *:* m\nb *:* m\nc 1:3 rwm\nc 1:8 rwm\nc 1:7 rwm\nc 5:0 rwm\n\
         c 1:5 rwm\nc 1:9 rwm\nc 136:* rwm\nc 5:2 rwm\nc 10:200 rwm\n"
    );
}

#[test]
fn device_update_writes_only_the_difference_from_devices_list() {
    let fx = V1Fixture::new("/");
    let cg = fx.cgroup("/c");
    let dir = fx.dir(&cg, "devices");
    // What the kernel lists after the default set plus "c 4:1 rwm".
    std::fs::write(
        dir.join("devices.list"),
        "b *:* m\nc *:* m\nc 1:3 rwm\nc 1:5 rwm\nc 1:7 rwm\nc 1:8 rwm\nc 1:9 rwm\n\
         c 4:1 rwm\nc 5:0 rwm\nc 5:2 rwm\nc 10:200 rwm\nc 136:* rwm\n",
    )
    .unwrap();
    let mut devices = deny_all();
    devices.push(DeviceCgroup {
        allow: true,
        typ: Some("c".into()),
        major: Some(4),
        minor: Some(2),
        access: Some("rw".into()),
    });
    cg.apply(&Resources {
        devices,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(read(&dir.join("devices.deny")), "c 4:1 rwm\n");
    assert_eq!(read(&dir.join("devices.allow")), "c 4:2 rw\n");
}

#[test]
fn bad_device_entries_name_their_index() {
    let fx = V1Fixture::new("/");
    let cg = fx.cgroup("/c");
    let cases = [
        (
            DeviceCgroup {
                allow: true,
                typ: Some("x".into()),
                access: Some("r".into()),
                ..Default::default()
            },
            "linux.resources.devices[0].type",
        ),
        (
            DeviceCgroup {
                allow: true,
                access: None,
                ..Default::default()
            },
            "linux.resources.devices[0].access",
        ),
        (
            DeviceCgroup {
                allow: true,
                access: Some("rx".into()),
                ..Default::default()
            },
            "linux.resources.devices[0].access",
        ),
        (
            DeviceCgroup {
                allow: true,
                major: Some(-7),
                access: Some("r".into()),
                ..Default::default()
            },
            "linux.resources.devices[0].major",
        ),
    ];
    for (d, field) in cases {
        let err = cg
            .apply(&Resources {
                devices: vec![d],
                ..Default::default()
            })
            .unwrap_err();
        assert!(err.to_string().starts_with(&format!("{field}: ")), "{err}");
    }
}

#[test]
fn freezer_writes_frozen_and_reads_state_back() {
    let fx = V1Fixture::new("/");
    let cg = fx.cgroup("/c");
    let state = fx.dir(&cg, "freezer").join("freezer.state");
    cg.freeze().unwrap();
    assert_eq!(read(&state), "FROZEN");
    std::fs::write(fx.dir(&cg, "freezer").join("freezer.self_freezing"), "1\n").unwrap();
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert_eq!(read(&state), "THAWED");
    assert!(!cg.is_frozen().unwrap());
}

#[test]
fn pids_are_collected_from_sub_cgroups_too() {
    let fx = V1Fixture::new("/");
    let cg = fx.cgroup("/c");
    let dir = fx.dir(&cg, "devices");
    std::fs::write(dir.join("cgroup.procs"), "10\n11\n").unwrap();
    populate(&dir.join("sub/deeper"), &[("cgroup.procs", "12\n")]);
    populate(&dir.join("sub"), &[("cgroup.procs", "")]);
    let mut pids = cg.pids().unwrap();
    pids.sort();
    assert_eq!(pids, vec![10, 11, 12]);
}
