//! One bad entry does not cost the whole snapshot: an unreadable entry, a
//! name or symlink target that is not UTF-8 (before repository version 4),
//! or a file that keeps changing
//! while it is read is skipped (or stored as read) with a warning, listed in
//! the report, and the snapshot exits 3; `--strict` aborts with exit 2 and
//! commits nothing.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// `src/` with one good file, `good.txt`.
fn source(env: &Env) -> PathBuf {
    let src = env.path("src");
    write(&src.join("good.txt"), b"good content\n");
    src
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

/// `snapshot SOURCES... --kind config --name base EXTRA...`.
fn snapshot_args(sources: &[&Path], extra: &[&str]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["snapshot".into()];
    args.extend(sources.iter().map(|s| s.as_os_str().to_owned()));
    args.extend(["--kind", "config", "--name", "base"].map(OsString::from));
    args.extend(extra.iter().map(OsString::from));
    args
}

/// The snapshot command, its sources given relative to the temp dir (so
/// stored as `src/…`).
fn snapshot_cmd(env: &Env, sources: &[&Path], extra: &[&str]) -> assert_cmd::Command {
    let sources: Vec<&Path> = sources.iter().map(|s| env.rel(s)).collect();
    env.cmd(snapshot_args(&sources, extra))
}

fn parse(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(out), stderr(out)))
}

/// `(reason, path)` of every entry the report says it left out.
fn skipped(report: &Value) -> Vec<(String, String)> {
    report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["reason"].as_str().unwrap().to_string(),
                s["path"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Restores the latest snapshot and returns the restore target.
fn restore_latest(env: &Env) -> PathBuf {
    let out = env.path("out");
    run_ok(env.cmd(["restore", "base"]).arg(&out));
    out
}

/// A version 3 repository writes version-1 manifests, which hold UTF-8
/// names only (version 4 keeps any name: tests/cli/names.rs). A file name
/// and a symlink target that are not UTF-8: both skipped with a warning
/// naming the path with the bad byte escaped and the way out, listed in
/// the JSON report with their reason; exit 3; the good file restores.
#[test]
fn non_utf8_name_and_link_target_are_skipped_with_exit_3_before_version_4() {
    crate::skip_if_encrypted!("sets the repository version by hand");
    let env = Env::new();
    crate::trees::set_repo_version(&env.repo, 4, 3);
    let src = source(&env);
    write(&src.join(OsStr::from_bytes(b"a\xff.bin")), b"bad name");
    std::os::unix::fs::symlink(OsStr::from_bytes(b"t\xfe"), src.join("link")).unwrap();

    let out = snapshot_cmd(&env, &[&src], &["--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    let bad_name = format!("{}/a\\xff.bin", show(&src));
    let link = format!("{}/link", show(&src));
    assert!(
        err.contains(&format!("warning: skipped {bad_name}")),
        "{err}"
    );
    assert!(err.contains(&format!("warning: skipped {link}")), "{err}");
    assert!(err.contains("t\\xfe"), "{err}");
    assert!(!err.contains("file names must"), "{err}");
    assert!(err.contains("`cairn upgrade` raises it"), "{err}");
    let report = parse(&out);
    assert_eq!(report["complete"], false);
    assert_eq!(
        skipped(&report),
        [
            ("non_utf8_name".to_string(), bad_name),
            ("non_utf8_link_target".to_string(), link),
        ]
    );
    assert_eq!(env.list().len(), 1);
    let restored = restore_latest(&env).join("src");
    assert_eq!(
        fs::read(restored.join("good.txt")).unwrap(),
        b"good content\n"
    );
    let names: Vec<_> = fs::read_dir(&restored)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["good.txt"]);
}

/// Before version 4, with --strict, a name or a symlink target that is
/// not UTF-8 aborts with exit 2 and a message saying which of the two it
/// is, and how to keep such names; nothing is committed.
#[test]
fn strict_aborts_on_non_utf8_names_before_version_4() {
    crate::skip_if_encrypted!("sets the repository version by hand");
    let env = Env::new();
    crate::trees::set_repo_version(&env.repo, 4, 3);
    let src = source(&env);
    let bad = src.join(OsStr::from_bytes(b"a\xff.bin"));
    write(&bad, b"bad name");
    let state = env.state();
    let err = run_code(snapshot_cmd(&env, &[&src], &["--strict"]), 2);
    assert!(
        err.contains(&format!(
            "file name is not valid UTF-8: {}/a\\xff.bin",
            show(&src)
        )),
        "{err}"
    );
    assert!(
        err.contains("hint: a repository older than version 4"),
        "{err}"
    );
    assert_eq!(env.state(), state);

    fs::remove_file(&bad).unwrap();
    std::os::unix::fs::symlink(OsStr::from_bytes(b"t\xfe"), src.join("link")).unwrap();
    let err = run_code(snapshot_cmd(&env, &[&src], &["--strict"]), 2);
    assert!(
        err.contains(&format!(
            "symlink target of {}/link is not valid UTF-8: t\\xfe",
            show(&src)
        )),
        "{err}"
    );
    assert_eq!(env.state(), state);
    assert!(env.list().is_empty());
}

/// Runs `cairn --repo REPO ARGS...` (isolated like [`cairn_in`]) so that
/// mode-000 entries are really unreadable: as is for an ordinary user; as
/// root, as `nobody` (uid 65534), which is given the test's directory first.
fn without_root(env: &Env, args: Vec<OsString>) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.envs(password_env());
    cmd.env_remove("CAIRN_REPO")
        .env("XDG_DATA_HOME", env.path("xdg-data"))
        .env("HOME", env.path("home"))
        .current_dir(env.dir.path())
        .arg("--repo")
        .arg(&env.repo)
        .args(args);
    // Who this test runs as: the owner of a file it creates now.
    let probe = env.path(".whoami");
    write(&probe, b"");
    let uid = fs::metadata(&probe).unwrap().uid();
    fs::remove_file(&probe).unwrap();
    if uid == 0 {
        chown_tree(env.dir.path(), 65534);
        cmd.uid(65534).gid(65534);
    }
    cmd.output().expect("cairn runs as nobody")
}

fn chown_tree(path: &Path, id: u32) {
    std::os::unix::fs::lchown(path, Some(id), Some(id)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), id);
        }
    }
}

