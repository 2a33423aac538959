//! Retention policies: deciding which snapshots a `forget` keeps.
//!
//! This module is pure logic (no I/O, no wall clock). Given a [`RetentionPolicy`] and the
//! snapshots of a repository (as [`Candidate`]s), [`apply`] returns one [`Decision`] per
//! snapshot saying whether it is kept and which rules keep it. The semantics follow restic's
//! `forget`:
//!
//! * The policy is applied to each `group` (`"kind/name"`) separately.
//! * Within a group snapshots are ordered newest first; ties on time are broken by ascending
//!   `id`, so the order (and therefore every decision) is deterministic.
//! * `keep_last N` keeps the N first snapshots of that order.
//! * `keep_hourly/daily/weekly/monthly/yearly N` each walk the group newest to oldest and put
//!   every snapshot in a period bucket (hour, day, ISO week, month, year) of its *local wall
//!   time* in the `offset` passed to [`apply`]. A snapshot is kept when its bucket differs from
//!   the last bucket that rule kept, until N buckets have been kept. In other words: the newest
//!   snapshot of each of the N most recent periods *that have snapshots* (empty periods do not
//!   use up the count). Weeks are ISO 8601 weeks keyed by ISO week-year, so 2024-12-30 is in
//!   2025-W01 and 2021-01-03 is in 2020-W53.
//! * `keep_within d` keeps every snapshot with `time >= newest - d`, where `newest` is the newest
//!   snapshot *of the group*, not the current time (as restic does). This keeps decisions a
//!   function of the repository alone, which is why [`apply`] takes no `now`.
//! * `keep_tags` keeps every snapshot carrying at least one of the listed tags.
//! * Every rule looks at every snapshot independently; a snapshot is kept if any rule keeps it.
//! * A count of 0 or a zero `keep_within` is the same as leaving the rule unset (restic agrees).
//!   A policy with no rule at all ([`RetentionPolicy::is_empty`]) keeps *everything*, with the
//!   reason `no policy`: an empty policy must never mean "delete everything".
//!
//! ## Durations
//!
//! [`parse_duration`] reads `keep_within` spans such as `30d`, `2w`, `12h`, `90m`, `1y`, `6M`
//! and combinations like `1y6M` or `2d12h`. Units: `y` years, `M` months, `w` weeks, `d` days,
//! `h` hours, `m` minutes (note: restic uses `m` for months; here `m` is minutes and `M`
//! months). Each unit may appear once, in any order.
//!
//! Years and months are *calendar* arithmetic, not fixed lengths: the cutoff is computed in the
//! local wall time of `offset` by stepping back `12 * years + months` months (clamping to the
//! last day of a shorter month, so one month before 31 March is 29 February in a leap year),
//! then `7 * weeks + days` calendar days, then the hours and minutes as an exact span. A span
//! reaching beyond the range chrono can represent keeps every snapshot of the group.
//!
//! ## Reasons
//!
//! Each kept snapshot lists every rule that kept it, in this order: `last snapshot`,
//! `hourly snapshot`, `daily snapshot`, `weekly snapshot`, `monthly snapshot`,
//! `yearly snapshot`, `within <span>` (e.g. `within 30d`), then `tag <tag>` for each matching
//! policy tag in policy order. Removed snapshots have no reasons.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, FixedOffset, Months, TimeDelta, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// Reason given to every snapshot when the policy has no rule at all.
const NO_POLICY: &str = "no policy";
/// Reason given by `keep_last`.
const LAST: &str = "last snapshot";
/// The units [`parse_duration`] accepts, for error messages.
const UNITS: &str = "units are y, M, w, d, h, m";

/// Errors from parsing retention settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionError {
    /// A `keep_within` span that [`parse_duration`] cannot read.
    #[error("invalid duration {input:?}: {reason}")]
    InvalidDuration {
        /// The text as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A `keep_within` span in calendar units, e.g. `1y6M` or `2d12h`.
///
/// It is stored (and serialized) in the compact text form [`parse_duration`] reads; `2w` and
/// `14d` are different values that happen to describe the same span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeepWithin {
    /// Calendar years (`y`), counted as 12 months.
    pub years: u32,
    /// Calendar months (`M`).
    pub months: u32,
    /// Weeks (`w`), counted as 7 calendar days.
    pub weeks: u32,
    /// Calendar days (`d`).
    pub days: u32,
    /// Hours (`h`).
    pub hours: u32,
    /// Minutes (`m`).
    pub minutes: u32,
}

