//! Repairing a damaged repository, after `check --read-data` has said what
//! is wrong. Nothing is silently dropped:
//!
//! - a damaged pack's intact chunks are copied into a new pack (durable
//!   first), the catalog switches to it in one transaction, and only then is
//!   the damaged pack deleted; chunks that could not be read are removed
//!   from the catalog, so the next snapshot of the same data stores them
//!   again (its stat cache re-reads any file whose chunks are gone);
//! - a lost or corrupt manifest is re-written from the catalog when that
//!   reproduces its id exactly; a manifest the catalog lacks is imported;
//! - a tree that was in a damaged pack is built again from the catalog's
//!   entries when that reproduces the ids the snapshot names;
//! - except for snapshots an interrupted forget was removing (a forget
//!   intent names them): their removal is finished instead (manifests and
//!   rows deleted, then the intent), never undone;
//! - every snapshot that still needs a missing chunk is marked damaged (and
//!   the mark is cleared once its chunks are back).

use std::collections::{BTreeSet, HashSet};

use serde::Serialize;

use crate::blob;
use crate::error::{Error, Result};
use crate::format::id::{ChunkId, PackId, SnapshotId};
use crate::format::manifest::{self, EntryKind, Manifest};
use crate::format::pack::{self, PackWriter};
use crate::format::tree;
use crate::ops::check::{self, CheckOptions, Problem};
use crate::ops::snapshot::trees;
use crate::progress::Progress;
use crate::repo::lock::Lock;
use crate::repo::repository::Repository;

#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairReport {
    /// Damaged packs replaced: (old pack, chunks salvaged, chunks lost).
    pub packs_rewritten: Vec<(String, u64, u64)>,
    pub chunks_lost: u64,
    pub manifests_restored: Vec<String>,
    pub manifests_imported: Vec<String>,
    /// Version-2 snapshots whose lost trees were built again from the
    /// catalog's entries.
    pub trees_restored: Vec<String>,
    /// Snapshots of interrupted forgets whose removal repair finished.
    pub forgets_finished: Vec<String>,
    /// Snapshots that still need chunks the repository does not have.
    pub damaged_snapshots: Vec<String>,
    /// Problems repair could not address.
    pub unresolved: Vec<String>,
}

/// Checks everything (reading all data) and repairs what it finds.
pub fn repair(repo: &Repository, progress: &dyn Progress) -> Result<RepairReport> {
    let _lock = Lock::exclusive(repo.shared_storage(), "repair")?;
    // Refuses an unreadable intent: a manifest it names and repair rewrote
    // would resurrect a snapshot that a forget removed.
    let intents = crate::ops::forget::load_intents(repo.storage())?;
    let found = check::check_unlocked(repo, CheckOptions::READ_ALL, progress)?;
    let mut report = RepairReport::default();
    let mut bad_packs = BTreeSet::new();
    for f in &found.findings {
        match &f.problem {
            // Repair rewrites packs and drops rows by what the catalog
            // says; a damaged catalog is rebuilt first, from packs and
            // manifests.
            Problem::CatalogCorrupt { reason } => {
                return Err(Error::CatalogDamaged {
                    path: repo.catalog().path().to_path_buf(),
                    problem: reason.clone(),
                })
            }
            Problem::PackMissing { pack }
            | Problem::PackSize { pack, .. }
            | Problem::PackCorrupt { pack, .. }
            | Problem::IndexMismatch { pack, .. }
            | Problem::ChunkCorrupt { pack, .. } => {
                bad_packs.insert(pack.clone());
            }
            Problem::ManifestMissing { snapshot } | Problem::ManifestCorrupt { snapshot, .. } => {
                match restore_manifest(repo, snapshot)? {
                    true => report.manifests_restored.push(snapshot.clone()),
                    false => report.unresolved.push(format!("manifest of {snapshot} cannot be reproduced from the catalog")),
                }
            }
            Problem::ManifestNotInCatalog { snapshot } => match import_manifest(repo, snapshot) {
                Ok(()) => report.manifests_imported.push(snapshot.clone()),
                // One unreadable leftover must not stop the rest of the repair.
                Err(
                    e @ (Error::CorruptManifest { .. }
                    | Error::UnsupportedVersion { .. }
                    | Error::ObjectNotFound { .. }),
                ) => report.unresolved.push(format!(
                    "manifest {snapshot} is not in the catalog and cannot be imported: {e}"
                )),
                Err(e) => return Err(e),
            },
            Problem::ManifestMismatch { snapshot, reason } => {
                report.unresolved.push(format!("snapshot {snapshot}: manifest and catalog disagree ({reason}); run `cairn rebuild-catalog`"))
            }
            // Finished after this loop; an unreadable intent was refused.
            Problem::ForgetInterrupted { .. } | Problem::ForgetIntentUnreadable { .. } => {}
            Problem::ChunkNotStored { .. } | Problem::UnknownPack { .. } | Problem::UnreferencedPack { .. } | Problem::LockTempFile { .. } => {}
        }
    }
    // Only after the check: a damaged catalog is refused above, before
    // anything is removed from it.
    let finished = crate::ops::forget::finish(repo, &intents)?;
    report.forgets_finished = finished.iter().map(SnapshotId::to_hex).collect();
    for hex in bad_packs {
        let Some(id) = PackId::from_hex(&hex) else {
            continue;
        };
        let (saved, lost) = rewrite_pack(repo, &id)?;
        report.chunks_lost += lost;
        report.packs_rewritten.push((hex, saved, lost));
    }
    restore_trees(repo, &mut report)?;
    report.damaged_snapshots = mark_damaged(repo)?;
    Ok(report)
}

