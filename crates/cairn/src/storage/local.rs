//! A repository in a local directory, and the one helper through which every
//! durable file write in cairn goes (temp file → fsync → rename → fsync dir).

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{check_key, check_range, ObjectInfo, PutMode, Storage, TEMP_PREFIX};
use crate::error::{Error, IoContext, Result};
use crate::storage::pagecache;

/// Range reads up to this size are not checked against the object's size
/// before their buffer is allocated (see `get_range`).
const UNCHECKED_READ: u64 = 32 << 20;

/// Objects as files under a root directory; keys map to relative paths.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// The storage of the directory `root`, which need not exist yet (then
    /// it holds no objects, and the first `put` creates it).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Creates the directory of a new repository, with its `packs/` and
    /// `snapshots/` directories, durably. Refuses a directory that already
    /// holds anything ([`Error::RepoDirNotEmpty`]): a repository never
    /// shares its directory with other files.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if root.exists() && fs::read_dir(&root).at(&root)?.next().is_some() {
            return Err(Error::RepoDirNotEmpty { path: root });
        }
        create_dir_durably(&root)?;
        for dir in ["packs", "snapshots"] {
            create_dir_durably(&root.join(dir))?;
        }
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

/// The contract's "not found": also when a component of the path is a file
/// (the repository path names a file, or a damaged layout), since no object
/// can be under it either.
fn not_found_or(key: &str, path: PathBuf, e: std::io::Error) -> Error {
    if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) {
        Error::ObjectNotFound {
            key: key.to_string(),
        }
    } else {
        Error::io(path, e)
    }
}

impl Storage for LocalStorage {
    fn put_with(&self, key: &str, data: &[u8], mode: PutMode) -> Result<()> {
        let path = self.path_of(key)?;
        if let Some(dir) = path.parent() {
            create_dir_durably(dir)?;
        }
        match write_via_temp(&path, data, mode) {
            Err(Error::Io { source, .. }) if source.kind() == ErrorKind::AlreadyExists => {
                Err(Error::ObjectExists {
                    key: key.to_string(),
                })
            }
            other => other,
        }
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.path_of(key)?;
        let mut file = File::open(&path).map_err(|e| not_found_or(key, path.clone(), e))?;
        let size = file.metadata().at(&path)?.len();
        let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.read_to_end(&mut buf).at(&path)?;
        forget_streamed(&file, 0, buf.len());
        Ok(buf)
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let path = self.path_of(key)?;
        let file = File::open(&path).map_err(|e| not_found_or(key, path.clone(), e))?;
        let size = || file.metadata().at(&path).map(|m| m.len());
        // Small reads (every chunk) skip the size check up front: a short
        // read tells the same, and a restore of many small files would
        // otherwise stat each pack once per chunk. A large range is
        // checked before its buffer is allocated, as the contract asks.
        if len == 0 || len > UNCHECKED_READ {
            check_range(key, offset, len, size()?)?;
        }
        let mut buf = vec![0u8; len as usize];
        if let Err(e) = file.read_exact_at(&mut buf, offset) {
            // A short read, or an offset past what pread takes: a range
            // past the end is reported as such.
            check_range(key, offset, len, size()?)?;
            return Err(Error::io(path, e));
        }
        forget_streamed(&file, offset, buf.len());
        Ok(buf)
    }

    fn head(&self, key: &str) -> Result<u64> {
        let path = self.path_of(key)?;
        let meta = fs::metadata(&path).map_err(|e| not_found_or(key, path.clone(), e))?;
        if meta.is_dir() {
            return Err(Error::ObjectNotFound {
                key: key.to_string(),
            });
        }
        Ok(meta.len())
    }

