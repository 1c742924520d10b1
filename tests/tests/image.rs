//! The test image: a valid OCI layout (umoci, skopeo), deterministic, with
//! the files containers and the demo rely on.

use std::path::Path;
use std::process::Command;

use berth_tests::image::TestImage;

fn tool(name: &str) -> bool {
    berth_tests::runtime::which(name).is_some()
}

#[test]
fn rootfs_has_busybox_applets_and_users() {
    let image = TestImage::ensure().unwrap();
    let root = &image.rootfs;
    assert!(root.join("bin/busybox").is_file());
    for link in ["bin/sh", "bin/ls", "usr/bin/env"] {
        let meta = std::fs::symlink_metadata(root.join(link)).unwrap();
        assert!(meta.file_type().is_symlink(), "{link} is not a symlink");
        assert!(root.join(link).exists(), "{link} dangles");
    }
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.contains("berth:x:1000:1000:"), "{passwd}");
    use std::os::unix::fs::PermissionsExt;
    let tmp = std::fs::metadata(root.join("tmp"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(tmp & 0o7777, 0o1777);
    for dir in ["proc", "sys", "dev", "root", "home/berth"] {
        assert!(root.join(dir).is_dir(), "{dir} missing");
    }
}

#[test]
fn layout_is_valid_for_umoci_and_skopeo() {
    let image = TestImage::ensure().unwrap();
    let index = std::fs::read_to_string(image.layout.join("index.json")).unwrap();
    assert!(
        index.contains("\"org.opencontainers.image.ref.name\":\"berth-test:latest\""),
        "{index}"
    );
    if tool("umoci") {
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("bundle");
        let status = Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{}", image.layout.display(), image.reference))
            .arg(&dest)
            .status()
            .unwrap();
        assert!(status.success(), "umoci unpack failed");
        assert!(dest.join("rootfs/bin/busybox").is_file());
        let config = std::fs::read_to_string(dest.join("config.json")).unwrap();
        assert!(
            config.contains("\"sh\""),
            "umoci config lacks Cmd sh: {config}"
        );
    }
    if tool("skopeo") {
        let out = Command::new("skopeo")
            .arg("inspect")
            .arg(format!(
                "oci:{}:{}",
                image.layout.display(),
                image.reference
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("PATH=/usr/local/sbin"), "{text}");
    }
}

#[test]
fn layout_tar_holds_the_layout() {
    let image = TestImage::ensure().unwrap();
    let file = std::fs::File::open(&image.layout_tar).unwrap();
    let mut names: Vec<String> = tar::Archive::new(file)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    names.sort();
    assert!(names.contains(&"oci-layout".to_string()), "{names:?}");
    assert!(names.contains(&"index.json".to_string()), "{names:?}");
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("blobs/sha256/") && n.len() > 20)
            .count(),
        3
    );
}

#[test]
fn build_is_deterministic() {
    let image = TestImage::ensure().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let again = TestImage::build_at(&dir.path().join("again")).unwrap();
    let read = |p: &Path| std::fs::read(p).unwrap();
    assert_eq!(
        read(&image.layout.join("index.json")),
        read(&again.layout.join("index.json"))
    );
    assert_eq!(read(&image.layout_tar), read(&again.layout_tar));
}
