//! `google.protobuf.Any` with containerd's type URLs.
//!
//! containerd (Go `typeurl`) names protobuf messages by their bare full name, e.g.
//! `containerd.events.TaskExit`, with no `type.googleapis.com/` prefix; JSON payloads (OCI
//! types) use `types.containerd.io/...` URLs. URLs are compile-time constants here rather than
//! looked up through protobuf reflection, which keeps descriptor parsing out of the shim.

use protobuf::Message;

pub use containerd_shim_protos::cgroups::metrics::Metrics as CgroupsV1Metrics;
pub use containerd_shim_protos::cgroups_v2::metrics::Metrics as CgroupsV2Metrics;
pub use containerd_shim_protos::events::task::{
    TaskCheckpointed, TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM,
    TaskPaused, TaskResumed, TaskStart,
};
pub use containerd_shim_protos::shim::oci::{
    CheckpointOptions, Options as RuncOptions, ProcessDetails,
};
pub use protobuf::well_known_types::any::Any;

use crate::error::{Error, Result};
use crate::status::skip;

/// runc shim options (`CreateTaskRequest.options`, shim `start` stdin).
pub const RUNC_OPTIONS: &str = "containerd.runc.v1.Options";
/// Generic runtime options: TOML in `config_body` or a file named by `config_path` (CRI sends
/// these for runtimes not named `io.containerd.runc*`).
pub const RUNTIME_OPTIONS: &str = "runtimeoptions.v1.Options";
/// `CheckpointTaskRequest.options`.
pub const CHECKPOINT_OPTIONS: &str = "containerd.runc.v1.CheckpointOptions";
/// `ProcessInfo.info` for exec processes in `PidsResponse`.
pub const PROCESS_DETAILS: &str = "containerd.runc.v1.ProcessDetails";
/// JSON OCI runtime spec (container records).
pub const OCI_SPEC: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
/// JSON OCI Process (`ExecProcessRequest.spec`).
pub const OCI_PROCESS: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
/// JSON OCI LinuxResources (`UpdateTaskRequest.resources`).
pub const OCI_LINUX_RESOURCES: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
/// `StatsResponse.stats` on cgroup v1 / hybrid hosts.
pub const CGROUPS_V1_METRICS: &str = "io.containerd.cgroups.v1.Metrics";
/// `StatsResponse.stats` on unified (v2) hosts.
pub const CGROUPS_V2_METRICS: &str = "io.containerd.cgroups.v2.Metrics";

/// A protobuf message with its containerd type URL.
pub trait TypeUrl: Message {
    const TYPE_URL: &'static str;
}

/// A task event: its type URL plus the topic it is published under.
pub trait Event: TypeUrl {
    const TOPIC: &'static str;
}