    fn list_each(
        &self,
        prefix: &str,
        visit: &mut dyn FnMut(ObjectInfo) -> Result<()>,
    ) -> Result<()> {
        let enter = |sub: &str| sub.starts_with(prefix) || prefix.starts_with(sub);
        walk_files(&self.root, "", &enter, &mut |key, name, size| {
            if name.starts_with(TEMP_PREFIX) || key == RESERVE || !key.starts_with(prefix) {
                return Ok(());
            }
            visit(ObjectInfo { key, size })
        })
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        remove_durably(&path)
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn leftovers(&self) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        walk_files(&self.root, "", &|_| true, &mut |key, name, size| {
            if name.starts_with(TEMP_PREFIX)
                && (!key.starts_with(LOCKS_DIR) || self.lock_temp_is_dead(&key, name))
            {
                out.push(ObjectInfo { key, size });
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn available_space(&self) -> Option<u64> {
        crate::host::disk_space(&self.root).map(|(avail, _)| avail)
    }

    fn release_reserve(&self) -> Result<u64> {
        let path = self.root.join(RESERVE);
        let size = match fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io(path, e)),
        };
        // With as much free as the reserve holds, the command has its room.
        if self.available_space().is_some_and(|avail| avail >= size) {
            return Ok(0);
        }
        remove_durably(&path)?;
        Ok(size)
    }

    fn refill_reserve(&self) -> Result<()> {
        let path = self.root.join(RESERVE);
        if path.exists() {
            return Ok(());
        }
        let Some((avail, total)) = crate::host::disk_space(&self.root) else {
            return Ok(());
        };
        let size = reserve_size(total);
        // Only with room to spare: the reserve must never be what fills the
        // disk under the user's own files.
        if avail < size.saturating_mul(RESERVE_SPARE) {
            return Ok(());
        }
        // Incompressible, so that a compressing filesystem holds the space too.
        let mut bytes = vec![0u8; size as usize];
        blake3::Hasher::new_derive_key("cairn space reserve")
            .finalize_xof()
            .fill(&mut bytes);
        match write_durably(&path, &bytes) {
            Err(Error::NoSpace { .. }) => Ok(()),
            other => other,
        }
    }

    fn remove_leftover(&self, key: &str) -> Result<()> {
        let (dir, name) = key.rsplit_once('/').unwrap_or(("", key));
        if !name.starts_with(TEMP_PREFIX) || name.contains('/') {
            return Err(Error::InvalidArgument(format!(
                "`{key}` is not a leftover temp file"
            )));
        }
        let dir = if dir.is_empty() {
            self.root.clone()
        } else {
            self.path_of(dir)?
        };
        let path = dir.join(name);
        if key.starts_with(LOCKS_DIR) && path.exists() && !self.lock_temp_is_dead(key, name) {
            return Err(Error::InvalidArgument(format!(
                "`{key}` may be a running lock write's temp file"
            )));
        }
        remove_durably(&path)
    }
}

/// The file holding a local repository's space reserve (docs/FORMAT.md,
/// "Space reserve"): not an object, never listed.
const RESERVE: &str = "reserve";

/// The reserve refills only while the filesystem has this many times its
/// size available.
const RESERVE_SPARE: u64 = 4;

/// The reserve for a filesystem of `total` bytes: 2 % of it, at least
/// 256 KiB and at most 8 MiB. Enough for a forget's lock, intent and catalog
/// transaction, and for gc's lock and row deletions, which run before gc
/// deletes dead packs and so has room for its repack.
fn reserve_size(total: u64) -> u64 {
    (total / 50).clamp(256 << 10, 8 << 20)
}

/// Lock objects are written without holding a lock, so a temp file there
/// may belong to a live writer: it is a leftover only once that writer is
/// known to be gone.
const LOCKS_DIR: &str = "locks/";

/// A lock put writes a few hundred bytes; no live one takes this long, on
/// whatever host it runs (the pid in a temp name speaks only for this one).
const LOCK_TEMP_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(600);

impl LocalStorage {
    /// True when the writer of the lock temp file `key` (named `name`) is
    /// gone: the pid in its name runs no more on this host, or it is older
    /// than [`LOCK_TEMP_MAX_AGE`]. Should the directory be shared with
    /// another host whose writer has that pid, removing its temp file only
    /// makes that lock attempt fail; it never lets a lock be skipped.
    fn lock_temp_is_dead(&self, key: &str, name: &str) -> bool {
        if writer_pid(name).is_some_and(|pid| !crate::host::pid_alive(pid)) {
            return true;
        }
        fs::metadata(self.root.join(key))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > LOCK_TEMP_MAX_AGE)
    }
}

/// The pid in a temp file name `.tmp-<name>-<pid>-<n>` (see `write_via_temp`).
fn writer_pid(name: &str) -> Option<u32> {
    let mut parts = name.strip_prefix(TEMP_PREFIX)?.rsplitn(3, '-');
    let (_n, pid, _name) = (parts.next()?, parts.next()?, parts.next()?);
    pid.parse().ok()
}

fn remove_durably(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_parent(path),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Walks the files under `dir` (whose key prefix is `rel`) in ascending
/// order of their keys, entering a subdirectory only when `enter(its key
/// prefix)` says so, and passes each file's key, name and size to `visit`.
/// The one walker behind `list_each` and `leftovers`.
fn walk_files(
    dir: &Path,
    rel: &str,
    enter: &dyn Fn(&str) -> bool,
    visit: &mut dyn FnMut(String, &str, u64) -> Result<()>,
) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Ok(())
        }
        Err(e) => return Err(Error::io(dir, e)),
    };
    // (name as it sorts among keys, name, is a directory, size): a
    // directory sorts as `name/`, so that visiting each directory's entries
    // in this order yields all keys in byte order (`a.b` < `a/x` < `a0`).
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.at(dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            // Deleted since `read_dir` (a lock released meanwhile).
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(entry.path(), e)),
        };
        let order = if meta.is_dir() {
            format!("{name}/")
        } else {
            name.clone()
        };
        found.push((order, name, meta.is_dir(), meta.len()));
    }
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (_, name, is_dir, size) in found {
        let key = format!("{rel}{name}");
        if is_dir {
            let sub = format!("{key}/");
            if enter(&sub) {
                walk_files(&dir.join(&name), &sub, enter, visit)?;
            }
        } else {
            visit(key, &name, size)?;
        }
    }
    Ok(())
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `data` to `path` so that after return the file is durable and no
/// reader ever sees a partial file: temp file in the same directory → fsync →
/// rename over `path` → fsync the directory. On error the temp file is
/// removed and any existing file at `path` is untouched.
pub fn write_durably(path: &Path, data: &[u8]) -> Result<()> {
    write_via_temp(path, data, PutMode::Overwrite)
}

