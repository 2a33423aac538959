//! Garbage collection: give back the space of chunks no snapshot needs.
//!
//! Two steps, as in rustic_core's prune: [`plan`] marks and decides without
//! changing anything (`gc --dry-run` prints it), [`execute`] carries the plan
//! out. A plan holds the repository's exclusive lock until it is dropped, and
//! a running snapshot holds a shared lock, so no snapshot runs between the
//! mark and the sweep: a chunk that is unreferenced at planning time cannot
//! gain a reference (by deduplication) before it is deleted, and a pack a
//! snapshot has written but not yet recorded cannot be mistaken for debris.
//!
//! **Trust nothing unverified.** The catalog is a cache of the packs and
//! manifests, and a damaged cache must not decide what to delete. Before
//! anything else gc runs SQLite's full integrity check and refuses a
//! damaged catalog ([`Error::CatalogDamaged`], `rebuild-catalog` is the
//! way back); and every pack it would remove is confirmed by the pack
//! file's own trailer (below).
//!
//! **Mark.** The live set is every chunk that a snapshot listed in the
//! catalog references, plus every chunk of every manifest on storage: the
//! manifests are the source of truth, so neither a damaged catalog row nor a
//! snapshot interrupted between its manifest and its catalog commit (which
//! `rebuild-catalog` would bring back) can make gc free data a manifest
//! still names. The set is a SQLite temp table (spilling to disk), so memory
//! stays bounded however many chunks there are.
//!
//! **Decide**, per pack, from its live stored bytes: no live chunk → delete;
//! more than `max_unused` of the file unused → repack (copy the live chunks
//! into new packs); otherwise keep. Pack files the catalog does not list and
//! temp files of interrupted writes are debris and are deleted.
//!
//! **Confirm**, for each pack the plan would delete or repack, from its
//! trailer: every live chunk in it is either one the catalog locates there
//! (and the repack copies it; their number must equal the catalog's count)
//! or has another copy in a pack the plan keeps, confirmed by that pack's
//! trailer. A live chunk the catalog locates nowhere, or a count that
//! disagrees, means the catalog no longer describes the storage: gc stops
//! before changing anything. A pack whose trailer cannot be read, or whose
//! chunk's other copy cannot be confirmed, is left in place
//! ([`GcPlan::unverified`]) for `check` and `repair`.
//!
//! **Sweep**, in crash-safe order. First the packs with no live chunk: one
//! catalog transaction drops their rows, then their files are deleted. They
//! go before anything is written, so that on a nearly full disk the repack
//! finds the space it needs; nothing needs them (each live chunk their
//! trailer lists has a confirmed copy elsewhere, and the repack copies only
//! chunks the catalog locates in the packs it rewrites). Then the repack:
//! each new pack is made durable, then one catalog transaction records it
//! and moves its chunks' rows to it; after all of them one transaction drops
//! the rows of the dead chunks and of the rewritten packs; only then are
//! those pack files deleted. Killed at any moment, gc
//! leaves every chunk a snapshot needs readable at the location the catalog
//! gives (an old pack stays until nothing points into it), and the next gc
//! finishes the job: a half-moved pack has fewer live chunks and is
//! repacked or deleted, and new or old pack files the catalog does not list
//! are debris.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;
use serde::Serialize;

use crate::blob::read_stored_chunk;
use crate::catalog::{ChunkLocation, Integrity, MarkSet, SnapshotFilter};
use crate::error::{Error, Result};
use crate::format::id::{PackId, SnapshotId};
use crate::format::manifest::{self, Manifest};
use crate::format::pack::{self, PackEntry, PackWriter, SealedPack};
use crate::ops::snapshot::trees;
use crate::progress::Progress;
use crate::repo::lock::Lock;
use crate::repo::repository::Repository;
use crate::storage::ObjectInfo;

/// Repack a pack when more than this share of it is unused.
pub const DEFAULT_MAX_UNUSED: f64 = 0.10;

/// How much of one pack is still needed.
#[derive(Debug, Clone, Serialize)]
pub struct PackUsage {
    #[serde(serialize_with = "hex")]
    pub pack: PackId,
    #[serde(skip)]
    rowid: i64,
    /// File size.
    pub size: u64,
    /// Chunks the catalog locates in this pack.
    pub chunks: u64,
    pub live_chunks: u64,
    /// Stored bytes of the live chunks.
    pub live_bytes: u64,
    /// For a pack to repack: the live chunks to copy, as its trailer lists
    /// them, in file order (filled in when the plan confirms the pack).
    #[serde(skip)]
    copy: Vec<PackEntry>,
}

