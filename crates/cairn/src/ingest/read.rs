//! The reading half of a snapshot: one thread reads each file once and
//! finds chunk boundaries, and hands batches of whole chunks to the caller
//! through a bounded channel; optionally a second thread computes each
//! file's SHA-256 from the same batches after the caller is done with them.
//! Memory is bounded by `BATCH_TARGET × (CHANNEL_DEPTH + HASH_QUEUE + 3)`
//! whatever the file sizes.
//!
//! A lenient reader ([`spawn_with`]) does not stop at a file it may not
//! open or read, or that vanished: it leaves it out. A file that changed
//! between the walk and the end of its read is read once more, and what
//! that second read saw is kept, still changing or not. Either way it first
//! sends [`Piece::Reset`] so the consumer drops what it had of the file,
//! and says what happened in a [`ReadIssue`]. Only that one file pays for
//! the second read; every other file is read once, as before.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::format::codec::Hint;
use crate::ingest::chunker::Chunker;
use crate::ingest::shape::FileShape;

/// A batch is sent once it holds this many bytes of whole chunks.
pub const BATCH_TARGET: usize = 4 << 20;
/// Bytes requested from the OS per read call.
const READ_SIZE: usize = 1 << 20;
/// Batches that may wait in the channel.
const CHANNEL_DEPTH: usize = 1;
/// Batches that may wait for the file hasher.
const HASH_QUEUE: usize = 1;

/// A file the reader must read.
#[derive(Debug, Clone)]
pub struct ReadJob {
    /// Caller's index for the file (echoed back in [`Piece`]s).
    pub file: usize,
    pub path: PathBuf,
    /// Size and mtime seen by the walk; a mismatch after reading aborts.
    pub size: u64,
    pub mtime_ns: i64,
}

/// What a batch says, in file order.
#[derive(Debug, Clone, Copy)]
pub enum Piece {
    /// `data[start..start + len]` is the next chunk of `file`; `hint` says
    /// how to encode it.
    Chunk {
        file: usize,
        start: usize,
        len: usize,
        hint: Hint,
    },
    /// `file` has been read completely.
    FileDone { file: usize },
    /// Every earlier piece of `file` is void: it is read again from its
    /// start, or left out (lenient readers only).
    Reset { file: usize },
}

/// A file a lenient reader did not take as the walk saw it.
#[derive(Debug)]
pub enum ReadIssue {
    /// Opening or reading it was refused, or it was gone: nothing of it
    /// is kept. `error` names the path too.
    Unreadable {
        file: usize,
        path: PathBuf,
        error: Error,
    },
    /// It changed between the walk and the end of its read, so it was read
    /// again; that second read is what was kept: `size` bytes, modified at
    /// `mtime_ns`. `still_changing` says how it changed during the second
    /// read as well, if it did.
    Reread {
        file: usize,
        path: PathBuf,
        size: u64,
        mtime_ns: i64,
        still_changing: Option<String>,
    },
}

/// What [`Ingest::for_each_hashed`] leaves: the SHA-256 of every file read,
/// `(file, sha256)` in read order, and what went wrong with some files.
#[derive(Debug, Default)]
pub struct Ingested {
    pub digests: Vec<(usize, [u8; 32])>,
    pub issues: Vec<ReadIssue>,
}

#[derive(Debug, Default)]
pub struct Batch {
    pub data: Vec<u8>,
    pub pieces: Vec<Piece>,
}

impl Batch {
    fn with_capacity(n: usize) -> Self {
        Batch {
            data: Vec::with_capacity(n),
            pieces: Vec::new(),
        }
    }
}

/// The running reader: batches in file order, and a way back for their
/// buffers so the reader reuses them instead of faulting in fresh pages.
pub struct Ingest {
    batches: Receiver<Result<Batch>>,
    give_back: Sender<Vec<u8>>,
    handle: JoinHandle<Vec<ReadIssue>>,
}

impl Ingest {
    /// Calls `f` on every batch in order and stops at the first error (the
    /// reader's or `f`'s); then stops and joins the reader thread.
    pub fn for_each(self, f: impl FnMut(&Batch) -> Result<()>) -> Result<()> {
        let give_back = self.give_back.clone();
        self.run(f, |batch| {
            let _ = give_back.send(batch.data);
            Ok(())
        })
        .map(drop)
    }

