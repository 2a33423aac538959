//! Unattended backups through the real binary: `cairn config check|example`
//! and `cairn run` on real repositories, with real hook processes.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::common::*;

/// `cairn ARGS --config FILE --state-dir DIR` in `env`'s sandbox.
fn runner(env: &Env, args: &[&str], config: &Path) -> assert_cmd::Command {
    let mut cmd = cairn_in(env.dir.path());
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .arg("--state-dir")
        .arg(env.path("state"));
    cmd
}

fn state(env: &Env) -> Value {
    serde_json::from_slice(&fs::read(env.path("state/runner-state.json")).unwrap()).unwrap()
}

/// The example validates once the paths it names exist, and `cairn run`
/// backs up both of its targets.
#[test]
fn the_example_config_checks_and_runs() {
    let env = Env::uninit();
    let example = stdout(&run_ok(
        cairn_in(env.dir.path()).args(["config", "example"]),
    ));
    let file = env.path("cairn.toml");
    write(&file, example.as_bytes());
    let mut cmd = cairn_in(env.dir.path());
    cmd.args(["config", "check", "--config"]).arg(&file);
    let err = run_code(cmd, 1);
    assert!(
        err.contains(&format!(
            "{}:17: target.trading_model.paths: ",
            file.display()
        )),
        "{err}"
    );
    write(
        &env.path("models/trading_model.joblib"),
        &random_bytes(50_000, 1),
    );
    write(&env.path("data/portfolio_state.json"), b"{}");
    write(&env.path("data/trades/t1.csv"), b"a,b\n");
    write(&env.path("data/trades/x.tmp"), b"scratch");
    let mut cmd = cairn_in(env.dir.path());
    cmd.args(["config", "check", "--config"]).arg(&file);
    let out = stdout(&run_ok(cmd));
    assert!(out.contains("ok (1 repository, 2 targets)"), "{out}");
    run_ok(
        cairn_in(env.dir.path())
            .args(["init", "--repo"])
            .arg(env.path("backups/cairn")),
    );
    let out = run_ok(runner(&env, &["run", "--json"], &file));
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    let reports = reports.as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r["status"] == "ok"), "{reports:?}");
    let portfolio = reports.iter().find(|r| r["target"] == "portfolio").unwrap();
    assert_eq!(portfolio["repositories"][0]["excluded"], 1, "{portfolio}");
    let model = reports
        .iter()
        .find(|r| r["target"] == "trading_model")
        .unwrap();
    assert_eq!(model["repositories"][0]["check_clean"], true, "{model}");
}

#[test]
fn config_check_names_file_line_and_key_of_every_problem() {
    let env = Env::uninit();
    let file = env.path("bad.toml");
    write(
        &file,
        b"[repository.local]\npath = \"r\"\n\n[target.a]\nkind = \"model\"\npaths = [\"a\"]\nschedule = \"fortnightly\"\nmax_age = \"3 days\"\nrepositories = [\"nowhere\"]\n",
    );
    let mut cmd = cairn_in(env.dir.path());
    cmd.args(["config", "check", "--config"]).arg(&file);
    let err = run_code(cmd, 1);
    let f = file.display().to_string();
    for want in [
        format!("{f}:7: target.a.schedule: \"fortnightly\" is not a schedule"),
        format!("{f}:8: target.a.max_age: \"3 days\" is not a duration"),
        format!("{f}:9: target.a.repositories: unknown repository \"nowhere\""),
    ] {
        assert!(err.contains(&want), "missing {want:?} in\n{err}");
    }
    write(&file, b"[repository.local]\npath = \"r\"\nbogus = 1\n");
    let mut cmd = cairn_in(env.dir.path());
    cmd.args(["config", "check", "--config"]).arg(&file);
    let err = run_code(cmd, 1);
    assert!(
        err.contains(&format!(
            "{f}:3: repository.local.bogus: unknown field `bogus`"
        )),
        "{err}"
    );
    // Found through $CAIRN_CONFIG too, and a missing file is an error with a hint.
    let mut cmd = cairn_in(env.dir.path());
    cmd.args(["config", "check"])
        .env("CAIRN_CONFIG", env.path("nope.toml"));
    let err = run_code(cmd, 2);
    assert!(
        err.contains("nope.toml") && err.contains("cairn config example"),
        "{err}"
    );
}

/// A target whose path is gone fails alone: its own on_failure hook runs
/// with the error in its environment, the other target succeeds and runs
/// its after hook, the exit code is 1, and the state counts the failure.
/// Retention forgets by the target's rules; `--due` runs only what is due.
#[test]
fn run_reports_each_target_fires_its_hooks_and_applies_retention() {
    let env = Env::new();
    write(&env.path("good/a.txt"), b"alpha");
    let log = env.path("hooks.log");
    let text = format!(
        r#"
[repository.main]
path = "{repo}"

[target.good]
kind = "config"
paths = ["good"]
schedule = "every 1h"
retention = {{ keep_last = 2 }}
gc = true
hooks = {{ after = "echo after $CAIRN_TARGET $CAIRN_STATUS $CAIRN_REPOSITORY $CAIRN_SNAPSHOT >> {log}" }}

[target.gone]
kind = "config"
paths = ["missing-dir"]
hooks = {{ on_failure = "echo failure $CAIRN_TARGET $CAIRN_STATUS \"$CAIRN_ERROR\" >> {log}" }}

[hooks]
on_failure = "echo global failure $CAIRN_TARGET >> {log}"
"#,
        repo = env.repo.display(),
        log = log.display()
    );
    let file = env.path("cairn.toml");
    write(&file, text.as_bytes());
    let mut cmd = runner(&env, &["run"], &file);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines = stdout(&out);
    assert!(
        lines.lines().any(|l| l.starts_with("good: ok in ")),
        "{lines}"
    );
    assert!(
        lines
            .lines()
            .any(|l| l.starts_with("gone: FAILED in ") && l.contains("missing-dir")),
        "{lines}"
    );
    let hooks = fs::read_to_string(&log).unwrap();
    let hook_lines: Vec<&str> = hooks.lines().collect();
    assert_eq!(hook_lines.len(), 2, "{hooks}");
    assert!(hooks.contains("after good ok main "), "{hooks}");
    assert!(
        hooks.contains("failure gone failed main: ") && hooks.contains("missing-dir"),
        "{hooks}"
    );
    assert!(
        !hooks.contains("global"),
        "a target's own hook replaces the global one: {hooks}"
    );
    let s = state(&env);
    assert_eq!(s["targets"]["gone"]["consecutive_failures"], 1);
    assert_eq!(s["targets"]["gone"]["last_status"], "failed");
    assert_eq!(s["targets"]["good"]["last_status"], "ok");
    assert!(s["targets"]["good"]["next_run"].is_string());

    // Named targets only; keep_last = 2 keeps two snapshots of three.
    for i in 0..2 {
        write(&env.path("good/a.txt"), format!("alpha {i}").as_bytes());
        run_ok(runner(&env, &["run", "good"], &file));
    }
    assert_eq!(env.list().len(), 2);
    // Nothing is due an hour ahead of the last run; `gone` has no schedule.
    let out = stdout(&run_ok(runner(&env, &["run", "--due"], &file)));
    assert!(out.contains("nothing to run (no target is due)"), "{out}");
    let mut cmd = runner(&env, &["run", "nosuch"], &file);
    let err = run_code(&mut cmd, 2);
    assert!(
        err.contains("no target named \"nosuch\"") && err.contains("gone, good"),
        "{err}"
    );
}
