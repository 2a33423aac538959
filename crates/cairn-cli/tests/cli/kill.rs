//! Kill suites for `forget`, `repair` and `restore`: each command is
//! SIGKILLed at random moments, then the repository (or the restore target)
//! must be in a state the next run of the same command finishes from, with
//! nothing committed lost. The assertions follow the snapshot and gc suites
//! (`crash.rs`, `gc.rs`): every committed snapshot restores bit for bit,
//! `check` is clean once the rerun is done (leftovers are notes), and the
//! rerun finishes the job.
//!
//! Trials: [`DEFAULT_TRIALS`] each, `CAIRN_LONG_TESTS=1` for
//! [`LONG_TRIALS`], `CAIRN_KILL_TRIALS=N` for any count. Kill moments come
//! from `common::SplitMix64` seeded with `CAIRN_CRASH_SEED` (or each
//! suite's default), and every failure names seed, trial and moment so it
//! can be replayed. A suite collects broken snapshots and check failures
//! over all its trials and fails at the end, after printing the figures.
//!
//! Nothing here asserts on `check` between a kill and the rerun of the
//! killed command: what check says about an interrupted forget is still
//! changing (an intent record is being added), and that must not break
//! these suites.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

const DEFAULT_TRIALS: usize = 8;
const LONG_TRIALS: usize = 100;
const MB: usize = 1_000_000;

/// What a suite saw over its trials.
#[derive(Default)]
pub(crate) struct Tally {
    pub trials: usize,
    /// Trials in which the command was still running when killed.
    pub killed: usize,
    /// Killed trials in which the command had already changed something
    /// visible (the windows that matter), for whoever reads the log.
    pub midway: usize,
    /// A committed snapshot (or restored file) that did not come back bit
    /// for bit, or a forget that removed only part of its set.
    pub broken: Vec<String>,
    /// A `check` that found damage where none may be.
    pub check_failures: Vec<String>,
    /// What `check` reported after the reruns (problem → trials), for the
    /// log: leftovers, and for repair the chunk it lost.
    findings: std::collections::BTreeMap<String, usize>,
}

impl Tally {
    /// Counts the problems of a check report, once per kind.
    fn saw(&mut self, report: &Value) {
        let mut kinds: Vec<String> = report["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| f["problem"].as_str().unwrap_or("?").to_string())
            .collect();
        kinds.sort();
        kinds.dedup();
        for k in kinds {
            *self.findings.entry(k).or_default() += 1;
        }
    }

    /// Prints the figures, then fails if anything broke.
    pub fn finish(&self, op: &str, seed: u64, full: Duration) {
        eprintln!(
            "kill suite `{op}` (seed {seed:#x}, an uninterrupted run took up to {full:?}): \
             {} trials, {} killed before they exited ({} part-way), {} broken snapshots, \
             {} check failures; check found after the reruns: {:?}",
            self.trials,
            self.killed,
            self.midway,
            self.broken.len(),
            self.check_failures.len(),
            self.findings
        );
        assert!(
            self.broken.is_empty() && self.check_failures.is_empty(),
            "{op}: broken: {:#?}\ncheck failures: {:#?}",
            self.broken,
            self.check_failures
        );
    }
}

pub(crate) fn seed(default: u64) -> u64 {
    let Ok(v) = std::env::var("CAIRN_CRASH_SEED") else {
        return default;
    };
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
    .unwrap_or(default)
}

/// When a trial kills the command.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Moment {
    /// This long after it starts.
    After(Duration),
    /// This long after the watched count first changes: the command's first
    /// visible step (a manifest deleted, a pack put, a file renamed into
    /// place), where the short windows between two commits lie.
    AfterFirstChange(Duration),
}

impl Moment {
    /// Even trials kill at a random time, stratified over the run (so a few
    /// trials cover early and late); odd ones aim at the first `window`
    /// after the first visible change, which random times rarely hit.
    pub fn draw(
        rng: &mut SplitMix64,
        trial: usize,
        trials: usize,
        full: Duration,
        window: Duration,
    ) -> Self {
        let below = |max: u128, rng: &mut SplitMix64| {
            Duration::from_micros(rng.next_u64() % (max as u64).max(1))
        };
        if trial % 2 == 1 {
            return Moment::AfterFirstChange(below(window.as_micros(), rng));
        }
        let slots = trials.div_ceil(2) as u128;
        let slot = full.as_micros() / slots;
        Moment::After(Duration::from_micros((slot * (trial / 2) as u128) as u64) + below(slot, rng))
    }
}

