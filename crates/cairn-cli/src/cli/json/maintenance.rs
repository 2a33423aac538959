//! The `--json` shapes of the commands that change a repository: forget
//! and delete, gc and prune, copy, tag, repair, and the key commands.

use serde::Serialize;

use cairn::{SnapshotId, SnapshotInfo};

use super::{seconds, time, History, Snapshot, SnapshotRef};
use chrono::DateTime;

/// One snapshot of a `forget` plan and its verdict.
#[derive(Debug, Serialize)]
pub struct Verdict<'a> {
    pub snapshot: Snapshot,
    pub keep: bool,
    pub reasons: &'a [String],
}

/// One history of a `forget` plan.
#[derive(Debug, Serialize)]
pub struct HistoryPlan<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    pub policy: &'a cairn::RetentionPolicy,
    pub source: &'a cairn::PolicySource,
    pub snapshots: Vec<Verdict<'a>>,
}

/// An interrupted forget: its intent object and the snapshots it removes.
#[derive(Debug, Serialize)]
pub struct Intent<'a> {
    pub key: &'a str,
    pub snapshots: Vec<String>,
}

/// `forget --json` (also `prune --json`'s `forget`).
#[derive(Debug, Serialize)]
pub struct ForgetReport<'a> {
    pub dry_run: bool,
    pub histories: Vec<HistoryPlan<'a>>,
    pub emptied: Vec<History>,
    pub interrupted: Vec<Intent<'a>>,
    pub removed: Vec<SnapshotRef>,
}

impl<'a> ForgetReport<'a> {
    pub fn new(plan: &'a cairn::ForgetPlan, dry_run: bool, removed: &[SnapshotId]) -> Self {
        let histories: Vec<HistoryPlan> = (plan.histories.iter())
            .map(|h| HistoryPlan {
                kind: &h.kind,
                name: &h.name,
                policy: &h.policy,
                source: &h.source,
                snapshots: (h.snapshots.iter())
                    .map(|v| Verdict {
                        snapshot: Snapshot::new(&v.snapshot),
                        keep: v.keep,
                        reasons: &v.reasons,
                    })
                    .collect(),
            })
            .collect();
        let known = |id: &SnapshotId| {
            (plan.histories.iter().flat_map(|h| &h.snapshots))
                .find(|v| v.snapshot.id == *id)
                .map(|v| SnapshotRef::of(&v.snapshot))
        };
        ForgetReport {
            dry_run,
            histories,
            emptied: plan.emptied.iter().map(|h| History::parse(h)).collect(),
            interrupted: (plan.interrupted.iter())
                .map(|i| Intent {
                    key: &i.key,
                    snapshots: i.snapshots.iter().map(SnapshotId::to_hex).collect(),
                })
                .collect(),
            removed: (removed.iter())
                .map(|id| {
                    known(id).unwrap_or(SnapshotRef {
                        id: id.to_hex(),
                        short_id: id.short(),
                        kind: String::new(),
                        name: String::new(),
                    })
                })
                .collect(),
        }
    }
}

/// One snapshot of a `copy` and what became of it.
#[derive(Debug, Serialize)]
pub struct CopiedSnapshot {
    #[serde(flatten)]
    pub snapshot: Snapshot,
    pub state: cairn::CopyState,
    /// Its id in the destination (new when re-encoded); null for a
    /// re-encoding dry run's `would_copy`.
    pub to_id: Option<String>,
    pub chunks_sent: u64,
    pub bytes_sent: u64,
}

/// `copy --json`.
#[derive(Debug, Serialize)]
pub struct CopyReport<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub dry_run: bool,
    pub mode: cairn::CopyMode,
    pub reason: Option<&'a str>,
    pub snapshots: Vec<CopiedSnapshot>,
    pub snapshots_copied: u64,
    pub snapshots_present: u64,
    pub chunks_sent: u64,
    pub bytes_sent: u64,
    pub raw_bytes_sent: u64,
    pub raw_bytes_read: u64,
    pub packs_written: u64,
    pub duration_s: f64,
    /// Deprecated: `duration_s`.
    pub duration_ms: u64,
}

