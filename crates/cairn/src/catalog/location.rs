//! Where a repository's catalog lives, and the only file work on it (and
//! on the cache files beside it: the chunk filter).
//!
//! The catalog is a cache over packs and manifests (docs/FORMAT.md), so it
//! is not kept through [`crate::storage::Storage`]; the opener says where it
//! is. A local repository keeps it as `catalog.db` in its directory, and a
//! missing one is an error that points at `rebuild-catalog`: there it is
//! expected, and its loss is worth telling. Any other storage keeps it in a
//! cache directory the opener names, as `<dir>/<repository id>/catalog.db`,
//! rebuilt from storage whenever it is missing.
//!
//! Replacing a catalog (a rebuild) never leaves a half-built one in place:
//! the new one is built beside it as `<file>.rebuild`; the old file, if any,
//! moves aside as `<file>.broken-<UTC time>` (e.g.
//! `catalog.db.broken-2026-12-01T14-30-05.123456789Z`: readable, sorted by
//! time, and unique to the nanosecond) with its WAL and shared-memory files;
//! the new one is renamed into place and the directory fsynced.

use std::fs;
use std::path::{Path, PathBuf};

use crate::catalog::{now_ns, Catalog, FILE_NAME};
use crate::error::{Error, IoContext, Result};

/// Where the opener of a repository wants its catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogLocation {
    /// Exactly this file; when it is missing, opening fails with
    /// [`Error::CatalogMissing`].
    File(PathBuf),
    /// A cache directory shared by repositories: each has its catalog under
    /// its id there, rebuilt from storage when missing or stale (another
    /// client added or removed a snapshot or pack since it was built).
    CacheDir(PathBuf),
}

impl CatalogLocation {
    /// `catalog.db` in the local repository directory `root`.
    pub fn in_repository(root: &Path) -> Self {
        Self::File(root.join(FILE_NAME))
    }

    /// Under `<dir>/<repository id>/`, rebuilt when missing.
    pub fn cache_dir(dir: impl Into<PathBuf>) -> Self {
        Self::CacheDir(dir.into())
    }

    /// The catalog file of the repository whose id is `repo_id` (which the
    /// caller has made safe as a file name: see `Repository::id`).
    pub fn file(&self, repo_id: &str) -> CatalogFile {
        match self {
            Self::File(path) => CatalogFile {
                path: path.clone(),
                rebuild_when_missing: false,
            },
            Self::CacheDir(dir) => CatalogFile {
                path: dir.join(repo_id).join(FILE_NAME),
                rebuild_when_missing: true,
            },
        }
    }
}

/// One repository's catalog file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogFile {
    path: PathBuf,
    rebuild_when_missing: bool,
}

impl CatalogFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn exists(&self) -> bool {
        self.path.exists()
    }

    /// True for a cache, which opening rebuilds when it is missing.
    pub fn rebuilds_when_missing(&self) -> bool {
        self.rebuild_when_missing
    }

    /// Opens the catalog, creating an empty one if there is none.
    pub(crate) fn open(&self) -> Result<Catalog> {
        self.create_dir()?;
        Catalog::open(&self.path)
    }

    /// Opens the existing catalog for reading only (see
    /// [`Catalog::open_read_only`]); creates nothing.
    pub(crate) fn open_read_only(&self) -> Result<Catalog> {
        Catalog::open_read_only(&self.path)
    }

    /// An empty catalog for a new repository. A cache may hold a stale one
    /// under the same id (a repository created again); it is dropped.
    pub(crate) fn create(&self) -> Result<Catalog> {
        if self.rebuild_when_missing {
            remove_db(&self.path)?;
        }
        self.open()
    }

    /// Builds a new catalog with `fill` beside the current one and puts it
    /// in its place. Returns where the previous catalog was moved, if there
    /// was one. Fails without touching the current catalog if `fill` does.
    pub(crate) fn replace(
        &self,
        fill: impl FnOnce(&Catalog) -> Result<()>,
    ) -> Result<Option<PathBuf>> {
        self.create_dir()?;
        let fresh = sibling(&self.path, ".rebuild");
        remove_db(&fresh)?;
        {
            let catalog = Catalog::open(&fresh)?;
            fill(&catalog)?;
        }
        let aside = sibling(&self.path, &format!(".broken-{}", aside_stamp(now_ns())));
        let mut old = None;
        if self.path.exists() {
            fs::rename(&self.path, &aside).at(&self.path)?;
            old = Some(aside.clone());
        }
        // The old catalog's WAL and shared-memory files go aside with it, and
        // also when the catalog itself was deleted: SQLite would replay an
        // orphaned WAL (left by a killed process) into the new catalog.
        for suffix in ["-wal", "-shm"] {
            let side = sibling(&self.path, suffix);
            if fs::symlink_metadata(&side).is_ok() {
                fs::rename(&side, sibling(&aside, suffix)).at(&side)?;
            }
        }
        fs::rename(&fresh, &self.path).at(&self.path)?;
        let dir = self.dir();
        fs::File::open(dir).and_then(|d| d.sync_all()).at(dir)?;
        // A cache's previous copy is only a stale cache, not evidence to
        // keep for a post-mortem as a repository's own catalog is.
        if let (true, Some(aside)) = (self.rebuild_when_missing, &old) {
            remove_db(aside)?;
            return Ok(None);
        }
        Ok(old)
    }

    fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    /// A cache directory is created on demand; a repository directory
    /// exists already (its storage made it).
    fn create_dir(&self) -> Result<()> {
        match self.rebuild_when_missing {
            true => crate::storage::create_dir_durably(self.dir()),
            false => Ok(()),
        }
    }
}