/// `cairn --quiet --repo REPO ARGS...` as a child process we can kill,
/// isolated like `common::cairn_in`.
fn spawn(env: &Env, args: &[&str]) -> Child {
    spawn_with(env, args, &password_env())
}

/// [`spawn`] with `vars` in its environment.
pub(crate) fn spawn_with(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .envs(vars.iter().copied())
        .env_remove("CAIRN_REPO")
        .env("XDG_DATA_HOME", env.path("xdg-data"))
        .env("HOME", env.path("home"))
        .current_dir(env.dir.path())
        .arg("--quiet")
        .arg("--repo")
        .arg(&env.repo)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `cairn ARGS...`, SIGKILLs it at `moment` (`watch` counts what the
/// first visible change changes) and returns whether the kill hit it.
fn run_killed(
    env: &Env,
    args: &[&str],
    moment: Moment,
    watch: &dyn Fn() -> usize,
) -> (bool, Output) {
    run_killed_with(env, args, &password_env(), moment, watch)
}

/// [`run_killed`] with `vars` in the command's environment.
pub(crate) fn run_killed_with(
    env: &Env,
    args: &[&str],
    vars: &[(&str, &str)],
    moment: Moment,
    watch: &dyn Fn() -> usize,
) -> (bool, Output) {
    let mut child = spawn_with(env, args, vars);
    match moment {
        Moment::After(d) => std::thread::sleep(d),
        Moment::AfterFirstChange(d) => {
            let before = watch();
            while child.try_wait().unwrap().is_none() {
                if watch() != before {
                    std::thread::sleep(d);
                    break;
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }
    let _ = child.kill(); // an error means it had already exited
    let out = child.wait_with_output().unwrap();
    (out.status.signal() == Some(libc::SIGKILL), out)
}

/// How long `cairn ARGS...` takes uninterrupted (process start to exit,
/// exit code `code`) on a fresh copy from `make`: the slowest of three
/// runs, so random kill times span the whole run.
fn full_time(make: &dyn Fn() -> Env, args: &[&str], code: i32) -> Duration {
    (0..3)
        .map(|_| {
            let env = make();
            let started = Instant::now();
            let out = spawn(&env, args).wait_with_output().unwrap();
            let took = started.elapsed();
            assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
            took
        })
        .max()
        .unwrap()
}

/// Regular files under `dir` (recursively) whose names pass `keep`;
/// tolerates entries vanishing while it looks.
pub(crate) fn count_files(dir: &Path, keep: &dyn Fn(&str) -> bool) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path(), keep),
            Ok(t) if t.is_file() => keep(&e.file_name().to_string_lossy()) as usize,
            _ => 0,
        })
        .sum()
}

/// A fresh temp dir holding a copy of `template`'s repository.
pub(crate) fn copy_env(template: &Env) -> Env {
    let dir = tempfile::Builder::new()
        .prefix("cairn-kill-")
        .tempdir()
        .unwrap();
    let repo = dir.path().join("repo");
    copy_dir(&template.repo, &repo);
    Env { dir, repo }
}

/// `restored` reproduces `src` bit for bit: the same nodes (type, mode,
/// mtime, size, link target) and the same bytes in every file.
pub(crate) fn same_tree(src: &Path, restored: &Path) -> Result<(), String> {
    if fs::symlink_metadata(restored).is_err() {
        return Err(format!("{} is missing", restored.display()));
    }
    let (want, got) = (tree_nodes(src), tree_nodes(restored));
    if want != got {
        let differ: Vec<&String> = want
            .keys()
            .chain(got.keys())
            .filter(|k| want.get(*k) != got.get(*k))
            .collect();
        return Err(format!("{} differs in {differ:?}", restored.display()));
    }
    for (rel, node) in &want {
        if node.kind == "file" && fs::read(src.join(rel)).ok() != fs::read(restored.join(rel)).ok()
        {
            return Err(format!("{}: {rel} has other bytes", restored.display()));
        }
    }
    Ok(())
}

/// Restores snapshot `selector` into a fresh directory and compares what
/// it stored of `src` with `src`; `template` took the snapshot (so `src`
/// is stored relative to its directory).
fn restores_as(env: &Env, selector: &str, template: &Env, src: &Path) -> Result<(), String> {
    let out = env.path(&format!("restore-{selector}-{}", now_ns()));
    let run = env
        .cmd(["restore".as_ref(), selector.as_ref(), out.as_os_str()])
        .output()
        .unwrap();
    if !run.status.success() {
        return Err(format!("restore {selector} failed: {}", stderr(&run)));
    }
    let result = same_tree(src, &out.join(template.rel(src)));
    let _ = fs::remove_dir_all(&out);
    result.map_err(|e| format!("snapshot {selector}: {e}"))
}

/// `check --json` (with `--read-data` if `read_data`): its exit code and
/// report.
fn check_report(env: &Env, read_data: bool) -> (Option<i32>, Value) {
    let args: &[&str] = if read_data {
        &["check", "--read-data", "--json"]
    } else {
        &["check", "--json"]
    };
    let out = env.run(args);
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap_or_default(),
    )
}