impl<'a> CopyReport<'a> {
    pub fn new(r: &'a cairn::CopyReport) -> Self {
        CopyReport {
            from: &r.from,
            to: &r.to,
            dry_run: r.dry_run,
            mode: r.mode,
            reason: r.reason.as_deref(),
            snapshots: (r.snapshots.iter())
                .map(|s| CopiedSnapshot {
                    snapshot: Snapshot::new(&s.snapshot),
                    state: s.state,
                    to_id: s.to_id.map(|id| id.to_hex()),
                    chunks_sent: s.chunks_sent,
                    bytes_sent: s.bytes_sent,
                })
                .collect(),
            snapshots_copied: r.snapshots_copied,
            snapshots_present: r.snapshots_present,
            chunks_sent: r.chunks_sent,
            bytes_sent: r.bytes_sent,
            raw_bytes_sent: r.raw_bytes_sent,
            raw_bytes_read: r.raw_bytes_read,
            packs_written: r.packs_written,
            duration_s: seconds(r.duration_ms),
            duration_ms: r.duration_ms,
        }
    }
}

/// One snapshot `tag` looked at: its id before and after (a changed label
/// is a new snapshot id).
#[derive(Debug, Serialize)]
pub struct Relabeled<'a> {
    pub old_id: String,
    pub old_short_id: String,
    pub id: String,
    pub short_id: String,
    pub kind: &'a str,
    pub name: &'a str,
    pub version: Option<&'a str>,
    pub tags: &'a [String],
    pub description: Option<&'a str>,
    pub changed: bool,
    /// Deprecated: `id`.
    pub new_id: String,
    /// Deprecated: the fields above.
    pub label: &'a cairn::SnapshotLabel,
}

impl<'a> Relabeled<'a> {
    pub fn new(r: &'a cairn::Relabeled) -> Self {
        Relabeled {
            old_id: r.old_id.to_hex(),
            old_short_id: r.old_id.short(),
            id: r.new_id.to_hex(),
            short_id: r.new_id.short(),
            kind: &r.label.kind,
            name: &r.label.name,
            version: r.label.version.as_deref(),
            tags: &r.label.tags,
            description: r.label.description.as_deref(),
            changed: r.changed,
            new_id: r.new_id.to_hex(),
            label: &r.label,
        }
    }
}

/// A damaged pack `repair` replaced.
#[derive(Debug, Serialize)]
pub struct PackRewritten<'a> {
    pub pack: &'a str,
    pub chunks_salvaged: u64,
    pub chunks_lost: u64,
}

/// `repair --json`.
#[derive(Debug, Serialize)]
pub struct RepairReport<'a> {
    pub packs_rewritten: Vec<PackRewritten<'a>>,
    pub chunks_lost: u64,
    pub manifests_restored: &'a [String],
    pub manifests_imported: &'a [String],
    pub trees_restored: &'a [String],
    pub forgets_finished: &'a [String],
    pub damaged_snapshots: Vec<SnapshotRef>,
    pub unresolved: &'a [String],
}

impl<'a> RepairReport<'a> {
    /// `snaps` names the damaged snapshots (the report describes each in a
    /// line that starts with its short id).
    pub fn new(r: &'a cairn::RepairReport, snaps: &[SnapshotInfo]) -> Self {
        let damaged = |line: &String| {
            let short = line.split_whitespace().next().unwrap_or_default();
            match snaps.iter().find(|s| s.id.short() == short) {
                Some(s) => SnapshotRef::of(s),
                None => SnapshotRef {
                    id: short.to_string(),
                    short_id: short.to_string(),
                    kind: String::new(),
                    name: String::new(),
                },
            }
        };
        RepairReport {
            packs_rewritten: (r.packs_rewritten.iter())
                .map(|(pack, saved, lost)| PackRewritten {
                    pack,
                    chunks_salvaged: *saved,
                    chunks_lost: *lost,
                })
                .collect(),
            chunks_lost: r.chunks_lost,
            manifests_restored: &r.manifests_restored,
            manifests_imported: &r.manifests_imported,
            trees_restored: &r.trees_restored,
            forgets_finished: &r.forgets_finished,
            damaged_snapshots: r.damaged_snapshots.iter().map(damaged).collect(),
            unresolved: &r.unresolved,
        }
    }
}

