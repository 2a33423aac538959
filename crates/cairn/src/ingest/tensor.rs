//! Tensor data regions in model files (safetensors, GGUF v2/v3, PyTorch zip
//! checkpoints).
//!
//! # Role
//! The chunker forces chunk boundaries at tensor starts ([`boundaries`]) so
//! that an unchanged tensor dedups even when an earlier one changed size, and
//! the codec picks a byte-plane width per chunk from the tensor's dtype
//! ([`dtype_at`], [`Dtype::width`]). Files with no recognised layout can
//! still get a width from [`predict_width`] on a sample.
//!
//! # Invariants of a returned [`TensorLayout`]
//! * every region lies inside the file: `data_start <= offset` and
//!   `offset + len <= file_len`;
//! * regions are sorted by `offset` and do not overlap;
//! * zero-length tensors are omitted (they own no bytes);
//! * GGUF tensors of a ggml type whose block size is unknown to this module
//!   are omitted (their length cannot be computed); all other regions have
//!   their length checked against shape × element size.
//!
//! # Hostile input
//! [`parse_layout`] never panics and never allocates from an unchecked
//! length: the safetensors header is read only if its length is at most
//! [`MAX_SAFETENSORS_HEADER`] and fits in the file; GGUF counts and string
//! lengths are checked against the bytes left in the file before anything is
//! read or reserved. The result is:
//! * `Ok(None)`: not a model file we know. Decided from at most the first 9
//!   bytes: neither the GGUF magic, nor a zip's local header magic, nor a
//!   plausible safetensors prefix (an 8-byte length `N` with `2 <= N <=
//!   min(MAX_SAFETENSORS_HEADER, file_len - 8)` followed by `{`). A zip
//!   that is not a readable PyTorch checkpoint is `Ok(None)` too (see
//!   [`torchzip`] for when); deciding that reads its tail, central
//!   directory and `data.pkl`, each bounded by the file.
//! * `Err(TensorError)`: the prefix matched, but the header is malformed,
//!   truncated, of an unsupported version (incl. GGUF v1 and big-endian
//!   GGUF), or describes regions outside the file or overlapping. A caller
//!   should treat this like `Ok(None)` (chunk the file generically) and may
//!   log it; it is not a reason to fail a backup. The exception is
//!   `TensorError::Io`: a real read error (or a file shorter than
//!   `file_len`), which the caller may want to report like any other.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

mod gguf;
mod pickle;
mod safetensors;
pub mod torchzip;

use gguf::parse_gguf;
use safetensors::parse_safetensors;

/// Largest safetensors JSON header we read (the reference implementation
/// uses the same 100 MiB cap).
pub const MAX_SAFETENSORS_HEADER: u64 = 100 << 20;

/// Sample size [`predict_width`] looks at; longer samples are truncated.
pub const PREDICT_SAMPLE: usize = 256 << 10;

/// Element type of a tensor region. Serialized and displayed with the
/// safetensors spelling (`"BF16"`, `"F8_E4M3"`, `"BOOL"`, ...); every type
/// without its own variant (U16, quantised GGUF blocks, ...) is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dtype {
    BF16,
    F16,
    F32,
    F64,
    #[serde(rename = "F8_E4M3")]
    F8E4M3,
    #[serde(rename = "F8_E5M2")]
    F8E5M2,
    I8,
    U8,
    I16,
    I32,
    I64,
    #[serde(rename = "BOOL")]
    Bool,
    #[serde(rename = "OTHER")]
    Other,
}

impl Dtype {
    /// Bytes per element, `None` for `Other`.
    pub fn width(self) -> Option<usize> {
        use Dtype::*;
        match self {
            F8E4M3 | F8E5M2 | I8 | U8 | Bool => Some(1),
            BF16 | F16 | I16 => Some(2),
            F32 | I32 => Some(4),
            F64 | I64 => Some(8),
            Other => None,
        }
    }

    /// Sign-magnitude float (sign in the top bit): the byte-plane codec's
    /// `Transform::FloatRotate` helps these.
    pub fn is_float(self) -> bool {
        use Dtype::*;
        matches!(self, BF16 | F16 | F32 | F64 | F8E4M3 | F8E5M2)
    }