/// `path` with `suffix` appended to its file name.
/// `ns` since the epoch as a UTC time a person reads and a file name can
/// hold (no `:`), to the nanosecond so two set-aside catalogs never collide.
fn aside_stamp(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%dT%H-%M-%S%.9fZ")
        .to_string()
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Removes a database file and its WAL and shared-memory files.
fn remove_db(path: &Path) -> Result<()> {
    for p in [
        path.to_path_buf(),
        sibling(path, "-wal"),
        sibling(path, "-shm"),
    ] {
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(p, e)),
        }
    }
    Ok(())
}

/// Reads a cache file beside the catalog (the chunk filter) with `read`;
/// `None` when it cannot be opened: a cache is rebuilt, not an error.
pub(crate) fn read_cache_file<T>(
    path: &Path,
    read: impl FnOnce(&mut dyn std::io::Read) -> Option<T>,
) -> Option<T> {
    let file = fs::File::open(path).ok()?;
    read(&mut std::io::BufReader::with_capacity(1 << 16, file))
}

/// Replaces the cache file `path` with what `write` writes: a temp file
/// beside it, then a rename, so a reader sees a whole file or the previous
/// one. No fsync: a cache validates what it reads (a file cut short by a
/// crash fails its checksum and is rebuilt). On failure no temp file is left.
pub(crate) fn write_cache_file(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<()> {
    use std::io::Write as _;
    let tmp = sibling(path, &format!(".tmp-{}", std::process::id()));
    let written = fs::File::create(&tmp)
        .and_then(|f| {
            let mut out = std::io::BufWriter::with_capacity(1 << 16, f);
            write(&mut out)?;
            out.flush()
        })
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_aside_catalog_is_named_by_a_readable_utc_time() {
        assert_eq!(
            aside_stamp(1_796_135_405_123_456_789),
            "2026-12-01T14-30-05.123456789Z"
        );
        assert_eq!(aside_stamp(0), "1970-01-01T00-00-00.000000000Z");
    }

    #[test]
    fn local_is_fixed_and_a_cache_is_keyed_by_repository_id() {
        let local = CatalogLocation::in_repository(Path::new("/r")).file("abc");
        assert_eq!(local.path(), Path::new("/r/catalog.db"));
        assert!(!local.rebuilds_when_missing());
        let cache = CatalogLocation::cache_dir("/c").file("abc");
        assert_eq!(cache.path(), Path::new("/c/abc/catalog.db"));
        assert!(cache.rebuilds_when_missing());
    }

    /// A failed rebuild leaves the current catalog where it was; a
    /// repository's own catalog is then moved aside, a cache's deleted.
    #[test]
    fn a_failed_replace_keeps_the_current_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let file = CatalogLocation::File(dir.path().join(FILE_NAME)).file("id");
        file.create().unwrap();
        let r = file.replace(|_| Err(Error::InvalidArgument("no".into())));
        assert!(r.is_err());
        assert!(file.exists());
        let aside = file.replace(|_| Ok(())).unwrap();
        assert!(aside.is_some_and(|p| p.exists()), "the old one moved aside");

        let cache = CatalogLocation::cache_dir(dir.path().join("cache")).file("id");
        cache.create().unwrap();
        assert!(cache
            .replace(|_| Err(Error::InvalidArgument("no".into())))
            .is_err());
        assert!(cache.exists());
        assert_eq!(
            cache.replace(|_| Ok(())).unwrap(),
            None,
            "a stale cache is deleted"
        );
        let left: Vec<_> = fs::read_dir(dir.path().join("cache/id")).unwrap().collect();
        assert_eq!(left.len(), 1, "only the new catalog is left: {left:?}");
    }
}
