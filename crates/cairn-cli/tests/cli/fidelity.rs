//! Metadata fidelity (#18, #10 item 11) through the real binary: owners,
//! hard links, FIFOs and device nodes recorded in a repository of version
//! 4 and restored (devices and owners only as root, counted otherwise),
//! sockets skipped and said so, the `incomplete` marker, an owner-only
//! change in `diff`, and older repositories skipping FIFOs with a count.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::common::*;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn mknod(path: &Path, kind: libc::mode_t, rdev: libc::dev_t) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path, not kept after the call.
    let rc = unsafe { libc::mknod(c.as_ptr(), kind | 0o640, rdev) };
    assert_eq!(rc, 0, "mknod {}", path.display());
}

/// `src/`: `a` and its hard link `sub/b`, a lone `c`, FIFO `p`, socket `s`,
/// and as root a character device `null` (1,3) and `c` owned by 1234:5678.
fn source(env: &Env) -> PathBuf {
    let src = env.path("src");
    write(&src.join("a"), b"linked content\n");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::hard_link(src.join("a"), src.join("sub/b")).unwrap();
    write(&src.join("c"), b"lone\n");
    mknod(&src.join("p"), libc::S_IFIFO, 0);
    let sock = std::os::unix::net::UnixListener::bind(src.join("s")).unwrap();
    std::mem::forget(sock); // a socket file stays after the process
    if is_root() {
        mknod(&src.join("null"), libc::S_IFCHR, libc::makedev(1, 3));
        std::os::unix::fs::lchown(src.join("c"), Some(1234), Some(5678)).unwrap();
    } else {
        eprintln!("not root: the device node and chown parts of this test are skipped");
    }
    src
}

fn entry<'a>(shown: &'a Value, path: &str) -> &'a Value {
    shown["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in {shown}"))
}

/// `cairn ARGS... --json` as uid/gid 65534 (the whole test directory is
/// given to it first), so the restore runs without root.
fn as_nobody(env: &Env, args: &[&str]) -> Output {
    chown_tree(env.dir.path(), 65534);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.envs(password_env());
    use std::os::unix::process::CommandExt;
    cmd.env_remove("CAIRN_REPO")
        .env("XDG_DATA_HOME", env.path("xdg-data"))
        .env("HOME", env.path("home"))
        .current_dir(env.dir.path())
        .arg("--repo")
        .arg(&env.repo)
        .args(args)
        .uid(65534)
        .gid(65534);
    cmd.output().unwrap()
}

fn chown_tree(path: &Path, id: u32) {
    std::os::unix::fs::lchown(path, Some(id), Some(id)).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), id);
        }
    }
}