/// [`write_durably`], or with [`PutMode::CreateNew`] the same but the final
/// step cannot replace an existing file: it fails with an
/// `ErrorKind::AlreadyExists` I/O error instead.
fn write_via_temp(path: &Path, data: &[u8], mode: PutMode) -> Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        "{TEMP_PREFIX}{name}-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .at(&tmp)?;
        file.write_all(data).at(&tmp)?;
        file.sync_all().at(&tmp)?;
        // Written once, read rarely: see `crate::storage::pagecache`.
        pagecache::drop_range(&file, 0, 0);
        drop(file);
        match mode {
            PutMode::Overwrite => fs::rename(&tmp, path).at(path)?,
            PutMode::CreateNew => rename_noreplace(&tmp, path).at(path)?,
        }
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Renames `from` to `to` unless `to` exists (then `AlreadyExists`), in one
/// atomic step: `renameat2(RENAME_NOREPLACE)`, or where the filesystem lacks
/// it, a hard link (which never replaces either) and removing `from`.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
        let (from_c, to_c) = (c(from)?, c(to)?);
        // SAFETY: both are NUL-terminated paths that live across the call.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                from_c.as_ptr(),
                libc::AT_FDCWD,
                to_c.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if !matches!(
            e.raw_os_error(),
            Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
        ) {
            return Err(e);
        }
    }
    fs::hard_link(from, to)?;
    // The object exists now; a temp name left behind is only a leftover.
    let _ = fs::remove_file(from);
    Ok(())
}

