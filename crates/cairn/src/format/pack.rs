//! Pack files: immutable, self-describing containers of stored chunks.
//!
//! ```text
//! header (16) | chunk records (stored bytes, back to back) | trailer (49 × n) | footer (56)
//! ```
//!
//! The trailer lists every chunk (id, offset, stored length, raw length,
//! codec) and the footer carries the trailer's BLAKE3, so the catalog can be
//! rebuilt from packs alone. A pack's id is the BLAKE3 of the whole file. The
//! byte layout is specified in docs/FORMAT.md; offsets here derive from the
//! named constants below. Parsing treats the file as hostile: every length is
//! checked against the file size before anything is allocated.

use crate::error::{Error, Result};
use crate::format::codec::Codec;
use crate::format::id::{ChunkId, PackId};
use crate::format::seal::{self, Crypt, Sealed};
use crate::storage::Storage;

/// `\x89CAIRNPK`: a high byte (catches 7-bit transfers), then the name.
pub const MAGIC: [u8; 8] = *b"\x89CAIRNPK";
/// Closes the footer, so a truncated pack is recognised as such.
pub const END_MAGIC: [u8; 8] = *b"CAIRNEND";
/// Version 1: the initial layout.
pub const VERSION: u32 = 1;
/// Version 2: a pack of an encrypted repository: each chunk's stored bytes
/// and the trailer are sealed (docs/FORMAT.md, "Encryption").
pub const SEALED_VERSION: u32 = 2;
pub const HEADER_LEN: usize = 16;
pub const ENTRY_LEN: usize = 49;
pub const FOOTER_LEN: usize = 56;
/// No chunk may claim more than this many raw bytes (FastCDC's maximum).
pub const MAX_CHUNK_LEN: u32 = 16 * 1024 * 1024;
/// Packs are sealed once their chunk data reaches this size, unless the
/// repository config sets `pack_target`.
pub const TARGET_SIZE: usize = 32 * 1024 * 1024;
/// Bounds of the config's `pack_target` (one chunk per pack at the low end).
pub const MIN_TARGET_SIZE: u64 = 1024;
pub const MAX_TARGET_SIZE: u64 = 1024 * 1024 * 1024;

/// Where one chunk lives inside a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PackEntry {
    pub chunk: ChunkId,
    /// Absolute offset of the stored bytes in the pack file.
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
    pub codec: Codec,
}

/// Where a chunk is stored: its pack and its entry there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLocation {
    pub pack: PackId,
    pub entry: PackEntry,
}

/// The key prefix under which packs are stored.
pub const PREFIX: &str = "packs/";

/// Room a pack buffer is made with beyond its target: for the blob that
/// crosses the target, and the trailer.
const SLACK: usize = 1 << 20;

/// The storage key of a pack: `packs/<first 2 hex>/<64 hex>.pack`.
pub fn key(id: &PackId) -> String {
    let hex = id.to_hex();
    format!("packs/{}/{hex}.pack", &hex[..2])
}

/// Parses a pack key back to its id (`None` for anything else).
pub fn id_from_key(key: &str) -> Option<PackId> {
    let name = key.strip_prefix("packs/")?.split('/').nth(1)?;
    PackId::from_hex(name.strip_suffix(".pack")?)
}

/// Builds one pack in memory.
pub struct PackWriter {
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
    target: usize,
    crypt: Crypt,
}

/// A finished pack: its bytes, id and trailer entries.
pub struct SealedPack {
    pub id: PackId,
    pub bytes: Vec<u8>,
    pub entries: Vec<PackEntry>,
}

impl Default for PackWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl PackWriter {
    /// A writer that reports full at [`TARGET_SIZE`].
    pub fn new() -> Self {
        Self::with_target(TARGET_SIZE)
    }

    /// A writer that reports full once its chunk data reaches `target` bytes.
    pub fn with_target(target: usize) -> Self {
        Self::with_buffer(target, Vec::new())
    }

    /// Like [`PackWriter::with_target`], reusing `buf`'s allocation (its
    /// contents are discarded): a 32 MiB pack in a fresh allocation costs the
    /// kernel 32 MiB of page faults and zeroing, more than hashing it.
    pub fn with_buffer(target: usize, mut buf: Vec<u8>) -> Self {
        buf.clear();
        buf.reserve(target.min(TARGET_SIZE) + SLACK);
        buf.extend_from_slice(&MAGIC);
        buf.extend_from_slice(&VERSION.to_le_bytes());
        buf.extend_from_slice(&[0u8; 4]);
        Self {
            buf,
            entries: Vec::new(),
            target,
            crypt: Crypt::plain(),
        }
    }