/// A pack the plan leaves in place because it could not confirm that
/// removing it loses nothing.
#[derive(Debug, Clone, Serialize)]
pub struct Unverified {
    #[serde(serialize_with = "hex")]
    pub pack: PackId,
    pub size: u64,
    pub reason: String,
}

fn hex<S: serde::Serializer>(id: &PackId, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_hex())
}

impl PackUsage {
    /// Bytes a pack holding only the live chunks would take, framing included.
    fn needed_bytes(&self) -> u64 {
        if self.live_chunks == 0 {
            return 0;
        }
        let framing = (pack::HEADER_LEN + pack::FOOTER_LEN) as u64
            + self.live_chunks * pack::ENTRY_LEN as u64;
        (self.live_bytes + framing).min(self.size)
    }

    /// Bytes of the file no live chunk needs: dead chunks, duplicates the
    /// catalog locates elsewhere, and their trailer entries.
    pub fn unused_bytes(&self) -> u64 {
        self.size - self.needed_bytes()
    }

    /// [`PackUsage::unused_bytes`] as a share of the file, 0.0..=1.0.
    pub fn unused_share(&self) -> f64 {
        if self.size == 0 {
            1.0
        } else {
            self.unused_bytes() as f64 / self.size as f64
        }
    }
}

/// What a gc will do. Holds the exclusive lock (and the live set in the
/// catalog's temp table) until dropped.
#[derive(Serialize)]
pub struct GcPlan {
    #[serde(skip)]
    lock: Lock,
    /// The plan is made for, and only valid with, this open repository
    /// ([`Repository::instance`]).
    #[serde(skip)]
    repository: u64,
    /// The repack threshold this plan was made with (a share, 0.0..=1.0).
    pub max_unused: f64,
    /// Snapshots in the catalog.
    pub snapshots: u64,
    /// Manifests on storage the catalog does not list; their chunks are kept.
    #[serde(serialize_with = "hex_snapshots")]
    pub unlisted_manifests: Vec<SnapshotId>,
    /// Distinct chunks referenced by the above.
    pub live_chunks: u64,
    /// Packs left as they are, their total size and unused bytes.
    pub kept_packs: u64,
    pub kept_bytes: u64,
    pub kept_unused_bytes: u64,
    /// Packs with no live chunk.
    pub delete: Vec<PackUsage>,
    /// Packs whose unused share exceeds `max_unused`.
    pub repack: Vec<PackUsage>,
    /// Pack files the catalog does not list (leftovers of interrupted
    /// snapshots or gcs), to delete.
    pub unknown_packs: Vec<ObjectInfo>,
    /// Pack files the catalog does not list that are left alone: they hold a
    /// live chunk the catalog locates nowhere, or their trailer is
    /// unreadable. Normal operation never leaves these; `rebuild-catalog`
    /// or `check` should look at them.
    pub unknown_packs_kept: Vec<ObjectInfo>,
    /// Temp files of interrupted writes.
    pub leftovers: Vec<ObjectInfo>,
    /// Packs that would be deleted or repacked but are left in place: their
    /// trailer is unreadable, or another copy of a live chunk in them could
    /// not be confirmed (damage for `check` and `repair`).
    pub unverified: Vec<Unverified>,
}

fn hex_snapshots<S: serde::Serializer>(
    ids: &[SnapshotId],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(ids.iter().map(SnapshotId::to_hex))
}

impl GcPlan {
    /// True when executing would change nothing.
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty()
            && self.repack.is_empty()
            && self.unknown_packs.is_empty()
            && self.leftovers.is_empty()
    }

    /// Stored bytes the repack will copy into new packs.
    pub fn bytes_to_move(&self) -> u64 {
        self.repack.iter().map(|p| p.live_bytes).sum()
    }

    /// Bytes the plan expects to give back (file sizes removed minus the
    /// new packs' size, estimated from the live bytes).
    pub fn bytes_to_reclaim(&self) -> u64 {
        let sizes = |v: &[PackUsage]| v.iter().map(|p| p.size).sum::<u64>();
        let debris: u64 = self
            .unknown_packs
            .iter()
            .chain(&self.leftovers)
            .map(|o| o.size)
            .sum();
        let rewritten: u64 = self.repack.iter().map(PackUsage::needed_bytes).sum();
        (sizes(&self.delete) + sizes(&self.repack) + debris).saturating_sub(rewritten)
    }
}

