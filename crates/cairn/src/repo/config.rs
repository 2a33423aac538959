//! Reading and mending the repository config through the storage contract:
//! `config` and its byte-identical copy `config.backup` (docs/FORMAT.md),
//! the fallback to whichever copy is intact, and `cairn repair --config`.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::config::{RepoConfig, BACKUP_KEY, KEY};
use crate::storage::{PutMode, Storage};

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
        // The storage could not be asked: says nothing about this copy.
        Err(e) if e.is_storage_unavailable() => return Err(e),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::chunker::ChunkerParams;

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
            .replace("\"version\": 4", "\"version\": 9");
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
