//! Encrypted repositories (`init --encryption`) through the real binary:
//! passwords from each place, wrong and missing passwords, key files, what
//! the storage reveals, and tampering found by `check --read-data`. These
//! run in both runs of the suite; the rest of the suite runs encrypted with
//! `CAIRN_TEST_ENCRYPTED=1`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;

const PW: &str = "s3cret horse";

/// An encrypted repository, its commands given `PW` in `CAIRN_PASSWORD`.
fn encrypted_env() -> Env {
    let env = Env::uninit();
    run_ok(with_pw(
        env.cmd(["init", "--encryption", "--pack-target", "64K"]),
        PW,
    ));
    env
}

fn with_pw(mut cmd: assert_cmd::Command, pw: &str) -> assert_cmd::Command {
    cmd.env("CAIRN_PASSWORD", pw)
        .env("CAIRN_KDF_MEMORY_KIB", "64");
    cmd
}

fn cairn(env: &Env, args: &[&str]) -> assert_cmd::Command {
    with_pw(env.cmd(args), PW)
}

/// Two sources: a 600 KB random file and a text file with a known line.
fn sources(env: &Env) -> PathBuf {
    let src = env.path("src");
    write(&src.join("weights.bin"), &random_bytes(600_000, 7));
    write(
        &src.join("note.txt"),
        b"the quarterly book is long copper, short tin\n",
    );
    src
}

fn snapshot(env: &Env, src: &Path, name: &str) -> serde_json::Value {
    let out = run_ok(cairn(
        env,
        &[
            "snapshot",
            env.rel(src).to_str().unwrap(),
            "--kind",
            "model",
            "--name",
            name,
            "--json",
        ],
    ));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every object file (not the local catalog cache), by path.
fn objects(repo: &Path) -> Vec<(String, Vec<u8>)> {
    walk(repo)
        .into_iter()
        .filter(|(rel, m)| m.is_file() && !rel.starts_with("catalog.db"))
        .map(|(rel, _)| (rel.clone(), fs::read(repo.join(&rel)).unwrap()))
        .collect()
}

fn files_under(repo: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walk(repo)
        .into_iter()
        .filter(|(rel, m)| m.is_file() && rel.starts_with(prefix))
        .map(|(rel, _)| repo.join(rel))
        .collect();
    out.sort();
    out
}

#[test]
fn snapshot_restore_check_and_dedup_work_encrypted() {
    let env = encrypted_env();
    let src = sources(&env);
    let first = snapshot(&env, &src, "m");
    assert!(u(&first, "chunks_new") > 0);
    let again = run_ok(cairn(
        &env,
        &[
            "snapshot",
            env.rel(&src).to_str().unwrap(),
            "--kind",
            "model",
            "--name",
            "m",
            "--force",
            "--json",
        ],
    ));
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(u(&again, "chunks_new"), 0, "dedup within the repository");
    assert_eq!(u(&again, "added_raw"), 0);
    run_ok(cairn(
        &env,
        &["restore", "m", env.path("out").to_str().unwrap()],
    ));
    assert_diff_clean(&src, &env.path("out/src"));
    run_ok(cairn(&env, &["check", "--read-data"]));
    let config = fs::read_to_string(env.repo.join("config")).unwrap();
    assert!(
        config.contains("\"version\": 4") && config.contains("\"encryption\""),
        "{config}"
    );
}

/// The storage holds neither a known plaintext nor the plain BLAKE3 id of
/// a chunk of it, nor a file name.
#[test]
fn storage_reveals_no_plaintext_and_no_plain_ids() {
    let env = encrypted_env();
    let src = sources(&env);
    snapshot(&env, &src, "secret-history");
    run_ok(cairn(&env, &["policy", "set", "model", "--keep-last", "3"]));
    let text = fs::read(src.join("note.txt")).unwrap();
    let plain_id = cairn::ChunkId::of(&text);
    let needles: [&[u8]; 5] = [
        b"long copper",
        &plain_id.0,
        b"note.txt",
        b"secret-history",
        b"keep_last",
    ];
    let objects = objects(&env.repo);
    assert!(objects.iter().any(|(k, _)| k.starts_with("packs/")));
    for (key, bytes) in &objects {
        for needle in needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{key} holds {:?}",
                String::from_utf8_lossy(needle)
            );
        }
    }
}

