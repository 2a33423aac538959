//! Properties over random histories, checked against a strftime reference.

use super::*;

fn arb_candidates() -> impl Strategy<Value = Vec<Candidate>> {
    // Times within ~3 years around 2024, at minute resolution so ties and shared hours
    // happen; ids are unique.
    let one = (
        0..3usize,
        0i64..1_500_000,
        prop::collection::vec(0..3usize, 0..2),
    );
    prop::collection::vec(one, 0..40).prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (group, minute, tags))| Candidate {
                id: format!("c{i:02}"),
                group: ["a/x", "b/y", "c/z"][group].to_owned(),
                time: Utc.timestamp_opt(1_700_000_000 + minute * 60, 0).unwrap(),
                tags: tags
                    .into_iter()
                    .map(|t| ["t0", "t1", "t2"][t].to_owned())
                    .collect(),
            })
            .collect()
    })
}

fn arb_policy() -> impl Strategy<Value = RetentionPolicy> {
    let count = || prop::option::of(0u32..6);
    let span = prop::option::of((0u32..2, 0u32..3, 0u32..300, 0u32..48)).prop_map(|s| {
        s.map(|(years, months, days, hours)| KeepWithin {
            years,
            months,
            days,
            hours,
            ..KeepWithin::default()
        })
    });
    let tags = prop::collection::vec(prop::sample::select(vec!["t0", "t1"]), 0..2);
    (
        count(),
        count(),
        count(),
        count(),
        count(),
        count(),
        span,
        tags,
    )
        .prop_map(
            |(
                keep_last,
                keep_hourly,
                keep_daily,
                keep_weekly,
                keep_monthly,
                keep_yearly,
                keep_within,
                tags,
            )| {
                RetentionPolicy {
                    keep_last,
                    keep_hourly,
                    keep_daily,
                    keep_weekly,
                    keep_monthly,
                    keep_yearly,
                    keep_within,
                    keep_tags: tags.into_iter().map(String::from).collect(),
                    keep_tagged: BTreeMap::new(),
                }
            },
        )
}

/// Reference for one bucketed rule, written independently of `Period::bucket`: the newest
/// snapshot (by output order) of each of the `count` most recent periods, with the period
/// keyed by a strftime pattern.
fn reference_periods(
    decisions: &[Decision],
    pattern: &str,
    count: usize,
    tz: FixedOffset,
) -> Vec<String> {
    let mut kept = Vec::new();
    let mut seen: Vec<(String, String)> = Vec::new();
    for d in decisions {
        let key = (
            d.group.clone(),
            d.time.with_timezone(&tz).format(pattern).to_string(),
        );
        let periods_in_group = seen.iter().filter(|(g, _)| *g == d.group).count();
        if !seen.contains(&key) && periods_in_group < count {
            seen.push(key);
            kept.push(d.id.clone());
        }
    }
    kept
}

proptest! {
    #[test]
    fn decisions_are_a_sorted_permutation_with_consistent_reasons(
        candidates in arb_candidates(), policy in arb_policy(), hours in -12i32..=14,
    ) {
        let decisions = apply(&policy, &candidates, offset(hours));
        let mut ids: Vec<&str> = decisions.iter().map(|d| d.id.as_str()).collect();
        let sorted = decisions.windows(2).all(|w| {
            (&w[0].group, std::cmp::Reverse(w[0].time), &w[0].id)
                < (&w[1].group, std::cmp::Reverse(w[1].time), &w[1].id)
        });
        prop_assert!(sorted);
        ids.sort_unstable();
        let mut want: Vec<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
        want.sort_unstable();
        prop_assert_eq!(ids, want);
        for d in &decisions {
            prop_assert_eq!(d.keep, !d.reasons.is_empty());
        }
        // Input order does not matter.
        let mut reversed = candidates.clone();
        reversed.reverse();
        prop_assert_eq!(apply(&policy, &reversed, offset(hours)), decisions);
    }

    #[test]
    fn bucketed_rules_match_a_strftime_reference(
        candidates in arb_candidates(), count in 1u32..6, which in 0usize..5, hours in -12i32..=14,
    ) {
        let (period, pattern) = [
            (Period::Hourly, "%Y-%m-%d %H"),
            (Period::Daily, "%Y-%m-%d"),
            (Period::Weekly, "%G-W%V"),
            (Period::Monthly, "%Y-%m"),
            (Period::Yearly, "%Y"),
        ][which];
        let mut policy = RetentionPolicy::default();
        *match period {
            Period::Hourly => &mut policy.keep_hourly,
            Period::Daily => &mut policy.keep_daily,
            Period::Weekly => &mut policy.keep_weekly,
            Period::Monthly => &mut policy.keep_monthly,
            Period::Yearly => &mut policy.keep_yearly,
        } = Some(count);
        let decisions = apply(&policy, &candidates, offset(hours));
        let kept: Vec<String> = decisions.iter().filter(|d| d.keep).map(|d| d.id.clone()).collect();
        prop_assert_eq!(kept, reference_periods(&decisions, pattern, count as usize, offset(hours)));
    }

    #[test]
    fn keep_last_keeps_the_newest_n_of_each_group(candidates in arb_candidates(), n in 1u32..10) {
        let policy = RetentionPolicy { keep_last: Some(n), ..RetentionPolicy::default() };
        let decisions = apply(&policy, &candidates, offset(0));
        for group in ["a/x", "b/y", "c/z"] {
            let in_group: Vec<&Decision> = decisions.iter().filter(|d| d.group == group).collect();
            let kept = in_group.iter().take_while(|d| d.keep).count();
            prop_assert_eq!(kept, in_group.len().min(n as usize));
            prop_assert!(in_group[kept..].iter().all(|d| !d.keep));
        }
    }
}
