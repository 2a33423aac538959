//! Retention rules, table-driven: each case a policy, snapshots and the verdicts expected.

use super::*;
use chrono::TimeZone;
use proptest::prelude::*;

const HOURLY: &str = "hourly snapshot";
const DAILY: &str = "daily snapshot";
const WEEKLY: &str = "weekly snapshot";
const MONTHLY: &str = "monthly snapshot";
const YEARLY: &str = "yearly snapshot";

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn offset(hours: i32) -> FixedOffset {
    FixedOffset::east_opt(hours * 3600).unwrap()
}

fn snap(id: &str, group: &str, time: &str, tags: &[&str]) -> Candidate {
    Candidate {
        id: id.to_owned(),
        group: group.to_owned(),
        time: utc(time),
        tags: tags.iter().map(|t| t.to_string()).collect(),
    }
}

fn within(s: &str) -> Option<KeepWithin> {
    Some(parse_duration(s).unwrap())
}

/// Two months of snapshots of one group, Dec 2024 - Jan 2025 (UTC). ISO weeks:
/// 2024-W48 ends Sun Dec 1; W49 Dec 2-8; W50 Dec 9-15; W51 Dec 16-22; W52 Dec 23-29;
/// 2025-W01 Mon Dec 30 - Sun Jan 5; W02 Jan 6-12; W03 Jan 13-19 (empty); W04 Jan 20-26;
/// W05 Jan 27 - Feb 2.
fn history() -> Vec<Candidate> {
    let g = "model/llama";
    vec![
        snap("s01", g, "2024-12-01T10:00:00Z", &[]), // Sunday, W48
        snap("s02", g, "2024-12-05T09:00:00Z", &[]),
        snap("s03", g, "2024-12-05T21:00:00Z", &["milestone"]),
        snap("s04", g, "2024-12-15T23:59:59Z", &[]), // last second of Sunday, W50
        snap("s05", g, "2024-12-16T00:00:00Z", &[]), // Monday midnight, W51
        snap("s06", g, "2024-12-24T12:00:00Z", &[]),
        snap("s07", g, "2024-12-29T18:00:00Z", &["release"]), // Sunday, 2024-W52
        snap("s08", g, "2024-12-30T08:00:00Z", &[]),          // Monday, 2025-W01
        snap("s09", g, "2024-12-31T23:59:59Z", &[]),          // last second of 2024
        snap("s10", g, "2025-01-01T00:00:00Z", &[]),          // month and year boundary
        snap("s11", g, "2025-01-03T14:00:00Z", &[]),
        snap("s12", g, "2025-01-10T07:00:00Z", &["milestone", "release"]),
        snap("s13", g, "2025-01-10T07:45:00Z", &[]), // same hour as s12
        snap("s14", g, "2025-01-10T19:00:00Z", &[]),
        // gap: nothing Jan 11-19
        snap("s15", g, "2025-01-20T06:00:00Z", &[]),
        snap("s16", g, "2025-01-25T12:00:00Z", &[]),
        snap("s17", g, "2025-01-25T12:00:00Z", &[]), // same time as s16: s16 sorts first
        snap("s18", g, "2025-01-31T09:00:00Z", &[]),
        snap("s19", g, "2025-01-31T15:10:00Z", &[]),
        snap("s20", g, "2025-01-31T15:30:00Z", &[]),
    ]
}

/// Expected newest-first order of `history()`.
const ORDER: [&str; 20] = [
    "s20", "s19", "s18", "s16", "s17", "s15", "s14", "s13", "s12", "s11", "s10", "s09", "s08",
    "s07", "s06", "s05", "s04", "s03", "s02", "s01",
];