    /// The safetensors name, as used by `Display` and serde.
    pub fn name(self) -> &'static str {
        use Dtype::*;
        match self {
            BF16 => "BF16",
            F16 => "F16",
            F32 => "F32",
            F64 => "F64",
            F8E4M3 => "F8_E4M3",
            F8E5M2 => "F8_E5M2",
            I8 => "I8",
            U8 => "U8",
            I16 => "I16",
            I32 => "I32",
            I64 => "I64",
            Bool => "BOOL",
            Other => "OTHER",
        }
    }

    /// Map a safetensors dtype string. Also returns the element width for
    /// validation, which is known for some `Other` types too (U16, U32, ...).
    fn from_safetensors(s: &str) -> (Dtype, Option<u64>) {
        use Dtype::*;
        let d = [
            BF16, F16, F32, F64, F8E4M3, F8E5M2, I8, U8, I16, I32, I64, Bool,
        ]
        .into_iter()
        .find(|d| d.name() == s)
        .unwrap_or(Other);
        let w = match (d, s) {
            (Other, "U16") => Some(2),
            (Other, "U32") => Some(4),
            (Other, "U64" | "C64") => Some(8),
            (Other, "F8_E8M0") => Some(1),
            _ => d.width().map(|w| w as u64),
        };
        (d, w)
    }

    /// Map a ggml type id to (dtype, elements per block, bytes per block).
    /// `None` for ids whose block layout is unknown (removed or future ones).
    fn from_ggml(t: u32) -> Option<(Dtype, u64, u64)> {
        use Dtype::*;
        let (blk, size) = match t {
            0 => return Some((F32, 1, 4)),
            1 => return Some((F16, 1, 2)),
            24 => return Some((I8, 1, 1)),
            25 => return Some((I16, 1, 2)),
            26 => return Some((I32, 1, 4)),
            27 => return Some((I64, 1, 8)),
            28 => return Some((F64, 1, 8)),
            30 => return Some((BF16, 1, 2)),
            2 | 20 => (32, 18),    // Q4_0, IQ4_NL
            3 => (32, 20),         // Q4_1
            6 => (32, 22),         // Q5_0
            7 => (32, 24),         // Q5_1
            8 => (32, 34),         // Q8_0
            9 => (32, 36),         // Q8_1
            10 => (256, 84),       // Q2_K
            11 | 21 => (256, 110), // Q3_K, IQ3_S
            12 => (256, 144),      // Q4_K
            13 => (256, 176),      // Q5_K
            14 => (256, 210),      // Q6_K
            15 => (256, 292),      // Q8_K
            16 | 35 => (256, 66),  // IQ2_XXS, TQ2_0
            17 => (256, 74),       // IQ2_XS
            18 => (256, 98),       // IQ3_XXS
            19 => (256, 50),       // IQ1_S
            22 => (256, 82),       // IQ2_S
            23 => (256, 136),      // IQ4_XS
            29 => (256, 56),       // IQ1_M
            34 => (256, 54),       // TQ1_0
            39 => (32, 17),        // MXFP4
            _ => return None,
        };
        Some((Other, blk, size))
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One tensor's bytes in the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorRegion {
    pub name: String,
    pub dtype: Dtype,
    /// Absolute file offset.
    pub offset: u64,
    pub len: u64,
}

/// Recognised model file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    Safetensors,
    Gguf,
    /// `torch.save` (zip) checkpoint; regions are the `data/<key>` storages.
    PyTorchZip,
}

/// Where the tensors of a model file are. See the module docs for invariants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorLayout {
    pub format: Format,
    /// Absolute offset of the tensor data section (end of the header).
    pub data_start: u64,
    /// Sorted by `offset`, non-overlapping, non-empty.
    pub tensors: Vec<TensorRegion>,
}

/// Why a file that looked like a model could not be laid out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TensorError {
    #[error("reading model header: {0}")]
    Io(#[from] io::Error),
    #[error("safetensors header: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported GGUF version {0:#x}")]
    UnsupportedVersion(u32),
    #[error("header truncated: needs {need} bytes at offset {at}, file has {file_len}")]
    Truncated { at: u64, need: u64, file_len: u64 },
    #[error("malformed header: {0}")]
    Malformed(String),
    #[error("tensor {name:?}: region at {offset} (+{len}) is outside the file")]
    OutOfBounds { name: String, offset: u64, len: u64 },
    #[error("tensor {name:?}: {len} bytes, but shape and dtype need {expected}")]
    SizeMismatch {
        name: String,
        len: u64,
        expected: u64,
    },
    #[error("tensors {first:?} and {second:?} overlap")]
    Overlap { first: String, second: String },
}

pub(super) fn malformed(msg: impl Into<String>) -> TensorError {
    TensorError::Malformed(msg.into())
}

