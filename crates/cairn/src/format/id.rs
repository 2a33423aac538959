//! Content identifiers: 32-byte BLAKE3 digests that name chunks, packs and
//! snapshots. Each kind has its own type so a pack id can never be looked up
//! as a chunk id by mistake.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! digest_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The id of `data`: its BLAKE3-256 digest.
            pub fn of(data: &[u8]) -> Self {
                Self(*blake3::hash(data).as_bytes())
            }

            /// Full lower-case hex form (64 characters).
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first 8 hex characters, as shown in tables.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }

            /// Parses the full 64-character hex form.
            pub fn from_hex(s: &str) -> Option<Self> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).ok()?;
                Some(Self(out))
            }

            /// Builds an id from a 32-byte slice (e.g. a SQLite blob).
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                Some(Self(bytes.try_into().ok()?))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }
    };
}

digest_id!(
    /// BLAKE3 of a chunk's uncompressed bytes.
    ChunkId
);
digest_id!(
    /// BLAKE3 of a whole pack file as stored.
    PackId
);
digest_id!(
    /// BLAKE3 of a snapshot manifest's encoded (uncompressed) body.
    SnapshotId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_short_form() {
        let id = ChunkId::of(b"hello");
        assert_eq!(id.to_hex().len(), 64);
        assert_eq!(ChunkId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(id.short(), id.to_hex()[..8]);
        assert_eq!(ChunkId::from_hex("zz"), None);
        assert_eq!(ChunkId::from_slice(&[0u8; 31]), None);
    }
}
