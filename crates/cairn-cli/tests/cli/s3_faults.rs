//! The S3 server dies in the middle of a snapshot: the snapshot fails with
//! a clear error and a non-zero exit, no partial snapshot becomes visible,
//! earlier snapshots stay intact, and once the server is back the next run
//! succeeds. On a `weed mini` of this test's own, which it kills.

use std::process::Stdio;
use std::time::{Duration, Instant};

use assert_cmd::Command;

use crate::common::{assert_diff_clean, cairn_in, random_bytes, stderr, stdout, write};
use crate::test_server::Weed;

#[test]
fn a_server_killed_mid_snapshot_loses_nothing_and_the_next_run_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut weed) = Weed::own("s3_killed_mid_snapshot", &dir.path().join("weed")) else {
        return;
    };
    let url = format!("s3://{}/killed", weed.server.bucket);
    let env = weed.server.env();
    let client = || -> Command {
        let mut cmd = cairn_in(dir.path());
        // A restarted weed answers 500 until its volumes are back: retry
        // for up to ~25 s (the snapshot that meets the kill retries twice).
        cmd.envs(env.clone())
            .env("CAIRN_S3_RETRIES", "8")
            .env("CAIRN_CACHE_DIR", dir.path().join("cache"))
            .args(["--repo", &url]);
        cmd
    };
    let ok = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{cmd:?}: {}", stderr(&out));
        stdout(&out)
    };
    ok(client().args(["init", "--pack-target", "1M"]));
    let small = dir.path().join("v1/model");
    write(&small.join("a.bin"), &random_bytes(200_000, 1));
    let first = ok(client()
        .arg("snapshot")
        .arg(&small)
        .args(["--kind", "model", "--name", "m", "--json"]));
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    let first = first["id"].as_str().unwrap().to_string();

    // A large snapshot, and the server killed while it uploads.
    let big = dir.path().join("v2/model");
    for i in 0..8 {
        write(
            &big.join(format!("shard-{i}.bin")),
            &random_bytes(8 << 20, 10 + i),
        );
    }
    let bin = std::process::Command::new(assert_cmd::cargo::cargo_bin("cairn"))
        .envs(env.clone())
        .env_remove("CAIRN_REPO")
        .env("HOME", dir.path().join("home"))
        .env("CAIRN_CACHE_DIR", dir.path().join("cache"))
        .args(["--repo", &url, "snapshot"])
        .arg(&big)
        .args(["--kind", "model", "--name", "m", "-q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    weed.kill();
    let start = Instant::now();
    let out = bin.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        eprintln!("note: the snapshot finished before the server was killed");
    } else {
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&url), "the error names the repository: {err}");
        assert!(err.contains("cannot reach the object store"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(30), "bounded retries");
    }

    weed.restart();
    let list = ok(client().args(["list", "--json"]));
    let listed: serde_json::Value = serde_json::from_str(&list).unwrap();
    let expected = if out.status.success() { 2 } else { 1 };
    assert_eq!(listed.as_array().unwrap().len(), expected, "{list}");
    let check = ok(client().args(["check", "--read-data"]));
    assert!(check.contains("no damage found"), "{check}");

    // The next run succeeds, and both versions restore bit for bit.
    ok(client()
        .arg("snapshot")
        .arg(&big)
        .args(["--kind", "model", "--name", "m"]));
    for (selector, src) in [(first.as_str(), &small), ("m", &big)] {
        let target = dir.path().join(format!("restore-{}", &selector[..1]));
        ok(client().args(["restore", selector]).arg(&target));
        assert_diff_clean(src, &target.join("model"));
    }
    let check = ok(client().args(["check", "--read-data"]));
    assert!(check.contains("no damage found"), "{check}");
}