    /// [`Ingest::for_each`], while a third thread computes the SHA-256 of
    /// every file from the same batches once `f` is done with them.
    ///
    /// SHA-256 is sequential (~1.3 GB/s per core with SHA-NI): on the
    /// reader it was the bottleneck, and on the consumer it made every
    /// batch wait for it. On its own thread it runs beside both.
    pub fn for_each_hashed(self, f: impl FnMut(&Batch) -> Result<()>) -> Result<Ingested> {
        let (to_hasher, hasher_rx) = sync_channel::<Batch>(HASH_QUEUE);
        let give_back = self.give_back.clone();
        std::thread::scope(|scope| {
            let hasher = scope.spawn(move || {
                let (mut digests, mut done) = (FileDigests::default(), Vec::new());
                for batch in hasher_rx {
                    digests.update(&batch, |file, sha| done.push((file, sha)));
                    let _ = give_back.send(batch.data);
                }
                done
            });
            let result = self.run(f, |batch| {
                to_hasher
                    .send(batch)
                    .map_err(|_| Error::InvalidArgument("the file hasher stopped".into()))
            });
            drop(to_hasher);
            let digests = hasher.join().expect("the file hasher does not panic");
            result.map(|issues| Ingested { digests, issues })
        })
    }

    /// Feeds every batch to `f`, then passes it on with `after`; returns
    /// the reader's issues.
    fn run(
        self,
        mut f: impl FnMut(&Batch) -> Result<()>,
        mut after: impl FnMut(Batch) -> Result<()>,
    ) -> Result<Vec<ReadIssue>> {
        let result = self.batches.iter().try_for_each(|batch| {
            let batch = batch?;
            f(&batch)?;
            after(batch)
        });
        drop(self.batches);
        let issues = self.handle.join().unwrap_or_default();
        result.map(|()| issues)
    }
}

/// Starts a strict reader thread over `jobs`: the first file it cannot
/// read, or that changes while it is read, ends the run with an error.
pub fn spawn(jobs: Vec<ReadJob>, chunker: Chunker) -> Ingest {
    spawn_with(jobs, chunker, true)
}

/// Starts the reader thread over `jobs`; `strict` false makes it lenient
/// (see the module docs).
pub fn spawn_with(jobs: Vec<ReadJob>, chunker: Chunker, strict: bool) -> Ingest {
    spawn_reader(chunker, strict, move |reader| {
        // By value: each job's path is freed once its file is read, so the
        // reader does not hold every path of the run to its end.
        for job in jobs {
            if !reader.read_file(&job)? {
                return Ok(false);
            }
        }
        Ok(true)
    })
}

/// Starts a reader thread over one stream (`snapshot --stdin`): its bytes
/// become file `file`, chunked as a plain file; `path` names it in errors.
/// A stream has no size or mtime to check, so it is read once, strictly;
/// `read` counts the bytes it gave.
pub fn spawn_stream(
    file: usize,
    path: PathBuf,
    mut input: Box<dyn Read + Send>,
    chunker: Chunker,
) -> Ingest {
    spawn_reader(chunker, true, move |reader| {
        let shape = FileShape::default();
        if reader
            .chunk_from(file, &path, &mut input, &shape)?
            .is_none()
        {
            return Ok(false);
        }
        let job = ReadJob {
            file,
            path,
            size: 0,
            mtime_ns: 0,
        };
        reader.file_done(&job)
    })
}

/// One file's content handed to [`spawn_streams`]: its bytes are read from
/// `input` to its end and cut as `shape` says (already probed by the
/// caller, who can seek where a stream cannot); `path` names it in errors.
pub struct Stream {
    pub file: usize,
    pub path: PathBuf,
    pub shape: FileShape,
    pub input: Box<dyn Read + Send>,
}

