//! The trees of a snapshot (manifest version 2): [`fresh`] builds them from
//! the logical file list and seals the ones the repository lacks, as
//! chunks (compressed, sealed, deduplicated through the chunk index), for
//! the snapshot's last pack, which is indexed before the manifest is put;
//! [`store`] writes them in packs of their own (for `repair`); [`load`]
//! reads a manifest of either version back into its logical file list,
//! walking the trees through the chunk index. Every reader of manifests
//! (rebuild, catch-up, repair, tag, copy, check, gc) goes through [`load`]
//! or [`fetcher`].

use std::collections::HashSet;

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

/// Builds the trees of `files` (setting each directory's `chunks` to its
/// tree) and seals those neither in the repository nor in `stored` (this
/// run's packs in flight). The root's id and the sealed trees; `None` when a
/// directory is too large for one tree (the directories are left without
/// chunks and the caller writes a version-1 manifest).
pub(crate) fn fresh(
    repo: &Repository,
    files: &mut [FileEntry],
    stored: &HashSet<ChunkId>,
    level: i32,
) -> Result<Option<(ChunkId, Vec<SealedChunk>)>> {
    let crypt = repo.crypt();
    let Some(built) = tree::build(files, &|b| blob::chunk_id(crypt, b)) else {
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
    let ids: Vec<ChunkId> = built.trees.iter().map(|(id, _)| *id).collect();
    let known = repo.catalog().existing(&ids)?;
    let sealed = built
        .trees
        .iter()
        .filter(|(id, _)| !known.contains(id) && !stored.contains(id))
        .map(|(_, bytes)| blob::seal_chunk(crypt, bytes, level, Hint::Bytes))
        .collect();
    Ok(Some((built.root, sealed)))
}

/// [`fresh`], and the new trees made durable and indexed in packs of their
/// own (`repair`, re-creating a manifest from the catalog). The root's id.
pub(crate) fn store(repo: &Repository, files: &mut [FileEntry]) -> Result<Option<ChunkId>> {
    let level = repo.config().compression;
    let Some((root, fresh)) = fresh(repo, files, &HashSet::new(), level)? else {
        return Ok(None);
    };
    let mut pack = repo.pack_writer();
    for sealed in fresh {
        pack.add(sealed.id, sealed.codec, sealed.raw_len, &sealed.stored);
        if pack.is_full() {
            let full = std::mem::replace(&mut pack, repo.pack_writer());
            write(repo, full)?;
        }
    }
    write(repo, pack)?;
    Ok(Some(root))
}

fn write(repo: &Repository, pack: crate::format::pack::PackWriter) -> Result<()> {
    if pack.is_empty() {
        return Ok(());
    }
    let sealed = pack.finish();
    super::write_pack(repo.storage(), repo.crypt(), repo.catalog(), &sealed, false)
}

/// Reads one tree's bytes through the chunk index (trees are never delta
/// chunks, so no references are needed).
pub(crate) fn fetcher<'a>(
    storage: &'a dyn Storage,
    crypt: &'a Crypt,
    catalog: &'a Catalog,
) -> impl FnMut(&ChunkId) -> Result<Vec<u8>> + 'a {
    let refs = References::none();
    move |id: &ChunkId| {
        let loc = catalog
            .locate(id)?
            .ok_or(Error::ChunkMissing { chunk: *id })?;
        blob::read_chunk(storage, crypt, &refs, &loc)
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
        let mut fetch = fetcher(storage, crypt, catalog);
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

/// The trees and chunks a version-2 manifest reaches that are not under a
/// tree in `visited` (gc's mark), passed to `mark` batch by batch.
pub(crate) fn mark_reachable(
    repo: &Repository,
    root: &ChunkId,
    key: &str,
    visited: &mut HashSet<ChunkId>,
    mark: &mut dyn FnMut(&[ChunkId]) -> Result<()>,
) -> Result<()> {
    let mut fetch = fetcher(repo.storage(), repo.crypt(), repo.catalog());
    tree::visit(root, &mut fetch, key, visited, mark)
}
