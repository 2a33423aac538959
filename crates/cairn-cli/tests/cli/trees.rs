//! Manifest version 2 with content-addressed tree objects (repository
//! version 4, docs/FORMAT.md "Tree object"): what an unchanged re-snapshot
//! costs, a repository holding both manifest versions, the version gate of
//! `copy`, gc keeping trees, and damage to a tree named by its directory.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::common::*;

/// Sets `version` in an unencrypted repository's config and its backup
/// (an older cairn's repository, or one upgraded by hand).
pub(crate) fn set_repo_version(repo: &Path, from: u32, to: u32) {
    for key in ["config", "config.backup"] {
        let path = repo.join(key);
        let text = fs::read_to_string(&path).unwrap();
        let was = format!("\"version\": {from}");
        assert!(text.contains(&was), "{text}");
        fs::write(&path, text.replace(&was, &format!("\"version\": {to}"))).unwrap();
    }
}

/// The manifest version (header bytes 8..12) of snapshot `id`, unencrypted.
pub(crate) fn manifest_version(repo: &Path, id: &str) -> u32 {
    let bytes = fs::read(repo.join(format!("snapshots/{id}.snap"))).unwrap();
    u32::from_le_bytes(bytes[8..12].try_into().unwrap())
}

/// A source tree of `dir`: nested directories, text and binary files.
fn source(env: &Env, dir: &str) -> std::path::PathBuf {
    let src = env.path(dir);
    for d in 0..4 {
        for f in 0..5 {
            let data = random_bytes(500 + d * 997 + f * 31, (d * 10 + f) as u64);
            write(&src.join(format!("d{d}/sub/f{f}.bin")), &data);
        }
        write(
            &src.join(format!("d{d}/notes.txt")),
            format!("notes {d}\n").as_bytes(),
        );
    }
    write(
        &src.join("deepdir/secretfile.txt"),
        b"hidden under a tree\n",
    );
    std::os::unix::fs::symlink("d0/notes.txt", src.join("link")).unwrap();
    src
}

fn id(report: &Value) -> String {
    report["id"].as_str().unwrap().to_string()
}

/// Guards the goal of #12: an unchanged re-snapshot stores one small
/// manifest and no pack (every tree is already known).
#[test]
fn an_unchanged_resnapshot_stores_one_small_manifest() {
    let env = Env::new();
    let src = source(&env, "src");
    env.snapshot(&src, "config", "svc", &[]);
    let before = repo_files(&env.repo);
    let again = env.snapshot(&src, "config", "svc", &["--force"]);
    let added: Vec<(String, u64)> = repo_files(&env.repo)
        .into_iter()
        .filter(|(k, _)| {
            !before.contains_key(k) && !k.starts_with("catalog.db") && !k.starts_with("locks/")
        })
        .map(|(k, _)| {
            let size = fs::metadata(env.repo.join(&k)).unwrap().len();
            (k, size)
        })
        .collect();
    assert_eq!(added.len(), 1, "{added:?}");
    assert!(added[0].0.starts_with("snapshots/"), "{added:?}");
    assert!(added[0].1 < 1024, "{added:?}");
    assert_eq!(u(&again, "chunks_new"), 0, "{again}");
    if !crate::encrypted_run::encrypted() {
        assert_eq!(manifest_version(&env.repo, &id(&again)), 2);
    }
}

