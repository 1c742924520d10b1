//! `compile`: validates a `linux.seccomp` object and turns it into per-ABI rule tables, which
//! codegen.rs lays out as BPF. Semantics follow runc (libcontainer/seccomp/seccomp_linux.go,
//! patchbpf/enosys_linux.go) and the libseccomp it drives (src/db.c, src/syscalls.c):
//!
//! - KILL is KILL_THREAD. ERRNO and TRACE carry `errnoRet`, EPERM when absent (runc's
//!   `actErrno`/`actTrace`); `errnoRet` on any other action is an error (runtime-spec: "the
//!   runtime MUST print an error and fail"). NOTIFY may not be the default action nor apply
//!   to `write` (runc refuses both), and needs `listenerPath`.
//! - A rule whose action equals the default action is dropped (runc `matchCall`), so it
//!   cannot shadow the conditional rules of the same syscall.
//! - Conditions of one rule are ANDed. If one rule has several conditions on the same
//!   argument index, each condition becomes a rule of its own (ORed), as runc does.
//! - MASKED_EQ: `value` is the mask, `valueTwo` the datum; libseccomp masks the datum too,
//!   so the test is `(arg & value) == (valueTwo & value)`. Comparisons are unsigned; on
//!   x86_64 over all 64 bits, on i386 and x32 over the low 32 bits (libseccomp ARCH_SIZE_32).
//! - Several rules for one syscall (libseccomp db_rule_add): an unconditional rule wins over
//!   every conditional one whatever the order; of several unconditional rules the first wins.
//!   Conditional rules are tried in profile order and the first that matches decides (where
//!   such rules overlap with different actions libseccomp's choice follows its internal tree
//!   order, or it refuses the profile; we keep the profile's order).
//! - Names unknown to every ABI are logged once and skipped; a name unknown to one ABI is
//!   skipped there. On i386, socket and SysV IPC calls also get a rule on socketcall/ipc.
//! - -ENOSYS stub (patchbpf): unless the default action is ALLOW, LOG or TRACE, syscall
//!   numbers above the highest number the profile names (per ABI) return ENOSYS, checked
//!   before any rule (so on i386 a direct socket call above that number gets ENOSYS and
//!   libc falls back to socketcall, as under runc).

use std::collections::{BTreeMap, BTreeSet};

use super::arch::{self, Abi, AbiSet};
use super::bpf::{self, MAX_INSNS};
use super::codegen;
use super::SeccompError;
use crate::spec::{Seccomp, SeccompAction, SeccompOperator, SyscallArg};

pub(crate) const SECCOMP_FILTER_FLAG_LOG: libc::c_uint = 1 << 1;
pub(crate) const SECCOMP_FILTER_FLAG_SPEC_ALLOW: libc::c_uint = 1 << 2;
pub(crate) const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_uint = 1 << 3;
pub(crate) const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: libc::c_uint = 1 << 5;

/// A compiled filter, ready for [`super::load`].
#[derive(Clone)]
pub struct Program {
    pub filter: Vec<libc::sock_filter>,
    /// SECCOMP_FILTER_FLAG_* for seccomp(2); `load` adds NEW_LISTENER when `needs_listener`.
    pub flags: libc::c_uint,
    /// Some rule uses SCMP_ACT_NOTIFY: the filter must be loaded with NEW_LISTENER and the
    /// listener fd handed to the agent at `listenerPath`.
    pub needs_listener: bool,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("instructions", &self.filter.len())
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("needs_listener", &self.needs_listener)
            .finish()
    }
}

/// One argument comparison, narrowed to the ABI's argument width. For MASKED_EQ `datum` is
/// already masked; for the other operators `mask` is all ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Check {
    pub(crate) index: u32,
    pub(crate) op: SeccompOperator,
    pub(crate) mask: u64,
    pub(crate) datum: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) checks: Vec<Check>,
    pub(crate) action: u32,
}

/// Everything the profile says about one syscall number in one ABI.
#[derive(Debug, Default)]
pub(crate) struct SyscallRules {
    pub(crate) unconditional: Option<u32>,
    pub(crate) conditional: Vec<Rule>,
}

/// The profile reduced to what codegen needs.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) abis: AbiSet,
    pub(crate) default_action: u32,
    /// Per ABI (indexed by `Abi::index`), syscall number → rules.
    pub(crate) rules: [BTreeMap<u32, SyscallRules>; 3],
    /// Per ABI, numbers above this return ENOSYS; None: no stub for that ABI.
    pub(crate) enosys_above: [Option<u32>; 3],
}

pub fn compile(cfg: &Seccomp) -> Result<Program, SeccompError> {
    if !cfg!(target_arch = "x86_64") {
        return Err(SeccompError::UnsupportedHost(std::env::consts::ARCH));
    }
    let (plan, flags, needs_listener) = plan(cfg)?;
    let filter = codegen::generate(&plan)?;
    if filter.len() > MAX_INSNS {
        return Err(SeccompError::TooManyInstructions {
            needed: filter.len(),
        });
    }
    Ok(Program {
        filter,
        flags,
        needs_listener,
    })
}

