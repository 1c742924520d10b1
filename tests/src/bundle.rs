//! OCI bundles for tests: a fresh directory with its own copy of the test
//! image's rootfs and a config.json built from `default_spec`.
//!
//! Dropping a `Bundle` lazily unmounts anything left under it, then removes it.

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_executor::spec::{default_spec, Linux, Process, Spec};

use crate::image::TestImage;
use crate::other;

/// The OCI version written to test configs: crun 1.8.1 refuses "1.2.x".
pub const TEST_OCI_VERSION: &str = "1.0.2";
/// Where `install_probe` puts the probe inside the rootfs.
pub const PROBE_PATH: &str = "/berth-probe";

/// A bundle directory (removed on drop) and the spec its config.json gets.
#[derive(Debug)]
pub struct Bundle {
    /// The bundle directory (absolute).
    pub dir: PathBuf,
    /// `<dir>/rootfs`.
    pub rootfs: PathBuf,
    /// What `write_config` writes. Starts as `default_spec(None)` with
    /// terminal off, no ambient capabilities and `TEST_OCI_VERSION`.
    pub spec: Spec,
    keep: bool,
}

impl Bundle {
    /// A fresh bundle under the temp dir (`BERTH_TEST_TMPDIR` overrides),
    /// its directory named after `name`.
    pub fn new(name: &str) -> io::Result<Bundle> {
        let base = std::env::var_os("BERTH_TEST_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        Bundle::in_dir(&base, name)
    }

    /// A fresh bundle in a new directory under `parent`.
    pub fn in_dir(parent: &Path, name: &str) -> io::Result<Bundle> {
        let image = TestImage::ensure()?;
        fs::create_dir_all(parent)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("berth-{name}-"))
            .tempdir_in(parent)?
            .keep();
        let bundle = Bundle::at(dir, false)?;
        copy_tree(&image.rootfs, &bundle.rootfs)?;
        Ok(bundle)
    }

    /// A bundle in an existing directory `dir` (created if missing) that
    /// `Drop` leaves alone; the rootfs is copied there. For the demo.
    pub fn persistent(dir: &Path) -> io::Result<Bundle> {
        let image = TestImage::ensure()?;
        fs::create_dir_all(dir)?;
        let dir = fs::canonicalize(dir)?;
        let bundle = Bundle::at(dir, true)?;
        if bundle.rootfs.exists() {
            return Err(other(format!("{} already exists", bundle.rootfs.display())));
        }
        copy_tree(&image.rootfs, &bundle.rootfs)?;
        Ok(bundle)
    }

    fn at(dir: PathBuf, keep: bool) -> io::Result<Bundle> {
        // 0755: a container in a user namespace must reach its rootfs.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
        let mut spec = default_spec(None);
        spec.oci_version = TEST_OCI_VERSION.into();
        if let Some(process) = spec.process.as_mut() {
            process.terminal = false;
            if let Some(caps) = process.capabilities.as_mut() {
                caps.ambient = None;
            }
        }
        Ok(Bundle {
            rootfs: dir.join("rootfs"),
            dir,
            spec,
            keep,
        })
    }

    /// `<dir>/config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// Writes `spec` to config.json.
    pub fn write_config(&self) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(&self.spec)
            .map_err(|e| other(format!("serialize config.json: {e}")))?;
        fs::write(self.config_path(), json)
    }

    /// The spec's process, created if the spec has none.
    pub fn process(&mut self) -> &mut Process {
        self.spec.process.get_or_insert_with(Process::default)
    }

    /// The spec's `linux` section, created if the spec has none.
    pub fn linux(&mut self) -> &mut Linux {
        self.spec.linux.get_or_insert_with(Linux::default)
    }

    /// Sets `root.readonly`.
    pub fn set_readonly(&mut self, readonly: bool) {
        if let Some(root) = self.spec.root.as_mut() {
            root.readonly = readonly;
        }
    }

    /// Sets `process.args`.
    pub fn set_args<S: AsRef<str>>(&mut self, args: &[S]) {
        self.process().args = args.iter().map(|a| a.as_ref().to_string()).collect();
    }

    /// Copies the static probe into the rootfs at `PROBE_PATH` (building it
    /// on first use) and returns that in-container path.
    pub fn install_probe(&self) -> io::Result<&'static str> {
        let probe = crate::probe::path()?;
        let dest = self.rootfs.join(PROBE_PATH.trim_start_matches('/'));
        link_or_copy(&probe, &dest)?;
        Ok(PROBE_PATH)
    }

    /// The host path of a path inside the rootfs.
    pub fn host_path(&self, in_container: &str) -> PathBuf {
        self.rootfs.join(in_container.trim_start_matches('/'))
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        unmount_under(&self.dir);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Lazily unmounts every mount point at or under `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let mut points: Vec<PathBuf> = crate::leaks::mounts_under(dir);
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for point in points {
        if let Ok(c) = std::ffi::CString::new(point.as_os_str().as_encoded_bytes()) {
            // SAFETY: c is a valid NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Copies a tree, preserving symlinks and modes; regular files are
/// hard-linked when possible (the image is never written through them).
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir(to)?;
    let mut dirs = vec![(from.to_path_buf(), to.to_path_buf())];
    let mut modes = Vec::new();
    while let Some((src, dst)) = dirs.pop() {
        modes.push((dst.clone(), fs::metadata(&src)?.permissions()));
        for entry in fs::read_dir(&src)? {
            let entry = entry?;
            let (s, d) = (entry.path(), dst.join(entry.file_name()));
            let kind = entry.file_type()?;
            if kind.is_symlink() {
                symlink(fs::read_link(&s)?, &d)?;
            } else if kind.is_dir() {
                fs::create_dir(&d)?;
                dirs.push((s, d));
            } else {
                link_or_copy(&s, &d)?;
            }
        }
    }
    for (dir, perms) in modes {
        fs::set_permissions(dir, perms)?;
    }
    Ok(())
}

fn link_or_copy(src: &Path, dst: &Path) -> io::Result<()> {
    if fs::hard_link(src, dst).is_err() {
        fs::copy(src, dst)?;
    }
    Ok(())
}
