//! The `--json` shapes of the commands, one struct per object, so what a
//! script reads is decided here and not by how the library happens to
//! serialize its reports. docs/JSON.md states the conventions and every
//! field; docs/json/cairn.schema.json is the machine-readable form that
//! `tests/cli/json_schema.rs` validates each command's output against.
//!
//! Conventions: `id` is the full hex id, `short_id` its first 8 hex
//! characters; `kind` and `name` are separate fields; byte quantities are
//! integers named `*_bytes` or `bytes_*`; durations are `duration_s`, a
//! float in seconds; times are RFC 3339 UTC strings (`time`) or integer
//! nanoseconds (`*_ns`); an absent value is `null`, never 0.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use cairn::{EntryKind, FileEntry, SnapshotId, SnapshotInfo};

mod foreign;
mod maintenance;
pub use foreign::*;
pub use maintenance::*;

/// An RFC 3339 UTC time with nanoseconds trimmed to what is set.
pub fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Milliseconds as seconds.
pub fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// A snapshot named in a report: which one it was.
#[derive(Debug, Serialize)]
pub struct SnapshotRef {
    pub id: String,
    pub short_id: String,
    pub kind: String,
    pub name: String,
}

impl SnapshotRef {
    pub fn new(id: &SnapshotId, kind: &str, name: &str) -> Self {
        SnapshotRef {
            id: id.to_hex(),
            short_id: id.short(),
            kind: kind.to_string(),
            name: name.to_string(),
        }
    }

    pub fn of(s: &SnapshotInfo) -> Self {
        Self::new(&s.id, &s.label.kind, &s.label.name)
    }
}

/// What a snapshot recorded about the run that made it.
#[derive(Debug, Serialize)]
pub struct RunStats {
    pub files_read: u64,
    pub bytes_read: u64,
    pub added_raw_bytes: u64,
    pub added_stored_bytes: u64,
    pub duration_s: f64,
}

/// A snapshot as `list` shows it (also inside `show`, `ls`, `find`,
/// `forget`, `copy`).
#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub id: String,
    pub short_id: String,
    pub kind: String,
    pub name: String,
    pub version: Option<String>,
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub host: String,
    pub time: String,
    pub time_ns: Option<i64>,
    pub sources: Vec<String>,
    pub files: u64,
    pub logical_bytes: u64,
    pub stats: RunStats,
    pub damaged: bool,
    /// Deprecated: `files`.
    pub file_count: u64,
}

impl Snapshot {
    pub fn new(s: &SnapshotInfo) -> Self {
        let l = &s.label;
        Snapshot {
            id: s.id.to_hex(),
            short_id: s.id.short(),
            kind: l.kind.clone(),
            name: l.name.clone(),
            version: l.version.clone(),
            tags: l.tags.clone(),
            description: l.description.clone(),
            host: s.host.clone(),
            time: time(&s.time),
            time_ns: s.time.timestamp_nanos_opt(),
            sources: s.sources.clone(),
            files: s.file_count,
            logical_bytes: s.logical_bytes,
            stats: RunStats {
                files_read: s.stats.files_read,
                bytes_read: s.stats.bytes_read,
                added_raw_bytes: s.stats.added_raw,
                added_stored_bytes: s.stats.added_stored,
                duration_s: seconds(s.stats.duration_ms),
            },
            damaged: s.damaged,
            file_count: s.file_count,
        }
    }
}

pub fn snapshots(list: &[SnapshotInfo]) -> Vec<Snapshot> {
    list.iter().map(Snapshot::new).collect()
}

/// One entry of a snapshot (`show`, `ls`, `find`).
#[derive(Debug, Serialize)]
pub struct Entry<'a> {
    pub path: &'a str,
    #[serde(rename = "type")]
    pub entry_type: &'static str,
    pub size_bytes: Option<u64>,
    pub mode: String,
    pub mtime_ns: i64,
    pub sha256: Option<String>,
    pub link_target: Option<&'a str>,
    pub chunks: Option<usize>,
    /// Deprecated: `type`.
    pub kind: &'static str,
    /// Deprecated: `size_bytes`.
    pub size: u64,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub hardlink: Option<u64>,
    pub rdev: Option<u64>,
    pub incomplete: bool,
}

impl<'a> Entry<'a> {
    pub fn new(f: &'a FileEntry) -> Self {
        let file = f.kind == EntryKind::File;
        Entry {
            path: &f.path,
            entry_type: super::output::kind_name(f.kind),
            size_bytes: file.then_some(f.size),
            mode: format!("{:o}", f.mode),
            mtime_ns: f.mtime_ns,
            sha256: file.then(|| hex::encode(f.sha256)),
            link_target: (f.kind == EntryKind::Symlink).then_some(f.link_target.as_str()),
            chunks: file.then_some(f.chunks.len()),
            kind: super::output::kind_name(f.kind),
            size: f.size,
            uid: f.owner.map(|o| o.0),
            gid: f.owner.map(|o| o.1),
            hardlink: f.hardlink,
            rdev: matches!(f.kind, EntryKind::CharDevice | EntryKind::BlockDevice)
                .then_some(f.rdev),
            incomplete: f.incomplete,
        }
    }
}

