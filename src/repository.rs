//! `Repository`: the facade a user of the library holds. It ties the object
//! storage, the repository config and the catalog together.
//!
//! Layout of a local repository (docs/FORMAT.md):
//! `config`, `catalog.db`, `packs/<xx>/<id>.pack`, `snapshots/<id>.snap`.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::catalog::{Catalog, ChunkLocation, SnapshotFilter, SnapshotInfo};
use crate::codec;
use crate::config::{self, RepoConfig};
use crate::error::{Error, IoContext, Result};
use crate::id::ChunkId;
use crate::pack;
use crate::progress::Progress;
use crate::selector;
use crate::snapshot::{self, SnapshotOptions, SnapshotReport};
use crate::storage::{LocalStorage, Storage};

/// An open repository.
pub struct Repository {
    root: PathBuf,
    storage: Box<dyn Storage>,
    config: RepoConfig,
    catalog: Catalog,
}

impl Repository {
    /// Creates a repository at `path`, which must not exist or be empty.
    pub fn init(path: &Path, config: RepoConfig) -> Result<Self> {
        let storage = Box::new(LocalStorage::new(path));
        if path.join(config::KEY).exists() {
            return Err(Error::RepoExists { path: path.into() });
        }
        if path.exists() && std::fs::read_dir(path).at(path)?.next().is_some() {
            return Err(Error::RepoDirNotEmpty { path: path.into() });
        }
        crate::storage::create_dir_durably(path)?;
        for dir in ["packs", "snapshots"] {
            crate::storage::create_dir_durably(&path.join(dir))?;
        }
        // The catalog first, the config last: a directory with a config is a
        // complete repository.
        let catalog = Catalog::open(&path.join(crate::catalog::FILE_NAME))?;
        storage.put(config::KEY, &config.to_json())?;
        Ok(Self {
            root: path.to_path_buf(),
            storage,
            config,
            catalog,
        })
    }

    /// Opens an existing local repository.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, Box::new(LocalStorage::new(path)))
    }

    /// Opens a repository whose objects are in `storage` and whose catalog
    /// lives in the directory `path` (tests use this to inject faults).
    pub fn open_with(path: &Path, storage: Box<dyn Storage>) -> Result<Self> {
        let config = load_config(path, storage.as_ref())?;
        let catalog_path = path.join(crate::catalog::FILE_NAME);
        if !catalog_path.exists() {
            return Err(Error::CatalogMissing { path: catalog_path });
        }
        let catalog = Catalog::open(&catalog_path)?;
        Ok(Self {
            root: path.to_path_buf(),
            storage,
            config,
            catalog,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
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

/// Reads and checks the config of the repository at `path` whose objects
/// are in `storage`, without touching the catalog (commands that must work
/// while the catalog is lost, such as `unlock`, use this).
pub fn load_config(path: &Path, storage: &dyn Storage) -> Result<RepoConfig> {
    let bytes = match storage.get(config::KEY) {
        Ok(bytes) => bytes,
        Err(Error::ObjectNotFound { .. }) => return Err(Error::RepoNotFound { path: path.into() }),
        Err(e) => return Err(e),
    };
    RepoConfig::from_json(&bytes, &path.join(config::KEY).display().to_string())
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
