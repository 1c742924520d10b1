//! Mounts: every option class (ro/nosuid/nodev/noexec/atime), bind and rbind,
//! propagation flags, recursive `rro`, tmpfs data options and the cgroup mount.

use std::ffi::CString;
use std::fs;
use std::path::Path;

use berth_tests::leaks;
use berth_tests::runtime::Kind;
use berth_tests::Bundle;
use libtest_mimic::Failed;

use crate::support::{bind, mount, mount_line, mount_options, mount_tags, Ctx, TestResult};
use crate::{ensure, Case};

pub fn cases() -> Vec<Case> {
    vec![
        Case::new("mounts::option_flags_apply", option_flags),
        Case::new("mounts::bind_and_rbind", bind_and_rbind),
        Case::new("mounts::propagation_flags", propagation_flags).skip(&[(
            Kind::Crun,
            "crun 1.8.1 drops the propagation options of bind mounts: shared, slave and \
             unbindable binds all end up private",
        )]),
        Case::new("mounts::recursive_readonly_rro", recursive_readonly),
        Case::new("mounts::tmpfs_size_and_mode", tmpfs_data),
        Case::new("mounts::cgroup_mount_shows_hierarchies", cgroup_mount),
        Case::new(
            "mounts::destinations_never_land_outside_the_rootfs",
            contained,
        ),
    ]
}

/// Mounts a tmpfs on the host at `dir` (created), with a file `name` in it.
fn host_tmpfs(dir: &Path, name: &str, flags: libc::c_ulong) -> Result<(), Failed> {
    fs::create_dir_all(dir)?;
    let target = CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: valid C strings; the bundle's Drop unmounts it.
    let r = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            flags,
            std::ptr::null(),
        )
    };
    ensure!(
        r == 0,
        "mount tmpfs on {}: {}",
        dir.display(),
        std::io::Error::last_os_error()
    );
    fs::write(dir.join(name), b"x")?;
    Ok(())
}

/// A host directory `<bundle>/<name>` holding a file `top` and a tmpfs
/// submount `sub` holding a file `inner`.
pub(crate) fn nested_source(bundle: &Bundle, name: &str) -> Result<std::path::PathBuf, Failed> {
    let src = bundle.dir.join(name);
    fs::create_dir_all(&src)?;
    fs::write(src.join("top"), b"x")?;
    host_tmpfs(&src.join("sub"), "inner", 0)?;
    Ok(src)
}

fn option_flags(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let cases: [(&str, &[&str]); 7] = [
        ("ro", &["ro"]),
        ("nosuid", &["nosuid"]),
        ("nodev", &["nodev"]),
        ("noexec", &["noexec"]),
        ("strictatime", &["strictatime"]),
        ("noatime", &["noatime"]),
        ("relatime", &["relatime"]),
    ];
    for (name, opts) in cases {
        bundle
            .spec
            .mounts
            .push(mount(&format!("/m/{name}"), "tmpfs", "tmpfs", opts));
    }
    let lines = ctx.probe(
        &mut bundle,
        &[
            "report",
            "+",
            "write",
            "/m/ro/x",
            "+",
            "write",
            "/m/nosuid/x",
        ],
    )?;
    let report = &lines[0];
    for (name, _) in cases {
        let point = format!("/m/{name}");
        let line = mount_line(report, &point).ok_or_else(|| format!("{point} is not mounted"))?;
        let opts = mount_options(line);
        let has = |o: &str| opts.iter().any(|x| x == o);
        let ok = match name {
            "strictatime" => !has("relatime") && !has("noatime"),
            "ro" => has("ro"),
            _ => has(name),
        };
        ensure!(
            ok,
            "{point} was mounted with [{name}] but has options {opts:?}"
        );
        ensure!(
            name == "ro" || has("rw"),
            "{point} is read-only without ro: {opts:?}"
        );
    }
    ensure!(
        lines[1]["errno"] == libc::EROFS,
        "write on a ro mount: {}",
        lines[1]
    );
    ensure!(lines[2]["errno"] == 0, "write on a rw mount: {}", lines[2]);
    Ok(())
}

