//! Repositories on S3: the real CLI against a real SeaweedFS server
//! (`test_server.rs`, shared with the library's tests: one server per test
//! binary, one prefix per test). Without a server these tests print
//! `SKIPPED: …`, except with CI=true, where they fail. The tests of
//! refused URLs and of an unreachable endpoint need no server.

use std::fs;
use std::path::PathBuf;

use assert_cmd::Command;
use tempfile::TempDir;

use crate::common::{
    assert_diff_clean, cairn_in, random_bytes, restored_source, run_code, run_ok, stdout, write,
};
use crate::test_server::{self, S3Server};

/// A temp directory (sources, restore targets, catalog caches) and a
/// fresh `s3://` repository URL.
struct S3Env {
    dir: TempDir,
    url: String,
    server: &'static S3Server,
}

impl S3Env {
    fn new(test: &str) -> Option<Self> {
        let server = test_server::server(test)?;
        let dir = tempfile::Builder::new()
            .prefix("cairn-s3-")
            .tempdir()
            .unwrap();
        Some(Self {
            dir,
            url: server.url(test),
            server,
        })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `cairn --repo URL` as a host whose catalog cache is `cache-HOST`.
    fn on(&self, host: &str) -> Command {
        self.on_repo(host, &self.url)
    }

    /// `cairn --repo URL` for another URL.
    fn on_repo(&self, host: &str, url: &str) -> Command {
        let mut cmd = cairn_in(self.dir.path());
        cmd.envs(self.server.env())
            .env("CAIRN_CACHE_DIR", self.path(&format!("cache-{host}")))
            .arg("--repo")
            .arg(url);
        cmd
    }

    fn run(&self, host: &str, args: &[&str]) -> String {
        stdout(&run_ok(self.on(host).args(args)))
    }

    /// A source tree `name/` of a few files.
    fn source(&self, name: &str, seed: u64) -> PathBuf {
        let src = self.path(name);
        write(&src.join("weights.bin"), &random_bytes(600_000, seed));
        write(&src.join("sub/config.json"), b"{\"layers\": 12}\n");
        write(&src.join("empty"), b"");
        src
    }

    fn restore_matches(&self, host: &str, selector: &str, src: &std::path::Path) {
        let target = self.path(&format!(
            "restore-{host}-{selector}-{}",
            crate::common::now_ns()
        ));
        self.run(host, &["restore", selector, target.to_str().unwrap()]);
        let restored = crate::common::restored_source(&target, self.dir.path(), src);
        assert_diff_clean(src, &restored);
    }
}

fn snapshot_ids(list_json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(list_json).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn s3_round_trip_snapshot_list_restore_check_forget_gc() {
    let Some(t) = S3Env::new("s3_round_trip") else {
        return;
    };
    let out = t.run("a", &["init"]);
    assert!(out.contains(&t.url), "{out}");
    let src = t.source("model", 1);
    t.run(
        "a",
        &[
            "snapshot",
            src.to_str().unwrap(),
            "--kind",
            "model",
            "--name",
            "m",
        ],
    );
    write(&src.join("weights.bin"), &random_bytes(600_000, 2));
    t.run(
        "a",
        &[
            "snapshot",
            src.to_str().unwrap(),
            "--kind",
            "model",
            "--name",
            "m",
        ],
    );
    let ids = snapshot_ids(&t.run("a", &["list", "--json"]));
    assert_eq!(ids.len(), 2);
    t.restore_matches("a", "m", &src);
    let check = t.run("a", &["check", "--read-data"]);
    assert!(check.contains("no damage found"), "{check}");
    t.run("a", &["forget", "--keep-last", "1"]);
    let gc = t.run("a", &["gc"]);
    assert!(gc.contains("delete"), "{gc}");
    assert_eq!(snapshot_ids(&t.run("a", &["list", "--json"])), ids[1..]);
    t.restore_matches("a", "m", &src);
    let check = t.run("a", &["check", "--read-data"]);
    assert!(check.contains("no damage found"), "{check}");
    // An unchanged re-snapshot adds nothing.
    let again = t.run(
        "a",
        &[
            "snapshot",
            src.to_str().unwrap(),
            "--kind",
            "model",
            "--name",
            "m",
            "--json",
        ],
    );
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["chunks_new"].as_u64(), Some(0), "{again}");
}

/// Two hosts, each with its own catalog cache: what one saves, the other
/// lists and restores; a lost cache is rebuilt from the bucket.
#[test]
fn a_snapshot_from_host_a_is_listed_and_restored_on_host_b() {
    let Some(t) = S3Env::new("s3_two_hosts") else {
        return;
    };
    t.run("a", &["init"]);
    let src_a = t.source("from-a", 3);
    t.run(
        "a",
        &[
            "snapshot",
            src_a.to_str().unwrap(),
            "--kind",
            "model",
            "--name",
            "a",
        ],
    );
    assert_eq!(snapshot_ids(&t.run("b", &["list", "--json"])).len(), 1);
    t.restore_matches("b", "a", &src_a);

    // B writes; A's cache is stale and catches up.
    let src_b = t.source("from-b", 4);
    t.run(
        "b",
        &[
            "snapshot",
            src_b.to_str().unwrap(),
            "--kind",
            "model",
            "--name",
            "b",
        ],
    );
    assert_eq!(snapshot_ids(&t.run("a", &["list", "--json"])).len(), 2);
    t.restore_matches("a", "b", &src_b);
    // A forgets and collects; B sees it gone.
    t.run("a", &["delete", "a", "--yes"]);
    t.run("a", &["gc"]);
    assert_eq!(snapshot_ids(&t.run("b", &["list", "--json"])).len(), 1);
    t.restore_matches("b", "b", &src_b);

    // The cache is lost: rebuilt from the bucket on the next open.
    fs::remove_dir_all(t.path("cache-a")).unwrap();
    assert_eq!(snapshot_ids(&t.run("a", &["list", "--json"])).len(), 1);
    t.restore_matches("a", "b", &src_b);
    let check = t.run("a", &["check", "--read-data"]);
    assert!(check.contains("no damage found"), "{check}");
}

#[test]
fn a_wrong_secret_key_is_a_clear_error_naming_the_url() {
    let Some(t) = S3Env::new("s3_wrong_secret") else {
        return;
    };
    t.run("a", &["init"]);
    for args in [&["list"][..], &["init"][..]] {
        let err = run_code(
            t.on("a").env("AWS_SECRET_ACCESS_KEY", "wrong").args(args),
            2,
        );
        assert!(err.contains(&t.url), "{err}");
        assert!(err.contains("refused the credentials"), "{err}");
        assert!(err.contains("hint: check AWS_ACCESS_KEY_ID"), "{err}");
    }
}

/// With nothing in the environment but `AWS_PROFILE`, the endpoint, region
/// and keys come from `~/.aws/config` and `~/.aws/credentials`, as AWS
/// tools read them; a profile neither file has is an error naming both.
#[test]
fn credentials_and_endpoint_come_from_the_aws_files() {
    let Some(t) = S3Env::new("s3_aws_files") else {
        return;
    };
    let env: std::collections::HashMap<_, _> = t.server.env().into_iter().collect();
    let aws = t.path("home/.aws");
    write(
        &aws.join("config"),
        format!(
            "[default]\nregion = eu-west-1\n[profile lab]\nregion = us-east-1\nendpoint_url = {}\n",
            env["AWS_ENDPOINT_URL"]
        )
        .as_bytes(),
    );
    write(
        &aws.join("credentials"),
        format!(
            "[lab]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
        )
        .as_bytes(),
    );
    let cairn = |profile: &str, args: &[&str]| {
        let mut cmd = cairn_in(t.dir.path());
        for var in [
            "AWS_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("AWS_PROFILE", profile)
            .env("CAIRN_S3_RETRIES", "2")
            .env("CAIRN_CACHE_DIR", t.path("cache"))
            .arg("--repo")
            .arg(&t.url)
            .args(args);
        cmd
    };
    run_ok(cairn("lab", &["init"]));
    let src = t.source("m", 31);
    run_ok(cairn("lab", &["snapshot", "--kind", "model", "--name", "m"]).arg(&src));
    assert!(stdout(&run_ok(cairn("lab", &["list"]))).contains("1 snapshot"));
    let err = run_code(cairn("prod", &["list"]), 2);
    assert!(
        err.contains("AWS_PROFILE=prod") && err.contains(".aws/credentials"),
        "{err}"
    );
}

#[test]
fn a_missing_bucket_is_named() {
    let Some(t) = S3Env::new("s3_no_bucket") else {
        return;
    };
    for args in [&["init"][..], &["list"][..]] {
        let mut cmd = t.on_repo("a", "s3://no-such-bucket/p");
        cmd.args(args);
        let err = run_code(cmd, 2);
        assert!(
            err.contains("bucket `no-such-bucket` does not exist"),
            "{err}"
        );
        assert!(err.contains("s3://no-such-bucket/p"), "{err}");
    }
}

/// A prefix holding objects that are not a cairn repository: not opened,
/// and not initialised over.
#[test]
fn a_prefix_holding_something_else_is_not_a_repository() {
    let Some(t) = S3Env::new("s3_not_a_repo") else {
        return;
    };
    let inner = format!("{}/inner", t.url);
    run_ok(t.on_repo("a", &inner).arg("init"));
    let err = run_code(t.on("a").arg("list"), 2);
    assert!(
        err.contains(&format!("no cairn repository at {}", t.url)),
        "{err}"
    );
    let err = run_code(t.on("a").arg("init"), 2);
    assert!(err.contains("is not empty"), "{err}");
    let err = run_code(t.on_repo("a", &inner).arg("init"), 2);
    assert!(err.contains("already holds a cairn repository"), "{err}");
}

/// Nothing listens at the endpoint: a bounded number of retries, then one
/// clear error. Needs no server.
#[test]
fn an_unreachable_server_is_a_clear_error_after_bounded_retries() {
    let dir = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    for args in [
        &["init"][..],
        &["list"][..],
        &["snapshot", ".", "--kind", "k", "--name", "n"][..],
    ] {
        let mut cmd = cairn_in(dir.path());
        cmd.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_ACCESS_KEY_ID", "k")
            .env("AWS_SECRET_ACCESS_KEY", "s")
            .env("AWS_REGION", "us-east-1")
            .env("CAIRN_S3_RETRIES", "1")
            .env("CAIRN_CACHE_DIR", dir.path().join("cache"))
            .args(["--repo", "s3://bucket/repo"])
            .args(args);
        let err = run_code(cmd, 2);
        assert!(
            err.contains("s3://bucket/repo")
                && err.contains("cannot reach the object store at http://127.0.0.1:9"),
            "{err}"
        );
        assert!(err.contains("hint: check AWS_ENDPOINT_URL"), "{err}");
    }
    assert!(start.elapsed().as_secs() < 30, "{:?}", start.elapsed());
}

/// `--repo s3://x` once made a local directory `s3:`; URLs cairn cannot
/// open are refused by name and create nothing. Needs no server.
#[test]
fn unsupported_urls_are_refused_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "s3://x",
        "ftp://host/repo",
        "abfs://container/p",
        "gs://b/p",
        "az://Container/p",
        "s3://B/p",
    ] {
        for cmd in ["init", "list"] {
            let err = run_code(cairn_in(dir.path()).args(["--repo", url, cmd]), 2);
            assert!(
                err.contains(&format!("unsupported repository URL `{url}`")),
                "{err}"
            );
        }
    }
    let left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.iter().all(|n| n == "home" || n == "xdg-data"),
        "{left:?}"
    );
    assert!(!dir.path().join("s3:").exists());
}