impl KeepWithin {
    /// True when every component is zero: such a rule keeps nothing and counts as unset.
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    /// The components in display order, largest unit first.
    fn components(&self) -> [(u32, char); 6] {
        [
            (self.years, 'y'),
            (self.months, 'M'),
            (self.weeks, 'w'),
            (self.days, 'd'),
            (self.hours, 'h'),
            (self.minutes, 'm'),
        ]
    }

    fn component_mut(&mut self, unit: char) -> Option<&mut u32> {
        match unit {
            'y' => Some(&mut self.years),
            'M' => Some(&mut self.months),
            'w' => Some(&mut self.weeks),
            'd' => Some(&mut self.days),
            'h' => Some(&mut self.hours),
            'm' => Some(&mut self.minutes),
            _ => None,
        }
    }

    /// The oldest instant still "within" this span of `newest`, stepping back in the wall time
    /// of `offset` (so month and day steps land on local dates). `None` means the span reaches
    /// past what chrono can represent, i.e. everything is within.
    fn cutoff(&self, newest: DateTime<Utc>, offset: FixedOffset) -> Option<DateTime<Utc>> {
        let months = self.years.checked_mul(12)?.checked_add(self.months)?;
        let days = u64::from(self.weeks) * 7 + u64::from(self.days);
        // u32 hours/minutes are far inside TimeDelta's range, so these cannot panic.
        let clock =
            TimeDelta::hours(i64::from(self.hours)) + TimeDelta::minutes(i64::from(self.minutes));
        newest
            .with_timezone(&offset)
            .checked_sub_months(Months::new(months))?
            .checked_sub_days(Days::new(days))?
            .checked_sub_signed(clock)
            .map(|t| t.with_timezone(&Utc))
    }
}

impl fmt::Display for KeepWithin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0d");
        }
        for (value, unit) in self.components() {
            if value > 0 {
                write!(f, "{value}{unit}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for KeepWithin {
    type Err = RetentionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s)
    }
}

impl TryFrom<String> for KeepWithin {
    type Error = RetentionError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        parse_duration(&s)
    }
}

impl From<KeepWithin> for String {
    fn from(w: KeepWithin) -> Self {
        w.to_string()
    }
}

/// Parses a `keep_within` span such as `30d`, `2w`, `12h`, `90m`, `1y`, `6M`, `1y6M` or
/// `2d12h`: one or more `<number><unit>` pairs, each unit at most once, no spaces or signs.
/// See the module docs for the units and how years and months are counted.
pub fn parse_duration(input: &str) -> Result<KeepWithin, RetentionError> {
    let invalid = |reason: String| RetentionError::InvalidDuration {
        input: input.to_owned(),
        reason,
    };
    if input.is_empty() {
        return Err(invalid(format!(
            "empty; expected e.g. 30d or 1y6M ({UNITS})"
        )));
    }
    let mut span = KeepWithin::default();
    let mut seen = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, tail) = rest.split_at(digits);
        let Some(unit) = tail.chars().next() else {
            return Err(invalid(format!("{number} has no unit ({UNITS})")));
        };
        if digits == 0 {
            return Err(invalid(format!("expected a number before {unit:?}")));
        }
        let value: u32 = number
            .parse()
            .map_err(|_| invalid(format!("{number} is too large")))?;
        let slot = span
            .component_mut(unit)
            .ok_or_else(|| invalid(format!("unknown unit {unit:?} ({UNITS})")))?;
        if seen.contains(&unit) {
            return Err(invalid(format!("unit {unit:?} given more than once")));
        }
        seen.push(unit);
        *slot = value;
        rest = &tail[unit.len_utf8()..];
    }
    Ok(span)
}

