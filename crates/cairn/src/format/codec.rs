//! How a chunk's bytes are stored: raw, zstd, or byte planes (for tensor
//! data). The codec is recorded per chunk in the pack trailer; a chunk whose
//! encoded form is not smaller is stored raw, so incompressible data costs
//! nothing extra.

use crate::error::{Error, Result};
use crate::format::byteplane::{self, Transform};

/// What is known about a chunk's bytes, from the file's layout or a sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Hint {
    /// Nothing special: plain zstd.
    #[default]
    Bytes,
    /// Fixed-width values (e.g. tensor elements): group their bytes into
    /// planes; `float` rotates sign-magnitude floats so exponents line up.
    Planes { width: u8, float: bool },
}

impl Hint {
    /// Byte planes need a width of at least 2 and compression switched on.
    fn filter_usable(self, level: i32) -> Hint {
        match self {
            Hint::Planes { width, .. } if width < 2 || level <= 0 => Hint::Bytes,
            other => other,
        }
    }
}

/// zstd level for byte planes: level 1 is both the fastest and the best for
/// them (higher levels spend time on matches that weight planes lack).
const PLANES_LEVEL: i32 = 1;

/// Codec byte as written in pack trailers (see docs/FORMAT.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Codec {
    /// Stored bytes are the chunk bytes.
    Raw = 0,
    /// One zstd frame.
    Zstd = 1,
    /// A byte-plane record (docs/FORMAT.md, "Byte planes").
    Planes = 2,
    /// A delta record against reference chunks ([`crate::format::delta`]).
    Delta = 3,
}

impl Codec {
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            2 => Some(Codec::Planes),
            3 => Some(Codec::Delta),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Raw => "raw",
            Codec::Zstd => "zstd",
            Codec::Planes => "planes",
            Codec::Delta => "delta",
        }
    }
}

/// Highest zstd level accepted by `--compression`.
pub const MAX_LEVEL: i32 = 19;

/// Encodes `raw` at `level` (0 = store raw) as `hint` suggests. Returns the
/// codec used and the stored bytes; falls back to raw when encoding does not
/// shrink the data.
pub fn encode(raw: &[u8], level: i32, hint: Hint) -> (Codec, Vec<u8>) {
    if let Hint::Planes { width, float } = hint.filter_usable(level) {
        let transform = if float {
            Transform::FloatRotate
        } else {
            Transform::Bytes
        };
        let planes = byteplane::encode_with(raw, width as usize, transform, PLANES_LEVEL);
        if planes.len() < raw.len() {
            return (Codec::Planes, planes);
        }
        return (Codec::Raw, raw.to_vec());
    }
    if level > 0 {
        if let Ok(packed) = zstd::bulk::compress(raw, level) {
            if packed.len() < raw.len() {
                return (Codec::Zstd, packed);
            }
        }
    }
    (Codec::Raw, raw.to_vec())
}

/// Decodes stored bytes back to exactly `raw_len` bytes. Treats `stored` as
/// hostile: output is capped at `raw_len`, and any size mismatch is an error.
/// A delta chunk needs its reference: see [`decode_with`].
pub fn decode(codec: Codec, stored: &[u8], raw_len: usize) -> std::result::Result<Vec<u8>, String> {
    decode_with(codec, stored, raw_len, None)
}

/// [`decode`], with the reference bytes of a delta chunk.
pub fn decode_with(
    codec: Codec,
    stored: &[u8],
    raw_len: usize,
    reference: Option<&[u8]>,
) -> std::result::Result<Vec<u8>, String> {
    let out = match codec {
        Codec::Delta => {
            let reference = reference.ok_or("a delta chunk needs its reference")?;
            crate::format::delta::decode(stored, reference, raw_len)?
        }
        Codec::Raw => stored.to_vec(),
        Codec::Zstd => zstd_decompress(stored, raw_len).map_err(|e| format!("zstd: {e}"))?,
        Codec::Planes => {
            let width = *stored.first().ok_or("empty byte-plane record")? as usize;
            byteplane::decode(stored, width, raw_len).map_err(|e| format!("byte planes: {e}"))?
        }
    };
    if out.len() != raw_len {
        return Err(format!("decoded {} bytes, expected {raw_len}", out.len()));
    }
    Ok(out)
}

/// `zstd::bulk::decompress` with one decompression context per thread:
/// making a context per chunk was a tenth of a many-small-files restore's
/// CPU time.
fn zstd_decompress(stored: &[u8], raw_len: usize) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    DCTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        let dctx = match slot.as_mut() {
            Some(d) => d,
            None => slot.insert(zstd::bulk::Decompressor::new()?),
        };
        dctx.decompress(stored, raw_len)
    })
}

/// Validates a user-supplied compression level.
pub fn check_level(level: i32) -> Result<i32> {
    if (0..=MAX_LEVEL).contains(&level) {
        Ok(level)
    } else {
        Err(Error::InvalidArgument(format!(
            "compression level {level} is out of range 0..={MAX_LEVEL} (0 stores raw)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn incompressible_data_is_stored_raw() {
        let noise = crate::test_support::random_bytes(3, 10_000);
        assert_eq!(encode(&noise, 3, Hint::Bytes).0, Codec::Raw);
        assert_eq!(
            encode(
                &noise,
                3,
                Hint::Planes {
                    width: 2,
                    float: true
                }
            )
            .0,
            Codec::Raw
        );
        let zeros = vec![0u8; 10_000];
        let (codec, stored) = encode(&zeros, 3, Hint::Bytes);
        assert_eq!(codec, Codec::Zstd);
        assert!(stored.len() < 100);
        assert_eq!(encode(&zeros, 0, Hint::Bytes).0, Codec::Raw);
        assert_eq!(
            encode(
                &zeros,
                0,
                Hint::Planes {
                    width: 2,
                    float: true
                }
            )
            .0,
            Codec::Raw
        );
    }

    #[test]
    fn decode_rejects_wrong_length_and_garbage() {
        let (codec, stored) = encode(&[7u8; 5000], 1, Hint::Bytes);
        assert!(decode(codec, &stored, 4999).is_err());
        assert!(decode(Codec::Planes, b"", 10).is_err());
        assert!(decode(Codec::Planes, b"\x02\x01garbage", 10).is_err());
        assert!(decode(Codec::Zstd, b"not zstd", 10).is_err());
        assert!(decode(Codec::Raw, b"abc", 4).is_err());
    }

    /// bf16 weights: byte planes must beat plain zstd (the reason they exist).
    #[test]
    fn planes_beat_zstd_on_weights_and_round_trip() {
        let (weights, _) = crate::format::byteplane::tests::weights("bf16", 1 << 20);
        let (c, planes) = encode(
            &weights,
            3,
            Hint::Planes {
                width: 2,
                float: true,
            },
        );
        let (_, zstd) = encode(&weights, 3, Hint::Bytes);
        assert_eq!(c, Codec::Planes);
        assert!(
            planes.len() * 100 < zstd.len() * 90,
            "planes {} vs zstd {}",
            planes.len(),
            zstd.len()
        );
        assert_eq!(decode(c, &planes, weights.len()).unwrap(), weights);
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..5000), level in 0i32..6, width in 0u8..9, float: bool) {
            let hint = if width < 2 { Hint::Bytes } else { Hint::Planes { width, float } };
            let (codec, stored) = encode(&data, level, hint);
            prop_assert_eq!(decode(codec, &stored, data.len()).unwrap(), data);
        }
    }
}