/// What [`execute`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// Packs with no live chunk, deleted.
    pub packs_deleted: u64,
    /// Packs whose live chunks were copied out before they were deleted.
    pub packs_rewritten: u64,
    /// New packs written by the repack.
    pub packs_written: u64,
    pub chunks_moved: u64,
    pub bytes_moved: u64,
    /// Catalog rows of dead chunks removed.
    pub chunks_dropped: u64,
    pub unknown_packs_deleted: u64,
    pub leftovers_deleted: u64,
    /// Bytes of files deleted, minus bytes of packs written.
    pub bytes_reclaimed: u64,
    /// Packs left in place because a live chunk in them could not be read
    /// (damage for `check`); gc never copies or drops a chunk it cannot verify.
    pub damaged: Vec<String>,
    /// Packs the plan would repack that were left as they are because the
    /// disk has no room for their live chunks (a later gc, with more room,
    /// repacks them).
    pub packs_left_for_space: u64,
}

/// Marks the live chunks and decides what to delete and repack. Takes the
/// exclusive lock, so it fails while a snapshot runs. `max_unused` is a share
/// (0.10 = repack packs more than 10% unused).
pub fn plan(repo: &Repository, max_unused: f64) -> Result<GcPlan> {
    check_max_unused(max_unused)?;
    let lock = Lock::exclusive(repo.shared_storage(), "gc")?;
    plan_locked(repo, lock, max_unused, &[])
}

/// [`plan`] under an exclusive lock the caller already holds (`prune` keeps
/// the lock of its forget, so no snapshot can start in between), counting
/// the snapshots in `forgotten` as gone already (`prune --dry-run` shows
/// what the gc after its forget would do).
pub fn plan_locked(
    repo: &Repository,
    lock: Lock,
    max_unused: f64,
    forgotten: &[SnapshotId],
) -> Result<GcPlan> {
    check_max_unused(max_unused)?;
    if !lock.is_exclusive() {
        return Err(Error::InvalidArgument(
            "gc needs the exclusive lock, not a shared one".into(),
        ));
    }
    catch_up_under_lock(repo)?;
    let catalog = repo.catalog();
    catalog.ensure_sound(Integrity::Full)?;
    let mut snaps = catalog.snapshots(&SnapshotFilter::default())?;
    let listed = snaps.iter().map(|s| s.id).collect();
    snaps.retain(|s| !forgotten.contains(&s.id));
    catalog.mark_referenced(MarkSet::GcLive, &snaps)?;
    let unlisted_manifests = mark_manifests(repo, &listed, forgotten)?;
    // What a live delta chunk needs is live (docs/FORMAT.md, "Delta chunks").
    catalog.mark_reference_closure(MarkSet::GcLive)?;
    let live_chunks = catalog.marked_count(MarkSet::GcLive)?;
    let mut plan = GcPlan {
        lock,
        repository: repo.instance(),
        max_unused,
        snapshots: snaps.len() as u64,
        unlisted_manifests,
        live_chunks,
        kept_packs: 0,
        kept_bytes: 0,
        kept_unused_bytes: 0,
        delete: Vec::new(),
        repack: Vec::new(),
        unknown_packs: Vec::new(),
        unknown_packs_kept: Vec::new(),
        leftovers: repo.storage().leftovers()?,
        unverified: Vec::new(),
    };
    let mut on_storage: HashMap<PackId, ObjectInfo> = HashMap::new();
    for obj in repo.storage().list("packs/")? {
        if let Some(id) = pack::id_from_key(&obj.key) {
            on_storage.insert(id, obj);
        }
    }
    let usages = pack_usage(repo)?;
    let in_catalog: HashSet<PackId> = usages.iter().map(|u| u.pack).collect();
    let (mut delete, mut repack) = (Vec::new(), Vec::new());
    for usage in usages {
        if usage.live_chunks == 0 {
            delete.push(usage);
        } else if usage.unused_share() > max_unused {
            repack.push(usage);
        } else {
            plan.kept_packs += 1;
            plan.kept_bytes += usage.size;
            plan.kept_unused_bytes += usage.unused_bytes();
        }
    }
    let mut confirm = Confirm {
        repo,
        on_storage: &on_storage,
        deleted: delete.iter().map(|u| u.pack).collect(),
        trailers: HashMap::new(),
    };
    for (mut usage, to_delete) in repack
        .into_iter()
        .map(|u| (u, false))
        .chain(delete.into_iter().map(|u| (u, true)))
    {
        match confirm.listed(&usage)? {
            Ok(copy) => {
                usage.copy = copy;
                if to_delete {
                    plan.delete.push(usage);
                } else {
                    plan.repack.push(usage);
                }
            }
            Err(reason) => plan.unverified.push(Unverified {
                pack: usage.pack,
                size: usage.size,
                reason,
            }),
        }
    }
    let mut unknown: Vec<ObjectInfo> = on_storage
        .iter()
        .filter(|(id, _)| !in_catalog.contains(id))
        .map(|(_, obj)| obj.clone())
        .collect();
    unknown.sort_by(|a, b| a.key.cmp(&b.key));
    for obj in unknown {
        if confirm.unlisted(&obj)? {
            plan.unknown_packs.push(obj);
        } else {
            plan.unknown_packs_kept.push(obj);
        }
    }
    Ok(plan)
}

