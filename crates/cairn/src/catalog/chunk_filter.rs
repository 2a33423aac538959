//! A filter of chunk ids, kept beside the catalog as `catalog.chunkfilter`,
//! that answers "surely not stored" without touching SQLite (issue #12:
//! at 10 M chunks a B-tree probe misses SQLite's page cache).
//!
//! It is a split-block Bloom filter: an id selects one 64-byte block, and
//! sets (or tests) one bit in each of the block's eight 64-bit words. It has
//! no false negatives, by construction; a false positive (about 1 % at the
//! 10 bits per id it is sized for) costs the SQLite lookup that every
//! lookup cost before. Chunk ids are BLAKE3 output (keyed in encrypted
//! repositories), so their bytes serve as the hash.
//!
//! The file is a cache like the catalog: byte layout and the rules that
//! decide when it is trusted are in docs/FORMAT.md ("Chunk filter"). This
//! module is pure (bits and bytes); `filtered` decides when to load, build,
//! trust and write it.

use std::io::{Read, Write};

use crate::format::id::ChunkId;

/// `\x89` (not text), a name, and a DOS and a Unix line end that a text
/// transfer would mangle, as PNG does.
pub const MAGIC: [u8; 8] = *b"\x89CCF\r\n\x1a\n";
/// Version 1: the initial layout.
pub const VERSION: u32 = 1;
/// Bits per id the filter is sized for (about 1 % false positives).
pub const BITS_PER_ID: u64 = 10;
/// A filter is never built for fewer ids than this (80 KiB).
pub const MIN_CAPACITY: u64 = 1 << 16;

const BLOCK_WORDS: usize = 8;
const BLOCK_BITS: u64 = 64 * BLOCK_WORDS as u64;

// Header offsets (docs/FORMAT.md).
const OFF_VERSION: usize = 8;
const OFF_CATALOG_ID: usize = 16;
const OFF_GENERATION: usize = 32;
const OFF_PACKS: usize = 40;
const OFF_IDS: usize = 48;
const OFF_BLOCKS: usize = 56;
const OFF_CHECKSUM: usize = 64;
pub const HEADER_LEN: usize = 96;
/// Bytes converted at a time when reading or writing the file.
const PIECE: usize = 64 << 10;
/// A header claiming more blocks (4 GiB of filter) is not believed.
const MAX_BLOCKS: u64 = 1 << 26;

/// Which catalog, at which state, a filter describes: a filter is used only
/// when all of it matches the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// `meta.catalog_id`: a random id given to each catalog database.
    pub catalog_id: [u8; 16],
    /// `meta.chunk_generation`: bumped by every transaction that adds chunk rows.
    pub generation: u64,
    /// A digest of the pack rows (see `filtered::packs_digest`): it changes
    /// when a writer that keeps no generation (an older cairn) adds a pack.
    pub packs: u64,
}

/// The bits, and how many ids were inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkFilter {
    words: Vec<u64>,
    ids: u64,
}

impl ChunkFilter {
    /// An empty filter sized for `expected` ids (at least [`MIN_CAPACITY`])
    /// and a quarter more, so a growing repository rebuilds it rarely.
    pub fn with_capacity(expected: u64) -> Self {
        let capacity = expected.saturating_add(expected / 4).max(MIN_CAPACITY);
        let blocks = capacity.saturating_mul(BITS_PER_ID).div_ceil(BLOCK_BITS);
        Self {
            words: vec![0; blocks as usize * BLOCK_WORDS],
            ids: 0,
        }
    }

    fn blocks(&self) -> u64 {
        (self.words.len() / BLOCK_WORDS) as u64
    }

    /// How many ids this filter holds at the false-positive rate it was
    /// sized for; past it, the rate climbs and a rebuild is due.
    pub fn capacity(&self) -> u64 {
        self.blocks() * BLOCK_BITS / BITS_PER_ID
    }