macro_rules! type_urls {
    ($($ty:ty => $url:expr;)*) => {
        $(impl TypeUrl for $ty { const TYPE_URL: &'static str = $url; })*
    };
}

macro_rules! events {
    ($($ty:ident => $topic:literal;)*) => {
        $(
            impl TypeUrl for $ty {
                const TYPE_URL: &'static str = concat!("containerd.events.", stringify!($ty));
            }
            impl Event for $ty {
                const TOPIC: &'static str = $topic;
            }
        )*
    };
}

type_urls! {
    RuncOptions => RUNC_OPTIONS;
    CheckpointOptions => CHECKPOINT_OPTIONS;
    ProcessDetails => PROCESS_DETAILS;
    CgroupsV1Metrics => CGROUPS_V1_METRICS;
    CgroupsV2Metrics => CGROUPS_V2_METRICS;
}

events! {
    TaskCreate => "/tasks/create";
    TaskStart => "/tasks/start";
    TaskDelete => "/tasks/delete";
    TaskExit => "/tasks/exit";
    TaskOOM => "/tasks/oom";
    TaskExecAdded => "/tasks/exec-added";
    TaskExecStarted => "/tasks/exec-started";
    TaskPaused => "/tasks/paused";
    TaskResumed => "/tasks/resumed";
    TaskCheckpointed => "/tasks/checkpointed";
}

/// True if `url` names `name`: exactly, or as the last path segment of a prefixed URL
/// (`type.googleapis.com/<name>`), which Go's protobuf registry also accepts.
pub fn url_matches(url: &str, name: &str) -> bool {
    url == name
        || url
            .strip_suffix(name)
            .is_some_and(|prefix| prefix.ends_with('/'))
}

/// Packs `message` with its bare type URL.
pub fn pack<M: TypeUrl>(message: &M) -> Result<Any> {
    let value = message.write_to_bytes().map_err(|source| Error::Encode {
        what: M::TYPE_URL,
        source,
    })?;
    Ok(any(M::TYPE_URL, value))
}

/// Unpacks `any` as `M`, checking the type URL.
pub fn unpack<M: TypeUrl>(any: &Any) -> Result<M> {
    if !url_matches(&any.type_url, M::TYPE_URL) {
        return Err(Error::TypeUrl {
            got: any.type_url.clone(),
            expected: M::TYPE_URL.to_string(),
        });
    }
    M::parse_from_bytes(&any.value).map_err(|source| Error::Decode {
        what: M::TYPE_URL,
        source,
    })
}

/// True if `any` holds an `M`.
pub fn is<M: TypeUrl>(any: &Any) -> bool {
    url_matches(&any.type_url, M::TYPE_URL)
}

/// Builds an `Any` from a type URL and an encoded value.
pub fn any(type_url: &str, value: Vec<u8>) -> Any {
    let mut a = Any::new();
    a.type_url = type_url.to_string();
    a.value = value;
    a
}

/// Packs a JSON document (e.g. an OCI Process for [`OCI_PROCESS`]).
pub fn pack_json(type_url: &str, json: impl Into<Vec<u8>>) -> Any {
    any(type_url, json.into())
}

/// The JSON bytes of `any` after checking its URL. (The Go runc shim ignores the URL of
/// `UpdateTaskRequest.resources`; read `any.value` directly to be as lenient.)
pub fn unpack_json<'a>(any: &'a Any, type_url: &str) -> Result<&'a [u8]> {
    if any.type_url != type_url {
        return Err(Error::TypeUrl {
            got: any.type_url.clone(),
            expected: type_url.to_string(),
        });
    }
    Ok(&any.value)
}

/// `runtimeoptions.v1.Options{1 type_url, 2 config_path, 3 config_body}`. Not generated by
/// containerd-shim-protos, so decoded here. `config_body` is `bytes` in containerd 2.x and
/// holds TOML text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeOptions {
    pub type_url: String,
    pub config_path: String,
    pub config_body: Vec<u8>,
}

impl RuntimeOptions {
    pub fn decode(buf: &[u8]) -> Result<RuntimeOptions> {
        Self::read(buf).map_err(|source| Error::Decode {
            what: RUNTIME_OPTIONS,
            source,
        })
    }

    fn read(buf: &[u8]) -> protobuf::Result<RuntimeOptions> {
        let mut is = protobuf::CodedInputStream::from_bytes(buf);
        let mut o = RuntimeOptions::default();
        while let Some(tag) = is.read_raw_tag_or_eof()? {
            match tag {
                10 => o.type_url = is.read_string()?,
                18 => o.config_path = is.read_string()?,
                26 => o.config_body = is.read_bytes()?,
                other => skip(&mut is, other)?,
            }
        }
        Ok(o)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing into a Vec cannot fail.
        let _ = self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) -> protobuf::Result<()> {
        let mut os = protobuf::CodedOutputStream::vec(out);
        if !self.type_url.is_empty() {
            os.write_string(1, &self.type_url)?;
        }
        if !self.config_path.is_empty() {
            os.write_string(2, &self.config_path)?;
        }
        if !self.config_body.is_empty() {
            os.write_bytes(3, &self.config_body)?;
        }
        os.flush()
    }

    /// `config_body` as text, if it is UTF-8.
    pub fn config_body_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.config_body).ok()
    }
}

/// The runtime options a shim can be given, in `start`'s stdin or `CreateTaskRequest.options`.
#[derive(Debug, Clone, PartialEq)]
pub enum ShimOptions {
    /// No options (empty stdin, or an `Any` with no type URL).
    None,
    /// `containerd.runc.v1.Options` (an empty value decodes to all defaults).
    Runc(RuncOptions),
    /// `runtimeoptions.v1.Options`.
    Runtime(RuntimeOptions),
}

