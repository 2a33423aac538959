//! One confirmation rule for destructive commands (`delete`, and
//! `rebuild-catalog` over a healthy catalog): `--yes` goes ahead, a
//! terminal is asked, no terminal and no `--yes` is refused; a declined
//! prompt exits 1 and changes nothing. `--dry-run` on both says what would
//! happen and writes nothing. The terminal is a real pty from util-linux
//! `script`.

use std::process::Command;

use crate::common::*;

/// `cairn --repo REPO ARGS...` on a pty fed `answer`: (exit code, output).
/// `None` (after saying so) where `script` is missing on a dev machine.
fn on_terminal(env: &Env, args: &[&str], answer: &str) -> Option<(i32, String)> {
    if Command::new("script").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "util-linux `script` is required in CI"
        );
        eprintln!("SKIPPED: util-linux `script` (for a pty) is not installed");
        return None;
    }
    let bin = assert_cmd::cargo::cargo_bin("cairn");
    let line = format!(
        "{} --repo {} {}",
        bin.display(),
        env.repo.display(),
        args.join(" ")
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .env_remove("CAIRN_REPO")
        .env("HOME", env.path("home"))
        .current_dir(env.dir.path());
    if encrypted() {
        cmd.env("CAIRN_PASSWORD", TEST_PASSWORD)
            .env("CAIRN_KDF_MEMORY_KIB", "64");
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        // Give the prompt time to be asked before the answer arrives.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(answer.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Some((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

fn two_snapshots(env: &Env) -> Vec<String> {
    (0..2)
        .map(|i| {
            let data = random_bytes(5_000, i + 90);
            env.snapshot_files("src", &[("f.bin", &data)], &["--kind", "k", "--name", "n"])
        })
        .collect()
}

#[test]
fn delete_dry_run_changes_nothing_and_a_declined_prompt_exits_1() {
    let env = Env::new();
    let ids = two_snapshots(&env);
    let before = env.state();
    let out = env.ok(&["delete", "n~1", "--dry-run"]);
    assert!(
        out.contains("dry run: would delete 1 snapshot; nothing was changed"),
        "{out}"
    );
    assert_eq!(env.state(), before);
    let err = run_code(env.cmd(["delete", "n~1"]), 2);
    assert!(
        err.contains("not deleting 1 snapshot without confirmation") && err.contains("--yes"),
        "{err}"
    );
    assert_eq!(env.state(), before);
    if let Some((code, out)) = on_terminal(&env, &["delete", "n~1"], "n\n") {
        assert_eq!(code, 1, "declined: {out}");
        assert!(
            out.contains("Delete 1 snapshot? [y/N]") && out.contains("nothing deleted"),
            "{out}"
        );
        assert_eq!(env.snapshot_ids(), ids);
        let (code, out) = on_terminal(&env, &["delete", "n~1"], "y\n").unwrap();
        assert_eq!(code, 0, "agreed: {out}");
        assert_eq!(env.snapshot_ids(), [ids[1].clone()]);
    }
}

#[test]
fn rebuild_catalog_asks_before_replacing_a_healthy_catalog() {
    let env = Env::new();
    two_snapshots(&env);
    let before = env.state();
    let out = env.ok(&["rebuild-catalog", "--dry-run"]);
    assert!(
        out.contains("dry run: would rebuild the catalog from"),
        "{out}"
    );
    assert!(
        out.contains("is healthy and would be set aside; nothing was changed"),
        "{out}"
    );
    let v = env.json(["rebuild-catalog", "--dry-run"]);
    assert_eq!(v["catalog_state"], "healthy", "{v}");
    assert_eq!(v["manifests"], 2, "{v}");
    let err = run_code(env.cmd(["rebuild-catalog"]), 2);
    assert!(
        err.contains("not replacing a healthy catalog without confirmation"),
        "{err}"
    );
    assert_eq!(env.state(), before, "refused: nothing changed");
    if let Some((code, out)) = on_terminal(&env, &["rebuild-catalog"], "no\n") {
        assert_eq!(code, 1, "declined: {out}");
        assert!(out.contains("nothing changed"), "{out}");
        assert_eq!(env.state(), before, "declined: nothing changed");
    }
    // A missing catalog is rebuilt without asking.
    std::fs::remove_file(env.repo.join("catalog.db")).unwrap();
    let v = env.json(["rebuild-catalog", "--dry-run"]);
    assert_eq!(v["catalog_state"], "missing", "{v}");
    run_ok(env.cmd(["rebuild-catalog"]));
    assert_eq!(env.list().len(), 2);
}
