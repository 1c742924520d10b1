//! Lays a compiled [`Plan`] out as BPF:
//!
//! ```text
//!   A = arch;  x86_64 → X86_64;  i386 (if listed) → I386;  else → ret bad-arch
//! X86_64: A = nr;  bit 30 set → X32 path
//!   x86_64 dispatch
//! X32 path: x32 listed → x32 dispatch;  else nr == -1 → ret default, else → ret bad-arch
//! I386: A = nr;  i386 dispatch
//! conditional blocks (argument checks per syscall), then one `ret` per distinct action
//! ```
//! A dispatch is a binary search over the intervals of syscall numbers that share an outcome
//! (a `ret`, or a conditional block), so a syscall costs about log2(intervals) jumps.
//! The bad-arch action is KILL_THREAD, libseccomp's default, which runc does not change. As
//! in libseccomp's x86_64 filter without x32 (gen_bpf.c `_gen_bpf_arch`), nr == -1, which a
//! tracer uses to skip a syscall, is not treated as a foreign ABI.

use std::collections::BTreeMap;

use super::arch::{Abi, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT};
use super::bpf::{self, Assembler, Cond, Label};
use super::compile::{Check, Plan, Rule, SyscallRules};
use super::SeccompError;
use crate::spec::SeccompOperator;

const BAD_ARCH_ACTION: u32 = bpf::SECCOMP_RET_KILL_THREAD;
const ENOSYS_ACTION: u32 = bpf::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// Where a range of syscall numbers goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ret(u32),
    Block(Label),
}

struct Gen {
    asm: Assembler,
    /// One shared `ret` per distinct action value, emitted last.
    returns: BTreeMap<u32, Label>,
    /// Conditional blocks to emit after all dispatch code.
    blocks: Vec<(Label, Abi, Vec<Rule>)>,
}

impl Gen {
    fn ret(&mut self, action: u32) -> Label {
        if let Some(label) = self.returns.get(&action) {
            return *label;
        }
        let label = self.asm.new_label();
        self.returns.insert(action, label);
        label
    }
}

pub(crate) fn generate(plan: &Plan) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let mut g = Gen {
        asm: Assembler::default(),
        returns: BTreeMap::new(),
        blocks: Vec::new(),
    };
    let bad_arch = g.ret(BAD_ARCH_ACTION);
    let x86_64 = g.asm.new_label();
    let i386 = g.asm.new_label();

    g.asm.load(bpf::OFFSET_ARCH);
    if plan.abis.x86 {
        let next = g.asm.new_label();
        g.asm.jump(Cond::Eq, AUDIT_ARCH_X86_64, x86_64, next);
        g.asm.bind(next);
        g.asm.jump(Cond::Eq, AUDIT_ARCH_I386, i386, bad_arch);
    } else {
        g.asm.jump(Cond::Eq, AUDIT_ARCH_X86_64, x86_64, bad_arch);
    }

    g.asm.bind(x86_64);
    g.asm.load(bpf::OFFSET_NR);
    let x32 = g.asm.new_label();
    let native = g.asm.new_label();
    g.asm.jump(Cond::Set, X32_SYSCALL_BIT, x32, native);
    g.asm.bind(native);
    dispatch(&mut g, plan, Abi::X86_64);
    g.asm.bind(x32);
    if plan.abis.x32 {
        dispatch(&mut g, plan, Abi::X32);
    } else {
        let default = g.ret(plan.default_action);
        g.asm.jump(Cond::Eq, u32::MAX, default, bad_arch);
    }
    if plan.abis.x86 {
        g.asm.bind(i386);
        g.asm.load(bpf::OFFSET_NR);
        dispatch(&mut g, plan, Abi::X86);
    }

    for (label, abi, rules) in std::mem::take(&mut g.blocks) {
        g.asm.bind(label);
        conditional_block(&mut g, abi, &rules, plan.default_action);
    }
    for (action, label) in std::mem::take(&mut g.returns) {
        g.asm.bind(label);
        g.asm.ret(action);
    }
    g.asm.assemble()
}

/// Emits the search for one ABI; A holds the syscall number.
fn dispatch(g: &mut Gen, plan: &Plan, abi: Abi) {
    let default = Outcome::Ret(plan.default_action);
    // Start of each interval → its outcome; an interval runs to the next start.
    let mut starts: BTreeMap<u32, Outcome> = BTreeMap::new();
    starts.insert(0, default);
    // runc's stub runs before the filter: numbers above its limit never reach a rule.
    let above = plan.enosys_above[abi.index()].and_then(|max| max.checked_add(1));
    let table: BTreeMap<u32, &SyscallRules> = plan.rules[abi.index()]
        .iter()
        .filter(|(nr, _)| above.is_none_or(|above| **nr < above))
        .map(|(nr, rules)| (*nr, rules))
        .collect();
    for nr in table.keys() {
        if let Some(after) = nr.checked_add(1) {
            starts.entry(after).or_insert(default);
        }
    }
    for (nr, rules) in &table {
        let outcome = match (rules.unconditional, rules.conditional.is_empty()) {
            (Some(action), _) => Outcome::Ret(action),
            (None, true) => continue,
            (None, false) => {
                let label = g.asm.new_label();
                g.blocks.push((label, abi, rules.conditional.clone()));
                Outcome::Block(label)
            }
        };
        starts.insert(*nr, outcome);
    }
    if abi == Abi::X86_64 && !plan.abis.x32 {
        // libseccomp's x86_64-only filter treats every nr >= 0x4000_0000 but -1 as a foreign
        // ABI, so numbers with bit 31 set and bit 30 clear are bad-arch too (unless the
        // ENOSYS stub, which runc puts in front and which tests bit 30 only, takes them).
        starts.retain(|start, _| *start < 0x8000_0000);
        starts.insert(0x8000_0000, Outcome::Ret(BAD_ARCH_ACTION));
    }
    if let Some(above) = above {
        starts.retain(|start, _| *start < above);
        starts.insert(above, Outcome::Ret(ENOSYS_ACTION));
    }
    let mut intervals: Vec<(u32, Outcome)> = Vec::with_capacity(starts.len());
    for (start, outcome) in starts {
        if intervals.last().map(|last| last.1) != Some(outcome) {
            intervals.push((start, outcome));
        }
    }

    if let [(_, only)] = intervals[..] {
        let target = target(g, only);
        g.asm.goto(target);
    } else {
        let root = g.asm.new_label();
        search(g, &intervals, root);
    }
}