/// `cairn copy` from a local repository to an `s3://` one and back: only
/// what is missing travels, and a second run copies nothing.
#[test]
fn copy_replicates_between_a_local_and_an_s3_repository() {
    let Some(t) = S3Env::new("s3_copy") else {
        return;
    };
    let local = t.path("local");
    let local = local.to_str().unwrap();
    let src = t.source("model", 9);
    run_ok(t.on_repo("a", local).arg("init"));
    run_ok(
        t.on_repo("a", local)
            .arg("snapshot")
            .arg(&src)
            .args(["--kind", "model", "--name", "m"]),
    );
    t.run("a", &["init"]);
    let first =
        stdout(&run_ok(t.on("a").args([
            "copy", "--from", local, "--to", &t.url, "--name", "m",
        ])));
    assert!(first.contains("copied 1 snapshot"), "{first}");
    let again =
        stdout(&run_ok(t.on("a").args([
            "copy", "--from", local, "--to", &t.url, "--name", "m",
        ])));
    assert!(
        again.contains("copied 0 snapshots (1 already present)"),
        "{again}"
    );
    t.restore_matches("b", "m", &src);
    let back = t.path("back");
    let back = back.to_str().unwrap();
    run_ok(t.on_repo("a", back).arg("init"));
    run_ok(
        t.on("a")
            .args(["copy", "--from", &t.url, "--to", back, "--name", "m"]),
    );
    let target = t.path("restored-back");
    run_ok(t.on_repo("a", back).args(["restore", "m"]).arg(&target));
    assert_diff_clean(&src, &restored_source(&target, t.dir.path(), &src));
}