// ---- forget ----

const FORGET_SNAPSHOTS: usize = 24;
const FORGET_KEEP: &str = "4";

/// A repository with one history of [`FORGET_SNAPSHOTS`] snapshots, each of
/// its own directory (`v<i>/m`: a shared file, a file of its own, a note);
/// returns it with every snapshot's id and source.
fn forget_template() -> (Env, Vec<(String, PathBuf)>) {
    let env = Env::new();
    let shared = random_bytes(300_000, 700);
    let mut snaps = Vec::new();
    for i in 0..FORGET_SNAPSHOTS {
        let src = env.path(&format!("v{i}/m"));
        write(&src.join("shared.bin"), &shared);
        write(&src.join("own.bin"), &random_bytes(50_000, 701 + i as u64));
        write(
            &src.join("sub/note.txt"),
            format!("version {i}\n").as_bytes(),
        );
        let version = format!("v{i}");
        let r = env.snapshot(&src, "model", "m", &["--version", &version]);
        snaps.push((r["id"].as_str().unwrap().to_string(), src));
    }
    (env, snaps)
}

/// Guards crash consistency of `forget` under SIGKILL at random moments:
/// the snapshots it was removing are all still listed (and restore) or all
/// gone, every kept one restores bit for bit, rerunning the forget leaves
/// exactly the kept set, and `check --read-data` then exits 0.
#[test]
fn forget_killed_at_random_moments_loses_nothing_it_keeps() {
    let trials = kill_trials(DEFAULT_TRIALS, LONG_TRIALS);
    let seed = seed(0x5EED_F0E7_0001);
    let (template, snaps) = forget_template();
    let keep: usize = FORGET_KEEP.parse().unwrap();
    let (removing, kept) = snaps.split_at(snaps.len() - keep);
    let args = ["forget", "--keep-last", FORGET_KEEP];
    let full = full_time(&|| copy_env(&template), &args, 0);
    let mut rng = SplitMix64(seed);
    let mut tally = Tally::default();
    for trial in 0..trials {
        let moment = Moment::draw(&mut rng, trial, trials, full, Duration::from_millis(20));
        let ctx =
            format!("CAIRN_CRASH_SEED={seed:#x} forget trial {trial} of {trials}: kill {moment:?}");
        let env = copy_env(&template);
        let manifests = env.repo.join("snapshots");
        let watch = || count_files(&manifests, &|n| !n.starts_with(".tmp-"));
        let before = watch();
        let (killed, out) = run_killed(&env, &args, moment, &watch);
        assert!(
            killed || out.status.success(),
            "{ctx}: forget failed on its own: {}",
            stderr(&out)
        );
        tally.trials += 1;
        tally.killed += killed as usize;

        // One catalog transaction removes the set: all listed, or none.
        let listed = env.snapshot_ids();
        let still = removing
            .iter()
            .filter(|(id, _)| listed.contains(id))
            .count();
        // Part-way: manifests deleted, the catalog not yet committed.
        tally.midway += (killed && still > 0 && watch() != before) as usize;
        if still != 0 && still != removing.len() {
            tally.broken.push(format!(
                "{ctx}: {still} of {} forgotten snapshots still listed",
                removing.len()
            ));
        }
        for (id, src) in snaps.iter().filter(|(id, _)| listed.contains(id)) {
            if let Err(e) = restores_as(&env, id, &template, src) {
                tally.broken.push(format!("{ctx}: after the kill: {e}"));
            }
        }
        for (id, _) in kept.iter().filter(|(id, _)| !listed.contains(id)) {
            tally
                .broken
                .push(format!("{ctx}: kept snapshot {id} is gone"));
        }

        // The rerun finishes the job.
        env.json(args);
        let mut left = env.snapshot_ids();
        left.sort();
        let mut want: Vec<String> = kept.iter().map(|(id, _)| id.clone()).collect();
        want.sort();
        assert_eq!(left, want, "{ctx}: the rerun leaves exactly the kept set");
        for (id, src) in kept {
            if let Err(e) = restores_as(&env, id, &template, src) {
                tally.broken.push(format!("{ctx}: after the rerun: {e}"));
            }
        }
        let (code, report) = check_report(&env, true);
        tally.saw(&report);
        if code != Some(0) {
            tally
                .check_failures
                .push(format!("{ctx}: check exit {code:?}: {report}"));
        }
    }
    tally.finish("forget", seed, full);
}

