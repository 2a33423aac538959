//! `Repository`: the facade a user of the library holds. It ties the object
//! storage, the repository config and the catalog together.
//!
//! Layout of a local repository (docs/FORMAT.md):
//! `config`, `catalog.db`, `packs/<xx>/<id>.pack`, `snapshots/<id>.snap`.
//! Every object goes through [`Storage`]; only the catalog is a file, put
//! where a [`CatalogLocation`] says. `init`/`open` take a directory;
//! `init_with`/`open_with` take any storage and catalog location.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use crate::catalog::location::{CatalogFile, CatalogLocation};
use crate::catalog::{Catalog, ChunkLocation, SnapshotFilter, SnapshotInfo};
use crate::codec;
use crate::config::{self, RepoConfig};
use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::pack;
use crate::progress::Progress;
use crate::selector;
use crate::snapshot::{self, SnapshotOptions, SnapshotReport};
use crate::storage::{LocalStorage, PutMode, Storage};

/// An open repository.
pub struct Repository {
    root: PathBuf,
    storage: Arc<dyn Storage>,
    config: RepoConfig,
    id: String,
    catalog: Catalog,
}

impl Repository {
    /// Creates a repository in the local directory `path`, which must not
    /// exist or be empty; its catalog is `path/catalog.db`.
    pub fn init(path: &Path, config: RepoConfig) -> Result<Self> {
        if LocalStorage::new(path).head(config::KEY).is_ok() {
            return Err(Error::RepoExists { path: path.into() });
        }
        let storage = Arc::new(LocalStorage::create(path)?);
        Self::init_at(
            path.to_path_buf(),
            storage,
            CatalogLocation::in_repository(path),
            config,
        )
    }

    /// Creates a repository in `storage`, which must hold no config yet,
    /// with its catalog where `catalog` says.
    pub fn init_with(
        storage: Arc<dyn Storage>,
        catalog: CatalogLocation,
        config: RepoConfig,
    ) -> Result<Self> {
        Self::init_at(PathBuf::from(storage.location()), storage, catalog, config)
    }

    fn init_at(
        root: PathBuf,
        storage: Arc<dyn Storage>,
        catalog: CatalogLocation,
        config: RepoConfig,
    ) -> Result<Self> {
        if storage.head(config::KEY).is_ok() {
            return Err(Error::RepoExists { path: root });
        }
        let bytes = config.to_json();
        let id = repository_id(&config, &bytes);
        // The catalog first, the config last: storage with a config is a
        // complete repository. Created exclusively, so of two racing inits
        // one fails rather than both believing they made it.
        let catalog = catalog.file(&id).create()?;
        match storage.put_with(config::KEY, &bytes, PutMode::CreateNew) {
            Err(Error::ObjectExists { .. }) => return Err(Error::RepoExists { path: root }),
            other => other?,
        }
        Ok(Self {
            root,
            storage,
            config,
            id,
            catalog,
        })
    }

    /// Opens an existing local repository; its catalog must be at
    /// `path/catalog.db` ([`Error::CatalogMissing`] otherwise).
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_storage(path)?.open_catalog()
    }

    /// Opens the repository whose objects are in `storage`, with its
    /// catalog where `catalog` says (a cache is rebuilt if missing). Tests
    /// use this to inject faults into a local repository's storage.
    pub fn open_with(storage: Arc<dyn Storage>, catalog: CatalogLocation) -> Result<Self> {
        RepoStorage::open(storage, catalog)?.open_catalog()
    }

    /// The storage and config of the local repository at `path`, without
    /// its catalog (see [`RepoStorage`]).
    pub fn open_storage(path: &Path) -> Result<RepoStorage> {
        RepoStorage::open_at(
            path.to_path_buf(),
            Arc::new(LocalStorage::new(path)),
            CatalogLocation::in_repository(path),
        )
    }

    /// Where the repository is: the directory of a local repository, else
    /// how its storage names itself ([`Storage::location`]).
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// The storage, for what must outlive a borrow of the repository (a
    /// [`crate::lock::Lock`] and its heartbeat thread).
    pub(crate) fn shared_storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }

    /// Names the repository (see [`RepoStorage::id`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Takes a snapshot (see [`snapshot::create`]).
    pub fn snapshot(
        &self,
        sources: &[PathBuf],
        opts: &SnapshotOptions,
        progress: &dyn Progress,
    ) -> Result<SnapshotReport> {
        snapshot::create(self, sources, opts, progress)
    }

    /// All snapshots matching `filter`, oldest first.
    pub fn snapshots(&self, filter: &SnapshotFilter) -> Result<Vec<SnapshotInfo>> {
        self.catalog.snapshots(filter)
    }

    /// Resolves a SNAPSHOT selector (id prefix, `NAME`, `NAME~N`,
    /// `NAME@TIME`, `NAME:VERSION`, optionally `KIND/` first).
    pub fn resolve(&self, selector: &str) -> Result<SnapshotInfo> {
        let all = self.catalog.snapshots(&SnapshotFilter::default())?;
        selector::resolve(&all, selector, chrono::Local::now().fixed_offset().offset())
    }

    /// Where each chunk lives, in order; a chunk the catalog lacks is an error.
    pub fn locate_all(&self, chunks: &[ChunkId]) -> Result<Vec<ChunkLocation>> {
        chunks
            .iter()
            .map(|id| {
                self.catalog
                    .locate(id)?
                    .ok_or(Error::ChunkMissing { chunk: *id })
            })
            .collect()
    }
}

