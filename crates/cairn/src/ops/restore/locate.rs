//! Where the chunks of the files being read live, located lazily and in
//! bounded batches, so a restore or verify of many files never holds the
//! locations of all of them (issue #12: at 200,000 files that list was the
//! largest part of restore's peak memory).
//!
//! [`Located`] walks the files in their order and asks the catalog for the
//! next batch of at most [`Bounds::files`] files and [`Bounds::chunks`]
//! chunks in one transaction (through [`Catalog::locate_lists`], the one
//! place that turns ids into locations), yielding each file with its
//! [`Locations`]. A file with more than [`Bounds::file_chunks`] chunks is
//! not located up front at all: [`Locations::Lazy`] has `stream_file`
//! locate it one [`WINDOW`] at a time as it reads, so even one huge file
//! holds only the windows in flight.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::iter::Peekable;

use crate::catalog::{Catalog, ChunkLocation};
use crate::error::Result;
use crate::format::id::ChunkId;
use crate::format::manifest::FileEntry;

use super::WINDOW;

/// How much one catalog call locates, and from what size a file is located
/// a window at a time instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    /// Files per batch.
    pub files: usize,
    /// Chunks per batch (of the files located up front).
    pub chunks: usize,
    /// A file with more chunks than this is located lazily.
    pub file_chunks: usize,
}

impl Bounds {
    /// 1,024 files / 8,192 chunks per transaction: large enough that the
    /// per-transaction cost (the lock, the WAL check) stays negligible
    /// beside the lookups, small enough that a batch's locations (~90 B a
    /// chunk) are under 1 MB.
    pub const DEFAULT: Bounds = Bounds {
        files: 1024,
        chunks: 8192,
        file_chunks: 1024,
    };

    fn lazy(&self, f: &FileEntry) -> bool {
        f.chunks.len() > self.file_chunks
    }
}

/// Where a file's chunks are, or how to find out.
pub(crate) enum Locations<'a> {
    /// Every chunk located, in file order.
    All(Vec<ChunkLocation>),
    /// Too many chunks to hold at once: located one window at a time in
    /// this catalog while the file is read.
    Lazy(&'a Catalog),
}

impl<'a> Locations<'a> {
    /// A single file's locations, located up front unless `bounds` says it
    /// is too large (for `cat`, which reads one file).
    pub(crate) fn of(catalog: &'a Catalog, f: &FileEntry, bounds: Bounds) -> Result<Self> {
        if bounds.lazy(f) {
            Ok(Self::Lazy(catalog))
        } else {
            catalog.locate_all(&f.chunks).map(Self::All)
        }
    }

    /// The locations of window `i` (chunks `i * WINDOW ..`) of the file
    /// whose chunk list is `chunks`.
    pub(crate) fn window(&self, chunks: &[ChunkId], i: usize) -> Result<Cow<'_, [ChunkLocation]>> {
        let start = i * WINDOW;
        let end = chunks.len().min(start + WINDOW);
        match self {
            Self::All(locs) => Ok(Cow::Borrowed(&locs[start..end])),
            Self::Lazy(catalog) => catalog.locate_all(&chunks[start..end]).map(Cow::Owned),
        }
    }
}

/// One file and its locations; the inner error (a chunk the catalog lacks)
/// is this file's alone.
pub(crate) type LocatedFile<'a> = (&'a FileEntry, Result<Locations<'a>>);

/// The files of `I` with their locations, in their order, located a batch
/// at a time (see the module doc). An `Err` item is a catalog error that
/// fails the whole operation; nothing follows it.
pub(crate) struct Located<'a, I: Iterator<Item = &'a FileEntry>> {
    catalog: &'a Catalog,
    files: Peekable<I>,
    bounds: Bounds,
    ready: VecDeque<LocatedFile<'a>>,
    failed: bool,
}

impl<'a, I: Iterator<Item = &'a FileEntry>> Located<'a, I> {
    pub(crate) fn new(catalog: &'a Catalog, files: I, bounds: Bounds) -> Self {
        Self {
            catalog,
            files: files.peekable(),
            bounds,
            ready: VecDeque::new(),
            failed: false,
        }
    }

    /// The next batch, located in one catalog transaction; `None` when the
    /// files are done. A batch takes at least one file, so a bound smaller
    /// than one file's chunks cannot stall it.
    fn next_batch(&mut self) -> Option<Result<Vec<LocatedFile<'a>>>> {
        let mut batch: Vec<&FileEntry> = Vec::new();
        let mut chunks = 0;
        while batch.len() < self.bounds.files {
            let Some(f) = self.files.peek() else { break };
            let n = if self.bounds.lazy(f) {
                0
            } else {
                f.chunks.len()
            };
            if !batch.is_empty() && chunks + n > self.bounds.chunks {
                break;
            }
            chunks += n;
            batch.extend(self.files.next());
        }
        if batch.is_empty() {
            return None;
        }
        let lists: Vec<&[ChunkId]> = batch
            .iter()
            .filter(|f| !self.bounds.lazy(f))
            .map(|f| f.chunks.as_slice())
            .collect();
        let mut located = match self.catalog.locate_lists(&lists) {
            Ok(located) => located.into_iter(),
            Err(e) => return Some(Err(e)),
        };
        let out = batch
            .into_iter()
            .map(|f| match self.bounds.lazy(f) {
                true => (f, Ok(Locations::Lazy(self.catalog))),
                false => {
                    let locs = located.next().expect("one result per list");
                    (f, locs.map(Locations::All))
                }
            })
            .collect();
        Some(Ok(out))
    }
}

