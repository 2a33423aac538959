//! Choosing references for delta chunks (docs/FORMAT.md, "Delta chunks").
//!
//! A tensor's previous version is the tensor of the same name, dtype and
//! byte length in the file of the same path in the previous snapshot of the
//! same kind and name (the stat-cache parent), or, when that snapshot has
//! no such path, in its most recently modified file of the same directory
//! and extension (`step-100.safetensors` after `step-50.safetensors`). A new chunk at
//! tensor-relative offsets `[r, r + n)` is encoded against the previous
//! version's bytes at the same offsets, expressed over the previous file's
//! chunks. Where those are delta chunks themselves, the range is composed
//! through them to their keyframe, so every reference is standalone and a
//! restore reads at most one other chunk level (the chain bound). A chunk
//! whose composed age would reach [`KEYFRAME_INTERVAL`] is stored
//! standalone: it is the next keyframe.
//!
//! The reference bytes are the keyframe's chunks, read through the blob
//! layer's cache of opened references.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use crate::blob::{HashedBatch, RefCache, References, SealedChunk};
use crate::catalog::{Catalog, DeltaRefs};
use crate::error::Result;
use crate::format::codec::{Codec, Hint};
use crate::format::delta::{DeltaHeader, Op, Segment};
use crate::format::id::ChunkId;
use crate::format::manifest::{EntryKind, FileEntry};
use crate::format::pack::ChunkLocation;
use crate::format::seal::Crypt;
use crate::ingest::tensor::{self, TensorLayout, TensorRegion};
use crate::storage::Storage;

/// A chunk is stored standalone (a keyframe) once this many versions
/// separate it from the last keyframe: docs/BENCHMARKS.md has the figures.
pub const KEYFRAME_INTERVAL: u8 = 8;

/// The previous version of one file, as the planner needs it.
pub(super) struct PreviousFile {
    /// Chunk ids in file order and the file offset each starts at.
    chunks: Vec<ChunkId>,
    starts: Vec<u64>,
    /// Old tensors by name.
    tensors: HashMap<String, TensorRegion>,
    /// What the catalog knows of the old chunks that are deltas.
    deltas: HashMap<ChunkId, DeltaRefs>,
    /// The new file's tensors.
    layout: TensorLayout,
}

/// A reference for one chunk: the header to write (the width is the
/// tensor's element size).
pub(super) type Plan = DeltaHeader;

impl PreviousFile {
    /// The previous version of the file at `path` (the new version, read
    /// for its tensor layout only) when both are model files with tensors.
    pub(super) fn open(
        crypt: &Crypt,
        catalog: &Catalog,
        refs: &References,
        path: &Path,
        size: u64,
        old_chunks: Vec<ChunkId>,
    ) -> Result<Option<Self>> {
        if size < crate::ingest::shape::PROBE_MIN {
            return Ok(None);
        }
        let Ok(Some(layout)) = File::open(path)
            .map_err(tensor::TensorError::Io)
            .and_then(|mut f| tensor::parse_layout(&mut f, size))
        else {
            return Ok(None);
        };
        // A previous version that lost chunks (a repaired repository) is
        // no reference: the file is stored standalone.
        let locs = match catalog.locate_all(&old_chunks) {
            Err(crate::error::Error::ChunkMissing { .. }) => return Ok(None),
            other => other?,
        };
        let mut starts = Vec::with_capacity(locs.len());
        let mut at = 0u64;
        for l in &locs {
            starts.push(at);
            at += l.entry.raw_len as u64;
        }
        let deltas = catalog.delta_refs(&old_chunks)?;
        let mut reader = ChunkFile::new(crypt, refs, &locs, &starts, at);
        let Ok(Some(old_layout)) = tensor::parse_layout(&mut reader, at) else {
            return Ok(None);
        };
        let tensors = old_layout
            .tensors
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        Ok(Some(Self {
            chunks: old_chunks,
            starts,
            tensors,
            deltas,
            layout,
        }))
    }

    /// The reference for the new chunk at file offset `at` of `len` bytes
    /// with word width `width`, or `None` (no previous version, or the
    /// chunk is due to be a keyframe).
    pub(super) fn plan(&self, at: u64, len: u64, width: u8) -> Option<Plan> {
        let new = tensor::region_at(&self.layout, at)?;
        if at + len > new.offset + new.len {
            return None;
        }
        let old = self.tensors.get(&new.name)?;
        if old.dtype != new.dtype || old.len != new.len {
            return None;
        }
        let mut from = old.offset + (at - new.offset);
        let end = from + len;
        let (mut segments, mut age) = (Vec::new(), 1u8);
        let mut i = self.starts.partition_point(|&s| s <= from).checked_sub(1)?;
        while from < end {
            let chunk = self.chunks.get(i)?;
            let chunk_end = self.starts.get(i + 1).copied().unwrap_or(u64::MAX);
            let (off, n) = (from - self.starts[i], chunk_end.min(end) - from);
            match self.deltas.get(chunk) {
                Some(d) => {
                    age = age.max(d.age.checked_add(1)?);
                    compose(&d.segments, off, n, &mut segments)?;
                }
                None => segments.push(Segment {
                    chunk: *chunk,
                    offset: off as u32,
                    len: n as u32,
                }),
            }
            from += n;
            i += 1;
        }
        if age >= KEYFRAME_INTERVAL || segments.len() > crate::format::delta::MAX_SEGMENTS {
            return None;
        }
        Some(DeltaHeader {
            width,
            op: Op::Xor,
            age,
            segments,
        })
    }
}

