//! Arguments that used to be accepted and silently meant something else:
//! each is refused with exit 2, naming the flag, before anything is done.

use crate::common::*;

/// Regression: `--keep-last 0` was taken as "no rule" (a forget that keeps
/// everything, a stored policy that is no policy). Every `--keep-*` count
/// must be at least 1, a `--keep-within` span longer than zero and a
/// `--keep-tag` not empty; for `forget` and `policy set` alike.
#[test]
fn zero_keep_counts_and_empty_rules_are_refused() {
    let env = Env::new();
    env.snapshot_files("d", &[("f", b"f")], &["--kind", "config", "--name", "d"]);
    let before = env.state();
    let cases = [
        (vec!["--keep-last", "0"], "--keep-last must be at least 1"),
        (
            vec!["--keep-hourly", "0"],
            "--keep-hourly must be at least 1",
        ),
        (vec!["--keep-daily", "0"], "--keep-daily must be at least 1"),
        (
            vec!["--keep-weekly", "0"],
            "--keep-weekly must be at least 1",
        ),
        (
            vec!["--keep-monthly", "0"],
            "--keep-monthly must be at least 1",
        ),
        (
            vec!["--keep-yearly", "0"],
            "--keep-yearly must be at least 1",
        ),
        (
            vec!["--keep-within", "0d"],
            "--keep-within must be longer than zero",
        ),
        (vec!["--keep-tag", ""], "--keep-tag must not be empty"),
    ];
    for (rule, message) in &cases {
        for command in [vec!["forget"], vec!["policy", "set", "config"]] {
            let args = [&command[..], &rule[..]].concat();
            let err = run_code(env.cmd(&args), 2);
            assert!(err.contains(message), "{args:?}: {err}");
        }
    }
    assert_eq!(env.state(), before);
    // The smallest allowed values still work.
    env.ok(&[
        "forget",
        "--keep-last",
        "1",
        "--keep-within",
        "1m",
        "--dry-run",
    ]);
}

/// Regression: `snapshot --version ''` was accepted and stored an empty
/// version label (which no `NAME:VERSION` selector can name). Empty kinds,
/// names and tags are refused too.
#[test]
fn empty_snapshot_labels_are_refused() {
    let env = Env::new();
    let src = env.path("d");
    write(&src.join("f"), b"f");
    let before = env.state();
    let ok = ["--kind", "config", "--name", "d"];
    for (extra, what) in [
        (
            vec!["--kind", "config", "--name", "d", "--version", ""],
            "version",
        ),
        (vec!["--kind", "", "--name", "d"], "kind"),
        (vec!["--kind", "config", "--name", ""], "name"),
        (vec!["--kind", "config", "--name", "d", "--tag", ""], "tag"),
    ] {
        let err = run_code(env.cairn().arg("snapshot").arg(&src).args(&extra), 2);
        assert!(err.contains(what), "{extra:?}: {err}");
    }
    assert_eq!(env.state(), before);
    run_ok(
        env.cairn()
            .arg("snapshot")
            .arg(&src)
            .args(ok)
            .args(["--version", "v1"]),
    );
}
