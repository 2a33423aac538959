//! cairn: a content-addressed, deduplicating backup store for model files,
//! portfolio states and configs.
//!
//! Files are cut into content-defined chunks (FastCDC), each stored once by
//! its BLAKE3 id, compressed (zstd; byte planes for float tensors), in
//! immutable pack files. A SQLite catalog, a cache of the packs and
//! manifests, maps typed snapshots (kind, name, version, tags) to the chunk
//! lists of their files, so every snapshot is incremental and any snapshot
//! restores bit-identically.
//!
//! [`Repository`] is what a user holds; every operation is a method of it:
//!
//! ```
//! use cairn::{ChunkerParams, NoProgress, RepoConfig, Repository, RestoreOptions, SnapshotLabel, SnapshotOptions};
//! # fn main() -> cairn::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("weights.bin"), vec![7u8; 100_000]).unwrap();
//!
//! let repo = Repository::init(&dir.path().join("repo"), RepoConfig::new(ChunkerParams::default(), 3)?)?;
//! let opts = SnapshotOptions { label: SnapshotLabel::new("model", "demo"), ..Default::default() };
//! let report = repo.snapshot(&[dir.path().join("weights.bin")], &opts, &NoProgress)?;
//! assert_eq!(report.logical_bytes, 100_000);
//!
//! let snap = repo.resolve("demo")?;
//! repo.restore(&snap, &dir.path().join("out"), &RestoreOptions::default(), &NoProgress)?;
//! // A source is stored under its path as given: an absolute one whole, without its `/`.
//! let restored = dir.path().join("out").join(dir.path().strip_prefix("/").unwrap());
//! assert_eq!(std::fs::read(restored.join("weights.bin")).unwrap(), vec![7u8; 100_000]);
//! assert!(repo.check(cairn::CheckOptions::READ_ALL, &NoProgress)?.is_clean());
//! # Ok(()) }
//! ```
//!
//! The layers, each using only those before it (docs/ARCHITECTURE.md):
//! [`storage`] (the storage contract every byte goes through, and its
//! backends) → [`format`] (what is stored, byte for byte) → [`blob`] (chunk
//! bytes to stored bytes and back: the one place for codecs and, next,
//! encryption) → `catalog` (the only SQL; a rebuildable cache that lives
//! where a [`CatalogLocation`] says) → [`ingest`] (walk, tensor layouts,
//! chunker, read) → `policy` (retention) → `repo` (this facade, locks,
//! selectors) → `ops` (one module per operation; `copy` replicates
//! snapshots between any two repositories).

// Public: the storage contract (a user may bring a backend), the stored
// formats (the fuzz targets parse them) and the way in (the chunker and
// tensor layouts, for benchmarks). The rest is reached through the facade.
pub mod blob;
pub(crate) mod catalog;
pub(crate) mod error;
pub mod format;
pub(crate) mod host;
pub mod ingest;
pub(crate) mod ops;
pub(crate) mod policy;
pub(crate) mod progress;
pub(crate) mod repo;
pub mod storage;

#[cfg(test)]
mod test_support;

pub use catalog::location::CatalogLocation;
pub use catalog::{ChunkLocation, SnapshotFilter, SnapshotInfo};
pub use error::{Error, Result};
pub use format::config::RepoConfig;
pub use format::id::{ChunkId, PackId, SnapshotId};
pub use format::keyfile::KdfParams;
pub use format::label::SnapshotLabel;
pub use format::manifest::{EntryKind, FileEntry, RunStats};
pub use ingest::chunker::ChunkerParams;
pub use ops::bench;
pub use ops::bench::history::{HistoryReport, SnapshotGrowth};
pub use ops::browse::{ChunkCache, DumpReport, Found, OpenFile};
pub use ops::check::{
    Affected, CheckOptions, CheckReport, Finding, Problem, VerifyFailure, VerifyReport,
};
pub use ops::copy::{
    compatibility, Compatibility, CopiedSnapshot, CopyMode, CopyReport, CopyRequest, CopyState,
};
pub use ops::diff::{Change, Diff};
pub use ops::forget::{
    ForgetPlan, ForgetReport, ForgetRequest, HistoryPlan, Intent, PolicySource, Verdict,
};
pub use ops::gc::{GcPlan, GcReport, PackUsage, Unverified, DEFAULT_MAX_UNUSED};
pub use ops::rebuild::{RebuildReport, StatCache, Unreadable};
pub use ops::repair::RepairReport;
pub use ops::restore::{RestoreFailure, RestoreOptions, RestoreReport};
pub use ops::snapshot::{Changed, SkipReason, Skipped, SnapshotOptions, SnapshotReport};
pub use ops::stats::{HistoryLatest, Stats};
pub use ops::tag::{LabelChange, Relabeled};
pub use ops::upgrade::UpgradeReport;
pub use policy::retention::{parse_duration, KeepWithin, RetentionPolicy};
pub use policy::stored::StoredPolicies;
pub use progress::{NoProgress, Progress};
pub use repo::config::ConfigRepair;
pub use repo::keys::{
    password_from_file, password_from_first_line, set_new_key_kdf, set_password_source,
    with_password, KeyInfo, Password, PasswordPurpose,
};
pub use repo::location::{cache_dir, repair_config_at, RepoLocation};
pub use repo::lock::{set_lease, set_lock_wait, Lease, LockInfo, Unlocked};
pub use repo::repository::{repair_config, OpenMode, RepoStorage, Repository};
