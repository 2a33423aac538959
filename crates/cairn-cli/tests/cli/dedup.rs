//! Deduplication and the stat cache, measured through `snapshot --json`.

use std::fs;

use crate::common::*;

const CONFIG: &[u8] = br#"{"lr": 0.001, "layers": 12}"#;

/// A tree of a few pseudo-random files: 8 MB, 2 MB, 300 KB, one small text.
fn make_tree(env: &Env) -> std::path::PathBuf {
    let src = env.path("data");
    write(&src.join("weights.bin"), &random_bytes(8_000_000, 21));
    write(
        &src.join("optimizer/state.bin"),
        &random_bytes(2_000_000, 22),
    );
    write(&src.join("optimizer/extra.bin"), &random_bytes(300_000, 23));
    write(&src.join("config.json"), CONFIG);
    src
}

/// Re-reading an identical tree (`--force`) stores < 1% new bytes: every
/// chunk is found already stored.
#[test]
fn forced_resnapshot_of_the_same_tree_stores_under_one_percent() {
    let env = Env::new();
    let src = make_tree(&env);
    let first = env.snapshot(&src, "model", "dd", &[]);
    let logical = u(&first, "logical_bytes");
    assert_eq!(
        logical,
        8_000_000 + 2_000_000 + 300_000 + CONFIG.len() as u64
    );
    assert_eq!(u(&first, "added_raw"), logical);
    assert!(
        u(&first, "added_stored") >= logical * 99 / 100,
        "random data is incompressible: {first}"
    );

    let second = env.snapshot(&src, "model", "dd", &["--force"]);
    assert_eq!(
        u(&second, "files_read"),
        4,
        "--force re-reads every file: {second}"
    );
    assert_eq!(u(&second, "bytes_read"), logical);
    assert!(u(&second, "added_raw") * 100 < logical, "{second}");
    assert!(u(&second, "added_stored") * 100 < logical, "{second}");
    assert_eq!(u(&second, "chunks_new"), 0, "{second}");
    // Both snapshots describe the same content.
    let digests = |sel: &str| {
        let shown = env.json(["show", sel]);
        shown["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["path"].clone(), f["sha256"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(digests("dd~1"), digests("dd"));
}

/// Inserting one byte at the start of a 20 MB pseudo-random file stores
/// < 2% new bytes (content-defined chunking realigns), and the new version
/// reads back exactly.
#[test]
fn one_byte_inserted_at_the_start_of_20_mb_stores_under_two_percent() {
    let env = Env::new();
    let src = env.path("model");
    let data = random_bytes(20_000_000, 31);
    write(&src.join("weights.bin"), &data);
    env.snapshot(&src, "model", "shift", &[]);

    let mut shifted = Vec::with_capacity(data.len() + 1);
    shifted.push(0xA5);
    shifted.extend_from_slice(&data);
    write(&src.join("weights.bin"), &shifted);
    let second = env.snapshot(&src, "model", "shift", &[]);
    assert_eq!(u(&second, "files_read"), 1);
    assert_eq!(u(&second, "bytes_read"), 20_000_001);
    assert!(u(&second, "added_raw") * 50 < 20_000_000, "{second}");
    assert!(u(&second, "added_stored") * 50 < 20_000_000, "{second}");

    let out = run_ok(env.cmd(["cat", "shift", "model/weights.bin"]));
    assert!(out.stdout == shifted, "cat of the shifted file differs");
    let old = run_ok(env.cmd(["cat", "shift~1", "model/weights.bin"]));
    assert!(old.stdout == data, "cat of the original file differs");
}

/// A second snapshot of an unchanged tree (no `--force`) reads no file:
/// size, mtime and inode match the parent, so content comes from the cache.
#[test]
fn unchanged_snapshot_reads_nothing() {
    let env = Env::new();
    let src = make_tree(&env);
    let first = env.snapshot(&src, "model", "cache", &[]);
    let second = env.snapshot(&src, "model", "cache", &[]);
    assert_eq!(u(&second, "files"), 4);
    assert_eq!(u(&second, "files_read"), 0, "{second}");
    assert_eq!(u(&second, "bytes_read"), 0, "{second}");
    assert_eq!(u(&second, "added_raw"), 0, "{second}");
    assert_eq!(u(&second, "logical_bytes"), u(&first, "logical_bytes"));
    // `list --json` records the same run statistics.
    let list = env.list();
    assert_eq!(list.len(), 2);
    assert_eq!(u(&list[1]["stats"], "files_read"), 0);
    assert_eq!(u(&list[1]["stats"], "bytes_read"), 0);
    // The cached entries are complete: the second snapshot restores exactly.
    let out = env.path("out");
    run_ok(env.cmd(["restore".as_ref(), "cache".as_ref(), out.as_os_str()]));
    assert_diff_clean(&src, &out.join("data"));
}

/// Changing one file's mtime (content unchanged) makes exactly that file
/// re-read, and nothing new is stored.
#[test]
fn touching_one_file_rereads_exactly_that_file() {
    let env = Env::new();
    let src = make_tree(&env);
    env.snapshot(&src, "model", "touch", &[]);
    let touched = src.join("optimizer/state.bin");
    let mtime = fs::metadata(&touched).unwrap().modified().unwrap();
    fs::File::open(&touched)
        .unwrap()
        .set_modified(mtime - std::time::Duration::from_secs(3600))
        .unwrap();

    let second = env.snapshot(&src, "model", "touch", &[]);
    assert_eq!(u(&second, "files_read"), 1, "{second}");
    assert_eq!(u(&second, "bytes_read"), 2_000_000, "{second}");
    assert_eq!(u(&second, "added_raw"), 0, "{second}");
    // The new mtime is what the snapshot recorded.
    let shown = env.json(["show", "touch"]);
    let entry = shown["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "data/optimizer/state.bin")
        .unwrap();
    let want = fs::metadata(&touched)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert_eq!(entry["mtime_ns"].as_i64().unwrap() as u128, want.as_nanos());
}

/// The chunk filter beside the catalog never costs dedup: whatever state
/// the file is in when a process starts (current, deleted, cut short,
/// garbage, or left stale by another process that stored more since), a
/// forced re-snapshot of stored data adds no chunk.
#[test]
fn the_chunk_filter_file_never_makes_a_resnapshot_store_chunks() {
    let env = Env::new();
    let src = make_tree(&env);
    assert!(u(&env.snapshot(&src, "model", "cf", &[]), "chunks_new") > 0);
    let filter = env.repo.join("catalog.chunkfilter");
    assert!(filter.is_file(), "written by the first snapshot");
    let more = env.path("more");
    write(&more.join("other.bin"), &random_bytes(1_000_000, 24));
    let stale = fs::read(&filter).unwrap();
    assert!(u(&env.snapshot(&more, "model", "more", &[]), "chunks_new") > 0);
    let current = fs::read(&filter).unwrap();
    assert_ne!(current, stale, "rewritten by the run that added chunks");
    let cases: [(&str, Option<&[u8]>); 5] = [
        ("current", Some(&current)),
        ("deleted", None),
        ("cut short", Some(&current[..current.len() / 2])),
        ("garbage", Some(b"\x89CCF\r\n\x1a\ngarbage")),
        ("stale", Some(&stale)),
    ];
    for (what, file) in cases {
        match file {
            Some(bytes) => fs::write(&filter, bytes).unwrap(),
            None => fs::remove_file(&filter).unwrap(),
        }
        for (path, name) in [(&src, "cf"), (&more, "more")] {
            let again = env.snapshot(path, "model", name, &["--force"]);
            assert_eq!(u(&again, "chunks_new"), 0, "{what}: {again}");
        }
    }
}