/// A cached catalog (the packs are remote) was caught up when the
/// repository was opened, before the exclusive lock: a snapshot another
/// host committed in between is on storage only, and the trees of its
/// manifest are found through the catalog's chunk index. So the catalog
/// catches up again now that no snapshot can commit.
fn catch_up_under_lock(repo: &Repository) -> Result<()> {
    let file = repo.catalog_file();
    if !file.rebuilds_when_missing() {
        return Ok(());
    }
    let done = crate::ops::rebuild::catch_up::catch_up(repo.storage(), repo.crypt(), file)?;
    if done.needs_rebuild {
        return Err(Error::CatalogDamaged {
            path: file.path().to_path_buf(),
            problem: "this cache is out of date with the repository (a pack it lists is gone, \
                      or something new cannot be read); run the command again: opening the \
                      repository rebuilds the cache"
                .into(),
        });
    }
    Ok(())
}

fn check_max_unused(max_unused: f64) -> Result<()> {
    if (0.0..=1.0).contains(&max_unused) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "max unused share {max_unused} is outside 0..=1 (0%..=100%)"
        )))
    }
}

/// Adds the chunks of every manifest on storage, but those of `forgotten`
/// snapshots, to the live set; returns the ids of the ones the catalog does
/// not list. An unlisted manifest that cannot be read stops gc: freeing its
/// chunks could destroy the only copy of a snapshot. A listed one that
/// cannot be read is covered by its catalog rows (and `check` reports it).
fn mark_manifests(
    repo: &Repository,
    listed: &HashSet<SnapshotId>,
    forgotten: &[SnapshotId],
) -> Result<Vec<SnapshotId>> {
    let mut unlisted = Vec::new();
    // Trees already marked (with everything under them), across manifests:
    // each distinct tree is read once.
    let mut visited = HashSet::new();
    for obj in repo.storage().list("snapshots/")? {
        let Some(id) = manifest::id_from_key(&obj.key) else {
            continue;
        };
        if forgotten.contains(&id) {
            continue;
        }
        let is_listed = listed.contains(&id);
        let marked = repo
            .storage()
            .get(&obj.key)
            .and_then(|bytes| Manifest::decode_stored(&bytes, Some(&id), &obj.key))
            .and_then(|m| match m.root {
                // Version 2: its trees and what they list. An unreadable
                // tree counts as an unreadable manifest.
                // What was marked is marked even when a tree fails: the
                // trees counted as visited must have their chunks live.
                Some(root) => {
                    let mut live = Vec::new();
                    let walked =
                        trees::mark_reachable(repo, &root, &obj.key, &mut visited, &mut |ids| {
                            live.extend_from_slice(ids);
                            Ok(())
                        });
                    repo.catalog().mark_chunks(MarkSet::GcLive, &live)?;
                    walked
                }
                None => {
                    let chunks = m.manifest.files.iter().flat_map(|f| &f.chunks);
                    repo.catalog().mark_chunks(MarkSet::GcLive, chunks)
                }
            });
        match marked {
            Ok(()) => {}
            Err(e) if is_listed && (e.is_damage() || matches!(e, Error::ObjectNotFound { .. })) => {
                continue
            }
            Err(e) => return Err(e),
        }
        if !is_listed {
            unlisted.push(id);
        }
    }
    Ok(unlisted)
}

