//! containerd-shim-berth-v2 under an unmodified containerd 1.6, driven by
//! stock `ctr`. Every scenario runs against our shim and against the stock
//! runc shim (io.containerd.runc.v2) in the same test run.
mod basic;
mod helpers;
mod operations;
mod robustness;

use std::sync::Arc;

use berth_integration::*;
use libtest_mimic::{Arguments, Failed, Trial};

use basic::*;
use operations::*;
use robustness::*;

pub(crate) struct Ctx {
    pub(crate) ctd: Containerd,
}

type Test = fn(&Ctx, &str, &str) -> Result<(), Failed>;

const RUNTIMES: [(&str, &str); 2] = [
    ("berth", "io.containerd.berth.v2"),
    ("runc", "io.containerd.runc.v2"),
];

fn main() {
    let args = Arguments::from_args();
    let ctx = Arc::new(Ctx {
        ctd: Containerd::start().expect("start containerd"),
    });
    let tests: &[(&str, Test)] = &[
        ("run_output_exit_code_env_cwd", run_output_env_cwd),
        (
            "default_seccomp_profile_loads_and_blocks",
            default_seccomp_profile,
        ),
        ("namespaces_are_isolated", namespaces_isolated),
        ("piped_stdin_reaches_the_container", piped_stdin),
        ("tty_run_has_a_terminal_of_the_client_size", tty_run),
        ("read_only_rootfs_refuses_writes", read_only_rootfs),
        (
            "detached_run_exec_ps_pause_resume_metrics",
            detached_exec_pause_metrics,
        ),
        ("sigterm_and_sigkill_exit_statuses", signals),
        ("memory_limit_is_applied_in_the_cgroup", memory_limit),
        ("oom_kill_reports_137_and_the_oom_event", oom_kill),
        ("events_of_a_full_lifecycle_in_order", lifecycle_events),
        (
            "checkpoint_and_live_restore_resume_the_process",
            checkpoint_restore,
        ),
        ("twenty_containers_in_parallel", twenty_in_parallel),
        ("killed_shim_is_cleaned_up_by_containerd", killed_shim),
    ];
    let mut trials = Vec::new();
    for (rt_name, runtime) in RUNTIMES {
        for (name, f) in tests {
            let (ctx, f, name) = (ctx.clone(), *f, *name);
            trials.push(Trial::test(format!("{rt_name}::{name}"), move || {
                let ns = unique_ns(name);
                let r = f(&ctx, &ns, runtime);
                let _ = ctx.ctd.ctr(&ns, &["images", "rm", IMAGE]);
                remove_namespace_cgroups(&ns);
                r
            }));
        }
        trials.push(Trial::test(
            format!("{rt_name}::containerd_killed_and_restarted_while_tasks_run"),
            move || containerd_restart(runtime),
        ));
    }
    trials.push(Trial::test("berth::shim_survives_bad_ttrpc_input", {
        let ctx = ctx.clone();
        move || bad_input(&ctx)
    }));
    let conclusion = libtest_mimic::run(&args, trials);
    drop(ctx);
    conclusion.exit();
}