/// Find the tensor regions of a safetensors, GGUF or PyTorch zip file. `r` may be at any
/// position; `file_len` is the file's length. See the module docs for when
/// this returns `Ok(None)` versus an error.
pub fn parse_layout<R: Read + Seek>(
    r: &mut R,
    file_len: u64,
) -> Result<Option<TensorLayout>, TensorError> {
    let mut probe = [0u8; 9];
    if file_len < probe.len() as u64 {
        return Ok(None);
    }
    r.seek(SeekFrom::Start(0))?;
    r.read_exact(&mut probe)?;
    if probe[..4] == *b"GGUF" {
        return parse_gguf(r, file_len).map(Some);
    }
    if probe[..4] == torchzip::LOCAL_MAGIC {
        return torchzip::parse(r, file_len);
    }
    let n = u64::from_le_bytes([
        probe[0], probe[1], probe[2], probe[3], probe[4], probe[5], probe[6], probe[7],
    ]);
    if (2..=MAX_SAFETENSORS_HEADER.min(file_len - 8)).contains(&n) && probe[8] == b'{' {
        return parse_safetensors(r, n, file_len).map(Some);
    }
    Ok(None)
}

/// Forced chunk boundaries: `data_start`, every tensor start and the end of
/// the last tensor; sorted and deduplicated.
pub fn boundaries(layout: &TensorLayout) -> Vec<u64> {
    let mut b = Vec::with_capacity(layout.tensors.len() + 2);
    b.push(layout.data_start);
    b.extend(layout.tensors.iter().map(|t| t.offset));
    b.extend(layout.tensors.last().map(|t| t.offset + t.len));
    b.sort_unstable();
    b.dedup();
    b
}

/// The tensor whose bytes contain absolute `offset`, if any (binary search).
pub fn region_at(layout: &TensorLayout, offset: u64) -> Option<&TensorRegion> {
    let i = layout.tensors.partition_point(|t| t.offset <= offset);
    let t = layout.tensors.get(i.checked_sub(1)?)?;
    (offset - t.offset < t.len).then_some(t)
}

/// Dtype of the tensor containing absolute `offset` (e.g. a chunk's first
/// byte); `None` in the header, padding or past the last tensor.
pub fn dtype_at(layout: &TensorLayout, offset: u64) -> Option<Dtype> {
    region_at(layout, offset).map(|t| t.dtype)
}

/// Guess a byte-plane width (2 or 4) for data with no known layout: returns
/// the width whose byte-plane encoding of `sample` (first
/// [`PREDICT_SAMPLE`] bytes) at zstd level 1 is at least 5% smaller than
/// plain zstd level 1, preferring the smaller output. About three level-1
/// compressions of the sample (~1 ms for 256 KiB).
pub fn predict_width(sample: &[u8]) -> Option<usize> {
    let sample = &sample[..sample.len().min(PREDICT_SAMPLE)];
    // Below this, the per-plane zstd overhead dominates and says nothing.
    if sample.len() < 4096 {
        return None;
    }
    let plain = zstd::bulk::compress(sample, 1).map_or(sample.len(), |z| z.len());
    let (size, width) = [2, 4]
        .into_iter()
        .map(|w| (crate::format::byteplane::encode(sample, w, 1).len(), w))
        .min()?;
    // size <= 0.95 * plain, in integers.
    (size * 20 <= plain * 19).then_some(width)
}

/// Bounds-check a region at absolute `offset` (None = overflowed).
pub(super) fn region(
    name: String,
    dtype: Dtype,
    offset: Option<u64>,
    len: u64,
    file_len: u64,
) -> Result<Option<TensorRegion>, TensorError> {
    let end = offset.and_then(|o| o.checked_add(len));
    match (offset, end) {
        (Some(offset), Some(end)) if end <= file_len => Ok((len > 0).then_some(TensorRegion {
            name,
            dtype,
            offset,
            len,
        })),
        _ => Err(TensorError::OutOfBounds {
            name,
            offset: offset.unwrap_or(u64::MAX),
            len,
        }),
    }
}

/// Sort regions and reject overlaps.
pub(super) fn finish(
    format: Format,
    data_start: u64,
    mut tensors: Vec<TensorRegion>,
) -> Result<TensorLayout, TensorError> {
    tensors.sort_unstable_by_key(|t| (t.offset, t.len));
    for pair in tensors.windows(2) {
        if pair[0].offset + pair[0].len > pair[1].offset {
            return Err(TensorError::Overlap {
                first: pair[0].name.clone(),
                second: pair[1].name.clone(),
            });
        }
    }
    Ok(TensorLayout {
        format,
        data_start,
        tensors,
    })
}

#[cfg(test)]
pub(crate) mod tests;
