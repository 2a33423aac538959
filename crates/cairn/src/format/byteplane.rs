//! Byte grouping ("byte planes") for fixed-width numeric data, and a small
//! framed codec built on it.
//!
//! # Role
//! Model weights are arrays of fixed-width little-endian words (bf16, f16,
//! f32, ...). Generic compressors see them as near-random bytes. Regrouping
//! the bytes so that all byte 0s come first, then all byte 1s, ... puts the
//! low-entropy sign/exponent bytes next to each other, where an entropy coder
//! (zstd's Huffman literals) can exploit them. The caller picks the width per
//! chunk from the tensor layout (see `crate::ingest::tensor`).
//!
//! # `split` / `merge` layout
//! For `data` of length `L` and width `w >= 1`, let `n = L / w` (whole words)
//! and `t = L % w` (tail). `split` produces `L` bytes:
//!
//! ```text
//! plane 0: data[0], data[w], data[2w], ..., data[(n-1)w]      (n bytes)
//! plane 1: data[1], data[w+1], ...                             (n bytes)
//! ...
//! plane w-1                                                    (n bytes)
//! tail:    data[n*w .. L] unchanged                            (t bytes)
//! ```
//!
//! `merge` is the exact inverse. Width 1 is the identity. A width of 0 is a
//! caller bug and panics.
//!
//! # Encoded record (`encode` / `decode`)
//! All integers little-endian. There is no version byte: the reserved flag
//! bits are the extension point. `raw_len` is NOT stored: the caller records
//! it with the chunk (it needs it anyway) and passes it to `decode`. With
//! `n = raw_len / w` and `t = raw_len % w`:
//!
//! ```text
//! offset      size   field
//! 0           1      width w (1..=255)
//! 1           1      flags: bit 0 = FloatRotate (see `Transform`), only with
//!                    w in {2, 4, 8}; bits 1..7 reserved, must be 0
//! 2           4*w    s[0..w]: u32 stored size of each plane body
//! 2+4w        s[0]   plane 0 body
//! ...         ...    plane 1 .. w-1 bodies, in order
//! len-t       t      tail: the last t input bytes, raw
//! ```
//!
//! A plane body with `s[p] == n` is the plane stored raw (so all sizes are 0
//! when `n == 0`); `s[p] < n` means it is one zstd frame (RFC 8878; the
//! encoder omits the content-size field and checksum) that must decompress
//! to exactly `n` bytes; `s[p] > n` is invalid. The record's length must be
//! exactly `2 + 4w + sum(s) + t`. The encoder stores a plane raw whenever
//! zstd does not make it strictly smaller, so incompressible planes (the low
//! mantissa bytes) cost nothing beyond their 4-byte size. It does not even
//! try zstd on a plane of 8 KiB or more whose sampled bytes have an order-0
//! entropy of 7.9 bits or more (see `looks_random`): an encoder choice, not
//! part of the format. The price is that a random-looking plane that repeats
//! itself within one chunk is stored raw; float weights do not do that, and
//! repeats of chunk size are deduplicated anyway.
//!
//! With `FloatRotate`, each whole `w`-byte word is read as a little-endian
//! integer and rotated left by one bit before splitting (and right by one
//! after merging); tail bytes are never rotated. For sign-magnitude floats
//! this moves the sign bit to bit 0, so the top plane starts with the
//! exponent: exactly the 8 exponent bits for bf16 and f32 (instead of sign +
//! 7 exponent bits), 5 exponent + 3 mantissa bits for f16, the top 8 of 11
//! exponent bits for f64. On Gaussian weights that saves another ~1%.
//!
//! # Compression parameters (encoder only; not part of the format)
//! Each plane is its own zstd frame so that zstd builds one Huffman table per
//! plane (one table for the concatenated planes is much worse). Float planes
//! are low-entropy but unstructured, so the short matches zstd finds by
//! chance cost more than Huffman-coded literals would: every
//! level runs with `minMatch = 7`, and level 1 (the default; levels below 1
//! are raised to 1 because negative levels disable literal compression) also
//! uses `hashLog = 6`, which is both faster and slightly smaller there.
//!
//! # Safety against hostile input
//! `decode` never writes more than `raw_len` bytes, checks every size against
//! the frame and plane bounds before use, and returns a `DecodeError` instead
//! of panicking. The output allocation is `raw_len`, which the caller must
//! bound (e.g. by its maximum chunk size).

use std::cell::RefCell;
use std::io::Cursor;
use zstd::zstd_safe::CParameter;

/// Largest width the frame header can describe.
pub const MAX_WIDTH: usize = 255;

