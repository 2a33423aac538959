//! A damaged catalog must never make `gc` delete live data. The catalog is
//! a cache of the packs and manifests; every test here damages it the way a
//! bad disk sector or a stray write would, runs what an operator runs
//! (`check`, `gc`, `check`), and then proves from the source of truth alone
//! (`rebuild-catalog`, then `verify`) that every kept snapshot is whole.

use std::fs;
use std::path::Path;

use crate::common::{copy_dir, random_bytes, stderr, Env};

const PAGE: usize = 4096;

/// A small repository with one history of three versions of a 3 MB model
/// (each changing about a sixth of it) in 1 MB packs, and the oldest
/// version deleted, so that a gc has packs to repack and chunks to drop.
/// Returns the environment and the ids of the two kept snapshots.
fn template() -> (Env, Vec<String>) {
    let env = Env::with_init(&["--pack-target", "1M"]);
    let mut data = random_bytes(3_000_000, 1);
    let mut ids = Vec::new();
    for v in 0..3u64 {
        if v > 0 {
            let at = v as usize * 1_000_000;
            data[at..at + 500_000].copy_from_slice(&random_bytes(500_000, 10 + v));
        }
        let version = format!("v{}", v + 1);
        ids.push(env.snapshot_files(
            "m",
            &[("w.bin", &data)],
            &["--kind", "model", "--name", "m", "--version", &version],
        ));
    }
    env.ok(&["delete", "--yes", &ids[0]]);
    let wal = env.repo.join("catalog.db-wal");
    assert!(
        fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "the catalog's WAL was checkpointed, so every page is in catalog.db"
    );
    (env, ids.split_off(1))
}

/// Flips the low bit of the byte at `at` of the catalog.
fn flip(repo: &Path, at: usize) {
    let path = repo.join("catalog.db");
    let mut bytes = fs::read(&path).unwrap();
    bytes[at] ^= 0x01;
    fs::write(&path, bytes).unwrap();
}

/// Flips one bit in the leaf page of index `name` such that SQLite reports
/// a row missing from it: the index entry's key changed, while the table
/// still holds the row (the damage the audit found). Which byte that is
/// depends on the page layout, so the bytes of the page are tried from its
/// end, where SQLite keeps the cells.
fn damage_index_entry(repo: &Path, name: &str) {
    let db = repo.join("catalog.db");
    let integrity = || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let rows: Vec<String> = conn
            .prepare("PRAGMA integrity_check")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        rows.join("; ")
    };
    let page: usize = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = ?1",
            [name],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as usize;
    for back in 1..PAGE {
        let at = page * PAGE - back;
        flip(repo, at);
        if integrity().contains(&format!("missing from index {name}")) {
            return;
        }
        flip(repo, at);
    }
    panic!("no single flipped bit in index {name} loses a row");
}

/// Runs `cairn ARGS` against `repo`; any exit but 0, 1 (damage found) or
/// 2 (refused) — a panic, a signal — fails the test. Returns the code.
fn run_in(env: &Env, repo: &Path, args: &[&str]) -> (i32, String) {
    let repo_arg = repo.display().to_string();
    let out = env
        .cmd([args, &["--repo", &repo_arg]].concat())
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let err = stderr(&out);
    assert!(
        (0..=2).contains(&code) && !err.contains("panicked"),
        "cairn {args:?} exited {code}: {err}"
    );
    (
        code,
        format!("{}{err}", String::from_utf8_lossy(&out.stdout)),
    )
}

/// From packs and manifests alone, every kept snapshot rebuilds bit for bit.
fn assert_kept_snapshots_whole(env: &Env, repo: &Path, kept: &[String], what: &str) {
    let (code, out) = run_in(env, repo, &["rebuild-catalog", "--yes"]);
    assert_eq!(code, 0, "{what}: rebuild-catalog failed: {out}");
    for id in kept {
        let (code, out) = run_in(env, repo, &["verify", id]);
        assert_eq!(code, 0, "{what}: kept snapshot {id} lost data: {out}");
    }
}