fn bind_and_rbind(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let src = nested_source(&bundle, "src")?;
    let rw = bundle.dir.join("rw");
    fs::create_dir_all(&rw)?;
    bundle.spec.mounts.extend([
        bind("/b/bind", &src, &["bind"]),
        bind("/b/rbind", &src, &["rbind"]),
        bind("/b/ro", &src, &["bind", "ro"]),
        bind("/b/rw", &rw, &["bind"]),
    ]);
    let lines = ctx.probe(
        &mut bundle,
        &[
            "ls",
            "/b/bind/sub",
            "+",
            "ls",
            "/b/rbind/sub",
            "+",
            "stat",
            "/b/bind/top",
            "+",
            "write",
            "/b/ro/new",
            "+",
            "write",
            "/b/rw/new",
            "hello",
        ],
    )?;
    ensure!(
        lines[0]["entries"] == serde_json::json!([]),
        "bind copied the submount: {}",
        lines[0]
    );
    ensure!(
        lines[1]["entries"] == serde_json::json!(["inner"]),
        "rbind lacks the submount: {}",
        lines[1]
    );
    ensure!(
        lines[2]["errno"] == 0,
        "bind source content missing: {}",
        lines[2]
    );
    ensure!(
        lines[3]["errno"] == libc::EROFS,
        "write on a ro bind: {}",
        lines[3]
    );
    ensure!(lines[4]["errno"] == 0, "write on a rw bind: {}", lines[4]);
    let written = fs::read_to_string(rw.join("new")).unwrap_or_default();
    ensure!(
        written == "hello",
        "the write did not reach the host directory: {written:?}"
    );
    Ok(())
}

fn propagation_flags(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let src = bundle.dir.join("shared-src");
    host_tmpfs(&src, "file", 0)?;
    let c = CString::new(src.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: changes the propagation of the tmpfs mounted just above.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            c.as_ptr(),
            std::ptr::null(),
            libc::MS_SHARED,
            std::ptr::null(),
        )
    };
    ensure!(
        r == 0,
        "make {} shared: {}",
        src.display(),
        std::io::Error::last_os_error()
    );
    for mode in ["shared", "slave", "private", "unbindable"] {
        bundle
            .spec
            .mounts
            .push(bind(&format!("/p/{mode}"), &src, &["bind", mode]));
    }
    let report = ctx.report(&mut bundle)?;
    let tags = |mode: &str| -> Result<Vec<String>, Failed> {
        let line = mount_line(&report, &format!("/p/{mode}"))
            .ok_or_else(|| format!("/p/{mode} not mounted"))?;
        Ok(mount_tags(line))
    };
    let has = |tags: &[String], prefix: &str| tags.iter().any(|t| t.starts_with(prefix));
    let (shared, slave, private, unbindable) = (
        tags("shared")?,
        tags("slave")?,
        tags("private")?,
        tags("unbindable")?,
    );
    let all = format!(
        "shared {shared:?}, slave {slave:?}, private {private:?}, unbindable {unbindable:?}"
    );
    ensure!(
        has(&shared, "shared:"),
        "[bind, shared] is not shared; {all}"
    );
    ensure!(!has(&slave, "shared:"), "[bind, slave] is shared; {all}");
    ensure!(has(&slave, "master:"), "[bind, slave] has no master; {all}");
    ensure!(
        !has(&private, "shared:") && !has(&private, "master:"),
        "[bind, private] propagates; {all}"
    );
    ensure!(
        has(&unbindable, "unbindable"),
        "[bind, unbindable] is bindable; {all}"
    );
    Ok(())
}

fn recursive_readonly(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let src = nested_source(&bundle, "src")?;
    bundle.spec.mounts.extend([
        bind("/r/rro", &src, &["rbind", "rro"]),
        bind("/r/ro", &src, &["rbind", "ro"]),
    ]);
    let lines = ctx.probe(
        &mut bundle,
        &[
            "write",
            "/r/rro/x",
            "+",
            "write",
            "/r/rro/sub/x",
            "+",
            "write",
            "/r/ro/x",
            "+",
            "write",
            "/r/ro/sub/x",
        ],
    )?;
    ensure!(lines[0]["errno"] == libc::EROFS, "rro top: {}", lines[0]);
    ensure!(
        lines[1]["errno"] == libc::EROFS,
        "rro did not make the submount read-only: {}",
        lines[1]
    );
    ensure!(lines[2]["errno"] == libc::EROFS, "ro top: {}", lines[2]);
    ensure!(
        lines[3]["errno"] == 0,
        "plain ro is not recursive, yet the submount is read-only: {}",
        lines[3]
    );
    Ok(())
}

