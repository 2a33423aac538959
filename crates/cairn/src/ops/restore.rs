//! Restoring a snapshot into a directory, bit-identically.
//!
//! Safety rules, because manifests are input from disk: every path must be
//! relative with no `.`/`..` components; every ancestor of a written file
//! must be a real directory under TARGET (never a symlink), and symlinks are
//! created last so none can redirect a later write; no restored path may
//! land inside the repository. Nothing appears under a real name before it
//! is complete and checked against its SHA-256: a directory that does not
//! exist yet is built under a temp name and renamed into place whole
//! ([`stage`]); a file in an existing directory is written to a temp name
//! beside its destination (whole blocks of zeros left as holes), checked,
//! given its mode and mtime, and only then renamed into place. Nothing is
//! fsynced: when a restore returns its files are complete for every reader,
//! durable once the kernel writes them back.

mod fidelity;
pub(crate) mod layout;
pub(crate) mod locate;
mod stage;
mod target;

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::blob::{read_chunks, References};
use crate::catalog::SnapshotInfo;
use crate::error::{Error, IoContext, Result};
use crate::format::manifest::{EntryKind, FileEntry};
use crate::format::name;
use crate::format::seal::Crypt;
use crate::progress::Progress;
use crate::repo::repository::Repository;
use crate::storage::pagecache::WriteBehind;
use crate::storage::Storage;
use locate::{Bounds, Located, Locations};

/// Chunks fetched and decoded in parallel before being written in order.
const WINDOW: usize = 64;

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Restore only these files or subtrees (snapshot-relative paths).
    pub paths: Vec<String>,
    /// Replace existing files instead of refusing.
    pub overwrite: bool,
    /// Restore what can be restored and report the files that failed.
    pub ignore_errors: bool,
}

/// A file that could not be restored (with `ignore_errors`).
#[derive(Debug, Clone, Serialize)]
pub struct RestoreFailure {
    pub path: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    pub failed: Vec<RestoreFailure>,
    /// Temp files of an interrupted restore found and removed.
    pub leftovers_removed: u64,
    /// Files restored as a hard link to another restored file (also
    /// counted in `files`).
    pub hardlinks: u64,
    pub fifos: u64,
    pub devices: u64,
    /// Device nodes not created: that needs root.
    pub devices_skipped: u64,
    /// Whether the recorded owners were set (only as root).
    pub owners_restored: bool,
}

/// Checks a manifest path is a plain relative path.
pub fn check_path(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(())
    } else {
        Err(Error::UnsafePath {
            path: path.to_string(),
        })
    }
}

/// Checks that no entry lies beneath another entry that is not a
/// directory (`link -> /elsewhere` then `link/evil`): such a manifest could
/// only be restored by writing through the symlink, so it is refused up
/// front, before anything is written.
pub fn check_tree(entries: &[FileEntry]) -> Result<()> {
    let not_dirs: std::collections::HashSet<&str> = entries
        .iter()
        .filter(|e| e.kind != EntryKind::Dir)
        .map(|e| e.path.as_str())
        .collect();
    for e in entries {
        let beneath = e
            .path
            .match_indices('/')
            .any(|(i, _)| not_dirs.contains(&e.path[..i]));
        if beneath {
            return Err(Error::UnsafePath {
                path: e.path.clone(),
            });
        }
    }
    Ok(())
}

/// The entries selected by `paths` (all when empty), with the directory
/// entries of their ancestors so nested subtrees restore in place; a path
/// that selects nothing is an error naming it.
pub fn select(
    entries: Vec<FileEntry>,
    paths: &[String],
    snapshot: &SnapshotInfo,
) -> Result<Vec<FileEntry>> {
    if paths.is_empty() {
        return Ok(entries);
    }
    let wanted: Vec<String> = paths
        .iter()
        .map(|p| layout::resolve(&snapshot.sources, &entries, p))
        .collect();
    let under = layout::at_or_under;
    if let Some(missing) = wanted
        .iter()
        .find(|w| !entries.iter().any(|e| under(&e.path, w)))
    {
        return Err(Error::PathNotInSnapshot {
            path: missing.to_string(),
            snapshot: snapshot.id.short(),
        });
    }
    let ancestor = |path: &str| wanted.iter().any(|w| under(w, path));
    Ok(entries
        .into_iter()
        .filter(|e| {
            wanted.iter().any(|w| under(&e.path, w))
                || (e.kind == EntryKind::Dir && ancestor(&e.path))
        })
        .collect())
}