type Kept<'a> = &'a [(&'a str, &'a [&'a str])];

/// The same reasons for each of `ids`.
fn same<'a>(ids: &[&'a str], reasons: &'a [&'a str]) -> Vec<(&'a str, &'a [&'a str])> {
    ids.iter().map(|&id| (id, reasons)).collect()
}

/// Asserts that exactly the `kept` ids are kept, with exactly those reasons, and that the
/// decisions come in `order`.
fn check(decisions: &[Decision], order: &[&str], kept: Kept<'_>, label: &str) {
    let ids: Vec<&str> = decisions.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, order, "order for {label}");
    for d in decisions {
        let expected = kept.iter().find(|(id, _)| *id == d.id);
        let want: Vec<&str> = expected.map_or(Vec::new(), |(_, r)| r.to_vec());
        assert_eq!(d.reasons, want, "reasons of {} for {label}", d.id);
        assert_eq!(d.keep, expected.is_some(), "keep of {} for {label}", d.id);
    }
    for (id, _) in kept {
        assert!(ids.contains(id), "{id} missing for {label}");
    }
}

fn run_table(cases: &[(RetentionPolicy, Kept<'_>)], candidates: &[Candidate], tz: FixedOffset) {
    for (policy, kept) in cases {
        let decisions = apply(policy, candidates, tz);
        let order: Vec<&str> = decisions.iter().map(|d| d.id.as_str()).collect();
        check(&decisions, &order, kept, &format!("{policy} at {tz}"));
    }
}

#[test]
fn output_is_newest_first_with_ties_broken_by_id() {
    let mut input = history();
    input.reverse();
    let decisions = apply(&RetentionPolicy::default(), &input, offset(0));
    let ids: Vec<&str> = decisions.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ORDER);
}

#[test]
fn single_rules_in_utc() {
    let p = RetentionPolicy::default;
    let all_last = same(&ORDER, &[LAST]);
    let cases: Vec<(RetentionPolicy, Kept<'_>)> = vec![
        (
            RetentionPolicy {
                keep_last: Some(3),
                ..p()
            },
            &[("s20", &[LAST]), ("s19", &[LAST]), ("s18", &[LAST])],
        ),
        // s16 and s17 share a time; the id tie-break makes s16 the newer one.
        (
            RetentionPolicy {
                keep_last: Some(4),
                ..p()
            },
            &[
                ("s20", &[LAST]),
                ("s19", &[LAST]),
                ("s18", &[LAST]),
                ("s16", &[LAST]),
            ],
        ),
        (
            RetentionPolicy {
                keep_last: Some(100),
                ..p()
            },
            &all_last,
        ),
        (
            RetentionPolicy {
                keep_hourly: Some(3),
                ..p()
            },
            &[("s20", &[HOURLY]), ("s18", &[HOURLY]), ("s16", &[HOURLY])],
        ),
        // s12 shares the 07:00 hour with the newer s13.
        (
            RetentionPolicy {
                keep_hourly: Some(7),
                ..p()
            },
            &[
                ("s20", &[HOURLY]),
                ("s18", &[HOURLY]),
                ("s16", &[HOURLY]),
                ("s15", &[HOURLY]),
                ("s14", &[HOURLY]),
                ("s13", &[HOURLY]),
                ("s11", &[HOURLY]),
            ],
        ),
        (
            RetentionPolicy {
                keep_daily: Some(3),
                ..p()
            },
            &[("s20", &[DAILY]), ("s16", &[DAILY]), ("s15", &[DAILY])],
        ),
        // Dec 31 23:59:59 and Jan 1 00:00:00 are different days.
        (
            RetentionPolicy {
                keep_daily: Some(8),
                ..p()
            },
            &[
                ("s20", &[DAILY]),
                ("s16", &[DAILY]),
                ("s15", &[DAILY]),
                ("s14", &[DAILY]),
                ("s11", &[DAILY]),
                ("s10", &[DAILY]),
                ("s09", &[DAILY]),
                ("s08", &[DAILY]),
            ],
        ),
        // 14 days have snapshots; a larger count keeps one per day and no more.
        (
            RetentionPolicy {
                keep_daily: Some(30),
                ..p()
            },
            &[
                ("s20", &[DAILY]),
                ("s16", &[DAILY]),
                ("s15", &[DAILY]),
                ("s14", &[DAILY]),
                ("s11", &[DAILY]),
                ("s10", &[DAILY]),
                ("s09", &[DAILY]),
                ("s08", &[DAILY]),
                ("s07", &[DAILY]),
                ("s06", &[DAILY]),
                ("s05", &[DAILY]),
                ("s04", &[DAILY]),
                ("s03", &[DAILY]),
                ("s01", &[DAILY]),
            ],
        ),
        // The empty week W03 does not use up the count.
        (
            RetentionPolicy {
                keep_weekly: Some(4),
                ..p()
            },
            &[
                ("s20", &[WEEKLY]),
                ("s16", &[WEEKLY]),
                ("s14", &[WEEKLY]),
                ("s11", &[WEEKLY]),
            ],
        ),
        // Dec 30 and 31 are in 2025-W01 with s11, so the 5th week is 2024-W52 (s07), and
        // Sun Dec 15 23:59:59 (W50) and Mon Dec 16 00:00 (W51) are different weeks.
        (
            RetentionPolicy {
                keep_weekly: Some(7),
                ..p()
            },
            &[
                ("s20", &[WEEKLY]),
                ("s16", &[WEEKLY]),
                ("s14", &[WEEKLY]),
                ("s11", &[WEEKLY]),
                ("s07", &[WEEKLY]),
                ("s05", &[WEEKLY]),
                ("s04", &[WEEKLY]),
            ],
        ),
        (
            RetentionPolicy {
                keep_monthly: Some(12),
                ..p()
            },
            &[("s20", &[MONTHLY]), ("s09", &[MONTHLY])],
        ),
        (
            RetentionPolicy {
                keep_yearly: Some(1),
                ..p()
            },
            &[("s20", &[YEARLY])],
        ),
        (
            RetentionPolicy {
                keep_yearly: Some(5),
                ..p()
            },
            &[("s20", &[YEARLY]), ("s09", &[YEARLY])],
        ),
        (
            RetentionPolicy {
                keep_tags: vec!["milestone".into()],
                ..p()
            },
            &[("s12", &["tag milestone"]), ("s03", &["tag milestone"])],
        ),
        (
            RetentionPolicy {
                keep_tags: vec!["milestone".into(), "release".into()],
                ..p()
            },
            &[
                ("s12", &["tag milestone", "tag release"]),
                ("s07", &["tag release"]),
                ("s03", &["tag milestone"]),
            ],
        ),
        (
            RetentionPolicy {
                keep_tags: vec!["nope".into()],
                ..p()
            },
            &[],
        ),
    ];
    run_table(&cases, &history(), offset(0));
}

#[test]
fn keep_within_is_measured_from_the_newest_snapshot() {
    let p = RetentionPolicy::default;
    let recent: [&str; 12] = [
        "s20", "s19", "s18", "s16", "s17", "s15", "s14", "s13", "s12", "s11", "s10", "s09",
    ];
    let w0 = same(&recent[..5], &["within 1w"]);
    let w1 = same(&recent[..6], &["within 11d9h30m"]);
    let w2 = same(&recent[..5], &["within 11d9h29m"]);
    let w3 = same(&recent[..10], &["within 30d"]);
    let w4 = same(&recent, &["within 1M"]);
    let w5 = same(&ORDER, &["within 999999y"]);
    let cases: Vec<(RetentionPolicy, Kept<'_>)> = vec![
        // Newest is Jan 31 15:30: cutoff Jan 24 15:30.
        (
            RetentionPolicy {
                keep_within: within("1w"),
                ..p()
            },
            &w0,
        ),
        // Cutoff lands exactly on s15 (Jan 20 06:00): the bound is inclusive.
        (
            RetentionPolicy {
                keep_within: within("11d9h30m"),
                ..p()
            },
            &w1,
        ),
        // One second less and s15 falls out.
        (
            RetentionPolicy {
                keep_within: within("11d9h29m"),
                ..p()
            },
            &w2,
        ),
        // 30 days back is Jan 1 15:30, a calendar month back is Dec 31 15:30.
        (
            RetentionPolicy {
                keep_within: within("30d"),
                ..p()
            },
            &w3,
        ),
        (
            RetentionPolicy {
                keep_within: within("1M"),
                ..p()
            },
            &w4,
        ),
        // Far beyond chrono's range: everything is within rather than an error.
        (
            RetentionPolicy {
                keep_within: within("999999y"),
                ..p()
            },
            &w5,
        ),
    ];
    run_table(&cases, &history(), offset(0));
}

#[test]
fn combined_rules_list_every_reason() {
    let p = RetentionPolicy::default;
    let cases: Vec<(RetentionPolicy, Kept<'_>)> = vec![
        // rustic's "keep-daily3,keep-weekly4".
        (
            RetentionPolicy {
                keep_daily: Some(3),
                keep_weekly: Some(4),
                ..p()
            },
            &[
                ("s20", &[DAILY, WEEKLY]),
                ("s16", &[DAILY, WEEKLY]),
                ("s15", &[DAILY]),
                ("s14", &[WEEKLY]),
                ("s11", &[WEEKLY]),
            ],
        ),
        (
            RetentionPolicy {
                keep_last: Some(2),
                keep_hourly: Some(2),
                keep_daily: Some(3),
                keep_weekly: Some(2),
                keep_monthly: Some(2),
                keep_yearly: Some(2),
                keep_within: within("2d"),
                keep_tags: vec!["milestone".into()],
                ..p()
            },
            &[
                (
                    "s20",
                    &[LAST, HOURLY, DAILY, WEEKLY, MONTHLY, YEARLY, "within 2d"],
                ),
                ("s19", &[LAST, "within 2d"]),
                ("s18", &[HOURLY, "within 2d"]),
                ("s16", &[DAILY, WEEKLY]),
                ("s15", &[DAILY]),
                ("s12", &["tag milestone"]),
                ("s09", &[MONTHLY, YEARLY]),
                ("s03", &["tag milestone"]),
            ],
        ),
    ];
    run_table(&cases, &history(), offset(0));
}

#[test]
fn empty_policy_keeps_everything() {
    let zeroes = RetentionPolicy {
        keep_last: Some(0),
        keep_daily: Some(0),
        keep_within: within("0d"),
        ..RetentionPolicy::default()
    };
    let all_kept = same(&ORDER, &[NO_POLICY]);
    let cases = vec![
        (RetentionPolicy::default(), &all_kept[..]),
        (zeroes, &all_kept[..]),
    ];
    run_table(&cases, &history(), offset(0));
}

#[test]
fn positive_offset_moves_late_snapshots_into_the_next_day() {
    // At +01:00, s09 (Dec 31 23:59:59Z) is Jan 1 00:59:59 local, the same day as s10.
    let policy = RetentionPolicy {
        keep_daily: Some(8),
        ..RetentionPolicy::default()
    };
    let kept: Kept<'_> = &[
        ("s20", &[DAILY]),
        ("s16", &[DAILY]),
        ("s15", &[DAILY]),
        ("s14", &[DAILY]),
        ("s11", &[DAILY]),
        ("s10", &[DAILY]),
        ("s08", &[DAILY]),
        ("s07", &[DAILY]),
    ];
    check(
        &apply(&policy, &history(), offset(1)),
        &ORDER,
        kept,
        "daily 8 at +01:00",
    );
}

