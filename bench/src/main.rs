//! berth-bench: runs berth side by side with its peers in one process,
//! interleaved, and prints medians and ratios as Markdown (the tables in
//! docs/benchmarks.md come from here).
//!
//!   berth-bench runtime [--runs N]            berth-runc vs crun vs runc
//!   berth-bench shim [--runs N] [--idle N]    berth shim vs containerd's runc shim (runc, crun)
//!
//! Needs root, the release binaries (`cargo build --release`) and the
//! packages from scripts/install-deps.sh. Everything runs in a private
//! mount namespace without the cgroup2 mount so crun 1.8.1 works here.

mod measure;
mod runtime;
mod shim;

use std::process::ExitCode;

fn flag(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("");
    if !matches!(what, "runtime" | "shim") {
        eprintln!("usage: berth-bench runtime [--runs N] | shim [--runs N] [--idle N]");
        return ExitCode::from(2);
    }
    if let Err(e) = measure::private_v1_mount_namespace() {
        eprintln!("berth-bench: private mount namespace: {e} (run as root)");
        return ExitCode::from(1);
    }
    let runs = flag(&args, "--runs", 30);
    let result = match what {
        "runtime" => {
            let berth = berth_integration::release_binary("berth-runc");
            runtime::bench(&berth, runs).map(|(s, names)| runtime::report(&s, &names, runs))
        }
        _ => {
            let idle = flag(&args, "--idle", 20);
            shim::check_tools().and_then(|_| {
                berth_integration::release_binary("containerd-shim-berth-v2");
                shim::bench(runs, idle).map(|(s, names)| shim::report(&s, &names, runs, idle))
            })
        }
    };
    match result {
        Ok(table) => {
            println!("{table}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("berth-bench: {e}");
            ExitCode::from(1)
        }
    }
}
