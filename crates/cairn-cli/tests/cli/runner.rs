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
    // Structural problems (an unknown key, a wrong type) no longer stop the
    // check at the first: three different ones, each with line and key.
    write(
        &file,
        b"[repository.local]\npath = \"r\"\nbogus = 1\n\n[target.a]\nkind = \"model\"\npaths = 5\nschedule = \"every 6\"\ngc = \"yes\"\n",
    );
    let mut cmd = cairn_in(env.dir.path());
    cmd.args(["config", "check", "--config"]).arg(&file);
    let err = run_code(cmd, 1);
    for want in [
        format!("{f}:3: repository.local.bogus: unknown field `bogus`"),
        format!("{f}:7: target.a.paths: invalid type: integer `5`"),
        format!("{f}:8: target.a.schedule: \"6\" is not a duration"),
        format!("{f}:9: target.a.gc: invalid type: string \"yes\""),
    ] {
        assert!(err.contains(&want), "missing {want:?} in\n{err}");
    }
    assert_eq!(
        err.lines().filter(|l| l.starts_with(&f)).count(),
        4,
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

/// `cairn health`: NEVER before the first run, OK after it, FAILING for a
/// target whose run failed, LATE once max_age has passed; exit 0 only
/// when every target is OK. Without the state, the repository's newest
/// snapshot still counts as a success.
#[test]
fn health_says_never_ok_failing_and_late() {
    let env = Env::new();
    write(&env.path("src/a.txt"), b"alpha");
    let text = format!(
        "[repository.main]\npath = \"{}\"\n\n[target.quick]\nkind = \"config\"\npaths = [\"src\"]\nmax_age = \"2s\"\n\n\
         [target.broken]\nkind = \"config\"\npaths = [\"nope\"]\n",
        env.repo.display()
    );
    let file = env.path("cairn.toml");
    write(&file, text.as_bytes());
    let health = |code: i32| -> Value {
        let mut cmd = runner(&env, &["health", "--json"], &file);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
        let all: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut by = serde_json::Map::new();
        for h in all.as_array().unwrap() {
            by.insert(h["target"].as_str().unwrap().into(), h["health"].clone());
        }
        Value::Object(by)
    };
    assert_eq!(
        health(1),
        serde_json::json!({"quick": "never", "broken": "never"})
    );
    run_code(runner(&env, &["run"], &file), 1);
    assert_eq!(
        health(1),
        serde_json::json!({"quick": "ok", "broken": "failing"})
    );
    let text = stdout(&runner(&env, &["health"], &file).output().unwrap());
    assert!(
        text.lines().any(|l| l.starts_with("FAILING  broken")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("OK       quick")),
        "{text}"
    );
    // Only `quick`: exit 0 while it is fresh.
    let only = env.path("only.toml");
    write(&only, text_without_broken(&env).as_bytes());
    run_ok(runner(&env, &["health"], &only));
    std::thread::sleep(std::time::Duration::from_millis(3100));
    let mut cmd = runner(&env, &["health"], &only);
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with("LATE     quick"),
        "{}",
        stdout(&out)
    );
    // The repositories speak when the state is gone.
    fs::remove_dir_all(env.path("state")).unwrap();
    let h = health(1);
    assert_eq!(h["quick"], "late");
    assert_eq!(h["broken"], "never");
}

fn text_without_broken(env: &Env) -> String {
    format!(
        "[repository.main]\npath = \"{}\"\n\n[target.quick]\nkind = \"config\"\npaths = [\"src\"]\nmax_age = \"2s\"\n",
        env.repo.display()
    )
}

