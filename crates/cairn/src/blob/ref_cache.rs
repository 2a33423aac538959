//! A local, bounded cache of the stored bytes of reference chunks, for
//! repositories whose packs are remote (docs/FORMAT.md, "Where the catalog
//! lives"). A delta snapshot reads the keyframe chunks its deltas point at
//! (see [`super::References`]); from S3 that would download the previous
//! checkpoint on every snapshot. The snapshot that stores a tensor chunk
//! standalone (a future keyframe) therefore also keeps its stored bytes
//! here, and references read from storage are kept as well.
//!
//! It is a cache and never trusted: an entry is the chunk's stored bytes,
//! exactly as in its pack (sealed, in an encrypted repository, so it holds
//! nothing the bucket does not), and it is opened like a pack's copy, so it
//! must hash to its id; one that does not is removed and the chunk read
//! from storage. Writes go to a temporary name renamed into place, so a
//! crash or a concurrent writer leaves whole entries or none. When the
//! entries exceed the budget, the least recently written go first.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::format::id::ChunkId;

/// The budget when `CAIRN_REF_CACHE_BYTES` does not set one: room for the
/// keyframes of a 2 B-parameter bf16 model.
pub const DEFAULT_BUDGET: u64 = 4 << 30;

/// The cache directory's entries: `<hex chunk id>` files.
pub struct RefCache {
    dir: PathBuf,
    budget: u64,
    /// Bytes the entries take, counted on the first write.
    used: Mutex<Option<u64>>,
}

/// Names temporary files uniquely within the process.
static TEMP: AtomicU64 = AtomicU64::new(0);

impl RefCache {
    /// The cache in `dir` holding up to `budget` bytes; `None` for a budget
    /// of 0 (the cache is off).
    pub fn new(dir: PathBuf, budget: u64) -> Option<Self> {
        (budget > 0).then(|| Self {
            dir,
            budget,
            used: Mutex::new(None),
        })
    }

    /// The budget `CAIRN_REF_CACHE_BYTES` sets (a whole number of bytes; 0
    /// turns the cache off), else [`DEFAULT_BUDGET`].
    pub fn budget_from_env() -> Result<u64> {
        match std::env::var("CAIRN_REF_CACHE_BYTES") {
            Ok(v) => v.trim().parse().map_err(|_| {
                Error::InvalidArgument(format!(
                    "CAIRN_REF_CACHE_BYTES={v:?} is not a whole number of bytes"
                ))
            }),
            Err(_) => Ok(DEFAULT_BUDGET),
        }
    }

    fn path(&self, id: &ChunkId) -> PathBuf {
        self.dir.join(id.to_hex())
    }

    /// The stored bytes kept for `id`, if any.
    pub fn get(&self, id: &ChunkId) -> Option<Vec<u8>> {
        fs::read(self.path(id)).ok()
    }

    /// Drops the entry for `id` (it did not open to its id).
    pub fn forget(&self, id: &ChunkId) {
        if let Ok(meta) = fs::metadata(self.path(id)) {
            if fs::remove_file(self.path(id)).is_ok() {
                self.account(|used| used.saturating_sub(meta.len()));
            }
        }
    }

    /// Keeps `stored` as the stored bytes of `id`. Best effort: a cache
    /// that cannot be written (no space, no permission) costs downloads
    /// later, never the snapshot, so failures are ignored.
    pub fn put(&self, id: &ChunkId, stored: &[u8]) {
        let len = stored.len() as u64;
        if len > self.budget {
            return;
        }
        let path = self.path(id);
        if path.exists() {
            return;
        }
        if fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        // Counted before this entry exists, so it is added once.
        self.account(|used| used);
        let temp = self.dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            TEMP.fetch_add(1, Ordering::Relaxed)
        ));
        if fs::write(&temp, stored).is_err() || fs::rename(&temp, &path).is_err() {
            let _ = fs::remove_file(&temp);
            return;
        }
        let used = self.account(|used| used + len);
        if used > self.budget {
            self.trim();
        }
    }

    /// Applies `f` to the bytes in use (counting them first if need be)
    /// and returns the result.
    fn account(&self, f: impl FnOnce(u64) -> u64) -> u64 {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let now = f(used.unwrap_or_else(|| entries(&self.dir).iter().map(|e| e.1).sum()));
        *used = Some(now);
        now
    }

    /// Removes the oldest entries until the rest fit three quarters of the
    /// budget (so the next writes do not trim again at once).
    fn trim(&self) {
        let mut all = entries(&self.dir);
        all.sort_by_key(|e| e.2);
        let mut used: u64 = all.iter().map(|e| e.1).sum();
        let target = self.budget / 4 * 3;
        for (path, len, _) in all {
            if used <= target {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                used -= len;
            }
        }
        *self.used.lock().unwrap_or_else(|e| e.into_inner()) = Some(used);
    }
}

/// The entries of `dir` (not the temporary files): path, length, mtime.
fn entries(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let Ok(read) = fs::read_dir(dir) else {
        return Vec::new();
    };
    read.filter_map(|e| {
        let e = e.ok()?;
        if e.file_name().to_string_lossy().starts_with('.') {
            return None;
        }
        let meta = e.metadata().ok()?;
        Some((e.path(), meta.len(), meta.modified().ok()?))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ChunkId {
        ChunkId([n; 32])
    }

    #[test]
    fn keeps_entries_within_the_budget_oldest_out_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RefCache::new(dir.path().join("refs"), 1000).unwrap();
        assert_eq!(cache.get(&id(1)), None);
        for n in 1..=4 {
            cache.put(&id(n), &[n; 300]);
            // Distinct mtimes, so "oldest" is well defined.
            std::thread::sleep(std::time::Duration::from_millis(15));
        }
        // 1200 bytes > 1000: trimmed to at most 750, the oldest first.
        assert_eq!(cache.get(&id(1)), None);
        assert_eq!(cache.get(&id(2)), None);
        assert_eq!(cache.get(&id(4)), Some(vec![4; 300]));
        assert_eq!(cache.get(&id(3)), Some(vec![3; 300]));
        cache.forget(&id(3));
        assert_eq!(cache.get(&id(3)), None);
        // Larger than the whole budget: not kept.
        cache.put(&id(5), &[5; 1001]);
        assert_eq!(cache.get(&id(5)), None);
        let left: Vec<_> = fs::read_dir(dir.path().join("refs")).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn a_budget_of_zero_turns_it_off() {
        assert!(RefCache::new(PathBuf::from("/nonexistent"), 0).is_none());
    }
}
