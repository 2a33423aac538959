//! A full disk must not lock the user out (reliability issue, item 3): on a
//! 100 % full filesystem the read-only commands work, a snapshot fails with
//! "no space left on device" and leaves the repository intact, and gc on a
//! nearly full disk reclaims space (it deletes dead packs before it writes).
//!
//! Needs a small tmpfs, so root. Without the right to mount it skips with a
//! message; under CI (`$CI` set) as root a failed mount fails the test, so
//! CI cannot skip it silently.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// An 8 MiB tmpfs at a directory, unmounted on drop (also when a test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Result<Self, String> {
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    })
}

/// Writes `path` until the filesystem refuses another byte.
fn fill(path: &Path) {
    let mut f = fs::File::create(path).unwrap();
    for block in [1 << 16, 4096, 512, 1] {
        let buf = vec![0x5a_u8; block];
        while f.write_all(&buf).and_then(|()| f.flush()).is_ok() {}
    }
    let _ = f.sync_all();
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

/// A repository on a small tmpfs of a test's own (`init --compression 0
/// --pack-target 1M`, so that little data makes several packs).
struct SmallRepo {
    env: Env,
    fs_dir: PathBuf,
    repo: PathBuf,
    _mount: Tmpfs,
}

impl SmallRepo {
    /// The repository for the test `name`, or `None` (after saying so)
    /// where mounting is not allowed; under CI as root, a failed mount
    /// fails the test.
    fn new(name: &str) -> Option<Self> {
        let env = Env::uninit();
        let fs_dir = env.path("small-fs");
        let mount = match Tmpfs::mount(&fs_dir) {
            Ok(m) => m,
            Err(why) if std::env::var_os("CI").is_some() && is_root() => {
                panic!("CI runs as root and must run {name}, but mounting tmpfs failed: {why}")
            }
            Err(why) => {
                eprintln!(
                    "SKIPPED {name}: cannot mount a tmpfs at {} ({why}); it needs root",
                    fs_dir.display()
                );
                return None;
            }
        };
        let small = SmallRepo {
            repo: fs_dir.join("repo"),
            fs_dir,
            env,
            _mount: mount,
        };
        run_ok(small.cairn(&["init", "--compression", "0", "--pack-target", "1M"]));
        Some(small)
    }

    /// `cairn --repo REPO -q ARGS...`.
    fn cairn(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = cairn_in(self.env.dir.path());
        cmd.arg("--repo").arg(&self.repo).arg("-q").args(args);
        cmd
    }
}

/// Guards: the read-only open of the catalog, running without a lock on
/// ENOSPC, the NoSpace message without a rebuild hint, and gc's order.
#[test]
fn a_full_disk_keeps_restore_list_check_and_gc_working() {
    let Some(small) = SmallRepo::new("a_full_disk_keeps_restore_list_check_and_gc_working") else {
        return;
    };
    let (env, fs_dir, repo) = (&small.env, &small.fs_dir, &small.repo);
    let cairn = |args: &[&str]| small.cairn(args);
    // `old` holds a small file and a big one, `keep` only the small one:
    // deleting `old` leaves packs with no live chunk, and the first pack
    // (the small file, then the start of the big one) 70 % unused: gc
    // repacks 300K of it, more than the disk has free until the dead
    // packs are gone.
    let small = random_bytes(300 << 10, 1);
    let old = env.path("old");
    write(&old.join("b-big.bin"), &random_bytes(2 << 20, 2));
    write(&old.join("a-small.bin"), &small);
    let keep = env.path("keep");
    write(&keep.join("a-small.bin"), &small);
    run_ok(
        cairn(&["snapshot"])
            .arg(env.rel(&old))
            .args(["--kind", "model", "--name", "old"]),
    );
    run_ok(
        cairn(&["snapshot"])
            .arg(env.rel(&keep))
            .args(["--kind", "model", "--name", "keep"]),
    );

    let junk = fs_dir.join("junk");
    fill(&junk);

    let out = run_ok(cairn(&["list"]));
    assert!(stdout(&out).contains("2 snapshots"), "{}", stdout(&out));
    let target = env.path("restored");
    let out = run_ok(cairn(&["restore", "keep"]).arg(&target));
    assert!(
        stderr(&out).contains("disk full: running without a lock"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(target.join("keep/a-small.bin")).unwrap(), small);
    let out = run_ok(cairn(&["check", "--read-data"]));
    assert!(
        stderr(&out).contains("last_verified_ns not recorded"),
        "{}",
        stderr(&out)
    );
    run_ok(cairn(&["verify", "old"]));
    for args in [
        &["show", "keep"][..],
        &["diff", "old", "keep"],
        &["stats"],
        &["bench"],
        &["policy", "show"],
    ] {
        run_ok(cairn(args));
    }
    let out = run_ok(cairn(&["cat", "keep", "keep/a-small.bin"]));
    assert_eq!(out.stdout, small);

    let fresh = env.path("fresh");
    write(&fresh.join("new.bin"), &random_bytes(1 << 20, 3));
    let err = run_code(
        cairn(&["snapshot"])
            .arg(env.rel(&fresh))
            .args(["--kind", "model", "--name", "fresh"]),
        2,
    );
    assert!(err.contains("no space left on device"), "{err}");
    assert!(!err.contains("rebuild-catalog"), "{err}");
    run_ok(cairn(&["check"]));

    // Nearly full: room for lock objects and a WAL transaction, not for
    // the repack before the dead packs are deleted.
    let len = fs::metadata(&junk).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&junk)
        .unwrap()
        .set_len(len - (192 << 10))
        .unwrap();
    run_ok(cairn(&["delete", "old", "--yes"]));
    let before = dir_bytes(&repo.join("packs"));
    let out = run_ok(cairn(&["gc", "--json"]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["report"]["packs_deleted"].as_u64() > Some(0),
        "{report}"
    );
    assert!(
        report["report"]["packs_rewritten"].as_u64() > Some(0),
        "{report}"
    );
    let after = dir_bytes(&repo.join("packs"));
    assert!(
        after + (1 << 20) < before,
        "gc reclaimed too little: {before} -> {after}"
    );
    run_ok(cairn(&["check", "--read-data"]));
    // With space again, a snapshot works.
    fs::remove_file(&junk).unwrap();
    run_ok(
        cairn(&["snapshot"])
            .arg(env.rel(&fresh))
            .args(["--kind", "model", "--name", "fresh"]),
    );
}

/// At 100 % full nothing can be written, not even a lock object; the
/// repository's space reserve is what lets delete and gc run there (item 3
/// of the reliability issue), and gc puts it back once it has freed room.
#[test]
fn delete_and_gc_run_on_a_completely_full_disk() {
    let Some(small) = SmallRepo::new("delete_and_gc_run_on_a_completely_full_disk") else {
        return;
    };
    let (env, fs_dir, repo) = (&small.env, &small.fs_dir, &small.repo);
    let cairn = |args: &[&str]| small.cairn(args);
    let reserve = repo.join("reserve");
    assert!(reserve.is_file(), "init made no space reserve");
    let old = env.path("old");
    write(&old.join("big.bin"), &random_bytes(2 << 20, 4));
    let kept = random_bytes(200 << 10, 5);
    let keep = env.path("keep");
    write(&keep.join("small.bin"), &kept);
    for (dir, name) in [(&old, "old"), (&keep, "keep")] {
        run_ok(
            cairn(&["snapshot"])
                .arg(env.rel(dir))
                .args(["--kind", "model", "--name", name]),
        );
    }
    let junk = fs_dir.join("junk");
    fill(&junk);
    let err = run_code(cairn(&["tag", "keep", "--add", "x"]), 2);
    assert!(
        err.contains("no space left on device"),
        "the disk is not full: {err}"
    );

    run_ok(cairn(&["delete", "old", "--yes"]));
    assert!(
        !reserve.exists(),
        "delete ran without giving back the reserve"
    );
    let before = dir_bytes(&repo.join("packs"));
    let out = run_ok(cairn(&["gc", "--json"]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["report"]["packs_deleted"].as_u64() > Some(0),
        "{report}"
    );
    assert!(
        dir_bytes(&repo.join("packs")) + (1 << 20) < before,
        "gc freed too little: {report}"
    );
    assert!(
        reserve.is_file(),
        "gc freed 2 MiB but did not put the reserve back"
    );
    run_ok(cairn(&["check", "--read-data"]));
    let out = run_ok(cairn(&["cat", "keep", "keep/small.bin"]));
    assert_eq!(out.stdout, kept);
}
