//! `cairn daemon` as a real process on `every 2s` schedules: three
//! targets, one whose path is gone; that one fails alone (its own
//! on_failure hook, its own ping /fail), is paused after two failures
//! while the others keep running, stays paused across a restart; /metrics
//! and /health are served; SIGHUP reloads the config; SIGTERM stops it cleanly.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;
use crate::notify::HttpSink;

fn config(env: &Env, sink: &str, listen: &str) -> PathBuf {
    let log = env.path("hooks.log");
    let mut text = format!(
        "[repository.main]\npath = \"{}\"\n\n[daemon]\nmax_failures = 2\nlisten = \"{listen}\"\n\n",
        env.repo.display()
    );
    for name in ["alpha", "beta", "gone"] {
        if name != "gone" {
            write(&env.path(&format!("{name}/f.txt")), name.as_bytes());
        }
        text.push_str(&format!(
            "[target.{name}]\nkind = \"config\"\npaths = [\"{name}\"]\nschedule = \"every 2s\"\n\
             notify = {{ ping_url = \"{sink}/ping/{name}\" }}\n\
             hooks = {{ after = \"echo after {name} >> {log}\", on_failure = \"echo failure {name} $CAIRN_TARGET >> {log}\" }}\n\n",
            log = log.display()
        ));
    }
    let file = env.path("cairn.toml");
    write(&file, text.as_bytes());
    file
}

fn daemon(env: &Env, file: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("cairn"));
    cmd.env_remove("CAIRN_REPO")
        .env("HOME", env.path("home"))
        // The repository's password in the encrypted run, as cairn_in gives it.
        .envs(password_env())
        .current_dir(env.dir.path())
        .args(["daemon", "--config"])
        .arg(file)
        .arg("--state-dir")
        .arg(env.path("state"))
        .args(extra);
    cmd
}

fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, out.split_once("\r\n\r\n")?.1.to_owned()))
}

#[test]
fn daemon_runs_schedules_pauses_the_failing_target_and_keeps_state() {
    let env = Env::new();
    let sink = HttpSink::start();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let file = config(&env, &sink.url, &addr);
    // Runs: t=0 alpha beta gone(1), t=2 alpha beta gone(2, paused), t=4 alpha beta.
    let started = Instant::now();
    let out = daemon(&env, &file, &["--max-runs", "8"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(4),
        "three rounds of 2 s: {elapsed:?}"
    );
    let log = stdout(&out);
    assert!(log.contains("gone: paused after 2 failures"), "{log}");
    let hooks = std::fs::read_to_string(env.path("hooks.log")).unwrap();
    let count = |s: &str| hooks.lines().filter(|l| *l == s).count();
    assert_eq!(count("failure gone gone"), 2, "{hooks}");
    assert_eq!(count("after alpha"), 3, "{hooks}");
    assert_eq!(count("after beta"), 3, "{hooks}");
    assert!(
        !hooks.contains("failure alpha") && !hooks.contains("failure beta"),
        "{hooks}"
    );
    let pings: Vec<String> = sink
        .drain(Duration::from_millis(300))
        .into_iter()
        .map(|r| r.path)
        .collect();
    let fails: Vec<&String> = pings.iter().filter(|p| p.ends_with("/fail")).collect();
    // Two failed runs plus the pause notice, all for `gone`.
    assert_eq!(fails.len(), 3, "{pings:?}");
    assert!(
        fails.iter().all(|p| p.starts_with("/ping/gone/")),
        "{pings:?}"
    );
    assert_eq!(
        pings.iter().filter(|p| *p == "/ping/alpha").count(),
        3,
        "{pings:?}"
    );
    let state: Value =
        serde_json::from_slice(&std::fs::read(env.path("state/runner-state.json")).unwrap())
            .unwrap();
    assert_eq!(state["targets"]["gone"]["paused"], true);
    assert_eq!(state["targets"]["gone"]["consecutive_failures"], 2);
    assert_eq!(env.list().len(), 6);

    // A restart continues: `gone` stays paused, the others run when due;
    // /metrics and /health answer while it runs; SIGTERM stops it.
    let mut child = daemon(&env, &file, &[])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, health) = loop {
        if let Some(r) = get(&addr, "/health") {
            break r;
        }
        assert!(Instant::now() < deadline, "daemon did not serve /health");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 503, "gone is failing: {health}");
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health[2]["target"], "gone");
    assert_eq!(health[2]["health"], "failing");
    assert_eq!(health[2]["paused"], true);
    let (status, metrics) = get(&addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("cairn_target_paused{target=\"gone\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cairn_last_run_success{target=\"alpha\"} 1"),
        "{metrics}"
    );
    // SIGHUP reloads: a target added to the file runs.
    write(&env.path("delta/f.txt"), b"delta");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(
        "[target.delta]\nkind = \"config\"\npaths = [\"delta\"]\nschedule = \"every 2s\"\n",
    );
    write(&file, text.as_bytes());
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(2500));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "daemon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let mut log = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("stopped after"), "{log}");
    assert!(
        !log.contains("gone: FAILED"),
        "a paused target does not run: {log}"
    );
    assert!(log.contains("alpha: ok"), "{log}");
    assert!(log.contains("config reloaded (4 targets)"), "{log}");
    assert!(log.contains("delta: ok"), "{log}");
    assert!(
        get(&addr, "/health").is_none(),
        "the server stopped with the daemon"
    );
}

