//! The read-side commands: cat, diff, list filters, stats, partial restore,
//! help, and how output behaves when its reader goes away.

use std::fs;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;

use serde_json::Value;

use crate::common::*;

/// `cat` writes exactly the file's bytes: binary (every byte value, NULs,
/// no trailing newline added), multi-chunk, empty, and a unicode path.
#[test]
fn cat_outputs_exactly_the_file_bytes() {
    let env = Env::new();
    let src = env.path("src");
    let mut binary: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    binary.extend_from_slice(b"\0\r\n\0");
    let big = random_bytes(3_000_000, 61);
    write(&src.join("binary.dat"), &binary);
    write(&src.join("big.bin"), &big);
    write(&src.join("empty"), b"");
    write(
        &src.join("dïr with space/ünïcode file.txt"),
        "ünïcode ✓".as_bytes(),
    );
    env.snapshot(&src, "model", "cat", &[]);

    let cat = |path: &str| run_ok(env.cmd(["cat", "cat", path])).stdout;
    assert!(cat("src/binary.dat") == binary);
    assert!(cat("src/big.bin") == big);
    assert!(cat("src/empty").is_empty());
    assert_eq!(
        cat("src/dïr with space/ünïcode file.txt"),
        "ünïcode ✓".as_bytes()
    );
    assert_eq!(
        cat("/src/binary.dat/"),
        binary,
        "surrounding slashes are ignored"
    );
}

/// (path, size before, size after); a size is `null` on the side where
/// the path does not exist.
fn paths(changes: &Value) -> Vec<(String, Option<u64>, Option<u64>)> {
    changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["old_size_bytes"].as_u64(),
                c["new_size_bytes"].as_u64(),
            )
        })
        .collect()
}

/// `diff` lists added, removed and changed paths (content and mode
/// changes; an mtime-only change is not a change), as JSON and as text.
#[test]
fn diff_lists_added_removed_and_changed() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("keep.txt"), b"same");
    write(&src.join("gone.txt"), b"to be removed");
    write(&src.join("edit.txt"), b"v1");
    write(&src.join("tool.sh"), b"#!/bin/sh\n");
    write(&src.join("touched.txt"), b"only the mtime changes");
    chmod(&src.join("tool.sh"), 0o644);
    env.snapshot(&src, "config", "d", &[]);

    fs::remove_file(src.join("gone.txt")).unwrap();
    write(&src.join("edit.txt"), b"version two");
    write(&src.join("new/added.txt"), b"brand new");
    chmod(&src.join("tool.sh"), 0o755);
    set_mtime(&src.join("touched.txt"), 1_000_000_000, 0);
    env.snapshot(&src, "config", "d", &[]);

    let d = env.json(["diff", "d~1", "d"]);
    let s = |p: &str| p.to_string();
    assert_eq!(
        paths(&d["added"]),
        [
            (s("src/new"), None, Some(0)),
            (s("src/new/added.txt"), None, Some(9))
        ]
    );
    assert_eq!(paths(&d["removed"]), [(s("src/gone.txt"), Some(13), None)]);
    assert_eq!(
        paths(&d["changed"]),
        [
            (s("src/edit.txt"), Some(2), Some(11)),
            (s("src/tool.sh"), Some(10), Some(10))
        ]
    );

    let text = stdout(&run_ok(env.cmd(["diff", "d~1", "d"])));
    assert!(text.contains("+ src/new/added.txt"), "{text}");
    assert!(text.contains("- src/gone.txt"), "{text}");
    assert!(text.contains("M src/edit.txt"), "{text}");
    assert!(text.contains("2 added, 1 removed, 2 changed"), "{text}");
    assert!(
        !text.contains("touched.txt") && !text.contains("keep.txt"),
        "{text}"
    );

    let same = env.json(["diff", "d", "d"]);
    for key in ["added", "removed", "changed"] {
        assert!(same[key].as_array().unwrap().is_empty(), "{same}");
    }
}

