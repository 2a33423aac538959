//! An interrupted forget (docs/FORMAT.md, "Forgetting a snapshot"): a
//! forget intent names snapshots whose manifests are partly deleted while
//! their catalog rows remain. `check` must call it unfinished work, not
//! damage, and `repair`, a rerun of `forget` and `rebuild-catalog` must
//! finish the removal, never resurrect a snapshot (item 5 of the
//! reliability issue: repair once brought back 240 of 240).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

const INTERRUPTED: &str =
    "forget interrupted; rerun `cairn forget` (or `cairn repair`) to finish it";

/// `n` snapshots of model/a, oldest first.
fn history(env: &Env, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let data = random_bytes(5_000, 900 + i as u64);
            let version = format!("v{}", i + 1);
            env.snapshot_files(
                "src",
                &[("w.bin", &data)],
                &["--kind", "model", "--name", "a", "--version", &version],
            )
        })
        .collect()
}

fn manifest(repo: &Path, id: &str) -> std::path::PathBuf {
    repo.join(format!("snapshots/{id}.snap"))
}

/// What a forget killed after its intent and two manifest deletes leaves:
/// an intent naming `doomed`, the first two manifests gone, every row kept.
fn interrupt_forget(repo: &Path, doomed: &[String]) {
    let hex: Vec<String> = doomed.iter().map(|d| format!("\"{d}\"")).collect();
    let intent = format!(
        "{{\"version\":1,\"time_ns\":1795305896443504773,\"host\":\"box\",\"snapshots\":[{}]}}",
        hex.join(",")
    );
    put_object(
        repo,
        "forget/0123456789abcdef0123456789abcdef.json",
        intent.as_bytes(),
    );
    for id in &doomed[..2] {
        std::fs::remove_file(manifest(repo, id)).unwrap();
    }
}

/// Five snapshots, a forget of the oldest three interrupted; returns
/// (env, removed, kept).
fn interrupted() -> (Env, Vec<String>, Vec<String>) {
    let env = Env::new();
    let ids = history(&env, 5);
    let (doomed, kept) = ids.split_at(3);
    interrupt_forget(&env.repo, doomed);
    (env, doomed.to_vec(), kept.to_vec())
}

fn assert_finished(env: &Env, doomed: &[String], kept: &[String]) {
    assert_eq!(env.snapshot_ids(), kept, "exactly the kept snapshots");
    for id in doomed {
        assert!(!manifest(&env.repo, id).exists(), "manifest of {id} gone");
    }
    let intents = std::fs::read_dir(env.repo.join("forget")).map_or(0, |d| d.count());
    assert_eq!(intents, 0, "the intent is deleted once finished");
    let out = env.ok(&["check", "--read-data"]);
    assert!(!out.contains("forget interrupted"), "{out}");
}

/// `cairn check`'s stdout, asserting its exit code.
fn check_exits(env: &Env, code: i32) -> String {
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(code), "{}", stdout(&out));
    stdout(&out)
}

#[test]
fn check_calls_an_interrupted_forget_unfinished_work_not_damage() {
    let (env, doomed, _) = interrupted();
    let out = env.ok(&["check"]);
    assert!(out.contains(INTERRUPTED), "{out}");
    assert!(
        !out.contains("DAMAGE") && !out.contains("cairn repair` salvages"),
        "{out}"
    );
    assert!(out.contains("no damage found"), "{out}");
    let report = env.json(["check"]);
    let named: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["problem"] == "forget_interrupted")
        .map(|f| f["snapshot"].as_str().unwrap())
        .collect();
    assert_eq!(named.len(), 3, "also the one whose manifest is still there");
    assert!(
        doomed.iter().all(|d| named.contains(&d.as_str())),
        "{report}"
    );
}

/// Regression: without the intent the same state is damage (lost
/// manifests), which repair rewrites; the intent is what tells them apart.
#[test]
fn a_missing_manifest_without_an_intent_stays_damage() {
    let env = Env::new();
    let ids = history(&env, 2);
    std::fs::remove_file(manifest(&env.repo, &ids[0])).unwrap();
    let out = check_exits(&env, 1);
    assert!(out.contains("DAMAGE: manifest missing"), "{out}");
}

#[test]
fn repair_finishes_the_forget_and_resurrects_nothing() {
    let (env, doomed, kept) = interrupted();
    let out = env.ok(&["repair"]);
    assert!(!out.contains("restored from the catalog"), "{out}");
    for id in &doomed {
        assert!(
            out.contains(&format!(
                "snapshot {id} removed: finished an interrupted forget"
            )),
            "{out}"
        );
    }
    assert_finished(&env, &doomed, &kept);
}

#[test]
fn forget_rerun_finishes_the_interrupted_one_first_and_says_so() {
    let (env, doomed, kept) = interrupted();
    let dry = env.ok(&["forget", "--keep-last", "5", "--dry-run"]);
    assert!(
        dry.contains("dry run: would first finish an interrupted forget of 3 snapshots"),
        "{dry}"
    );
    assert_eq!(env.snapshot_ids().len(), 5, "a dry run changes nothing");
    let out = env.ok(&["forget", "--keep-last", "5"]);
    assert!(
        out.contains("finished an interrupted forget: 3 snapshots removed"),
        "{out}"
    );
    assert!(out.contains("nothing to remove"), "{out}");
    assert_finished(&env, &doomed, &kept);
}