/// Restores `snap` (or the selected parts) under `target`.
pub fn restore(
    repo: &Repository,
    snap: &SnapshotInfo,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    restore_bounded(repo, snap, target, opts, progress, Bounds::DEFAULT)
}

/// [`restore`], locating chunks in batches of `bounds` (tests make them
/// tiny so a small tree crosses many batches and windows).
fn restore_bounded(
    repo: &Repository,
    snap: &SnapshotInfo,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
    bounds: Bounds,
) -> Result<RestoreReport> {
    // Shared: gc must not delete a pack this restore is about to read.
    let _lock = repo.read_lock("restore")?;
    let all = repo.catalog().files(snap)?;
    check_tree(&all)?;
    let entries = select(all, &opts.paths, snap)?;
    entries.iter().try_for_each(|e| check_path(&e.path))?;
    target::check_target(repo.storage().local_root(), target, &entries)?;
    let mut report = RestoreReport::default();
    // Before the refusal below: a rerun of a killed restore without
    // `overwrite` is refused for the files that one put in place, and its
    // temp files must not outlive that refusal (they are only ever ours).
    let restored: Vec<&FileEntry> = entries.iter().collect();
    report.leftovers_removed = target::remove_leftovers(target, &restored)?;
    if report.leftovers_removed > 0 {
        let n = report.leftovers_removed;
        let files = if n == 1 { "file" } else { "files" };
        repo.warn(format!(
            "removed {n} leftover temp {files} of an interrupted restore under {}",
            target.display()
        ));
    }
    let mut layout = stage::Layout::plan(target, &entries)?;
    // Nothing beneath a fresh directory can be there already.
    let in_place: Vec<&FileEntry> = entries
        .iter()
        .filter(|e| layout.staged(&e.path).is_none())
        .collect();
    prepare_target(target, &in_place, opts.overwrite)?;
    layout.create()?;
    let written = write_entries(repo, target, &entries, &layout, opts, progress, bounds);
    if written.is_err() {
        layout.discard();
    }
    let (failed, dirs, links, made) = written?;
    report.failed = failed;
    report.dirs = dirs;
    report.symlinks = links;
    let mut skip: HashSet<String> = report.failed.iter().map(|f| f.path.clone()).collect();
    skip.extend(made.not_restored);
    report.owners_restored = fidelity::set_owners(target, &entries, &skip)?;
    (report.hardlinks, report.fifos) = (made.hardlinks, made.fifos);
    (report.devices, report.devices_skipped) = (made.devices, made.devices_skipped);
    let files = entries.iter().filter(|e| e.kind == EntryKind::File);
    report.files = files.clone().count() as u64 - report.failed.len() as u64;
    report.bytes = files.map(|f| f.size).sum();
    Ok(report)
}

