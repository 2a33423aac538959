//! `-q` means only errors: the main commands print nothing at all on
//! success (no progress, no summary, no table); `-v` prints a line per
//! file on snapshot and restore.

use crate::common::*;

#[test]
fn quiet_commands_print_nothing_on_success() {
    let env = Env::uninit();
    let src = env.path("src");
    write(&src.join("a.bin"), &random_bytes(50_000, 3));
    write(&src.join("d/b.txt"), b"b\n");
    let silent = |args: &[&str]| {
        let mut cmd = env.cmd(["-q"]);
        let out = run_ok(cmd.args(args));
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "{args:?} -q printed\nstdout: {}\nstderr: {}",
            stdout(&out),
            stderr(&out)
        );
    };
    silent(&init_args());
    let src_s = src.to_str().unwrap();
    let target = env.path("out");
    let target_s = target.to_str().unwrap();
    for args in [
        &["snapshot", src_s, "--kind", "k", "--name", "n"][..],
        &[
            "snapshot", src_s, "--kind", "k", "--name", "n", "--tag", "t",
        ],
        &[
            "snapshot",
            src_s,
            "--kind",
            "k",
            "--name",
            "n",
            "--skip-if-unchanged",
        ],
        &["snapshot", src_s, "--kind", "k", "--name", "n", "--dry-run"],
        &["restore", "n", target_s],
        &["verify", "n"],
        &["check"],
        &["tag", "n", "--add", "x"],
        &["forget", "--keep-last", "1", "--dry-run"],
        &["forget", "--keep-last", "2"],
        &["delete", "n~1", "--yes"],
        &["policy", "set", "k", "--keep-last", "1"],
        &["prune"],
        &["gc"],
        &["rebuild-catalog", "--yes"],
        &["unlock"],
    ] {
        silent(args);
    }
    // Data asked for is still printed.
    let out = run_ok(env.cmd(["-q", "list"]));
    assert!(stdout(&out).contains("1 snapshot"), "{}", stdout(&out));
}

#[test]
fn verbose_lists_each_file_of_snapshot_and_restore() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a.bin"), b"a\n");
    write(&src.join("d/b.txt"), b"b\n");
    let snap = |env: &Env| {
        let mut cmd = env.cmd(["-v", "snapshot"]);
        stdout(&run_ok(
            cmd.arg(env.rel(&src)).args(["--kind", "k", "--name", "n"]),
        ))
    };
    let out = snap(&env);
    for line in [
        "added    src/a.bin",
        "added    src/d",
        "added    src/d/b.txt",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    write(&src.join("a.bin"), b"changed\n");
    std::fs::remove_file(src.join("d/b.txt")).unwrap();
    let out = snap(&env);
    assert!(out.contains("changed  src/a.bin"), "{out}");
    assert!(out.contains("removed  src/d/b.txt"), "{out}");
    assert!(
        !out.contains("src/d\n"),
        "unchanged entries are not listed: {out}"
    );
    let target = env.path("out");
    let mut cmd = env.cmd(["-v", "restore", "n"]);
    let out = stdout(&run_ok(cmd.arg(&target)));
    assert!(
        out.contains("restored src/a.bin") && out.contains("restored src/d\n"),
        "{out}"
    );
}
