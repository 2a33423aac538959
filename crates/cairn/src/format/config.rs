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
use crate::storage::{PutMode, Storage};

/// Version 1: the initial repository layout (packs v1, manifests v1, catalog schema 1).
pub const REPO_VERSION: u32 = 1;
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
}

impl RepoConfig {
    pub fn new(chunker: ChunkerParams, compression: i32) -> Result<Self> {
        chunker.validate()?;
        codec::check_level(compression)?;
        Ok(Self {
            format: FORMAT_NAME.to_string(),
            version: REPO_VERSION,
            id: random_hex(16),
            chunker,
            compression,
            verify_after_snapshot: false,
            pack_target: None,
        })
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
        cfg.chunker.validate().map_err(|e| bad(e.to_string()))?;
        codec::check_level(cfg.compression).map_err(|e| bad(e.to_string()))?;
        if let Some(n) = cfg.pack_target {
            check_pack_target(n).map_err(|e| bad(e.to_string()))?;
        }
        Ok(cfg)
    }
}

/// Which object a config was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigSource {
    Config,
    Backup,
}

/// A config as read from storage, with what is wrong with its other copy.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: RepoConfig,
    /// The exact bytes it was parsed from (the repository id may hash them).
    pub bytes: Vec<u8>,
    pub source: ConfigSource,
    /// True when `config` is intact and `config.backup` is missing (a
    /// repository made before backups existed).
    pub backup_missing: bool,
    /// What the user should hear: a damaged copy and how to repair it.
    pub warnings: Vec<String>,
}

/// Why one copy of the config cannot be used.
enum Unusable {
    Missing,
    Damaged(String),
}

impl Unusable {
    fn describe(&self) -> String {
        match self {
            Unusable::Missing => "missing".into(),
            Unusable::Damaged(reason) => format!("damaged ({reason})"),
        }
    }
}

/// Reads one copy. A config of a newer repository version is an error, not
/// damage: the backup, made at the same time, would be no better.
fn read_copy(
    storage: &dyn Storage,
    key: &str,
) -> Result<std::result::Result<(RepoConfig, Vec<u8>), Unusable>> {
    let bytes = match storage.get(key) {
        Ok(bytes) => bytes,
        Err(Error::ObjectNotFound { .. }) => return Ok(Err(Unusable::Missing)),
        Err(e) => return Ok(Err(Unusable::Damaged(e.to_string()))),
    };
    let path = format!("{}/{key}", storage.location());
    match RepoConfig::from_json(&bytes, &path) {
        Ok(config) => Ok(Ok((config, bytes))),
        Err(Error::BadConfig { reason, .. }) => Ok(Err(Unusable::Damaged(reason))),
        Err(e) => Err(e),
    }
}

/// Reads the config, falling back to `config.backup` when `config` is
/// missing or damaged. `root` names the repository in errors. With neither
/// copy usable: [`Error::RepoNotFound`] when storage holds no repository
/// data either, [`Error::ConfigMissing`] when it does, else
/// [`Error::ConfigUnusable`] saying what is wrong with each.
pub fn load(storage: &dyn Storage, root: &std::path::Path) -> Result<LoadedConfig> {
    let primary = read_copy(storage, KEY)?;
    let backup = read_copy(storage, BACKUP_KEY)?;
    let mut warnings = Vec::new();
    match (primary, backup) {
        (Ok((config, bytes)), backup) => {
            let backup_missing = matches!(backup, Err(Unusable::Missing));
            match backup {
                Ok((_, copy)) if copy != bytes => warnings.push(
                    "config.backup differs from config; `cairn repair --config` rewrites it from config"
                        .to_string(),
                ),
                Err(Unusable::Damaged(reason)) => warnings.push(format!(
                    "config.backup is damaged ({reason}); `cairn repair --config` rewrites it from config"
                )),
                _ => {}
            }
            Ok(LoadedConfig {
                config,
                bytes,
                source: ConfigSource::Config,
                backup_missing,
                warnings,
            })
        }
        (Err(why), Ok((config, bytes))) => {
            warnings.push(format!(
                "config is {}; using config.backup — run `cairn repair --config` to restore it",
                why.describe()
            ));
            Ok(LoadedConfig {
                config,
                bytes,
                source: ConfigSource::Backup,
                backup_missing: false,
                warnings,
            })
        }
        (Err(Unusable::Missing), Err(Unusable::Missing)) => Err(if holds_data(storage) {
            Error::ConfigMissing { path: root.into() }
        } else {
            Error::RepoNotFound { path: root.into() }
        }),
        (Err(a), Err(b)) => Err(Error::ConfigUnusable {
            path: root.into(),
            config: a.describe(),
            backup: b.describe(),
        }),
    }
}

/// True when storage looks like a repository that lost its config: a local
/// one has `packs/` and `snapshots/`, any has an object under either.
fn holds_data(storage: &dyn Storage) -> bool {
    if let Some(root) = storage.local_root() {
        if root.join("packs").is_dir() && root.join("snapshots").is_dir() {
            return true;
        }
    }
    ["packs/", "snapshots/"].iter().any(|prefix| {
        let mut found = false;
        let _ = storage.list_each(prefix, &mut |_| {
            found = true;
            Err(Error::InvalidArgument("stop".into()))
        });
        found
    })
}

