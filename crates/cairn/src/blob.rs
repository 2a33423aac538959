//! The blob layer: the one place a chunk's bytes become what a pack stores
//! and back. [`seal_chunk`] (and [`HashedBatch::seal`], its batch form)
//! turns cut bytes into a [`SealedChunk`]; [`open_chunk`] turns stored bytes
//! back into the chunk and checks they hash to its id. Below it, [`codec`]
//! is the compression layer; above it, every reader (restore, cat, verify,
//! `check --read-data`, repair's salvage, gc's repack) and every writer
//! (snapshot, bench) goes through here.
//!
//! In an encrypted repository ([`Crypt`] with keys) a chunk's id is keyed
//! BLAKE3 and its stored bytes are the codec's output sealed with
//! XChaCha20-Poly1305, bound to the id ([`Sealed::Chunk`]); the codec runs
//! inside the seal. Unencrypted, [`Crypt::plain`] makes both the identity.
//!
//! Invariant: no bytes leave [`open_chunk`] unless they authenticate (when
//! encrypted) and hash to the id the pack trailer (or catalog) names, so
//! damage is always a typed [`Error::CorruptChunk`] naming chunk and pack.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::codec::{self, Codec, Hint};
use crate::format::id::{ChunkId, PackId};
use crate::format::pack::ChunkLocation;
use crate::format::pack::{self, PackEntry};
use crate::format::seal::{Crypt, Sealed};
use crate::ingest::read::{Batch, Piece};
use crate::storage::Storage;

/// A chunk ready for a pack: its id, how it is stored, and the stored bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedChunk {
    pub id: ChunkId,
    pub codec: Codec,
    pub stored: Vec<u8>,
    pub raw_len: u32,
}

/// The id of a chunk's bytes: BLAKE3, keyed in an encrypted repository.
/// The only hash of chunk data; pack and manifest ids hash whole objects
/// and stay in [`crate::format::id`].
pub fn chunk_id(crypt: &Crypt, raw: &[u8]) -> ChunkId {
    crypt.chunk_id(raw)
}

/// Seals `raw` at zstd `level` as `hint` suggests (see [`codec::encode`]),
/// then, in an encrypted repository, with the sealing key. Nothing else
/// turns chunk bytes into stored bytes, and only [`open_chunk`] back.
pub fn seal_chunk(crypt: &Crypt, raw: &[u8], level: i32, hint: Hint) -> SealedChunk {
    seal_with_id(crypt, chunk_id(crypt, raw), raw, level, hint)
}

/// [`seal_chunk`] for bytes whose id is already known (a batch is hashed
/// before dedup, and only the chunks dedup keeps are sealed).
pub(crate) fn seal_with_id(
    crypt: &Crypt,
    id: ChunkId,
    raw: &[u8],
    level: i32,
    hint: Hint,
) -> SealedChunk {
    let (codec, encoded) = codec::encode(raw, level, hint);
    let stored = if crypt.is_encrypted() {
        crypt.seal(Sealed::Chunk(&id), &encoded).into_owned()
    } else {
        encoded
    };
    SealedChunk {
        id,
        codec,
        stored,
        raw_len: raw.len() as u32,
    }
}

/// Opens the stored bytes of the chunk `entry` of `pack`: authenticates
/// them (encrypted), decodes them (a delta chunk through its references,
/// read with `refs`) and checks they hash to `entry.chunk`. Any failure,
/// also a damaged or missing reference, is [`Error::CorruptChunk`].
pub fn open_chunk(
    crypt: &Crypt,
    refs: &References,
    pack: &PackId,
    entry: &PackEntry,
    stored: &[u8],
) -> Result<Vec<u8>> {
    let encoded = crypt
        .open(Sealed::Chunk(&entry.chunk), stored)
        .map_err(|reason| corrupt(pack, entry, reason))?;
    decode_checked(crypt, refs, pack, entry, &encoded)
}

/// [`open_chunk`] for a reader that owns the stored bytes and no longer
/// needs them sealed: they are decrypted where they lie, so the sealed
/// bytes are never copied (restore's path). On `Err` they are still
/// sealed, and nothing unauthenticated has been decoded.
pub fn open_chunk_in_place(
    crypt: &Crypt,
    refs: &References,
    pack: &PackId,
    entry: &PackEntry,
    stored: &mut [u8],
) -> Result<Vec<u8>> {
    let encoded = crypt
        .open_in_place(Sealed::Chunk(&entry.chunk), stored)
        .map_err(|reason| corrupt(pack, entry, reason))?;
    decode_checked(crypt, refs, pack, entry, encoded)
}

fn corrupt(pack: &PackId, entry: &PackEntry, reason: String) -> Error {
    Error::CorruptChunk {
        chunk: entry.chunk,
        pack: *pack,
        reason,
    }
}

