//! Taking a snapshot: walk → (stat cache | read + chunk + SHA-256) → BLAKE3 →
//! dedup → compress → pack → catalog → manifest → visible.
//!
//! Commit order (docs/FORMAT.md): each pack is durable before the catalog
//! transaction that lists its chunks; the manifest is durable before the
//! catalog transaction that makes the snapshot visible. A crash or error at
//! any point leaves earlier snapshots intact and no partial snapshot visible;
//! packs written by an aborted run are unreferenced leftovers for `gc`.
//!
//! Unless [`SnapshotOptions::strict`], one bad entry does not cost the whole
//! snapshot: what cannot be read (or named in UTF-8) is left out, a file
//! that keeps changing is stored as last read, and the report lists both
//! ([`SnapshotReport::complete`] is false). In a repository of version 4
//! (trees) such a file's entry is marked `incomplete`, and every entry
//! records its owner, hard-link group and (FIFOs, devices) kind and rdev;
//! older repositories skip FIFOs and devices, as sockets always are.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use serde::Serialize;

pub(crate) mod delta;
mod storer;
pub(crate) mod trees;

use crate::catalog::{now_ns, CachedFile, Catalog, SnapshotFilter, SnapshotInfo};
use crate::error::{Error, Result};
use crate::format::codec;
use crate::format::id::{ChunkId, PackId, SnapshotId};
use crate::format::label::SnapshotLabel;
use crate::format::manifest::{self, EntryKind, FileEntry, Manifest, RunStats};
use crate::format::name;
use crate::format::pack::{self, PackEntry, SealedPack};
use crate::format::seal::Crypt;
use crate::ingest::chunker::Chunker;
use crate::ingest::exclude::Excludes;
use crate::ingest::read::{self, Ingested, ReadIssue, ReadJob};
use crate::ingest::walk::{self, SourceEntry};
pub use crate::ingest::walk::{SkipReason, Skipped};
use crate::progress::Progress;
use crate::repo::lock::Lock;
use crate::repo::repository::Repository;
use crate::storage::{PutMode, Storage};

/// What to snapshot and how to label it.
#[derive(Debug, Clone, Default)]
pub struct SnapshotOptions {
    pub label: SnapshotLabel,
    /// Re-read every file even if the stat cache says it is unchanged.
    pub force: bool,
    /// zstd level for this snapshot; `None` uses the repository default.
    pub compression: Option<i32>,
    /// Read back every new pack before the snapshot is committed (also on
    /// when the repository config says so).
    pub verify: bool,
    /// Fail (committing nothing) on an entry that cannot be read or whose
    /// name is not UTF-8, and on a file that changes while it is read,
    /// instead of leaving it out or storing it as read.
    pub strict: bool,
    /// Gitignore-style patterns of entries to leave out on purpose (see
    /// [`crate::ingest::exclude`]); they are counted, not reported as
    /// skipped, and the snapshot stays complete.
    pub exclude: Vec<String>,
    /// Commit nothing when every entry matches the parent snapshot (same
    /// paths, metadata and content by the stat cache): the report then has
    /// [`SnapshotReport::unchanged`] and the parent's id.
    pub skip_if_unchanged: bool,
    /// Read, chunk, deduplicate and compress as a snapshot would, to say
    /// what would be read and roughly stored, but write nothing: no pack,
    /// no manifest, no catalog row, no lock.
    pub dry_run: bool,
    /// Store every chunk standalone, never as a delta of the previous
    /// version of its tensor (see [`delta`]).
    pub no_delta: bool,
}

/// A file that kept changing while it was read, twice: what the second read
/// saw is stored, and may mix old and new content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    /// The path, with bytes that are not UTF-8 shown as `\xNN`.
    pub path: String,
    /// How it changed during the second read.
    pub detail: String,
}

/// What a snapshot did.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotReport {
    #[serde(serialize_with = "crate::catalog::hex_id")]
    pub id: SnapshotId,
    pub kind: String,
    pub name: String,
    pub files: u64,
    /// Files whose content was read (the rest came from the parent snapshot).
    pub files_read: u64,
    pub logical_bytes: u64,
    pub bytes_read: u64,
    pub chunks_new: u64,
    pub added_raw: u64,
    pub added_stored: u64,
    pub duration_ms: u64,
    /// Entries left out, with why: their type cannot be backed up, or
    /// (unless strict) they could not be read or named in UTF-8.
    pub skipped: Vec<Skipped>,
    /// Files stored although they changed while they were read.
    pub changed: Vec<Changed>,
    /// Entries an exclude pattern matched (a directory counts once).
    pub excluded: u64,
    /// False when an entry was left out for a reason other than its type,
    /// or a file was stored while changing: the snapshot is saved, but it
    /// is not all of its sources.
    pub complete: bool,
    /// Nothing was committed because nothing changed since the parent
    /// (`skip_if_unchanged`); `id` is the parent's.
    pub unchanged: bool,
    /// Nothing was written (`dry_run`); `id` is what the snapshot's would be.
    pub dry_run: bool,
}

