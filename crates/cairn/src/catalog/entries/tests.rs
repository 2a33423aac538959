//! Entries stored once: dedup across snapshots, release on removal, the
//! stat cache, directories' trees in their listings' rows, and the upgrade
//! of catalogs of schemas 1 to 3.

use super::super::{Catalog, SnapshotFilter, SnapshotInfo};
use super::*;
use crate::format::id::ChunkId;
use crate::format::label::SnapshotLabel;
use crate::format::manifest::{Manifest, RunStats};

#[test]
fn id_lists_round_trip_and_stay_small() {
    let ids: Vec<i64> = (1..=1000).chain([5, 1 << 40, 3, i64::MAX, 0]).collect();
    let blob = encode_ids(&ids);
    assert_eq!(decode_ids(&blob).unwrap(), ids);
    assert!(encode_ids(&(100..1100).collect::<Vec<_>>()).len() < 1010);
    assert!(decode_ids(&[0x80]).is_err(), "a number cut short");
    assert!(decode_ids(&[0xff; 11]).is_err(), "an overlong number");
}

fn file(path: &str, kind: EntryKind, version: u8) -> FileEntry {
    FileEntry {
        path: path.into(),
        kind,
        mode: 0o644,
        mtime_ns: 1_000 + i64::from(version),
        size: u64::from(version),
        sha256: [version; 32],
        link_target: String::new(),
        chunks: vec![ChunkId::of(&[version, path.len() as u8])],
        ..Default::default()
    }
}

/// A tree of `dirs` directories with `per_dir` files each; file `changed`
/// (if any) at version 2, the rest at version 1.
fn tree(dirs: usize, per_dir: usize, changed: Option<(usize, usize)>) -> Vec<FileEntry> {
    let mut out = vec![file("root", EntryKind::Dir, 0)];
    for d in 0..dirs {
        out.push(file(&format!("root/d{d:03}"), EntryKind::Dir, 0));
        for f in 0..per_dir {
            let v = if changed == Some((d, f)) { 2 } else { 1 };
            out.push(file(&format!("root/d{d:03}/f{f:03}"), EntryKind::File, v));
        }
    }
    out
}

fn manifest(files: Vec<FileEntry>, time_ns: i64) -> Manifest {
    Manifest {
        label: SnapshotLabel {
            kind: "config".into(),
            name: "svc".into(),
            version: None,
            tags: vec![],
            description: None,
        },
        host: "box".into(),
        time_ns,
        sources: vec!["/root".into()],
        parent: None,
        stats: RunStats::default(),
        files,
    }
}

