//! The test image, built offline from busybox-static: an unpacked rootfs, an
//! OCI image layout and a tar of that layout, cached under target/berth-fixtures.
//!
//! The output is deterministic (sorted entries, fixed mtimes, uid/gid 0, a
//! fixed gzip header), so digests only change with busybox or this builder.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use flate2::{Compression, GzBuilder};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::other;

/// Bump when the image contents or layout change: it is part of the cache key.
const BUILDER_VERSION: &str = "berth-test-image/1";
/// The name `ctr images import` gives the image (the index's ref.name).
pub const REFERENCE: &str = "berth-test:latest";
/// Every file in the layer carries this mtime (2020-01-01T00:00:00Z).
const MTIME: u64 = 1_577_836_800;
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
berth:x:1000:1000:berth:/home/berth:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\ntty:x:5:\nusers:x:100:\nberth:x:1000:\nnogroup:x:65534:\n";

/// The cached test image. All paths are absolute.
#[derive(Debug, Clone)]
pub struct TestImage {
    /// The cache directory holding everything below.
    pub dir: PathBuf,
    /// The unpacked root filesystem.
    pub rootfs: PathBuf,
    /// The OCI image layout directory.
    pub layout: PathBuf,
    /// A tar of `layout`, as `ctr images import --index-name` accepts.
    pub layout_tar: PathBuf,
    /// The image reference recorded in the layout's index.
    pub reference: String,
}

/// One file system entry of the image.
enum Entry {
    Dir(u32),
    File(u32, Vec<u8>),
    Symlink(String),
}

static BUILD_LOCK: Mutex<()> = Mutex::new(());

impl TestImage {
    /// Returns the cached image, building it first if needed. Safe to call
    /// from many threads and processes: the build goes to a temporary
    /// directory that is renamed into place.
    pub fn ensure() -> io::Result<TestImage> {
        let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let busybox = busybox_path();
        let binary = fs::read(&busybox)
            .map_err(|e| other(format!("read busybox {}: {e}", busybox.display())))?;
        let mut key = Sha256::new();
        key.update(&binary);
        key.update(BUILDER_VERSION.as_bytes());
        let hex = hex(&key.finalize());
        let parent = crate::target_dir().join("berth-fixtures");
        let dir = parent.join(format!("busybox-{}", &hex[..12]));
        let image = TestImage::at(&dir);
        if image.layout_tar.is_file() {
            return Ok(image);
        }
        fs::create_dir_all(&parent)?;
        let tmp = parent.join(format!(
            ".busybox-{}.tmp-{}",
            &hex[..12],
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&tmp);
        build(&busybox, binary, &tmp).map_err(|e| {
            let _ = fs::remove_dir_all(&tmp);
            other(format!("build test image in {}: {e}", tmp.display()))
        })?;
        if let Err(e) = fs::rename(&tmp, &dir) {
            // Another process won the race: use its copy.
            let _ = fs::remove_dir_all(&tmp);
            if !image.layout_tar.is_file() {
                return Err(other(format!("rename {} into place: {e}", dir.display())));
            }
        }
        Ok(image)
    }

    /// Builds the image into `dir` (which must not exist), bypassing the cache.
    pub fn build_at(dir: &Path) -> io::Result<TestImage> {
        let busybox = busybox_path();
        let binary = fs::read(&busybox)?;
        build(&busybox, binary, dir)?;
        Ok(TestImage::at(dir))
    }

    fn at(dir: &Path) -> TestImage {
        TestImage {
            dir: dir.to_path_buf(),
            rootfs: dir.join("rootfs"),
            layout: dir.join("oci"),
            layout_tar: dir.join("berth-test.oci.tar"),
            reference: REFERENCE.to_string(),
        }
    }
}

/// The busybox-static binary the image is made from (`BERTH_BUSYBOX` overrides).
pub fn busybox_path() -> PathBuf {
    std::env::var_os("BERTH_BUSYBOX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/bin/busybox"))
}

fn build(busybox: &Path, binary: Vec<u8>, out: &Path) -> io::Result<()> {
    let entries = rootfs_entries(busybox, binary)?;
    let rootfs = out.join("rootfs");
    write_rootfs(&entries, &rootfs)?;

    let layer = layer_tar(&entries)?;
    let diff_id = format!("sha256:{}", hex(&Sha256::digest(&layer)));
    let mut gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::default());
    gz.write_all(&layer)?;
    let layer_gz = gz.finish()?;

    let layout = out.join("oci");
    let blobs = layout.join("blobs").join("sha256");
    fs::create_dir_all(&blobs)?;
    let layer_desc = write_blob(&blobs, &layer_gz)?;
    let config = json!({
        "created": "2020-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": [PATH_ENV], "Cmd": ["sh"], "WorkingDir": "/" },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created": "2020-01-01T00:00:00Z", "created_by": BUILDER_VERSION }],
    });
    let config_desc = write_blob(&blobs, &to_vec(&config)?)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_desc.0, "size": config_desc.1,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_desc.0, "size": layer_desc.1,
        }],
    });
    let manifest_desc = write_blob(&blobs, &to_vec(&manifest)?)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_desc.0, "size": manifest_desc.1,
            "platform": { "architecture": "amd64", "os": "linux" },
            "annotations": { "org.opencontainers.image.ref.name": REFERENCE },
        }],
    });
    fs::write(layout.join("index.json"), to_vec(&index)?)?;
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    fs::write(out.join("berth-test.oci.tar"), layout_tar(&layout)?)?;
    Ok(())
}