/// Which snapshots a `forget` keeps. Stored as JSON in the repository.
///
/// Unknown fields are rejected on deserialization: silently ignoring a rule written by a newer
/// version would make this one delete snapshots that rule was meant to keep.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Keep the N newest snapshots.
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent hours that have one.
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent days that have one.
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent ISO weeks that have one.
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent months that have one.
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent years that have one.
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot no older than this span before the group's newest snapshot.
    pub keep_within: Option<KeepWithin>,
    /// Keep every snapshot carrying any of these tags.
    pub keep_tags: Vec<String>,
}

impl RetentionPolicy {
    /// True when no rule is set (counts of 0 and a zero span count as unset).
    /// [`apply`] keeps everything under such a policy.
    pub fn is_empty(&self) -> bool {
        self.keep_last.unwrap_or(0) == 0
            && Period::ALL.iter().all(|p| p.count(self) == 0)
            && self.within().is_none()
            && self.keep_tags.is_empty()
    }

    /// The `keep_within` span if it is set and non-zero.
    fn within(&self) -> Option<&KeepWithin> {
        self.keep_within.as_ref().filter(|w| !w.is_zero())
    }
}

/// Compact form listing the active rules, e.g. `keep-last 5, keep-daily 7, keep-tag milestone`,
/// or `no policy` when there are none.
impl fmt::Display for RetentionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(n) = self.keep_last.filter(|&n| n > 0) {
            parts.push(format!("keep-last {n}"));
        }
        for period in Period::ALL {
            let n = period.count(self);
            if n > 0 {
                parts.push(format!("keep-{} {n}", period.name()));
            }
        }
        if let Some(within) = self.within() {
            parts.push(format!("keep-within {within}"));
        }
        parts.extend(self.keep_tags.iter().map(|t| format!("keep-tag {t}")));
        if parts.is_empty() {
            f.write_str(NO_POLICY)
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// One snapshot as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Snapshot id.
    pub id: String,
    /// The group the policy is applied within, `"kind/name"`.
    pub group: String,
    /// When the snapshot was taken.
    pub time: DateTime<Utc>,
    /// The snapshot's tags.
    pub tags: Vec<String>,
}

/// The verdict on one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Snapshot id.
    pub id: String,
    /// The snapshot's group.
    pub group: String,
    /// When the snapshot was taken.
    pub time: DateTime<Utc>,
    /// Whether the snapshot is kept; false means `forget` removes it.
    pub keep: bool,
    /// Every rule that keeps it (see the module docs); empty when removed.
    pub reasons: Vec<String>,
}

/// Applies `policy` to each group of `candidates` separately.
///
/// Periods (hour, day, ISO week, month, year) are taken in the wall time of `offset`, and
/// `keep_within` is measured back from each group's newest snapshot in that wall time.
/// Returns one decision per candidate, ordered by group, then newest first, ties by id.
pub fn apply(
    policy: &RetentionPolicy,
    candidates: &[Candidate],
    offset: FixedOffset,
) -> Vec<Decision> {
    let mut groups: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
    for candidate in candidates {
        groups.entry(&candidate.group).or_default().push(candidate);
    }
    let mut decisions = Vec::with_capacity(candidates.len());
    for mut snapshots in groups.into_values() {
        snapshots.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.id.cmp(&b.id)));
        decisions.extend(decide_group(policy, &snapshots, offset));
    }
    decisions
}

/// Decides one group; `snapshots` must already be newest first.
fn decide_group(
    policy: &RetentionPolicy,
    snapshots: &[&Candidate],
    offset: FixedOffset,
) -> Vec<Decision> {
    let mut reasons = vec![Vec::new(); snapshots.len()];
    if policy.is_empty() {
        for r in &mut reasons {
            r.push(NO_POLICY.to_owned());
        }
    } else {
        // Each rule marks independently; the call order fixes the order of the reasons.
        keep_last(policy.keep_last.unwrap_or(0), &mut reasons);
        for period in Period::ALL {
            keep_periods(
                period,
                period.count(policy),
                snapshots,
                offset,
                &mut reasons,
            );
        }
        keep_within(policy, snapshots, offset, &mut reasons);
        keep_tagged(&policy.keep_tags, snapshots, &mut reasons);
    }
    snapshots
        .iter()
        .zip(reasons)
        .map(|(snapshot, reasons)| Decision {
            id: snapshot.id.clone(),
            group: snapshot.group.clone(),
            time: snapshot.time,
            keep: !reasons.is_empty(),
            reasons,
        })
        .collect()
}

