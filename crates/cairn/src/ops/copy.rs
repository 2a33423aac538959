//! Copying snapshots from one repository to another: only the chunks the
//! destination lacks travel, as new packs written the way a snapshot writes
//! them, and each snapshot keeps its manifest (the same body, so the same
//! id), with its label, time, tags and description.
//!
//! Works over the [`Repository`] facade and the storage contract only, so
//! any two repositories (local, in memory, later remote) copy alike.
//!
//! Order, per snapshot (the commit order of a snapshot, docs/FORMAT.md),
//! under the source's shared lock (no gc deletes what is being read) and
//! the destination's (no gc runs beside the new packs):
//!
//! 1. The chunks the destination's catalog lacks are read from the source
//!    (one range read per run of adjacent chunks, each checked against its
//!    id) and put, stored bytes unchanged, into new packs; each pack is
//!    durable before the catalog transaction that lists its chunks.
//! 2. The manifest is made durable in the destination.
//! 3. One catalog transaction makes the snapshot visible.
//!
//! Killed anywhere, the destination holds every snapshot it showed before
//! and the copied ones that reached step 3; at worst packs no snapshot
//! references (which `gc` reclaims, and a rerun deduplicates against) or a
//! manifest the catalog does not list (which the rerun lists). A snapshot
//! is present when the destination lists its id, so a second run copies
//! nothing and an interrupted run, rerun, finishes without duplicates.
//!
//! Chunks are copied by id only between repositories whose chunks mean the
//! same ([`compatibility`]). Between any others (one encrypted and the
//! other not, two master keys, two chunkers) each snapshot is re-encoded
//! ([`reencode`]): its files are read from the source as plaintext and
//! stored as a snapshot stores them, under a new manifest (so a new id);
//! it is then present when the destination lists a snapshot of the same
//! kind, name, version, host and time.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Instant;

use serde::Serialize;

use crate::catalog::{ChunkLocation, SnapshotFilter, SnapshotInfo};
use crate::error::{Error, Result};
use crate::format::codec::Codec;
use crate::format::id::{ChunkId, SnapshotId};
use crate::format::manifest::{self, Manifest};
use crate::format::pack::{PackEntry, PackWriter, SealedPack};
use crate::ops::snapshot::through_pack_writers;
use crate::progress::Progress;
use crate::repo::lock::Lock;
use crate::repo::repository::Repository;

mod reencode;

/// Stored bytes read from the source per batch (one batch in memory).
const READ_BATCH_BYTES: u64 = 16 << 20;

/// Which snapshots to copy: those the selectors name (any form of
/// `repo/selector.rs`), plus every snapshot `filter` matches (whole
/// histories); no selector and no filter is every snapshot.
#[derive(Debug, Clone, Default)]
pub struct CopyRequest {
    pub selectors: Vec<String>,
    pub filter: Option<SnapshotFilter>,
    /// Work out what would be sent; write nothing.
    pub dry_run: bool,
}

/// Whether the chunks of one repository can be copied into another as
/// they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compatibility {
    /// Chunk ids and stored chunk bytes mean the same in both: chunks are
    /// copied by id, their stored bytes unchanged (a pack entry records its
    /// codec, so a different zstd level needs no recompression).
    Same,
    /// The destination cuts, names or seals chunks differently: the
    /// source's chunks mean nothing there, so every file is re-encoded
    /// (read, cut, compressed and sealed again); `reason` says why.
    Rechunk { reason: String },
}

/// How a copy moved its snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyMode {
    /// Chunks travelled as stored; each snapshot kept its id.
    ById,
    /// Files were read, cut, compressed and sealed again for the
    /// destination; each copied snapshot has a new id there.
    ReEncoded,
}

/// The one place that decides how chunks travel from `from` to `to`: by
/// id, as stored, only when both cut and name chunks alike (the same
/// chunker) and seal them alike (both unencrypted, or both under the same
/// master key: an encrypted repository's chunk ids are keyed and its
/// chunks sealed with its own key).
pub fn compatibility(from: &Repository, to: &Repository) -> Compatibility {
    let master = |r: &Repository| r.crypt().keys().map(|k| *k.master().as_bytes());
    let (from_key, to_key) = (master(from), master(to));
    if from_key != to_key {
        let reason = match (from_key.is_some(), to_key.is_some()) {
            (true, true) => "their encryption keys differ (chunk ids are keyed per repository)",
            (true, false) => "the source is encrypted and the destination is not",
            _ => "the destination is encrypted and the source is not",
        };
        return Compatibility::Rechunk {
            reason: reason.to_string(),
        };
    }
    let (from, to) = (from.config(), to.config());
    if from.chunker != to.chunker {
        let (a, b) = (from.chunker, to.chunker);
        return Compatibility::Rechunk {
            reason: format!(
                "their chunkers differ (source min/avg/max {}/{}/{} bytes, destination {}/{}/{})",
                a.min, a.avg, a.max, b.min, b.avg, b.max
            ),
        };
    }
    Compatibility::Same
}

