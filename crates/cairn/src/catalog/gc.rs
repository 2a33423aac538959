//! Mark sets and what gc asks of the catalog: how much of each pack the
//! marked chunks still use, and dropping the rows of packs it removes.
//!
//! A mark set is a SQLite temp table, so it spills to disk and scales with
//! the repository, and it exists only on the connection that built it: the
//! catalog's one shared connection.

use rusqlite::OptionalExtension;

use super::{Catalog, SnapshotInfo};
use crate::error::{Error, Result};
use crate::format::id::{ChunkId, PackId};

/// The temporary chunk-id sets, one per user so that `stats` can never
/// clobber the live set a `gc` plan relies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MarkSet {
    /// Scratch set of [`Catalog::referenced_totals`].
    Referenced,
    /// The chunks a gc plan keeps (table `temp.gc_live`).
    GcLive,
}

impl MarkSet {
    pub(crate) fn table(self) -> &'static str {
        match self {
            MarkSet::Referenced => "referenced",
            MarkSet::GcLive => "gc_live",
        }
    }
}

/// One pack row measured against a mark set ([`Catalog::pack_usage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackUsageRow {
    pub rowid: i64,
    pub pack: PackId,
    /// File size.
    pub size: u64,
    /// Chunks the catalog locates in this pack.
    pub chunks: u64,
    /// Of those, the chunks in the mark set.
    pub live_chunks: u64,
    /// Stored bytes of the live chunks.
    pub live_bytes: u64,
}