/// One key file in `key list --json`.
#[derive(Debug, Serialize)]
pub struct Key<'a> {
    pub id: &'a str,
    pub created: String,
    pub created_ns: i64,
    pub host: &'a str,
    pub current: bool,
    pub kdf: &'a cairn::KdfParams,
}

impl<'a> Key<'a> {
    pub fn new(k: &'a cairn::KeyInfo) -> Self {
        Key {
            id: &k.id,
            created: time(&DateTime::from_timestamp_nanos(k.created_ns)),
            created_ns: k.created_ns,
            host: &k.host,
            current: k.current,
            kdf: &k.kdf,
        }
    }
}

/// A pack in a `gc` plan: its size and how much of it is live.
#[derive(Debug, Serialize)]
pub struct PackUsage {
    pub pack: String,
    pub size_bytes: u64,
    pub chunks: u64,
    pub live_chunks: u64,
    pub live_bytes: u64,
    /// Deprecated: `size_bytes`.
    pub size: u64,
}

/// A file in a `gc` plan that the catalog does not list.
#[derive(Debug, Serialize)]
pub struct Object<'a> {
    pub key: &'a str,
    pub size_bytes: u64,
}

/// A pack a `gc` plan leaves in place, and why.
#[derive(Debug, Serialize)]
pub struct Unverified<'a> {
    pub pack: String,
    pub size_bytes: u64,
    pub reason: &'a str,
}

/// What a `gc` will do.
#[derive(Debug, Serialize)]
pub struct GcPlan<'a> {
    pub max_unused: f64,
    pub snapshots: u64,
    pub unlisted_manifests: Vec<String>,
    pub live_chunks: u64,
    pub kept_packs: u64,
    pub kept_bytes: u64,
    pub kept_unused_bytes: u64,
    pub delete: Vec<PackUsage>,
    pub repack: Vec<PackUsage>,
    pub unknown_packs: Vec<Object<'a>>,
    pub unknown_packs_kept: Vec<Object<'a>>,
    pub leftovers: Vec<Object<'a>>,
    pub unverified: Vec<Unverified<'a>>,
    pub bytes_to_reclaim: u64,
}

impl<'a> GcPlan<'a> {
    pub fn new(p: &'a cairn::GcPlan) -> Self {
        let packs = |v: &[cairn::PackUsage]| {
            v.iter()
                .map(|u| PackUsage {
                    pack: u.pack.to_hex(),
                    size_bytes: u.size,
                    chunks: u.chunks,
                    live_chunks: u.live_chunks,
                    live_bytes: u.live_bytes,
                    size: u.size,
                })
                .collect()
        };
        let objects = |v: &'a [cairn::storage::ObjectInfo]| {
            v.iter()
                .map(|o| Object {
                    key: &o.key,
                    size_bytes: o.size,
                })
                .collect()
        };
        GcPlan {
            max_unused: p.max_unused,
            snapshots: p.snapshots,
            unlisted_manifests: p
                .unlisted_manifests
                .iter()
                .map(SnapshotId::to_hex)
                .collect(),
            live_chunks: p.live_chunks,
            kept_packs: p.kept_packs,
            kept_bytes: p.kept_bytes,
            kept_unused_bytes: p.kept_unused_bytes,
            delete: packs(&p.delete),
            repack: packs(&p.repack),
            unknown_packs: objects(&p.unknown_packs),
            unknown_packs_kept: objects(&p.unknown_packs_kept),
            leftovers: objects(&p.leftovers),
            unverified: (p.unverified.iter())
                .map(|u| Unverified {
                    pack: u.pack.to_hex(),
                    size_bytes: u.size,
                    reason: &u.reason,
                })
                .collect(),
            bytes_to_reclaim: p.bytes_to_reclaim(),
        }
    }
}

/// `gc --json` (and `prune --json`, with the forget it ran first).
#[derive(Debug, Serialize)]
pub struct GcOutput<'a> {
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forget: Option<serde_json::Value>,
    pub plan: GcPlan<'a>,
    /// `null` when nothing was done (a dry run, or an empty plan).
    pub report: Option<&'a cairn::GcReport>,
}