/// Flag bit 0: words were rotated left by one bit before splitting.
const FLAG_ROTATE: u8 = 1;

/// Optional word transform applied before splitting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Transform {
    /// Plain byte planes.
    #[default]
    Bytes,
    /// Rotate each whole word left by one bit first (for sign-magnitude
    /// floats: bf16, f16, f32, f64). Ignored for widths other than 2, 4, 8.
    FloatRotate,
}

/// Why a stored frame could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The header does not match the caller's expectations or is malformed.
    #[error("byteplane header: {0}")]
    Header(&'static str),
    /// The frame is shorter or longer than its header says.
    #[error("byteplane frame is {actual} bytes, header implies {expected}")]
    Length { expected: u64, actual: usize },
    /// A plane's stored size is larger than the plane itself.
    #[error("byteplane plane {plane}: stored size {stored} exceeds plane size {plane_len}")]
    PlaneSize {
        plane: usize,
        stored: u64,
        plane_len: usize,
    },
    /// zstd rejected a plane body (corrupt, or it would exceed the plane).
    #[error("byteplane plane {plane}: zstd: {source}")]
    Zstd {
        plane: usize,
        #[source]
        source: std::io::Error,
    },
    /// A plane body decompressed to fewer bytes than the plane holds.
    #[error("byteplane plane {plane}: decompressed to {got} bytes, expected {expected}")]
    ShortPlane {
        plane: usize,
        got: usize,
        expected: usize,
    },
}

// ---------------------------------------------------------------------------
// split / merge
// ---------------------------------------------------------------------------

/// Regroup `data` into byte planes of `width` (layout in the module docs).
/// `out` is cleared first; its allocation is reused.
///
/// # Panics
/// If `width == 0`.
pub fn split(data: &[u8], width: usize, out: &mut Vec<u8>) {
    split_with(data, width, false, out);
}

/// Inverse of [`split`]: `merge(split(x, w), w) == x` for every `x`.
/// `out` is cleared first; its allocation is reused.
///
/// # Panics
/// If `width == 0`.
pub fn merge(planes: &[u8], width: usize, out: &mut Vec<u8>) {
    merge_with(planes, width, false, out);
}

fn split_with(data: &[u8], width: usize, rot: bool, out: &mut Vec<u8>) {
    assert!(width > 0, "byteplane width must be at least 1");
    let body = data.len() - data.len() % width;
    out.clear();
    out.resize(data.len(), 0);
    let (src, tail) = data.split_at(body);
    let (dst, out_tail) = out.split_at_mut(body);
    match (width, rot) {
        (2, false) => split2::<false>(src, dst),
        (2, true) => split2::<true>(src, dst),
        (4, false) => split4::<false>(src, dst),
        (4, true) => split4::<true>(src, dst),
        (8, false) => split8::<false>(src, dst),
        (8, true) => split8::<true>(src, dst),
        _ => split_generic(src, width, dst),
    }
    out_tail.copy_from_slice(tail);
}

fn merge_with(planes: &[u8], width: usize, rot: bool, out: &mut Vec<u8>) {
    assert!(width > 0, "byteplane width must be at least 1");
    let body = planes.len() - planes.len() % width;
    out.clear();
    out.resize(planes.len(), 0);
    let (src, tail) = planes.split_at(body);
    let (dst, out_tail) = out.split_at_mut(body);
    match (width, rot) {
        (2, false) => merge2::<false>(src, dst),
        (2, true) => merge2::<true>(src, dst),
        (4, false) => merge4::<false>(src, dst),
        (4, true) => merge4::<true>(src, dst),
        (8, false) => merge8::<false>(src, dst),
        (8, true) => merge8::<true>(src, dst),
        _ => merge_generic(src, width, dst),
    }
    out_tail.copy_from_slice(tail);
}

// The specialised kernels read/write whole little-endian words through
// zipped iterators: no indexing, so no bounds checks, and LLVM turns the
// shifts into SIMD shuffles (measured 4-12 GB/s on one core).

fn split2<const ROT: bool>(src: &[u8], dst: &mut [u8]) {
    let (p0, p1) = dst.split_at_mut(src.len() / 2);
    for ((c, a), b) in src.chunks_exact(2).zip(p0).zip(p1) {
        let mut v = u16::from_le_bytes([c[0], c[1]]);
        if ROT {
            v = v.rotate_left(1);
        }
        [*a, *b] = v.to_le_bytes();
    }
}

