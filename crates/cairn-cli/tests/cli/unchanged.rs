//! `snapshot --skip-if-unchanged` (no new snapshot when every entry
//! matches the parent; said in text and JSON; exit 0) and `snapshot
//! --dry-run` (what would be read and stored; the repository's bytes stay
//! exactly as they were).

use crate::common::*;

fn data(env: &Env) -> std::path::PathBuf {
    let src = env.path("src");
    write(&src.join("a.bin"), &random_bytes(300_000, 1));
    write(&src.join("dir/b.txt"), b"hello\n");
    src
}

#[test]
fn skip_if_unchanged_saves_nothing_until_something_changes() {
    let env = Env::new();
    let src = data(&env);
    let first = env.snapshot(&src, "config", "app", &["--skip-if-unchanged"]);
    assert_eq!(first["unchanged"], false, "no parent: saved");
    let before = env.state();
    let again = env.snapshot(&src, "config", "app", &["--skip-if-unchanged"]);
    assert_eq!(again["unchanged"], true, "{again}");
    assert_eq!(again["id"], first["id"], "the parent's id: {again}");
    assert_eq!(env.state(), before, "nothing written");
    let mut cmd = env.cmd(["snapshot".as_ref(), env.rel(&src).as_os_str()]);
    let out = run_ok(cmd.args(["--kind", "config", "--name", "app", "--skip-if-unchanged"]));
    let text = stdout(&out);
    assert!(
        text.contains("nothing changed since snapshot") && text.contains("no new snapshot saved"),
        "{text}"
    );
    assert_eq!(env.list().len(), 1);

    // A changed mode, a new file, a removed one: each is a change.
    chmod(&src.join("dir/b.txt"), 0o600);
    let r = env.snapshot(&src, "config", "app", &["--skip-if-unchanged"]);
    assert_eq!(r["unchanged"], false, "{r}");
    write(&src.join("new.txt"), b"new\n");
    let r = env.snapshot(&src, "config", "app", &["--skip-if-unchanged"]);
    assert_eq!(r["unchanged"], false, "{r}");
    std::fs::remove_file(src.join("new.txt")).unwrap();
    let r = env.snapshot(&src, "config", "app", &["--skip-if-unchanged"]);
    assert_eq!(r["unchanged"], false, "{r}");
    assert_eq!(env.list().len(), 4);
    // Without the flag an unchanged source still makes a snapshot.
    env.snapshot(&src, "config", "app", &[]);
    assert_eq!(env.list().len(), 5);
}

#[test]
fn dry_run_reports_what_would_be_stored_and_writes_nothing() {
    let env = Env::new();
    let src = data(&env);
    let before = env.state();
    let dry = env.snapshot(&src, "config", "app", &["--dry-run"]);
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["files_read"], 2, "{dry}");
    assert_eq!(dry["bytes_read"], 300_006, "{dry}");
    assert!(
        u(&dry, "added_raw") >= 300_006 && u(&dry, "chunks_new") >= 2,
        "{dry}"
    );
    assert!(u(&dry, "added_stored") > 0, "{dry}");
    assert_eq!(env.state(), before, "a dry run writes nothing");

    let real = env.snapshot(&src, "config", "app", &[]);
    assert_eq!(
        real["added_raw"], dry["added_raw"],
        "the estimate is the real figure"
    );
    assert_eq!(real["chunks_new"], dry["chunks_new"]);
    let before = env.state();
    let mut cmd = env.cmd(["snapshot".as_ref(), env.rel(&src).as_os_str()]);
    let out = run_ok(cmd.args(["--kind", "config", "--name", "app", "-n"]));
    let text = stdout(&out);
    assert!(text.contains("dry run: nothing written"), "{text}");
    assert!(
        text.contains("0 unchanged") || text.contains("2 unchanged"),
        "{text}"
    );
    assert_eq!(env.state(), before, "a dry run writes nothing");
    assert_eq!(env.list().len(), 1);

    // Not even the space reserve a real snapshot puts back.
    std::fs::remove_file(env.repo.join("reserve")).unwrap();
    env.snapshot(&src, "config", "app", &["--dry-run"]);
    assert!(
        !env.repo.join("reserve").exists(),
        "a dry run wrote the reserve"
    );
    env.snapshot(&src, "config", "app", &[]);
    assert!(
        env.repo.join("reserve").is_file(),
        "a snapshot puts the reserve back"
    );
}
