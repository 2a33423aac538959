//! The chunk filter against real SQLite files: it never hides a stored
//! chunk (whatever state its file is in, whoever wrote the rows), and a
//! snapshot of data already stored adds no chunk.

use std::path::{Path, PathBuf};

use super::*;
use crate::catalog::FILE_NAME;
use crate::format::codec::Codec;
use crate::format::id::PackId;
use crate::progress::NoProgress;
use crate::repo::repository::Repository;
use crate::test_support::{random_bytes, TestRepo};

fn ids(from: u32, n: u32) -> Vec<ChunkId> {
    (from..from + n)
        .map(|i| ChunkId::of(&i.to_le_bytes()))
        .collect()
}

fn add(cat: &Catalog, pack: u8, ids: &[ChunkId]) {
    let entries: Vec<PackEntry> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| PackEntry {
            chunk: *id,
            offset: 16 + i as u64,
            stored_len: 1,
            raw_len: 1,
            codec: Codec::Raw,
        })
        .collect();
    cat.add_pack(&PackId::of(&[pack]), 1 << 20, &entries)
        .unwrap();
}

/// Every stored id is found and no other: the filter may only narrow what
/// SQLite is asked.
fn assert_finds_exactly(cat: &Catalog, stored: &[ChunkId], absent: &[ChunkId]) {
    let all: Vec<ChunkId> = stored.iter().chain(absent).copied().collect();
    let found = cat.existing(&all).unwrap();
    assert_eq!(
        found.len(),
        stored.len(),
        "found {} of {}",
        found.len(),
        stored.len()
    );
    assert!(stored.iter().all(|id| found.contains(id)));
}

fn ready(cat: &Catalog) -> bool {
    matches!(*cat.filter_state(), FilterState::Ready { .. })
}

fn file_stamp(cat: &Catalog) -> Option<Stamp> {
    let bytes = std::fs::read(cat.filter_path()).ok()?;
    ChunkFilter::decode(&mut &bytes[..]).map(|(_, s)| s)
}

fn catalog_in(dir: &Path) -> (PathBuf, Catalog) {
    let path = dir.join(FILE_NAME);
    let cat = Catalog::open(&path).unwrap();
    (path, cat)
}

#[test]
fn the_filter_is_built_kept_in_step_and_written_back() {
    let dir = tempfile::tempdir().unwrap();
    let (path, cat) = catalog_in(dir.path());
    add(&cat, 1, &ids(0, 3000));
    assert_eq!(cat.filter_path(), dir.path().join("catalog.chunkfilter"));
    assert_finds_exactly(&cat, &ids(0, 3000), &ids(3000, 3000));
    assert!(ready(&cat));
    assert!(!cat.filter_path().exists(), "nothing written without adds");
    let built = match &*cat.filter_state() {
        FilterState::Ready { stamp, .. } => *stamp,
        _ => unreachable!(),
    };
    // Added by this connection: in the filter at once, in the file on close.
    add(&cat, 2, &ids(3000, 1000));
    assert_finds_exactly(&cat, &ids(0, 4000), &ids(4000, 1000));
    assert!(ready(&cat), "its own rows do not make it stale");
    drop(cat);
    let cat = Catalog::open(&path).unwrap();
    let closed = file_stamp(&cat).unwrap();
    assert_eq!(closed.catalog_id, built.catalog_id);
    assert_eq!(closed.generation, built.generation + 1);
    assert_finds_exactly(&cat, &ids(0, 4000), &ids(4000, 1000));
    assert_eq!(
        file_stamp(&cat),
        Some(closed),
        "a current file is used as it is"
    );
}

/// Another connection (as another process would) adds chunks while this
/// one holds a filter: this one must still see them.
#[test]
fn chunks_added_by_another_connection_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let (path, a) = catalog_in(dir.path());
    add(&a, 1, &ids(0, 100));
    assert_finds_exactly(&a, &ids(0, 100), &ids(100, 100));
    let b = Catalog::open(&path).unwrap();
    add(&b, 2, &ids(100, 100));
    assert_finds_exactly(&a, &ids(0, 200), &ids(200, 100));
    assert!(!ready(&a), "a stale filter is dropped");
    // The same when this connection's own add is the one that notices.
    let c = Catalog::open(&path).unwrap();
    assert_finds_exactly(&c, &ids(0, 200), &[]);
    add(&b, 3, &ids(200, 10));
    add(&c, 4, &ids(300, 10));
    assert!(!ready(&c));
    assert_finds_exactly(&c, &ids(200, 10), &ids(210, 10));
    drop((a, b, c));
    // The file (written by a, c or none of them) is not trusted blindly.
    let d = Catalog::open(&path).unwrap();
    assert_finds_exactly(&d, &ids(0, 210), &ids(210, 90));
    assert_finds_exactly(&d, &ids(300, 10), &[]);
}

