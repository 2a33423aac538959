//! The storage contract: the narrow interface every byte a repository keeps
//! goes through (config, packs, manifests, locks, policies).
//!
//! Keys are `/`-separated relative names (`config`, `packs/ab/ab12….pack`,
//! `snapshots/….snap`, `locks/….lock`, `policies`); [`check_key`] says which
//! are valid. Objects are immutable once written except `config` and
//! `policies`, which are replaced whole.
//!
//! What a backend promises:
//! - **Atomic put.** A reader sees the old object or the whole new one, never
//!   a prefix, also when the writer dies mid-put.
//! - **Durable put.** An object is stable only after `put` returns: from then
//!   on it survives a crash or power loss. Before that it may or may not exist.
//! - **Exclusive create.** [`PutMode::CreateNew`] succeeds for exactly one of
//!   any number of racing writers; the others get [`Error::ObjectExists`].
//! - **Typed failures**, so callers never look at `io::ErrorKind`:
//!   [`Error::ObjectNotFound`] (no such object, also when a "directory" on
//!   the way is not one), [`Error::ObjectExists`], [`Error::ObjectTruncated`]
//!   (a range past the end), [`Error::NoSpace`] (the disk holding the
//!   objects is full: ENOSPC or EDQUOT; nothing was written), and for
//!   everything else [`Error::Io`] (local
//!   files, naming the path) or [`Error::Storage`] (other backends, naming
//!   the key).
//! - **Deletes** are durable when they return; a missing object is not an
//!   error, so an interrupted cleanup can be re-run.
//!
//! The SQLite catalog is not behind this trait: it is a derived index that
//! `rebuild-catalog` can recreate from packs and manifests, so it lives where
//! the opener says ([`crate::catalog::location`]): beside a local repository,
//! or in a cache directory for other storage.

#[cfg(test)]
mod contract_tests;
#[cfg(test)]
pub(crate) mod faulty;
mod local;
mod memory;
pub mod object;
pub(crate) mod pagecache;

pub(crate) use local::create_dir_durably;
pub use local::{write_durably, LocalStorage};
pub use memory::MemoryStorage;
pub use object::{ObjectSettings, ObjectStorage};

use bytes::Bytes;

use crate::error::{Error, Result};

/// One stored object, as returned by [`Storage::list`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

/// What [`Storage::put_with`] does when an object already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Replace it (atomically: readers see the old or the new object).
    Overwrite,
    /// Fail with [`Error::ObjectExists`] and leave it untouched. For objects
    /// whose creation must be exclusive: the config at `init`, locks.
    CreateNew,
}

/// Repository object storage. Every method is safe to call from several
/// threads and processes at once.
pub trait Storage: Send + Sync {
    /// Stores `data` under `key` as `mode` says. Atomic and durable (see the
    /// module doc): once this returns the whole object survives a crash; if
    /// it fails, the key holds the old object or none.
    fn put_with(&self, key: &str, data: &[u8], mode: PutMode) -> Result<()>;

