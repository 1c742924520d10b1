//! cgroup v1 statistics parsed from fixture files.

use super::fixture::{populate, V1Fixture};

#[test]
fn stats_are_parsed_from_the_v1_files() {
    let fx = V1Fixture::new("/");
    let cg = fx.cgroup("/c");
    let d = |h: &str| fx.dir(&cg, h);
    populate(
        &d("cpuacct"),
        &[
            ("cpuacct.stat", "user 150\nsystem 50\n"),
            ("cpuacct.usage", "2000000000\n"),
            ("cpuacct.usage_percpu", "1200000000 800000000 \n"),
            (
                "cpuacct.usage_all",
                "cpu user system\n0 1000 200\n1 700 100\n",
            ),
        ],
    );
    populate(
        &d("cpu"),
        &[(
            "cpu.stat",
            "nr_periods 10\nnr_throttled 3\nthrottled_time 4500\nnr_bursts 0\n",
        )],
    );
    populate(
        &d("memory"),
        &[
            ("memory.stat", "cache 4096\nrss 8192\ntotal_cache 4096\n"),
            ("memory.usage_in_bytes", "12288\n"),
            ("memory.max_usage_in_bytes", "20480\n"),
            ("memory.failcnt", "2\n"),
            ("memory.limit_in_bytes", "67108864\n"),
            ("memory.memsw.usage_in_bytes", "16384\n"),
            ("memory.memsw.max_usage_in_bytes", "24576\n"),
            ("memory.memsw.failcnt", "0\n"),
            ("memory.memsw.limit_in_bytes", "134217728\n"),
            ("memory.kmem.usage_in_bytes", "1024\n"),
            ("memory.kmem.max_usage_in_bytes", "2048\n"),
            ("memory.kmem.failcnt", "0\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
            ),
        ],
    );
    populate(
        &d("pids"),
        &[("pids.current", "4\n"), ("pids.max", "max\n")],
    );
    populate(
        &d("blkio"),
        &[
            ("blkio.bfq.io_serviced_recursive", "Total 0\n"),
            (
                "blkio.throttle.io_service_bytes_recursive",
                "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Discard 0\n8:0 Total 12288\nTotal 12288\n",
            ),
            ("blkio.throttle.io_serviced_recursive", "8:0 Read 1\n8:0 Write 2\nTotal 3\n"),
        ],
    );
    populate(
        &d("cpuset"),
        &[
            ("cpuset.cpus", "0-1,3\n"),
            ("cpuset.mems", "0\n"),
            ("cpuset.sched_relax_domain_level", "-1\n"),
        ],
    );
    let s = cg.stats().unwrap();
    assert_eq!(s.cpu.usage.total, 2_000_000_000);
    assert_eq!(s.cpu.usage.user, 1_500_000_000);
    assert_eq!(s.cpu.usage.kernel, 500_000_000);
    assert_eq!(s.cpu.usage.percpu, vec![1_200_000_000, 800_000_000]);
    assert_eq!(s.cpu.usage.percpu_user, vec![1000, 700]);
    assert_eq!(s.cpu.usage.percpu_kernel, vec![200, 100]);
    assert_eq!(
        (
            s.cpu.throttling.periods,
            s.cpu.throttling.throttled_periods,
            s.cpu.throttling.throttled_time
        ),
        (10, 3, 4500)
    );
    assert_eq!(s.memory.cache, 4096);
    assert_eq!(s.memory.raw.get("rss"), Some(&8192));
    assert_eq!(
        (
            s.memory.usage.usage,
            s.memory.usage.max,
            s.memory.usage.failcnt,
            s.memory.usage.limit
        ),
        (12288, 20480, 2, 67108864)
    );
    assert_eq!(
        (s.memory.swap.usage, s.memory.swap.limit),
        (16384, 134217728)
    );
    // kmem.limit_in_bytes is absent on new kernels: limit 0, not an error.
    assert_eq!((s.memory.kernel.usage, s.memory.kernel.limit), (1024, 0));
    assert_eq!(s.memory.kernel_tcp, Default::default());
    assert_eq!(s.memory.oom_kill, Some(3));
    assert_eq!((s.pids.current, s.pids.limit), (4, 0));
    // The empty BFQ group is skipped for the throttle counters.
    let bytes: Vec<(u64, u64, &str, u64)> = s
        .blkio
        .io_service_bytes_recursive
        .iter()
        .map(|e| (e.major, e.minor, e.op.as_str(), e.value))
        .collect();
    assert_eq!(bytes[0], (8, 0, "Read", 4096));
    assert_eq!(bytes.len(), 6);
    assert_eq!(s.blkio.io_serviced_recursive.len(), 2);
    assert_eq!(s.cpuset.cpus, vec![0, 1, 3]);
    assert_eq!(s.cpuset.sched_relax_domain_level, -1);
    assert!(s.hugetlb.is_empty());
}