/// The image's file system: busybox, one symlink per applet, and the few
/// files and directories a container expects.
fn rootfs_entries(busybox: &Path, binary: Vec<u8>) -> io::Result<BTreeMap<String, Entry>> {
    let list = Command::new(busybox).arg("--list-full").output()?;
    if !list.status.success() {
        return Err(other(format!("{} --list-full failed", busybox.display())));
    }
    let mut entries = BTreeMap::new();
    for dir in [
        "bin", "dev", "etc", "home", "proc", "root", "sbin", "sys", "usr",
    ] {
        entries.insert(dir.to_string(), Entry::Dir(0o755));
    }
    for dir in ["usr/bin", "usr/sbin", "home/berth"] {
        entries.insert(dir.to_string(), Entry::Dir(0o755));
    }
    entries.insert("root".into(), Entry::Dir(0o700));
    entries.insert("tmp".into(), Entry::Dir(0o1777));
    entries.insert("bin/busybox".into(), Entry::File(0o755, binary));
    entries.insert("etc/passwd".into(), Entry::File(0o644, PASSWD.into()));
    entries.insert("etc/group".into(), Entry::File(0o644, GROUP.into()));
    entries.insert(
        "etc/hosts".into(),
        Entry::File(0o644, b"127.0.0.1\tlocalhost\n".to_vec()),
    );
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim().trim_start_matches('/');
        if applet.is_empty() || applet == "bin/busybox" || applet.contains("..") {
            continue;
        }
        let mut parent = String::new();
        let parts: Vec<&str> = applet.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            entries.entry(parent.clone()).or_insert(Entry::Dir(0o755));
        }
        let target = format!("{}bin/busybox", "../".repeat(parts.len() - 1));
        entries.insert(applet.to_string(), Entry::Symlink(target));
    }
    Ok(entries)
}

fn write_rootfs(entries: &BTreeMap<String, Entry>, root: &Path) -> io::Result<()> {
    fs::create_dir_all(root)?;
    fs::set_permissions(root, fs::Permissions::from_mode(0o755))?;
    // BTreeMap order puts every directory before its children.
    for (path, entry) in entries {
        let dest = root.join(path);
        match entry {
            Entry::Dir(_) => fs::create_dir(&dest)?,
            Entry::File(mode, data) => {
                fs::write(&dest, data)?;
                fs::set_permissions(&dest, fs::Permissions::from_mode(*mode))?;
            }
            Entry::Symlink(target) => symlink(target, &dest)?,
        }
    }
    // Modes last, so a 0700 directory does not block writing its children.
    for (path, entry) in entries {
        if let Entry::Dir(mode) = entry {
            fs::set_permissions(root.join(path), fs::Permissions::from_mode(*mode))?;
        }
    }
    Ok(())
}

fn layer_tar(entries: &BTreeMap<String, Entry>) -> io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, entry) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        match entry {
            Entry::Dir(mode) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_size(0);
                tar.append_data(&mut header, format!("{path}/"), io::empty())?;
            }
            Entry::File(mode, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(data.len() as u64);
                tar.append_data(&mut header, path, data.as_slice())?;
            }
            Entry::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                tar.append_link(&mut header, path, target)?;
            }
        }
    }
    tar.into_inner()
}

/// A tar of the layout directory, entries sorted, blobs under blobs/sha256/.
fn layout_tar(layout: &Path) -> io::Result<Vec<u8>> {
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("oci-layout".into(), fs::read(layout.join("oci-layout"))?),
        ("index.json".into(), fs::read(layout.join("index.json"))?),
    ];
    let blobs = layout.join("blobs").join("sha256");
    let mut names: Vec<String> = fs::read_dir(&blobs)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        files.push((format!("blobs/sha256/{name}"), fs::read(blobs.join(&name))?));
    }
    let mut tar = tar::Builder::new(Vec::new());
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_mtime(MTIME);
        header.set_size(0);
        tar.append_data(&mut header, dir, io::empty())?;
    }
    for (name, data) in files {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_mtime(MTIME);
        header.set_size(data.len() as u64);
        tar.append_data(&mut header, name, data.as_slice())?;
    }
    tar.into_inner()
}

/// Writes a blob under its digest; returns ("sha256:<hex>", size).
fn write_blob(blobs: &Path, data: &[u8]) -> io::Result<(String, u64)> {
    let digest = hex(&Sha256::digest(data));
    fs::write(blobs.join(&digest), data)?;
    Ok((format!("sha256:{digest}"), data.len() as u64))
}

fn to_vec(value: &serde_json::Value) -> io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| other(format!("serialize JSON: {e}")))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
