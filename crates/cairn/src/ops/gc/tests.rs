//! gc against real repositories in temp dirs: the repack threshold, debris,
//! unlisted manifests, damage, and a crash injected before every storage
//! operation of a gc.

use std::path::Path;

use super::*;
use crate::format::codec::Codec;
use crate::format::id::ChunkId;
use crate::ops::check::CheckOptions;
use crate::ops::forget;
use crate::ops::restore::{self, RestoreOptions};
use crate::progress::NoProgress;
use crate::repo::lock;
use crate::storage::faulty::{Fault, FaultyStorage};
use crate::storage::LocalStorage;
use crate::test_support::{random_bytes, TestRepo};

/// Removes the named snapshots as `cairn delete` would.
fn delete(repo: &Repository, ids: &[SnapshotId]) {
    let selectors: Vec<String> = ids.iter().map(SnapshotId::to_hex).collect();
    let plan = forget::plan_delete(repo, &selectors).unwrap();
    forget::execute(repo, &plan).unwrap();
}

/// Restores `id` and compares every file with `files`.
fn assert_restores(repo: &Repository, id: &SnapshotId, files: &[(&str, Vec<u8>)], scratch: &Path) {
    let snap = repo.resolve(&id.to_hex()).unwrap();
    let target = scratch.join(format!(
        "restore-{}-{}",
        id.short(),
        crate::format::config::random_hex(4)
    ));
    restore::restore(
        repo,
        &snap,
        &target,
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let src = std::fs::read_dir(target.join(crate::test_support::stored(scratch, "")))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for (name, data) in files {
        assert!(
            std::fs::read(src.join(name)).unwrap() == *data,
            "{name} of {}",
            id.short()
        );
    }
}

/// Every chunk of every listed snapshot is located and reads back, and every
/// chunk of every pack on storage verifies.
fn assert_all_chunks_read(repo: &Repository) {
    for snap in repo.snapshots(&SnapshotFilter::default()).unwrap() {
        for f in repo.catalog().files(&snap).unwrap() {
            for loc in repo.locate_all(&f.chunks).unwrap() {
                crate::blob::read_chunk(repo.storage(), repo.crypt(), &repo.references(), &loc)
                    .unwrap();
            }
        }
    }
    for obj in repo.storage().list("packs/").unwrap() {
        let pack = pack::id_from_key(&obj.key).unwrap();
        for entry in pack::read_entries(repo.storage(), repo.crypt(), &pack, obj.size).unwrap() {
            crate::blob::read_chunk(
                repo.storage(),
                repo.crypt(),
                &repo.references(),
                &ChunkLocation { pack, entry },
            )
            .unwrap();
        }
    }
}

fn pack_files(repo: &Repository) -> Vec<ObjectInfo> {
    repo.storage().list("packs/").unwrap()
}

#[test]
fn half_dead_pack_is_rewritten_two_percent_dead_is_not() {
    let t = TestRepo::new();
    let (a, b) = (random_bytes(1, 200_000), random_bytes(2, 200_000));
    let (c, d) = (random_bytes(3, 490_000), random_bytes(4, 10_000));
    let both_ab = t.snap_files("model", "ab", &[("a", a.clone()), ("b", b.clone())], &[]);
    let only_b = t.snap_files("model", "ab", &[("b", b.clone())], &[]);
    let both_cd = t.snap_files("model", "cd", &[("c", c.clone()), ("d", d)], &[]);
    let only_c = t.snap_files("model", "cd", &[("c", c.clone())], &[]);
    assert_eq!(
        pack_files(&t.repo).len(),
        4,
        "one pack per snapshot (the second of each history holds only its new root tree)"
    );
    delete(&t.repo, &[both_ab, both_cd]);

    let plan = plan(&t.repo, DEFAULT_MAX_UNUSED).unwrap();
    assert!(plan.delete.is_empty());
    assert_eq!(plan.repack.len(), 1);
    let half = plan.repack[0].unused_share();
    assert!(
        (0.45..0.55).contains(&half),
        "the a+b pack is {half} unused"
    );
    // The c+d pack and the packs of the two kept snapshots' root trees.
    assert_eq!(plan.kept_packs, 3);
    let small = plan.kept_unused_bytes as f64 / plan.kept_bytes as f64;
    assert!(
        (0.015..0.03).contains(&small),
        "the c+d pack is {small} unused"
    );

    let report = execute(&t.repo, &plan, &NoProgress).unwrap();
    drop(plan);
    assert_eq!(
        (
            report.packs_rewritten,
            report.packs_written,
            report.packs_deleted
        ),
        (1, 1, 0)
    );
    assert!(report.damaged.is_empty());
    assert!(
        report.bytes_reclaimed > 190_000 && report.bytes_reclaimed < 210_000,
        "{report:?}"
    );
    assert_eq!(pack_files(&t.repo).len(), 4);
    assert_all_chunks_read(&t.repo);
    assert_restores(&t.repo, &only_b, &[("b", b)], t.dir.path());
    assert_restores(&t.repo, &only_c, &[("c", c)], t.dir.path());
    let again = super::plan(&t.repo, DEFAULT_MAX_UNUSED).unwrap();
    assert!(again.is_empty(), "a second gc has nothing to do");
}

#[test]
fn threshold_is_a_share_of_the_pack() {
    let t = TestRepo::new();
    let (a, b) = (random_bytes(1, 100_000), random_bytes(2, 300_000));
    let old = t.snap_files("model", "m", &[("a", a), ("b", b.clone())], &[]);
    t.snap_files("model", "m", &[("b", b)], &[]);
    delete(&t.repo, &[old]);
    // About a quarter of the pack is unused.
    assert_eq!(plan(&t.repo, 0.30).unwrap().repack.len(), 0);
    assert_eq!(plan(&t.repo, 0.20).unwrap().repack.len(), 1);
    assert!(plan(&t.repo, 1.5).is_err());
}

#[test]
fn dead_packs_unknown_packs_and_leftovers_go() {
    let t = TestRepo::with_pack_target(Some(64 * 1024));
    let keep_data = random_bytes(7, 150_000);
    let gone = t.snap_files("config", "c", &[("x", random_bytes(8, 300_000))], &[]);
    let kept = t.snap_files("config", "c", &[("y", keep_data.clone())], &[]);
    delete(&t.repo, &[gone]);
    let mut stray = PackWriter::new();
    stray.add(ChunkId::of(b"stray"), Codec::Raw, 5, b"stray");
    let stray = stray.finish();
    t.repo
        .storage()
        .put(&pack::key(&stray.id), &stray.bytes)
        .unwrap();
    let packs_dir = t.repo.root().join("packs").join(&stray.id.to_hex()[..2]);
    std::fs::write(
        packs_dir.join(".tmp-half-written.pack-1-0"),
        vec![0u8; 1000],
    )
    .unwrap();
    let before: u64 = pack_files(&t.repo).iter().map(|o| o.size).sum();

    let plan = plan(&t.repo, DEFAULT_MAX_UNUSED).unwrap();
    assert!(
        plan.delete.len() >= 4,
        "the 300 KB file filled several 64 KiB packs"
    );
    assert!(
        plan.repack.len() <= 1,
        "at most the pack shared by x's tail and y's head"
    );
    assert_eq!(plan.unknown_packs.len(), 1);
    assert_eq!(plan.leftovers.len(), 1);
    let expected = plan.bytes_to_reclaim();
    let report = execute(&t.repo, &plan, &NoProgress).unwrap();
    drop(plan);
    assert_eq!(
        (report.unknown_packs_deleted, report.leftovers_deleted),
        (1, 1)
    );
    assert!(report.chunks_dropped > 0);
    let after: u64 = pack_files(&t.repo).iter().map(|o| o.size).sum();
    assert_eq!(before + 1000 - after, report.bytes_reclaimed);
    assert!(
        report.bytes_reclaimed.abs_diff(expected) < 2_000,
        "{} vs plan {expected}",
        report.bytes_reclaimed
    );
    assert!(t.repo.storage().leftovers().unwrap().is_empty());
    assert_all_chunks_read(&t.repo);
    assert_restores(&t.repo, &kept, &[("y", keep_data)], t.dir.path());
}

#[test]
fn chunks_of_a_manifest_the_catalog_does_not_list_are_kept() {
    let t = TestRepo::new();
    let data = random_bytes(5, 100_000);
    let id = t.snap_files("model", "m", &[("w", data)], &[]);
    // A crash between the manifest put and the catalog commit: the manifest
    // is there, the catalog rows are not.
    t.repo.catalog().drop_all_snapshot_rows().unwrap();
    let plan = plan(&t.repo, DEFAULT_MAX_UNUSED).unwrap();
    assert_eq!(plan.unlisted_manifests, [id]);
    assert!(plan.is_empty(), "nothing may be freed");
    assert!(plan.live_chunks > 10);
}

/// Guards gc's walk of trees: an unlisted version-2 manifest whose root
/// tree cannot be read stops gc, as an unreadable unlisted manifest does
/// (freeing what the tree lists could destroy the only copy).
#[test]
fn an_unreadable_tree_of_an_unlisted_manifest_stops_gc() {
    let t = TestRepo::new();
    t.snap_files("model", "m", &[("w", random_bytes(7, 50_000))], &[]);
    t.repo.catalog().drop_all_snapshot_rows().unwrap();
    let pack = pack_files(&t.repo).remove(0);
    t.repo.storage().delete(&pack.key).unwrap();
    let Err(err) = plan(&t.repo, DEFAULT_MAX_UNUSED) else {
        panic!("gc planned over an unreadable tree");
    };
    assert!(
        matches!(&err, Error::CorruptManifest { reason, .. } if reason.contains("tree")),
        "{err}"
    );
}

#[test]
fn an_unlisted_pack_is_debris_only_if_its_live_chunks_are_located_elsewhere() {
    let t = TestRepo::new();
    let data = random_bytes(6, 50_000);
    t.snap_files("model", "m", &[("w", data.clone())], &[]);
    let pack = pack_files(&t.repo).remove(0);
    let id = pack::id_from_key(&pack.key).unwrap();
    let entries = pack::read_entries(t.repo.storage(), t.repo.crypt(), &id, pack.size).unwrap();
    // A second copy of the same chunks, as a gc killed before recording it
    // would leave: debris, every chunk is located in the listed pack.
    let mut copy = PackWriter::new();
    for e in entries.iter().rev() {
        let stored = read_stored_chunk(
            t.repo.storage(),
            t.repo.crypt(),
            &t.repo.references(),
            &ChunkLocation {
                pack: id,
                entry: *e,
            },
        )
        .unwrap();
        copy.add(e.chunk, e.codec, e.raw_len, &stored);
    }
    let copy = copy.finish();
    t.repo
        .storage()
        .put(&pack::key(&copy.id), &copy.bytes)
        .unwrap();
    let p = plan(&t.repo, DEFAULT_MAX_UNUSED).unwrap();
    assert_eq!(p.unknown_packs.len(), 1);
    assert!(p.unknown_packs_kept.is_empty());
    execute(&t.repo, &p, &NoProgress).unwrap();
    drop(p);
    // Now the catalog loses the listed pack's rows (damage): the file is the
    // only home of live chunks and must stay.
    t.repo.catalog().drop_all_pack_rows().unwrap();
    let p = plan(&t.repo, DEFAULT_MAX_UNUSED).unwrap();
    assert!(p.unknown_packs.is_empty());
    assert_eq!(p.unknown_packs_kept.len(), 1);
    execute(&t.repo, &p, &NoProgress).unwrap();
    assert_eq!(pack_files(&t.repo), [pack]);
}

#[test]
fn refuses_to_run_beside_a_snapshot() {
    let t = TestRepo::new();
    let _snapshot = lock::Lock::shared(t.repo.shared_storage(), "snapshot").unwrap();
    assert!(matches!(
        plan(&t.repo, DEFAULT_MAX_UNUSED),
        Err(Error::Locked { .. })
    ));
}

#[test]
fn a_damaged_live_chunk_leaves_its_pack_in_place() {
    let t = TestRepo::new();
    let (a, b) = (random_bytes(1, 200_000), random_bytes(2, 200_000));
    let old = t.snap_files("model", "ab", &[("a", a), ("b", b.clone())], &[]);
    t.snap_files("model", "ab", &[("b", b.clone())], &[]);
    delete(&t.repo, &[old]);
    let b_chunk = t.repo.resolve("ab").unwrap();
    let first = t
        .repo
        .catalog()
        .files(&b_chunk)
        .unwrap()
        .into_iter()
        .find(|f| f.path.ends_with("/b"))
        .unwrap()
        .chunks[0];
    let loc = t.repo.catalog().locate(&first).unwrap().unwrap();
    let path = t.repo.root().join(pack::key(&loc.pack));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[loc.entry.offset as usize + 10] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    let plan = plan(&t.repo, DEFAULT_MAX_UNUSED).unwrap();
    assert_eq!(plan.repack.len(), 1);
    let report = execute(&t.repo, &plan, &NoProgress).unwrap();
    drop(plan);
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert_eq!((report.packs_rewritten, report.packs_written), (0, 0));
    assert!(path.exists(), "the damaged pack stays for check and repair");
    assert_eq!(t.repo.catalog().locate(&first).unwrap(), Some(loc));
}

/// Builds the same repository each time: 6 snapshots of a changing 600 KB
/// file in 64 KiB packs, the oldest 4 deleted, plus debris.
fn crash_fixture() -> (TestRepo, Vec<(SnapshotId, Vec<u8>)>) {
    let t = TestRepo::with_pack_target(Some(64 * 1024));
    let mut data = random_bytes(42, 600_000);
    let mut snaps = Vec::new();
    for round in 0..6u64 {
        // The same region every time (so earlier rounds' packs die whole),
        // and a moving one (so the first round's packs die in part).
        data[100_000..160_000].copy_from_slice(&random_bytes(100 + round, 60_000));
        let moving = 300_000 + round as usize * 25_000;
        data[moving..moving + 20_000].copy_from_slice(&random_bytes(200 + round, 20_000));
        snaps.push((
            t.snap_files("model", "m", &[("w", data.clone())], &[]),
            data.clone(),
        ));
    }
    let doomed: Vec<SnapshotId> = snaps[..4].iter().map(|(id, _)| *id).collect();
    delete(&t.repo, &doomed);
    std::fs::write(t.repo.root().join("packs/.tmp-left-1-1"), b"debris").unwrap();
    (t, snaps.split_off(4))
}

#[test]
fn gc_killed_before_any_storage_step_is_finished_by_the_next() {
    // Mutation 1 is the plan's lock; crash before mutation 2, 3, ... of gc.
    for crash_at in 2.. {
        let (t, kept) = crash_fixture();
        let root = t.repo.root().to_path_buf();
        let storage = FaultyStorage::new(LocalStorage::new(&root), Fault::Crash, crash_at);
        let location = crate::CatalogLocation::in_repository(&root);
        let repo = Repository::open_with(std::sync::Arc::new(storage), location).unwrap();
        let plan = plan(&repo, DEFAULT_MAX_UNUSED).unwrap();
        assert!(
            !plan.delete.is_empty() && !plan.repack.is_empty(),
            "the fixture exercises every step"
        );
        let outcome = execute(&repo, &plan, &NoProgress);
        drop(plan);
        drop(repo);

        // After the "crash": a fresh process finds a stale lock of ours.
        let repo = Repository::open(&root).unwrap();
        lock::unlock(repo.storage(), true).unwrap();
        for (id, data) in &kept {
            assert_restores(&repo, id, &[("w", data.clone())], t.dir.path());
        }
        let plan = super::plan(&repo, DEFAULT_MAX_UNUSED).unwrap();
        execute(&repo, &plan, &NoProgress).unwrap();
        drop(plan);
        assert!(
            super::plan(&repo, DEFAULT_MAX_UNUSED).unwrap().is_empty(),
            "crash at {crash_at}"
        );
        assert_all_chunks_read(&repo);
        let report = crate::ops::check::check(&repo, CheckOptions::READ_ALL, &NoProgress).unwrap();
        assert!(
            report.is_clean() && report.findings.is_empty(),
            "crash at {crash_at}: {:?}",
            report.findings
        );
        for (id, data) in &kept {
            assert_restores(&repo, id, &[("w", data.clone())], t.dir.path());
        }
        if outcome.is_ok() {
            assert!(crash_at > 5, "the gc took several storage steps");
            break;
        }
    }
}

/// Guards the lease check: a gc whose lock another client removed (judged
/// stale) deletes nothing, since a snapshot may have started meanwhile;
/// likewise a snapshot whose lock went mid-run commits no manifest.
#[test]
fn nothing_is_deleted_or_committed_once_the_lock_is_gone() {
    let t = TestRepo::new();
    let old = t.snap("model", "m", b"ab", &[]);
    t.snap("model", "m", b"cd", &[]);
    delete(&t.repo, &[old]);
    let plan = plan(&t.repo, DEFAULT_MAX_UNUSED).unwrap();
    assert!(
        !plan.delete.is_empty(),
        "the forgotten snapshot's pack is dead"
    );
    let before = pack_files(&t.repo);
    lock::unlock(t.repo.storage(), true).unwrap();
    let err = execute(&t.repo, &plan, &NoProgress).unwrap_err();
    assert!(matches!(err, Error::LockLost { .. }), "{err}");
    drop(plan);
    assert_eq!(pack_files(&t.repo), before, "no pack deleted");

    /// Removes every lock (as `unlock --all` on another host) the first
    /// time the snapshot reports progress.
    struct Unlocker<'a>(&'a Repository, std::sync::Once);
    impl Progress for Unlocker<'_> {
        fn advance(&self, _bytes: u64) {
            self.1.call_once(|| {
                lock::unlock(self.0.storage(), true).unwrap();
            });
        }
    }
    let src = t.source_dir(&[("f", random_bytes(9, 50_000))]);
    let opts = crate::ops::snapshot::SnapshotOptions {
        label: crate::SnapshotLabel::new("model", "lost"),
        ..Default::default()
    };
    let before = t.repo.storage().list(manifest::PREFIX).unwrap();
    let err = t
        .repo
        .snapshot(&[src], &opts, &Unlocker(&t.repo, std::sync::Once::new()))
        .unwrap_err();
    assert!(matches!(err, Error::LockLost { .. }), "{err}");
    assert_eq!(t.repo.storage().list(manifest::PREFIX).unwrap(), before);
    assert!(t.repo.resolve("lost").is_err());
}

