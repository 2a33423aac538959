//! `Repository`: the facade a user of the library holds. It ties the object
//! storage, the repository config and the catalog together.
//!
//! Layout of a local repository (docs/FORMAT.md):
//! `config` (+ `config.backup`), `catalog.db`, `packs/<xx>/<id>.pack`,
//! `snapshots/<id>.snap`.
//! Every object goes through [`Storage`]; only the catalog is a file, put
//! where a [`CatalogLocation`] says. `init`/`open` take a directory;
//! `init_with`/`open_with` take any storage and catalog location.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::blob::RefCache;
use crate::catalog::location::{CatalogFile, CatalogLocation};
use crate::catalog::{Catalog, ChunkLocation, SnapshotFilter, SnapshotInfo};
use crate::error::{Error, Result};
use crate::format::config::{self, RepoConfig};
use crate::format::id::ChunkId;
use crate::format::pack::PackWriter;
use crate::format::seal::{Crypt, SecretKey};
use crate::repo::config as stored_config;
use crate::repo::keys;
use crate::repo::lock::Lock;
use crate::repo::selector;
use crate::storage::{LocalStorage, PutMode, Storage};

/// How a repository is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The catalog opened for writing (creating its WAL, checking its
    /// schema); a missing `config.backup` is written.
    ReadWrite,
    /// The catalog opened read-only and nothing written but lock objects,
    /// so read-only commands work on a full disk (see
    /// [`Catalog::open_read_only`] and [`Repository::read_lock`]).
    ReadOnly,
    /// [`OpenMode::ReadWrite`] for a command that frees space (forget,
    /// delete, gc, prune): on a full disk the storage's space reserve is
    /// given back first (see [`Storage::release_reserve`]), so the command
    /// can take its lock and change the catalog.
    Reclaim,
}

impl OpenMode {
    /// True for the modes that open the catalog for writing.
    fn writes(self) -> bool {
        self != OpenMode::ReadOnly
    }
}

/// Warnings a repository has for its user (a damaged config copy, a lock
/// that could not be taken): kept until a hook is set, then passed to it as
/// they arise, each once.
#[derive(Default)]
struct Warnings {
    seen: Vec<String>,
    hook: Option<WarningHook>,
}

type WarningHook = Box<dyn Fn(&str) + Send + Sync>;

/// An open repository.
pub struct Repository {
    root: PathBuf,
    /// For an encrypted repository, a [`crate::blob::sealed::SealedStorage`].
    storage: Arc<dyn Storage>,
    crypt: Crypt,
    config: RepoConfig,
    id: String,
    catalog: Catalog,
    /// For a repository whose catalog is a local cache (its packs are
    /// remote): reference chunks kept on disk beside it.
    ref_cache: Option<RefCache>,
    /// Where the catalog is (a cache of remote packs, or a fixed file).
    catalog_file: CatalogFile,
    warnings: Mutex<Warnings>,
    /// Tells this open repository from every other in the process: a plan
    /// (whose mark set lives in this instance's catalog connection) is
    /// carried out only by the repository that made it.
    instance: u64,
}

impl Repository {
    /// See the `instance` field.
    pub(crate) fn instance(&self) -> u64 {
        self.instance
    }

    /// Refuses a `what` plan that another open repository made (its mark
    /// set and lock belong to that instance).
    pub(crate) fn ensure_made_here(&self, instance: u64, what: &str) -> Result<()> {
        if instance == self.instance {
            return Ok(());
        }
        Err(Error::InvalidArgument(format!(
            "the {what} plan was made by another open repository"
        )))
    }

    /// Creates a repository in the local directory `path`, which must not
    /// exist or be empty; its catalog is `path/catalog.db`.
    pub fn init(path: &Path, config: RepoConfig) -> Result<Self> {
        Self::init_local(path, config, None)
    }

    /// [`Repository::init`], with the master key `master` when encrypted
    /// (a random one when `None`).
    pub(crate) fn init_local(
        path: &Path,
        config: RepoConfig,
        master: Option<&SecretKey>,
    ) -> Result<Self> {
        let existing = LocalStorage::new(path);
        if [config::KEY, config::BACKUP_KEY]
            .iter()
            .any(|key| existing.head(key).is_ok())
        {
            return Err(Error::RepoExists { path: path.into() });
        }
        let storage = Arc::new(LocalStorage::create(path)?);
        Self::init_at(
            path.to_path_buf(),
            storage,
            CatalogLocation::in_repository(path),
            config,
            master,
        )
    }

