//! Sources are stored under their path as given (as borg does): relative
//! stays relative, absolute keeps its whole path without the leading `/`,
//! and a restore recreates that layout under its target. Paths given to
//! `restore --path`, `ls`, `cat` and `dump` may be written as the source
//! was (`./x`, `/abs/x`). Snapshots made when each source was stored under
//! its base name stay readable, by either form.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde_json::Value;

use crate::common::{run_code, run_ok, write, Env};

fn entry_paths(ls: &Value) -> Vec<String> {
    ls["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect()
}

/// `cairn --repo REPO ARGS...` run in `cwd`.
fn in_dir(env: &Env, cwd: &Path, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = env.cairn();
    cmd.current_dir(cwd).args(args);
    cmd
}

#[test]
fn sources_from_different_folders_keep_their_paths() {
    let env = Env::new();
    write(&env.path("models/a.h5"), b"weights");
    write(&env.path("config/config.yaml"), b"one: 1");
    write(&env.path("data/config.yaml"), b"two: 2");
    // Two files of the same name from different folders: both kept.
    let args = [
        "snapshot",
        "models/a.h5",
        "./config/config.yaml",
        "data/config.yaml",
        "--kind",
        "config",
        "--name",
        "svc",
    ];
    run_ok(env.cmd(args));
    let ls = env.json(["ls", "svc"]);
    assert_eq!(
        entry_paths(&ls),
        [
            "config",
            "config/config.yaml",
            "data",
            "data/config.yaml",
            "models",
            "models/a.h5"
        ]
    );
    let out = env.restore("svc");
    assert_eq!(fs::read(out.join("models/a.h5")).unwrap(), b"weights");
    assert_eq!(fs::read(out.join("config/config.yaml")).unwrap(), b"one: 1");
    assert_eq!(fs::read(out.join("data/config.yaml")).unwrap(), b"two: 2");
    // The directories above a source are stored with their mode...
    fs::set_permissions(env.path("data"), fs::Permissions::from_mode(0o750)).unwrap();
    run_ok(env.cmd(args));
    let out = env.restore("svc");
    assert_eq!(
        fs::metadata(out.join("data")).unwrap().mode() & 0o777,
        0o750
    );
    // ... but not their mtime: a file beside a source is no change.
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(&env.path("data/not-a-source.txt"), b"x");
    let again = env.json([&args[..], &["--skip-if-unchanged"]].concat());
    assert_eq!(again["unchanged"], true, "{again}");
    // The manifest records each source, made absolute (`.` components
    // dropped), in the order given.
    let show = env.json(["show", "svc"]);
    let sources: Vec<&str> = show["snapshot"]["sources"]
        .as_array()
        .or_else(|| show["sources"].as_array())
        .expect("sources in show --json")
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let cwd = env.dir.path().display().to_string();
    assert_eq!(
        sources,
        [
            format!("{cwd}/models/a.h5"),
            format!("{cwd}/config/config.yaml"),
            format!("{cwd}/data/config.yaml")
        ]
    );
}

#[test]
fn an_absolute_source_is_stored_whole_and_found_as_given() {
    let env = Env::new();
    let src = env.path("abs/model");
    write(&src.join("cfg/config.json"), b"{}");
    write(&src.join("w.bin"), b"w");
    let given = src.to_str().unwrap();
    run_ok(env.cmd(["snapshot", given, "--kind", "model", "--name", "m"]));
    let stored = given.trim_start_matches('/');
    let out = env.restore("m");
    assert_eq!(fs::read(out.join(stored).join("w.bin")).unwrap(), b"w");
    // `restore --path`, `cat`, `ls` and `dump` take the path as given.
    let abs_cfg = format!("{given}/cfg/config.json");
    let target = env.path("only");
    run_ok(env.cmd(["restore", "m", target.to_str().unwrap(), "--path", &abs_cfg]));
    assert!(target.join(stored).join("cfg/config.json").is_file());
    assert!(!target.join(stored).join("w.bin").exists());
    let cat = run_ok(env.cmd(["cat", "m", &abs_cfg]));
    assert_eq!(cat.stdout, b"{}");
    let ls = env.json(["ls", "m", &format!("{given}/cfg")]);
    assert_eq!(
        entry_paths(&ls),
        [format!("{stored}/cfg"), format!("{stored}/cfg/config.json")]
    );
    let missing = run_code(env.cmd(["cat", "m", &format!("{given}/nope")]), 2);
    assert!(missing.contains(&format!("{stored}/nope")), "{missing}");
}

#[test]
fn dot_stores_the_contents_at_the_top_and_dotdot_prefixes_are_dropped() {
    let env = Env::new();
    let proj = env.path("proj");
    write(&proj.join("state.json"), b"s");
    write(&proj.join("sub/x.csv"), b"x");
    run_ok(in_dir(
        &env,
        &proj,
        &["snapshot", ".", "--kind", "config", "--name", "dot"],
    ));
    assert_eq!(
        entry_paths(&env.json(["ls", "dot"])),
        ["state.json", "sub", "sub/x.csv"]
    );
    // From inside `sub`, `../state.json` is stored as `state.json`.
    let sub = proj.join("sub");
    let args = [
        "snapshot",
        "../state.json",
        "x.csv",
        "--kind",
        "config",
        "--name",
        "up",
    ];
    run_ok(in_dir(&env, &sub, &args));
    assert_eq!(
        entry_paths(&env.json(["ls", "up"])),
        ["state.json", "x.csv"]
    );
    let out = env.restore("up");
    assert_eq!(fs::read(out.join("state.json")).unwrap(), b"s");
}

#[test]
fn sources_that_cannot_be_kept_as_given_are_refused_and_nothing_is_written() {
    let env = Env::new();
    write(&env.path("a/f"), b"1");
    write(&env.path("x/a/f"), b"2");
    let before = env.list();
    // A `..` after a name.
    let err = run_code(
        env.cmd(["snapshot", "x/../a", "--kind", "config", "--name", "c"]),
        2,
    );
    assert!(err.contains("x/../a") && err.contains("`..`"), "{err}");
    // Two places on disk, one stored path: `a` from x/ and `../a`.
    let err = run_code(
        in_dir(
            &env,
            &env.path("x"),
            &["snapshot", "a", "../a", "--kind", "config", "--name", "c"],
        ),
        2,
    );
    assert!(
        err.contains("../a") && err.contains("stored under `a`"),
        "{err}"
    );
    assert_eq!(env.list(), before, "a refused snapshot saves nothing");
    // A source inside another adds nothing.
    run_ok(env.cmd(["snapshot", "a", "a/f", "--kind", "config", "--name", "c"]));
    assert_eq!(entry_paths(&env.json(["ls", "c"])), ["a", "a/f"]);
}

#[test]
fn snapshots_stored_under_base_names_are_found_by_either_path() {
    // The v0.1.0 fixture stored each source under its base name (`src`).
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0.1.0/repo");
    let env = Env::uninit();
    crate::common::copy_dir(&fixture, &env.repo);
    let show = env.json(["show", "fixture:v1"]);
    let source = show["snapshot"]["sources"]
        .as_array()
        .or_else(|| show["sources"].as_array())
        .expect("sources in show --json")[0]
        .as_str()
        .unwrap()
        .to_string();
    let files = entry_paths(&env.json(["ls", "fixture:v1"]));
    let stored = files
        .iter()
        .find(|p| p.ends_with("notes.txt"))
        .expect("the fixture holds notes.txt")
        .clone();
    assert!(stored.starts_with("src/"), "{stored}");
    let below = stored.strip_prefix("src/").unwrap();
    // As stored, and as the absolute path the source was given by.
    let by_stored = run_ok(env.cmd(["cat", "fixture:v1", &stored]));
    let by_source = run_ok(env.cmd(["cat", "fixture:v1", &format!("{source}/{below}")]));
    assert_eq!(by_stored.stdout, by_source.stdout);
    assert!(!by_stored.stdout.is_empty());
    let target = env.path("out");
    run_ok(env.cmd([
        "restore",
        "fixture:v1",
        target.to_str().unwrap(),
        "--path",
        &format!("{source}/{below}"),
    ]));
    assert_eq!(fs::read(target.join(&stored)).unwrap(), by_stored.stdout);
}