fn merge2<const ROT: bool>(src: &[u8], dst: &mut [u8]) {
    let (p0, p1) = src.split_at(dst.len() / 2);
    for ((o, a), b) in dst.chunks_exact_mut(2).zip(p0).zip(p1) {
        let mut v = u16::from_le_bytes([*a, *b]);
        if ROT {
            v = v.rotate_right(1);
        }
        o.copy_from_slice(&v.to_le_bytes());
    }
}

fn split4<const ROT: bool>(src: &[u8], dst: &mut [u8]) {
    let n = src.len() / 4;
    let (p0, r) = dst.split_at_mut(n);
    let (p1, r) = r.split_at_mut(n);
    let (p2, p3) = r.split_at_mut(n);
    let planes = p0.iter_mut().zip(p1).zip(p2).zip(p3);
    for (c, (((a, b), x), y)) in src.chunks_exact(4).zip(planes) {
        let mut v = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        if ROT {
            v = v.rotate_left(1);
        }
        [*a, *b, *x, *y] = v.to_le_bytes();
    }
}

fn merge4<const ROT: bool>(src: &[u8], dst: &mut [u8]) {
    let n = dst.len() / 4;
    let (p0, r) = src.split_at(n);
    let (p1, r) = r.split_at(n);
    let (p2, p3) = r.split_at(n);
    let planes = p0.iter().zip(p1).zip(p2).zip(p3);
    for (o, (((a, b), x), y)) in dst.chunks_exact_mut(4).zip(planes) {
        let mut v = u32::from_le_bytes([*a, *b, *x, *y]);
        if ROT {
            v = v.rotate_right(1);
        }
        o.copy_from_slice(&v.to_le_bytes());
    }
}

fn split8<const ROT: bool>(src: &[u8], dst: &mut [u8]) {
    let n = src.len() / 8;
    let (lo, hi) = dst.split_at_mut(4 * n);
    let (p0, r) = lo.split_at_mut(n);
    let (p1, r) = r.split_at_mut(n);
    let (p2, p3) = r.split_at_mut(n);
    let (p4, r) = hi.split_at_mut(n);
    let (p5, r) = r.split_at_mut(n);
    let (p6, p7) = r.split_at_mut(n);
    let low = p0.iter_mut().zip(p1).zip(p2).zip(p3);
    let high = p4.iter_mut().zip(p5).zip(p6).zip(p7);
    for (c, ((((a, b), x), y), (((e, f), g), h))) in src.chunks_exact(8).zip(low.zip(high)) {
        let mut v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        if ROT {
            v = v.rotate_left(1);
        }
        [*a, *b, *x, *y, *e, *f, *g, *h] = v.to_le_bytes();
    }
}

fn merge8<const ROT: bool>(src: &[u8], dst: &mut [u8]) {
    let n = dst.len() / 8;
    let (lo, hi) = src.split_at(4 * n);
    let (p0, r) = lo.split_at(n);
    let (p1, r) = r.split_at(n);
    let (p2, p3) = r.split_at(n);
    let (p4, r) = hi.split_at(n);
    let (p5, r) = r.split_at(n);
    let (p6, p7) = r.split_at(n);
    let low = p0.iter().zip(p1).zip(p2).zip(p3);
    let high = p4.iter().zip(p5).zip(p6).zip(p7);
    for (o, ((((a, b), x), y), (((e, f), g), h))) in dst.chunks_exact_mut(8).zip(low.zip(high)) {
        let mut v = u64::from_le_bytes([*a, *b, *x, *y, *e, *f, *g, *h]);
        if ROT {
            v = v.rotate_right(1);
        }
        o.copy_from_slice(&v.to_le_bytes());
    }
}

/// Any other width (1, 3, 5, ...): one strided pass per plane. Not hot.
fn split_generic(src: &[u8], width: usize, dst: &mut [u8]) {
    let n = src.len() / width;
    for (p, plane) in dst.chunks_exact_mut(n.max(1)).take(width).enumerate() {
        for (d, s) in plane.iter_mut().zip(src.iter().skip(p).step_by(width)) {
            *d = *s;
        }
    }
}

fn merge_generic(src: &[u8], width: usize, dst: &mut [u8]) {
    let n = dst.len() / width;
    for (p, plane) in src.chunks_exact(n.max(1)).take(width).enumerate() {
        for (d, s) in dst.iter_mut().skip(p).step_by(width).zip(plane) {
            *d = *s;
        }
    }
}

// ---------------------------------------------------------------------------
// encode / decode
// ---------------------------------------------------------------------------

type Cctx = zstd::bulk::Compressor<'static>;
type Dctx = zstd::bulk::Decompressor<'static>;