/// Writes the directories, files and symlinks of `entries` (TARGET
/// prepared, stages created), then the directories' modes and mtimes.
/// Returns the failed files (with `ignore_errors`) and the numbers of
/// directories and symlinks. Files are written in parallel as [`Located`]
/// yields them, so only a few batches of locations are held at a time.
fn write_entries(
    repo: &Repository,
    target: &Path,
    entries: &[FileEntry],
    layout: &stage::Layout,
    opts: &RestoreOptions,
    progress: &dyn Progress,
    bounds: Bounds,
) -> Result<(Vec<RestoreFailure>, u64, u64, fidelity::Made)> {
    let (mut dirs, mut files, mut links, mut specials) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for e in entries {
        match e.kind {
            EntryKind::Dir => dirs.push(e),
            EntryKind::File => files.push(e),
            EntryKind::Symlink => links.push(e),
            _ => specials.push(e),
        }
    }
    let (files, hardlinks) = fidelity::split_links(files);
    for d in &dirs {
        match layout.staged(&d.path) {
            // In a stage: the parent is new and ours (a stage root itself
            // was made with the stage).
            Some(_) if layout.is_root(&d.path) => {}
            Some(path) => fs::create_dir(&path).at(&path)?,
            None => ensure_dir(&safe_join(target, &d.path)?, opts.overwrite)?,
        }
    }
    // Each made or found a real directory, reached through real ones (and
    // "" is TARGET itself).
    let verified_dirs: HashSet<&str> = dirs.iter().map(|d| d.path.as_str()).chain([""]).collect();
    progress.start("restore", files.iter().map(|f| f.size).sum());
    crate::progress::check_cancelled(progress)?;
    let failures = Mutex::new(Vec::new());
    let storage = repo.storage();
    let refs = repo.references();
    let located = Located::new(repo.catalog(), files.iter().copied(), bounds);
    located.par_bridge().try_for_each(|item| {
        let (f, locs) = item?;
        let result = locs.and_then(|locs| {
            let place = match layout.staged(&f.path) {
                Some(path) => Place::New(path),
                None => Place::Replace(in_place_dest(target, &verified_dirs, &f.path)?),
            };
            restore_file(storage, repo.crypt(), &refs, place, f, &locs, progress)
        });
        match result {
            Ok(()) => Ok(()),
            Err(Error::Cancelled) => Err(Error::Cancelled),
            Err(e) if opts.ignore_errors => {
                failures
                    .lock()
                    .expect("no panics while held")
                    .push(RestoreFailure {
                        path: f.path.clone(),
                        error: e.to_string(),
                    });
                Ok(())
            }
            Err(e) => Err(e.in_file(&f.path)),
        }
    })?;
    progress.finish();
    let mut failed = failures.into_inner().expect("no panics while held");
    let made = fidelity::link_and_make(
        target,
        layout,
        &verified_dirs,
        &hardlinks,
        &specials,
        &mut failed,
    )?;
    for l in &links {
        let path = match layout.staged(&l.path) {
            Some(path) => path,
            None => {
                let path = safe_join(target, &l.path)?;
                let _ = fs::remove_file(&path);
                path
            }
        };
        std::os::unix::fs::symlink(name::to_path(&l.link_target), &path).at(&path)?;
        set_symlink_mtime(&path, l.mtime_ns)?;
    }
    // Directory mtimes last, deepest first: creating entries changes them.
    // Staged ones first, then the stages are moved into place (which
    // changes their parents' mtimes), then the directories set in place.
    for staged in [true, false] {
        for d in dirs.iter().rev() {
            let path = match (layout.staged(&d.path), staged) {
                (Some(path), true) => path,
                (None, false) => safe_join(target, &d.path)?,
                _ => continue,
            };
            set_mode_and_mtime(&path, d.mode, d.mtime_ns)?;
        }
        if staged {
            layout.publish()?;
        }
    }
    Ok((failed, dirs.len() as u64, links.len() as u64, made))
}

/// Creates a directory, or accepts a real one already there. A symlink or
/// file in its place is never followed: it is refused, or with `overwrite`
/// replaced.
fn ensure_dir(path: &Path, overwrite: bool) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) if !overwrite => {
            return Err(Error::TargetExists {
                path: path.to_path_buf(),
            })
        }
        Ok(_) => fs::remove_file(path).at(path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(path, e)),
    }
    fs::create_dir(path).at(path)
}

/// TARGET must be a directory (created if missing); without `overwrite`,
/// no file or symlink of the restore may already exist there. Checked up
/// front so a refused restore writes nothing.
fn prepare_target(target: &Path, entries: &[&FileEntry], overwrite: bool) -> Result<()> {
    match fs::metadata(target) {
        Ok(m) if !m.is_dir() => {
            return Err(Error::InvalidArgument(format!(
                "restore target {} exists and is not a directory",
                target.display()
            )))
        }
        Ok(_) => {}
        Err(_) => fs::create_dir_all(target).at(target)?,
    }
    if !overwrite {
        for e in entries {
            let path = target.join(name::to_path(&e.path));
            let taken = match fs::symlink_metadata(&path) {
                Ok(m) => e.kind != EntryKind::Dir || !m.is_dir(),
                Err(_) => false,
            };
            if taken {
                return Err(Error::TargetExists { path });
            }
        }
    }
    Ok(())
}

