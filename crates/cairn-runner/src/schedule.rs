//! When a target runs: `every 6h`, `daily 02:00`, `weekly sun 02:00`,
//! `monthly 1 02:00`, or a cron expression (croner; 5 fields, or 6 with
//! seconds first). Calendar schedules are in local time; the named forms
//! are spelled as cron expressions internally, so one engine decides.
//!
//! A target that has never run is due at once (a new config gets its first
//! backup right away). After a run, the next is `every`'s span after it, or
//! the first calendar match after it: a run missed while nothing was
//! running is therefore caught up once, not once per missed slot.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use croner::Cron;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A fixed span after the previous run.
    Every(Duration),
    /// Calendar times; `text` is what the config said.
    Calendar { text: String, cron: Box<Cron> },
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(d) => write!(f, "every {}", format_span(*d)),
            Schedule::Calendar { text, .. } => f.write_str(text),
        }
    }
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Schedule, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let cron_text = match words.as_slice() {
            ["every", span] => return parse_span(span).map(Schedule::Every),
            ["daily", at] => {
                let (h, m) = clock(at)?;
                format!("{m} {h} * * *")
            }
            ["weekly", day, at] => {
                let (h, m) = clock(at)?;
                format!("{m} {h} * * {}", weekday(day)?)
            }
            ["monthly", day, at] => {
                let (h, m) = clock(at)?;
                let d: u32 = day
                    .parse()
                    .ok()
                    .filter(|d| (1..=31).contains(d))
                    .ok_or_else(|| format!("day of month {day:?} is not 1..31"))?;
                format!("{m} {h} {d} * *")
            }
            ["every" | "daily" | "weekly" | "monthly", ..] => {
                return Err(format!(
                    "{text:?} is not a schedule: expected e.g. \"every 6h\", \"daily 02:00\", \
                     \"weekly sun 02:00\", \"monthly 1 02:00\" or a cron expression"
                ))
            }
            _ => text.to_owned(),
        };
        let cron = Cron::from_str(&cron_text)
            .map_err(|e| format!("{text:?} is not a schedule or cron expression: {e}"))?;
        Ok(Schedule::Calendar {
            text: text.to_owned(),
            cron: Box::new(cron),
        })
    }
}

impl Schedule {
    /// When the run after one at `last` is due (`None`: never ran, due now).
    pub fn next_after(&self, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
        let Some(last) = last else { return now };
        match self {
            Schedule::Every(d) => {
                last + chrono::Duration::from_std(*d).unwrap_or(chrono::Duration::MAX)
            }
            Schedule::Calendar { cron, .. } => cron
                .find_next_occurrence(&last.with_timezone(&Local), false)
                .map(|t| t.with_timezone(&Utc))
                // No match ever again (e.g. 31 February): never due.
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }

    /// The first time after `now` this schedule fires (for skipping missed
    /// runs instead of catching them up).
    pub fn next_from_now(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.next_after(Some(now), now)
    }
}

/// A fixed span: one or more `<number><unit>` with units `s`, `m`, `h`,
/// `d`, `w` (`90s`, `6h`, `1d12h`). Unlike retention's `keep_within`, no
/// calendar months or years: schedules and ages are exact spans.
pub fn parse_span(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("{text:?} is not a duration ({why}; e.g. 30s, 6h, 7d, 1d12h)");
    if text.is_empty() {
        return Err(bad("empty"));
    }
    let mut total = 0u64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("expected a number"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| bad("number too large"))?;
        let unit = rest[digits..]
            .chars()
            .next()
            .ok_or_else(|| bad("missing unit"))?;
        let secs = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad("units are s, m, h, d, w")),
        };
        total = n
            .checked_mul(secs)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| bad("too large"))?;
        rest = &rest[digits + 1..];
    }
    if total == 0 {
        return Err(bad("must be more than zero"));
    }
    Ok(Duration::from_secs(total))
}

/// `d` in the largest units that divide it (`6h`, `90s`, `1d12h`).
pub fn format_span(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("w", 604_800),
        ("d", 86_400),
        ("h", 3600),
        ("m", 60),
        ("s", 1),
    ] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

fn clock(at: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{at:?} is not a time of day (HH:MM, 24-hour)");
    let (h, m) = at.split_once(':').ok_or_else(bad)?;
    let h: u32 = h.parse().ok().filter(|h| *h < 24).ok_or_else(bad)?;
    let m: u32 = m.parse().ok().filter(|m| *m < 60).ok_or_else(bad)?;
    Ok((h, m))
}

fn weekday(day: &str) -> Result<&'static str, String> {
    let days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let lower = day.to_ascii_lowercase();
    days.iter()
        .find(|d| lower.starts_with(*d))
        .map(|d| match *d {
            "sun" => "SUN",
            "mon" => "MON",
            "tue" => "TUE",
            "wed" => "WED",
            "thu" => "THU",
            "fri" => "FRI",
            _ => "SAT",
        })
        .ok_or_else(|| format!("{day:?} is not a day of the week (sun, mon, … sat)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn spans() {
        for (text, secs) in [
            ("2s", 2),
            ("90s", 90),
            ("6h", 21_600),
            ("1d12h", 129_600),
            ("2w", 1_209_600),
        ] {
            assert_eq!(parse_span(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        for bad in ["", "6", "h", "6x", "0s", "1M"] {
            assert!(parse_span(bad).is_err(), "{bad}");
        }
        assert_eq!(format_span(Duration::from_secs(129_600)), "1d12h");
    }

    #[test]
    fn every_runs_a_span_after_the_last_run_and_never_run_is_due_now() {
        let s: Schedule = "every 6h".parse().unwrap();
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        assert_eq!(s.next_after(None, now), now);
        let last = Utc.with_ymd_and_hms(2026, 12, 1, 1, 0, 0).unwrap();
        assert_eq!(
            s.next_after(Some(last), now),
            last + chrono::Duration::hours(6)
        );
        assert_eq!(s.to_string(), "every 6h");
    }

    #[test]
    fn calendar_forms_match_their_cron_expressions() {
        let pairs = [
            ("daily 02:00", "0 2 * * *"),
            ("weekly sun 02:00", "0 2 * * SUN"),
            ("monthly 1 02:00", "0 2 1 * *"),
        ];
        let last = Utc.with_ymd_and_hms(2026, 11, 17, 10, 0, 0).unwrap();
        for (named, cron) in pairs {
            let a: Schedule = named.parse().unwrap();
            let b: Schedule = cron.parse().unwrap();
            let next = a.next_after(Some(last), last);
            assert_eq!(next, b.next_after(Some(last), last), "{named}");
            assert!(next > last, "{named}");
            let local = next.with_timezone(&Local);
            assert_eq!(local.format("%H:%M").to_string(), "02:00", "{named}");
        }
    }

    #[test]
    fn bad_schedules_say_what_was_expected() {
        for bad in [
            "every",
            "every 6",
            "daily 25:00",
            "weekly xyz 02:00",
            "monthly 40 02:00",
            "hourly",
            "* * *",
        ] {
            let err = bad.parse::<Schedule>().unwrap_err();
            assert!(err.contains(bad) || err.contains("is not"), "{bad}: {err}");
        }
    }
}
