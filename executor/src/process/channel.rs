//! The channel between the runtime and a process it is setting up: fixed-size
//! messages over a SOCK_SEQPACKET socket pair. The child side neither
//! allocates nor locks, so it is safe between clone and exec.

use std::os::fd::RawFd;

use crate::error::Errno;
use crate::sys::{self, SysResult};

pub(crate) const TEXT_LEN: usize = 192;
const HEADER: usize = 28;
pub(crate) const MSG_LEN: usize = HEADER + TEXT_LEN;

/// What a message means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Kind {
    /// Parent → child: go on with the next step.
    Continue = 1,
    /// Child → parent: a new user namespace exists; write its id maps.
    UserNsReady = 2,
    /// Child → parent: the pid (in the parent's namespace) of the process
    /// that will exec, when a second fork was needed.
    Pid = 3,
    /// Child → parent: namespaces and mounts are ready; run the prestart and
    /// createRuntime hooks, then send the state for createContainer hooks.
    HooksPoint = 4,
    /// Child → parent: set-up is complete; the process waits for start.
    Ready = 5,
    /// Child → parent: set-up failed (stage, index, errno, text).
    Error = 6,
    /// Parent → child: the next packet is the container state JSON.
    State = 7,
    /// Child → parent: send the container process state for the seccomp agent.
    SeccompStateRequest = 8,
    /// Parent → child: the next packet is that state (JSON).
    SeccompState = 9,
}

impl Kind {
    fn from_u32(v: u32) -> Option<Kind> {
        Some(match v {
            1 => Kind::Continue,
            2 => Kind::UserNsReady,
            3 => Kind::Pid,
            4 => Kind::HooksPoint,
            5 => Kind::Ready,
            6 => Kind::Error,
            7 => Kind::State,
            8 => Kind::SeccompStateRequest,
            9 => Kind::SeccompState,
            _ => return None,
        })
    }
}

/// Declares `Stage` (numbered from 1 in order) and its decoder from one list.
macro_rules! stages {
    ($($name:ident),+ $(,)?) => {
        /// The step of set-up a child error happened in; with `index` it
        /// tells the parent which config field to name in the error message.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u32)]
        pub(crate) enum Stage {
            $($name),+
        }

        impl Stage {
            const ALL: &'static [Stage] = &[$(Stage::$name),+];

            /// Decodes a stage number; unknown numbers read as `Channel`.
            pub(crate) fn from_u32(v: u32) -> Stage {
                v.checked_sub(1)
                    .and_then(|i| Self::ALL.get(i as usize).copied())
                    .unwrap_or(Stage::Channel)
            }

            /// The wire number (1-based, so 0 means "no stage").
            pub(crate) fn number(self) -> u32 {
                self as u32 + 1
            }
        }
    };
}

stages!(
    Channel,
    Namespace,
    UserNamespace,
    CgroupNamespace,
    TimeNamespace,
    Hostname,
    Domainname,
    Personality,
    Propagation,
    Mount,
    Device,
    Symlink,
    PivotRoot,
    Sysctl,
    MaskedPath,
    ReadonlyPath,
    ReadonlyRoot,
    Console,
    OomScoreAdj,
    Rlimit,
    NoNewPrivileges,
    Seccomp,
    Groups,
    User,
    Capabilities,
    Cwd,
    Executable,
    CreateContainerHook,
    StartContainerHook,
    Exec,
    IoPriority,
    Scheduler,
    Fork,
    Cgroup,
    Keyring,
);

/// A decoded message.
#[derive(Clone, Copy)]
pub(crate) struct Msg {
    pub kind: Kind,
    pub stage: u32,
    pub index: u32,
    pub errno: i32,
    pub value: i64,
    text_len: u32,
    text: [u8; TEXT_LEN],
}

impl Msg {
    pub(crate) fn new(kind: Kind) -> Msg {
        Msg {
            kind,
            stage: 0,
            index: 0,
            errno: 0,
            value: 0,
            text_len: 0,
            text: [0; TEXT_LEN],
        }
    }