/// The file of `parent` (the previous snapshot's files) that holds the
/// previous version of the file at `rel`: the same path, or else the most
/// recently modified file of the same directory and extension.
pub(super) fn previous_version<'f>(parent: &'f [FileEntry], rel: &str) -> Option<&'f FileEntry> {
    let is_model =
        |f: &&FileEntry| f.kind == EntryKind::File && f.size >= crate::ingest::shape::PROBE_MIN;
    if let Some(same) = parent.iter().filter(is_model).find(|f| f.path == rel) {
        return Some(same);
    }
    let want = dir_and_extension(rel);
    parent
        .iter()
        .filter(is_model)
        .filter(|f| dir_and_extension(&f.path) == want)
        .max_by_key(|f| (f.mtime_ns, f.path.as_str()))
}

fn dir_and_extension(path: &str) -> (&str, &str) {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    (dir, name.rsplit_once('.').map_or("", |(_, e)| e))
}

/// Records in the catalog which chunks the delta chunks of pack `pack`
/// refer to, before the pack itself is indexed (a crash in between leaves
/// rows that mean nothing, never an indexed delta without its references).
/// `bytes` is the whole pack when at hand; otherwise each delta chunk is
/// read. A delta chunk whose header cannot be read is left to `check`.
pub(crate) fn index_references(
    storage: &dyn Storage,
    crypt: &Crypt,
    catalog: &Catalog,
    pack: &crate::format::id::PackId,
    entries: &[crate::format::pack::PackEntry],
    bytes: Option<&[u8]>,
) -> Result<()> {
    let mut headers = Vec::new();
    for e in entries
        .iter()
        .filter(|e| e.codec == crate::format::codec::Codec::Delta)
    {
        let stored = match bytes {
            Some(b) => b
                .get(e.offset as usize..)
                .and_then(|b| b.get(..e.stored_len as usize))
                .map(<[u8]>::to_vec),
            None => storage
                .get_range(
                    &crate::format::pack::key(pack),
                    e.offset,
                    e.stored_len as u64,
                )
                .ok(),
        };
        let header = stored.and_then(|s| {
            let opened = crypt
                .open(crate::format::seal::Sealed::Chunk(&e.chunk), &s)
                .ok()?;
            crate::format::delta::parse_header(&opened)
                .ok()
                .map(|(h, _)| h)
        });
        headers.extend(header.map(|h| (e.chunk, h)));
    }
    if headers.is_empty() {
        return Ok(());
    }
    catalog.add_delta_refs(headers.iter().map(|(id, h)| (id, h)))
}

/// Appends the part `[off, off + n)` of a reference made of `segments`.
fn compose(segments: &[Segment], off: u64, n: u64, out: &mut Vec<Segment>) -> Option<()> {
    let (mut skip, mut left) = (off, n);
    for s in segments {
        if left == 0 {
            break;
        }
        let len = s.len as u64;
        if skip >= len {
            skip -= len;
            continue;
        }
        let take = (len - skip).min(left);
        out.push(Segment {
            chunk: s.chunk,
            offset: s.offset + skip as u32,
            len: take as u32,
        });
        left -= take;
        skip = 0;
    }
    (left == 0).then_some(())
}

/// Keeps in `local` the stored bytes of the tensor chunks of `fresh` that
/// were sealed standalone (`sealed`, in the same order): the keyframes the
/// next snapshots of the history will read as references.
pub(super) fn keep_keyframes(
    local: &RefCache,
    hashed: &HashedBatch,
    fresh: &[usize],
    sealed: &[SealedChunk],
) {
    for (&i, chunk) in fresh.iter().zip(sealed) {
        let tensor = matches!(hashed.chunks[i].hint, Hint::Planes { .. });
        if tensor && chunk.codec != Codec::Delta {
            local.put(&chunk.id, &chunk.stored);
        }
    }
}

/// A stored file read back chunk by chunk, at any offset (for the old
/// version's header, and for `copy` probing the shape of a source file).
pub(crate) struct ChunkFile<'a> {
    crypt: &'a Crypt,
    refs: &'a References<'a>,
    locs: &'a [ChunkLocation],
    starts: &'a [u64],
    len: u64,
    pos: u64,
    current: Option<(usize, Vec<u8>)>,
}

impl<'a> ChunkFile<'a> {
    /// The file made of `locs` (in order), each starting at the offset
    /// `starts` gives, `len` bytes in all.
    pub(crate) fn new(
        crypt: &'a Crypt,
        refs: &'a References<'a>,
        locs: &'a [ChunkLocation],
        starts: &'a [u64],
        len: u64,
    ) -> Self {
        Self {
            crypt,
            refs,
            locs,
            starts,
            len,
            pos: 0,
            current: None,
        }
    }
}

impl Read for ChunkFile<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let i = self.starts.partition_point(|&s| s <= self.pos) - 1;
        if self.current.as_ref().map(|c| c.0) != Some(i) {
            let raw = self
                .refs
                .read(self.crypt, &self.locs[i])
                .map_err(io::Error::other)?;
            self.current = Some((i, raw));
        }
        let chunk = &self.current.as_ref().expect("just loaded").1;
        let at = (self.pos - self.starts[i]) as usize;
        let n = (chunk.len() - at).min(buf.len());
        buf[..n].copy_from_slice(&chunk[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ChunkFile<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(d) => self.len as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if pos < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before start",
            ));
        }
        self.pos = pos as u64;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_picks_the_sub_range_across_segments() {
        let seg = |b: u8, offset, len| Segment {
            chunk: ChunkId([b; 32]),
            offset,
            len,
        };
        let refs = [seg(1, 100, 10), seg(2, 0, 20), seg(3, 5, 5)];
        let mut out = Vec::new();
        compose(&refs, 8, 15, &mut out).unwrap();
        assert_eq!(out, vec![seg(1, 108, 2), seg(2, 0, 13)]);
        let mut out = Vec::new();
        assert!(compose(&refs, 30, 10, &mut out).is_none());
    }
}
