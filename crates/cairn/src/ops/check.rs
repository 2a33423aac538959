//! Integrity checking. `check` compares catalog, packs and manifests
//! (structure) and, with `read_data`, re-hashes every stored chunk; `verify`
//! rebuilds each file of one snapshot in memory against its SHA-256.
//!
//! Findings are data, not errors: each names the damaged object and the
//! snapshots and files that depend on it. Leftovers of interrupted writes
//! (packs or manifests the catalog does not list, packs nothing references)
//! are reported but are not damage, and so is the unfinished work of an
//! interrupted forget (snapshots a forget intent names, see
//! [`crate::ops::forget`]): check reports it and leaves it to forget or repair.

use std::collections::{BTreeMap, HashMap, HashSet};

use rayon::prelude::*;
use serde::Serialize;

use crate::blob;
use crate::catalog::{Integrity, PackRow, ReferenceScan, SnapshotFilter, SnapshotInfo};
use crate::error::{Error, Result};
use crate::format::id::{ChunkId, PackId, SnapshotId};
use crate::format::manifest::{self, EntryKind};
use crate::format::pack::{self, PackEntry};
use crate::format::seal::Crypt;
use crate::progress::Progress;
use crate::repo::repository::Repository;
use crate::storage::Storage;

pub(crate) mod verify;
pub use verify::{verify, VerifyFailure, VerifyReport};

/// One thing wrong (or left over) in a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The catalog database itself is damaged (SQLite's own checks); the
    /// rest of the check is skipped, since its answers would not be
    /// trustworthy. `rebuild-catalog` recreates it from packs and manifests.
    CatalogCorrupt {
        reason: String,
    },
    PackMissing {
        pack: String,
    },
    PackSize {
        pack: String,
        catalog: u64,
        actual: u64,
    },
    PackCorrupt {
        pack: String,
        reason: String,
    },
    IndexMismatch {
        pack: String,
        chunk: String,
        reason: String,
    },
    ChunkCorrupt {
        pack: String,
        chunk: String,
        reason: String,
    },
    ChunkNotStored {
        chunk: String,
    },
    ManifestMissing {
        snapshot: String,
    },
    ManifestCorrupt {
        snapshot: String,
        reason: String,
    },
    ManifestMismatch {
        snapshot: String,
        reason: String,
    },
    /// A complete manifest the catalog does not list (crash before commit).
    ManifestNotInCatalog {
        snapshot: String,
    },
    /// A pack object the catalog does not list (crash before commit).
    UnknownPack {
        pack: String,
    },
    /// A pack none of whose chunks any snapshot uses (gc reclaims it).
    UnreferencedPack {
        pack: String,
    },
    /// A temp file of a killed lock write (`gc` or `unlock` removes it).
    LockTempFile {
        key: String,
    },
    /// A snapshot a forget was removing when it was interrupted (its
    /// manifest and catalog rows may be gone or not): unfinished work, not
    /// damage. `forget`, `delete` or `repair` finish it.
    ForgetInterrupted {
        snapshot: String,
        intent: String,
    },
    /// A forget intent that cannot be read: which snapshots it names is
    /// unknown, so nothing finishes it.
    ForgetIntentUnreadable {
        intent: String,
        reason: String,
    },
}

impl Problem {
    /// Leftovers are harmless; everything else is damage.
    pub fn is_damage(&self) -> bool {
        !matches!(
            self,
            Problem::ManifestNotInCatalog { .. }
                | Problem::UnknownPack { .. }
                | Problem::UnreferencedPack { .. }
                | Problem::LockTempFile { .. }
                | Problem::ForgetInterrupted { .. }
        )
    }
}

/// The files of one snapshot that a finding makes unrecoverable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Affected {
    pub snapshot: String,
    pub history: String,
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    #[serde(flatten)]
    pub problem: Problem,
    pub damage: bool,
    pub affected: Vec<Affected>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Read and re-hash chunk data.
    pub read_data: bool,
    /// With `read_data`: only this percentage of packs, least recently
    /// verified first.
    pub subset_pct: Option<f64>,
}

