//! Pack rows: listing them for `check`, moving chunks to a new pack (gc's
//! repack, repair's salvage), and which packs the snapshots reference.
//!
//! A pack row id (`packs.id`) names a row of this database only; a pack is
//! named outside the catalog by its [`PackId`].
//!
//! Since schema 5 no index orders `chunks` by pack: the questions by pack
//! are few (gc, check, repair) and each is answered by one pass over
//! `chunks` (see [`Catalog::chunks_by_pack`]), which costs less than a
//! second copy of every chunk id kept in the catalog forever.

use std::collections::HashSet;

use rusqlite::{params, OptionalExtension};

use super::{now_ns, pack_row, Catalog};
use crate::error::Result;
use crate::format::codec::Codec;
use crate::format::id::{ChunkId, PackId};
use crate::format::pack::PackEntry;

/// A pack as the catalog records it.
#[derive(Debug, Clone)]
pub(crate) struct PackRow {
    pub rowid: i64,
    pub id: PackId,
    pub size: u64,
}

/// Keeps the temporary by-pack table of [`Catalog::chunks_by_pack`];
/// dropping it drops the table.
pub(crate) struct ByPack<'c>(&'c Catalog);

impl Drop for ByPack<'_> {
    fn drop(&mut self) {
        // Only a temp table: a failure leaves nothing in the catalog.
        let _ = self
            .0
            .lock()
            .execute_batch("DROP TABLE IF EXISTS temp.by_pack;");
    }
}

/// Schema 4 to 5, in one immediate transaction (a second process opening
/// the catalog at the same time waits, then finds it upgraded): drops
/// `chunks_by_pack`. The index repeated each chunk id beside its pack
/// row id; in the 30,000-file history bench it was 20 of the 124 KB a
/// snapshot added (docs/BENCHMARKS.md). No row is rewritten; the freed
/// pages are reused by later inserts.
pub(super) fn migrate_from_v4(conn: &mut rusqlite::Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: String = tx.query_row(
        "SELECT value FROM meta WHERE key='schema_version'",
        [],
        |r| r.get(0),
    )?;
    if version != "4" {
        return Ok(()); // another process upgraded it first
    }
    tx.execute_batch(
        "DROP INDEX IF EXISTS chunks_by_pack;
         UPDATE meta SET value = '5' WHERE key = 'schema_version';",
    )?;
    tx.commit()
}

/// What [`Catalog::reference_scan`] found.
#[derive(Debug, Default)]
pub(crate) struct ReferenceScan {
    /// Row ids of the packs holding a chunk some file references.
    pub packs: HashSet<i64>,
    /// Chunks some file references that no pack row locates.
    pub missing: HashSet<ChunkId>,
}