/// `target/rel`, after checking every existing ancestor is a real directory.
fn safe_join(target: &Path, rel: &str) -> Result<PathBuf> {
    let mut path = target.to_path_buf();
    let mut parts = rel.split('/').peekable();
    while let Some(part) = parts.next() {
        path.push(name::to_path(part));
        if parts.peek().is_some() {
            let meta = fs::symlink_metadata(&path).at(&path)?;
            if !meta.is_dir() {
                return Err(Error::UnsafePath {
                    path: rel.to_string(),
                });
            }
        }
    }
    Ok(path)
}

/// Where a file is written.
enum Place {
    /// A new name in a stage: the file is written there directly.
    New(PathBuf),
    /// A name that may be taken: the file is written to a temp name beside
    /// it and renamed over it once verified.
    Replace(PathBuf),
}

/// `target/rel` for a file written in place: under a directory this
/// restore made or checked, the path is safe as it is; elsewhere each
/// ancestor is checked.
fn in_place_dest(target: &Path, verified_dirs: &HashSet<&str>, rel: &str) -> Result<PathBuf> {
    let parent = rel.rsplit_once('/').map_or("", |(dir, _)| dir);
    if verified_dirs.contains(parent) {
        Ok(target.join(name::to_path(rel)))
    } else {
        safe_join(target, rel)
    }
}

fn restore_file(
    storage: &dyn Storage,
    crypt: &Crypt,
    refs: &References,
    place: Place,
    f: &FileEntry,
    locs: &Locations,
    progress: &dyn Progress,
) -> Result<()> {
    let (dest, tmp) = match &place {
        Place::New(path) => (path, None),
        Place::Replace(dest) => (dest, Some(target::temp_path(dest))),
    };
    let written = tmp.as_deref().unwrap_or(dest);
    let result = write_verified(
        storage,
        crypt,
        refs,
        written,
        tmp.is_none(),
        f,
        locs,
        progress,
    )
    .and_then(|()| match &tmp {
        None => Ok(()),
        Some(tmp) => match fs::rename(tmp, dest) {
            // A directory in the file's place (rename never replaces
            // one with a file).
            Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {
                Err(Error::TargetExists { path: dest.clone() })
            }
            other => other.at(dest),
        },
    });
    if result.is_err() {
        let _ = fs::remove_file(written);
    }
    result
}

/// Writes `f` to `path` and checks its SHA-256: a new name (`fresh`) is
/// created with the file's mode, a temp name owner-only until the end.
#[allow(clippy::too_many_arguments)]
fn write_verified(
    storage: &dyn Storage,
    crypt: &Crypt,
    refs: &References,
    tmp: &Path,
    fresh: bool,
    f: &FileEntry,
    locs: &Locations,
    progress: &dyn Progress,
) -> Result<()> {
    let perm = f.mode & 0o7777;
    let mut open = OpenOptions::new();
    if fresh {
        open.write(true).create_new(true).mode(perm);
    } else {
        open.write(true).create(true).truncate(true).mode(0o600);
    }
    let out = open.open(tmp).at(tmp)?;
    // Sized first: the blocks of zeros skipped below read back as holes.
    // A small file is written whole instead, saving a call per file where
    // a restore of many small files is all per-file calls.
    let sparse = f.size >= SPARSE_MIN;
    if sparse {
        out.set_len(f.size).at(tmp)?;
    }
    let mut behind = WriteBehind::default();
    let mut offset = 0;
    stream_file(storage, crypt, refs, f, locs, |chunk| {
        crate::progress::check_cancelled(progress)?;
        progress.advance(chunk.len() as u64);
        if sparse {
            write_sparse(&out, offset, chunk).at(tmp)?;
        } else {
            out.write_all_at(chunk, offset).at(tmp)?;
        }
        offset += chunk.len() as u64;
        behind.wrote(&out, chunk.len());
        Ok(())
    })?;
    if fresh && stage::created_exactly(perm) {
        set_open_mtime(&out, tmp, f.mtime_ns)
    } else {
        set_open_mode_and_mtime(&out, tmp, f.mode, f.mtime_ns)
    }
}

/// Files from this size on are restored sparse (blocks of zeros left as
/// holes); smaller ones are written whole.
const SPARSE_MIN: u64 = 1 << 20;