/// Starts a reader thread over the streams `streams` yields, in order, each
/// read once, strictly, into the same batches as files are (`copy`
/// re-encoding a snapshot: each stream is a file of the source).
pub fn spawn_streams(streams: Receiver<Stream>, chunker: Chunker) -> Ingest {
    spawn_reader(chunker, true, move |reader| {
        for mut s in streams {
            if reader
                .chunk_from(s.file, &s.path, &mut s.input, &s.shape)?
                .is_none()
            {
                return Ok(false);
            }
            let job = ReadJob {
                file: s.file,
                path: s.path,
                size: 0,
                mtime_ns: 0,
            };
            if !reader.file_done(&job)? {
                return Ok(false);
            }
        }
        Ok(true)
    })
}

/// Runs `body` on a reader thread: it returns Ok(false) if the consumer
/// quit; its error goes to the consumer; what it left in the batch is sent.
fn spawn_reader(
    chunker: Chunker,
    strict: bool,
    body: impl FnOnce(&mut Reader) -> Result<bool> + Send + 'static,
) -> Ingest {
    let (tx, batches) = sync_channel(CHANNEL_DEPTH);
    let (give_back, returned) = channel();
    let handle = std::thread::spawn(move || {
        let capacity = BATCH_TARGET + READ_SIZE + chunker.params().max as usize;
        let mut reader = Reader {
            chunker,
            batch: Batch::with_capacity(capacity),
            capacity,
            returned,
            send: &mut |batch| tx.send(Ok(batch)).is_ok(),
            strict,
            issues: Vec::new(),
        };
        match body(&mut reader) {
            Ok(true) => {}
            Ok(false) => return reader.issues,
            Err(e) => {
                let _ = tx.send(Err(e));
                return reader.issues;
            }
        }
        let last = std::mem::take(&mut reader.batch);
        if !last.pieces.is_empty() {
            (reader.send)(last);
        }
        reader.issues
    });
    Ingest {
        batches,
        give_back,
        handle,
    }
}

struct Reader<'a> {
    chunker: Chunker,
    batch: Batch,
    capacity: usize,
    /// Buffers of consumed batches, for reuse.
    returned: Receiver<Vec<u8>>,
    /// Returns false when the consumer has gone away.
    send: &'a mut dyn FnMut(Batch) -> bool,
    strict: bool,
    issues: Vec<ReadIssue>,
}

/// A file's size and mtime, as the walk or an `fstat` saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    size: u64,
    mtime_ns: i64,
}

impl Stat {
    fn of(file: &File, job: &ReadJob) -> Result<Stat> {
        let meta = file.metadata().at(&job.path)?;
        Ok(Stat {
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        })
    }
}

