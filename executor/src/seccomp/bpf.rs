//! Classic-BPF building blocks: the kernel's opcode and seccomp constants, and an assembler
//! that resolves forward labels and turns jumps too far for the 8-bit jt/jf into BPF_JA hops.

use super::SeccompError;

// <linux/bpf_common.h>; kernel ABI, so spelled out rather than taken from a libc version.
pub(crate) const BPF_LD: u16 = 0x00;
pub(crate) const BPF_ALU: u16 = 0x04;
pub(crate) const BPF_JMP: u16 = 0x05;
pub(crate) const BPF_RET: u16 = 0x06;
pub(crate) const BPF_W: u16 = 0x00;
pub(crate) const BPF_ABS: u16 = 0x20;
pub(crate) const BPF_AND: u16 = 0x50;
pub(crate) const BPF_JA: u16 = 0x00;
pub(crate) const BPF_JEQ: u16 = 0x10;
pub(crate) const BPF_JGT: u16 = 0x20;
pub(crate) const BPF_JGE: u16 = 0x30;
pub(crate) const BPF_JSET: u16 = 0x40;
pub(crate) const BPF_K: u16 = 0x00;

/// BPF_MAXINSNS: the most instructions one filter may have.
pub const MAX_INSNS: usize = 4096;

// <linux/seccomp.h> return values.
pub(crate) const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
pub(crate) const SECCOMP_RET_KILL_THREAD: u32 = 0x0000_0000;
pub(crate) const SECCOMP_RET_TRAP: u32 = 0x0003_0000;
pub(crate) const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
pub(crate) const SECCOMP_RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub(crate) const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
pub(crate) const SECCOMP_RET_LOG: u32 = 0x7ffc_0000;
pub(crate) const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;

// struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }
pub(crate) const OFFSET_NR: u32 = 0;
pub(crate) const OFFSET_ARCH: u32 = 4;
pub(crate) const OFFSET_ARGS: u32 = 16;

/// A position in the program, bound once with [`Assembler::bind`]; jumps only go forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Label(usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cond {
    Eq,
    Gt,
    Ge,
    Set,
}

impl Cond {
    fn code(self) -> u16 {
        BPF_JMP
            | BPF_K
            | match self {
                Cond::Eq => BPF_JEQ,
                Cond::Gt => BPF_JGT,
                Cond::Ge => BPF_JGE,
                Cond::Set => BPF_JSET,
            }
    }
}

#[derive(Debug, Clone, Copy)]
enum Insn {
    /// A = 32-bit word at this offset of seccomp_data.
    Load(u32),
    /// A &= k.
    And(u32),
    /// if (A <cond> k) goto jt else goto jf.
    Jump {
        cond: Cond,
        k: u32,
        jt: Label,
        jf: Label,
    },
    Goto(Label),
    Ret(u32),
    Bind(Label),
}

/// Collects instructions with symbolic forward jumps, then lays them out.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    insns: Vec<Insn>,
    labels: usize,
}

impl Assembler {
    pub(crate) fn new_label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    pub(crate) fn bind(&mut self, label: Label) {
        self.insns.push(Insn::Bind(label));
    }

    pub(crate) fn load(&mut self, offset: u32) {
        self.insns.push(Insn::Load(offset));
    }

    pub(crate) fn and(&mut self, k: u32) {
        self.insns.push(Insn::And(k));
    }

    pub(crate) fn jump(&mut self, cond: Cond, k: u32, jt: Label, jf: Label) {
        self.insns.push(Insn::Jump { cond, k, jt, jf });
    }

    pub(crate) fn goto(&mut self, target: Label) {
        self.insns.push(Insn::Goto(target));
    }

    pub(crate) fn ret(&mut self, action: u32) {
        self.insns.push(Insn::Ret(action));
    }

    /// Lays the program out. A conditional jump whose target is more than 255 instructions
    /// away jumps to a BPF_JA placed right after it instead; adding those can push other
    /// jumps out of range, so the layout is repeated until nothing changes (it only grows).
    pub(crate) fn assemble(&self) -> Result<Vec<libc::sock_filter>, SeccompError> {
        let mut long_t = vec![false; self.insns.len()];
        let mut long_f = vec![false; self.insns.len()];
        loop {
            let (addrs, labels) = self.layout(&long_t, &long_f)?;
            let mut changed = false;
            for (i, insn) in self.insns.iter().enumerate() {
                if let Insn::Jump { jt, jf, .. } = *insn {
                    let next = addrs[i] + 1;
                    if !long_t[i] && forward(labels[jt.0], next)? > 255 {
                        long_t[i] = true;
                        changed = true;
                    }
                    if !long_f[i] && forward(labels[jf.0], next)? > 255 {
                        long_f[i] = true;
                        changed = true;
                    }
                }
            }
            if !changed {
                return self.emit(&addrs, &labels, &long_t, &long_f);
            }
        }
    }