fn count(cat: &Catalog, table: &str) -> i64 {
    cat.lock()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn snaps(cat: &Catalog) -> Vec<SnapshotInfo> {
    cat.snapshots(&SnapshotFilter::default()).unwrap()
}

fn sorted(mut files: Vec<FileEntry>) -> Vec<FileEntry> {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

#[test]
fn unchanged_snapshots_share_rows_and_removal_releases_them() {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(&dir.path().join("c.db")).unwrap();
    let first = tree(10, 20, None);
    let changed = tree(10, 20, Some((3, 7)));
    let inodes: Vec<u64> = (1..=first.len() as u64).collect();
    let ids: Vec<SnapshotId> = (0..4u8).map(|i| SnapshotId::of(&[i])).collect();
    cat.add_snapshot(&ids[0], &manifest(first.clone(), 1), &inodes)
        .unwrap();
    let (entries, dirs) = (count(&cat, "entries"), count(&cat, "dirs"));
    assert_eq!((entries, dirs), (211, 12));
    cat.add_snapshot(&ids[1], &manifest(first.clone(), 2), &inodes)
        .unwrap();
    assert_eq!(
        (count(&cat, "entries"), count(&cat, "dirs")),
        (entries, dirs),
        "an unchanged snapshot adds no entry or dir"
    );
    cat.add_snapshot(&ids[2], &manifest(changed.clone(), 3), &inodes)
        .unwrap();
    assert_eq!(
        (count(&cat, "entries"), count(&cat, "dirs")),
        (entries + 1, dirs + 1),
        "one changed file adds its entry and its directory"
    );
    let listed = snaps(&cat);
    assert_eq!(cat.files(&listed[0]).unwrap(), sorted(first.clone()));
    assert_eq!(cat.files(&listed[2]).unwrap(), sorted(changed.clone()));
    assert_eq!(listed[2].file_count, changed.len() as u64);
    assert_eq!(cat.orphaned_file_rows().unwrap(), 0);

    // The stat cache answers per snapshot, files only, with inodes.
    let hit = cat
        .cached_file(&listed[2], "root/d003/f007")
        .unwrap()
        .unwrap();
    assert_eq!((hit.size, hit.sha256), (2, [2; 32]));
    let index = changed
        .iter()
        .position(|f| f.path == "root/d003/f007")
        .unwrap();
    assert_eq!(hit.inode, inodes[index]);
    let old = cat
        .cached_file(&listed[0], "root/d003/f007")
        .unwrap()
        .unwrap();
    assert_eq!(old.size, 1);
    assert!(cat.cached_file(&listed[0], "root/d003").unwrap().is_none());
    assert!(cat.cached_file(&listed[0], "nope").unwrap().is_none());

    cat.remove_snapshots([&ids[0], &ids[2]]).unwrap();
    assert_eq!(
        (count(&cat, "entries"), count(&cat, "dirs")),
        (entries, dirs)
    );
    assert_eq!(cat.orphaned_file_rows().unwrap(), 0);
    assert_eq!(cat.files(&snaps(&cat)[0]).unwrap(), sorted(first));
    cat.remove_snapshots([&ids[1], &ids[3]]).unwrap();
    assert_eq!((count(&cat, "entries"), count(&cat, "dirs")), (0, 0));
    assert_eq!(cat.orphaned_file_rows().unwrap(), 0);
}

/// The gc live set and the reference scan see every chunk of every kept
/// snapshot, and nothing of a removed one.
#[test]
fn mark_sets_follow_the_shared_rows() {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(&dir.path().join("c.db")).unwrap();
    let a = SnapshotId::of(b"a");
    let b = SnapshotId::of(b"b");
    cat.add_snapshot(&a, &manifest(tree(2, 3, None), 1), &[])
        .unwrap();
    cat.add_snapshot(&b, &manifest(tree(2, 3, Some((1, 1))), 2), &[])
        .unwrap();
    let all = snaps(&cat);
    let n = cat
        .mark_referenced(crate::catalog::MarkSet::GcLive, &all)
        .unwrap();
    // Distinct chunks: one per (version, path length) pair.
    let mut expected = HashSet::new();
    for s in &all {
        for f in cat.files(s).unwrap() {
            expected.extend(f.chunks);
        }
    }
    assert_eq!(n, expected.len() as u64);
    let only_b = cat
        .mark_referenced(crate::catalog::MarkSet::GcLive, &all[1..])
        .unwrap();
    let b_chunks: HashSet<ChunkId> = cat
        .files(&all[1])
        .unwrap()
        .into_iter()
        .flat_map(|f| f.chunks)
        .collect();
    assert_eq!(only_b, b_chunks.len() as u64);
    assert_eq!(cat.reference_scan().unwrap().missing, expected);
}

fn v1_fixture_catalog() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cairn-cli/tests/fixtures/v0.1.0/repo/catalog.db")
}

/// A catalog written by cairn 0.1.0 (schema 1) is upgraded in place by a
/// read-write or a read-only open, keeping every snapshot's files.
#[test]
fn a_schema_1_catalog_is_upgraded_on_open() {
    for read_only in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        std::fs::copy(v1_fixture_catalog(), &path).unwrap();
        let v1_rows: i64 = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
            .unwrap();
        let cat = if read_only {
            Catalog::open_read_only(&path).unwrap()
        } else {
            Catalog::open(&path).unwrap()
        };
        assert_eq!(
            cat.schema_version().unwrap(),
            crate::catalog::SCHEMA_VERSION.to_string()
        );
        let listed = snaps(&cat);
        assert_eq!(listed.len(), 3);
        let total: usize = listed.iter().map(|s| cat.files(s).unwrap().len()).sum();
        assert_eq!(total as i64, v1_rows);
        for s in &listed {
            assert_eq!(cat.files(s).unwrap().len() as u64, s.file_count);
        }
        assert_eq!(cat.orphaned_file_rows().unwrap(), 0);
        let has_files: i64 = cat
            .lock()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'files'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(has_files, 0);
    }
}