/// Per-thread zstd contexts and plane buffer (which keeps the capacity of
/// the largest chunk seen): creating a zstd context per 64 KiB chunk costs
/// ~25% of the compression time.
#[derive(Default)]
struct Scratch {
    cctx: Option<(i32, Cctx)>,
    dctx: Option<Dctx>,
    planes: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Encode `data` as byte planes of `width`, each plane its own zstd frame at
/// `level` (see module docs for the byte layout and parameters). Equivalent
/// to `encode_with(data, width, Transform::Bytes, level)`.
///
/// # Panics
/// If `width` is 0 or above [`MAX_WIDTH`].
pub fn encode(data: &[u8], width: usize, level: i32) -> Vec<u8> {
    encode_with(data, width, Transform::Bytes, level)
}

/// [`encode`] with an explicit word [`Transform`]. Never fails: a plane that
/// zstd cannot shrink (or any zstd error) is stored raw.
///
/// # Panics
/// If `width` is 0 or above [`MAX_WIDTH`], or a plane would exceed 4 GiB
/// (`data.len() / width > u32::MAX`; chunks are far smaller).
pub fn encode_with(data: &[u8], width: usize, transform: Transform, level: i32) -> Vec<u8> {
    assert!(
        (1..=MAX_WIDTH).contains(&width),
        "byteplane width {width} out of range 1..={MAX_WIDTH}"
    );
    let rot = transform == Transform::FloatRotate && matches!(width, 2 | 4 | 8);
    let n = data.len() / width;
    assert!(
        u32::try_from(n).is_ok(),
        "byteplane plane of {n} bytes exceeds 4 GiB"
    );
    let mut out = Vec::with_capacity(2 + 4 * width + data.len());
    out.push(width as u8);
    out.push(if rot { FLAG_ROTATE } else { 0 });
    out.resize(2 + 4 * width, 0);
    SCRATCH.with(|s| {
        let s = &mut *s.borrow_mut();
        split_with(data, width, rot, &mut s.planes);
        let mut cctx = compressor(&mut s.cctx, level);
        for p in 0..width {
            let plane = &s.planes[p * n..(p + 1) * n];
            let stored = push_plane(&mut out, plane, cctx.as_deref_mut());
            out[2 + 4 * p..6 + 4 * p].copy_from_slice(&stored.to_le_bytes());
        }
    });
    out.extend_from_slice(&data[n * width..]);
    out
}

/// The thread's compressor for `level`, (re)built when the level changes.
/// `None` if zstd could not allocate a context: planes are then stored raw.
fn compressor(slot: &mut Option<(i32, Cctx)>, level: i32) -> Option<&mut Cctx> {
    let level = level.max(1);
    if slot.as_ref().map(|(l, _)| *l) != Some(level) {
        *slot = zstd::bulk::Compressor::new(level).ok().map(|mut c| {
            // Parameter errors only cost ratio, never correctness: ignore.
            let _ = c.set_parameter(CParameter::ContentSizeFlag(false));
            let _ = c.set_parameter(CParameter::MinMatch(7));
            if level == 1 {
                let _ = c.set_parameter(CParameter::HashLog(6));
            }
            (level, c)
        });
    }
    slot.as_mut().map(|(_, c)| c)
}

/// Append one plane body to `out` (zstd frame if strictly smaller, else raw)
/// and return its stored size.
fn push_plane(out: &mut Vec<u8>, plane: &[u8], cctx: Option<&mut Cctx>) -> u32 {
    let start = out.len();
    if let Some(c) = cctx.filter(|_| !plane.is_empty() && !looks_random(plane)) {
        out.reserve(plane.len());
        let mut cursor = Cursor::new(&mut *out);
        cursor.set_position(start as u64);
        if let Ok(z) = c.compress_to_buffer(plane, &mut cursor) {
            if z < plane.len() {
                out.truncate(start + z);
                return z as u32;
            }
        }
        out.truncate(start);
    }
    out.extend_from_slice(plane);
    plane.len() as u32
}

/// Sampled planes whose byte entropy is at least this many bits per byte
/// are stored raw without running zstd.
const RANDOM_BITS_PER_BYTE: f64 = 7.9;
/// Every `SAMPLE_STRIDE`-th byte of a plane is sampled.
const SAMPLE_STRIDE: usize = 8;
/// Planes shorter than this are always given to zstd (the sample would be
/// too small to judge, and zstd is cheap on them).
const MIN_SAMPLED_PLANE: usize = 8 * 1024;

/// True when a sample of `plane` looks like uniformly random bytes, so that
/// zstd could at best shave well under 1% (its Huffman literals cannot beat
/// the order-0 entropy, and random data has no matches). The low mantissa
/// planes of float weights are like this; running zstd on them was ~1/3 of
/// the byte-plane encoding time, only to store them raw.
///
/// The estimate adds the Miller–Madow correction, since a sample of `m`
/// bytes underestimates the entropy by about `(k - 1) / (2 m ln 2)` bits.
fn looks_random(plane: &[u8]) -> bool {
    if plane.len() < MIN_SAMPLED_PLANE {
        return false;
    }
    let mut hist = [0u32; 256];
    for &b in plane.iter().step_by(SAMPLE_STRIDE) {
        hist[b as usize] += 1;
    }
    let m = plane.len().div_ceil(SAMPLE_STRIDE) as f64;
    let (mut bits, mut seen) = (0.0, 0u32);
    for &c in hist.iter().filter(|&&c| c > 0) {
        let p = f64::from(c) / m;
        bits -= p * p.log2();
        seen += 1;
    }
    bits + f64::from(seen - 1) / (2.0 * m * std::f64::consts::LN_2) >= RANDOM_BITS_PER_BYTE
}

/// Decode a frame produced by [`encode`]/[`encode_with`] back to the
/// `raw_len` original bytes. `width` must match the header. The input is
/// treated as hostile: see module docs.
pub fn decode(stored: &[u8], width: usize, raw_len: usize) -> Result<Vec<u8>, DecodeError> {
    let rot = check_header(stored, width, raw_len)?;
    let n = raw_len / width;
    let mut out = Vec::new();
    SCRATCH.with(|s| {
        let s = &mut *s.borrow_mut();
        s.planes.clear();
        s.planes.resize(raw_len, 0);
        let mut body = 2 + 4 * width;
        for p in 0..width {
            let size = plane_size(stored, p);
            let dst = &mut s.planes[p * n..(p + 1) * n];
            decode_plane(&stored[body..body + size], dst, &mut s.dctx, p)?;
            body += size;
        }
        s.planes[n * width..].copy_from_slice(&stored[body..]);
        merge_with(&s.planes, width, rot, &mut out);
        Ok(out)
    })
}

/// Validate the header and the total length; returns the rotate flag.
/// After this, every slice taken in `decode` is in bounds.
fn check_header(stored: &[u8], width: usize, raw_len: usize) -> Result<bool, DecodeError> {
    if !(1..=MAX_WIDTH).contains(&width) {
        return Err(DecodeError::Header("width out of range"));
    }
    let head = 2 + 4 * width;
    if stored.len() < head {
        return Err(DecodeError::Length {
            expected: head as u64,
            actual: stored.len(),
        });
    }
    if usize::from(stored[0]) != width {
        return Err(DecodeError::Header("width differs from the expected width"));
    }
    let rot = match stored[1] {
        0 => false,
        FLAG_ROTATE if matches!(width, 2 | 4 | 8) => true,
        _ => return Err(DecodeError::Header("unknown flags")),
    };
    let n = raw_len / width;
    let mut total = (head + raw_len % width) as u64;
    for p in 0..width {
        let s = plane_size(stored, p);
        if s > n {
            return Err(DecodeError::PlaneSize {
                plane: p,
                stored: s as u64,
                plane_len: n,
            });
        }
        total += s as u64;
    }
    if total != stored.len() as u64 {
        return Err(DecodeError::Length {
            expected: total,
            actual: stored.len(),
        });
    }
    Ok(rot)
}

/// Stored size of plane `p`; the caller has checked the header length.
fn plane_size(stored: &[u8], p: usize) -> usize {
    let b = &stored[2 + 4 * p..6 + 4 * p];
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
}

/// Fill `dst` (exactly one plane) from its stored body.
fn decode_plane(
    body: &[u8],
    dst: &mut [u8],
    dctx: &mut Option<Dctx>,
    plane: usize,
) -> Result<(), DecodeError> {
    if body.len() == dst.len() {
        dst.copy_from_slice(body);
        return Ok(());
    }
    let zerr = |source| DecodeError::Zstd { plane, source };
    if dctx.is_none() {
        *dctx = Some(zstd::bulk::Decompressor::new().map_err(zerr)?);
    }
    let Some(d) = dctx.as_mut() else {
        return Err(DecodeError::Header("zstd context unavailable"));
    };
    // `dst` is a slice of exactly the plane size: zstd cannot write past it.
    let got = d.decompress_to_buffer(body, dst).map_err(zerr)?;
    if got != dst.len() {
        return Err(DecodeError::ShortPlane {
            plane,
            got,
            expected: dst.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
