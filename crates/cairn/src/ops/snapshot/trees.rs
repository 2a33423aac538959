//! The trees of a snapshot (manifest version 2): [`fresh`] builds them from
//! the logical file list and seals the ones the repository lacks, as
//! chunks (compressed, sealed, deduplicated through the chunk index), for
//! the snapshot's last pack, which is indexed before the manifest is put;
//! [`store`] writes them in packs of their own (for `repair`); [`load`]
//! reads a manifest of either version back into its logical file list,
//! walking the trees through the chunk index. Every reader of manifests
//! (rebuild, catch-up, repair, tag, copy, check, gc) goes through [`load`]
//! or [`TreeFetcher`].

use std::collections::{HashMap, HashSet};

use crate::blob::{self, References, SealedChunk};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::format::codec::Hint;
use crate::format::id::{ChunkId, SnapshotId};
use crate::format::manifest::{EntryKind, FileEntry, Manifest, Stored};
use crate::format::seal::Crypt;
use crate::format::tree;
use crate::repo::repository::Repository;
use crate::storage::Storage;

/// Trees waiting for one catalog lookup of which the repository lacks:
/// at most this many, or this many bytes of encoding.
const LOOKUP_TREES: usize = 1024;
const LOOKUP_BYTES: usize = 4 << 20;

/// Builds the trees of `files` (setting each directory's `chunks` to its
/// tree) and hands those the repository lacks to `add`, sealed as chunks
/// (compressed, sealed, named by the chunk-id function), children before
/// parents, a batch at a time as they are built: the trees of a snapshot
/// are as large as its file list, so they are never all held. The root's
/// id; `None` when a directory is too large for one tree (the directories
/// are left without chunks and the caller writes a version-1 manifest;
/// trees added before that are referenced by nothing, and gc reclaims
/// them).
pub(crate) fn fresh(
    repo: &Repository,
    files: &mut [FileEntry],
    level: i32,
    add: &mut dyn FnMut(SealedChunk) -> Result<()>,
) -> Result<Option<ChunkId>> {
    let crypt = repo.crypt();
    let mut flush = |pending: &mut Vec<(ChunkId, Vec<u8>)>| -> Result<()> {
        let ids: Vec<ChunkId> = pending.iter().map(|(id, _)| *id).collect();
        let known = repo.catalog().existing(&ids)?;
        for (id, bytes) in pending.drain(..) {
            if !known.contains(&id) {
                add(blob::seal_chunk(crypt, &bytes, level, Hint::Bytes))?;
            }
        }
        Ok(())
    };
    let (mut pending, mut pending_bytes) = (Vec::new(), 0);
    let root = tree::build_each(files, &|b| blob::chunk_id(crypt, b), &mut |id, bytes| {
        pending_bytes += bytes.len();
        pending.push((id, bytes));
        if pending.len() >= LOOKUP_TREES || pending_bytes >= LOOKUP_BYTES {
            pending_bytes = 0;
            flush(&mut pending)?;
        }
        Ok(())
    })?;
    let Some(root) = root else {
        files
            .iter_mut()
            .filter(|f| f.kind == EntryKind::Dir)
            .for_each(|f| f.chunks.clear());
        // A version-1 manifest cannot hold them: the catalog must not
        // either (a rebuild from the manifest would lose them).
        files.iter_mut().for_each(|f| {
            (f.owner, f.hardlink, f.rdev, f.incomplete) = (None, None, 0, false);
        });
        return Ok(None);
    };
    flush(&mut pending)?;
    Ok(Some(root))
}

/// [`fresh`], and the new trees made durable and indexed in packs of their
/// own (`repair`, re-creating a manifest from the catalog). The root's id.
pub(crate) fn store(repo: &Repository, files: &mut [FileEntry]) -> Result<Option<ChunkId>> {
    let level = repo.config().compression;
    let mut pack = repo.pack_writer();
    let root = fresh(repo, files, level, &mut |sealed| {
        if !pack.has_room(sealed.stored.len()) {
            write(repo, std::mem::replace(&mut pack, repo.pack_writer()))?;
        }
        pack.add(sealed.id, sealed.codec, sealed.raw_len, &sealed.stored);
        if pack.is_full() {
            write(repo, std::mem::replace(&mut pack, repo.pack_writer()))?;
        }
        Ok(())
    })?;
    write(repo, pack)?;
    Ok(root)
}

fn write(repo: &Repository, pack: crate::format::pack::PackWriter) -> Result<()> {
    if pack.is_empty() {
        return Ok(());
    }
    let sealed = pack.finish();
    super::write_pack(repo.storage(), repo.crypt(), repo.catalog(), sealed, false).map(drop)
}

