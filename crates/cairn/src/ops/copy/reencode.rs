//! Copying a snapshot into a repository that cuts or seals chunks
//! differently ([`super::Compatibility::Rechunk`]): every regular file is
//! read from the source as plaintext and stored again through the
//! snapshot's own store path (`snapshot::store_all`: the destination's
//! chunker, keyed ids, dedup against its catalog, byte-plane compression,
//! sealing, packs on a writer thread), and the snapshot's entries and
//! label are kept as they were.
//!
//! Three threads besides the store's: a producer here opens the source's
//! chunks a window at a time (each checked against its id, delta chunks
//! resolved through their references as restore does) and hands them to
//! the ingest reader (`read::spawn_streams`), which cuts them as it cuts a
//! file. The shape of a large file (its tensor layout, for the cuts and
//! byte planes) is probed from the source first, reading only its header.
//! Memory stays bounded by the windows in flight, never a whole file.
//!
//! Commit order as a snapshot's: packs durable, then indexed; the
//! manifest durable, then one catalog transaction makes it visible. A
//! file whose SHA-256 (computed on the way in) is not the one recorded
//! fails the copy before anything of the snapshot is visible.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::catalog::{ChunkLocation, SnapshotFilter, SnapshotInfo};
use crate::error::{Error, Result};
use crate::format::codec;
use crate::format::id::SnapshotId;
use crate::format::manifest::{self, EntryKind, FileEntry, Manifest};
use crate::ingest::chunker::Chunker;
use crate::ingest::read::{self, Stream};
use crate::ingest::shape::{FileShape, PROBE_MIN};
use crate::ops::snapshot::delta::ChunkFile;
use crate::ops::snapshot::{self, trees, Settings, Totals};
use crate::progress::Progress;
use crate::repo::lock::Lock;
use crate::repo::repository::Repository;

/// Raw bytes of the source opened per window (one range read per run of
/// adjacent chunks, opened in parallel).
const WINDOW_BYTES: u64 = 4 << 20;

/// What makes two snapshots "the same snapshot" across repositories that
/// share no ids: kind, name, version, host and time (ns). docs/FORMAT.md,
/// "Copying between repositories".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Identity {
    kind: String,
    name: String,
    version: Option<String>,
    host: String,
    time_ns: i64,
}

impl Identity {
    pub(super) fn of(s: &SnapshotInfo) -> Self {
        Self {
            kind: s.label.kind.clone(),
            name: s.label.name.clone(),
            version: s.label.version.clone(),
            host: s.host.clone(),
            time_ns: s.time.timestamp_nanos_opt().unwrap_or(i64::MAX),
        }
    }
}

/// The destination's snapshots by [`Identity`], kept current as a run
/// copies more.
pub(super) struct Present {
    by_identity: HashMap<Identity, SnapshotId>,
    /// Per history (kind, name): (time, id) of the destination's snapshots.
    histories: HashMap<(String, String), Vec<(i64, SnapshotId)>>,
}

impl Present {
    pub(super) fn load(to: &Repository) -> Result<Self> {
        let mut present = Self {
            by_identity: HashMap::new(),
            histories: HashMap::new(),
        };
        for s in to.snapshots(&SnapshotFilter::default())? {
            present.add(&s, s.id);
        }
        Ok(present)
    }

    fn add(&mut self, s: &SnapshotInfo, id: SnapshotId) {
        let identity = Identity::of(s);
        let history = (identity.kind.clone(), identity.name.clone());
        self.histories
            .entry(history)
            .or_default()
            .push((identity.time_ns, id));
        self.by_identity.insert(identity, id);
    }

    /// The destination's id of the snapshot `s` of the source, if there.
    pub(super) fn find(&self, s: &SnapshotInfo) -> Option<SnapshotId> {
        self.by_identity.get(&Identity::of(s)).copied()
    }

