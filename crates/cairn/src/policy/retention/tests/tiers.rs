//! `keep_tagged`: tiers of one history by tag (`frequent=2`, `moderate=1`),
//! combined with the other rules, and its stored form.

use super::*;

/// s1 (oldest) .. s8 (newest) of one history, tagged by tier.
fn tiered() -> Vec<Candidate> {
    let g = "model/m";
    vec![
        snap("s1", g, "2025-01-01T00:00:00Z", &["moderate", "milestone"]),
        snap("s2", g, "2025-01-02T00:00:00Z", &["frequent"]),
        snap("s3", g, "2025-01-03T00:00:00Z", &["moderate"]),
        snap("s4", g, "2025-01-04T00:00:00Z", &["frequent"]),
        snap("s5", g, "2025-01-05T00:00:00Z", &["frequent"]),
        snap("s6", g, "2025-01-06T00:00:00Z", &["moderate"]),
        snap("s7", g, "2025-01-07T00:00:00Z", &["frequent"]),
        snap("s8", g, "2025-01-08T00:00:00Z", &[]),
    ]
}

fn tiers(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

#[test]
fn tiers_keep_the_newest_of_each_tag_beside_the_other_rules() {
    let p = RetentionPolicy::default;
    const F: &[&str] = &["tagged frequent"];
    const M: &[&str] = &["tagged moderate"];
    let cases: Vec<(RetentionPolicy, Kept<'_>)> = vec![
        (
            RetentionPolicy {
                keep_tagged: tiers(&[("frequent", 2)]),
                ..p()
            },
            &[("s7", F), ("s5", F)],
        ),
        (
            RetentionPolicy {
                keep_tagged: tiers(&[("frequent", 2), ("moderate", 2), ("none", 3)]),
                keep_tags: vec!["milestone".into()],
                keep_last: Some(1),
                ..p()
            },
            &[
                ("s8", &[LAST]),
                ("s7", F),
                ("s6", M),
                ("s5", F),
                ("s3", M),
                ("s1", &["tag milestone"]),
            ],
        ),
        // A snapshot in two rules lists both; a tier of 0 is no rule.
        (
            RetentionPolicy {
                keep_tagged: tiers(&[("frequent", 1), ("moderate", 0)]),
                keep_last: Some(1),
                ..p()
            },
            &[("s8", &[LAST]), ("s7", F)],
        ),
    ];
    run_table(&cases, &tiered(), offset(0));
}

#[test]
fn tiers_display_count_as_rules_and_are_stored_only_when_given() {
    let policy = RetentionPolicy {
        keep_last: Some(3),
        keep_tagged: tiers(&[("moderate", 10), ("frequent", 5)]),
        ..RetentionPolicy::default()
    };
    assert_eq!(
        policy.to_string(),
        "keep-last 3, keep-tagged frequent=5, keep-tagged moderate=10"
    );
    let zero = RetentionPolicy {
        keep_tagged: tiers(&[("frequent", 0)]),
        ..RetentionPolicy::default()
    };
    assert!(zero.is_empty());
    let json = serde_json::to_string(&policy).unwrap();
    assert!(
        json.ends_with(r#","keep_tags":[],"keep_tagged":{"frequent":5,"moderate":10}}"#),
        "{json}"
    );
    assert_eq!(
        serde_json::from_str::<RetentionPolicy>(&json).unwrap(),
        policy
    );
    // Without tiers the stored form is what older cairns wrote and read.
    let plain = serde_json::to_string(&RetentionPolicy::default()).unwrap();
    assert!(!plain.contains("keep_tagged"), "{plain}");
}