pub fn entries(list: &[FileEntry]) -> Vec<Entry<'_>> {
    list.iter().map(Entry::new).collect()
}

/// `snapshot --json`.
#[derive(Debug, Serialize)]
pub struct SnapshotReport<'a> {
    pub id: String,
    pub short_id: String,
    pub kind: &'a str,
    pub name: &'a str,
    pub files: u64,
    pub files_read: u64,
    pub logical_bytes: u64,
    pub bytes_read: u64,
    pub chunks_new: u64,
    pub added_raw_bytes: u64,
    pub added_stored_bytes: u64,
    pub duration_s: f64,
    pub skipped: &'a [cairn::Skipped],
    pub changed: &'a [cairn::Changed],
    pub excluded: u64,
    pub complete: bool,
    pub unchanged: bool,
    pub dry_run: bool,
    /// Deprecated: `added_raw_bytes`.
    pub added_raw: u64,
    /// Deprecated: `added_stored_bytes`.
    pub added_stored: u64,
    /// Deprecated: `duration_s`.
    pub duration_ms: u64,
}

impl<'a> SnapshotReport<'a> {
    pub fn new(r: &'a cairn::SnapshotReport) -> Self {
        SnapshotReport {
            id: r.id.to_hex(),
            short_id: r.id.short(),
            kind: &r.kind,
            name: &r.name,
            files: r.files,
            files_read: r.files_read,
            logical_bytes: r.logical_bytes,
            bytes_read: r.bytes_read,
            chunks_new: r.chunks_new,
            added_raw_bytes: r.added_raw,
            added_stored_bytes: r.added_stored,
            duration_s: seconds(r.duration_ms),
            skipped: &r.skipped,
            changed: &r.changed,
            excluded: r.excluded,
            complete: r.complete,
            unchanged: r.unchanged,
            dry_run: r.dry_run,
            added_raw: r.added_raw,
            added_stored: r.added_stored,
            duration_ms: r.duration_ms,
        }
    }
}

/// `restore --json`.
#[derive(Debug, Serialize)]
pub struct RestoreReport<'a> {
    pub snapshot: SnapshotRef,
    pub target: String,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub logical_bytes: u64,
    pub failed: &'a [cairn::RestoreFailure],
    pub leftovers_removed: u64,
    /// Deprecated: `logical_bytes`.
    pub bytes: u64,
    pub hardlinks: u64,
    pub fifos: u64,
    pub devices: u64,
    pub devices_skipped: u64,
    pub owners_restored: bool,
}

impl<'a> RestoreReport<'a> {
    pub fn new(s: &SnapshotInfo, target: &std::path::Path, r: &'a cairn::RestoreReport) -> Self {
        RestoreReport {
            snapshot: SnapshotRef::of(s),
            target: target.display().to_string(),
            files: r.files,
            dirs: r.dirs,
            symlinks: r.symlinks,
            logical_bytes: r.bytes,
            failed: &r.failed,
            leftovers_removed: r.leftovers_removed,
            bytes: r.bytes,
            hardlinks: r.hardlinks,
            fifos: r.fifos,
            devices: r.devices,
            devices_skipped: r.devices_skipped,
            owners_restored: r.owners_restored,
        }
    }
}

/// `verify --json`.
#[derive(Debug, Serialize)]
pub struct VerifyReport<'a> {
    pub snapshot: SnapshotRef,
    pub files: u64,
    pub logical_bytes: u64,
    pub failures: &'a [cairn::VerifyFailure],
    /// Deprecated: `logical_bytes`.
    pub bytes: u64,
}

impl<'a> VerifyReport<'a> {
    pub fn new(s: &SnapshotInfo, r: &'a cairn::VerifyReport) -> Self {
        VerifyReport {
            snapshot: SnapshotRef::of(s),
            files: r.files,
            logical_bytes: r.bytes,
            failures: &r.failures,
            bytes: r.bytes,
        }
    }
}

/// One path of a diff; a size is `null` on the side it does not exist.
#[derive(Debug, Serialize)]
pub struct Change<'a> {
    pub path: &'a str,
    pub old_size_bytes: Option<u64>,
    pub new_size_bytes: Option<u64>,
}

/// `diff --json`.
#[derive(Debug, Serialize)]
pub struct Diff<'a> {
    pub from: SnapshotRef,
    pub to: SnapshotRef,
    pub added: Vec<Change<'a>>,
    pub removed: Vec<Change<'a>>,
    pub changed: Vec<Change<'a>>,
}

impl<'a> Diff<'a> {
    pub fn new(from: &SnapshotInfo, to: &SnapshotInfo, d: &'a cairn::Diff) -> Self {
        let list = |v: &'a [cairn::Change], old: bool, new: bool| {
            v.iter()
                .map(|c| Change {
                    path: &c.path,
                    old_size_bytes: old.then_some(c.old_size),
                    new_size_bytes: new.then_some(c.new_size),
                })
                .collect()
        };
        Diff {
            from: SnapshotRef::of(from),
            to: SnapshotRef::of(to),
            added: list(&d.added, false, true),
            removed: list(&d.removed, true, false),
            changed: list(&d.changed, true, true),
        }
    }
}

