//! GGUF v2/v3 (llama.cpp): a little-endian header of key/value metadata
//! and tensor infos, then the aligned tensor data.

use super::*;

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

pub(super) fn parse_gguf<R: Read + Seek>(
    r: &mut R,
    file_len: u64,
) -> Result<TensorLayout, TensorError> {
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
