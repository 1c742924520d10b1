//! OCI hooks the runtime runs itself (prestart, createRuntime, poststart,
//! poststop): the container state goes to the hook's stdin, the hook's
//! `timeout` is enforced, and a non-zero exit is an error naming the hook.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::spec::Hook;

/// Runs one hook to completion. `field` names it, e.g. `hooks.prestart[0]`.
pub(crate) fn run(hook: &Hook, state: &[u8], field: &str) -> Result<()> {
    let err = |message: String| Error::Hook {
        hook: format!("{field} ({})", hook.path),
        message,
    };
    let mut cmd = Command::new(&hook.path);
    if let Some((arg0, rest)) = hook.args.split_first() {
        cmd.arg0(arg0).args(rest);
    }
    cmd.env_clear();
    for e in &hook.env {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| err(format!("cannot run: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its state; that is not an error.
        let _ = stdin.write_all(state);
    }
    let deadline = hook
        .timeout
        .map(|t| Instant::now() + Duration::from_secs(t.max(1) as u64));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(err(format!("wait: {e}"))),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(err(format!(
                "timed out after {}s",
                hook.timeout.unwrap_or(0)
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if status.success() {
        Ok(())
    } else {
        Err(err(format!("failed: {status}")))
    }
}

/// Runs a list of hooks, stopping at the first failure.
pub(crate) fn run_all(hooks: &[Hook], state: &[u8], kind: &str) -> Result<()> {
    for (i, h) in hooks.iter().enumerate() {
        run(h, state, &format!("hooks.{kind}[{i}]"))?;
    }
    Ok(())
}

/// Runs every hook of a list, logging failures as warnings (poststart,
/// poststop: the spec says the lifecycle continues).
pub(crate) fn run_all_warn(hooks: &[Hook], state: &[u8], kind: &str, container_id: &str) {
    for (i, h) in hooks.iter().enumerate() {
        if let Err(e) = run(h, state, &format!("hooks.{kind}[{i}]")) {
            tracing::warn!(container_id, "{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(script: &str, timeout: Option<i64>) -> Hook {
        Hook {
            path: "/bin/sh".into(),
            args: vec!["sh".into(), "-c".into(), script.into()],
            env: vec!["GREETING=hi".into()],
            timeout,
        }
    }

    #[test]
    fn hook_reads_state_and_sees_only_its_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(
            &format!("cat > {0}; echo \"$GREETING:$HOME\" >> {0}", out.display()),
            Some(5),
        );
        run(&h, b"{\"id\":\"x\"}", "hooks.prestart[0]").unwrap();
        assert_eq!(std::fs::read_to_string(out).unwrap(), "{\"id\":\"x\"}hi:\n");
    }

    #[test]
    fn failing_hook_is_an_error_naming_it() {
        let e = run(&hook("exit 3", None), b"", "hooks.createRuntime[1]").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("hooks.createRuntime[1]") && msg.contains("exit status: 3"),
            "{msg}"
        );
    }

    #[test]
    fn hook_that_ignores_its_stdin_is_not_an_error() {
        // Larger than a pipe buffer, so the write meets a closed pipe.
        let state = vec![b' '; 1 << 20];
        run(&hook("exit 0", Some(5)), &state, "hooks.poststart[0]").unwrap();
    }

    #[test]
    fn hook_past_its_timeout_is_killed() {
        let start = Instant::now();
        let e = run(&hook("sleep 10", Some(1)), b"", "hooks.prestart[0]").unwrap_err();
        assert!(e.to_string().contains("timed out"), "{e}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
