//! A repository in a local directory, and the one helper through which every
//! durable file write in cairn goes (temp file → fsync → rename → fsync dir).

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{ObjectInfo, Storage};
use crate::error::{Error, IoContext, Result};
use crate::pagecache;

/// Objects as files under a root directory; keys map to relative paths.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf> {
        let valid = !key.is_empty()
            && !key.starts_with('/')
            && key.split('/').all(|part| {
                !part.is_empty() && part != "." && part != ".." && !part.starts_with(".tmp-")
            });
        if !valid {
            return Err(Error::InvalidArgument(format!(
                "invalid object key `{key}`"
            )));
        }
        Ok(self.root.join(key))
    }
}

fn not_found_or(key: &str, path: PathBuf, e: std::io::Error) -> Error {
    if e.kind() == ErrorKind::NotFound {
        Error::ObjectNotFound {
            key: key.to_string(),
        }
    } else {
        Error::io(path, e)
    }
}

impl Storage for LocalStorage {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        let path = self.path_of(key)?;
        if let Some(dir) = path.parent() {
            create_dir_durably(dir)?;
        }
        write_durably(&path, data)
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
        // Checked before allocating: the range may come from a damaged
        // catalog row. Past the end means a truncated object (damage).
        let size = file.metadata().at(&path)?.len();
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(Error::io(
                &path,
                std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!("range {offset}+{len} is past the end of the {size}-byte object"),
                ),
            ));
        }
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, offset).at(&path)?;
        forget_streamed(&file, offset, buf.len());
        Ok(buf)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        list_into(&self.root, prefix, &mut out)?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        remove_durably(&path)
    }

    fn leftovers(&self) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        temp_files_into(&self.root, &mut out)?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn remove_leftover(&self, key: &str) -> Result<()> {
        let (dir, name) = key.rsplit_once('/').unwrap_or(("", key));
        if !name.starts_with(TEMP_PREFIX) || name.contains('/') || key.starts_with(LOCKS_DIR) {
            return Err(Error::InvalidArgument(format!(
                "`{key}` is not a leftover temp file"
            )));
        }
        let dir = if dir.is_empty() {
            self.root.clone()
        } else {
            self.path_of(dir)?
        };
        remove_durably(&dir.join(name))
    }
}

/// Temp files of `write_durably` start with this.
const TEMP_PREFIX: &str = ".tmp-";
/// Lock objects are written without holding a lock, so their temp files may
/// belong to a live writer; `leftovers` never looks there.
const LOCKS_DIR: &str = "locks/";

fn remove_durably(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_parent(path),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Walks the files under `dir` (whose key prefix is `rel`), entering a
/// subdirectory only when `enter(its key prefix)` says so, and passes each
/// file's key, name and size to `visit`. The one walker behind `list` and
/// `leftovers`.
fn walk_files(
    dir: &Path,
    rel: &str,
    enter: &dyn Fn(&str) -> bool,
    visit: &mut dyn FnMut(String, &str, u64),
) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.at(dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let key = format!("{rel}{name}");
        let meta = entry.metadata().at(entry.path())?;
        if meta.is_dir() {
            let sub = format!("{key}/");
            if enter(&sub) {
                walk_files(&entry.path(), &sub, enter, visit)?;
            }
        } else {
            visit(key, &name, meta.len());
        }
    }
    Ok(())
}

/// The temp files under `dir`, skipping `locks/`.
fn temp_files_into(dir: &Path, out: &mut Vec<ObjectInfo>) -> Result<()> {
    walk_files(dir, "", &|sub| sub != LOCKS_DIR, &mut |key, name, size| {
        if name.starts_with(TEMP_PREFIX) {
            out.push(ObjectInfo { key, size });
        }
    })
}

/// The objects under `dir` whose keys start with `prefix`, descending only
/// into directories that can hold such keys. Temp files are skipped.
fn list_into(dir: &Path, prefix: &str, out: &mut Vec<ObjectInfo>) -> Result<()> {
    let enter = |sub: &str| sub.starts_with(prefix) || prefix.starts_with(sub);
    walk_files(dir, "", &enter, &mut |key, name, size| {
        if !name.starts_with(TEMP_PREFIX) && key.starts_with(prefix) {
            out.push(ObjectInfo { key, size });
        }
    })
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `data` to `path` so that after return the file is durable and no
/// reader ever sees a partial file: temp file in the same directory → fsync →
/// rename over `path` → fsync the directory. On error the temp file is
/// removed and any existing file at `path` is untouched.
pub fn write_durably(path: &Path, data: &[u8]) -> Result<()> {
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
        // Written once, read rarely: see `crate::pagecache`.
        pagecache::drop_range(&file, 0, 0);
        drop(file);
        fs::rename(&tmp, path).at(path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
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
/// (see `crate::pagecache`).
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
    fn put_get_range_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        s.put("packs/ab/x.pack", b"0123456789").unwrap();
        s.put("snapshots/y.snap", b"abc").unwrap();
        assert_eq!(s.get("packs/ab/x.pack").unwrap(), b"0123456789");
        assert_eq!(s.get_range("packs/ab/x.pack", 2, 3).unwrap(), b"234");
        assert!(matches!(
            s.get_range("packs/ab/x.pack", 8, 3),
            Err(Error::Io { .. })
        ));
        let keys: Vec<_> = s
            .list("packs/")
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["packs/ab/x.pack"]);
        assert_eq!(s.list("").unwrap().len(), 2);
        s.delete("packs/ab/x.pack").unwrap();
        s.delete("packs/ab/x.pack").unwrap();
        assert!(matches!(
            s.get("packs/ab/x.pack"),
            Err(Error::ObjectNotFound { .. })
        ));
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
