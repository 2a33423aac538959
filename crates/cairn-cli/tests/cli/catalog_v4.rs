//! A catalog written with schema 4 (`tests/fixtures/catalog-v4`, made by
//! the cairn of 3a088d4 and never regenerated; it has the `chunks_by_pack`
//! index) is upgraded in place to schema 5 by the first open, read-only
//! too: the index is dropped, and `show`, `diff`, `restore` and `check`
//! (which reads every pack's chunks without it) still answer; a new
//! snapshot, `delete` with `gc` (pack usage and dropped packs without it)
//! and `rebuild-catalog` keep every file.

use std::path::{Path, PathBuf};

use crate::catalog_v3::{changed_paths, restore_and_check, schema_version, shown};
use crate::common::{copy_dir, run_ok, write, Env};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/catalog-v4/repo")
}

fn has_by_pack_index(env: &Env) -> bool {
    rusqlite::Connection::open(env.repo.join("catalog.db"))
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'chunks_by_pack'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
        > 0
}

fn pack_count(env: &Env) -> usize {
    walkdir(&env.repo.join("packs"))
}

fn walkdir(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { walkdir(&p) } else { 1 })
        .sum()
}

#[test]
fn a_schema_4_catalog_is_upgraded_and_still_answers() {
    let env = Env::uninit();
    copy_dir(&fixture(), &env.repo);
    assert_eq!(schema_version(&env), "4");
    assert!(has_by_pack_index(&env));
    // A reader upgrades it (its one write).
    let before = shown(&env, "tree~1");
    assert_eq!(schema_version(&env), "5");
    assert!(!has_by_pack_index(&env), "schema 5 drops the by-pack index");
    assert!(
        before.contains(&("tree/a/b/c".into(), "dir".into())),
        "{before:?}"
    );
    assert_eq!(before.len(), 11, "{before:?}");
    assert_eq!(shown(&env, "tree"), before);
    let d = env.json(["diff", "tree~1", "tree"]);
    assert_eq!(changed_paths(&d), ["tree/a/b/c/deep.txt"], "{d}");
    restore_and_check(&env, "tree~1", "deep v1\n");
    let root = restore_and_check(&env, "tree", "deep v2, longer\n");
    env.check_read_data();

    // A new snapshot beside the old rows; deleting the middle one leaves
    // its pack's one chunk (deep v2) and new trees unreferenced, so gc
    // measures pack usage and drops a pack, without the index.
    write(&root.join("a/b/c/deep.txt"), b"deep v3\n");
    let args = ["snapshot", "tree", "--kind", "config", "--name", "tree"];
    run_ok(env.cmd(args).current_dir(root.parent().unwrap()));
    let d = env.json(["diff", "tree~1", "tree"]);
    assert_eq!(changed_paths(&d), ["tree/a/b/c/deep.txt"], "{d}");
    env.check_read_data();
    let packs_before = pack_count(&env);
    env.ok(&["delete", "--yes", "tree~1"]);
    env.ok(&["gc", "--max-unused", "0"]);
    assert!(
        pack_count(&env) < packs_before,
        "gc removed or repacked the deleted snapshot's pack"
    );
    env.check_read_data();
    restore_and_check(&env, "tree~1", "deep v1\n");
    restore_and_check(&env, "tree", "deep v3\n");

    env.ok(&["rebuild-catalog", "--yes"]);
    assert_eq!(schema_version(&env), "5");
    assert!(!has_by_pack_index(&env));
    assert_eq!(env.list().len(), 2);
    restore_and_check(&env, "tree~1", "deep v1\n");
    restore_and_check(&env, "tree", "deep v3\n");
    env.check_read_data();
}