/// What became of one selected snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyState {
    /// Copied by this run.
    Copied,
    /// The destination already lists it (by id; re-encoding: by kind,
    /// name, version, host and time); nothing was sent.
    Present,
    /// A dry run would copy it.
    WouldCopy,
}

/// One selected snapshot, as listed in the source, and what was sent for it.
#[derive(Debug, Clone, Serialize)]
pub struct CopiedSnapshot {
    #[serde(flatten)]
    pub snapshot: SnapshotInfo,
    pub state: CopyState,
    /// Its id in the destination: the same id when copied by id, a new one
    /// when re-encoded; `None` for a re-encoding dry run's `WouldCopy`.
    #[serde(serialize_with = "hex_opt")]
    pub to_id: Option<SnapshotId>,
    /// Chunks (and their stored bytes) sent for this snapshot; chunks an
    /// earlier snapshot of the same run sent are not counted again.
    pub chunks_sent: u64,
    pub bytes_sent: u64,
}

/// What a copy did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    pub from: String,
    pub to: String,
    pub dry_run: bool,
    pub mode: CopyMode,
    /// Why chunks could not travel as stored (`mode` is `ReEncoded`).
    pub reason: Option<String>,
    /// Every selected snapshot, oldest first.
    pub snapshots: Vec<CopiedSnapshot>,
    /// Copied (dry run: to copy).
    pub snapshots_copied: u64,
    pub snapshots_present: u64,
    pub chunks_sent: u64,
    /// Stored (compressed) bytes of the chunks sent.
    pub bytes_sent: u64,
    /// Their raw bytes.
    pub raw_bytes_sent: u64,
    /// Re-encoding: the raw bytes of the files read from the source (a dry
    /// run says how many would be; what of it deduplicates is known only
    /// by reading it). Copied by id: 0.
    pub raw_bytes_read: u64,
    pub packs_written: u64,
    pub duration_ms: u64,
}

/// A selected snapshot with the chunks it needs sent (`None`: present).
struct Planned {
    snapshot: SnapshotInfo,
    send: Option<Vec<ChunkLocation>>,
}