/// A repository's storage and config, opened without its catalog. Commands
/// that must work while the catalog is lost or replaced (`unlock`,
/// `rebuild-catalog`) hold this; [`RepoStorage::open_catalog`] turns it into
/// a [`Repository`].
pub struct RepoStorage {
    root: PathBuf,
    storage: Arc<dyn Storage>,
    config: RepoConfig,
    id: String,
    catalog: CatalogLocation,
}

impl RepoStorage {
    /// Reads and checks the config in `storage`; a missing one is
    /// [`Error::RepoNotFound`].
    pub fn open(storage: Arc<dyn Storage>, catalog: CatalogLocation) -> Result<Self> {
        Self::open_at(PathBuf::from(storage.location()), storage, catalog)
    }

    fn open_at(root: PathBuf, storage: Arc<dyn Storage>, catalog: CatalogLocation) -> Result<Self> {
        let (config, bytes) = read_config(&root, storage.as_ref())?;
        Ok(Self {
            id: repository_id(&config, &bytes),
            root,
            storage,
            config,
            catalog,
        })
    }

    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// The storage, for what must outlive a borrow of the repository (a
    /// [`crate::lock::Lock`] and its heartbeat thread).
    pub(crate) fn shared_storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// The repository's id, safe as a file name: the config's `id`, or for
    /// a config whose `id` is not 1–64 hex digits, the first 32 hex digits
    /// of the BLAKE3 of the config object. Names its catalog in a cache.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// This repository's catalog file.
    pub fn catalog_file(&self) -> CatalogFile {
        self.catalog.file(&self.id)
    }

    /// Opens the catalog. A missing cache is rebuilt from storage first
    /// (under the exclusive lock, as `rebuild-catalog` does); a missing
    /// catalog at a fixed place is [`Error::CatalogMissing`].
    pub fn open_catalog(self) -> Result<Repository> {
        let file = self.catalog_file();
        if !file.exists() {
            if !file.rebuilds_when_missing() {
                return Err(Error::CatalogMissing {
                    path: file.path().to_path_buf(),
                });
            }
            crate::rebuild::rebuild_catalog(&self, &crate::progress::NoProgress)?;
        }
        let catalog = file.open()?;
        Ok(Repository {
            root: self.root,
            storage: self.storage,
            config: self.config,
            id: self.id,
            catalog,
        })
    }
}

/// Reads and checks the config in `storage`, without touching the catalog.
pub fn load_config(storage: &dyn Storage) -> Result<RepoConfig> {
    read_config(Path::new(&storage.location()), storage).map(|(config, _)| config)
}

/// The config of the repository at `root` and the bytes it was read from.
fn read_config(root: &Path, storage: &dyn Storage) -> Result<(RepoConfig, Vec<u8>)> {
    let bytes = match storage.get(config::KEY) {
        Ok(bytes) => bytes,
        Err(Error::ObjectNotFound { .. }) => return Err(Error::RepoNotFound { path: root.into() }),
        Err(e) => return Err(e),
    };
    let config = RepoConfig::from_json(&bytes, &root.join(config::KEY).display().to_string())?;
    Ok((config, bytes))
}

/// See [`RepoStorage::id`]. The config's own id is random hex; anything else
/// there (a hand-edited config) must not become a path in a cache directory.
fn repository_id(config: &RepoConfig, bytes: &[u8]) -> String {
    let id = &config.id;
    if (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        id.to_ascii_lowercase()
    } else {
        blake3::hash(bytes).to_hex()[..32].to_string()
    }
}

