//! The SQLite catalog: an index over packs and manifests that answers "does
//! this chunk exist, and where", "which snapshots are there", and "what is
//! in this snapshot" without reading packs. Everything in it can be rebuilt
//! from the packs and manifests (`cairn rebuild-catalog`); the schema is in
//! docs/FORMAT.md and its version in `meta.schema_version`.
//!
//! This module holds all of the crate's SQL: other modules call operations
//! named for what they mean (the submodules group them by concern: `gc`
//! for mark sets and pack usage, `packs`, `snapshots`), so the schema can
//! change in one place. The one connection sits behind a mutex, which each
//! operation holds for its whole statement or transaction.

mod chunk_filter;
mod delta;
mod entries;
mod filtered;
mod gc;
mod integrity;
pub mod location;
mod packs;
mod snapshots;
pub use integrity::Integrity;

pub use delta::DeltaRefs;
pub(crate) use gc::MarkSet;
pub(crate) use packs::{PackRow, ReferenceScan};

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::codec::Codec;
use crate::format::id::{ChunkId, PackId, SnapshotId};
use crate::format::label::SnapshotLabel;
use crate::format::manifest::{EntryKind, FileEntry, Manifest, RunStats};
pub use crate::format::pack::ChunkLocation;
use crate::format::pack::PackEntry;

/// Version 1: the initial schema. Version 2: file entries stored once
/// (`entries`, `dirs`, `snapshots.dirs` replace `files`; see `entries`) and
/// table `delta_refs` ([`delta`]). A version-1 catalog is upgraded when
/// opened, by a reader too (its one write; it holds no delta chunks).
/// Version 3: `entries` gains owner, hard-link group, rdev and
/// `incomplete` columns (see `entries::V3_COLUMNS`); a version-2 catalog
/// gains them in place when opened, the same way.
/// Version 4: a directory's tree id is kept in `dirs.tree`, the row of its
/// listing, instead of its own entry's `chunks`, so a change deep in the
/// tree no longer makes a new entry row for every ancestor directory (see
/// `entries::store`); a version-3 catalog gains the column in place when
/// opened, and its rows stay valid as they are.
/// Version 5: no `chunks_by_pack` index. It held every chunk id a second
/// time (a sixth of what a snapshot of a large tree added to the catalog);
/// the few operations that want a pack's chunks (gc, check, repair) now
/// scan `chunks` once, or build a temporary by-pack table for the length
/// of a `check` (see `packs`). A version-4 catalog drops the index when
/// opened.
pub const SCHEMA_VERSION: u32 = 5;
pub const FILE_NAME: &str = "catalog.db";

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE packs (
    id INTEGER PRIMARY KEY,
    pack_id BLOB NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL,
    created_ns INTEGER NOT NULL,
    last_verified_ns INTEGER
);
CREATE TABLE chunks (
    chunk_id BLOB PRIMARY KEY,
    pack INTEGER NOT NULL REFERENCES packs(id),
    offset INTEGER NOT NULL,
    stored_len INTEGER NOT NULL,
    raw_len INTEGER NOT NULL,
    codec INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE snapshots (
    id INTEGER PRIMARY KEY,
    snapshot_id BLOB NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT,
    description TEXT,
    host TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    sources TEXT NOT NULL,
    tags TEXT NOT NULL,
    parent BLOB,
    file_count INTEGER NOT NULL,
    logical_bytes INTEGER NOT NULL,
    files_read INTEGER NOT NULL,
    bytes_read INTEGER NOT NULL,
    added_raw INTEGER NOT NULL,
    added_stored INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    damaged INTEGER NOT NULL DEFAULT 0,
    dirs BLOB NOT NULL DEFAULT x''
);
CREATE INDEX snapshots_by_history ON snapshots(kind, name, time_ns);
";

/// Ids per query in [`Catalog::existing`] (SQLite allows 32766 parameters).
pub const LOOKUP_BATCH: usize = 500;

fn batch_sql(n: usize) -> String {
    let marks = vec!["?"; n].join(",");
    format!("SELECT chunk_id FROM chunks WHERE chunk_id IN ({marks})")
}

static BATCH_SQL: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| batch_sql(LOOKUP_BATCH));

