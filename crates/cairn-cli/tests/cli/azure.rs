//! Repositories on Azure Blob Storage: the real CLI against Azurite
//! (`azurite.rs`, shared with the library's tests), which `.ci/run`
//! installs; without it these tests print `SKIPPED: …`, except with
//! CI=true, where they fail.

use crate::azurite;
use crate::common::{assert_diff_clean, cairn_in, random_bytes, run_code, run_ok, stdout, write};

#[test]
fn an_azure_repository_snapshots_restores_checks_and_takes_copies() {
    let Some(server) = azurite::azurite("az_round_trip") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = server.url("az_round_trip");
    let cairn = |args: &[&str]| {
        let mut cmd = cairn_in(dir.path());
        cmd.envs(server.env())
            .env("CAIRN_CACHE_DIR", dir.path().join("cache"))
            .args(args);
        cmd
    };
    let on = |args: &[&str]| {
        let mut cmd = cairn(&["--repo", &url]);
        cmd.args(args);
        cmd
    };
    run_ok(on(&["init"]));
    let src = dir.path().join("model");
    write(&src.join("weights.bin"), &random_bytes(700_000, 51));
    write(&src.join("config.json"), b"{\"layers\": 4}\n");
    run_ok(on(&["snapshot", "--kind", "model", "--name", "m"]).arg(&src));
    assert!(stdout(&run_ok(on(&["list"]))).contains("1 snapshot"));
    let target = dir.path().join("restored");
    run_ok(on(&["restore", "m"]).arg(&target));
    assert_diff_clean(&src, &target.join(crate::common::stored(&src)));
    assert!(stdout(&run_ok(on(&["check", "--read-data"]))).contains("no damage found"));

    // A local repository copied into it: only what it lacks travels.
    let local = dir.path().join("local");
    run_ok(cairn(&["init", "--repo"]).arg(&local));
    run_ok(
        cairn(&["snapshot", "--kind", "model", "--name", "m", "--repo"])
            .arg(&local)
            .arg(&src),
    );
    let copied = stdout(&run_ok(
        cairn(&["copy", "--json", "--from"])
            .arg(&local)
            .args(["--to", &url]),
    ));
    let copied: serde_json::Value = serde_json::from_str(&copied).unwrap();
    assert_eq!(copied["snapshots_copied"], 1, "{copied}");
    assert_eq!(
        copied["chunks_sent"], 0,
        "every chunk was there already: {copied}"
    );

    // A container that does not exist is named, and nothing is made.
    let err = run_code(cairn(&["init", "--repo", "az://no-such-container/x"]), 2);
    assert!(
        err.contains("az://no-such-container/x") && err.contains("does not exist"),
        "{err}"
    );
    assert!(
        err.contains("AZURE_STORAGE"),
        "the hint names Azure's variables: {err}"
    );
}
