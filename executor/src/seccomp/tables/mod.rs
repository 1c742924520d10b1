//! Syscall name → number tables per ABI, generated from the kernel UAPI headers by
//! scripts/gen-syscall-tables.sh. Regenerate them when newer headers add syscalls.

// MAX_NR is kept as data and checked by the tests; the ENOSYS stub uses the highest number
// the profile names instead, as runc does.
#[allow(dead_code)]
pub(crate) mod x32;
#[allow(dead_code)]
pub(crate) mod x86;
#[allow(dead_code)]
pub(crate) mod x86_64;
