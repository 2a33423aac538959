//! Repositories written by earlier releases stay readable: a repository
//! made by cairn 0.1.0 (`tests/fixtures/v0.1.0`, never regenerated) lists,
//! restores bit for bit, checks clean and rebuilds its catalog with today's
//! binary.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{assert_diff_clean, copy_dir, Env};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0.1.0")
}

/// A copy of the fixture repository (commands write locks and the WAL).
fn env_with_fixture() -> Env {
    let env = Env::uninit();
    copy_dir(&fixture().join("repo"), &env.repo);
    env
}

/// Restores `selector` and compares the tree it stored as `stored` with
/// `expected`; returns the restored tree.
fn restore_and_compare(env: &Env, selector: &str, stored: &str, expected: &Path) -> PathBuf {
    let target = env.restore(selector).join(stored);
    assert_diff_clean(&target, expected);
    target
}

#[test]
fn a_repository_made_by_cairn_0_1_0_restores_bit_for_bit() {
    let env = env_with_fixture();
    let list: Vec<Value> = env.list();
    let labels: Vec<(String, String, Value)> = list
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap().to_string(),
                s["name"].as_str().unwrap().to_string(),
                s["version"].clone(),
            )
        })
        .collect();
    assert_eq!(
        labels,
        [
            ("model".into(), "fixture".into(), "v1".into()),
            ("model".into(), "fixture".into(), "v2".into()),
            ("config".into(), "conf".into(), Value::Null),
        ]
    );
    assert_eq!(list[0]["tags"], serde_json::json!(["first"]));
    assert_eq!(list[0]["description"], "first version");

    let sources = fixture().join("sources");
    let v1 = restore_and_compare(&env, "fixture:v1", "src", &sources.join("v1"));
    // Git keeps no modes but the executable bit; the snapshot kept 0640.
    let mode = std::fs::metadata(v1.join("conf/nested/notes.txt"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    restore_and_compare(&env, "fixture", "src", &sources.join("v2"));
    restore_and_compare(&env, "config/conf", "conf", &sources.join("v2/conf"));
    env.check_read_data();

    env.ok(&["rebuild-catalog", "--yes"]);
    assert_eq!(
        env.list().len(),
        3,
        "the rebuilt catalog lists every snapshot"
    );
    restore_and_compare(&env, "fixture~1", "src", &sources.join("v1"));
    env.check_read_data();
}