#[test]
fn delete_finishes_the_interrupted_forget_too() {
    let (env, doomed, kept) = interrupted();
    let out = env.ok(&["delete", "--yes", &kept[0]]);
    assert!(
        out.contains("finished an interrupted forget: 3 snapshots removed"),
        "{out}"
    );
    assert_finished(&env, &doomed, &kept[1..]);
}

#[test]
fn rebuild_catalog_does_not_bring_them_back() {
    let (env, doomed, kept) = interrupted();
    let out = env.ok(&["rebuild-catalog", "--yes"]);
    assert!(
        out.contains(&format!(
            "snapshot {} not imported: an interrupted forget was removing it",
            doomed[2]
        )),
        "{out}"
    );
    assert!(out.contains("2 snapshots"), "{out}");
    assert_finished(&env, &doomed, &kept);
}

/// An intent that does not parse: check names it as damage; forget, repair
/// and rebuild-catalog refuse to guess what it named, so nothing is removed
/// or resurrected.
#[test]
fn an_unreadable_intent_is_damage_and_forget_refuses() {
    let env = Env::new();
    history(&env, 2);
    put_object(&env.repo, "forget/bad.json", b"{\"version\":1");
    let out = check_exits(&env, 1);
    assert!(out.contains("DAMAGE: forget intent unreadable"), "{out}");
    for refuses in [
        &["forget", "--keep-last", "1"][..],
        &["repair"],
        &["rebuild-catalog", "--yes"],
    ] {
        let err = run_code(env.cmd(refuses), 2);
        let says = "forget intent forget/bad.json is unreadable";
        assert!(err.contains(says), "{refuses:?}: {err}");
    }
    assert_eq!(env.snapshot_ids().len(), 2);
}

/// `cairn forget --keep-last 1` on `repo`, as a child we can kill.
fn spawn_forget(repo: &Path, sandbox: &Path) -> std::process::Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("cairn"))
        .envs(password_env())
        .env_remove("CAIRN_REPO")
        .env("XDG_DATA_HOME", sandbox.join("xdg-data"))
        .env("HOME", sandbox.join("home"))
        .current_dir(sandbox)
        .arg("--repo")
        .arg(repo)
        .args(["forget", "--keep-last", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Guards item 5 under SIGKILL: a forget killed at a random moment is
/// never called damage by check, and both repair and a rerun of the forget
/// leave exactly the kept snapshot (repair may also find the forget not yet
/// begun: then nothing was removed). Seeded by `CAIRN_CRASH_SEED`.
#[test]
fn forget_killed_at_random_moments_is_finished_never_undone() {
    let seed = std::env::var("CAIRN_CRASH_SEED")
        .ok()
        .and_then(|s| s.trim().trim_start_matches("0x").parse::<u64>().ok())
        .unwrap_or(0x5EED_F0E7);
    let base = Env::new();
    let all = history(&base, 40);
    let newest = &all[all.len() - 1..];
    // How long a whole forget takes here, so kills span it.
    let full = {
        let env = Env::uninit();
        copy_dir(&base.repo, &env.repo);
        let started = Instant::now();
        assert!(spawn_forget(&env.repo, env.dir.path())
            .wait()
            .unwrap()
            .success());
        started.elapsed()
    };
    let mut rng = SplitMix64(seed);
    let trials = 6;
    let mut caught = 0;
    for trial in 0..trials {
        let slot = full.as_micros() as u64 / trials;
        let delay = Duration::from_micros(slot * trial + rng.next_u64() % slot.max(1));
        let ctx = format!(
            "CAIRN_CRASH_SEED={seed:#x} trial {trial}: kill after {delay:?} (full {full:?})"
        );
        let env = Env::uninit();
        copy_dir(&base.repo, &env.repo);
        let mut child = spawn_forget(&env.repo, env.dir.path());
        std::thread::sleep(delay);
        let _ = child.kill();
        child.wait().unwrap();

        let check = env.run(&["check"]);
        let out = stdout(&check);
        assert!(check.status.success(), "{ctx}: check found damage:\n{out}");
        assert!(!out.contains("manifest missing"), "{ctx}:\n{out}");
        caught += out.contains(INTERRUPTED) as usize;
        let copy = Env::uninit();
        copy_dir(&env.repo, &copy.repo);
        copy.ok(&["repair"]);
        let left = copy.snapshot_ids();
        assert!(
            left == newest || left == all,
            "{ctx}: repair left {} snapshots",
            left.len()
        );
        env.ok(&["forget", "--keep-last", "1"]);
        assert_eq!(env.snapshot_ids(), newest, "{ctx}: the rerun finishes it");
    }
    // Not an assertion on timing: how many kills hit the window, for the log.
    eprintln!(
        "forget kill harness (seed {seed:#x}): {caught} of {trials} kills left an interrupted forget"
    );
}
