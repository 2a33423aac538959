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

mod pickle;
pub mod torchzip;

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

fn malformed(msg: impl Into<String>) -> TensorError {
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

// ---------------------------------------------------------------------------
// safetensors
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct StInfo {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// The header as (name, info) pairs; `__metadata__` is skipped without
/// building it, so memory stays proportional to the number of tensors.
struct StHeader(Vec<(String, StInfo)>);

impl<'de> Deserialize<'de> for StHeader {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StHeader;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a safetensors header object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<StHeader, A::Error> {
                let mut v = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    if k == "__metadata__" {
                        m.next_value::<serde::de::IgnoredAny>()?;
                    } else {
                        let info = m.next_value::<StInfo>()?;
                        v.push((k, info));
                    }
                }
                Ok(StHeader(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// `n` has been checked against the cap and the file length by the caller.
fn parse_safetensors<R: Read + Seek>(
    r: &mut R,
    n: u64,
    file_len: u64,
) -> Result<TensorLayout, TensorError> {
    r.seek(SeekFrom::Start(8))?;
    let mut json = Vec::with_capacity(n as usize);
    r.take(n).read_to_end(&mut json)?;
    if json.len() as u64 != n {
        return Err(TensorError::Truncated {
            at: 8,
            need: n,
            file_len,
        });
    }
    let StHeader(entries) = serde_json::from_slice(&json)?;
    let data_start = 8 + n;
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, info) in entries {
        if let Some(t) = st_region(name, &info, data_start, file_len)? {
            tensors.push(t);
        }
    }
    finish(Format::Safetensors, data_start, tensors)
}

/// Validate one safetensors entry; `None` for an empty tensor.
fn st_region(
    name: String,
    info: &StInfo,
    data_start: u64,
    file_len: u64,
) -> Result<Option<TensorRegion>, TensorError> {
    let [begin, end] = info.data_offsets;
    let (dtype, width) = Dtype::from_safetensors(&info.dtype);
    let len = end
        .checked_sub(begin)
        .ok_or_else(|| malformed(format!("tensor {name:?}: data_offsets end before begin")))?;
    if let Some(w) = width {
        let expected = info
            .shape
            .iter()
            .try_fold(w, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| malformed(format!("tensor {name:?}: shape overflows")))?;
        if expected != len {
            return Err(TensorError::SizeMismatch {
                name,
                len,
                expected,
            });
        }
    }
    region(name, dtype, data_start.checked_add(begin), len, file_len)
}

/// Bounds-check a region at absolute `offset` (None = overflowed).
fn region(
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
fn finish(
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

// ---------------------------------------------------------------------------
// GGUF
// ---------------------------------------------------------------------------

/// Longest tensor name we accept (ggml's own limit is 64 bytes).
const GGUF_MAX_NAME: u64 = 64 << 10;
/// ggml tensors have at most 4 dimensions; allow some headroom.
const GGUF_MAX_DIMS: u32 = 8;
/// Nesting limit for arrays of arrays in metadata values.
const GGUF_MAX_DEPTH: u32 = 8;
/// Smallest possible tensor info: name length (8), n_dims (4), type (4),
/// offset (8) with an empty name and no dims. Bounds tensor_count.
const GGUF_MIN_TENSOR_INFO: u64 = 24;
/// Smallest possible metadata KV: key length (8), type (4), 1-byte value.
const GGUF_MIN_KV: u64 = 13;
const GGUF_TYPE_U32: u32 = 4;
const GGUF_TYPE_STRING: u32 = 8;
const GGUF_TYPE_ARRAY: u32 = 9;

/// Buffered little-endian reader that knows its absolute position and
/// refuses any read or skip that would pass `file_len`.
struct Gguf<R> {
    r: BufReader<R>,
    pos: u64,
    file_len: u64,
}

impl<R: Read + Seek> Gguf<R> {
    fn need(&self, n: u64) -> Result<(), TensorError> {
        if n > self.file_len.saturating_sub(self.pos) {
            return Err(TensorError::Truncated {
                at: self.pos,
                need: n,
                file_len: self.file_len,
            });
        }
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TensorError> {
        self.need(N as u64)?;
        let mut b = [0u8; N];
        self.r.read_exact(&mut b)?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, TensorError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, TensorError> {
        self.array().map(u64::from_le_bytes)
    }

    fn skip(&mut self, n: u64) -> Result<(), TensorError> {
        self.need(n)?;
        let step = i64::try_from(n).map_err(|_| malformed("skip too large"))?;
        self.r.seek_relative(step)?;
        self.pos += n;
        Ok(())
    }

    /// A length-prefixed string of at most `cap` bytes (lossy UTF-8).
    fn string(&mut self, cap: u64) -> Result<String, TensorError> {
        let len = self.u64()?;
        if len > cap {
            return Err(malformed(format!(
                "string of {len} bytes at offset {}",
                self.pos
            )));
        }
        self.need(len)?;
        let mut b = vec![0u8; len as usize];
        self.r.read_exact(&mut b)?;
        self.pos += len;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    /// Read a count of items each at least `min_size` bytes, rejecting
    /// counts the rest of the file cannot hold.
    fn count(&mut self, min_size: u64) -> Result<u64, TensorError> {
        let n = self.u64()?;
        self.need(n.saturating_mul(min_size))?;
        Ok(n)
    }
}

/// Fixed byte size of a scalar GGUF metadata type.
fn gguf_scalar_size(t: u32) -> Option<u64> {
    match t {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

fn parse_gguf<R: Read + Seek>(r: &mut R, file_len: u64) -> Result<TensorLayout, TensorError> {
    r.seek(SeekFrom::Start(4))?;
    let mut g = Gguf {
        r: BufReader::with_capacity(64 << 10, r),
        pos: 4,
        file_len,
    };
    let version = g.u32()?;
    if !(2..=3).contains(&version) {
        return Err(TensorError::UnsupportedVersion(version));
    }
    let tensor_count = g.u64()?;
    let kv_count = g.count(GGUF_MIN_KV)?;
    let mut alignment = 32u64;
    for _ in 0..kv_count {
        if let Some(a) = gguf_kv(&mut g)? {
            alignment = a;
        }
    }
    g.need(tensor_count.saturating_mul(GGUF_MIN_TENSOR_INFO))?;
    // Grow with what is actually read: capacity is never taken on trust.
    let mut infos = Vec::with_capacity(tensor_count.min(4096) as usize);
    for _ in 0..tensor_count {
        infos.push(gguf_tensor_info(&mut g)?);
    }
    let data_start = g
        .pos
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| malformed("data section offset overflows"))?;
    let mut tensors = Vec::with_capacity(infos.len());
    for (name, rel, ty) in infos {
        if rel % alignment != 0 {
            return Err(malformed(format!(
                "tensor {name:?}: offset {rel} not aligned to {alignment}"
            )));
        }
        if let Some((dtype, len)) = ty {
            tensors.extend(region(
                name,
                dtype,
                data_start.checked_add(rel),
                len,
                file_len,
            )?);
        }
    }
    // A tensor-less file (e.g. vocab only) may end before the padding.
    let data_start = if tensors.is_empty() {
        data_start.min(file_len)
    } else {
        data_start
    };
    finish(Format::Gguf, data_start, tensors)
}

/// Read one metadata KV; returns the alignment if this was
/// `general.alignment`.
fn gguf_kv<R: Read + Seek>(g: &mut Gguf<R>) -> Result<Option<u64>, TensorError> {
    const KEY: &[u8] = b"general.alignment";
    let key_len = g.u64()?;
    let is_alignment = if key_len == KEY.len() as u64 {
        g.array::<17>()? == *KEY
    } else {
        g.skip(key_len)?;
        false
    };
    let ty = g.u32()?;
    if !is_alignment {
        gguf_skip_value(g, ty, 0)?;
        return Ok(None);
    }
    if ty != GGUF_TYPE_U32 {
        return Err(malformed(format!(
            "general.alignment has type {ty}, expected uint32"
        )));
    }
    match g.u32()? {
        a if a.is_power_of_two() => Ok(Some(u64::from(a))),
        a => Err(malformed(format!(
            "general.alignment {a} is not a power of two"
        ))),
    }
}

/// Skip one metadata value of type `ty`. Work is bounded by the file: fixed
/// arrays are skipped in one seek, variable ones are count-checked first.
fn gguf_skip_value<R: Read + Seek>(
    g: &mut Gguf<R>,
    ty: u32,
    depth: u32,
) -> Result<(), TensorError> {
    if let Some(size) = gguf_scalar_size(ty) {
        return g.skip(size);
    }
    match ty {
        GGUF_TYPE_STRING => {
            let len = g.u64()?;
            g.skip(len)
        }
        GGUF_TYPE_ARRAY if depth < GGUF_MAX_DEPTH => {
            let elem = g.u32()?;
            if let Some(size) = gguf_scalar_size(elem) {
                let n = g.u64()?;
                return g.skip(
                    n.checked_mul(size)
                        .ok_or_else(|| malformed("array too large"))?,
                );
            }
            // A string is at least its 8-byte length, an array its 12-byte header.
            let n = g.count(if elem == GGUF_TYPE_STRING { 8 } else { 12 })?;
            (0..n).try_for_each(|_| gguf_skip_value(g, elem, depth + 1))
        }
        GGUF_TYPE_ARRAY => Err(malformed("metadata arrays nested too deeply")),
        _ => Err(malformed(format!("unknown metadata value type {ty}"))),
    }
}

/// One tensor info: (name, offset relative to the data section, and
/// (dtype, byte length) when the ggml type is known).
type GgufInfo = (String, u64, Option<(Dtype, u64)>);

fn gguf_tensor_info<R: Read + Seek>(g: &mut Gguf<R>) -> Result<GgufInfo, TensorError> {
    let name = g.string(GGUF_MAX_NAME)?;
    let n_dims = g.u32()?;
    if n_dims > GGUF_MAX_DIMS {
        return Err(malformed(format!("tensor {name:?}: {n_dims} dimensions")));
    }
    let mut dims = [0u64; GGUF_MAX_DIMS as usize];
    for d in dims.iter_mut().take(n_dims as usize) {
        *d = g.u64()?;
    }
    let dims = &dims[..n_dims as usize];
    let ty = g.u32()?;
    let rel = g.u64()?;
    let Some((dtype, blk, size)) = Dtype::from_ggml(ty) else {
        return Ok((name, rel, None));
    };
    // ggml packs blocks along the first dimension: it must be whole blocks.
    let row = dims.first().copied().unwrap_or(1);
    if row % blk != 0 {
        return Err(malformed(format!(
            "tensor {name:?}: row of {row} is not whole blocks of {blk}"
        )));
    }
    let len = dims
        .iter()
        .skip(1)
        .fold((row / blk).checked_mul(size), |acc, &d| acc?.checked_mul(d))
        .ok_or_else(|| malformed(format!("tensor {name:?}: size overflows")))?;
    Ok((name, rel, Some((dtype, len))))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Cursor;

    pub(crate) fn parse(bytes: &[u8]) -> Result<Option<TensorLayout>, TensorError> {
        parse_layout(&mut Cursor::new(bytes), bytes.len() as u64)
    }

    /// Applies byte `edits` to `file`; whatever still parses must keep every
    /// region inside the file and no two overlapping.
    pub(crate) fn check_mutated(
        mut file: Vec<u8>,
        edits: Vec<(usize, u8)>,
    ) -> Result<(), TestCaseError> {
        for (i, b) in edits {
            let n = file.len();
            file[i % n] = b;
        }
        if let Ok(Some(l)) = parse(&file) {
            prop_assert!(l
                .tensors
                .iter()
                .all(|t| t.offset + t.len <= file.len() as u64));
            prop_assert!(l
                .tensors
                .windows(2)
                .all(|w| w[0].offset + w[0].len <= w[1].offset));
        }
        Ok(())
    }

    // ---- builders ----

    fn safetensors(header: &str, data_len: usize) -> Vec<u8> {
        let mut f = (header.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(header.as_bytes());
        f.resize(f.len() + data_len, 0xAB);
        f
    }

    fn st_sample() -> Vec<u8> {
        // Keys out of offset order, metadata, trailing-space padding.
        let h = r#"{"b":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]},
            "__metadata__":{"format":"pt","nested":{"x":[1,2,{"y":null}]}},
            "a":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]},
            "empty":{"dtype":"F16","shape":[0,3],"data_offsets":[24,24]},
            "u":{"dtype":"U16","shape":[3],"data_offsets":[24,30]},
            "q":{"dtype":"F4","shape":[7],"data_offsets":[30,34]}}   "#;
        safetensors(h, 34)
    }

    #[derive(Default)]
    struct GgufBuilder {
        kv: Vec<u8>,
        kv_count: u64,
        infos: Vec<u8>,
        tensor_count: u64,
        version: u32,
    }

    impl GgufBuilder {
        fn new() -> Self {
            GgufBuilder {
                version: 3,
                ..Default::default()
            }
        }
        fn str_into(buf: &mut Vec<u8>, s: &str) {
            buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
            buf.extend_from_slice(s.as_bytes());
        }
        fn kv(mut self, key: &str, ty: u32, value: &[u8]) -> Self {
            Self::str_into(&mut self.kv, key);
            self.kv.extend_from_slice(&ty.to_le_bytes());
            self.kv.extend_from_slice(value);
            self.kv_count += 1;
            self
        }
        fn tensor(mut self, name: &str, dims: &[u64], ty: u32, off: u64) -> Self {
            Self::str_into(&mut self.infos, name);
            self.infos
                .extend_from_slice(&(dims.len() as u32).to_le_bytes());
            dims.iter()
                .for_each(|d| self.infos.extend_from_slice(&d.to_le_bytes()));
            self.infos.extend_from_slice(&ty.to_le_bytes());
            self.infos.extend_from_slice(&off.to_le_bytes());
            self.tensor_count += 1;
            self
        }
        /// Header, padded to `align`, then `data_len` data bytes.
        fn build(&self, align: usize, data_len: usize) -> Vec<u8> {
            let mut f = b"GGUF".to_vec();
            f.extend_from_slice(&self.version.to_le_bytes());
            f.extend_from_slice(&self.tensor_count.to_le_bytes());
            f.extend_from_slice(&self.kv_count.to_le_bytes());
            f.extend_from_slice(&self.kv);
            f.extend_from_slice(&self.infos);
            f.resize(f.len().next_multiple_of(align), 0);
            f.resize(f.len() + data_len, 0xCD);
            f
        }
    }

    fn gguf_string(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        GgufBuilder::str_into(&mut v, s);
        v
    }

    /// Every metadata value type, incl. arrays of strings and nested arrays.
    fn gguf_sample() -> Vec<u8> {
        let mut arr_str = 8u32.to_le_bytes().to_vec();
        arr_str.extend_from_slice(&3u64.to_le_bytes());
        ["<s>", "</s>", "hello"]
            .iter()
            .for_each(|s| arr_str.extend(gguf_string(s)));
        let mut nested = 9u32.to_le_bytes().to_vec(); // array of 2 arrays of u16
        nested.extend_from_slice(&2u64.to_le_bytes());
        for n in [3u64, 1] {
            nested.extend_from_slice(&2u32.to_le_bytes());
            nested.extend_from_slice(&n.to_le_bytes());
            nested.resize(nested.len() + 2 * n as usize, 7);
        }
        let mut arr_f32 = 6u32.to_le_bytes().to_vec();
        arr_f32.extend_from_slice(&4u64.to_le_bytes());
        arr_f32.resize(arr_f32.len() + 16, 0);
        GgufBuilder::new()
            .kv("general.architecture", 8, &gguf_string("llama"))
            .kv("u8", 0, &[1])
            .kv("i8", 1, &[2])
            .kv("u16", 2, &[0; 2])
            .kv("i16", 3, &[0; 2])
            .kv("u32", 4, &[0; 4])
            .kv("i32", 5, &[0; 4])
            .kv("f32", 6, &[0; 4])
            .kv("bool", 7, &[1])
            .kv("u64", 10, &[0; 8])
            .kv("i64", 11, &[0; 8])
            .kv("f64", 12, &[0; 8])
            .kv("tokenizer.ggml.tokens", 9, &arr_str)
            .kv("nested", 9, &nested)
            .kv("scores", 9, &arr_f32)
            .kv("general.alignment", 4, &64u32.to_le_bytes())
            .tensor("tok_embd", &[8, 4], 30, 0) // bf16: 64 bytes
            .tensor("norm", &[5], 0, 64) // f32: 20 bytes
            .tensor("q4k", &[256, 2], 12, 128) // Q4_K: 2 blocks = 288 bytes
            .tensor("future", &[64], 99, 448) // unknown type: omitted
            .tensor("i8", &[3], 24, 512)
            .build(64, 515)
    }

    // ---- safetensors ----

    #[test]
    fn safetensors_layout() {
        let f = st_sample();
        let l = parse(&f).unwrap().unwrap();
        let ds = f.len() as u64 - 34;
        assert_eq!(l.format, Format::Safetensors);
        assert_eq!(l.data_start, ds);
        let got: Vec<(&str, Dtype, u64, u64)> = l
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.dtype, t.offset - ds, t.len))
            .collect();
        assert_eq!(
            got,
            [
                ("a", Dtype::BF16, 0, 8),
                ("b", Dtype::F32, 8, 16),
                ("u", Dtype::Other, 24, 6),
                ("q", Dtype::Other, 30, 4)
            ]
        );
        assert_eq!(boundaries(&l), [ds, ds + 8, ds + 24, ds + 30, ds + 34]);
        assert_eq!(dtype_at(&l, ds - 1), None);
        assert_eq!(dtype_at(&l, ds), Some(Dtype::BF16));
        assert_eq!(dtype_at(&l, ds + 7), Some(Dtype::BF16));
        assert_eq!(dtype_at(&l, ds + 8), Some(Dtype::F32));
        assert_eq!(dtype_at(&l, ds + 23), Some(Dtype::F32));
        assert_eq!(dtype_at(&l, ds + 34), None);
        assert_eq!(region_at(&l, ds + 25).map(|t| t.name.as_str()), Some("u"));
    }

    #[test]
    fn safetensors_errors() {
        let bad = |h: &str, data: usize| parse(&safetensors(h, data));
        let t = |dtype: &str, shape: &str, offs: &str| {
            format!(r#"{{"t":{{"dtype":"{dtype}","shape":{shape},"data_offsets":{offs}}}}}"#)
        };
        assert!(matches!(
            bad(&t("F32", "[2]", "[0,8]"), 7),
            Err(TensorError::OutOfBounds { .. })
        ));
        assert!(matches!(
            bad(&t("F32", "[3]", "[0,8]"), 8),
            Err(TensorError::SizeMismatch { .. })
        ));
        assert!(matches!(
            bad(&t("F32", "[2]", "[8,0]"), 8),
            Err(TensorError::Malformed(_))
        ));
        let huge = t("F32", "[18446744073709551615, 2]", "[0,8]");
        assert!(matches!(bad(&huge, 8), Err(TensorError::Malformed(_))));
        let far = t("I8", "[1]", "[18446744073709551615,18446744073709551615]");
        assert!(bad(&far, 8).is_err());
        assert!(matches!(bad("{not json", 8), Err(TensorError::Json(_))));
        assert!(matches!(
            bad(r#"{"t":{"dtype":"F32"}}"#, 8),
            Err(TensorError::Json(_))
        ));
        assert!(matches!(bad(r#"{"t":5}"#, 8), Err(TensorError::Json(_))));
        let overlap = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},
                          "b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}}"#;
        assert!(matches!(bad(overlap, 8), Err(TensorError::Overlap { .. })));
        // Deeply nested metadata is skipped (serde_json skips iteratively,
        // so this cannot overflow the stack).
        let deep = format!(
            r#"{{"__metadata__":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(bad(&deep, 0).unwrap().unwrap().tensors.is_empty());
        let deep_shape = t("F32", &"[".repeat(100_000), "[0,8]");
        assert!(matches!(bad(&deep_shape, 8), Err(TensorError::Json(_))));
    }

    #[test]
    fn not_a_model_is_none() {
        assert!(parse(b"").unwrap().is_none());
        assert!(parse(b"GGUF").unwrap().is_none()); // shorter than the probe
        assert!(parse(b"hello world, just text").unwrap().is_none());
        assert!(parse(&[0u8; 64]).unwrap().is_none());
        // Plausible length but no '{', or a length past the file / cap.
        assert!(parse(&safetensors("[1,2,3]", 10)).unwrap().is_none());
        let mut f = safetensors("{}", 0);
        f[..8].copy_from_slice(&3u64.to_le_bytes());
        assert!(parse(&f).unwrap().is_none());
        f[..8].copy_from_slice(&(MAX_SAFETENSORS_HEADER + 1).to_le_bytes());
        assert!(parse(&f).unwrap().is_none());
        // An empty safetensors file is a valid, empty layout.
        let l = parse(&safetensors("{}", 0)).unwrap().unwrap();
        assert!(l.tensors.is_empty());
        assert_eq!(boundaries(&l), [10]);
    }

    /// Reads past the probe count: Ok(None) must come from the first 9 bytes.
    struct CountingReader<'a>(Cursor<&'a [u8]>, u64);
    impl Read for CountingReader<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1 += n as u64;
            Ok(n)
        }
    }
    impl Seek for CountingReader<'_> {
        fn seek(&mut self, p: SeekFrom) -> io::Result<u64> {
            self.0.seek(p)
        }
    }

    #[test]
    fn detection_reads_only_a_probe() {
        let junk = vec![0x5Au8; 1 << 20];
        let mut r = CountingReader(Cursor::new(&junk), 0);
        assert!(parse_layout(&mut r, junk.len() as u64).unwrap().is_none());
        assert_eq!(r.1, 9);
    }

    // ---- GGUF ----

    #[test]
    fn gguf_layout() {
        let f = gguf_sample();
        let l = parse(&f).unwrap().unwrap();
        assert_eq!(l.format, Format::Gguf);
        assert_eq!(l.data_start % 64, 0);
        assert_eq!(l.data_start, f.len() as u64 - 515);
        let ds = l.data_start;
        let got: Vec<(&str, Dtype, u64, u64)> = l
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.dtype, t.offset - ds, t.len))
            .collect();
        assert_eq!(
            got,
            [
                ("tok_embd", Dtype::BF16, 0, 64),
                ("norm", Dtype::F32, 64, 20),
                ("q4k", Dtype::Other, 128, 288),
                ("i8", Dtype::I8, 512, 3)
            ]
        );
        assert_eq!(boundaries(&l), [ds, ds + 64, ds + 128, ds + 512, ds + 515]);
        assert_eq!(dtype_at(&l, ds + 100), None); // padding after "norm"
        assert_eq!(dtype_at(&l, ds + 130), Some(Dtype::Other));
    }

    #[test]
    fn gguf_default_alignment_and_v2() {
        let mut b = GgufBuilder::new()
            .tensor("w", &[3], 1, 0)
            .tensor("x", &[2], 0, 32);
        b.version = 2;
        let f = b.build(32, 40);
        let l = parse(&f).unwrap().unwrap();
        assert_eq!(l.data_start, f.len() as u64 - 40);
        assert_eq!(l.tensors[1].offset, l.data_start + 32);
        // No tensors, file ends before the padding: still a layout.
        let mut f = GgufBuilder::new().build(1, 0);
        f.truncate(24);
        let l = parse(&f).unwrap().unwrap();
        assert_eq!((l.data_start, l.tensors.len()), (24, 0));
    }

    #[test]
    fn gguf_errors() {
        let mut b = GgufBuilder::new();
        b.version = 1;
        assert!(matches!(
            parse(&b.build(32, 0)),
            Err(TensorError::UnsupportedVersion(1))
        ));
        b.version = 3u32.swap_bytes(); // big-endian file
        assert!(matches!(
            parse(&b.build(32, 0)),
            Err(TensorError::UnsupportedVersion(_))
        ));
        let oob = GgufBuilder::new().tensor("w", &[100], 0, 0).build(32, 399);
        assert!(matches!(parse(&oob), Err(TensorError::OutOfBounds { .. })));
        let ovl = GgufBuilder::new()
            .tensor("a", &[16], 0, 0)
            .tensor("b", &[4], 0, 32)
            .build(32, 64);
        assert!(matches!(parse(&ovl), Err(TensorError::Overlap { .. })));
        let unaligned = GgufBuilder::new().tensor("a", &[1], 0, 4).build(32, 64);
        assert!(matches!(parse(&unaligned), Err(TensorError::Malformed(_))));
        let partial_block = GgufBuilder::new().tensor("q", &[33], 8, 0).build(32, 64);
        assert!(matches!(
            parse(&partial_block),
            Err(TensorError::Malformed(_))
        ));
        let dims = GgufBuilder::new().tensor("d", &[1; 9], 0, 0).build(32, 64);
        assert!(matches!(parse(&dims), Err(TensorError::Malformed(_))));
        let overflow = GgufBuilder::new()
            .tensor("o", &[u64::MAX, 4], 0, 0)
            .build(32, 64);
        assert!(matches!(parse(&overflow), Err(TensorError::Malformed(_))));
        let align = GgufBuilder::new()
            .kv("general.alignment", 4, &3u32.to_le_bytes())
            .build(1, 0);
        assert!(matches!(parse(&align), Err(TensorError::Malformed(_))));
        let align_ty = GgufBuilder::new()
            .kv("general.alignment", 10, &[0; 8])
            .build(1, 0);
        assert!(matches!(parse(&align_ty), Err(TensorError::Malformed(_))));
        let bad_ty = GgufBuilder::new().kv("k", 13, &[0; 8]).build(1, 0);
        assert!(matches!(parse(&bad_ty), Err(TensorError::Malformed(_))));
    }

    #[test]
    fn gguf_huge_counts_fail_fast_without_allocating() {
        let mut f = GgufBuilder::new().build(1, 64);
        f[8..16].copy_from_slice(&u64::MAX.to_le_bytes()); // tensor_count
        assert!(matches!(parse(&f), Err(TensorError::Truncated { .. })));
        let mut f = GgufBuilder::new().build(1, 64);
        f[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes()); // kv_count
        assert!(matches!(parse(&f), Err(TensorError::Truncated { .. })));
        // An array of 2^61 u64s, or of 2^40 strings, in a tiny file.
        for (elem, n) in [(10u32, 1u64 << 61), (8, 1 << 40), (9, 1 << 40)] {
            let mut v = elem.to_le_bytes().to_vec();
            v.extend_from_slice(&n.to_le_bytes());
            let f = GgufBuilder::new().kv("a", 9, &v).build(1, 64);
            assert!(parse(&f).is_err());
        }
        // A 2^62-byte tensor name.
        let mut f = GgufBuilder::new().tensor("n", &[1], 0, 0).build(32, 64);
        f[24..32].copy_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(matches!(parse(&f), Err(TensorError::Malformed(_))));
    }

    #[test]
    fn gguf_deeply_nested_arrays_are_bounded() {
        // 10 levels of array-of-array (each with one element): past the depth cap.
        let mut v = Vec::new();
        for _ in 0..10 {
            v.extend_from_slice(&9u32.to_le_bytes());
            v.extend_from_slice(&1u64.to_le_bytes());
        }
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&0u64.to_le_bytes());
        let f = GgufBuilder::new().kv("deep", 9, &v).build(1, 64);
        assert!(matches!(parse(&f), Err(TensorError::Malformed(_))));
    }

    #[test]
    fn every_truncation_is_handled() {
        for f in [gguf_sample(), st_sample()] {
            let full = parse(&f).unwrap().unwrap();
            for cut in 0..f.len() {
                // The claimed length is honest: anything goes but a panic or success
                // past the data. A layout may only come back when all regions fit.
                if let Ok(Some(l)) = parse(&f[..cut]) {
                    assert!(l.tensors.iter().all(|t| t.offset + t.len <= cut as u64));
                    assert!(l.tensors.len() <= full.tensors.len());
                }
            }
        }
    }

    #[test]
    fn lying_file_len_gives_io_error() {
        let f = gguf_sample();
        let r = parse_layout(&mut Cursor::new(&f[..100]), f.len() as u64);
        assert!(matches!(r, Err(TensorError::Io(_))));
    }

    #[test]
    fn dtype_names_and_serde_agree() {
        use Dtype::*;
        for d in [
            BF16, F16, F32, F64, F8E4M3, F8E5M2, I8, U8, I16, I32, I64, Bool, Other,
        ] {
            assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{d}\""));
            assert_eq!(
                serde_json::from_str::<Dtype>(&format!("\"{d}\"")).unwrap(),
                d
            );
            if d != Other {
                assert_eq!(Dtype::from_safetensors(d.name()).0, d);
                assert!(d.width().is_some());
            }
        }
        assert_eq!(F8E4M3.to_string(), "F8_E4M3");
        assert_eq!(Dtype::from_safetensors("U32"), (Other, Some(4)));
        assert_eq!(Dtype::from_ggml(30), Some((BF16, 1, 2)));
        assert_eq!(Dtype::from_ggml(31), None);
    }

    #[test]
    fn layout_serde_roundtrip() {
        let l = parse(&gguf_sample()).unwrap().unwrap();
        let j = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::from_str::<TensorLayout>(&j).unwrap(), l);
    }

    #[test]
    fn predict_width_finds_float_structure() {
        // bf16-like: top byte from a small set, low byte noisy.
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let bf16: Vec<u8> = (0..1 << 17)
            .flat_map(|_| {
                let r = next();
                [r as u8, 0x3C + (r >> 8) as u8 % 3]
            })
            .collect();
        assert_eq!(predict_width(&bf16), Some(2));
        let f32: Vec<u8> = (0..1 << 16)
            .flat_map(|_| {
                let r = next();
                [
                    r as u8,
                    (r >> 8) as u8,
                    (r >> 16) as u8 & 0x0F,
                    0x3C + (r >> 24) as u8 % 2,
                ]
            })
            .collect();
        assert_eq!(predict_width(&f32), Some(4));
        for (kind, w) in [("bf16", 2), ("fp16", 2), ("fp32", 4)] {
            let (data, _) = crate::format::byteplane::tests::weights(kind, PREDICT_SAMPLE);
            assert_eq!(predict_width(&data), Some(w), "{kind}");
        }
        let random: Vec<u8> = (0..1 << 18).map(|_| next() as u8).collect();
        assert_eq!(predict_width(&random), None);
        let text = "the quick brown fox jumps over the lazy dog ".repeat(3000);
        assert_eq!(predict_width(text.as_bytes()), None);
        assert_eq!(predict_width(&[]), None);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn mutated_gguf_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
            check_mutated(gguf_sample(), edits)?;
        }

        #[test]
        fn mutated_safetensors_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
            check_mutated(st_sample(), edits)?;
        }

        #[test]
        fn dtype_at_matches_linear_scan(off in 0u64..700) {
            let l = parse(&gguf_sample()).unwrap().unwrap();
            let lin = l.tensors.iter().find(|t| t.offset <= off && off < t.offset + t.len).map(|t| t.dtype);
            prop_assert_eq!(dtype_at(&l, off), lin);
        }
    }
}