#[test]
fn negative_offset_moves_midnight_snapshots_into_the_previous_day() {
    // At -05:00, s10 (Jan 1 00:00Z) is Dec 31 19:00 local: the newest of December and 2024.
    // s05 (Mon Dec 16 00:00Z) is Sunday evening, so W51 is empty and s05 is W50's newest.
    let p = RetentionPolicy::default;
    let cases: Vec<(RetentionPolicy, Kept<'_>)> = vec![
        (
            RetentionPolicy {
                keep_monthly: Some(2),
                keep_yearly: Some(2),
                ..p()
            },
            &[("s20", &[MONTHLY, YEARLY]), ("s10", &[MONTHLY, YEARLY])],
        ),
        (
            RetentionPolicy {
                keep_weekly: Some(7),
                ..p()
            },
            &[
                ("s20", &[WEEKLY]),
                ("s16", &[WEEKLY]),
                ("s14", &[WEEKLY]),
                ("s11", &[WEEKLY]),
                ("s07", &[WEEKLY]),
                ("s05", &[WEEKLY]),
                ("s03", &[WEEKLY]),
            ],
        ),
    ];
    run_table(&cases, &history(), offset(-5));
}

#[test]
fn iso_week_53_belongs_to_the_previous_year() {
    // Jan 1-3 2021 are in 2020-W53; Monday Jan 4 starts 2021-W01.
    let g = "config/app";
    let snaps = vec![
        snap("a", g, "2020-12-28T12:00:00Z", &[]),
        snap("b", g, "2020-12-31T12:00:00Z", &[]),
        snap("c", g, "2021-01-01T12:00:00Z", &[]),
        snap("d", g, "2021-01-03T23:59:59Z", &[]),
        snap("e", g, "2021-01-04T00:00:00Z", &[]),
    ];
    let policy = RetentionPolicy {
        keep_weekly: Some(2),
        keep_yearly: Some(2),
        ..RetentionPolicy::default()
    };
    let kept: Kept<'_> = &[("e", &[WEEKLY, YEARLY]), ("d", &[WEEKLY]), ("b", &[YEARLY])];
    let decisions = apply(&policy, &snaps, offset(0));
    check(
        &decisions,
        &["e", "d", "c", "b", "a"],
        kept,
        "weekly 2, yearly 2",
    );
}

