//! cgroup v1 on the real kernel: every hierarchy, limits and their update
//! order, membership, freezer, stats, removal; the OOM eventfd.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::thread::sleep;
use std::time::Duration;

use super::super::super::{Cgroup, CgroupFsType};
use super::*;
use crate::spec::*;

#[test]
fn host_v1_cgroup_lifecycle() {
    let Some(root) = host_root() else { return };
    if root.is_v2() {
        eprintln!("skipped: host has no cgroup v1");
        return;
    }
    let path = format!("/berth-test-{}-v1", std::process::id());
    let cg = Cgroup::resolve_in(&root, Some(&path), "unused").unwrap();
    let mut g = Guard::new(&cg);
    cg.create().unwrap();
    let hs = cg.hierarchies();
    assert!(hs.iter().any(|h| h.options == "name=systemd"));
    for h in &hs {
        assert!(h.dir.is_dir(), "{} not created", h.dir.display());
    }
    let dir = |name: &str| hs.iter().find(|h| h.name == name).unwrap().dir.clone();

    let mut r = Resources {
        devices: deny_all(),
        memory: memory(64 << 20, 128 << 20),
        pids: Some(Pids { limit: 16 }),
        cpu: Some(Cpu {
            shares: Some(512),
            cpus: Some("0".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    cg.apply(&r).unwrap();
    assert_eq!(
        read(&dir("memory").join("memory.limit_in_bytes")).trim(),
        "67108864"
    );
    assert_eq!(
        read(&dir("memory").join("memory.memsw.limit_in_bytes")).trim(),
        "134217728"
    );
    assert_eq!(read(&dir("pids").join("pids.max")).trim(), "16");
    assert_eq!(read(&dir("cpu").join("cpu.shares")).trim(), "512");
    assert_eq!(read(&dir("cpuset").join("cpuset.cpus")).trim(), "0");
    let list = read(&dir("devices").join("devices.list"));
    assert!(
        list.contains("c 1:3 rwm") && !list.contains("a *:* rwm"),
        "{list}"
    );

    // Raising needs memsw first, lowering needs the limit first: the kernel
    // refuses memsw below the limit, so a wrong order fails here.
    r.memory = memory(256 << 20, 512 << 20);
    cg.apply(&r).unwrap();
    assert_eq!(
        read(&dir("memory").join("memory.memsw.limit_in_bytes")).trim(),
        "536870912"
    );
    r.memory = memory(32 << 20, 48 << 20);
    cg.apply(&r).unwrap();
    assert_eq!(
        read(&dir("memory").join("memory.limit_in_bytes")).trim(),
        "33554432"
    );
    assert_eq!(
        read(&dir("memory").join("memory.memsw.limit_in_bytes")).trim(),
        "50331648"
    );
    // The kernel clamps shares to [2, 262144]; the clamp is reported.
    let clamp = Resources {
        cpu: Some(Cpu {
            shares: Some(1),
            ..Default::default()
        }),
        ..r.clone()
    };
    let err = cg.apply(&clamp).unwrap_err().to_string();
    assert_eq!(
        err,
        "linux.resources.cpu.shares: the minimum allowed cpu-shares is 2"
    );

    let counter = SharedCounter::new();
    let pid = spawn_spinner(&counter);
    g.children.push(pid);
    cg.add_process(pid).unwrap();
    let membership = read(Path::new(&format!("/proc/{pid}/cgroup")));
    for h in hs.iter().filter(|h| h.fs_type == CgroupFsType::Cgroup) {
        assert!(
            membership.contains(&format!(":{}:{path}\n", h.options)),
            "{membership}"
        );
    }
    assert!(
        membership.contains(&format!("0::{path}\n")),
        "hybrid cgroup2 not joined: {membership}"
    );
    assert_eq!(cg.pids().unwrap(), vec![pid]);

    cg.freeze().unwrap();
    assert!(cg.is_frozen().unwrap());
    assert_eq!(read(&dir("freezer").join("freezer.state")).trim(), "FROZEN");
    let before = counter.get();
    sleep(Duration::from_millis(100));
    assert_eq!(counter.get(), before, "frozen child kept running");
    cg.thaw().unwrap();
    assert!(!cg.is_frozen().unwrap());
    sleep(Duration::from_millis(100));
    assert!(counter.get() > before, "thawed child does not run");

    let s = cg.stats().unwrap();
    assert_eq!(s.pids.current, 1);
    assert_eq!(s.pids.limit, 16);
    assert!(s.cpu.usage.total > 0);
    assert_eq!(s.cpu.usage.percpu.len(), s.cpu.usage.percpu_user.len());
    assert_eq!(s.memory.usage.limit, 32 << 20);
    assert_eq!(s.memory.swap.limit, 48 << 20);
    assert!(s.memory.raw.contains_key("rss"));
    assert_eq!(s.memory.oom_kill, Some(0));
    assert_eq!(s.cpuset.cpus, vec![0]);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["pids"]["limit"], 16);

    // SAFETY: `pid` is our unreaped child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    g.reap(pid);
    cg.destroy().unwrap();
    for h in &hs {
        assert!(!h.dir.exists(), "{} left behind", h.dir.display());
    }
    assert!(!cg.exists());
    cg.destroy().unwrap();
}

fn child_eats_memory() -> i32 {
    const SIZE: usize = 256 << 20;
    // SAFETY: a private anonymous mapping, touched page by page.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return 3;
        }
        let bytes = p.cast::<u8>();
        for off in (0..SIZE).step_by(4096) {
            std::ptr::write_volatile(bytes.add(off), 1);
        }
    }
    0
}

#[test]
fn host_v1_oom_eventfd_fires_when_the_oom_killer_kills() {
    let Some(root) = host_root() else { return };
    if root.is_v2() {
        eprintln!("skipped: host has no cgroup v1");
        return;
    }
    let path = format!("/berth-test-{}-oom", std::process::id());
    let cg = Cgroup::resolve_in(&root, Some(&path), "unused").unwrap();
    let mut g = Guard::new(&cg);
    cg.create().unwrap();
    cg.apply(&Resources {
        devices: deny_all(),
        memory: memory(16 << 20, 16 << 20),
        ..Default::default()
    })
    .unwrap();
    let efd = cg.oom_eventfd().unwrap();
    assert_eq!(cg.oom_kill_count().unwrap(), 0);

    let (pid, gate) = spawn_gated(child_eats_memory);
    g.children.push(pid);
    cg.add_process(pid).unwrap();
    release(gate);
    let status = g.reap(pid);
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        "status {status:#x}"
    );

    let mut pfd = libc::pollfd {
        fd: efd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, 5000) };
    assert_eq!(n, 1, "OOM eventfd never became readable");
    let mut buf = [0u8; 4096];
    // SAFETY: reads into a local buffer of the given size.
    let got = unsafe { libc::read(efd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(got, 8);
    assert!(u64::from_ne_bytes(buf[..8].try_into().unwrap()) >= 1);
    assert!(cg.oom_kill_count().unwrap() >= 1);
    drop(efd);
    cg.destroy().unwrap();
}
