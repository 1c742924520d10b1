//! The 17 methods of `containerd.task.v2.Task`. Lifecycle methods live in
//! lifecycle.rs; the rest (pids, pause/resume, IO, update, wait, stats,
//! connect, shutdown) are short enough to live here.

use berth_executor::spec::{self, Process, Resources};
use berth_executor::Status as CtrStatus;
use berth_ttrpc_api::protobuf::well_known_types::empty::Empty;
use berth_ttrpc_api::protobuf::MessageField;
use berth_ttrpc_api::protos::types::task::ProcessInfo;
use berth_ttrpc_api::task::*;
use berth_ttrpc_api::typeurl::{self, ProcessDetails, TaskExecAdded, TaskPaused, TaskResumed};
use berth_ttrpc_api::{Ctx, Status, TaskReply, TaskService};

use crate::io::{self, StdioPaths};
use crate::process::{timestamp, Proc, ProcState};
use crate::service::{io_status, status, Service};

type Reply<T> = TaskReply<T>;

fn ready<T>(r: Result<T, Status>) -> Reply<T> {
    TaskReply::Ready(r)
}

impl TaskService for Service {
    fn state(&mut self, _: &Ctx, req: StateRequest) -> Reply<StateResponse> {
        ready(self.state_of(&req.id, &req.exec_id))
    }

    fn create(&mut self, _: &Ctx, req: CreateTaskRequest) -> Reply<CreateTaskResponse> {
        ready(self.create_task(req))
    }

    fn start(&mut self, _: &Ctx, req: StartRequest) -> Reply<StartResponse> {
        let r = if req.exec_id.is_empty() {
            self.start_init(&req.id)
        } else {
            self.start_exec(&req.id, &req.exec_id)
        };
        ready(r.map(|pid| {
            let mut resp = StartResponse::new();
            resp.pid = pid;
            resp
        }))
    }

    fn delete(&mut self, _: &Ctx, req: DeleteRequest) -> Reply<DeleteResponse> {
        ready(self.delete_task(&req.id, &req.exec_id))
    }

    fn pids(&mut self, _: &Ctx, req: PidsRequest) -> Reply<PidsResponse> {
        ready((|| {
            let c = self.container(&req.id)?;
            let container = c.container.as_ref().ok_or_else(|| {
                Status::failed_precondition(format!("container {} was not created", req.id))
            })?;
            let mut resp = PidsResponse::new();
            for pid in container.pids().map_err(status)? {
                let mut info = ProcessInfo::new();
                info.pid = pid as u32;
                if let Some(p) = c.execs.values().find(|p| p.pid == pid) {
                    let mut d = ProcessDetails::new();
                    d.exec_id = p.exec_id.clone();
                    info.info = typeurl::pack(&d).ok().into();
                }
                resp.processes.push(info);
            }
            Ok(resp)
        })())
    }

    fn pause(&mut self, _: &Ctx, req: PauseRequest) -> Reply<Empty> {
        let r = self
            .running_container(&req.id)
            .and_then(|c| c.pause().map_err(status));
        if r.is_ok() {
            let mut ev = TaskPaused::new();
            ev.container_id = req.id.clone();
            self.publish(&ev);
        }
        ready(r.map(|_| Empty::new()))
    }

    fn resume(&mut self, _: &Ctx, req: ResumeRequest) -> Reply<Empty> {
        let r = self
            .running_container(&req.id)
            .and_then(|c| c.resume().map_err(status));
        if r.is_ok() {
            let mut ev = TaskResumed::new();
            ev.container_id = req.id.clone();
            self.publish(&ev);
        }
        ready(r.map(|_| Empty::new()))
    }

    fn checkpoint(&mut self, _: &Ctx, req: CheckpointTaskRequest) -> Reply<Empty> {
        ready(self.checkpoint_task(&req).map(|_| Empty::new()))
    }

    fn kill(&mut self, _: &Ctx, req: KillRequest) -> Reply<Empty> {
        ready(self.kill_task(&req).map(|_| Empty::new()))
    }