/// Per pack in the catalog: chunk count, live chunks and live bytes.
fn pack_usage(repo: &Repository) -> Result<Vec<PackUsage>> {
    let rows = repo.catalog().pack_usage(MarkSet::GcLive)?;
    Ok(rows
        .into_iter()
        .map(|r| PackUsage {
            pack: r.pack,
            rowid: r.rowid,
            size: r.size,
            chunks: r.chunks,
            live_chunks: r.live_chunks,
            live_bytes: r.live_bytes,
            copy: Vec::new(),
        })
        .collect())
}

/// A pack's trailer, or `None` when the file is missing, its trailer is
/// damaged or it cannot be read: gc then keeps the pack, which is never
/// wrong.
fn read_trailer(repo: &Repository, id: &PackId, size: u64) -> Result<Option<Vec<PackEntry>>> {
    match pack::read_entries(repo.storage(), repo.crypt(), id, size) {
        Ok(entries) => Ok(Some(entries)),
        Err(e)
            if e.is_damage()
                || matches!(
                    e,
                    Error::ObjectNotFound { .. } | Error::Io { .. } | Error::Storage { .. }
                ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `Ok(verdict)`: the pack may go (with the chunks to copy out of it), or
/// must stay, for the reason given.
type Verdict<T> = std::result::Result<T, String>;

/// Confirms, from the pack files' own trailers, what the catalog says about
/// the packs a plan removes (module docs: Confirm).
struct Confirm<'a> {
    repo: &'a Repository,
    on_storage: &'a HashMap<PackId, ObjectInfo>,
    /// Packs the plan deletes (a pack it repacks stays until every chunk
    /// the catalog locates in it is copied, so a copy there survives).
    deleted: HashSet<PackId>,
    /// Trailers of packs holding the other copy of a chunk, read once.
    trailers: HashMap<PackId, Option<HashSet<PackEntry>>>,
}

impl Confirm<'_> {
    fn damaged(&self, problem: String) -> Error {
        Error::CatalogDamaged {
            path: self.repo.catalog().path().to_path_buf(),
            problem,
        }
    }

    /// For a pack the catalog lists and the plan removes: the live chunks
    /// to copy out of it (those the catalog locates there, which must be as
    /// many as it counts), once every other live chunk in its trailer is
    /// confirmed to have a copy that stays.
    fn listed(&mut self, usage: &PackUsage) -> Result<Verdict<Vec<PackEntry>>> {
        let Some(obj) = self.on_storage.get(&usage.pack) else {
            // A missing file with nothing live in it loses nothing.
            return Ok(if usage.live_chunks == 0 {
                Ok(Vec::new())
            } else {
                Err("the pack file is missing".into())
            });
        };
        let Some(entries) = read_trailer(self.repo, &usage.pack, obj.size)? else {
            return Ok(Err("its trailer cannot be read".into()));
        };
        let catalog = self.repo.catalog();
        let mut here = Vec::new();
        for e in entries {
            if !catalog.is_marked(MarkSet::GcLive, &e.chunk)? {
                continue;
            }
            match catalog.locate(&e.chunk)? {
                None => {
                    return Err(self.damaged(format!(
                        "pack {} holds chunk {}, which a snapshot needs, but the catalog locates it nowhere",
                        usage.pack, e.chunk
                    )))
                }
                Some(loc) if loc.pack == usage.pack => {
                    if loc.entry == e {
                        here.push(e);
                    }
                }
                Some(loc) => {
                    if let Err(reason) = self.survives(&loc)? {
                        return Ok(Err(reason));
                    }
                }
            }
        }
        if here.len() as u64 != usage.live_chunks {
            return Err(self.damaged(format!(
                "the catalog counts {} live chunks in pack {}, whose trailer confirms {}",
                usage.live_chunks,
                usage.pack,
                here.len()
            )));
        }
        here.sort_by_key(|e| e.offset);
        Ok(Ok(here))
    }

    /// For a pack file the catalog does not list: true when every live
    /// chunk in it has a copy that stays, so the file is debris.
    fn unlisted(&mut self, obj: &ObjectInfo) -> Result<bool> {
        let Some(id) = pack::id_from_key(&obj.key) else {
            return Ok(false);
        };
        let Some(entries) = read_trailer(self.repo, &id, obj.size)? else {
            return Ok(false);
        };
        let catalog = self.repo.catalog();
        for e in entries {
            if !catalog.is_marked(MarkSet::GcLive, &e.chunk)? {
                continue;
            }
            let Some(loc) = catalog.locate(&e.chunk)? else {
                return Ok(false);
            };
            if self.survives(&loc)?.is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether the copy of a live chunk at `loc` outlives the plan: its pack
    /// stays (or is repacked, which copies the chunks located in it) and its
    /// trailer lists the chunk exactly there.
    fn survives(&mut self, loc: &ChunkLocation) -> Result<Verdict<()>> {
        if self.deleted.contains(&loc.pack) {
            return Err(self.damaged(format!(
                "the catalog locates live chunk {} in pack {}, yet counts no live chunk there",
                loc.entry.chunk, loc.pack
            )));
        }
        let Some(obj) = self.on_storage.get(&loc.pack) else {
            return Ok(Err(format!(
                "the other copy of chunk {} is in pack {}, which is missing",
                loc.entry.chunk, loc.pack
            )));
        };
        let repo = self.repo;
        let trailer = match self.trailers.entry(loc.pack) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(read_trailer(repo, &loc.pack, obj.size)?.map(|e| e.into_iter().collect()))
            }
        };
        if trailer.as_ref().is_some_and(|t| t.contains(&loc.entry)) {
            Ok(Ok(()))
        } else {
            Ok(Err(format!(
                "the other copy of chunk {} in pack {} is not confirmed by that pack's trailer",
                loc.entry.chunk, loc.pack
            )))
        }
    }
}

/// Carries out `plan`: removes debris, repacks, drops dead rows and packs,
/// then deletes the old pack files (see the module docs for the order).
pub fn execute(repo: &Repository, plan: &GcPlan, progress: &dyn Progress) -> Result<GcReport> {
    repo.ensure_made_here(plan.repository, "gc")?;
    // The live set is the plan's only while the temp table still holds it.
    if repo.catalog().marked_count(MarkSet::GcLive)? != plan.live_chunks {
        return Err(Error::InvalidArgument(
            "the gc plan is stale; make a new one".into(),
        ));
    }
    // A gc whose lock lapsed could delete packs that a snapshot started
    // since (on another host) is about to reference.
    plan.lock.ensure_held()?;
    let mut report = GcReport::default();
    let mut freed = 0u64;
    for obj in &plan.leftovers {
        repo.storage().remove_leftover(&obj.key)?;
        report.leftovers_deleted += 1;
        freed += obj.size;
    }
    for obj in &plan.unknown_packs {
        repo.storage().delete(&obj.key)?;
        report.unknown_packs_deleted += 1;
        freed += obj.size;
    }
    // Wholly dead packs go before the repack writes anything: on a nearly
    // full disk this is the space the repack's new packs need.
    let dead: Vec<&PackUsage> = plan.delete.iter().collect();
    if !dead.is_empty() {
        report.chunks_dropped += drop_rows(repo, &dead)?;
    }
    for usage in &dead {
        repo.storage().delete(&pack::key(&usage.pack))?;
        freed += usage.size;
    }
    let mut repacker = Repacker::new(repo);
    // The packs that give back most for what they copy go first; on a disk
    // with little room the repack runs in batches that fit the free space,
    // each deleting its old packs before the next writes.
    let mut pending: Vec<&PackUsage> = plan.repack.iter().collect();
    pending.sort_by(|a, b| b.unused_share().total_cmp(&a.unused_share()));
    let mut pending = pending.as_slice();
    progress.start("repack", plan.bytes_to_move());
    while !pending.is_empty() {
        let batch = fitting(pending, repo.storage().available_space());
        if batch == 0 {
            report.packs_left_for_space = pending.len() as u64;
            break;
        }
        let mut rewritten = Vec::new();
        for usage in &pending[..batch] {
            match repacker.take(usage) {
                Ok(()) => rewritten.push(*usage),
                Err(e) if e.is_damage() => report.damaged.push(format!("pack {}: {e}", usage.pack)),
                Err(e) => return Err(e),
            }
            progress.advance(usage.live_bytes);
        }
        repacker.flush()?;
        if !rewritten.is_empty() {
            // The repack may have taken long; confirm again before deleting.
            plan.lock.ensure_held()?;
            report.chunks_dropped += drop_rows(repo, &rewritten)?;
        }
        for usage in &rewritten {
            repo.storage().delete(&pack::key(&usage.pack))?;
            freed += usage.size;
        }
        report.packs_rewritten += rewritten.len() as u64;
        pending = &pending[batch..];
    }
    progress.finish();
    report.packs_deleted = plan.delete.len() as u64;
    report.packs_written = repacker.packs_written;
    report.chunks_moved = repacker.chunks_moved;
    report.bytes_moved = repacker.bytes_moved;
    report.bytes_reclaimed = freed.saturating_sub(repacker.bytes_written);
    repo.catalog().clear_marks(MarkSet::GcLive)?;
    // Give the WAL's pages back too; failure to do so costs only space.
    let _ = repo.catalog().checkpoint_wal();
    Ok(report)
}

/// Room a repack leaves free beyond the packs it writes: their temp files'
/// directory entries and the catalog's WAL (rows of the moved chunks).
const REPACK_MARGIN: u64 = 1 << 20;

/// How many of `pending`, from the front, can be repacked into `room` free
/// bytes (`None`: no limit known); at least the first when nothing limits.
fn fitting(pending: &[&PackUsage], room: Option<u64>) -> usize {
    let Some(room) = room else {
        return pending.len();
    };
    let mut need = REPACK_MARGIN;
    pending
        .iter()
        .take_while(|u| {
            need += u.needed_bytes() + u.live_chunks * 128;
            need <= room
        })
        .count()
}

/// Copies live chunks into new packs, recording each new pack as soon as it
/// is durable.
struct Repacker<'r> {
    repo: &'r Repository,
    writer: PackWriter,
    packs_written: u64,
    chunks_moved: u64,
    bytes_moved: u64,
    bytes_written: u64,
}

