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
//! must hash to its id; one that does not is dropped and the chunk read
//! from storage.
//!
//! Entries are appended to segment files, each process writing its own
//! (`<name>.seg`, the bytes, and `<name>.idx`, a 44-byte record per entry
//! written after them: chunk id, offset u64 LE, length u32 LE). One file
//! per chunk made a first snapshot of a 2 GiB model to S3 create 27,000
//! files in one directory, and ext4's inode allocation took up to 10 s of
//! system time (#13). A crash leaves bytes without a record (ignored) or a
//! torn last record (ignored); a record past its segment's end is ignored.
//! The index is read once per process, on first use. When the segments
//! exceed the budget, the oldest go first, whole.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::format::id::ChunkId;

/// The budget when `CAIRN_REF_CACHE_BYTES` does not set one: room for the
/// keyframes of a 2 B-parameter bf16 model.
pub const DEFAULT_BUDGET: u64 = 4 << 30;

/// A segment holds at most this much, or an eighth of the budget if less,
/// so trimming drops a fraction of the cache, not all of it.
const SEGMENT_MAX: u64 = 256 << 20;

/// The bytes of one index record: chunk id, offset, length.
const RECORD: usize = 32 + 8 + 4;

/// The cache directory's segments (see the module doc).
pub struct RefCache {
    dir: PathBuf,
    budget: u64,
    state: Mutex<Option<State>>,
}

/// What the segments hold, read on first use.
#[derive(Default)]
struct State {
    entries: HashMap<ChunkId, Entry>,
    /// Segment names, oldest first, with the bytes each takes.
    segments: Vec<(Arc<str>, u64)>,
    /// The files of the segment this process appends to: when there is
    /// one, it is the newest, the last of `segments`.
    current: Option<Writer>,
}

#[derive(Clone)]
struct Entry {
    segment: Arc<str>,
    offset: u64,
    len: u32,
}

struct Writer {
    seg: File,
    idx: File,
}

/// Names segments uniquely within the process.
static SEGMENT: AtomicU64 = AtomicU64::new(0);

