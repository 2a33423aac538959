//! The reading half of a snapshot: one thread reads each file once, finds
//! chunk boundaries and computes the file's SHA-256 from the same buffer,
//! and hands batches of whole chunks to the caller through a bounded channel.
//! Memory is bounded by `BATCH_TARGET × (CHANNEL_DEPTH + 2)` whatever the
//! file sizes.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use crate::chunker::Chunker;
use crate::codec::Hint;
use crate::error::{Error, IoContext, Result};
use crate::shape::FileShape;

/// A batch is sent once it holds this many bytes of whole chunks.
pub const BATCH_TARGET: usize = 4 << 20;
/// Bytes requested from the OS per read call.
const READ_SIZE: usize = 1 << 20;
/// Batches that may wait in the channel.
const CHANNEL_DEPTH: usize = 2;

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
    handle: JoinHandle<()>,
}

impl Ingest {
    /// Calls `f` on every batch in order and stops at the first error (the
    /// reader's or `f`'s); then stops and joins the reader thread.
    pub fn for_each(self, mut f: impl FnMut(&Batch) -> Result<()>) -> Result<()> {
        let result = self.batches.iter().try_for_each(|batch| {
            let batch = batch?;
            f(&batch)?;
            let _ = self.give_back.send(batch.data);
            Ok(())
        });
        drop(self.batches);
        let _ = self.handle.join();
        result
    }
}

/// Starts the reader thread over `jobs`.
pub fn spawn(jobs: Vec<ReadJob>, chunker: Chunker) -> Ingest {
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
        };
        for job in &jobs {
            match reader.read_file(job) {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
        let last = std::mem::take(&mut reader.batch);
        if !last.pieces.is_empty() {
            (reader.send)(last);
        }
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
}

impl Reader<'_> {
    /// Reads one file into batches. Returns Ok(false) if the consumer quit.
    fn read_file(&mut self, job: &ReadJob) -> Result<bool> {
        let mut file = File::open(&job.path).at(&job.path)?;
        let shape = FileShape::probe(&mut file, job.size).at(&job.path)?;
        let mut pos = self.batch.data.len();
        let (mut total, mut offset, mut eof) = (0u64, 0u64, false);
        loop {
            if !eof {
                let n = read_up_to(&mut file, &mut self.batch.data, READ_SIZE).at(&job.path)?;
                total += n as u64;
                eof = n < READ_SIZE;
            }
            while let Some(len) = self.next_chunk(&shape, pos, offset, eof) {
                self.batch.pieces.push(Piece::Chunk {
                    file: job.file,
                    start: pos,
                    len,
                    hint: shape.hint_at(offset),
                });
                pos += len;
                offset += len as u64;
            }
            if eof {
                break;
            }
            if self.batch.data.len() >= BATCH_TARGET && !self.flush_before(&mut pos) {
                return Ok(false);
            }
        }
        check_unchanged(job, &file, total)?;
        self.batch.pieces.push(Piece::FileDone { file: job.file });
        if self.batch.data.len() >= BATCH_TARGET {
            return Ok(self.flush_before(&mut pos));
        }
        Ok(true)
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

/// SHA-256 of each file, computed by the consumer from the pieces as they
/// arrive (files arrive one after another, so one hasher is open at a
/// time). Kept off the reader thread, which would otherwise be the
/// sequential bottleneck (read + FastCDC + SHA-256 on one core).
#[derive(Default)]
pub struct FileDigests {
    open: Option<(usize, Sha256)>,
}

impl FileDigests {
    /// Feeds a batch; calls `done(file, sha256)` for each file it completes.
    pub fn update(&mut self, batch: &Batch, mut done: impl FnMut(usize, [u8; 32])) {
        for piece in &batch.pieces {
            match *piece {
                Piece::Chunk {
                    file, start, len, ..
                } => self.hasher(file).update(&batch.data[start..start + len]),
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
fn read_up_to(file: &mut File, buf: &mut Vec<u8>, want: usize) -> std::io::Result<usize> {
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

/// A file must end up exactly as the walk saw it: same size, same mtime.
fn check_unchanged(job: &ReadJob, file: &File, total: u64) -> Result<()> {
    let meta = file.metadata().at(&job.path)?;
    let mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
    let reason = if total != job.size {
        format!("expected {} bytes, read {total}", job.size)
    } else if meta.len() != job.size || mtime_ns != job.mtime_ns {
        "modified during the read".to_string()
    } else {
        return Ok(());
    };
    Err(Error::SourceChanged {
        path: job.path.clone(),
        reason,
    })
}