/// Copies the snapshots `req` selects from `from` to `to`.
pub fn copy(
    from: &Repository,
    to: &Repository,
    req: &CopyRequest,
    progress: &dyn Progress,
) -> Result<CopyReport> {
    let started = Instant::now();
    let compat = compatibility(from, to);
    let _source_lock = from.read_lock("copy")?;
    let chosen = select(from, req)?;
    let lock = if req.dry_run {
        to.read_lock("copy")?
    } else {
        Some(Lock::shared(to.shared_storage(), "copy")?)
    };
    let mut report = CopyReport {
        from: from.root().display().to_string(),
        to: to.root().display().to_string(),
        dry_run: req.dry_run,
        mode: CopyMode::ById,
        reason: None,
        snapshots: Vec::with_capacity(chosen.len()),
        snapshots_copied: 0,
        snapshots_present: 0,
        chunks_sent: 0,
        bytes_sent: 0,
        raw_bytes_sent: 0,
        raw_bytes_read: 0,
        packs_written: 0,
        duration_ms: 0,
    };
    if let Compatibility::Rechunk { reason } = compat {
        report.mode = CopyMode::ReEncoded;
        report.reason = Some(reason);
        copy_reencoding(from, to, lock.as_ref(), chosen, &mut report, progress)?;
        report.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }
    let plan = plan(from, to, chosen)?;
    let total: u64 = plan
        .iter()
        .flat_map(|p| p.send.iter().flatten())
        .map(|l| l.entry.stored_len as u64)
        .sum();
    progress.start("copy", if req.dry_run { 0 } else { total });
    let mut sender = Sender::new(from, to, progress);
    for p in plan {
        let Some(send) = p.send else {
            report.snapshots_present += 1;
            report
                .snapshots
                .push(outcome(p.snapshot, CopyState::Present, &[]));
            continue;
        };
        report.snapshots_copied += 1;
        report.chunks_sent += send.len() as u64;
        report.bytes_sent += send.iter().map(|l| l.entry.stored_len as u64).sum::<u64>();
        report.raw_bytes_sent += send.iter().map(|l| l.entry.raw_len as u64).sum::<u64>();
        if req.dry_run {
            report
                .snapshots
                .push(outcome(p.snapshot, CopyState::WouldCopy, &send));
            continue;
        }
        sender.send(&send)?;
        commit(from, to, lock.as_ref(), &p.snapshot)?;
        report
            .snapshots
            .push(outcome(p.snapshot, CopyState::Copied, &send));
    }
    progress.finish();
    report.packs_written = sender.packs_written;
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Re-encodes every selected snapshot the destination lacks (by
/// [`reencode::Identity`]), oldest first; a dry run only counts the raw
/// bytes it would read.
fn copy_reencoding(
    from: &Repository,
    to: &Repository,
    lock: Option<&Lock>,
    chosen: Vec<SnapshotInfo>,
    report: &mut CopyReport,
    progress: &dyn Progress,
) -> Result<()> {
    let mut present = reencode::Present::load(to)?;
    let sources: HashMap<SnapshotId, SnapshotInfo> = from
        .snapshots(&SnapshotFilter::default())?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let mut todo = Vec::new();
    for snapshot in chosen {
        if let Some(there) = present.find(&snapshot) {
            report.snapshots_present += 1;
            let mut done = outcome(snapshot, CopyState::Present, &[]);
            done.to_id = Some(there);
            report.snapshots.push(done);
            continue;
        }
        root_tree(from, to, &snapshot)?;
        let raw: u64 = from
            .files(&snapshot)?
            .iter()
            .filter(|f| f.kind == crate::format::manifest::EntryKind::File)
            .map(|f| f.size)
            .sum();
        report.raw_bytes_read += raw;
        todo.push((snapshot, raw));
    }
    progress.start(
        "copy",
        if report.dry_run {
            0
        } else {
            report.raw_bytes_read
        },
    );
    for (snapshot, _) in todo {
        report.snapshots_copied += 1;
        let Some(lock) = lock.filter(|_| !report.dry_run) else {
            report
                .snapshots
                .push(outcome(snapshot, CopyState::WouldCopy, &[]));
            continue;
        };
        let done = reencode::reencode(from, to, lock, &snapshot, &sources, &mut present, progress)?;
        let t = done.totals;
        report.chunks_sent += t.chunks_new;
        report.bytes_sent += t.added_stored;
        report.raw_bytes_sent += t.added_raw;
        report.packs_written += t.packs;
        report.snapshots.push(CopiedSnapshot {
            to_id: Some(done.id),
            chunks_sent: t.chunks_new,
            bytes_sent: t.added_stored,
            snapshot,
            state: CopyState::Copied,
        });
    }
    progress.finish();
    Ok(())
}

fn hex_opt<S: serde::Serializer>(
    id: &Option<SnapshotId>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.serialize_str(&id.to_hex()),
        None => s.serialize_none(),
    }
}

/// `locs` in order, in runs of about `budget` bytes as `len` counts an
/// entry's (each run at least one chunk), each with the bytes it counted:
/// what one read brings into memory.
fn batches<'l>(
    locs: &'l [ChunkLocation],
    budget: u64,
    len: impl Fn(&PackEntry) -> u32 + 'l,
) -> impl Iterator<Item = (&'l [ChunkLocation], u64)> + 'l {
    let mut rest = locs;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (mut end, mut bytes) = (1, len(&rest[0].entry) as u64);
        while end < rest.len() && bytes < budget {
            bytes += len(&rest[end].entry) as u64;
            end += 1;
        }
        let (batch, tail) = rest.split_at(end);
        rest = tail;
        Some((batch, bytes))
    })
}

fn outcome(snapshot: SnapshotInfo, state: CopyState, send: &[ChunkLocation]) -> CopiedSnapshot {
    let to_id = (state != CopyState::WouldCopy).then_some(snapshot.id);
    CopiedSnapshot {
        to_id,
        snapshot,
        state,
        chunks_sent: send.len() as u64,
        bytes_sent: send.iter().map(|l| l.entry.stored_len as u64).sum(),
    }
}