/// Creates `dir` and any missing parents, fsyncing each parent whose entry
/// list changed so the new directory survives a crash.
pub(crate) fn create_dir_durably(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_durably(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => sync_parent(dir),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// Reads of at least this many bytes are streaming reads of pack data;
/// smaller ones (single chunks, manifests, locks) stay cached, as a chunk
/// shared by several restored files is read once per file.
const STREAMED_READ: usize = 1 << 20;

/// Drops a just-read range from the page cache if it was a streaming read
/// (see `crate::storage::pagecache`).
fn forget_streamed(file: &File, offset: u64, len: usize) {
    if len >= STREAMED_READ {
        pagecache::drop_range(file, offset, len as u64);
    }
}

fn sync_parent(path: &Path) -> Result<()> {
    sync_dir(parent_dir(path))
}

/// The directory holding `path`; `.` for a bare relative name (whose
/// `parent()` is the empty path).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_storage_contract() {
        let dir = tempfile::tempdir().unwrap();
        crate::storage::contract_tests::run(&LocalStorage::new(dir.path().join("repo")));
    }

    /// A repository path that names a file, or a layout damaged so that a
    /// directory is a file, holds no objects: not found, not an I/O error
    /// callers would have to pick apart.
    #[test]
    fn a_file_in_the_way_means_not_found() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("file"), b"x").unwrap();
        let s = LocalStorage::new(dir.path().join("file"));
        assert!(matches!(s.get("config"), Err(Error::ObjectNotFound { .. })));
        assert!(matches!(
            s.head("config"),
            Err(Error::ObjectNotFound { .. })
        ));
        assert!(s.list("").unwrap().is_empty());
    }

    #[test]
    fn create_refuses_a_non_empty_directory_and_lays_out_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x"), b"x").unwrap();
        assert!(matches!(
            LocalStorage::create(dir.path()),
            Err(Error::RepoDirNotEmpty { .. })
        ));
        let s = LocalStorage::create(dir.path().join("new")).unwrap();
        assert!(s.root().join("packs").is_dir() && s.root().join("snapshots").is_dir());
    }

    /// Exclusive creation leaves no temp file behind, in `locks/` (where
    /// `leftovers` never looks) too.
    #[test]
    fn create_new_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        s.put_with("locks/a.lock", b"1", PutMode::CreateNew)
            .unwrap();
        assert!(s
            .put_with("locks/a.lock", b"2", PutMode::CreateNew)
            .is_err());
        let names: Vec<_> = fs::read_dir(dir.path().join("locks"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.lock"]);
    }

    #[test]
    fn leftovers_are_temp_files_outside_locks() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        s.put("packs/ab/x.pack", b"pack").unwrap();
        s.put("locks/l.lock", b"{}").unwrap();
        fs::write(dir.path().join("packs/ab/.tmp-x.pack-1-0"), b"partial").unwrap();
        fs::write(dir.path().join(".tmp-config-1-0"), b"c").unwrap();
        fs::write(dir.path().join("locks/.tmp-l.lock-1-0"), b"in flight").unwrap();
        let found: Vec<_> = s
            .leftovers()
            .unwrap()
            .into_iter()
            .map(|o| (o.key, o.size))
            .collect();
        assert_eq!(
            found,
            [
                (".tmp-config-1-0".to_string(), 1),
                ("packs/ab/.tmp-x.pack-1-0".to_string(), 7)
            ]
        );
        for key in [
            "packs/ab/x.pack",
            "locks/.tmp-l.lock-1-0",
            "../.tmp-x",
            "packs/../.tmp-x",
        ] {
            assert!(s.remove_leftover(key).is_err(), "{key}");
        }
        s.remove_leftover("packs/ab/.tmp-x.pack-1-0").unwrap();
        s.remove_leftover(".tmp-config-1-0").unwrap();
        s.remove_leftover(".tmp-config-1-0").unwrap();
        assert!(s.leftovers().unwrap().is_empty());
        assert_eq!(s.list("").unwrap().len(), 2, "objects untouched");
        assert!(dir.path().join("locks/.tmp-l.lock-1-0").exists());
    }

    /// Guards the cleanup of killed lock writes: a lock temp file is a
    /// leftover once the pid in its name is gone (or it is old), never
    /// while that writer runs (pid 1 stands for a live writer).
    #[test]
    fn lock_temp_files_are_leftovers_once_their_writer_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let killed = format!("locks/.tmp-l.lock-{dead}-0");
        s.put("locks/l.lock", b"{}").unwrap();
        fs::write(dir.path().join(&killed), b"{").unwrap();
        fs::write(dir.path().join("locks/.tmp-l.lock-1-0"), b"{").unwrap();
        let found: Vec<_> = s.leftovers().unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(found, std::slice::from_ref(&killed));
        assert!(s.remove_leftover("locks/.tmp-l.lock-1-0").is_err());
        s.remove_leftover(&killed).unwrap();
        s.remove_leftover(&killed).unwrap();
        assert!(s.leftovers().unwrap().is_empty());
        assert_eq!(writer_pid(".tmp-a.lock-42-7"), Some(42));
        assert_eq!(writer_pid(".tmp-a-b.lock-42-7"), Some(42));
        assert_eq!(writer_pid(".tmp-123"), None);
    }

    #[test]
    fn rejects_keys_that_escape_the_root() {
        let s = LocalStorage::new("/nonexistent");
        for key in ["../x", "/etc/passwd", "a//b", "a/./b", "", "a/.tmp-x"] {
            assert!(s.get(key).is_err(), "{key}");
        }
    }

    /// Regression: a bare relative name has an empty parent path, which
    /// made `cairn --repo repo init` fail with an unnamed ENOENT.
    #[test]
    fn relative_names_without_a_parent_work() {
        assert_eq!(parent_dir(Path::new("file")), Path::new("."));
        assert_eq!(parent_dir(Path::new("a/file")), Path::new("a"));
        assert_eq!(parent_dir(Path::new("/file")), Path::new("/"));
        create_dir_durably(Path::new("")).unwrap();
    }

    #[test]
    fn durable_write_replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_durably(&p, b"first").unwrap();
        write_durably(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