#[test]
fn a_wrong_password_names_the_repository_exits_2_and_writes_nothing() {
    let env = encrypted_env();
    snapshot(&env, &sources(&env), "m");
    let before = repo_files(&env.repo);
    for args in [
        &["list"][..],
        &["snapshot", "src", "--kind", "k", "--name", "n"],
        &["gc"],
    ] {
        let err = run_code(with_pw(env.cmd(args), "wrong"), 2);
        assert!(err.contains("wrong password"), "{err}");
        assert!(err.contains(env.repo.to_str().unwrap()), "{err}");
    }
    assert_eq!(repo_files(&env.repo), before, "nothing written");
}

#[test]
fn a_missing_password_names_the_ways_to_give_one() {
    let env = encrypted_env();
    let mut cmd = env.cmd(["list"]);
    cmd.env_remove("CAIRN_PASSWORD");
    let err = run_code(cmd, 2);
    assert!(err.contains("encrypted and no password was given"), "{err}");
    for way in [
        "CAIRN_PASSWORD",
        "CAIRN_PASSWORD_FILE",
        "--password-file",
        "--password-command",
    ] {
        assert!(err.contains(way), "{way} in {err}");
    }
    assert!(err.contains(env.repo.to_str().unwrap()), "{err}");
}

#[test]
fn passwords_come_from_a_file_or_a_command() {
    let env = encrypted_env();
    let file = env.path("pw.txt");
    write(&file, format!("{PW}\n").as_bytes());
    let mut by_file = env.cmd(["list"]);
    by_file
        .env_remove("CAIRN_PASSWORD")
        .arg("--password-file")
        .arg(&file);
    run_ok(by_file);
    let mut by_env_file = env.cmd(["list"]);
    by_env_file
        .env_remove("CAIRN_PASSWORD")
        .env("CAIRN_PASSWORD_FILE", &file);
    run_ok(by_env_file);
    let mut by_command = env.cmd(["list", "--password-command", &format!("echo '{PW}'")]);
    by_command.env_remove("CAIRN_PASSWORD");
    run_ok(by_command);
    let mut failing = env.cmd(["list", "--password-command", "false"]);
    failing.env_remove("CAIRN_PASSWORD");
    let err = run_code(failing, 2);
    assert!(err.contains("--password-command"), "{err}");
}