/// Decodes a chunk's authenticated codec output and checks the result
/// hashes to its id.
fn decode_checked(
    crypt: &Crypt,
    refs: &References,
    pack: &PackId,
    entry: &PackEntry,
    encoded: &[u8],
) -> Result<Vec<u8>> {
    let raw = match entry.codec {
        Codec::Delta => delta::decode(crypt, refs, encoded, entry.raw_len as usize),
        other => codec::decode(other, encoded, entry.raw_len as usize),
    }
    .map_err(|reason| corrupt(pack, entry, reason))?;
    if chunk_id(crypt, &raw) != entry.chunk {
        return Err(corrupt(pack, entry, "content does not match its id".into()));
    }
    Ok(raw)
}

/// One chunk of a batch as cut: the file it belongs to, its bytes (borrowed
/// from the batch buffer, never copied), and its codec hint.
#[derive(Debug, Clone, Copy)]
pub struct CutChunk<'b> {
    pub file: usize,
    pub data: &'b [u8],
    pub hint: Hint,
}

/// A batch's chunks in cut order with their ids, hashed in parallel. The
/// caller decides which are new (snapshot: the catalog and this run; bench:
/// the chunks seen so far), then seals only those with [`HashedBatch::seal`].
pub struct HashedBatch<'b> {
    pub chunks: Vec<CutChunk<'b>>,
    pub ids: Vec<ChunkId>,
    crypt: Crypt,
}

impl<'b> HashedBatch<'b> {
    pub fn new(batch: &'b Batch, crypt: &Crypt) -> Self {
        let chunks: Vec<CutChunk> = batch
            .pieces
            .iter()
            .filter_map(|p| match *p {
                Piece::Chunk {
                    file,
                    start,
                    len,
                    hint,
                } => Some(CutChunk {
                    file,
                    data: &batch.data[start..start + len],
                    hint,
                }),
                Piece::FileDone { .. } | Piece::Reset { .. } => None,
            })
            .collect();
        let ids = chunks.par_iter().map(|c| chunk_id(crypt, c.data)).collect();
        Self {
            chunks,
            ids,
            crypt: crypt.clone(),
        }
    }

    /// Seals the chunks at the indices `which`, in parallel, in that order.
    pub fn seal(&self, which: &[usize], level: i32) -> Vec<SealedChunk> {
        which
            .par_iter()
            .map(|&i| {
                let c = &self.chunks[i];
                seal_with_id(&self.crypt, self.ids[i], c.data, level, c.hint)
            })
            .collect()
    }

    /// The bytes of all chunks of the batch.
    pub fn raw_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.data.len() as u64).sum()
    }
}

/// Reads, opens and verifies one chunk. Takes storage rather than a
/// `Repository` so restore workers can call it from many threads.
pub fn read_chunk(
    storage: &dyn Storage,
    crypt: &Crypt,
    refs: &References,
    loc: &ChunkLocation,
) -> Result<Vec<u8>> {
    let e = &loc.entry;
    let mut stored = fetch(storage, loc, e.offset, e.stored_len as u64)?;
    open_chunk_in_place(crypt, refs, &loc.pack, e, &mut stored)
}

/// Reads one chunk's stored bytes (as in the pack, possibly compressed)
/// after verifying that they open to the chunk; `gc` copies these into new
/// packs, so a repack never recompresses and never copies damage.
pub fn read_stored_chunk(
    storage: &dyn Storage,
    crypt: &Crypt,
    refs: &References,
    loc: &ChunkLocation,
) -> Result<Vec<u8>> {
    read_verified(storage, crypt, refs, loc).map(|(stored, _)| stored)
}

/// The stored and the opened bytes of a chunk whose id has been checked.
fn read_verified(
    storage: &dyn Storage,
    crypt: &Crypt,
    refs: &References,
    loc: &ChunkLocation,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let e = &loc.entry;
    let stored = fetch(storage, loc, e.offset, e.stored_len as u64)?;
    let raw = open_chunk(crypt, refs, &loc.pack, e, &stored)?;
    Ok((stored, raw))
}

/// Reads `len` bytes at `offset` of `loc`'s pack; a missing or truncated
/// pack is damage to the chunk `loc` names.
fn fetch(storage: &dyn Storage, loc: &ChunkLocation, offset: u64, len: u64) -> Result<Vec<u8>> {
    storage
        .get_range(&pack::key(&loc.pack), offset, len)
        .map_err(|e| pack_damage(loc, e))
}

/// A missing or truncated pack as damage to the chunk `loc` names; other
/// errors as they are.
fn pack_damage(loc: &ChunkLocation, e: Error) -> Error {
    let corrupt = |reason: &str| Error::CorruptChunk {
        chunk: loc.entry.chunk,
        pack: loc.pack,
        reason: reason.into(),
    };
    match e {
        Error::ObjectTruncated { .. } => corrupt("pack is truncated"),
        Error::ObjectNotFound { .. } => corrupt("pack is missing"),
        other => other,
    }
}