/// Reads trees through the chunk index (trees are never delta chunks, so
/// no references are needed). A directory's subtrees, when the walk says
/// they come next ([`tree::Fetch::prefetch`]), are read in one
/// [`blob::read_chunks`] (one batch of ranged reads, mostly one run of
/// the pack that holds a snapshot's trees) instead of one request per
/// directory, which bound a snapshot's load on object storage (#13).
pub(crate) struct TreeFetcher<'a> {
    storage: &'a dyn Storage,
    crypt: &'a Crypt,
    catalog: &'a Catalog,
    refs: References<'a>,
    /// Trees read ahead and not yet fetched; each leaves when fetched, so
    /// this holds at most the subtrees of the directories on the path
    /// being walked.
    ahead: HashMap<ChunkId, Vec<u8>>,
}

impl<'a> TreeFetcher<'a> {
    pub(crate) fn new(storage: &'a dyn Storage, crypt: &'a Crypt, catalog: &'a Catalog) -> Self {
        Self {
            storage,
            crypt,
            catalog,
            refs: References::none(),
            ahead: HashMap::new(),
        }
    }
}

impl tree::Fetch for TreeFetcher<'_> {
    fn fetch(&mut self, id: &ChunkId) -> Result<Vec<u8>> {
        if let Some(bytes) = self.ahead.remove(id) {
            return Ok(bytes);
        }
        let loc = self
            .catalog
            .locate(id)?
            .ok_or(Error::ChunkMissing { chunk: *id })?;
        blob::read_chunk(self.storage, self.crypt, &self.refs, &loc)
    }

    /// Locates the trees not read ahead yet and reads them in pack order,
    /// so adjacent ones share a range request. Any failure (a tree not
    /// indexed, a damaged one) leaves them all to be fetched one by one,
    /// where it is reported against its directory.
    fn prefetch(&mut self, ids: &[ChunkId]) {
        let wanted: Vec<ChunkId> = ids
            .iter()
            .filter(|id| !self.ahead.contains_key(id))
            .copied()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if wanted.len() < 2 {
            return;
        }
        let Ok(mut locs) = self.catalog.locate_all(&wanted) else {
            return;
        };
        locs.sort_unstable_by_key(|l| (l.pack, l.entry.offset));
        if let Ok(trees) = blob::read_chunks(self.storage, self.crypt, &self.refs, &locs) {
            let ids = locs.iter().map(|l| l.entry.chunk);
            self.ahead.extend(ids.zip(trees));
        }
    }
}

/// Reads the manifest at `key` (checked against `expected`) with its
/// files: a version-2 manifest's from its trees, which must add up to the
/// totals its body records.
pub(crate) fn load(
    storage: &dyn Storage,
    crypt: &Crypt,
    catalog: &Catalog,
    key: &str,
    expected: Option<&SnapshotId>,
) -> Result<Stored> {
    let bytes = storage.get(key)?;
    let mut stored = Manifest::decode_stored(&bytes, expected, key)?;
    expand(storage, crypt, catalog, &mut stored, key)?;
    Ok(stored)
}

/// Fills a decoded version-2 manifest's `files` from its trees (a
/// version-1 one is left as it is).
pub(crate) fn expand(
    storage: &dyn Storage,
    crypt: &Crypt,
    catalog: &Catalog,
    stored: &mut Stored,
    key: &str,
) -> Result<()> {
    if let Some(root) = stored.root {
        let mut fetch = TreeFetcher::new(storage, crypt, catalog);
        stored.manifest.files = tree::expand(&root, &mut fetch, key)?;
        Manifest::check_expanded(stored, key)?;
    }
    Ok(())
}

/// [`load`] through a repository.
pub(crate) fn load_in(
    repo: &Repository,
    key: &str,
    expected: Option<&SnapshotId>,
) -> Result<Stored> {
    load(repo.storage(), repo.crypt(), repo.catalog(), key, expected)
}

/// [`load_in`] for a reader that needs each entry once, not the list: a
/// version-2 manifest's entries are passed to `each` in tree order as its
/// trees are read (never all held) and its totals are checked; a
/// version-1 manifest's list is passed entry by entry. Unlike [`load`],
/// paths are not checked to be unique: `each` sees every entry and can
/// tell. The manifest comes back without its `files`.
pub(crate) fn load_each(
    repo: &Repository,
    key: &str,
    expected: Option<&SnapshotId>,
    each: &mut dyn FnMut(FileEntry) -> Result<()>,
) -> Result<Stored> {
    let bytes = repo.storage().get(key)?;
    let mut stored = Manifest::decode_stored(&bytes, expected, key)?;
    match stored.root {
        Some(root) => {
            let mut fetch = TreeFetcher::new(repo.storage(), repo.crypt(), repo.catalog());
            let (mut entries, mut logical) = (0u64, 0u64);
            tree::expand_each(&root, &mut fetch, key, &mut |f| {
                entries += 1;
                logical += f.size;
                each(f)
            })?;
            Manifest::check_totals(&stored, entries, logical, key)?;
        }
        None => std::mem::take(&mut stored.manifest.files)
            .into_iter()
            .try_for_each(each)?,
    }
    Ok(stored)
}