    /// Ids inserted (an id inserted twice counts twice).
    pub fn ids(&self) -> u64 {
        self.ids
    }

    /// Bytes of the bit array.
    #[cfg(test)]
    pub fn size_bytes(&self) -> usize {
        self.words.len() * 8
    }

    /// The block `id` falls in, and the bit it sets in each of its words.
    fn probe(&self, id: &ChunkId) -> (usize, [u64; BLOCK_WORDS]) {
        let word = |at: usize| u64::from_le_bytes(id.0[at..at + 8].try_into().expect("8 bytes"));
        // Multiply-shift maps the first word onto 0..blocks without bias.
        let block = ((word(0) as u128 * self.blocks() as u128) >> 64) as usize;
        let bits = word(8);
        let mut masks = [0u64; BLOCK_WORDS];
        for (i, m) in masks.iter_mut().enumerate() {
            *m = 1 << ((bits >> (6 * i)) & 63);
        }
        (block * BLOCK_WORDS, masks)
    }

    pub fn insert(&mut self, id: &ChunkId) {
        let (at, masks) = self.probe(id);
        for (w, m) in self.words[at..at + BLOCK_WORDS].iter_mut().zip(masks) {
            *w |= m;
        }
        self.ids += 1;
    }

    /// False only when `id` was never inserted.
    pub fn may_contain(&self, id: &ChunkId) -> bool {
        let (at, masks) = self.probe(id);
        self.words[at..at + BLOCK_WORDS]
            .iter()
            .zip(masks)
            .all(|(w, m)| w & m == m)
    }

    /// Writes the file: header, then the words (little-endian), in pieces,
    /// so writing costs no second copy of the filter in memory.
    pub fn encode(&self, stamp: &Stamp, out: &mut dyn Write) -> std::io::Result<()> {
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(&MAGIC);
        header[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&VERSION.to_le_bytes());
        header[OFF_CATALOG_ID..OFF_CATALOG_ID + 16].copy_from_slice(&stamp.catalog_id);
        put_u64(&mut header, OFF_GENERATION, stamp.generation);
        put_u64(&mut header, OFF_PACKS, stamp.packs);
        put_u64(&mut header, OFF_IDS, self.ids);
        put_u64(&mut header, OFF_BLOCKS, self.blocks());
        let mut sum = blake3::Hasher::new();
        sum.update(&header[..OFF_CHECKSUM]);
        self.for_each_piece(|piece| {
            sum.update(piece);
            Ok(())
        })?;
        header[OFF_CHECKSUM..].copy_from_slice(sum.finalize().as_bytes());
        out.write_all(&header)?;
        self.for_each_piece(|piece| out.write_all(piece))
    }

    /// The words as little-endian bytes, 64 KiB at a time.
    fn for_each_piece(
        &self,
        mut f: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(PIECE);
        for words in self.words.chunks(PIECE / 8) {
            buf.clear();
            words
                .iter()
                .for_each(|w| buf.extend_from_slice(&w.to_le_bytes()));
            f(&buf)?;
        }
        Ok(())
    }

