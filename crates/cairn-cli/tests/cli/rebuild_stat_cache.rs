//! `rebuild-catalog` keeps the stat cache (#18): the inodes the snapshot's
//! unchanged-file shortcut compares are not in manifests, so the rebuild
//! carries them over from the previous catalog; when that catalog cannot
//! be read it says the stat cache is lost, and the next snapshot re-reads
//! the files once.

use std::fs;
use std::path::PathBuf;

use crate::common::*;

/// A repository with one snapshot of a small tree (`model/llama`), and
/// that tree.
fn one_snapshot() -> (Env, PathBuf) {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("weights.bin"), &random_bytes(400_000, 7));
    write(&src.join("sub/config.json"), b"{\"dim\": 64}\n");
    let first = env.snapshot(&src, "model", "llama", &[]);
    assert_eq!(u(&first, "files_read"), 2, "{first}");
    (env, src)
}

/// Guards the stat cache through a rebuild of a healthy catalog: a
/// re-snapshot of unchanged files afterwards reads nothing.
#[test]
fn rebuild_catalog_keeps_the_stat_cache() {
    let (env, src) = one_snapshot();
    let r = env.json(["rebuild-catalog", "--yes"]);
    assert_eq!(r["stat_cache"]["kept"], 1, "{r}");
    assert_eq!(r["stat_cache"]["lost"], 0, "{r}");
    assert!(r["stat_cache"]["error"].is_null(), "{r}");
    let again = env.snapshot(&src, "model", "llama", &[]);
    assert_eq!(u(&again, "files_read"), 0, "{again}");
    assert_eq!(u(&again, "bytes_read"), 0, "{again}");

    // The text report says so, and names the set-aside catalog.
    let out = run_ok(env.cmd(["rebuild-catalog", "--yes"]));
    let text = stdout(&out);
    assert!(text.contains("stat cache kept for 2 snapshots"), "{text}");
    assert!(
        text.contains("the previous catalog was kept as") && text.contains("catalog.db.broken-"),
        "{text}"
    );
    let again = env.snapshot(&src, "model", "llama", &[]);
    assert_eq!(u(&again, "files_read"), 0, "{again}");
}

/// Guards the message when the previous catalog is garbage: the stat cache
/// is lost, the report says why, and only the next snapshot re-reads.
#[test]
fn an_unreadable_catalog_loses_the_stat_cache_once() {
    let (env, src) = one_snapshot();
    let catalog = env.repo.join("catalog.db");
    let len = fs::metadata(&catalog).unwrap().len() as usize;
    fs::write(&catalog, random_bytes(len, 8)).unwrap();
    let r = env.json(["rebuild-catalog", "--yes"]);
    assert_eq!(r["stat_cache"]["kept"], 0, "{r}");
    assert_eq!(r["stat_cache"]["lost"], 1, "{r}");
    let why = r["stat_cache"]["error"].as_str().unwrap();
    assert!(why.contains("catalog.db"), "{r}");
    let reread = env.snapshot(&src, "model", "llama", &[]);
    assert_eq!(u(&reread, "files_read"), 2, "{reread}");
    let then = env.snapshot(&src, "model", "llama", &[]);
    assert_eq!(u(&then, "files_read"), 0, "read once: {then}");

    fs::remove_file(&catalog).unwrap();
    let out = run_ok(env.cmd(["rebuild-catalog", "--yes"]));
    let text = stdout(&out);
    assert!(
        text.contains("stat cache lost for 3 snapshots: the next snapshot of each of their histories reads its files again, once"),
        "{text}"
    );
}