/// A snapshot as listed.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    #[serde(serialize_with = "hex_id")]
    pub id: SnapshotId,
    /// Flattened: `kind`, `name`, … stay top-level keys, in this position.
    #[serde(flatten)]
    pub label: SnapshotLabel,
    pub host: String,
    pub time: DateTime<Utc>,
    pub sources: Vec<String>,
    pub file_count: u64,
    pub logical_bytes: u64,
    pub stats: RunStats,
    /// Set by `repair` when chunks this snapshot needs are lost.
    pub damaged: bool,
    #[serde(skip)]
    pub(crate) rowid: i64,
}

pub(crate) fn hex_id<S: serde::Serializer>(
    id: &SnapshotId,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_hex())
}

impl SnapshotInfo {
    /// `kind/name` — the history this snapshot belongs to.
    pub fn history(&self) -> String {
        self.label.history()
    }
}

/// What the stat cache needs to decide a file is unchanged.
#[derive(Debug, Clone)]
pub struct CachedFile {
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
    pub sha256: [u8; 32],
    pub chunks: Vec<ChunkId>,
}

/// Filters for listing snapshots; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct SnapshotFilter {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub tag: Option<String>,
}

/// An open catalog database. One connection behind a mutex, so a catalog
/// can be shared between threads: gc's mark set is a temp table, which
/// exists only on the connection that made it. Every operation takes the
/// lock once and holds it for its whole statement or transaction (cached
/// statements live in the connection), never per row.
pub struct Catalog {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// The stat cache of the last parent snapshot asked about
    /// ([`Catalog::cached_file`]).
    stat_memo: Mutex<Option<entries::StatMemo>>,
    /// The chunk filter [`Catalog::existing`] asks first (see `filtered`).
    filter: Mutex<filtered::FilterState>,
}

