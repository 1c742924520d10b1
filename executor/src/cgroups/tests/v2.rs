//! cgroup v2 on fixture trees: controller enabling, resource mapping and
//! conversions, unified keys, freezer, stats parsing.

use std::collections::BTreeMap;
use std::path::Path;

use super::super::v2::{
    blkio_weight_to_io_weight, io_max_lines, set_resources, shares_to_weight, swap_to_v2,
};
use super::super::{CgroupError, Stats};
use super::fixture::{populate, read, V2Fixture};
use crate::spec::*;

#[test]
fn create_enables_available_controllers_in_every_ancestor() {
    let fx = V2Fixture::new();
    let cg = super::super::Cgroup::resolve_in(&fx.root, Some("c1"), "unused").unwrap();
    cg.create().unwrap();
    let base = fx.base();
    assert!(base.join("user.slice/c1").is_dir());
    assert_eq!(
        read(&base.join("cgroup.subtree_control")),
        "+cpuset +cpu +io +memory +hugetlb +pids +rdma +misc"
    );
    assert_eq!(
        read(&base.join("user.slice/cgroup.subtree_control")),
        "+cpu +io +memory +pids"
    );
    // The leaf's own subtree_control is left alone: processes live there.
    assert!(!base.join("user.slice/c1/cgroup.subtree_control").exists());
}

#[test]
fn create_makes_missing_intermediate_levels() {
    let fx = V2Fixture::new();
    let cg = super::super::Cgroup::resolve_in(&fx.root, Some("/machine/pod/c1"), "unused").unwrap();
    cg.create().unwrap();
    assert!(fx.base().join("machine/pod/c1").is_dir());
    assert!(cg.exists());
}

#[test]
fn conversions_match_runc() {
    assert_eq!(shares_to_weight(0), 0);
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(shares_to_weight(262144), 10000);
    assert_eq!(blkio_weight_to_io_weight(0), 0);
    assert_eq!(blkio_weight_to_io_weight(10), 1);
    assert_eq!(blkio_weight_to_io_weight(500), 4950);
    assert_eq!(blkio_weight_to_io_weight(1000), 10000);
    assert_eq!(swap_to_v2(300, 100), Ok(200));
    assert_eq!(swap_to_v2(100, 100), Ok(0));
    assert_eq!(swap_to_v2(-1, 100), Ok(-1));
    assert_eq!(swap_to_v2(0, -1), Ok(-1));
    assert_eq!(swap_to_v2(0, 100), Ok(0));
    assert!(swap_to_v2(50, 100).is_err());
    assert!(swap_to_v2(200, 0).is_err());
    assert!(swap_to_v2(200, -1).is_err());
}

fn apply(dir: &Path, r: Resources) -> Result<(), CgroupError> {
    set_resources(dir, &r)
}