/// Reads, decodes and verifies one chunk. Takes storage rather than a
/// `Repository` so restore workers can call it from many threads.
pub fn read_chunk(storage: &dyn Storage, loc: &ChunkLocation) -> Result<Vec<u8>> {
    read_verified(storage, loc).map(|(_, raw)| raw)
}

/// Reads one chunk's stored bytes (as in the pack, possibly compressed)
/// after verifying that they decode to the chunk; `gc` copies these into new
/// packs, so a repack never recompresses and never copies damage.
pub fn read_stored_chunk(storage: &dyn Storage, loc: &ChunkLocation) -> Result<Vec<u8>> {
    read_verified(storage, loc).map(|(stored, _)| stored)
}

/// The stored and the decoded bytes of a chunk whose id has been checked.
fn read_verified(storage: &dyn Storage, loc: &ChunkLocation) -> Result<(Vec<u8>, Vec<u8>)> {
    let e = &loc.entry;
    let stored = fetch(storage, loc, e.offset, e.stored_len as u64)?;
    let raw = decode_chunk(loc, &stored)?;
    Ok((stored, raw))
}

/// Reads `len` bytes at `offset` of `loc`'s pack; a missing or truncated
/// pack is damage to the chunk `loc` names.
fn fetch(storage: &dyn Storage, loc: &ChunkLocation, offset: u64, len: u64) -> Result<Vec<u8>> {
    match storage.get_range(&pack::key(&loc.pack), offset, len) {
        Err(Error::ObjectTruncated { .. }) => Err(corrupt(loc, "pack is truncated")),
        Err(Error::ObjectNotFound { .. }) => Err(corrupt(loc, "pack is missing")),
        other => other,
    }
}

fn corrupt(loc: &ChunkLocation, reason: impl Into<String>) -> Error {
    Error::CorruptChunk {
        chunk: loc.entry.chunk,
        pack: loc.pack,
        reason: reason.into(),
    }
}

/// Decodes a chunk's stored bytes and checks they hash to its id.
fn decode_chunk(loc: &ChunkLocation, stored: &[u8]) -> Result<Vec<u8>> {
    let e = &loc.entry;
    let raw = codec::decode(e.codec, stored, e.raw_len as usize).map_err(|r| corrupt(loc, r))?;
    if ChunkId::of(&raw) != e.chunk {
        return Err(corrupt(loc, "content does not match its id"));
    }
    Ok(raw)
}

/// Reads, decodes and verifies `locs` in order. Chunks stored back to back
/// in one pack (the usual case for a file snapshotted in one go) are read
/// with one range request per run; decoding runs in parallel.
pub fn read_chunks(storage: &dyn Storage, locs: &[ChunkLocation]) -> Result<Vec<Vec<u8>>> {
    let mut runs: Vec<&[ChunkLocation]> = Vec::new();
    let mut start = 0;
    for i in 1..=locs.len() {
        let contiguous = i < locs.len() && {
            let (prev, next) = (&locs[i - 1], &locs[i]);
            prev.pack == next.pack
                && prev.entry.offset + prev.entry.stored_len as u64 == next.entry.offset
        };
        if !contiguous {
            runs.push(&locs[start..i]);
            start = i;
        }
    }
    let spans: Vec<Vec<u8>> = runs
        .par_iter()
        .map(|run| {
            let (first, last) = (&run[0].entry, &run[run.len() - 1].entry);
            let end = last.offset + last.stored_len as u64;
            fetch(storage, &run[0], first.offset, end - first.offset)
        })
        .collect::<Result<_>>()?;
    let pieces: Vec<(&ChunkLocation, &[u8])> = runs
        .iter()
        .zip(&spans)
        .flat_map(|(run, span)| {
            let base = run[0].entry.offset;
            run.iter().map(move |l| {
                let at = (l.entry.offset - base) as usize;
                (l, &span[at..at + l.entry.stored_len as usize])
            })
        })
        .collect();
    pieces
        .par_iter()
        .map(|(loc, stored)| decode_chunk(loc, stored))
        .collect()
}

/// The repository used when neither `--repo` nor `$CAIRN_REPO` is given:
/// `$XDG_DATA_HOME/cairn`, else `~/.local/share/cairn`.
pub fn default_path() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(data.join("cairn"))
}

#[cfg(test)]
mod tests;