#[test]
fn calendar_months_step_back_in_local_time() {
    // Newest is Mar 30 23:30Z = Mar 31 00:30 at +01:00. One month back in local time is
    // Feb 29 00:30 local = Feb 28 23:30Z (the 31st clamps to Feb 29 in a leap year).
    let g = "config/app";
    let snaps = vec![
        snap("new", g, "2024-03-30T23:30:00Z", &[]),
        snap("edge", g, "2024-02-28T23:30:00Z", &[]),
        snap("old", g, "2024-02-28T23:29:59Z", &[]),
    ];
    let policy = RetentionPolicy {
        keep_within: within("1M"),
        ..RetentionPolicy::default()
    };
    let kept: Kept<'_> = &[("new", &["within 1M"]), ("edge", &["within 1M"])];
    let order = ["new", "edge", "old"];
    check(
        &apply(&policy, &snaps, offset(1)),
        &order,
        kept,
        "1M at +01:00",
    );
    // In UTC the cutoff is Feb 29 23:30Z, so only the newest survives.
    let kept_utc: Kept<'_> = &[("new", &["within 1M"])];
    check(
        &apply(&policy, &snaps, offset(0)),
        &order,
        kept_utc,
        "1M in UTC",
    );
}

#[test]
fn policy_is_applied_per_group() {
    let snaps = vec![
        snap("m1", "model/llama", "2025-01-01T10:00:00Z", &[]),
        snap("c1", "config/app", "2025-01-01T09:00:00Z", &[]),
        snap("m2", "model/llama", "2025-01-01T11:00:00Z", &[]),
        snap("c2", "config/app", "2025-01-02T09:00:00Z", &[]),
        snap("m3", "model/llama", "2025-01-03T08:00:00Z", &[]),
        snap("c3", "config/app", "2025-01-03T09:00:00Z", &[]),
    ];
    let policy = RetentionPolicy {
        keep_last: Some(1),
        keep_daily: Some(2),
        ..RetentionPolicy::default()
    };
    let kept: Kept<'_> = &[
        ("c3", &[LAST, DAILY]),
        ("c2", &[DAILY]),
        ("m3", &[LAST, DAILY]),
        ("m2", &[DAILY]),
    ];
    let decisions = apply(&policy, &snaps, offset(0));
    check(
        &decisions,
        &["c3", "c2", "c1", "m3", "m2", "m1"],
        kept,
        "per group",
    );
    let groups: Vec<&str> = decisions.iter().map(|d| d.group.as_str()).collect();
    let (config, model) = ("config/app", "model/llama");
    assert_eq!(groups, [config, config, config, model, model, model]);
    assert_eq!(decisions[0].time, utc("2025-01-03T09:00:00Z"));
}