impl CheckOptions {
    /// Structure plus every chunk of every pack re-hashed.
    pub const READ_ALL: CheckOptions = CheckOptions {
        read_data: true,
        subset_pct: None,
    };
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    pub snapshots: u64,
    pub packs: u64,
    pub packs_read: u64,
    pub chunks_read: u64,
    pub bytes_read: u64,
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// True when nothing is damaged (leftovers allowed).
    pub fn is_clean(&self) -> bool {
        !self.findings.iter().any(|f| f.damage)
    }
}

/// Collects findings and which chunks each one damages.
#[derive(Default)]
struct Findings {
    list: Vec<(Problem, Vec<ChunkId>)>,
}

impl Findings {
    fn add(&mut self, problem: Problem, chunks: Vec<ChunkId>) {
        self.list.push((problem, chunks));
    }
}

/// Runs a check; see [`CheckOptions`].
pub fn check(
    repo: &Repository,
    opts: CheckOptions,
    progress: &dyn Progress,
) -> Result<CheckReport> {
    // Shared: a concurrent gc would make live data look missing.
    let _lock = repo.read_lock("check")?;
    check_unlocked(repo, opts, progress)
}

/// [`check`] for a caller that already holds a lock (repair).
pub(crate) fn check_unlocked(
    repo: &Repository,
    opts: CheckOptions,
    progress: &dyn Progress,
) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let level = if opts.read_data {
        Integrity::Full
    } else {
        Integrity::Quick
    };
    let catalog_problems = repo.catalog().integrity_problems(level)?;
    if !catalog_problems.is_empty() {
        report.findings = catalog_problems
            .into_iter()
            .map(|reason| Finding {
                problem: Problem::CatalogCorrupt { reason },
                damage: true,
                affected: Vec::new(),
            })
            .collect();
        return Ok(report);
    }
    let mut findings = Findings::default();
    let packs = pack_rows(repo)?;
    report.packs = packs.len() as u64;
    let on_disk: HashMap<String, u64> = repo
        .storage()
        .list("packs/")?
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect();
    let known: HashSet<String> = packs.iter().map(|p| pack::key(&p.id)).collect();
    for key in on_disk.keys().filter(|k| !known.contains(*k)) {
        findings.add(Problem::UnknownPack { pack: key.clone() }, vec![]);
    }
    // Only those of locks: other temp files may be a running snapshot's.
    for obj in crate::repo::lock::leftover_temp_files(repo.storage())? {
        findings.add(Problem::LockTempFile { key: obj.key }, vec![]);
    }
    let to_read = if opts.read_data {
        select_for_reading(&packs, opts.subset_pct)
    } else {
        HashSet::new()
    };
    progress.start(
        "check",
        packs
            .iter()
            .filter(|p| to_read.contains(&p.rowid))
            .map(|p| p.size)
            .sum(),
    );
    let mut table_counts = repo.catalog().chunk_counts_by_pack()?;
    // One sorted copy of the chunk rows for the whole pass (the catalog
    // keeps no by-pack index since schema 5), dropped when check ends.
    let by_pack = repo.catalog().chunks_by_pack()?;
    // Catalog rows are fetched on this thread; packs are read in parallel
    // a few at a time, so memory stays at a few packs.
    for group in packs.chunks(rayon::current_num_threads().max(1) * 2) {
        crate::progress::check_cancelled(progress)?;
        let rows: Vec<Vec<PackEntry>> = group
            .iter()
            .map(|p| pack_entries(repo, p.rowid))
            .collect::<Result<_>>()?;
        for p in group {
            table_counts.remove(&p.rowid);
        }
        let storage = repo.storage();
        let refs = repo.references();
        let results: Vec<PackResult> = group
            .par_iter()
            .zip(rows)
            .map(|(p, rows)| {
                check_pack(
                    storage,
                    repo.crypt(),
                    &refs,
                    p,
                    on_disk.get(&pack::key(&p.id)).copied(),
                    rows,
                    to_read.contains(&p.rowid),
                    progress,
                )
            })
            .collect();
        for (p, r) in group.iter().zip(results) {
            if r.read {
                report.packs_read += 1;
                report.chunks_read += r.chunks_read;
                report.bytes_read += p.size;
                if r.problems.is_empty() {
                    mark_verified(repo, p.rowid)?;
                }
            }
            for (problem, chunks) in r.problems {
                findings.add(problem, chunks);
            }
        }
    }
    progress.finish();
    drop(by_pack);
    for (rowid, n) in table_counts {
        let reason =
            format!("{n} chunk rows name pack row {rowid}, which the catalog does not list");
        findings.add(Problem::CatalogCorrupt { reason }, vec![]);
    }
    let snaps = repo.snapshots(&SnapshotFilter::default())?;
    report.snapshots = snaps.len() as u64;
    let forgetting = forget_intents(repo, &mut findings)?;
    check_manifests(repo, &snaps, &forgetting, &mut findings)?;
    let referenced_packs = scan_references(repo, &mut findings)?;
    for p in packs
        .iter()
        .filter(|p| !referenced_packs.contains(&p.rowid))
    {
        findings.add(
            Problem::UnreferencedPack {
                pack: p.id.to_hex(),
            },
            vec![],
        );
    }
    report.findings = attach_affected(repo, &snaps, findings)?;
    Ok(report)
}