/// The trees and chunks a version-2 manifest reaches that are not under a
/// tree in `visited` (gc's mark), passed to `mark` batch by batch.
pub(crate) fn mark_reachable(
    repo: &Repository,
    root: &ChunkId,
    key: &str,
    visited: &mut HashSet<ChunkId>,
    mark: &mut dyn FnMut(&[ChunkId]) -> Result<()>,
) -> Result<()> {
    let mut fetch = TreeFetcher::new(repo.storage(), repo.crypt(), repo.catalog());
    tree::visit(root, &mut fetch, key, visited, mark)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::format::manifest;
    use crate::storage::{MemoryStorage, ObjectInfo, PutMode};
    use crate::{CatalogLocation, ChunkerParams, NoProgress, RepoConfig, SnapshotLabel};

    /// Counts reads as a backend with requests in flight would pay for
    /// them, in round trips: one per `get_range`, and one per
    /// `get_ranges` batch however many ranges it holds.
    struct Counting {
        inner: MemoryStorage,
        round_trips: AtomicU64,
    }

    impl Counting {
        fn take(&self) -> u64 {
            self.round_trips.swap(0, Ordering::SeqCst)
        }
        fn count(&self) {
            self.round_trips.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Storage for Counting {
        fn put_with(&self, key: &str, data: &[u8], mode: PutMode) -> Result<()> {
            self.inner.put_with(key, data, mode)
        }
        fn get(&self, key: &str) -> Result<Vec<u8>> {
            self.count();
            self.inner.get(key)
        }
        fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
            self.count();
            self.inner.get_range(key, offset, len)
        }
        fn get_ranges(&self, ranges: &[(&str, u64, u64)]) -> Result<Vec<Vec<u8>>> {
            self.count();
            self.inner.get_ranges(ranges)
        }
        fn head(&self, key: &str) -> Result<u64> {
            self.count();
            self.inner.head(key)
        }
        fn list_each(
            &self,
            prefix: &str,
            visit: &mut dyn FnMut(ObjectInfo) -> Result<()>,
        ) -> Result<()> {
            self.inner.list_each(prefix, visit)
        }
        fn delete(&self, key: &str) -> Result<()> {
            self.inner.delete(key)
        }
        fn location(&self) -> String {
            self.inner.location()
        }
    }

    /// A snapshot of 40 directories of one file each: loading its file
    /// list reads the 40 sibling trees in one batch, not one request each.
    #[test]
    fn a_directorys_subtrees_are_read_in_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        for i in 0..40u64 {
            let sub = src.join(format!("d{i:02}"));
            std::fs::create_dir_all(&sub).unwrap();
            let data = crate::test_support::random_bytes(i, 1000);
            std::fs::write(sub.join("f"), data).unwrap();
        }
        let counting = Arc::new(Counting {
            inner: MemoryStorage::new(),
            round_trips: AtomicU64::new(0),
        });
        let config = RepoConfig::new(ChunkerParams::default(), 3).unwrap();
        let cache = CatalogLocation::cache_dir(dir.path().join("cache"));
        let repo = Repository::init_with(counting.clone(), cache, config).unwrap();
        let opts = crate::SnapshotOptions {
            label: SnapshotLabel::new("dir", "d"),
            ..Default::default()
        };
        let id = repo.snapshot(&[src], &opts, &NoProgress).unwrap().id;
        let key = manifest::key(&id);
        let files = |stored: &Stored| {
            let f = &stored.manifest.files;
            f.iter().filter(|e| e.kind == EntryKind::File).count()
        };

        // One request per tree, as every reader paid before #13: the
        // manifest, then the root, the source's ancestors (tmp/.tmpXXX,
        // each one tree), the source and its 40 directories.
        counting.take();
        let bytes = counting.get(&key).unwrap();
        let mut one_by_one = Manifest::decode_stored(&bytes, Some(&id), &key).unwrap();
        let root = one_by_one.root.expect("a version-2 manifest");
        let mut fetch = |id: &ChunkId| {
            let loc = repo.catalog().locate(id)?.expect("indexed");
            blob::read_chunk(repo.storage(), repo.crypt(), &References::none(), &loc)
        };
        one_by_one.manifest.files = tree::expand(&root, &mut fetch, &key).unwrap();
        let sequential = counting.take();
        assert_eq!(files(&one_by_one), 40);
        let trees = one_by_one
            .manifest
            .files
            .iter()
            .filter(|e| e.kind == EntryKind::Dir)
            .count() as u64
            + 1;
        assert_eq!(sequential, 1 + trees, "the manifest and each tree");

        // With read-ahead: the manifest, then the root, `tmp`, the temp
        // dir and the source one at a time (a lone subtree is not
        // batched), then the 40 siblings in one batch: 6 round trips
        // measured (45 one by one); the bound leaves room for a deeper
        // temp dir.
        let loaded = load_in(&repo, &key, Some(&id)).unwrap();
        let batched = counting.take();
        assert_eq!(loaded.manifest.files, one_by_one.manifest.files);
        assert_eq!(files(&loaded), 40);
        eprintln!("{trees} trees: {sequential} round trips one by one, {batched} with read-ahead");
        assert!(batched <= 8, "{batched} round trips for {trees} trees");
    }
}
