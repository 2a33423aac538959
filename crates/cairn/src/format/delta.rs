//! Delta records (codec 3, docs/FORMAT.md "Delta chunks"): a chunk stored as
//! the difference to its *reference*, the bytes at the same tensor-relative
//! offsets in an earlier version of the same tensor.
//!
//! The reference is a byte range over standalone chunks: a list of segments
//! (chunk id, offset in that chunk, length) whose bytes, concatenated, are
//! exactly as long as the chunk. A chunk's boundaries in the new version
//! need not line up with the old version's chunks. References are never
//! delta chunks themselves (a writer composes through an old delta to its
//! keyframe), so decoding needs at most one level of lookups.
//!
//! The residual is the XOR (or the wrapping integer difference) of the
//! chunk's and the reference's `width`-byte little-endian words, stored as a
//! byte-plane record (codec 2 layout) or plain zstd.

use crate::format::byteplane::{self, Transform};
use crate::format::id::ChunkId;

/// Bytes before the segment list.
pub const HEADER_LEN: usize = 8;
/// Bytes per reference segment: chunk id, u32 offset, u32 length.
pub const SEGMENT_LEN: usize = 40;
/// Most segments in one record (a chunk of at most 16 MiB never needs more
/// than a few; the cap bounds what a hostile record makes a reader fetch).
pub const MAX_SEGMENTS: usize = 4096;

/// How the residual is formed from chunk word `c` and reference word `r`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `c ^ r`: sign and exponent bits that did not change become zero.
    Xor = 0,
    /// `c - r` (wrapping, as unsigned little-endian words of `width`).
    Sub = 1,
}

/// One piece of a reference: `len` bytes at `offset` of chunk `chunk`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Segment {
    pub chunk: ChunkId,
    pub offset: u32,
    pub len: u32,
}

/// A delta record's header: everything but the residual.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaHeader {
    /// Word width in bytes (1, 2, 4 or 8).
    pub width: u8,
    pub op: Op,
    /// Versions since the keyframe (1 for a delta against a standalone
    /// version): the writer starts a new keyframe past its interval.
    pub age: u8,
    pub segments: Vec<Segment>,
}

impl DeltaHeader {
    /// Total reference length (must equal the chunk's raw length).
    pub fn reference_len(&self) -> u64 {
        self.segments.iter().map(|s| s.len as u64).sum()
    }
}

/// Residual encodings.
const BODY_PLANES: u8 = 2;
const BODY_ZSTD: u8 = 1;
const BODY_RAW: u8 = 0;

/// Encodes `raw` against `reference` (same length). The residual goes
/// into byte planes of `width` with zstd at `level` (float rotation when
/// `float`, which commutes with XOR).
pub fn encode(
    raw: &[u8],
    reference: &[u8],
    header: &DeltaHeader,
    float: bool,
    level: i32,
) -> Vec<u8> {
    assert_eq!(
        raw.len(),
        reference.len(),
        "a reference is as long as its chunk"
    );
    let residual = residual(raw, reference, header.width as usize, header.op);
    let mut out =
        Vec::with_capacity(HEADER_LEN + SEGMENT_LEN * header.segments.len() + raw.len() / 4);
    out.push(header.width);
    out.push(header.op as u8);
    out.push(header.age);
    out.push(0);
    out.extend_from_slice(&(header.segments.len() as u32).to_le_bytes());
    for s in &header.segments {
        out.extend_from_slice(&s.chunk.0);
        out.extend_from_slice(&s.offset.to_le_bytes());
        out.extend_from_slice(&s.len.to_le_bytes());
    }
    let width = header.width as usize;
    let body = if width >= 2 {
        let t = if float && matches!(width, 2 | 4 | 8) && header.op == Op::Xor {
            Transform::FloatRotate
        } else {
            Transform::Bytes
        };
        (
            BODY_PLANES,
            byteplane::encode_with(&residual, width, t, level.max(1)),
        )
    } else {
        match zstd::bulk::compress(&residual, level.max(1)) {
            Ok(z) => (BODY_ZSTD, z),
            Err(_) => (BODY_RAW, residual),
        }
    };
    out.push(body.0);
    out.extend_from_slice(&body.1);
    out
}

/// Parses the header of a delta record; `Err` names what is wrong.
pub fn parse_header(stored: &[u8]) -> Result<(DeltaHeader, &[u8]), String> {
    if stored.len() < HEADER_LEN + 1 {
        return Err("delta record shorter than its header".into());
    }
    let width = stored[0];
    if !matches!(width, 1 | 2 | 4 | 8) {
        return Err(format!("delta word width {width} is not 1, 2, 4 or 8"));
    }
    let op = match stored[1] {
        0 => Op::Xor,
        1 => Op::Sub,
        b => return Err(format!("unknown delta operation {b}")),
    };
    let age = stored[2];
    if age == 0 || stored[3] != 0 {
        return Err("delta record: zero age or reserved byte set".into());
    }
    let n = u32::from_le_bytes(stored[4..8].try_into().expect("4 bytes")) as usize;
    if n == 0 || n > MAX_SEGMENTS || stored.len() < HEADER_LEN + n * SEGMENT_LEN + 1 {
        return Err(format!("delta record: {n} reference segments do not fit"));
    }
    let segments = stored[HEADER_LEN..HEADER_LEN + n * SEGMENT_LEN]
        .chunks_exact(SEGMENT_LEN)
        .map(|s| Segment {
            chunk: ChunkId::from_slice(&s[..32]).expect("32 bytes"),
            offset: u32::from_le_bytes(s[32..36].try_into().expect("4 bytes")),
            len: u32::from_le_bytes(s[36..40].try_into().expect("4 bytes")),
        })
        .collect();
    let header = DeltaHeader {
        width,
        op,
        age,
        segments,
    };
    Ok((header, &stored[HEADER_LEN + n * SEGMENT_LEN..]))
}

