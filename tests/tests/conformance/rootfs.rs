//! The root file system: pivot_root (and --no-pivot) confine the process,
//! root.readonly, and rootfsPropagation checked from inside the way
//! runtime-tools does.

use berth_tests::runtime::{CreateOptions, Io, Kind};

use crate::support::{mount_line, mount_options, Ctx, TestResult};
use crate::{ensure, Case};

const RUNC_1755: &str = "runc 1.1.5 applies rootfsPropagation before pivot_root and leaves / \
                         private, or fails the rootfs bind for unbindable (runc issue #1755)";

pub fn cases() -> Vec<Case> {
    vec![
        Case::new(
            "rootfs::pivot_root_hides_the_host",
            pivot_root_hides_the_host,
        ),
        Case::new("rootfs::no_pivot_still_confines", no_pivot_still_confines),
        Case::new("rootfs::readonly_root_refuses_writes", readonly_root),
        Case::new("rootfs::propagation_shared", |c| propagation(c, "shared"))
            .skip(&[(Kind::Runc, RUNC_1755)]),
        Case::new("rootfs::propagation_slave", |c| propagation(c, "slave")),
        Case::new("rootfs::propagation_private", |c| propagation(c, "private")),
        Case::new("rootfs::propagation_unbindable", |c| {
            propagation(c, "unbindable")
        })
        .skip(&[(Kind::Runc, RUNC_1755)]),
    ]
}

/// Checks that the container sees its rootfs and not the host's.
fn check_confined(ctx: &Ctx, opts: &CreateOptions) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let host_only = bundle.dir.display().to_string();
    bundle.set_args(&[
        "/berth-probe",
        "report",
        "+",
        "stat",
        "/berth-probe",
        "+",
        "stat",
        "/work",
        "+",
        "stat",
        &host_only,
    ]);
    let out = ctx.run_with(&bundle, opts, Io::default())?;
    let lines = crate::support::parse_lines(&out.stdout)?;
    ensure!(lines.len() == 4, "probe printed {lines:?}");
    ensure!(lines[0]["cwd"] == "/", "cwd: {}", lines[0]["cwd"]);
    ensure!(
        lines[1]["errno"] == 0,
        "the probe is not at / of the rootfs: {}",
        lines[1]
    );
    ensure!(
        lines[2]["errno"] == libc::ENOENT,
        "the host's /work is visible: {}",
        lines[2]
    );
    ensure!(
        lines[3]["errno"] == libc::ENOENT,
        "the bundle path is visible: {}",
        lines[3]
    );
    let root = mount_line(&lines[0], "/").ok_or("no mount at / in the container")?;
    ensure!(
        root.split(' ')
            .nth(3)
            .is_some_and(|r| r.ends_with("/rootfs")),
        "/ is not the bundle's rootfs: {root}"
    );
    Ok(())
}

fn pivot_root_hides_the_host(ctx: &Ctx) -> TestResult {
    check_confined(ctx, &CreateOptions::default())
}

fn no_pivot_still_confines(ctx: &Ctx) -> TestResult {
    check_confined(
        ctx,
        &CreateOptions {
            no_pivot: true,
            ..CreateOptions::default()
        },
    )
}

fn readonly_root(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.set_readonly(true);
    let lines = ctx.probe(&mut bundle, &["write", "/newfile", "+", "report"])?;
    ensure!(
        lines[0]["errno"] == libc::EROFS,
        "write to a read-only root: {}",
        lines[0]
    );
    let root = mount_line(&lines[1], "/").ok_or("no mount at /")?;
    ensure!(
        mount_options(root).contains(&"ro".to_string()),
        "/ is not mounted ro: {root}"
    );

    bundle.set_readonly(false);
    let lines = ctx.probe(&mut bundle, &["write", "/newfile"])?;
    ensure!(
        lines[0]["errno"] == 0,
        "write to a writable root: {}",
        lines[0]
    );
    ensure!(
        bundle.host_path("/newfile").is_file(),
        "the write did not reach the bundle's rootfs"
    );
    Ok(())
}

fn propagation(ctx: &Ctx, mode: &str) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.set_readonly(false);
    bundle.linux().rootfs_propagation = Some(mode.into());
    if let Some(caps) = bundle.process().capabilities.as_mut() {
        for set in [&mut caps.bounding, &mut caps.effective, &mut caps.permitted] {
            set.get_or_insert_with(Vec::new)
                .push("CAP_SYS_ADMIN".into());
        }
    }
    let lines = ctx.probe(&mut bundle, &["propagation"])?;
    let r = &lines[0];
    if mode == "unbindable" {
        ensure!(
            r["rbind_errno"] == libc::EINVAL,
            "rbind of an unbindable / must fail with EINVAL: {r}"
        );
        return Ok(());
    }
    ensure!(
        r["rbind_errno"] == 0 && r["bind_errno"] == 0,
        "mounts failed: {r}"
    );
    let want = mode == "shared";
    ensure!(
        r["exposed"] == want,
        "{mode}: a mount under / exposed in an rbind copy: {r}, expected {want}"
    );
    Ok(())
}