fn ns_to_time(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

fn chunks_to_blob(chunks: &[ChunkId]) -> Vec<u8> {
    chunks.iter().flat_map(|c| c.0).collect()
}

fn blob_to_chunks(blob: &[u8]) -> Vec<ChunkId> {
    blob.chunks_exact(32)
        .filter_map(ChunkId::from_slice)
        .collect()
}

/// The `entries.kind` codes: the tree kind bytes (docs/FORMAT.md).
fn kind_code(kind: EntryKind) -> i64 {
    crate::format::tree::TreeKind::of(kind) as i64
}

fn kind_from_code(code: i64) -> EntryKind {
    match code {
        1 => EntryKind::Dir,
        2 => EntryKind::Symlink,
        3 => EntryKind::Fifo,
        4 => EntryKind::CharDevice,
        5 => EntryKind::BlockDevice,
        _ => EntryKind::File,
    }
}

impl Catalog {
    /// Opens (creating if absent) the catalog at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(|source| sql_error(path, source))?;
        let catalog = Catalog {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            stat_memo: Mutex::new(None),
            filter: Mutex::default(),
        };
        catalog.init()?;
        Ok(catalog)
    }

    /// Opens the existing catalog at `path` for reading only: no schema is
    /// created, no pragma is written, nothing is checkpointed, so it works
    /// on a full disk.
    ///
    /// A WAL-mode database is read through its `-shm` index, which a
    /// reader creates (and must grow) when no other connection has it open;
    /// on a full disk that fails as "disk I/O error". Then, and only when
    /// the `-wal` file is absent or empty (so the main file holds every
    /// committed transaction), the catalog is reopened with `immutable=1`,
    /// which reads the main file without `-shm`. `immutable` is wrong while
    /// another process writes; here no connection has the WAL in use (an
    /// open writer would have left a `-shm` we could read through), and a
    /// writer can hardly start on a disk that has no room for its WAL. This
    /// connection never writes, so the worst a writer racing it could cause
    /// is a failed or stale read in this one command, never damage.
    pub fn open_read_only(path: &Path) -> Result<Self> {
        match Self::open_read_only_with(path, false) {
            Err(e) if e.is_no_space() && wal_is_empty(path) => {
                Self::open_read_only_with(path, true)
            }
            other => other,
        }
    }

    fn open_read_only_with(path: &Path, immutable: bool) -> Result<Self> {
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = if immutable {
            let uri = format!("file:{}?immutable=1", uri_path(path));
            Connection::open_with_flags(uri, flags)
        } else {
            Connection::open_with_flags(path, flags)
        }
        .map_err(|source| sql_error(path, source))?;
        conn.busy_timeout(Duration::from_secs(60))
            .map_err(|source| sql_error(path, source))?;
        // Connection-local settings only (see `init`); temp_store stays in
        // memory, as a reader builds no mark set.
        conn.execute_batch("PRAGMA cache_size=-16384; PRAGMA foreign_keys=ON;")
            .map_err(|source| sql_error(path, source))?;
        let catalog = Catalog {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            stat_memo: Mutex::new(None),
            filter: Mutex::default(),
        };
        // An older catalog (schema 1 to 4) is upgraded first: the one write a reader
        // makes, once per catalog (it fails like any write on a full disk).
        if matches!(catalog.schema_version()?.as_str(), "1" | "2" | "3" | "4") {
            drop(catalog);
            Self::open(path)?;
            return Self::open_read_only_with(path, immutable);
        }
        catalog.check_schema_version()?;
        Ok(catalog)
    }

    /// True when this connection cannot write (see [`Catalog::open_read_only`]).
    pub fn is_read_only(&self) -> bool {
        self.lock().is_readonly(rusqlite::MAIN_DB).unwrap_or(false)
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        move |source| sql_error(&self.path, source)
    }

    fn init(&self) -> Result<()> {
        let connection = self.lock();
        connection
            .busy_timeout(Duration::from_secs(60))
            .map_err(self.err())?;
        // 16 MiB of page cache holds the interior pages of a 10M-chunk
        // index, so a lookup costs about one leaf read (docs/BENCHMARKS.md).
        // temp_store=FILE: the bundled SQLite keeps temp tables in memory by
        // default; gc's mark set (one row per live chunk) must spill to disk.
        connection
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;
                 PRAGMA cache_size=-16384; PRAGMA temp_store=FILE;",
            )
            .map_err(self.err())?;
        let has_meta: bool = connection
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name='meta'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(self.err())?
            > 0;
        if !has_meta {
            let tx = connection.unchecked_transaction().map_err(self.err())?;
            tx.execute_batch(SCHEMA).map_err(self.err())?;
            tx.execute_batch(entries::TABLES).map_err(self.err())?;
            tx.execute_batch(entries::V3_COLUMNS).map_err(self.err())?;
            tx.execute_batch(entries::V4_COLUMNS).map_err(self.err())?;
            tx.execute_batch(delta::SCHEMA).map_err(self.err())?;
            tx.execute(
                "INSERT INTO meta(key, value) VALUES ('schema_version', ?1)",
                [SCHEMA_VERSION.to_string()],
            )
            .map_err(self.err())?;
            filtered::catalog_id(&tx).map_err(self.err())?;
            return tx.commit().map_err(self.err());
        }
        drop(connection);
        if self.schema_version()? == "1" {
            entries::migrate_from_v1(&mut self.lock()).map_err(self.err())?;
        }
        for from in ["2", "3"] {
            if self.schema_version()? == from {
                entries::migrate_columns(&mut self.lock(), from).map_err(self.err())?;
            }
        }
        if self.schema_version()? == "4" {
            packs::migrate_from_v4(&mut self.lock()).map_err(self.err())?;
        }
        self.check_schema_version()
    }

    fn schema_version(&self) -> Result<String> {
        self.lock()
            .query_row(
                "SELECT value FROM meta WHERE key='schema_version'",
                [],
                |r| r.get(0),
            )
            .map_err(self.err())
    }

    fn check_schema_version(&self) -> Result<()> {
        let found = self.schema_version()?;
        match found.parse::<u32>() {
            Ok(SCHEMA_VERSION) => Ok(()),
            _ => Err(Error::UnsupportedVersion {
                what: "catalog schema",
                path: self.path.display().to_string(),
                found: found.parse().unwrap_or(0),
                supported: SCHEMA_VERSION,
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for as long as the guard lives. A poisoned lock
    /// is taken anyway: a panic mid-transaction rolled it back on unwind.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Maps a SQLite error to [`Error::Catalog`] naming this database, or
    /// to [`Error::NoSpace`] when the disk is full (see [`sql_error`]).
    fn sql_err(&self, source: rusqlite::Error) -> Error {
        sql_error(&self.path, source)
    }

    /// True when the chunk is stored in some pack.
    pub fn has_chunk(&self, id: &ChunkId) -> Result<bool> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT 1 FROM chunks WHERE chunk_id = ?1")
            .map_err(self.err())?;
        stmt.exists([&id.0[..]]).map_err(self.err())
    }

    /// Which of `ids` are stored, in one query per [`LOOKUP_BATCH`] ids:
    /// the per-statement overhead of single lookups dominates otherwise.
    /// Only the ids the chunk filter may hold are asked of SQLite (see
    /// `filtered`): at 10 M chunks a miss costs a B-tree probe outside the
    /// page cache.
    pub fn existing(&self, ids: &[ChunkId]) -> Result<HashSet<ChunkId>> {
        let conn = self.lock();
        let candidates = self.filter_candidates(&conn, ids)?;
        let ids = candidates.as_deref().unwrap_or(ids);
        let mut found = HashSet::new();
        for group in ids.chunks(LOOKUP_BATCH) {
            let sql = if group.len() == LOOKUP_BATCH {
                &*BATCH_SQL
            } else {
                &batch_sql(group.len())
            };
            let mut stmt = conn.prepare_cached(sql).map_err(self.err())?;
            let params = rusqlite::params_from_iter(group.iter().map(|id| &id.0[..]));
            let mut rows = stmt.query(params).map_err(self.err())?;
            while let Some(row) = rows.next().map_err(self.err())? {
                let blob: Vec<u8> = row.get(0).map_err(self.err())?;
                found.extend(ChunkId::from_slice(&blob));
            }
        }
        Ok(found)
    }

    /// Where a chunk is stored, if anywhere.
    pub fn locate(&self, id: &ChunkId) -> Result<Option<ChunkLocation>> {
        self.locate_on(&self.lock(), id)
    }

    /// Where each chunk lives, in order, under one lock (restore asks for
    /// whole files at a time); a chunk the catalog lacks is an error.
    pub fn locate_all(&self, ids: &[ChunkId]) -> Result<Vec<ChunkLocation>> {
        let mut lists = self.locate_lists(&[ids])?;
        lists.pop().expect("one list in, one out")
    }

    /// Locates the chunks of several files at once: one result per list,
    /// where a chunk the catalog lacks fails only its own list. One read
    /// transaction for all of them, not one per statement (which would
    /// lock and check the WAL once per lookup: a restore of 30,000 small
    /// files spent more on that than on the lookups).
    pub fn locate_lists(&self, lists: &[&[ChunkId]]) -> Result<Vec<Result<Vec<ChunkLocation>>>> {
        let conn = self.lock();
        let tx = conn.unchecked_transaction().map_err(self.err())?;
        let out = lists
            .iter()
            .map(|ids| {
                ids.iter()
                    .map(|id| {
                        self.locate_on(&tx, id)?
                            .ok_or(Error::ChunkMissing { chunk: *id })
                    })
                    .collect()
            })
            .collect();
        // Read only: ending it rolls nothing back.
        drop(tx);
        Ok(out)
    }

    fn locate_on(&self, conn: &Connection, id: &ChunkId) -> Result<Option<ChunkLocation>> {
        let mut stmt = conn
            .prepare_cached(
                "SELECT p.pack_id, c.offset, c.stored_len, c.raw_len, c.codec
                 FROM chunks c JOIN packs p ON p.id = c.pack WHERE c.chunk_id = ?1",
            )
            .map_err(self.err())?;
        stmt.query_row([&id.0[..]], |r| {
            let pack: Vec<u8> = r.get(0)?;
            Ok((
                pack,
                r.get::<_, i64>(1)? as u64,
                r.get(2)?,
                r.get(3)?,
                r.get::<_, u8>(4)?,
            ))
        })
        .optional()
        .map_err(self.err())?
        .map(|(pack, offset, stored_len, raw_len, codec)| {
            let pack = PackId::from_slice(&pack).ok_or(Error::ChunkMissing { chunk: *id })?;
            let codec = Codec::from_byte(codec).ok_or(Error::ChunkMissing { chunk: *id })?;
            Ok(ChunkLocation {
                pack,
                entry: PackEntry {
                    chunk: *id,
                    offset,
                    stored_len,
                    raw_len,
                    codec,
                },
            })
        })
        .transpose()
    }

    /// Records a durable pack and its chunks in one transaction. A chunk
    /// already stored elsewhere (a concurrent writer) keeps its first home.
    pub fn add_pack(&self, id: &PackId, size: u64, entries: &[PackEntry]) -> Result<()> {
        let conn = self.lock();
        let tx = conn.unchecked_transaction().map_err(self.err())?;
        let pack = pack_row(&tx, id, size, entries.len()).map_err(self.err())?;
        let generation = filtered::bump_generation(&tx).map_err(self.err())?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO chunks(chunk_id, pack, offset, stored_len, raw_len, codec)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(self.err())?;
            for e in entries {
                stmt.execute(params![
                    &e.chunk.0[..],
                    pack,
                    e.offset as i64,
                    e.stored_len,
                    e.raw_len,
                    e.codec as u8
                ])
                .map_err(self.err())?;
            }
        }
        tx.commit().map_err(self.err())?;
        // Still under the connection's lock: no lookup sees the rows
        // before the filter does.
        self.filter_added(generation, entries);
        Ok(())
    }

    /// Makes a snapshot visible: its row and its entries (each stored once
    /// across snapshots, see `entries`), in one transaction. `inodes` holds the stat-cache inode for each file entry.
    pub fn add_snapshot(&self, id: &SnapshotId, m: &Manifest, inodes: &[u64]) -> Result<()> {
        let conn = self.lock();
        let tx = conn.unchecked_transaction().map_err(self.err())?;
        tx.execute(
            "INSERT INTO snapshots(snapshot_id, kind, name, version, description, host, time_ns, sources,
                tags, parent, file_count, logical_bytes, files_read, bytes_read, added_raw, added_stored, duration_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            params![
                &id.0[..],
                m.label.kind,
                m.label.name,
                m.label.version,
                m.label.description,
                m.host,
                m.time_ns,
                serde_json::to_string(&m.sources).expect("strings serialise"),
                serde_json::to_string(&m.label.tags).expect("strings serialise"),
                m.parent.map(|p| p.0.to_vec()),
                m.files.len() as i64,
                m.logical_bytes() as i64,
                m.stats.files_read as i64,
                m.stats.bytes_read as i64,
                m.stats.added_raw as i64,
                m.stats.added_stored as i64,
                m.stats.duration_ms as i64,
            ],
        )
        .map_err(self.err())?;
        let rowid = tx.last_insert_rowid();
        let dirs = entries::store(&tx, &m.files, inodes).map_err(self.err())?;
        tx.execute(
            "UPDATE snapshots SET dirs = ?1 WHERE id = ?2",
            params![dirs, rowid],
        )
        .map_err(self.err())?;
        tx.commit().map_err(self.err())
    }

    /// Snapshots matching `filter`, oldest first.
    pub fn snapshots(&self, filter: &SnapshotFilter) -> Result<Vec<SnapshotInfo>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, snapshot_id, kind, name, version, tags, description, host, time_ns, sources,
                        file_count, logical_bytes, files_read, bytes_read, added_raw, added_stored, duration_ms, damaged
                 FROM snapshots
                 WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR name = ?2)
                   AND (?3 IS NULL OR EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ?3))
                 ORDER BY time_ns, snapshot_id",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(
                params![filter.kind, filter.name, filter.tag],
                snapshot_from_row,
            )
            .map_err(self.err())?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.err())
    }

    /// The file entries of a snapshot, sorted by path.
    pub fn files(&self, snap: &SnapshotInfo) -> Result<Vec<FileEntry>> {
        let conn = self.lock();
        let tx = conn.unchecked_transaction().map_err(self.err())?;
        let rows = entries::load(&tx, snap.rowid).map_err(self.err())?;
        Ok(rows.into_iter().map(|(f, _)| f).collect())
    }

    /// The stat-cache record of `path` in snapshot `snap`, if it was a file.
    /// The first question about a snapshot loads its whole stat cache, which
    /// the next ones (a snapshot run asks about every file) then read.
    pub fn cached_file(&self, snap: &SnapshotInfo, path: &str) -> Result<Option<CachedFile>> {
        let mut memo = self
            .stat_memo
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if memo.as_ref().is_none_or(|m| m.snapshot != snap.id) {
            let conn = self.lock();
            let tx = conn.unchecked_transaction().map_err(self.err())?;
            *memo = Some(entries::StatMemo::load(&tx, snap.id, snap.rowid).map_err(self.err())?);
        }
        Ok(memo.as_ref().and_then(|m| m.files.get(path).cloned()))
    }

    /// Totals over all packs: (pack count, stored bytes).
    pub fn pack_totals(&self) -> Result<(u64, u64)> {
        let conn = self.lock();
        conn.query_row(
            "SELECT count(*), coalesce(sum(size), 0) FROM packs",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )
        .map_err(self.err())
    }

    /// Totals over all chunks: (count, raw bytes, stored bytes).
    pub fn chunk_totals(&self) -> Result<(u64, u64, u64)> {
        let conn = self.lock();
        conn.query_row(
            "SELECT count(*), coalesce(sum(raw_len), 0), coalesce(sum(stored_len), 0) FROM chunks",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ))
            },
        )
        .map_err(self.err())
    }
}

