//! Task lifecycle on the executor, in-process (no runtime binary is
//! exec'd): create (or prepare a restore), start, exec, delete, kill,
//! checkpoint and state. Refusals and events follow containerd's runc shim.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_executor::criu::{CheckpointOptions, CriuOptions, RestoreOptions};
use berth_executor::spec::{self, NamespaceType};
use berth_executor::{CreateOptions, ExecOptions, Status as CtrStatus};
use berth_ttrpc_api::protobuf::MessageField;
use berth_ttrpc_api::protos::events::task::TaskIO;
use berth_ttrpc_api::protos::types::task::Status as TaskStatus;
use berth_ttrpc_api::task::*;
use berth_ttrpc_api::typeurl::{self, CheckpointOptions as CpOpts, ShimOptions};
use berth_ttrpc_api::typeurl::{
    TaskCheckpointed, TaskCreate, TaskDelete, TaskExecStarted, TaskStart,
};
use berth_ttrpc_api::Status;

use crate::io::{self, StdioPaths};
use crate::process::{timestamp, Ctr, Proc, ProcState, Restore};
use crate::service::{io_status, status, Service};

/// A socket pair standing in for a console socket: the container sends
/// the pty master on `theirs`, the shim receives it on `ours`.
fn console_pair() -> Result<(OwnedFd, OwnedFd), Status> {
    berth_executor::exec::console_pair().map_err(io_status)
}

fn receive_master(ours: &OwnedFd) -> Result<OwnedFd, Status> {
    berth_executor::exec::receive_fd(ours.as_raw_fd()).map_err(io_status)
}

impl Service {
    pub(crate) fn create_task(
        &mut self,
        req: CreateTaskRequest,
    ) -> Result<CreateTaskResponse, Status> {
        if self.containers.contains_key(&req.id) {
            return Err(Status::already_exists(format!("container {}", req.id)));
        }
        let opts = match req.options.as_ref() {
            Some(any) if !any.type_url.is_empty() => {
                typeurl::shim_options(any).map_err(Status::from)?
            }
            _ => ShimOptions::None,
        };
        let no_pivot = matches!(&opts, ShimOptions::Runc(o) if o.no_pivot_root);
        let bundle = PathBuf::from(&req.bundle);
        let rootfs = bundle.join("rootfs");
        let mut mounted = false;
        for m in &req.rootfs {
            if let Err(e) = berth_executor::mount::mount(&m.type_, &m.source, &rootfs, &m.options) {
                berth_executor::mount::unmount_all(&rootfs);
                return Err(status(e));
            }
            mounted = true;
        }
        let undo_mounts = |mounted: bool| {
            if mounted {
                berth_executor::mount::unmount_all(&rootfs);
            }
        };
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let config = spec::load_bundle_config(&bundle).map_err(|e| {
            undo_mounts(mounted);
            status(e)
        })?;
        let own_pid_ns = config.linux.as_ref().is_some_and(|l| {
            l.namespaces
                .iter()
                .any(|n| n.typ == NamespaceType::Pid && n.path.is_none())
        });
        let mut ctr = Ctr {
            bundle: bundle.clone(),
            container: None,
            init: Proc::new("", stdio.clone()),
            execs: Default::default(),
            restore: None,
            own_pid_ns,
            rootfs_mounted: mounted,
            oom: None,
        };
        if !req.checkpoint.is_empty() {
            // Restore happens at Start, as with the runc shim.
            let (image_path, work_path) = match &opts {
                ShimOptions::Runc(o) if !o.criu_image_path.is_empty() => (
                    PathBuf::from(&o.criu_image_path),
                    Some(PathBuf::from(&o.criu_work_path)).filter(|p| !p.as_os_str().is_empty()),
                ),
                _ => (PathBuf::from(&req.checkpoint), None),
            };
            ctr.restore = Some(Restore {
                image_path,
                work_path,
            });
            self.containers.insert(req.id.clone(), ctr);
            self.publish(&task_create(&req, 0));
            return Ok(CreateTaskResponse::new());
        }
        // State a crashed shim left for this id (containerd ran no `delete`
        // for it): clear it if its process is gone, refuse if it runs.
        if let Ok(old) = self.runtime.load(&req.id) {
            if old.status() == CtrStatus::Stopped {
                tracing::warn!(container_id = %req.id, "removing stale state of a previous container");
                let _ = old.delete(true);
            }
        }
        let mut create = CreateOptions {
            bundle: bundle.clone(),
            no_pivot,
            ..Default::default()
        };
        let (console_ours, child_stdio) = if req.terminal {
            let (ours, theirs) = console_pair()?;
            create.console_fd = Some(theirs);
            (Some(ours), None)
        } else {
            let (child, pio) = io::open_piped(&stdio).map_err(|e| {
                undo_mounts(mounted);
                io_status(e)
            })?;
            create.stdio = Some(child.raw());
            ctr.init.io = pio;
            (None, Some(child))
        };
        let container = match self.runtime.create(&req.id, create) {
            Ok(c) => c,
            Err(e) => {
                undo_mounts(mounted);
                return Err(status(e));
            }
        };
        drop(child_stdio);
        let pid = container.pid();
        ctr.init.pid = pid;
        ctr.container = Some(container);
        self.containers.insert(req.id.clone(), ctr);
        if let Some(ours) = console_ours {
            let master = receive_master(&ours)?;
            self.watch_relay(&req.id, "", master)?;
        }
        self.watch_copiers(&req.id, "");
        self.watch_oom(&req.id);
        self.publish(&task_create(&req, pid as u32));
        let mut resp = CreateTaskResponse::new();
        resp.pid = pid as u32;
        Ok(resp)
    }

