//! Browsing snapshots without restoring them: the entries under a path
//! (`ls`), files matching a pattern across snapshots (`find`), and a
//! subtree as a tar stream (`dump`).
//!
//! All three read the catalog's file lists; `dump` then reads each file's
//! chunks in order through [`FileReader`], which checks the file's SHA-256
//! at its end, as restore does, so a damaged chunk fails the dump rather
//! than end up in the archive silently.

mod open;

use std::io::{self, Read, Write};

use globset::{Glob, GlobMatcher};
use sha2::{Digest, Sha256};

use crate::blob::{read_chunks, References};
use crate::catalog::{ChunkLocation, SnapshotFilter, SnapshotInfo};
use crate::error::{Error, Result};
use crate::format::manifest::{EntryKind, FileEntry};
use crate::format::name;
use crate::format::seal::Crypt;
use crate::ops::restore::layout;
use crate::repo::repository::Repository;
use crate::storage::Storage;

pub use open::{ChunkCache, OpenFile};

/// Chunks fetched and decoded at once by a [`FileReader`].
const WINDOW: usize = 32;

/// The entries of `snap` at or under `path` (`""` or `/` for all), in path
/// order (as the catalog gives them). A path that names nothing in the snapshot is
/// [`Error::PathNotInSnapshot`].
pub fn ls(repo: &Repository, snap: &SnapshotInfo, path: &str) -> Result<Vec<FileEntry>> {
    let mut files = repo.catalog().files(snap)?;
    let path = layout::resolve(&snap.sources, &files, path);
    if !path.is_empty() {
        files.retain(|f| layout::at_or_under(&f.path, &path));
        if files.is_empty() {
            return Err(Error::PathNotInSnapshot {
                path: path.to_string(),
                snapshot: snap.id.short(),
            });
        }
    }
    Ok(files)
}

/// The snapshots (matching `filter`, oldest first) holding entries that
/// match `pattern`, each with those entries.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Found {
    pub snapshot: SnapshotInfo,
    pub entries: Vec<FileEntry>,
}

/// A glob (`*`, `?`, `[…]`, `**`) matched against an entry's file name, or
/// against its whole path when the pattern holds a `/` (as `restic find`).
struct Pattern {
    matcher: GlobMatcher,
    whole_path: bool,
}

impl Pattern {
    fn new(pattern: &str) -> Result<Self> {
        let glob = Glob::new(pattern.trim_start_matches('/'))
            .map_err(|e| Error::InvalidArgument(format!("invalid pattern `{pattern}`: {e}")))?;
        Ok(Self {
            matcher: glob.compile_matcher(),
            whole_path: pattern.contains('/'),
        })
    }

    fn matches(&self, path: &str) -> bool {
        let subject = if self.whole_path {
            path
        } else {
            path.rsplit('/').next().unwrap_or(path)
        };
        self.matcher.is_match(subject)
    }
}

/// Finds the entries matching `pattern` in every snapshot `filter` selects.
pub fn find(repo: &Repository, pattern: &str, filter: &SnapshotFilter) -> Result<Vec<Found>> {
    let pattern = Pattern::new(pattern)?;
    let mut out = Vec::new();
    for snapshot in repo.snapshots(filter)? {
        let mut entries = repo.catalog().files(&snapshot)?;
        entries.retain(|f| pattern.matches(&f.path));
        if !entries.is_empty() {
            out.push(Found { snapshot, entries });
        }
    }
    Ok(out)
}

/// What [`dump`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DumpReport {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// FIFOs and device nodes.
    pub specials: u64,
}

