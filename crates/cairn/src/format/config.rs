//! The repository config: the one mutable object in a repository, a small
//! JSON document at key `config` that fixes the chunker for the repository's
//! life and holds defaults a snapshot may override.
//!
//! It is kept twice, `config` and a byte-identical `config.backup`, so one
//! damaged object never locks the user out: [`load`] falls back to the
//! backup with a warning, and [`repair`] copies the intact one over the
//! other (docs/FORMAT.md, "config").

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::codec;
use crate::format::pack;
use crate::ingest::chunker::ChunkerParams;

/// Version 1: the initial repository layout (packs v1, manifests v1,
/// catalog schema 1); every unencrypted repository is still written as 1.
pub const PLAIN_VERSION: u32 = 1;
/// Version 2: an encrypted repository (docs/FORMAT.md, "Encryption"): key
/// files, keyed chunk ids, sealed chunks (pack version 2), trailers,
/// manifests and every other object but locks; the config authenticated.
pub const ENCRYPTED_VERSION: u32 = 2;
/// Version 3: a repository that may hold delta chunks (codec 3,
/// docs/FORMAT.md "Delta chunks"), encrypted (with an `encryption` object)
/// or not. Every repository `init` makes from now on; an older cairn
/// refuses it rather than misread its delta chunks as damage. Snapshots
/// into a version-1 or -2 repository store every chunk standalone.
pub const DELTA_VERSION: u32 = 3;
/// Version 4: a repository whose snapshots are written as manifest version
/// 2 with content-addressed tree objects (docs/FORMAT.md, "Tree object").
/// Every repository `init` makes from now on; an older cairn refuses it
/// rather than meet a manifest it cannot read. Snapshots into a repository
/// of version 1–3 are still written as manifest version 1.
pub const TREE_VERSION: u32 = 4;
/// The highest version this build reads.
pub const REPO_VERSION: u32 = TREE_VERSION;
/// Marks the file as ours, so `init` never mistakes another tool's JSON.
pub const FORMAT_NAME: &str = "cairn-repository";
pub const KEY: &str = "config";
/// A byte-identical copy of `config`, written beside it, so one damaged
/// object never locks the user out (docs/FORMAT.md, "Config").
pub const BACKUP_KEY: &str = "config.backup";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepoConfig {
    pub format: String,
    pub version: u32,
    /// Random id, so two repositories are never confused.
    pub id: String,
    pub chunker: ChunkerParams,
    /// Default zstd level for new chunks (0 = raw).
    pub compression: i32,
    /// Whether `snapshot` verifies the packs it wrote before committing.
    #[serde(default)]
    pub verify_after_snapshot: bool,
    /// Chunk data per pack before it is sealed; `None` is
    /// [`pack::TARGET_SIZE`] (32 MiB). Smaller packs let `gc` reclaim space
    /// at a finer grain; tests use them to get many packs from little data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack_target: Option<u64>,
    /// Present exactly in an encrypted (version 2) repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

/// The config's `encryption` object: the cipher, and the MAC that
/// authenticates the config (see [`RepoConfig::mac_input`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// Always [`CIPHER`].
    pub cipher: String,
    /// 64 hex digits: keyed BLAKE3 (the config MAC key) of the config's
    /// bytes with these 64 digits written as `0`s.
    pub mac: String,
}

