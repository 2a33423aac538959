//! Snapshot rows beyond adding and listing them: removing them (`forget`),
//! and what `repair` reads and marks.

use rusqlite::{params, OptionalExtension};

use super::Catalog;
use crate::error::Result;
use crate::format::id::SnapshotId;

/// The parts of a snapshot's manifest that [`super::SnapshotInfo`] does not
/// carry exactly; `repair` re-encodes a lost manifest from them.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotOrigin {
    pub host: String,
    pub time_ns: i64,
    pub parent: Option<SnapshotId>,
}

impl Catalog {
    /// Gives snapshot `old` the id `new` and the label `label` (kind and
    /// name unchanged: `tag` edits tags, version and description), keeping
    /// its entries and their stat cache. The manifest under `new` must
    /// already be stored.
    pub(crate) fn relabel_snapshot(
        &self,
        old: &SnapshotId,
        new: &SnapshotId,
        label: &crate::format::label::SnapshotLabel,
    ) -> Result<()> {
        let changed = self
            .lock()
            .execute(
                "UPDATE snapshots SET snapshot_id = ?1, version = ?2, description = ?3, tags = ?4
                 WHERE snapshot_id = ?5 AND kind = ?6 AND name = ?7",
                params![
                    &new.0[..],
                    label.version,
                    label.description,
                    serde_json::to_string(&label.tags).expect("strings serialise"),
                    &old.0[..],
                    label.kind,
                    label.name,
                ],
            )
            .map_err(self.err())?;
        if changed != 1 {
            return Err(crate::error::Error::InvalidArgument(format!(
                "snapshot {} of {} is not in the catalog",
                old.short(),
                label.history()
            )));
        }
        Ok(())
    }

    /// Deletes the snapshots' rows in one transaction, and the entry and
    /// dir rows no remaining snapshot lists. By snapshot id, so a row
    /// someone already removed is simply not there.
    pub(crate) fn remove_snapshots<'s>(
        &self,
        ids: impl IntoIterator<Item = &'s SnapshotId>,
    ) -> Result<()> {
        let conn = self.lock();
        let tx = conn.unchecked_transaction().map_err(self.err())?;
        {
            let mut gone = tx
                .prepare_cached("DELETE FROM snapshots WHERE snapshot_id = ?1 RETURNING dirs")
                .map_err(self.err())?;
            for id in ids {
                let dirs: Option<Vec<u8>> = gone
                    .query_row([&id.0[..]], |r| r.get(0))
                    .optional()
                    .map_err(self.err())?;
                if let Some(dirs) = dirs {
                    super::entries::release(&tx, &dirs).map_err(self.err())?;
                }
            }
        }
        tx.commit().map_err(self.err())
    }

    /// Host, time and parent of snapshot `id`; an error when the catalog
    /// does not list it.
    pub(crate) fn snapshot_origin(&self, id: &SnapshotId) -> Result<SnapshotOrigin> {
        let (host, time_ns, parent): (String, i64, Option<Vec<u8>>) = self
            .lock()
            .query_row(
                "SELECT host, time_ns, parent FROM snapshots WHERE snapshot_id = ?1",
                [&id.0[..]],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(self.err())?;
        Ok(SnapshotOrigin {
            host,
            time_ns,
            parent: parent.and_then(|p| SnapshotId::from_slice(&p)),
        })
    }

    /// The stat-cache inodes this catalog holds for `files`, the entries of
    /// snapshot `id` as its manifest lists them: `inodes[i]` for `files[i]`,
    /// 0 where this catalog's entry differs in what the stat cache relies
    /// on (kind, size, mtime, SHA-256, chunks), so a damaged row never
    /// vouches for a file. `None` when the snapshot is not listed. A
    /// rebuild keeps the stat cache with it.
    pub(crate) fn stat_inodes(
        &self,
        id: &SnapshotId,
        files: &[crate::format::manifest::FileEntry],
    ) -> Result<Option<Vec<u64>>> {
        let conn = self.lock();
        let rowid: Option<i64> = conn
            .query_row(
                "SELECT id FROM snapshots WHERE snapshot_id = ?1",
                [&id.0[..]],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())?;
        let Some(rowid) = rowid else {
            return Ok(None);
        };
        let tx = conn.unchecked_transaction().map_err(self.err())?;
        let known: std::collections::HashMap<String, (crate::format::manifest::FileEntry, u64)> =
            super::entries::load(&tx, rowid)
                .map_err(self.err())?
                .into_iter()
                .map(|(f, inode)| (f.path.clone(), (f, inode)))
                .collect();
        let inodes = files
            .iter()
            .map(|f| match known.get(&f.path) {
                Some((old, inode))
                    if (old.kind, old.size, old.mtime_ns, old.sha256)
                        == (f.kind, f.size, f.mtime_ns, f.sha256)
                        && old.chunks == f.chunks =>
                {
                    *inode
                }
                _ => 0,
            })
            .collect();
        Ok(Some(inodes))
    }

    /// Sets or clears snapshot `id`'s mark that chunks it needs are lost.
    pub(crate) fn set_snapshot_damaged(&self, id: &SnapshotId, damaged: bool) -> Result<()> {
        self.lock()
            .execute(
                "UPDATE snapshots SET damaged = ?1 WHERE snapshot_id = ?2",
                params![damaged as i64, &id.0[..]],
            )
            .map_err(self.err())?;
        Ok(())
    }
}

#[cfg(test)]
impl Catalog {
    /// Damage for tests: the catalog forgets every snapshot, dir and entry row,
    /// as a crash between a manifest's put and its catalog commit leaves it.
    pub(crate) fn drop_all_snapshot_rows(&self) -> Result<()> {
        self.lock()
            .execute_batch("DELETE FROM snapshots; DELETE FROM dirs; DELETE FROM entries;")
            .map_err(self.err())
    }

    /// Entry and dir rows that no snapshot reaches, or whose reference
    /// count is wrong (recounted from the snapshots' lists).
    pub(crate) fn orphaned_file_rows(&self) -> Result<u64> {
        super::entries::miscounted_rows(&self.lock()).map_err(self.err())
    }

    /// Renames every snapshot to `name` in a WAL frame that is never
    /// checkpointed while this catalog is open, as a killed writer leaves it.
    pub(crate) fn rename_snapshots_uncheckpointed(&self, name: &str) -> Result<()> {
        let conn = self.lock();
        conn.execute_batch("PRAGMA wal_autocheckpoint=0;")
            .map_err(self.err())?;
        conn.execute("UPDATE snapshots SET name = ?1", [name])
            .map_err(self.err())?;
        Ok(())
    }
}