/// `(target, start, end)` of each run the before/after hooks logged as
/// `start NAME SECS` / `end NAME SECS`.
fn intervals(log: &str) -> Vec<(String, f64, f64)> {
    let mut open: std::collections::BTreeMap<String, f64> = Default::default();
    let mut out = Vec::new();
    for line in log.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let (Some(what), Some(name), Some(t)) = (w.first(), w.get(1), w.get(2)) else {
            continue;
        };
        let t: f64 = t.parse().unwrap();
        match *what {
            "start" => {
                open.insert(name.to_string(), t);
            }
            "end" => out.push((name.to_string(), open.remove(*name).unwrap(), t)),
            _ => {}
        }
    }
    out
}

/// `concurrency = 2`: two targets run at the same time, and a target never
/// overlaps itself (each run is a before hook that sleeps, then a snapshot).
#[test]
fn daemon_runs_targets_in_parallel_but_each_once_at_a_time() {
    let env = Env::new();
    let log = env.path("runs.log");
    let mut text = format!(
        "[repository.main]\npath = \"{}\"\n\n[daemon]\nconcurrency = 2\n\n",
        env.repo.display()
    );
    for name in ["a", "b"] {
        write(&env.path(&format!("{name}/f.txt")), name.as_bytes());
        text.push_str(&format!(
            "[target.{name}]\nkind = \"config\"\npaths = [\"{name}\"]\nschedule = \"every 1s\"\n\
             hooks = {{ before = \"echo start {name} $(date +%s.%N) >> {log}; sleep 1.5\", \
             after = \"echo end {name} $(date +%s.%N) >> {log}\" }}\n\n",
            log = log.display()
        ));
    }
    let file = env.path("cairn.toml");
    write(&file, text.as_bytes());
    let out = daemon(&env, &file, &["--max-runs", "4"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let runs = intervals(&std::fs::read_to_string(&log).unwrap());
    assert_eq!(runs.len(), 4, "{runs:?}\n{}", stdout(&out));
    let overlap = |x: &(String, f64, f64), y: &(String, f64, f64)| x.1 < y.2 && y.1 < x.2;
    for (i, x) in runs.iter().enumerate() {
        for y in &runs[i + 1..] {
            if x.0 == y.0 {
                assert!(!overlap(x, y), "one target ran twice at once: {runs:?}");
            }
        }
    }
    assert!(
        runs.iter()
            .any(|x| runs.iter().any(|y| x.0 != y.0 && overlap(x, y))),
        "a and b never ran at the same time: {runs:?}"
    );
    assert_eq!(env.list().len(), 4);
}

/// SIGTERM during a long snapshot with `stop_timeout = "1s"`: the daemon
/// cancels it after the grace and exits; no snapshot is visible, the
/// repository checks clean, and the target's state is as before (it runs
/// again at the next start).
#[test]
fn sigterm_cancels_a_long_snapshot_after_stop_timeout() {
    let env = Env::new();
    // Sparse: instant to make, but the snapshot reads and hashes 32 GiB.
    std::fs::create_dir_all(env.path("big")).unwrap();
    let big = std::fs::File::create(env.path("big/huge.bin")).unwrap();
    big.set_len(32 << 30).unwrap();
    let started = env.path("started");
    let text = format!(
        "[repository.main]\npath = \"{}\"\n\n[daemon]\nstop_timeout = \"1s\"\n\n\
         [target.huge]\nkind = \"model\"\npaths = [\"big\"]\nschedule = \"every 1h\"\n\
         hooks = {{ before = \"touch {}\" }}\n",
        env.repo.display(),
        started.display()
    );
    let file = env.path("cairn.toml");
    write(&file, text.as_bytes());
    let mut child = daemon(&env, &file, &[])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !started.exists() {
        assert!(Instant::now() < deadline, "the run did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(30),
            "the daemon did not stop after its stop_timeout"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let waited = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    let mut log = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        waited >= Duration::from_millis(900),
        "the grace was given: {waited:?}\n{log}"
    );
    assert!(log.contains("cancelling the runs in flight"), "{log}");
    assert!(log.contains("huge: cancelled"), "{log}");
    assert!(log.contains("stopped after 0 run(s)"), "{log}");
    assert!(env.list().is_empty(), "nothing of the snapshot is visible");
    run_ok(env.cmd(["check"]));
    let state = env.path("state/runner-state.json");
    if state.exists() {
        let state: Value = serde_json::from_slice(&std::fs::read(state).unwrap()).unwrap();
        assert!(state["targets"]["huge"]["last_run"].is_null(), "{state}");
    }
}