pub(crate) fn pack_rows(repo: &Repository) -> Result<Vec<PackRow>> {
    repo.catalog().pack_rows()
}

/// The catalog's chunk rows for one pack.
pub(crate) fn pack_entries(repo: &Repository, pack_rowid: i64) -> Result<Vec<PackEntry>> {
    repo.catalog().pack_entries(pack_rowid)
}

/// Packs least recently verified first: the first `pct` percent of them
/// (rounded up), or all.
fn select_for_reading(packs: &[PackRow], pct: Option<f64>) -> HashSet<i64> {
    let n = match pct {
        Some(p) => {
            ((packs.len() as f64 * p.clamp(0.0, 100.0) / 100.0).ceil() as usize).min(packs.len())
        }
        None => packs.len(),
    };
    packs.iter().take(n).map(|p| p.rowid).collect()
}

/// Best effort: on a full disk (or a catalog opened read-only for one) the
/// check still runs; it only cannot remember which packs it read.
fn mark_verified(repo: &Repository, rowid: i64) -> Result<()> {
    let skipped = "last_verified_ns not recorded (disk full or catalog read-only): \
                   the next `check --read-data N%` may pick the same packs again";
    if repo.is_read_only() {
        repo.warn(skipped);
        return Ok(());
    }
    match repo.catalog().mark_pack_verified(rowid) {
        Err(e) if e.is_no_space() => {
            repo.warn(skipped);
            Ok(())
        }
        other => other,
    }
}

struct PackResult {
    read: bool,
    chunks_read: u64,
    problems: Vec<(Problem, Vec<ChunkId>)>,
}