    /// Makes this a pack of the repository `crypt` belongs to: for an
    /// encrypted one, version 2 with a sealed trailer. The chunks added must
    /// be sealed already (the blob layer does that).
    pub fn sealing(mut self, crypt: &Crypt) -> Self {
        if crypt.is_encrypted() {
            self.buf[8..12].copy_from_slice(&SEALED_VERSION.to_le_bytes());
        }
        self.crypt = crypt.clone();
        self
    }

    /// Appends one stored chunk.
    pub fn add(&mut self, chunk: ChunkId, codec: Codec, raw_len: u32, stored: &[u8]) {
        self.entries.push(PackEntry {
            chunk,
            offset: self.buf.len() as u64,
            stored_len: stored.len() as u32,
            raw_len,
            codec,
        });
        self.buf.extend_from_slice(stored);
    }

    /// Bytes of chunk data so far.
    pub fn data_len(&self) -> usize {
        self.buf.len() - HEADER_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.data_len() >= self.target
    }

    /// Whether `len` more stored bytes fit the room the buffer was made
    /// with (the target and half its 1 MiB of slack; the other half is for
    /// the trailer). A writer that is not empty and has no room should be
    /// finished first: a large blob (a tree of a directory of many files,
    /// the chunk list of a large file) added to a nearly full pack would
    /// make the buffer grow, doubling, to twice the pack.
    pub fn has_room(&self, len: usize) -> bool {
        self.is_empty() || self.data_len() + len <= self.target + SLACK / 2
    }

    /// Appends trailer and footer and names the pack.
    pub fn finish(mut self) -> SealedPack {
        let trailer_offset = self.buf.len() as u64;
        let mut trailer = Vec::with_capacity(self.entries.len() * ENTRY_LEN);
        for e in &self.entries {
            trailer.extend_from_slice(&e.chunk.0);
            trailer.extend_from_slice(&e.offset.to_le_bytes());
            trailer.extend_from_slice(&e.stored_len.to_le_bytes());
            trailer.extend_from_slice(&e.raw_len.to_le_bytes());
            trailer.push(e.codec as u8);
        }
        let version = if self.crypt.is_encrypted() {
            SEALED_VERSION
        } else {
            VERSION
        };
        self.buf
            .extend_from_slice(&self.crypt.seal(Sealed::PackTrailer, &trailer));
        let checksum = blake3::hash(&self.buf[trailer_offset as usize..]);
        self.buf.extend_from_slice(&trailer_offset.to_le_bytes());
        self.buf
            .extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&version.to_le_bytes());
        self.buf.extend_from_slice(checksum.as_bytes());
        self.buf.extend_from_slice(&END_MAGIC);
        SealedPack {
            id: PackId::of(&self.buf),
            bytes: self.buf,
            entries: self.entries,
        }
    }
}

/// The fixed-size footer, validated against the file size.
#[derive(Debug, Clone, Copy)]
pub struct Footer {
    pub trailer_offset: u64,
    pub count: u32,
    pub checksum: [u8; 32],
    /// [`VERSION`] or [`SEALED_VERSION`].
    pub version: u32,
}

