//! [`SealedStorage`]: the storage of an encrypted repository as the layers
//! above see it. Every object but those that must be read before the
//! repository is unlocked (`config`, `config.backup`, `keys/`), lock
//! objects (plaintext by design: any client must read them, and they hold
//! only host, pid, purpose and times) and packs (sealed per chunk and
//! trailer by the blob layer and [`crate::format::pack`], so range reads
//! keep working) is sealed whole: manifests, `policies`, forget intents,
//! and whatever is added later unless it is listed here. The associated
//! data is the object's key, so an object moved to another key (two
//! manifests swapped) does not open.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::format::seal::{Crypt, Sealed};
use crate::format::{config, keyfile, manifest, pack};
use crate::storage::{ObjectInfo, PutMode, Storage};

/// Where lock objects live (`repo::lock::PREFIX`, a layer above this one;
/// a test checks they agree).
const LOCKS: &str = "locks/";

/// Seals and opens whole objects on their way to and from `inner`.
pub struct SealedStorage {
    inner: Arc<dyn Storage>,
    crypt: Crypt,
}

impl SealedStorage {
    pub fn new(inner: Arc<dyn Storage>, crypt: Crypt) -> Self {
        Self { inner, crypt }
    }

    /// Objects stored as they are given (see the module doc).
    pub fn passes_through(key: &str) -> bool {
        key == config::KEY
            || key == config::BACKUP_KEY
            || [keyfile::PREFIX, LOCKS, pack::PREFIX]
                .iter()
                .any(|p| key.starts_with(p))
    }

    fn open(&self, key: &str, stored: Vec<u8>) -> Result<Vec<u8>> {
        self.crypt
            .open(Sealed::Object(key), &stored)
            .map(|b| b.into_owned())
            .map_err(|reason| {
                if key.starts_with(manifest::PREFIX) {
                    Error::CorruptManifest {
                        key: key.to_string(),
                        reason,
                    }
                } else {
                    Error::CorruptObject {
                        key: key.to_string(),
                        reason,
                    }
                }
            })
    }
}

impl Storage for SealedStorage {
    fn put_with(&self, key: &str, data: &[u8], mode: PutMode) -> Result<()> {
        if Self::passes_through(key) {
            return self.inner.put_with(key, data, mode);
        }
        match self.crypt.seal(Sealed::Object(key), data) {
            Cow::Owned(sealed) => self.inner.put_bytes(key, Bytes::from(sealed), mode),
            Cow::Borrowed(plain) => self.inner.put_with(key, plain, mode),
        }
    }

    fn put_bytes(&self, key: &str, data: Bytes, mode: PutMode) -> Result<()> {
        if Self::passes_through(key) {
            return self.inner.put_bytes(key, data, mode);
        }
        self.put_with(key, &data, mode)
    }

    fn parallel_puts(&self) -> usize {
        self.inner.parallel_puts()
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let stored = self.inner.get(key)?;
        if Self::passes_through(key) {
            return Ok(stored);
        }
        self.open(key, stored)
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        if Self::passes_through(key) {
            return self.inner.get_range(key, offset, len);
        }
        // Whole objects only open whole; these are small (manifests,
        // policies, intents) and nothing reads them by range today.
        let plain = self.get(key)?;
        crate::storage::check_range(key, offset, len, plain.len() as u64)?;
        Ok(plain[offset as usize..(offset + len) as usize].to_vec())
    }

    /// Packs (all a batch reads today) go to the backend as one batch;
    /// a batch with any sealed object is read range by range.
    fn get_ranges(&self, ranges: &[(&str, u64, u64)]) -> Result<Vec<Vec<u8>>> {
        match ranges.iter().all(|(key, ..)| Self::passes_through(key)) {
            true => self.inner.get_ranges(ranges),
            false => crate::storage::ranges_one_by_one(self, ranges),
        }
    }

    fn head(&self, key: &str) -> Result<u64> {
        self.inner.head(key)
    }

    fn list_each(
        &self,
        prefix: &str,
        visit: &mut dyn FnMut(ObjectInfo) -> Result<()>,
    ) -> Result<()> {
        self.inner.list_each(prefix, visit)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key)
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    fn local_root(&self) -> Option<&std::path::Path> {
        self.inner.local_root()
    }

    fn leftovers(&self) -> Result<Vec<ObjectInfo>> {
        self.inner.leftovers()
    }

    fn remove_leftover(&self, key: &str) -> Result<()> {
        self.inner.remove_leftover(key)
    }

    fn available_space(&self) -> Option<u64> {
        self.inner.available_space()
    }

    fn release_reserve(&self) -> Result<u64> {
        self.inner.release_reserve()
    }

    fn refill_reserve(&self) -> Result<()> {
        self.inner.refill_reserve()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::seal::{Keys, SecretKey};
    use crate::storage::MemoryStorage;

    /// Sealed objects hold no plaintext, open only under their own key, and
    /// pass-through objects are stored as given.
    #[test]
    fn locks_prefix_agrees() {
        assert_eq!(LOCKS, crate::repo::lock::PREFIX);
    }

    #[test]
    fn objects_are_sealed_bound_to_their_key() {
        let inner = Arc::new(MemoryStorage::new());
        let crypt = Crypt::with_keys(Keys::derive(SecretKey::from_bytes([3; 32]), "k"));
        let s = SealedStorage::new(inner.clone(), crypt);
        s.put("policies", b"{\"model\": {}}").unwrap();
        s.put("snapshots/a.snap", b"manifest a").unwrap();
        s.put("snapshots/b.snap", b"manifest b").unwrap();
        s.put("locks/x.lock", b"lock").unwrap();
        assert_eq!(s.get("policies").unwrap(), b"{\"model\": {}}");
        assert_eq!(s.get_range("snapshots/a.snap", 9, 1).unwrap(), b"a");
        assert_eq!(inner.get("locks/x.lock").unwrap(), b"lock");
        let raw = inner.get("snapshots/a.snap").unwrap();
        assert!(!raw.windows(8).any(|w| w == b"manifest"));
        // Swap two manifests: neither opens.
        inner.put("snapshots/b.snap", &raw).unwrap();
        assert!(matches!(
            s.get("snapshots/b.snap"),
            Err(Error::CorruptManifest { .. })
        ));
        let mut flipped = inner.get("policies").unwrap();
        flipped[30] ^= 4;
        inner.put("policies", &flipped).unwrap();
        assert!(matches!(
            s.get("policies"),
            Err(Error::CorruptObject { .. })
        ));
    }

    /// A batch of pack ranges reads the packs as stored; one with a sealed
    /// object in it opens that object as `get_range` does.
    #[test]
    fn batched_ranges_open_what_is_sealed() {
        let inner = Arc::new(MemoryStorage::new());
        let crypt = Crypt::with_keys(Keys::derive(SecretKey::from_bytes([3; 32]), "k"));
        let s = SealedStorage::new(inner.clone(), crypt);
        let pack = pack::key(&crate::format::id::PackId([7; 32]));
        s.put(&pack, b"pack bytes").unwrap();
        s.put("snapshots/a.snap", b"manifest a").unwrap();
        assert_eq!(inner.get(&pack).unwrap(), b"pack bytes");
        let ranges = [(pack.as_str(), 5, 5), (pack.as_str(), 0, 4)];
        assert_eq!(s.get_ranges(&ranges).unwrap(), [&b"bytes"[..], b"pack"]);
        let mixed = [(pack.as_str(), 0, 4), ("snapshots/a.snap", 9, 1)];
        assert_eq!(s.get_ranges(&mixed).unwrap(), [&b"pack"[..], b"a"]);
    }
}
