//! SNAPSHOT selectors, resolved against the list of snapshots:
//!
//! | form | meaning |
//! |---|---|
//! | `3fa9c2e1` (≥ 4 hex chars) | the snapshot whose id starts with that |
//! | `NAME` | the latest snapshot of that name |
//! | `NAME~N` | N snapshots before the latest (`~` alone = `~1`) |
//! | `NAME@TIME` | the latest taken at or before TIME: RFC 3339, or local `YYYY-MM-DD[ HH:MM[:SS]]`, meaning the end of the day, minute or second written |
//! | `NAME:VERSION` | the latest with that version label |
//! | `KIND/…` | any of the above within one kind, when a name exists under two |

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

use crate::catalog::SnapshotInfo;
use crate::error::{Error, Result};

/// The part after the name.
#[derive(Debug, Clone, PartialEq)]
enum Suffix {
    Latest,
    Back(usize),
    At(DateTime<Utc>),
    Version(String),
}

/// Resolves `selector` against `all` (any order). `offset` is the local
/// time zone for times written without one.
pub fn resolve(all: &[SnapshotInfo], selector: &str, offset: &FixedOffset) -> Result<SnapshotInfo> {
    let bad = |reason: &str| Error::BadSelector {
        selector: selector.to_string(),
        reason: reason.to_string(),
    };
    if selector.is_empty() {
        return Err(bad("it is empty"));
    }
    let (kind, rest) = match selector.split_once('/') {
        Some((k, r)) => (Some(k), r),
        None => (None, selector),
    };
    let split = rest.find(['~', '@', ':']).unwrap_or(rest.len());
    let (name, suffix) = rest.split_at(split);
    let suffix = parse_suffix(suffix, offset).map_err(|r| bad(&r))?;
    let mut history: Vec<&SnapshotInfo> = all
        .iter()
        .filter(|s| s.label.name == name && kind.is_none_or(|k| s.label.kind == k))
        .collect();
    history.sort_by_key(|s| (s.time, s.id));
    let by_id = id_matches(all, selector);
    if kind.is_none() && suffix == Suffix::Latest && !by_id.is_empty() {
        if !history.is_empty() || by_id.len() > 1 {
            let mut candidates: Vec<String> = by_id.iter().map(|s| describe(s)).collect();
            if !history.is_empty() {
                candidates.push(format!("the latest snapshot named `{name}`"));
            }
            return Err(Error::AmbiguousSelector {
                selector: selector.to_string(),
                candidates,
            });
        }
        return Ok(by_id[0].clone());
    }
    if history.is_empty() {
        return Err(not_found(all, selector, kind));
    }
    let kinds: std::collections::BTreeSet<&str> =
        history.iter().map(|s| s.label.kind.as_str()).collect();
    if kinds.len() > 1 {
        // Name the snapshot each kind's selector would pick, so the user
        // sees which one they mean.
        let candidates = kinds
            .iter()
            .map(|k| {
                let of_kind: Vec<&SnapshotInfo> = history
                    .iter()
                    .copied()
                    .filter(|s| s.label.kind == *k)
                    .collect();
                let picked = pick(&of_kind, &suffix)
                    .map(describe)
                    .unwrap_or_else(|| "no snapshot matches there".into());
                format!("{k}/{selector}  ->  {picked}")
            })
            .collect();
        return Err(Error::AmbiguousSelector {
            selector: selector.to_string(),
            candidates,
        });
    }
    pick(&history, &suffix)
        .cloned()
        .ok_or_else(|| miss(selector, &history, &suffix))
}

/// The error for a history that exists but holds no snapshot the suffix
/// picks, with what it does hold.
fn miss(selector: &str, history: &[&SnapshotInfo], suffix: &Suffix) -> Error {
    let of = history[0].history();
    let n = history.len();
    let snapshots = if n == 1 { "snapshot" } else { "snapshots" };
    let (heading, candidates) = match suffix {
        Suffix::At(_) => (
            format!("{of} has {n} {snapshots}, the earliest and latest"),
            vec![describe(history[0]), describe(history[n - 1])],
        ),
        Suffix::Back(_) => (
            format!(
                "{of} has {n} {snapshots}, newest first (`~{}` is the oldest)",
                n - 1
            ),
            history.iter().rev().map(|s| describe(s)).collect(),
        ),
        _ => (
            format!("{of} has {n} {snapshots}, newest first"),
            history.iter().rev().map(|s| describe(s)).collect(),
        ),
    };
    Error::SnapshotNotFound {
        selector: selector.to_string(),
        heading,
        candidates,
    }
}