/// What [`repair`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigRepair {
    /// Both copies were intact and identical.
    Nothing,
    /// `config` was rewritten from `config.backup`.
    ConfigFromBackup,
    /// `config.backup` was written (or rewritten) from `config`.
    BackupFromConfig,
    /// Neither copy was usable; both were written from `recreate`.
    Recreated,
}

/// Makes `config` and `config.backup` intact and identical again, without
/// the catalog: the intact copy is written over the other (`config` wins
/// when both are intact but differ). With neither usable, `recreate` (new
/// chunker parameters and compression the caller chose) is written as both;
/// without it that is an error. Takes the exclusive lock.
pub fn repair(
    storage: std::sync::Arc<dyn Storage>,
    root: &std::path::Path,
    recreate: Option<RepoConfig>,
) -> Result<ConfigRepair> {
    let _lock = crate::repo::lock::Lock::exclusive(storage.clone(), "repair --config")?;
    let storage = storage.as_ref();
    let loaded = match (load(storage, root), recreate) {
        (Ok(loaded), _) => loaded,
        (Err(Error::ConfigMissing { .. } | Error::ConfigUnusable { .. }), Some(fresh)) => {
            let bytes = fresh.to_json();
            storage.put_with(BACKUP_KEY, &bytes, PutMode::Overwrite)?;
            storage.put_with(KEY, &bytes, PutMode::Overwrite)?;
            return Ok(ConfigRepair::Recreated);
        }
        (Err(e), _) => return Err(e),
    };
    match loaded.source {
        ConfigSource::Backup => {
            storage.put(KEY, &loaded.bytes)?;
            Ok(ConfigRepair::ConfigFromBackup)
        }
        ConfigSource::Config if loaded.backup_missing || !loaded.warnings.is_empty() => {
            storage.put(BACKUP_KEY, &loaded.bytes)?;
            Ok(ConfigRepair::BackupFromConfig)
        }
        ConfigSource::Config => Ok(ConfigRepair::Nothing),
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
            .replace("\"version\": 1", "\"version\": 9");
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
        assert!(cfg.with_pack_target(10).is_err());
    }

    fn stored(cfg: &RepoConfig) -> crate::storage::MemoryStorage {
        let s = crate::storage::MemoryStorage::new();
        s.put(KEY, &cfg.to_json()).unwrap();
        s.put(BACKUP_KEY, &cfg.to_json()).unwrap();
        s
    }

    /// A damaged or missing `config` falls back to the backup; `repair`
    /// puts it back byte for byte.
    #[test]
    fn load_falls_back_to_the_backup_and_repair_restores_config() {
        let cfg = RepoConfig::new(ChunkerParams::default(), 3).unwrap();
        let root = std::path::Path::new("mem");
        let s = stored(&cfg);
        let loaded = load(&s, root).unwrap();
        assert_eq!(
            (loaded.source, loaded.warnings.len()),
            (ConfigSource::Config, 0)
        );
        s.put(KEY, b"{").unwrap();
        let loaded = load(&s, root).unwrap();
        assert_eq!(loaded.source, ConfigSource::Backup);
        assert_eq!(loaded.config, cfg);
        assert!(
            loaded.warnings[0].starts_with("config is damaged ("),
            "{:?}",
            loaded.warnings
        );
        assert_eq!(
            repair(std::sync::Arc::new(s.clone()), root, None).unwrap(),
            ConfigRepair::ConfigFromBackup
        );
        assert_eq!(s.get(KEY).unwrap(), cfg.to_json());
        assert_eq!(
            repair(std::sync::Arc::new(s.clone()), root, None).unwrap(),
            ConfigRepair::Nothing
        );
        s.delete(BACKUP_KEY).unwrap();
        assert!(load(&s, root).unwrap().backup_missing);
        assert_eq!(
            repair(std::sync::Arc::new(s.clone()), root, None).unwrap(),
            ConfigRepair::BackupFromConfig
        );
    }

    /// A newer version is refused, not "repaired" from an older backup.
    #[test]
    fn a_newer_config_is_an_error_not_damage() {
        let cfg = RepoConfig::new(ChunkerParams::default(), 3).unwrap();
        let s = stored(&cfg);
        let newer = String::from_utf8(cfg.to_json())
            .unwrap()
            .replace("\"version\": 1", "\"version\": 9");
        s.put(KEY, newer.as_bytes()).unwrap();
        assert!(matches!(
            load(&s, std::path::Path::new("mem")),
            Err(Error::UnsupportedVersion { found: 9, .. })
        ));
    }

    /// Neither copy: no repository unless there is repository data.
    #[test]
    fn both_missing_is_not_found_or_missing_config() {
        let s = crate::storage::MemoryStorage::new();
        let root = std::path::Path::new("mem");
        assert!(matches!(load(&s, root), Err(Error::RepoNotFound { .. })));
        s.put("snapshots/x.snap", b"x").unwrap();
        assert!(matches!(load(&s, root), Err(Error::ConfigMissing { .. })));
        s.put(KEY, b"[]").unwrap();
        let err = load(&s, root).unwrap_err().to_string();
        assert!(
            err.contains("config: damaged (") && err.contains("config.backup: missing"),
            "{err}"
        );
    }
}
