//! Faults of the S3 server. It dies in the middle of a snapshot: the
//! snapshot fails with a clear error and a non-zero exit, no partial
//! snapshot becomes visible, earlier snapshots stay intact, and once the
//! server is back the next run succeeds (on a `weed mini` of this test's
//! own, which it kills). It answers 503 (a fault-injecting proxy written
//! here, in front of the shared server): retried with backoff, and when
//! it never stops, one clear error. It answers too slowly for the client's
//! timeout: the same.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use assert_cmd::Command;

use crate::common::{assert_diff_clean, cairn_in, random_bytes, stderr, stdout, write};
use crate::test_server::{self, Weed};

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
        // Retry for up to ~25 s (the snapshot that meets the kill retries
        // twice).
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
    // A restarted weed answers 500 until its volume server has reported
    // back to its master, which on a loaded 2-core CI machine took longer
    // than the client's retries: wait for the server, not for cairn.
    let deadline = Instant::now() + Duration::from_secs(180);
    let list = loop {
        let out = client().args(["list", "--json"]).output().unwrap();
        if out.status.success() {
            break stdout(&out);
        }
        let err = stderr(&out);
        assert!(
            (err.contains("500 Internal Server Error") || err.contains("cannot reach"))
                && Instant::now() < deadline,
            "the restarted server should serve within 180 s: {err}"
        );
        std::thread::sleep(Duration::from_secs(2));
    };
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
        assert_diff_clean(
            src,
            &crate::common::restored_source(&target, dir.path(), src),
        );
    }
    let check = ok(client().args(["check", "--read-data"]));
    assert!(check.contains("no damage found"), "{check}");
}

/// What the proxy does to the connections it accepts, counted down per
/// connection (all of them while negative, none at 0).
#[derive(Default)]
struct Faults {
    /// Answer `503 Service Unavailable` and close.
    failing: AtomicI64,
    /// Read the request, then say nothing for [`STALL`] and close: a server
    /// too slow for the client's timeout.
    stalling: AtomicI64,
    /// Bytes the server sent to clients (a measure of downloads).
    downloaded: AtomicU64,
}

/// How long a stalled connection stays silent.
const STALL: Duration = Duration::from_secs(4);

/// Takes one connection off `counter` when it is non-zero.
fn take(counter: &AtomicI64) -> bool {
    let left = counter.load(Ordering::SeqCst);
    if left > 0 {
        counter.fetch_sub(1, Ordering::SeqCst);
    }
    left != 0
}

/// Reads a request head from `client`.
fn read_head(client: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && client.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
}

/// A TCP proxy to `upstream` on 127.0.0.1 that does to each connection what
/// its [`Faults`] say, and passes the others through byte for byte.
fn proxy(upstream: String) -> (String, Arc<Faults>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let faults = Arc::new(Faults::default());
    let f = faults.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut client) = conn else { continue };
            if take(&f.failing) {
                read_head(&mut client);
                let _ = client.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            if take(&f.stalling) {
                std::thread::spawn(move || {
                    read_head(&mut client);
                    std::thread::sleep(STALL);
                });
                continue;
            }
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut s2);
                let _ = s2.shutdown(std::net::Shutdown::Write);
            });
            let f = f.clone();
            std::thread::spawn(move || {
                let (mut client, mut server) = (client, server);
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n @ 1..) = server.read(&mut buf) {
                    f.downloaded.fetch_add(n as u64, Ordering::SeqCst);
                    if client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, faults)
}

/// The shared test server behind a [`proxy`] of this test's own, with a
/// temp directory and a fresh repository URL.
struct Proxied {
    server: &'static test_server::S3Server,
    dir: tempfile::TempDir,
    endpoint: String,
    faults: Arc<Faults>,
    url: String,
}

impl Proxied {
    fn new(test: &str) -> Option<Self> {
        let server = test_server::server(test)?;
        let upstream = server.endpoint.trim_start_matches("http://").to_string();
        let (endpoint, faults) = proxy(upstream);
        Some(Self {
            server,
            dir: tempfile::tempdir().unwrap(),
            endpoint,
            faults,
            url: server.url(test),
        })
    }

    /// The round every fault test runs through `client`: `init` and a
    /// snapshot each meet their first `first` connections failing as
    /// `fault` says (`what` names them; each command takes at least `min`),
    /// and succeed; with the fault lasting, `list` fails with exit 2 within
    /// 20 s, naming URL and endpoint and `lasting`; with it gone, a restore
    /// is bit for bit.
    fn survive_then_fail(
        &self,
        fault: &AtomicI64,
        first: i64,
        client: &dyn Fn() -> Command,
        what: &str,
        min: Duration,
        lasting: &str,
    ) {
        let src = self.dir.path().join("model");
        write(&src.join("a.bin"), &random_bytes(300_000, 5));
        for args in [
            &["init"][..],
            &["snapshot", "model", "--kind", "model", "--name", "m"][..],
        ] {
            fault.store(first, Ordering::SeqCst);
            let start = Instant::now();
            let out = client().args(args).output().unwrap();
            assert!(
                out.status.success(),
                "{args:?} after {what}: {}",
                stderr(&out)
            );
            assert_eq!(fault.load(Ordering::SeqCst), 0, "the {what} were met");
            assert!(
                start.elapsed() >= min,
                "{args:?} took {:?} for {what}",
                start.elapsed()
            );
        }

        fault.store(-1, Ordering::SeqCst);
        let start = Instant::now();
        let out = client().arg("list").output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&self.url) && err.contains(&self.endpoint),
            "{err}"
        );
        assert!(err.contains(lasting), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );

        fault.store(0, Ordering::SeqCst);
        let target = self.dir.path().join("restored");
        let out = client()
            .args(["restore", "m"])
            .arg(&target)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let restored = crate::common::restored_source(&target, self.dir.path(), &src);
        assert_diff_clean(&src, &restored);
    }

    /// `cairn --repo URL` through the proxy, retrying `retries` times.
    fn client(&self, retries: u32) -> Command {
        let mut cmd = cairn_in(self.dir.path());
        cmd.envs(self.server.env())
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("CAIRN_S3_RETRIES", retries.to_string())
            .env("CAIRN_CACHE_DIR", self.dir.path().join("cache"))
            .args(["--repo", &self.url]);
        cmd
    }
}

