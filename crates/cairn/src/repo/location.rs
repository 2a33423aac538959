//! Where a repository is: what a `--repo` value names, and the one place
//! that turns it into storage and a catalog location.
//!
//! A local path keeps its objects as files and its catalog beside them
//! (`catalog.db`). An `s3://bucket/prefix` URL keeps its objects in the
//! bucket and its catalog in the user's cache directory ([`cache_dir`]),
//! as `<cache>/<repository id>/catalog.db`, caught up with the bucket on
//! every open (see `RepoStorage::open_catalog`). Any other `scheme://`
//! value is refused by name ([`crate::storage::object::url::parse`]).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::catalog::location::CatalogLocation;
use crate::error::{Error, Result};
use crate::format::config::{self, RepoConfig};
use crate::format::seal::SecretKey;
use crate::repo::config::ConfigRepair;
use crate::repo::repository::{OpenMode, RepoStorage, Repository};
use crate::storage::object::url::{self, ObjectUrl};
use crate::storage::{LocalStorage, ObjectSettings, ObjectStorage, Storage};

/// What a `--repo` value names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoLocation {
    /// A directory on this machine.
    Local(PathBuf),
    /// A prefix of a bucket (or container) in object storage: `s3://`,
    /// `az://`, `gs://`.
    Object(ObjectUrl),
}

impl RepoLocation {
    /// Parses a `--repo` value: `scheme://…` is a URL (`s3://`, `az://`
    /// and `gs://` are supported; others are [`Error::UnsupportedUrl`]),
    /// anything else a local path.
    pub fn parse(value: &OsStr) -> Result<Self> {
        let Some(text) = value.to_str() else {
            return Ok(Self::Local(PathBuf::from(value)));
        };
        Ok(match url::parse(text)? {
            Some(url) => Self::Object(url),
            None => Self::Local(PathBuf::from(value)),
        })
    }

    /// How messages name it: the directory, or the URL.
    pub fn display(&self) -> String {
        match self {
            Self::Local(path) => path.display().to_string(),
            Self::Object(url) => url.to_url(),
        }
    }

    /// The directory of a local repository.
    pub fn local_path(&self) -> Option<&Path> {
        match self {
            Self::Local(path) => Some(path),
            Self::Object(_) => None,
        }
    }

    /// The repository's storage and where its catalog is. For object storage, the
    /// connection settings come from the environment
    /// ([`ObjectStorage::open`], [`ObjectSettings::from_env`]) and the catalog
    /// from [`cache_dir`].
    pub fn open(&self) -> Result<(Arc<dyn Storage>, CatalogLocation)> {
        match self {
            Self::Local(path) => Ok((
                Arc::new(LocalStorage::new(path)),
                CatalogLocation::in_repository(path),
            )),
            Self::Object(url) => {
                let storage = ObjectStorage::open(url.clone(), ObjectSettings::from_env()?)?;
                Ok((Arc::new(storage), CatalogLocation::cache_dir(cache_dir()?)))
            }
        }
    }
}

/// Where the catalogs of remote repositories are cached: `$CAIRN_CACHE_DIR`,
/// else `$XDG_CACHE_HOME/cairn`, else `~/.cache/cairn`.
pub fn cache_dir() -> Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("CAIRN_CACHE_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("cairn"));
    }
    match var("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".cache/cairn")),
        None => Err(Error::InvalidArgument(
            "no cache directory for the catalog of a remote repository: \
             set CAIRN_CACHE_DIR (or XDG_CACHE_HOME or HOME)"
                .into(),
        )),
    }
}

impl Repository {
    /// Creates a repository at `location`. A local directory must not
    /// exist or be empty; an S3 prefix must hold no objects.
    pub fn init_at_location(location: &RepoLocation, config: RepoConfig) -> Result<Self> {
        Self::init_location(location, config, None)
    }

    /// Creates a repository at `location` that takes copies of `like`'s
    /// snapshots as they are stored (`cairn copy` without re-chunking):
    /// it gets `like`'s chunker and, when `like` is encrypted, its master
    /// key, wrapped in a key file of its own under the password asked for
    /// it (docs/FORMAT.md, "Keys"). The rest of `config` (compression,
    /// pack size) is its own.
    pub fn init_like(
        location: &RepoLocation,
        config: RepoConfig,
        like: &Repository,
    ) -> Result<Self> {
        let mut config = config;
        config.chunker = like.config().chunker;
        let master = like.crypt().keys().map(|k| k.master());
        config = match master {
            Some(_) => config.with_encryption(),
            None if config.is_encrypted() => {
                return Err(Error::InvalidArgument(format!(
                    "{} is not encrypted, so there is no key to share: a repository made from it \
                     is unencrypted too (copying into an encrypted repository with its own key \
                     would need re-chunking, which is not supported)",
                    like.root().display()
                )))
            }
            None => config,
        };
        Self::init_location(location, config, master)
    }

    fn init_location(
        location: &RepoLocation,
        config: RepoConfig,
        master: Option<&SecretKey>,
    ) -> Result<Self> {
        if let RepoLocation::Local(path) = location {
            return Self::init_local(path, config, master);
        }
        let (storage, catalog) = location.open()?;
        let path = PathBuf::from(location.display());
        if storage.head(config::KEY).is_ok() {
            return Err(Error::RepoExists { path });
        }
        if !storage.list("")?.is_empty() {
            return Err(Error::RepoDirNotEmpty { path });
        }
        let root = PathBuf::from(storage.location());
        Self::init_at(root, storage, catalog, config, master)
    }

    /// Opens the repository at `location` in `mode` (a remote one's cached
    /// catalog is caught up with storage first).
    pub fn open_location(location: &RepoLocation, mode: OpenMode) -> Result<Self> {
        match location {
            RepoLocation::Local(path) => Self::open_mode(path, mode),
            RepoLocation::Object(_) => {
                Self::open_storage_at(location, mode)?.open_catalog_mode(mode)
            }
        }
    }

    /// The storage and config of the repository at `location`, without its
    /// catalog (see [`RepoStorage`]).
    pub fn open_storage_location(location: &RepoLocation) -> Result<RepoStorage> {
        Self::open_storage_at(location, OpenMode::ReadWrite)
    }

    fn open_storage_at(location: &RepoLocation, mode: OpenMode) -> Result<RepoStorage> {
        let (storage, catalog) = location.open()?;
        let root = match location {
            RepoLocation::Local(path) => path.clone(),
            RepoLocation::Object(_) => PathBuf::from(location.display()),
        };
        RepoStorage::open_at(root, storage, catalog, mode)
    }
}

/// `cairn repair --config` for the repository at `location` (see
/// [`crate::repo::config::repair`]).
pub fn repair_config_at(
    location: &RepoLocation,
    recreate: Option<RepoConfig>,
) -> Result<ConfigRepair> {
    let (storage, _) = location.open()?;
    let root = PathBuf::from(location.display());
    crate::repo::config::repair(storage, &root, recreate)
}
