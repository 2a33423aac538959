//! Delta chunks in the blob layer: where a delta chunk's reference bytes
//! come from when it is opened ([`References`]), and sealing a chunk as a
//! delta when that is smaller than standalone ([`seal_delta`]).
//!
//! A reference is always a list of standalone chunks (docs/FORMAT.md,
//! "Delta chunks"), so opening a delta chunk reads at most one level of
//! other chunks; the opened references are kept in a small cache, as the
//! chunks of one new tensor share the chunks of its keyframe.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::Result;
use crate::format::codec::{self, Codec, Hint};
use crate::format::delta::{self, DeltaHeader};
use crate::format::id::ChunkId;
use crate::format::pack::ChunkLocation;
use crate::format::seal::{Crypt, Sealed};
use crate::storage::Storage;

use super::{RefCache, SealedChunk};

/// Finds where a chunk is stored (the catalog implements it; the blob
/// layer sits below the catalog and knows it only through this).
pub trait Locate: Sync {
    fn locate_chunk(&self, id: &ChunkId) -> Result<Option<ChunkLocation>>;
}

/// Opened reference chunks kept by one [`References`].
const CACHE_BYTES: usize = 64 << 20;

/// How delta chunks find their references: a repository's storage and
/// catalog, or nothing (then opening a delta chunk fails, naming why).
pub struct References<'a> {
    source: Option<(&'a dyn Storage, &'a dyn Locate)>,
    cache: Mutex<Cache>,
    /// Where reference chunks of a remote repository are kept on disk.
    local: Option<&'a RefCache>,
}

#[derive(Default)]
struct Cache {
    chunks: HashMap<ChunkId, Arc<Vec<u8>>>,
    order: VecDeque<ChunkId>,
    bytes: usize,
}

impl<'a> References<'a> {
    /// References read from `storage`, located through `locate`.
    pub fn new(storage: &'a dyn Storage, locate: &'a dyn Locate) -> Self {
        Self {
            source: Some((storage, locate)),
            cache: Mutex::default(),
            local: None,
        }
    }

    /// These references, read from `local` before storage, and kept there
    /// once read (see [`RefCache`]).
    pub fn with_local(mut self, local: Option<&'a RefCache>) -> Self {
        self.local = local;
        self
    }