    /// Address of every instruction and every label for the given long-jump choices.
    fn layout(
        &self,
        long_t: &[bool],
        long_f: &[bool],
    ) -> Result<(Vec<usize>, Vec<usize>), SeccompError> {
        let mut addrs = Vec::with_capacity(self.insns.len());
        let mut labels = vec![usize::MAX; self.labels];
        let mut pc = 0usize;
        for (i, insn) in self.insns.iter().enumerate() {
            addrs.push(pc);
            pc += match insn {
                Insn::Bind(label) => {
                    if labels[label.0] != usize::MAX {
                        return Err(SeccompError::Internal("label bound twice"));
                    }
                    labels[label.0] = pc;
                    0
                }
                Insn::Jump { .. } => 1 + usize::from(long_t[i]) + usize::from(long_f[i]),
                _ => 1,
            };
        }
        if labels.contains(&usize::MAX)
            && self
                .insns
                .iter()
                .any(|insn| jumps_to_unbound(insn, &labels))
        {
            return Err(SeccompError::Internal(
                "jump to a label that is never bound",
            ));
        }
        Ok((addrs, labels))
    }

    fn emit(
        &self,
        addrs: &[usize],
        labels: &[usize],
        long_t: &[bool],
        long_f: &[bool],
    ) -> Result<Vec<libc::sock_filter>, SeccompError> {
        let mut out = Vec::new();
        for (i, insn) in self.insns.iter().enumerate() {
            let next = addrs[i] + 1;
            match *insn {
                Insn::Load(offset) => out.push(stmt(BPF_LD | BPF_W | BPF_ABS, offset)),
                Insn::And(k) => out.push(stmt(BPF_ALU | BPF_AND | BPF_K, k)),
                Insn::Ret(k) => out.push(stmt(BPF_RET | BPF_K, k)),
                Insn::Goto(target) => out.push(stmt(
                    BPF_JMP | BPF_JA,
                    to_u32(forward(labels[target.0], next)?)?,
                )),
                Insn::Bind(_) => {}
                Insn::Jump { cond, k, jt, jf } => {
                    let (lt, lf) = (long_t[i], long_f[i]);
                    // Trampolines sit right after the jump: first the one for jt, then jf.
                    let jt_off = if lt { 0 } else { forward(labels[jt.0], next)? };
                    let jf_off = if lf {
                        usize::from(lt)
                    } else {
                        forward(labels[jf.0], next)?
                    };
                    out.push(libc::sock_filter {
                        code: cond.code(),
                        jt: to_u8(jt_off)?,
                        jf: to_u8(jf_off)?,
                        k,
                    });
                    let mut at = next;
                    for (is_long, target) in [(lt, jt), (lf, jf)] {
                        if is_long {
                            let off = forward(labels[target.0], at + 1)?;
                            out.push(stmt(BPF_JMP | BPF_JA, to_u32(off)?));
                            at += 1;
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

fn jumps_to_unbound(insn: &Insn, labels: &[usize]) -> bool {
    match *insn {
        Insn::Jump { jt, jf, .. } => labels[jt.0] == usize::MAX || labels[jf.0] == usize::MAX,
        Insn::Goto(target) => labels[target.0] == usize::MAX,
        _ => false,
    }
}

/// Distance of a forward jump from `next` (the instruction after the jump) to `target`.
fn forward(target: usize, next: usize) -> Result<usize, SeccompError> {
    target
        .checked_sub(next)
        .ok_or(SeccompError::Internal("backward jump"))
}

fn to_u8(off: usize) -> Result<u8, SeccompError> {
    u8::try_from(off).map_err(|_| SeccompError::Internal("short jump out of range"))
}

fn to_u32(off: usize) -> Result<u32, SeccompError> {
    u32::try_from(off).map_err(|_| SeccompError::Internal("long jump out of range"))
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}