/// Writes the entries at or under `path` of `snap` to `out` as a tar
/// stream (POSIX ustar with GNU long names), paths relative to the
/// snapshot root, with modes and modification times. Every file is checked
/// against its SHA-256 as it is written; a mismatch stops the dump with an
/// error naming the file (the archive is then incomplete).
pub fn dump(
    repo: &Repository,
    snap: &SnapshotInfo,
    path: &str,
    out: &mut dyn Write,
) -> Result<DumpReport> {
    let _lock = repo.read_lock("dump")?;
    let entries = ls(repo, snap, path)?;
    let mut tar = tar::Builder::new(out);
    let refs = repo.references();
    tar.mode(tar::HeaderMode::Complete);
    let mut report = DumpReport::default();
    for e in &entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(e.mode);
        header.set_mtime(u64::try_from(e.mtime_ns.div_euclid(1_000_000_000)).unwrap_or(0));
        let (uid, gid) = e.owner.unwrap_or((0, 0));
        header.set_uid(uid.into());
        header.set_gid(gid.into());
        let written = match e.kind {
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                report.dirs += 1;
                tar.append_data(
                    &mut header,
                    name::to_path(&format!("{}/", e.path)),
                    io::empty(),
                )
            }
            EntryKind::Symlink => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                report.symlinks += 1;
                tar.append_link(
                    &mut header,
                    name::to_path(&e.path),
                    name::to_path(&e.link_target),
                )
            }
            EntryKind::File => {
                let locs = repo
                    .locate_all(&e.chunks)
                    .map_err(|err| err.in_file(&e.path))?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(e.size);
                report.files += 1;
                report.bytes += e.size;
                let reader = FileReader::new(repo.storage(), repo.crypt(), &refs, e, locs);
                tar.append_data(&mut header, name::to_path(&e.path), reader)
            }
            special => {
                header.set_entry_type(match special {
                    EntryKind::Fifo => tar::EntryType::Fifo,
                    EntryKind::CharDevice => tar::EntryType::Char,
                    _ => tar::EntryType::Block,
                });
                header.set_size(0);
                // Linux's encoding of a dev_t (glibc `major`/`minor`).
                let major = ((e.rdev >> 32) & 0xffff_f000) | ((e.rdev >> 8) & 0xfff);
                let minor = ((e.rdev >> 12) & 0xffff_ff00) | (e.rdev & 0xff);
                header
                    .set_device_major(major as u32)
                    .and_then(|()| header.set_device_minor(minor as u32))
                    .map_err(|err| from_io(err, &e.path))?;
                report.specials += 1;
                tar.append_data(&mut header, &e.path, io::empty())
            }
        };
        written.map_err(|err| from_io(err, &e.path))?;
    }
    tar.into_inner().map_err(|err| from_io(err, "<tar end>"))?;
    Ok(report)
}

/// Our error back out of an `io::Error` that [`FileReader`] wrapped it in;
/// any other is a failed write of the stream.
fn from_io(err: io::Error, path: &str) -> Error {
    if err.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        let inner = err.into_inner().expect("checked above");
        return *inner.downcast::<Error>().expect("checked above");
    }
    Error::io(format!("<output, at {path}>"), err)
}

/// A file's content as a [`Read`]: its chunks fetched and decoded a window
/// at a time, hashed as they pass, and the SHA-256 compared with the
/// recorded one at the end (a mismatch is an error instead of end of file).
pub(crate) struct FileReader<'a> {
    storage: &'a dyn Storage,
    crypt: &'a Crypt,
    refs: &'a References<'a>,
    entry: &'a FileEntry,
    locs: Vec<ChunkLocation>,
    next: usize,
    buf: Vec<u8>,
    pos: usize,
    sha: Sha256,
    verified: bool,
}

impl<'a> FileReader<'a> {
    pub(crate) fn new(
        storage: &'a dyn Storage,
        crypt: &'a Crypt,
        refs: &'a References<'a>,
        entry: &'a FileEntry,
        locs: Vec<ChunkLocation>,
    ) -> Self {
        Self {
            storage,
            crypt,
            refs,
            entry,
            locs,
            next: 0,
            buf: Vec::new(),
            pos: 0,
            sha: Sha256::new(),
            verified: false,
        }
    }

    /// Loads the next window; false at the end of the file.
    fn fill(&mut self) -> Result<bool> {
        if self.next >= self.locs.len() {
            return Ok(false);
        }
        let end = (self.next + WINDOW).min(self.locs.len());
        let chunks = read_chunks(
            self.storage,
            self.crypt,
            self.refs,
            &self.locs[self.next..end],
        )
        .map_err(|e| e.in_file(&self.entry.path))?;
        self.next = end;
        self.buf.clear();
        self.pos = 0;
        for c in &chunks {
            self.sha.update(c);
            self.buf.extend_from_slice(c);
        }
        Ok(true)
    }

    fn verify(&mut self) -> Result<()> {
        let actual: [u8; 32] = std::mem::take(&mut self.sha).finalize().into();
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

impl Read for FileReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if !self.fill().map_err(io::Error::other)? {
                if !self.verified {
                    self.verified = true;
                    self.verify().map_err(io::Error::other)?;
                }
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_names_or_whole_paths() {
        let name = Pattern::new("*.json").unwrap();
        assert!(name.matches("data/state.json") && name.matches("x.json"));
        assert!(!name.matches("data/state.json.bak"));
        let path = Pattern::new("data/*.json").unwrap();
        assert!(path.matches("data/state.json") && !path.matches("other/state.json"));
        let deep = Pattern::new("**/trades/*.csv").unwrap();
        assert!(deep.matches("svc/data/trades/t1.csv"));
        assert!(Pattern::new("[").is_err());
    }
}
