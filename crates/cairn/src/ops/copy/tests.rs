//! copy between real repositories: a local one into one on `MemoryStorage`
//! (catalog in a cache directory) and back, idempotence, only missing
//! chunks sent, refusals that write nothing, and a crash injected before
//! every storage step of a copy.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::catalog::location::CatalogLocation;
use crate::format::config::RepoConfig;
use crate::format::manifest;
use crate::ingest::chunker::ChunkerParams;
use crate::ops::check::CheckOptions;
use crate::ops::restore::RestoreOptions;
use crate::progress::NoProgress;
use crate::repo::lock;
use crate::storage::faulty::{Fault, FaultyStorage};
use crate::storage::{LocalStorage, MemoryStorage, Storage};
use crate::test_support::{random_bytes, TestRepo};

/// A source with two snapshots of `model/m` (the second changes a tenth of
/// its file) and one of `config/c`; returns it and each snapshot's content.
fn source() -> (TestRepo, Vec<(SnapshotId, Vec<u8>)>) {
    let t = TestRepo::with_pack_target(Some(64 * 1024));
    let mut data = random_bytes(1, 400_000);
    let v1 = t.snap_files("model", "m", &[("w", data.clone())], &["first"]);
    let mut snaps = vec![(v1, data.clone())];
    data[100_000..140_000].copy_from_slice(&random_bytes(2, 40_000));
    let v2 = t.snap_files("model", "m", &[("w", data.clone())], &[]);
    snaps.push((v2, data));
    let cfg = random_bytes(3, 20_000);
    snaps.push((t.snap_files("config", "c", &[("w", cfg.clone())], &[]), cfg));
    (t, snaps)
}

/// A destination on `MemoryStorage` with the source's chunker, another zstd
/// level and smaller packs.
fn memory_dest(cache: &Path, chunk_avg: u32) -> (Arc<dyn Storage>, Repository) {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let config = RepoConfig::new(ChunkerParams::with_average(chunk_avg), 3)
        .unwrap()
        .with_pack_target(16 * 1024)
        .unwrap();
    let repo =
        Repository::init_with(storage.clone(), CatalogLocation::cache_dir(cache), config).unwrap();
    (storage, repo)
}

fn all() -> CopyRequest {
    CopyRequest::default()
}

/// Restores `id` from `repo` and compares the file with `data`.
fn assert_restores(repo: &Repository, id: &SnapshotId, data: &[u8], scratch: &Path) {
    let snap = repo.resolve(&id.to_hex()).unwrap();
    let out = scratch.join(format!("restore-{}", crate::catalog::now_ns()));
    repo.restore(&snap, &out, &RestoreOptions::default(), &NoProgress)
        .unwrap();
    let top = out.join(crate::test_support::stored(scratch, ""));
    let file = std::fs::read_dir(top).unwrap().next().unwrap().unwrap();
    assert_eq!(std::fs::read(file.path().join("w")).unwrap(), data, "{id}");
}

fn assert_clean(repo: &Repository) {
    let report = repo.check(CheckOptions::READ_ALL, &NoProgress).unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
}

fn ids(repo: &Repository) -> Vec<SnapshotId> {
    let snaps = repo.snapshots(&SnapshotFilter::default()).unwrap();
    snaps.into_iter().map(|s| s.id).collect()
}

#[test]
fn copies_everything_into_memory_storage_and_a_second_run_sends_nothing() {
    let (src, snaps) = source();
    let (_, dest) = memory_dest(&src.dir.path().join("cache"), 4096);
    let r = src.repo.copy_to(&dest, &all(), &NoProgress).unwrap();
    assert_eq!((r.snapshots_copied, r.snapshots_present), (3, 0));
    assert!(r.chunks_sent > 0 && r.packs_written > 1, "{r:?}");
    assert_eq!(ids(&dest), ids(&src.repo), "same ids, same order");
    let (a, b) = (
        src.repo.snapshots(&SnapshotFilter::default()).unwrap(),
        dest.snapshots(&SnapshotFilter::default()).unwrap(),
    );
    for (a, b) in a.iter().zip(&b) {
        assert_eq!((&a.label, a.time, &a.host), (&b.label, b.time, &b.host));
    }
    for (id, data) in &snaps {
        assert_restores(&dest, id, data, src.dir.path());
    }
    assert_clean(&dest);

    let again = src.repo.copy_to(&dest, &all(), &NoProgress).unwrap();
    assert_eq!((again.snapshots_copied, again.snapshots_present), (0, 3));
    assert_eq!((again.chunks_sent, again.packs_written), (0, 0));

    // And back, into a fresh local repository, by selector.
    let back = TestRepo::new();
    let req = CopyRequest {
        selectors: vec!["m~1".into()],
        ..Default::default()
    };
    let r = dest.copy_to(&back.repo, &req, &NoProgress).unwrap();
    assert_eq!(r.snapshots_copied, 1);
    assert_eq!(ids(&back.repo), vec![snaps[0].0]);
    assert_restores(&back.repo, &snaps[0].0, &snaps[0].1, src.dir.path());
    assert_clean(&back.repo);
}