/// Checks one pack against its catalog rows; with `read`, reads the whole
/// pack and re-hashes every chunk.
#[allow(clippy::too_many_arguments)]
fn check_pack(
    storage: &dyn Storage,
    crypt: &Crypt,
    refs: &crate::blob::References,
    p: &PackRow,
    actual_size: Option<u64>,
    rows: Vec<PackEntry>,
    read: bool,
    progress: &dyn Progress,
) -> PackResult {
    let hex = p.id.to_hex();
    let all: Vec<ChunkId> = rows.iter().map(|e| e.chunk).collect();
    let mut out = PackResult {
        read: false,
        chunks_read: 0,
        problems: Vec::new(),
    };
    let Some(actual) = actual_size else {
        out.problems.push((Problem::PackMissing { pack: hex }, all));
        return out;
    };
    if actual != p.size {
        out.problems.push((
            Problem::PackSize {
                pack: hex,
                catalog: p.size,
                actual,
            },
            all,
        ));
        return out;
    }
    let (entries, bytes) = if read {
        out.read = true;
        let bytes = match storage.get(&pack::key(&p.id)) {
            Ok(b) => b,
            Err(e) => {
                out.problems.push((
                    Problem::PackCorrupt {
                        pack: hex,
                        reason: e.to_string(),
                    },
                    all,
                ));
                return out;
            }
        };
        progress.advance(bytes.len() as u64);
        (
            pack::parse_with(&bytes, crypt).map_err(|r| Error::CorruptPack {
                pack: hex.clone(),
                reason: r,
            }),
            Some(bytes),
        )
    } else {
        (pack::read_entries(storage, crypt, &p.id, actual), None)
    };
    let entries = match entries {
        Ok(e) => e,
        Err(e) => {
            out.problems.push((
                Problem::PackCorrupt {
                    pack: hex,
                    reason: e.to_string(),
                },
                all,
            ));
            return out;
        }
    };
    let in_trailer: HashMap<ChunkId, PackEntry> = entries.iter().map(|e| (e.chunk, *e)).collect();
    for row in &rows {
        if in_trailer.get(&row.chunk) != Some(row) {
            let reason = "catalog location differs from the pack trailer".to_string();
            out.problems.push((
                Problem::IndexMismatch {
                    pack: hex.clone(),
                    chunk: row.chunk.to_hex(),
                    reason,
                },
                vec![row.chunk],
            ));
        }
    }
    if let Some(bytes) = bytes {
        for e in &entries {
            out.chunks_read += 1;
            let stored = &bytes[e.offset as usize..][..e.stored_len as usize];
            let verdict = blob::open_chunk(crypt, refs, &p.id, e, stored)
                .map(drop)
                .map_err(|err| match err {
                    Error::CorruptChunk { reason, .. } => reason,
                    other => other.to_string(),
                });
            if let Err(reason) = verdict {
                out.problems.push((
                    Problem::ChunkCorrupt {
                        pack: hex.clone(),
                        chunk: e.chunk.to_hex(),
                        reason,
                    },
                    vec![e.chunk],
                ));
            }
        }
        if out.problems.is_empty() && PackId::of(&bytes) != p.id {
            out.problems.push((
                Problem::PackCorrupt {
                    pack: hex,
                    reason: "file does not match its id".into(),
                },
                vec![],
            ));
        }
    }
    out
}

/// The snapshots that forget intents name, each with its intent's key;
/// unreadable intents are findings.
fn forget_intents(
    repo: &Repository,
    findings: &mut Findings,
) -> Result<HashMap<SnapshotId, String>> {
    let mut named = HashMap::new();
    for (key, parsed) in crate::ops::forget::scan_intents(repo.storage())? {
        match parsed {
            Ok(intent) => named.extend(intent.snapshots.into_iter().map(|id| (id, key.clone()))),
            Err(e) => findings.add(
                Problem::ForgetIntentUnreadable {
                    intent: key,
                    reason: e.to_string(),
                },
                vec![],
            ),
        }
    }
    Ok(named)
}

