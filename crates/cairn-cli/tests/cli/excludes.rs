//! `snapshot --exclude / --exclude-file / --files-from`: gitignore-style
//! patterns leave entries out on purpose, counted in the report, and the
//! snapshot stays complete (exit 0, no "skipped" warning).

use std::path::Path;

use serde_json::Value;

use crate::common::*;

/// `data/` with files to keep and files the patterns below exclude.
fn tree(env: &Env) -> std::path::PathBuf {
    let data = env.path("data");
    write(&data.join("keep.txt"), b"keep\n");
    write(&data.join("scratch.tmp"), b"tmp\n");
    write(&data.join("deep/also.tmp"), b"tmp\n");
    write(&data.join("deep/keep.tmp"), b"whitelisted\n");
    write(&data.join("cache/blob"), b"cache\n");
    write(&data.join("sub/cache/x"), b"cache\n");
    write(&data.join("logs/a.log"), b"log\n");
    data
}

/// The file paths stored in the snapshot `name`.
fn stored_files(env: &Env, name: &str) -> Vec<String> {
    let show = env.json(["show", name]);
    let mut files: Vec<String> = show["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "file")
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    files.sort();
    files
}

#[test]
fn exclude_patterns_and_files_leave_entries_out_and_count_them() {
    let env = Env::new();
    let data = tree(&env);
    let patterns = env.path("excludes.txt");
    write(&patterns, b"# build leftovers\n\n*.tmp\n!keep.tmp\n");
    let mut cmd = env.cmd(["snapshot"]);
    cmd.arg(env.rel(&data))
        .args(["--kind", "config", "--name", "ex", "--json"])
        .args(["--exclude", "cache/", "--exclude", "data/logs"])
        .arg("--exclude-file")
        .arg(&patterns);
    let out = run_ok(cmd);
    assert!(stderr(&out).is_empty(), "no warnings: {}", stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["complete"], true, "{r}");
    assert_eq!(r["skipped"].as_array().unwrap().len(), 0, "{r}");
    // scratch.tmp, deep/also.tmp, cache/, sub/cache/, logs/
    assert_eq!(r["excluded"], 5, "{r}");
    assert_eq!(
        stored_files(&env, "ex"),
        ["data/deep/keep.tmp", "data/keep.txt"]
    );

    // The text report says how many were excluded.
    let mut cmd = env.cmd(["snapshot"]);
    cmd.arg(env.rel(&data))
        .args(["--kind", "config", "--name", "ex2", "--exclude", "*.tmp"]);
    let text = stdout(&run_ok(cmd));
    assert!(text.contains("excluded    3"), "{text}");
}

#[test]
fn files_from_lists_the_sources_and_absolute_patterns_match_on_disk() {
    let env = Env::new();
    let data = tree(&env);
    let other = env.path("other.txt");
    write(&other, b"other\n");
    let list = env.path("list.txt");
    // Relative to where the command runs, as given on a command line.
    let text = format!(
        "# what to back up\n{}\n\n{}\n",
        env.rel(&data).display(),
        env.rel(&other).display()
    );
    write(&list, text.as_bytes());
    let absolute = format!("{}/sub", data.display());
    let mut cmd = env.cmd(["snapshot", "--kind", "config", "--name", "ff", "--json"]);
    cmd.arg("--files-from")
        .arg(&list)
        .args(["--exclude", &absolute, "--exclude", "*.log"]);
    let r: Value = serde_json::from_slice(&run_ok(cmd).stdout).unwrap();
    assert_eq!(r["excluded"], 2, "{r}");
    let files = stored_files(&env, "ff");
    assert!(files.contains(&"other.txt".to_owned()), "{files:?}");
    assert!(files.contains(&"data/cache/blob".to_owned()), "{files:?}");
    assert!(
        !files.iter().any(|f| f.starts_with("data/sub")),
        "{files:?}"
    );
    assert!(!files.iter().any(|f| f.ends_with(".log")), "{files:?}");
}

#[test]
fn bad_patterns_and_missing_files_are_named() {
    let env = Env::new();
    let data = tree(&env);
    let mut cmd = env.cmd(["snapshot", "--kind", "config", "--name", "bad"]);
    cmd.arg(&data).args(["--exclude", "a{b"]);
    let err = run_code(cmd, 2);
    assert!(err.contains("\"a{b\""), "{err}");
    let missing = env.path("nope.txt");
    let mut cmd = env.cmd(["snapshot", "--kind", "config", "--name", "bad"]);
    cmd.arg(&data).arg("--exclude-file").arg(&missing);
    let err = run_code(cmd, 2);
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(Path::new(&data).exists());
    assert_eq!(env.list().len(), 0);
}