    pub(crate) fn start_init(&mut self, id: &str) -> Result<u32, Status> {
        let c = self.container_mut(id)?;
        if let Some(restore) = c.restore.take() {
            return self.restore_init(id, restore);
        }
        if c.init.state != ProcState::Created {
            return Err(Status::failed_precondition(format!(
                "container {id}: process already started"
            )));
        }
        let container = c.container.as_mut().ok_or_else(|| {
            Status::failed_precondition(format!("container {id} was not created"))
        })?;
        container.start().map_err(status)?;
        c.init.state = ProcState::Running;
        let pid = c.init.pid;
        let mut ev = TaskStart::new();
        ev.container_id = id.to_string();
        ev.pid = pid as u32;
        self.publish(&ev);
        // The process may have exited before we looked.
        if let Some(exit) = self.take_unclaimed(pid) {
            self.record_exit(pid, exit);
        }
        Ok(pid as u32)
    }

    pub(crate) fn restore_init(&mut self, id: &str, restore: Restore) -> Result<u32, Status> {
        let c = self.container_mut(id)?;
        let (child, pio) = io::open_piped(&c.init.stdio).map_err(io_status)?;
        let work = restore
            .work_path
            .unwrap_or_else(|| c.bundle.join("criu-work"));
        let opts = RestoreOptions {
            criu: CriuOptions {
                image_path: restore.image_path,
                work_path: Some(work),
                ..Default::default()
            },
            bundle: c.bundle.clone(),
            pid_file: None,
            no_pivot: false,
            stdio: Some(child.raw()),
        };
        let container = self.runtime.restore(id, opts).map_err(status)?;
        drop(child);
        let c = self.container_mut(id)?;
        let pid = container.pid();
        c.init.io = pio;
        c.init.pid = pid;
        c.init.state = ProcState::Running;
        c.container = Some(container);
        self.watch_copiers(id, "");
        self.watch_oom(id);
        let mut ev = TaskStart::new();
        ev.container_id = id.to_string();
        ev.pid = pid as u32;
        self.publish(&ev);
        Ok(pid as u32)
    }

