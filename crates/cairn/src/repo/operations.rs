//! Every operation a user of the library runs, as a method of the facade:
//! [`Repository`] for a repository with its catalog, [`RepoStorage`] for the
//! two that must work without one (rebuilding the catalog, clearing locks).
//! Each method is a thin door into its module under `ops/`, where the
//! operation and its invariants are documented.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::catalog::{SnapshotFilter, SnapshotInfo};
use crate::error::Error;
use crate::error::Result;
use crate::format::id::SnapshotId;
use crate::format::manifest::FileEntry;
use crate::ops::bench::history::{self, HistoryReport};
use crate::ops::browse::{self, DumpReport, Found, OpenFile};
use crate::ops::check::{self, CheckOptions, CheckReport, VerifyReport};
use crate::ops::copy::{self, CopyReport, CopyRequest};
use crate::ops::diff::{self, Diff};
use crate::ops::forget::{self, ForgetPlan, ForgetReport, ForgetRequest};
use crate::ops::gc::{self, GcPlan, GcReport};
use crate::ops::rebuild::{self, catch_up, RebuildReport};
use crate::ops::repair::{self, RepairReport};
use crate::ops::restore::{self, RestoreOptions, RestoreReport};
use crate::ops::snapshot::{self, SnapshotOptions, SnapshotReport};
use crate::ops::stats::{self, Stats};
use crate::ops::tag::{self, LabelChange, Relabeled};
use crate::ops::upgrade::{self, UpgradeReport};
use crate::policy::retention::RetentionPolicy;
use crate::policy::stored::{self, StoredPolicies};
use crate::progress::Progress;
use crate::repo::keys::KeyInfo;
use crate::repo::lock;
use crate::repo::repository::{OpenMode, RepoStorage, Repository};

impl Repository {
    /// Takes a snapshot (see [`snapshot::create`]; the way in).
    pub fn snapshot(
        &self,
        sources: &[PathBuf],
        opts: &SnapshotOptions,
        progress: &dyn Progress,
    ) -> Result<SnapshotReport> {
        let report = snapshot::create(self, sources, opts, progress)?;
        self.after_snapshot(opts)?;
        Ok(report)
    }

    /// What follows a snapshot that may have filled the disk: the space
    /// reserve put back where there is room; nothing after a dry run,
    /// which writes nothing.
    fn after_snapshot(&self, opts: &SnapshotOptions) -> Result<()> {
        match opts.dry_run {
            true => Ok(()),
            false => self.storage().refill_reserve(),
        }
    }

    /// Takes a snapshot of one stream stored as file `name` (see
    /// [`snapshot::create_from_reader`]; `snapshot --stdin`).
    pub fn snapshot_stream(
        &self,
        name: &str,
        input: Box<dyn std::io::Read + Send>,
        opts: &SnapshotOptions,
        progress: &dyn Progress,
    ) -> Result<SnapshotReport> {
        let report = snapshot::create_from_reader(self, name, input, opts, progress)?;
        self.after_snapshot(opts)?;
        Ok(report)
    }

    /// The file entries of a snapshot, sorted by path.
    pub fn files(&self, snap: &SnapshotInfo) -> Result<Vec<FileEntry>> {
        self.catalog().files(snap)
    }