/// The snapshots `req` selects in `from`, oldest first, each once. Every
/// selector must resolve: one that does not fails the copy before anything
/// is written.
fn select(from: &Repository, req: &CopyRequest) -> Result<Vec<SnapshotInfo>> {
    let mut chosen = Vec::new();
    for selector in &req.selectors {
        chosen.push(from.resolve(selector)?);
    }
    match &req.filter {
        Some(filter) => {
            let matched = from.snapshots(filter)?;
            if matched.is_empty() {
                return Err(no_match(from, filter)?);
            }
            chosen.extend(matched);
        }
        None if req.selectors.is_empty() => {
            chosen.extend(from.snapshots(&SnapshotFilter::default())?);
        }
        None => {}
    }
    chosen.sort_by_key(|s| (s.time, s.id));
    chosen.dedup_by_key(|s| s.id);
    Ok(chosen)
}

/// A filter that matches nothing is a mistake (a misspelt name), not an
/// empty copy: the error names the filter and the histories there are.
fn no_match(from: &Repository, filter: &SnapshotFilter) -> Result<Error> {
    let given = [
        ("kind", &filter.kind),
        ("name", &filter.name),
        ("tag", &filter.tag),
    ];
    let selector = given
        .iter()
        .filter_map(|(flag, v)| v.as_ref().map(|v| format!("--{flag} {v}")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut candidates: Vec<String> = from
        .snapshots(&SnapshotFilter::default())?
        .iter()
        .map(SnapshotInfo::history)
        .collect();
    candidates.sort();
    candidates.dedup();
    Ok(Error::SnapshotNotFound {
        selector,
        heading: "known names".into(),
        candidates,
    })
}

/// For each snapshot the destination does not list, the chunks it lacks
/// (from the source's catalog, in file order, each chunk once per run).
fn plan(from: &Repository, to: &Repository, chosen: Vec<SnapshotInfo>) -> Result<Vec<Planned>> {
    let present: HashSet<SnapshotId> = to
        .snapshots(&SnapshotFilter::default())?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let mut seen: HashSet<ChunkId> = HashSet::new();
    let mut plan = Vec::with_capacity(chosen.len());
    for snapshot in chosen {
        if present.contains(&snapshot.id) {
            plan.push(Planned {
                snapshot,
                send: None,
            });
            continue;
        }
        let mut ids = Vec::new();
        if let Some(root) = root_tree(from, to, &snapshot)? {
            ids.extend(seen.insert(root).then_some(root));
        }
        for file in from.files(&snapshot)? {
            ids.extend(file.chunks.into_iter().filter(|c| seen.insert(*c)));
        }
        // The chunks its delta chunks are made against go first: a delta
        // is never stored where its reference is not.
        let mut refs: Vec<ChunkId> = from.catalog().references_of(&ids)?.into_iter().collect();
        refs.sort_unstable_by_key(|c| c.0);
        refs.retain(|c| seen.insert(*c));
        refs.append(&mut ids);
        let mut ids = refs;
        let there = to.catalog().existing(&ids)?;
        ids.retain(|c| !there.contains(c));
        let send = Some(from.locate_all(&ids)?);
        plan.push(Planned { snapshot, send });
    }
    Ok(plan)
}

/// The root tree of `snap` when its manifest is version 2 (its trees then
/// go with its chunks); refuses a destination that writes only version-1
/// manifests (repository version < 4), which an older cairn must be able
/// to read whole.
fn root_tree(from: &Repository, to: &Repository, snap: &SnapshotInfo) -> Result<Option<ChunkId>> {
    let key = manifest::key(&snap.id);
    let head = Manifest::decode_stored(&from.storage().get(&key)?, Some(&snap.id), &key)?;
    match head.root {
        Some(_) if !to.config().writes_trees() => Err(Error::IncompatibleRepositories {
            from: from.root().display().to_string(),
            to: to.root().display().to_string(),
            reason: format!(
                "snapshot {} is stored with tree objects (manifest version 2), which a \
                 version-{} repository cannot hold (make the destination with this cairn's \
                 `init`, version {})",
                snap.id.short(),
                to.config().version,
                crate::format::config::TREE_VERSION
            ),
        }),
        root => Ok(root),
    }
}

/// Makes a snapshot whose chunks are all in `to` visible there: its
/// manifest, as the source stores it (checked against its id), durable
/// first, then its catalog rows.
fn commit(
    from: &Repository,
    to: &Repository,
    lock: Option<&Lock>,
    snap: &SnapshotInfo,
) -> Result<()> {
    let key = manifest::key(&snap.id);
    let stored = crate::ops::snapshot::trees::load_in(from, &key, Some(&snap.id))?;
    let (id, bytes) = stored.encode();
    let m = stored.manifest;
    if id != snap.id {
        return Err(Error::CorruptManifest {
            key,
            reason: "it does not encode back to its id".into(),
        });
    }
    let ids: Vec<ChunkId> = m
        .files
        .iter()
        .flat_map(|f| f.chunks.clone())
        .chain(stored.root)
        .collect();
    let there = to.catalog().existing(&ids)?;
    if let Some(missing) = ids.iter().find(|c| !there.contains(c)) {
        // Never make a snapshot visible whose chunks are not all there.
        return Err(Error::ChunkMissing { chunk: *missing });
    }
    // As a snapshot's commit: only while the lock holds (docs/FORMAT.md).
    if let Some(lock) = lock {
        lock.ensure_held()?;
    }
    to.storage().put(&key, &bytes)?;
    // Another copy into the same destination may have listed it meanwhile.
    let history = SnapshotFilter {
        kind: Some(m.label.kind.clone()),
        name: Some(m.label.name.clone()),
        tag: None,
    };
    if to.snapshots(&history)?.iter().any(|s| s.id == id) {
        return Ok(());
    }
    // No stat cache: the source's inodes are another machine's, maybe.
    to.catalog().add_snapshot(&id, &m, &[])
}

/// Reads chunks from the source and fills the destination's packs.
struct Sender<'r> {
    from: &'r Repository,
    to: &'r Repository,
    progress: &'r dyn Progress,
    verify: bool,
    packs_written: u64,
}

impl<'r> Sender<'r> {
    fn new(from: &'r Repository, to: &'r Repository, progress: &'r dyn Progress) -> Self {
        Self {
            from,
            to,
            progress,
            verify: to.config().verify_after_snapshot,
            packs_written: 0,
        }
    }

    /// Sends `locs` in batches of about [`READ_BATCH_BYTES`] stored bytes
    /// into packs that snapshot's writers put, several at a time on object
    /// storage ([`through_pack_writers`]). When this returns, every pack is written
    /// and indexed, so the manifest may follow.
    fn send(&mut self, locs: &[ChunkLocation]) -> Result<()> {
        if !self.to.config().allows_delta() && locs.iter().any(|l| l.entry.codec == Codec::Delta) {
            return Err(Error::IncompatibleRepositories {
                from: self.from.root().display().to_string(),
                to: self.to.root().display().to_string(),
                reason: format!(
                    "the snapshot holds delta chunks, which a version-{} repository cannot hold \
                     (make the destination with this cairn's `init`, version {})",
                    self.to.config().version,
                    crate::format::config::DELTA_VERSION
                ),
            });
        }
        through_pack_writers(self.to, self.verify, false, |packs, recycled| {
            self.fill(locs, &packs, &recycled)
        })
    }

    /// Reads `locs` from the source into packs and hands each full one,
    /// and the last, to the writers.
    fn fill(
        &mut self,
        locs: &[ChunkLocation],
        packs: &SyncSender<SealedPack>,
        recycled: &Receiver<Vec<u8>>,
    ) -> Result<()> {
        let mut writer = self.to.pack_writer();
        for (batch, bytes) in batches(locs, READ_BATCH_BYTES, |e| e.stored_len) {
            let stored = crate::blob::read_stored_chunks(
                self.from.storage(),
                self.from.crypt(),
                &self.from.references(),
                batch,
            )?;
            for (loc, bytes) in batch.iter().zip(&stored) {
                let e = &loc.entry;
                if !writer.has_room(bytes.len()) {
                    self.next_pack(&mut writer, packs, recycled)?;
                }
                writer.add(e.chunk, e.codec, e.raw_len, bytes);
                if writer.is_full() {
                    self.next_pack(&mut writer, packs, recycled)?;
                }
            }
            self.progress.advance(bytes);
        }
        if writer.is_empty() {
            return Ok(());
        }
        self.hand_over(writer, packs)
    }

    /// Hands `writer`'s pack over and starts the next in a buffer a writer
    /// is done with, when one is back.
    fn next_pack(
        &mut self,
        writer: &mut PackWriter,
        packs: &SyncSender<SealedPack>,
        recycled: &Receiver<Vec<u8>>,
    ) -> Result<()> {
        let next = self
            .to
            .pack_writer_in(recycled.try_recv().unwrap_or_default());
        self.hand_over(std::mem::replace(writer, next), packs)
    }

    fn hand_over(&mut self, pack: PackWriter, packs: &SyncSender<SealedPack>) -> Result<()> {
        packs
            .send(pack.finish())
            .map_err(|_| Error::InvalidArgument("the pack writer stopped".into()))?;
        self.packs_written += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