/// A schema-2 catalog (what cairn wrote before owners and hard links:
/// today's made without schema 3's columns) gains them in place when
/// opened, read-only too, keeps its snapshots and stat cache, and then
/// stores and returns the new fields.
#[test]
fn a_schema_2_catalog_is_upgraded_on_open() {
    for read_only in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let a = SnapshotId::of(b"a");
        {
            let cat = Catalog::open(&path).unwrap();
            // Schema 2 kept each directory's tree in its own entry; these
            // directories have none, so the rows are what it wrote.
            let mut m = manifest(tree(2, 3, None), 1);
            m.files
                .iter_mut()
                .filter(|f| f.kind == EntryKind::Dir)
                .for_each(|f| f.chunks.clear());
            cat.add_snapshot(&a, &m, &[]).unwrap();
            cat.lock()
                .execute_batch(
                    "ALTER TABLE dirs DROP COLUMN tree;
                     ALTER TABLE entries DROP COLUMN uid; ALTER TABLE entries DROP COLUMN gid;
                     ALTER TABLE entries DROP COLUMN hardlink; ALTER TABLE entries DROP COLUMN rdev;
                     ALTER TABLE entries DROP COLUMN incomplete;
                     UPDATE meta SET value = '2' WHERE key = 'schema_version';",
                )
                .unwrap();
        }
        let cat = if read_only {
            Catalog::open_read_only(&path).unwrap()
        } else {
            Catalog::open(&path).unwrap()
        };
        assert_eq!(
            cat.schema_version().unwrap(),
            crate::catalog::SCHEMA_VERSION.to_string()
        );
        let before = cat.files(&snaps(&cat)[0]).unwrap();
        assert_eq!(before.len(), manifest(tree(2, 3, None), 1).files.len());
        assert!(before.iter().all(|f| f.owner.is_none() && !f.incomplete));
        drop(cat);
        let cat = Catalog::open(&path).unwrap();
        let mut m = manifest(tree(2, 3, None), 2);
        m.files[0].owner = Some((1000, 100));
        m.files[0].hardlink = Some(42);
        m.files[0].incomplete = true;
        m.files[0].rdev = 7;
        let b = SnapshotId::of(b"b");
        cat.add_snapshot(&b, &m, &[]).unwrap();
        let listed = snaps(&cat);
        let got = cat.files(&listed[1]).unwrap();
        let f = got.iter().find(|f| f.path == m.files[0].path).unwrap();
        assert_eq!(
            (f.owner, f.hardlink, f.rdev, f.incomplete),
            (Some((1000, 100)), Some(42), 7, true)
        );
        // The unchanged entries are the same rows as before the upgrade.
        assert_eq!(cat.files(&listed[0]).unwrap(), before);
        assert_eq!(miscounted_rows(&cat.lock()).unwrap(), 0);
    }
}

/// `tree(dirs, per_dir, changed)` with tree ids as a real snapshot has
/// them: a directory's id changes when anything below it does, up to the
/// top, as in manifest version 2. `empty` adds an empty directory.
fn merkle_tree(dirs: usize, per_dir: usize, changed: Option<(usize, usize)>) -> Vec<FileEntry> {
    let mut files = tree(dirs, per_dir, changed);
    let version = |path: &str| {
        let hit = changed.is_some_and(|(d, _)| path == "root" || path == format!("root/d{d:03}"));
        if hit {
            2
        } else {
            1
        }
    };
    for f in files.iter_mut().filter(|f| f.kind == EntryKind::Dir) {
        f.chunks = vec![ChunkId::of(
            format!("tree {} v{}", f.path, version(&f.path)).as_bytes(),
        )];
    }
    files.push(FileEntry {
        chunks: vec![ChunkId::of(b"the empty tree")],
        ..file("root/empty", EntryKind::Dir, 0)
    });
    files
}