#[test]
fn resources_land_in_the_v2_files_with_runc_values() {
    let fx = V2Fixture::new();
    let (_cg, dir) = fx.cgroup("/berth/c1");
    apply(
        &dir,
        Resources {
            memory: Some(Memory {
                limit: Some(100 << 20),
                reservation: Some(50 << 20),
                swap: Some(300 << 20),
                ..Default::default()
            }),
            cpu: Some(Cpu {
                shares: Some(1024),
                quota: Some(50_000),
                period: Some(100_000),
                burst: Some(20_000),
                cpus: Some("0-1".into()),
                mems: Some("0".into()),
                idle: Some(0),
                ..Default::default()
            }),
            pids: Some(Pids { limit: 100 }),
            block_io: Some(BlockIo {
                weight: Some(500),
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
                    rate: 10,
                }],
                throttle_write_iops_device: vec![ThrottleDevice {
                    major: 8,
                    minor: 0,
                    rate: 20,
                }],
                ..Default::default()
            }),
            hugepage_limits: vec![HugepageLimit {
                page_size: "2MB".into(),
                limit: 4 << 20,
            }],
            rdma: BTreeMap::from([(
                "mlx5_1".to_string(),
                Rdma {
                    hca_handles: Some(3),
                    hca_objects: None,
                },
            )]),
            unified: BTreeMap::from([("memory.oom.group".to_string(), "1".to_string())]),
            ..Default::default()
        },
    )
    .unwrap();
    let f = |file: &str| read(&dir.join(file));
    assert_eq!(f("memory.max"), "104857600");
    assert_eq!(f("memory.low"), "52428800");
    assert_eq!(f("memory.swap.max"), "209715200");
    assert_eq!(f("cpu.weight"), "39");
    assert_eq!(f("cpu.max"), "50000 100000");
    assert_eq!(f("cpu.max.burst"), "20000");
    assert_eq!(f("cpu.idle"), "0");
    assert_eq!(f("cpuset.cpus"), "0-1");
    assert_eq!(f("cpuset.mems"), "0");
    assert_eq!(f("pids.max"), "100");
    assert_eq!(f("io.weight"), "4950");
    assert_eq!(
        f("io.max"),
        "8:0 rbps=1000 wbps=2000 wiops=20\n8:16 riops=10\n"
    );
    assert_eq!(f("hugetlb.2MB.max"), "4194304");
    assert_eq!(f("hugetlb.2MB.rsvd.max"), "4194304");
    assert_eq!(f("rdma.max"), "mlx5_1 hca_handle=3\n");
    assert_eq!(f("memory.oom.group"), "1");
}