/// The off-site pattern of #13 and #14: a fast plain local repository
/// beside an encrypted one in the bucket. Chunks cannot travel as stored
/// (the bucket's chunk ids are keyed), so copy re-encodes: the bucket's
/// copy restores bit for bit and checks clean, and a second run finds it
/// present and sends nothing.
#[test]
fn copy_re_encodes_a_plain_local_repository_into_an_encrypted_bucket() {
    let Some(t) = S3Env::new("s3_copy_reencode") else {
        return;
    };
    let sealed = |host: &str| {
        let mut cmd = t.on(host);
        cmd.env("CAIRN_PASSWORD", "off-site")
            .env("CAIRN_KDF_MEMORY_KIB", "64");
        cmd
    };
    let local = t.path("local");
    let local = local.to_str().unwrap();
    let src = t.source("model", 11);
    run_ok(t.on_repo("a", local).arg("init"));
    run_ok(
        t.on_repo("a", local)
            .arg("snapshot")
            .arg(&src)
            .args(["--kind", "model", "--name", "m"]),
    );
    run_ok(sealed("a").args(["init", "--encryption"]));
    let copy = ["copy", "--from", local, "--to", &t.url, "--json"];
    let first: serde_json::Value =
        serde_json::from_slice(&run_ok(sealed("a").args(copy)).stdout).unwrap();
    assert_eq!(first["mode"], "re_encoded", "{first}");
    assert_eq!(first["snapshots_copied"], 1, "{first}");
    let to_id = first["snapshots"][0]["to_id"].as_str().unwrap().to_string();
    assert_ne!(first["snapshots"][0]["id"].as_str(), Some(to_id.as_str()));
    let again: serde_json::Value =
        serde_json::from_slice(&run_ok(sealed("a").args(copy)).stdout).unwrap();
    assert_eq!(
        (&again["snapshots_copied"], &again["snapshots_present"]),
        (&serde_json::json!(0), &serde_json::json!(1)),
        "{again}"
    );
    // Another host reads the bucket with the password only.
    let target = t.path("restored-off-site");
    run_ok(sealed("b").args(["restore", &to_id]).arg(&target));
    assert_diff_clean(&src, &restored_source(&target, t.dir.path(), &src));
    run_ok(sealed("b").args(["check", "--read-data"]));
    let err = run_code(t.on("b").env_remove("CAIRN_PASSWORD").arg("list"), 2);
    assert!(err.contains("password"), "{err}");
}