/// A repack batch is what fits the free space, margin and catalog rows
/// included; with no limit known, everything; with too little, nothing.
#[test]
fn repack_batches_fit_the_free_space() {
    let usage = |live_bytes: u64| PackUsage {
        pack: PackId::from_slice(&[live_bytes as u8; 32]).unwrap(),
        rowid: 0,
        size: 4 << 20,
        chunks: 10,
        live_chunks: 4,
        live_bytes,
        copy: Vec::new(),
    };
    let packs = [usage(1 << 20), usage(1 << 20), usage(1 << 20)];
    let pending: Vec<&PackUsage> = packs.iter().collect();
    assert_eq!(fitting(&pending, None), 3);
    assert_eq!(fitting(&pending, Some(0)), 0);
    assert_eq!(
        fitting(&pending, Some(REPACK_MARGIN + (1 << 20))),
        0,
        "framing counts"
    );
    let one = REPACK_MARGIN + pending[0].needed_bytes() + 4 * 128;
    assert_eq!(fitting(&pending, Some(one)), 1);
    let each = one - REPACK_MARGIN;
    assert_eq!(fitting(&pending, Some(one + each - 1)), 1);
    assert_eq!(
        fitting(&pending, Some(one + each)),
        2,
        "the margin is paid once"
    );
    assert_eq!(fitting(&pending, Some(one + 2 * each)), 3);
}