    fn exec(&mut self, _: &Ctx, req: ExecProcessRequest) -> Reply<Empty> {
        ready((|| {
            let c = self.container_mut(&req.id)?;
            if c.execs.contains_key(&req.exec_id) {
                return Err(Status::already_exists(format!("id {}", req.exec_id)));
            }
            if c.init.state != ProcState::Running {
                return Err(Status::failed_precondition(format!(
                    "container {} is not running",
                    req.id
                )));
            }
            if c.container
                .as_ref()
                .is_some_and(|k| k.status() == CtrStatus::Paused)
            {
                return Err(Status::failed_precondition(format!(
                    "cannot exec in a paused container {}",
                    req.id
                )));
            }
            let value = req
                .spec
                .as_ref()
                .map(|a| a.value.as_slice())
                .unwrap_or_default();
            let mut process: Process = spec::parse_json(value).map_err(|m| {
                Status::invalid_argument(format!("exec {} process spec: {m}", req.exec_id))
            })?;
            process.terminal = req.terminal;
            let mut p = Proc::new(
                &req.exec_id,
                StdioPaths {
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                },
            );
            p.spec = Some(process);
            c.execs.insert(req.exec_id.clone(), p);
            let mut ev = TaskExecAdded::new();
            ev.container_id = req.id.clone();
            ev.exec_id = req.exec_id.clone();
            self.publish(&ev);
            Ok(Empty::new())
        })())
    }

    fn resize_pty(&mut self, _: &Ctx, req: ResizePtyRequest) -> Reply<Empty> {
        ready((|| {
            let c = self.container(&req.id)?;
            let p = c
                .process(&req.exec_id)
                .ok_or_else(|| Status::not_found(format!("process {}", req.exec_id)))?;
            if let Some(relay) = &p.io.relay {
                io::resize(&relay.master, req.width, req.height).map_err(io_status)?;
            }
            Ok(Empty::new())
        })())
    }

    fn close_io(&mut self, _: &Ctx, req: CloseIORequest) -> Reply<Empty> {
        ready((|| {
            let registry = self.registry.try_clone().map_err(io_status)?;
            let c = self.container_mut(&req.id)?;
            let p = c
                .process_mut(&req.exec_id)
                .ok_or_else(|| Status::not_found(format!("process {}", req.exec_id)))?;
            if req.stdin {
                p.io.close_stdin(&registry);
            }
            Ok(Empty::new())
        })())
    }

    fn update(&mut self, _: &Ctx, req: UpdateTaskRequest) -> Reply<Empty> {
        ready((|| {
            let value = req
                .resources
                .as_ref()
                .map(|a| a.value.as_slice())
                .unwrap_or_default();
            let r: Resources = spec::parse_json(value)
                .map_err(|m| Status::invalid_argument(format!("update resources: {m}")))?;
            let c = self.container_mut(&req.id)?;
            let container = c.container.as_mut().ok_or_else(|| {
                Status::failed_precondition(format!("container {} was not created", req.id))
            })?;
            container.update(&r).map_err(status)?;
            Ok(Empty::new())
        })())
    }

    fn wait(&mut self, ctx: &Ctx, req: WaitRequest) -> Reply<WaitResponse> {
        let token = self.current;
        let r = (|| {
            let c = self.container_mut(&req.id)?;
            let p = c
                .process_mut(&req.exec_id)
                .ok_or_else(|| Status::not_found(format!("process {}", req.exec_id)))?;
            if let (ProcState::Stopped, Some(e)) = (p.state, p.exit) {
                let mut resp = WaitResponse::new();
                resp.exit_status = e.status;
                resp.exited_at = MessageField::some(timestamp(e.at));
                return Ok(Some(resp));
            }
            if let Some(t) = token {
                p.waiters.push((t, ctx.stream_id));
            }
            Ok(None)
        })();
        match r {
            Ok(Some(resp)) => ready(Ok(resp)),
            Ok(None) => TaskReply::Deferred,
            Err(e) => ready(Err(e)),
        }
    }

    fn stats(&mut self, _: &Ctx, req: StatsRequest) -> Reply<StatsResponse> {
        ready((|| {
            let c = self.container(&req.id)?;
            let container = c.container.as_ref().ok_or_else(|| {
                Status::failed_precondition(format!("container {} was not created", req.id))
            })?;
            let stats = container.stats().map_err(status)?;
            let any = if container.state.cgroup.is_v2() {
                typeurl::pack(&crate::metrics::v2_metrics(&stats))
            } else {
                typeurl::pack(&crate::metrics::v1_metrics(&stats))
            }
            .map_err(Status::from)?;
            let mut resp = StatsResponse::new();
            resp.stats = MessageField::some(any);
            Ok(resp)
        })())
    }

    fn connect(&mut self, _: &Ctx, req: ConnectRequest) -> Reply<ConnectResponse> {
        let mut resp = ConnectResponse::new();
        resp.shim_pid = std::process::id();
        resp.task_pid = self
            .containers
            .get(&req.id)
            .map_or(0, |c| c.init.pid as u32);
        ready(Ok(resp))
    }

    fn shutdown(&mut self, _: &Ctx, req: ShutdownRequest) -> Reply<Empty> {
        // As the runc shim: only when no container is left (or `now`).
        if self.containers.is_empty() || req.now {
            self.shutdown = true;
        }
        ready(Ok(Empty::new()))
    }
}