#[test]
fn only_chunks_the_destination_lacks_are_sent() {
    let (src, snaps) = source();
    let (_, dest) = memory_dest(&src.dir.path().join("cache"), 4096);
    let first = CopyRequest {
        selectors: vec!["m~1".into()],
        ..Default::default()
    };
    let r1 = src.repo.copy_to(&dest, &first, &NoProgress).unwrap();
    let history = CopyRequest {
        filter: Some(SnapshotFilter {
            name: Some("m".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let r2 = src.repo.copy_to(&dest, &history, &NoProgress).unwrap();
    assert_eq!((r2.snapshots_copied, r2.snapshots_present), (1, 1));
    // v2 changed 40 KB of 400 KB: about a tenth travels (plus the chunks
    // the edit's boundaries cut anew).
    assert!(
        r2.raw_bytes_sent * 4 < r1.raw_bytes_sent,
        "v1 {} bytes, v2 {} bytes",
        r1.raw_bytes_sent,
        r2.raw_bytes_sent
    );
    assert_eq!(ids(&dest), vec![snaps[0].0, snaps[1].0]);
    assert_restores(&dest, &snaps[1].0, &snaps[1].1, src.dir.path());
}

#[test]
fn a_dry_run_writes_nothing_and_says_what_a_copy_sends() {
    let (src, _) = source();
    let (storage, dest) = memory_dest(&src.dir.path().join("cache"), 4096);
    let req = CopyRequest {
        dry_run: true,
        ..Default::default()
    };
    let dry = src.repo.copy_to(&dest, &req, &NoProgress).unwrap();
    assert!(dry
        .snapshots
        .iter()
        .all(|s| s.state == CopyState::WouldCopy));
    assert!(storage.list("packs/").unwrap().is_empty());
    assert!(ids(&dest).is_empty());
    let real = src.repo.copy_to(&dest, &all(), &NoProgress).unwrap();
    assert_eq!(
        (dry.chunks_sent, dry.bytes_sent),
        (real.chunks_sent, real.bytes_sent)
    );
}

#[test]
fn a_bad_selector_is_refused_before_anything_is_written() {
    let (src, _) = source();
    let (storage2, dest2) = memory_dest(&src.dir.path().join("cache2"), 4096);
    let req = CopyRequest {
        selectors: vec!["m".into(), "nope".into()],
        ..Default::default()
    };
    let err = src.repo.copy_to(&dest2, &req, &NoProgress).unwrap_err();
    assert!(matches!(err, Error::SnapshotNotFound { .. }), "{err}");
    let typo = CopyRequest {
        filter: Some(SnapshotFilter {
            name: Some("lama".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = src.repo.copy_to(&dest2, &typo, &NoProgress).unwrap_err();
    assert!(
        matches!(&err, Error::SnapshotNotFound { .. }) && err.to_string().contains("--name lama"),
        "{err}"
    );
    assert!(storage2.list("packs/").unwrap().is_empty());
    assert!(storage2.list("snapshots/").unwrap().is_empty());
    assert!(storage2.list("locks/").unwrap().is_empty());
}

/// A repository on `MemoryStorage` with chunks of `chunk_avg`, encrypted
/// or not (each encrypted one under a master key of its own).
fn memory_repo(cache: &Path, chunk_avg: u32, encrypted: bool) -> (Arc<dyn Storage>, Repository) {
    crate::test_support::use_passwords("pw", "pw");
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let mut config = RepoConfig::new(ChunkerParams::with_average(chunk_avg), 3)
        .unwrap()
        .with_pack_target(16 * 1024)
        .unwrap();
    if encrypted {
        config = config.with_encryption();
    }
    let repo =
        Repository::init_with(storage.clone(), CatalogLocation::cache_dir(cache), config).unwrap();
    (storage, repo)
}

/// The snapshots of `repo`, oldest first.
fn listed(repo: &Repository) -> Vec<SnapshotInfo> {
    repo.snapshots(&SnapshotFilter::default()).unwrap()
}

/// Plain -> encrypted, key A -> key B, encrypted -> plain with another
/// chunker, and back to the source's chunker: each hop re-encodes, keeps
/// every label, time and host under a new id, restores bit-identically,
/// checks clean with every byte read, keeps the parent by history, and a
/// second run copies nothing.
#[test]
fn re_encoding_copies_between_repositories_that_cut_or_seal_differently() {
    let (src, snaps) = source();
    let dir = src.dir.path();
    let (_, key_a) = memory_repo(&dir.join("a"), 4096, true);
    let (_, key_b) = memory_repo(&dir.join("b"), 4096, true);
    let (_, plain_8k) = memory_repo(&dir.join("c"), 8192, false);
    let (_, plain_4k) = memory_repo(&dir.join("d"), 4096, false);
    let hops = [
        (&src.repo, &key_a),
        (&key_a, &key_b),
        (&key_b, &plain_8k),
        (&plain_8k, &plain_4k),
    ];
    for (n, (from, to)) in hops.into_iter().enumerate() {
        assert!(
            matches!(compatibility(from, to), Compatibility::Rechunk { .. }),
            "hop {n}"
        );
        let r = from.copy_to(to, &all(), &NoProgress).unwrap();
        assert_eq!(r.mode, CopyMode::ReEncoded, "hop {n}");
        assert!(r.reason.is_some());
        assert_eq!((r.snapshots_copied, r.snapshots_present), (3, 0), "hop {n}");
        assert!(r.chunks_sent > 0 && r.packs_written > 0, "{r:?}");
        let (a, b) = (listed(from), listed(to));
        assert_eq!(a.len(), b.len());
        for ((a, b), copied) in a.iter().zip(&b).zip(&r.snapshots) {
            assert_eq!(
                (
                    &a.label,
                    a.time,
                    &a.host,
                    &a.sources,
                    a.file_count,
                    a.logical_bytes
                ),
                (
                    &b.label,
                    b.time,
                    &b.host,
                    &b.sources,
                    b.file_count,
                    b.logical_bytes
                )
            );
            assert_ne!(a.id, b.id, "a re-encoded manifest has its own id");
            assert_eq!(copied.to_id, Some(b.id));
        }
        for (snap, (_, data)) in b.iter().zip(&snaps) {
            assert_restores(to, &snap.id, data, dir);
        }
        assert_clean(to);
        // The second `m` names the first as parent, by history.
        let m: Vec<&SnapshotInfo> = b.iter().filter(|s| s.label.name == "m").collect();
        let key = manifest::key(&m[1].id);
        let second = crate::ops::snapshot::trees::load_in(to, &key, Some(&m[1].id)).unwrap();
        assert_eq!(second.manifest.parent, Some(m[0].id), "hop {n}");

        let again = from.copy_to(to, &all(), &NoProgress).unwrap();
        assert_eq!((again.snapshots_copied, again.snapshots_present), (0, 3));
        assert_eq!((again.chunks_sent, again.packs_written), (0, 0));
        let present: Vec<_> = again.snapshots.iter().map(|s| s.to_id).collect();
        assert_eq!(present, b.iter().map(|s| Some(s.id)).collect::<Vec<_>>());
    }
}

/// Re-encoding the second version after the first stores only what the
/// second changed; a dry run says what it would read and writes nothing.
#[test]
fn re_encoding_stores_only_the_new_part_of_a_second_version() {
    let (src, snaps) = source();
    let (storage, dest) = memory_repo(&src.dir.path().join("e"), 4096, true);
    let dry = CopyRequest {
        dry_run: true,
        ..Default::default()
    };
    let d = src.repo.copy_to(&dest, &dry, &NoProgress).unwrap();
    assert_eq!(d.mode, CopyMode::ReEncoded);
    assert!(d.snapshots.iter().all(|s| s.state == CopyState::WouldCopy));
    assert_eq!(d.raw_bytes_read, 400_000 + 400_000 + 20_000);
    assert!(storage.list("packs/").unwrap().is_empty());
    assert!(ids(&dest).is_empty());

    let first = CopyRequest {
        selectors: vec!["m~1".into()],
        ..Default::default()
    };
    let r1 = src.repo.copy_to(&dest, &first, &NoProgress).unwrap();
    let history = CopyRequest {
        filter: Some(SnapshotFilter {
            name: Some("m".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let r2 = src.repo.copy_to(&dest, &history, &NoProgress).unwrap();
    assert_eq!((r2.snapshots_copied, r2.snapshots_present), (1, 1));
    assert_eq!(r2.raw_bytes_read, 400_000, "the whole file is read");
    assert!(
        r2.raw_bytes_sent * 4 < r1.raw_bytes_sent,
        "v1 {} bytes, v2 {} bytes",
        r1.raw_bytes_sent,
        r2.raw_bytes_sent
    );
    let there = listed(&dest);
    assert_restores(&dest, &there[1].id, &snaps[1].1, src.dir.path());
    assert_clean(&dest);
}

/// A source chunk that does not open to its id fails a re-encoding copy,
/// naming the pack and the file; the destination keeps what it had and
/// shows no part of the failed snapshot.
#[test]
fn a_damaged_source_chunk_fails_a_re_encoding_copy_and_leaves_the_destination_intact() {
    let (src, snaps) = source();
    let (_, dest) = memory_repo(&src.dir.path().join("f"), 4096, true);
    let config = CopyRequest {
        selectors: vec!["c".into()],
        ..Default::default()
    };
    src.repo.copy_to(&dest, &config, &NoProgress).unwrap();
    let before = ids(&dest);
    // Flip a byte inside the first chunk of `m`'s first version.
    let snap = src.repo.resolve(&snaps[0].0.to_hex()).unwrap();
    let file = src.repo.files(&snap).unwrap();
    let w = file.iter().find(|f| f.path.ends_with("/w")).unwrap();
    let loc = src.repo.locate_all(&w.chunks[..1]).unwrap()[0];
    let pack = src.repo.root().join(crate::format::pack::key(&loc.pack));
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[loc.entry.offset as usize + 5] ^= 0x40;
    std::fs::write(&pack, bytes).unwrap();

    let err = src.repo.copy_to(&dest, &all(), &NoProgress).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains(&loc.pack.to_hex()[..8]) && shown.contains(&w.path),
        "{shown}"
    );
    assert_eq!(ids(&dest), before, "no part of the failed copy is visible");
    assert_clean(&dest);
    let c = listed(&dest);
    assert_restores(&dest, &c[0].id, &snaps[2].1, src.dir.path());
}

/// With one pack writer and with three (as on object storage), whose
/// puts a crash may stop in any order.
#[test]
fn a_copy_crashed_before_any_storage_step_is_finished_by_the_next() {
    for writers in [1, 3] {
        crashed_copies_are_finished_by_the_next(writers);
    }
}

fn crashed_copies_are_finished_by_the_next(writers: usize) {
    let (src, snaps) = source();
    // Mutation 1 is the destination's lock; crash before 2, 3, ... of copy.
    for crash_at in 2.. {
        let dest = TestRepo::with_pack_target(Some(16 * 1024));
        let root = dest.repo.root().to_path_buf();
        let faulty = FaultyStorage::new(LocalStorage::new(&root), Fault::Crash, crash_at)
            .with_parallel_puts(writers);
        let location = CatalogLocation::in_repository(&root);
        let crashing = Repository::open_with(Arc::new(faulty), location).unwrap();
        let outcome = src.repo.copy_to(&crashing, &all(), &NoProgress);
        drop(crashing);

        let repo = Repository::open(&root).unwrap();
        lock::unlock(repo.storage(), true).unwrap();
        let visible = ids(&repo);
        let r = src.repo.copy_to(&repo, &all(), &NoProgress).unwrap();
        assert_eq!(
            r.snapshots_present as usize,
            visible.len(),
            "{writers} writers, crash at {crash_at}"
        );
        assert_eq!(
            ids(&repo),
            ids(&src.repo),
            "{writers} writers, crash at {crash_at}"
        );
        assert_clean(&repo);
        for (id, data) in &snaps {
            assert_restores(&repo, id, data, src.dir.path());
        }
        if outcome.is_ok() {
            assert!(crash_at > 5, "the copy took several storage steps");
            break;
        }
    }
}

#[test]
fn batches_cover_every_chunk_once_in_runs_of_about_the_budget() {
    let loc = |i: u8, len: u32| ChunkLocation {
        pack: crate::format::id::PackId([0; 32]),
        entry: PackEntry {
            chunk: ChunkId([i; 32]),
            offset: 0,
            stored_len: len,
            raw_len: 2 * len,
            codec: Codec::Raw,
        },
    };
    let locs: Vec<_> = [5, 5, 5, 20, 1, 1]
        .iter()
        .enumerate()
        .map(|(i, &n)| loc(i as u8, n))
        .collect();
    let runs = |budget, len: fn(&PackEntry) -> u32| -> Vec<usize> {
        batches(&locs, budget, len)
            .map(|(b, bytes)| {
                // The bytes each run reports are the ones it counted.
                assert_eq!(bytes, b.iter().map(|l| len(&l.entry) as u64).sum::<u64>());
                b.len()
            })
            .collect()
    };
    // A run closes once its bytes reach the budget; a chunk larger than the
    // budget is a run of its own, and the last run takes what is left.
    assert_eq!(runs(10, |e| e.stored_len), [2, 2, 2]);
    assert_eq!(runs(10, |e| e.raw_len), [1, 1, 1, 1, 2]);
    assert_eq!(runs(1000, |e| e.stored_len), [6]);
    assert_eq!(runs(1, |e| e.stored_len), [1; 6]);
    assert_eq!(batches(&[], 10, |e| e.stored_len).count(), 0);
}