/// Hole granularity: whole blocks of zeros this size, aligned in the file,
/// are skipped instead of written (the common file-system block size).
const HOLE_BLOCK: usize = 4096;

/// Writes `data` at `offset` of a file already sized to hold it, skipping
/// every whole aligned [`HOLE_BLOCK`] of zeros, so it stays a hole. The
/// runs between are written with one call each; for data without zero
/// blocks that is one write, and the test stops at a block's first nonzero
/// 64 bytes.
fn write_sparse(out: &File, offset: u64, data: &[u8]) -> std::io::Result<()> {
    let mut start = 0; // of the run not yet written
    let mut pos = (HOLE_BLOCK - (offset % HOLE_BLOCK as u64) as usize) % HOLE_BLOCK;
    while pos + HOLE_BLOCK <= data.len() {
        let block = &data[pos..pos + HOLE_BLOCK];
        if is_zero(block) {
            out.write_all_at(&data[start..pos], offset + start as u64)?;
            start = pos + HOLE_BLOCK;
        }
        pos += HOLE_BLOCK;
    }
    out.write_all_at(&data[start..], offset + start as u64)
}

/// True when every byte of `block` is 0. Branch-free within each 64-byte
/// piece (so it vectorises), with an early exit between pieces.
fn is_zero(block: &[u8]) -> bool {
    let mut pieces = block.chunks_exact(64);
    pieces.all(|p| p.iter().fold(0u8, |acc, &b| acc | b) == 0)
        && pieces.remainder().iter().all(|&b| b == 0)
}

/// Reads a file's chunks in order (fetching and decoding a window of them
/// in parallel, each window located first when `locs` is lazy), passes
/// each to `sink`, and checks the SHA-256 of the whole against the one
/// recorded. The one read path for restore, cat and verify.
pub(crate) fn stream_file(
    storage: &dyn Storage,
    crypt: &Crypt,
    refs: &References,
    f: &FileEntry,
    locs: &Locations,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut sha = Sha256::new();
    // The next window is fetched and decoded by the thread pool while this
    // one is hashed and written, so the sequential SHA-256 and writes
    // overlap with decompression. A rayon scope, not a plain thread: this
    // runs on pool workers (restore is parallel over files), and a worker
    // blocked on a plain join while its prefetch waits for the pool would
    // deadlock; one waiting at the end of a rayon scope runs pool work.
    let read = |i: usize| read_chunks(storage, crypt, refs, &locs.window(&f.chunks, i)?);
    let windows = f.chunks.len().div_ceil(WINDOW);
    let mut current = (windows > 0).then(|| read(0)).transpose()?;
    let mut following = 1;
    while let Some(chunks) = current.take() {
        let mut next = None;
        rayon::in_place_scope(|scope| -> Result<()> {
            if following < windows {
                scope.spawn(|_| next = Some(read(following)));
            }
            for c in &chunks {
                sha.update(c);
                sink(c)?;
            }
            Ok(())
        })?;
        current = next.transpose()?;
        following += 1;
    }
    let actual: [u8; 32] = sha.finalize().into();
    if actual != f.sha256 {
        return Err(Error::DigestMismatch {
            path: f.path.clone(),
            expected: hex::encode(f.sha256),
            actual: hex::encode(actual),
        });
    }
    Ok(())
}

/// Sets the mode and mtime of the directory `path`; an mtime of 0 is one
/// not recorded (a directory above a source, see `ingest::sources`), and
/// is left as the restore made it.
fn set_mode_and_mtime(path: &Path, mode: u32, mtime_ns: i64) -> Result<()> {
    let dir = File::open(path).at(path)?;
    if mtime_ns == 0 {
        return dir
            .set_permissions(fs::Permissions::from_mode(mode))
            .at(path);
    }
    set_open_mode_and_mtime(&dir, path, mode, mtime_ns)
}

/// Sets the mode and mtime of an open file (`path` names it in errors):
/// through its descriptor, so no path is resolved again.
fn set_open_mode_and_mtime(file: &File, path: &Path, mode: u32, mtime_ns: i64) -> Result<()> {
    file.set_permissions(fs::Permissions::from_mode(mode))
        .at(path)?;
    set_open_mtime(file, path, mtime_ns)
}

