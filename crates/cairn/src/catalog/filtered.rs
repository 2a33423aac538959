//! When the chunk filter ([`super::chunk_filter`]) answers for the catalog,
//! and how it stays complete: a filter that could miss a stored chunk would
//! cost dedup, so one is used only while it is known to hold every chunk row.
//!
//! - `meta.chunk_generation` is bumped by every transaction that adds chunk
//!   rows (all of them go through [`Catalog::add_pack`]); `meta.catalog_id`
//!   is a random id given to each database when its first filter is built;
//!   a digest of the pack rows changes when any pack is added or removed
//!   (also by an older cairn, which keeps no generation). A filter file is
//!   used only when it is intact and carries all three as they are now; anything else (missing, stale, foreign, damaged,
//!   outgrown) is rebuilt from the chunk rows, in one read transaction.
//! - A filter is written (temp file + rename) when its catalog closes, by a
//!   connection that added chunks and is still at the generation it knows;
//!   a run that adds nothing (a dry run) writes no file.
//! - Chunks this connection adds go into the filter as they are indexed.
//! - Before each lookup the generation is read again: if another connection
//!   (a concurrent snapshot, another process's catch-up) added chunks, the
//!   filter is dropped for the rest of this connection and every lookup goes
//!   to SQLite, as before the filter; the next run rebuilds it.
//! - Chunks removed (gc, repair) stay in the filter: a stale positive costs
//!   one SQLite lookup, never a wrong answer, as a positive is always
//!   confirmed by SQLite.
//! - A read-only catalog uses no filter; a filter that cannot be built or
//!   written never fails a lookup.

use std::path::PathBuf;

use rusqlite::{Connection, OptionalExtension};

use super::chunk_filter::{ChunkFilter, Stamp};
use super::Catalog;
use crate::error::Result;
use crate::format::id::ChunkId;
use crate::format::pack::PackEntry;

/// Where this connection stands with the filter.
#[derive(Debug, Default)]
pub(super) enum FilterState {
    /// Not read yet: the first lookup loads or builds it.
    #[default]
    Unloaded,
    /// In use; matches the catalog at `stamp`. `dirty`: chunks were added
    /// since the file was read or written.
    Ready {
        filter: ChunkFilter,
        stamp: Stamp,
        dirty: bool,
    },
    /// Not used for the rest of this connection (see the module doc).
    Off,
}

/// Adds one to `meta.chunk_generation` in `tx`; returns the value before.
pub(super) fn bump_generation(tx: &Connection) -> rusqlite::Result<u64> {
    let after: i64 = tx.query_row(
        "INSERT INTO meta(key, value) VALUES ('chunk_generation', '1')
         ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1
         RETURNING CAST(value AS INTEGER)",
        [],
        |r| r.get(0),
    )?;
    Ok(after as u64 - 1)
}

