//! The root file system: pivot_root (and --no-pivot) confine the process,
//! root.readonly, and rootfsPropagation checked from inside the way
//! runtime-tools does.

use berth_tests::runtime::{CreateOptions, Io, Kind};

use crate::support::{mount_line, mount_options, strings, Ctx, TestResult};
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
        Case::new("rootfs::masked_paths_hide_content", masked_paths),
        Case::new("rootfs::readonly_paths_refuse_writes", readonly_paths),
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

fn masked_paths(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    std::fs::create_dir(bundle.host_path("/masked-dir"))?;
    std::fs::write(bundle.host_path("/masked-dir/secret"), "secret")?;
    std::fs::write(bundle.host_path("/masked-file"), "secret")?;
    // Paths under a masked directory, and missing ones, are skipped.
    bundle.linux().masked_paths = strings(&[
        "/masked-dir",
        "/masked-file",
        "/masked-dir/secret",
        "/proc/timer_list",
        "/no-such-path",
    ]);
    let lines = ctx.probe(
        &mut bundle,
        &[
            "ls",
            "/masked-dir",
            "+",
            "read",
            "/masked-file",
            "+",
            "read",
            "/proc/timer_list",
            "+",
            "write",
            "/masked-dir/new",
            "+",
            "stat",
            "/masked-file",
        ],
    )?;
    ensure!(
        lines[0]["entries"] == serde_json::json!([]),
        "masked directory lists {}",
        lines[0]
    );
    ensure!(
        lines[1]["errno"] == 0 && lines[1]["data"] == "",
        "masked file reads {}",
        lines[1]
    );
    ensure!(
        lines[2]["data"] == "",
        "masked /proc/timer_list reads {}",
        lines[2]
    );
    ensure!(
        lines[3]["errno"] == libc::EROFS,
        "a masked directory is writable: {}",
        lines[3]
    );
    ensure!(
        lines[4]["type"] == "c" && lines[4]["major"] == 1 && lines[4]["minor"] == 3,
        "a masked file is not /dev/null: {}",
        lines[4]
    );
    Ok(())
}

fn readonly_paths(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.set_readonly(false);
    std::fs::create_dir(bundle.host_path("/ro-dir"))?;
    std::fs::write(bundle.host_path("/ro-file"), "data")?;
    bundle.linux().readonly_paths = strings(&["/ro-dir", "/ro-file", "/proc/sys", "/no-such-path"]);
    let lines = ctx.probe(
        &mut bundle,
        &[
            "write",
            "/ro-dir/new",
            "+",
            "write",
            "/ro-file",
            "+",
            "write",
            "/proc/sys/kernel/domainname",
            "+",
            "read",
            "/ro-file",
            "+",
            "write",
            "/rw-file",
        ],
    )?;
    ensure!(
        lines[0]["errno"] == libc::EROFS,
        "read-only directory: {}",
        lines[0]
    );
    ensure!(
        lines[1]["errno"] == libc::EROFS,
        "read-only file: {}",
        lines[1]
    );
    ensure!(
        lines[2]["errno"] == libc::EROFS,
        "read-only /proc/sys: {}",
        lines[2]
    );
    ensure!(
        lines[3]["data"] == "data",
        "a read-only file must stay readable: {}",
        lines[3]
    );
    ensure!(
        lines[4]["errno"] == 0,
        "the rest of the root must stay writable: {}",
        lines[4]
    );
    Ok(())
}
