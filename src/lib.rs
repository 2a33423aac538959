//! cairn: a content-addressed, deduplicating backup store for model files,
//! portfolio states and configs.
//!
//! Files are cut into content-defined chunks (FastCDC), each stored once by
//! its BLAKE3 id, zstd-compressed, in immutable pack files. A SQLite catalog
//! maps typed snapshots (kind, name, version, tags) to the chunk lists of
//! their files, so every snapshot is incremental and any snapshot restores
//! bit-identically.
//!
//! ```
//! use cairn::{Repository, RepoConfig, ChunkerParams, SnapshotOptions, RestoreOptions, NoProgress};
//! # fn main() -> cairn::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("weights.bin"), vec![7u8; 100_000]).unwrap();
//!
//! let repo = Repository::init(&dir.path().join("repo"), RepoConfig::new(ChunkerParams::default(), 3)?)?;
//! let opts = SnapshotOptions { kind: "model".into(), name: "demo".into(), ..Default::default() };
//! let report = repo.snapshot(&[dir.path().join("weights.bin")], &opts, &NoProgress)?;
//! assert_eq!(report.logical_bytes, 100_000);
//!
//! let snap = repo.resolve("demo")?;
//! cairn::restore::restore(&repo, &snap, &dir.path().join("out"), &RestoreOptions::default(), &NoProgress)?;
//! assert_eq!(std::fs::read(dir.path().join("out/weights.bin")).unwrap(), vec![7u8; 100_000]);
//! # Ok(()) }
//! ```
//!
//! [`bench`] runs a snapshot's read → chunk → hash → encode path in memory to
//! compare chunk sizes and levels on successive versions of a file tree.
//!
//! The path of a byte through a snapshot, by module: [`walk`] → [`ingest`]
//! (read, [`chunker`], SHA-256) → [`snapshot`] (dedup) with [`blob`]
//! (BLAKE3 id, sealing by [`codec`]) → [`pack`] → [`catalog`] +
//! [`manifest`]; and back: [`selector`] → [`restore`] → [`blob`] (read,
//! open, verify). [`blob`] is the one place chunk bytes become stored bytes
//! and back: every chunk reader (restore, cat, verify, check, repair, gc)
//! and writer (snapshot, bench) goes through it, so encryption goes there.
//! Every byte a repository keeps goes through [`storage::Storage`] (a
//! directory: [`storage::LocalStorage`]; tests and scratch use:
//! [`storage::MemoryStorage`]); the catalog, a rebuildable cache, lives
//! where a [`CatalogLocation`] says.
//!
//! Giving space back: [`retention`] decides which snapshots a policy keeps
//! (policies may be stored, [`policy`]), [`forget`] removes the others, and
//! [`gc`] deletes and repacks the packs they leave unused.

pub mod bench;
pub mod blob;
pub mod byteplane;
pub mod catalog;
pub mod check;
pub mod chunker;
pub mod codec;
pub mod config;
pub mod diff;
pub mod error;
pub mod forget;
pub mod gc;
pub mod id;
pub mod ingest;
pub mod lock;
pub mod manifest;
pub mod pack;
pub mod pagecache;
pub mod policy;
pub mod progress;
pub mod rebuild;
pub mod repair;
pub mod repository;
pub mod restore;
pub mod retention;
pub mod selector;
pub mod shape;
pub mod snapshot;
pub mod stats;
pub mod storage;
pub mod tensor;
pub mod walk;

#[cfg(test)]
mod test_support;

pub use catalog::location::CatalogLocation;
pub use catalog::{SnapshotFilter, SnapshotInfo};
pub use chunker::ChunkerParams;
pub use config::RepoConfig;
pub use error::{Error, Result};
pub use forget::{ForgetPlan, ForgetReport, ForgetRequest};
pub use gc::{GcPlan, GcReport};
pub use id::{ChunkId, PackId, SnapshotId};
pub use policy::StoredPolicies;
pub use progress::{NoProgress, Progress};
pub use repository::{OpenMode, RepoStorage, Repository};
pub use restore::{RestoreOptions, RestoreReport};
pub use retention::RetentionPolicy;
pub use snapshot::{Changed, SkipReason, Skipped, SnapshotOptions, SnapshotReport};
