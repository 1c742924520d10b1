//! berth-maxrss OUT PROGRAM [ARGS...]: runs PROGRAM and writes its peak RSS
//! in KiB (ru_maxrss of it and the descendants it waited for) to OUT; exits
//! with PROGRAM's status.
//!
//! Why a separate, tiny process: Linux keeps the largest RSS a process had
//! across execve, and a freshly forked (or vforked) child starts with its
//! parent's pages. Spawned straight from berth-bench, every runtime would
//! report at least berth-bench's own RSS (about 3 MiB). The fork made here
//! starts from this small program instead, so the floor is a few hundred KiB.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

fn main() {
    let args: Vec<CString> = std::env::args_os()
        .skip(1)
        .map(|a| CString::new(a.as_bytes()).expect("argument with a NUL byte"))
        .collect();
    if args.len() < 2 {
        eprintln!("usage: berth-maxrss OUT PROGRAM [ARGS...]");
        std::process::exit(2);
    }
    let mut argv: Vec<*const libc::c_char> = args[1..].iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: this process is single-threaded; the child only calls execvp
    // and _exit, both async-signal-safe, on data prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: argv is a NULL-terminated array of valid C strings.
        unsafe {
            libc::execvp(argv[0], argv.as_ptr());
            libc::_exit(127);
        }
    }
    if pid < 0 {
        eprintln!("berth-maxrss: fork: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out buffer.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child with valid out pointers.
    if unsafe { libc::wait4(pid, &mut status, 0, &mut ru) } < 0 {
        eprintln!("berth-maxrss: wait4: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
    let out = std::path::Path::new(std::ffi::OsStr::from_bytes(args[0].as_bytes()));
    if let Err(e) = std::fs::write(out, ru.ru_maxrss.to_string()) {
        eprintln!("berth-maxrss: write {}: {e}", out.display());
        std::process::exit(1);
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    std::process::exit(code);
}
