//! The cgroup v2 device controller: an eBPF program of type
//! BPF_PROG_TYPE_CGROUP_DEVICE built from the effective rule set, attached
//! with BPF_F_ALLOW_MULTI to the cgroup directory, replacing the program
//! attached before it (runc libcontainer/cgroups/devices/ebpf_linux.go).

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use super::devices::{Access, RuleSet, ANY};
use super::error::{CgroupError, Result};
use super::sys;

/// `struct bpf_insn`. `regs` holds dst_reg in the low nibble and src_reg in
/// the high nibble (x86_64 and other little-endian bitfield layouts).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcode pieces (include/uapi/linux/bpf_common.h, bpf.h).
const BPF_LDX: u8 = 0x01;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
const BPF_AND: u8 = 0x50;
const BPF_RSH: u8 = 0x70;
const BPF_MOV: u8 = 0xb0;
const BPF_JEQ: u8 = 0x10;
const BPF_JNE: u8 = 0x50;
const BPF_EXIT: u8 = 0x90;

// struct bpf_cgroup_dev_ctx and its constants.
const BPF_DEVCG_ACC_MKNOD: i32 = 1;
const BPF_DEVCG_ACC_READ: i32 = 2;
const BPF_DEVCG_ACC_WRITE: i32 = 4;
const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
    BpfInsn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// dst = *(u32 *)(src + off)
pub const fn ldx_w(dst: u8, src: u8, off: i16) -> BpfInsn {
    insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
}
/// 32-bit ALU operation with an immediate.
pub const fn alu32_imm(op: u8, dst: u8, imm: i32) -> BpfInsn {
    insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm)
}
/// 32-bit dst = src.
pub const fn mov32_reg(dst: u8, src: u8) -> BpfInsn {
    insn(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
}
/// if (dst op imm) goto pc + 1 + off
pub const fn jmp_imm(op: u8, dst: u8, imm: i32, off: i16) -> BpfInsn {
    insn(BPF_JMP | op | BPF_K, dst, 0, off, imm)
}
/// if (dst op src) goto pc + 1 + off
pub const fn jmp_reg(op: u8, dst: u8, src: u8, off: i16) -> BpfInsn {
    insn(BPF_JMP | op | BPF_X, dst, src, off, 0)
}
pub const fn exit() -> BpfInsn {
    insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
}

pub const AND: u8 = BPF_AND;
pub const RSH: u8 = BPF_RSH;
pub const MOV: u8 = BPF_MOV;
pub const JEQ: u8 = BPF_JEQ;
pub const JNE: u8 = BPF_JNE;

/// The program prologue: R2 = device type, R3 = requested access,
/// R4 = major, R5 = minor, read from the bpf_cgroup_dev_ctx in R1.
pub const PROLOGUE: [BpfInsn; 6] = [
    ldx_w(R2, R1, 0),
    alu32_imm(AND, R2, 0xffff),
    ldx_w(R3, R1, 0),
    alu32_imm(RSH, R3, 16),
    ldx_w(R4, R1, 4),
    ldx_w(R5, R1, 8),
];

fn bpf_access(a: Access) -> i32 {
    let mut bits = 0;
    if a.0 & Access::READ != 0 {
        bits |= BPF_DEVCG_ACC_READ;
    }
    if a.0 & Access::WRITE != 0 {
        bits |= BPF_DEVCG_ACC_WRITE;
    }
    if a.0 & Access::MKNOD != 0 {
        bits |= BPF_DEVCG_ACC_MKNOD;
    }
    bits
}

/// Builds the filter. Each exception becomes a block that falls through to
/// the next block unless type, access, major and minor all match, in which
/// case it returns the exception's verdict; the end returns the default.
///
/// Access matching follows the v1 kernel: an allow exception needs every
/// requested bit (runc and crun do the same); a deny exception matches when
/// any requested bit is denied, so "c 1:3 w" also refuses an O_RDWR open
/// (runc's program would let that through).
pub fn build_program(set: &RuleSet) -> Result<Vec<BpfInsn>> {
    let mut p: Vec<BpfInsn> = PROLOGUE.to_vec();
    for rule in set.clean_rules() {
        if rule.typ == 'a' {
            // Only the leading reset to allow-all can be an "a" rule; the
            // default verdict at the end already expresses it.
            continue;
        }
        let dev_type = if rule.typ == 'b' {
            BPF_DEVCG_DEV_BLOCK
        } else {
            BPF_DEVCG_DEV_CHAR
        };
        let start = p.len();
        p.push(jmp_imm(JNE, R2, dev_type, 0));
        let access = bpf_access(rule.access);
        if rule.access != Access::ALL {
            p.push(mov32_reg(R1, R3));
            p.push(alu32_imm(AND, R1, access));
            if rule.allow {
                p.push(jmp_reg(JNE, R1, R3, 0));
            } else {
                p.push(jmp_imm(JEQ, R1, 0, 0));
            }
        }
        // Device numbers fit in 32 bits (rules_from_spec checks); the
        // immediate is sign-extended exactly as runc's is.
        if rule.major != ANY {
            p.push(jmp_imm(JNE, R4, rule.major as u32 as i32, 0));
        }
        if rule.minor != ANY {
            p.push(jmp_imm(JNE, R5, rule.minor as u32 as i32, 0));
        }
        p.push(alu32_imm(MOV, R0, i32::from(rule.allow)));
        p.push(exit());
        let next = p.len();
        for (i, ins) in p.iter_mut().enumerate().take(next - 2).skip(start) {
            if ins.code & 0x07 == BPF_JMP {
                ins.off = (next - i - 1) as i16;
            }
        }
    }
    p.push(alu32_imm(MOV, R0, i32::from(set.default_allow)));
    p.push(exit());
    Ok(p)
}

const LICENSE: &CStr = c"Apache";

fn bpf_err(op: &'static str, dir: &Path, source: io::Error) -> CgroupError {
    CgroupError::Bpf {
        op,
        path: dir.to_path_buf(),
        source,
        log: String::new(),
    }
}

fn load(dir: &Path, insns: &[BpfInsn]) -> Result<OwnedFd> {
    match sys::prog_load_cgroup_device(insns, LICENSE, None) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            // Load again only to collect the verifier's explanation.
            let mut log = vec![0u8; 64 * 1024];
            let retry = sys::prog_load_cgroup_device(insns, LICENSE, Some(&mut log));
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
            match retry {
                Ok(fd) => Ok(fd),
                Err(_) => Err(CgroupError::Bpf {
                    op: "BPF_PROG_LOAD",
                    path: dir.to_path_buf(),
                    source: first,
                    log: if text.is_empty() {
                        String::new()
                    } else {
                        format!("; verifier log: {text}")
                    },
                }),
            }
        }
    }
}

