//! The storing side of a snapshot run: hashes each batch, keeps only the
//! chunks the repository lacks, compresses them in parallel and fills
//! packs, handing each full pack to the writer thread; at the end it adds
//! the snapshot's new trees to the last pack.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{Receiver, SyncSender};

use rayon::prelude::*;

use super::{delta, trees, Previous, Totals};
use crate::blob::{delta::seal_delta, HashedBatch, RefCache, References, SealedChunk};
use crate::error::{Error, Result};
use crate::format::id::ChunkId;
use crate::format::manifest::FileEntry;
use crate::format::pack::{PackWriter, SealedPack};
use crate::ingest::read::{Batch, Piece};
use crate::progress::Progress;
use crate::repo::repository::Repository;

/// Turns batches into stored chunks: hashes in parallel, keeps only chunks
/// the repository lacks, compresses those in parallel, fills packs.
pub(super) struct Storer<'r> {
    repo: &'r Repository,
    level: i32,
    pack: PackWriter,
    packs: SyncSender<SealedPack>,
    /// Buffers of packs the writer has finished with (one per pack).
    recycled: Receiver<Vec<u8>>,
    /// Pack buffers that may still be made rather than waited for: one
    /// per writer ([`Storage::parallel_puts`]), so each can have a pack in
    /// flight while the next one fills.
    ///
    /// [`Storage::parallel_puts`]: crate::storage::Storage::parallel_puts
    new_buffers: usize,
    /// Every chunk this run has stored: packs in flight are not in the
    /// catalog yet. Bounded by the new data (≈ 40 bytes per new chunk).
    stored: HashSet<ChunkId>,
    pub(super) totals: Totals,
    /// Where delta references come from (`None`: all chunks standalone).
    pub(super) previous: Option<Previous>,
    /// Per file being read: its previous version, when it has one.
    versions: HashMap<usize, Option<delta::PreviousFile>>,
    /// Per file being read: the offset of its next chunk.
    offsets: HashMap<usize, u64>,
    /// The previous snapshot's files, read on the first need.
    parent_files: Option<Vec<FileEntry>>,
    /// Opened reference chunks, kept across batches.
    refs: References<'r>,
    /// Where new keyframe candidates are kept locally (see `Settings`).
    pub(super) keyframes: Option<&'r RefCache>,
}

impl<'r> Storer<'r> {
    pub(super) fn new(
        repo: &'r Repository,
        level: i32,
        packs: SyncSender<SealedPack>,
        recycled: Receiver<Vec<u8>>,
    ) -> Self {
        Self {
            repo,
            level,
            pack: repo.pack_writer(),
            packs,
            recycled,
            new_buffers: repo.storage().parallel_puts(),
            stored: HashSet::new(),
            totals: Totals::default(),
            previous: None,
            versions: HashMap::new(),
            offsets: HashMap::new(),
            parent_files: None,
            refs: repo.references(),
            keyframes: None,
        }
    }

