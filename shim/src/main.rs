//! containerd-shim-berth-v2: containerd's runtime-v2 Task API on one
//! thread, with the berth executor linked in (no runtime binary is exec'd).
//! `start` and `delete` follow containerd 1.6's shim CLI contract.

mod address;
mod args;
mod delete;
mod io;
mod lifecycle;
mod memory;
mod metrics;
mod process;
mod server;
mod service;
mod start;
mod task;

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match args::parse(std::env::args()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if args.version {
        println!(
            "containerd-shim-berth-v2:\n  Version: {}\n  Runtime: berth (in-process executor)",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    match args.action {
        args::Action::Start => match start::run(&args) {
            Ok(addr) => {
                print!("{addr}");
                let _ = std::io::stdout().flush();
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("containerd-shim-berth-v2 start: {e}");
                ExitCode::from(1)
            }
        },
        args::Action::Delete => match delete::run(&args) {
            Ok(bytes) => {
                let _ = std::io::stdout().write_all(&bytes);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("containerd-shim-berth-v2 delete: {e}");
                ExitCode::from(1)
            }
        },
        args::Action::Serve => {
            // Only reachable by hand: `start` forks the server itself.
            if args.socket.is_empty() {
                eprintln!("containerd-shim-berth-v2: run by containerd with `start` or `delete`");
                return ExitCode::from(2);
            }
            let _ = berth_executor::logging::Logger::install(None, false, args.debug);
            let path = address::socket_path(&args.socket).to_string();
            let listener = match std::os::unix::net::UnixListener::bind(&path) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("listen on {path}: {e}");
                    return ExitCode::from(1);
                }
            };
            let _ = server::set_subreaper();
            let cfg = server::ServerConfig {
                namespace: args.namespace.clone(),
                socket_path: path.into(),
                ttrpc_address: std::env::var("TTRPC_ADDRESS").ok(),
                runtime_root: start::runtime_root(&args.namespace),
            };
            match server::serve(cfg, listener.into()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("serve: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