impl Footer {
    /// Bytes of the trailer as stored (sealed: 40 more than the entries).
    pub fn trailer_len(&self) -> u64 {
        let entries = self.count as u64 * ENTRY_LEN as u64;
        match self.version {
            SEALED_VERSION => entries + seal::OVERHEAD as u64,
            _ => entries,
        }
    }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Checks the 16-byte header.
pub fn parse_header(header: &[u8]) -> std::result::Result<(), String> {
    if header.len() < HEADER_LEN || header[..8] != MAGIC {
        return Err("bad magic (not a cairn pack)".into());
    }
    match le_u32(header, 8) {
        VERSION | SEALED_VERSION => Ok(()),
        v => Err(format!("unsupported pack version {v}")),
    }
}

/// Parses the last [`FOOTER_LEN`] bytes of a pack of `file_len` bytes.
pub fn parse_footer(footer: &[u8], file_len: u64) -> std::result::Result<Footer, String> {
    if footer.len() != FOOTER_LEN || file_len < (HEADER_LEN + FOOTER_LEN) as u64 {
        return Err(format!("too short ({file_len} bytes) to be a pack"));
    }
    if footer[48..56] != END_MAGIC {
        return Err("footer magic missing (truncated pack?)".into());
    }
    let version = le_u32(footer, 12);
    if version != VERSION && version != SEALED_VERSION {
        return Err(format!("unsupported pack version {version}"));
    }
    let trailer_offset = le_u64(footer, 0);
    let count = le_u32(footer, 8);
    let parsed = Footer {
        trailer_offset,
        count,
        checksum: footer[16..48].try_into().expect("32 bytes"),
        version,
    };
    let expected = trailer_offset
        .checked_add(parsed.trailer_len() + FOOTER_LEN as u64)
        .filter(|_| trailer_offset >= HEADER_LEN as u64);
    if expected != Some(file_len) {
        return Err(format!(
            "footer says {count} entries at offset {trailer_offset}, which does not fit a {file_len}-byte file"
        ));
    }
    Ok(parsed)
}

/// Parses and validates the trailer entries described by `footer`, opening
/// a sealed one with `crypt`. A pack of the wrong kind for the repository
/// (sealed in a plain one, plain in an encrypted one) is refused.
pub fn parse_trailer(
    stored: &[u8],
    footer: &Footer,
    crypt: &Crypt,
) -> std::result::Result<Vec<PackEntry>, String> {
    if stored.len() as u64 != footer.trailer_len() {
        return Err("trailer length does not match the footer".into());
    }
    if blake3::hash(stored).as_bytes() != &footer.checksum {
        return Err("trailer checksum mismatch".into());
    }
    match (footer.version == SEALED_VERSION, crypt.is_encrypted()) {
        (true, false) => return Err("an encrypted pack in an unencrypted repository".into()),
        (false, true) => return Err("an unencrypted pack in an encrypted repository".into()),
        _ => {}
    }
    let trailer = crypt
        .open(Sealed::PackTrailer, stored)
        .map_err(|e| format!("trailer: {e}"))?;
    let trailer: &[u8] = &trailer;
    if trailer.len() != footer.count as usize * ENTRY_LEN {
        return Err("trailer length does not match the footer".into());
    }
    let mut entries = Vec::with_capacity(footer.count as usize);
    let mut next_free = HEADER_LEN as u64;
    for raw in trailer.chunks_exact(ENTRY_LEN) {
        let entry = PackEntry {
            chunk: ChunkId(raw[..32].try_into().expect("32 bytes")),
            offset: le_u64(raw, 32),
            stored_len: le_u32(raw, 40),
            raw_len: le_u32(raw, 44),
            codec: Codec::from_byte(raw[48]).ok_or_else(|| format!("unknown codec {}", raw[48]))?,
        };
        let end = entry.offset + entry.stored_len as u64;
        if entry.offset < next_free || end > footer.trailer_offset || entry.raw_len > MAX_CHUNK_LEN
        {
            return Err(format!(
                "entry for chunk {} has an impossible extent",
                entry.chunk
            ));
        }
        next_free = end;
        entries.push(entry);
    }
    Ok(entries)
}

/// Parses a whole unencrypted pack held in memory (the fuzzer's entry).
pub fn parse(bytes: &[u8]) -> std::result::Result<Vec<PackEntry>, String> {
    parse_with(bytes, &Crypt::plain())
}

/// Parses a whole pack of the repository `crypt` belongs to (used by check).
pub fn parse_with(bytes: &[u8], crypt: &Crypt) -> std::result::Result<Vec<PackEntry>, String> {
    parse_header(bytes)?;
    let len = bytes.len();
    let footer = parse_footer(&bytes[len.saturating_sub(FOOTER_LEN)..], len as u64)?;
    parse_trailer(
        &bytes[footer.trailer_offset as usize..len - FOOTER_LEN],
        &footer,
        crypt,
    )
}

/// Reads a pack's trailer through storage with two range reads.
pub fn read_entries(
    storage: &dyn Storage,
    crypt: &Crypt,
    id: &PackId,
    size: u64,
) -> Result<Vec<PackEntry>> {
    let key = key(id);
    let corrupt = |reason: String| Error::CorruptPack {
        pack: id.to_hex(),
        reason,
    };
    if size < (HEADER_LEN + FOOTER_LEN) as u64 {
        return Err(corrupt(format!("too short ({size} bytes) to be a pack")));
    }
    parse_header(&storage.get_range(&key, 0, HEADER_LEN as u64)?).map_err(corrupt)?;
    let footer_bytes = storage.get_range(&key, size - FOOTER_LEN as u64, FOOTER_LEN as u64)?;
    let footer = parse_footer(&footer_bytes, size).map_err(corrupt)?;
    let trailer = storage.get_range(&key, footer.trailer_offset, footer.trailer_len())?;
    parse_trailer(&trailer, &footer, crypt).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_pack(chunks: &[Vec<u8>]) -> SealedPack {
        let mut w = PackWriter::new();
        for c in chunks {
            let (codec, stored) =
                crate::format::codec::encode(c, 3, crate::format::codec::Hint::Bytes);
            w.add(ChunkId::of(c), codec, c.len() as u32, &stored);
        }
        w.finish()
    }

    /// A blob that would overflow the buffer's room does not fit a pack
    /// that holds anything, and anything fits an empty one.
    #[test]
    fn room_is_the_target_and_half_the_slack() {
        let mut w = PackWriter::with_target(1 << 20);
        assert!(w.has_room(16 << 20), "an empty pack takes any blob");
        let filler = vec![7u8; 1 << 20];
        w.add(
            ChunkId::of(&filler),
            Codec::Raw,
            filler.len() as u32,
            &filler[..(1 << 20) - 10],
        );
        assert!(!w.is_full());
        assert!(w.has_room(SLACK / 2 + 10));
        assert!(!w.has_room(SLACK / 2 + 11));
        let capacity = w.buf.capacity();
        w.add(ChunkId::of(b"x"), Codec::Raw, 1, &filler[..SLACK / 2 + 10]);
        assert!(w.is_full());
        assert_eq!(
            w.buf.capacity(),
            capacity,
            "a blob with room never grows the buffer"
        );
    }

    #[test]
    fn write_then_parse_gives_the_same_entries() {
        let chunks = vec![vec![1u8; 1000], b"hello".to_vec(), vec![]];
        let pack = sample_pack(&chunks);
        assert_eq!(pack.id, PackId::of(&pack.bytes));
        assert_eq!(parse(&pack.bytes).unwrap(), pack.entries);
        for (e, c) in pack.entries.iter().zip(&chunks) {
            let stored = &pack.bytes[e.offset as usize..][..e.stored_len as usize];
            assert_eq!(
                &crate::format::codec::decode(e.codec, stored, e.raw_len as usize).unwrap(),
                c
            );
        }
    }

    #[test]
    fn damaged_packs_are_rejected_not_panicked_on() {
        let pack = sample_pack(&[vec![9u8; 3000], vec![4u8; 10]]);
        let b = &pack.bytes;
        assert!(parse(&b[..b.len() - 1]).unwrap_err().contains("footer"));
        assert!(parse(&b[..10]).is_err());
        let mut flipped = b.clone();
        let trailer_byte = b.len() - FOOTER_LEN - 3;
        flipped[trailer_byte] ^= 1;
        assert!(parse(&flipped).unwrap_err().contains("checksum"));
        let mut bad_magic = b.clone();
        bad_magic[1] = b'X';
        assert!(parse(&bad_magic).is_err());
    }

    /// An encrypted repository's pack: version 2, trailer sealed (no chunk
    /// id in the clear), refused by the wrong kind of repository, and a
    /// flipped bit in the trailer found.
    #[test]
    fn sealed_trailer_round_trip_and_tamper() {
        let crypt = crate::format::seal::Crypt::with_keys(crate::format::seal::Keys::derive(
            crate::format::seal::SecretKey::from_bytes([5; 32]),
            "k",
        ));
        let mut w = PackWriter::new().sealing(&crypt);
        let id = ChunkId([0xab; 32]);
        w.add(id, Codec::Raw, 4, b"data");
        let pack = w.finish();
        let b = &pack.bytes;
        assert_eq!(le_u32(b, 8), SEALED_VERSION);
        assert_eq!(
            b.len(),
            HEADER_LEN + 4 + ENTRY_LEN + seal::OVERHEAD + FOOTER_LEN
        );
        assert!(!b.windows(32).any(|w| w == id.0), "no id in the clear");
        assert_eq!(parse_with(b, &crypt).unwrap(), pack.entries);
        assert!(parse(b).unwrap_err().contains("encrypted pack"));
        let plain = sample_pack(&[b"x".to_vec()]);
        assert!(parse_with(&plain.bytes, &crypt)
            .unwrap_err()
            .contains("unencrypted pack"));
        // A bit flipped in the sealed trailer, checksum recomputed (as a
        // writer of the bucket can): authentication still fails.
        let mut bad = b.clone();
        let at = HEADER_LEN + 4 + 30;
        bad[at] ^= 1;
        let trailer_end = bad.len() - FOOTER_LEN;
        let sum = blake3::hash(&bad[HEADER_LEN + 4..trailer_end]);
        bad[trailer_end + 16..trailer_end + 48].copy_from_slice(sum.as_bytes());
        assert!(parse_with(&bad, &crypt)
            .unwrap_err()
            .contains("authentication failed"));
    }

    #[test]
    fn key_round_trip() {
        let id = PackId::of(b"x");
        let k = key(&id);
        assert!(k.starts_with(&format!("packs/{}/", &id.to_hex()[..2])));
        assert_eq!(id_from_key(&k), Some(id));
        assert_eq!(id_from_key("snapshots/abc"), None);
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn round_trip_random_chunks(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let pack = sample_pack(&chunks);
            prop_assert_eq!(parse(&pack.bytes).unwrap(), pack.entries);
        }
    }
}
