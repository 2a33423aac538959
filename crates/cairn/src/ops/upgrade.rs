//! Raising a repository's version to the newest this build writes
//! (`cairn upgrade`, docs/FORMAT.md "Version history"). A repository keeps
//! the version it was made with, and with it the way it is written (a
//! version 1–3 repository gets version-1 manifests, versions 1 and 2 no
//! delta chunks); upgrading changes only the config's `version`, so every
//! snapshot, pack and manifest stored stays as it is and is read as before.
//!
//! Under the exclusive lock, through [`crate::storage::Storage`] alone (the catalog is not
//! involved: it holds nothing that depends on the version). Crash-safe
//! order: `config.backup` first, then `config`. Until `config` is written
//! the repository is the old version to every reader (`config` wins when
//! both copies are intact), so no snapshot of the new format exists while
//! either copy still says the old version; killed in between, a rerun
//! finishes it (and `cairn repair --config` would put the old version back
//! into the backup instead).

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::config::{RepoConfig, BACKUP_KEY, KEY, REPO_VERSION};
use crate::repo::config as stored_config;
use crate::repo::lock::Lock;
use crate::repo::repository::RepoStorage;
use crate::storage::PutMode;

/// What [`upgrade`] found and did.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradeReport {
    /// The repository's version before.
    pub from: u32,
    /// The version it has now (with `dry_run`, would have).
    pub to: u32,
    /// True when the config was rewritten; false when the repository was
    /// already at the newest version, and for a dry run.
    pub upgraded: bool,
    pub dry_run: bool,
}

impl UpgradeReport {
    /// True when the repository is (already) at the newest version.
    pub fn already_newest(&self) -> bool {
        self.from >= self.to
    }
}

/// Raises the repository's version to [`REPO_VERSION`]; `dry_run` says
/// what it would do and writes nothing (and takes no lock).
pub fn upgrade(repo: &RepoStorage, dry_run: bool) -> Result<UpgradeReport> {
    let mut report = UpgradeReport {
        from: repo.config().version,
        to: REPO_VERSION.max(repo.config().version),
        upgraded: false,
        dry_run,
    };
    if dry_run || report.already_newest() {
        return Ok(report);
    }
    let _lock = Lock::exclusive(repo.shared_storage(), "upgrade")?;
    // Read again under the lock: the copy opened may be out of date (an
    // upgrade or `repair --config` ran meanwhile), and only the one the
    // open authenticated is written back, with its new version.
    let now = stored_config::load(repo.storage(), repo.root())?;
    if &now.config != repo.config() {
        return Err(Error::InvalidArgument(format!(
            "the config of {} changed while `upgrade` started; run it again",
            repo.root().display()
        )));
    }
    let bytes = upgraded_bytes(repo)?;
    let storage = repo.storage();
    storage.put_with(BACKUP_KEY, &bytes, PutMode::Overwrite)?;
    storage.put_with(KEY, &bytes, PutMode::Overwrite)?;
    report.upgraded = true;
    Ok(report)
}

/// The repository's config at [`REPO_VERSION`], as stored: with its MAC
/// recomputed when encrypted. Checked to parse back to what was meant.
fn upgraded_bytes(repo: &RepoStorage) -> Result<Vec<u8>> {
    let mut config = repo.config().clone();
    config.version = REPO_VERSION;
    let bytes = match repo.crypt().is_encrypted() {
        true => config.to_json_with_mac(|b| {
            *repo
                .crypt()
                .config_mac(b)
                .expect("an encrypted repository's crypt has keys")
                .as_bytes()
        }),
        false => config.to_json(),
    };
    let path = format!("{}/{KEY}", repo.storage().location());
    match RepoConfig::from_json(&bytes, &path)? == config {
        true => Ok(bytes),
        false => Err(Error::BadConfig {
            path: path.into(),
            reason: "the upgraded config does not read back as written".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::config::{DELTA_VERSION, TREE_VERSION};
    use crate::{ChunkerParams, Repository};

    /// A version-3 repository becomes version 4 in both copies of its
    /// config; a second run finds nothing to do; a dry run writes nothing.
    #[test]
    fn upgrade_raises_both_copies_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let mut cfg = RepoConfig::new(ChunkerParams::default(), 3).unwrap();
        cfg.version = DELTA_VERSION;
        Repository::init(&root, cfg).unwrap();
        let dry = upgrade(&Repository::open_storage(&root).unwrap(), true).unwrap();
        assert_eq!((dry.from, dry.to, dry.upgraded), (3, TREE_VERSION, false));
        let before = std::fs::read(root.join(KEY)).unwrap();
        assert!(String::from_utf8_lossy(&before).contains("\"version\": 3"));

        let done = upgrade(&Repository::open_storage(&root).unwrap(), false).unwrap();
        assert_eq!((done.from, done.to, done.upgraded), (3, TREE_VERSION, true));
        let after = std::fs::read(root.join(KEY)).unwrap();
        assert_eq!(after, std::fs::read(root.join(BACKUP_KEY)).unwrap());
        assert_eq!(
            String::from_utf8_lossy(&after),
            String::from_utf8_lossy(&before).replace("\"version\": 3", "\"version\": 4")
        );
        let again = upgrade(&Repository::open_storage(&root).unwrap(), false).unwrap();
        assert!(again.already_newest() && !again.upgraded);
    }
}
