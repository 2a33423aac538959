//! Kill suite for the key commands of an encrypted repository (encryption
//! issue): `key passwd`, `key add` and `key remove` SIGKILLed at random
//! moments (half of them just after the first key file appears or goes).
//! After every kill some password still opens the repository: the old one
//! for `add` and `remove`, the old or the new one for `passwd`; every
//! snapshot restores bit for bit under it and `check --read-data` is clean;
//! a rerun of the command finishes the job. Trials and seeds as in
//! `kill.rs`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::kill::{copy_env, count_files, run_killed_with, same_tree, seed, Moment, Tally};

const OLD: &str = "the old password";
const NEW: &str = "the new password";
const SPARE: &str = "a spare password";
/// Argon2id memory of the test's key files: small, but enough that a key
/// derivation is a window a kill can hit.
const KDF_KIB: &str = "4096";

/// `cairn --repo REPO ARGS...` under `password` (and `new` as the new one).
fn cairn(env: &Env, password: &str, new: Option<&str>, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = cairn_in(env.dir.path());
    cmd.env("CAIRN_PASSWORD", password)
        .env("CAIRN_KDF_MEMORY_KIB", KDF_KIB)
        .arg("--repo")
        .arg(&env.repo)
        .args(args);
    if let Some(new) = new {
        cmd.env("CAIRN_NEW_PASSWORD", new);
    }
    cmd
}

fn opens(env: &Env, password: &str) -> bool {
    cairn(env, password, None, &["list"])
        .output()
        .unwrap()
        .status
        .success()
}

/// An encrypted repository with one snapshot, keys for [`OLD`] and
/// [`SPARE`]; returns it with the snapshot's source and the spare key's id.
fn template() -> (Env, PathBuf, String) {
    let env = Env::uninit();
    run_ok(cairn(&env, OLD, None, &["init", "--encryption"]));
    let src = env.path("src/m");
    write(&src.join("weights.bin"), &random_bytes(300_000, 41));
    write(&src.join("cfg.json"), b"{\"lr\": 1e-4}\n");
    run_ok(
        cairn(
            &env,
            OLD,
            None,
            &["snapshot", "--kind", "model", "--name", "m"],
        )
        .arg(env.rel(&src)),
    );
    let out = stdout(&run_ok(cairn(&env, OLD, Some(SPARE), &["key", "add"])));
    let spare = out
        .split_whitespace()
        .find(|w| w.len() == 32 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no key id in {out:?}"))
        .to_string();
    (env, src, spare)
}

/// What must hold after a kill (and again after the rerun) under the
/// password that opens: the snapshot restores, check is clean.
fn intact(env: &Env, password: &str, src: &Path) -> Result<(), String> {
    let target = env.path(&format!("restore-{}", now_ns()));
    let out = cairn(env, password, None, &["restore", "m"])
        .arg(&target)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(format!("restore failed: {}", stderr(&out)));
    }
    same_tree(src, &target.join("src/m"))?;
    let check = cairn(env, password, None, &["check", "--read-data"])
        .output()
        .unwrap();
    if !check.status.success() {
        return Err(format!("check: {}", stdout(&check)));
    }
    Ok(())
}

#[test]
fn key_commands_killed_at_random_moments_keep_a_password_that_opens() {
    let trials = kill_trials(6, 60);
    let seed = seed(0x6b65_7973);
    let mut rng = SplitMix64(seed);
    let (template, src, spare) = template();
    let keys = |env: &Env| count_files(&env.repo.join("keys"), &|_| true);
    let ops: [(&str, Vec<&str>, Option<&'static str>); 3] = [
        ("passwd", vec!["key", "passwd"], Some(NEW)),
        ("add", vec!["key", "add"], Some(NEW)),
        ("remove", vec!["key", "remove", spare.as_str()], None),
    ];
    let vars = |new: Option<&'static str>| {
        let mut v = vec![("CAIRN_PASSWORD", OLD), ("CAIRN_KDF_MEMORY_KIB", KDF_KIB)];
        v.extend(new.map(|n| ("CAIRN_NEW_PASSWORD", n)));
        v
    };
    // The slowest uninterrupted run of any of them, so kill times span one.
    let full = ops
        .iter()
        .map(|(_, args, new)| {
            let env = copy_env(&template);
            let started = Instant::now();
            run_ok(cairn(&env, OLD, *new, args));
            started.elapsed()
        })
        .max()
        .unwrap();
    let mut tally = Tally::default();
    for trial in 0..trials {
        let (op, args, new) = &ops[trial % ops.len()];
        let env = copy_env(&template);
        let moment = Moment::draw(
            &mut rng,
            trial / ops.len(),
            trials.div_ceil(ops.len()),
            full,
            Duration::from_millis(20),
        );
        let before = keys(&env);
        let (killed, _) = run_killed_with(&env, args, &vars(*new), moment, &|| keys(&env));
        tally.trials += 1;
        tally.killed += killed as usize;
        tally.midway += (killed && keys(&env) != before) as usize;
        let what = format!("seed {seed:#x} trial {trial} `key {op}` killed at {moment:?}");
        // Which password opens now, and the rerun that finishes the job.
        let after_kill = match *op {
            "passwd" if !opens(&env, OLD) => NEW,
            _ => OLD,
        };
        if !opens(&env, after_kill) {
            tally.broken.push(format!(
                "{what}: neither the old nor the new password opens"
            ));
            continue;
        }
        if let Err(e) = intact(&env, after_kill, &src) {
            tally.check_failures.push(format!("{what}: {e}"));
        }
        let rerun = match (*op, after_kill) {
            ("passwd", NEW) => None, // it had finished
            ("remove", _) if !opens(&env, SPARE) => None,
            _ => Some(cairn(&env, OLD, *new, args).output().unwrap()),
        };
        if let Some(out) = rerun.filter(|o| !o.status.success()) {
            tally
                .broken
                .push(format!("{what}: the rerun failed: {}", stderr(&out)));
            continue;
        }
        let finished = match *op {
            "passwd" => opens(&env, NEW) && !opens(&env, OLD),
            "add" => opens(&env, NEW) && opens(&env, OLD),
            _ => opens(&env, OLD) && !opens(&env, SPARE),
        };
        if !finished {
            tally
                .broken
                .push(format!("{what}: the rerun did not finish the job"));
        }
    }
    tally.finish("key passwd|add|remove", seed, full);
}