/// A file that cannot be opened and a directory that cannot be listed
/// (mode 000, and not as root): both skipped with a warning, exit 3, the
/// unlistable directory kept empty, the good file restores. With --strict:
/// exit 2, nothing committed.
#[test]
fn unreadable_file_and_directory_are_skipped_with_exit_3() {
    let env = Env::new();
    let src = source(&env);
    let locked = src.join("locked.bin");
    write(&locked, b"secret");
    let closed = src.join("closed");
    write(&closed.join("inner.txt"), b"inside");
    chmod(&locked, 0o000);
    chmod(&closed, 0o000);

    let state = env.state();
    let out = without_root(&env, snapshot_args(&[env.rel(&src)], &["--strict"]));
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.state(), state);

    let out = without_root(&env, snapshot_args(&[env.rel(&src)], &["--json"]));
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("warning: skipped {}", show(&locked))),
        "{err}"
    );
    assert!(
        err.contains(&format!("warning: skipped {}", show(&closed))),
        "{err}"
    );
    assert!(err.contains("saved but incomplete"), "{err}");
    let report = parse(&out);
    assert_eq!(report["complete"], false);
    assert_eq!(
        skipped(&report),
        [
            ("unreadable".to_string(), show(&closed)),
            ("unreadable".to_string(), show(&locked)),
        ]
    );
    assert_eq!(env.list().len(), 1);
    chmod(&locked, 0o600);
    chmod(&closed, 0o700);

    let restored = restore_latest(&env).join("src");
    assert_eq!(
        fs::read(restored.join("good.txt")).unwrap(),
        b"good content\n"
    );
    assert!(!restored.join("locked.bin").exists());
    assert!(restored.join("closed").is_dir());
    chmod(&restored.join("closed"), 0o700);
    assert_eq!(fs::read_dir(restored.join("closed")).unwrap().count(), 0);
}