    pub(crate) fn start_exec(&mut self, id: &str, exec_id: &str) -> Result<u32, Status> {
        let c = self.container_mut(id)?;
        if c.init.state != ProcState::Running {
            return Err(Status::failed_precondition(format!(
                "container {id} is not running"
            )));
        }
        let container = c.container.clone().ok_or_else(|| {
            Status::failed_precondition(format!("container {id} was not created"))
        })?;
        let p = c
            .execs
            .get_mut(exec_id)
            .ok_or_else(|| Status::not_found(format!("process {exec_id}")))?;
        if p.state != ProcState::Created {
            return Err(Status::failed_precondition(format!(
                "process {exec_id} already started"
            )));
        }
        let process = p.spec.take().unwrap_or_default();
        let mut opts = ExecOptions {
            process,
            ..Default::default()
        };
        let (console_ours, child) = if p.stdio.terminal {
            let (ours, theirs) = console_pair()?;
            opts.console_fd = Some(theirs);
            (Some(ours), None)
        } else {
            let (child, pio) = io::open_piped(&p.stdio).map_err(io_status)?;
            opts.stdio = Some(child.raw());
            p.io = pio;
            (None, Some(child))
        };
        let pid = container.exec(opts).map_err(status)?;
        drop(child);
        p.pid = pid;
        p.state = ProcState::Running;
        if let Some(ours) = console_ours {
            let master = receive_master(&ours)?;
            self.watch_relay(id, exec_id, master)?;
        }
        self.watch_copiers(id, exec_id);
        let mut ev = TaskExecStarted::new();
        ev.container_id = id.to_string();
        ev.exec_id = exec_id.to_string();
        ev.pid = pid as u32;
        self.publish(&ev);
        if let Some(exit) = self.take_unclaimed(pid) {
            self.record_exit(pid, exit);
        }
        Ok(pid as u32)
    }

    pub(crate) fn delete_task(
        &mut self,
        id: &str,
        exec_id: &str,
    ) -> Result<DeleteResponse, Status> {
        let c = self.container_mut(id)?;
        let response = |p: &Proc| {
            let mut r = DeleteResponse::new();
            r.pid = p.pid as u32;
            if let Some(e) = p.exit {
                r.exit_status = e.status;
                r.exited_at = MessageField::some(timestamp(e.at));
            }
            r
        };
        if !exec_id.is_empty() {
            let p = c
                .execs
                .get(exec_id)
                .ok_or_else(|| Status::not_found(format!("process {exec_id}")))?;
            if p.state == ProcState::Running {
                return Err(Status::failed_precondition(format!(
                    "cannot delete a running process {exec_id}"
                )));
            }
            let r = response(p);
            self.flush_io(id, exec_id);
            self.unwatch_process(id, exec_id);
            if let Ok(c) = self.container_mut(id) {
                c.execs.remove(exec_id);
            }
            return Ok(r);
        }
        if c.init.state == ProcState::Running {
            return Err(Status::failed_precondition(format!(
                "cannot delete a running container {id}"
            )));
        }
        if let Some(container) = c.container.take() {
            container.delete(false).map_err(status)?;
        }
        let (bundle, mounted) = (c.bundle.clone(), c.rootfs_mounted);
        let r = response(&c.init);
        let procs: Vec<String> = std::iter::once(String::new())
            .chain(c.execs.keys().cloned())
            .collect();
        for exec_id in &procs {
            self.flush_io(id, exec_id);
            self.unwatch_process(id, exec_id);
        }
        self.unwatch(id);
        self.containers.remove(id);
        if mounted {
            berth_executor::mount::unmount_all(&bundle.join("rootfs"));
        }
        let mut ev = TaskDelete::new();
        ev.container_id = id.to_string();
        ev.id = id.to_string();
        ev.pid = r.pid;
        ev.exit_status = r.exit_status;
        ev.exited_at = r.exited_at.clone();
        self.publish(&ev);
        Ok(r)
    }