impl RefCache {
    /// The cache in `dir` holding up to `budget` bytes; `None` for a budget
    /// of 0 (the cache is off).
    pub fn new(dir: PathBuf, budget: u64) -> Option<Self> {
        (budget > 0).then(|| Self {
            dir,
            budget,
            state: Mutex::new(None),
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

    /// The state, read from the directory on first use.
    fn state(&self) -> MutexGuard<'_, Option<State>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.is_none() {
            *state = Some(load(&self.dir));
        }
        state
    }

    /// The stored bytes kept for `id`, if any.
    pub fn get(&self, id: &ChunkId) -> Option<Vec<u8>> {
        let entry = self.state().as_ref()?.entries.get(id)?.clone();
        let read = || {
            let file = File::open(self.dir.join(format!("{}.seg", entry.segment))).ok()?;
            let mut out = vec![0; entry.len as usize];
            file.read_exact_at(&mut out, entry.offset).ok()?;
            Some(out)
        };
        let out = read();
        if out.is_none() {
            // Its segment went (another process trimmed it): let a put
            // keep the chunk again.
            self.forget(id);
        }
        out
    }

    /// Drops the entry for `id` (it did not open to its id); its bytes go
    /// with their segment.
    pub fn forget(&self, id: &ChunkId) {
        if let Some(state) = self.state().as_mut() {
            state.entries.remove(id);
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
        let mut guard = self.state();
        let state = guard.as_mut().expect("loaded");
        if state.entries.contains_key(id) {
            return;
        }
        if self.append(state, id, stored).is_err() {
            // A segment that failed a write is not written to again.
            state.current = None;
            return;
        }
        if state.segments.iter().map(|s| s.1).sum::<u64>() > self.budget {
            self.trim(state);
        }
    }

    /// Appends one entry to this process's segment, starting a new one
    /// when it would grow past its bound.
    fn append(&self, state: &mut State, id: &ChunkId, stored: &[u8]) -> std::io::Result<()> {
        let bound = SEGMENT_MAX.min(self.budget / 8);
        let len = stored.len() as u64;
        let full = |(_, used): &(Arc<str>, u64)| *used > 0 && used + len > bound;
        if state.current.is_none() || state.segments.last().is_none_or(full) {
            let (name, writer) = self.start_segment()?;
            state.segments.push((name, 0));
            state.current = Some(writer);
        }
        let w = state.current.as_mut().expect("just made");
        let (name, used) = state.segments.last_mut().expect("the one being written");
        w.seg.write_all(stored)?;
        let mut record = [0u8; RECORD];
        record[..32].copy_from_slice(&id.0);
        record[32..40].copy_from_slice(&used.to_le_bytes());
        record[40..].copy_from_slice(&(stored.len() as u32).to_le_bytes());
        w.idx.write_all(&record)?;
        let entry = Entry {
            segment: name.clone(),
            offset: *used,
            len: stored.len() as u32,
        };
        *used += len;
        state.entries.insert(*id, entry);
        Ok(())
    }

    fn start_segment(&self) -> std::io::Result<(Arc<str>, Writer)> {
        fs::create_dir_all(&self.dir)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // Zero-padded, so names sort oldest first.
        let name: Arc<str> = format!(
            "{nanos:024}-{}-{}",
            std::process::id(),
            SEGMENT.fetch_add(1, Ordering::Relaxed)
        )
        .into();
        let create = |ext: &str| {
            OpenOptions::new()
                .append(true)
                .create_new(true)
                .open(self.dir.join(format!("{name}.{ext}")))
        };
        let writer = Writer {
            seg: create("seg")?,
            idx: create("idx")?,
        };
        Ok((name, writer))
    }

    /// Removes the oldest segments until the rest fit three quarters of
    /// the budget (so the next writes do not trim again at once); the one
    /// being written goes only if it alone is over.
    fn trim(&self, state: &mut State) {
        let target = self.budget / 4 * 3;
        let mut used: u64 = state.segments.iter().map(|s| s.1).sum();
        let mut n = 0;
        for (name, len) in &state.segments {
            if used <= target {
                break;
            }
            for ext in ["seg", "idx"] {
                let _ = fs::remove_file(self.dir.join(format!("{name}.{ext}")));
            }
            used -= len;
            n += 1;
        }
        if n == state.segments.len() {
            // The newest, the one being written, went too.
            state.current = None;
        }
        let gone: Vec<_> = state.segments.drain(..n).map(|s| s.0).collect();
        state.entries.retain(|_, e| !gone.contains(&e.segment));
    }
}

/// Reads every segment's index in `dir`, oldest first (a later record of a
/// chunk replaces an earlier one). Files that are not segments (entries of
/// the one-file-per-chunk layout, their temporary files) are removed.
fn load(dir: &std::path::Path) -> State {
    let mut state = State::default();
    let Ok(read) = fs::read_dir(dir) else {
        return state;
    };
    let mut names = Vec::new();
    for e in read.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        match file.rsplit_once('.') {
            Some((name, "seg")) => names.push(name.to_string()),
            Some((_, "idx")) => {}
            _ => drop(fs::remove_file(e.path())),
        }
    }
    names.sort();
    for name in names {
        let seg_len = fs::metadata(dir.join(format!("{name}.seg"))).map_or(0, |m| m.len());
        let records = fs::read(dir.join(format!("{name}.idx"))).unwrap_or_default();
        let name: Arc<str> = name.into();
        for r in records.chunks_exact(RECORD) {
            let offset = u64::from_le_bytes(r[32..40].try_into().expect("8 bytes"));
            let len = u32::from_le_bytes(r[40..].try_into().expect("4 bytes"));
            if offset
                .checked_add(len as u64)
                .is_some_and(|end| end <= seg_len)
            {
                let id = ChunkId(r[..32].try_into().expect("32 bytes"));
                let segment = name.clone();
                state.entries.insert(
                    id,
                    Entry {
                        segment,
                        offset,
                        len,
                    },
                );
            }
        }
        state.segments.push((name, seg_len));
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ChunkId {
        ChunkId([n; 32])
    }

    fn files(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn keeps_entries_within_the_budget_oldest_out_first() {
        let dir = tempfile::tempdir().unwrap();
        let refs = dir.path().join("refs");
        // Segments of at most 1000 / 8 bytes: one 300-byte entry each.
        let cache = RefCache::new(refs.clone(), 1000).unwrap();
        assert_eq!(cache.get(&id(1)), None);
        for n in 1..=4 {
            cache.put(&id(n), &[n; 300]);
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
        let left = files(&refs);
        assert_eq!(left.len(), 4, "two segments, each .seg and .idx: {left:?}");
        assert!(left
            .iter()
            .all(|f| f.ends_with(".seg") || f.ends_with(".idx")));
    }

    #[test]
    fn many_entries_share_a_segment_and_a_new_process_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let refs = dir.path().join("refs");
        let cache = RefCache::new(refs.clone(), DEFAULT_BUDGET).unwrap();
        for n in 0..200u8 {
            cache.put(&id(n), &vec![n; 1000 + n as usize]);
        }
        assert_eq!(files(&refs).len(), 2, "one segment for 200 entries");
        drop(cache);
        let again = RefCache::new(refs, DEFAULT_BUDGET).unwrap();
        for n in 0..200u8 {
            assert_eq!(again.get(&id(n)), Some(vec![n; 1000 + n as usize]));
        }
        // Kept once: a second put of a present entry writes nothing.
        again.put(&id(7), &[0; 10]);
        assert_eq!(again.get(&id(7)), Some(vec![7; 1007]));
    }

    #[test]
    fn a_torn_index_or_a_short_segment_loses_only_those_entries() {
        let dir = tempfile::tempdir().unwrap();
        let refs = dir.path().join("refs");
        let cache = RefCache::new(refs.clone(), DEFAULT_BUDGET).unwrap();
        for n in 1..=3 {
            cache.put(&id(n), &[n; 100]);
        }
        drop(cache);
        let name = |ext: &str| {
            let f = files(&refs).into_iter().find(|f| f.ends_with(ext)).unwrap();
            refs.join(f)
        };
        // A crash mid-record: the last record is torn.
        let idx = fs::read(name(".idx")).unwrap();
        fs::write(name(".idx"), &idx[..idx.len() - 5]).unwrap();
        // And the segment lost the end of its second entry.
        let seg = fs::read(name(".seg")).unwrap();
        fs::write(name(".seg"), &seg[..150]).unwrap();
        let again = RefCache::new(refs, DEFAULT_BUDGET).unwrap();
        assert_eq!(again.get(&id(1)), Some(vec![1; 100]));
        assert_eq!(again.get(&id(2)), None, "past the segment's end");
        assert_eq!(again.get(&id(3)), None, "its record is torn");
        again.put(&id(3), &[3; 100]);
        assert_eq!(again.get(&id(3)), Some(vec![3; 100]));
    }

    #[test]
    fn entries_of_the_one_file_per_chunk_layout_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let refs = dir.path().join("refs");
        fs::create_dir_all(&refs).unwrap();
        fs::write(refs.join(id(1).to_hex()), [1; 100]).unwrap();
        fs::write(refs.join(".tmp-1-2"), [1; 10]).unwrap();
        let cache = RefCache::new(refs.clone(), DEFAULT_BUDGET).unwrap();
        assert_eq!(cache.get(&id(1)), None);
        assert!(files(&refs).is_empty());
    }

    #[test]
    fn a_budget_of_zero_turns_it_off() {
        assert!(RefCache::new(PathBuf::from("/nonexistent"), 0).is_none());
    }
}
