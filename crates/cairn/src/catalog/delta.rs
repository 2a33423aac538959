//! Which chunks delta chunks refer to (table `delta_refs`, schema version
//! 2): the writer composes new deltas through old ones, gc keeps the
//! reference closure of the live set, check names the files a damaged
//! reference breaks, copy sends references too. The rows are a cache of
//! the delta records' headers in the packs (`rebuild-catalog` reads them
//! back); a row whose chunk is not (yet) in `chunks` means nothing.

use std::collections::{HashMap, HashSet};

use rusqlite::params;

use super::{Catalog, MarkSet};
use crate::blob::Locate;
use crate::error::Result;
use crate::format::delta::{DeltaHeader, Segment};
use crate::format::id::ChunkId;
use crate::format::pack::ChunkLocation;

/// Added to the schema by version 2 (and by the migration from version 1).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS delta_refs (
    chunk BLOB NOT NULL,
    seq INTEGER NOT NULL,
    ref BLOB NOT NULL,
    ref_offset INTEGER NOT NULL,
    len INTEGER NOT NULL,
    age INTEGER NOT NULL,
    PRIMARY KEY (chunk, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS delta_refs_by_ref ON delta_refs(ref);
";

/// What the catalog knows of one delta chunk: its age and its segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaRefs {
    pub age: u8,
    pub segments: Vec<Segment>,
}

impl Catalog {
    /// Records the reference segments of delta chunks (idempotent).
    pub fn add_delta_refs<'h>(
        &self,
        deltas: impl IntoIterator<Item = (&'h ChunkId, &'h DeltaHeader)>,
    ) -> Result<()> {
        let conn = self.lock();
        let tx = conn.unchecked_transaction().map_err(self.err())?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO delta_refs(chunk, seq, ref, ref_offset, len, age)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(self.err())?;
            for (id, h) in deltas {
                for (seq, s) in h.segments.iter().enumerate() {
                    stmt.execute(params![
                        &id.0[..],
                        seq as i64,
                        &s.chunk.0[..],
                        s.offset,
                        s.len,
                        h.age
                    ])
                    .map_err(self.err())?;
                }
            }
        }
        tx.commit().map_err(self.err())
    }

    /// The delta chunks among `ids`, with their references.
    pub fn delta_refs(&self, ids: &[ChunkId]) -> Result<HashMap<ChunkId, DeltaRefs>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT ref, ref_offset, len, age FROM delta_refs WHERE chunk = ?1 ORDER BY seq",
            )
            .map_err(self.err())?;
        let mut out = HashMap::new();
        for id in ids {
            let rows = stmt
                .query_map([&id.0[..]], |r| {
                    let chunk: Vec<u8> = r.get(0)?;
                    Ok((
                        chunk,
                        r.get::<_, u32>(1)?,
                        r.get::<_, u32>(2)?,
                        r.get::<_, u8>(3)?,
                    ))
                })
                .map_err(self.err())?;
            let mut refs = DeltaRefs {
                age: 0,
                segments: Vec::new(),
            };
            for row in rows {
                let (chunk, offset, len, age) = row.map_err(self.err())?;
                refs.age = age;
                refs.segments
                    .extend(ChunkId::from_slice(&chunk).map(|chunk| Segment {
                        chunk,
                        offset,
                        len,
                    }));
            }
            if !refs.segments.is_empty() {
                out.insert(*id, refs);
            }
        }
        Ok(out)
    }

    /// The distinct chunks that the delta chunks among `ids` refer to.
    pub fn references_of(&self, ids: &[ChunkId]) -> Result<HashSet<ChunkId>> {
        Ok(self
            .delta_refs(ids)?
            .into_values()
            .flat_map(|r| r.segments.into_iter().map(|s| s.chunk))
            .collect())
    }

    /// The stored delta chunks that refer to any of `refs`.
    pub fn dependants_of(&self, refs: &HashSet<ChunkId>) -> Result<HashSet<ChunkId>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT DISTINCT chunk FROM delta_refs WHERE ref = ?1")
            .map_err(self.err())?;
        let mut out = HashSet::new();
        for r in refs {
            let rows = stmt
                .query_map([&r.0[..]], |row| row.get::<_, Vec<u8>>(0))
                .map_err(self.err())?;
            for row in rows {
                out.extend(ChunkId::from_slice(&row.map_err(self.err())?));
            }
        }
        Ok(out)
    }

    /// Adds to `set` every chunk a delta chunk in it refers to: what a
    /// live delta needs is live. References are standalone chunks, so one
    /// pass is the whole closure.
    /// Refuses when a delta chunk in `set` has no reference rows: then the
    /// catalog cannot say what it needs (`rebuild-catalog` reads them back).
    pub(crate) fn mark_reference_closure(&self, set: MarkSet) -> Result<()> {
        let table = set.table();
        let conn = self.lock();
        let unknown: i64 = conn
            .query_row(
                &format!(
                    "SELECT count(*) FROM temp.{table} m JOIN chunks c ON c.chunk_id = m.chunk_id
                     WHERE c.codec = 3 AND NOT EXISTS
                       (SELECT 1 FROM delta_refs d WHERE d.chunk = c.chunk_id)"
                ),
                [],
                |r| r.get(0),
            )
            .map_err(self.err())?;
        if unknown > 0 {
            return Err(crate::error::Error::CatalogDamaged {
                path: self.path.clone(),
                problem: format!("{unknown} live delta chunks have no reference rows"),
            });
        }
        conn.execute(
            &format!(
                "INSERT OR IGNORE INTO temp.{table}(chunk_id)
                     SELECT DISTINCT d.ref FROM delta_refs d
                     JOIN temp.{table} m ON m.chunk_id = d.chunk"
            ),
            [],
        )
        .map(drop)
        .map_err(self.err())
    }

    /// Drops the reference rows of chunks no pack holds any more (gc ran,
    /// or a snapshot was interrupted before its pack was indexed).
    pub(crate) fn drop_orphan_delta_refs(&self) -> Result<()> {
        self.lock()
            .execute(
                "DELETE FROM delta_refs WHERE chunk NOT IN (SELECT chunk_id FROM chunks)",
                [],
            )
            .map(drop)
            .map_err(self.err())
    }
}

impl Locate for Catalog {
    fn locate_chunk(&self, id: &ChunkId) -> Result<Option<ChunkLocation>> {
        self.locate(id)
    }
}
