//! Reading config.json. Parse errors carry the JSON path of the bad field
//! (for example `linux.namespaces[2].type`) so the message says what to fix.

use std::path::Path;

use super::types::Spec;
use crate::error::{Error, Result};

/// Reads and parses `<bundle>/config.json`.
pub fn load_bundle_config(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let message = if bundle.is_dir() {
                "config.json not found in the bundle".to_string()
            } else {
                "bundle directory does not exist".to_string()
            };
            return Err(Error::Config { path, message });
        }
        Err(e) => {
            return Err(Error::Config {
                path,
                message: e.to_string(),
            })
        }
    };
    parse_config(&data).map_err(|message| Error::Config { path, message })
}

/// Parses config.json bytes; the error names the offending JSON path.
pub fn parse_config(data: &[u8]) -> std::result::Result<Spec, String> {
    let mut de = serde_json::Deserializer::from_slice(data);
    serde_path_to_error::deserialize(&mut de).map_err(|e| describe(&e))
}

/// Parses any JSON document with path-aware errors (process.json, resources).
pub fn parse_json<T: serde::de::DeserializeOwned>(data: &[u8]) -> std::result::Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(data);
    serde_path_to_error::deserialize(&mut de).map_err(|e| describe(&e))
}

fn describe(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    let inner = e.inner();
    if inner.is_syntax() || inner.is_eof() || path == "." {
        format!("malformed JSON: {inner}")
    } else {
        format!("{path}: {inner}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_namespace_type_names_the_field() {
        let err = parse_config(
            br#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"pid"},{"type":"bogus"}]}}"#,
        )
        .unwrap_err();
        assert!(
            err.starts_with("linux.namespaces[1].type: unknown variant `bogus`"),
            "{err}"
        );
    }

    #[test]
    fn malformed_json_is_reported_as_such() {
        let err = parse_config(b"{\"ociVersion\": ").unwrap_err();
        assert!(err.starts_with("malformed JSON"), "{err}");
    }

    #[test]
    fn invalid_seccomp_action_names_the_field() {
        let err = parse_config(
            br#"{"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOPE"}]}}}"#,
        )
        .unwrap_err();
        assert!(
            err.starts_with("linux.seccomp.syscalls[0].action: unknown variant"),
            "{err}"
        );
    }

    #[test]
    fn invalid_seccomp_operator_names_the_field() {
        let err = parse_config(
            br#"{"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_XX"}]}]}}}"#,
        )
        .unwrap_err();
        assert!(
            err.starts_with("linux.seccomp.syscalls[0].args[0].op: unknown variant"),
            "{err}"
        );
    }

    #[test]
    fn unknown_capability_names_parse() {
        let spec = parse_config(
            br#"{"process":{"cwd":"/","args":["sh"],"capabilities":{"bounding":["CAP_FUTURE_THING","CAP_KILL"]}}}"#,
        )
        .unwrap();
        let caps = spec.process.unwrap().capabilities.unwrap();
        assert_eq!(caps.bounding.unwrap().len(), 2);
    }
}
