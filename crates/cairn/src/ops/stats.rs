//! Repository and history statistics for `cairn stats`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::catalog::SnapshotFilter;
use crate::error::Result;
use crate::repo::repository::Repository;

/// The latest snapshot of one kind/name history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryLatest {
    pub history: String,
    pub snapshots: u64,
    pub latest_id: String,
    pub latest_time: DateTime<Utc>,
    pub age_seconds: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub snapshots: u64,
    /// Sum of the file sizes of every matching snapshot.
    pub logical_bytes: u64,
    /// Distinct chunk bytes those snapshots reference, before compression.
    pub unique_bytes: u64,
    /// Bytes those distinct chunks occupy in packs.
    pub stored_bytes: u64,
    /// Size of all pack files in the repository (whatever the filter).
    pub repository_pack_bytes: u64,
    pub dedup_ratio: f64,
    pub compression_ratio: f64,
    pub histories: Vec<HistoryLatest>,
}

/// Statistics over the snapshots matching `filter`.
pub fn stats(repo: &Repository, filter: &SnapshotFilter) -> Result<Stats> {
    let snaps = repo.snapshots(filter)?;
    let (unique_bytes, stored_bytes) = repo.catalog().referenced_totals(&snaps)?;
    let logical_bytes: u64 = snaps.iter().map(|s| s.logical_bytes).sum();
    let now = Utc::now();
    let mut histories: BTreeMap<String, HistoryLatest> = BTreeMap::new();
    for s in &snaps {
        let h = histories
            .entry(s.history())
            .or_insert_with(|| HistoryLatest {
                history: s.history(),
                snapshots: 0,
                latest_id: String::new(),
                latest_time: s.time,
                age_seconds: 0,
            });
        h.snapshots += 1;
        if s.time >= h.latest_time || h.latest_id.is_empty() {
            h.latest_time = s.time;
            h.latest_id = s.id.short();
            h.age_seconds = (now - s.time).num_seconds();
        }
    }
    Ok(Stats {
        snapshots: snaps.len() as u64,
        logical_bytes,
        unique_bytes,
        stored_bytes,
        repository_pack_bytes: repo.catalog().pack_totals()?.1,
        dedup_ratio: ratio(logical_bytes, unique_bytes),
        compression_ratio: ratio(unique_bytes, stored_bytes),
        histories: histories.into_values().collect(),
    })
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}
