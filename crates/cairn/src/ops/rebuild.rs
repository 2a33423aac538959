//! Recreating the catalog from the source of truth: pack trailers and
//! snapshot manifests, read through [`Storage`] alone. Used when the
//! catalog is lost or corrupt, and by opening a repository whose cached
//! catalog is missing.
//!
//! The new catalog replaces the old one only when complete; the old one, if
//! any, is kept aside for inspection (the file work is in
//! [`crate::catalog::location`]). Stat-cache inodes are not in manifests:
//! they are carried over from the previous catalog when it can be read
//! ([`StatCache`]), so the next snapshot of unchanged files reads nothing;
//! a snapshot whose stat cache is lost has its files re-read once by the
//! next snapshot of its history.
//!
//! Manifests that a forget intent names are not imported: an interrupted
//! forget was removing them (docs/FORMAT.md, "Forgetting a snapshot"). The
//! rebuild finishes such forgets: it deletes those manifests before the
//! import and the intents once the new catalog is in place, so a crash in
//! between leaves the intents to finish the job.

pub mod catch_up;

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Serialize;

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::format::id::SnapshotId;
use crate::format::manifest;
use crate::format::pack;
use crate::ops::forget;
use crate::ops::snapshot::trees;
use crate::progress::Progress;
use crate::repo::lock::Lock;
use crate::repo::repository::RepoStorage;
use crate::storage::Storage;

/// An object that could not be read back into the catalog.
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    pub key: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RebuildReport {
    pub packs: u64,
    pub chunks: u64,
    pub snapshots: u64,
    pub unreadable: Vec<Unreadable>,
    /// Snapshots of interrupted forgets, not imported and now removed.
    pub forgets_finished: Vec<String>,
    /// Where the previous catalog was moved, if there was one.
    pub old_catalog: Option<PathBuf>,
    /// What became of the stat cache.
    pub stat_cache: StatCache,
}

/// The stat cache through a rebuild: the inodes of the previous catalog's
/// entries, carried over to the new one per snapshot.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatCache {
    /// Snapshots whose stat cache was carried over.
    pub kept: u64,
    /// Snapshots imported without it (the previous catalog did not list
    /// them, or could not be read): the next snapshot of each of their
    /// histories reads its files again, once.
    pub lost: u64,
    /// Why the previous catalog could not be read; `None` when it was, or
    /// when there was none.
    pub error: Option<String>,
}

/// The previous catalog, read for its stat cache while the new one fills.
struct PreviousCatalog(Option<Catalog>);

impl PreviousCatalog {
    fn open(repo: &RepoStorage, stat: &mut StatCache) -> Self {
        let file = repo.catalog_file();
        if !file.exists() {
            return Self(None);
        }
        match file.open_read_only() {
            Ok(c) => Self(Some(c)),
            Err(e) => {
                stat.error = Some(e.to_string());
                Self(None)
            }
        }
    }

    /// The inodes for snapshot `id`'s `files`, empty (all lost) when the
    /// previous catalog cannot say.
    fn inodes(
        &self,
        id: &SnapshotId,
        files: &[manifest::FileEntry],
        stat: &mut StatCache,
    ) -> Vec<u64> {
        let found = match &self.0 {
            Some(c) => c.stat_inodes(id, files),
            None => Ok(None),
        };
        match found {
            Ok(Some(inodes)) => {
                stat.kept += 1;
                inodes
            }
            Ok(None) => {
                stat.lost += 1;
                Vec::new()
            }
            Err(e) => {
                stat.lost += 1;
                stat.error.get_or_insert_with(|| e.to_string());
                Vec::new()
            }
        }
    }
}

/// Rebuilds the catalog of `repo` where its opener put it, under the
/// exclusive lock.
pub fn rebuild_catalog(repo: &RepoStorage, progress: &dyn Progress) -> Result<RebuildReport> {
    let storage = repo.storage();
    let _lock = Lock::exclusive(repo.shared_storage(), "rebuild-catalog")?;
    let mut report = RebuildReport::default();
    // An unreadable intent stops the rebuild: importing manifests it may
    // name would resurrect snapshots a forget removed.
    let intents = forget::load_intents(storage)?;
    let forgotten = forget::named_by(&intents);
    forget::delete_manifests(storage, &forgotten)?;
    let old = refill(repo, &mut report, &forgotten, progress)?;
    for intent in &intents {
        storage.delete(&intent.key)?;
    }
    let mut forgotten: Vec<SnapshotId> = forgotten.into_iter().collect();
    forgotten.sort();
    report.forgets_finished = forgotten.iter().map(SnapshotId::to_hex).collect();
    report.old_catalog = old;
    Ok(report)
}

/// Rebuilds a cached catalog (a remote repository's, on open) where its
/// opener put it. Unlike [`rebuild_catalog`] it changes nothing in storage
/// (manifests an interrupted forget names are left out, not deleted: that
/// forget's own host finishes it), so it needs only a shared lock: other
/// hosts keep snapshotting meanwhile, and no gc deletes a pack under it.
pub(crate) fn rebuild_cache(repo: &RepoStorage) -> Result<()> {
    let storage = repo.storage();
    let _lock = Lock::shared(repo.shared_storage(), "catalog cache rebuild")?;
    let forgotten = forget::named_by(&forget::load_intents(storage)?);
    // A stale cache keeps its stat cache too.
    let mut report = RebuildReport::default();
    refill(repo, &mut report, &forgotten, &crate::progress::NoProgress)?;
    Ok(())
}

