//! The shim's command line, as containerd 1.6+ passes it: Go `flag` style
//! (`-namespace ns -address /run/containerd/containerd.sock -id ID ...`)
//! followed by the action (`start`, `delete`, or nothing for the server).

/// What containerd asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    pub namespace: String,
    pub id: String,
    /// containerd's gRPC address (used to derive the shim socket name).
    pub address: String,
    pub publish_binary: String,
    /// Bundle directory (given to `delete`; `start` runs with cwd = bundle).
    pub bundle: String,
    /// A socket to serve on (set by a `start` that re-executes the shim).
    pub socket: String,
    pub debug: bool,
    pub version: bool,
    pub info: bool,
    pub action: Action,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Action {
    Start,
    Delete,
    /// No action word: serve on `-socket` (or the inherited fd 3).
    #[default]
    Serve,
}

/// Parses Go-style flags: `-name value`, `--name value`, `-name=value`,
/// boolean flags without a value. Parsing stops at the first positional
/// argument, the action.
pub fn parse(argv: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = argv.into_iter().skip(1).peekable();
    while let Some(arg) = it.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            a.action = match arg.as_str() {
                "start" => Action::Start,
                "delete" => Action::Delete,
                other => {
                    return Err(format!(
                        "unknown action {other:?} (expected start or delete)"
                    ))
                }
            };
            break;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        let mut value = |n: &str| -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .ok_or_else(|| format!("flag needs an argument: -{n}")),
            }
        };
        match name {
            "namespace" => a.namespace = value(name)?,
            "id" => a.id = value(name)?,
            "address" => a.address = value(name)?,
            "publish-binary" => a.publish_binary = value(name)?,
            "bundle" => a.bundle = value(name)?,
            "socket" => a.socket = value(name)?,
            "debug" => a.debug = inline.as_deref() != Some("false"),
            "v" | "version" => a.version = true,
            "info" => a.info = true,
            other => return Err(format!("flag provided but not defined: -{other}")),
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Args, String> {
        parse(std::iter::once("shim".to_string()).chain(s.split_whitespace().map(String::from)))
    }

    #[test]
    fn start_as_containerd_calls_it() {
        let a = p("-namespace proto -address /tmp/c.sock -publish-binary /usr/bin/containerd -id c1 -debug start").unwrap();
        assert_eq!(a.namespace, "proto");
        assert_eq!(a.address, "/tmp/c.sock");
        assert_eq!(a.id, "c1");
        assert!(a.debug);
        assert_eq!(a.action, Action::Start);
    }

    #[test]
    fn delete_with_bundle() {
        let a = p("-namespace n -address a -publish-binary b -id c1 -bundle /x/y delete").unwrap();
        assert_eq!(a.bundle, "/x/y");
        assert_eq!(a.action, Action::Delete);
    }

    #[test]
    fn no_action_is_serve_and_errors_are_go_like() {
        assert_eq!(p("-namespace=n -id c").unwrap().action, Action::Serve);
        assert_eq!(
            p("-bogus 1").unwrap_err(),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(p("-id").unwrap_err(), "flag needs an argument: -id");
        assert!(p("-v").unwrap().version);
    }
}
