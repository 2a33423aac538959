//! The config is no longer a single point of failure (reliability issue,
//! item 10): `config.backup` stands in for a damaged or missing `config`,
//! `repair --config` puts things right, and a lost config is never
//! answered with "run `cairn init`".

use std::fs;

use crate::common::*;

fn env_with_snapshot() -> Env {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a.txt"), b"alpha\n");
    env.snapshot(&src, "config", "app", &[]);
    env
}

fn flip_first_byte(path: &std::path::Path) {
    let mut bytes = fs::read(path).unwrap();
    bytes[0] ^= 0x20;
    fs::write(path, bytes).unwrap();
}

/// Guards: init writes both copies, byte for byte.
#[test]
fn init_writes_an_identical_backup() {
    let env = Env::new();
    assert_eq!(
        fs::read(env.repo.join("config")).unwrap(),
        fs::read(env.repo.join("config.backup")).unwrap()
    );
}

/// Guards: the fallback to config.backup, its warning, and `repair --config`.
#[test]
fn a_corrupt_config_falls_back_to_the_backup_and_repair_restores_it() {
    let env = env_with_snapshot();
    let good = fs::read(env.repo.join("config")).unwrap();
    flip_first_byte(&env.repo.join("config"));
    let out = run_ok(env.cmd(["list"]));
    assert!(stdout(&out).trim_end().ends_with("\n1 snapshot"));
    let warning = "config is damaged (";
    assert!(stderr(&out).contains(warning), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("using config.backup — run `cairn repair --config` to restore it"),
        "{}",
        stderr(&out)
    );
    let out = run_ok(env.cmd(["restore", "app"]).arg(env.path("out")));
    assert!(stderr(&out).contains(warning));
    assert_eq!(fs::read(env.path("out/src/a.txt")).unwrap(), b"alpha\n");

    let out = run_ok(env.cmd(["repair", "--config"]));
    assert!(stdout(&out).contains("config restored from config.backup"));
    assert_eq!(fs::read(env.repo.join("config")).unwrap(), good);
    let out = run_ok(env.cmd(["list"]));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

/// Guards: a damaged backup is rewritten from config.
#[test]
fn repair_config_rewrites_a_damaged_backup() {
    let env = Env::new();
    flip_first_byte(&env.repo.join("config.backup"));
    let out = run_ok(env.cmd(["list"]));
    assert!(stderr(&out).contains("config.backup is damaged"));
    let out = run_ok(env.cmd(["repair", "--config"]));
    assert!(stdout(&out).contains("config.backup rewritten from config"));
    assert_eq!(
        fs::read(env.repo.join("config")).unwrap(),
        fs::read(env.repo.join("config.backup")).unwrap()
    );
}

/// Guards: a deleted config is not "no repository here, run init".
#[test]
fn a_missing_config_is_not_answered_with_run_init() {
    crate::skip_if_encrypted!(
        "`repair --config --chunk-avg` recreates an unencrypted config; an encrypted \
         repository's key files are bound to its lost config id (docs/FORMAT.md)"
    );
    let env = env_with_snapshot();
    fs::remove_file(env.repo.join("config")).unwrap();
    let out = run_ok(env.cmd(["list"]));
    assert!(stderr(&out).contains("config is missing; using config.backup"));
    fs::remove_file(env.repo.join("config.backup")).unwrap();
    let err = run_code(env.cmd(["list"]), 2);
    assert!(!err.contains("cairn init"), "{err}");
    assert!(
        err.contains("config and config.backup are both missing"),
        "{err}"
    );
    assert!(err.contains("repair --config"), "{err}");

    let out = run_ok(env.cmd(["repair", "--config", "--chunk-avg", "64K"]));
    assert!(stdout(&out).contains("recreated"));
    assert!(stderr(&out).contains("deduplicates against old data"));
    let out = run_ok(env.cmd(["restore", "app"]).arg(env.path("out")));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

/// Guards: with both copies bad, the error names what is wrong with each.
#[test]
fn both_copies_corrupt_is_a_clear_error_naming_both() {
    let env = Env::new();
    fs::write(env.repo.join("config"), b"{ not json").unwrap();
    fs::write(env.repo.join("config.backup"), b"[]").unwrap();
    let err = run_code(env.cmd(["list"]), 2);
    assert!(err.contains("config: damaged ("), "{err}");
    assert!(err.contains("config.backup: damaged ("), "{err}");
    assert!(!err.contains("cairn init"), "{err}");
    let err = run_code(env.cmd(["repair", "--config"]), 2);
    assert!(err.contains("config.backup: damaged"), "{err}");
}

/// Guards: a repository made before backups existed gets one from the
/// next command that writes, and a read-only command writes nothing.
#[test]
fn an_old_repository_gets_its_backup_from_the_next_writing_command() {
    let env = Env::new();
    fs::remove_file(env.repo.join("config.backup")).unwrap();
    run_ok(env.cmd(["list"]));
    assert!(!env.repo.join("config.backup").exists(), "list only reads");
    run_ok(env.cmd(["gc"]));
    assert_eq!(
        fs::read(env.repo.join("config")).unwrap(),
        fs::read(env.repo.join("config.backup")).unwrap()
    );
}