fn plan(cfg: &Seccomp) -> Result<(Plan, libc::c_uint, bool), SeccompError> {
    if cfg.default_action == SeccompAction::Notify {
        return Err(SeccompError::NotifyAsDefault);
    }
    let default_action = action_value(cfg.default_action, cfg.default_errno_ret, || {
        "linux.seccomp.defaultErrnoRet".to_owned()
    })?;
    let abis = arch::parse_architectures(&cfg.architectures)?;

    let needs_listener = cfg
        .syscalls
        .iter()
        .any(|s| s.action == SeccompAction::Notify && !s.names.is_empty());
    let flags = parse_flags(&cfg.flags, needs_listener)?;
    let has_path = cfg.listener_path.as_deref().is_some_and(|p| !p.is_empty());
    if needs_listener && !has_path {
        return Err(SeccompError::ListenerPathMissing);
    }
    if cfg
        .listener_metadata
        .as_deref()
        .is_some_and(|m| !m.is_empty())
        && !has_path
    {
        return Err(SeccompError::MetadataWithoutListener);
    }

    let mut plan = Plan {
        abis,
        default_action,
        rules: Default::default(),
        enosys_above: [None; 3],
    };
    let mut highest: [Option<u32>; 3] = [None; 3];
    let mut unknown = BTreeSet::new();
    let mut conflicting = BTreeSet::new();

    for (i, syscall) in cfg.syscalls.iter().enumerate() {
        let path = format!("linux.seccomp.syscalls[{i}]");
        let action = action_value(syscall.action, syscall.errno_ret, || {
            format!("{path}.errnoRet")
        })?;
        for (j, arg) in syscall.args.iter().enumerate() {
            if arg.index > 5 {
                return Err(SeccompError::ArgIndexOutOfRange {
                    path: format!("{path}.args[{j}].index"),
                    value: arg.index,
                });
            }
        }
        let groups = condition_groups(&syscall.args);
        for (j, name) in syscall.names.iter().enumerate() {
            if name.is_empty() {
                return Err(SeccompError::EmptySyscallName {
                    path: format!("{path}.names[{j}]"),
                });
            }
            if syscall.action == SeccompAction::Notify && name == "write" {
                return Err(SeccompError::NotifyOnWrite {
                    path: format!("{path}.names[{j}]"),
                });
            }
            if !arch::is_known(name) {
                unknown.insert(name.as_str());
                continue;
            }
            for abi in Abi::ALL {
                let resolved = arch::resolve(abi, name);
                // runc counts every rule here, even those dropped below. For i386 socket and
                // IPC names libseccomp answers socketcall/ipc, so that is what runc counts.
                if let Some(nr) = resolved.muxed.map(|(mux, _)| mux).or(resolved.direct) {
                    let h = &mut highest[abi.index()];
                    *h = Some(h.map_or(nr, |h| h.max(nr)));
                }
                if action == default_action || !abis.contains(abi) {
                    continue;
                }
                let table = &mut plan.rules[abi.index()];
                for group in &groups {
                    let checks = narrow(group, abi.has_64bit_args());
                    if let Some(nr) = resolved.direct {
                        add_rule(table, nr, checks.clone(), action, name, &mut conflicting);
                    }
                    if let Some((mux, call)) = resolved.muxed {
                        // libseccomp replaces any condition on argument 0 by the call number.
                        let mut muxed = vec![Check {
                            index: 0,
                            op: SeccompOperator::Equal,
                            mask: u64::from(u32::MAX),
                            datum: u64::from(call),
                        }];
                        muxed.extend(checks.iter().copied().filter(|c| c.index != 0));
                        add_rule(table, mux, muxed, action, name, &mut conflicting);
                    }
                }
            }
        }
    }

    for name in &unknown {
        tracing::warn!(syscall = %name, "seccomp: unknown syscall name, rule skipped");
    }
    for name in &conflicting {
        tracing::warn!(
            syscall = %name,
            "seccomp: an unconditional rule and other rules with different actions; as in \
             libseccomp the first unconditional rule wins"
        );
    }

    if enosys_stub_applies(cfg.default_action) {
        plan.enosys_above = highest;
    }
    Ok((plan, flags, needs_listener))
}

/// The kernel's return value for an OCI action.
fn action_value(
    action: SeccompAction,
    errno_ret: Option<u32>,
    errno_path: impl Fn() -> String,
) -> Result<u32, SeccompError> {
    let data = match (action, errno_ret) {
        (SeccompAction::Errno | SeccompAction::Trace, Some(v)) if v > 0xffff => {
            return Err(SeccompError::ErrnoOutOfRange {
                path: errno_path(),
                value: v,
            })
        }
        (SeccompAction::Errno | SeccompAction::Trace, v) => v.unwrap_or(libc::EPERM as u32),
        (other, Some(_)) => {
            return Err(SeccompError::ErrnoNotSupported {
                path: errno_path(),
                action: action_name(other),
            })
        }
        (_, None) => 0,
    };
    Ok(match action {
        SeccompAction::Kill | SeccompAction::KillThread => bpf::SECCOMP_RET_KILL_THREAD,
        SeccompAction::KillProcess => bpf::SECCOMP_RET_KILL_PROCESS,
        SeccompAction::Trap => bpf::SECCOMP_RET_TRAP,
        SeccompAction::Errno => bpf::SECCOMP_RET_ERRNO | data,
        SeccompAction::Trace => bpf::SECCOMP_RET_TRACE | data,
        SeccompAction::Allow => bpf::SECCOMP_RET_ALLOW,
        SeccompAction::Log => bpf::SECCOMP_RET_LOG,
        SeccompAction::Notify => bpf::SECCOMP_RET_USER_NOTIF,
    })
}