/// Loads the filter for `set` and attaches it to the cgroup `dir`, replacing
/// whatever device filters were attached to that directory before.
pub fn apply(dir: &Path, set: &RuleSet) -> Result<()> {
    let insns = build_program(set)?;
    let dir_fd: OwnedFd = File::open(dir)
        .map_err(|e| CgroupError::io("open", dir, e))?
        .into();
    let ids = sys::prog_query_cgroup_device(dir_fd.as_fd())
        .map_err(|e| bpf_err("BPF_PROG_QUERY", dir, e))?;
    let mut old = Vec::with_capacity(ids.len());
    for id in ids {
        match sys::prog_get_fd_by_id(id) {
            Ok(fd) => old.push(fd),
            // A program an LSM hides from us can only add restrictions.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
                tracing::debug!(prog_id = id, path = %dir.display(), "skipping inaccessible device filter");
            }
            Err(e) => return Err(bpf_err("BPF_PROG_GET_FD_BY_ID", dir, e)),
        }
    }
    let prog = load(dir, &insns)?;

    if let [only] = old.as_slice() {
        // Atomic swap of our previous program, when the kernel can.
        match sys::prog_attach_cgroup_device(
            dir_fd.as_fd(),
            prog.as_fd(),
            sys::BPF_F_ALLOW_MULTI | sys::BPF_F_REPLACE,
            Some(only.as_fd()),
        ) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(bpf_err("BPF_PROG_ATTACH", dir, e)),
        }
    }
    // Attach first, detach after: in between both filters apply, so the
    // window can only be stricter than either rule set, never looser.
    sys::prog_attach_cgroup_device(dir_fd.as_fd(), prog.as_fd(), sys::BPF_F_ALLOW_MULTI, None)
        .map_err(|e| bpf_err("BPF_PROG_ATTACH", dir, e))?;
    if old.len() > 1 {
        tracing::info!(count = old.len(), path = %dir.display(), "removing extra device filters");
    }
    for fd in &old {
        sys::prog_detach_cgroup_device(dir_fd.as_fd(), fd.as_fd())
            .map_err(|e| bpf_err("BPF_PROG_DETACH", dir, e))?;
    }
    Ok(())
}