fn key_ids(env: &Env, pw: &str) -> Vec<(String, bool)> {
    let out = run_ok(with_pw(env.cmd(["key", "list", "--json"]), pw));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["id"].as_str().unwrap().to_string(),
                k["current"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn key_add_passwd_remove_and_the_last_key_is_kept() {
    let env = encrypted_env();
    snapshot(&env, &sources(&env), "m");
    let [(first, true)] = &key_ids(&env, PW)[..] else {
        panic!("one current key")
    };
    // add: both passwords open it.
    let mut add = cairn(&env, &["key", "add"]);
    add.env("CAIRN_NEW_PASSWORD", "second");
    run_ok(add);
    assert_eq!(key_ids(&env, PW).len(), 2);
    assert_eq!(key_ids(&env, "second").len(), 2);
    // The key the password opened cannot be removed with it.
    let err = run_code(cairn(&env, &["key", "remove", first]), 2);
    assert!(err.contains("unlocked with"), "{err}");
    // passwd: the second password becomes a third; the second no longer opens.
    let new_file = env.path("third.txt");
    write(&new_file, b"third\n");
    let mut passwd = with_pw(env.cmd(["key", "passwd", "--new-password-file"]), "second");
    passwd.arg(&new_file);
    run_ok(passwd);
    run_code(with_pw(env.cmd(["list"]), "second"), 2);
    let keys = key_ids(&env, "third");
    assert_eq!(keys.len(), 2);
    // remove the first with the third, then the last one is refused.
    run_ok(with_pw(env.cmd(["key", "remove", first]), "third"));
    run_code(with_pw(env.cmd(["list"]), PW), 2);
    let [(last, true)] = &key_ids(&env, "third")[..] else {
        panic!("one key left")
    };
    let err = run_code(with_pw(env.cmd(["key", "remove", last]), "third"), 2);
    assert!(err.contains("last key"), "{err}");
    let err = run_code(with_pw(env.cmd(["key", "remove", "0123"]), "third"), 2);
    assert!(err.contains("no key `0123`"), "{err}");
    run_ok(with_pw(env.cmd(["check", "--read-data"]), "third"));
    // An unencrypted repository has no keys.
    let plain = Env::uninit();
    run_ok(plain.cmd(["init"]));
    let err = run_code(plain.cmd(["key", "list"]), 2);
    assert!(err.contains("not encrypted"), "{err}");
}

/// `check --read-data` output (exit 1) after `damage` was done to the
/// repository of one snapshot "m" of two files.
fn check_after(damage: impl FnOnce(&Env)) -> (Env, String) {
    let env = encrypted_env();
    snapshot(&env, &sources(&env), "m");
    snapshot(&env, &sources(&env), "other");
    damage(&env);
    let out = cairn(&env, &["check", "--read-data"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    (env, format!("{}{}", stdout(&out), stderr(&out)))
}

fn flip(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0x10;
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_flipped_bit_in_a_chunk_is_found_and_restore_writes_nothing_unauthenticated() {
    let (env, out) = check_after(|env| {
        // The largest pack holds the files' data; the second snapshot adds
        // only a small pack of trees (its sources were rewritten, so their
        // mtimes and trees differ), which restore of "m" never reads.
        let pack = files_under(&env.repo, "packs/")
            .into_iter()
            .max_by_key(|p| fs::metadata(p).unwrap().len())
            .unwrap();
        flip(&pack, 16 + 30);
    });
    assert!(out.contains("authentication failed"), "{out}");
    assert!(out.contains("affects snapshot"), "{out}");
    let target = env.path("restored");
    let out = cairn(&env, &["restore", "m", target.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("authentication failed"),
        "{}",
        stderr(&out)
    );
    // What is in place is exactly the source; the damaged file is not.
    let src = env.path("src");
    let restored_dir = target.join("src");
    let in_place = if restored_dir.exists() {
        walk(&restored_dir)
    } else {
        Vec::new()
    };
    let restored: Vec<String> = in_place
        .into_iter()
        .filter(|(_, m)| m.is_file())
        .map(|(rel, _)| rel)
        .collect();
    assert!(restored.len() < 2, "{restored:?}");
    for rel in restored {
        assert_eq!(
            fs::read(target.join("src").join(&rel)).unwrap(),
            fs::read(src.join(&rel)).unwrap(),
            "{rel}"
        );
    }
}

#[test]
fn a_flipped_bit_in_a_trailer_is_found() {
    let (_, out) = check_after(|env| {
        let pack = &files_under(&env.repo, "packs/")[0];
        let len = fs::metadata(pack).unwrap().len() as usize;
        flip(pack, len - 56 - 20);
    });
    assert!(out.contains("trailer") || out.contains("checksum"), "{out}");
}

#[test]
fn a_flipped_bit_in_a_manifest_is_found() {
    let (_, out) = check_after(|env| {
        let manifest = &files_under(&env.repo, "snapshots/")[0];
        flip(manifest, 30);
    });
    assert!(out.contains("authentication failed"), "{out}");
}

#[test]
fn swapped_manifests_are_found() {
    let (_, out) = check_after(|env| {
        let m = files_under(&env.repo, "snapshots/");
        let (a, b) = (fs::read(&m[0]).unwrap(), fs::read(&m[1]).unwrap());
        fs::write(&m[0], b).unwrap();
        fs::write(&m[1], a).unwrap();
    });
    assert!(out.contains("authentication failed"), "{out}");
}

#[test]
fn swapped_packs_are_found() {
    let (_, out) = check_after(|env| {
        let p = files_under(&env.repo, "packs/");
        assert!(p.len() >= 2, "{p:?}");
        let (a, b) = (fs::read(&p[0]).unwrap(), fs::read(&p[1]).unwrap());
        fs::write(&p[0], b).unwrap();
        fs::write(&p[1], a).unwrap();
    });
    assert!(out.contains("pack"), "{out}");
}

#[test]
fn a_changed_config_is_refused() {
    let env = encrypted_env();
    for key in ["config", "config.backup"] {
        let path = env.repo.join(key);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(
            &path,
            text.replace("\"compression\": 3", "\"compression\": 0"),
        )
        .unwrap();
    }
    let err = run_code(cairn(&env, &["list"]), 2);
    assert!(err.contains("MAC does not match"), "{err}");
    // A config replaced by an unencrypted one is refused too.
    let plain = Env::uninit();
    run_ok(plain.cmd(["init"]));
    for key in ["config", "config.backup"] {
        fs::copy(plain.repo.join("config"), env.repo.join(key)).unwrap();
    }
    let err = run_code(cairn(&env, &["list"]), 2);
    assert!(err.contains("key files"), "{err}");
}
