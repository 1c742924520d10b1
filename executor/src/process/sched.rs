//! `process.scheduler`: the OCI scheduler settings turned into the
//! `sched_attr` the process applies with sched_setattr(2) before exec.

use crate::error::{Error, Result};
use crate::spec::Scheduler;
use crate::sys::proc::SchedAttr;

const SCHED_OTHER: u32 = 0;
const SCHED_FIFO: u32 = 1;
const SCHED_RR: u32 = 2;
const SCHED_BATCH: u32 = 3;
const SCHED_IDLE: u32 = 5;
const SCHED_DEADLINE: u32 = 6;

const FLAGS: [(&str, u64); 7] = [
    ("SCHED_FLAG_RESET_ON_FORK", 0x01),
    ("SCHED_FLAG_RECLAIM", 0x02),
    ("SCHED_FLAG_DL_OVERRUN", 0x04),
    ("SCHED_FLAG_KEEP_POLICY", 0x08),
    ("SCHED_FLAG_KEEP_PARAMS", 0x10),
    ("SCHED_FLAG_UTIL_CLAMP_MIN", 0x20),
    ("SCHED_FLAG_UTIL_CLAMP_MAX", 0x40),
];

/// Validates `process.scheduler` and builds the attribute block. `field`
/// is the config path of the scheduler object.
pub(crate) fn plan(s: &Scheduler, field: &str) -> Result<SchedAttr> {
    let bad = |sub: &str, msg: String| Error::invalid(format!("{field}.{sub}"), msg);
    let policy = match s.policy.as_str() {
        "SCHED_OTHER" => SCHED_OTHER,
        "SCHED_FIFO" => SCHED_FIFO,
        "SCHED_RR" => SCHED_RR,
        "SCHED_BATCH" => SCHED_BATCH,
        "SCHED_IDLE" => SCHED_IDLE,
        "SCHED_DEADLINE" => SCHED_DEADLINE,
        "SCHED_ISO" => {
            return Err(bad(
                "policy",
                "SCHED_ISO is reserved and not implemented by Linux".into(),
            ))
        }
        other => return Err(bad("policy", format!("unknown policy {other:?}"))),
    };
    if !(-20..=19).contains(&s.nice) {
        return Err(bad("nice", format!("{} is outside -20..19", s.nice)));
    }
    let realtime = matches!(policy, SCHED_FIFO | SCHED_RR);
    if realtime && !(1..=99).contains(&s.priority) {
        return Err(bad(
            "priority",
            format!("{} is outside 1..99 for {}", s.priority, s.policy),
        ));
    }
    if !realtime && s.priority != 0 {
        return Err(bad(
            "priority",
            format!(
                "must be 0 for {} (only SCHED_FIFO and SCHED_RR take a priority)",
                s.policy
            ),
        ));
    }
    if policy == SCHED_DEADLINE {
        let period = if s.period == 0 { s.deadline } else { s.period };
        if s.runtime == 0 || s.runtime > s.deadline || s.deadline > period {
            return Err(bad(
                "runtime",
                format!(
                    "SCHED_DEADLINE needs 0 < runtime <= deadline <= period (got {} / {} / {})",
                    s.runtime, s.deadline, s.period
                ),
            ));
        }
    } else if s.runtime != 0 || s.deadline != 0 || s.period != 0 {
        return Err(bad(
            "runtime",
            format!(
                "runtime, deadline and period only apply to SCHED_DEADLINE, not {}",
                s.policy
            ),
        ));
    }
    let mut flags = 0;
    for (i, f) in s.flags.iter().enumerate() {
        let bit = FLAGS
            .iter()
            .find(|(name, _)| name == f)
            .map(|(_, bit)| *bit)
            .ok_or_else(|| bad(&format!("flags[{i}]"), format!("unknown flag {f:?}")))?;
        flags |= bit;
    }
    Ok(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice: s.nice,
        priority: s.priority as u32,
        runtime: s.runtime,
        deadline: s.deadline,
        period: s.period,
        util_min: 0,
        util_max: 1024,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(policy: &str) -> Scheduler {
        Scheduler {
            policy: policy.into(),
            ..Default::default()
        }
    }

    #[test]
    fn batch_with_nice_and_flags() {
        let mut s = sched("SCHED_BATCH");
        s.nice = 7;
        s.flags = vec!["SCHED_FLAG_RESET_ON_FORK".into()];
        let a = plan(&s, "process.scheduler").unwrap();
        assert_eq!((a.size, a.policy, a.nice, a.flags), (56, SCHED_BATCH, 7, 1));
    }

    #[test]
    fn realtime_needs_a_priority_and_others_must_not_have_one() {
        let mut s = sched("SCHED_FIFO");
        let e = plan(&s, "process.scheduler").unwrap_err().to_string();
        assert!(e.contains("process.scheduler.priority"), "{e}");
        s.priority = 10;
        assert_eq!(plan(&s, "process.scheduler").unwrap().priority, 10);
        let mut s = sched("SCHED_OTHER");
        s.priority = 3;
        assert!(plan(&s, "p.scheduler").is_err());
    }

    #[test]
    fn deadline_parameters_are_checked() {
        let mut s = sched("SCHED_DEADLINE");
        s.runtime = 10_000_000;
        s.deadline = 20_000_000;
        assert!(plan(&s, "p.scheduler").is_ok());
        s.period = 15_000_000;
        assert!(plan(&s, "p.scheduler").is_err());
        let mut s = sched("SCHED_OTHER");
        s.runtime = 1;
        assert!(plan(&s, "p.scheduler").is_err());
    }

    #[test]
    fn unknown_policy_flag_or_nice_names_the_field() {
        let e = plan(&sched("SCHED_FAST"), "process.scheduler").unwrap_err();
        assert!(e.to_string().contains("process.scheduler.policy"), "{e}");
        assert!(plan(&sched("SCHED_ISO"), "process.scheduler").is_err());
        let mut s = sched("SCHED_OTHER");
        s.flags = vec!["SCHED_FLAG_RESET_ON_FORK".into(), "SCHED_FLAG_NOPE".into()];
        let e = plan(&s, "process.scheduler").unwrap_err();
        assert!(e.to_string().contains("process.scheduler.flags[1]"), "{e}");
        let mut s = sched("SCHED_OTHER");
        s.nice = 20;
        assert!(plan(&s, "process.scheduler").is_err());
    }
}