    /// Creates a repository in `storage`, which must hold no config yet,
    /// with its catalog where `catalog` says.
    pub fn init_with(
        storage: Arc<dyn Storage>,
        catalog: CatalogLocation,
        config: RepoConfig,
    ) -> Result<Self> {
        Self::init_at(
            PathBuf::from(storage.location()),
            storage,
            catalog,
            config,
            None,
        )
    }

    pub(crate) fn init_at(
        root: PathBuf,
        storage: Arc<dyn Storage>,
        catalog: CatalogLocation,
        config: RepoConfig,
        master: Option<&SecretKey>,
    ) -> Result<Self> {
        if storage.head(config::KEY).is_ok() {
            return Err(Error::RepoExists { path: root });
        }
        let mut config = config;
        // Encrypted: the master key and first password before anything is
        // written; its key file goes before the config.
        let new_key = match config.is_encrypted() {
            true => Some(keys::create(&root, &mut config, master)?),
            false => None,
        };
        let bytes = new_key
            .as_ref()
            .map_or_else(|| config.to_json(), |k| k.config.clone());
        let id = repository_id(&config, &bytes);
        // The catalog first, the config last: storage with a config is a
        // complete repository. Created exclusively, so of two racing inits
        // one fails rather than both believing they made it.
        let file = catalog.file(&id);
        let ref_cache = ref_cache_for(&file)?;
        let catalog = file.create()?;
        if let Some(k) = &new_key {
            storage.put_with(&k.key, &k.file, PutMode::CreateNew)?;
        }
        match storage.put_with(config::KEY, &bytes, PutMode::CreateNew) {
            Err(Error::ObjectExists { .. }) => {
                if let Some(k) = &new_key {
                    storage.delete(&k.key)?;
                }
                return Err(Error::RepoExists { path: root });
            }
            other => other?,
        }
        // The backup only once this init has won the race for `config`, so
        // a losing init never replaces the winner's backup. Killed in
        // between, the repository lacks a backup, which the next read-write
        // open writes.
        storage.put_with(config::BACKUP_KEY, &bytes, PutMode::Overwrite)?;
        storage.refill_reserve()?;
        let (storage, crypt) = match new_key {
            Some(k) => {
                let sealed: Arc<dyn Storage> = Arc::new(crate::blob::sealed::SealedStorage::new(
                    storage,
                    k.crypt.clone(),
                ));
                (sealed, k.crypt)
            }
            None => (storage, Crypt::plain()),
        };
        Ok(Self {
            root,
            storage,
            crypt,
            config,
            id,
            catalog,
            ref_cache,
            catalog_file: file,
            warnings: Mutex::default(),
            instance: next_instance(),
        })
    }