/// `list --kind/--name/--tag` filter (alone and combined), oldest first;
/// the repository is given by `CAIRN_REPO` instead of `--repo`.
#[test]
fn list_filters_by_kind_name_and_tag() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f"), b"x");
    let a = env.snapshot(&src, "model", "alpha", &["--tag", "t1"]);
    let b = env.snapshot(&src, "model", "beta", &[]);
    let c = env.snapshot(
        &src,
        "config",
        "alpha",
        &["--tag", "t1", "--tag", "t2", "--version", "v9"],
    );
    let id = |r: &Value| r["id"].as_str().unwrap().to_string();

    let list = |args: &[&str]| {
        let out = run_ok(
            cairn_in(env.dir.path())
                .env("CAIRN_REPO", &env.repo)
                .arg("list")
                .args(args)
                .arg("--json"),
        );
        ids(serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap())
    };
    assert_eq!(list(&[]), [id(&a), id(&b), id(&c)]);
    assert_eq!(list(&["--kind", "model"]), [id(&a), id(&b)]);
    assert_eq!(list(&["--name", "alpha"]), [id(&a), id(&c)]);
    assert_eq!(list(&["--tag", "t1"]), [id(&a), id(&c)]);
    assert_eq!(list(&["--tag", "t2"]), [id(&c)]);
    assert_eq!(list(&["--kind", "config", "--name", "alpha"]), [id(&c)]);
    assert_eq!(
        list(&["--kind", "model", "--tag", "t2"]),
        Vec::<String>::new()
    );
    assert_eq!(list(&["--tag", "nope"]), Vec::<String>::new());

    let full = env.list();
    assert_eq!(full[2]["version"], "v9");
    assert_eq!(full[2]["tags"], serde_json::json!(["t1", "t2"]));
    let text = stdout(&run_ok(env.cmd(["list", "--tag", "t2"])));
    assert!(
        text.contains("config") && text.contains("v9") && text.trim_end().ends_with("\n1 snapshot"),
        "{text}"
    );
}

/// `stats --json` counts snapshots and, after two snapshots of the same
/// data, reports a dedup ratio > 1 (exactly 2; 3 after a third copy).
#[test]
fn stats_reports_counts_and_dedup_ratio() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a.bin"), &random_bytes(1_000_000, 71));
    write(&src.join("b.bin"), &random_bytes(500_000, 72));
    env.snapshot(&src, "model", "s", &[]);
    let one = env.json(["stats"]);
    assert_eq!(u(&one, "snapshots"), 1);
    assert_eq!(u(&one, "logical_bytes"), 1_500_000);
    // The files' chunks and the tree of `src` (manifest version 2).
    let tree = u(&one, "unique_bytes") - 1_500_000;
    assert!(tree > 0 && tree < 1024, "{one}");

    env.snapshot(&src, "model", "s", &["--force"]);
    let two = env.json(["stats"]);
    assert_eq!(u(&two, "snapshots"), 2);
    assert_eq!(u(&two, "logical_bytes"), 3_000_000);
    assert_eq!(u(&two, "unique_bytes"), 1_500_000 + tree);
    let ratio = two["dedup_ratio"].as_f64().unwrap();
    assert!(ratio > 1.0 && (ratio - 2.0).abs() < 1e-2, "{two}");

    // A third copy under another history dedups against both.
    env.snapshot(&src, "config", "other", &[]);
    let s = env.json(["stats"]);
    assert_eq!(u(&s, "snapshots"), 3);
    assert_eq!(u(&s, "logical_bytes"), 4_500_000);
    assert_eq!(u(&s, "unique_bytes"), 1_500_000 + tree);
    let ratio = s["dedup_ratio"].as_f64().unwrap();
    assert!(ratio > 1.0 && (ratio - 3.0).abs() < 1e-2, "{s}");
    let histories: Vec<(&str, u64)> = s["histories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["history"].as_str().unwrap(), u(h, "snapshots")))
        .collect();
    assert_eq!(histories, [("config/other", 1), ("model/s", 2)]);

    let filtered = env.json(["stats", "--kind", "model"]);
    assert_eq!(u(&filtered, "snapshots"), 2);
    assert!(
        filtered["dedup_ratio"].as_f64().unwrap() > 1.0,
        "{filtered}"
    );
}

/// A tree with a nested subtree `tree/sub/dir` and siblings around it.
fn nested(env: &Env) -> std::path::PathBuf {
    let src = env.path("tree");
    write(&src.join("top.txt"), b"top");
    write(&src.join("sub/other.txt"), b"sibling");
    write(&src.join("sub/dir/x.txt"), &random_bytes(200_000, 81));
    write(&src.join("sub/dir/y/z.txt"), b"deep");
    chmod(&src.join("sub/dir"), 0o750);
    src
}

/// `restore --path tree/sub/dir` restores only that subtree (and the
/// directories leading to it), bit-identically.
#[test]

fn restore_path_restores_only_that_subtree() {
    let env = Env::new();
    let src = nested(&env);
    env.snapshot(&src, "model", "n", &[]);
    let out = env.path("out");
    run_ok(
        env.cmd(["restore", "n"])
            .arg(&out)
            .args(["--path", "tree/sub/dir"]),
    );
    let got: Vec<String> = walk(&out).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        got,
        [
            "tree",
            "tree/sub",
            "tree/sub/dir",
            "tree/sub/dir/x.txt",
            "tree/sub/dir/y",
            "tree/sub/dir/y/z.txt"
        ]
    );
    assert_diff_clean(&src.join("sub/dir"), &out.join("tree/sub/dir"));
    assert_eq!(
        tree_nodes(&out.join("tree/sub/dir")),
        tree_nodes(&src.join("sub/dir"))
    );
}