/// `locs` cut into runs of chunks stored back to back in one pack, each at
/// most [`SPAN_MAX`] long unless it is a single chunk.
fn runs_of(locs: &[ChunkLocation]) -> Vec<&[ChunkLocation]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=locs.len() {
        let joins = i < locs.len() && {
            let (first, prev, next) = (&locs[start], &locs[i - 1], &locs[i]);
            let end = next.entry.offset + next.entry.stored_len as u64;
            prev.pack == next.pack
                && prev.entry.offset + prev.entry.stored_len as u64 == next.entry.offset
                && end - first.entry.offset <= SPAN_MAX
        };
        if !joins {
            runs.push(&locs[start..i]);
            start = i;
        }
    }
    runs
}

/// Reads, opens and verifies `locs` in order. Chunks stored back to back
/// in one pack (the usual case for a file snapshotted in one go) are read
/// with one range request per run; opening runs in parallel, each chunk
/// decrypted in the buffer it was read into (no copy of the sealed bytes).
pub fn read_chunks(
    storage: &dyn Storage,
    crypt: &Crypt,
    refs: &References,
    locs: &[ChunkLocation],
) -> Result<Vec<Vec<u8>>> {
    read_runs(storage, locs, |loc, stored| {
        open_chunk_in_place(crypt, refs, &loc.pack, &loc.entry, stored)
    })
}

/// [`read_chunks`], returning each chunk's stored bytes (as in its pack)
/// once they are checked to open to the chunk: `copy` puts these into the
/// destination's packs as they are, so it never recompresses and never
/// copies damage.
pub fn read_stored_chunks(
    storage: &dyn Storage,
    crypt: &Crypt,
    refs: &References,
    locs: &[ChunkLocation],
) -> Result<Vec<Vec<u8>>> {
    read_runs(storage, locs, |loc, stored| {
        open_chunk(crypt, refs, &loc.pack, &loc.entry, stored).map(|_| stored.to_vec())
    })
}

/// The longest span one range request of [`read_runs`] covers: longer
/// runs are split, so a large file's chunks are read by several requests
/// in flight at once on object storage instead of one long one (#13).
const SPAN_MAX: u64 = 2 * 1024 * 1024;

/// Reads `locs` with one range request per run of adjacent chunks (at most
/// [`SPAN_MAX`] long, or one chunk), all through one
/// [`Storage::get_ranges`], and passes each chunk's stored bytes to `open`,
/// in parallel; the results come back in the order of `locs`. The bytes
/// are the read buffer itself, so `open` may decrypt them in place.
fn read_runs<T: Send>(
    storage: &dyn Storage,
    locs: &[ChunkLocation],
    open: impl Fn(&ChunkLocation, &mut [u8]) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let runs = runs_of(locs);
    let keys: Vec<String> = runs.iter().map(|run| pack::key(&run[0].pack)).collect();
    let ranges: Vec<(&str, u64, u64)> = runs
        .iter()
        .zip(&keys)
        .map(|(run, key)| {
            let (first, last) = (&run[0].entry, &run[run.len() - 1].entry);
            let end = last.offset + last.stored_len as u64;
            (key.as_str(), first.offset, end - first.offset)
        })
        .collect();
    let mut spans = storage.get_ranges(&ranges).map_err(|e| {
        // Damage to the pack is damage to the first chunk of the run read.
        let run = runs
            .iter()
            .zip(&ranges)
            .find(|(_, &(key, offset, _))| match &e {
                Error::ObjectTruncated {
                    key: k, offset: o, ..
                } => k == key && *o == offset,
                Error::ObjectNotFound { key: k } => k == key,
                _ => false,
            });
        match run {
            Some((run, _)) => pack_damage(&run[0], e),
            None => e,
        }
    })?;
    // A run's chunks lie back to back from the start of its span.
    let mut pieces: Vec<(&ChunkLocation, &mut [u8])> = Vec::with_capacity(locs.len());
    for (run, span) in runs.iter().zip(&mut spans) {
        let mut rest = span.as_mut_slice();
        for l in run.iter() {
            let (piece, tail) = rest.split_at_mut(l.entry.stored_len as usize);
            pieces.push((l, piece));
            rest = tail;
        }
    }
    pieces
        .into_par_iter()
        .map(|(loc, stored)| open(loc, stored))
        .collect()
}

pub mod delta;
pub mod ref_cache;
pub mod sealed;

pub use delta::{Locate, References};
pub use ref_cache::RefCache;

#[cfg(test)]
mod tests;
