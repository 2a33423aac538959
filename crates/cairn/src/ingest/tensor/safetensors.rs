//! safetensors: an 8-byte little-endian header length, a JSON header
//! naming each tensor's dtype, shape and data offsets, then the data.

use super::*;

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
pub(super) fn parse_safetensors<R: Read + Seek>(
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