/// A repository made at version 3 (writing manifest version 1) and then
/// raised to version 4 holds both manifest versions: restore, diff across
/// them, check --read-data, rebuild-catalog, forget + gc all work on it.
#[test]
fn version_1_and_version_2_manifests_live_side_by_side() {
    crate::skip_if_encrypted!(
        "it rewrites an unencrypted config by hand (an encrypted one is authenticated)"
    );
    let env = Env::new();
    set_repo_version(&env.repo, 4, 3);
    let src = source(&env, "src");
    let old = env.snapshot(&src, "config", "svc", &[]);
    assert_eq!(manifest_version(&env.repo, &id(&old)), 1);
    let v1_tree = env.restore(&id(&old));

    set_repo_version(&env.repo, 3, 4);
    write(&src.join("d1/notes.txt"), b"changed\n");
    let new = env.snapshot(&src, "config", "svc", &[]);
    assert_eq!(manifest_version(&env.repo, &id(&new)), 2);
    assert_diff_clean(&src, &env.restore(&id(&new)).join("src"));

    let diff = env.json(["diff", &id(&old), &id(&new)]);
    let changed: Vec<&str> = diff["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["src/d1/notes.txt"], "{diff}");
    assert!(diff["added"].as_array().unwrap().is_empty(), "{diff}");
    assert!(diff["removed"].as_array().unwrap().is_empty(), "{diff}");
    assert!(damage_of(&env.json(["check"])).is_empty());
    env.check_read_data();

    let listed = env.list();
    env.ok(&["rebuild-catalog", "--yes"]);
    assert_eq!(ids(&env.list()), ids(&listed), "both versions imported");
    assert_diff_clean(&v1_tree, &env.restore(&id(&old)));

    env.ok(&["delete", "--yes", &id(&old)]);
    env.ok(&["gc"]);
    env.check_read_data();
    assert_diff_clean(&src, &env.restore(&id(&new)).join("src"));
    env.ok(&["rebuild-catalog", "--yes"]);
    assert_eq!(ids(&env.list()), [id(&new)]);
}

fn damage_of(report: &Value) -> Vec<Value> {
    report["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f["damage"] == true)
        .collect()
}

/// Guards the version gate of `copy`: a snapshot with trees is refused by
/// a repository of version 3 (whose cairn may not read manifest version
/// 2), naming why and copying nothing; a version-4 repository takes it
/// under the same id, trees and all.
#[test]
fn copy_of_trees_needs_a_version_4_destination() {
    crate::skip_if_encrypted!(
        "it rewrites an unencrypted config by hand (an encrypted one is authenticated)"
    );
    let src_env = Env::new();
    let src = source(&src_env, "src");
    let snap = id(&src_env.snapshot(&src, "config", "svc", &[]));
    let old = Env::new();
    set_repo_version(&old.repo, 4, 3);
    let err = run_code(
        old.cmd(["copy", &snap])
            .arg("--from")
            .arg(&src_env.repo)
            .arg("--to")
            .arg(&old.repo),
        2,
    );
    assert!(
        err.contains("tree objects") && err.contains("version-3"),
        "{err}"
    );
    assert!(old.list().is_empty(), "nothing was copied");

    let new = Env::new();
    run_ok(
        new.cmd(["copy", &snap])
            .arg("--from")
            .arg(&src_env.repo)
            .arg("--to")
            .arg(&new.repo),
    );
    assert_eq!(ids(&new.list()), std::slice::from_ref(&snap));
    assert_eq!(manifest_version(&new.repo, &snap), 2);
    assert_diff_clean(&src, &new.restore(&snap).join("src"));
    new.ok(&["rebuild-catalog", "--yes"]);
    assert_diff_clean(&src, &new.restore(&snap).join("src"));
    new.check_read_data();
}

/// Guards gc's mark of trees: the kept snapshot's trees survive forget +
/// gc of every other one, and a manifest the catalog does not list (a
/// commit interrupted before its catalog rows) keeps its trees and chunks
/// through gc, so rebuild-catalog brings it back whole.
#[test]
fn gc_keeps_the_trees_of_kept_and_unlisted_snapshots() {
    let env = Env::with_init(&["--pack-target", "16K"]);
    let src = source(&env, "src");
    let a = id(&env.snapshot(&src, "config", "svc", &[]));
    write(&src.join("d2/sub/f1.bin"), &random_bytes(3000, 99));
    let b = id(&env.snapshot(&src, "config", "svc", &[]));
    let kept = env.restore(&b);
    fs::remove_dir_all(src.join("d3")).unwrap();
    let c = id(&env.snapshot(&src, "config", "svc", &[]));
    env.ok(&["delete", "--yes", &a, &c]);
    env.ok(&["gc"]);
    env.check_read_data();
    assert_diff_clean(&kept, &env.restore(&b));

    // Unlisted: B's manifest stays, its catalog rows go (a forget with the
    // manifest put back, as a crash between a commit's steps 2 and 3).
    let key = env.repo.join(format!("snapshots/{b}.snap"));
    let manifest = fs::read(&key).unwrap();
    write(
        &src.join("other.txt"),
        b"another snapshot keeps the history\n",
    );
    env.snapshot(&src, "config", "svc", &[]);
    env.ok(&["delete", "--yes", &b]);
    fs::write(&key, &manifest).unwrap();
    env.ok(&["gc"]);
    env.ok(&["rebuild-catalog", "--yes"]);
    assert!(env.snapshot_ids().contains(&b));
    assert_diff_clean(&kept, &env.restore(&b));
    env.check_read_data();
}

/// Guards the naming of tree damage: a flipped byte in the tree of
/// `src/deepdir` is reported by `check --read-data` with that directory as
/// what it hides, and by plain `check` as an unreadable manifest naming
/// the directory. (The encrypted run checks that trees are sealed: see
/// `storage_reveals_no_plaintext_and_no_plain_ids`, whose file name would
/// be in a tree.)
#[test]
fn a_damaged_tree_is_named_by_its_directory() {
    crate::skip_if_encrypted!("it finds a tree by its plaintext bytes");
    let env = Env::with_init(&["--compression", "0"]);
    let src = source(&env, "src");
    let snap = id(&env.snapshot(&src, "config", "svc", &[]));
    let needle = b"secretfile.txt";
    let (pack, at) = walk(&env.repo.join("packs"))
        .into_iter()
        .filter(|(_, m)| m.is_file())
        .find_map(|(rel, _)| {
            let path = env.repo.join("packs").join(&rel);
            let bytes = fs::read(&path).unwrap();
            let at = bytes.windows(needle.len()).position(|w| w == needle)?;
            Some((path, at))
        })
        .expect("the tree of src/deepdir is in a pack, uncompressed here");
    let mut bytes = fs::read(&pack).unwrap();
    bytes[at] ^= 0x20;
    fs::write(&pack, &bytes).unwrap();

    let report = env.json_code(["check", "--read-data"], 1);
    let found = damage_of(&report);
    let hides = |f: &Value| {
        f["affected"].as_array().into_iter().flatten().any(|a| {
            a["files"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == "src/deepdir")
        })
    };
    assert!(
        found
            .iter()
            .any(|f| f["problem"] == "chunk_corrupt" && hides(f)),
        "{report}"
    );
    let plain = env.json_code(["check"], 1);
    let text = plain.to_string();
    assert!(
        text.contains("src/deepdir") && text.contains(&snap[..8]),
        "{plain}"
    );
    // The catalog still lists every file: a restore does not need trees.
    assert_diff_clean(&src, &env.restore(&snap).join("src"));
}