impl<'a, I: Iterator<Item = &'a FileEntry>> Iterator for Located<'a, I> {
    type Item = Result<LocatedFile<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.ready.is_empty() {
            match self.next_batch()? {
                Ok(batch) => self.ready = batch.into(),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        self.ready.pop_front().map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{random_bytes, TestRepo};

    /// Batches hold at most `files` files and `chunks` chunks located up
    /// front, files above `file_chunks` are left lazy, the batches together
    /// are the files in their order, and what each file gets is what
    /// locating it alone gives.
    #[test]
    fn batches_respect_their_bounds_and_keep_the_files_order() {
        let t = TestRepo::new();
        // 0 to ~5 chunks of 4 KiB average each, and one of ~40.
        let mut files: Vec<(String, Vec<u8>)> = (0..23)
            .map(|i| (format!("f{i:02}"), random_bytes(i, (i as usize % 6) * 5000)))
            .collect();
        files.push(("huge".into(), random_bytes(99, 160_000)));
        let named: Vec<(&str, Vec<u8>)> =
            files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
        let id = t.snap_files("config", "c", &named, &[]);
        let snap = t.repo.resolve(&id.to_hex()).unwrap();
        let all = t.repo.catalog().files(&snap).unwrap();
        let bounds = Bounds {
            files: 2,
            chunks: 3,
            file_chunks: 3,
        };
        assert!(all.iter().any(|f| f.chunks.len() > WINDOW / 2));
        let mut located = Located::new(t.repo.catalog(), all.iter(), bounds);
        let mut seen = Vec::new();
        while let Some(batch) = located.next_batch() {
            let batch = batch.unwrap();
            assert!((1..=2).contains(&batch.len()));
            let up_front: Vec<_> = batch.iter().filter(|(f, _)| !bounds.lazy(f)).collect();
            let chunks: usize = up_front.iter().map(|(f, _)| f.chunks.len()).sum();
            assert!(chunks <= 3, "{chunks} chunks in one batch");
            for (f, locs) in batch {
                match locs.unwrap() {
                    Locations::All(locs) => {
                        assert!(f.chunks.len() <= 3);
                        assert_eq!(locs, t.repo.locate_all(&f.chunks).unwrap());
                    }
                    Locations::Lazy(_) => assert!(f.chunks.len() > 3, "{}", f.path),
                }
                seen.push(f.path.clone());
            }
        }
        let paths: Vec<String> = all.iter().map(|f| f.path.clone()).collect();
        assert_eq!(seen, paths);
        let through_iterator: Vec<String> = Located::new(t.repo.catalog(), all.iter(), bounds)
            .map(|r| r.unwrap().0.path.clone())
            .collect();
        assert_eq!(through_iterator, paths);
    }

    /// A lazy file's windows are the locations of its chunks, window by
    /// window, whichever way they were found.
    #[test]
    fn lazy_windows_match_the_located_ones() {
        let t = TestRepo::new();
        let id = t.snap_files("config", "c", &[("big", random_bytes(7, 600_000))], &[]);
        let snap = t.repo.resolve(&id.to_hex()).unwrap();
        let files = t.repo.catalog().files(&snap).unwrap();
        let big = files.iter().find(|f| f.chunks.len() > WINDOW).unwrap();
        let all = Locations::of(t.repo.catalog(), big, Bounds::DEFAULT).unwrap();
        let tight = Bounds {
            file_chunks: 1,
            ..Bounds::DEFAULT
        };
        let lazy = Locations::of(t.repo.catalog(), big, tight).unwrap();
        assert!(matches!(lazy, Locations::Lazy(_)));
        let windows = big.chunks.len().div_ceil(WINDOW);
        let joined = |l: &Locations| -> Vec<ChunkLocation> {
            (0..windows)
                .flat_map(|i| l.window(&big.chunks, i).unwrap().into_owned())
                .collect()
        };
        assert_eq!(joined(&lazy), joined(&all));
        assert_eq!(joined(&all), t.repo.locate_all(&big.chunks).unwrap());
    }
}
