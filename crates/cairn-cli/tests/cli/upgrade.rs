//! `cairn upgrade` (#12): a repository made by an earlier cairn (version
//! 1–3, made here with the hidden `init --repo-version`) keeps writing
//! version-1 manifests until upgraded; the upgrade raises both copies of
//! the config to version 4, after which new snapshots have trees and the
//! old ones still restore, diff and verify. (On S3: tests/cli/s3.rs.)

use std::fs;
use std::path::Path;

use crate::common::*;

/// An initialised repository at repository version `v`.
fn env_at_version(v: &str) -> Env {
    let env = Env::uninit();
    run_ok(env.cmd([&init_args()[..], &["--repo-version", v]].concat()));
    env
}

/// The manifest version (header bytes 8..12) of snapshot `id`; `None` in
/// the encrypted run, whose manifests are sealed.
fn manifest_version(repo: &Path, id: &str) -> Option<u32> {
    if crate::encrypted_run::encrypted() {
        return None;
    }
    let bytes = fs::read(repo.join(format!("snapshots/{id}.snap"))).unwrap();
    Some(u32::from_le_bytes(bytes[8..12].try_into().unwrap()))
}

/// `"version": N` of both copies of the config (stored as plain JSON in
/// every repository).
fn config_versions(repo: &Path) -> [String; 2] {
    ["config", "config.backup"].map(|key| {
        let text = fs::read_to_string(repo.join(key)).unwrap();
        let at = text.find("\"version\": ").unwrap() + "\"version\": ".len();
        text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect()
    })
}

/// The source tree `src/`, snapshotted by its relative path (the tests run
/// in the env's directory), so it is stored as `src/…` in every layout.
fn source(env: &Env) -> &'static Path {
    let src = env.path("src");
    write(&src.join("weights.bin"), &random_bytes(300_000, 11));
    write(&src.join("sub/config.json"), b"{\"dim\": 64}\n");
    write(&src.join("sub/deeper/notes.txt"), b"notes\n");
    Path::new("src")
}

fn id(v: &serde_json::Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// Guards the whole upgrade story on a version-3 repository: a dry run and
/// a refusal without --yes change nothing; the upgrade says what older
/// builds will do; new snapshots are manifest version 2 while the version-1
/// snapshot still restores, diffs and verifies; a second run says there is
/// nothing to do.
#[test]
fn upgrade_takes_a_version_3_repository_to_version_4() {
    let env = env_at_version("3");
    let rel = source(&env);
    let src = env.path("src");
    let old = env.snapshot(rel, "model", "m", &[]);
    assert!(matches!(
        manifest_version(&env.repo, &id(&old)),
        None | Some(1)
    ));

    let dry = env.json(["upgrade", "--dry-run"]);
    assert_eq!(
        (&dry["from"], &dry["to"], &dry["upgraded"], &dry["dry_run"]),
        (&3.into(), &4.into(), &false.into(), &true.into()),
        "{dry}"
    );
    let err = run_code(env.cmd(["upgrade"]), 2);
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(config_versions(&env.repo), ["3", "3"]);

    let out = run_ok(env.cmd(["upgrade", "--yes"]));
    let (text, warning) = (stdout(&out), stderr(&out));
    assert!(
        text.contains("from repository version 3 to 4") && text.contains("tree objects"),
        "{text}"
    );
    assert!(
        warning.contains("reads only up to repository version 3 cannot open the repository")
            && warning.contains("has format version 4, this cairn reads up to 3"),
        "{warning}"
    );
    assert_eq!(config_versions(&env.repo), ["4", "4"]);
    assert_eq!(
        fs::read(env.repo.join("config")).unwrap(),
        fs::read(env.repo.join("config.backup")).unwrap()
    );

    write(&src.join("sub/config.json"), b"{\"dim\": 128}\n");
    let new = env.snapshot(rel, "model", "m", &[]);
    assert!(matches!(
        manifest_version(&env.repo, &id(&new)),
        None | Some(2)
    ));
    let diff = env.json(["diff", &id(&old), &id(&new)]);
    assert_eq!(diff["changed"][0]["path"], "src/sub/config.json", "{diff}");
    assert_eq!(diff["changed"].as_array().unwrap().len(), 1, "{diff}");
    env.json(["verify", &id(&old)]);
    let restored = env.path("old");
    run_ok(env.cmd(["restore", &id(&old), restored.to_str().unwrap()]));
    assert_eq!(
        fs::read(restored.join("src/weights.bin")).unwrap(),
        fs::read(src.join("weights.bin")).unwrap()
    );
    assert_eq!(
        fs::read(restored.join("src/sub/config.json")).unwrap(),
        b"{\"dim\": 64}\n"
    );
    let check = env.json(["check", "--read-data"]);
    assert_eq!(check["clean"], true, "{check}");

    let again = run_ok(env.cmd(["upgrade", "--yes"]));
    assert!(
        stdout(&again).contains("already at repository version 4"),
        "{}",
        stdout(&again)
    );
    let json = env.json(["upgrade", "--yes"]);
    assert_eq!(
        (&json["from"], &json["upgraded"]),
        (&4.into(), &false.into())
    );
}

/// A version-1 repository (an unencrypted one of the first release) goes
/// straight to 4 and gets delta chunks and trees from then on.
#[test]
fn upgrade_takes_version_1_to_4() {
    crate::skip_if_encrypted!("a version-1 repository is never encrypted");
    let env = env_at_version("1");
    let rel = source(&env);
    let src = env.path("src");
    env.snapshot(rel, "model", "m", &[]);
    let r = env.json(["upgrade", "--yes"]);
    assert_eq!((&r["from"], &r["to"]), (&1.into(), &4.into()), "{r}");
    write(&src.join("sub/deeper/notes.txt"), b"more notes\n");
    let new = env.snapshot(rel, "model", "m", &[]);
    assert_eq!(manifest_version(&env.repo, &id(&new)), Some(2));
    assert_eq!(env.json(["check", "--read-data"])["clean"], true);
}

/// What the upgrade warning quotes is the error this build gives for a
/// version above the one it reads, as an older build does for version 4.
#[test]
fn a_newer_repository_version_is_refused_as_the_warning_says() {
    crate::skip_if_encrypted!("it rewrites the config by hand (an encrypted one is authenticated)");
    let env = Env::new();
    for key in ["config", "config.backup"] {
        let path = env.repo.join(key);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("\"version\": 4", "\"version\": 5")).unwrap();
    }
    for args in [vec!["list"], vec!["check"], vec!["unlock"]] {
        let err = run_code(env.cmd(&args), 2);
        assert!(
            err.contains("has format version 5, this cairn reads up to 4"),
            "{args:?}: {err}"
        );
    }
}
