//! Id-mapped bind mounts (runtime-spec 1.2 `idmap`, `ridmap` and a mount's
//! `uidMappings`/`gidMappings`): files show the owners the mapping gives
//! them, the container's user namespace mapping is borrowed when the mount
//! has none, and `ridmap` (unlike `idmap`) reaches into submounts.

use std::fs;
use std::os::unix::fs::chown;

use berth_executor::spec::{IdMapping, Namespace, NamespaceType};
use berth_tests::runtime::Kind;
use berth_tests::Bundle;
use libtest_mimic::Failed;

use crate::mounts::nested_source;
use crate::support::{bind, Ctx, TestResult};
use crate::{ensure, Case};

const RUNC: (Kind, &str) = (
    Kind::Runc,
    "runc 1.1.5 ignores idmap/ridmap and mount uidMappings (runtime-spec 1.2; runc 1.2 maps them)",
);

pub fn cases() -> Vec<Case> {
    vec![
        Case::new("idmap::mount_mappings_shift_file_owners", own_mapping).skip(&[RUNC]),
        Case::new(
            "idmap::borrows_the_container_user_namespace_mapping",
            borrowed_mapping,
        )
        .skip(&[RUNC]),
        Case::new("idmap::ridmap_reaches_submounts_idmap_does_not", recursive).skip(&[
            RUNC,
            (
                Kind::Crun,
                "crun 1.8.1 leaves the submounts out of an id-mapped rbind",
            ),
        ]),
    ]
}

fn map(container_id: u32, host_id: u32, size: u32) -> IdMapping {
    IdMapping {
        container_id,
        host_id,
        size,
    }
}

/// `<bundle>/<name>` with `root` owned by 0:0 and `five` by 5:5.
fn owned_source(bundle: &Bundle, name: &str) -> Result<std::path::PathBuf, Failed> {
    let src = bundle.dir.join(name);
    fs::create_dir_all(&src)?;
    fs::write(src.join("root"), b"x")?;
    fs::write(src.join("five"), b"x")?;
    chown(src.join("root"), Some(0), Some(0))?;
    chown(src.join("five"), Some(5), Some(5))?;
    Ok(src)
}

/// Runs the probe to stat each path; returns (uid, gid) per path, (-1, -1)
/// where stat failed.
fn owners_of(ctx: &Ctx, bundle: &mut Bundle, paths: &[&str]) -> Result<Vec<(i64, i64)>, Failed> {
    let mut args = Vec::new();
    for p in paths {
        if !args.is_empty() {
            args.push("+");
        }
        args.extend(["stat", p]);
    }
    let lines = ctx.probe(bundle, &args)?;
    ensure!(lines.len() == paths.len(), "probe printed {lines:?}");
    Ok(lines
        .iter()
        .map(|l| {
            (
                l["uid"].as_i64().unwrap_or(-1),
                l["gid"].as_i64().unwrap_or(-1),
            )
        })
        .collect())
}

fn own_mapping(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let src = owned_source(&bundle, "src")?;
    let mut m = bind("/data", &src, &["bind", "idmap"]);
    m.uid_mappings = vec![map(0, 1000, 10)];
    m.gid_mappings = vec![map(0, 2000, 10)];
    bundle.spec.mounts.push(m);
    bundle.spec.mounts.push(bind("/plain", &src, &["bind"]));
    let got = owners_of(
        ctx,
        &mut bundle,
        &["/data/root", "/data/five", "/plain/root"],
    )?;
    ensure!(
        got[0] == (1000, 2000) && got[1] == (1005, 2005),
        "through the id-mapped mount 0:0 should read 1000:2000 and 5:5 1005:2005, got {:?} and {:?}",
        got[0],
        got[1]
    );
    ensure!(
        got[2] == (0, 0),
        "a plain bind of the same directory must stay unmapped: {:?}",
        got[2]
    );
    Ok(())
}

fn borrowed_mapping(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let src = owned_source(&bundle, "src")?;
    let userns = map(0, 100_000, 65_536);
    bundle.linux().namespaces.push(Namespace {
        typ: NamespaceType::User,
        path: None,
    });
    bundle.linux().uid_mappings = vec![userns];
    bundle.linux().gid_mappings = vec![userns];
    bundle
        .spec
        .mounts
        .retain(|m| m.destination != "/sys/fs/cgroup");
    // Root in the user namespace cannot create directories in the
    // host-owned rootfs: make the mount points up front.
    fs::create_dir_all(bundle.host_path("/data"))?;
    fs::create_dir_all(bundle.host_path("/plain"))?;
    bundle
        .spec
        .mounts
        .push(bind("/data", &src, &["rbind", "idmap"]));
    bundle.spec.mounts.push(bind("/plain", &src, &["rbind"]));
    let got = owners_of(
        ctx,
        &mut bundle,
        &["/data/root", "/data/five", "/plain/root"],
    )?;
    ensure!(
        got[0] == (0, 0) && got[1] == (5, 5),
        "with the container's mapping host 0:0 and 5:5 should read 0:0 and 5:5 inside, got {:?} and {:?}",
        got[0],
        got[1]
    );
    ensure!(
        got[2] == (65534, 65534),
        "without idmap, host root files are unmapped (overflow id) in a user namespace: {:?}",
        got[2]
    );
    Ok(())
}

fn recursive(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    // top is in the bundle directory, sub/inner on a tmpfs submount.
    let src = nested_source(&bundle, "nested")?;
    for (dest, opts) in [("/i", "idmap"), ("/r", "ridmap")] {
        let mut m = bind(dest, &src, &["rbind", opts]);
        m.uid_mappings = vec![map(0, 1000, 10)];
        m.gid_mappings = vec![map(0, 1000, 10)];
        bundle.spec.mounts.push(m);
    }
    let got = owners_of(
        ctx,
        &mut bundle,
        &["/i/top", "/i/sub/inner", "/r/top", "/r/sub/inner"],
    )?;
    let uids: Vec<i64> = got.iter().map(|o| o.0).collect();
    ensure!(
        uids == [1000, 0, 1000, 1000],
        "uids of top and sub/inner through idmap then ridmap: expected [1000, 0, 1000, 1000], got {uids:?}"
    );
    Ok(())
}