// ---- repair ----

/// The snapshots of the repair template, by name and source directory.
/// `alpha` and `beta` share `a.bin`, whose damaged chunk they both lose;
/// `gamma` and `delta` depend on nothing damaged.
const REPAIR_DAMAGED: [&str; 2] = ["alpha", "beta"];
const REPAIR_INTACT: [&str; 2] = ["gamma", "delta"];

/// A repository of four snapshots (one pack each) with one byte of
/// `a.bin`'s second chunk flipped in its pack.
fn repair_template() -> Env {
    let env = Env::new();
    let a = random_bytes(6 * MB, 720);
    write(&env.path("alpha/a.bin"), &a);
    write(&env.path("alpha/x.txt"), b"alpha\n");
    write(&env.path("beta/a.bin"), &a);
    write(&env.path("beta/b.bin"), &random_bytes(2 * MB, 721));
    write(&env.path("gamma/g.bin"), &random_bytes(4 * MB, 722));
    write(&env.path("delta/d.bin"), &random_bytes(3 * MB, 723));
    write(&env.path("delta/log.txt"), &b"step loss\n".repeat(100_000));
    for name in REPAIR_DAMAGED.iter().chain(&REPAIR_INTACT) {
        env.snapshot(&env.path(name), "model", name, &[]);
    }
    let (pack_file, at) = {
        let r = crate::common::open_repo(&env.repo);
        let snap = r.resolve("alpha").unwrap();
        let file = r
            .catalog()
            .files(&snap)
            .unwrap()
            .into_iter()
            .find(|f| f.path == "alpha/a.bin")
            .unwrap();
        let loc = r.catalog().locate(&file.chunks[1]).unwrap().unwrap();
        (
            env.repo.join(cairn::format::pack::key(&loc.pack)),
            loc.entry.offset as usize + loc.entry.stored_len as usize / 2,
        )
    };
    let mut bytes = fs::read(&pack_file).unwrap();
    bytes[at] ^= 0xff;
    fs::write(&pack_file, bytes).unwrap();
    env
}

/// Pack files (temp files included) under `repo`, sorted.
fn pack_names(repo: &Path) -> Vec<String> {
    let mut names: Vec<String> = walk(&repo.join("packs"))
        .into_iter()
        .filter(|(_, m)| m.is_file())
        .map(|(p, _)| p)
        .collect();
    names.sort();
    names
}

