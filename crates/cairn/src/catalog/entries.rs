//! File entries stored once (catalog schema 2; schema 3 adds owner,
//! hard-link group, rdev and `incomplete` columns; schema 4 keeps each
//! directory's tree id in the dirs row of its listing, see [`store`]).
//!
//! Schema 1 kept one `files` row per file per snapshot: 30,000 files cost
//! 6 MB of catalog per snapshot even when nothing changed. Now an entry
//! (path, kind, mode, mtime, size, sha256, link target, stat-cache inode,
//! chunk list) is one `entries` row, keyed by a hash of those fields, and
//! the entries whose parent is one directory form a `dirs` row, keyed by a
//! hash of the directory's path and its entries. A snapshot row lists its
//! dir ids (`snapshots.dirs`). An unchanged re-snapshot therefore adds one
//! snapshot row with a list of dir ids; a changed file adds one entry row
//! and a new row for its directory.
//!
//! Id lists are blobs of zigzag-encoded deltas between consecutive ids, as
//! LEB128 varints, in ascending order since schema 4 (readers take them as
//! sets and sort entries by path): ids written together are mostly
//! consecutive, so most take one byte. `refs` counts the holders of a row
//! (snapshots for a dir, dirs for an entry); removing a snapshot releases
//! its dirs, and a row whose count reaches zero is deleted, so nothing
//! unreferenced stays.

use std::collections::{HashMap, HashSet};

use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension};

use super::{blob_to_chunks, chunks_to_blob, kind_code, kind_from_code, CachedFile};
use crate::format::id::{ChunkId, SnapshotId};
use crate::format::manifest::{EntryKind, FileEntry};

/// The tables schema 2 adds to schema 1 (and `snapshots.dirs`, see
/// [`migrate_from_v1`]). `hash` is the first 16 bytes of a BLAKE3 over the
/// row's fields ([`entry_hash`], [`dir_hash`]).
pub(super) const TABLES: &str = "
CREATE TABLE entries (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    refs INTEGER NOT NULL,
    path TEXT NOT NULL,
    kind INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    sha256 BLOB NOT NULL,
    link_target TEXT NOT NULL,
    inode INTEGER NOT NULL,
    chunks BLOB NOT NULL
);
CREATE TABLE dirs (
    id INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    refs INTEGER NOT NULL,
    entries BLOB NOT NULL
);
";

/// The columns schema 3 adds to `entries` (also in a new catalog): the
/// owner (`uid`/`gid` NULL when not recorded), the hard-link group (NULL
/// when none), the device number and the `incomplete` flag.
pub(super) const V3_COLUMNS: &str = "
ALTER TABLE entries ADD COLUMN uid INTEGER;
ALTER TABLE entries ADD COLUMN gid INTEGER;
ALTER TABLE entries ADD COLUMN hardlink INTEGER;
ALTER TABLE entries ADD COLUMN rdev INTEGER NOT NULL DEFAULT 0;
ALTER TABLE entries ADD COLUMN incomplete INTEGER NOT NULL DEFAULT 0;
";

/// The column schema 4 adds to `dirs` (also in a new catalog): the tree id
/// of the directory the row lists, NULL in rows written before (whose
/// directory entries hold their trees) and for a version-1 manifest's
/// directories, which have none. See [`store`].
pub(super) const V4_COLUMNS: &str = "
ALTER TABLE dirs ADD COLUMN tree BLOB;
";

const HASH_LEN: usize = 16;

/// Appends `ids` to `out` as zigzag deltas in LEB128.
pub(super) fn encode_ids(ids: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ids.len() + 4);
    let mut prev = 0i64;
    for &id in ids {
        let delta = id.wrapping_sub(prev);
        prev = id;
        let mut v = ((delta << 1) ^ (delta >> 63)) as u64;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

/// The ids [`encode_ids`] wrote; an error for a truncated or overlong blob.
pub(super) fn decode_ids(blob: &[u8]) -> rusqlite::Result<Vec<i64>> {
    let mut out = Vec::with_capacity(blob.len());
    let mut prev = 0i64;
    let mut bytes = blob.iter();
    while let Some(&first) = bytes.next() {
        let (mut v, mut shift, mut byte) = (0u64, 0u32, first);
        loop {
            if shift > 63 {
                return Err(malformed("an id list holds an overlong number"));
            }
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            byte = *bytes
                .next()
                .ok_or_else(|| malformed("an id list ends inside a number"))?;
        }
        let delta = ((v >> 1) as i64) ^ -((v & 1) as i64);
        prev = prev.wrapping_add(delta);
        out.push(prev);
    }
    Ok(out)
}

fn malformed(what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, Type::Blob, what.to_string().into())
}