fn snapshot_from_row(r: &Row<'_>) -> rusqlite::Result<SnapshotInfo> {
    let id: Vec<u8> = r.get(1)?;
    let tags: String = r.get(5)?;
    let sources: String = r.get(9)?;
    let u = |i: usize| r.get::<_, i64>(i).map(|v| v as u64);
    Ok(SnapshotInfo {
        rowid: r.get(0)?,
        id: SnapshotId::from_slice(&id).unwrap_or(SnapshotId([0; 32])),
        label: SnapshotLabel {
            kind: r.get(2)?,
            name: r.get(3)?,
            version: r.get(4)?,
            tags: serde_json::from_str(&tags).unwrap_or_default(),
            description: r.get(6)?,
        },
        host: r.get(7)?,
        time: ns_to_time(r.get(8)?),
        sources: serde_json::from_str(&sources).unwrap_or_default(),
        file_count: u(10)?,
        logical_bytes: u(11)?,
        stats: RunStats {
            files_read: u(12)?,
            bytes_read: u(13)?,
            added_raw: u(14)?,
            added_stored: u(15)?,
            duration_ms: u(16)?,
        },
        damaged: r.get::<_, i64>(17)? != 0,
    })
}

/// The row id of pack `id`, inserting its row first unless it is listed
/// (a pack identical to one listed is the same file). Every writer of a
/// pack row (snapshot, gc's repack, repair) goes through this.
fn pack_row(
    tx: &rusqlite::Transaction<'_>,
    id: &PackId,
    size: u64,
    chunks: usize,
) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT OR IGNORE INTO packs(pack_id, size, chunk_count, created_ns) VALUES (?1, ?2, ?3, ?4)",
        params![&id.0[..], size as i64, chunks as i64, now_ns()],
    )?;
    tx.query_row(
        "SELECT id FROM packs WHERE pack_id = ?1",
        [&id.0[..]],
        |r| r.get(0),
    )
}

