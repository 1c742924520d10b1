//! berth-runc: a runc-compatible command line over berth-executor, so
//! containerd's stock runc shim (and people used to runc) can drive it.

mod args;
mod commands;
mod foreground;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse_from(args::normalize(std::env::args_os().collect())) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let json = match cli.log_format.as_str() {
        "json" => true,
        "text" => false,
        other => {
            eprintln!("invalid --log-format {other:?}: expected text or json");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = berth_executor::logging::Logger::install(cli.log.as_deref(), json, cli.debug) {
        eprintln!(
            "open log file {}: {e}",
            cli.log
                .as_deref()
                .unwrap_or(std::path::Path::new(""))
                .display()
        );
        return ExitCode::from(1);
    }
    let log_to_file = cli.log.is_some();
    match commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // As runc: the error goes to the log (the runc shim reads the
            // last error line from there) and, if that is a file, to stderr.
            tracing::error!("{e}");
            if log_to_file {
                eprintln!("berth-runc: {e}");
            }
            ExitCode::from(1)
        }
    }
}
