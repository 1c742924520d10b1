//! The default report: one JSON object describing what the process sees.

use std::ffi::CStr;
use std::fs;

use crate::json::Json;

const RLIMITS: [(&str, libc::__rlimit_resource_t); 16] = [
    ("RLIMIT_CPU", libc::RLIMIT_CPU),
    ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
    ("RLIMIT_DATA", libc::RLIMIT_DATA),
    ("RLIMIT_STACK", libc::RLIMIT_STACK),
    ("RLIMIT_CORE", libc::RLIMIT_CORE),
    ("RLIMIT_RSS", libc::RLIMIT_RSS),
    ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
    ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
    ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
    ("RLIMIT_AS", libc::RLIMIT_AS),
    ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
    ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
    ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
    ("RLIMIT_NICE", libc::RLIMIT_NICE),
    ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
    ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
];

const NAMESPACES: [&str; 9] = [
    "cgroup",
    "ipc",
    "mnt",
    "net",
    "pid",
    "pid_for_children",
    "time",
    "user",
    "uts",
];

pub fn report() -> String {
    let mut j = Json::new();
    j.begin_object();
    let args: Vec<String> = std::env::args().collect();
    j.field_strs("args", &args);
    // SAFETY: these id and pid getters cannot fail.
    unsafe {
        j.field_num("pid", libc::getpid())
            .field_num("ppid", libc::getppid())
            .field_num("uid", libc::getuid())
            .field_num("euid", libc::geteuid())
            .field_num("gid", libc::getgid())
            .field_num("egid", libc::getegid())
            .field_num("sid", libc::getsid(0))
            .field_num("pgid", libc::getpgid(0));
    }
    j.key("groups").begin_array();
    for g in groups() {
        j.num(g);
    }
    j.end_array();
    match std::env::current_dir() {
        Ok(cwd) => j.field_str("cwd", &cwd.to_string_lossy()),
        Err(e) => j
            .key("cwd")
            .null()
            .field_num("cwd_errno", e.raw_os_error().unwrap_or(0)),
    };
    let env: Vec<String> = std::env::vars_os()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    j.field_strs("env", &env);
    uname(&mut j);
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    j.field_num(
        "umask",
        u32::from_str_radix(&field("Umask:"), 8).unwrap_or(0),
    );
    j.key("caps").begin_object();
    for (key, name) in [
        ("inheritable", "CapInh:"),
        ("permitted", "CapPrm:"),
        ("effective", "CapEff:"),
        ("bounding", "CapBnd:"),
        ("ambient", "CapAmb:"),
    ] {
        j.field_str(key, &field(name));
    }
    j.end_object();
    j.field_num(
        "no_new_privs",
        field("NoNewPrivs:").parse::<u32>().unwrap_or(9),
    );
    j.field_num("seccomp", field("Seccomp:").parse::<u32>().unwrap_or(9));
    let oom = fs::read_to_string("/proc/self/oom_score_adj").unwrap_or_default();
    j.field_num("oom_score_adj", oom.trim().parse::<i32>().unwrap_or(-9999));
    j.key("rlimits").begin_object();
    for (name, res) in RLIMITS {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into rl.
        if unsafe { libc::getrlimit(res, &mut rl) } == 0 {
            j.key(name)
                .begin_array()
                .num(rl.rlim_cur)
                .num(rl.rlim_max)
                .end_array();
        }
    }
    j.end_object();
    j.key("ns").begin_object();
    for ns in NAMESPACES {
        if let Ok(link) = fs::read_link(format!("/proc/self/ns/{ns}")) {
            j.field_str(ns, &link.to_string_lossy());
        }
    }
    j.end_object();
    for (key, file) in [
        ("mountinfo", "/proc/self/mountinfo"),
        ("uid_map", "/proc/self/uid_map"),
        ("gid_map", "/proc/self/gid_map"),
        ("cgroup", "/proc/self/cgroup"),
    ] {
        let text = fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        j.field_strs(key, &lines);
    }
    session_keyring(&mut j);
    sched(&mut j);
    // SAFETY: 0xffffffff only queries the persona.
    j.field_num("personality", unsafe { libc::personality(0xffff_ffff) });
    j.key("isatty").begin_array();
    for fd in 0..3 {
        // SAFETY: isatty on a small integer is always safe.
        j.bool(unsafe { libc::isatty(fd) } == 1);
    }
    j.end_array();
    j.end_object();
    j.finish()
}

fn groups() -> Vec<libc::gid_t> {
    let mut buf = vec![0 as libc::gid_t; 256];
    // SAFETY: buf has room for 256 gids.
    let n = unsafe { libc::getgroups(256, buf.as_mut_ptr()) };
    buf.truncate(n.max(0) as usize);
    buf
}

fn uname(j: &mut Json) {
    // SAFETY: utsname is plain old data, filled by uname(2).
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: u is a valid utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return;
    }
    let text = |field: &[libc::c_char]| {
        // SAFETY: uname NUL-terminates every field.
        unsafe { CStr::from_ptr(field.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    j.field_str("hostname", &text(&u.nodename));
    j.field_str("domainname", &text(&u.domainname));
}

/// The name of the session keyring ("" if keyrings are unavailable).
fn session_keyring(j: &mut Json) {
    const KEYCTL_DESCRIBE: libc::c_long = 6;
    const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
    let mut buf = [0u8; 512];
    // SAFETY: buf is valid for its length.
    let n = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_DESCRIBE,
            KEY_SPEC_SESSION_KEYRING,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    let desc = if n > 0 && (n as usize) <= buf.len() {
        String::from_utf8_lossy(&buf[..n as usize - 1]).into_owned()
    } else {
        String::new()
    };
    // "type;uid;gid;perm;name": the name may itself contain ';'.
    let name = desc.splitn(5, ';').nth(4).unwrap_or("").to_string();
    j.field_str("session_keyring", &name);
}

/// Scheduling policy (with SCHED_RESET_ON_FORK as 0x40000000), nice value
/// and real-time priority.
fn sched(j: &mut Json) {
    // SAFETY: queries of the calling process.
    let policy = unsafe { libc::sched_getscheduler(0) };
    // SAFETY: as above; getpriority can return -1 legitimately, fine here.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: param is a valid out buffer.
    unsafe { libc::sched_getparam(0, &mut param) };
    j.key("sched")
        .begin_object()
        .field_num("policy", policy)
        .field_num("nice", nice)
        .field_num("priority", param.sched_priority)
        .end_object();
}