/// Each listed snapshot's manifest must exist, decode, and agree with the
/// catalog; manifests the catalog lacks are leftovers. A snapshot a forget
/// intent names is being removed: whatever is left of it is reported as
/// that, never as a missing manifest (which repair would rewrite) or an
/// unlisted one (which repair would import).
fn check_manifests(
    repo: &Repository,
    snaps: &[SnapshotInfo],
    forgetting: &HashMap<SnapshotId, String>,
    findings: &mut Findings,
) -> Result<()> {
    let stored: HashSet<SnapshotId> = repo
        .storage()
        .list("snapshots/")?
        .iter()
        .filter_map(|o| manifest::id_from_key(&o.key))
        .collect();
    let listed: HashSet<SnapshotId> = snaps.iter().map(|s| s.id).collect();
    let mut left_of_forgets: Vec<&SnapshotId> = stored
        .union(&listed)
        .filter(|id| forgetting.contains_key(id))
        .collect();
    left_of_forgets.sort();
    for id in left_of_forgets {
        findings.add(
            Problem::ForgetInterrupted {
                snapshot: id.to_hex(),
                intent: forgetting[id].clone(),
            },
            vec![],
        );
    }
    for id in stored
        .difference(&listed)
        .filter(|id| !forgetting.contains_key(id))
    {
        findings.add(
            Problem::ManifestNotInCatalog {
                snapshot: id.to_hex(),
            },
            vec![],
        );
    }
    for s in snaps.iter().filter(|s| !forgetting.contains_key(&s.id)) {
        let snapshot = s.id.to_hex();
        if !stored.contains(&s.id) {
            findings.add(Problem::ManifestMissing { snapshot }, vec![]);
            continue;
        }
        let key = manifest::key(&s.id);
        // A version-2 manifest is read with its trees, each entry compared
        // as it is read (the list is not held beside the catalog's): an
        // unreadable or unindexed tree (the root too) is reported naming
        // its directory.
        let mut against = AgainstCatalog::new(&key, repo.catalog().files(s)?);
        let loaded = crate::ops::snapshot::trees::load_each(repo, &key, Some(&s.id), &mut |f| {
            against.entry(f)
        });
        let m = match loaded {
            Ok(stored) => stored.manifest,
            Err(e) => {
                findings.add(
                    Problem::ManifestCorrupt {
                        snapshot,
                        reason: e.to_string(),
                    },
                    vec![],
                );
                continue;
            }
        };
        if let Some(reason) = against.verdict(&m.label, &s.label) {
            findings.add(Problem::ManifestMismatch { snapshot, reason }, vec![]);
        }
    }
    Ok(())
}

/// A manifest's entries, passed one at a time as its trees are read,
/// against the catalog's entries of the same snapshot (sorted by path).
struct AgainstCatalog<'a> {
    key: &'a str,
    catalog: Vec<manifest::FileEntry>,
    /// Which catalog entries a manifest entry named.
    matched: Vec<bool>,
    /// Manifest paths the catalog lacks (none, unless they differ).
    unmatched: HashSet<String>,
    listed: usize,
    first_difference: Option<String>,
}

impl<'a> AgainstCatalog<'a> {
    fn new(key: &'a str, catalog: Vec<manifest::FileEntry>) -> Self {
        Self {
            key,
            matched: vec![false; catalog.len()],
            catalog,
            unmatched: HashSet::new(),
            listed: 0,
            first_difference: None,
        }
    }

    /// Takes the manifest's next entry; a path it lists twice makes the
    /// manifest corrupt, as [`manifest::Manifest::check_expanded`] says.
    fn entry(&mut self, f: manifest::FileEntry) -> Result<()> {
        self.listed += 1;
        let same = match self.catalog.binary_search_by(|c| c.path.cmp(&f.path)) {
            Ok(i) if self.matched[i] => return Err(manifest::twice(self.key, &f.path)),
            Ok(i) => {
                self.matched[i] = true;
                self.catalog[i] == f
            }
            Err(_) if !self.unmatched.insert(f.path.clone()) => {
                return Err(manifest::twice(self.key, &f.path))
            }
            Err(_) => false,
        };
        if !same && self.first_difference.is_none() {
            self.first_difference = Some(format!("entry `{}` differs", f.path));
        }
        Ok(())
    }

    /// How the manifest (its label `ml`, and the entries taken) differs
    /// from the catalog's record (label `sl`), if it does.
    fn verdict(self, ml: &crate::SnapshotLabel, sl: &crate::SnapshotLabel) -> Option<String> {
        if (ml.kind.as_str(), ml.name.as_str(), &ml.version, &ml.tags)
            != (sl.kind.as_str(), sl.name.as_str(), &sl.version, &sl.tags)
        {
            return Some("kind, name, version or tags differ".into());
        }
        if self.listed != self.catalog.len() {
            return Some(format!(
                "manifest has {} entries, catalog {}",
                self.listed,
                self.catalog.len()
            ));
        }
        self.first_difference
    }
}

