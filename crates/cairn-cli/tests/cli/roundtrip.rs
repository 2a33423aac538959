//! Snapshot → restore gives back a bit-identical tree, with its metadata.

use std::fs;
use std::os::unix::fs::symlink;

use crate::common::*;

const BIG: usize = 50 * 1000 * 1000;

/// Builds the round-trip source tree under `root` and sets every file and
/// directory mtime to a distinct instant long past, so a restore that does
/// not set mtimes cannot match by accident.
fn build_tree(root: &std::path::Path) {
    fs::create_dir(root).unwrap();
    write(&root.join("empty.txt"), b"");
    write(&root.join("one-chunk.bin"), &random_bytes(1000, 1));
    write(&root.join("big.bin"), &random_bytes(BIG, 2));
    let uni = root.join("dïr with space");
    write(
        &uni.join("ünïcode file.txt"),
        "héllo wörld ✓\nzweite Zeile\n".as_bytes(),
    );
    write(&uni.join("also empty"), b"");
    let deep = root.join("a/b/c/d");
    write(&deep.join("deep.txt"), &random_bytes(70_000, 3));
    fs::create_dir(deep.join("empty dir")).unwrap();
    symlink(
        "dïr with space/ünïcode file.txt",
        root.join("link to unicode"),
    )
    .unwrap();
    symlink("../../one-chunk.bin", root.join("a/b/up-link")).unwrap();
    symlink("does/not/exist", root.join("a/dangling")).unwrap();
    write(&root.join("secret.txt"), b"top secret\n");
    chmod(&root.join("secret.txt"), 0o600);
    write(&root.join("run.sh"), b"#!/bin/sh\necho hi\n");
    chmod(&root.join("run.sh"), 0o755);
    write(&root.join("private/note.txt"), b"private note\n");
    chmod(&root.join("private"), 0o700);

    // mtimes: files first, then directories deepest first (creating entries
    // changes a directory's mtime).
    let entries = walk(root);
    let mut secs = 1_000_000_000u64;
    for (rel, _) in entries.iter().filter(|(_, m)| m.is_file()) {
        secs += 3_607;
        set_mtime(&root.join(rel), secs, (secs * 7919 % 1_000_000_000) as u32);
    }
    let mut dirs: Vec<&String> = entries
        .iter()
        .filter(|(_, m)| m.is_dir())
        .map(|(r, _)| r)
        .collect();
    dirs.sort_by_key(|r| std::cmp::Reverse(r.matches('/').count()));
    for rel in dirs {
        secs += 86_399;
        set_mtime(&root.join(rel), secs, 123_456_789);
    }
    set_mtime(root, 1_234_567_890, 987_654_321);
}

/// Round trip of a generated tree (empty files, a one-chunk file, a 50 MB
/// many-chunk file, unicode and spaces, 4-deep nesting, relative symlinks,
/// 0600/0755 files and a 0700 dir): `restore` reproduces it bit for bit,
/// with modes, symlink targets and mtimes.
#[test]
fn restore_reproduces_a_generated_tree_bit_identically() {
    let env = Env::new();
    let src = env.path("tree");
    build_tree(&src);
    let before = tree_nodes(&src);

    let report = env.snapshot(&src, "model", "roundtrip", &["--version", "v1"]);
    assert_eq!(u(&report, "files"), 9);
    assert_eq!(u(&report, "files_read"), 9);
    let logical =
        BIG as u64 + 1000 + 70_000 + 11 + 18 + 13 + "héllo wörld ✓\nzweite Zeile\n".len() as u64;
    assert_eq!(u(&report, "logical_bytes"), logical);
    assert_eq!(u(&report, "bytes_read"), logical);
    assert!(report["skipped"].as_array().unwrap().is_empty());

    // The snapshot records the chunking we meant to exercise.
    let shown = env.json(["show", "roundtrip"]);
    let file = |p: &str| {
        shown["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == p)
            .unwrap_or_else(|| panic!("{p} not in {shown}"))
            .clone()
    };
    assert_eq!(file("tree/empty.txt")["chunks"], 0);
    assert_eq!(file("tree/one-chunk.bin")["chunks"], 1);
    assert!(
        file("tree/big.bin")["chunks"].as_u64().unwrap() > 100,
        "{}",
        file("tree/big.bin")
    );
    assert_eq!(file("tree/link to unicode")["kind"], "symlink");
    assert_eq!(
        file("tree/link to unicode")["link_target"],
        "dïr with space/ünïcode file.txt"
    );
    assert_eq!(file("tree/private")["mode"], "700");
    assert_eq!(file("tree/run.sh")["mode"], "755");

    let out = env.path("out");
    let restored = env.json(["restore".as_ref(), "roundtrip".as_ref(), out.as_os_str()]);
    assert_eq!(u(&restored, "files"), 9);
    assert_eq!(u(&restored, "symlinks"), 3);
    assert_eq!(u(&restored, "dirs"), 8);
    assert_eq!(u(&restored, "bytes"), logical);
    assert!(restored["failed"].as_array().unwrap().is_empty());

    assert_diff_clean(&src, &out.join("tree"));
    let after = tree_nodes(&out.join("tree"));
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (path, want) in &before {
        assert_eq!(&after[path], want, "metadata of {path}");
    }
    // Spot checks of what the comparison above covers, stated plainly.
    assert_eq!(after["secret.txt"].mode, Some(0o600));
    assert_eq!(after["run.sh"].mode, Some(0o755));
    assert_eq!(after["private"].mode, Some(0o700));
    assert_eq!(
        after["a/b/up-link"].link_target.as_deref(),
        Some("../../one-chunk.bin".as_ref())
    );
    assert_eq!(after["."].mtime, Some((1_234_567_890, 987_654_321)));
    assert_eq!(
        fs::read(out.join("tree/big.bin")).unwrap(),
        random_bytes(BIG, 2)
    );
    // No temp files left behind.
    assert!(
        walk(&out).iter().all(|(rel, _)| !rel.contains(".cairn-")),
        "{:?}",
        walk(&out)
    );
}

/// A single file (not a directory) given as the source round-trips under
/// its base name, and restoring it twice needs `--overwrite`.
#[test]
fn single_file_source_round_trips() {
    let env = Env::new();
    let src = env.path("weights.bin");
    write(&src, &random_bytes(300_000, 11));
    chmod(&src, 0o640);
    set_mtime(&src, 1_500_000_000, 42);
    env.snapshot(&src, "model", "single", &[]);
    let out = env.path("out");
    run_ok(env.cmd(["restore".as_ref(), "single".as_ref(), out.as_os_str()]));
    assert_eq!(
        fs::read(out.join("weights.bin")).unwrap(),
        random_bytes(300_000, 11)
    );
    assert_eq!(
        tree_nodes(&out.join("weights.bin"))["."],
        tree_nodes(&src)["."]
    );
}