impl SnapshotReport {
    /// Logical bytes per raw byte newly stored (∞ shown as logical/1).
    pub fn dedup_ratio(&self) -> f64 {
        self.logical_bytes as f64 / self.added_raw.max(1) as f64
    }
}

/// Takes a snapshot of `sources` into `repo`.
pub fn create(
    repo: &Repository,
    sources: &[PathBuf],
    opts: &SnapshotOptions,
    progress: &dyn Progress,
) -> Result<SnapshotReport> {
    let started = Instant::now();
    opts.label.validate()?;
    if sources.is_empty() {
        return Err(Error::InvalidArgument(
            "nothing to snapshot: give at least one path".into(),
        ));
    }
    let level = codec::check_level(opts.compression.unwrap_or(repo.config().compression))?;
    let lock = take_lock(repo, opts)?;
    let excludes = Excludes::new(&opts.exclude)?;
    let rules = walk::Rules {
        strict: opts.strict,
        excludes: &excludes,
        // A version-1 manifest holds UTF-8 names only.
        utf8_only: !repo.config().writes_trees(),
    };
    let walked = walk::walk_by(sources, &rules)?;
    let run = Run {
        started,
        level,
        lock,
    };
    create_walked(repo, run, walked, None, opts, progress)
}

/// Takes a snapshot of one stream (`snapshot --stdin`): its bytes are
/// stored as one regular file `name` (mode 0644, modified now), chunked
/// and deduplicated as any file is. `name` is one path component.
pub fn create_from_reader(
    repo: &Repository,
    name: &str,
    input: Box<dyn Read + Send>,
    opts: &SnapshotOptions,
    progress: &dyn Progress,
) -> Result<SnapshotReport> {
    let started = Instant::now();
    opts.label.validate()?;
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "--stdin-filename `{name}` must be a file name: not empty, `.` or `..`, and without `/`"
        )));
    }
    let level = codec::check_level(opts.compression.unwrap_or(repo.config().compression))?;
    let lock = take_lock(repo, opts)?;
    let walked = walk::Walk {
        entries: vec![SourceEntry {
            rel: name.to_string(),
            abs: PathBuf::from(name),
            kind: EntryKind::File,
            mode: 0o644,
            mtime_ns: now_ns(),
            ..Default::default()
        }],
        sources: vec![PathBuf::from(name)],
        ..Default::default()
    };
    let run = Run {
        started,
        level,
        lock,
    };
    create_walked(repo, run, walked, Some(input), opts, progress)
}

/// What every snapshot holds from its start: its clock, zstd level and
/// lock (none for a dry run, which writes nothing, not even a lock).
struct Run {
    started: Instant,
    level: i32,
    lock: Option<Lock>,
}

fn take_lock(repo: &Repository, opts: &SnapshotOptions) -> Result<Option<Lock>> {
    if opts.dry_run {
        return Ok(None);
    }
    Lock::shared(repo.shared_storage(), "snapshot").map(Some)
}

