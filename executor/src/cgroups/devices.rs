//! Device access rules: linux.resources.devices (plus runc's default allow
//! list) reduced to an effective rule set the way runc's devices emulator
//! does, and written to a v1 devices cgroup as the minimal transition.
//! The v2 eBPF program is built from the same rule set (v2_devices.rs).

use std::collections::BTreeMap;
use std::path::Path;

use super::error::{CgroupError, Result};
use super::fs::{append_field, read_string};
use super::sys;
use crate::spec::DeviceCgroup;

/// Access bits of a rule: read, write, mknod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access(pub u8);

impl Access {
    pub const READ: u8 = 1;
    pub const WRITE: u8 = 2;
    pub const MKNOD: u8 = 4;
    pub const ALL: Access = Access(7);

    pub fn parse(s: &str) -> Option<Access> {
        let mut bits = 0;
        for c in s.chars() {
            bits |= match c {
                'r' => Access::READ,
                'w' => Access::WRITE,
                'm' => Access::MKNOD,
                _ => return None,
            };
        }
        Some(Access(bits))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn union(self, o: Access) -> Access {
        Access(self.0 | o.0)
    }

    fn difference(self, o: Access) -> Access {
        Access(self.0 & !o.0)
    }

    fn intersects(self, o: Access) -> bool {
        self.0 & o.0 != 0
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (bit, c) in [
            (Access::READ, 'r'),
            (Access::WRITE, 'w'),
            (Access::MKNOD, 'm'),
        ] {
            if self.0 & bit != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// Wildcard major or minor.
pub const ANY: i64 = -1;

/// One rule: `typ` is 'a' (all), 'b' or 'c'; major/minor `ANY` is "*".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub typ: char,
    pub major: i64,
    pub minor: i64,
    pub access: Access,
}

impl DeviceRule {
    const fn allow_char(major: i64, minor: i64, access: u8) -> DeviceRule {
        DeviceRule {
            allow: true,
            typ: 'c',
            major,
            minor,
            access: Access(access),
        }
    }

    /// The line written to devices.allow / devices.deny: "c 1:3 rwm".
    pub fn cgroup_string(&self) -> String {
        let num = |n: i64| {
            if n == ANY {
                "*".to_string()
            } else {
                n.to_string()
            }
        };
        format!(
            "{} {}:{} {}",
            self.typ,
            num(self.major),
            num(self.minor),
            self.access
        )
    }
}

/// The rules runc appends to every container's list (specconv's
/// AllowedDevices): mknod of anything, the standard character devices,
/// /dev/pts/*, /dev/ptmx and /dev/net/tun.
pub const DEFAULT_ALLOWED: [DeviceRule; 11] = [
    DeviceRule::allow_char(ANY, ANY, Access::MKNOD),
    DeviceRule {
        typ: 'b',
        ..DeviceRule::allow_char(ANY, ANY, Access::MKNOD)
    },
    DeviceRule::allow_char(1, 3, 7),     // /dev/null
    DeviceRule::allow_char(1, 8, 7),     // /dev/random
    DeviceRule::allow_char(1, 7, 7),     // /dev/full
    DeviceRule::allow_char(5, 0, 7),     // /dev/tty
    DeviceRule::allow_char(1, 5, 7),     // /dev/zero
    DeviceRule::allow_char(1, 9, 7),     // /dev/urandom
    DeviceRule::allow_char(136, ANY, 7), // /dev/pts/*
    DeviceRule::allow_char(5, 2, 7),     // /dev/ptmx
    DeviceRule::allow_char(10, 200, 7),  // /dev/net/tun
];

/// Converts linux.resources.devices, in order, followed by `DEFAULT_ALLOWED`.
pub fn rules_from_spec(devices: &[DeviceCgroup]) -> Result<Vec<DeviceRule>> {
    let mut out = Vec::with_capacity(devices.len() + DEFAULT_ALLOWED.len());
    for (i, d) in devices.iter().enumerate() {
        let field = |f: &str| format!("linux.resources.devices[{i}].{f}");
        let typ = match d.typ.as_deref().unwrap_or("a") {
            "a" => 'a',
            "b" => 'b',
            "c" => 'c',
            other => {
                return Err(CgroupError::config(
                    field("type"),
                    format!("{other:?} is not a cgroup device type (a, b or c)"),
                ))
            }
        };
        let number = |v: Option<i64>, name: &str| match v {
            None | Some(ANY) => Ok(ANY),
            Some(n) if (0..=i64::from(u32::MAX)).contains(&n) => Ok(n),
            Some(n) => Err(CgroupError::config(
                field(name),
                format!("{n} is out of range"),
            )),
        };
        let access = d.access.as_deref().unwrap_or("");
        let parsed = Access::parse(access)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                CgroupError::config(
                    field("access"),
                    format!("{access:?} must be a non-empty combination of r, w and m"),
                )
            })?;
        out.push(DeviceRule {
            allow: d.allow,
            typ,
            major: number(d.major, "major")?,
            minor: number(d.minor, "minor")?,
            access: parsed,
        });
    }
    out.extend(DEFAULT_ALLOWED);
    Ok(out)
}

/// (major, minor, type): the order runc's emulator lists rules in.
type RuleKey = (i64, i64, char);

/// The effect of a sequence of rules: a default plus exceptions, exactly as
/// the v1 kernel keeps it (runc libcontainer/cgroups/devices emulator).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleSet {
    /// true: everything is allowed except `exceptions` ("blacklist").
    pub default_allow: bool,
    pub exceptions: BTreeMap<RuleKey, Access>,
}

