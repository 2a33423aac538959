//! A catalog written with schema 3 (`tests/fixtures/catalog-v3`, made by
//! the cairn of d5e6a54 and never regenerated) is upgraded in place to
//! the current schema (through 4) by the first open, read-only too, and still answers `show`,
//! `diff`, `restore`, `check`; new snapshots beside its old rows, `delete`
//! with `gc`, and `rebuild-catalog` keep every tree.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{copy_dir, run_ok, write, Env};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/catalog-v3/repo")
}

pub(crate) fn schema_version(env: &Env) -> String {
    rusqlite::Connection::open(env.repo.join("catalog.db"))
        .unwrap()
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// The paths of `show --json`, and the kind of each.
pub(crate) fn shown(env: &Env, selector: &str) -> Vec<(String, String)> {
    let v = env.json(["show", selector]);
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub(crate) fn changed_paths(d: &Value) -> Vec<String> {
    d["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_string())
        .collect()
}

/// Restores `selector` and checks the fixture tree's files, with `deep`
/// as the content of `a/b/c/deep.txt`; returns the restored `tree`.
pub(crate) fn restore_and_check(env: &Env, selector: &str, deep: &str) -> PathBuf {
    let root = env.restore(selector).join("tree");
    let read = |p: &str| fs::read_to_string(root.join(p)).unwrap();
    assert_eq!(read("a/b/c/deep.txt"), deep, "{selector}");
    assert_eq!(read("a/b/beside.txt"), "beside\n");
    assert_eq!(read("a/top.txt"), "top\n");
    assert_eq!(read("x/y.txt"), "y\n");
    assert_eq!(
        fs::read_link(root.join("link")).unwrap(),
        Path::new("a/top.txt")
    );
    assert!(root.join("empty").is_dir());
    root
}

#[test]
fn a_schema_3_catalog_is_upgraded_and_still_answers() {
    let env = Env::uninit();
    copy_dir(&fixture(), &env.repo);
    assert_eq!(schema_version(&env), "3");
    // A reader upgrades it (its one write).
    let before = shown(&env, "tree~1");
    assert_eq!(schema_version(&env), "5");
    assert!(
        before.contains(&("tree/a/b/c".into(), "dir".into())),
        "{before:?}"
    );
    assert!(
        before.contains(&("tree/empty".into(), "dir".into())),
        "{before:?}"
    );
    assert_eq!(before.len(), 11, "{before:?}");
    assert_eq!(shown(&env, "tree"), before);
    let d = env.json(["diff", "tree~1", "tree"]);
    assert_eq!(changed_paths(&d), ["tree/a/b/c/deep.txt"], "{d}");
    restore_and_check(&env, "tree~1", "deep v1\n");
    let root = restore_and_check(&env, "tree", "deep v2, longer\n");
    env.check_read_data();

    // A new snapshot writes schema 4's rows beside the old ones; the
    // directories' trees still read back (check compares them with the
    // manifest) and gc keeps them.
    write(&root.join("a/b/c/deep.txt"), b"deep v3\n");
    // Given as `tree` from where it was restored, so stored as `tree/…`.
    let args = ["snapshot", "tree", "--kind", "config", "--name", "tree"];
    run_ok(env.cmd(args).current_dir(root.parent().unwrap()));
    let d = env.json(["diff", "tree~1", "tree"]);
    assert_eq!(changed_paths(&d), ["tree/a/b/c/deep.txt"], "{d}");
    env.check_read_data();
    env.ok(&["delete", "--yes", "tree~2"]);
    env.ok(&["gc"]);
    env.check_read_data();
    restore_and_check(&env, "tree~1", "deep v2, longer\n");
    restore_and_check(&env, "tree", "deep v3\n");

    env.ok(&["rebuild-catalog", "--yes"]);
    assert_eq!(schema_version(&env), "5");
    assert_eq!(env.list().len(), 2);
    restore_and_check(&env, "tree~1", "deep v2, longer\n");
    env.check_read_data();
}