/// Interprets an options `Any`. Other type URLs are an [`Error::TypeUrl`].
pub fn shim_options(any: &Any) -> Result<ShimOptions> {
    if any.type_url.is_empty() {
        return Ok(ShimOptions::None);
    }
    if url_matches(&any.type_url, RUNC_OPTIONS) {
        return unpack::<RuncOptions>(any).map(ShimOptions::Runc);
    }
    if url_matches(&any.type_url, RUNTIME_OPTIONS) {
        return RuntimeOptions::decode(&any.value).map(ShimOptions::Runtime);
    }
    Err(Error::TypeUrl {
        got: any.type_url.clone(),
        expected: format!("{RUNC_OPTIONS} or {RUNTIME_OPTIONS}"),
    })
}

/// Decodes the bytes containerd writes to the shim's `start` stdin: a marshalled `Any`, or
/// nothing at all when the container has no options.
pub fn shim_options_from_stdin(bytes: &[u8]) -> Result<ShimOptions> {
    if bytes.is_empty() {
        return Ok(ShimOptions::None);
    }
    let any = Any::parse_from_bytes(bytes).map_err(|source| Error::Decode {
        what: "google.protobuf.Any",
        source,
    })?;
    shim_options(&any)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protobuf::MessageFull;

    fn full_name<M: MessageFull>() -> String {
        M::descriptor().full_name().to_string()
    }

    #[test]
    fn constants_match_generated_descriptors() {
        assert_eq!(full_name::<RuncOptions>(), RUNC_OPTIONS);
        assert_eq!(full_name::<CheckpointOptions>(), CHECKPOINT_OPTIONS);
        assert_eq!(full_name::<ProcessDetails>(), PROCESS_DETAILS);
        assert_eq!(full_name::<CgroupsV1Metrics>(), CGROUPS_V1_METRICS);
        assert_eq!(full_name::<CgroupsV2Metrics>(), CGROUPS_V2_METRICS);
        assert_eq!(full_name::<TaskCreate>(), TaskCreate::TYPE_URL);
        assert_eq!(full_name::<TaskStart>(), TaskStart::TYPE_URL);
        assert_eq!(full_name::<TaskDelete>(), TaskDelete::TYPE_URL);
        assert_eq!(full_name::<TaskExit>(), TaskExit::TYPE_URL);
        assert_eq!(full_name::<TaskOOM>(), TaskOOM::TYPE_URL);
        assert_eq!(full_name::<TaskExecAdded>(), TaskExecAdded::TYPE_URL);
        assert_eq!(full_name::<TaskExecStarted>(), TaskExecStarted::TYPE_URL);
        assert_eq!(full_name::<TaskPaused>(), TaskPaused::TYPE_URL);
        assert_eq!(full_name::<TaskResumed>(), TaskResumed::TYPE_URL);
        assert_eq!(full_name::<TaskCheckpointed>(), TaskCheckpointed::TYPE_URL);
        assert_eq!(TaskExit::TYPE_URL, "containerd.events.TaskExit");
        assert_eq!(TaskExecStarted::TOPIC, "/tasks/exec-started");
        assert_eq!(
            TaskOOM::TOPIC,
            containerd_shim_protos::topics::TASK_OOM_EVENT_TOPIC
        );
    }

    #[test]
    fn event_round_trip() {
        let mut exit = TaskExit::new();
        exit.container_id = "c1".into();
        exit.id = "c1".into();
        exit.pid = 4242;
        exit.exit_status = 137;
        let a = pack(&exit).unwrap();
        assert_eq!(a.type_url, "containerd.events.TaskExit");
        assert!(is::<TaskExit>(&a));
        assert!(!is::<TaskStart>(&a));
        assert_eq!(unpack::<TaskExit>(&a).unwrap(), exit);
        let err = unpack::<TaskStart>(&a).unwrap_err();
        assert!(matches!(err, Error::TypeUrl { .. }), "{err}");
    }

    #[test]
    fn prefixed_urls_are_accepted() {
        assert!(url_matches(
            "type.googleapis.com/containerd.runc.v1.Options",
            RUNC_OPTIONS
        ));
        assert!(url_matches(RUNC_OPTIONS, RUNC_OPTIONS));
        assert!(!url_matches("xcontainerd.runc.v1.Options", RUNC_OPTIONS));
        assert!(!url_matches("containerd.runc.v1.OptionsX", RUNC_OPTIONS));
    }

    #[test]
    fn metrics_pack_with_v1_and_v2_urls() {
        let mut m1 = CgroupsV1Metrics::new();
        m1.mut_pids().current = 3;
        let a1 = pack(&m1).unwrap();
        assert_eq!(a1.type_url, "io.containerd.cgroups.v1.Metrics");
        assert_eq!(unpack::<CgroupsV1Metrics>(&a1).unwrap().pids().current, 3);
        let mut m2 = CgroupsV2Metrics::new();
        m2.mut_memory().usage = 1 << 20;
        let a2 = pack(&m2).unwrap();
        assert_eq!(a2.type_url, "io.containerd.cgroups.v2.Metrics");
        assert_eq!(
            unpack::<CgroupsV2Metrics>(&a2).unwrap().memory().usage,
            1 << 20
        );
    }

    #[test]
    fn json_payloads() {
        let a = pack_json(OCI_PROCESS, br#"{"args":["sh"]}"#.to_vec());
        assert_eq!(unpack_json(&a, OCI_PROCESS).unwrap(), br#"{"args":["sh"]}"#);
        assert!(unpack_json(&a, OCI_LINUX_RESOURCES).is_err());
    }

    #[test]
    fn protocol_doc_runtime_options_stdin() {
        // containerd-protocol.md A2: 46 bytes = Any{"runtimeoptions.v1.Options",
        // {2: "/etc/probe.toml"}}.
        let opts = RuntimeOptions {
            config_path: "/etc/probe.toml".into(),
            ..Default::default()
        };
        let wire = any(RUNTIME_OPTIONS, opts.encode())
            .write_to_bytes()
            .unwrap();
        assert_eq!(wire.len(), 46);
        assert_eq!(
            shim_options_from_stdin(&wire).unwrap(),
            ShimOptions::Runtime(opts)
        );
    }

    #[test]
    fn runc_options_stdin_including_empty_value() {
        let mut o = RuncOptions::new();
        o.binary_name = "/usr/bin/runc-wrap".into();
        let wire = pack(&o).unwrap().write_to_bytes().unwrap();
        assert_eq!(
            shim_options_from_stdin(&wire).unwrap(),
            ShimOptions::Runc(o)
        );
        let empty = any(RUNC_OPTIONS, vec![]).write_to_bytes().unwrap();
        assert_eq!(
            shim_options_from_stdin(&empty).unwrap(),
            ShimOptions::Runc(RuncOptions::new())
        );
        assert_eq!(shim_options_from_stdin(&[]).unwrap(), ShimOptions::None);
    }

    #[test]
    fn runtime_options_toml_body() {
        let opts = RuntimeOptions {
            type_url: "io.containerd.runsc.v1.options".into(),
            config_path: String::new(),
            config_body: b"debug = true\n".to_vec(),
        };
        let back = RuntimeOptions::decode(&opts.encode()).unwrap();
        assert_eq!(back, opts);
        assert_eq!(back.config_body_str(), Some("debug = true\n"));
    }

    #[test]
    fn unknown_options_and_garbage_are_errors() {
        let other = any("containerd.other.v1.Options", vec![]);
        assert!(matches!(shim_options(&other), Err(Error::TypeUrl { .. })));
        assert!(matches!(
            shim_options_from_stdin(&[0x0a, 0x09, b'x']),
            Err(Error::Decode { .. })
        ));
    }

    #[test]
    fn checkpoint_options_and_process_details_round_trip() {
        let mut c = CheckpointOptions::new();
        c.file_locks = true;
        c.work_path = "/w".into();
        let a = pack(&c).unwrap();
        assert_eq!(a.type_url, CHECKPOINT_OPTIONS);
        assert_eq!(unpack::<CheckpointOptions>(&a).unwrap(), c);
        let mut d = ProcessDetails::new();
        d.exec_id = "e1".into();
        assert_eq!(unpack::<ProcessDetails>(&pack(&d).unwrap()).unwrap(), d);
    }
}
