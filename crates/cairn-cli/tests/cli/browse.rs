//! `ls`, `find` and `dump`: browsing snapshots without restoring them,
//! checked against the real `tar` and `diff`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::common::*;
use crate::integrity::{flip_byte, locate};

/// A tree with nested dirs, a symlink, an executable and a 300 KB file
/// (several chunks), snapshotted twice with one file added in between.
fn fixture(env: &Env) -> std::path::PathBuf {
    let src = env.path("svc");
    write(&src.join("state.json"), b"{\"book\": 1}\n");
    write(&src.join("data/trades/t1.csv"), b"a,b\n1,2\n");
    write(&src.join("data/weights.bin"), &random_bytes(300_000, 7));
    write(&src.join("bin/run.sh"), b"#!/bin/sh\necho hi\n");
    chmod(&src.join("bin/run.sh"), 0o755);
    std::os::unix::fs::symlink("state.json", src.join("current")).unwrap();
    env.snapshot(&src, "portfolio", "svc", &[]);
    write(&src.join("data/trades/t2.csv"), b"a,b\n3,4\n");
    env.snapshot(&src, "portfolio", "svc", &[]);
    src
}

#[test]
fn ls_lists_a_snapshot_or_one_directory_of_it() {
    let env = Env::new();
    fixture(&env);
    let all = stdout(&run_ok(env.cmd(["ls", "svc"])));
    let lines: Vec<&str> = all.lines().collect();
    assert!(
        lines.contains(&"svc/") && lines.contains(&"svc/data/trades/t2.csv"),
        "{all}"
    );
    assert!(lines.contains(&"svc/current"), "{all}");

    let sub = stdout(&run_ok(env.cmd(["ls", "svc~1", "svc/data/trades"])));
    assert_eq!(
        sub.lines().collect::<Vec<_>>(),
        ["svc/data/trades/", "svc/data/trades/t1.csv"]
    );

    let long = stdout(&run_ok(env.cmd(["ls", "-l", "svc", "/svc/bin/"])));
    assert!(long.starts_with("KIND"), "{long}");
    assert!(
        long.lines()
            .any(|l| l.starts_with("file") && l.contains("0755") && l.ends_with("svc/bin/run.sh")),
        "{long}"
    );
    let long = stdout(&run_ok(env.cmd(["ls", "-l", "svc", "svc/current"])));
    assert!(long.contains("svc/current -> state.json"), "{long}");

    let json = env.json(["ls", "svc", "svc/data/weights.bin"]);
    let entries = json["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{json}");
    assert_eq!(entries[0]["size"], 300_000);
    assert_eq!(entries[0]["kind"], "file");
    assert!(
        json["snapshot"]["id"].as_str().unwrap().len() == 64,
        "{json}"
    );

    // A prefix of a name is not a directory, and a missing path is named.
    let err = run_code(env.cmd(["ls", "svc", "svc/dat"]), 2);
    assert!(err.contains("svc/dat is not in snapshot"), "{err}");
}

#[test]
fn find_matches_names_or_paths_across_snapshots() {
    let env = Env::new();
    fixture(&env);
    let out = stdout(&run_ok(env.cmd(["find", "t2.csv"])));
    assert!(out.contains("svc/data/trades/t2.csv"), "{out}");
    assert!(out.trim_end().ends_with("1 match in 1 snapshot"), "{out}");

    let found = env.json(["find", "*.csv", "--kind", "portfolio"]);
    let per_snapshot: Vec<usize> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["entries"].as_array().unwrap().len())
        .collect();
    assert_eq!(per_snapshot, [1, 2], "oldest first: {found}");

    // With a `/` the pattern is matched against the whole path.
    let found = env.json(["find", "svc/*/weights.bin"]);
    assert_eq!(found.as_array().unwrap().len(), 2, "{found}");
    let found = env.json(["find", "*/weights.bin", "--name", "other"]);
    assert_eq!(found.as_array().unwrap().len(), 0, "{found}");
    let out = stdout(&run_ok(env.cmd(["find", "nothing-like-this"])));
    assert!(out.contains("0 matches in 0 snapshots"), "{out}");

    let err = run_code(env.cmd(["find", "[oops"]), 2);
    assert!(err.contains("invalid pattern `[oops`"), "{err}");
}

#[test]
fn dump_writes_a_tar_that_tar_extracts_to_the_original() {
    let env = Env::new();
    let src = fixture(&env);
    let out = env.path("x");
    fs::create_dir(&out).unwrap();
    let dump = run_ok(env.cmd(["dump", "svc"]));
    let mut tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&out)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tar.stdin.take().unwrap().write_all(&dump.stdout).unwrap();
    let tar = tar.wait_with_output().unwrap();
    assert!(tar.status.success(), "tar: {}", stderr(&tar));
    assert_diff_clean(&src, &out.join("svc"));
    let mode = fs::metadata(out.join("svc/bin/run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
    assert_eq!(
        fs::read_link(out.join("svc/current")).unwrap(),
        std::path::Path::new("state.json")
    );

    // One directory, into a file.
    let archive = env.path("trades.tar");
    run_ok(env.cmd([
        "dump".as_ref(),
        "svc~1".as_ref(),
        "svc/data/trades".as_ref(),
        "-o".as_ref(),
        archive.as_os_str(),
    ]));
    let listing = Command::new("tar")
        .arg("-tf")
        .arg(&archive)
        .output()
        .unwrap();
    assert_eq!(
        stdout(&listing).lines().collect::<Vec<_>>(),
        ["svc/data/trades/", "svc/data/trades/t1.csv"]
    );
}

#[test]
fn cat_of_a_directory_points_to_dump_and_a_damaged_file_fails_the_dump() {
    let env = Env::new();
    fixture(&env);
    let err = run_code(env.cmd(["cat", "svc", "svc/data"]), 2);
    assert!(
        err.contains("svc/data in snapshot") && err.contains("is a directory, not a file"),
        "{err}"
    );
    assert!(err.contains("cairn dump"), "{err}");

    let c = locate(&env.repo, "svc", "svc/data/weights.bin", 1);
    flip_byte(&c.pack_file, c.offset + c.stored_len / 2);
    let archive = env.path("all.tar");
    let err = run_code(
        env.cmd([
            "dump".as_ref(),
            "svc".as_ref(),
            "--output".as_ref(),
            archive.as_os_str(),
        ]),
        1,
    );
    assert!(err.contains("svc/data/weights.bin"), "{err}");
    assert!(!archive.exists(), "no archive under the name asked for");
    assert!(fs::read_dir(env.dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("partial")));
}
