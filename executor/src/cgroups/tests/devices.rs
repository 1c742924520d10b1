//! The device rule engine and the eBPF program built from it.

use std::path::Path;

use super::super::devices::{rules_from_spec, Access, DeviceRule, RuleSet, ANY};
use super::super::v2_devices::{
    alu32_imm, build_program, exit, jmp_imm, jmp_reg, mov32_reg, BpfInsn, AND, JEQ, JNE, MOV,
    PROLOGUE,
};
use crate::spec::DeviceCgroup;

fn rule(allow: bool, typ: char, major: i64, minor: i64, access: &str) -> DeviceRule {
    DeviceRule {
        allow,
        typ,
        major,
        minor,
        access: Access::parse(access).unwrap(),
    }
}

fn strings(rules: &[DeviceRule]) -> Vec<(bool, String)> {
    rules.iter().map(|r| (r.allow, r.cgroup_string())).collect()
}

#[test]
fn a_rule_resets_and_later_rules_merge_or_remove() {
    let set = RuleSet::from_rules(&[
        rule(true, 'c', 1, 3, "r"),
        rule(false, 'a', ANY, ANY, "rwm"),
        rule(true, 'c', 1, 3, "r"),
        rule(true, 'c', 1, 3, "w"),
        rule(true, 'c', 1, 5, "rwm"),
        rule(false, 'c', 1, 5, "m"),
    ])
    .unwrap();
    assert!(!set.default_allow);
    assert_eq!(
        strings(&set.clean_rules()),
        vec![
            (true, "c 1:3 rw".to_string()),
            (true, "c 1:5 rw".to_string())
        ]
    );
}

