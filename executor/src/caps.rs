//! Capabilities: spec names to bit numbers and the five sets as bitmasks.
//! Names this build or this kernel does not know are logged and skipped, as
//! runc does, so configs written for newer kernels still run.

use crate::spec::Capabilities;

const NAMES: &[(&str, u32)] = &[
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_DAC_READ_SEARCH", 2),
    ("CAP_FOWNER", 3),
    ("CAP_FSETID", 4),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_SETPCAP", 8),
    ("CAP_LINUX_IMMUTABLE", 9),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_BROADCAST", 11),
    ("CAP_NET_ADMIN", 12),
    ("CAP_NET_RAW", 13),
    ("CAP_IPC_LOCK", 14),
    ("CAP_IPC_OWNER", 15),
    ("CAP_SYS_MODULE", 16),
    ("CAP_SYS_RAWIO", 17),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_SYS_PTRACE", 19),
    ("CAP_SYS_PACCT", 20),
    ("CAP_SYS_ADMIN", 21),
    ("CAP_SYS_BOOT", 22),
    ("CAP_SYS_NICE", 23),
    ("CAP_SYS_RESOURCE", 24),
    ("CAP_SYS_TIME", 25),
    ("CAP_SYS_TTY_CONFIG", 26),
    ("CAP_MKNOD", 27),
    ("CAP_LEASE", 28),
    ("CAP_AUDIT_WRITE", 29),
    ("CAP_AUDIT_CONTROL", 30),
    ("CAP_SETFCAP", 31),
    ("CAP_MAC_OVERRIDE", 32),
    ("CAP_MAC_ADMIN", 33),
    ("CAP_SYSLOG", 34),
    ("CAP_WAKE_ALARM", 35),
    ("CAP_BLOCK_SUSPEND", 36),
    ("CAP_AUDIT_READ", 37),
    ("CAP_PERFMON", 38),
    ("CAP_BPF", 39),
    ("CAP_CHECKPOINT_RESTORE", 40),
];

/// The bit number of a capability name (`CAP_` prefix optional, any case).
pub fn number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    NAMES.iter().find(|(n, _)| *n == full).map(|(_, v)| *v)
}

/// The name of a capability bit number.
pub fn name(number: u32) -> Option<&'static str> {
    NAMES.iter().find(|(_, v)| *v == number).map(|(n, _)| *n)
}

/// The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap).
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// The five capability sets as bitmasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub inheritable: u64,
    pub permitted: u64,
    pub ambient: u64,
}

impl CapSets {
    /// Converts the spec's lists, skipping (with a warning) names that are
    /// unknown or above `last_cap`.
    pub fn from_spec(c: &Capabilities, last_cap: u32) -> CapSets {
        let mask = |list: &Option<Vec<String>>, set: &str| -> u64 {
            let mut m = 0u64;
            for n in list.iter().flatten() {
                match number(n) {
                    Some(bit) if bit <= last_cap => m |= 1 << bit,
                    Some(_) => tracing::warn!(
                        capability = %n,
                        set,
                        "capability is not supported by this kernel; skipped"
                    ),
                    None => tracing::warn!(capability = %n, set, "unknown capability; skipped"),
                }
            }
            m
        };
        let mut sets = CapSets {
            bounding: mask(&c.bounding, "bounding"),
            effective: mask(&c.effective, "effective"),
            inheritable: mask(&c.inheritable, "inheritable"),
            permitted: mask(&c.permitted, "permitted"),
            ambient: mask(&c.ambient, "ambient"),
        };
        // The kernel only raises ambient capabilities that are both
        // permitted and inheritable; runc warns about the rest and goes on.
        let raisable = sets.permitted & sets.inheritable;
        let dropped = sets.ambient & !raisable;
        if dropped != 0 {
            let names: Vec<&str> = (0..64)
                .filter(|b| dropped & (1 << b) != 0)
                .filter_map(name)
                .collect();
            tracing::warn!(
                capabilities = %names.join(","),
                "ambient capabilities that are not both permitted and inheritable cannot be raised; skipped"
            );
            sets.ambient &= raisable;
        }
        sets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(number("sys_admin"), Some(21));
        assert_eq!(name(21), Some("CAP_SYS_ADMIN"));
        assert_eq!(number("CAP_NOT_A_THING"), None);
    }

    #[test]
    fn unknown_and_too_new_capabilities_are_skipped() {
        let c = Capabilities {
            bounding: Some(vec![
                "CAP_KILL".into(),
                "CAP_FUTURE".into(),
                "CAP_BPF".into(),
            ]),
            ..Default::default()
        };
        let sets = CapSets::from_spec(&c, 38);
        assert_eq!(sets.bounding, 1 << 5, "CAP_BPF (39) is above last_cap 38");
        assert_eq!(sets.effective, 0);
    }

    #[test]
    fn ambient_needs_permitted_and_inheritable() {
        let c = Capabilities {
            permitted: Some(vec!["CAP_KILL".into(), "CAP_CHOWN".into()]),
            inheritable: Some(vec!["CAP_KILL".into()]),
            ambient: Some(vec!["CAP_KILL".into(), "CAP_CHOWN".into()]),
            ..Default::default()
        };
        assert_eq!(CapSets::from_spec(&c, 40).ambient, 1 << 5);
    }
}