/// `cairn metrics --textfile` after a run with one good and one failing
/// target: parsed by the real Prometheus text parser (prometheus_client).
#[test]
fn metrics_textfile_parses_with_prometheus_client() {
    let Some(py) = crate::notify::python_with("prometheus_client") else {
        return;
    };
    let env = Env::new();
    write(&env.path("src/a.txt"), b"alpha");
    let text = format!(
        "[repository.main]\npath = \"{}\"\n\n[target.good]\nkind = \"config\"\npaths = [\"src\"]\ncheck = {{ read_data = true }}\n\n\
         [target.bad]\nkind = \"config\"\npaths = [\"nope\"]\n",
        env.repo.display()
    );
    let file = env.path("cairn.toml");
    write(&file, text.as_bytes());
    run_code(runner(&env, &["run"], &file), 1);
    let prom = env.path("textfile/cairn.prom");
    fs::create_dir_all(prom.parent().unwrap()).unwrap();
    run_ok(
        runner(&env, &["metrics"], &file)
            .arg("--textfile")
            .arg(&prom),
    );
    let names: Vec<_> = fs::read_dir(prom.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["cairn.prom"], "no temp file left");
    let script = r#"
import sys, json
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        key = s.name + "{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}"
        out[key] = s.value
print(json.dumps(out))
"#;
    let out = std::process::Command::new(py)
        .args(["-c", script])
        .arg(&prom)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "parser refused:\n{}\n{}",
        stderr_of(&out),
        fs::read_to_string(&prom).unwrap()
    );
    let samples: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        samples["cairn_last_run_success{target=good}"], 1.0,
        "{samples}"
    );
    assert_eq!(
        samples["cairn_last_run_success{target=bad}"], 0.0,
        "{samples}"
    );
    assert_eq!(
        samples["cairn_consecutive_failures{target=bad}"], 1.0,
        "{samples}"
    );
    assert_eq!(
        samples["cairn_check_success{target=good}"], 1.0,
        "{samples}"
    );
    assert_eq!(
        samples["cairn_files{repository=main,target=good}"], 1.0,
        "{samples}"
    );
    assert_eq!(
        samples["cairn_snapshots{repository=main,target=good}"], 1.0,
        "{samples}"
    );
    assert!(
        samples["cairn_repository_stored_bytes{repository=main}"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{samples}"
    );
    assert!(
        samples["cairn_last_success_timestamp_seconds{target=good}"]
            .as_f64()
            .unwrap()
            > 1.7e9
    );
    assert!(samples
        .get("cairn_last_success_timestamp_seconds{target=bad}")
        .is_none());
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Without --config and --state-dir: $CAIRN_CONFIG wins over
/// $XDG_CONFIG_HOME/cairn/cairn.toml, and the state goes to
/// $XDG_STATE_HOME/cairn (else ~/.local/state/cairn).
#[test]
fn config_and_state_are_found_in_their_default_places() {
    let env = Env::new();
    write(&env.path("src/a.txt"), b"alpha");
    let text = format!(
        "[repository.main]\npath = \"{}\"\n[target.t]\nkind = \"config\"\npaths = [\"{}\"]\n",
        env.repo.display(),
        env.path("src").display()
    );
    write(&env.path("xdg-config/cairn/cairn.toml"), text.as_bytes());
    let mut cmd = cairn_in(env.dir.path());
    cmd.arg("run")
        .env_remove("CAIRN_CONFIG")
        .env_remove("CAIRN_STATE_DIR")
        .env("XDG_CONFIG_HOME", env.path("xdg-config"))
        .env("XDG_STATE_HOME", env.path("xdg-state"));
    run_ok(cmd);
    assert!(env.path("xdg-state/cairn/runner-state.json").is_file());
    let mut cmd = cairn_in(env.dir.path());
    cmd.arg("run")
        .env("CAIRN_CONFIG", env.path("elsewhere.toml"))
        .env_remove("CAIRN_STATE_DIR")
        .env_remove("XDG_STATE_HOME")
        .env("XDG_CONFIG_HOME", env.path("xdg-config"));
    let err = run_code(cmd, 2);
    assert!(
        err.contains("elsewhere.toml") && err.contains("$CAIRN_CONFIG"),
        "{err}"
    );
    let mut cmd = cairn_in(env.dir.path());
    cmd.arg("run")
        .env_remove("CAIRN_CONFIG")
        .env_remove("CAIRN_STATE_DIR")
        .env_remove("XDG_STATE_HOME")
        .env("XDG_CONFIG_HOME", env.path("xdg-config"));
    run_ok(cmd);
    assert!(env
        .path("home/.local/state/cairn/runner-state.json")
        .is_file());
}

/// A config repository's `password_file` opens an encrypted repository
/// without any password in the environment; a wrong one fails that target
/// naming the repository.
#[test]
fn a_repositorys_password_file_opens_it() {
    let env = Env::uninit();
    let repo = env.path("enc");
    run_ok(
        cairn_in(env.dir.path())
            .args(["init", "--encryption", "--repo"])
            .arg(&repo)
            .env("CAIRN_PASSWORD", "right horse")
            .env("CAIRN_KDF_MEMORY_KIB", "64"),
    );
    write(&env.path("pw"), b"right horse\n");
    write(&env.path("wrong"), b"battery staple\n");
    write(&env.path("data/state.json"), b"{\"book\": 1}\n");
    let config = |pw: &str| {
        format!(
            "[repository.enc]\npath = {:?}\npassword_file = {:?}\n\n[target.book]\nkind = \"portfolio\"\npaths = [{:?}]\nrepositories = [\"enc\"]\n",
            repo.display().to_string(),
            env.path(pw).display().to_string(),
            env.path("data/state.json").display().to_string()
        )
    };
    let file = env.path("cairn.toml");
    write(&file, config("pw").as_bytes());
    let mut cmd = runner(&env, &["run"], &file);
    cmd.env_remove("CAIRN_PASSWORD")
        .env_remove("CAIRN_PASSWORD_FILE");
    run_ok(cmd);
    let listed = stdout(&run_ok(
        cairn_in(env.dir.path())
            .args(["list", "--repo"])
            .arg(&repo)
            .env("CAIRN_PASSWORD", "right horse"),
    ));
    assert!(
        listed.contains("state") || listed.contains("portfolio"),
        "{listed}"
    );

    write(&file, config("wrong").as_bytes());
    let mut cmd = runner(&env, &["run"], &file);
    cmd.env_remove("CAIRN_PASSWORD")
        .env_remove("CAIRN_PASSWORD_FILE");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.to_lowercase().contains("password"), "{text}");
}

