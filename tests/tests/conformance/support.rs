//! What every conformance test uses: a per-test context (runtime with its
//! own state root, unique ids, bundles with the probe), running the probe in
//! a container, and leak checks around every container.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_tests::bundle::PROBE_PATH;
use berth_tests::leaks::{self, Snapshot, Target};
use berth_tests::runtime::{CreateOptions, Io, Kind, Output};
use berth_tests::{Bundle, Runtime};
use libtest_mimic::Failed;
use serde_json::Value;

pub type TestResult = Result<(), Failed>;

/// Fails the test with a formatted message unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(libtest_mimic::Failed::from(format!($($msg)+)));
        }
    };
}

/// The prefix of an error that means "skip", not "fail" (see `skip`).
pub const SKIP_PREFIX: &str = "skip: ";

/// Ends the test as skipped with `reason` (e.g. the runtime lacks a command).
pub fn skip(reason: &str) -> TestResult {
    Err(Failed::from(format!("{SKIP_PREFIX}{reason}")))
}

/// One test's world: a runtime with a private state root.
pub struct Ctx {
    pub rt: Runtime,
    pub name: String,
    counter: AtomicUsize,
}

impl Ctx {
    pub fn new(name: &str) -> io::Result<Ctx> {
        Ok(Ctx {
            rt: Runtime::from_env()?,
            name: name.replace("::", "-"),
            counter: AtomicUsize::new(0),
        })
    }

    pub fn kind(&self) -> Kind {
        self.rt.kind
    }

    /// berth-specific checks (error wording) only apply to berth-runc.
    pub fn is_berth(&self) -> bool {
        self.rt.kind == Kind::Berth
    }

    /// A container id unique to this test run.
    pub fn id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let short: String = self
            .name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        format!("bt{}-{}-{n}", std::process::id(), short)
    }

    /// A cgroupsPath unique to this test run (absolute).
    pub fn cgroup_path(&self, tag: &str) -> String {
        format!("/berth-conf-{}-{tag}", std::process::id())
    }

    /// A bundle with the probe installed and process.args = [probe].
    pub fn bundle(&self) -> io::Result<Bundle> {
        let mut bundle = Bundle::new(&self.name)?;
        bundle.install_probe()?;
        bundle.set_args(&[PROBE_PATH]);
        Ok(bundle)
    }

    /// What a container from `bundle` with `id` could leave behind.
    pub fn target(&self, bundle: &Bundle, id: &str) -> Target {
        let cgroup_paths = bundle
            .spec
            .linux
            .as_ref()
            .and_then(|l| l.cgroups_path.clone())
            .into_iter()
            .collect();
        Target {
            bundle: Some(bundle.dir.clone()),
            ids: vec![id.to_string()],
            cgroup_paths,
            state_root: Some(self.rt.root.path().to_path_buf()),
            pids: Vec::new(),
        }
    }

    pub fn snapshot(&self, bundle: &Bundle, id: &str) -> Snapshot {
        Snapshot::take(&self.target(bundle, id))
    }

    /// Writes the config, runs the container in the foreground and returns
    /// its output; fails unless it exits 0 and leaves nothing behind.
    pub fn run(&self, bundle: &Bundle) -> Result<Output, Failed> {
        self.run_with(bundle, &CreateOptions::default(), Io::default())
    }

    pub fn run_with(
        &self,
        bundle: &Bundle,
        opts: &CreateOptions,
        io: Io,
    ) -> Result<Output, Failed> {
        bundle.write_config()?;
        let id = self.id();
        let before = self.snapshot(bundle, &id);
        let out = self.rt.run_with(&id, &bundle.dir, opts, io)?;
        let result = out.ok(&format!("run {id}"));
        match (result, leaks::check_clean(&before)) {
            (Ok(out), Ok(())) => Ok(out),
            (Ok(_), Err(leak)) => Err(leak.into()),
            (Err(e), Ok(())) => Err(e.into()),
            (Err(e), Err(leak)) => Err(format!(
                "{e}
and {leak}"
            )
            .into()),
        }
    }

    /// Runs the probe with `args` (commands chained with "+"; none = report)
    /// and returns the JSON objects it printed.
    pub fn probe(&self, bundle: &mut Bundle, args: &[&str]) -> Result<Vec<Value>, Failed> {
        let mut all = vec![PROBE_PATH];
        all.extend_from_slice(args);
        bundle.set_args(&all);
        let out = self.run(bundle)?;
        parse_lines(&out.stdout)
    }

    /// The probe's report (no arguments).
    pub fn report(&self, bundle: &mut Bundle) -> Result<Value, Failed> {
        let mut lines = self.probe(bundle, &[])?;
        ensure!(lines.len() == 1, "expected one report, got {lines:?}");
        Ok(lines.remove(0))
    }

    /// Creates a container whose stdout and stderr go to `<bundle>/out.log`.
    pub fn create(&self, bundle: &Bundle, id: &str) -> Result<(), Failed> {
        self.create_with(bundle, id, &CreateOptions::default())
    }

    pub fn create_with(
        &self,
        bundle: &Bundle,
        id: &str,
        opts: &CreateOptions,
    ) -> Result<(), Failed> {
        bundle.write_config()?;
        let io = Io {
            output: Some(out_log(bundle)?),
            ..Io::default()
        };
        self.rt
            .create_with(id, &bundle.dir, opts, io)?
            .ok(&format!("create {id}"))?;
        Ok(())
    }

    /// Creates a container from `bundle`, runs `f` with its id, force-deletes
    /// it if `f` failed, and checks that nothing is left behind.
    pub fn with_created(&self, bundle: &Bundle, f: impl FnOnce(&str) -> TestResult) -> TestResult {
        let id = self.id();
        let before = self.snapshot(bundle, &id);
        self.create(bundle, &id)?;
        let checked = f(&id);
        if checked.is_err() {
            self.destroy(&id);
        }
        checked?;
        leaks::check_clean(&before)?;
        Ok(())
    }

    /// Kills (if needed) and deletes a container, ignoring errors: cleanup.
    pub fn destroy(&self, id: &str) {
        let _ = self.rt.delete_force(id);
    }

    /// Waits for `status`, within 10 s.
    pub fn wait(&self, id: &str, status: &str) -> Result<(), Failed> {
        Ok(self.rt.wait_status(id, status, Duration::from_secs(10))?)
    }

    /// The pid `state` reports.
    pub fn pid(&self, id: &str) -> Result<i32, Failed> {
        let state = self.rt.state(id)?;
        let pid = state["pid"].as_i64().unwrap_or(0) as i32;
        ensure!(pid > 0, "state of {id} has no pid: {state}");
        Ok(pid)
    }
}