    /// Opens an existing local repository; its catalog must be at
    /// `path/catalog.db` ([`Error::CatalogMissing`] otherwise).
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_storage(path)?.open_catalog()
    }

    /// [`Repository::open`] for commands that only read: the catalog is
    /// opened read-only and nothing is written (see [`OpenMode::ReadOnly`]).
    pub fn open_read_only(path: &Path) -> Result<Self> {
        Self::open_mode(path, OpenMode::ReadOnly)
    }

    /// [`Repository::open`] or [`Repository::open_read_only`].
    pub fn open_mode(path: &Path, mode: OpenMode) -> Result<Self> {
        RepoStorage::open_at(
            path.to_path_buf(),
            Arc::new(LocalStorage::new(path)),
            CatalogLocation::in_repository(path),
            mode,
        )?
        .open_catalog_mode(mode)
    }

    /// Opens the repository whose objects are in `storage`, with its
    /// catalog where `catalog` says (a cache is rebuilt if missing). Tests
    /// use this to inject faults into a local repository's storage.
    pub fn open_with(storage: Arc<dyn Storage>, catalog: CatalogLocation) -> Result<Self> {
        RepoStorage::open(storage, catalog)?.open_catalog()
    }

    /// The storage and config of the local repository at `path`, without
    /// its catalog (see [`RepoStorage`]).
    pub fn open_storage(path: &Path) -> Result<RepoStorage> {
        RepoStorage::open_at(
            path.to_path_buf(),
            Arc::new(LocalStorage::new(path)),
            CatalogLocation::in_repository(path),
            OpenMode::ReadWrite,
        )
    }

    /// A writer for a new pack of this repository: its pack size, sealed
    /// as the repository seals (every writer of packs starts here).
    pub(crate) fn pack_writer(&self) -> PackWriter {
        self.pack_writer_in(Vec::new())
    }

    /// [`Repository::pack_writer`], reusing `buffer`'s allocation (a pack
    /// a writer is done with).
    pub(crate) fn pack_writer_in(&self, buffer: Vec<u8>) -> PackWriter {
        PackWriter::with_buffer(self.config().pack_target_bytes(), buffer).sealing(self.crypt())
    }

    /// Where the repository is: the directory of a local repository, else
    /// how its storage names itself ([`Storage::location`]).
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// How the repository's bytes are sealed (plain when unencrypted).
    pub fn crypt(&self) -> &Crypt {
        &self.crypt
    }

    /// The storage, for what must outlive a borrow of the repository (a
    /// [`crate::repo::lock::Lock`] and its heartbeat thread).
    pub(crate) fn shared_storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }

    /// Names the repository (see [`RepoStorage::id`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The local cache of reference chunks (a repository with remote
    /// packs; `None` for a local one, or with `CAIRN_REF_CACHE_BYTES=0`).
    pub(crate) fn ref_cache(&self) -> Option<&RefCache> {
        self.ref_cache.as_ref()
    }

    /// Where this repository's catalog is.
    pub(crate) fn catalog_file(&self) -> &CatalogFile {
        &self.catalog_file
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// True when opened with [`OpenMode::ReadOnly`].
    pub fn is_read_only(&self) -> bool {
        self.catalog.is_read_only()
    }

    /// Records a warning for the user; each distinct one is kept (or passed
    /// to the hook) once.
    pub fn warn(&self, message: impl Into<String>) {
        let message = message.into();
        let mut w = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        if w.seen.contains(&message) {
            return;
        }
        if let Some(hook) = &w.hook {
            hook(&message);
        }
        w.seen.push(message);
    }

    /// The warnings so far, oldest first.
    pub fn warnings(&self) -> Vec<String> {
        let w = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        w.seen.clone()
    }

    /// Passes every warning so far, and each later one as it arises, to
    /// `hook` (the CLI prints them on stderr).
    pub fn on_warning(&self, hook: impl Fn(&str) + Send + Sync + 'static) {
        let mut w = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        for message in &w.seen {
            hook(message);
        }
        w.hook = Some(Box::new(hook));
    }

    /// The shared lock of a command that only reads (restore, cat, check,
    /// verify). On a read-only repository whose lock object cannot be
    /// written because the disk is full, the command runs without one, with
    /// a warning: a full disk must not keep the user from their data. That
    /// is safe enough: every other process needs to write a lock object on
    /// the same full disk first, and a gc that still got in could at worst
    /// make this command fail (a missing pack is damage, reported as such,
    /// and every restored file is checked against its SHA-256), never
    /// produce a wrong file or touch the repository.
    pub fn read_lock(&self, purpose: &str) -> Result<Option<Lock>> {
        match Lock::shared(self.shared_storage(), purpose) {
            Ok(lock) => Ok(Some(lock)),
            Err(e) if e.is_no_space() && self.is_read_only() => {
                self.warn(format!(
                    "disk full: running without a lock (no room for a lock object in {}/{})",
                    self.storage.location(),
                    crate::repo::lock::PREFIX.trim_end_matches('/')
                ));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// All snapshots matching `filter`, oldest first.
    pub fn snapshots(&self, filter: &SnapshotFilter) -> Result<Vec<SnapshotInfo>> {
        self.catalog.snapshots(filter)
    }

    /// Resolves a SNAPSHOT selector (id prefix, `NAME`, `NAME~N`,
    /// `NAME@TIME`, `NAME:VERSION`, optionally `KIND/` first).
    pub fn resolve(&self, selector: &str) -> Result<SnapshotInfo> {
        let all = self.catalog.snapshots(&SnapshotFilter::default())?;
        selector::resolve(&all, selector, chrono::Local::now().fixed_offset().offset())
    }

    /// Where each chunk lives, in order; a chunk the catalog lacks is an error.
    pub fn locate_all(&self, chunks: &[ChunkId]) -> Result<Vec<ChunkLocation>> {
        self.catalog.locate_all(chunks)
    }
}

/// A repository's storage and config, opened without its catalog. Commands
/// that must work while the catalog is lost or replaced (`unlock`,
/// `rebuild-catalog`) hold this; [`RepoStorage::open_catalog`] turns it into
/// a [`Repository`].
pub struct RepoStorage {
    root: PathBuf,
    storage: Arc<dyn Storage>,
    crypt: Crypt,
    config: RepoConfig,
    id: String,
    catalog: CatalogLocation,
    warnings: Vec<String>,
}

impl RepoStorage {
    /// Reads and checks the config in `storage`; a missing one is
    /// [`Error::RepoNotFound`].
    pub fn open(storage: Arc<dyn Storage>, catalog: CatalogLocation) -> Result<Self> {
        Self::open_at(
            PathBuf::from(storage.location()),
            storage,
            catalog,
            OpenMode::ReadWrite,
        )
    }

    pub(crate) fn open_at(
        root: PathBuf,
        storage: Arc<dyn Storage>,
        catalog: CatalogLocation,
        mode: OpenMode,
    ) -> Result<Self> {
        let loaded = stored_config::load(storage.as_ref(), &root)?;
        if mode == OpenMode::Reclaim {
            storage.release_reserve()?;
        }
        // Encrypted: the password, the config's MAC, then sealed storage.
        let (storage, crypt) = keys::unlock(&storage, &root, &loaded)?;
        let mut warnings = loaded.warnings;
        if loaded.backup_missing && mode.writes() {
            if let Err(e) = write_missing_backup(&storage, &loaded.bytes) {
                warnings.push(format!("could not write the missing config.backup: {e}"));
            }
        }
        Ok(Self {
            id: repository_id(&loaded.config, &loaded.bytes),
            root,
            storage,
            crypt,
            config: loaded.config,
            catalog,
            warnings,
        })
    }

    /// How the repository's bytes are sealed (plain when unencrypted).
    pub fn crypt(&self) -> &Crypt {
        &self.crypt
    }

    /// The key files, for `key list/add/remove/passwd`.
    pub(crate) fn key_ring(&self) -> keys::KeyRing<'_> {
        keys::KeyRing {
            storage: &self.storage,
            root: &self.root,
            config: &self.config,
            crypt: &self.crypt,
        }
    }

    /// Warnings from reading the config (a damaged copy).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// The storage, for what must outlive a borrow of the repository (a
    /// [`crate::repo::lock::Lock`] and its heartbeat thread).
    pub(crate) fn shared_storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// The repository's id, safe as a file name: the config's `id`, or for
    /// a config whose `id` is not 1–64 hex digits, the first 32 hex digits
    /// of the BLAKE3 of the config object. Names its catalog in a cache.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The repository as the user named it (a path or URL), for messages.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// This repository's catalog file.
    pub fn catalog_file(&self) -> CatalogFile {
        self.catalog.file(&self.id)
    }

    /// The repository with its catalog opened from `file` in `mode`.
    pub(crate) fn with_catalog(self, file: &CatalogFile, mode: OpenMode) -> Result<Repository> {
        let catalog = match mode.writes() {
            true => file.open()?,
            false => file.open_read_only()?,
        };
        let ref_cache = ref_cache_for(file)?;
        Ok(Repository {
            root: self.root,
            storage: self.storage,
            crypt: self.crypt,
            config: self.config,
            id: self.id,
            catalog,
            ref_cache,
            catalog_file: file.clone(),
            warnings: Mutex::new(Warnings {
                seen: self.warnings,
                hook: None,
            }),
            instance: next_instance(),
        })
    }
}

/// The reference cache beside a catalog that is itself a cache (the
/// repository's packs are remote; docs/FORMAT.md, "Reference cache").
fn ref_cache_for(file: &CatalogFile) -> Result<Option<RefCache>> {
    Ok(match (file.rebuilds_when_missing(), file.path().parent()) {
        (true, Some(dir)) => RefCache::new(dir.join("refs"), RefCache::budget_from_env()?),
        _ => None,
    })
}

/// `cairn repair --config` for the local repository at `path`: makes
/// `config` and `config.backup` intact again without the catalog (see
/// [`stored_config::repair`]).
pub fn repair_config(
    path: &Path,
    recreate: Option<RepoConfig>,
) -> Result<stored_config::ConfigRepair> {
    stored_config::repair(Arc::new(LocalStorage::new(path)), path, recreate)
}

/// Writes `config.backup` for a repository made before backups existed,
/// under a shared lock: every put outside `locks/` happens under a lock
/// (an exclusive holder may remove temp files it finds), and the bytes are
/// the intact config's, so racing writers write the same object. Skipped
/// while an exclusive lock is held; the next open writes it.
fn write_missing_backup(storage: &Arc<dyn Storage>, bytes: &[u8]) -> Result<()> {
    let _lock = match Lock::shared(storage.clone(), "config backup") {
        Ok(lock) => lock,
        Err(Error::Locked { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    match storage.put_with(config::BACKUP_KEY, bytes, PutMode::CreateNew) {
        Err(Error::ObjectExists { .. }) => Ok(()),
        other => other,
    }
}

/// See [`RepoStorage::id`]. The config's own id is random hex; anything else
/// there (a hand-edited config) must not become a path in a cache directory.
fn repository_id(config: &RepoConfig, bytes: &[u8]) -> String {
    let id = &config.id;
    if (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        id.to_ascii_lowercase()
    } else {
        blake3::hash(bytes).to_hex()[..32].to_string()
    }
}

#[cfg(test)]
mod tests;

fn next_instance() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