impl Reader<'_> {
    /// Reads one file into batches. Returns Ok(false) if the consumer quit.
    fn read_file(&mut self, job: &ReadJob) -> Result<bool> {
        let walked = Stat {
            size: job.size,
            mtime_ns: job.mtime_ns,
        };
        let read = File::open(&job.path)
            .at(&job.path)
            .and_then(|file| self.read_from(job, file, walked));
        match read {
            Ok(None) => Ok(false),
            Ok(Some((_, None))) => self.file_done(job),
            Ok(Some((_, Some(reason)))) if self.strict => Err(Error::SourceChanged {
                path: job.path.clone(),
                reason,
            }),
            Ok(Some(_)) => self.reread(job),
            Err(e) => self.leave_out(job, e),
        }
    }

    /// Reads a file that changed while it was read a second time, from its
    /// start, against its size and mtime now; keeps what it reads.
    fn reread(&mut self, job: &ReadJob) -> Result<bool> {
        self.batch.pieces.push(Piece::Reset { file: job.file });
        let read = File::open(&job.path).at(&job.path).and_then(|file| {
            let before = Stat::of(&file, job)?;
            self.read_from(job, file, before)
        });
        match read {
            Ok(None) => Ok(false),
            Ok(Some((now, still_changing))) => {
                self.issues.push(ReadIssue::Reread {
                    file: job.file,
                    path: job.path.clone(),
                    size: now.size,
                    mtime_ns: now.mtime_ns,
                    still_changing,
                });
                self.file_done(job)
            }
            Err(e) => self.leave_out(job, e),
        }
    }

    /// Drops what was sent of a file that cannot be read, if the reader is
    /// lenient and `e` is an error it tolerates.
    fn leave_out(&mut self, job: &ReadJob, e: Error) -> Result<bool> {
        if self.strict || crate::ingest::walk::Skipped::from_error(&job.path, &e).is_none() {
            return Err(e);
        }
        self.batch.pieces.push(Piece::Reset { file: job.file });
        self.issues.push(ReadIssue::Unreadable {
            file: job.file,
            path: job.path.clone(),
            error: e,
        });
        Ok(true)
    }

    fn file_done(&mut self, job: &ReadJob) -> Result<bool> {
        self.batch.pieces.push(Piece::FileDone { file: job.file });
        if self.batch.data.len() >= BATCH_TARGET {
            let mut pos = self.batch.data.len();
            return Ok(self.flush_before(&mut pos));
        }
        Ok(true)
    }

    /// Reads `file` into batches, expecting it to stay as `expected` says.
    /// Returns `None` if the consumer quit, else the file's size (bytes
    /// read) and mtime after the read, and how it changed, if it did.
    fn read_from(
        &mut self,
        job: &ReadJob,
        mut file: File,
        expected: Stat,
    ) -> Result<Option<(Stat, Option<String>)>> {
        let shape = FileShape::probe(&mut file, expected.size).at(&job.path)?;
        let Some(total) = self.chunk_from(job.file, &job.path, &mut file, &shape)? else {
            return Ok(None);
        };
        let after = Stat::of(&file, job)?;
        let reason = if total != expected.size {
            Some(format!("expected {} bytes, read {total}", expected.size))
        } else if after != expected {
            Some("modified during the read".to_string())
        } else {
            None
        };
        let kept = Stat {
            size: total,
            mtime_ns: after.mtime_ns,
        };
        Ok(Some((kept, reason)))
    }

    /// Reads `input` to its end into chunks of `file` (shaped by `shape`);
    /// returns the bytes read, or `None` if the consumer quit.
    fn chunk_from(
        &mut self,
        file: usize,
        path: &Path,
        input: &mut dyn Read,
        shape: &FileShape,
    ) -> Result<Option<u64>> {
        let mut pos = self.batch.data.len();
        let (mut total, mut offset, mut eof) = (0u64, 0u64, false);
        loop {
            if !eof {
                let n = read_up_to(input, &mut self.batch.data, READ_SIZE).at(path)?;
                total += n as u64;
                eof = n < READ_SIZE;
            }
            while let Some(len) = self.next_chunk(shape, pos, offset, eof) {
                self.batch.pieces.push(Piece::Chunk {
                    file,
                    start: pos,
                    len,
                    hint: shape.hint_at(offset),
                });
                pos += len;
                offset += len as u64;
            }
            if eof {
                return Ok(Some(total));
            }
            if self.batch.data.len() >= BATCH_TARGET && !self.flush_before(&mut pos) {
                return Ok(None);
            }
        }
    }

    /// The next chunk at `pos` (file offset `offset`): FastCDC, but never
    /// across a forced cut, which acts as an end of input for the chunker.
    fn next_chunk(&self, shape: &FileShape, pos: usize, offset: u64, eof: bool) -> Option<usize> {
        let avail = self.batch.data.len() - pos;
        let (window, end) = match shape.next_cut_after(offset) {
            Some(cut) if cut - offset <= avail as u64 => ((cut - offset) as usize, true),
            _ => (avail, eof),
        };
        self.chunker
            .next_boundary(&self.batch.data[pos..pos + window], end)
    }

    /// Sends the complete chunks before `pos`; the unchunked tail moves to a
    /// fresh batch and `pos` becomes 0.
    fn flush_before(&mut self, pos: &mut usize) -> bool {
        let mut next = match self.returned.try_recv() {
            Ok(mut data) => {
                data.clear();
                Batch {
                    data,
                    pieces: Vec::new(),
                }
            }
            Err(_) => Batch::with_capacity(self.capacity),
        };
        next.data.extend_from_slice(&self.batch.data[*pos..]);
        self.batch.data.truncate(*pos);
        *pos = 0;
        let full = std::mem::replace(&mut self.batch, next);
        full.pieces.is_empty() || (self.send)(full)
    }
}