/// Guards `cairn upgrade` on S3: a version-3 repository (made with the
/// hidden `init --repo-version`) is raised to 4 through the storage
/// contract, both copies of its config alike; a second host then writes
/// snapshots with trees (which a version-3 destination refuses to take by
/// `copy`), and the version-1 snapshot still restores.
#[test]
fn upgrade_raises_an_s3_repository_to_version_4() {
    let Some(t) = S3Env::new("s3_upgrade") else {
        return;
    };
    t.run("a", &["init", "--repo-version", "3"]);
    let src = t.source("model", 21);
    let snap = |host: &str| {
        let out = t.run(
            host,
            &[
                "snapshot",
                src.to_str().unwrap(),
                "--kind",
                "model",
                "--name",
                "m",
                "--json",
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["id"].as_str().unwrap().to_string()
    };
    let old = snap("a");
    let done: serde_json::Value =
        serde_json::from_str(&t.run("a", &["upgrade", "--yes", "--json"])).unwrap();
    assert_eq!(
        (&done["from"], &done["to"], &done["upgraded"]),
        (&3.into(), &4.into(), &true.into()),
        "{done}"
    );
    let again: serde_json::Value =
        serde_json::from_str(&t.run("b", &["upgrade", "--dry-run", "--json"])).unwrap();
    assert_eq!(again["from"], 4, "{again}");
    let copies: serde_json::Value =
        serde_json::from_str(&t.run("b", &["repair", "--config", "--json"])).unwrap();
    assert_eq!(
        copies["outcome"], "nothing",
        "config and config.backup agree: {copies}"
    );

    write(&src.join("sub/config.json"), b"{\"layers\": 24}\n");
    let new = snap("b");
    let v3 = t.path("v3");
    let v3 = v3.to_str().unwrap();
    run_ok(t.on_repo("a", v3).args(["init", "--repo-version", "3"]));
    let err = run_code(
        t.on("b").args(["copy", "--from", &t.url, "--to", v3, &new]),
        2,
    );
    assert!(
        err.contains("tree objects"),
        "the new snapshot has trees: {err}"
    );
    run_ok(t.on("b").args(["copy", "--from", &t.url, "--to", v3, &old]));
    let target = t.path("restored-old");
    run_ok(t.on("b").args(["restore", &old]).arg(&target));
    // Wherever the layout puts it: the old content came back.
    let (config, _) = crate::common::walk(&target)
        .into_iter()
        .find(|(p, _)| p.ends_with("model/sub/config.json"))
        .expect("the old snapshot's config.json is restored");
    assert_eq!(
        fs::read(target.join(config)).unwrap(),
        b"{\"layers\": 12}\n"
    );
    t.restore_matches("a", &new, &src);
    assert!(stdout(&run_ok(t.on("a").args(["check", "--read-data"]))).contains("no damage found"));
}