/// `restore --path` of whole top-level sources (a directory and a single
/// file, repeatable) restores only those, bit-identically.
#[test]
fn restore_path_selects_top_level_sources() {
    let env = Env::new();
    let tree = nested(&env);
    let solo = env.path("solo.txt");
    write(&solo, b"solo");
    let other = env.path("other");
    write(&other.join("ignored.txt"), b"not restored");
    run_ok(
        env.cairn()
            .arg("snapshot")
            .arg(env.rel(&tree))
            .arg(env.rel(&solo))
            .arg(env.rel(&other))
            .args(["--kind", "model", "--name", "multi"]),
    );
    let out = env.path("out");
    let report = env.json([
        "restore".as_ref(),
        "multi".as_ref(),
        out.as_os_str(),
        "--path".as_ref(),
        "tree".as_ref(),
        "--path".as_ref(),
        "solo.txt/".as_ref(),
    ]);
    assert_eq!(u(&report, "files"), 5);
    let top: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(top, ["solo.txt", "tree"]);
    assert_diff_clean(&tree, &out.join("tree"));
    assert_eq!(tree_nodes(&out.join("tree")), tree_nodes(&tree));
    assert_eq!(fs::read(out.join("solo.txt")).unwrap(), b"solo");
}

/// `--help` at the top level documents every selector form and the exit
/// codes; `snapshot --help` documents `--kind`, `--name` and `--force`.
#[test]
fn help_mentions_selectors_and_kind() {
    let sandbox = tempfile::tempdir().unwrap();
    let top = stdout(&run_ok(cairn_in(sandbox.path()).arg("--help")));
    for needle in [
        "id prefix",
        "NAME~N",
        "NAME@TIME",
        "NAME:VERSION",
        "KIND/NAME",
        "RFC 3339",
        "Exit codes",
        "snapshot",
        "restore",
    ] {
        assert!(
            top.contains(needle),
            "top-level --help lacks `{needle}`:\n{top}"
        );
    }
    let snap = stdout(&run_ok(
        cairn_in(sandbox.path()).args(["snapshot", "--help"]),
    ));
    for needle in [
        "--kind",
        "--name",
        "--force",
        "--tag",
        "--version",
        "--json",
    ] {
        assert!(
            snap.contains(needle),
            "snapshot --help lacks `{needle}`:\n{snap}"
        );
    }
    let show = stdout(&run_ok(cairn_in(sandbox.path()).args(["show", "--help"])));
    assert!(
        show.contains("NAME~N") && show.contains("NAME:VERSION"),
        "{show}"
    );
    assert!(
        fs::read_dir(sandbox.path()).unwrap().next().is_none(),
        "--help created files"
    );
}

/// A pipe whose read end is already closed, as the child's stdout.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

/// `cairn cat … | head -c1`: a closed stdout is not an error (exit 0,
/// nothing on stderr).
#[test]
fn cat_into_a_closed_pipe_is_quiet() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("big.bin"), &random_bytes(1_000_000, 91));
    env.snapshot(&src, "model", "p", &[]);
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("cairn"))
        .env_remove("CAIRN_REPO")
        .envs(password_env())
        .arg("--repo")
        .arg(&env.repo)
        .args(["cat", "p", "src/big.bin"])
        .stdout(closed_pipe())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

/// `cairn list --json | head -1`, `cairn show X | head -1`: like `cat`, a
/// closed stdout must end the command quietly with exit 0 (src/cli.rs
/// treats a broken pipe as success).
#[test]

fn output_into_a_closed_pipe_is_quiet() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("f.txt"), b"x");
    env.snapshot(&src, "model", "p", &[]);
    for args in [
        &["list", "--json"][..],
        &["show", "p", "--json"],
        &["show", "p"],
        &["stats"],
        &["diff", "p", "p"],
    ] {
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("cairn"))
            .env_remove("CAIRN_REPO")
            .envs(password_env())
            .arg("--repo")
            .arg(&env.repo)
            .args(args)
            .stdout(closed_pipe())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
    }
}

/// Completions parse in the real bash and know the commands; man pages
/// are troff with one page per command.
#[test]
fn completions_and_man_pages() {
    let env = Env::uninit();
    let bash = stdout(&run_ok(env.cmd(["completions", "bash"])));
    assert!(bash.contains("snapshot") && bash.contains("restore") && bash.contains("--keep-last"));
    let script = env.path("cairn.bash");
    fs::write(&script, &bash).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(syntax.status.success(), "bash -n: {}", stderr(&syntax));
    for shell in ["zsh", "fish"] {
        let out = stdout(&run_ok(env.cmd(["completions", shell])));
        assert!(out.contains("restore"), "{shell}: {out}");
    }
    let err = run_code(env.cmd(["completions", "tcsh"]), 2);
    assert!(err.contains("tcsh"), "{err}");

    let dir = env.path("man");
    run_ok(env.cmd(["man".as_ref(), dir.as_os_str()]));
    for page in [
        "cairn.1",
        "cairn-snapshot.1",
        "cairn-restore.1",
        "cairn-tag.1",
    ] {
        let text = fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is not a man page");
    }
}