/// SHA-256 of each file, computed from the pieces as they arrive (files
/// arrive one after another, so one hasher is open at a time).
#[derive(Default)]
struct FileDigests {
    open: Option<(usize, Sha256)>,
}

impl FileDigests {
    /// Feeds a batch; calls `done(file, sha256)` for each file it completes.
    fn update(&mut self, batch: &Batch, mut done: impl FnMut(usize, [u8; 32])) {
        for piece in &batch.pieces {
            match *piece {
                Piece::Chunk {
                    file, start, len, ..
                } => self.hasher(file).update(&batch.data[start..start + len]),
                Piece::Reset { file } => {
                    if self.open.as_ref().is_some_and(|(open, _)| *open == file) {
                        self.open = None;
                    }
                }
                Piece::FileDone { file } => {
                    // A file with no chunks (empty) never opened a hasher.
                    let hasher = match self.open.take() {
                        Some((open, h)) if open == file => h,
                        _ => Sha256::new(),
                    };
                    done(file, hasher.finalize().into());
                }
            }
        }
    }

    fn hasher(&mut self, file: usize) -> &mut Sha256 {
        if self.open.as_ref().map(|(f, _)| *f) != Some(file) {
            self.open = Some((file, Sha256::new()));
        }
        &mut self.open.as_mut().expect("just set").1
    }
}

