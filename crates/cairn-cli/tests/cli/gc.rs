//! `gc` through the binary: the space really comes back, the repack
//! threshold, and SIGKILL at random moments. Besides restoring and
//! `check --read-data`, each test re-reads the repository through the
//! library (`common::verify_repository`).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{
    copy_dir, dir_size, password_env, random_bytes, verify_repository, Env, SplitMix64,
};

const MB: usize = 1_000_000;

/// A model of `len` bytes that changes between versions: version `v` (from
/// 0) rewrites three 1 MB blocks of its predecessor, at places no other
/// version touches, so about 10% of it is new each time.
fn model_versions(len: usize, versions: usize) -> Vec<Vec<u8>> {
    let mut data = random_bytes(len, 1);
    let mut out = vec![data.clone()];
    let stride = len / (3 * versions);
    for v in 1..versions {
        for block in 0..3 {
            let at = (block * versions + v) * stride;
            let end = (at + MB).min(len);
            data[at..end].copy_from_slice(&random_bytes(end - at, (v * 10 + block) as u64));
        }
        out.push(data.clone());
    }
    out
}

fn assert_restores(env: &Env, selector: &str, expected: &[u8]) {
    let target = env.restore(selector);
    let got = std::fs::read(target.join("model/weights.bin")).unwrap();
    assert!(
        got == expected,
        "{selector} restored {} bytes that differ",
        got.len()
    );
    std::fs::remove_dir_all(target).unwrap();
}

fn gc_json(env: &Env, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&env.ok(&[&["gc", "--json"], args].concat())).unwrap()
}

#[test]
fn space_comes_back_to_within_5_percent_of_a_fresh_repository() {
    let versions = model_versions(30 * MB, 3);
    let env = Env::new();
    let mut ids = Vec::new();
    for (i, data) in versions.iter().enumerate() {
        let v = format!("v{}", i + 1);
        ids.push(env.snapshot_files(
            "model",
            &[("weights.bin", data)],
            &["--kind", "model", "--name", "m", "--version", &v],
        ));
    }
    let before = dir_size(&env.repo);
    env.ok(&["forget", "--keep-last", "1"]);
    let report = gc_json(&env, &[]);
    let after = dir_size(&env.repo);

    let fresh = Env::new();
    fresh.snapshot_files(
        "model",
        &[("weights.bin", &versions[2])],
        &["--kind", "model", "--name", "m"],
    );
    let baseline = dir_size(&fresh.repo);
    eprintln!(
        "space: 3 versions {before} B; after forget + gc {after} B; fresh repository with only the kept one {baseline} B \
         ({:+.2}%); gc report {}",
        (after as f64 / baseline as f64 - 1.0) * 100.0,
        report["report"]
    );
    assert!(
        (after as f64) < baseline as f64 * 1.05,
        "{after} vs fresh {baseline}"
    );
    assert!(
        report["report"]["packs_rewritten"].as_u64().unwrap() >= 1,
        "{report}"
    );
    assert_restores(&env, &ids[2][..8], &versions[2]);
    let v = verify_repository(&env.repo);
    assert_eq!(v.snapshots, 1);
    assert_eq!(env.check_read_data(), Vec::<serde_json::Value>::new());
    assert_eq!(
        gc_json(&env, &["--dry-run"])["plan"]["repack"],
        serde_json::json!([]),
        "nothing left to do"
    );
}

#[test]
fn half_dead_pack_is_repacked_two_percent_dead_is_not() {
    let env = Env::with_init(&["--compression", "0"]);
    let (a, b) = (random_bytes(2 * MB, 1), random_bytes(2 * MB, 2));
    let (c, d) = (random_bytes(4 * MB - 80_000, 3), random_bytes(80_000, 4));
    env.snapshot_files(
        "ab",
        &[("a", &a), ("b", &b)],
        &["--kind", "t", "--name", "ab"],
    );
    env.snapshot_files("ab", &[("b", &b)], &["--kind", "t", "--name", "ab"]);
    env.snapshot_files(
        "cd",
        &[("c", &c), ("d", &d)],
        &["--kind", "t", "--name", "cd"],
    );
    env.snapshot_files("cd", &[("c", &c)], &["--kind", "t", "--name", "cd"]);
    env.ok(&["forget", "--keep-last", "1"]);
    let plan = &gc_json(&env, &["--dry-run"])["plan"];
    let repack = plan["repack"].as_array().unwrap();
    assert_eq!(repack.len(), 1, "{plan}");
    let half =
        1.0 - repack[0]["live_bytes"].as_f64().unwrap() / repack[0]["size"].as_f64().unwrap();
    assert!((0.45..0.55).contains(&half), "{half}");
    // The c+d pack and the packs holding only the kept snapshots' new root trees.
    assert_eq!(plan["kept_packs"], 3);
    let small = plan["kept_unused_bytes"].as_f64().unwrap() / plan["kept_bytes"].as_f64().unwrap();
    assert!((0.01..0.03).contains(&small), "{small}");
    let out = env.ok(&["gc"]);
    assert!(out.contains("rewrote   1 packs into 1 new"), "{out}");
    assert_restores_files(&env, "ab", &[("b", &b)]);
    assert_restores_files(&env, "cd", &[("c", &c)]);
    verify_repository(&env.repo);
    assert_eq!(env.check_read_data(), Vec::<serde_json::Value>::new());
}

fn assert_restores_files(env: &Env, selector: &str, files: &[(&str, &[u8])]) {
    let target = env.restore(selector);
    let root = std::fs::read_dir(&target)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for (name, data) in files {
        assert!(
            std::fs::read(root.join(name)).unwrap() == *data,
            "{selector}: {name}"
        );
    }
}