/// Names of the snapshots `list` marks damaged, sorted.
fn damaged_names(env: &Env) -> Vec<String> {
    let mut names: Vec<String> = env
        .list()
        .iter()
        .filter(|s| s["damaged"] == true)
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// The damage findings of a check report that name anything but the lost
/// chunks of the snapshots expected to be damaged.
fn unexpected_damage(report: &Value) -> Vec<Value> {
    let lost_only = |f: &Value| {
        f["problem"] == "chunk_not_stored"
            && f["affected"].as_array().is_some_and(|a| {
                a.iter().all(|s| {
                    REPAIR_DAMAGED
                        .iter()
                        .any(|n| s["snapshot"]["kind"] == "model" && s["snapshot"]["name"] == *n)
                })
            })
    };
    report["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["damage"] != false && !lost_only(f))
        .cloned()
        .collect()
}

/// Guards crash consistency of `repair` under SIGKILL at random moments,
/// with one flipped byte in a pack: after each kill every snapshot not
/// depending on the damaged chunk restores bit for bit; rerunning repair
/// finishes (exit 1: the losing snapshots are marked damaged, nothing
/// unresolved); `check --read-data` then finds no damage beyond the lost
/// chunk of those snapshots.
#[test]
fn repair_killed_at_random_moments_keeps_intact_snapshots_and_a_rerun_finishes() {
    let trials = kill_trials(DEFAULT_TRIALS, LONG_TRIALS);
    let seed = seed(0x5EED_4E9A_0001);
    let template = repair_template();
    let full = full_time(&|| copy_env(&template), &["repair"], 1);
    let mut want_damaged: Vec<String> = REPAIR_DAMAGED.iter().map(|s| s.to_string()).collect();
    want_damaged.sort();
    let mut rng = SplitMix64(seed);
    let mut tally = Tally::default();
    for trial in 0..trials {
        let moment = Moment::draw(&mut rng, trial, trials, full, Duration::from_millis(5));
        let ctx =
            format!("CAIRN_CRASH_SEED={seed:#x} repair trial {trial} of {trials}: kill {moment:?}");
        let env = copy_env(&template);
        let packs = env.repo.join("packs");
        let watch = || count_files(&packs, &|n| !n.starts_with(".tmp-"));
        let before = pack_names(&env.repo);
        let (killed, out) = run_killed(&env, &["repair"], moment, &watch);
        assert!(
            killed || out.status.code() == Some(1),
            "{ctx}: repair failed on its own: {}",
            stderr(&out)
        );
        tally.trials += 1;
        tally.killed += killed as usize;
        tally.midway += (killed && pack_names(&env.repo) != before) as usize;
        for name in REPAIR_INTACT {
            if let Err(e) = restores_as(&env, name, &template, &template.path(name)) {
                tally.broken.push(format!("{ctx}: after the kill: {e}"));
            }
        }

        let rerun = env.json_code(["repair"], 1);
        assert_eq!(rerun["unresolved"], serde_json::json!([]), "{ctx}: {rerun}");
        assert_eq!(damaged_names(&env), want_damaged, "{ctx}: {rerun}");
        let (code, report) = check_report(&env, true);
        tally.saw(&report);
        let unexpected = unexpected_damage(&report);
        if !unexpected.is_empty() || !matches!(code, Some(0 | 1)) {
            tally.check_failures.push(format!(
                "{ctx}: check exit {code:?}, unexpected damage {unexpected:?}"
            ));
        }
        for name in REPAIR_INTACT {
            if let Err(e) = restores_as(&env, name, &template, &template.path(name)) {
                tally.broken.push(format!("{ctx}: after the rerun: {e}"));
            }
        }
    }
    tally.finish("repair", seed, full);
}

// ---- restore ----

/// The restore source: 24 files of 1 MB in four directories, one of 8 MB,
/// a text file, an empty file and a symlink.
fn build_restore_source(root: &Path) {
    for i in 0..24u64 {
        write(
            &root.join(format!("d{}/f{i:02}.bin", i % 4)),
            &random_bytes(MB, 740 + i),
        );
    }
    write(&root.join("big.bin"), &random_bytes(8 * MB, 739));
    write(
        &root.join("notes.txt"),
        &b"a line of notes\n".repeat(20_000),
    );
    write(&root.join("empty"), b"");
    std::os::unix::fs::symlink("big.bin", root.join("latest")).unwrap();
}

/// How many restore temp names are under `dir`: temp files, and stages of
/// fresh directories (temp-named directories, counted once each with
/// whatever they hold).
fn temp_names(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.file_name().to_string_lossy().starts_with(".cairn-tmp-") {
                1
            } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                temp_names(&e.path())
            } else {
                0
            }
        })
        .sum()
}

/// What a killed restore left at `target` that it must not have: a file
/// under its final name that is not complete (bytes, size, mode, mtime) or
/// that the snapshot does not hold, a wrong symlink. Returns those, and how
/// many restore temp names (files, or stages of fresh directories) were
/// left.
fn half_written(src: &Path, target: &Path) -> (Vec<String>, usize) {
    let want = tree_nodes(src);
    let root = target.join(src.file_name().unwrap());
    let (mut bad, temps) = (Vec::new(), temp_names(target));
    if fs::symlink_metadata(&root).is_err() {
        return (bad, temps);
    }
    for (rel, meta) in walk(&root) {
        if rel.split('/').any(|c| c.starts_with(".cairn-tmp-")) {
            continue;
        }
        let Some(node) = want.get(&rel) else {
            bad.push(format!("{rel} is not in the snapshot"));
            continue;
        };
        let got = &tree_nodes(&root.join(&rel))["."];
        let ok = match node.kind {
            // A directory's mode and mtime are set last, after its files.
            "dir" => meta.is_dir(),
            "file" => {
                got == node && fs::read(src.join(&rel)).ok() == fs::read(root.join(&rel)).ok()
            }
            _ => got == node,
        };
        if !ok {
            bad.push(format!("{rel}: {got:?}, want {node:?}"));
        }
    }
    (bad, temps)
}

