//! Recreating the catalog from the source of truth: pack trailers and
//! snapshot manifests. Used when `catalog.db` is lost or corrupt.
//!
//! The new catalog is built beside the old one (`catalog.db.rebuild`) and
//! renamed into place only when complete; the old one, if any, is kept as
//! `catalog.db.broken-<time>` for inspection. Stat-cache inodes are not in
//! manifests, so the next snapshot of each history re-reads its files once.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::catalog::{now_ns, Catalog, FILE_NAME};
use crate::config::{self, RepoConfig};
use crate::error::{Error, IoContext, Result};
use crate::lock::Lock;
use crate::manifest::{self, Manifest};
use crate::pack;
use crate::progress::Progress;
use crate::storage::{LocalStorage, Storage};

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
    /// Where the previous catalog was moved, if there was one.
    pub old_catalog: Option<PathBuf>,
}

/// Rebuilds the catalog of the local repository at `root`.
pub fn rebuild_catalog(root: &Path, progress: &dyn Progress) -> Result<RebuildReport> {
    let storage = LocalStorage::new(root);
    match storage.get(config::KEY) {
        Ok(bytes) => RepoConfig::from_json(&bytes, &root.join(config::KEY).display().to_string())?,
        Err(Error::ObjectNotFound { .. }) => return Err(Error::RepoNotFound { path: root.into() }),
        Err(e) => return Err(e),
    };
    let _lock = Lock::exclusive(&storage, "rebuild-catalog")?;
    let fresh = root.join(format!("{FILE_NAME}.rebuild"));
    remove_db(&fresh)?;
    let mut report = RebuildReport::default();
    {
        let catalog = Catalog::open(&fresh)?;
        import_packs(&storage, &catalog, &mut report, progress)?;
        import_manifests(&storage, &catalog, &mut report)?;
    }
    let current = root.join(FILE_NAME);
    if current.exists() {
        let aside = root.join(format!("{FILE_NAME}.broken-{}", now_ns()));
        fs::rename(&current, &aside).at(&current)?;
        for suffix in ["-wal", "-shm"] {
            let side = root.join(format!("{FILE_NAME}{suffix}"));
            if side.exists() {
                fs::rename(&side, root.join(format!("{}{suffix}", aside.display()))).at(&side)?;
            }
        }
        report.old_catalog = Some(aside);
    }
    fs::rename(&fresh, &current).at(&current)?;
    fs::File::open(root).and_then(|d| d.sync_all()).at(root)?;
    Ok(report)
}

fn remove_db(path: &Path) -> Result<()> {
    for p in [
        path.to_path_buf(),
        PathBuf::from(format!("{}-wal", path.display())),
        PathBuf::from(format!("{}-shm", path.display())),
    ] {
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(p, e)),
        }
    }
    Ok(())
}

fn import_packs(
    storage: &dyn Storage,
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
        match pack::read_entries(storage, &id, obj.size) {
            Ok(entries) => {
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
    catalog: &Catalog,
    report: &mut RebuildReport,
) -> Result<()> {
    let mut manifests = Vec::new();
    for obj in storage.list("snapshots/")? {
        let decoded = manifest::id_from_key(&obj.key)
            .ok_or_else(|| Error::CorruptManifest {
                key: obj.key.clone(),
                reason: "not a manifest name".into(),
            })
            .and_then(|id| {
                Ok((
                    id,
                    Manifest::decode(&storage.get(&obj.key)?, Some(&id), &obj.key)?,
                ))
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
        catalog.add_snapshot(id, m, &[])?;
        report.snapshots += 1;
    }
    Ok(())
}