fn put_bytes(h: &mut blake3::Hasher, b: &[u8]) {
    h.update(&(b.len() as u64).to_le_bytes());
    h.update(b);
}

/// The key of an entry row: every field, each length-prefixed or fixed.
fn entry_hash(f: &FileEntry, inode: u64) -> [u8; HASH_LEN] {
    let mut h = blake3::Hasher::new();
    put_bytes(&mut h, f.path.as_bytes());
    h.update(&[kind_code(f.kind) as u8]);
    h.update(&f.mode.to_le_bytes());
    h.update(&f.mtime_ns.to_le_bytes());
    h.update(&f.size.to_le_bytes());
    h.update(&f.sha256);
    put_bytes(&mut h, f.link_target.as_bytes());
    h.update(&inode.to_le_bytes());
    put_bytes(&mut h, &chunks_to_blob(&f.chunks));
    // Schema 3's fields, only when one is set: an entry without them keys
    // the row a schema-2 catalog already holds.
    if f.owner.is_some() || f.hardlink.is_some() || f.rdev != 0 || f.incomplete {
        h.update(&[3]);
        let (uid, gid) = f.owner.map_or((None, None), |(u, g)| (Some(u), Some(g)));
        for v in [uid.map(u64::from), gid.map(u64::from), f.hardlink] {
            h.update(&[v.is_some() as u8]);
            h.update(&v.unwrap_or(0).to_le_bytes());
        }
        h.update(&f.rdev.to_le_bytes());
        h.update(&[f.incomplete as u8]);
    }
    truncate(h)
}

/// The key of a dir row: its path, its entries' keys in order, and (schema
/// 4, when there is one) the tree id of the directory itself.
fn dir_hash(parent: &str, entries: &[[u8; HASH_LEN]], tree: Option<&ChunkId>) -> [u8; HASH_LEN] {
    let mut h = blake3::Hasher::new();
    put_bytes(&mut h, parent.as_bytes());
    h.update(&(entries.len() as u64).to_le_bytes());
    for e in entries {
        h.update(e);
    }
    if let Some(tree) = tree {
        h.update(&[4]);
        h.update(&tree.0);
    }
    truncate(h)
}

fn truncate(h: blake3::Hasher) -> [u8; HASH_LEN] {
    let mut out = [0; HASH_LEN];
    out.copy_from_slice(&h.finalize().as_bytes()[..HASH_LEN]);
    out
}

