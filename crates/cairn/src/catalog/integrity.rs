//! Is the catalog sound? SQLite's own checks, and counts through each index
//! against its table. The catalog is a cache, and a damaged cache must not
//! steer destructive work: gc, repair, forget and delete check it first
//! ([`Catalog::ensure_sound`]); `check` reports what these find.

use std::collections::HashMap;

use rusqlite::Connection;

use super::Catalog;
use crate::error::{Error, Result};

impl Catalog {
    /// What is wrong with the database itself, as SQLite sees it; empty
    /// when sound. The catalog is a cache, and a damaged cache must not
    /// steer destructive work: a flipped byte can drop a row from an index
    /// while the table keeps it, so a query through the index no longer
    /// sees a chunk the table still locates.
    pub fn integrity_problems(&self, level: Integrity) -> Result<Vec<String>> {
        let conn = self.lock();
        let pragma = match level {
            Integrity::Quick => "PRAGMA quick_check(20)".to_string(),
            Integrity::Full => "PRAGMA integrity_check(20)".to_string(),
            Integrity::Table(table) => format!("PRAGMA integrity_check(\"{table}\")"),
        };
        let rows = conn.prepare(&pragma).and_then(|mut stmt| {
            stmt.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        });
        let mut problems = match rows {
            Ok(rows) => rows.into_iter().filter(|r| r != "ok").collect(),
            Err(e) if is_corruption(&e) => vec![e.to_string()],
            Err(e) => return Err(self.sql_err(e)),
        };
        // quick_check reads every page but not whether each index holds
        // its table's rows; one count through each index against its table
        // finds a lost or extra index row in linear time.
        if problems.is_empty() && level == Integrity::Quick {
            match Self::index_count_mismatches(&conn) {
                Ok(found) => problems = found,
                Err(e) if is_corruption(&e) => problems.push(e.to_string()),
                Err(e) => return Err(self.sql_err(e)),
            }
        }
        Ok(problems)
    }

    /// Chunk rows per pack row id, counted from the table itself, never
    /// through an index: `check` reports the rows that name a pack row the
    /// catalog does not list.
    pub(crate) fn chunk_counts_by_pack(&self) -> Result<HashMap<i64, u64>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT pack, count(*) FROM chunks NOT INDEXED GROUP BY pack")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .map_err(self.err())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.err())
    }

    /// Fails with [`Error::CatalogDamaged`] unless the catalog is sound;
    /// commands that delete or rewrite anything call this first.
    pub fn ensure_sound(&self, level: Integrity) -> Result<()> {
        let problems = self.integrity_problems(level)?;
        if problems.is_empty() {
            return Ok(());
        }
        Err(Error::CatalogDamaged {
            path: self.path.clone(),
            problem: problems.join("; "),
        })
    }

    /// For each index: its rows against its table's, and how many of the
    /// entries it holds (keys and row pointer) are those of its table's
    /// rows. A flipped bit in an index cell can keep the count and change a
    /// key or the row it points to (the row is then missing from the index
    /// for every lookup, or a lookup finds another row), so counting alone
    /// is not enough; the comparison reads each entry through the index
    /// (forced by `INDEXED BY`) and looks it up among the table's own.
    fn index_count_mismatches(conn: &Connection) -> rusqlite::Result<Vec<String>> {
        let indexes: Vec<(String, String)> = conn
            .prepare("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let count = |sql: String| conn.query_row(&sql, [], |r| r.get::<_, i64>(0));
        let mut out = Vec::new();
        for (index, table) in indexes {
            let in_table = count(format!("SELECT count(*) FROM \"{table}\" NOT INDEXED"))?;
            let in_index = count(format!(
                "SELECT count(*) FROM \"{table}\" INDEXED BY \"{index}\""
            ))?;
            if in_table != in_index {
                out.push(format!(
                    "index {index} holds {in_index} rows, its table {table} {in_table}"
                ));
                continue;
            }
            // Every column an index entry holds: its keys, then the row's
            // rowid (or a WITHOUT ROWID table's primary key), which a
            // flipped bit can also change, pointing a key at another row.
            let columns: Vec<String> = conn
                .prepare(&format!("PRAGMA index_xinfo(\"{index}\")"))?
                .query_map([], |r| {
                    Ok(
                        match (r.get::<_, i64>(1)?, r.get::<_, Option<String>>(2)?) {
                            (_, Some(name)) => Some(name),
                            (-1, None) => Some("rowid".to_string()),
                            _ => None,
                        },
                    )
                })?
                .collect::<rusqlite::Result<Option<Vec<_>>>>()?
                .unwrap_or_default();
            if columns.is_empty() {
                continue; // an expression index: counted above only
            }
            let cols = columns
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let not_null = columns
                .iter()
                .map(|c| format!("\"{c}\" IS NOT NULL"))
                .collect::<Vec<_>>()
                .join(" AND ");
            let keyed = count(format!(
                "SELECT count(*) FROM \"{table}\" NOT INDEXED WHERE {not_null}"
            ))?;
            // `LIMIT -1` keeps the list a scan of the table: without it
            // SQLite answers `IN (SELECT …)` from the same index, which
            // would compare the index with itself.
            let matched = count(format!(
                "SELECT count(*) FROM \"{table}\" INDEXED BY \"{index}\" \
                 WHERE ({cols}) IN (SELECT {cols} FROM \"{table}\" NOT INDEXED LIMIT -1)"
            ))?;
            if keyed != matched {
                out.push(format!(
                    "index {index} holds {} entries that are not rows of its table {table}",
                    keyed - matched
                ));
            }
        }
        Ok(out)
    }
}

/// How thoroughly [`Catalog::integrity_problems`] looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integrity {
    /// SQLite's `quick_check` (every page and record well formed) and a row
    /// count through each index against its table: linear in the file.
    Quick,
    /// SQLite's `integrity_check`: also that each index holds exactly its
    /// table's rows, entry by entry.
    Full,
    /// `integrity_check` of one table and its indexes only.
    Table(&'static str),
}

/// True for the errors SQLite raises on a damaged file.
fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}