/// Reads, stores and commits what a walk found; with `stream`, the walk is
/// the one file that stream fills.
fn create_walked(
    repo: &Repository,
    run: Run,
    mut walked: walk::Walk,
    stream: Option<Box<dyn Read + Send>>,
    opts: &SnapshotOptions,
    progress: &dyn Progress,
) -> Result<SnapshotReport> {
    let Run {
        started,
        level,
        lock,
    } = run;
    let parent = latest_of(repo, &opts.label.kind, &opts.label.name)?;
    // Owners, hard links, FIFOs, devices and `incomplete` live in trees.
    let fidelity = repo.config().writes_trees();
    if !fidelity {
        walked.skip_special();
    }
    let groups = walked.hardlink_groups();
    // The walk's entries become the manifest's: each one's strings move
    // into its `FileEntry` (and its absolute path into the `ReadJob` of a
    // file to read), so no second copy of the list lives through the run.
    let stream_path = stream.as_ref().map(|_| walked.entries[0].abs.clone());
    let entries = std::mem::take(&mut walked.entries);
    let mut files = Vec::with_capacity(entries.len());
    let mut inodes = Vec::with_capacity(entries.len());
    let mut jobs = Vec::new();
    for (i, e) in entries.into_iter().enumerate() {
        let reused = match (&parent, e.kind, opts.force) {
            (Some(p), EntryKind::File, false) => reusable(repo, p, &e)?,
            _ => None,
        };
        inodes.push(e.inode);
        let mut entry = FileEntry {
            path: e.rel,
            kind: e.kind,
            mode: e.mode,
            mtime_ns: e.mtime_ns,
            size: e.size,
            link_target: e.link_target,
            ..Default::default()
        };
        if fidelity {
            entry.owner = e.owner;
            entry.hardlink = groups[i];
            entry.rdev = e.rdev;
        }
        match reused {
            Some(cached) => {
                entry.sha256 = cached.sha256;
                entry.chunks = cached.chunks;
            }
            None if e.kind == EntryKind::File => jobs.push(ReadJob {
                file: i,
                path: e.abs,
                size: e.size,
                mtime_ns: e.mtime_ns,
            }),
            None => {}
        }
        files.push(entry);
    }
    drop(groups);
    let unchanged = opts.skip_if_unchanged
        && stream.is_none()
        && jobs.is_empty()
        && walked.left_out.is_empty()
        && match &parent {
            Some(p) => same_files(repo, p, &files)?,
            None => false,
        };
    let mut to_read: u64 = jobs.iter().map(|j| j.size).sum();
    let files_read = jobs.len() as u64;
    progress.start("snapshot", to_read);
    let chunker = Chunker::seeded(repo.config().chunker, repo.crypt().gear_seed())?;
    let verify = opts.verify || repo.config().verify_after_snapshot;
    let standalone = opts.no_delta || !repo.config().allows_delta();
    // Only a file large enough to be probed for tensors can have a
    // previous version to delta against (see `Storer::version_of`).
    let previous = match (&parent, standalone) {
        (Some(p), false) => Some(Previous {
            snapshot: p.clone(),
            files: jobs
                .iter()
                .filter(|j| j.size >= crate::ingest::shape::PROBE_MIN)
                .map(|j| (j.file, (j.path.clone(), j.size, files[j.file].path.clone())))
                .collect(),
        }),
        _ => None,
    };
    let streamed = Arc::new(AtomicU64::new(0));
    let is_stream = stream.is_some();
    let ingest = match stream {
        Some(input) => {
            let counted = Counted {
                input,
                count: streamed.clone(),
            };
            let path = stream_path.expect("a stream's walk is its one file");
            read::spawn_stream(0, path, Box::new(counted), chunker)
        }
        None => read::spawn_with(jobs, chunker, opts.strict),
    };
    let mut outcome = Outcome::default();
    // Once every file is read, before the last pack is sealed: the
    // reader's issues settle the file list, whose trees go into that pack.
    let settle = |issues: Vec<ReadIssue>, files: &mut Vec<FileEntry>| {
        if is_stream {
            // The stream's size is known only now that it has been read.
            files[0].size = streamed.load(Ordering::Relaxed);
        }
        outcome = apply_issues(issues, files, &mut inodes, fidelity);
        repo.config().writes_trees() && !unchanged
    };
    let (stored, root) = store_all(
        repo,
        ingest,
        Settings {
            level,
            verify,
            dry_run: opts.dry_run,
            keyframes: !standalone && !opts.dry_run,
            previous,
        },
        &mut files,
        settle,
        progress,
    )?;
    progress.finish();
    if is_stream {
        to_read = files[0].size;
    }
    // A directory too large for one tree makes this a version-1 manifest,
    // which holds UTF-8 names only: what it cannot hold is left out (its
    // chunks are gc's to reclaim), or with --strict the snapshot stops.
    let misfits = if root.is_none() && repo.config().writes_trees() && !unchanged {
        take_v1_misfits(&mut files, &mut inodes)
    } else {
        Vec::new()
    };
    if let (true, Some(first)) = (opts.strict, misfits.first()) {
        return Err(Error::NonUtf8Name {
            path: name::display(&first.path).into_owned(),
        });
    }

    let stats = RunStats {
        files_read: files_read - outcome.left_out_files,
        bytes_read: to_read - outcome.left_out_bytes,
        added_raw: stored.added_raw,
        added_stored: stored.added_stored,
        duration_ms: started.elapsed().as_millis() as u64,
    };
    let m = Manifest {
        label: opts.label.clone(),
        host: crate::host::hostname(),
        time_ns: now_ns(),
        sources: walked
            .sources
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        parent: parent.as_ref().map(|p| p.id),
        stats: stats.clone(),
        files,
    };
    // The last moment a watcher can stop it: nothing is visible yet.
    crate::progress::check_cancelled(progress)?;
    let (mut id, bytes) = match &root {
        Some(root) => m.encode_v2(root, m.files.len() as u64, m.logical_bytes()),
        None => m.encode(),
    };
    match (&lock, &parent) {
        (_, Some(p)) if unchanged => id = p.id,
        // The commit: only while the lock holds, or a gc that judged it
        // stale may have deleted the packs this manifest names.
        (Some(lock), _) => {
            lock.ensure_held()?;
            repo.storage().put(&manifest::key(&id), &bytes)?;
            repo.catalog().add_snapshot(&id, &m, &inodes)?;
        }
        (None, _) => {} // a dry run
    }
    let mut skipped: Vec<Skipped> = walked
        .skipped
        .iter()
        .map(|p| Skipped {
            path: walk::escaped(p),
            reason: SkipReason::Unsupported,
            detail: unsupported_detail(p).into(),
        })
        .chain(walked.left_out)
        .chain(outcome.skipped)
        .chain(misfits.iter().map(|f| {
            Skipped {
                path: name::display(&f.path).into_owned(),
                reason: SkipReason::NonUtf8Name,
                detail: "a directory too large for one tree made this a version-1 manifest, \
                     which holds UTF-8 names only"
                    .into(),
            }
        }))
        .collect();
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(SnapshotReport {
        id,
        kind: m.label.kind,
        name: m.label.name,
        files: m.files.iter().filter(|f| f.kind == EntryKind::File).count() as u64,
        files_read: stats.files_read,
        logical_bytes: m.files.iter().map(|f| f.size).sum(),
        bytes_read: stats.bytes_read,
        chunks_new: stored.chunks_new,
        added_raw: stats.added_raw,
        added_stored: stats.added_stored,
        duration_ms: started.elapsed().as_millis() as u64,
        complete: outcome.changed.is_empty()
            && skipped.iter().all(|s| s.reason == SkipReason::Unsupported),
        skipped,
        changed: outcome.changed,
        excluded: walked.excluded,
        unchanged,
        dry_run: opts.dry_run,
    })
}