/// Guards `restore` under SIGKILL at random moments: no file is ever under
/// its final name before it is complete (temp files `.cairn-tmp-*`, and
/// stages of fresh directories under such names, may remain), and a rerun
/// with `--overwrite` completes bit for bit and removes the leftovers;
/// `check` stays clean.
#[test]
fn restore_killed_at_random_moments_leaves_no_half_written_file() {
    let trials = kill_trials(DEFAULT_TRIALS, LONG_TRIALS);
    let seed = seed(0x5EED_2E57_0001);
    let env = Env::new();
    let src = env.path("data");
    build_restore_source(&src);
    env.snapshot(&src, "model", "data", &[]);
    let mut n = 0;
    let mut fresh_target = || {
        n += 1;
        env.path(&format!("target-{n}"))
            .to_str()
            .unwrap()
            .to_string()
    };
    let timing: Vec<String> = (0..3).map(|_| fresh_target()).collect();
    let mut full = Duration::ZERO;
    for t in &timing {
        let started = Instant::now();
        let out = spawn(&env, &["restore", "data", t])
            .wait_with_output()
            .unwrap();
        full = full.max(started.elapsed());
        assert!(out.status.success(), "{}", stderr(&out));
        assert_diff_clean(&src, &Path::new(t).join("data"));
    }
    let mut rng = SplitMix64(seed);
    let mut tally = Tally::default();
    let (mut temps_left, mut removed) = (0, 0);
    for trial in 0..trials {
        let moment = Moment::draw(&mut rng, trial, trials, full, Duration::from_millis(50));
        let ctx = format!(
            "CAIRN_CRASH_SEED={seed:#x} restore trial {trial} of {trials}: kill {moment:?}"
        );
        let target = fresh_target();
        // Every third trial restores into an existing (empty) `data`: its
        // top-level files are then written under temp names and renamed,
        // its subdirectories still built as stages.
        let into_existing = trial % 3 == 2;
        if into_existing {
            fs::create_dir_all(Path::new(&target).join("data")).unwrap();
        }
        let ctx = format!("{ctx} (into an existing data/: {into_existing})");
        let watch = || count_files(Path::new(&target), &|n| !n.starts_with(".cairn-tmp-"));
        let (killed, out) = run_killed(&env, &["restore", "data", &target], moment, &watch);
        assert!(
            killed || out.status.success(),
            "{ctx}: restore failed on its own: {}",
            stderr(&out)
        );
        tally.trials += 1;
        tally.killed += killed as usize;
        tally.midway += (killed && watch() > 0) as usize;
        let (bad, temps) = half_written(&src, Path::new(&target));
        temps_left += temps;
        for b in bad {
            tally.broken.push(format!("{ctx}: after the kill: {b}"));
        }

        let rerun = env.json(["restore", "data", &target, "--overwrite"]);
        removed += rerun["leftovers_removed"].as_u64().unwrap_or(0) as usize;
        if let Err(e) = same_tree(&src, &Path::new(&target).join("data")) {
            tally.broken.push(format!("{ctx}: after the rerun: {e}"));
        }
        let left = temp_names(Path::new(&target));
        if left > 0 {
            tally
                .broken
                .push(format!("{ctx}: the rerun left {left} temp names"));
        }
        // Restore writes nothing to the repository but its lock.
        let (code, report) = check_report(&env, false);
        tally.saw(&report);
        if code != Some(0) {
            tally
                .check_failures
                .push(format!("{ctx}: check exit {code:?}: {report}"));
        }
        let _ = fs::remove_dir_all(&target);
    }
    eprintln!("restore kills left {temps_left} temp files; the reruns removed {removed}");
    assert_eq!(
        temps_left, removed,
        "every leftover temp file is removed by the rerun"
    );
    tally.finish("restore", seed, full);
}
