//! Reading one file of a snapshot at any offset (`cairn mount`): only the
//! chunks that cover the range asked for are fetched, each checked against
//! its id as it is opened, and kept decoded in a small [`ChunkCache`]
//! shared by every open file, so the next read nearby costs nothing.
//!
//! Reads that go through the file in order from its start are also hashed,
//! and the read that reaches the end compares the file's SHA-256 with the
//! recorded one: a reader that copies the file out gets an error rather
//! than a silently wrong copy, as with `restore`. Reads out of order only
//! stop that whole-file check; every chunk is still verified by its id.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::blob::read_chunks;
use crate::catalog::ChunkLocation;
use crate::error::{Error, Result};
use crate::format::id::ChunkId;
use crate::format::manifest::{EntryKind, FileEntry};
use crate::repo::repository::Repository;

/// Decoded chunks kept for reuse, the most recently used last, up to a
/// budget in bytes (at least one chunk is always kept).
pub struct ChunkCache {
    budget: usize,
    bytes: usize,
    chunks: HashMap<ChunkId, Arc<[u8]>>,
    order: VecDeque<ChunkId>,
}

impl ChunkCache {
    /// A cache holding up to `budget` bytes of decoded chunks.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            bytes: 0,
            chunks: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn get(&mut self, id: &ChunkId) -> Option<Arc<[u8]>> {
        let hit = self.chunks.get(id)?.clone();
        if let Some(at) = self.order.iter().position(|c| c == id) {
            self.order.remove(at);
        }
        self.order.push_back(*id);
        Some(hit)
    }

    fn insert(&mut self, id: ChunkId, data: Arc<[u8]>) {
        if self.chunks.contains_key(&id) {
            return;
        }
        self.bytes += data.len();
        self.chunks.insert(id, data);
        self.order.push_back(id);
        while self.bytes > self.budget && self.order.len() > 1 {
            let old = self.order.pop_front().expect("len > 1");
            if let Some(d) = self.chunks.remove(&old) {
                self.bytes -= d.len();
            }
        }
    }

    /// Decoded bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// One file of a snapshot, opened for reads at any offset.
pub struct OpenFile {
    entry: FileEntry,
    locs: Vec<ChunkLocation>,
    /// Where each chunk starts in the file; one more than `locs`, ending
    /// with the file's length.
    starts: Vec<u64>,
    /// The SHA-256 of bytes `0..hashed`, while reads have come in order.
    sequential: Option<Sha256>,
    hashed: u64,
}

impl OpenFile {
    /// Opens `entry` (a file of a snapshot of `repo`) for reading: finds
    /// where its chunks are; reads nothing yet.
    pub fn new(repo: &Repository, entry: FileEntry) -> Result<Self> {
        if entry.kind != EntryKind::File {
            return Err(Error::InvalidArgument(format!(
                "{} is not a regular file",
                entry.path
            )));
        }
        let locs = repo
            .locate_all(&entry.chunks)
            .map_err(|e| e.in_file(&entry.path))?;
        let mut starts = Vec::with_capacity(locs.len() + 1);
        let mut at = 0u64;
        starts.push(0);
        for loc in &locs {
            at += u64::from(loc.entry.raw_len);
            starts.push(at);
        }
        Ok(Self {
            entry,
            locs,
            starts,
            sequential: Some(Sha256::new()),
            hashed: 0,
        })
    }

    /// The file's length in bytes (as its chunks add up).
    pub fn len(&self) -> u64 {
        *self.starts.last().expect("starts is never empty")
    }

    /// True for a file of no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry this file was opened from.
    pub fn entry(&self) -> &FileEntry {
        &self.entry
    }

    /// Up to `len` bytes from `offset` (fewer at the end of the file, none
    /// past it). Fetches only the chunks covering the range that `cache`
    /// lacks. A chunk that does not open to its id is an error naming the
    /// file; so is a file read in order to its end whose SHA-256 differs
    /// from the recorded one.
    pub fn read_at(
        &mut self,
        repo: &Repository,
        cache: &mut ChunkCache,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        let end = offset.saturating_add(len as u64).min(self.len());
        if offset >= end {
            self.check_end(offset)?;
            return Ok(Vec::new());
        }
        // Chunks first..last cover offset..end.
        let first = self.starts.partition_point(|&s| s <= offset) - 1;
        let last = self.starts.partition_point(|&s| s < end) - 1;
        let chunks = self.fetch(repo, cache, first..=last)?;
        let mut out = Vec::with_capacity((end - offset) as usize);
        for (i, data) in (first..=last).zip(&chunks) {
            let from = offset.max(self.starts[i]) - self.starts[i];
            let to = end.min(self.starts[i + 1]) - self.starts[i];
            out.extend_from_slice(&data[from as usize..to as usize]);
        }
        self.hash_in_order(offset, &out);
        self.check_end(end)?;
        Ok(out)
    }