/// Replaces the catalog with one filled from the packs and the manifests
/// (but those `forgotten` names), keeping the stat cache of the catalog it
/// replaces; the path the old catalog was set aside under, if any.
fn refill(
    repo: &RepoStorage,
    report: &mut RebuildReport,
    forgotten: &HashSet<SnapshotId>,
    progress: &dyn Progress,
) -> Result<Option<PathBuf>> {
    let storage = repo.storage();
    let previous = PreviousCatalog::open(repo, &mut report.stat_cache);
    repo.catalog_file().replace(|catalog| {
        import_packs(storage, repo.crypt(), catalog, report, progress)?;
        // Closed before the previous catalog's file is moved aside.
        let previous = previous;
        import_manifests(storage, repo.crypt(), catalog, report, forgotten, &previous)
    })
}

fn import_packs(
    storage: &dyn Storage,
    crypt: &crate::format::seal::Crypt,
    catalog: &Catalog,
    report: &mut RebuildReport,
    progress: &dyn Progress,
) -> Result<()> {
    let packs = storage.list("packs/")?;
    progress.start("rebuild", packs.len() as u64);
    for obj in packs {
        progress.advance(1);
        let Some(id) = pack::id_from_key(&obj.key) else {
            report.unreadable.push(Unreadable {
                key: obj.key,
                error: "not a pack name".into(),
            });
            continue;
        };
        match pack::read_entries(storage, crypt, &id, obj.size) {
            Ok(entries) => {
                crate::ops::snapshot::delta::index_references(
                    storage, crypt, catalog, &id, &entries, None,
                )?;
                catalog.add_pack(&id, obj.size, &entries)?;
                report.packs += 1;
                report.chunks += entries.len() as u64;
            }
            Err(e) => report.unreadable.push(Unreadable {
                key: obj.key,
                error: e.to_string(),
            }),
        }
    }
    progress.finish();
    Ok(())
}

fn import_manifests(
    storage: &dyn Storage,
    crypt: &crate::format::seal::Crypt,
    catalog: &Catalog,
    report: &mut RebuildReport,
    forgotten: &HashSet<SnapshotId>,
    previous: &PreviousCatalog,
) -> Result<()> {
    let mut manifests = Vec::new();
    for obj in storage.list("snapshots/")? {
        if manifest::id_from_key(&obj.key).is_some_and(|id| forgotten.contains(&id)) {
            continue;
        }
        let decoded = manifest::id_from_key(&obj.key)
            .ok_or_else(|| Error::CorruptManifest {
                key: obj.key.clone(),
                reason: "not a manifest name".into(),
            })
            .and_then(|id| {
                // The packs are indexed first, so a version-2 manifest's
                // trees are found through the new chunk index.
                let stored = trees::load(storage, crypt, catalog, &obj.key, Some(&id))?;
                Ok((id, stored.manifest))
            });
        match decoded {
            Ok(m) => manifests.push(m),
            Err(e) => report.unreadable.push(Unreadable {
                key: obj.key,
                error: e.to_string(),
            }),
        }
    }
    manifests.sort_by_key(|(id, m)| (m.time_ns, *id));
    for (id, m) in &manifests {
        let inodes = previous.inodes(id, &m.files, &mut report.stat_cache);
        catalog.add_snapshot(id, m, &inodes)?;
        report.snapshots += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::catalog::FILE_NAME;
    use crate::{ChunkerParams, NoProgress, RepoConfig, Repository, SnapshotOptions};

    /// Regression: a catalog deleted after a crash leaves its WAL behind;
    /// the rebuilt catalog was renamed into place beside it, and SQLite
    /// replayed the stale WAL into it (here: a renamed snapshot came back).
    #[test]
    fn an_orphaned_wal_is_moved_aside_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("a.txt"), b"hello").unwrap();
        {
            let repo =
                Repository::init(&root, RepoConfig::new(ChunkerParams::default(), 3).unwrap())
                    .unwrap();
            let opts = SnapshotOptions {
                label: crate::SnapshotLabel::new("model", "one"),
                ..Default::default()
            };
            repo.snapshot(&[src], &opts, &NoProgress).unwrap();
        }
        let db = root.join(FILE_NAME);
        let wal = root.join(format!("{FILE_NAME}-wal"));
        {
            // A writer whose WAL frames were never checkpointed, as a killed
            // process leaves them.
            let catalog = Catalog::open(&db).unwrap();
            catalog.rename_snapshots_uncheckpointed("stale").unwrap();
            let saved = fs::read(&wal).unwrap();
            drop(catalog);
            fs::remove_file(&db).unwrap();
            fs::write(&wal, saved).unwrap();
        }
        let report =
            rebuild_catalog(&Repository::open_storage(&root).unwrap(), &NoProgress).unwrap();
        assert_eq!(report.snapshots, 1);
        let names: Vec<String> = Repository::open(&root)
            .unwrap()
            .snapshots(&Default::default())
            .unwrap()
            .into_iter()
            .map(|s| s.label.name)
            .collect();
        assert_eq!(names, ["one"], "nothing of the stale WAL is replayed");
        let kept = fs::read_dir(&root).unwrap().any(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.starts_with("catalog.db.broken-") && name.ends_with("-wal")
        });
        assert!(kept, "the orphaned WAL is kept aside for inspection");
    }
}