/// Removes from `files` (and the parallel `inodes`) the entries a
/// version-1 manifest cannot hold (not [`FileEntry::fits_v1`]) and returns
/// them.
fn take_v1_misfits(files: &mut Vec<FileEntry>, inodes: &mut Vec<u64>) -> Vec<FileEntry> {
    if files.iter().all(FileEntry::fits_v1) {
        return Vec::new();
    }
    let mut misfits = Vec::new();
    let mut kept = (
        Vec::with_capacity(files.len()),
        Vec::with_capacity(inodes.len()),
    );
    for (f, inode) in files.drain(..).zip(inodes.drain(..)) {
        if f.fits_v1() {
            kept.0.push(f);
            kept.1.push(inode);
        } else {
            misfits.push(f);
        }
    }
    (*files, *inodes) = kept;
    misfits
}

/// Why an entry of this type is not stored: sockets never are (as restic
/// and borg); FIFOs and devices only in repositories of version 4.
fn unsupported_detail(path: &std::path::Path) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path).map(|m| m.file_type()) {
        Ok(ft) if ft.is_socket() => "a socket: sockets are not stored",
        Ok(ft) if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() => {
            "a FIFO or device node: recorded only in repositories of version 4"
        }
        _ => "not a file, directory, symlink, FIFO or device node",
    }
}