fn target(g: &mut Gen, outcome: Outcome) -> Label {
    match outcome {
        Outcome::Ret(action) => g.ret(action),
        Outcome::Block(label) => label,
    }
}

/// Binary search node over `intervals` (at least two), bound at `label`.
fn search(g: &mut Gen, intervals: &[(u32, Outcome)], label: Label) {
    g.asm.bind(label);
    let (low, high) = intervals.split_at(intervals.len() / 2);
    let subtree = |g: &mut Gen, part: &[(u32, Outcome)]| match part {
        [(_, only)] => target(g, *only),
        _ => g.asm.new_label(),
    };
    let low_label = subtree(g, low);
    let high_label = subtree(g, high);
    g.asm.jump(Cond::Ge, high[0].0, high_label, low_label);
    if low.len() > 1 {
        search(g, low, low_label);
    }
    if high.len() > 1 {
        search(g, high, high_label);
    }
}

/// Rules tried in order; the first whose checks all hold decides, else the default action.
fn conditional_block(g: &mut Gen, abi: Abi, rules: &[Rule], default_action: u32) {
    for (i, rule) in rules.iter().enumerate() {
        let fail = if i + 1 == rules.len() {
            g.ret(default_action)
        } else {
            g.asm.new_label()
        };
        let pass = g.ret(rule.action);
        for (j, check) in rule.checks.iter().enumerate() {
            let ok = if j + 1 == rule.checks.len() {
                pass
            } else {
                g.asm.new_label()
            };
            emit_check(g, check, abi.has_64bit_args(), ok, fail);
            if ok != pass {
                g.asm.bind(ok);
            }
        }
        if i + 1 != rules.len() {
            g.asm.bind(fail);
        }
    }
}

/// Jumps to `pass` if the argument satisfies the check, else to `fail`. 64-bit values are
/// compared high word first (libseccomp's `_db_rule_gen_64` diagrams); x86 is little-endian,
/// so the low word is at the argument's offset and the high word 4 bytes later.
fn emit_check(g: &mut Gen, check: &Check, wide: bool, pass: Label, fail: Label) {
    let lo_off = bpf::OFFSET_ARGS + 8 * check.index;
    let hi_off = lo_off + 4;
    let (dh, dl) = ((check.datum >> 32) as u32, check.datum as u32);
    let asm = &mut g.asm;
    match check.op {
        SeccompOperator::Equal | SeccompOperator::NotEqual => {
            let (on_eq, on_ne) = if check.op == SeccompOperator::Equal {
                (pass, fail)
            } else {
                (fail, pass)
            };
            if wide {
                let low = asm.new_label();
                asm.load(hi_off);
                asm.jump(Cond::Eq, dh, low, on_ne);
                asm.bind(low);
            }
            asm.load(lo_off);
            asm.jump(Cond::Eq, dl, on_eq, on_ne);
        }
        SeccompOperator::GreaterThan
        | SeccompOperator::GreaterOrEqual
        | SeccompOperator::LessThan
        | SeccompOperator::LessOrEqual => {
            // LT is !GE and LE is !GT: same tests, outcomes swapped.
            let (cond, above, below) = match check.op {
                SeccompOperator::GreaterThan => (Cond::Gt, pass, fail),
                SeccompOperator::GreaterOrEqual => (Cond::Ge, pass, fail),
                SeccompOperator::LessThan => (Cond::Ge, fail, pass),
                _ => (Cond::Gt, fail, pass),
            };
            if wide {
                let same_high = asm.new_label();
                let low = asm.new_label();
                asm.load(hi_off);
                asm.jump(Cond::Gt, dh, above, same_high);
                asm.bind(same_high);
                asm.jump(Cond::Eq, dh, low, below);
                asm.bind(low);
            }
            asm.load(lo_off);
            asm.jump(cond, dl, above, below);
        }
        SeccompOperator::MaskedEqual => {
            let (mh, ml) = ((check.mask >> 32) as u32, check.mask as u32);
            let mut words = Vec::with_capacity(2);
            if wide && mh != 0 {
                words.push((hi_off, mh, dh));
            }
            if ml != 0 {
                words.push((lo_off, ml, dl));
            }
            if words.is_empty() {
                asm.goto(pass);
            }
            for (k, &(offset, mask, datum)) in words.iter().enumerate() {
                let ok = if k + 1 == words.len() {
                    pass
                } else {
                    asm.new_label()
                };
                asm.load(offset);
                if mask != u32::MAX {
                    asm.and(mask);
                }
                asm.jump(Cond::Eq, datum, ok, fail);
                if ok != pass {
                    asm.bind(ok);
                }
            }
        }
    }
}