/// The audit's case: a row missing from an index (it was `chunks_by_pack`,
/// which schema 5 no longer has; now the pack-id index gc's repack writes
/// through). `check` must call the catalog damaged and `gc` must refuse,
/// naming `rebuild-catalog`; after the rebuild gc runs and nothing is lost.
#[test]
fn a_row_missing_from_an_index_is_damage_and_stops_gc() {
    let (env, kept) = template();
    damage_index_entry(&env.repo, "sqlite_autoindex_packs_1");

    let (code, out) = run_in(&env, &env.repo, &["check"]);
    assert_eq!(code, 1, "plain check sees the index damage: {out}");
    assert!(out.contains("catalog"), "{out}");
    let (code, out) = run_in(&env, &env.repo, &["check", "--read-data"]);
    assert_eq!(code, 1, "check --read-data sees it too: {out}");
    assert!(out.contains("rebuild-catalog"), "{out}");

    let (code, out) = run_in(&env, &env.repo, &["gc", "--max-unused", "0"]);
    assert_eq!(code, 2, "gc refuses a damaged catalog: {out}");
    assert!(out.contains("rebuild-catalog"), "{out}");
    assert_kept_snapshots_whole(&env, &env.repo, &kept, "after rebuild");
    let (code, out) = run_in(&env, &env.repo, &["gc", "--max-unused", "0"]);
    assert_eq!(code, 0, "gc runs on the rebuilt catalog: {out}");
    assert_kept_snapshots_whole(&env, &env.repo, &kept, "after gc");
}

/// `forget` decides from the snapshot rows: damage to their index makes it
/// refuse, changing nothing, and the rebuilt catalog forgets correctly.
#[test]
fn forget_refuses_a_damaged_snapshot_index() {
    let (env, kept) = template();
    damage_index_entry(&env.repo, "snapshots_by_history");
    let (code, out) = run_in(&env, &env.repo, &["forget", "--keep-last", "1"]);
    assert_eq!(code, 2, "forget refuses a damaged catalog: {out}");
    assert!(out.contains("rebuild-catalog"), "{out}");
    assert_kept_snapshots_whole(&env, &env.repo, &kept, "after the refusal");
    let (code, out) = run_in(&env, &env.repo, &["forget", "--keep-last", "1"]);
    assert_eq!(code, 0, "forget works on the rebuilt catalog: {out}");
    assert_kept_snapshots_whole(&env, &env.repo, &kept[1..], "after forget");
}

/// Places in a page to damage: inside the cell content (which SQLite fills
/// from the end of a page), the middle, and near the page header.
const OFFSETS: [usize; 4] = [PAGE - 9, PAGE - 61, PAGE / 2 + 5, 13];

/// Every page of a small catalog, damaged in turn at each of [`OFFSETS`]:
/// no sequence `check` → `gc` → `check` loses a chunk a kept snapshot needs.
#[test]
fn no_flipped_catalog_byte_makes_gc_lose_live_data() {
    let (env, kept) = template();
    let pages = fs::metadata(env.repo.join("catalog.db")).unwrap().len() as usize / PAGE;
    assert!(pages >= 10, "the catalog has a page per table and index");
    let trials: Vec<usize> = (0..pages)
        .flat_map(|p| OFFSETS.iter().map(move |o| p * PAGE + o))
        .collect();
    let outcomes: Vec<(usize, i32)> = std::thread::scope(|s| {
        let workers: Vec<_> = trials
            .chunks(trials.len().div_ceil(2))
            .map(|part| {
                let (env, kept) = (&env, &kept);
                s.spawn(move || {
                    part.iter()
                        .map(|&at| {
                            let repo = env.path(&format!("trial-{at}"));
                            copy_dir(&env.repo, &repo);
                            flip(&repo, at);
                            run_in(env, &repo, &["check"]);
                            let (gc, _) = run_in(env, &repo, &["gc", "--max-unused", "0"]);
                            run_in(env, &repo, &["check", "--read-data"]);
                            let what = format!("byte {at} (page {})", at / PAGE + 1);
                            assert_kept_snapshots_whole(env, &repo, kept, &what);
                            fs::remove_dir_all(&repo).unwrap();
                            (at, gc)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(outcomes.len(), pages * OFFSETS.len());
    // Damage in pages gc does not read lets it run; the test is only worth
    // something if both outcomes occur.
    assert!(outcomes.iter().any(|&(_, gc)| gc == 0), "{outcomes:?}");
    assert!(outcomes.iter().any(|&(_, gc)| gc == 2), "{outcomes:?}");
}