#[test]
fn per_device_weight_goes_to_io_weight_converted() {
    let fx = V2Fixture::new();
    let (_cg, dir) = fx.cgroup("/c");
    let r = Resources {
        block_io: Some(BlockIo {
            weight_device: vec![WeightDevice {
                major: 8,
                minor: 16,
                weight: Some(1000),
                leaf_weight: None,
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    apply(&dir, r.clone()).unwrap();
    assert_eq!(read(&dir.join("io.weight")), "default 100\n8:16 10000\n");
    // With BFQ offering per-device weights, the blkio value goes there as is.
    populate(&dir, &[("io.bfq.weight", "default 100\n")]);
    apply(&dir, r).unwrap();
    assert_eq!(read(&dir.join("io.bfq.weight")), "default 100\n8:16 1000\n");
}

#[test]
fn memory_special_values() {
    let fx = V2Fixture::new();
    let (_cg, dir) = fx.cgroup("/c");
    let mem = |limit, swap| Resources {
        memory: Some(Memory {
            limit,
            swap,
            ..Default::default()
        }),
        ..Default::default()
    };
    apply(&dir, mem(Some(-1), None)).unwrap();
    assert_eq!(
        (
            read(&dir.join("memory.max")),
            read(&dir.join("memory.swap.max"))
        ),
        ("max".into(), "max".into())
    );
    apply(&dir, mem(Some(1000), Some(1000))).unwrap();
    assert_eq!(
        (
            read(&dir.join("memory.max")),
            read(&dir.join("memory.swap.max"))
        ),
        ("1000".into(), "0".into())
    );
    apply(&dir, mem(Some(1000), Some(-1))).unwrap();
    assert_eq!(read(&dir.join("memory.swap.max")), "max");
    let err = apply(&dir, mem(Some(1000), Some(10)))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "linux.resources.memory.swap: memory+swap limit should be >= memory limit"
    );
    let err = apply(&dir, mem(None, Some(10))).unwrap_err().to_string();
    assert_eq!(
        err,
        "linux.resources.memory.swap: unable to set swap limit without memory limit"
    );
}

#[test]
fn cpu_period_without_quota_writes_max() {
    let fx = V2Fixture::new();
    let (_cg, dir) = fx.cgroup("/c");
    let cpu = |quota, period| Resources {
        cpu: Some(Cpu {
            quota,
            period,
            ..Default::default()
        }),
        ..Default::default()
    };
    apply(&dir, cpu(None, Some(50_000))).unwrap();
    assert_eq!(read(&dir.join("cpu.max")), "max 50000");
    apply(&dir, cpu(Some(-1), None)).unwrap();
    assert_eq!(read(&dir.join("cpu.max")), "max 100000");
    apply(&dir, cpu(Some(25_000), None)).unwrap();
    assert_eq!(read(&dir.join("cpu.max")), "25000 100000");
}

#[test]
fn settings_v2_cannot_honour_are_errors_naming_the_field() {
    let fx = V2Fixture::new();
    let (_cg, dir) = fx.cgroup("/c");
    let cases: Vec<(Resources, &str)> = vec![
        (
            Resources {
                cpu: Some(Cpu {
                    realtime_runtime: Some(1000),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "linux.resources.cpu.realtimeRuntime: real-time group scheduling is not available on cgroup v2",
        ),
        (
            Resources {
                network: Some(Network {
                    class_id: Some(1),
                    priorities: vec![],
                }),
                ..Default::default()
            },
            "linux.resources.network: net_cls and net_prio do not exist on cgroup v2",
        ),
        (
            Resources {
                hugepage_limits: vec![HugepageLimit {
                    page_size: "../../x".into(),
                    limit: 1,
                }],
                ..Default::default()
            },
            "linux.resources.hugepageLimits[0].pageSize: \"../../x\" is not a page size such as \"2MB\" or \"1GB\"",
        ),
    ];
    for (r, want) in cases {
        assert_eq!(apply(&dir, r).unwrap_err().to_string(), want);
    }
    // A controller not enabled here: its files are missing.
    let err = apply(
        &dir,
        Resources {
            hugepage_limits: vec![HugepageLimit {
                page_size: "1GB".into(),
                limit: 1 << 30,
            }],
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, CgroupError::Config { .. }));
    assert!(
        err.to_string()
            .starts_with("linux.resources.hugepageLimits[0]: "),
        "{err}"
    );
    assert!(
        err.to_string().contains("hugetlb.1GB.max does not exist"),
        "{err}"
    );
}

#[test]
fn unified_keys_are_written_verbatim_and_paths_are_refused() {
    let fx = V2Fixture::new();
    let (_cg, dir) = fx.cgroup("/c");
    for bad in ["../cgroup.procs", "a/b", "..", ""] {
        let r = Resources {
            unified: BTreeMap::from([(bad.to_string(), "1".to_string())]),
            ..Default::default()
        };
        let err = apply(&dir, r).unwrap_err().to_string();
        assert!(err.starts_with("linux.resources.unified["), "{bad}: {err}");
        assert!(err.contains("must be the name of a file"), "{err}");
    }
    let r = Resources {
        unified: BTreeMap::from([("misc.max".to_string(), "res_a 1".to_string())]),
        ..Default::default()
    };
    let err = apply(&dir, r).unwrap_err().to_string();
    assert!(err.contains("\"misc\" controller"), "{err}");
}

#[test]
fn freezer_waits_for_frozen_in_cgroup_events() {
    let fx = V2Fixture::new();
    let (cg, dir) = fx.cgroup("/c");
    std::fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
    cg.freeze().unwrap();
    assert_eq!(read(&dir.join("cgroup.freeze")), "1");
    assert!(cg.is_frozen().unwrap());
    cg.thaw().unwrap();
    assert_eq!(read(&dir.join("cgroup.freeze")), "0");
    assert!(!cg.is_frozen().unwrap());
    std::fs::remove_file(dir.join("cgroup.freeze")).unwrap();
    assert!(matches!(
        cg.freeze().unwrap_err(),
        CgroupError::Unsupported { .. }
    ));
    // No cgroup.kill in the fixture: the caller must signal pids itself.
    assert!(!cg.kill_all().unwrap());
}

#[test]
fn stats_are_parsed_from_the_v2_files() {
    let fx = V2Fixture::new();
    let (cg, dir) = fx.cgroup("/c");
    populate(
        &dir,
        &[
            ("cpu.stat", "usage_usec 2000\nuser_usec 1500\nsystem_usec 500\nnr_periods 7\nnr_throttled 2\nthrottled_usec 30\n"),
            ("memory.stat", "anon 8192\nfile 4096\nkernel 1024\n"),
            ("memory.current", "12288\n"),
            ("memory.max", "1048576\n"),
            ("memory.peak", "16384\n"),
            ("memory.swap.current", "100\n"),
            ("memory.swap.max", "max\n"),
            ("memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\noom_group_kill 0\n"),
            ("io.stat", "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n253:1 rbytes=10 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"),
            ("pids.current", "3\n"),
            ("pids.max", "50\n"),
            ("hugetlb.2MB.current", "2097152\n"),
            ("hugetlb.2MB.events", "max 5\n"),
        ],
    );
    std::fs::remove_file(dir.join("hugetlb.2MB.rsvd.max")).unwrap();
    let s: Stats = cg.stats().unwrap();
    assert_eq!(
        (s.cpu.usage.total, s.cpu.usage.user, s.cpu.usage.kernel),
        (2_000_000, 1_500_000, 500_000)
    );
    assert_eq!(
        (
            s.cpu.throttling.periods,
            s.cpu.throttling.throttled_periods,
            s.cpu.throttling.throttled_time
        ),
        (7, 2, 30_000)
    );
    assert_eq!(s.memory.cache, 4096);
    assert_eq!(s.memory.raw.get("anon"), Some(&8192));
    assert_eq!(
        (
            s.memory.usage.usage,
            s.memory.usage.limit,
            s.memory.usage.max
        ),
        (12288, 1048576, 16384)
    );
    assert_eq!(
        (s.memory.swap.usage, s.memory.swap.limit),
        (12388, u64::MAX)
    );
    assert_eq!(s.memory.oom_kill, Some(1));
    assert_eq!((s.pids.current, s.pids.limit), (3, 50));
    let bytes: Vec<(u64, u64, &str, u64)> = s
        .blkio
        .io_service_bytes_recursive
        .iter()
        .map(|e| (e.major, e.minor, e.op.as_str(), e.value))
        .collect();
    assert_eq!(
        bytes,
        vec![
            (8, 0, "Read", 4096),
            (8, 0, "Write", 8192),
            (253, 1, "Read", 10),
            (253, 1, "Write", 0)
        ]
    );
    assert_eq!(s.blkio.io_serviced_recursive.len(), 4);
    let huge = &s.hugetlb["2MB"];
    assert_eq!((huge.usage, huge.max, huge.failcnt), (2097152, 0, 5));
}

#[test]
fn io_max_lines_group_limits_per_device() {
    let b = BlockIo {
        throttle_write_iops_device: vec![ThrottleDevice {
            major: 1,
            minor: 2,
            rate: 3,
        }],
        throttle_read_bps_device: vec![
            ThrottleDevice {
                major: 4,
                minor: 5,
                rate: 6,
            },
            ThrottleDevice {
                major: 1,
                minor: 2,
                rate: 7,
            },
        ],
        ..Default::default()
    };
    assert_eq!(io_max_lines(&b), vec!["4:5 rbps=6", "1:2 rbps=7 wiops=3"]);
}

#[test]
fn oom_watch_wakes_on_memory_events_changes_and_counts_kills() {
    use std::os::fd::AsRawFd;
    let fx = V2Fixture::new();
    let (cg, dir) = fx.cgroup("/c");
    populate(
        &dir,
        &[("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")],
    );
    let fd = cg.oom_eventfd().unwrap();
    assert_eq!(cg.oom_kill_count().unwrap(), 0);
    std::fs::write(
        dir.join("memory.events"),
        "low 0\nhigh 0\nmax 1\noom 1\noom_kill 1\n",
    )
    .unwrap();
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    assert_eq!(unsafe { libc::poll(&mut pfd, 1, 2000) }, 1);
    assert_eq!(cg.oom_kill_count().unwrap(), 1);
}