impl<'r> Repacker<'r> {
    fn new(repo: &'r Repository) -> Self {
        Self {
            repo,
            writer: repo.pack_writer(),
            packs_written: 0,
            chunks_moved: 0,
            bytes_moved: 0,
            bytes_written: 0,
        }
    }

    /// Reads and verifies every live chunk of one pack, then adds them all to
    /// the writer. Nothing is added if any chunk fails, so a damaged pack
    /// stays whole and in place.
    fn take(&mut self, usage: &PackUsage) -> Result<()> {
        let live = &usage.copy;
        let storage = self.repo.storage();
        let refs = self.repo.references();
        let stored: Vec<Vec<u8>> = live
            .par_iter()
            .map(|entry| {
                read_stored_chunk(
                    storage,
                    self.repo.crypt(),
                    &refs,
                    &ChunkLocation {
                        pack: usage.pack,
                        entry: *entry,
                    },
                )
            })
            .collect::<Result<_>>()?;
        for (entry, bytes) in live.iter().zip(&stored) {
            if !self.writer.has_room(bytes.len()) {
                self.flush()?;
            }
            self.writer
                .add(entry.chunk, entry.codec, entry.raw_len, bytes);
            self.chunks_moved += 1;
            self.bytes_moved += bytes.len() as u64;
            if self.writer.is_full() {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Makes the current pack durable, then moves its chunks' catalog rows to
    /// it in one transaction.
    fn flush(&mut self) -> Result<()> {
        if self.writer.is_empty() {
            return Ok(());
        }
        let next = self.repo.pack_writer();
        let sealed = std::mem::replace(&mut self.writer, next).finish();
        self.repo
            .storage()
            .put(&pack::key(&sealed.id), &sealed.bytes)?;
        relocate(self.repo, &sealed)?;
        self.packs_written += 1;
        self.bytes_written += sealed.bytes.len() as u64;
        Ok(())
    }
}

/// Records a durable new pack and points its chunks' rows at it.
fn relocate(repo: &Repository, sealed: &SealedPack) -> Result<()> {
    // A pack identical to one already listed is the same file. (Were it one
    // of the packs about to go, `drop_rows` would find live chunks in it
    // and stop.)
    repo.catalog()
        .relocate_chunks(&sealed.id, sealed.bytes.len() as u64, &sealed.entries)
}

/// In one transaction: drops the rows of `packs` and of the (dead) chunks
/// still located in them; returns how many chunk rows went. Refuses, changing
/// nothing, if a live chunk is still located in one of them.
fn drop_rows(repo: &Repository, packs: &[&PackUsage]) -> Result<u64> {
    let dropped = repo
        .catalog()
        .drop_packs(MarkSet::GcLive, packs.iter().map(|u| (u.rowid, &u.pack)))?;
    repo.catalog().drop_orphan_delta_refs()?;
    Ok(dropped)
}

#[cfg(test)]
mod tests;