    /// The local reference cache these references use, if any.
    pub fn local(&self) -> Option<&'a RefCache> {
        self.local
    }

    /// Reads the chunk at `loc` as a reference would be read: a standalone
    /// chunk from the local cache when it holds a copy that opens to its
    /// id, else from storage (and then kept in the cache). A delta chunk
    /// is read from storage with these references.
    pub fn read(&self, crypt: &Crypt, loc: &ChunkLocation) -> Result<Vec<u8>> {
        let (storage, _) = self.source.ok_or_else(|| {
            crate::error::Error::InvalidArgument(format!(
                "chunk {}: no storage to read it from",
                loc.entry.chunk.to_hex()
            ))
        })?;
        let Some(local) = self.local.filter(|_| loc.entry.codec != Codec::Delta) else {
            return super::read_chunk(storage, crypt, self, loc);
        };
        let none = References::none();
        if let Some(stored) = local.get(&loc.entry.chunk) {
            match super::open_chunk(crypt, &none, &loc.pack, &loc.entry, &stored) {
                Ok(raw) => return Ok(raw),
                Err(_) => local.forget(&loc.entry.chunk),
            }
        }
        let (stored, raw) = super::read_verified(storage, crypt, &none, loc)?;
        local.put(&loc.entry.chunk, &stored);
        Ok(raw)
    }

    /// No references: for stores that hold no delta chunks (tests, a
    /// scratch repository in `bench`).
    pub fn none() -> Self {
        Self {
            source: None,
            cache: Mutex::default(),
            local: None,
        }
    }

    /// The reference bytes `header` names, concatenated. `Err` is the
    /// reason the delta chunk cannot be opened (it names the reference).
    pub fn bytes(
        &self,
        crypt: &Crypt,
        header: &DeltaHeader,
    ) -> std::result::Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(header.reference_len() as usize);
        for s in &header.segments {
            let chunk = self.chunk(crypt, &s.chunk)?;
            let (start, end) = (s.offset as usize, s.offset as usize + s.len as usize);
            let piece = chunk.get(start..end).ok_or_else(|| {
                format!(
                    "reference chunk {}: range {start}..{end} is outside its {} bytes",
                    s.chunk.to_hex(),
                    chunk.len()
                )
            })?;
            out.extend_from_slice(piece);
        }
        Ok(out)
    }

    /// One opened reference chunk (cached).
    fn chunk(&self, crypt: &Crypt, id: &ChunkId) -> std::result::Result<Arc<Vec<u8>>, String> {
        if let Some(c) = self.lock().chunks.get(id) {
            return Ok(c.clone());
        }
        let (_, locate) = self
            .source
            .ok_or("a delta chunk needs its reference, and none can be read here")?;
        let why = |e: String| format!("reference chunk {}: {e}", id.to_hex());
        let loc = locate
            .locate_chunk(id)
            .map_err(|e| why(e.to_string()))?
            .ok_or_else(|| why("is not stored".into()))?;
        if loc.entry.codec == Codec::Delta {
            return Err(why("is itself a delta chunk".into()));
        }
        let raw = self.read(crypt, &loc).map_err(|e| why(e.to_string()))?;
        let raw = Arc::new(raw);
        let mut cache = self.lock();
        cache.bytes += raw.len();
        cache.order.push_back(*id);
        cache.chunks.insert(*id, raw.clone());
        while cache.bytes > CACHE_BYTES {
            let Some(old) = cache.order.pop_front() else {
                break;
            };
            if let Some(c) = cache.chunks.remove(&old) {
                cache.bytes -= c.len();
            }
        }
        Ok(raw)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Seals `raw` (whose id is `id`) as a delta against `reference` (the
/// bytes `header` names) when that is smaller than `standalone`, the chunk
/// sealed on its own; returns whichever is smaller.
pub fn seal_delta(
    crypt: &Crypt,
    standalone: SealedChunk,
    raw: &[u8],
    reference: &[u8],
    header: &DeltaHeader,
    hint: Hint,
    level: i32,
) -> SealedChunk {
    let float = matches!(hint, Hint::Planes { float: true, .. });
    if level <= 0 || reference.len() != raw.len() {
        return standalone;
    }
    let encoded = delta::encode(raw, reference, header, float, level);
    // Compare what the codec produced: sealing adds the same to both.
    let standalone_len = standalone.stored.len() - crypt.overhead();
    if encoded.len() >= standalone_len {
        return standalone;
    }
    let stored = if crypt.is_encrypted() {
        crypt
            .seal(Sealed::Chunk(&standalone.id), &encoded)
            .into_owned()
    } else {
        encoded
    };
    SealedChunk {
        id: standalone.id,
        codec: Codec::Delta,
        stored,
        raw_len: standalone.raw_len,
    }
}

/// The width a delta of a chunk with `hint` uses (element size of a tensor).
pub fn width_of(hint: Hint) -> u8 {
    match hint {
        Hint::Planes { width, .. } if matches!(width, 2 | 4 | 8) => width,
        _ => 1,
    }
}

/// Decodes a delta chunk's codec output with its references.
pub(super) fn decode(
    crypt: &Crypt,
    refs: &References,
    encoded: &[u8],
    raw_len: usize,
) -> std::result::Result<Vec<u8>, String> {
    let (header, _) = delta::parse_header(encoded)?;
    let reference = refs.bytes(crypt, &header)?;
    codec::decode_with(Codec::Delta, encoded, raw_len, Some(&reference))
}