    /// Restores `snap` under `target` (see [`RestoreOptions`]).
    pub fn restore(
        &self,
        snap: &SnapshotInfo,
        target: &Path,
        opts: &RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<RestoreReport> {
        restore::restore(self, snap, target, opts, progress)
    }

    /// Writes one file of `snap` to `out`, verified against its SHA-256.
    pub fn cat(&self, snap: &SnapshotInfo, path: &str, out: &mut dyn Write) -> Result<()> {
        restore::cat(self, snap, path, out)
    }

    /// Edits the tags, version or description of the snapshots `selectors`
    /// name (see [`tag::tag`]; each gets a new id).
    pub fn tag(&self, selectors: &[String], change: &LabelChange) -> Result<Vec<Relabeled>> {
        tag::tag(self, selectors, change)
    }

    /// The entries of `snap` at or under `path` (see [`browse::ls`]).
    pub fn ls(&self, snap: &SnapshotInfo, path: &str) -> Result<Vec<FileEntry>> {
        browse::ls(self, snap, path)
    }

    /// Entries matching a glob in every snapshot `filter` selects (see
    /// [`browse::find`]).
    pub fn find(&self, pattern: &str, filter: &SnapshotFilter) -> Result<Vec<Found>> {
        browse::find(self, pattern, filter)
    }

    /// Writes the subtree at `path` of `snap` to `out` as a tar stream (see
    /// [`browse::dump`]).
    pub fn dump(&self, snap: &SnapshotInfo, path: &str, out: &mut dyn Write) -> Result<DumpReport> {
        browse::dump(self, snap, path, out)
    }

    /// Opens a file entry of a snapshot (from [`Repository::ls`]) for reads
    /// at any offset (see [`OpenFile`]).
    pub fn open_file(&self, entry: FileEntry) -> Result<OpenFile> {
        OpenFile::new(self, entry)
    }

    /// What changed from snapshot `from` to snapshot `to`.
    pub fn diff(&self, from: &SnapshotInfo, to: &SnapshotInfo) -> Result<Diff> {
        Ok(diff::diff(&self.files(from)?, &self.files(to)?))
    }

    /// Copies the snapshots `req` selects from this repository into `to`,
    /// sending only the chunks `to` lacks (see [`copy::copy`]).
    pub fn copy_to(
        &self,
        to: &Repository,
        req: &CopyRequest,
        progress: &dyn Progress,
    ) -> Result<CopyReport> {
        copy::copy(self, to, req, progress)
    }

    /// Dedup and compression figures, latest snapshot per history.
    pub fn stats(&self, filter: &SnapshotFilter) -> Result<Stats> {
        stats::stats(self, filter)
    }

    /// What each snapshot read and added, from what it recorded.
    pub fn growth(&self) -> Result<HistoryReport> {
        history::report(self)
    }

    /// Checks catalog, packs and manifests; findings are data.
    pub fn check(&self, opts: CheckOptions, progress: &dyn Progress) -> Result<CheckReport> {
        check::check(self, opts, progress)
    }

    /// Rebuilds every file of `snap` in memory against its SHA-256.
    pub fn verify(&self, snap: &SnapshotInfo, progress: &dyn Progress) -> Result<VerifyReport> {
        check::verify(self, snap, progress)
    }

    /// Salvages what `check --read-data` finds damaged.
    pub fn repair(&self, progress: &dyn Progress) -> Result<RepairReport> {
        repair::repair(self, progress)
    }

    /// Judges the selected histories by retention rules; nothing changes
    /// until [`Repository::forget`] carries the plan out.
    pub fn forget_plan(&self, req: &ForgetRequest) -> Result<ForgetPlan> {
        forget::plan(self, req)
    }

    /// A plan removing exactly the snapshots `selectors` name.
    pub fn delete_plan(&self, selectors: &[String]) -> Result<ForgetPlan> {
        forget::plan_delete(self, selectors)
    }

    /// Removes the snapshots a forget or delete plan does not keep.
    pub fn forget(&self, plan: &ForgetPlan) -> Result<ForgetReport> {
        let report = forget::execute(self, plan)?;
        self.storage().refill_reserve()?;
        Ok(report)
    }

    /// Marks the live chunks and decides what to delete and repack
    /// (`max_unused`: repack packs with more than this share unused).
    pub fn gc_plan(&self, max_unused: f64) -> Result<GcPlan> {
        gc::plan(self, max_unused)
    }

    /// The gc plan of a prune: under the exclusive lock of its forget plan,
    /// so no snapshot starts in between, counting `forgotten` as gone.
    pub fn gc_plan_after(
        &self,
        forget: ForgetPlan,
        max_unused: f64,
        forgotten: &[SnapshotId],
    ) -> Result<GcPlan> {
        gc::plan_locked(self, forget.into_lock(), max_unused, forgotten)
    }

    /// Carries out a gc plan.
    pub fn gc(&self, plan: &GcPlan, progress: &dyn Progress) -> Result<GcReport> {
        let report = gc::execute(self, plan, progress)?;
        self.storage().refill_reserve()?;
        Ok(report)
    }

    /// The retention policies stored in the repository.
    pub fn policies(&self) -> Result<StoredPolicies> {
        StoredPolicies::load(self.storage())
    }

    /// Stores `policy` for `scope` (`KIND` or `KIND/NAME`).
    pub fn set_policy(&self, scope: &str, policy: RetentionPolicy) -> Result<StoredPolicies> {
        stored::set(self, scope, policy)
    }

    /// Removes the policy of `scope`, returning it.
    pub fn unset_policy(&self, scope: &str) -> Result<RetentionPolicy> {
        stored::unset(self, scope)
    }

    /// How readers of this repository find the references of delta
    /// chunks: its storage and catalog, with a cache of opened references.
    pub fn references(&self) -> crate::blob::References<'_> {
        crate::blob::References::new(self.storage(), self.catalog()).with_local(self.ref_cache())
    }
}