/// The directory part of `path` ("" for a top-level entry).
fn parent_of(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

/// The indexes of `files` grouped by parent directory, groups in order of
/// first appearance and entries in manifest order within each.
fn group_by_parent(files: &[FileEntry]) -> Vec<(&str, Vec<usize>)> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        let parent = parent_of(&f.path);
        let g = *index.entry(parent).or_insert_with(|| {
            groups.push((parent, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(i);
    }
    groups
}

/// The directories of `files` whose tree id moves into the dirs row of
/// their listing (schema 4): each directory entry with one chunk (its tree)
/// that has entries of its own, by path. An empty directory has no listing
/// row, so its entry keeps its tree.
fn moved_trees<'f>(
    files: &'f [FileEntry],
    groups: &[(&str, Vec<usize>)],
) -> HashMap<&'f str, ChunkId> {
    let listed: HashSet<&str> = groups.iter().map(|(parent, _)| *parent).collect();
    files
        .iter()
        .filter(|f| f.kind == EntryKind::Dir && f.chunks.len() == 1)
        .filter(|f| listed.contains(f.path.as_str()))
        .map(|f| (f.path.as_str(), f.chunks[0]))
        .collect()
}

/// Stores the entries of one snapshot (inside the caller's transaction):
/// finds or inserts each entry and each directory row, counts one more
/// reference to every directory, and returns the snapshot's dir-id list.
/// `inodes[i]` is the stat-cache inode of `files[i]` (0 when absent).
///
/// A directory's tree id is kept in the dirs row of its listing, not in its
/// own entry (see [`moved_trees`]): a change deep in the tree then makes a
/// new listing row for each ancestor, but leaves the ancestors' entries
/// the rows they were, which is most of what a snapshot used to add.
pub(super) fn store(
    conn: &Connection,
    files: &[FileEntry],
    inodes: &[u64],
) -> rusqlite::Result<Vec<u8>> {
    let mut find_entry = conn.prepare_cached("SELECT id FROM entries WHERE hash = ?1")?;
    let mut add_entry = conn.prepare_cached(
        "INSERT INTO entries(hash, refs, path, kind, mode, mtime_ns, size, sha256, link_target, inode, chunks,
                             uid, gid, hardlink, rdev, incomplete)
         VALUES (?1, 0, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
    let mut find_dir = conn.prepare_cached("SELECT id FROM dirs WHERE hash = ?1")?;
    let mut ref_dir = conn.prepare_cached("UPDATE dirs SET refs = refs + 1 WHERE id = ?1")?;
    let mut add_dir =
        conn.prepare_cached("INSERT INTO dirs(hash, refs, entries, tree) VALUES (?1, 1, ?2, ?3)")?;
    let mut ref_entry = conn.prepare_cached("UPDATE entries SET refs = refs + 1 WHERE id = ?1")?;
    let groups = group_by_parent(files);
    let trees = moved_trees(files, &groups);
    let mut dir_ids = Vec::new();
    for (parent, members) in groups {
        let mut hashes = Vec::with_capacity(members.len());
        let mut ids = Vec::with_capacity(members.len());
        for i in members {
            let inode = inodes.get(i).copied().unwrap_or(0);
            let stripped;
            let f = if trees.contains_key(files[i].path.as_str()) {
                stripped = FileEntry {
                    chunks: Vec::new(),
                    ..files[i].clone()
                };
                &stripped
            } else {
                &files[i]
            };
            let hash = entry_hash(f, inode);
            let id = match find_entry.query_row([&hash[..]], |r| r.get(0)).optional()? {
                Some(id) => id,
                None => {
                    add_entry.execute(params![
                        &hash[..],
                        f.path,
                        kind_code(f.kind),
                        f.mode,
                        f.mtime_ns,
                        f.size as i64,
                        &f.sha256[..],
                        f.link_target,
                        inode as i64,
                        chunks_to_blob(&f.chunks),
                        f.owner.map(|o| o.0),
                        f.owner.map(|o| o.1),
                        f.hardlink.map(|g| g as i64),
                        f.rdev as i64,
                        f.incomplete,
                    ])?;
                    conn.last_insert_rowid()
                }
            };
            hashes.push(hash);
            ids.push(id);
        }
        let tree = trees.get(parent);
        let hash = dir_hash(parent, &hashes, tree);
        let dir = match find_dir.query_row([&hash[..]], |r| r.get(0)).optional()? {
            Some(dir) => {
                ref_dir.execute([dir])?;
                dir
            }
            None => {
                // Ascending (schema 4): a listing whose files changed in
                // different snapshots pays one long delta per changed
                // entry, not one there and one back.
                ids.sort_unstable();
                add_dir.execute(params![
                    &hash[..],
                    encode_ids(&ids),
                    tree.map(|t| t.0.to_vec())
                ])?;
                for id in &ids {
                    ref_entry.execute([id])?;
                }
                conn.last_insert_rowid()
            }
        };
        dir_ids.push(dir);
    }
    dir_ids.sort_unstable();
    Ok(encode_ids(&dir_ids))
}

/// Drops one reference to each dir in `dirs` (a snapshot's list), deleting
/// the dirs nobody lists any more and then the entries no dir lists.
pub(super) fn release(conn: &Connection, dirs: &[u8]) -> rusqlite::Result<()> {
    let mut unref_dir = conn.prepare_cached("UPDATE dirs SET refs = refs - 1 WHERE id = ?1")?;
    let mut drop_dir =
        conn.prepare_cached("DELETE FROM dirs WHERE id = ?1 AND refs <= 0 RETURNING entries")?;
    let mut unref_entry =
        conn.prepare_cached("UPDATE entries SET refs = refs - 1 WHERE id = ?1")?;
    let mut drop_entry = conn.prepare_cached("DELETE FROM entries WHERE id = ?1 AND refs <= 0")?;
    for dir in decode_ids(dirs)? {
        unref_dir.execute([dir])?;
        let gone: Option<Vec<u8>> = drop_dir.query_row([dir], |r| r.get(0)).optional()?;
        if let Some(entries) = gone {
            for id in decode_ids(&entries)? {
                unref_entry.execute([id])?;
                drop_entry.execute([id])?;
            }
        }
    }
    Ok(())
}

/// The dir-id list of snapshot row `rowid` (empty when there is no row).
fn snapshot_dirs(conn: &Connection, rowid: i64) -> rusqlite::Result<Vec<i64>> {
    let blob: Option<Vec<u8>> = conn
        .prepare_cached("SELECT dirs FROM snapshots WHERE id = ?1")?
        .query_row([rowid], |r| r.get(0))
        .optional()?;
    decode_ids(&blob.unwrap_or_default())
}

/// The entry ids dir `dir` lists, and the tree id of the directory it
/// lists when the row holds it (schema 4; `None` in older rows, whose
/// directory entries hold their trees themselves).
fn dir_entries(conn: &Connection, dir: i64) -> rusqlite::Result<(Vec<i64>, Option<ChunkId>)> {
    let (blob, tree): (Vec<u8>, Option<Vec<u8>>) = conn
        .prepare_cached("SELECT entries, tree FROM dirs WHERE id = ?1")?
        .query_row([dir], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let tree = match tree {
        None => None,
        Some(t) => Some(
            ChunkId::from_slice(&t).ok_or_else(|| malformed("a dir's tree id is not 32 bytes"))?,
        ),
    };
    Ok((decode_ids(&blob)?, tree))
}

/// The distinct entry ids of the snapshot rows `rowids`, and the distinct
/// tree ids their dirs rows hold: each dir, which many snapshots share, is
/// read once.
pub(super) fn entry_ids_of(
    conn: &Connection,
    rowids: &[i64],
) -> rusqlite::Result<(HashSet<i64>, HashSet<ChunkId>)> {
    let mut dirs = HashSet::new();
    for &rowid in rowids {
        dirs.extend(snapshot_dirs(conn, rowid)?);
    }
    let mut entries = HashSet::new();
    let mut trees = HashSet::new();
    for dir in dirs {
        let (ids, tree) = dir_entries(conn, dir)?;
        entries.extend(ids);
        trees.extend(tree);
    }
    Ok((entries, trees))
}

/// The chunk-id blob of entry `id`.
pub(super) fn entry_chunks(conn: &Connection, id: i64) -> rusqlite::Result<Vec<u8>> {
    conn.prepare_cached("SELECT chunks FROM entries WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
}

/// A file entry and its stat-cache inode from a row of the columns
/// [`ENTRY_COLUMNS`], in that order (an `entries` row, or a schema-1
/// `files` row).
fn entry_row(r: &rusqlite::Row) -> rusqlite::Result<(FileEntry, u64)> {
    let sha: Vec<u8> = r.get(5)?;
    let chunks: Vec<u8> = r.get(7)?;
    let entry = FileEntry {
        path: r.get(0)?,
        kind: kind_from_code(r.get(1)?),
        mode: r.get(2)?,
        mtime_ns: r.get(3)?,
        size: r.get::<_, i64>(4)? as u64,
        sha256: sha.try_into().unwrap_or([0; 32]),
        link_target: r.get(6)?,
        chunks: blob_to_chunks(&chunks),
        ..FileEntry::default()
    };
    Ok((entry, r.get::<_, i64>(8)? as u64))
}

/// The columns [`entry_row`] reads.
const ENTRY_COLUMNS: &str = "path, kind, mode, mtime_ns, size, sha256, link_target, chunks, inode";

/// [`ENTRY_COLUMNS`] and then schema 3's, which [`entry_row_v3`] reads.
const ENTRY_COLUMNS_V3: &str =
    "path, kind, mode, mtime_ns, size, sha256, link_target, chunks, inode, \
                                uid, gid, hardlink, rdev, incomplete";

/// [`entry_row`] of an `entries` row with schema 3's columns.
fn entry_row_v3(r: &rusqlite::Row) -> rusqlite::Result<(FileEntry, u64)> {
    let (mut entry, inode) = entry_row(r)?;
    let (uid, gid): (Option<u32>, Option<u32>) = (r.get(9)?, r.get(10)?);
    entry.owner = uid.zip(gid);
    entry.hardlink = r.get::<_, Option<i64>>(11)?.map(|g| g as u64);
    entry.rdev = r.get::<_, i64>(12)? as u64;
    entry.incomplete = r.get(13)?;
    Ok((entry, inode))
}

/// The entries of snapshot row `rowid` with their stat-cache inodes,
/// sorted by path. A directory whose tree its listing's dirs row holds
/// (schema 4) gets it back as its one chunk.
pub(super) fn load(conn: &Connection, rowid: i64) -> rusqlite::Result<Vec<(FileEntry, u64)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS_V3} FROM entries WHERE id = ?1"
    ))?;
    let mut out = Vec::new();
    let mut trees: HashMap<String, ChunkId> = HashMap::new();
    for dir in snapshot_dirs(conn, rowid)? {
        let (ids, tree) = dir_entries(conn, dir)?;
        let first = out.len();
        for id in ids {
            out.push(stmt.query_row([id], entry_row_v3)?);
        }
        if let (Some(tree), Some((entry, _))) = (tree, out.get(first)) {
            trees.insert(parent_of(&entry.path).to_string(), tree);
        }
    }
    if !trees.is_empty() {
        for (entry, _) in &mut out {
            if entry.kind == EntryKind::Dir && entry.chunks.is_empty() {
                if let Some(tree) = trees.get(&entry.path) {
                    entry.chunks = vec![*tree];
                }
            }
        }
    }
    // In place: a stable sort would copy half the list aside, and paths
    // are unique, so stability buys nothing.
    out.sort_unstable_by(|a, b| a.0.path.cmp(&b.0.path));
    Ok(out)
}