/// Builds again the trees a salvage (or anything else) lost. A tree is a
/// function of the entries under it, which the catalog keeps, so building a
/// version-2 snapshot's trees from its entries gives the ids its manifest
/// and directories name; only the trees the repository lacks are stored.
/// A snapshot whose entries build another root is left unresolved.
fn restore_trees(repo: &Repository, report: &mut RepairReport) -> Result<()> {
    let cat = repo.catalog();
    let crypt = repo.crypt();
    for s in repo.snapshots(&Default::default())? {
        let key = manifest::key(&s.id);
        let bytes = match repo.storage().get(&key) {
            Ok(bytes) => bytes,
            // Missing or undecodable manifests are the findings' business.
            Err(Error::ObjectNotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let Some(root) = Manifest::decode_stored(&bytes, Some(&s.id), &key)
            .ok()
            .and_then(|m| m.root)
        else {
            continue;
        };
        let mut files = cat.files(&s)?;
        let mut lost = !cat.has_chunk(&root)?;
        for dir in files.iter().filter(|f| f.kind == EntryKind::Dir) {
            for c in &dir.chunks {
                lost |= !cat.has_chunk(c)?;
            }
        }
        if !lost {
            continue;
        }
        files.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
        let rebuilt = tree::build(&mut files.clone(), &|b| blob::chunk_id(crypt, b));
        if rebuilt.is_none_or(|b| b.root != root) {
            report.unresolved.push(format!(
                "snapshot {}: trees are lost and the catalog's entries do not rebuild them",
                s.id.to_hex()
            ));
            continue;
        }
        trees::store(repo, &mut files)?;
        report.trees_restored.push(s.id.to_hex());
    }
    Ok(())
}

/// Copies the intact chunks of a damaged pack into a new pack, then drops
/// the old pack. Returns (chunks salvaged, chunks lost).
fn rewrite_pack(repo: &Repository, id: &PackId) -> Result<(u64, u64)> {
    let cat = repo.catalog();
    let rowid = cat.pack_row_id(id)?;
    let rows = check::pack_entries(repo, rowid)?;
    let wanted: HashSet<ChunkId> = rows.iter().map(|e| e.chunk).collect();
    let bytes = repo.storage().get(&pack::key(id)).ok();
    let mut writer = PackWriter::new().sealing(repo.crypt());
    let mut seen = HashSet::new();
    // Salvage by the trailer if it parses, else by the catalog's record of
    // where each chunk is (a truncated pack or a damaged trailer still holds
    // intact chunks). A chunk counts only if its extent is in the file and
    // it decodes and hashes to its id.
    if let Some(b) = bytes.as_deref() {
        let entries = pack::parse_with(b, repo.crypt()).unwrap_or(rows);
        for e in entries.iter().filter(|e| wanted.contains(&e.chunk)) {
            let Some(stored) = usize::try_from(e.offset)
                .ok()
                .and_then(|start| b.get(start..)?.get(..e.stored_len as usize))
            else {
                continue;
            };
            let ok = blob::open_chunk(repo.crypt(), &repo.references(), id, e, stored).is_ok();
            if ok && seen.insert(e.chunk) {
                writer.add(e.chunk, e.codec, e.raw_len, stored);
            }
        }
    }
    let salvaged = seen.len() as u64;
    let lost = (wanted.len() - seen.len()) as u64;
    // When every chunk is salvaged the new pack can be byte-identical to
    // the original (the damage was outside the chunk data: header, trailer,
    // or a catalog row): it then has the same id and replaces the damaged
    // file in place, and must not be deleted as "the old pack".
    let sealed = (!writer.is_empty()).then(|| writer.finish());
    let in_place = sealed.as_ref().is_some_and(|p| p.id == *id);
    if let Some(p) = &sealed {
        repo.storage().put(&pack::key(&p.id), &p.bytes)?;
    }
    let salvaged_pack = sealed
        .as_ref()
        .map(|p| (&p.id, p.bytes.len() as u64, &p.entries[..]));
    cat.replace_pack(rowid, salvaged_pack, wanted.difference(&seen))?;
    if !in_place {
        repo.storage().delete(&pack::key(id))?;
    }
    Ok((salvaged, lost))
}

/// Re-encodes a snapshot's manifest from the catalog; writes it only if it
/// reproduces the snapshot's id (so the content is exactly the original).
fn restore_manifest(repo: &Repository, hex: &str) -> Result<bool> {
    let Some(id) = SnapshotId::from_hex(hex) else {
        return Ok(false);
    };
    let Some(snap) = repo
        .snapshots(&Default::default())?
        .into_iter()
        .find(|s| s.id == id)
    else {
        return Ok(false);
    };
    let cat = repo.catalog();
    let origin = cat.snapshot_origin(&id)?;
    let mut files = cat.files(&snap)?;
    // Manifests list a directory before its contents, siblings by name.
    files.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
    let m = Manifest {
        label: snap.label,
        host: origin.host,
        time_ns: origin.time_ns,
        sources: snap.sources,
        parent: origin.parent,
        stats: snap.stats,
        files,
    };
    // Written as it was: a version-2 snapshot (its directories' `chunks`
    // name their trees) with its trees, re-created where missing (a tree
    // is a function of the entries under it); a version-1 one as before.
    let has_trees = m
        .files
        .iter()
        .any(|f| f.kind == EntryKind::Dir && !f.chunks.is_empty());
    let no_dirs = !m.files.iter().any(|f| f.kind == EntryKind::Dir);
    let mut v2 = m.clone();
    let crypt = repo.crypt();
    let built = match has_trees || no_dirs {
        true => tree::build(&mut v2.files, &|b| blob::chunk_id(crypt, b)),
        false => None,
    };
    let as_v2 = built.map(|b| v2.encode_v2(&b.root, v2.files.len() as u64, v2.logical_bytes()));
    let (again, bytes, with_trees) = match as_v2 {
        Some((again, bytes)) if again == id => (again, bytes, true),
        _ => {
            let (again, bytes) = m.without_trees().encode();
            (again, bytes, false)
        }
    };
    if again != id {
        return Ok(false);
    }
    if with_trees {
        trees::store(repo, &mut v2.files)?;
    }
    repo.storage().put(&manifest::key(&id), &bytes)?;
    Ok(true)
}

fn import_manifest(repo: &Repository, hex: &str) -> Result<()> {
    let Some(id) = SnapshotId::from_hex(hex) else {
        return Ok(());
    };
    let key = manifest::key(&id);
    let m = trees::load_in(repo, &key, Some(&id))?.manifest;
    repo.catalog().add_snapshot(&id, &m, &[])
}

/// Sets or clears each snapshot's damaged mark; returns the damaged ones.
pub(crate) fn mark_damaged(repo: &Repository) -> Result<Vec<String>> {
    let cat = repo.catalog();
    let mut damaged = Vec::new();
    for s in repo.snapshots(&Default::default())? {
        let mut broken = false;
        'files: for f in cat.files(&s)? {
            for c in &f.chunks {
                if !cat.has_chunk(c)? {
                    broken = true;
                    break 'files;
                }
            }
        }
        cat.set_snapshot_damaged(&s.id, broken)?;
        if broken {
            damaged.push(crate::repo::selector::describe(&s));
        }
    }
    Ok(damaged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChunkerParams, NoProgress, RepoConfig, SnapshotOptions};

    /// A repository at `<dir>/repo` holding one snapshot (model/one) of a
    /// directory with one file `name` of `content`.
    fn one_file_repo(
        name: &str,
        content: &[u8],
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        Repository,
        crate::SnapshotReport,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join(name), content).unwrap();
        let repo =
            Repository::init(&root, RepoConfig::new(ChunkerParams::default(), 3).unwrap()).unwrap();
        let opts = SnapshotOptions {
            label: crate::SnapshotLabel::new("model", "one"),
            ..Default::default()
        };
        let snap = repo.snapshot(&[src], &opts, &NoProgress).unwrap();
        (dir, root, repo, snap)
    }

    /// Regression: a pack whose trailer is gone (truncated) lost every
    /// chunk on repair, though the catalog knows where the intact chunks
    /// before the cut are; they are now salvaged.
    #[test]
    fn a_truncated_pack_keeps_the_chunks_before_the_cut() {
        let (_dir, root, repo, _) =
            one_file_repo("a.bin", &crate::test_support::random_bytes(7, 1 << 20));
        let pack = check::pack_rows(&repo).unwrap().remove(0);
        let path = root.join(pack::key(&pack.id));
        let entries = pack::parse(&std::fs::read(&path).unwrap()).unwrap();
        let cut = entries[entries.len() / 2].offset + 1;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(cut).unwrap();

        let report = repair(&repo, &NoProgress).unwrap();
        let (_, saved, lost) = &report.packs_rewritten[0];
        assert_eq!(*saved as usize, entries.len() / 2, "{report:?}");
        assert_eq!(*lost as usize, entries.len() - entries.len() / 2);
        assert_eq!(report.damaged_snapshots.len(), 1);
    }

    /// Regression: when the damage was outside the chunk data (here a
    /// reserved header byte), every chunk is salvaged and the new pack is
    /// byte-identical to the original, with the same id; repair then deleted
    /// "the old pack" (the file it had just rewritten) and all its catalog
    /// rows, losing every chunk while reporting them salvaged.
    #[test]
    fn a_pack_salvaged_whole_is_kept() {
        let (_dir, root, repo, _) =
            one_file_repo("a.bin", &crate::test_support::random_bytes(8, 300_000));
        let pack = check::pack_rows(&repo).unwrap().remove(0);
        let path = root.join(pack::key(&pack.id));
        let original = std::fs::read(&path).unwrap();
        let mut damaged = original.clone();
        damaged[12] ^= 1;
        std::fs::write(&path, &damaged).unwrap();

        let report = repair(&repo, &NoProgress).unwrap();
        assert_eq!(report.chunks_lost, 0, "{report:?}");
        assert!(report.damaged_snapshots.is_empty(), "{report:?}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            original,
            "rewritten in place"
        );
        let after = check::check(&repo, CheckOptions::READ_ALL, &NoProgress).unwrap();
        assert!(after.is_clean(), "{:?}", after.findings);
    }

    /// A tree in a damaged pack is lost when the pack is salvaged; repair
    /// builds it again from the catalog's entries (the same bytes, so the
    /// same id), and the snapshot restores instead of being marked damaged.
    #[test]
    fn a_tree_lost_with_its_pack_is_built_again() {
        let (dir, root, repo, snap) = one_file_repo("a.txt", b"hello, trees");
        let info = repo.resolve(&snap.id.to_hex()).unwrap();
        let files = repo.catalog().files(&info).unwrap();
        let tree_id = files
            .iter()
            .find(|f| f.kind == EntryKind::Dir)
            .map(|d| d.chunks[0])
            .expect("a directory with its tree");
        let loc = repo.catalog().locate(&tree_id).unwrap().unwrap();
        let path = root.join(pack::key(&loc.pack));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[(loc.entry.offset + loc.entry.stored_len as u64 / 2) as usize] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();

        let report = repair(&repo, &NoProgress).unwrap();
        assert!(report.chunks_lost >= 1, "{report:?}");
        assert_eq!(report.trees_restored, [snap.id.to_hex()], "{report:?}");
        assert!(report.damaged_snapshots.is_empty(), "{report:?}");
        assert!(report.unresolved.is_empty(), "{report:?}");
        let after = check::check(&repo, CheckOptions::READ_ALL, &NoProgress).unwrap();
        assert!(after.is_clean(), "{:?}", after.findings);
        let out = dir.path().join("out");
        repo.restore(&info, &out, &Default::default(), &NoProgress)
            .unwrap();
        assert_eq!(
            std::fs::read(out.join(crate::test_support::stored(
                &dir.path().join("src"),
                "a.txt"
            )))
            .unwrap(),
            b"hello, trees"
        );
    }

    /// Regression: a leftover manifest that does not decode (garbage, or a
    /// path listed twice) made `repair` fail outright, so nothing else was
    /// repaired; now it is reported as unresolved and the rest proceeds.
    #[test]
    fn an_unimportable_leftover_manifest_does_not_stop_repair() {
        let (_dir, _root, repo, snap) = one_file_repo("a.txt", b"hello");
        let key = manifest::key(&snap.id);
        let mut m = trees::load_in(&repo, &key, None)
            .unwrap()
            .manifest
            .without_trees();
        m.label.name = "dup".into();
        m.files.push(m.files[1].clone());
        let (dup, bytes) = m.encode();
        repo.storage().put(&manifest::key(&dup), &bytes).unwrap();
        let garbage = SnapshotId::of(b"garbage");
        repo.storage()
            .put(&manifest::key(&garbage), b"not a manifest")
            .unwrap();
        // And something repair can do: a lost manifest of a listed snapshot.
        repo.storage().delete(&key).unwrap();

        let report = repair(&repo, &NoProgress).unwrap();
        assert_eq!(report.manifests_restored, [snap.id.to_hex()]);
        assert_eq!(report.unresolved.len(), 2, "{:?}", report.unresolved);
        for id in [dup, garbage] {
            assert!(
                report.unresolved.iter().any(|u| u.contains(&id.to_hex())),
                "{:?}",
                report.unresolved
            );
        }
    }
}