impl RepoStorage {
    /// The key files of an encrypted repository (`cairn key list`);
    /// [`Error::NotEncrypted`] for an unencrypted one.
    pub fn keys(&self) -> Result<Vec<KeyInfo>> {
        self.key_ring().list()
    }

    /// Adds a password: a new key file wrapping the same master key, the
    /// password from the source with [`crate::PasswordPurpose::NewKey`]. Returns
    /// its id. Takes the exclusive lock.
    pub fn add_key(&self) -> Result<String> {
        self.key_ring().add()
    }

    /// Removes key `id`; refused for the last key and for the key this
    /// repository was unlocked with. Takes the exclusive lock.
    pub fn remove_key(&self, id: &str) -> Result<()> {
        self.key_ring().remove(id)
    }

    /// Changes the password of the key this repository was unlocked with:
    /// the new key file is written before the old one is removed. Returns
    /// the new key's id. Takes the exclusive lock.
    pub fn change_password(&self) -> Result<String> {
        self.key_ring().passwd()
    }

    /// Opens the catalog. A cache that is missing or stale is rebuilt from
    /// storage first (under the exclusive lock, as `rebuild-catalog` does);
    /// a missing catalog at a fixed place is [`Error::CatalogMissing`].
    pub fn open_catalog(self) -> Result<Repository> {
        self.open_catalog_mode(OpenMode::ReadWrite)
    }

    /// [`RepoStorage::open_catalog`], read-only with [`OpenMode::ReadOnly`]
    /// (a missing or stale cache is still brought up to date, which writes).
    pub fn open_catalog_mode(self, mode: OpenMode) -> Result<Repository> {
        let file = self.catalog_file();
        let rebuild = if file.exists() {
            // Another client may have snapshotted, forgotten or collected
            // garbage since this cache was last opened.
            file.rebuilds_when_missing()
                && match catch_up::catch_up(self.storage(), self.crypt(), &file) {
                    Ok(done) => done.needs_rebuild,
                    // A rebuild could not reach the storage either.
                    Err(e) if e.is_storage_unavailable() => return Err(e),
                    Err(_) => true,
                }
        } else if file.rebuilds_when_missing() {
            true
        } else {
            return Err(Error::CatalogMissing {
                path: file.path().to_path_buf(),
            });
        };
        if rebuild {
            rebuild::rebuild_cache(&self)?;
        }
        self.with_catalog(&file, mode)
    }

    /// Whether this repository's catalog is there, opens, and passes
    /// SQLite's quick check: `rebuild-catalog` asks before replacing such
    /// a catalog. Opens it read-only; changes nothing.
    pub fn catalog_is_healthy(&self) -> bool {
        let file = self.catalog_file();
        file.exists()
            && file.open_read_only().is_ok_and(|c| {
                c.ensure_sound(crate::catalog::Integrity::Quick).is_ok()
                    && c.snapshots(&SnapshotFilter::default()).is_ok()
            })
    }

    /// Recreates the catalog from packs and manifests.
    pub fn rebuild_catalog(&self, progress: &dyn Progress) -> Result<RebuildReport> {
        rebuild::rebuild_catalog(self, progress)
    }

    /// Raises the repository version to the newest this build writes (see
    /// [`upgrade::upgrade`]); `dry_run` writes nothing.
    pub fn upgrade(&self, dry_run: bool) -> Result<UpgradeReport> {
        upgrade::upgrade(self, dry_run)
    }

    /// Removes stale locks (every lock with `all`) and the temp files of
    /// killed lock writes.
    pub fn unlock(&self, all: bool) -> Result<lock::Unlocked> {
        lock::unlock(self.storage(), all)
    }
}