pub const CIPHER: &str = "xchacha20-poly1305";
/// The `mac` of a config whose MAC is being computed.
const MAC_PLACEHOLDER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl RepoConfig {
    pub fn new(chunker: ChunkerParams, compression: i32) -> Result<Self> {
        chunker.validate()?;
        codec::check_level(compression)?;
        Ok(Self {
            format: FORMAT_NAME.to_string(),
            version: TREE_VERSION,
            id: random_hex(16),
            chunker,
            compression,
            verify_after_snapshot: false,
            pack_target: None,
            encryption: None,
        })
    }

    /// Marks the config as that of an encrypted repository (version 2);
    /// `init` computes the MAC once it has made the master key.
    pub fn with_encryption(mut self) -> Self {
        self.version = self.version.max(ENCRYPTED_VERSION);
        self.encryption = Some(Encryption {
            cipher: CIPHER.into(),
            mac: MAC_PLACEHOLDER.into(),
        });
        self
    }

    pub fn is_encrypted(&self) -> bool {
        self.encryption.is_some()
    }

    /// True when snapshots are written as manifest version 2 with trees
    /// (version 4 or later).
    pub fn writes_trees(&self) -> bool {
        self.version >= TREE_VERSION
    }

    /// True when the repository may hold delta chunks (version 3 or later).
    pub fn allows_delta(&self) -> bool {
        self.version >= DELTA_VERSION
    }

    /// The bytes the MAC covers: `bytes` (this config as stored) with the
    /// MAC's hex digits replaced by `0`s; `None` for an unencrypted config
    /// or one whose MAC is not found exactly once.
    pub fn mac_input(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let mac = self.encryption.as_ref()?.mac.as_bytes();
        if mac.len() != MAC_PLACEHOLDER.len() {
            return None;
        }
        let at: Vec<usize> = bytes
            .windows(mac.len())
            .enumerate()
            .filter(|(_, w)| *w == mac)
            .map(|(i, _)| i)
            .collect();
        let [at] = at[..] else { return None };
        let mut out = bytes.to_vec();
        out[at..at + mac.len()].copy_from_slice(MAC_PLACEHOLDER.as_bytes());
        Some(out)
    }

    /// The stored bytes of this encrypted config, its MAC computed with
    /// `mac` (keyed BLAKE3 with the config MAC key).
    pub fn to_json_with_mac(&mut self, mac: impl Fn(&[u8]) -> [u8; 32]) -> Vec<u8> {
        if let Some(e) = self.encryption.as_mut() {
            e.mac = MAC_PLACEHOLDER.into();
            let digest = mac(&self.to_json());
            self.encryption.as_mut().expect("encrypted").mac = hex::encode(digest);
        }
        self.to_json()
    }

    /// Sets the pack size target (see [`RepoConfig::pack_target`]).
    pub fn with_pack_target(mut self, bytes: u64) -> Result<Self> {
        check_pack_target(bytes)?;
        self.pack_target = Some(bytes);
        Ok(self)
    }

    /// Bytes of chunk data at which a new pack is sealed.
    pub fn pack_target_bytes(&self) -> usize {
        self.pack_target.map_or(pack::TARGET_SIZE, |n| n as usize)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("config serialises");
        out.push(b'\n');
        out
    }

    /// Parses and validates; `path` names the file in errors.
    pub fn from_json(bytes: &[u8], path: &str) -> Result<Self> {
        let bad = |reason: String| Error::BadConfig {
            path: path.into(),
            reason,
        };
        let cfg: RepoConfig = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if cfg.format != FORMAT_NAME {
            return Err(bad(format!(
                "format is `{}`, not `{FORMAT_NAME}`",
                cfg.format
            )));
        }
        if cfg.version > REPO_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "repository",
                path: path.into(),
                found: cfg.version,
                supported: REPO_VERSION,
            });
        }
        match (cfg.version, &cfg.encryption) {
            (PLAIN_VERSION, None)
            | (ENCRYPTED_VERSION, Some(_))
            | (DELTA_VERSION | TREE_VERSION, _) => {}
            (v, None) => return Err(bad(format!("version {v} needs an `encryption` object"))),
            (v, Some(_)) => {
                return Err(bad(format!(
                    "version {v} has an `encryption` object (only version {ENCRYPTED_VERSION} may)"
                )))
            }
        }
        if let Some(e) = &cfg.encryption {
            if e.cipher != CIPHER {
                return Err(bad(format!("unknown cipher `{}`", e.cipher)));
            }
        }
        cfg.chunker.validate().map_err(|e| bad(e.to_string()))?;
        codec::check_level(cfg.compression).map_err(|e| bad(e.to_string()))?;
        if let Some(n) = cfg.pack_target {
            check_pack_target(n).map_err(|e| bad(e.to_string()))?;
        }
        Ok(cfg)
    }
}

fn check_pack_target(bytes: u64) -> Result<()> {
    if (pack::MIN_TARGET_SIZE..=pack::MAX_TARGET_SIZE).contains(&bytes) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "pack target {bytes} bytes is outside {}..={}",
            pack::MIN_TARGET_SIZE,
            pack::MAX_TARGET_SIZE
        )))
    }
}

/// `n` random bytes as hex, from the OS (via a fresh BLAKE3 keyed by time,
/// pid and address-space entropy; it only has to be unique, not secret).
pub(crate) fn random_hex(n: usize) -> String {
    let mut h = blake3::Hasher::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.update(&now.as_nanos().to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(&(&now as *const _ as usize).to_le_bytes());
    if let Ok(bytes) = std::fs::read("/proc/sys/kernel/random/uuid") {
        h.update(&bytes);
    }
    hex::encode(&h.finalize().as_bytes()[..n.min(32)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_validation() {
        let cfg = RepoConfig::new(ChunkerParams::default(), 3).unwrap();
        assert_eq!(
            RepoConfig::from_json(&cfg.to_json(), "config").unwrap(),
            cfg
        );
        assert!(RepoConfig::from_json(b"{}", "config").is_err());
        let newer = String::from_utf8(cfg.to_json())
            .unwrap()
            .replace("\"version\": 4", "\"version\": 9");
        assert!(matches!(
            RepoConfig::from_json(newer.as_bytes(), "config"),
            Err(Error::UnsupportedVersion { found: 9, .. })
        ));
        assert!(RepoConfig::new(ChunkerParams::default(), 42).is_err());
        assert_ne!(random_hex(16), random_hex(16));
        assert!(
            !String::from_utf8(cfg.to_json())
                .unwrap()
                .contains("pack_target"),
            "absent unless set"
        );
        let small = cfg.clone().with_pack_target(1 << 20).unwrap();
        assert_eq!(
            RepoConfig::from_json(&small.to_json(), "config")
                .unwrap()
                .pack_target_bytes(),
            1 << 20
        );
        assert!(cfg.clone().with_pack_target(10).is_err());

        let mut enc = cfg.clone().with_encryption();
        let bytes = enc.to_json_with_mac(|b| *blake3::hash(b).as_bytes());
        let back = RepoConfig::from_json(&bytes, "config").unwrap();
        assert_eq!(back, enc);
        assert_eq!(
            back.mac_input(&bytes).unwrap(),
            back.clone().with_encryption().to_json(),
            "the MAC covers the bytes with its digits zeroed"
        );
        assert_eq!(
            blake3::hash(&back.mac_input(&bytes).unwrap())
                .to_hex()
                .as_str(),
            back.encryption.as_ref().unwrap().mac
        );
        let downgraded = String::from_utf8(bytes)
            .unwrap()
            .replace("\"version\": 4", "\"version\": 1");
        assert!(RepoConfig::from_json(downgraded.as_bytes(), "config").is_err());
    }
}
