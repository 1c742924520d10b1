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

fn owners(line: &serde_json::Value) -> (i64, i64) {
    (
        line["uid"].as_i64().unwrap_or(-1),
        line["gid"].as_i64().unwrap_or(-1),
    )
}

fn own_mapping(ctx: &Ctx) -> TestResult {
    let mut bundle = ctx.bundle()?;
    let src = owned_source(&bundle, "src")?;
    let mut m = bind("/data", &src, &["bind", "idmap"]);
    m.uid_mappings = vec![map(0, 1000, 10)];
    m.gid_mappings = vec![map(0, 2000, 10)];
    bundle.spec.mounts.push(m);
    bundle.spec.mounts.push(bind("/plain", &src, &["bind"]));
    let lines = ctx.probe(
        &mut bundle,
        &[
            "stat",
            "/data/root",
            "+",
            "stat",
            "/data/five",
            "+",
            "stat",
            "/plain/root",
        ],
    )?;
    ensure!(lines.len() == 3, "probe printed {lines:?}");
    ensure!(
        owners(&lines[0]) == (1000, 2000) && owners(&lines[1]) == (1005, 2005),
        "through the id-mapped mount 0:0 should read 1000:2000 and 5:5 1005:2005, got {:?} and {:?}",
        owners(&lines[0]),
        owners(&lines[1])
    );
    ensure!(
        owners(&lines[2]) == (0, 0),
        "a plain bind of the same directory must stay unmapped: {:?}",
        owners(&lines[2])
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
    let lines = ctx.probe(
        &mut bundle,
        &[
            "stat",
            "/data/root",
            "+",
            "stat",
            "/data/five",
            "+",
            "stat",
            "/plain/root",
        ],
    )?;
    ensure!(lines.len() == 3, "probe printed {lines:?}");
    ensure!(
        owners(&lines[0]) == (0, 0) && owners(&lines[1]) == (5, 5),
        "with the container's mapping host 0:0 and 5:5 should read 0:0 and 5:5 inside, got {:?} and {:?}",
        owners(&lines[0]),
        owners(&lines[1])
    );
    ensure!(
        owners(&lines[2]) == (65534, 65534),
        "without idmap, host root files are unmapped (overflow id) in a user namespace: {:?}",
        owners(&lines[2])
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
    let lines = ctx.probe(
        &mut bundle,
        &[
            "stat",
            "/i/top",
            "+",
            "stat",
            "/i/sub/inner",
            "+",
            "stat",
            "/r/top",
            "+",
            "stat",
            "/r/sub/inner",
        ],
    )?;
    ensure!(lines.len() == 4, "probe printed {lines:?}");
    let uids: Vec<i64> = lines.iter().map(|l| owners(l).0).collect();
    ensure!(
        uids == [1000, 0, 1000, 1000],
        "uids of top and sub/inner through idmap then ridmap: expected [1000, 0, 1000, 1000], got {uids:?}"
    );
    Ok(())
}
