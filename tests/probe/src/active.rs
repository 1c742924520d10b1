//! Active checks: each one does something and prints one JSON object.

use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

use crate::json::Json;

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `stat PATH` (follow symlinks) or `lstat PATH`.
pub fn stat(path: &str, follow: bool) -> String {
    let mut j = Json::new();
    j.begin_object().field_str("path", path);
    let meta = if follow {
        fs::metadata(path)
    } else {
        fs::symlink_metadata(path)
    };
    match meta {
        Err(e) => {
            j.field_num("errno", errno_of(&e));
        }
        Ok(m) => {
            let t = m.file_type();
            let kind = if t.is_symlink() {
                "l"
            } else if t.is_dir() {
                "d"
            } else if t.is_char_device() {
                "c"
            } else if t.is_block_device() {
                "b"
            } else if t.is_fifo() {
                "p"
            } else if t.is_socket() {
                "s"
            } else {
                "f"
            };
            j.field_num("errno", 0)
                .field_str("type", kind)
                .field_num("mode", m.mode() & 0o7777)
                .field_num("major", libc::major(m.rdev()))
                .field_num("minor", libc::minor(m.rdev()))
                .field_num("uid", m.uid())
                .field_num("gid", m.gid())
                .field_num("size", m.size());
            if t.is_symlink() {
                let target = fs::read_link(path).unwrap_or_default();
                j.field_str("target", &target.to_string_lossy());
            }
        }
    }
    j.end_object();
    j.finish()
}

/// `write PATH [DATA]`: create or truncate PATH and write DATA ("x").
pub fn write(path: &str, data: &str) -> String {
    let result = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)
        .and_then(|mut f| f.write_all(data.as_bytes()));
    let mut j = Json::new();
    j.begin_object()
        .field_str("path", path)
        .field_num("errno", result.err().map(|e| errno_of(&e)).unwrap_or(0))
        .end_object();
    j.finish()
}

/// `read PATH`: up to 64 KiB of PATH.
pub fn read(path: &str) -> String {
    let mut j = Json::new();
    j.begin_object().field_str("path", path);
    let mut data = Vec::new();
    match fs::File::open(path).and_then(|f| f.take(65536).read_to_end(&mut data)) {
        Ok(_) => j
            .field_num("errno", 0)
            .field_str("data", &String::from_utf8_lossy(&data)),
        Err(e) => j.field_num("errno", errno_of(&e)),
    };
    j.end_object();
    j.finish()
}

/// `ls DIR`: sorted entry names.
pub fn ls(path: &str) -> String {
    let mut j = Json::new();
    j.begin_object().field_str("path", path);
    match fs::read_dir(path) {
        Ok(dir) => {
            let mut names: Vec<String> = dir
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            j.field_num("errno", 0).field_strs("entries", &names);
        }
        Err(e) => {
            j.field_num("errno", errno_of(&e));
        }
    }
    j.end_object();
    j.finish()
}

/// `sysctl KEY`: the value under /proc/sys.
pub fn sysctl(key: &str) -> String {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let mut j = Json::new();
    j.begin_object().field_str("key", key);
    match fs::read_to_string(&path) {
        Ok(v) => j.field_num("errno", 0).field_str("value", v.trim()),
        Err(e) => j.field_num("errno", errno_of(&e)),
    };
    j.end_object();
    j.finish()
}

/// `fds`: the open fds and what they point at.
pub fn fds() -> String {
    let mut list = Vec::new();
    // SAFETY: opendir/readdir/closedir on a fixed path; dirfd is skipped.
    unsafe {
        let dir = libc::opendir(c"/proc/self/fd".as_ptr());
        if !dir.is_null() {
            let own = libc::dirfd(dir);
            loop {
                let ent = libc::readdir(dir);
                if ent.is_null() {
                    break;
                }
                let name = std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()).to_string_lossy();
                if let Ok(fd) = name.parse::<i32>() {
                    if fd != own {
                        list.push(fd);
                    }
                }
            }
            libc::closedir(dir);
        }
    }
    list.sort();
    let mut j = Json::new();
    j.begin_object().key("fds").begin_array();
    for fd in list {
        let target = fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default();
        j.begin_object()
            .field_num("fd", fd)
            .field_str("target", &target.to_string_lossy())
            .end_object();
    }
    j.end_array().end_object();
    j.finish()
}

const SYSCALLS: [(&str, libc::c_long); 17] = [
    ("getcwd", libc::SYS_getcwd),
    ("unshare", libc::SYS_unshare),
    ("personality", libc::SYS_personality),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("chroot", libc::SYS_chroot),
    ("sethostname", libc::SYS_sethostname),
    ("getpid", libc::SYS_getpid),
    ("getppid", libc::SYS_getppid),
    ("getpgid", libc::SYS_getpgid),
    ("getpriority", libc::SYS_getpriority),
    ("socket", libc::SYS_socket),
    ("keyctl", libc::SYS_keyctl),
    ("setns", libc::SYS_setns),
    ("acct", libc::SYS_acct),
    ("mkdirat", libc::SYS_mkdirat),
    ("uname", libc::SYS_uname),
];