#[test]
fn gc_refuses_to_run_beside_a_snapshot() {
    let env = Env::new();
    let lock = cairn::LockInfo {
        exclusive: false,
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
            .to_string(),
        pid: std::process::id(),
        purpose: "snapshot".into(),
        time_ns: crate::common::now_ns() as i64,
        refreshed_ns: None,
        expires_ns: Some(i64::MAX),
    };
    std::fs::create_dir_all(env.repo.join("locks")).unwrap();
    std::fs::write(
        env.repo.join("locks/running.lock"),
        serde_json::to_vec(&lock).unwrap(),
    )
    .unwrap();
    let out = env.run(&["gc"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shared lock for `snapshot`"));
}

/// The repository every kill trial starts from: 4 versions of a 24 MB model
/// in 1 MB packs, the 2 oldest forgotten, so gc deletes and repacks dozens
/// of packs. Returns the template and the kept versions' bytes.
fn kill_template() -> (Env, Vec<(String, Vec<u8>)>) {
    let env = Env::with_init(&["--pack-target", "1M", "--compression", "1"]);
    let versions = model_versions(24 * MB, 4);
    let mut kept = Vec::new();
    for (i, data) in versions.iter().enumerate() {
        let version = format!("v{}", i + 1);
        let id = env.snapshot_files(
            "model",
            &[("weights.bin", data)],
            &["--kind", "model", "--name", "m", "--version", &version],
        );
        if i >= 2 {
            kept.push((id, data.clone()));
        }
    }
    env.ok(&["forget", "--keep-last", "2"]);
    (env, kept)
}

/// Runs gc on a copy of `template` and SIGKILLs it after `delay` (it may
/// finish first). Returns whether it was still running when killed.
fn gc_killed_after(repo: &Path, delay: Duration) -> bool {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .envs(password_env())
        .args(["--quiet", "--repo"])
        .arg(repo)
        .arg("gc")
        .env_remove("CAIRN_REPO")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + delay;
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if Instant::now() >= deadline {
            child.kill().unwrap(); // SIGKILL on Unix
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Kill trials: a handful by default, `CAIRN_LONG_TESTS=1` for 120 (or
/// `CAIRN_KILL_TRIALS=N`).
fn kill_trials() -> u64 {
    if let Some(n) = std::env::var("CAIRN_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    match std::env::var("CAIRN_LONG_TESTS").as_deref() {
        Ok("1") => 120,
        _ => 8,
    }
}

/// Pack file names under `repo`, sorted.
fn pack_names(repo: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for dir in std::fs::read_dir(repo.join("packs")).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            names.push(f.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    names
}

#[test]
fn sigkilled_gc_leaves_kept_snapshots_restorable_and_a_rerun_finishes() {
    let (template, kept) = kill_template();
    let template_packs = pack_names(&template.repo);
    // How long an uninterrupted gc takes here (the fastest of three), to
    // spread the kills over its whole run.
    let mut full = Duration::MAX;
    for i in 0..3 {
        let timing = template.path(&format!("timing-{i}"));
        copy_dir(&template.repo, &timing);
        let started = Instant::now();
        assert!(!gc_killed_after(&timing, Duration::from_secs(600)));
        full = full.min(started.elapsed());
    }
    let trials = kill_trials();
    let (mut before_any_change, mut midway, mut after_finish) = (0, 0, 0);
    for trial in 0..trials {
        let mut rng = SplitMix64(0xC0FFEE ^ trial);
        let delay = Duration::from_micros(rng.next_u64() % full.as_micros().max(1) as u64);
        let repo = template.path(&format!("trial-{trial}"));
        copy_dir(&template.repo, &repo);
        let killed = gc_killed_after(&repo, delay);
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
            repo: repo.clone(),
        };
        for (id, data) in &kept {
            assert_restores(&env, &id[..8], data);
        }
        // Only leftovers (unknown or unreferenced packs) may be noted.
        for finding in env.check_read_data() {
            assert_eq!(finding["damage"], false, "trial {trial}: {finding}");
        }
        let changed = pack_names(&repo) != template_packs;
        match (killed, changed) {
            (false, _) => after_finish += 1,
            (true, false) => before_any_change += 1,
            (true, true) => midway += 1,
        }
        let rerun = gc_json(&env, &[]);
        assert!(
            rerun["report"]["damaged"]
                .as_array()
                .is_none_or(|d| d.is_empty()),
            "trial {trial}: {rerun}"
        );
        let v = verify_repository(&repo);
        assert_eq!(v.snapshots, 2, "trial {trial}");
        assert_eq!(
            env.check_read_data(),
            Vec::<serde_json::Value>::new(),
            "trial {trial}"
        );
        let plan = &gc_json(&env, &["--dry-run"])["plan"];
        assert_eq!(
            plan["repack"],
            serde_json::json!([]),
            "trial {trial}: {plan}"
        );
        assert_eq!(
            plan["delete"],
            serde_json::json!([]),
            "trial {trial}: {plan}"
        );
        for (id, data) in &kept {
            assert_restores(&env, &id[..8], data);
        }
        std::fs::remove_dir_all(&repo).unwrap();
    }
    eprintln!(
        "sigkill: {trials} trials (uninterrupted gc {full:?}): {before_any_change} killed before gc changed a pack, \
         {midway} killed part-way, {after_finish} finished first"
    );
    assert!(
        trials < 6 || midway > 0,
        "some kills land while gc is changing the repository"
    );
}