    pub(crate) fn kill_task(&mut self, req: &KillRequest) -> Result<(), Status> {
        let c = self.container(&req.id)?;
        let p = c
            .process(&req.exec_id)
            .ok_or_else(|| Status::not_found(format!("process {}", req.exec_id)))?;
        if p.state == ProcState::Stopped {
            return Err(Status::not_found(format!(
                "process {}: process already finished",
                p.pid
            )));
        }
        let signal = req.signal as i32;
        if req.exec_id.is_empty() {
            let container = c.container.as_ref().ok_or_else(|| {
                Status::failed_precondition(format!("container {} was not created", req.id))
            })?;
            return container.kill(signal, req.all).map_err(status);
        }
        if p.state == ProcState::Created {
            return Err(Status::failed_precondition(format!(
                "process {} has not been started",
                req.exec_id
            )));
        }
        // SAFETY: plain kill(2).
        if unsafe { libc::kill(p.pid, signal) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ESRCH) {
                return Err(Status::not_found(format!(
                    "process {}: process already finished",
                    p.pid
                )));
            }
            return Err(io_status(e));
        }
        Ok(())
    }

    pub(crate) fn checkpoint_task(&mut self, req: &CheckpointTaskRequest) -> Result<(), Status> {
        let c = self.container(&req.id)?;
        let container = c.container.as_ref().ok_or_else(|| {
            Status::failed_precondition(format!("container {} was not created", req.id))
        })?;
        let o: CpOpts = match req.options.as_ref() {
            Some(any) if !any.type_url.is_empty() => typeurl::unpack(any).map_err(Status::from)?,
            _ => CpOpts::new(),
        };
        let image_path = if o.image_path.is_empty() {
            PathBuf::from(&req.path)
        } else {
            PathBuf::from(&o.image_path)
        };
        let (work_path, remove_work) = if o.work_path.is_empty() {
            (criu_work_dir(&c.bundle), true)
        } else {
            (PathBuf::from(&o.work_path), false)
        };
        let opts = CheckpointOptions {
            criu: CriuOptions {
                image_path: image_path.clone(),
                work_path: Some(work_path.clone()),
                tcp_established: o.open_tcp,
                ext_unix_sk: o.external_unix_sockets,
                shell_job: o.terminal,
                file_locks: o.file_locks,
                empty_ns: o.empty_namespaces.clone(),
                manage_cgroups_mode: None,
            },
            leave_running: !o.exit,
            parent_path: None,
            pre_dump: false,
        };
        let result = container.checkpoint(&opts).map_err(status);
        if remove_work && result.is_ok() {
            let _ = std::fs::remove_dir_all(&work_path);
        }
        result?;
        let mut ev = TaskCheckpointed::new();
        ev.container_id = req.id.clone();
        ev.checkpoint = image_path.display().to_string();
        self.publish(&ev);
        Ok(())
    }

    pub(crate) fn state_of(&self, id: &str, exec_id: &str) -> Result<StateResponse, Status> {
        let c = self.container(id)?;
        let p = c
            .process(exec_id)
            .ok_or_else(|| Status::not_found(format!("process {exec_id}")))?;
        let mut r = StateResponse::new();
        r.id = if exec_id.is_empty() {
            id.to_string()
        } else {
            exec_id.to_string()
        };
        r.bundle = c.bundle.display().to_string();
        r.pid = p.pid as u32;
        let paused = exec_id.is_empty()
            && p.state == ProcState::Running
            && c.container
                .as_ref()
                .is_some_and(|k| k.status() == CtrStatus::Paused);
        r.status = match p.state {
            ProcState::Created => TaskStatus::CREATED,
            ProcState::Running if paused => TaskStatus::PAUSED,
            ProcState::Running => TaskStatus::RUNNING,
            ProcState::Stopped => TaskStatus::STOPPED,
        }
        .into();
        r.stdin = p.stdio.stdin.clone();
        r.stdout = p.stdio.stdout.clone();
        r.stderr = p.stdio.stderr.clone();
        r.terminal = p.stdio.terminal;
        if let Some(e) = p.exit {
            r.exit_status = e.status;
            r.exited_at = MessageField::some(timestamp(e.at));
        }
        r.exec_id = exec_id.to_string();
        Ok(r)
    }

    pub(crate) fn running_container(&self, id: &str) -> Result<&berth_executor::Container, Status> {
        let c = self.container(id)?;
        if c.init.state == ProcState::Stopped {
            return Err(Status::failed_precondition(format!(
                "container {id} is stopped"
            )));
        }
        c.container
            .as_ref()
            .ok_or_else(|| Status::failed_precondition(format!("container {id} was not created")))
    }
}

/// The CRIU work directory: the bundle's persistent `work` dir if it has one.
fn criu_work_dir(bundle: &Path) -> PathBuf {
    let work = bundle.join("work");
    if work.is_dir() {
        work.join("criu-work")
    } else {
        bundle.join("criu-work")
    }
}

pub(crate) fn task_create(req: &CreateTaskRequest, pid: u32) -> TaskCreate {
    let mut ev = TaskCreate::new();
    ev.container_id = req.id.clone();
    ev.bundle = req.bundle.clone();
    ev.rootfs = req.rootfs.clone();
    let mut tio = TaskIO::new();
    tio.stdin = req.stdin.clone();
    tio.stdout = req.stdout.clone();
    tio.stderr = req.stderr.clone();
    tio.terminal = req.terminal;
    ev.io = MessageField::some(tio);
    ev.checkpoint = req.checkpoint.clone();
    ev.pid = pid;
    ev
}