/// The environment over the file (README, "Unattended backups"):
/// `CAIRN_REPO` moves the only repository; with two it is refused, naming
/// `CAIRN_REPO_NAME`, which moves that one; `CAIRN_PASSWORD_FILE` beats the
/// file's `password_file` for the only repository, and
/// `CAIRN_PASSWORD_FILE_NAME` beats it for one of several.
#[test]
fn environment_variables_override_the_file() {
    let env = Env::uninit();
    let repo = env.path("real");
    run_ok(
        cairn_in(env.dir.path())
            .args(["init", "--encryption", "--repo"])
            .arg(&repo)
            .env("CAIRN_PASSWORD", "right horse")
            .env("CAIRN_KDF_MEMORY_KIB", "64"),
    );
    write(&env.path("right"), b"right horse\n");
    write(&env.path("wrong"), b"battery staple\n");
    write(&env.path("data/state.json"), b"{\"book\": 1}\n");
    let file = env.path("cairn.toml");
    let config = |second: bool| {
        let mut text = format!(
            "[repository.off-site]\npath = \"elsewhere\"\npassword_file = {:?}\n\n",
            env.path("wrong").display().to_string()
        );
        if second {
            text.push_str("[repository.other]\npath = \"other\"\n\n");
        }
        text.push_str(&format!(
            "[target.book]\nkind = \"portfolio\"\npaths = [{:?}]\nrepositories = [\"off-site\"]\n",
            env.path("data/state.json").display().to_string()
        ));
        write(&file, text.as_bytes());
    };
    let run = |vars: &[(&str, &std::path::Path)]| {
        let mut cmd = runner(&env, &["run"], &file);
        cmd.env_remove("CAIRN_PASSWORD");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let snapshots = || {
        let out = run_ok(
            cairn_in(env.dir.path())
                .args(["list", "--json", "--repo"])
                .arg(&repo)
                .env("CAIRN_PASSWORD", "right horse"),
        );
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .as_array()
            .map_or(0, |a| a.len())
    };

    config(false);
    let out = run(&[
        ("CAIRN_REPO", &repo),
        ("CAIRN_PASSWORD_FILE", &env.path("right")),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(snapshots(), 1);
    // Without the password variable the file's (wrong) password_file counts.
    let out = run(&[("CAIRN_REPO", &repo)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("wrong password"), "{}", stdout(&out));

    config(true);
    let out = run(&[
        ("CAIRN_REPO", &repo),
        ("CAIRN_PASSWORD_FILE", &env.path("right")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("CAIRN_REPO_OFF_SITE"),
        "{}",
        stdout(&out)
    );
    // With several, the global password does not beat the file's password_file …
    let right = env.path("right");
    let mut cmd_vars = vec![
        ("CAIRN_REPO_OFF_SITE", repo.as_path()),
        ("CAIRN_PASSWORD_FILE", right.as_path()),
    ];
    let out = run(&cmd_vars);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("wrong password"), "{}", stdout(&out));
    // … the repository's own variable does.
    cmd_vars.push(("CAIRN_PASSWORD_FILE_OFF_SITE", right.as_path()));
    let out = run(&cmd_vars);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(snapshots(), 2);
}
