//! Objects in memory: for tests and for library users who want a scratch
//! repository. Meets the whole contract, trivially: a put replaces the map
//! entry under a lock, so it is atomic, and "durable" for as long as the
//! `MemoryStorage` lives. Clones share the same objects, the way two
//! handles on one bucket would.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock};

use super::{check_key, check_range, ObjectInfo, PutMode, Storage};
use crate::error::{Error, Result};

/// How many objects `list_each` copies out per page: the lock is not held
/// while the caller's visitor runs, so the visitor may use the storage.
const LIST_PAGE: usize = 1000;

#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    objects: Arc<RwLock<BTreeMap<String, Arc<Vec<u8>>>>>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    fn object(&self, key: &str) -> Result<Arc<Vec<u8>>> {
        check_key(key)?;
        self.read()
            .get(key)
            .cloned()
            .ok_or_else(|| Error::ObjectNotFound {
                key: key.to_string(),
            })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Vec<u8>>>> {
        // A panic elsewhere cannot leave the map half-updated (each change
        // is one insert or remove), so a poisoned lock is still consistent.
        self.objects.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Vec<u8>>>> {
        self.objects.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Storage for MemoryStorage {
    fn put_with(&self, key: &str, data: &[u8], mode: PutMode) -> Result<()> {
        check_key(key)?;
        let mut objects = self.write();
        if mode == PutMode::CreateNew && objects.contains_key(key) {
            return Err(Error::ObjectExists {
                key: key.to_string(),
            });
        }
        objects.insert(key.to_string(), Arc::new(data.to_vec()));
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        Ok(self.object(key)?.as_ref().clone())
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let data = self.object(key)?;
        check_range(key, offset, len, data.len() as u64)?;
        Ok(data[offset as usize..(offset + len) as usize].to_vec())
    }

    fn head(&self, key: &str) -> Result<u64> {
        Ok(self.object(key)?.len() as u64)
    }

    fn list_each(
        &self,
        prefix: &str,
        visit: &mut dyn FnMut(ObjectInfo) -> Result<()>,
    ) -> Result<()> {
        let mut after: Option<String> = None;
        loop {
            let page: Vec<ObjectInfo> = {
                let objects = self.read();
                let start = match &after {
                    Some(key) => Bound::Excluded(key.as_str()),
                    None => Bound::Included(prefix),
                };
                let from = objects.range::<str, _>((start, Bound::Unbounded));
                from.take_while(|(k, _)| k.starts_with(prefix))
                    .take(LIST_PAGE)
                    .map(|(k, v)| ObjectInfo {
                        key: k.clone(),
                        size: v.len() as u64,
                    })
                    .collect()
            };
            let full = page.len() == LIST_PAGE;
            after = page.last().map(|o| o.key.clone());
            for obj in page {
                visit(obj)?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        self.write().remove(key);
        Ok(())
    }

    fn location(&self) -> String {
        format!("memory:{:p}", Arc::as_ptr(&self.objects))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_storage_contract() {
        crate::storage::contract_tests::run(&MemoryStorage::new());
    }

    /// Listing goes page by page; keys on a page boundary are neither
    /// skipped nor repeated.
    #[test]
    fn lists_across_pages() {
        let s = MemoryStorage::new();
        let n = LIST_PAGE * 2 + 7;
        for i in 0..n {
            s.put(&format!("p/{i:05}"), b"x").unwrap();
        }
        s.put("q", b"y").unwrap();
        let keys: Vec<String> = s.list("p/").unwrap().into_iter().map(|o| o.key).collect();
        assert_eq!(keys.len(), n);
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }
}
