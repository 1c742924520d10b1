//! The OCI conformance suite: one binary, run against any runc-compatible
//! runtime (`BERTH_RUNTIME=runc|crun|berth-runc|PATH`). Modelled on
//! opencontainers/runtime-tools' validation tests; checks from inside use
//! the probe, checks from outside read the host's /proc and /sys/fs/cgroup.
//!
//! A case can be skipped for one runtime with a reason (a known peer bug or
//! an environmental limit); BERTH_CONFORMANCE_RUN_SKIPPED=1 runs it anyway.

mod bad_input;
mod cgroups;
mod cli;
mod devices;
mod exec;
mod hooks;
mod idmap;
mod keyring;
mod lifecycle;
mod mounts;
mod namespaces;
mod process;
mod rootfs;
mod seccomp;
mod support;

use berth_tests::runtime::{Kind, Runtime};
use libtest_mimic::{Arguments, Completion, Failed, Trial};

use support::{Ctx, TestResult, SKIP_PREFIX};

/// One conformance test.
pub struct Case {
    pub name: &'static str,
    pub run: fn(&Ctx) -> TestResult,
    /// Runtimes this case is skipped on, with the reason.
    pub skip: &'static [(Kind, &'static str)],
}

impl Case {
    pub const fn new(name: &'static str, run: fn(&Ctx) -> TestResult) -> Case {
        Case {
            name,
            run,
            skip: &[],
        }
    }

    pub const fn skip(self, skip: &'static [(Kind, &'static str)]) -> Case {
        Case { skip, ..self }
    }
}

fn main() -> std::process::ExitCode {
    let mut args = Arguments::from_args();
    // Tests mostly wait on runtimes and the kernel, not the CPU.
    if args.test_threads.is_none() {
        args.test_threads = Some(6);
    }
    let runtime = match Runtime::from_env() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("conformance: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    eprintln!(
        "conformance: runtime {} ({})",
        runtime.name,
        runtime.path.display()
    );
    let run_skipped = std::env::var_os("BERTH_CONFORMANCE_RUN_SKIPPED").is_some();
    let cases = [
        lifecycle::cases(),
        namespaces::cases(),
        rootfs::cases(),
        mounts::cases(),
        devices::cases(),
        process::cases(),
        seccomp::cases(),
        cgroups::cases(),
        hooks::cases(),
        idmap::cases(),
        keyring::cases(),
        exec::cases(),
        cli::cases(),
        bad_input::cases(),
    ]
    .into_iter()
    .flatten();
    let kind = runtime.kind;
    let trials: Vec<Trial> = cases
        .map(|case| {
            let reason = case
                .skip
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, r)| format!("{}: {r}", runtime.name));
            let Case { name, run, .. } = case;
            Trial::ignorable_test(name, move || {
                if let (Some(reason), false) = (reason, run_skipped) {
                    return Ok(Completion::ignored_with(reason));
                }
                let ctx = Ctx::new(name).map_err(Failed::from)?;
                match run(&ctx) {
                    Ok(()) => Ok(Completion::Completed),
                    Err(e) => match e.message().and_then(|m| m.strip_prefix(SKIP_PREFIX)) {
                        Some(reason) => Ok(Completion::ignored_with(reason)),
                        None => Err(e),
                    },
                }
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}
