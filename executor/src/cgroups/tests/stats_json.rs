//! The stats JSON is runc's `events --stats` shape (types/events.go).

use serde_json::json;

use super::super::stats::{BlkioEntry, HugetlbStats, Stats};

#[test]
fn empty_stats_serialize_like_runc() {
    let v = serde_json::to_value(Stats::default()).unwrap();
    assert_eq!(
        v,
        json!({
            "cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}},
            "cpuset": {
                "cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0, "memory_migrate": 0,
                "memory_spread_page": 0, "memory_spread_slab": 0, "memory_pressure": 0,
                "sched_load_balance": 0, "sched_relax_domain_level": 0
            },
            "memory": {
                "usage": {"limit": 0, "failcnt": 0},
                "swap": {"limit": 0, "failcnt": 0},
                "kernel": {"limit": 0, "failcnt": 0},
                "kernelTCP": {"limit": 0, "failcnt": 0}
            },
            "pids": {},
            "blkio": {},
            "hugetlb": {}
        })
    );
}

#[test]
fn filled_stats_use_runc_key_names() {
    let mut s = Stats::default();
    s.cpu.usage.total = 10;
    s.cpu.usage.percpu = vec![4, 6];
    s.cpu.usage.percpu_kernel = vec![1, 2];
    s.cpu.usage.percpu_user = vec![3, 4];
    s.cpu.throttling.throttled_periods = 2;
    s.cpu.throttling.throttled_time = 9;
    s.memory.cache = 5;
    s.memory.usage.usage = 7;
    s.memory.usage.max = 8;
    s.memory.raw.insert("rss".into(), 3);
    s.memory.oom_kill = Some(1);
    s.pids.current = 2;
    s.blkio.io_service_bytes_recursive.push(BlkioEntry {
        major: 8,
        minor: 0,
        op: "Read".into(),
        value: 4096,
    });
    s.blkio.io_queued_recursive.push(BlkioEntry::default());
    s.hugetlb.insert(
        "2MB".into(),
        HugetlbStats {
            usage: 1,
            max: 0,
            failcnt: 0,
        },
    );
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(
        v["cpu"]["usage"],
        json!({"total": 10, "percpu": [4, 6], "percpu_kernel": [1, 2], "percpu_user": [3, 4], "kernel": 0, "user": 0})
    );
    assert_eq!(
        v["cpu"]["throttling"],
        json!({"throttledPeriods": 2, "throttledTime": 9})
    );
    assert_eq!(v["memory"]["cache"], 5);
    assert_eq!(
        v["memory"]["usage"],
        json!({"limit": 0, "usage": 7, "max": 8, "failcnt": 0})
    );
    assert_eq!(v["memory"]["raw"], json!({"rss": 3}));
    assert!(v["memory"].get("oom_kill").is_none());
    assert_eq!(v["pids"], json!({"current": 2}));
    // Go's omitempty drops a zero minor too.
    assert_eq!(
        v["blkio"],
        json!({"ioServiceBytesRecursive": [{"major": 8, "op": "Read", "value": 4096}], "ioQueueRecursive": [{}]})
    );
    assert_eq!(v["hugetlb"], json!({"2MB": {"usage": 1, "failcnt": 0}}));
    // And back, for consumers that read the JSON.
    let back: Stats = serde_json::from_value(v).unwrap();
    assert_eq!(back.cpu, s.cpu);
    assert_eq!(back.blkio, s.blkio);
}