fn action_name(action: SeccompAction) -> &'static str {
    match action {
        SeccompAction::Kill => "SCMP_ACT_KILL",
        SeccompAction::KillThread => "SCMP_ACT_KILL_THREAD",
        SeccompAction::KillProcess => "SCMP_ACT_KILL_PROCESS",
        SeccompAction::Trap => "SCMP_ACT_TRAP",
        SeccompAction::Errno => "SCMP_ACT_ERRNO",
        SeccompAction::Trace => "SCMP_ACT_TRACE",
        SeccompAction::Allow => "SCMP_ACT_ALLOW",
        SeccompAction::Log => "SCMP_ACT_LOG",
        SeccompAction::Notify => "SCMP_ACT_NOTIFY",
    }
}

/// runc (patchbpf `generatePatch`) adds no stub when the default action lets syscalls
/// through: ALLOW, LOG, and TRACE, whose tracer should handle new syscalls itself. (Its
/// attempt to skip a default of ERRNO(ENOSYS) compares errno 38 with SCMP_ACT_ERRNO(ENOSYS)
/// and never matches, so that default gets the stub too.)
fn enosys_stub_applies(action: SeccompAction) -> bool {
    !matches!(
        action,
        SeccompAction::Allow | SeccompAction::Log | SeccompAction::Trace
    )
}

/// TSYNC is accepted and not passed on, like runc (config.go `flagTsync`): the filter is
/// loaded in the single-threaded container init, and TSYNC would clash with NEW_LISTENER.
/// WAIT_KILLABLE_RECV only means something with a listener; the kernel rejects it without
/// one, so it is passed only when the profile uses SCMP_ACT_NOTIFY.
fn parse_flags(flags: &[String], needs_listener: bool) -> Result<libc::c_uint, SeccompError> {
    let mut out = 0;
    for (index, flag) in flags.iter().enumerate() {
        out |= match flag.as_str() {
            "SECCOMP_FILTER_FLAG_TSYNC" => 0,
            "SECCOMP_FILTER_FLAG_LOG" => SECCOMP_FILTER_FLAG_LOG,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" if needs_listener => {
                SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => 0,
            other => {
                return Err(SeccompError::UnknownFlag {
                    index,
                    name: other.to_owned(),
                })
            }
        };
    }
    Ok(out)
}

/// The rules one spec entry makes: one rule with all conditions, or, when an argument index
/// appears twice, one rule per condition (runc `matchCall`, "revert to old behavior").
fn condition_groups(args: &[SyscallArg]) -> Vec<Vec<SyscallArg>> {
    let mut seen = [false; 6];
    let repeated = args.iter().any(|a| {
        let slot = &mut seen[a.index as usize];
        std::mem::replace(slot, true)
    });
    if repeated {
        args.iter().map(|a| vec![*a]).collect()
    } else {
        vec![args.to_vec()]
    }
}

/// libseccomp's datum/mask handling (db.c `db_col_rule_add`, `_db_rule_gen_32/64`): mask is
/// all ones except for MASKED_EQ, the datum is masked, 32-bit ABIs drop the high words, and a
/// MASKED_EQ with an empty mask always holds, so it is left out.
fn narrow(args: &[SyscallArg], wide: bool) -> Vec<Check> {
    let width = if wide { u64::MAX } else { u64::from(u32::MAX) };
    args.iter()
        .filter_map(|a| {
            let (mask, datum) = match a.op {
                SeccompOperator::MaskedEqual => (a.value & width, a.value_two & a.value & width),
                _ => (width, a.value & width),
            };
            if a.op == SeccompOperator::MaskedEqual && mask == 0 {
                return None;
            }
            Some(Check {
                index: a.index,
                op: a.op,
                mask,
                datum,
            })
        })
        .collect()
}

fn add_rule<'a>(
    table: &mut BTreeMap<u32, SyscallRules>,
    nr: u32,
    checks: Vec<Check>,
    action: u32,
    name: &'a str,
    conflicting: &mut BTreeSet<&'a str>,
) {
    let rules = table.entry(nr).or_default();
    let conflict = match (rules.unconditional, checks.is_empty()) {
        (Some(first), _) => first != action,
        (None, true) => rules.conditional.iter().any(|r| r.action != action),
        (None, false) => false,
    };
    if conflict {
        conflicting.insert(name);
    }
    if !checks.is_empty() {
        rules.conditional.push(Rule { checks, action });
    } else if rules.unconditional.is_none() {
        rules.unconditional = Some(action);
    }
}