/// The stat cache of one snapshot: its regular files by path. Loaded once
/// per parent snapshot, as a snapshot run asks for every file in turn.
pub(super) struct StatMemo {
    pub snapshot: SnapshotId,
    pub files: HashMap<String, CachedFile>,
}

impl StatMemo {
    pub(super) fn load(
        conn: &Connection,
        snapshot: SnapshotId,
        rowid: i64,
    ) -> rusqlite::Result<Self> {
        let files = load(conn, rowid)?
            .into_iter()
            .filter(|(f, _)| f.kind == EntryKind::File)
            .map(|(f, inode)| {
                let cached = CachedFile {
                    size: f.size,
                    mtime_ns: f.mtime_ns,
                    inode,
                    sha256: f.sha256,
                    chunks: f.chunks,
                };
                (f.path, cached)
            })
            .collect();
        Ok(StatMemo { snapshot, files })
    }
}

/// Upgrades a schema-1 catalog in place, in one immediate transaction
/// (a second process opening it at the same time waits, then finds it
/// upgraded): every snapshot's `files` rows become entries and dirs, the
/// `files` table is dropped. The stat cache survives (inodes are kept).
pub(super) fn migrate_from_v1(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: String = tx.query_row(
        "SELECT value FROM meta WHERE key='schema_version'",
        [],
        |r| r.get(0),
    )?;
    if version != "1" {
        return Ok(());
    }
    tx.execute_batch(TABLES)?;
    tx.execute_batch(V3_COLUMNS)?;
    tx.execute_batch(V4_COLUMNS)?;
    tx.execute_batch(super::delta::SCHEMA)?;
    tx.execute_batch("ALTER TABLE snapshots ADD COLUMN dirs BLOB NOT NULL DEFAULT x'';")?;
    let rowids: Vec<i64> = tx
        .prepare("SELECT id FROM snapshots ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for rowid in rowids {
        let (files, inodes) = v1_files(&tx, rowid)?;
        let dirs = store(&tx, &files, &inodes)?;
        tx.execute(
            "UPDATE snapshots SET dirs = ?1 WHERE id = ?2",
            params![dirs, rowid],
        )?;
    }
    // Schema 4: the index goes in the next step (`packs::migrate_from_v4`).
    tx.execute_batch(
        "DROP TABLE files; UPDATE meta SET value = '4' WHERE key = 'schema_version';",
    )?;
    tx.commit()?;
    // The dropped rows' pages go back to the file system.
    conn.execute_batch("VACUUM;")
}