/// Guards #18 "Restore loses ownership ... and turns hard links into
/// copies": everything is recorded (show/ls), the socket is skipped with
/// its reason, and restore recreates the link, the FIFO, and as root the
/// device node and the owners; check and verify accept the new kinds.
#[test]
fn owners_hard_links_fifos_and_devices_round_trip() {
    let env = Env::new();
    let src = source(&env);
    let report = env.snapshot(&src, "config", "fid", &[]);
    assert_eq!(report["complete"], true, "{report}");
    let skipped = report["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{report}");
    assert!(skipped[0]["path"].as_str().unwrap().ends_with("src/s"));
    assert_eq!(skipped[0]["reason"], "unsupported");
    assert!(skipped[0]["detail"].as_str().unwrap().contains("socket"));
    let text = run_ok(
        env.cmd(["snapshot", "--kind", "config", "--name", "fid2"])
            .arg(env.rel(&src)),
    );
    assert!(
        stderr(&text).contains("skipped") && stderr(&text).contains("socket"),
        "{}",
        stderr(&text)
    );

    let shown = env.json(["show", "config/fid"]);
    let (a, b) = (entry(&shown, "src/a"), entry(&shown, "src/sub/b"));
    assert!(a["hardlink"].is_u64(), "{a}");
    assert_eq!(a["hardlink"], b["hardlink"]);
    assert!(entry(&shown, "src/c")["hardlink"].is_null());
    assert_eq!(entry(&shown, "src/p")["type"], "fifo");
    let me = fs::metadata(&src).unwrap();
    assert_eq!(entry(&shown, "src/a")["uid"], me.uid());
    let ls = stdout(&run_ok(env.cmd(["ls", "-l", "config/fid", "src"])));
    assert!(ls.contains("fifo") && ls.contains("[hard link"), "{ls}");
    if is_root() {
        let null = entry(&shown, "src/null");
        assert_eq!(null["type"], "char_device");
        assert_eq!(null["rdev"], libc::makedev(1, 3));
        assert_eq!(
            (
                &entry(&shown, "src/c")["uid"],
                &entry(&shown, "src/c")["gid"]
            ),
            (&1234.into(), &5678.into())
        );
        assert!(ls.contains("1,3") && ls.contains("1234:5678"), "{ls}");
    }

    let out = env.path("out");
    let r = env.json(["restore", "config/fid", out.to_str().unwrap()]);
    assert_eq!(r["hardlinks"], 1, "{r}");
    assert_eq!(r["fifos"], 1, "{r}");
    assert_eq!(r["owners_restored"], is_root(), "{r}");
    let (ma, mb) = (
        fs::metadata(out.join("src/a")).unwrap(),
        fs::metadata(out.join("src/sub/b")).unwrap(),
    );
    assert_eq!(ma.ino(), mb.ino(), "a hard link, not a copy");
    assert_eq!(ma.nlink(), 2);
    assert_eq!(
        fs::read(out.join("src/sub/b")).unwrap(),
        b"linked content\n"
    );
    let p = fs::symlink_metadata(out.join("src/p")).unwrap();
    assert!(p.file_type().is_fifo());
    assert_eq!(p.mode() & 0o7777, 0o640);
    assert_eq!(
        p.mtime(),
        fs::symlink_metadata(src.join("p")).unwrap().mtime()
    );
    assert!(!out.join("src/s").exists());
    if is_root() {
        assert_eq!(r["devices"], 1, "{r}");
        let null = fs::symlink_metadata(out.join("src/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), libc::makedev(1, 3));
        let c = fs::metadata(out.join("src/c")).unwrap();
        assert_eq!((c.uid(), c.gid()), (1234, 5678));
    }
    let text = stdout(&run_ok(
        env.cmd(["restore", "config/fid"]).arg(env.path("out2")),
    ));
    assert!(text.contains("1 FIFO"), "{text}");
    run_ok(env.cmd(["verify", "config/fid"]));
    run_ok(env.cmd(["check", "--read-data"]));

    // A group split by --path: the one selected file still restores.
    let part = env.path("part");
    env.json([
        "restore",
        "config/fid",
        part.to_str().unwrap(),
        "--path",
        "src/sub",
    ]);
    assert_eq!(
        fs::read(part.join("src/sub/b")).unwrap(),
        b"linked content\n"
    );
}

/// Without root, device nodes are skipped with a count (text and JSON) and
/// owners are not attempted; the rest restores.
#[test]
fn without_root_devices_are_skipped_with_a_count() {
    if !is_root() {
        eprintln!("skipping: needs root to make the device node in the source");
        return;
    }
    let env = Env::new();
    let src = source(&env);
    env.snapshot(&src, "config", "fid", &[]);
    let out = as_nobody(&env, &["restore", "config/fid", "out", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["devices"], 0, "{r}");
    assert_eq!(r["devices_skipped"], 1, "{r}");
    assert_eq!(r["owners_restored"], false, "{r}");
    assert!(!env.path("out/src/null").exists());
    assert_eq!(fs::metadata(env.path("out/src/c")).unwrap().uid(), 65534);
    let out = as_nobody(&env, &["restore", "config/fid", "out-text"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("1 device node skipped: need root"), "{text}");
}

/// Guards #18's diff: a file whose owner alone changed is a change.
#[test]
fn an_owner_only_change_shows_in_diff() {
    if !is_root() {
        eprintln!("skipping: chown needs root");
        return;
    }
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"same\n");
    env.snapshot(&src, "config", "own", &[]);
    std::os::unix::fs::lchown(src.join("f"), Some(4321), None).unwrap();
    env.snapshot(&src, "config", "own", &[]);
    let list = env.list();
    let d = env.json([
        "diff",
        list[0]["id"].as_str().unwrap(),
        list[1]["id"].as_str().unwrap(),
    ]);
    let changed = d["changed"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{d}");
    assert_eq!(changed[0]["path"], "src/f");
}

/// A file still changing on its re-read is marked `incomplete` in the
/// snapshot: `show --json` and `ls -l` say so.
#[test]
fn a_file_stored_while_changing_is_marked_incomplete() {
    let changing = Path::new("/proc/version");
    if !changing.is_file() {
        eprintln!("skipping: no /proc/version");
        return;
    }
    let env = Env::new();
    write(&env.path("src/ok"), b"ok\n");
    let out = env
        .cmd(["snapshot", "--kind", "config", "--name", "inc", "--json"])
        .arg("src")
        .arg(changing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let shown = env.json(["show", "config/inc"]);
    assert_eq!(entry(&shown, "proc/version")["incomplete"], true, "{shown}");
    assert_eq!(entry(&shown, "src/ok")["incomplete"], false);
    let ls = stdout(&run_ok(env.cmd(["ls", "-l", "config/inc"])));
    assert!(ls.contains("version [incomplete]"), "{ls}");
}

/// In a repository of version 3 (manifest version 1) a FIFO is skipped
/// with its reason, as before, in JSON and text; the snapshot is complete.
#[test]
fn older_repositories_skip_fifos_with_a_count() {
    crate::skip_if_encrypted!("it rewrites an unencrypted config by hand");
    let env = Env::new();
    for key in ["config", "config.backup"] {
        let path = env.repo.join(key);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"version\": 4"), "{text}");
        fs::write(&path, text.replace("\"version\": 4", "\"version\": 3")).unwrap();
    }
    let src = env.path("src");
    write(&src.join("f"), b"x\n");
    mknod(&src.join("p"), libc::S_IFIFO, 0);
    let report = env.snapshot(&src, "config", "old", &[]);
    assert_eq!(report["complete"], true);
    let skipped = report["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{report}");
    assert!(skipped[0]["detail"].as_str().unwrap().contains("version 4"));
    let out = run_ok(
        env.cmd(["snapshot", "--kind", "config", "--name", "old"])
            .arg(env.rel(&src)),
    );
    assert!(
        stderr(&out).contains("skipped") && stderr(&out).contains("src/p"),
        "{}",
        stderr(&out)
    );
    let shown = env.json(["show", "config/old"]);
    assert!(
        entry(&shown, "src/f")["uid"].is_null(),
        "no owner in a v1 manifest"
    );
}