    /// The parent of the re-encoded `s`, by history: the destination's copy
    /// of the source's parent, else the destination's latest earlier
    /// snapshot of the same history (what a snapshot taken there would
    /// name), else none.
    fn parent(&self, s: &SnapshotInfo, source_parent: Option<&SnapshotInfo>) -> Option<SnapshotId> {
        if let Some(id) = source_parent.and_then(|p| self.find(p)) {
            return Some(id);
        }
        let me = Identity::of(s);
        self.histories
            .get(&(me.kind, me.name))?
            .iter()
            .filter(|(t, _)| *t < me.time_ns)
            .max_by_key(|(t, _)| *t)
            .map(|(_, id)| *id)
    }
}

/// What re-encoding one snapshot stored.
pub(super) struct Reencoded {
    pub(super) id: SnapshotId,
    pub(super) totals: Totals,
}

/// Re-encodes `snap` of `from` into `to` and makes it visible there (while
/// `lock`, the destination's, holds); `present` learns it.
pub(super) fn reencode(
    from: &Repository,
    to: &Repository,
    lock: &Lock,
    snap: &SnapshotInfo,
    sources: &HashMap<SnapshotId, SnapshotInfo>,
    present: &mut Present,
    progress: &dyn Progress,
) -> Result<Reencoded> {
    let key = manifest::key(&snap.id);
    let source = trees::load_in(from, &key, Some(&snap.id))?.manifest;
    let mut files = source.files.clone();
    for f in &mut files {
        // Rebuilt for the destination: a file's chunks by its chunker, a
        // directory's tree by its ids.
        f.chunks.clear();
        if f.kind == EntryKind::File {
            f.sha256 = [0; 32];
        }
    }
    let level = codec::check_level(to.config().compression)?;
    let chunker = Chunker::seeded(to.config().chunker, to.crypt().gear_seed())?;
    let settings = Settings {
        level,
        verify: to.config().verify_after_snapshot,
        dry_run: false,
        // Stored standalone: delta chunks need the new file's layout at the
        // storer, which a stream does not give it yet.
        keyframes: false,
        previous: None,
    };
    let trees = to.config().writes_trees();
    let (totals, root) = std::thread::scope(|scope| {
        let (streams_tx, streams_rx) = sync_channel(0);
        let producer = scope.spawn(|| produce(from, &source.files, streams_tx));
        let ingest = read::spawn_streams(streams_rx, chunker);
        let stored = snapshot::store_all(to, ingest, settings, &mut files, |_, _| trees, progress);
        // The source's own error (a damaged chunk, naming pack and file)
        // explains a stream that stopped; report it first.
        producer.join().expect("the source reader does not panic")?;
        stored
    })?;
    check_digests(&source.files, &files)?;
    let parent = present.parent(snap, source.parent.as_ref().and_then(|p| sources.get(p)));
    let m = Manifest {
        parent,
        files,
        ..source
    };
    let (id, bytes) = match &root {
        Some(root) => m.encode_v2(root, m.files.len() as u64, m.logical_bytes()),
        None => m.encode(),
    };
    crate::progress::check_cancelled(progress)?;
    // Another copy into the same destination may have listed it meanwhile:
    // then its packs are leftovers for gc, and its manifest is not written.
    if let Some(there) = Present::load(to)?.find(snap) {
        present.add(snap, there);
        return Ok(Reencoded { id: there, totals });
    }
    // As a snapshot's commit: only while the lock holds (docs/FORMAT.md).
    lock.ensure_held()?;
    to.storage().put(&manifest::key(&id), &bytes)?;
    // No stat cache: the source's inodes are another machine's, maybe.
    to.catalog().add_snapshot(&id, &m, &[])?;
    present.add(snap, id);
    Ok(Reencoded { id, totals })
}

