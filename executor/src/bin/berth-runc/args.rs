//! The command line, with runc's command set and flag names. runc's parser
//! also accepts single-dash long flags (`-bundle`, `-no-subreaper`, which
//! go-runc emits), so those are rewritten to the double-dash form first.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "berth-runc",
    version,
    about = "A runc-compatible OCI container runtime",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Root directory for container state
    #[arg(long, default_value = berth_executor::container::DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Write log lines to this file (default: stderr)
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long, default_value = "text")]
    pub log_format: String,
    /// Enable debug logging
    #[arg(long)]
    pub debug: bool,
    /// Path to the criu binary
    #[arg(long, default_value = "criu")]
    pub criu: PathBuf,
    /// Use the systemd cgroup driver (not supported: create fails with an error)
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Ignored (rootless mode is detected from the config)
    #[arg(long)]
    pub rootless: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Default)]
pub struct CreateArgs {
    /// Path to the bundle directory
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is true
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// File to write the container init's pid to
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root
    #[arg(long)]
    pub no_pivot: bool,
    /// Keep the caller's session keyring instead of a new one per container
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass this many extra fds (from 3) to the container process
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: i32,
    /// Container id
    pub id: String,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container (its process waits for `start`)
    Create(CreateArgs),
    /// Start the user process of a created container
    Start { id: String },
    /// Create and start a container, then wait for it unless --detach
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once the container has started
        #[arg(short = 'd', long)]
        detach: bool,
        /// Keep the container's state after it exits
        #[arg(long)]
        keep: bool,
        /// Do not become a subreaper
        #[arg(long)]
        no_subreaper: bool,
    },
    /// Print a container's state as JSON
    State { id: String },
    /// Send a signal (default SIGTERM) to a container's init, or with --all to every process
    Kill {
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Delete a container and its resources
    Delete {
        /// Kill a running container first
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// Run a new process inside a running container
    Exec(ExecArgs),
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// List a container's processes
    Ps {
        /// table or json
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        id: String,
        /// Arguments for ps(1) in table format
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// List containers
    List {
        /// table or json
        #[arg(short = 'f', long, default_value = "table")]
        format: String,
        /// Print only ids
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Print container resource statistics (and OOM events)
    Events {
        /// Print stats once and exit
        #[arg(long)]
        stats: bool,
        /// Interval between stats, e.g. 5s, 500ms
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Update a container's resource limits
    Update(UpdateArgs),
    /// Checkpoint a running container with CRIU
    Checkpoint(CheckpointArgs),
    /// Restore a container from a CRIU checkpoint
    Restore(RestoreArgs),
    /// Write a default config.json
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        /// Map the caller's uid/gid into a user namespace
        #[arg(long)]
        rootless: bool,
    },
    /// Print the features this runtime supports as JSON
    Features,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Working directory in the container
    #[arg(long)]
    pub cwd: Option<String>,
    /// Extra environment variables (KEY=value)
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Allocate a pseudo-terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    /// uid[:gid] to run as
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional gids
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// JSON file holding the OCI process to run
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Return once the process has started
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    #[arg(long)]
    pub process_label: Option<String>,
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Set no_new_privs
    #[arg(long)]
    pub no_new_privs: bool,
    /// Add a capability
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: i32,
    /// Accepted for compatibility
    #[arg(long)]
    pub ignore_paused: bool,
    pub id: String,
    /// Command and arguments (when --process is not given)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// JSON LinuxResources file, or - for stdin
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    #[arg(long)]
    pub cpu_period: Option<u64>,
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    #[arg(long)]
    pub cpu_share: Option<u64>,
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    #[arg(long)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with k/m/g suffix; -1 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    pub id: String,
}

#[derive(Args, Debug, Default)]
pub struct CriuArgs {
    /// Directory for the checkpoint images
    #[arg(long)]
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's logs and work files
    #[arg(long)]
    pub work_path: Option<PathBuf>,
    #[arg(long)]
    pub tcp_established: bool,
    #[arg(long)]
    pub ext_unix_sk: bool,
    #[arg(long)]
    pub shell_job: bool,
    #[arg(long)]
    pub file_locks: bool,
    /// Namespaces CRIU should leave to the runtime (e.g. network)
    #[arg(long)]
    pub empty_ns: Vec<String>,
    /// CRIU cgroup mode: soft, full, strict, ignore
    #[arg(long)]
    pub manage_cgroups_mode: Option<String>,
    #[arg(long)]
    pub auto_dedup: bool,
    #[arg(long)]
    pub lazy_pages: bool,
}

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Previous checkpoint for incremental dumps
    #[arg(long)]
    pub parent_path: Option<PathBuf>,
    /// Keep the container running after the checkpoint
    #[arg(long)]
    pub leave_running: bool,
    /// Dump only memory (iterative pre-dump)
    #[arg(long)]
    pub pre_dump: bool,
    #[arg(long)]
    pub page_server: Option<String>,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub criu: CriuArgs,
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[arg(long)]
    pub no_subreaper: bool,
    #[arg(long)]
    pub no_pivot: bool,
    #[arg(long)]
    pub lsm_profile: Option<String>,
    #[arg(long)]
    pub lsm_mount_context: Option<String>,
    pub id: String,
}

/// Rewrites Go-style single-dash long flags (`-bundle x`, `-no-subreaper`)
/// into clap's `--bundle x`, up to the subcommand's first positional
/// argument, so a container command like `ls -la` is left alone.
pub fn normalize(args: Vec<OsString>) -> Vec<OsString> {
    let cmd = Cli::command();
    let longs_of = |c: &clap::Command| -> Vec<(String, bool)> {
        c.get_arguments()
            .filter_map(|a| {
                a.get_long()
                    .map(|l| (l.to_string(), a.get_action().takes_values()))
            })
            .collect()
    };
    let global = longs_of(&cmd);
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    if let Some(argv0) = iter.next() {
        out.push(argv0);
    }
    let mut longs = global.clone();
    let mut in_sub = false;
    let mut expect_value = false;
    for arg in iter.by_ref() {
        let s = arg.to_string_lossy().into_owned();
        if expect_value {
            expect_value = false;
            out.push(arg);
            continue;
        }
        if s == "--" {
            out.push(arg);
            break;
        }
        let (flag, has_inline) = match s.strip_prefix("--") {
            Some(rest) => (
                Some(rest.split('=').next().unwrap_or("").to_string()),
                rest.contains('='),
            ),
            None => match s.strip_prefix('-') {
                Some(rest) if rest.len() > 1 => {
                    let name = rest.split('=').next().unwrap_or("").to_string();
                    if longs.iter().any(|(l, _)| *l == name) {
                        out.push(OsString::from(format!("-{s}")));
                        expect_value =
                            !rest.contains('=') && longs.iter().any(|(l, v)| *l == name && *v);
                        continue;
                    }
                    (None, false)
                }
                _ => (None, false),
            },
        };
        if let Some(name) = flag {
            expect_value = !has_inline && longs.iter().any(|(l, v)| *l == name && *v);
            out.push(arg);
            continue;
        }
        if s.starts_with('-') {
            out.push(arg);
            continue;
        }
        // A positional: the subcommand name, then its first positional.
        out.push(arg);
        if in_sub {
            break;
        }
        match cmd.find_subcommand(&s) {
            Some(sub) => {
                longs = longs_of(sub);
                in_sub = true;
            }
            None => break,
        }
    }
    out.extend(iter);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(args: &[&str]) -> Vec<String> {
        normalize(args.iter().map(OsString::from).collect())
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        assert_eq!(
            n(&[
                "r",
                "-root",
                "/x",
                "restore",
                "-no-subreaper",
                "-bundle",
                "/b",
                "id"
            ]),
            [
                "r",
                "--root",
                "/x",
                "restore",
                "--no-subreaper",
                "--bundle",
                "/b",
                "id"
            ]
        );
    }

    #[test]
    fn container_command_is_left_alone() {
        assert_eq!(
            n(&["r", "exec", "-t", "id", "ls", "-la", "-bundle"]),
            ["r", "exec", "-t", "id", "ls", "-la", "-bundle"]
        );
    }

    #[test]
    fn parses_runc_invocations() {
        let cli = Cli::try_parse_from(normalize(
            [
                "r",
                "--root",
                "/run/x",
                "--log",
                "/l.json",
                "--log-format",
                "json",
                "create",
                "--bundle",
                "/b",
                "--pid-file",
                "/b/init.pid",
                "c1",
            ]
            .iter()
            .map(OsString::from)
            .collect(),
        ))
        .unwrap();
        match cli.command {
            Command::Create(c) => {
                assert_eq!(c.id, "c1");
                assert_eq!(c.bundle, PathBuf::from("/b"));
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["r", "kill", "--all", "c1", "9"]).unwrap();
        assert!(matches!(cli.command, Command::Kill { all: true, .. }));
        let cli = Cli::try_parse_from([
            "r",
            "exec",
            "--process",
            "/p.json",
            "--detach",
            "--pid-file",
            "/p",
            "c1",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Exec(ExecArgs { detach: true, .. })
        ));
    }
}
