//! The narrow interface all repository I/O goes through.
//!
//! Keys are `/`-separated relative names (`config`, `packs/ab/ab12….pack`,
//! `snapshots/….snap`). Objects are immutable once written except `config`;
//! a backend must make `put` atomic (readers see the old object or the whole
//! new one, never a prefix) and durable: an object is stable only after `put`
//! returns. That is the whole contract an object store would have to meet.
//!
//! The SQLite catalog is not behind this trait: it is a derived index that
//! `rebuild-catalog` can recreate from packs and manifests, so it may live
//! beside the repository (local) or in a cache directory (remote backends).

#[cfg(test)]
pub(crate) mod faulty;
mod local;

pub(crate) use local::create_dir_durably;
pub use local::{write_durably, LocalStorage};

use crate::error::Result;

/// One stored object, as returned by [`Storage::list`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

/// Repository object storage.
pub trait Storage: Send + Sync {
    /// Stores `data` under `key`, replacing any object there. Atomic and
    /// durable: after this returns the object survives a crash or power loss.
    fn put(&self, key: &str, data: &[u8]) -> Result<()>;

    /// Reads a whole object. A missing object is `Error::ObjectNotFound`.
    fn get(&self, key: &str) -> Result<Vec<u8>>;

    /// Reads `len` bytes at `offset`. Reading past the end is an error
    /// naming the key (a truncated object), never a short read.
    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>>;

    /// Lists the objects whose keys start with `prefix`, sorted by key.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;

    /// Deletes an object; deleting a missing object is not an error.
    fn delete(&self, key: &str) -> Result<()>;

    /// Leftovers of interrupted `put`s, which [`Storage::list`] never shows
    /// (for a local repository: `.tmp-*` files), outside `locks/`. Every
    /// `put` outside `locks/` happens under a repository lock, so a caller
    /// holding the exclusive lock knows each one is dead and may remove it.
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
}
