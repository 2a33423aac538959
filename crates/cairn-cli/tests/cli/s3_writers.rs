//! Many writers, one bucket: four clients, each with its own catalog cache
//! (as separate hosts would have), snapshot into one S3 repository at the
//! same time while a fifth snapshots a scratch history, forgets it and runs
//! gc in a loop. Afterwards every snapshot a client reported as saved
//! restores bit for bit, and `check --read-data` is clean.
//!
//! A command refused because another holds the repository's lock (a
//! snapshot while gc runs, gc while a snapshot runs) is retried, as a
//! scheduler would; any other failure fails the test.

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use assert_cmd::Command;

use crate::common::{assert_diff_clean, cairn_in, random_bytes, stderr, stdout, write};
use crate::test_server;

const WRITERS: usize = 4;
const SNAPSHOTS_EACH: usize = 6;

/// Runs the command `make` builds until it is not refused by a lock;
/// panics on any other failure or after a minute of refusals.
fn until_not_locked(what: &str, make: &dyn Fn() -> Command) -> Output {
    let start = Instant::now();
    loop {
        let out = make().output().unwrap();
        if out.status.success() {
            return out;
        }
        let err = stderr(&out);
        let locked = err.contains("repository is locked");
        assert!(locked, "{what} failed:\n{err}");
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what}: locked for a minute: {err}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn four_hosts_snapshot_into_one_bucket_while_a_fifth_forgets_and_collects() {
    let Some(server) = test_server::server("s3_many_writers") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = server.url("s3_many_writers");
    let client = |host: &str| -> Command {
        let mut cmd = cairn_in(dir.path());
        cmd.envs(server.env())
            .env("CAIRN_CACHE_DIR", dir.path().join(format!("cache-{host}")))
            .args(["--repo", &url]);
        cmd
    };
    assert!(client("init")
        .arg("init")
        .output()
        .unwrap()
        .status
        .success());

    let stop = std::sync::atomic::AtomicBool::new(false);
    let saved: Vec<Vec<(String, PathBuf)>> = std::thread::scope(|s| {
        let collector = s.spawn(|| {
            let mut rounds = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let src = dir.path().join(format!("scratch-{rounds}"));
                write(&src.join("junk.bin"), &random_bytes(200_000, 1000 + rounds));
                until_not_locked("scratch snapshot", &|| {
                    let mut c = client("gc");
                    c.arg("snapshot")
                        .arg(&src)
                        .args(["--kind", "scratch", "--name", "junk"]);
                    c
                });
                until_not_locked("forget", &|| {
                    let mut c = client("gc");
                    c.args(["forget", "--name", "junk", "--keep-last", "1"]);
                    c
                });
                until_not_locked("gc", &|| {
                    let mut c = client("gc");
                    c.args(["gc", "--max-unused", "0"]);
                    c
                });
                rounds += 1;
            }
            rounds
        });
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let client = &client;
                let dir = dir.path();
                s.spawn(move || {
                    let host = format!("w{w}");
                    (0..SNAPSHOTS_EACH)
                        .map(|n| {
                            // Each version kept as it was saved, to compare.
                            let src = dir.join(format!("{host}-v{n}/model"));
                            let seed = (w * 100 + n) as u64;
                            write(&src.join("weights.bin"), &random_bytes(300_000, seed));
                            write(&src.join("shared.bin"), &random_bytes(100_000, 7));
                            let out = until_not_locked(&format!("{host} snapshot {n}"), &|| {
                                let mut c = client(&host);
                                c.arg("snapshot")
                                    .arg(&src)
                                    .args(["--kind", "model", "--name", &host, "--json"]);
                                c
                            });
                            let report: serde_json::Value =
                                serde_json::from_slice(&out.stdout).unwrap();
                            (report["id"].as_str().unwrap().to_string(), src)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let saved = writers.into_iter().map(|w| w.join().unwrap()).collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let rounds = collector.join().unwrap();
        eprintln!("the collector ran {rounds} forget + gc rounds");
        assert!(rounds >= 1, "the collector ran while the writers did");
        saved
    });

    // Every reported snapshot, restored on a host that wrote none of them.
    for (id, src) in saved.iter().flatten() {
        let target = dir.path().join(format!("restore-{id}"));
        let out = client("reader")
            .arg("restore")
            .arg(id)
            .arg(&target)
            .output()
            .unwrap();
        assert!(out.status.success(), "restore {id}: {}", stderr(&out));
        assert_diff_clean(src, &target.join(crate::common::stored(src)));
    }
    let out = client("reader")
        .args(["check", "--read-data"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("no damage found"), "{}", stdout(&out));
    let listed = stdout(
        &client("reader")
            .args(["list", "--kind", "model"])
            .output()
            .unwrap(),
    );
    assert!(
        listed.contains(&format!("{} snapshots", WRITERS * SNAPSHOTS_EACH)),
        "{listed}"
    );
}