impl RuleSet {
    /// Applies `rules` in order, starting from deny-all.
    pub fn from_rules(rules: &[DeviceRule]) -> Result<RuleSet> {
        let mut set = RuleSet::default();
        for r in rules {
            set.apply(r)
                .map_err(|m| CgroupError::config("linux.resources.devices", m))?;
        }
        Ok(set)
    }

    /// Reads a v1 devices.list: every line is an allowed exception, and
    /// "a *:* rwm" means allow-all.
    pub fn from_list(path: &Path, content: &str) -> Result<RuleSet> {
        let bad = |m: String| CgroupError::Parse {
            path: path.to_path_buf(),
            message: m,
        };
        let mut set = RuleSet::default();
        for line in content.lines().filter(|l| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split([' ', ':']).filter(|s| !s.is_empty()).collect();
            if f.len() != 4 {
                return Err(bad(format!("malformed devices.list line {line:?}")));
            }
            let num = |s: &str| -> Result<i64> {
                if s == "*" {
                    Ok(ANY)
                } else {
                    s.parse::<u32>()
                        .map(i64::from)
                        .map_err(|_| bad(format!("bad number in {line:?}")))
                }
            };
            let typ = f[0]
                .chars()
                .next()
                .filter(|c| matches!(c, 'a' | 'b' | 'c'))
                .ok_or_else(|| bad(format!("bad type in {line:?}")))?;
            let access =
                Access::parse(f[3]).ok_or_else(|| bad(format!("bad access in {line:?}")))?;
            let rule = DeviceRule {
                allow: true,
                typ,
                major: num(f[1])?,
                minor: num(f[2])?,
                access,
            };
            set.apply(&rule).map_err(bad)?;
        }
        Ok(set)
    }