/// Appends up to `want` bytes from `file` to `buf`, fewer only at end of
/// file. One `read` call per MiB in the common case (`read_to_end` on a
/// `Take` probes with small reads first).
fn read_up_to(file: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> std::io::Result<usize> {
    let start = buf.len();
    buf.resize(start + want, 0);
    let mut filled = 0;
    while filled < want {
        match file.read(&mut buf[start + filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                buf.truncate(start);
                return Err(e);
            }
        }
    }
    buf.truncate(start + filled);
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::chunker::ChunkerParams;

    fn job(file: usize, path: PathBuf) -> ReadJob {
        let meta = std::fs::metadata(&path).unwrap();
        ReadJob {
            file,
            path,
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        }
    }

    /// Every file comes back whole, in order, and with the SHA-256 of its
    /// bytes, also when it spans batches or is empty.
    #[test]
    fn batches_rebuild_each_file_and_digests_match() {
        let dir = tempfile::tempdir().unwrap();
        let contents = [
            crate::test_support::random_bytes(1, 3 * BATCH_TARGET + 4321),
            Vec::new(),
            crate::test_support::random_bytes(2, 70_000),
        ];
        let jobs: Vec<ReadJob> = contents
            .iter()
            .enumerate()
            .map(|(i, data)| {
                let path = dir.path().join(format!("f{i}"));
                std::fs::write(&path, data).unwrap();
                job(i, path)
            })
            .collect();
        let chunker = Chunker::new(ChunkerParams::with_average(16 << 10)).unwrap();
        let mut rebuilt = vec![Vec::new(); contents.len()];
        let mut batches = 0;
        let digests = spawn(jobs, chunker)
            .for_each_hashed(|batch| {
                batches += 1;
                for piece in &batch.pieces {
                    if let Piece::Chunk {
                        file, start, len, ..
                    } = *piece
                    {
                        rebuilt[file].extend_from_slice(&batch.data[start..start + len]);
                    }
                }
                Ok(())
            })
            .unwrap()
            .digests;
        assert!(batches > 3, "the big file spans batches ({batches})");
        assert!(rebuilt == contents);
        let expected: Vec<(usize, [u8; 32])> = contents
            .iter()
            .enumerate()
            .map(|(i, data)| (i, Sha256::digest(data).into()))
            .collect();
        assert_eq!(digests, expected);
    }

    /// An error from the consumer stops the reader and the hasher.
    #[test]
    fn consumer_error_stops_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(
            &path,
            crate::test_support::random_bytes(3, 4 * BATCH_TARGET),
        )
        .unwrap();
        let chunker = Chunker::new(ChunkerParams::default()).unwrap();
        let mut seen = 0;
        let result = spawn(vec![job(0, path)], chunker).for_each_hashed(|_| {
            seen += 1;
            Err(Error::InvalidArgument("stop".into()))
        });
        assert!(matches!(result, Err(Error::InvalidArgument(m)) if m == "stop"));
        assert_eq!(seen, 1);
    }

    /// Runs a reader over `jobs` and rebuilds each file from its pieces as
    /// a consumer must: a `Reset` drops what came before.
    fn read_all(jobs: Vec<ReadJob>, strict: bool) -> Result<(Vec<Vec<u8>>, Ingested)> {
        let mut rebuilt = vec![Vec::new(); jobs.len()];
        let chunker = Chunker::new(ChunkerParams::with_average(16 << 10)).unwrap();
        let ingested = spawn_with(jobs, chunker, strict).for_each_hashed(|batch| {
            for piece in &batch.pieces {
                match *piece {
                    Piece::Chunk {
                        file, start, len, ..
                    } => rebuilt[file].extend_from_slice(&batch.data[start..start + len]),
                    Piece::Reset { file } => rebuilt[file].clear(),
                    Piece::FileDone { .. } => {}
                }
            }
            Ok(())
        })?;
        Ok((rebuilt, ingested))
    }

    /// A file gone between walk and read is left out by a lenient reader
    /// (the others are read whole) and ends a strict one.
    #[test]
    fn vanished_file_is_left_out_unless_strict() {
        let dir = tempfile::tempdir().unwrap();
        let good = crate::test_support::random_bytes(4, 100_000);
        std::fs::write(dir.path().join("a"), &good).unwrap();
        std::fs::write(dir.path().join("b"), b"soon gone").unwrap();
        std::fs::write(dir.path().join("c"), &good).unwrap();
        let jobs: Vec<_> = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, n)| job(i, dir.path().join(n)))
            .collect();
        std::fs::remove_file(dir.path().join("b")).unwrap();
        let (rebuilt, ingested) = read_all(jobs.clone(), false).unwrap();
        assert_eq!(rebuilt[0], good);
        assert_eq!(rebuilt[2], good);
        let done: Vec<usize> = ingested.digests.iter().map(|d| d.0).collect();
        assert_eq!(done, [0, 2]);
        assert!(
            matches!(&ingested.issues[..], [ReadIssue::Unreadable { file: 1, path, error: Error::Io { path: named, .. } }] if path.ends_with("b") && named == path),
            "{:?}",
            ingested.issues
        );
        let err = read_all(jobs, true).unwrap_err();
        assert!(
            matches!(err, Error::Io { ref path, .. } if path.ends_with("b")),
            "{err}"
        );
    }

    /// A file that changed after the walk is read again; when it holds
    /// still for that read, the second read is kept, with its size.
    #[test]
    fn file_changed_since_the_walk_is_reread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grew");
        std::fs::write(&path, b"short").unwrap();
        let stale = job(0, path.clone());
        let now = crate::test_support::random_bytes(5, 3 * BATCH_TARGET);
        std::fs::write(&path, &now).unwrap();
        let (rebuilt, ingested) = read_all(vec![stale.clone()], false).unwrap();
        assert!(rebuilt[0] == now);
        assert_eq!(ingested.digests, [(0, Sha256::digest(&now).into())]);
        assert!(
            matches!(ingested.issues[..], [ReadIssue::Reread { file: 0, size, still_changing: None, .. }] if size == now.len() as u64),
            "{:?}",
            ingested.issues
        );
        let err = read_all(vec![stale], true).unwrap_err();
        assert!(matches!(err, Error::SourceChanged { .. }), "{err}");
    }

    /// A file that changes during the second read too is kept as read, and
    /// says so. A procfs file stands in: it reports size 0 and reads more.
    #[test]
    fn file_still_changing_is_kept_as_read() {
        let path = PathBuf::from("/proc/version");
        if !path.exists() {
            return;
        }
        let (rebuilt, ingested) = read_all(vec![job(0, path)], false).unwrap();
        assert!(!rebuilt[0].is_empty());
        assert!(
            matches!(&ingested.issues[..], [ReadIssue::Reread { file: 0, size, still_changing: Some(_), .. }] if *size == rebuilt[0].len() as u64),
            "{:?}",
            ingested.issues
        );
    }
}