fn pick<'a>(history: &[&'a SnapshotInfo], suffix: &Suffix) -> Option<&'a SnapshotInfo> {
    match suffix {
        Suffix::Latest => history.last().copied(),
        Suffix::Back(n) => history.len().checked_sub(n + 1).map(|i| history[i]),
        Suffix::At(t) => history.iter().rev().find(|s| s.time <= *t).copied(),
        Suffix::Version(v) => history
            .iter()
            .rev()
            .find(|s| s.label.version.as_deref() == Some(v))
            .copied(),
    }
}

fn id_matches<'a>(all: &'a [SnapshotInfo], selector: &str) -> Vec<&'a SnapshotInfo> {
    let lower = selector.to_ascii_lowercase();
    if lower.len() < 4 || lower.len() > 64 || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Vec::new();
    }
    all.iter()
        .filter(|s| s.id.to_hex().starts_with(&lower))
        .collect()
}

/// One line naming a snapshot, for candidate lists.
pub fn describe(s: &SnapshotInfo) -> String {
    let version = s
        .label
        .version
        .as_deref()
        .map(|v| format!(":{v}"))
        .unwrap_or_default();
    format!(
        "{}  {}/{}{}  {}",
        s.id.short(),
        s.label.kind,
        s.label.name,
        version,
        s.time.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

fn not_found(all: &[SnapshotInfo], selector: &str, kind: Option<&str>) -> Error {
    let mut names: Vec<String> = all
        .iter()
        .filter(|s| kind.is_none_or(|k| s.label.kind == k))
        .map(|s| s.history())
        .collect();
    names.sort();
    names.dedup();
    Error::SnapshotNotFound {
        selector: selector.to_string(),
        heading: "known names".into(),
        candidates: names,
    }
}

fn parse_suffix(s: &str, offset: &FixedOffset) -> std::result::Result<Suffix, String> {
    let Some(first) = s.chars().next() else {
        return Ok(Suffix::Latest);
    };
    let rest = &s[1..];
    match first {
        '~' if rest.is_empty() => Ok(Suffix::Back(1)),
        '~' => rest
            .parse()
            .map(Suffix::Back)
            .map_err(|_| format!("`~{rest}` needs a number of snapshots back, e.g. `~2`")),
        '@' => parse_time(rest, offset).map(Suffix::At),
        ':' if !rest.is_empty() => Ok(Suffix::Version(rest.to_string())),
        _ => Err("expected `NAME`, `NAME~N`, `NAME@TIME` or `NAME:VERSION`".into()),
    }
}

/// RFC 3339, or a local `YYYY-MM-DD[ HH:MM[:SS]]` (a `T` works in place of
/// the space), meaning the last instant of the day, minute or second
/// written.
pub fn parse_time(s: &str, offset: &FixedOffset) -> std::result::Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive =
        if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Some(date.and_time(
                NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999).expect("valid time"),
            ))
        } else {
            // A time means the end of the unit it is written to, as a
            // bare date means the end of its day: `09:00` is up to
            // 09:00:59.999…, `09:00:30` up to 09:00:30.999….
            let s = s.replacen('T', " ", 1);
            let second = Duration::seconds(1) - Duration::nanoseconds(1);
            let minute = Duration::minutes(1) - Duration::nanoseconds(1);
            [("%Y-%m-%d %H:%M:%S", second), ("%Y-%m-%d %H:%M", minute)]
                .iter()
                .find_map(|(f, end)| NaiveDateTime::parse_from_str(&s, f).ok().map(|t| t + *end))
        };
    naive
        .and_then(|n| offset.from_local_datetime(&n).single())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("cannot read `{s}` as a time (use RFC 3339 or YYYY-MM-DD[ HH:MM])"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::id::SnapshotId;
    use crate::format::manifest::RunStats;

    fn snap(kind: &str, name: &str, version: Option<&str>, time: &str, seed: &str) -> SnapshotInfo {
        SnapshotInfo {
            id: SnapshotId::of(seed.as_bytes()),
            label: crate::SnapshotLabel {
                version: version.map(Into::into),
                ..crate::SnapshotLabel::new(kind, name)
            },
            host: "h".into(),
            time: DateTime::parse_from_rfc3339(time)
                .unwrap()
                .with_timezone(&Utc),
            sources: vec![],
            file_count: 0,
            logical_bytes: 0,
            stats: RunStats::default(),
            damaged: false,
            rowid: 0,
        }
    }

    fn fixture() -> Vec<SnapshotInfo> {
        vec![
            snap("model", "llm", Some("v1"), "2026-11-10T09:00:00Z", "a"),
            snap("model", "llm", Some("v2"), "2026-11-12T09:00:00Z", "b"),
            snap("model", "llm", Some("v2"), "2026-11-14T09:00:00Z", "c"),
            snap("config", "shared", None, "2026-11-11T00:00:00Z", "d"),
            snap("portfolio", "shared", None, "2026-11-13T00:00:00Z", "e"),
        ]
    }

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
    }

    fn pick_seed(sel: &str) -> std::result::Result<String, String> {
        let all = fixture();
        resolve(&all, sel, &utc())
            .map(|s| {
                ["a", "b", "c", "d", "e"]
                    .into_iter()
                    .find(|k| SnapshotId::of(k.as_bytes()) == s.id)
                    .unwrap()
                    .to_string()
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_form_resolves() {
        let prefix = &SnapshotId::of(b"a").to_hex()[..6];
        let cases = [
            ("llm", "c"),
            ("llm~1", "b"),
            ("llm~", "b"),
            ("llm~2", "a"),
            ("llm@2026-11-13", "b"),
            ("llm@2026-11-12 09:00", "b"),
            ("llm@2026-11-12 08:59", "a"),
            ("llm@2026-11-12 08:59:59", "a"),
            ("llm@2026-11-12 09:00:00", "b"),
            ("llm@2026-11-12T08:59:59Z", "a"),
            ("llm@2026-11-20T00:00:00+05:00", "c"),
            ("llm:v1", "a"),
            ("llm:v2", "c"),
            ("model/llm~1", "b"),
            ("config/shared", "d"),
            ("portfolio/shared", "e"),
            (prefix, "a"),
        ];
        for (sel, want) in cases {
            assert_eq!(pick_seed(sel).as_deref(), Ok(want), "{sel}");
        }
    }

    #[test]
    fn errors_name_the_candidates() {
        let amb = pick_seed("shared").unwrap_err();
        assert!(
            amb.contains("config/shared") && amb.contains("portfolio/shared"),
            "{amb}"
        );
        let unknown = pick_seed("nope").unwrap_err();
        assert!(unknown.contains("model/llm"), "{unknown}");
        let too_far = pick_seed("llm~3").unwrap_err();
        assert!(too_far.contains("no snapshot matches"), "{too_far}");
        assert!(
            too_far.contains("model/llm has 3 snapshots") && too_far.contains("`~2` is the oldest"),
            "{too_far}"
        );
        let early = pick_seed("llm@2026-11-01").unwrap_err();
        assert!(
            early.contains("the earliest and latest")
                && early.contains("2026-11-10 09:00:00 UTC")
                && early.contains("2026-11-14 09:00:00 UTC")
                && !early.contains("known names"),
            "{early}"
        );
        let d = SnapshotId::of(b"d").short();
        let e = SnapshotId::of(b"e").short();
        assert!(
            amb.contains(&format!("config/shared  ->  {d}"))
                && amb.contains(&format!("portfolio/shared  ->  {e}")),
            "{amb}"
        );
        assert!(pick_seed("llm:v9").unwrap_err().contains(":v2"));
        assert!(pick_seed("llm~x").unwrap_err().contains("number"));
        assert!(pick_seed("llm@yesterday").unwrap_err().contains("time"));
        assert!(pick_seed("").is_err());
    }

    #[test]
    fn local_times_use_the_given_offset() {
        let plus2 = FixedOffset::east_opt(2 * 3600).unwrap();
        let t = parse_time("2026-11-12 11:00", &plus2).unwrap();
        assert_eq!(
            t,
            DateTime::parse_from_rfc3339("2026-11-12T09:00:59.999999999Z").unwrap()
        );
    }
}