fn tmpfs_data(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    bundle.spec.mounts.push(mount(
        "/t",
        "tmpfs",
        "tmpfs",
        &["nosuid", "size=1m", "mode=1770"],
    ));
    let lines = ctx.probe(&mut bundle, &["report", "+", "stat", "/t"])?;
    let line = mount_line(&lines[0], "/t").ok_or("/t is not mounted")?;
    let super_opts = line.rsplit(' ').next().unwrap_or("");
    ensure!(
        super_opts.contains("size=1024k"),
        "tmpfs size not applied: {line}"
    );
    ensure!(
        super_opts.contains("mode=1770"),
        "tmpfs mode not applied: {line}"
    );
    ensure!(lines[1]["mode"] == 0o1770, "/t mode {}", lines[1]["mode"]);
    Ok(())
}

fn cgroup_mount(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let lines = ctx.probe(&mut bundle, &["report", "+", "ls", "/sys/fs/cgroup"])?;
    let report = &lines[0];
    for ctrl in ["memory", "pids", "cpuset", "devices", "freezer"] {
        let point = format!("/sys/fs/cgroup/{ctrl}");
        let line = mount_line(report, &point)
            .ok_or_else(|| format!("{point} is not mounted: {}", lines[1]))?;
        ensure!(
            line.contains(" - cgroup "),
            "{point} is not a cgroup mount: {line}"
        );
        ensure!(
            mount_options(line).contains(&"ro".to_string()),
            "{point} is not read-only: {line}"
        );
    }
    // With a cgroup namespace the container's own cgroup is its root.
    for line in report["cgroup"].as_array().into_iter().flatten() {
        let line = line.as_str().unwrap_or("");
        ensure!(
            line.ends_with(":/"),
            "cgroup namespace root is not /: {line}"
        );
    }
    Ok(())
}

/// A destination through ".." or through a symlink pointing outside the
/// rootfs (whose target also exists inside it) is refused, or mounted inside
/// the rootfs: a file written to the mount never reaches the host directory.
fn contained(ctx: &Ctx) -> TestResult {
    for case in ["dotdot", "symlink"] {
        let mut bundle = ctx.bundle()?;
        let outside = bundle.dir.join("escape");
        fs::create_dir(&outside)?;
        let (dest, inside) = if case == "dotdot" {
            ("/../escape".to_string(), "/escape".to_string())
        } else {
            let inside = outside.display().to_string();
            std::os::unix::fs::symlink(&outside, bundle.host_path("/evil"))?;
            ("/evil".to_string(), inside)
        };
        fs::create_dir_all(bundle.host_path(&inside))?;
        bundle.spec.mounts.push(mount(&dest, "tmpfs", "tmpfs", &[]));
        bundle.set_args(&["/berth-probe", "write", &format!("{dest}/marker")]);
        bundle.write_config()?;
        let id = ctx.id();
        let before = ctx.snapshot(&bundle, &id);
        let out = ctx.rt.run(&id, &bundle.dir)?;
        let leftover = fs::read_dir(&outside)?.count();
        ensure!(
            leftover == 0,
            "{case}: the mount escaped: {} has {leftover} entries",
            outside.display()
        );
        if out.success() {
            let lines = crate::support::parse_lines(&out.stdout)?;
            ensure!(
                lines.first().is_some_and(|l| l["errno"] == 0),
                "{case}: write into the mount: {lines:?}"
            );
            let marker = bundle.host_path(&format!("{inside}/marker"));
            ensure!(
                !marker.exists(),
                "{case}: {dest} was not mounted (the write reached the rootfs)"
            );
        } else if ctx.is_berth() {
            let field = format!("mounts[{}]", bundle.spec.mounts.len() - 1);
            ensure!(
                out.stderr.contains(&field),
                "{case}: the error does not name {field}: {}",
                out.stderr
            );
        }
        leaks::check_clean(&before)?;
    }
    Ok(())
}