/// Every regular file must come out as the source recorded it: its size
/// and SHA-256 (computed by the ingest on the way in).
fn check_digests(source: &[FileEntry], copied: &[FileEntry]) -> Result<()> {
    for (s, c) in source.iter().zip(copied) {
        if s.kind == EntryKind::File && s.sha256 != c.sha256 {
            return Err(Error::DigestMismatch {
                path: s.path.clone(),
                expected: hex::encode(s.sha256),
                actual: hex::encode(c.sha256),
            });
        }
    }
    Ok(())
}

/// A window of a file's plaintext chunks; `Err` when the source failed
/// (the producer keeps the error itself).
type Window = std::result::Result<Vec<Vec<u8>>, ()>;

/// Streams every regular file of `files` (the source's entries, in
/// order) to the ingest reader, each verified chunk by chunk.
fn produce(from: &Repository, files: &[FileEntry], streams: SyncSender<Stream>) -> Result<()> {
    let refs = from.references();
    for (i, f) in files.iter().enumerate() {
        if f.kind != EntryKind::File {
            continue;
        }
        let in_file = |e: Error| e.in_file(&f.path);
        let locs = from.locate_all(&f.chunks).map_err(in_file)?;
        let len: u64 = locs.iter().map(|l| l.entry.raw_len as u64).sum();
        if len != f.size {
            return Err(Error::CorruptManifest {
                key: f.path.clone(),
                reason: format!("its chunks hold {len} bytes, its entry says {}", f.size),
            });
        }
        let shape = probe(from, &refs, &locs, len).map_err(in_file)?;
        let (windows_tx, windows_rx) = sync_channel::<Window>(1);
        let stream = Stream {
            file: i,
            path: PathBuf::from(&f.path),
            shape,
            input: Box::new(WindowReader::new(windows_rx)),
        };
        if streams.send(stream).is_err() {
            return Ok(()); // the store stopped; its error says why
        }
        for (window, _) in super::batches(&locs, WINDOW_BYTES, |e| e.raw_len) {
            match crate::blob::read_chunks(from.storage(), from.crypt(), &refs, window) {
                Ok(chunks) => {
                    if windows_tx.send(Ok(chunks)).is_err() {
                        return Ok(());
                    }
                }
                Err(e) => {
                    let _ = windows_tx.send(Err(()));
                    return Err(in_file(e));
                }
            }
        }
    }
    Ok(())
}

/// The shape of a source file (tensor layout, or the sampled width), read
/// through its chunks as the probe of a file on disk reads.
fn probe(
    from: &Repository,
    refs: &crate::blob::References,
    locs: &[ChunkLocation],
    len: u64,
) -> Result<FileShape> {
    if len < PROBE_MIN {
        return Ok(FileShape::default());
    }
    let mut starts = Vec::with_capacity(locs.len());
    let mut at = 0u64;
    for l in locs {
        starts.push(at);
        at += l.entry.raw_len as u64;
    }
    let mut file = ChunkFile::new(from.crypt(), refs, locs, &starts, len);
    FileShape::probe(&mut file, len).map_err(|e| {
        // A chunk that failed to open comes back as itself.
        match e.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(inner)) => *inner,
            Some(Err(other)) => Error::InvalidArgument(format!("probing the file: {other}")),
            None => Error::InvalidArgument("probing the file failed".into()),
        }
    })
}

/// The plaintext windows of one file as a [`Read`], chunk by chunk.
struct WindowReader {
    windows: Receiver<Window>,
    chunks: std::vec::IntoIter<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl WindowReader {
    fn new(windows: Receiver<Window>) -> Self {
        Self {
            windows,
            chunks: Vec::new().into_iter(),
            current: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for WindowReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.current.len() {
            if let Some(next) = self.chunks.next() {
                (self.current, self.pos) = (next, 0);
                continue;
            }
            match self.windows.recv() {
                Ok(Ok(window)) => self.chunks = window.into_iter(),
                Ok(Err(())) => return Err(std::io::Error::other("the source could not be read")),
                Err(_) => return Ok(0), // the file's end
            }
        }
        let n = (self.current.len() - self.pos).min(buf.len());
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