#[test]
fn empty_history_gives_no_decisions() {
    let policy = RetentionPolicy {
        keep_within: within("30d"),
        ..RetentionPolicy::default()
    };
    let decisions = apply(&policy, &[], offset(0));
    assert_eq!(decisions, Vec::<Decision>::new());
}

#[test]
fn tag_listed_twice_is_one_reason() {
    let policy = RetentionPolicy {
        keep_tags: vec!["milestone".into(), "milestone".into()],
        ..RetentionPolicy::default()
    };
    let snaps = vec![snap(
        "x",
        "config/app",
        "2025-01-01T00:00:00Z",
        &["milestone"],
    )];
    let kept: Kept<'_> = &[("x", &["tag milestone"])];
    check(
        &apply(&policy, &snaps, offset(0)),
        &["x"],
        kept,
        "duplicate tag",
    );
}

#[test]
fn parse_duration_accepts_good_spans() {
    let span = |years, months, weeks, days, hours, minutes| KeepWithin {
        years,
        months,
        weeks,
        days,
        hours,
        minutes,
    };
    let cases = [
        ("30d", span(0, 0, 0, 30, 0, 0), "30d"),
        ("2w", span(0, 0, 2, 0, 0, 0), "2w"),
        ("12h", span(0, 0, 0, 0, 12, 0), "12h"),
        ("90m", span(0, 0, 0, 0, 0, 90), "90m"),
        ("1y", span(1, 0, 0, 0, 0, 0), "1y"),
        ("6M", span(0, 6, 0, 0, 0, 0), "6M"),
        ("1y6M", span(1, 6, 0, 0, 0, 0), "1y6M"),
        ("2d12h", span(0, 0, 0, 2, 12, 0), "2d12h"),
        ("6M1y", span(1, 6, 0, 0, 0, 0), "1y6M"),
        ("1y2M3w4d5h6m", span(1, 2, 3, 4, 5, 6), "1y2M3w4d5h6m"),
        ("007d", span(0, 0, 0, 7, 0, 0), "7d"),
        ("0d", span(0, 0, 0, 0, 0, 0), "0d"),
        ("4294967295m", span(0, 0, 0, 0, 0, u32::MAX), "4294967295m"),
    ];
    for (input, want, display) in cases {
        let got = parse_duration(input).unwrap();
        assert_eq!(got, want, "{input}");
        assert_eq!(got.to_string(), display, "{input}");
        assert_eq!(input.parse::<KeepWithin>().unwrap(), want, "{input}");
    }
}

