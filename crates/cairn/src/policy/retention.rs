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
//! * `keep_tagged` maps a tag to a count N: the N newest snapshots carrying that tag are kept
//!   (tiers in one history: `frequent=5`, `moderate=10`). A count of 0 is no rule, as below.
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
//! policy tag in policy order, then `tagged <tag>` for each `keep_tagged` tier that keeps it,
//! in tag order. Removed snapshots have no reasons.

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
    /// Tag → N: keep the N newest snapshots carrying that tag. Left out of
    /// the stored form when empty, so a policy without tiers is stored as
    /// before and older cairns still read it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub keep_tagged: BTreeMap<String, u32>,
}

impl RetentionPolicy {
    /// True when no rule is set (counts of 0 and a zero span count as unset).
    /// [`apply`] keeps everything under such a policy.
    pub fn is_empty(&self) -> bool {
        self.keep_last.unwrap_or(0) == 0
            && Period::ALL.iter().all(|p| p.count(self) == 0)
            && self.within().is_none()
            && self.keep_tags.is_empty()
            && self.keep_tagged.values().all(|&n| n == 0)
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
        parts.extend(
            self.keep_tagged
                .iter()
                .filter(|(_, &n)| n > 0)
                .map(|(t, n)| format!("keep-tagged {t}={n}")),
        );
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
        keep_tiers(&policy.keep_tagged, snapshots, &mut reasons);
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

/// For each `tag → N`, the first N of `snapshots` (newest first) that carry `tag`.
fn keep_tiers(
    tiers: &BTreeMap<String, u32>,
    snapshots: &[&Candidate],
    reasons: &mut [Vec<String>],
) {
    for (tag, &count) in tiers {
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let tagged = snapshots
            .iter()
            .zip(reasons.iter_mut())
            .filter(|(s, _)| s.tags.contains(tag));
        for (_, r) in tagged.take(count) {
            r.push(format!("tagged {tag}"));
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
mod tests;
