//! Session keyrings: by default a container does not share the caller's
//! session keyring (runc names its new one `_ses.<id>`, crun `<id>`);
//! `--no-new-keyring` keeps the caller's; processes exec'd later join the
//! container's.

use berth_tests::runtime::{CreateOptions, Io, Kind};

use crate::exec::with_running;
use crate::support::{first_report, Ctx, TestResult};
use crate::{ensure, Case};

pub fn cases() -> Vec<Case> {
    vec![
        Case::new(
            "keyring::container_gets_its_own_session_keyring",
            own_keyring,
        ),
        Case::new("keyring::no_new_keyring_keeps_the_callers", no_new_keyring),
        Case::new("keyring::exec_joins_the_container_keyring", exec_joins).skip(&[(
            Kind::Crun,
            "crun 1.8.1 exec leaves the process in the caller's session keyring",
        )]),
    ]
}

/// The name of this (test) process's session keyring, which runtimes we
/// start inherit.
fn our_session_keyring() -> String {
    let mut buf = [0u8; 512];
    // SAFETY: KEYCTL_DESCRIBE (6) of KEY_SPEC_SESSION_KEYRING (-3) into buf.
    let n = unsafe { libc::syscall(libc::SYS_keyctl, 6, -3, buf.as_mut_ptr(), buf.len()) };
    if n <= 0 || n as usize > buf.len() {
        return String::new();
    }
    let desc = String::from_utf8_lossy(&buf[..n as usize - 1]).into_owned();
    desc.splitn(5, ';').nth(4).unwrap_or("").to_string()
}

fn own_keyring(ctx: &Ctx) -> TestResult {
    let ours = our_session_keyring();
    let mut bundle = ctx.bundle()?;
    let report = ctx.report(&mut bundle)?;
    let theirs = report["session_keyring"].as_str().unwrap_or("");
    ensure!(
        !theirs.is_empty() && theirs != ours,
        "the container shares the caller's session keyring {ours:?} (it has {theirs:?})"
    );
    if ctx.is_berth() {
        ensure!(
            theirs.starts_with("_ses.") && theirs.len() > 5,
            "berth-runc names the keyring as runc does (_ses.<id>): {theirs:?}"
        );
    }
    Ok(())
}

fn no_new_keyring(ctx: &Ctx) -> TestResult {
    let ours = our_session_keyring();
    let bundle = ctx.bundle()?;
    let opts = CreateOptions {
        no_new_keyring: true,
        ..Default::default()
    };
    let out = ctx.run_with(&bundle, &opts, Io::default())?;
    let report = first_report(&out.stdout, "the probe")?;
    ensure!(
        report["session_keyring"] == ours.as_str(),
        "with --no-new-keyring the container should keep {ours:?}, it has {}",
        report["session_keyring"]
    );
    Ok(())
}

fn exec_joins(ctx: &Ctx) -> TestResult {
    with_running(ctx, |_, id, _| {
        let none: [&str; 0] = [];
        let out = ctx
            .rt
            .exec(id, &none, &["/berth-probe"])?
            .ok("exec probe")?;
        let report = first_report(&out.stdout, "exec")?;
        let name = report["session_keyring"].as_str().unwrap_or("");
        ensure!(
            name.ends_with(id),
            "the exec'd process should be in the container's session keyring, it has {name:?}"
        );
        Ok(())
    })
}