#[test]
fn parse_duration_rejects_bad_spans_naming_them() {
    let cases = [
        (
            "",
            "empty; expected e.g. 30d or 1y6M (units are y, M, w, d, h, m)",
        ),
        ("30", "30 has no unit (units are y, M, w, d, h, m)"),
        ("1y6", "6 has no unit (units are y, M, w, d, h, m)"),
        ("d", "expected a number before 'd'"),
        ("-1d", "expected a number before '-'"),
        (" 30d", "expected a number before ' '"),
        ("30d ", "expected a number before ' '"),
        ("1.5d", "unknown unit '.' (units are y, M, w, d, h, m)"),
        ("30x", "unknown unit 'x' (units are y, M, w, d, h, m)"),
        ("30D", "unknown unit 'D' (units are y, M, w, d, h, m)"),
        ("3 d", "unknown unit ' ' (units are y, M, w, d, h, m)"),
        ("1d2d", "unit 'd' given more than once"),
        ("4294967296d", "4294967296 is too large"),
        ("３d", "expected a number before '３'"),
    ];
    for (input, reason) in cases {
        let err = parse_duration(input).unwrap_err();
        let want = RetentionError::InvalidDuration {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        assert_eq!(err, want, "{input:?}");
        assert_eq!(
            err.to_string(),
            format!("invalid duration {input:?}: {reason}")
        );
    }
}

#[test]
fn policy_display_and_is_empty() {
    let p = RetentionPolicy::default;
    let cases = [
        (p(), "no policy", true),
        (
            RetentionPolicy {
                keep_last: Some(0),
                keep_within: within("0m"),
                ..p()
            },
            "no policy",
            true,
        ),
        (
            RetentionPolicy {
                keep_last: Some(5),
                keep_daily: Some(7),
                keep_tags: vec!["milestone".into()],
                ..p()
            },
            "keep-last 5, keep-daily 7, keep-tag milestone",
            false,
        ),
        (
            RetentionPolicy {
                keep_last: Some(1),
                keep_hourly: Some(2),
                keep_daily: Some(3),
                keep_weekly: Some(4),
                keep_monthly: Some(5),
                keep_yearly: Some(6),
                keep_within: within("1y6M"),
                keep_tags: vec!["a".into(), "b".into()],
                ..p()
            },
            "keep-last 1, keep-hourly 2, keep-daily 3, keep-weekly 4, keep-monthly 5, \
             keep-yearly 6, keep-within 1y6M, keep-tag a, keep-tag b",
            false,
        ),
        (
            RetentionPolicy {
                keep_within: within("2w"),
                ..p()
            },
            "keep-within 2w",
            false,
        ),
        (
            RetentionPolicy {
                keep_tags: vec!["x".into()],
                ..p()
            },
            "keep-tag x",
            false,
        ),
    ];
    for (policy, display, empty) in cases {
        assert_eq!(policy.to_string(), display);
        assert_eq!(policy.is_empty(), empty, "{display}");
    }
}

#[test]
fn policy_json_round_trip() {
    let policy = RetentionPolicy {
        keep_last: Some(5),
        keep_daily: Some(7),
        keep_within: within("1y6M"),
        keep_tags: vec!["milestone".into()],
        ..RetentionPolicy::default()
    };
    let json = serde_json::to_string(&policy).unwrap();
    assert_eq!(
        json,
        r#"{"keep_last":5,"keep_hourly":null,"keep_daily":7,"keep_weekly":null,"keep_monthly":null,"keep_yearly":null,"keep_within":"1y6M","keep_tags":["milestone"]}"#
    );
    assert_eq!(
        serde_json::from_str::<RetentionPolicy>(&json).unwrap(),
        policy
    );
    // Missing fields default, so older or hand-written JSON stays readable.
    let sparse: RetentionPolicy = serde_json::from_str(r#"{"keep_weekly":4}"#).unwrap();
    assert_eq!(
        sparse,
        RetentionPolicy {
            keep_weekly: Some(4),
            ..RetentionPolicy::default()
        }
    );
    assert_eq!(
        serde_json::from_str::<RetentionPolicy>("{}").unwrap(),
        RetentionPolicy::default()
    );
}

#[test]
fn policy_json_rejects_unknown_rules_and_bad_spans() {
    let unknown = serde_json::from_str::<RetentionPolicy>(r#"{"keep_within_daily":"7d"}"#);
    assert!(unknown
        .unwrap_err()
        .to_string()
        .contains("unknown field `keep_within_daily`"));
    let bad = serde_json::from_str::<RetentionPolicy>(r#"{"keep_within":"3x"}"#);
    assert!(bad
        .unwrap_err()
        .to_string()
        .contains(r#"invalid duration "3x""#));
}

mod properties;
mod tiers;