/// Sets the mtime of an open file (`path` names it in errors).
fn set_open_mtime(file: &File, path: &Path, mtime_ns: i64) -> Result<()> {
    let mtime = if mtime_ns >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(mtime_ns as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_nanos(mtime_ns.unsigned_abs())
    };
    file.set_modified(mtime).at(path)
}

/// Sets the mtime of the symlink `path` itself (not of what it points to);
/// its atime is left as it is.
fn set_symlink_mtime(path: &Path, mtime_ns: i64) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c_path =
        std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::UnsafePath {
            path: path.display().to_string(),
        })?;
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: mtime_ns.div_euclid(1_000_000_000) as libc::time_t,
            tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as libc::c_long,
        },
    ];
    // SAFETY: `c_path` is a NUL-terminated string and `times` holds the two
    // timespecs utimensat reads; neither is kept after the call.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::io(path, std::io::Error::last_os_error()))
    }
}

/// Writes one file of a snapshot to `out` (for `cairn cat`), verifying its
/// SHA-256 at the end.
pub fn cat(repo: &Repository, snap: &SnapshotInfo, path: &str, out: &mut dyn Write) -> Result<()> {
    let _lock = repo.read_lock("cat")?;
    let files = repo.catalog().files(snap)?;
    let path = &layout::resolve(&snap.sources, &files, path);
    let file =
        files
            .into_iter()
            .find(|f| f.path == *path)
            .ok_or_else(|| Error::PathNotInSnapshot {
                path: path.to_string(),
                snapshot: snap.id.short(),
            })?;
    let kind = match file.kind {
        EntryKind::File => None,
        EntryKind::Dir => Some("directory"),
        EntryKind::Symlink => Some("symlink"),
        EntryKind::Fifo => Some("FIFO"),
        EntryKind::CharDevice | EntryKind::BlockDevice => Some("device node"),
    };
    if let Some(kind) = kind {
        return Err(Error::NotAFile {
            path: path.to_string(),
            snapshot: snap.id.short(),
            kind,
        });
    }
    let locs =
        Locations::of(repo.catalog(), &file, Bounds::DEFAULT).map_err(|e| e.in_file(&file.path))?;
    stream_file(
        repo.storage(),
        repo.crypt(),
        &repo.references(),
        &file,
        &locs,
        |chunk| out.write_all(chunk).at("<stdout>"),
    )
    .map_err(|e| e.in_file(&file.path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChunkerParams, NoProgress, RepoConfig, SnapshotOptions};

    /// A bare entry (mode 644, no content), for tests of placement.
    pub(super) fn entry(path: &str, kind: EntryKind) -> FileEntry {
        FileEntry {
            path: path.into(),
            kind,
            mode: 0o644,
            mtime_ns: 0,
            size: 0,
            sha256: [0; 32],
            link_target: String::new(),
            chunks: vec![],
            ..Default::default()
        }
    }

    /// Regression: a manifest holding a symlink and then a file beneath it
    /// (`x/link -> /elsewhere`, `x/link/evil`) was not refused as unsafe;
    /// restore failed on a missing directory instead, and with
    /// `--ignore-errors` went on to exit 1 as if a file were merely damaged.
    #[test]
    fn entries_beneath_a_non_directory_are_unsafe() {
        let ok = [
            entry("x", EntryKind::Dir),
            entry("x/link", EntryKind::Symlink),
            entry("x/linked", EntryKind::File),
            entry("x/y", EntryKind::Dir),
            entry("x/y/f", EntryKind::File),
        ];
        check_tree(&ok).unwrap();
        for (parent, kind) in [("x/link", EntryKind::Symlink), ("x/f", EntryKind::File)] {
            let bad = [
                entry("x", EntryKind::Dir),
                entry(parent, kind),
                entry(&format!("{parent}/evil"), EntryKind::File),
            ];
            let err = check_tree(&bad).unwrap_err();
            assert!(
                matches!(&err, Error::UnsafePath { path } if *path == format!("{parent}/evil")),
                "{err}"
            );
        }
        let deep = [
            entry("l", EntryKind::Symlink),
            entry("l/a/b/c", EntryKind::Dir),
        ];
        assert!(check_tree(&deep).is_err());
    }

    #[test]
    fn zero_test_sees_every_byte() {
        let mut block = vec![0u8; HOLE_BLOCK];
        assert!(is_zero(&block) && is_zero(&block[..100]) && is_zero(&[]));
        for at in [0, 1, 63, 64, 2049, HOLE_BLOCK - 1] {
            block[at] = 1;
            assert!(!is_zero(&block), "{at}");
            block[at] = 0;
        }
        assert!(!is_zero(&[0, 0, 0, 7]));
    }

    /// Whole aligned blocks of zeros become holes wherever a chunk starts
    /// in the file; everything else is written, and the bytes read back
    /// are the bytes given.
    #[test]
    fn zero_blocks_are_left_as_holes() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let mut data = crate::test_support::random_bytes(4, 1 << 20);
        data[HOLE_BLOCK..(768 << 10)].fill(0);
        data[(800 << 10) + 10..(800 << 10) + 9000].fill(0);
        data[(1 << 20) - 100..].fill(0);
        let probe = dir.path().join("probe");
        File::create(&probe).unwrap().set_len(1 << 20).unwrap();
        let holes = fs::metadata(&probe).unwrap().blocks() == 0;
        for piece in [1 << 20, 65_537, HOLE_BLOCK, 1000] {
            let path = dir.path().join(format!("f{piece}"));
            let file = File::create(&path).unwrap();
            file.set_len(data.len() as u64).unwrap();
            let mut offset = 0;
            for c in data.chunks(piece) {
                write_sparse(&file, offset, c).unwrap();
                offset += c.len() as u64;
            }
            drop(file);
            assert!(fs::read(&path).unwrap() == data, "{piece}");
            let allocated = fs::metadata(&path).unwrap().blocks() * 512;
            if holes && piece >= HOLE_BLOCK {
                // 260 KiB of data; most of the 764 KiB of zeros (all but
                // the blocks a piece boundary cuts) are not allocated.
                assert!(allocated < 512 << 10, "{piece}: {allocated}");
            }
        }
    }

    /// Errors about a chunk gain the file they were met in; errors that
    /// already name a path do not, and damage stays damage.
    #[test]
    fn chunk_errors_name_the_file() {
        let chunk = crate::format::id::ChunkId::of(b"c");
        let e = Error::ChunkMissing { chunk }.in_file("m/w.bin");
        assert!(e.is_damage());
        let text = e.to_string();
        assert!(
            text.contains("m/w.bin") && text.contains(&chunk.to_hex()),
            "{text}"
        );
        let unsafe_path = Error::UnsafePath { path: "p".into() }.in_file("q");
        assert_eq!(unsafe_path.to_string(), "unsafe path in manifest: p");
    }

    /// Regression guard for #12's bounded locating: with batches of 2 files
    /// / 3 chunks and every file above 3 chunks located a window at a time,
    /// a tree of many files (empty ones, nested ones) and one file of
    /// several windows restores byte for byte, and verify finds it whole.
    #[test]
    fn tiny_batches_restore_every_byte() {
        let t = crate::test_support::TestRepo::new();
        let src = t.dir.path().join("src");
        fs::create_dir_all(src.join("d/e")).unwrap();
        let mut want = Vec::new();
        for i in 0..40u64 {
            let rel = match i % 3 {
                0 => format!("f{i}"),
                1 => format!("d/f{i}"),
                _ => format!("d/e/f{i}"),
            };
            want.push((
                rel,
                crate::test_support::random_bytes(i, (i as usize % 7) * 3000),
            ));
        }
        want.push(("big".into(), crate::test_support::random_bytes(77, 1 << 20)));
        for (rel, data) in &want {
            fs::write(src.join(rel), data).unwrap();
        }
        let opts = SnapshotOptions {
            label: crate::SnapshotLabel::new("config", "c"),
            ..Default::default()
        };
        t.repo
            .snapshot(std::slice::from_ref(&src), &opts, &NoProgress)
            .unwrap();
        let snap = t.repo.resolve("c").unwrap();
        let files = t.repo.catalog().files(&snap).unwrap();
        let big = files.iter().find(|f| f.path.ends_with("/big")).unwrap();
        assert!(big.chunks.len() > 2 * WINDOW, "{} chunks", big.chunks.len());
        let bounds = Bounds {
            files: 2,
            chunks: 3,
            file_chunks: 3,
        };
        let out = t.dir.path().join("out");
        let opts = RestoreOptions::default();
        let report = restore_bounded(&t.repo, &snap, &out, &opts, &NoProgress, bounds).unwrap();
        assert_eq!(report.files, want.len() as u64);
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        let root = out.join(crate::test_support::stored(&src, ""));
        for (rel, data) in &want {
            assert!(fs::read(root.join(rel)).unwrap() == *data, "{rel} differs");
        }
        let verified =
            crate::ops::check::verify::verify_bounded(&t.repo, &snap, &NoProgress, bounds);
        let verified = verified.unwrap();
        assert_eq!(verified.files, want.len() as u64);
        assert!(verified.failures.is_empty(), "{:?}", verified.failures);
    }

    /// A file located a window at a time that has lost a chunk past its
    /// first window fails as itself: restore's error names its path (and
    /// with ignore-errors only it fails), verify lists it alone.
    #[test]
    fn lazy_file_missing_a_chunk_fails_as_that_file() {
        let t = crate::test_support::TestRepo::new();
        let big_data = crate::test_support::random_bytes(7, 600_000);
        let small = ("small", crate::test_support::random_bytes(8, 5000));
        t.snap_files("config", "c", &[("big", big_data), small], &[]);
        let snap = t.repo.resolve("c").unwrap();
        let files = t.repo.catalog().files(&snap).unwrap();
        let big = files.iter().find(|f| f.path.ends_with("/big")).unwrap();
        assert!(big.chunks.len() > WINDOW + 1, "{} chunks", big.chunks.len());
        let lost = big.chunks[WINDOW + 1];
        let conn = rusqlite::Connection::open(t.repo.catalog().path()).unwrap();
        let n = conn
            .execute("DELETE FROM chunks WHERE chunk_id = ?1", [&lost.0[..]])
            .unwrap();
        assert_eq!(n, 1);
        drop(conn);
        let bounds = Bounds {
            file_chunks: WINDOW,
            ..Bounds::DEFAULT
        };
        let out = t.dir.path().join("out");
        let err = restore_bounded(
            &t.repo,
            &snap,
            &out,
            &RestoreOptions::default(),
            &NoProgress,
            bounds,
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::InFile { path, .. } if *path == big.path),
            "{err:?}"
        );
        let opts = RestoreOptions {
            ignore_errors: true,
            ..Default::default()
        };
        let out = t.dir.path().join("out2");
        let report = restore_bounded(&t.repo, &snap, &out, &opts, &NoProgress, bounds).unwrap();
        let failed: Vec<&str> = report.failed.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(failed, [big.path.as_str()]);
        let verified =
            crate::ops::check::verify::verify_bounded(&t.repo, &snap, &NoProgress, bounds).unwrap();
        let failed: Vec<&str> = verified.failures.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(failed, [big.path.as_str()]);
    }

    /// Guards the reader lock: a restore must not start while gc (an
    /// exclusive holder) may be deleting packs.
    #[test]
    fn restore_refuses_while_an_exclusive_lock_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(
            &dir.path().join("r"),
            RepoConfig::new(ChunkerParams::default(), 1).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join("f"), b"data").unwrap();
        let opts = SnapshotOptions {
            label: crate::SnapshotLabel::new("config", "c"),
            ..Default::default()
        };
        repo.snapshot(&[dir.path().join("f")], &opts, &NoProgress)
            .unwrap();
        let snap = repo.resolve("c").unwrap();
        let gc = crate::repo::lock::Lock::exclusive(repo.shared_storage(), "gc").unwrap();
        let err = restore(
            &repo,
            &snap,
            &dir.path().join("out"),
            &RestoreOptions::default(),
            &NoProgress,
        );
        assert!(matches!(err, Err(Error::Locked { .. })), "{err:?}");
        assert!(!dir.path().join("out").exists(), "nothing written");
        drop(gc);
        restore(
            &repo,
            &snap,
            &dir.path().join("out"),
            &RestoreOptions::default(),
            &NoProgress,
        )
        .unwrap();
        let f = crate::test_support::stored(&dir.path().join("f"), "");
        assert_eq!(
            std::fs::read(dir.path().join("out").join(f)).unwrap(),
            b"data"
        );
    }
}