    /// The filter in `input` and the stamp it carries; `None` for anything
    /// that is not a whole, intact file of this version (which the caller
    /// then rebuilds, never trusts). Reads in pieces: no second copy.
    pub fn decode(input: &mut dyn Read) -> Option<(Self, Stamp)> {
        let mut header = [0u8; HEADER_LEN];
        input.read_exact(&mut header).ok()?;
        let u64_at =
            |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
        let version = u32::from_le_bytes(header[OFF_VERSION..OFF_VERSION + 4].try_into().ok()?);
        let blocks = u64_at(OFF_BLOCKS);
        if header[..8] != MAGIC || version != VERSION || blocks == 0 || blocks > MAX_BLOCKS {
            return None;
        }
        let mut words: Vec<u64> = Vec::new();
        words
            .try_reserve_exact(blocks as usize * BLOCK_WORDS)
            .ok()?;
        let mut sum = blake3::Hasher::new();
        sum.update(&header[..OFF_CHECKSUM]);
        let mut buf = vec![0u8; PIECE];
        let mut left = blocks as usize * BLOCK_WORDS * 8;
        while left > 0 {
            let piece = &mut buf[..left.min(PIECE)];
            input.read_exact(piece).ok()?;
            sum.update(piece);
            words.extend(
                piece
                    .chunks_exact(8)
                    .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes"))),
            );
            left -= piece.len();
        }
        let trailing = input.read(&mut buf[..1]).ok()?;
        if trailing != 0 || sum.finalize().as_bytes()[..] != header[OFF_CHECKSUM..] {
            return None;
        }
        let stamp = Stamp {
            catalog_id: header[OFF_CATALOG_ID..OFF_CATALOG_ID + 16]
                .try_into()
                .ok()?,
            generation: u64_at(OFF_GENERATION),
            packs: u64_at(OFF_PACKS),
        };
        let ids = u64_at(OFF_IDS);
        Some((Self { words, ids }, stamp))
    }
}

fn put_u64(out: &mut [u8], at: usize, v: u64) {
    out[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u64) -> ChunkId {
        ChunkId::of(&i.to_le_bytes())
    }

    const STAMP: Stamp = Stamp {
        catalog_id: [7; 16],
        generation: 42,
        packs: 9,
    };

    fn encode(f: &ChunkFilter) -> Vec<u8> {
        let mut out = Vec::new();
        f.encode(&STAMP, &mut out).unwrap();
        out
    }

    fn decode(mut bytes: &[u8]) -> Option<(ChunkFilter, Stamp)> {
        ChunkFilter::decode(&mut bytes)
    }

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let mut f = ChunkFilter::with_capacity(100_000);
        (0..100_000).for_each(|i| f.insert(&id(i)));
        assert!((0..100_000).all(|i| f.may_contain(&id(i))));
        let false_pos = (100_000..300_000)
            .filter(|&i| f.may_contain(&id(i)))
            .count();
        // Sized for 125 k ids at 10 bits each: under 1 % at 100 k.
        assert!(false_pos < 2_000, "{false_pos} false positives in 200 k");
        assert_eq!(f.ids(), 100_000);
        assert!(f.capacity() >= 125_000);
    }

    #[test]
    fn a_file_round_trips_with_its_stamp() {
        let mut f = ChunkFilter::with_capacity(10);
        (0..1000).for_each(|i| f.insert(&id(i)));
        let bytes = encode(&f);
        assert_eq!(bytes.len(), HEADER_LEN + f.size_bytes());
        assert_eq!(&bytes[..8], &MAGIC);
        let (back, stamp) = decode(&bytes).unwrap();
        assert_eq!(stamp, STAMP);
        assert_eq!(back, f);
    }

    /// Any damage (a flipped bit anywhere, a cut, bytes added, another
    /// version, garbage) makes the file unreadable rather than wrong.
    #[test]
    fn a_damaged_file_is_rejected() {
        let mut f = ChunkFilter::with_capacity(10);
        (0..1000).for_each(|i| f.insert(&id(i)));
        let good = encode(&f);
        for at in [
            0,
            OFF_VERSION,
            OFF_CATALOG_ID,
            OFF_GENERATION,
            OFF_PACKS,
            OFF_IDS,
            OFF_BLOCKS,
            OFF_CHECKSUM,
            HEADER_LEN,
            good.len() - 1,
        ] {
            let mut bad = good.clone();
            bad[at] ^= 1;
            assert!(decode(&bad).is_none(), "flip at {at}");
        }
        assert!(decode(&good[..good.len() - 8]).is_none());
        assert!(decode(&good[..HEADER_LEN]).is_none());
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode(&longer).is_none(), "trailing bytes");
        assert!(decode(b"SQLite format 3\0 and more").is_none());
        assert!(decode(&[]).is_none());
    }
}
