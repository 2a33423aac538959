//! How a chunk's bytes are stored: raw, or zstd-compressed. The codec is
//! recorded per chunk in the pack trailer; a chunk whose compressed form is
//! not smaller is stored raw, so incompressible data costs nothing extra.

use crate::error::{Error, Result};

/// Codec byte as written in pack trailers (see docs/FORMAT.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    /// Stored bytes are the chunk bytes.
    Raw = 0,
    /// One zstd frame.
    Zstd = 1,
}

impl Codec {
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Raw => "raw",
            Codec::Zstd => "zstd",
        }
    }
}

/// Highest zstd level accepted by `--compression`.
pub const MAX_LEVEL: i32 = 19;

/// Encodes `raw` at `level` (0 = store raw). Returns the codec used and the
/// stored bytes; falls back to raw when compression does not shrink the data.
pub fn encode(raw: &[u8], level: i32) -> (Codec, Vec<u8>) {
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
pub fn decode(codec: Codec, stored: &[u8], raw_len: usize) -> std::result::Result<Vec<u8>, String> {
    let out = match codec {
        Codec::Raw => stored.to_vec(),
        Codec::Zstd => zstd::bulk::decompress(stored, raw_len).map_err(|e| format!("zstd: {e}"))?,
    };
    if out.len() != raw_len {
        return Err(format!("decoded {} bytes, expected {raw_len}", out.len()));
    }
    Ok(out)
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
        let noise = crate::chunker::tests::stream(10_000, 3);
        assert_eq!(encode(&noise, 3).0, Codec::Raw);
        let zeros = vec![0u8; 10_000];
        let (codec, stored) = encode(&zeros, 3);
        assert_eq!(codec, Codec::Zstd);
        assert!(stored.len() < 100);
        assert_eq!(encode(&zeros, 0).0, Codec::Raw);
    }

    #[test]
    fn decode_rejects_wrong_length_and_garbage() {
        let (codec, stored) = encode(&[7u8; 5000], 1);
        assert!(decode(codec, &stored, 4999).is_err());
        assert!(decode(Codec::Zstd, b"not zstd", 10).is_err());
        assert!(decode(Codec::Raw, b"abc", 4).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..5000), level in 0i32..6) {
            let (codec, stored) = encode(&data, level);
            prop_assert_eq!(decode(codec, &stored, data.len()).unwrap(), data);
        }
    }
}