fn keep_last(count: u32, reasons: &mut [Vec<String>]) {
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    for r in reasons.iter_mut().take(count) {
        r.push(LAST.to_owned());
    }
}

/// Keeps the newest snapshot of each of the `count` most recent `period`s that have one.
/// Because `snapshots` is newest first, a bucket change means we entered an older period.
fn keep_periods(
    period: Period,
    count: u32,
    snapshots: &[&Candidate],
    offset: FixedOffset,
    reasons: &mut [Vec<String>],
) {
    let mut remaining = count;
    let mut last_kept = None;
    for (snapshot, r) in snapshots.iter().zip(reasons) {
        if remaining == 0 {
            break;
        }
        let bucket = period.bucket(snapshot.time.with_timezone(&offset));
        if last_kept != Some(bucket) {
            last_kept = Some(bucket);
            remaining -= 1;
            r.push(period.reason().to_owned());
        }
    }
}

fn keep_within(
    policy: &RetentionPolicy,
    snapshots: &[&Candidate],
    offset: FixedOffset,
    reasons: &mut [Vec<String>],
) {
    let (Some(within), Some(newest)) = (policy.within(), snapshots.first()) else {
        return;
    };
    let cutoff = within.cutoff(newest.time, offset);
    let reason = format!("within {within}");
    for (snapshot, r) in snapshots.iter().zip(reasons) {
        if cutoff.is_none_or(|cutoff| snapshot.time >= cutoff) {
            r.push(reason.clone());
        }
    }
}

fn keep_tagged(keep_tags: &[String], snapshots: &[&Candidate], reasons: &mut [Vec<String>]) {
    for (snapshot, r) in snapshots.iter().zip(reasons) {
        for tag in keep_tags.iter().filter(|t| snapshot.tags.contains(t)) {
            let reason = format!("tag {tag}");
            // A tag listed twice in the policy is still one reason.
            if !r.contains(&reason) {
                r.push(reason);
            }
        }
    }
}

/// The calendar periods of the bucketed rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Period {
    /// In the order their reasons are listed.
    const ALL: [Period; 5] = [
        Period::Hourly,
        Period::Daily,
        Period::Weekly,
        Period::Monthly,
        Period::Yearly,
    ];

    /// The rule's count, 0 when unset.
    fn count(self, policy: &RetentionPolicy) -> u32 {
        let count = match self {
            Period::Hourly => policy.keep_hourly,
            Period::Daily => policy.keep_daily,
            Period::Weekly => policy.keep_weekly,
            Period::Monthly => policy.keep_monthly,
            Period::Yearly => policy.keep_yearly,
        };
        count.unwrap_or(0)
    }

    fn name(self) -> &'static str {
        match self {
            Period::Hourly => "hourly",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Period::Hourly => "hourly snapshot",
            Period::Daily => "daily snapshot",
            Period::Weekly => "weekly snapshot",
            Period::Monthly => "monthly snapshot",
            Period::Yearly => "yearly snapshot",
        }
    }

    /// The period `local` falls in; equal keys mean the same period.
    fn bucket(self, local: DateTime<FixedOffset>) -> (i32, u32, u32, u32) {
        match self {
            Period::Hourly => (local.year(), local.month(), local.day(), local.hour()),
            Period::Daily => (local.year(), local.month(), local.day(), 0),
            // Keyed by ISO week-year: Dec 30 can be in week 1 of the next year.
            Period::Weekly => {
                let week = local.iso_week();
                (week.year(), week.week(), 0, 0)
            }
            Period::Monthly => (local.year(), local.month(), 0, 0),
            Period::Yearly => (local.year(), 0, 0, 0),
        }
    }
}

#[cfg(test)]
mod tests {
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

    // ---- properties over random histories ----

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
}