/// Decodes a delta record whose reference bytes are `reference`, to
/// exactly `raw_len` bytes.
pub fn decode(stored: &[u8], reference: &[u8], raw_len: usize) -> Result<Vec<u8>, String> {
    let (header, body) = parse_header(stored)?;
    if reference.len() != raw_len || header.reference_len() != raw_len as u64 {
        return Err(format!(
            "reference is {} bytes, chunk {raw_len}",
            header.reference_len()
        ));
    }
    let (kind, body) = (body[0], &body[1..]);
    let residual = match kind {
        BODY_PLANES => {
            let w = *body.first().ok_or("empty residual planes")? as usize;
            if w != header.width as usize {
                return Err("residual plane width differs from the delta width".into());
            }
            byteplane::decode(body, w, raw_len).map_err(|e| format!("residual planes: {e}"))?
        }
        BODY_ZSTD => zstd::bulk::decompress(body, raw_len).map_err(|e| format!("zstd: {e}"))?,
        BODY_RAW => body.to_vec(),
        b => return Err(format!("unknown residual encoding {b}")),
    };
    if residual.len() != raw_len {
        return Err(format!(
            "residual is {} bytes, expected {raw_len}",
            residual.len()
        ));
    }
    Ok(apply(
        &residual,
        reference,
        header.width as usize,
        header.op,
    ))
}

/// The residual of `raw` against `reference`.
pub fn residual(raw: &[u8], reference: &[u8], width: usize, op: Op) -> Vec<u8> {
    combine(raw, reference, width, op, false)
}

/// Undoes [`residual`].
fn apply(residual: &[u8], reference: &[u8], width: usize, op: Op) -> Vec<u8> {
    combine(residual, reference, width, op, true)
}

fn combine(a: &[u8], b: &[u8], width: usize, op: Op, inverse: bool) -> Vec<u8> {
    match op {
        Op::Xor => a.iter().zip(b).map(|(x, y)| x ^ y).collect(),
        Op::Sub => {
            let mut out = Vec::with_capacity(a.len());
            let whole = a.len() / width * width;
            for (x, y) in a[..whole]
                .chunks_exact(width)
                .zip(b[..whole].chunks_exact(width))
            {
                let (mut xb, mut yb) = ([0u8; 8], [0u8; 8]);
                xb[..width].copy_from_slice(x);
                yb[..width].copy_from_slice(y);
                let (xv, yv) = (u64::from_le_bytes(xb), u64::from_le_bytes(yb));
                let v = if inverse {
                    xv.wrapping_add(yv)
                } else {
                    xv.wrapping_sub(yv)
                };
                out.extend_from_slice(&v.to_le_bytes()[..width]);
            }
            // A tail shorter than a word is XORed.
            out.extend(a[whole..].iter().zip(&b[whole..]).map(|(x, y)| x ^ y));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(width: u8, op: Op, len: u32) -> DeltaHeader {
        DeltaHeader {
            width,
            op,
            age: 1,
            segments: vec![
                Segment {
                    chunk: ChunkId([1; 32]),
                    offset: 7,
                    len: len / 2,
                },
                Segment {
                    chunk: ChunkId([2; 32]),
                    offset: 0,
                    len: len - len / 2,
                },
            ],
        }
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 1..3000), seed: u8, w in prop::sample::select(vec![1u8, 2, 4, 8]), sub: bool, float: bool) {
            let reference: Vec<u8> = data.iter().enumerate().map(|(i, b)| b ^ (i as u8).wrapping_mul(seed)).collect();
            let op = if sub { Op::Sub } else { Op::Xor };
            let h = header(w, op, data.len() as u32);
            let stored = encode(&data, &reference, &h, float, 1);
            let (parsed, _) = parse_header(&stored).unwrap();
            prop_assert_eq!(&parsed, &h);
            prop_assert_eq!(decode(&stored, &reference, data.len()).unwrap(), data);
        }
    }

    #[test]
    fn rejects_garbage_and_wrong_reference() {
        let data = vec![5u8; 1000];
        let h = header(2, Op::Xor, 1000);
        let stored = encode(&data, &data, &h, true, 1);
        assert!(decode(&stored, &data[..999], 999).is_err());
        assert!(parse_header(b"").is_err());
        let mut bad = stored.clone();
        bad[0] = 3;
        assert!(parse_header(&bad).is_err());
        let mut bad = stored.clone();
        bad[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_header(&bad).is_err());
        let mut bad = stored;
        bad[2] = 0;
        assert!(parse_header(&bad).is_err());
    }

    /// A small change of bf16 weights: the XOR delta is far smaller than
    /// the weights stored standalone.
    #[test]
    fn delta_of_a_small_update_is_small() {
        let (old, _) = crate::format::byteplane::tests::weights("bf16", 1 << 18);
        let new: Vec<u8> = old
            .chunks_exact(2)
            .enumerate()
            .flat_map(|(i, w)| {
                let v = u16::from_le_bytes([w[0], w[1]]);
                let v = if i % 3 == 0 { v ^ 1 } else { v };
                v.to_le_bytes()
            })
            .collect();
        let standalone = byteplane::encode_with(&new, 2, Transform::FloatRotate, 1);
        let delta = encode(&new, &old, &header(2, Op::Xor, new.len() as u32), true, 1);
        assert!(
            delta.len() * 4 < standalone.len(),
            "{} vs {}",
            delta.len(),
            standalone.len()
        );
    }
}
