//! The syscall ABIs an x86_64 kernel runs (x86_64, i386, x32), the OCI/libseccomp
//! architecture names, and syscall name look-ups in the generated tables.

use super::{tables, SeccompError};

pub(crate) const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub(crate) const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// Set in seccomp_data.nr for every x32 syscall (the arch field says x86_64).
pub(crate) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// i386 multiplexers: socketcall(call, args) and ipc(call, ...).
const I386_SOCKETCALL: u32 = 102;
const I386_IPC: u32 = 117;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Abi {
    X86_64,
    X86,
    X32,
}

impl Abi {
    pub(crate) const ALL: [Abi; 3] = [Abi::X86_64, Abi::X86, Abi::X32];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Abi::X86_64 => tables::x86_64::SYSCALLS,
            Abi::X86 => tables::x86::SYSCALLS,
            Abi::X32 => tables::x32::SYSCALLS,
        }
    }

    /// The number of `name` in this ABI (x32 numbers include X32_SYSCALL_BIT).
    pub(crate) fn lookup(self, name: &str) -> Option<u32> {
        let table = self.table();
        table
            .binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|i| table[i].1)
    }

    /// libseccomp compares all 64 bits of an argument only for 64-bit ABIs; i386 and x32
    /// (ILP32, `ARCH_SIZE_32` in libseccomp's arch-x32.c) compare the low word only.
    pub(crate) fn has_64bit_args(self) -> bool {
        self == Abi::X86_64
    }
}

/// The ABIs a filter handles; the native one (x86_64) is always in, as libseccomp does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbiSet {
    pub(crate) x86: bool,
    pub(crate) x32: bool,
}

impl AbiSet {
    pub(crate) fn contains(self, abi: Abi) -> bool {
        match abi {
            Abi::X86_64 => true,
            Abi::X86 => self.x86,
            Abi::X32 => self.x32,
        }
    }
}

/// Every name runtime-spec lists for `architectures` (libseccomp 2.6). The ones for other
/// CPUs are accepted and have no effect here: this kernel never reports their AUDIT_ARCH.
const FOREIGN_ARCHES: &[&str] = &[
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
];

pub(crate) fn parse_architectures(names: &[String]) -> Result<AbiSet, SeccompError> {
    let mut set = AbiSet {
        x86: false,
        x32: false,
    };
    for (i, name) in names.iter().enumerate() {
        match name.as_str() {
            "SCMP_ARCH_X86_64" => {}
            "SCMP_ARCH_X86" => set.x86 = true,
            "SCMP_ARCH_X32" => set.x32 = true,
            other if FOREIGN_ARCHES.contains(&other) => {}
            other => {
                return Err(SeccompError::UnknownArchitecture {
                    index: i,
                    name: other.to_owned(),
                })
            }
        }
    }
    Ok(set)
}

/// How one syscall name reaches the kernel in one ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Resolved {
    /// Its own syscall number.
    pub(crate) direct: Option<u32>,
    /// i386 only: (multiplexer number, call number in its first argument). libseccomp adds a
    /// rule on `socketcall(call)` / `ipc(call)` beside the direct one (src/syscalls.c,
    /// abi_rule_add), so that a profile about `socket` also covers the old entry point.
    pub(crate) muxed: Option<(u32, u32)>,
}

pub(crate) fn resolve(abi: Abi, name: &str) -> Resolved {
    Resolved {
        direct: abi.lookup(name),
        muxed: if abi == Abi::X86 {
            i386_mux(name)
        } else {
            None
        },
    }
}

/// True when no ABI of this build knows the name: it is then logged and skipped.
pub(crate) fn is_known(name: &str) -> bool {
    Abi::ALL.iter().any(|abi| abi.lookup(name).is_some()) || i386_mux(name).is_some()
}

/// SYS_* of <linux/net.h> and the IPC call numbers of <linux/ipc.h>, as libseccomp's
/// __PNR_* pseudo numbers encode them (-101..-120, -201..-224).
fn i386_mux(name: &str) -> Option<(u32, u32)> {
    let socketcall = match name {
        "socket" => 1,
        "bind" => 2,
        "connect" => 3,
        "listen" => 4,
        "accept" => 5,
        "getsockname" => 6,
        "getpeername" => 7,
        "socketpair" => 8,
        "send" => 9,
        "recv" => 10,
        "sendto" => 11,
        "recvfrom" => 12,
        "shutdown" => 13,
        "setsockopt" => 14,
        "getsockopt" => 15,
        "sendmsg" => 16,
        "recvmsg" => 17,
        "accept4" => 18,
        "recvmmsg" => 19,
        "sendmmsg" => 20,
        _ => 0,
    };
    if socketcall != 0 {
        return Some((I386_SOCKETCALL, socketcall));
    }
    let ipc = match name {
        "semop" => 1,
        "semget" => 2,
        "semctl" => 3,
        "semtimedop" => 4,
        "msgsnd" => 11,
        "msgrcv" => 12,
        "msgget" => 13,
        "msgctl" => 14,
        "shmat" => 21,
        "shmdt" => 22,
        "shmget" => 23,
        "shmctl" => 24,
        _ => return None,
    };
    Some((I386_IPC, ipc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_unique_and_max_is_right() {
        for (abi, max) in [
            (Abi::X86_64, tables::x86_64::MAX_NR),
            (Abi::X86, tables::x86::MAX_NR),
            (Abi::X32, tables::x32::MAX_NR),
        ] {
            let table = abi.table();
            assert!(
                table.windows(2).all(|w| w[0].0 < w[1].0),
                "{abi:?} not sorted"
            );
            assert_eq!(table.iter().map(|e| e.1).max(), Some(max));
        }
        assert!(tables::x32::SYSCALLS
            .iter()
            .all(|e| e.1 & X32_SYSCALL_BIT != 0));
        assert!(tables::x86_64::SYSCALLS
            .iter()
            .all(|e| e.1 < X32_SYSCALL_BIT));
    }

    #[test]
    fn well_known_numbers() {
        assert_eq!(Abi::X86_64.lookup("read"), Some(0));
        assert_eq!(Abi::X86_64.lookup("clone3"), Some(435));
        assert_eq!(Abi::X86.lookup("read"), Some(3));
        assert_eq!(Abi::X86.lookup("socketcall"), Some(102));
        assert_eq!(Abi::X86.lookup("ipc"), Some(117));
        assert_eq!(Abi::X32.lookup("read"), Some(X32_SYSCALL_BIT));
        assert_eq!(Abi::X32.lookup("rt_sigaction"), Some(X32_SYSCALL_BIT + 512));
        assert_eq!(Abi::X86_64.lookup("chown32"), None);
        assert!(is_known("chown32") && is_known("recv") && !is_known("no_such_call"));
    }

    #[test]
    fn unknown_architecture_is_an_error_foreign_ones_are_ignored() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let set = parse_architectures(&names(&["SCMP_ARCH_AARCH64", "SCMP_ARCH_X86"])).unwrap();
        assert_eq!(
            set,
            AbiSet {
                x86: true,
                x32: false
            }
        );
        let err = parse_architectures(&names(&[
            "SCMP_ARCH_X86_64",
            "SCMP_ARCH_X32",
            "SCMP_ARCH_FOO",
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux.seccomp.architectures[2]: unknown architecture \"SCMP_ARCH_FOO\""
        );
    }
}
