//! `--keep-tagged TAG=N`: retention tiers in one history ("frequent keep
//! 5, moderate keep 10, milestones forever, always the 3 newest" as one
//! policy), given to forget or stored for prune; counts of 0 are refused.

use crate::common::*;

/// Snapshots of model/m with these tag lists, oldest first; their ids.
fn tagged_history(env: &Env, tags: &[&[&str]]) -> Vec<String> {
    tags.iter()
        .enumerate()
        .map(|(i, tags)| {
            let data = random_bytes(10_000, i as u64 + 40);
            let mut args = vec!["--kind", "model", "--name", "m"];
            for t in *tags {
                args.extend(["--tag", t]);
            }
            env.snapshot_files("src-m", &[("w.bin", &data)], &args)
        })
        .collect()
}

const TAGS: [&[&str]; 8] = [
    &["moderate", "milestone"],
    &["frequent"],
    &["moderate"],
    &["frequent"],
    &["frequent"],
    &["moderate"],
    &["frequent"],
    &[],
];

const RULES: [&str; 8] = [
    "--keep-tagged",
    "frequent=2",
    "--keep-tagged",
    "moderate=1",
    "--keep-tag",
    "milestone",
    "--keep-last",
    "1",
];

/// Indexes (into [`TAGS`]) of what [`RULES`] keep: the newest, the two
/// newest `frequent`, the newest `moderate`, the milestone.
const KEPT: [usize; 5] = [0, 4, 5, 6, 7];

#[test]
fn forget_keeps_each_tier_and_says_why() {
    let env = Env::new();
    let ids = tagged_history(&env, &TAGS);
    let v = env.json([&["forget"], &RULES[..]].concat());
    let h = &v["histories"][0];
    assert_eq!(
        h["policy"]["keep_tagged"],
        serde_json::json!({"frequent": 2, "moderate": 1}),
        "{v}"
    );
    let verdicts = h["snapshots"].as_array().unwrap();
    let reasons_of =
        |id: &str| verdicts.iter().find(|s| s["snapshot"]["id"] == id).unwrap()["reasons"].clone();
    assert_eq!(reasons_of(&ids[6]), serde_json::json!(["tagged frequent"]));
    assert_eq!(reasons_of(&ids[5]), serde_json::json!(["tagged moderate"]));
    assert_eq!(reasons_of(&ids[0]), serde_json::json!(["tag milestone"]));
    let kept: Vec<String> = KEPT.iter().map(|&i| ids[i].clone()).collect();
    assert_eq!(env.snapshot_ids(), kept);
}

#[test]
fn a_stored_tiered_policy_is_shown_and_applied_by_prune() {
    let env = Env::new();
    let ids = tagged_history(&env, &TAGS);
    let out = env.ok(&[&["policy", "set", "model/m"], &RULES[..]].concat());
    assert!(
        out.contains(
            "keep-last 1, keep-tag milestone, keep-tagged frequent=2, keep-tagged moderate=1"
        ),
        "{out}"
    );
    let shown = env.json(["policy", "show"]);
    assert_eq!(
        shown
            .to_string()
            .matches("\"keep_tagged\":{\"frequent\":2,\"moderate\":1}")
            .count(),
        1,
        "{shown}"
    );
    run_ok(env.cmd(["prune"]));
    let kept: Vec<String> = KEPT.iter().map(|&i| ids[i].clone()).collect();
    assert_eq!(env.snapshot_ids(), kept);
}

#[test]
fn zero_counts_and_malformed_tiers_are_errors_not_no_rule() {
    let env = Env::new();
    tagged_history(&env, &TAGS[..2]);
    for (args, says) in [
        (&["--keep-last", "0"][..], "--keep-last must be at least 1"),
        (
            &["--keep-daily", "0"][..],
            "--keep-daily must be at least 1",
        ),
        (
            &["--keep-tagged", "frequent=0"][..],
            "--keep-tagged must be at least 1",
        ),
        (&["--keep-tagged", "frequent"][..], "is not TAG=N"),
        (&["--keep-tagged", "=3"][..], "needs a tag"),
    ] {
        let err = run_code(env.cmd([&["forget"], args].concat()), 2);
        assert!(err.contains(says), "{args:?}: {err}");
        let err = run_code(env.cmd([&["policy", "set", "model"], args].concat()), 2);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(env.snapshot_ids().len(), 2, "nothing removed");
}