/// The first 8 bytes of BLAKE3 over the pack rows' count, largest row id
/// and total size: any pack added or removed, by any writer, changes it.
fn packs_digest(conn: &Connection) -> rusqlite::Result<u64> {
    let (count, max, size): (i64, i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(max(id), 0), coalesce(sum(size), 0) FROM packs",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut h = blake3::Hasher::new();
    for v in [count, max, size] {
        h.update(&v.to_le_bytes());
    }
    let digest = h.finalize();
    Ok(u64::from_le_bytes(
        digest.as_bytes()[..8].try_into().expect("8 bytes"),
    ))
}

fn generation(conn: &Connection) -> rusqlite::Result<u64> {
    let g: Option<i64> = conn
        .query_row(
            "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'chunk_generation'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(g.unwrap_or(0) as u64)
}

/// This database's `meta.catalog_id`, given one first if it has none (a
/// new catalog gets it when created; one made by an older cairn, at its
/// first filter).
pub(super) fn catalog_id(conn: &Connection) -> rusqlite::Result<[u8; 16]> {
    let mut fresh = [0u8; 16];
    crate::format::seal::fill_random(&mut fresh);
    conn.execute(
        "INSERT OR IGNORE INTO meta(key, value) VALUES ('catalog_id', ?1)",
        [hex::encode(fresh)],
    )?;
    let stored: String =
        conn.query_row("SELECT value FROM meta WHERE key = 'catalog_id'", [], |r| {
            r.get(0)
        })?;
    let mut id = [0u8; 16];
    // A value another writer mangled is replaced rather than trusted.
    if hex::decode_to_slice(&stored, &mut id).is_err() {
        conn.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'catalog_id'",
            [hex::encode(fresh)],
        )?;
        return Ok(fresh);
    }
    Ok(id)
}

impl Catalog {
    /// `catalog.chunkfilter` beside `catalog.db`.
    pub(crate) fn filter_path(&self) -> PathBuf {
        self.path.with_extension("chunkfilter")
    }

    /// Which of `ids` may be stored, by the filter; `None` when no filter
    /// answers (then all of them must be asked of SQLite).
    pub(super) fn filter_candidates(
        &self,
        conn: &Connection,
        ids: &[ChunkId],
    ) -> Result<Option<Vec<ChunkId>>> {
        let mut state = self.filter_state();
        if matches!(*state, FilterState::Unloaded) {
            *state = self.load_filter(conn);
        }
        let FilterState::Ready { filter, stamp, .. } = &*state else {
            return Ok(None);
        };
        if generation(conn).map_err(self.err())? != stamp.generation {
            *state = FilterState::Off;
            return Ok(None);
        }
        Ok(Some(
            ids.iter()
                .filter(|id| filter.may_contain(id))
                .copied()
                .collect(),
        ))
    }

    /// Records chunks this connection just committed, in the transaction
    /// that found the generation at `before`: in the filter if that was
    /// the filter's own (else another writer got in between: `Off`).
    pub(super) fn filter_added(&self, before: u64, entries: &[PackEntry]) {
        let mut state = self.filter_state();
        if let FilterState::Ready {
            filter,
            stamp,
            dirty,
        } = &mut *state
        {
            if stamp.generation != before {
                *state = FilterState::Off;
                return;
            }
            entries.iter().for_each(|e| filter.insert(&e.chunk));
            stamp.generation = before + 1;
            // The pack rows changed too; `persist_filter` reads them again.
            *dirty = true;
        }
    }

    /// Writes a filter that gained chunks back to its file, if it still
    /// matches the catalog. Called when the catalog closes.
    pub(super) fn persist_filter(&self) {
        // The connection first, then the filter, as everywhere.
        let conn = self.lock();
        let state = self.filter_state();
        if let FilterState::Ready {
            filter,
            stamp,
            dirty: true,
        } = &*state
        {
            if generation(&conn).is_ok_and(|g| g == stamp.generation) {
                if let Ok(packs) = packs_digest(&conn) {
                    self.write_filter(filter, &Stamp { packs, ..*stamp });
                }
            }
        }
    }

    fn filter_state(&self) -> std::sync::MutexGuard<'_, FilterState> {
        self.filter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The file's filter if it matches the catalog now, else one built from
    /// the chunk rows; `Off` when neither can be had.
    fn load_filter(&self, conn: &Connection) -> FilterState {
        if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
            return FilterState::Off;
        }
        let Ok(catalog_id) = catalog_id(conn) else {
            return FilterState::Off;
        };
        let (Ok(generation), Ok(packs)) = (generation(conn), packs_digest(conn)) else {
            return FilterState::Off;
        };
        let current = Stamp {
            catalog_id,
            generation,
            packs,
        };
        let file = super::location::read_cache_file(&self.filter_path(), ChunkFilter::decode);
        if let Some((filter, stamp)) = file {
            if stamp == current && filter.ids() <= filter.capacity() {
                return FilterState::Ready {
                    filter,
                    stamp,
                    dirty: false,
                };
            }
        }
        // Written when this connection adds chunks: a run that adds none
        // (a dry run) leaves the directory as it found it.
        match self.build_filter(conn, catalog_id) {
            Ok((filter, stamp)) => FilterState::Ready {
                filter,
                stamp,
                dirty: false,
            },
            Err(_) => FilterState::Off,
        }
    }

    /// A filter of every chunk row, and the generation it holds, read in one
    /// transaction so no writer's rows fall between the two.
    pub(super) fn build_filter(
        &self,
        conn: &Connection,
        catalog_id: [u8; 16],
    ) -> rusqlite::Result<(ChunkFilter, Stamp)> {
        let tx = conn.unchecked_transaction()?;
        let generation = generation(&tx)?;
        let packs = packs_digest(&tx)?;
        // Packs count the chunks they were written with: an upper bound.
        let expected: i64 =
            tx.query_row("SELECT coalesce(sum(chunk_count), 0) FROM packs", [], |r| {
                r.get(0)
            })?;
        let mut filter = ChunkFilter::with_capacity(expected.max(0) as u64);
        {
            let mut stmt = tx.prepare("SELECT chunk_id FROM chunks")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                if let Some(id) = ChunkId::from_slice(row.get_ref(0)?.as_blob()?) {
                    filter.insert(&id);
                }
            }
        }
        drop(tx);
        let stamp = Stamp {
            catalog_id,
            generation,
            packs,
        };
        Ok((filter, stamp))
    }

    /// Writes the filter's file (see `location::write_cache_file`). A
    /// failure (a full disk) leaves the filter in memory in use: the next
    /// run rebuilds the file.
    fn write_filter(&self, filter: &ChunkFilter, stamp: &Stamp) {
        let _ =
            super::location::write_cache_file(&self.filter_path(), |out| filter.encode(stamp, out));
    }
}

impl Drop for Catalog {
    fn drop(&mut self) {
        self.persist_filter();
    }
}

#[cfg(test)]
mod tests;