/// One pass over every file of every snapshot: each referenced chunk must
/// be in the catalog. Returns the packs that hold referenced chunks.
fn scan_references(repo: &Repository, findings: &mut Findings) -> Result<HashSet<i64>> {
    let ReferenceScan { packs, missing } = repo.catalog().reference_scan()?;
    for chunk in missing {
        findings.add(
            Problem::ChunkNotStored {
                chunk: chunk.to_hex(),
            },
            vec![chunk],
        );
    }
    Ok(packs)
}

/// Names, for each finding, the snapshots and files that use its chunks.
fn attach_affected(
    repo: &Repository,
    snaps: &[SnapshotInfo],
    findings: Findings,
) -> Result<Vec<Finding>> {
    let mut by_chunk: HashMap<ChunkId, Vec<usize>> = HashMap::new();
    for (i, (_, chunks)) in findings.list.iter().enumerate() {
        for c in chunks {
            by_chunk.entry(*c).or_default().push(i);
        }
    }
    // A damaged chunk also breaks the delta chunks made against it.
    for (i, (_, chunks)) in findings.list.iter().enumerate() {
        let named: HashSet<ChunkId> = chunks.iter().copied().collect();
        for d in repo.catalog().dependants_of(&named)? {
            by_chunk.entry(d).or_default().push(i);
        }
    }
    for list in by_chunk.values_mut() {
        list.sort_unstable();
        list.dedup();
    }
    let mut affected: Vec<BTreeMap<usize, Affected>> = vec![BTreeMap::new(); findings.list.len()];
    if !by_chunk.is_empty() {
        for (si, s) in snaps.iter().enumerate() {
            // Files by their chunks; directories by their tree (manifest
            // version 2), whose damage hides everything under them.
            for f in repo
                .catalog()
                .files(s)?
                .iter()
                .filter(|f| f.kind != EntryKind::Symlink)
            {
                let hit: HashSet<usize> = f
                    .chunks
                    .iter()
                    .filter_map(|c| by_chunk.get(c))
                    .flatten()
                    .copied()
                    .collect();
                for i in hit {
                    affected[i]
                        .entry(si)
                        .or_insert_with(|| Affected {
                            snapshot: s.id.short(),
                            history: s.history(),
                            files: Vec::new(),
                        })
                        .files
                        .push(f.path.clone());
                }
            }
        }
    }
    Ok(findings
        .list
        .into_iter()
        .zip(affected)
        .map(|((problem, _), a)| Finding {
            damage: problem.is_damage(),
            problem,
            affected: a.into_values().collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::faulty::{Fault, FaultyStorage};
    use crate::storage::LocalStorage;
    use crate::{ChunkerParams, NoProgress, RepoConfig, RestoreOptions, SnapshotOptions};
    use std::path::Path;

    fn write_tree(dir: &Path, seed: u64) {
        std::fs::create_dir_all(dir).unwrap();
        // Incompressible data so the packs are large: with 4 KiB average
        // chunks and ~6 MB of data, a snapshot writes several packs below
        // the 32 MiB seal size only when forced, so we use several files.
        for i in 0..3 {
            let data = crate::test_support::random_bytes(seed * 10 + i, 2_000_000);
            std::fs::write(dir.join(format!("f{i}.bin")), data).unwrap();
        }
    }

    fn opts(name: &str) -> SnapshotOptions {
        SnapshotOptions {
            label: crate::SnapshotLabel::new("model", name),
            ..Default::default()
        }
    }

    /// The streaming comparison finds what the whole-list one found: the
    /// first entry that differs (in manifest order), a count that differs,
    /// an entry the catalog lacks, and a path listed twice (corrupt).
    #[test]
    fn entries_are_compared_with_the_catalog_one_at_a_time() {
        let entry = |path: &str, size: u64| manifest::FileEntry {
            path: path.into(),
            size,
            ..Default::default()
        };
        let catalog = || vec![entry("a", 1), entry("b/c", 2), entry("b/d", 3)];
        let label = crate::SnapshotLabel::new("model", "m");
        let run = |listed: &[manifest::FileEntry]| {
            let mut against = AgainstCatalog::new("k", catalog());
            for f in listed {
                against.entry(f.clone())?;
            }
            Ok::<_, Error>(against.verdict(&label, &label))
        };
        // Tree order, not the catalog's path order.
        let same = [entry("b/d", 3), entry("b/c", 2), entry("a", 1)];
        assert_eq!(run(&same).unwrap(), None);
        let changed = [entry("a", 1), entry("b/c", 9), entry("b/d", 4)];
        assert_eq!(run(&changed).unwrap().unwrap(), "entry `b/c` differs");
        let foreign = [entry("a", 1), entry("x", 2), entry("b/d", 3)];
        assert_eq!(run(&foreign).unwrap().unwrap(), "entry `x` differs");
        let short = [entry("a", 1), entry("b/c", 2)];
        assert_eq!(
            run(&short).unwrap().unwrap(),
            "manifest has 2 entries, catalog 3"
        );
        for twice in [
            [entry("a", 1), entry("a", 1), entry("b/d", 3)],
            [entry("x", 1), entry("x", 1), entry("b/d", 3)],
        ] {
            let err = run(&twice).unwrap_err().to_string();
            assert!(err.contains("appears twice"), "{err}");
        }
    }

    /// Guards the commit order: whatever put fails or tears, earlier
    /// snapshots stay intact and restorable, no partial snapshot is visible,
    /// check finds no damage, and the same snapshot succeeds afterwards.
    #[test]
    fn injected_write_faults_never_damage_the_repository() {
        for fault in [Fault::Fail, Fault::Tear] {
            for fail_at in 1..=3 {
                let dir = tempfile::tempdir().unwrap();
                let root = dir.path().join("repo");
                let repo = Repository::init(
                    &root,
                    RepoConfig::new(ChunkerParams::with_average(4096), 1).unwrap(),
                )
                .unwrap();
                write_tree(&dir.path().join("v1"), 1);
                repo.snapshot(&[dir.path().join("v1")], &opts("good"), &NoProgress)
                    .unwrap();
                drop(repo);

                write_tree(&dir.path().join("v2"), 2);
                let faulty = FaultyStorage::new(LocalStorage::new(&root), fault, fail_at);
                let location = crate::CatalogLocation::in_repository(&root);
                let repo = Repository::open_with(std::sync::Arc::new(faulty), location).unwrap();
                let err = repo.snapshot(&[dir.path().join("v2")], &opts("next"), &NoProgress);
                assert!(err.is_err(), "{fault:?} at put {fail_at} must surface");
                drop(repo);

                let repo = Repository::open(&root).unwrap();
                let names: Vec<String> = repo
                    .snapshots(&Default::default())
                    .unwrap()
                    .into_iter()
                    .map(|s| s.label.name)
                    .collect();
                assert_eq!(
                    names,
                    ["good"],
                    "{fault:?}@{fail_at}: no partial snapshot visible"
                );
                let report = check(&repo, CheckOptions::READ_ALL, &NoProgress).unwrap();
                assert!(
                    report.is_clean(),
                    "{fault:?}@{fail_at}: {:?}",
                    report.findings
                );
                let out = dir.path().join("out");
                let snap = repo.resolve("good").unwrap();
                crate::ops::restore::restore(
                    &repo,
                    &snap,
                    &out,
                    &RestoreOptions::default(),
                    &NoProgress,
                )
                .unwrap();
                for i in 0..3 {
                    let name = format!("v1/f{i}.bin");
                    let restored = crate::test_support::stored(&dir.path().join(&name), "");
                    assert_eq!(
                        std::fs::read(out.join(restored)).unwrap(),
                        std::fs::read(dir.path().join(&name)).unwrap()
                    );
                }
                repo.snapshot(&[dir.path().join("v2")], &opts("next"), &NoProgress)
                    .unwrap();
                let report = check(&repo, CheckOptions::READ_ALL, &NoProgress).unwrap();
                assert!(
                    report.is_clean(),
                    "{fault:?}@{fail_at} after rerun: {:?}",
                    report.findings
                );
            }
        }
    }
}