    pub fn apply(&mut self, rule: &DeviceRule) -> std::result::Result<(), String> {
        if rule.typ == 'a' {
            // "a" resets everything, whatever its access or numbers say.
            *self = RuleSet {
                default_allow: rule.allow,
                exceptions: BTreeMap::new(),
            };
            return Ok(());
        }
        let key = (rule.major, rule.minor, rule.typ);
        if rule.allow != self.default_allow {
            let merged = self
                .exceptions
                .get(&key)
                .copied()
                .unwrap_or_default()
                .union(rule.access);
            self.exceptions.insert(key, merged);
            return Ok(());
        }
        // A rule agreeing with the default removes access from an exception;
        // v1 cannot carve it out of a broader wildcard exception.
        for partial in [
            (ANY, rule.minor, rule.typ),
            (rule.major, ANY, rule.typ),
            (ANY, ANY, rule.typ),
        ] {
            if partial == key {
                continue;
            }
            if let Some(p) = self.exceptions.get(&partial) {
                if p.intersects(rule.access) {
                    return Err(format!(
                        "rule {:?} cannot punch a hole in the wildcard rule {:?} (not supported by the devices cgroup)",
                        rule.cgroup_string(),
                        DeviceRule {
                            allow: !rule.allow,
                            typ: rule.typ,
                            major: partial.0,
                            minor: partial.1,
                            access: *p,
                        }
                        .cgroup_string()
                    ));
                }
            }
        }
        if let Some(old) = self.exceptions.get(&key).copied() {
            let left = old.difference(rule.access);
            if left.is_empty() {
                self.exceptions.remove(&key);
            } else {
                self.exceptions.insert(key, left);
            }
        }
        Ok(())
    }

    /// The writes that turn `self` into `target` (runc's Emulator.Transition):
    /// an "a" reset when the default changes (or from allow-all), then
    /// removed access, then added access, each in (major, minor, type) order.
    pub fn transition(&self, target: &RuleSet) -> Vec<DeviceRule> {
        let mut out = Vec::new();
        let empty = BTreeMap::new();
        let mut old = &self.exceptions;
        if self.default_allow || self.default_allow != target.default_allow {
            out.push(DeviceRule {
                allow: target.default_allow,
                typ: 'a',
                major: ANY,
                minor: ANY,
                access: Access::ALL,
            });
            old = &empty;
        }
        let rule = |&(major, minor, typ): &RuleKey, access, allow| DeviceRule {
            allow,
            typ,
            major,
            minor,
            access,
        };
        for (key, perms) in old {
            let dropped = perms.difference(target.exceptions.get(key).copied().unwrap_or_default());
            if !dropped.is_empty() {
                out.push(rule(key, dropped, target.default_allow));
            }
        }
        for (key, perms) in &target.exceptions {
            let gained = perms.difference(old.get(key).copied().unwrap_or_default());
            if !gained.is_empty() {
                out.push(rule(key, gained, !target.default_allow));
            }
        }
        out
    }

    /// The minimal rule list with this effect, starting from deny-all.
    pub fn clean_rules(&self) -> Vec<DeviceRule> {
        RuleSet::default().transition(self)
    }
}

/// Brings a v1 devices cgroup to `target` (the effect of `rules`), then
/// checks the kernel agrees. A fresh cgroup (allow-all) whose rules start
/// with a deny-all gets the rules written in config order, so devices.list
/// lists them in that order (runtime-tools checks this; crun does the same);
/// otherwise only the difference from devices.list is written.
pub fn apply_v1(dir: &Path, rules: &[DeviceRule], target: &RuleSet) -> Result<()> {
    let list = dir.join("devices.list");
    let current = RuleSet::from_list(&list, &read_string(&list)?)?;
    let starts_with_reset = rules.first().is_some_and(|r| r.typ == 'a' && !r.allow);
    let writes = if current.default_allow && current.exceptions.is_empty() && starts_with_reset {
        rules.to_vec()
    } else {
        current.transition(target)
    };
    for rule in writes {
        let file = if rule.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        append_field(dir, file, &rule.cgroup_string(), "linux.resources.devices")?;
    }
    // Only the kernel updates devices.list; a fixture tree cannot be checked.
    if sys::statfs_type(dir).ok() != Some(sys::CGROUP_SUPER_MAGIC) {
        return Ok(());
    }
    let after = RuleSet::from_list(&list, &read_string(&list)?)?;
    let matches = if target.default_allow {
        // An allow-all list shows only "a *:* rwm", whatever the exceptions.
        after.default_allow
    } else {
        after == *target
    };
    if !matches {
        return Err(CgroupError::State {
            path: list,
            message: "the device rules the kernel reports do not match the requested rules".into(),
        });
    }
    Ok(())
}