    pub(super) fn take(
        &mut self,
        batch: &Batch,
        files: &mut [FileEntry],
        progress: &dyn Progress,
    ) -> Result<()> {
        crate::progress::check_cancelled(progress)?;
        let hashed = HashedBatch::new(batch, self.repo.crypt());
        let ids = &hashed.ids;
        let known = self.repo.catalog().existing(ids)?;
        let mut fresh = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if !known.contains(id) && self.stored.insert(*id) {
                fresh.push(i);
            }
        }
        let offsets = self.chunk_offsets(batch);
        let sealed = self.seal_fresh(&hashed, &fresh, &offsets)?;
        if let Some(local) = self.keyframes {
            delta::keep_keyframes(local, &hashed, &fresh, &sealed);
        }
        for piece in &batch.pieces {
            if let Piece::FileDone { file } = piece {
                self.versions.remove(file);
            }
        }
        for sealed in sealed {
            self.totals.chunks_new += 1;
            self.totals.added_raw += sealed.raw_len as u64;
            self.totals.added_stored += sealed.stored.len() as u64;
            self.add(&sealed)?;
        }
        let mut next_id = ids.iter();
        for piece in &batch.pieces {
            match *piece {
                Piece::Chunk { file, .. } => files[file]
                    .chunks
                    .push(*next_id.next().expect("one id per chunk")),
                Piece::Reset { file } => files[file].chunks.clear(),
                // A pushed-to Vec keeps room for 4 ids (128 bytes) or twice
                // what it holds; most files are one or two chunks, and the
                // list lives to the commit.
                Piece::FileDone { file } => files[file].chunks.shrink_to_fit(),
            }
        }
        progress.advance(hashed.raw_bytes());
        Ok(())
    }

    /// The file offset of every chunk of `batch`, in cut order.
    fn chunk_offsets(&mut self, batch: &Batch) -> Vec<u64> {
        let mut out = Vec::new();
        for piece in &batch.pieces {
            match *piece {
                Piece::Chunk { file, len, .. } => {
                    let at = self.offsets.entry(file).or_insert(0);
                    out.push(*at);
                    *at += len as u64;
                }
                Piece::Reset { file } => {
                    self.offsets.insert(file, 0);
                }
                Piece::FileDone { file } => {
                    self.offsets.remove(&file);
                }
            }
        }
        out
    }

    /// Seals the chunks `fresh` of `hashed` (at file `offsets`): standalone,
    /// or as a delta of the previous version of their tensor when smaller.
    fn seal_fresh(
        &mut self,
        hashed: &HashedBatch,
        fresh: &[usize],
        offsets: &[u64],
    ) -> Result<Vec<SealedChunk>> {
        let standalone = hashed.seal(fresh, self.level);
        if self.previous.is_none() || self.level <= 0 {
            return Ok(standalone);
        }
        let mut plans = Vec::with_capacity(fresh.len());
        for &i in fresh {
            let c = &hashed.chunks[i];
            let width = crate::blob::delta::width_of(c.hint);
            plans.push(match self.version_of(c.file)? {
                Some(v) => v.plan(offsets[i], c.data.len() as u64, width),
                None => None,
            });
        }
        let (repo, level, refs) = (self.repo, self.level, &self.refs);
        let sealed: Vec<SealedChunk> = standalone
            .into_par_iter()
            .zip(fresh.par_iter().zip(plans.par_iter()))
            .map(|(alone, (&i, plan))| {
                let c = &hashed.chunks[i];
                match plan.as_ref().map(|p| (p, refs.bytes(repo.crypt(), p))) {
                    Some((p, Ok(reference))) => {
                        seal_delta(repo.crypt(), alone, c.data, &reference, p, c.hint, level)
                    }
                    _ => alone,
                }
            })
            .collect();
        Ok(sealed)
    }

    /// The previous version of file `file`, opened on its first chunk.
    fn version_of(&mut self, file: usize) -> Result<Option<&delta::PreviousFile>> {
        let Some(prev) = &self.previous else {
            return Ok(None);
        };
        if !self.versions.contains_key(&file) {
            let repo = self.repo;
            let found = match prev.files.get(&file) {
                Some((path, size, rel)) if *size >= crate::ingest::shape::PROBE_MIN => {
                    if self.parent_files.is_none() {
                        self.parent_files = Some(repo.catalog().files(&prev.snapshot)?);
                    }
                    let parent_files = self.parent_files.as_deref().unwrap_or_default();
                    match delta::previous_version(parent_files, rel) {
                        Some(old) => delta::PreviousFile::open(
                            repo.crypt(),
                            repo.catalog(),
                            &self.refs,
                            path,
                            *size,
                            old.chunks.clone(),
                        )?,
                        None => None,
                    }
                }
                _ => None,
            };
            self.versions.insert(file, found);
        }
        Ok(self.versions[&file].as_ref())
    }

    /// Builds the trees of `files` (each directory's `chunks` becomes its
    /// tree) and adds those the repository lacks to the pack, as chunks.
    pub(super) fn add_trees(&mut self, files: &mut [FileEntry]) -> Result<Option<ChunkId>> {
        let (repo, level) = (self.repo, self.level);
        trees::fresh(repo, files, level, &mut |sealed| {
            // Not in the run's totals, which count file content (as a
            // version-1 manifest's own bytes were not counted either).
            match self.stored.insert(sealed.id) {
                true => self.add(&sealed),
                false => Ok(()),
            }
        })
    }

    /// Puts `sealed` into the pack being filled, sealing the pack first
    /// when it has no room for it and after when it is full.
    fn add(&mut self, sealed: &SealedChunk) -> Result<()> {
        if !self.pack.has_room(sealed.stored.len()) {
            self.seal()?;
        }
        self.pack
            .add(sealed.id, sealed.codec, sealed.raw_len, &sealed.stored);
        if self.pack.is_full() {
            self.seal()?;
        }
        Ok(())
    }

    /// Hands the current pack to the writer thread.
    pub(super) fn seal(&mut self) -> Result<()> {
        if self.pack.is_empty() {
            return Ok(());
        }
        // One pack buffer per writer and the one filling: once all are
        // made, wait for a writer to hand one back (the send below would
        // wait for a writer just as long) instead of growing another.
        let buffer = if self.new_buffers > 0 {
            self.new_buffers -= 1;
            Vec::new()
        } else {
            self.recycled.recv().unwrap_or_default()
        };
        self.totals.packs += 1;
        let next = self.repo.pack_writer_in(buffer);
        let sealed = std::mem::replace(&mut self.pack, next).finish();
        self.packs
            .send(sealed)
            .map_err(|_| Error::InvalidArgument("the pack writer stopped".into()))
    }
}
