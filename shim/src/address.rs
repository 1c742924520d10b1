//! Where a shim listens: containerd 1.6's scheme, so shims are found (and
//! grouped) the same way as the runc shim's.

use std::path::Path;

use sha2::{Digest, Sha256};

/// The fixed socket directory (independent of containerd's --state).
pub const SOCKET_DIR: &str = "/run/containerd/s";

/// Annotations that put several containers in one shim (pods).
const GROUP_ANNOTATIONS: &[&str] = &[
    "io.containerd.runc.v2.group",
    "io.kubernetes.cri.sandbox-id",
];

/// `unix:///run/containerd/s/<hex sha256 of "<address>/<ns>/<group>">`,
/// with the path joined and cleaned as Go's filepath.Join does.
pub fn socket_address(containerd_address: &str, namespace: &str, group: &str) -> String {
    let joined = clean_join(&[containerd_address, namespace, group]);
    let digest = Sha256::digest(joined.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("unix://{SOCKET_DIR}/{hex}")
}

/// The filesystem path of a `unix://` address.
pub fn socket_path(address: &str) -> &str {
    address.strip_prefix("unix://").unwrap_or(address)
}

/// The group a container's shim belongs to: a grouping annotation in the
/// bundle's config.json, else the container id.
pub fn group_id(bundle: &Path, id: &str) -> String {
    let Ok(data) = std::fs::read(bundle.join("config.json")) else {
        return id.to_string();
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&data) else {
        return id.to_string();
    };
    for key in GROUP_ANNOTATIONS {
        if let Some(g) = v["annotations"][key].as_str().filter(|g| !g.is_empty()) {
            return g.to_string();
        }
    }
    id.to_string()
}

/// Go's filepath.Join: join with '/', then clean.
fn clean_join(parts: &[&str]) -> String {
    let joined = parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    let absolute = joined.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !absolute {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let body = out.join("/");
    if absolute {
        format!("/{body}")
    } else if body.is_empty() {
        ".".into()
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_is_sha256_of_the_cleaned_join() {
        // sha256("/run/containerd/containerd.sock/default/c1")
        let a = socket_address("/run/containerd/containerd.sock", "default", "c1");
        let expect = Sha256::digest(b"/run/containerd/containerd.sock/default/c1");
        let hex: String = expect.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(a, format!("unix:///run/containerd/s/{hex}"));
        assert_eq!(
            socket_address("/run//containerd/./containerd.sock/", "default", "c1"),
            a
        );
        assert_eq!(socket_path(&a).len(), "/run/containerd/s/".len() + 64);
    }

    #[test]
    fn grouping_annotation_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            br#"{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}}"#,
        )
        .unwrap();
        assert_eq!(group_id(dir.path(), "c1"), "pod1");
        std::fs::write(dir.path().join("config.json"), br#"{}"#).unwrap();
        assert_eq!(group_id(dir.path(), "c1"), "c1");
    }
}
