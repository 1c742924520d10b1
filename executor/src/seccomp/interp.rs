//! Test-only classic-BPF interpreter with the kernel's seccomp checks (bounds, aligned
//! 32-bit loads inside seccomp_data, forward jumps in range, ends in a return), so tests can
//! run a compiled program against a syscall and see the action.

use super::bpf::*;

/// A syscall as the filter sees it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Call {
    pub(crate) nr: u32,
    pub(crate) arch: u32,
    pub(crate) ip: u64,
    pub(crate) args: [u64; 6],
}

impl Call {
    fn word(&self, offset: u32) -> Result<u32, String> {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&self.nr.to_le_bytes());
        data[4..8].copy_from_slice(&self.arch.to_le_bytes());
        data[8..16].copy_from_slice(&self.ip.to_le_bytes());
        for (i, arg) in self.args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_le_bytes());
        }
        let at = offset as usize;
        if at & 3 != 0 || at + 4 > data.len() {
            return Err(format!("bad load offset {offset}"));
        }
        Ok(u32::from_le_bytes([
            data[at],
            data[at + 1],
            data[at + 2],
            data[at + 3],
        ]))
    }
}

/// Runs `filter` on `call`, returning the seccomp action value, or why the kernel would
/// have refused the program.
pub(crate) fn run(filter: &[libc::sock_filter], call: &Call) -> Result<u32, String> {
    if filter.is_empty() || filter.len() > MAX_INSNS {
        return Err(format!("bad length {}", filter.len()));
    }
    let mut a: u32 = 0;
    let mut pc = 0usize;
    let mut steps = 0;
    loop {
        let insn = filter
            .get(pc)
            .ok_or_else(|| format!("fell off the end at {pc}"))?;
        steps += 1;
        if steps > MAX_INSNS {
            return Err("loop".into());
        }
        let next = pc + 1;
        let jump = |off: usize| -> Result<usize, String> {
            let to = next + off;
            if to >= filter.len() {
                Err(format!("jump out of range at {pc}"))
            } else {
                Ok(to)
            }
        };
        pc = match insn.code {
            c if c == BPF_LD | BPF_W | BPF_ABS => {
                a = call.word(insn.k)?;
                next
            }
            c if c == BPF_ALU | BPF_AND | BPF_K => {
                a &= insn.k;
                next
            }
            c if c == BPF_RET | BPF_K => return Ok(insn.k),
            c if c == BPF_JMP | BPF_JA => jump(insn.k as usize)?,
            c if c & 0x07 == BPF_JMP && c & 0x08 == BPF_K => {
                let taken = match c & 0xf0 {
                    x if x == BPF_JEQ => a == insn.k,
                    x if x == BPF_JGT => a > insn.k,
                    x if x == BPF_JGE => a >= insn.k,
                    x if x == BPF_JSET => a & insn.k != 0,
                    _ => return Err(format!("unknown jump {c:#x} at {pc}")),
                };
                jump(usize::from(if taken { insn.jt } else { insn.jf }))?
            }
            c => return Err(format!("unsupported opcode {c:#x} at {pc}")),
        };
    }
}