/// A file that changes while it is read, also when read again (a procfs
/// file stands in: it says size 0 and reads more): stored as read, listed
/// as changed, exit 3; it restores as read and `check` is clean. With
/// --strict: exit 2 "changed while it was read", nothing committed.
#[test]
fn file_changing_while_read_is_stored_with_exit_3() {
    let changing = Path::new("/proc/version");
    if !changing.is_file() {
        eprintln!("skipping: no /proc/version");
        return;
    }
    let env = Env::new();
    let src = source(&env);
    let state = env.state();
    let err = run_code(snapshot_cmd(&env, &[&src, changing], &["--strict"]), 2);
    assert!(err.contains("changed while it was read"), "{err}");
    assert!(err.contains("/proc/version"), "{err}");
    assert_eq!(env.state(), state);

    let out = snapshot_cmd(&env, &[&src, changing], &["--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: /proc/version changed while it was read"),
        "{}",
        stderr(&out)
    );
    let report = parse(&out);
    assert_eq!(report["complete"], false);
    assert!(skipped(&report).is_empty());
    let changed = report["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{report}");
    assert_eq!(changed[0]["path"], "/proc/version");

    let restored = restore_latest(&env);
    assert_eq!(
        fs::read(restored.join("src/good.txt")).unwrap(),
        b"good content\n"
    );
    assert_eq!(
        fs::read(restored.join("proc/version")).unwrap(),
        fs::read(changing).unwrap()
    );
    run_ok(env.cmd(["check"]));
}

/// A file appended to throughout the snapshot (by a background thread)
/// changes during both reads: it is stored as last read, listed as changed,
/// exit 3, and restores with a content that matches its recorded SHA-256
/// (restore checks it), at least as long as it was. Up to 5 attempts, as
/// the race may be missed.
#[test]
fn file_growing_during_both_reads_is_stored_as_read() {
    let env = Env::new();
    let src = source(&env);
    let big = src.join("big.bin");
    write(&big, &random_bytes(32 << 20, 52));
    let initial = fs::metadata(&big).unwrap().len();
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (stop, big) = (stop.clone(), big.clone());
        std::thread::spawn(move || {
            let mut f = fs::OpenOptions::new().append(true).open(&big).unwrap();
            let block = [0x5Au8; 4096];
            let mut written = 0usize;
            while !stop.load(Ordering::Relaxed) && written < 512 << 20 {
                f.write_all(&block).unwrap();
                written += block.len();
                std::thread::sleep(Duration::from_micros(500));
            }
        })
    };
    while fs::metadata(&big).unwrap().len() == initial {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut observed = None;
    for attempt in 1..=5 {
        let out = snapshot_cmd(&env, &[&src], &["--json", "--force"])
            .output()
            .unwrap();
        if out.status.success() {
            eprintln!("attempt {attempt}: the race was not hit; the snapshot was complete");
            continue;
        }
        observed = Some(out);
        break;
    }
    stop.store(true, Ordering::Relaxed);
    appender.join().unwrap();
    let out =
        observed.expect("a file appended to throughout was never seen changing in 5 attempts");
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    let report = parse(&out);
    assert_eq!(report["complete"], false);
    let changed = report["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{report}");
    assert_eq!(changed[0]["path"], show(&big).as_str());
    let id = report["id"].as_str().unwrap();
    let target = env.path("out");
    run_ok(env.cmd(["restore", id]).arg(&target));
    let restored = fs::metadata(target.join("src/big.bin")).unwrap().len();
    assert!(restored >= initial, "{restored} < {initial}");
    run_ok(env.cmd(["check", "--read-data"]));
}

/// A complete snapshot says so: exit 0, `complete` true, nothing listed.
#[test]
fn complete_snapshot_reports_complete() {
    let env = Env::new();
    let src = source(&env);
    let report = env.snapshot(&src, "config", "base", &[]);
    assert_eq!(report["complete"], true);
    assert!(skipped(&report).is_empty());
    assert!(report["changed"].as_array().unwrap().is_empty());
}
