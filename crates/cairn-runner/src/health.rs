//! `cairn health`: is each target's latest backup recent and good?
//!
//! From the persisted state and the repositories themselves, so it works
//! without a daemon (and after the state was lost): a target is
//! - `failing` when its last recorded run failed (or the daemon paused it),
//! - `never` when neither the state nor any of its repositories has a
//!   successful backup of it,
//! - `late` when its newest success (the state's, or the newest snapshot
//!   of its history in any of its repositories) is older than `max_age`,
//! - `ok` otherwise.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{Config, Target};
use crate::state::{State, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Ok,
    Late,
    Failing,
    Never,
}

impl Health {
    pub fn word(self) -> &'static str {
        match self {
            Health::Ok => "OK",
            Health::Late => "LATE",
            Health::Failing => "FAILING",
            Health::Never => "NEVER",
        }
    }
}

/// One target's health, with what it was judged on.
#[derive(Debug, Clone, Serialize)]
pub struct TargetHealth {
    pub target: String,
    pub health: Health,
    pub last_success: Option<DateTime<Utc>>,
    pub last_run: Option<DateTime<Utc>>,
    /// Seconds since the last success.
    pub age_secs: Option<i64>,
    pub max_age_secs: Option<u64>,
    pub consecutive_failures: u32,
    pub paused: bool,
    pub detail: String,
}

/// The health of every target of `config` at `now`.
pub fn health(config: &Config, state: &State, now: DateTime<Utc>) -> Vec<TargetHealth> {
    config
        .targets
        .values()
        .map(|t| judge(config, t, state, now))
        .collect()
}

fn judge(config: &Config, target: &Target, state: &State, now: DateTime<Utc>) -> TargetHealth {
    let s = state.target(&target.key);
    let last_success = s.last_success.max(newest_snapshot(config, target));
    let age = last_success.map(|t| (now - t).num_seconds());
    let max_age = target.max_age.map(|d| d.as_secs());
    let (health, detail) = if s.last_status == Some(Status::Failed) || s.paused {
        let why = s.last_error.clone().unwrap_or_else(|| "paused".into());
        let paused = if s.paused { " (paused)" } else { "" };
        (
            Health::Failing,
            format!(
                "{} failure(s) in a row{paused}: {why}",
                s.consecutive_failures
            ),
        )
    } else if last_success.is_none() {
        (Health::Never, "no successful backup yet".to_owned())
    } else if let (Some(age), Some(max)) = (age, max_age) {
        if age > max as i64 {
            let d = |s: u64| crate::schedule::format_span(std::time::Duration::from_secs(s));
            (
                Health::Late,
                format!("last success {} ago, max_age {}", d(age as u64), d(max)),
            )
        } else {
            (Health::Ok, String::new())
        }
    } else {
        (Health::Ok, String::new())
    };
    TargetHealth {
        target: target.key.clone(),
        health,
        last_success,
        last_run: s.last_run,
        age_secs: age,
        max_age_secs: max_age,
        consecutive_failures: s.consecutive_failures,
        paused: s.paused,
        detail,
    }
}

/// The newest snapshot of the target's history in any of its local
/// repositories (read-only; a repository that cannot be opened is skipped:
/// the state still speaks).
fn newest_snapshot(config: &Config, target: &Target) -> Option<DateTime<Utc>> {
    let filter = cairn::SnapshotFilter {
        kind: Some(target.label.kind.clone()),
        name: Some(target.label.name.clone()),
        tag: None,
    };
    target
        .repositories
        .iter()
        .filter_map(|name| {
            crate::run::open_mode(config.repositories.get(name)?, cairn::OpenMode::ReadOnly).ok()
        })
        .filter_map(|repo| repo.snapshots(&filter).ok()?.pop().map(|s| s.time))
        .max()
}