/// The one mapping of SQLite errors on the catalog at `path`. `SQLITE_FULL`
/// is a full disk; so is an I/O error while the filesystem holding the
/// catalog has (almost) no space left: SQLite reports a failed `-shm` or
/// WAL extension as a bare "disk I/O error", and a message that blames the
/// catalog and suggests a rebuild would send the user the wrong way.
pub(crate) fn sql_error(path: &Path, source: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode;
    let full = match source.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => true,
        Some(ErrorCode::SystemIoFailure | ErrorCode::CannotOpen) => nearly_full(path),
        _ => false,
    };
    if full {
        return Error::NoSpace { path: path.into() };
    }
    Error::Catalog {
        path: path.to_path_buf(),
        source,
    }
}

/// Less than this many bytes free counts as full when SQLite reports an I/O
/// error: enough for a WAL frame and a `-shm` page, far below what any
/// healthy filesystem keeps free.
const NEARLY_FULL_BYTES: u64 = 1 << 20;

/// True when the filesystem holding `path` has under [`NEARLY_FULL_BYTES`]
/// available (to us: root may use reserved blocks, others may not).
fn nearly_full(path: &Path) -> bool {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    crate::host::disk_space(dir).is_some_and(|(avail, _)| avail < NEARLY_FULL_BYTES)
}

/// True when the catalog's `-wal` file is absent or empty: the main file
/// then holds every committed transaction.
fn wal_is_empty(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal)).map_or(true, |m| m.len() == 0)
}

/// `path` for a `file:` URI: absolute, with `%`, `?` and `#` escaped.
fn uri_path(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = String::new();
    for c in abs.to_string_lossy().chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3f"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

/// Now, in nanoseconds since the Unix epoch.
pub(crate) fn now_ns() -> i64 {
    Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