    pub(crate) fn with_value(kind: Kind, value: i64) -> Msg {
        let mut m = Msg::new(kind);
        m.value = value;
        m
    }

    /// An error report: `what` says which call failed, `detail` (optional)
    /// adds a path or name from the plan.
    pub(crate) fn error(
        stage: Stage,
        index: usize,
        errno: Errno,
        what: &str,
        detail: &[u8],
    ) -> Msg {
        let mut m = Msg::new(Kind::Error);
        m.stage = stage.number();
        m.index = index as u32;
        m.errno = errno.0;
        m.push_text(what.as_bytes());
        if !detail.is_empty() {
            m.push_text(b" ");
            m.push_text(detail);
        }
        m
    }

    fn push_text(&mut self, bytes: &[u8]) {
        let start = self.text_len as usize;
        let n = bytes.len().min(TEXT_LEN - start);
        self.text[start..start + n].copy_from_slice(&bytes[..n]);
        self.text_len += n as u32;
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.text[..self.text_len as usize]).into_owned()
    }

    fn encode(&self, buf: &mut [u8; MSG_LEN]) {
        buf[0..4].copy_from_slice(&(self.kind as u32).to_ne_bytes());
        buf[4..8].copy_from_slice(&self.stage.to_ne_bytes());
        buf[8..12].copy_from_slice(&self.index.to_ne_bytes());
        buf[12..16].copy_from_slice(&self.errno.to_ne_bytes());
        buf[16..24].copy_from_slice(&self.value.to_ne_bytes());
        buf[24..28].copy_from_slice(&self.text_len.to_ne_bytes());
        buf[HEADER..].copy_from_slice(&self.text);
    }

    fn decode(buf: &[u8; MSG_LEN]) -> Option<Msg> {
        let u32_at = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        let mut value = [0u8; 8];
        value.copy_from_slice(&buf[16..24]);
        let mut text = [0u8; TEXT_LEN];
        text.copy_from_slice(&buf[HEADER..]);
        Some(Msg {
            kind: Kind::from_u32(u32_at(0))?,
            stage: u32_at(4),
            index: u32_at(8),
            errno: u32_at(12) as i32,
            value: i64::from_ne_bytes(value),
            text_len: u32_at(24).min(TEXT_LEN as u32),
            text,
        })
    }
}

/// Sends one message (async-signal-safe).
pub(crate) fn send(fd: RawFd, msg: &Msg) -> SysResult<()> {
    let mut buf = [0u8; MSG_LEN];
    msg.encode(&mut buf);
    sys::socket::send(fd, &buf).map(drop)
}

/// Receives one message; `Ok(None)` at end of stream (the peer is gone).
pub(crate) fn recv(fd: RawFd) -> SysResult<Option<Msg>> {
    let mut buf = [0u8; MSG_LEN];
    let n = sys::socket::recv(fd, &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if n != MSG_LEN {
        return Err(Errno(libc::EPROTO));
    }
    Msg::decode(&buf).map(Some).ok_or(Errno(libc::EPROTO))
}

/// Decodes a message read from a stream (`start`'s connection).
pub(crate) fn decode(buf: &[u8]) -> Option<Msg> {
    let buf: &[u8; MSG_LEN] = buf.try_into().ok()?;
    Msg::decode(buf)
}

/// Receives a raw data packet into `buf`; returns its length.
pub(crate) fn recv_data(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    sys::socket::recv(fd, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_over_a_socketpair() {
        let (a, b) = sys::socket::socketpair(libc::SOCK_SEQPACKET).unwrap();
        let m = Msg::error(Stage::Mount, 3, Errno(libc::EPERM), "mount", b"proc");
        send(a, &m).unwrap();
        let got = recv(b).unwrap().unwrap();
        assert_eq!(got.kind, Kind::Error);
        assert_eq!(Stage::from_u32(got.stage), Stage::Mount);
        assert_eq!(got.index, 3);
        assert_eq!(got.errno, libc::EPERM);
        assert_eq!(got.text(), "mount proc");
        sys::fd::close(a);
        assert!(recv(b).unwrap().is_none(), "EOF after the peer closes");
        sys::fd::close(b);
    }
}
