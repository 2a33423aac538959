//! `cairn bench` on an existing repository: what each snapshot added, in
//! time order, with the running totals and ratios of the repository as it
//! grew. Read from the figures every snapshot records ([`RunStats`]), so no
//! chunk data is read. Per-dtype and per-file figures and the chunk-size
//! histogram need the data itself: run [`super::run`] on the sources.
//!
//! [`RunStats`]: crate::format::manifest::RunStats

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ratio;
use crate::catalog::SnapshotFilter;
use crate::error::Result;
use crate::repo::repository::Repository;

/// The repository's growth, snapshot by snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryReport {
    /// The repository's chunker and default level.
    pub chunk_avg: u32,
    pub level: i32,
    /// Oldest first, all histories interleaved.
    pub snapshots: Vec<SnapshotGrowth>,
    /// What the catalog holds now (after any gc or repair, which the
    /// running totals do not see).
    pub chunks: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

/// One snapshot and the repository's totals up to and including it.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotGrowth {
    pub id: String,
    /// `kind/name`.
    pub history: String,
    pub version: Option<String>,
    pub time: DateTime<Utc>,
    pub logical_bytes: u64,
    /// Bytes the snapshot read (unchanged files come from the stat cache).
    pub bytes_read: u64,
    /// Raw and stored bytes of the chunks it added.
    pub added_raw: u64,
    pub added_stored: u64,
    pub seconds: f64,
    /// Bytes read per second.
    pub throughput_bytes_per_sec: f64,
    pub cumulative_logical: u64,
    pub cumulative_raw: u64,
    pub cumulative_stored: u64,
    /// Cumulative logical per cumulative raw.
    pub dedup_ratio: f64,
    /// Cumulative raw per cumulative stored.
    pub compression_ratio: f64,
}

/// The growth of `repo`, snapshot by snapshot.
pub fn report(repo: &Repository) -> Result<HistoryReport> {
    let snaps = repo.snapshots(&SnapshotFilter::default())?;
    let (mut logical, mut raw, mut stored) = (0u64, 0u64, 0u64);
    let snapshots = snaps
        .into_iter()
        .map(|s| {
            logical += s.logical_bytes;
            raw += s.stats.added_raw;
            stored += s.stats.added_stored;
            let seconds = s.stats.duration_ms as f64 / 1000.0;
            SnapshotGrowth {
                id: s.id.to_hex(),
                history: s.history(),
                version: s.label.version,
                time: s.time,
                logical_bytes: s.logical_bytes,
                bytes_read: s.stats.bytes_read,
                added_raw: s.stats.added_raw,
                added_stored: s.stats.added_stored,
                seconds,
                throughput_bytes_per_sec: s.stats.bytes_read as f64 / seconds.max(1e-3),
                cumulative_logical: logical,
                cumulative_raw: raw,
                cumulative_stored: stored,
                dedup_ratio: ratio(logical, raw),
                compression_ratio: ratio(raw, stored),
            }
        })
        .collect();
    let (chunks, raw_bytes, stored_bytes) = repo.catalog().chunk_totals()?;
    Ok(HistoryReport {
        chunk_avg: repo.config().chunker.avg,
        level: repo.config().compression,
        snapshots,
        chunks,
        raw_bytes,
        stored_bytes,
    })
}