/// Upgrades a schema-2 or schema-3 catalog in place by adding columns, in
/// one immediate transaction like [`migrate_from_v1`]; no row is rewritten.
/// From 2: [`V3_COLUMNS`] with their defaults (no owner, group, device or
/// flag, which is what every schema-2 row is; row hashes stay valid, as an
/// entry without schema 3's fields hashes as before), then as from 3.
/// From 3: [`V4_COLUMNS`]: a dirs row without a tree lists directory
/// entries that hold their own, which [`load`] returns as they are; new
/// snapshots write the schema-4 layout, and the old rows go as the
/// snapshots that list them are forgotten.
pub(super) fn migrate_columns(conn: &mut Connection, from: &str) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: String = tx.query_row(
        "SELECT value FROM meta WHERE key='schema_version'",
        [],
        |r| r.get(0),
    )?;
    let added: &[&str] = match (from, version.as_str()) {
        ("2", "2") => &[V3_COLUMNS, V4_COLUMNS],
        ("3", "3") => &[V4_COLUMNS],
        _ => return Ok(()), // another process upgraded it first
    };
    for columns in added {
        tx.execute_batch(columns)?;
    }
    // Then on to 5 (`packs::migrate_from_v4`).
    tx.execute_batch("UPDATE meta SET value = '4' WHERE key = 'schema_version';")?;
    tx.commit()
}

