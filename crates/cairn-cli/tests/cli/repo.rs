//! Where the repository is: the per-user default, `--repo`, `CAIRN_REPO`.

use std::fs;

use crate::common::*;

/// Without `--repo`/`CAIRN_REPO`, `snapshot` creates the default repository
/// at `$XDG_DATA_HOME/cairn` on first use and later commands find it; a
/// missing non-default repository is never created implicitly (`list` exits
/// 2 and points at `cairn init`).
#[test]
fn default_repository_is_created_on_first_snapshot_only() {
    let sandbox = tempfile::tempdir().unwrap();
    let xdg = sandbox.path().join("xdg");
    let default_repo = xdg.join("cairn");
    let src = sandbox.path().join("src");
    write(&src.join("settings.toml"), b"a = 1\n");
    let cairn = || {
        let mut cmd = cairn_in(sandbox.path());
        cmd.env("XDG_DATA_HOME", &xdg);
        cmd
    };

    // Read commands do not create it.
    let err = run_code(cairn().arg("list"), 2);
    assert!(err.contains("cairn init"), "{err}");
    assert!(!default_repo.exists());

    let out = run_ok(
        cairn()
            .arg("snapshot")
            .arg("src")
            .args(["--kind", "config", "--name", "app", "--json"]),
    );
    assert!(
        stderr(&out).contains(&default_repo.display().to_string()),
        "{}",
        stderr(&out)
    );
    assert!(default_repo.join("config").is_file());
    assert!(default_repo.join("catalog.db").is_file());
    let list: serde_json::Value =
        serde_json::from_slice(&run_ok(cairn().args(["list", "--json"])).stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "app");
    assert_eq!(
        run_ok(cairn().args(["cat", "app", "src/settings.toml"])).stdout,
        b"a = 1\n"
    );

    // A second snapshot reuses it (no "creating" message).
    let out = run_ok(
        cairn()
            .arg("snapshot")
            .arg("src")
            .args(["--kind", "config", "--name", "app"]),
    );
    assert!(!stderr(&out).contains("creating"), "{}", stderr(&out));

    // A missing non-default repository is an error, by flag or by env.
    let missing = sandbox.path().join("missing-repo");
    let err = run_code(cairn().arg("--repo").arg(&missing).arg("list"), 2);
    assert!(
        err.contains("cairn init") && err.contains(&missing.display().to_string()),
        "{err}"
    );
    let err = run_code(cairn().env("CAIRN_REPO", &missing).arg("list"), 2);
    assert!(
        err.contains("cairn init") && err.contains(&missing.display().to_string()),
        "{err}"
    );
    let err = run_code(
        cairn()
            .arg("--repo")
            .arg(&missing)
            .arg("snapshot")
            .arg("src")
            .args(["--kind", "config", "--name", "app"]),
        2,
    );
    assert!(err.contains("cairn init"), "{err}");
    assert!(!missing.exists());
}

/// `--repo` wins over `CAIRN_REPO`, and `init` creates missing parents.
#[test]
fn repo_flag_overrides_environment() {
    let env = Env::uninit();
    let nested = env.path("deep/er/repo");
    run_ok(
        cairn_in(env.dir.path())
            .arg("--repo")
            .arg(&nested)
            .arg("init"),
    );
    assert!(nested.join("config").is_file());
    let src = env.path("src");
    write(&src.join("f"), b"f");
    run_ok(
        cairn_in(env.dir.path())
            .env("CAIRN_REPO", env.path("elsewhere"))
            .arg("--repo")
            .arg(&nested)
            .arg("snapshot")
            .arg("src")
            .args(["--kind", "k", "--name", "n"]),
    );
    assert!(!env.path("elsewhere").exists());
    let out = run_ok(
        cairn_in(env.dir.path())
            .env("CAIRN_REPO", &nested)
            .args(["list", "--json"]),
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// `init` into an existing non-empty directory that is not a repository is
/// refused and leaves the directory alone.
#[test]
fn init_refuses_a_non_empty_directory() {
    let env = Env::uninit();
    write(&env.repo.join("precious.txt"), b"keep me");
    let err = run_code(&mut env.cmd(["init"]), 2);
    assert!(err.contains(&env.repo.display().to_string()), "{err}");
    let names: Vec<_> = fs::read_dir(&env.repo)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["precious.txt"]);
}

/// `cairn --repo NAME init` with a bare relative name (no `/`) creates
/// `./NAME`, like any other relative path.
#[test]
fn init_with_a_bare_relative_repo_name() {
    let env = Env::uninit();
    run_ok(cairn_in(env.dir.path()).args(["--repo", "repo", "init"]));
    assert!(env.repo.join("config").is_file());
    run_ok(cairn_in(env.dir.path()).args(["--repo", "repo", "list"]));
}