/// One history in `stats --json`.
#[derive(Debug, Serialize)]
pub struct HistoryLatest {
    pub kind: String,
    pub name: String,
    pub snapshots: u64,
    pub latest: SnapshotRef,
    pub latest_time: String,
    pub age_s: i64,
    /// Deprecated: `kind` and `name`.
    pub history: String,
}

/// `stats --json`.
#[derive(Debug, Serialize)]
pub struct Stats {
    pub snapshots: u64,
    pub logical_bytes: u64,
    pub unique_bytes: u64,
    pub stored_bytes: u64,
    pub repository_pack_bytes: u64,
    pub dedup_ratio: Option<f64>,
    pub compression_ratio: Option<f64>,
    pub histories: Vec<HistoryLatest>,
}

impl Stats {
    /// `latest` is looked up in `snaps`, the snapshots the stats cover.
    pub fn new(s: &cairn::Stats, snaps: &[SnapshotInfo]) -> Self {
        let histories = s
            .histories
            .iter()
            .filter_map(|h| {
                let latest = snaps
                    .iter()
                    .find(|x| x.history() == h.history && x.id.short() == h.latest_id)?;
                Some(HistoryLatest {
                    kind: latest.label.kind.clone(),
                    name: latest.label.name.clone(),
                    snapshots: h.snapshots,
                    latest: SnapshotRef::of(latest),
                    latest_time: time(&h.latest_time),
                    age_s: h.age_seconds,
                    history: h.history.clone(),
                })
            })
            .collect();
        let ratio = |r: f64, known: bool| (known && r.is_finite()).then_some(r);
        Stats {
            snapshots: s.snapshots,
            logical_bytes: s.logical_bytes,
            unique_bytes: s.unique_bytes,
            stored_bytes: s.stored_bytes,
            repository_pack_bytes: s.repository_pack_bytes,
            dedup_ratio: ratio(s.dedup_ratio, s.unique_bytes > 0),
            compression_ratio: ratio(s.compression_ratio, s.stored_bytes > 0),
            histories,
        }
    }
}

/// The files of one snapshot a `check` finding makes unrecoverable.
#[derive(Debug, Serialize)]
pub struct Affected<'a> {
    pub snapshot: SnapshotRef,
    pub files: &'a [String],
    /// Deprecated: `snapshot.kind` and `snapshot.name`.
    pub history: &'a str,
}

/// One `check` finding: the problem's own fields (named by `problem`),
/// whether it is damage, and what it breaks.
#[derive(Debug, Serialize)]
pub struct Finding<'a> {
    #[serde(flatten)]
    pub problem: serde_json::Value,
    pub damage: bool,
    pub affected: Vec<Affected<'a>>,
}

/// `check --json`.
#[derive(Debug, Serialize)]
pub struct CheckReport<'a> {
    pub clean: bool,
    pub snapshots: u64,
    pub packs: u64,
    pub packs_read: u64,
    pub chunks_read: u64,
    pub bytes_read: u64,
    pub findings: Vec<Finding<'a>>,
}

impl<'a> CheckReport<'a> {
    /// `snaps` names the snapshots findings affect (by short id).
    pub fn new(r: &'a cairn::CheckReport, snaps: &[SnapshotInfo]) -> Self {
        let affected = |a: &'a cairn::Affected| {
            let found = snaps
                .iter()
                .find(|s| s.id.short() == a.snapshot && s.history() == a.history);
            let (kind, name) = a.history.split_once('/').unwrap_or((&a.history, ""));
            Affected {
                snapshot: match found {
                    Some(s) => SnapshotRef::of(s),
                    None => SnapshotRef {
                        id: a.snapshot.clone(),
                        short_id: a.snapshot.clone(),
                        kind: kind.into(),
                        name: name.into(),
                    },
                },
                files: &a.files,
                history: &a.history,
            }
        };
        CheckReport {
            clean: r.is_clean(),
            snapshots: r.snapshots,
            packs: r.packs,
            packs_read: r.packs_read,
            chunks_read: r.chunks_read,
            bytes_read: r.bytes_read,
            findings: (r.findings.iter())
                .map(|f| Finding {
                    problem: with_aliases(&f.problem, &PROBLEM_ALIASES),
                    damage: f.damage,
                    affected: f.affected.iter().map(affected).collect(),
                })
                .collect(),
        }
    }
}

/// A history as `kind` and `name`.
#[derive(Debug, Serialize)]
pub struct History {
    pub kind: String,
    pub name: String,
}

impl History {
    pub fn parse(history: &str) -> Self {
        let (kind, name) = history.split_once('/').unwrap_or((history, ""));
        History {
            kind: kind.into(),
            name: name.into(),
        }
    }
}