/// A stream that counts the bytes read from it (a stream's size is known
/// only at its end).
struct Counted {
    input: Box<dyn Read + Send>,
    count: Arc<AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.input.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// What the reader's issues did to the snapshot.
#[derive(Debug, Default)]
struct Outcome {
    skipped: Vec<Skipped>,
    changed: Vec<Changed>,
    left_out_files: u64,
    left_out_bytes: u64,
}

/// Takes the reader's issues into the manifest's entries (`files`, with the
/// stat-cache `inodes` beside them): an unreadable file is removed; a
/// re-read one gets the size and mtime of what was stored, and when it was
/// still changing, no stat-cache match, so the next snapshot reads it again.
fn apply_issues(
    issues: Vec<ReadIssue>,
    files: &mut Vec<FileEntry>,
    inodes: &mut Vec<u64>,
    mark_incomplete: bool,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut gone = HashSet::new();
    for issue in issues {
        match issue {
            ReadIssue::Unreadable { file, path, error } => {
                let skipped = Skipped::from_error(&path, &error)
                    .expect("the reader leaves out only what a snapshot tolerates");
                outcome.skipped.push(skipped);
                outcome.left_out_files += 1;
                // The walk's size: a file left out is never re-read first.
                outcome.left_out_bytes += files[file].size;
                gone.insert(file);
            }
            ReadIssue::Reread {
                file,
                path,
                size,
                mtime_ns,
                still_changing,
            } => {
                files[file].size = size;
                files[file].mtime_ns = mtime_ns;
                if let Some(detail) = still_changing {
                    inodes[file] = 0;
                    files[file].incomplete = mark_incomplete;
                    outcome.changed.push(Changed {
                        path: walk::escaped(&path),
                        detail,
                    });
                }
            }
        }
    }
    if !gone.is_empty() {
        let mut i = 0..;
        files.retain(|_| !gone.contains(&i.next().expect("unbounded")));
        let mut i = 0..;
        inodes.retain(|_| !gone.contains(&i.next().expect("unbounded")));
    }
    outcome
}

/// Whether `files` (as the walk found them, with the stat cache's content)
/// are exactly the entries of `parent`.
fn same_files(repo: &Repository, parent: &SnapshotInfo, files: &[FileEntry]) -> Result<bool> {
    let before = repo.catalog().files(parent)?;
    if before.len() != files.len() {
        return Ok(false);
    }
    let mut now: Vec<&FileEntry> = files.iter().collect();
    now.sort_by(|a, b| a.path.cmp(&b.path));
    // A directory's `chunks` (its tree, manifest version 2) follows from
    // the entries under it, which are compared themselves.
    let same = |b: &FileEntry, n: &FileEntry| match b.kind {
        EntryKind::Dir => {
            (&b.path, b.kind, b.mode, b.mtime_ns) == (&n.path, n.kind, n.mode, n.mtime_ns)
        }
        _ => b == n,
    };
    Ok(before.iter().zip(now).all(|(b, n)| same(b, n)))
}

fn latest_of(repo: &Repository, kind: &str, name: &str) -> Result<Option<SnapshotInfo>> {
    let filter = SnapshotFilter {
        kind: Some(kind.to_string()),
        name: Some(name.to_string()),
        tag: None,
    };
    Ok(repo.catalog().snapshots(&filter)?.pop())
}

/// Reads a just-written pack back and checks it is byte-identical to what
/// was written (its id is the BLAKE3 of its bytes) and parses.
fn verify_written(
    storage: &dyn Storage,
    crypt: &Crypt,
    key: &str,
    id: &PackId,
    entries: &[PackEntry],
) -> Result<()> {
    let back = storage.get(key)?;
    let reason = if PackId::of(&back) != *id {
        "read-back does not match what was written"
    } else if pack::parse_with(&back, crypt).as_deref() != Ok(entries) {
        "read-back trailer does not parse to what was written"
    } else {
        return Ok(());
    };
    Err(Error::CorruptPack {
        pack: id.to_hex(),
        reason: reason.into(),
    })
}

/// The parent's record of `e` when size, mtime and inode match and every
/// chunk is still stored (a repaired repository may have lost some; then
/// the file is re-read and the chunks re-supplied).
fn reusable(
    repo: &Repository,
    parent: &SnapshotInfo,
    e: &SourceEntry,
) -> Result<Option<CachedFile>> {
    let Some(cached) = repo.catalog().cached_file(parent, &e.rel)? else {
        return Ok(None);
    };
    if cached.size != e.size
        || cached.mtime_ns != e.mtime_ns
        || cached.inode != e.inode
        || e.inode == 0
    {
        return Ok(None);
    }
    for id in &cached.chunks {
        if !repo.catalog().has_chunk(id)? {
            return Ok(None);
        }
    }
    Ok(Some(cached))
}

/// Runs the read → hash → dedup → compress pipeline over `jobs`, with packs
/// made durable and indexed on a writer thread so sealing a pack (fsync)
/// overlaps with hashing and compressing the next one. Once all is read,
/// `settle` takes the reader's issues into `files` and says whether to
/// store trees; their new ones go into the last pack, and the root's id
/// comes back. The one store path of new content: `snapshot` and a
/// re-encoding `copy` (whose `ingest` streams the source's files) alike.
pub(crate) fn store_all(
    repo: &Repository,
    ingest: read::Ingest,
    settings: Settings,
    files: &mut Vec<FileEntry>,
    settle: impl FnOnce(Vec<ReadIssue>, &mut Vec<FileEntry>) -> bool,
    progress: &dyn Progress,
) -> Result<(Totals, Option<ChunkId>)> {
    let Settings {
        level,
        verify,
        dry_run,
        keyframes,
        previous,
    } = settings;
    through_pack_writers(repo, verify, dry_run, |pack_tx, recycle_rx| {
        let mut storer = storer::Storer::new(repo, level, pack_tx, recycle_rx);
        storer.previous = previous;
        storer.keyframes = repo.ref_cache().filter(|_| keyframes);
        let result = ingest
            .for_each_hashed(|batch| storer.take(batch, files, progress))
            .map(|Ingested { digests, issues }| {
                for (file, sha) in digests {
                    files[file].sha256 = sha;
                }
                issues
            });
        let result = result.and_then(|issues| {
            let root = match settle(issues, files) {
                true => storer.add_trees(files)?,
                false => None,
            };
            storer.seal().map(|()| root)
        });
        result.map(|root| (storer.totals, root))
    })
}

/// Runs `fill` with the sending end of a pack channel and the receiving
/// end of the buffers coming back, while [`write_packs`] (or, for a dry
/// run, a drain that writes nothing) takes the packs on a thread of its
/// own; returns once every pack handed over is written and indexed, so the
/// caller may put a manifest next. The one place snapshot and copy hand
/// packs to the writers.
pub(crate) fn through_pack_writers<T>(
    repo: &Repository,
    verify: bool,
    dry_run: bool,
    fill: impl FnOnce(SyncSender<SealedPack>, Receiver<Vec<u8>>) -> Result<T>,
) -> Result<T> {
    let (storage, crypt, catalog) = (repo.storage(), repo.crypt(), repo.catalog());
    std::thread::scope(|scope| {
        // Rendezvous: at most one pack per writer (`parallel_puts`) being
        // written while the next one fills.
        let (pack_tx, pack_rx) = sync_channel::<SealedPack>(0);
        // Sealed packs' buffers come back for the next pack to fill.
        let (recycle_tx, recycle_rx) = channel();
        let writer = scope.spawn(move || {
            if dry_run {
                // Counted by the storer; nothing is written.
                pack_rx.iter().for_each(|p| drop(recycle_tx.send(p.bytes)));
                return Ok(());
            }
            write_packs(storage, crypt, catalog, verify, pack_rx, recycle_tx)
        });
        // `fill` owns the sender: once it returns, the writers see the end.
        let result = fill(pack_tx, recycle_rx);
        // The writer's own error explains a failed hand-over; report it first.
        writer.join().expect("pack writer does not panic")?;
        result
    })
}

/// Makes each pack durable, optionally reads it back, then records it in
/// the catalog: durable before indexed. The catalog is the repository's
/// own, shared with the hashing side; a pack's commit holds its lock only
/// for that one transaction.
///
/// [`Storage::parallel_puts`] writers take packs from the one channel, so
/// on object storage several uploads are in flight (#13); each pack is
/// still put, then indexed. The first error stops every writer after the
/// pack it is on and is returned; when this returns, every writer is done,
/// so the caller puts the manifest only after all packs are indexed.
fn write_packs(
    storage: &dyn Storage,
    crypt: &Crypt,
    catalog: &Catalog,
    verify: bool,
    packs: Receiver<SealedPack>,
    recycle: Sender<Vec<u8>>,
) -> Result<()> {
    // std's receiver has one owner: writers take turns at it.
    let packs = Mutex::new(packs);
    let first_error = Mutex::new(None);
    let failed = AtomicBool::new(false);
    // Every pack taken gives its buffer back, also one left unwritten
    // after a failure: the storer waits for a buffer before it hands over
    // the next pack, and a writer keeping one would leave it, and the
    // writers waiting for that pack, waiting for ever. Each writer holds
    // its own sender, so once all are gone the storer's wait ends too.
    let drain = |recycle: Sender<Vec<u8>>| {
        while !failed.load(Ordering::SeqCst) {
            let Ok(sealed) = packs.lock().expect("no writer panics").recv() else {
                return;
            };
            let buffer = if failed.load(Ordering::SeqCst) {
                sealed.bytes
            } else {
                match write_pack(storage, crypt, catalog, sealed, verify) {
                    Ok(buffer) => buffer,
                    Err(e) => {
                        failed.store(true, Ordering::SeqCst);
                        first_error
                            .lock()
                            .expect("no writer panics")
                            .get_or_insert(e);
                        Vec::new()
                    }
                }
            };
            let _ = recycle.send(buffer);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..storage.parallel_puts() {
            let recycle = recycle.clone();
            scope.spawn(move || drain(recycle));
        }
        drain(recycle);
    });
    match first_error.into_inner().expect("no writer panics") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Makes one pack durable, optionally reads it back, then records it in
/// the catalog (durable before indexed): the one way a new pack enters a
/// repository, for snapshot and copy. Returns the pack's buffer for the
/// next pack to fill, or an empty one if the storage client still holds it.
pub(crate) fn write_pack(
    storage: &dyn Storage,
    crypt: &Crypt,
    catalog: &Catalog,
    sealed: SealedPack,
    verify: bool,
) -> Result<Vec<u8>> {
    let SealedPack { id, bytes, entries } = sealed;
    let key = pack::key(&id);
    // Handed over, not copied: object storage's client keeps the body (#13).
    let bytes = Bytes::from(bytes);
    storage.put_bytes(&key, bytes.clone(), PutMode::Overwrite)?;
    if verify {
        verify_written(storage, crypt, &key, &id, &entries)?;
    }
    delta::index_references(storage, crypt, catalog, &id, &entries, Some(&bytes))?;
    catalog.add_pack(&id, bytes.len() as u64, &entries)?;
    Ok(bytes.try_into_mut().map(Vec::from).unwrap_or_default())
}

/// How [`store_all`] works: zstd level, read-back of every new pack,
/// whether packs are only counted, not written (a dry run), and where
/// previous versions for delta chunks come from.
pub(crate) struct Settings {
    pub(crate) level: i32,
    pub(crate) verify: bool,
    pub(crate) dry_run: bool,
    /// Whether tensor chunks stored standalone (future keyframes) are also
    /// kept in the local reference cache, when the repository has one.
    pub(crate) keyframes: bool,
    pub(crate) previous: Option<Previous>,
}

/// The previous snapshot of the same history and, per file to read, its
/// path, size and relative path (the key into the previous snapshot).
pub(crate) struct Previous {
    snapshot: SnapshotInfo,
    files: HashMap<usize, (PathBuf, u64, String)>,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Totals {
    pub(crate) chunks_new: u64,
    pub(crate) added_raw: u64,
    pub(crate) added_stored: u64,
    /// Packs handed to the writer (trees' included).
    pub(crate) packs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::check::{check, CheckOptions};
    use crate::storage::faulty::{Fault, FaultyStorage};
    use crate::storage::LocalStorage;
    use crate::{CatalogLocation, ChunkerParams, NoProgress, RepoConfig};

    /// A repository with 64 KiB packs and a 1 MB incompressible source, so
    /// a snapshot writes many packs for the writers to share.
    fn small_packs() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let config = RepoConfig::new(ChunkerParams::with_average(4096), 0)
            .and_then(|c| c.with_pack_target(64 * 1024))
            .unwrap();
        Repository::init(&root, config).unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        for i in 0..4 {
            let data = crate::test_support::random_bytes(i, 250_000);
            std::fs::write(src.join(format!("f{i}")), data).unwrap();
        }
        (dir, root, src)
    }

    fn opts() -> SnapshotOptions {
        SnapshotOptions {
            label: crate::SnapshotLabel::new("model", "m"),
            ..Default::default()
        }
    }

    fn open(root: &std::path::Path, fault: Fault, fail_at: u64, writers: usize) -> Repository {
        let faulty =
            FaultyStorage::new(LocalStorage::new(root), fault, fail_at).with_parallel_puts(writers);
        let location = CatalogLocation::in_repository(root);
        Repository::open_with(Arc::new(faulty), location).unwrap()
    }

    /// Several writers store every pack: the snapshot checks clean and
    /// restores byte for byte, as with one.
    #[test]
    fn parallel_writers_store_every_pack() {
        for writers in [1, 3] {
            let (dir, root, src) = small_packs();
            let repo = open(&root, Fault::Fail, u64::MAX, writers);
            let report = repo
                .snapshot(std::slice::from_ref(&src), &opts(), &NoProgress)
                .unwrap();
            let (packs, _) = repo.catalog().pack_totals().unwrap();
            assert!(packs > 10, "{packs} packs");
            let found = check(&repo, CheckOptions::READ_ALL, &NoProgress).unwrap();
            assert!(found.is_clean(), "{writers}: {:?}", found.findings);
            let out = dir.path().join("out");
            let restore = crate::RestoreOptions::default();
            let snap = repo.resolve(&report.id.to_hex()).unwrap();
            crate::ops::restore::restore(&repo, &snap, &out, &restore, &NoProgress).unwrap();
            for i in 0..4 {
                let name = src.join(format!("f{i}"));
                let back = out.join(crate::test_support::stored(&name, ""));
                assert_eq!(std::fs::read(back).unwrap(), std::fs::read(&name).unwrap());
            }
        }
    }

    /// Counts the pack puts in flight at once, each taking 20 ms as a
    /// round trip to object storage would.
    struct InFlight {
        inner: LocalStorage,
        now: AtomicU64,
        most: AtomicU64,
    }

    impl Storage for InFlight {
        fn put_with(&self, key: &str, data: &[u8], mode: crate::storage::PutMode) -> Result<()> {
            if !key.starts_with(pack::PREFIX) {
                return self.inner.put_with(key, data, mode);
            }
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            self.now.fetch_sub(1, Ordering::SeqCst);
            self.inner.put_with(key, data, mode)
        }
        fn parallel_puts(&self) -> usize {
            3
        }
        fn get(&self, key: &str) -> Result<Vec<u8>> {
            self.inner.get(key)
        }
        fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
            self.inner.get_range(key, offset, len)
        }
        fn head(&self, key: &str) -> Result<u64> {
            self.inner.head(key)
        }
        fn list_each(
            &self,
            prefix: &str,
            visit: &mut dyn FnMut(crate::storage::ObjectInfo) -> Result<()>,
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
    }

    /// A storage advising 3 puts gets 3 packs in flight at once (the
    /// storer makes a buffer per writer), never more.
    #[test]
    fn packs_are_put_as_many_at_once_as_the_storage_advises() {
        let (_dir, root, src) = small_packs();
        let storage = Arc::new(InFlight {
            inner: LocalStorage::new(&root),
            now: AtomicU64::new(0),
            most: AtomicU64::new(0),
        });
        let location = CatalogLocation::in_repository(&root);
        let repo = Repository::open_with(storage.clone(), location).unwrap();
        repo.snapshot(&[src], &opts(), &NoProgress).unwrap();
        assert_eq!(storage.most.load(Ordering::SeqCst), 3);
    }

    /// A put failing (or torn) under one writer fails the snapshot with
    /// that error, with one writer or several: no manifest is put, every
    /// pack the catalog lists is durable (check reads them all), and the
    /// same snapshot succeeds afterwards. Put 1 is the lock; puts 2 and 6
    /// are packs (the first, and one while others are in flight).
    #[test]
    fn a_failed_put_among_parallel_writers_fails_the_snapshot_cleanly() {
        for (writers, fault, fail_at) in [1, 3]
            .into_iter()
            .flat_map(|w| [Fault::Fail, Fault::Tear].map(|f| (w, f)))
            .flat_map(|(w, f)| [2, 6].map(|n| (w, f, n)))
        {
            let case = format!("{writers} writers, {fault:?} at put {fail_at}");
            let (_dir, root, src) = small_packs();
            let repo = open(&root, fault, fail_at, writers);
            match repo.snapshot(std::slice::from_ref(&src), &opts(), &NoProgress) {
                Err(Error::Storage { source, .. }) => {
                    assert!(source.to_string().contains("injected"), "{case}: {source}")
                }
                other => panic!("{case}: {other:?}"),
            }
            drop(repo);
            let repo = Repository::open(&root).unwrap();
            assert!(
                repo.snapshots(&Default::default()).unwrap().is_empty(),
                "{case}"
            );
            assert!(
                repo.storage().list(manifest::PREFIX).unwrap().is_empty(),
                "{case}"
            );
            let (packs, _) = repo.catalog().pack_totals().unwrap();
            assert!(
                packs < 10,
                "{case}: the writers stopped, {packs} packs indexed"
            );
            let found = check(&repo, CheckOptions::READ_ALL, &NoProgress).unwrap();
            assert!(found.is_clean(), "{case}: {:?}", found.findings);
            repo.snapshot(&[src], &opts(), &NoProgress).unwrap();
        }
    }

    /// What a version-1 manifest cannot hold leaves the list with its
    /// inode; the rest keeps its order and inodes.
    #[test]
    fn v1_misfits_leave_with_their_inodes() {
        let entry = |raw: &[u8], target: &[u8]| FileEntry {
            path: name::from_bytes(raw).into_owned(),
            kind: EntryKind::File,
            mode: 0o644,
            link_target: name::from_bytes(target).into_owned(),
            ..Default::default()
        };
        let mut files = vec![
            entry(b"a", b""),
            entry(b"b\xff", b""),
            entry("\u{10ffab}".as_bytes(), b""),
            entry(b"l", b"t\xfe"),
        ];
        let mut inodes = vec![1, 2, 3, 4];
        let out = take_v1_misfits(&mut files, &mut inodes);
        let paths = |v: &[FileEntry]| {
            v.iter()
                .map(|f| name::display(&f.path).into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(paths(&out), ["b\\xff", "l"]);
        // Shown by its bytes, kept as itself.
        assert_eq!(paths(&files), ["a", "\\xf4\\x8f\\xbe\\xab"]);
        assert_eq!(
            name::to_bytes(&files[1].path).as_ref(),
            "\u{10ffab}".as_bytes()
        );
        assert_eq!(inodes, [1, 3]);
        assert!(take_v1_misfits(&mut files, &mut inodes).is_empty());
    }
}
