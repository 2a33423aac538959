//! `verify`: every file of one snapshot rebuilt in memory, through the same
//! reader a restore uses, and compared with its recorded SHA-256.

use rayon::prelude::*;
use serde::Serialize;

use crate::catalog::SnapshotInfo;
use crate::error::Result;
use crate::format::manifest::EntryKind;
use crate::ops::restore::locate::{Bounds, Located};
use crate::ops::restore::stream_file;
use crate::progress::Progress;
use crate::repo::repository::Repository;

/// A file of a verified snapshot that does not reconstruct.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyFailure {
    pub path: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub files: u64,
    pub bytes: u64,
    pub failures: Vec<VerifyFailure>,
}

/// Reconstructs every file of `snap` in memory (nothing is written) and
/// compares it with its recorded SHA-256. The failures come sorted by path
/// (files are read in parallel, in no fixed order). A file the catalog
/// cannot place is a failure of that file, and so is any catalog error
/// while a large file's windows are located as it is read; a catalog that
/// cannot be read when a batch of files is located fails the whole verify.
pub fn verify(
    repo: &Repository,
    snap: &SnapshotInfo,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    verify_bounded(repo, snap, progress, Bounds::DEFAULT)
}

/// [`verify`], locating chunks in batches of `bounds`.
pub(crate) fn verify_bounded(
    repo: &Repository,
    snap: &SnapshotInfo,
    progress: &dyn Progress,
    bounds: Bounds,
) -> Result<VerifyReport> {
    let _lock = repo.read_lock("verify")?;
    let files: Vec<_> = repo
        .catalog()
        .files(snap)?
        .into_iter()
        .filter(|f| f.kind == EntryKind::File)
        .collect();
    progress.start("verify", files.iter().map(|f| f.size).sum());
    let storage = repo.storage();
    let refs = repo.references();
    // Only the failures are collected: one slot per file would be O(files).
    let mut failures: Vec<VerifyFailure> = Located::new(repo.catalog(), files.iter(), bounds)
        .par_bridge()
        .filter_map(|item| {
            let (f, locs) = match item {
                Ok(item) => item,
                Err(e) => return Some(Err(e)),
            };
            let result = locs.and_then(|locs| {
                stream_file(storage, repo.crypt(), &refs, f, &locs, |c| {
                    crate::progress::check_cancelled(progress)?;
                    progress.advance(c.len() as u64);
                    Ok(())
                })
            });
            result.err().map(|e| {
                Ok(VerifyFailure {
                    path: f.path.clone(),
                    error: e.to_string(),
                })
            })
        })
        .collect::<Result<_>>()?;
    // A cancelled read is not a failure of the file it was reading.
    crate::progress::check_cancelled(progress)?;
    progress.finish();
    failures.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(VerifyReport {
        files: files.len() as u64,
        bytes: files.iter().map(|f| f.size).sum(),
        failures,
    })
}