/// `syscall NAME [ARG...]`: a raw syscall; ARGs are integers (decimal or
/// 0x hex), or strings passed by pointer when they start with "/" or "s:".
pub fn syscall(name: &str, args: &[String]) -> String {
    let mut j = Json::new();
    j.begin_object().field_str("syscall", name);
    let Some(nr) = SYSCALLS.iter().find(|(n, _)| *n == name).map(|(_, nr)| *nr) else {
        j.field_str("error", "unknown syscall").end_object();
        return j.finish();
    };
    let mut strings: Vec<CString> = Vec::new();
    let mut buf = vec![0u8; 4096];
    let mut a = [0 as libc::c_long; 6];
    for (i, arg) in args.iter().take(6).enumerate() {
        a[i] = if let Some(s) = arg
            .strip_prefix("s:")
            .or(arg.starts_with('/').then_some(arg))
        {
            strings.push(CString::new(s).unwrap_or_default());
            strings[strings.len() - 1].as_ptr() as libc::c_long
        } else if arg == "buf" {
            buf.as_mut_ptr() as libc::c_long
        } else {
            parse_int(arg)
        };
    }
    if (name == "getcwd" || name == "uname") && args.is_empty() {
        a[0] = buf.as_mut_ptr() as libc::c_long;
        a[1] = buf.len() as libc::c_long;
    }
    // SAFETY: the syscalls in the table take integers or pointers to the
    // live buffers above; none of them unmaps memory or changes the stack.
    let ret = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    let err = if ret < 0 { errno() } else { 0 };
    j.field_num("ret", ret).field_num("errno", err).end_object();
    j.finish()
}

/// `syscall32 getpid`: the i386 getpid through `int 0x80`, to test the
/// seccomp filter's architecture list.
pub fn syscall32(name: &str) -> String {
    let mut j = Json::new();
    j.begin_object().field_str("syscall32", name);
    if name != "getpid" {
        j.field_str("error", "only getpid").end_object();
        return j.finish();
    }
    let ret: i32;
    // SAFETY: i386 getpid (20) takes no arguments; the kernel may clobber
    // r8-r11 on the int 0x80 path, so they are declared clobbered.
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inlateout("eax") 20i32 => ret,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            options(nostack)
        );
    }
    let (ret, err) = if ret < 0 { (-1, -ret) } else { (ret, 0) };
    j.field_num("ret", ret).field_num("errno", err).end_object();
    j.finish()
}

fn parse_int(s: &str) -> libc::c_long {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let v = match digits.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).unwrap_or(0),
        None => digits.parse::<u64>().unwrap_or(0),
    } as libc::c_long;
    if neg {
        -v
    } else {
        v
    }
}

/// `propagation`: runtime-tools' rootfsPropagation check. Bind `/`
/// recursively onto a new directory, then bind-mount a directory under `/`
/// and see whether it shows up in the copy.
pub fn propagation() -> String {
    let mut j = Json::new();
    j.begin_object();
    let pid = std::process::id();
    let target = format!("/berth-prop-target-{pid}");
    let (mnt, test) = (
        format!("/berth-prop-mnt-{pid}"),
        format!("/berth-prop-test-{pid}"),
    );
    let setup = fs::create_dir(&target)
        .and_then(|_| fs::create_dir(&mnt))
        .and_then(|_| fs::create_dir(&test))
        .and_then(|_| fs::write(format!("{test}/file"), b"x"));
    if let Err(e) = setup {
        j.field_num("setup_errno", errno_of(&e)).end_object();
        return j.finish();
    }
    let rbind = mount_bind("/", &target, libc::MS_REC);
    j.field_num("rbind_errno", rbind);
    if rbind == 0 {
        j.field_num("bind_errno", mount_bind(&test, &mnt, 0));
        let exposed = fs::metadata(format!("{target}{mnt}/file")).is_ok();
        j.key("exposed").bool(exposed);
    }
    j.end_object();
    j.finish()
}

fn mount_bind(src: &str, dst: &str, extra: libc::c_ulong) -> i32 {
    let (s, d) = (
        CString::new(src).unwrap_or_default(),
        CString::new(dst).unwrap_or_default(),
    );
    // SAFETY: valid C strings; null fstype and data are allowed for binds.
    let r = unsafe {
        libc::mount(
            s.as_ptr(),
            d.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | extra,
            std::ptr::null(),
        )
    };
    if r == 0 {
        0
    } else {
        errno()
    }
}