/// A server slower than the client's timeout: each slow answer times out
/// and is retried, so a few of them cost seconds, not a failure; a server
/// that never answers in time is one clear error after bounded retries.
#[test]
fn slow_answers_time_out_and_are_retried_and_a_silent_server_is_a_clear_error() {
    let Some(p) = Proxied::new("s3_slow_answers") else {
        return;
    };
    let client = || {
        let mut cmd = p.client(3);
        cmd.env("CAIRN_S3_TIMEOUT_SECS", "1");
        cmd
    };
    p.survive_then_fail(
        &p.faults.stalling,
        2,
        &client,
        "two answers slower than the timeout",
        // Each stall waits out its 1 s timeout; with the stalls lasting,
        // 4 tries of 1 s plus backoff stay far below the 60 s default.
        Duration::from_secs(2),
        "cannot reach the object store",
    );
}

#[test]
fn server_errors_are_retried_and_a_lasting_one_is_a_clear_error() {
    let Some(p) = Proxied::new("s3_server_errors") else {
        return;
    };
    let client = || p.client(4);
    p.survive_then_fail(
        &p.faults.failing,
        3,
        &client,
        "three 503s",
        Duration::ZERO,
        "failed (503 Service Unavailable)",
    );
}

/// Delta snapshots of a training run into S3 read their references (the
/// keyframe chunks) from the local reference cache, which the keyframe
/// snapshot filled: a new checkpoint does not download the previous one.
/// With the cache off, it does, and both ways restore bit for bit.
#[test]
fn delta_snapshots_on_s3_read_their_references_from_the_local_cache() {
    let Some(p) = Proxied::new("s3_ref_cache") else {
        return;
    };
    let client = |cache: &str, budget: &str| {
        let mut cmd = p.client(3);
        cmd.env("CAIRN_CACHE_DIR", p.dir.path().join(cache))
            .env("CAIRN_REF_CACHE_BYTES", budget);
        cmd
    };
    let ok = |mut cmd: Command| -> String {
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{cmd:?}: {}", stderr(&out));
        stdout(&out)
    };
    ok({
        let mut c = client("cache-a", "100000000");
        c.args(["init", "--pack-target", "1M"]);
        c
    });
    let mut run = crate::delta::Run::new();
    let ckpt = p.dir.path().join("ckpt");
    let snapshot = |cache: &str, budget: &str, bytes: &[u8]| -> (u64, serde_json::Value) {
        write(&ckpt.join("model.safetensors"), bytes);
        let before = p.faults.downloaded.load(Ordering::SeqCst);
        let mut c = client(cache, budget);
        c.arg("snapshot")
            .arg(&ckpt)
            .args(["--kind", "model", "--name", "run", "--json"]);
        let report: serde_json::Value = serde_json::from_str(&ok(c)).unwrap();
        (p.faults.downloaded.load(Ordering::SeqCst) - before, report)
    };
    let first = run.checkpoint();
    let size = first.len() as u64;
    snapshot("cache-a", "100000000", &first);
    let refs = std::fs::read_dir(p.dir.path().join("cache-a"))
        .unwrap()
        .map(|e| e.unwrap().path().join("refs"))
        .find(|d| d.is_dir())
        .expect("the keyframe snapshot filled a reference cache");
    assert!(std::fs::read_dir(&refs).unwrap().count() > 0);

    run.train(50);
    let second = run.checkpoint();
    let (cached, report) = snapshot("cache-a", "100000000", &second);
    let stored = report["added_stored_bytes"].as_u64().unwrap();
    assert!(stored < size * 6 / 10, "delta-coded: {stored} of {size}");
    assert!(
        cached < size / 10,
        "with the cache, {cached} bytes downloaded for a {size}-byte checkpoint"
    );

    run.train(50);
    let third = run.checkpoint();
    let (uncached, report) = snapshot("cache-b", "0", &third);
    let stored = report["added_stored_bytes"].as_u64().unwrap();
    assert!(stored < size * 6 / 10, "delta-coded: {stored} of {size}");
    assert!(
        uncached > size / 3,
        "without the cache the references are downloaded: {uncached} bytes"
    );
    eprintln!("downloaded for a {size}-byte checkpoint: {cached} bytes cached, {uncached} not");

    for (cache, budget) in [("cache-a", "100000000"), ("cache-c", "0")] {
        let target = p.dir.path().join(format!("restore-{cache}"));
        let mut c = client(cache, budget);
        c.args(["restore", "run"]).arg(&target);
        ok(c);
        let restored = target.join(crate::common::stored(&ckpt));
        let got = std::fs::read(restored.join("model.safetensors")).unwrap();
        assert!(got == third, "restored bit for bit through {cache}");
    }
}