/// `<bundle>/out.log`, opened for appending (shared with the container).
pub fn out_log(bundle: &Bundle) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(bundle.dir.join("out.log"))
}

pub fn read_out_log(bundle: &Bundle) -> io::Result<String> {
    std::fs::read_to_string(bundle.dir.join("out.log"))
}

/// One JSON object per non-empty line.
pub fn parse_lines(text: &str) -> Result<Vec<Value>, Failed> {
    text.lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| {
            serde_json::from_str(l).map_err(|e| Failed::from(format!("bad probe JSON ({e}): {l}")))
        })
        .collect()
}

/// The first JSON object the probe printed in `text`; `what` names the
/// command for the error when there is none.
pub fn first_report(text: &str, what: &str) -> Result<Value, Failed> {
    parse_lines(text)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{what} printed nothing").into())
}

/// The host's own namespace link (e.g. "net:[4026531840]").
pub fn host_ns(name: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{name}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// A mountinfo line from a probe report whose mount point is `point`
/// (the last one, as later mounts hide earlier ones).
pub fn mount_line<'a>(report: &'a Value, point: &str) -> Option<&'a str> {
    report["mountinfo"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .rfind(|l| l.split(' ').nth(4) == Some(point))
}

/// The per-mount options (field 6) of a mountinfo line.
pub fn mount_options(line: &str) -> Vec<String> {
    line.split(' ')
        .nth(5)
        .map(|o| o.split(',').map(String::from).collect())
        .unwrap_or_default()
}

/// The optional fields (shared:N, master:N, unbindable) of a mountinfo line.
pub fn mount_tags(line: &str) -> Vec<String> {
    line.split(' ')
        .skip(6)
        .take_while(|f| *f != "-")
        .map(String::from)
        .collect()
}

/// A bind-mount entry for the spec.
pub fn bind(dest: &str, source: &Path, options: &[&str]) -> berth_executor::spec::Mount {
    berth_executor::spec::Mount {
        destination: dest.into(),
        typ: Some("bind".into()),
        source: Some(source.display().to_string()),
        options: options.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// A mount entry with a file system type.
pub fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> berth_executor::spec::Mount {
    berth_executor::spec::Mount {
        destination: dest.into(),
        typ: Some(typ.into()),
        source: Some(source.into()),
        options: options.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// Strings from string slices.
pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