/// Missing, stale, damaged, garbage or another catalog's: each is rebuilt
/// from the chunk rows, never trusted.
#[test]
fn a_file_that_does_not_match_the_catalog_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (path, cat) = catalog_in(dir.path());
    assert_finds_exactly(&cat, &[], &ids(0, 10));
    add(&cat, 1, &ids(0, 500));
    let filter = cat.filter_path();
    drop(cat);
    let good = std::fs::read(&filter).unwrap();

    // Stale: rows added by a connection that never loaded the filter.
    let cat = Catalog::open(&path).unwrap();
    add(&cat, 2, &ids(500, 500));
    drop(cat);
    assert_eq!(std::fs::read(&filter).unwrap(), good, "not rewritten");
    // Each time: rebuilt, it finds every row; one more add writes it back.
    let generation = std::cell::Cell::new(2u64);
    let pack = std::cell::Cell::new(10u8);
    let check = |what: &str| {
        let cat = Catalog::open(&path).unwrap();
        // Id 1000, which each round adds again, is left out of both.
        assert_finds_exactly(&cat, &ids(0, 1000), &ids(1001, 499));
        assert!(ready(&cat), "{what}");
        add(&cat, pack.get(), &ids(1000, 1));
        drop(cat);
        generation.set(generation.get() + 1);
        pack.set(pack.get() + 1);
        let cat = Catalog::open(&path).unwrap();
        let stamp = file_stamp(&cat).unwrap_or_else(|| panic!("{what}: written back"));
        assert_eq!(stamp.generation, generation.get(), "{what}");
    };
    check("stale");

    std::fs::remove_file(&filter).unwrap();
    check("deleted");

    let mut flipped = std::fs::read(&filter).unwrap();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x40;
    std::fs::write(&filter, &flipped).unwrap();
    check("flipped byte");

    std::fs::write(&filter, b"not a filter at all").unwrap();
    check("garbage");

    // A whole, intact filter of another catalog with the same generation.
    let other = tempfile::tempdir().unwrap();
    let (_, foreign) = catalog_in(other.path());
    assert!(foreign.existing(&ids(0, 1)).unwrap().is_empty());
    (0..generation.get()).for_each(|p| add(&foreign, p as u8, &ids(5000, 1)));
    let foreign_filter = foreign.filter_path();
    drop(foreign);
    std::fs::copy(foreign_filter, &filter).unwrap();
    check("foreign");
}

/// A read-only catalog builds and writes nothing, and still answers.
#[test]
fn a_read_only_catalog_uses_no_filter() {
    let dir = tempfile::tempdir().unwrap();
    let (path, cat) = catalog_in(dir.path());
    add(&cat, 1, &ids(0, 10));
    drop(cat);
    let ro = Catalog::open_read_only(&path).unwrap();
    assert_finds_exactly(&ro, &ids(0, 10), &ids(10, 10));
    assert!(!ro.filter_path().exists());
}

/// "Never costing dedup": the second snapshot of the same data adds no
/// chunk, whatever happened to the filter file in between.
#[test]
fn a_snapshot_of_stored_data_adds_no_chunk_whatever_the_filter_file() {
    let t = TestRepo::new();
    let root = t.dir.path().join("repo");
    let filter = t.repo.catalog().filter_path();
    let data = random_bytes(9, 400_000);
    let src = t.source_dir(&[("a", data.clone())]);
    let snap = |repo: &Repository, src: &Path| {
        let opts = crate::SnapshotOptions {
            label: crate::SnapshotLabel::new("data", "f"),
            force: true,
            ..Default::default()
        };
        repo.snapshot(&[src.to_path_buf()], &opts, &NoProgress)
            .unwrap()
    };
    assert!(snap(&t.repo, &src).chunks_new > 50);
    let first = Repository::open(&root).unwrap();
    let more = t.source_dir(&[("m", random_bytes(8, 100_000))]);
    assert!(snap(&first, &more).chunks_new > 10);
    drop(first);
    assert!(filter.exists(), "written by the run that added chunks");
    let good = std::fs::read(&filter).unwrap();
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 1;
    let damage: [(&str, Option<&[u8]>); 4] = [
        ("fresh", Some(&good)),
        ("deleted", None),
        ("corrupted", Some(&flipped)),
        ("garbage", Some(&[0xff; 4096])),
    ];
    for (what, file) in damage {
        match file {
            Some(bytes) => std::fs::write(&filter, bytes).unwrap(),
            None => std::fs::remove_file(&filter).unwrap(),
        }
        let repo = Repository::open(&root).unwrap();
        assert_eq!(snap(&repo, &src).chunks_new, 0, "{what}");
    }

    // Stale: another client stores new data while this one is open with
    // its filter loaded, and writes its own filter file on close.
    let mine = Repository::open(&root).unwrap();
    assert_eq!(snap(&mine, &src).chunks_new, 0);
    let more = t.source_dir(&[("b", random_bytes(10, 300_000))]);
    let other = Repository::open(&root).unwrap();
    assert!(snap(&other, &more).chunks_new > 30);
    drop(other);
    assert_eq!(
        snap(&mine, &more).chunks_new,
        0,
        "written by another client"
    );
    drop(mine);
    let repo = Repository::open(&root).unwrap();
    assert_eq!(snap(&repo, &more).chunks_new, 0, "after both closed");
}

/// An older cairn adds packs without bumping `meta.chunk_generation`: the
/// pack digest in the stamp still tells the file is stale.
#[test]
fn rows_added_by_a_writer_without_generations_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let (path, cat) = catalog_in(dir.path());
    assert_finds_exactly(&cat, &[], &ids(0, 100));
    add(&cat, 1, &ids(0, 100));
    let filter = cat.filter_path();
    drop(cat);
    let written = std::fs::read(&filter).unwrap();
    let old = Catalog::open(&path).unwrap();
    let id = ids(100, 1)[0];
    old.lock()
        .execute_batch(&format!(
            "INSERT INTO packs(pack_id, size, chunk_count, created_ns) VALUES (x'{}', 5, 1, 0);
             INSERT INTO chunks VALUES (x'{}', last_insert_rowid(), 16, 1, 1, 0);",
            hex::encode([9u8; 32]),
            hex::encode(id.0)
        ))
        .unwrap();
    drop(old);
    assert_eq!(std::fs::read(&filter).unwrap(), written);
    let cat = Catalog::open(&path).unwrap();
    assert_finds_exactly(&cat, &ids(0, 101), &ids(101, 10));
}