    /// `put_with(key, data, PutMode::Overwrite)`.
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.put_with(key, data, PutMode::Overwrite)
    }

    /// [`put_with`](Storage::put_with) of bytes the caller hands over, with
    /// the same promises. A backend whose client keeps a request body as
    /// its own (object storage) takes them as they are, where `put_with`
    /// must copy: with several packs in flight those copies were most of a
    /// snapshot's memory (#13). The caller may keep clones to read; once
    /// the last is dropped [`Bytes::try_into_mut`] gives the buffer back
    /// for reuse.
    fn put_bytes(&self, key: &str, data: Bytes, mode: PutMode) -> Result<()> {
        self.put_with(key, &data, mode)
    }

    /// How many `put`s a writer should keep in flight at once to use this
    /// backend well. 1 (the default) where a put's cost is this machine's
    /// own work (a local fsync, which several at once would only make
    /// contend); more where it is mostly waiting for a round trip (object
    /// storage), so that latency rather than bandwidth does not bound an
    /// upload. Every put keeps its own promises however many run at once.
    fn parallel_puts(&self) -> usize {
        1
    }

    /// Reads a whole object; a missing one is [`Error::ObjectNotFound`].
    fn get(&self, key: &str) -> Result<Vec<u8>>;

    /// Reads `len` bytes at `offset`. A range past the end is
    /// [`Error::ObjectTruncated`], never a short read; the backend checks it
    /// before allocating, as ranges may come from a damaged catalog row.
    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>>;

    /// Reads several `(key, offset, len)` ranges, each as
    /// [`Storage::get_range`] would, and returns them in the order asked.
    /// The first failure is returned (with `get_range`'s error for it: a
    /// range past the end is [`Error::ObjectTruncated`]) and the other
    /// results are dropped. A backend whose reads wait on round trips runs
    /// several at once; the default reads them one after another.
    fn get_ranges(&self, ranges: &[(&str, u64, u64)]) -> Result<Vec<Vec<u8>>> {
        ranges_one_by_one(self, ranges)
    }

    /// The size of an object; a missing one is [`Error::ObjectNotFound`].
    fn head(&self, key: &str) -> Result<u64>;

    /// Calls `visit` for each object whose key starts with `prefix`, in
    /// ascending byte order of keys, without collecting them first (a
    /// backend may fetch them page by page). An error from `visit` stops
    /// the listing and is returned. Objects put or deleted meanwhile may or
    /// may not be seen; leftovers of interrupted puts never are.
    fn list_each(
        &self,
        prefix: &str,
        visit: &mut dyn FnMut(ObjectInfo) -> Result<()>,
    ) -> Result<()>;

    /// All objects whose keys start with `prefix`, sorted by key: the
    /// collecting form of [`Storage::list_each`].
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        self.list_each(prefix, &mut |obj| {
            out.push(obj);
            Ok(())
        })?;
        Ok(out)
    }

    /// Deletes an object, durably; deleting a missing object is not an error.
    fn delete(&self, key: &str) -> Result<()>;

    /// How messages name this storage: a directory, `memory:…`, a URL.
    fn location(&self) -> String;

    /// The directory holding the objects as files, for a backend that keeps
    /// them on this machine (restore refuses to write into it); `None` for
    /// any other.
    fn local_root(&self) -> Option<&std::path::Path> {
        None
    }

    /// Leftovers of interrupted `put`s, which [`Storage::list`] never shows
    /// (for a local repository: `.tmp-*` files). Every `put` outside
    /// `locks/` happens under a repository lock, so a caller holding the
    /// exclusive lock knows each one is dead and may remove it. Lock
    /// objects are put without a lock, so under `locks/` only leftovers
    /// whose writer is known gone are named, and anyone may remove those.
    /// The default, for backends whose `put` leaves nothing behind, is none.
    fn leftovers(&self) -> Result<Vec<ObjectInfo>> {
        Ok(Vec::new())
    }

    /// Removes one leftover named by [`Storage::leftovers`]; a missing one
    /// is not an error.
    fn remove_leftover(&self, key: &str) -> Result<()> {
        let _ = key;
        Ok(())
    }

    /// Bytes that can still be written where the objects are, for a backend
    /// on a filesystem that can fill up; `None` when there is no such limit
    /// to know of.
    fn available_space(&self) -> Option<u64> {
        None
    }

    /// Gives back the space a backend holds in reserve on its filesystem
    /// when that filesystem has less than the reserve free, so that a
    /// command that frees space (forget, gc) can take its lock and write its
    /// catalog changes on a full disk; returns the bytes freed.
    /// The default, for backends with no filesystem of their own to fill,
    /// holds none.
    fn release_reserve(&self) -> Result<u64> {
        Ok(0)
    }

    /// Puts the reserve back when the filesystem has room for it and some to
    /// spare; otherwise leaves it out (best effort, never an error for lack
    /// of space).
    fn refill_reserve(&self) -> Result<()> {
        Ok(())
    }
}

/// [`Storage::get_ranges`] as one `get_range` after another: the default,
/// and what a wrapper falls back to for ranges it cannot pass on whole.
pub(crate) fn ranges_one_by_one<S: Storage + ?Sized>(
    s: &S,
    ranges: &[(&str, u64, u64)],
) -> Result<Vec<Vec<u8>>> {
    ranges
        .iter()
        .map(|&(key, offset, len)| s.get_range(key, offset, len))
        .collect()
}

/// Names starting with this are never objects: the local backend's temp
/// files, which an interrupted put leaves behind.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// Checks that `key` is a valid object key: non-empty `/`-separated parts,
/// none empty, `.`, `..` or starting with `.tmp-`. Every backend
/// refuses the same keys, so a key that works in tests works everywhere.
pub fn check_key(key: &str) -> Result<()> {
    let valid = !key.is_empty()
        && !key.starts_with('/')
        && key.split('/').all(|part| {
            !part.is_empty() && part != "." && part != ".." && !part.starts_with(TEMP_PREFIX)
        });
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "invalid object key `{key}`"
        )))
    }
}

/// Checks a range read of `len` bytes at `offset` against an object of
/// `size` bytes (the one rule of [`Storage::get_range`] all backends share).
pub(crate) fn check_range(key: &str, offset: u64, len: u64, size: u64) -> Result<()> {
    if offset.checked_add(len).is_none_or(|end| end > size) {
        return Err(Error::ObjectTruncated {
            key: key.to_string(),
            offset,
            len,
            size,
        });
    }
    Ok(())
}