#[test]
fn punching_a_hole_in_a_wildcard_is_refused_like_v1() {
    let err = RuleSet::from_rules(&[
        rule(false, 'a', ANY, ANY, "rwm"),
        rule(true, 'c', ANY, ANY, "rwm"),
        rule(false, 'c', 1, 3, "r"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("linux.resources.devices: rule \"c 1:3 r\" cannot punch a hole"),
        "{err}"
    );
}

#[test]
fn transition_between_allow_lists_writes_only_the_difference() {
    let from = RuleSet::from_rules(&[
        rule(false, 'a', ANY, ANY, "rwm"),
        rule(true, 'c', 1, 3, "rwm"),
        rule(true, 'c', 1, 5, "rwm"),
    ])
    .unwrap();
    let to = RuleSet::from_rules(&[
        rule(false, 'a', ANY, ANY, "rwm"),
        rule(true, 'c', 1, 3, "r"),
        rule(true, 'c', 1, 9, "rwm"),
    ])
    .unwrap();
    assert_eq!(
        strings(&from.transition(&to)),
        vec![
            (false, "c 1:3 wm".into()),
            (false, "c 1:5 rwm".into()),
            (true, "c 1:9 rwm".into())
        ]
    );
    // From allow-all (a fresh v1 cgroup) the reset always comes first.
    let fresh = RuleSet::from_list(Path::new("devices.list"), "a *:* rwm\n").unwrap();
    assert!(fresh.default_allow);
    let t = fresh.transition(&to);
    assert_eq!(t[0].cgroup_string(), "a *:* rwm");
    assert!(!t[0].allow);
    assert_eq!(t.len(), 3);
}

#[test]
fn devices_list_parses_back_into_the_same_set() {
    let set = RuleSet::from_rules(
        &rules_from_spec(&[DeviceCgroup {
            allow: false,
            access: Some("rwm".into()),
            ..Default::default()
        }])
        .unwrap(),
    )
    .unwrap();
    let list: String = set
        .clean_rules()
        .iter()
        .map(|r| format!("{}\n", r.cgroup_string()))
        .collect();
    assert_eq!(
        RuleSet::from_list(Path::new("devices.list"), &list).unwrap(),
        set
    );
    assert!(RuleSet::from_list(Path::new("devices.list"), "c 1:x rwm\n").is_err());
}

fn raw(p: &[BpfInsn]) -> Vec<(u8, u8, i16, i32)> {
    p.iter().map(|i| (i.code, i.regs, i.off, i.imm)).collect()
}

#[test]
fn allow_list_program_matches_type_major_minor_and_defaults_to_deny() {
    let set = RuleSet::from_rules(&[
        rule(false, 'a', ANY, ANY, "rwm"),
        rule(true, 'c', 1, 3, "rwm"),
        rule(true, 'b', 8, ANY, "r"),
    ])
    .unwrap();
    let p = build_program(&set).unwrap();
    let mut want: Vec<BpfInsn> = PROLOGUE.to_vec();
    want.extend([
        // c 1:3 rwm (no access check needed)
        jmp_imm(JNE, 2, 2, 4),
        jmp_imm(JNE, 4, 1, 3),
        jmp_imm(JNE, 5, 3, 2),
        alu32_imm(MOV, 0, 1),
        exit(),
        // b 8:* r: the request must be a subset of "r"
        jmp_imm(JNE, 2, 1, 6),
        mov32_reg(1, 3),
        alu32_imm(AND, 1, 2),
        jmp_reg(JNE, 1, 3, 3),
        jmp_imm(JNE, 4, 8, 2),
        alu32_imm(MOV, 0, 1),
        exit(),
        // default: deny
        alu32_imm(MOV, 0, 0),
        exit(),
    ]);
    assert_eq!(p, want);
    // The wire encoding of a few instructions (struct bpf_insn).
    assert_eq!(
        raw(&p[..4]),
        vec![
            (0x61, 0x12, 0, 0),
            (0x54, 0x02, 0, 0xffff),
            (0x61, 0x13, 0, 0),
            (0x74, 0x03, 0, 16)
        ]
    );
    assert_eq!(raw(&p[6..7]), vec![(0x55, 0x02, 4, 2)]);
    assert_eq!(
        raw(&p[12..14]),
        vec![(0xbc, 0x31, 0, 0), (0x54, 0x01, 0, 2)]
    );
    assert_eq!(raw(&p[14..15]), vec![(0x5d, 0x31, 3, 0)]);
    assert_eq!(
        raw(&p[p.len() - 2..]),
        vec![(0xb4, 0x00, 0, 0), (0x95, 0x00, 0, 0)]
    );
}

#[test]
fn deny_list_program_denies_on_any_overlapping_access() {
    let set = RuleSet::from_rules(&[
        rule(true, 'a', ANY, ANY, "rwm"),
        rule(false, 'c', 1, 3, "w"),
    ])
    .unwrap();
    assert!(set.default_allow);
    let p = build_program(&set).unwrap();
    let mut want: Vec<BpfInsn> = PROLOGUE.to_vec();
    want.extend([
        jmp_imm(JNE, 2, 2, 7),
        mov32_reg(1, 3),
        alu32_imm(AND, 1, 4),
        jmp_imm(JEQ, 1, 0, 4),
        jmp_imm(JNE, 4, 1, 3),
        jmp_imm(JNE, 5, 3, 2),
        alu32_imm(MOV, 0, 0),
        exit(),
        alu32_imm(MOV, 0, 1),
        exit(),
    ]);
    assert_eq!(p, want);
}

#[test]
fn default_rules_follow_the_spec_rules() {
    let rules = rules_from_spec(&[DeviceCgroup {
        allow: true,
        typ: Some("c".into()),
        major: Some(4),
        minor: None,
        access: Some("rw".into()),
    }])
    .unwrap();
    assert_eq!(rules[0].cgroup_string(), "c 4:* rw");
    assert_eq!(rules.len(), 12);
    assert_eq!(rules[3].cgroup_string(), "c 1:3 rwm");
    // Only allow rules and no "a" reset: deny-all is the starting point.
    let set = RuleSet::from_rules(&rules).unwrap();
    assert!(!set.default_allow);
    assert_eq!(set.exceptions.len(), 12);
}
