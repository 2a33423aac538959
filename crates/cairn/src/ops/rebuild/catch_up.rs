//! Catching a cached catalog up with storage that other clients changed,
//! reading only what is new: the cheap path of opening a remote repository.
//!
//! Two listings (`snapshots/`, then `packs/`: a manifest is written after
//! its packs, so every pack a listed manifest needs is in the later
//! listing) are compared with the catalog. Snapshot rows whose manifest is
//! gone, or that a forget intent names, are dropped; new packs are read
//! (their trailers only) and added; then new manifests are added, oldest
//! first. A pack that is gone (a gc ran) is not handled here: a chunk's
//! other copies in surviving packs are not in the catalog, so dropping its
//! rows could lose chunks still needed; the caller rebuilds instead. So
//! does it when anything new cannot be read. No repository lock is
//! taken: only the local cache is written.

use crate::format::seal::Crypt;
use std::collections::{HashMap, HashSet};

use crate::catalog::location::CatalogFile;
use crate::catalog::SnapshotFilter;
use crate::error::Result;
use crate::format::id::{PackId, SnapshotId};
use crate::format::manifest;
use crate::format::pack;
use crate::ops::forget;
use crate::storage::Storage;

/// What catching up did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatchUp {
    pub snapshots_added: u64,
    pub snapshots_dropped: u64,
    pub packs_added: u64,
    /// The catalog could not be caught up (a pack is gone, or something
    /// new is unreadable): rebuild it.
    pub needs_rebuild: bool,
}

/// Brings the catalog in `file` up to date with `storage` (see the module
/// doc); a catalog already up to date costs the two listings and nothing
/// else.
pub fn catch_up(storage: &dyn Storage, crypt: &Crypt, file: &CatalogFile) -> Result<CatchUp> {
    let mut done = CatchUp::default();
    let stored_snaps: HashMap<SnapshotId, String> = storage
        .list(manifest::PREFIX)?
        .into_iter()
        .filter_map(|o| manifest::id_from_key(&o.key).map(|id| (id, o.key)))
        .collect();
    let stored_packs: HashMap<PackId, u64> = storage
        .list(pack::PREFIX)?
        .into_iter()
        .filter_map(|o| pack::id_from_key(&o.key).map(|id| (id, o.size)))
        .collect();
    let forgotten = forget::named_by(&forget::load_intents(storage)?);

    // Read-only until there is something to write, so an up-to-date cache
    // opens on a full disk too.
    let (listed, known_packs) = {
        let catalog = file.open_read_only()?;
        let listed: HashSet<SnapshotId> = catalog
            .snapshots(&SnapshotFilter::default())?
            .into_iter()
            .map(|s| s.id)
            .collect();
        let packs: HashSet<PackId> = catalog.pack_rows()?.into_iter().map(|p| p.id).collect();
        (listed, packs)
    };
    if known_packs.iter().any(|p| !stored_packs.contains_key(p)) {
        done.needs_rebuild = true;
        return Ok(done);
    }
    let up_to_date = known_packs.len() == stored_packs.len()
        && listed.len() == stored_snaps.len()
        && listed
            .iter()
            .all(|id| stored_snaps.contains_key(id) && !forgotten.contains(id));
    if up_to_date {
        return Ok(done);
    }
    let catalog = file.open()?;

    let gone: Vec<&SnapshotId> = listed
        .iter()
        .filter(|id| !stored_snaps.contains_key(id) || forgotten.contains(id))
        .collect();
    if !gone.is_empty() {
        catalog.remove_snapshots(gone.iter().copied())?;
        done.snapshots_dropped = gone.len() as u64;
    }
    for (id, size) in &stored_packs {
        if known_packs.contains(id) {
            continue;
        }
        let Ok(entries) = pack::read_entries(storage, crypt, id, *size) else {
            done.needs_rebuild = true;
            return Ok(done);
        };
        crate::ops::snapshot::delta::index_references(
            storage, crypt, &catalog, id, &entries, None,
        )?;
        catalog.add_pack(id, *size, &entries)?;
        done.packs_added += 1;
    }
    let mut new = Vec::new();
    for (id, key) in &stored_snaps {
        if listed.contains(id) || forgotten.contains(id) {
            continue;
        }
        match crate::ops::snapshot::trees::load(storage, crypt, &catalog, key, Some(id)) {
            Ok(stored) => new.push((*id, stored.manifest)),
            Err(_) => {
                done.needs_rebuild = true;
                return Ok(done);
            }
        }
    }
    new.sort_by_key(|(id, m)| (m.time_ns, *id));
    for (id, m) in &new {
        catalog.add_snapshot(id, m, &[])?;
        done.snapshots_added += 1;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::catalog::location::CatalogLocation;
    use crate::ops::{forget, gc};
    use crate::storage::MemoryStorage;
    use crate::test_support::random_bytes;
    use crate::{
        ChunkerParams, NoProgress, RepoConfig, RepoStorage, Repository, SnapshotLabel,
        SnapshotOptions,
    };

    /// Client B's cache follows what client A does, reading only what is
    /// new; only a gc (packs gone) sends it to a full rebuild.
    #[test]
    fn a_cache_catches_up_with_new_and_forgotten_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let cache_a = CatalogLocation::cache_dir(dir.path().join("a"));
        let cache_b = CatalogLocation::cache_dir(dir.path().join("b"));
        let config = RepoConfig::new(ChunkerParams::with_average(4096), 0).unwrap();
        let a = Repository::init_with(storage.clone(), cache_a, config).unwrap();
        let snap = |name: &str, seed: u64| {
            let src = dir.path().join(name);
            std::fs::create_dir_all(&src).unwrap();
            std::fs::write(src.join("f"), random_bytes(seed, 50_000)).unwrap();
            let opts = SnapshotOptions {
                label: SnapshotLabel::new("model", name),
                ..Default::default()
            };
            a.snapshot(&[src], &opts, &NoProgress).unwrap();
        };
        snap("one", 1);
        let b_file = RepoStorage::open(storage.clone(), cache_b.clone())
            .unwrap()
            .catalog_file();
        drop(Repository::open_with(storage.clone(), cache_b.clone()).unwrap());
        let catch = || catch_up(storage.as_ref(), &Crypt::plain(), &b_file).unwrap();
        assert_eq!(catch(), CatchUp::default(), "up to date: nothing read");

        snap("two", 2);
        snap("three", 3);
        let done = catch();
        assert_eq!((done.snapshots_added, done.packs_added), (2, 2));
        assert!(!done.needs_rebuild);

        let plan = forget::plan_delete(&a, &["model/two".to_string()]).unwrap();
        forget::execute(&a, &plan).unwrap();
        drop(plan);
        let done = catch();
        assert_eq!((done.snapshots_dropped, done.needs_rebuild), (1, false));
        let b = Repository::open_with(storage.clone(), cache_b.clone()).unwrap();
        let names: Vec<String> = b
            .snapshots(&SnapshotFilter::default())
            .unwrap()
            .into_iter()
            .map(|s| s.label.name)
            .collect();
        assert_eq!(names, ["one", "three"]);
        drop(b);

        let plan = gc::plan(&a, 0.0).unwrap();
        gc::execute(&a, &plan, &NoProgress).unwrap();
        drop(plan);
        assert!(catch().needs_rebuild, "a pack is gone");
        let b = Repository::open_with(storage.clone(), cache_b).unwrap();
        assert_eq!(b.snapshots(&SnapshotFilter::default()).unwrap().len(), 2);
        assert_eq!(catch(), CatchUp::default(), "rebuilt: up to date again");
    }
}
