//! berth-probe: run inside a test container, it prints JSON describing what
//! the process sees (no arguments), or the result of active checks.
//!
//! Commands, chained with "+" (one JSON object per line):
//!   report | stat PATH | lstat PATH | write PATH [DATA] | read PATH | ls DIR
//!   sysctl KEY | fds | syscall NAME [ARG...] | syscall32 getpid | propagation
//!   sleep SECS | exit CODE

mod active;
mod json;
mod report;

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = std::io::stdout().lock();
    if args.is_empty() {
        let _ = writeln!(out, "{}", report::report());
        return;
    }
    for command in args.split(|a| a == "+") {
        let Some((name, rest)) = command.split_first() else {
            continue;
        };
        let arg = |i: usize| rest.get(i).map(String::as_str).unwrap_or("");
        let line = match name.as_str() {
            "report" => report::report(),
            "stat" => active::stat(arg(0), true),
            "lstat" => active::stat(arg(0), false),
            "write" => active::write(arg(0), rest.get(1).map(String::as_str).unwrap_or("x")),
            "read" => active::read(arg(0)),
            "ls" => active::ls(arg(0)),
            "sysctl" => active::sysctl(arg(0)),
            "fds" => active::fds(),
            "syscall" => active::syscall(arg(0), rest.get(1..).unwrap_or(&[])),
            "syscall32" => active::syscall32(arg(0)),
            "propagation" => active::propagation(),
            "sleep" => {
                let secs = arg(0).parse::<f64>().unwrap_or(3600.0);
                std::thread::sleep(std::time::Duration::from_secs_f64(secs));
                continue;
            }
            "exit" => {
                let _ = out.flush();
                std::process::exit(arg(0).parse().unwrap_or(0));
            }
            other => {
                eprintln!("berth-probe: unknown command {other:?}");
                std::process::exit(2);
            }
        };
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