/// One snapshot's schema-1 rows, in the order they were written (the
/// manifest's), with their inodes.
fn v1_files(conn: &Connection, rowid: i64) -> rusqlite::Result<(Vec<FileEntry>, Vec<u64>)> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM files WHERE snapshot = ?1 ORDER BY rowid"
    ))?;
    let rows = stmt.query_map([rowid], entry_row)?;
    let mut files = Vec::new();
    let mut inodes = Vec::new();
    for row in rows {
        let (f, inode) = row?;
        files.push(f);
        inodes.push(inode);
    }
    Ok((files, inodes))
}

#[cfg(test)]
/// Rows no holder counts, or whose count is wrong: recounted from the
/// snapshots' lists (tests check that removing snapshots leaves none).
pub(super) fn miscounted_rows(conn: &Connection) -> rusqlite::Result<u64> {
    let mut dir_refs: HashMap<i64, i64> = HashMap::new();
    let lists: Vec<Vec<u8>> = conn
        .prepare("SELECT dirs FROM snapshots")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for list in lists {
        for dir in decode_ids(&list)? {
            *dir_refs.entry(dir).or_default() += 1;
        }
    }
    let mut entry_refs: HashMap<i64, i64> = HashMap::new();
    let mut bad = 0;
    let dirs: Vec<(i64, i64, Vec<u8>)> = conn
        .prepare("SELECT id, refs, entries FROM dirs")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, refs, entries) in dirs {
        if dir_refs.get(&id).copied().unwrap_or(0) != refs || refs <= 0 {
            bad += 1;
        }
        for e in decode_ids(&entries)? {
            *entry_refs.entry(e).or_default() += 1;
        }
    }
    let entries: Vec<(i64, i64)> = conn
        .prepare("SELECT id, refs FROM entries")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, refs) in entries {
        if entry_refs.get(&id).copied().unwrap_or(0) != refs || refs <= 0 {
            bad += 1;
        }
    }
    Ok(bad)
}

/// Every chunk id the catalog's entries reference, once per entry row,
/// then the tree ids the dirs rows hold, once per row.
pub(super) fn for_each_chunk_list(
    conn: &Connection,
    mut f: impl FnMut(&[u8]) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    // Schema 4: the trees of directories are in their listings' rows.
    for sql in [
        "SELECT chunks FROM entries",
        "SELECT tree FROM dirs WHERE tree IS NOT NULL",
    ] {
        let mut stmt = conn.prepare(sql)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let blob: Vec<u8> = row.get(0)?;
            f(&blob)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