/// Guards schema 4's layout: a changed file deep in the tree adds its own
/// entry and a listing row per changed directory, but no entry row for the
/// ancestors whose tree ids changed; every directory still reads back with
/// its tree (an empty one too), and gc's mark set and the reference scan
/// still hold every tree.
#[test]
fn ancestors_trees_live_in_their_listings_not_their_entries() {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(&dir.path().join("c.db")).unwrap();
    let first = merkle_tree(10, 20, None);
    let changed = merkle_tree(10, 20, Some((3, 7)));
    cat.add_snapshot(&SnapshotId::of(b"1"), &manifest(first.clone(), 1), &[])
        .unwrap();
    let (entries, dirs) = (count(&cat, "entries"), count(&cat, "dirs"));
    cat.add_snapshot(&SnapshotId::of(b"2"), &manifest(changed.clone(), 2), &[])
        .unwrap();
    assert_eq!(
        (count(&cat, "entries"), count(&cat, "dirs")),
        (entries + 1, dirs + 2),
        "the file's entry, and the listings of root and root/d003 with their new trees"
    );
    let listed = snaps(&cat);
    assert_eq!(cat.files(&listed[0]).unwrap(), sorted(first.clone()));
    assert_eq!(cat.files(&listed[1]).unwrap(), sorted(changed.clone()));
    let all: HashSet<ChunkId> = first
        .iter()
        .chain(&changed)
        .flat_map(|f| f.chunks.clone())
        .collect();
    let marked = cat
        .mark_referenced(crate::catalog::MarkSet::GcLive, &listed)
        .unwrap();
    assert_eq!(marked, all.len() as u64);
    assert_eq!(cat.reference_scan().unwrap().missing, all);
    // Every id list ascends (the changed file's new id sorts last in its
    // listing, not in its manifest place).
    let lists: Vec<Vec<u8>> = cat
        .lock()
        .prepare("SELECT entries FROM dirs UNION ALL SELECT dirs FROM snapshots")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    for list in lists {
        let ids = decode_ids(&list).unwrap();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    }
    cat.remove_snapshots([&SnapshotId::of(b"1")]).unwrap();
    assert_eq!(cat.orphaned_file_rows().unwrap(), 0);
    assert_eq!(cat.files(&snaps(&cat)[0]).unwrap(), sorted(changed));
}

fn v3_fixture_catalog() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cairn-cli/tests/fixtures/catalog-v3/repo/catalog.db")
}

/// A catalog written by the cairn of schema 3 (directories' trees in their
/// own entries) is upgraded in place by a read-write or a read-only open;
/// its snapshots read back with every directory's tree, and storing the
/// same files again in schema 4's layout reads back the same list, with
/// the same chunks marked live.
#[test]
fn a_schema_3_catalog_is_upgraded_on_open() {
    for read_only in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        std::fs::copy(v3_fixture_catalog(), &path).unwrap();
        let cat = if read_only {
            Catalog::open_read_only(&path).unwrap()
        } else {
            Catalog::open(&path).unwrap()
        };
        assert_eq!(
            cat.schema_version().unwrap(),
            crate::catalog::SCHEMA_VERSION.to_string()
        );
        let listed = snaps(&cat);
        assert_eq!(listed.len(), 2);
        let old: Vec<Vec<FileEntry>> = listed.iter().map(|s| cat.files(s).unwrap()).collect();
        for (s, files) in listed.iter().zip(&old) {
            assert_eq!(files.len() as u64, s.file_count);
            let dirs: Vec<&FileEntry> = files.iter().filter(|f| f.kind == EntryKind::Dir).collect();
            assert_eq!(dirs.len(), 6, "tree, a, a/b, a/b/c, empty, x");
            assert!(dirs.iter().all(|d| d.chunks.len() == 1), "{dirs:?}");
        }
        assert_ne!(old[0], old[1]);
        let marked_before = cat
            .mark_referenced(crate::catalog::MarkSet::GcLive, &listed)
            .unwrap();
        drop(cat);

        let cat = Catalog::open(&path).unwrap();
        let mut m = manifest(old[1].clone(), i64::MAX - 1);
        m.label.name = "again".into();
        cat.add_snapshot(&SnapshotId::of(b"again"), &m, &[])
            .unwrap();
        let all = snaps(&cat);
        let again = all.iter().find(|s| s.label.name == "again").unwrap();
        assert_eq!(cat.files(again).unwrap(), old[1]);
        let trees: i64 = cat
            .lock()
            .query_row(
                "SELECT count(*) FROM dirs WHERE tree IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(trees, 5, "the listings of tree, a, a/b, a/b/c and x");
        assert_eq!(
            cat.mark_referenced(crate::catalog::MarkSet::GcLive, &all)
                .unwrap(),
            marked_before
        );
        assert_eq!(miscounted_rows(&cat.lock()).unwrap(), 0);
    }
}