    /// The decoded chunks `range`, from `cache` or read (those missing in
    /// one batch, so adjacent ones share a range request) and cached.
    fn fetch(
        &self,
        repo: &Repository,
        cache: &mut ChunkCache,
        range: std::ops::RangeInclusive<usize>,
    ) -> Result<Vec<Arc<[u8]>>> {
        let mut have: Vec<Option<Arc<[u8]>>> = range
            .clone()
            .map(|i| cache.get(&self.locs[i].entry.chunk))
            .collect();
        let missing: Vec<usize> = range
            .clone()
            .filter(|&i| have[i - range.start()].is_none())
            .collect();
        if !missing.is_empty() {
            let locs: Vec<ChunkLocation> = missing.iter().map(|&i| self.locs[i]).collect();
            let read = read_chunks(repo.storage(), repo.crypt(), &repo.references(), &locs)
                .map_err(|e| e.in_file(&self.entry.path))?;
            for (&i, data) in missing.iter().zip(read) {
                let data: Arc<[u8]> = data.into();
                cache.insert(self.locs[i].entry.chunk, data.clone());
                have[i - range.start()] = Some(data);
            }
        }
        Ok(have.into_iter().map(|d| d.expect("filled above")).collect())
    }

    /// Feeds the whole-file hash with the part of `data` (read at
    /// `offset`) that extends what was hashed; a gap stops the check.
    fn hash_in_order(&mut self, offset: u64, data: &[u8]) {
        let Some(sha) = self.sequential.as_mut() else {
            return;
        };
        if offset > self.hashed {
            self.sequential = None;
            return;
        }
        let skip = (self.hashed - offset) as usize;
        if skip < data.len() {
            sha.update(&data[skip..]);
            self.hashed = offset + data.len() as u64;
        }
    }

    /// Once reads in order reached the end, the SHA-256 must match.
    fn check_end(&mut self, end: u64) -> Result<()> {
        if end < self.len() || self.hashed < self.len() {
            return Ok(());
        }
        let Some(sha) = self.sequential.take() else {
            return Ok(());
        };
        let actual: [u8; 32] = sha.finalize().into();
        if actual != self.entry.sha256 {
            return Err(Error::DigestMismatch {
                path: self.entry.path.clone(),
                expected: hex::encode(self.entry.sha256),
                actual: hex::encode(actual),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ChunkId {
        ChunkId([n; 32])
    }

    #[test]
    fn the_cache_keeps_the_most_recently_used_within_its_budget() {
        let mut cache = ChunkCache::new(10);
        cache.insert(id(1), vec![0; 4].into());
        cache.insert(id(2), vec![0; 4].into());
        assert!(cache.get(&id(1)).is_some()); // 1 is now the newest
        cache.insert(id(3), vec![0; 4].into());
        assert!(cache.get(&id(2)).is_none());
        assert!(cache.get(&id(1)).is_some() && cache.get(&id(3)).is_some());
        assert_eq!(cache.bytes(), 8);
        // One chunk over budget is still kept: a read needs it.
        cache.insert(id(4), vec![0; 64].into());
        assert!(cache.get(&id(4)).is_some());
        assert_eq!(cache.bytes(), 64);
    }

    #[test]
    fn reads_anywhere_match_the_source_and_in_order_reads_are_hashed() {
        let t = crate::test_support::TestRepo::new();
        let data = crate::test_support::random_bytes(11, 200_000);
        t.snap_files("model", "m", &[("big.bin", data.clone())], &[]);
        let snap = t.repo.resolve("m").unwrap();
        let entry = t
            .repo
            .ls(&snap, "")
            .unwrap()
            .into_iter()
            .find(|e| e.path.ends_with("big.bin"))
            .unwrap();
        assert!(
            entry.chunks.len() > 4,
            "small chunks make a multi-chunk file"
        );
        let mut file = t.repo.open_file(entry.clone()).unwrap();
        let mut cache = ChunkCache::new(1 << 20);
        assert_eq!(file.len(), data.len() as u64);
        for (offset, len) in [(123_457, 40_000), (0, 1), (199_990, 100), (250_000, 10)] {
            let got = file.read_at(&t.repo, &mut cache, offset, len).unwrap();
            let from = (offset as usize).min(data.len());
            assert_eq!(got, data[from..(from + len).min(data.len())], "at {offset}");
        }
        // In order from the start to the end: checked against the SHA-256.
        let mut bad = entry.clone();
        bad.sha256 = [0; 32];
        let mut good = t.repo.open_file(entry).unwrap();
        let mut bad = t.repo.open_file(bad).unwrap();
        let mut at = 0;
        while at < data.len() as u64 {
            assert_eq!(
                good.read_at(&t.repo, &mut cache, at, 65_536).unwrap().len() as u64,
                65_536.min(data.len() as u64 - at)
            );
            let r = bad.read_at(&t.repo, &mut cache, at, 65_536);
            at += 65_536;
            if at >= data.len() as u64 {
                assert!(matches!(r, Err(Error::DigestMismatch { .. })), "{r:?}");
            } else {
                r.unwrap();
            }
        }
    }
}