impl Catalog {
    /// Every pack row, least recently verified first (never verified
    /// counts as oldest), then by row id.
    pub(crate) fn pack_rows(&self) -> Result<Vec<PackRow>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT id, pack_id, size FROM packs ORDER BY coalesce(last_verified_ns, 0), id",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                let id: Vec<u8> = r.get(1)?;
                Ok(PackRow {
                    rowid: r.get(0)?,
                    id: PackId::from_slice(&id).unwrap_or(PackId([0; 32])),
                    size: r.get::<_, i64>(2)? as u64,
                })
            })
            .map_err(self.err())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.err())
    }

    /// The row id of pack `id`; an error when the catalog does not list it.
    pub(crate) fn pack_row_id(&self, id: &PackId) -> Result<i64> {
        self.lock()
            .query_row(
                "SELECT id FROM packs WHERE pack_id = ?1",
                [&id.0[..]],
                |r| r.get(0),
            )
            .map_err(self.err())
    }

    /// The chunk rows located in pack row `pack_rowid`, in file order.
    /// Schema 5 keeps no by-pack index (see [`migrate_from_v4`]): while a
    /// [`ByPack`] guard lives (`check`, which asks for every pack) this
    /// reads its temporary copy of `chunks` ordered by pack; otherwise it
    /// scans `chunks` (repair, which asks for one pack).
    pub(crate) fn pack_entries(&self, pack_rowid: i64) -> Result<Vec<PackEntry>> {
        let conn = self.lock();
        let indexed: bool = conn
            .prepare_cached("SELECT count(*) > 0 FROM temp.sqlite_master WHERE name = 'by_pack'")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(self.err())?;
        let table = if indexed {
            "temp.by_pack"
        } else {
            "main.chunks"
        };
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT chunk_id, offset, stored_len, raw_len, codec FROM {table}
                 WHERE pack = ?1 ORDER BY offset"
            ))
            .map_err(self.err())?;
        let rows = stmt
            .query_map([pack_rowid], |r| {
                let id: Vec<u8> = r.get(0)?;
                Ok(PackEntry {
                    chunk: ChunkId::from_slice(&id).unwrap_or(ChunkId([0; 32])),
                    offset: r.get::<_, i64>(1)? as u64,
                    stored_len: r.get(2)?,
                    raw_len: r.get(3)?,
                    codec: Codec::from_byte(r.get(4)?).unwrap_or(Codec::Raw),
                })
            })
            .map_err(self.err())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.err())
    }

    /// Builds the temporary by-pack copy of `chunks` that
    /// [`Catalog::pack_entries`] reads while the returned guard lives: one
    /// sorted pass over `chunks` instead of a scan per pack. The copy lives
    /// in SQLite's temp file, not in the catalog. When it cannot be built
    /// (no room for the temp file) the guard holds nothing and
    /// `pack_entries` scans, slower but with the same answers.
    pub(crate) fn chunks_by_pack(&self) -> Result<ByPack<'_>> {
        let conn = self.lock();
        if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
            // A reader keeps temp tables in memory (see `open_read_only`);
            // this copy is as large as `chunks` and must spill.
            conn.execute_batch("PRAGMA temp_store=FILE;")
                .map_err(self.err())?;
        }
        let built = conn.execute_batch(
            "DROP TABLE IF EXISTS temp.by_pack;
             CREATE TEMP TABLE by_pack (
                 pack INTEGER NOT NULL, offset INTEGER NOT NULL, chunk_id BLOB NOT NULL,
                 stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL, codec INTEGER NOT NULL,
                 PRIMARY KEY (pack, offset, chunk_id)) WITHOUT ROWID;
             INSERT INTO temp.by_pack
                 SELECT pack, offset, chunk_id, stored_len, raw_len, codec FROM main.chunks
                 ORDER BY pack, offset, chunk_id;",
        );
        if let Err(e) = built {
            let _ = conn.execute_batch("DROP TABLE IF EXISTS temp.by_pack;");
            if !matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure)
            ) {
                return Err(self.sql_err(e));
            }
        }
        Ok(ByPack(self))
    }

    /// Records that pack row `rowid` was read back whole and found sound,
    /// now; `check --read-subset` reads the least recently verified first.
    pub(crate) fn mark_pack_verified(&self, rowid: i64) -> Result<()> {
        self.lock()
            .execute(
                "UPDATE packs SET last_verified_ns = ?1 WHERE id = ?2",
                params![now_ns(), rowid],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// In one transaction: records the durable pack `id` (unless listed
    /// already: a pack identical to one listed is the same file) and points
    /// the rows of its chunks at it. The chunks keep their encoding, so
    /// only their pack and offset change.
    pub(crate) fn relocate_chunks(
        &self,
        id: &PackId,
        size: u64,
        entries: &[PackEntry],
    ) -> Result<()> {
        let conn = self.lock();
        let tx = conn.unchecked_transaction().map_err(self.err())?;
        let rowid = pack_row(&tx, id, size, entries.len()).map_err(self.err())?;
        {
            let mut moved = tx
                .prepare_cached("UPDATE chunks SET pack = ?1, offset = ?2 WHERE chunk_id = ?3")
                .map_err(self.err())?;
            for e in entries {
                moved
                    .execute(params![rowid, e.offset as i64, &e.chunk.0[..]])
                    .map_err(self.err())?;
            }
        }
        tx.commit().map_err(self.err())
    }

    /// In one transaction, the catalog side of salvaging pack row
    /// `old_rowid`: the durable new pack `salvaged` (id, size, entries), if
    /// any, gets a row sized as written and its chunks' rows point at it,
    /// encoding included; the rows of the `lost` chunks still located in
    /// the old pack go; and the old pack's row goes unless the new pack is
    /// the same file (same id, so the same row).
    pub(crate) fn replace_pack<'c>(
        &self,
        old_rowid: i64,
        salvaged: Option<(&PackId, u64, &[PackEntry])>,
        lost: impl IntoIterator<Item = &'c ChunkId>,
    ) -> Result<()> {
        let conn = self.lock();
        let tx = conn.unchecked_transaction().map_err(self.err())?;
        let mut in_place = false;
        if let Some((id, size, entries)) = salvaged {
            let new_row = pack_row(&tx, id, size, entries.len()).map_err(self.err())?;
            in_place = new_row == old_rowid;
            tx.execute(
                "UPDATE packs SET size = ?1, chunk_count = ?2 WHERE id = ?3",
                params![size as i64, entries.len() as i64, new_row],
            )
            .map_err(self.err())?;
            for e in entries {
                tx.execute(
                    "UPDATE chunks SET pack = ?1, offset = ?2, stored_len = ?3, raw_len = ?4, codec = ?5 WHERE chunk_id = ?6",
                    params![new_row, e.offset as i64, e.stored_len, e.raw_len, e.codec as u8, &e.chunk.0[..]],
                )
                .map_err(self.err())?;
            }
        }
        for chunk in lost {
            tx.execute(
                "DELETE FROM chunks WHERE chunk_id = ?1 AND pack = ?2",
                params![&chunk.0[..], old_rowid],
            )
            .map_err(self.err())?;
        }
        if !in_place {
            tx.execute("DELETE FROM packs WHERE id = ?1", [old_rowid])
                .map_err(self.err())?;
        }
        tx.commit().map_err(self.err())
    }

    /// One pass over every entry row (each file version once), looking up each
    /// chunk it references: which packs hold them, and which no pack does.
    pub(crate) fn reference_scan(&self) -> Result<ReferenceScan> {
        let conn = self.lock();
        let mut locate = conn
            .prepare_cached("SELECT pack FROM chunks WHERE chunk_id = ?1")
            .map_err(self.err())?;
        let mut scan = ReferenceScan::default();
        super::entries::for_each_chunk_list(&conn, |blob| {
            for id in blob.chunks_exact(32) {
                match locate.query_row([id], |r| r.get(0)).optional()? {
                    Some(p) => {
                        scan.packs.insert(p);
                    }
                    None => {
                        scan.missing
                            .insert(ChunkId::from_slice(id).expect("32 bytes"));
                    }
                }
            }
            Ok(())
        })
        .map_err(self.err())?;
        Ok(scan)
    }
}

#[cfg(test)]
impl Catalog {
    /// Damage for tests: the catalog forgets every pack and chunk row.
    pub(crate) fn drop_all_pack_rows(&self) -> Result<()> {
        self.lock()
            .execute_batch("DELETE FROM chunks; DELETE FROM packs;")
            .map_err(self.err())
    }
}