impl Catalog {
    /// Raw and stored bytes of the distinct chunks that `snaps` reference.
    pub fn referenced_totals(&self, snaps: &[SnapshotInfo]) -> Result<(u64, u64)> {
        self.mark_referenced(MarkSet::Referenced, snaps)?;
        let totals = self
            .lock()
            .query_row(
                "SELECT coalesce(sum(c.raw_len), 0), coalesce(sum(c.stored_len), 0)
                 FROM temp.referenced m JOIN chunks c ON c.chunk_id = m.chunk_id",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(self.err())?;
        self.clear_marks(MarkSet::Referenced)?;
        Ok(totals)
    }

    /// Fills the temporary table `set` with the distinct ids of the chunks
    /// that `snaps` reference, replacing what it held, and returns how many
    /// there are.
    pub(crate) fn mark_referenced(&self, set: MarkSet, snaps: &[SnapshotInfo]) -> Result<u64> {
        let table = set.table();
        {
            let conn = self.lock();
            let tx = conn.unchecked_transaction().map_err(self.err())?;
            tx.execute_batch(&format!(
                "CREATE TEMP TABLE IF NOT EXISTS {table} (chunk_id BLOB PRIMARY KEY) WITHOUT ROWID;
                 DELETE FROM temp.{table};"
            ))
            .map_err(self.err())?;
            {
                let rowids: Vec<i64> = snaps.iter().map(|s| s.rowid).collect();
                let (entries, trees) =
                    super::entries::entry_ids_of(&tx, &rowids).map_err(self.err())?;
                let mut insert = tx
                    .prepare_cached(&format!(
                        "INSERT OR IGNORE INTO temp.{table}(chunk_id) VALUES (?1)"
                    ))
                    .map_err(self.err())?;
                for entry in entries {
                    let blob = super::entries::entry_chunks(&tx, entry).map_err(self.err())?;
                    for id in blob.chunks_exact(32) {
                        insert.execute([id]).map_err(self.err())?;
                    }
                }
                // Schema 4: directories' trees, held by their listings.
                for tree in trees {
                    insert.execute([&tree.0[..]]).map_err(self.err())?;
                }
            }
            tx.commit().map_err(self.err())?;
        }
        self.marked_count(set)
    }

    /// Adds `chunks` to a set built by [`Catalog::mark_referenced`], in
    /// one transaction.
    pub(crate) fn mark_chunks<'c>(
        &self,
        set: MarkSet,
        chunks: impl IntoIterator<Item = &'c ChunkId>,
    ) -> Result<()> {
        let conn = self.lock();
        let tx = conn.unchecked_transaction().map_err(self.err())?;
        {
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT OR IGNORE INTO temp.{}(chunk_id) VALUES (?1)",
                    set.table()
                ))
                .map_err(self.err())?;
            for id in chunks {
                insert.execute([&id.0[..]]).map_err(self.err())?;
            }
        }
        tx.commit().map_err(self.err())
    }

    /// True when `chunk` is in `set`.
    pub(crate) fn is_marked(&self, set: MarkSet, chunk: &ChunkId) -> Result<bool> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT 1 FROM temp.{} WHERE chunk_id = ?1",
                set.table()
            ))
            .map_err(self.err())?;
        stmt.exists([&chunk.0[..]]).map_err(self.err())
    }

    /// How many chunk ids `set` holds.
    pub(crate) fn marked_count(&self, set: MarkSet) -> Result<u64> {
        self.lock()
            .query_row(
                &format!("SELECT count(*) FROM temp.{}", set.table()),
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(self.err())
    }

    /// Empties `set` (its pages go back to SQLite's temp file).
    pub(crate) fn clear_marks(&self, set: MarkSet) -> Result<()> {
        self.lock()
            .execute_batch(&format!("DELETE FROM temp.{};", set.table()))
            .map_err(self.err())
    }

    /// Per pack row, in row order: its chunk count and how many of its
    /// chunks, and how many stored bytes, are in the set `live`. One pass
    /// over `chunks`, grouped (schema 5 has no by-pack index).
    pub(crate) fn pack_usage(&self, live: MarkSet) -> Result<Vec<PackUsageRow>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT p.id, p.pack_id, p.size, coalesce(u.n, 0), coalesce(u.live, 0),
                    coalesce(u.live_bytes, 0)
             FROM packs p
             LEFT JOIN (SELECT c.pack, count(*) AS n, count(m.chunk_id) AS live,
                    sum(CASE WHEN m.chunk_id IS NULL THEN 0 ELSE c.stored_len END) AS live_bytes
                 FROM chunks c LEFT JOIN temp.{} m ON m.chunk_id = c.chunk_id
                 GROUP BY c.pack) u ON u.pack = p.id
             ORDER BY p.id",
                live.table()
            ))
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                let id: Vec<u8> = r.get(1)?;
                let n = |i| r.get::<_, i64>(i).map(|v| v as u64);
                Ok((r.get::<_, i64>(0)?, id, n(2)?, n(3)?, n(4)?, n(5)?))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (rowid, id, size, chunks, live_chunks, live_bytes) = row.map_err(self.err())?;
            let pack = PackId::from_slice(&id).ok_or_else(|| Error::CorruptPack {
                pack: hex::encode(&id),
                reason: "catalog row holds a malformed pack id".into(),
            })?;
            out.push(PackUsageRow {
                rowid,
                pack,
                size,
                chunks,
                live_chunks,
                live_bytes,
            });
        }
        Ok(out)
    }

    /// In one transaction: drops the rows of `packs` (row id, pack id) and
    /// of the chunks still located in them; returns how many chunk rows
    /// went. Refuses, changing nothing, if a chunk in the set `live` is
    /// still located in one of them.
    pub(crate) fn drop_packs<'p>(
        &self,
        live: MarkSet,
        packs: impl IntoIterator<Item = (i64, &'p PackId)>,
    ) -> Result<u64> {
        let conn = self.lock();
        let tx = conn.unchecked_transaction().map_err(self.err())?;
        let packs: Vec<(i64, &PackId)> = packs.into_iter().collect();
        // The doomed packs as a temp table, so that the live check and the
        // delete are one pass over `chunks` each (schema 5 has no by-pack
        // index), not one per pack.
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS dropping (id INTEGER PRIMARY KEY);
             DELETE FROM temp.dropping;",
        )
        .map_err(self.err())?;
        {
            let mut add = tx
                .prepare_cached("INSERT OR IGNORE INTO temp.dropping(id) VALUES (?1)")
                .map_err(self.err())?;
            for (rowid, _) in &packs {
                add.execute([rowid]).map_err(self.err())?;
            }
            let mut still_live = tx
                .prepare(&format!(
                    "SELECT c.pack, count(*) FROM temp.{} m
                     JOIN chunks c ON c.chunk_id = m.chunk_id
                     WHERE c.pack IN (SELECT id FROM temp.dropping)
                     GROUP BY c.pack LIMIT 1",
                    live.table()
                ))
                .map_err(self.err())?;
            let live_in: Option<(i64, i64)> = still_live
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(self.err())?;
            if let Some((rowid, n)) = live_in {
                let pack = packs
                    .iter()
                    .find(|(r, _)| *r == rowid)
                    .map_or_else(|| format!("row {rowid}"), |(_, p)| p.to_string());
                return Err(Error::InvalidArgument(format!(
                    "internal error: pack {pack} still holds {n} live chunks; gc stopped before deleting it"
                )));
            }
        }
        let dropped = tx
            .execute(
                "DELETE FROM chunks WHERE pack IN (SELECT id FROM temp.dropping)",
                [],
            )
            .map_err(self.err())? as u64;
        tx.execute(
            "DELETE FROM packs WHERE id IN (SELECT id FROM temp.dropping)",
            [],
        )
        .map_err(self.err())?;
        tx.execute("DELETE FROM temp.dropping", [])
            .map_err(self.err())?;
        tx.commit().map_err(self.err())?;
        Ok(dropped)
    }

    /// Copies the WAL back into the database file and truncates it, giving
    /// its pages back to the file system.
    pub(crate) fn checkpoint_wal(&self) -> Result<()> {
        self.lock()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(self.err())
    }
}
