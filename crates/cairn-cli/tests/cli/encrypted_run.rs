//! The encrypted run of the CLI suite (`CAIRN_TEST_ENCRYPTED=1`, which
//! `.ci/run` sets for a second run): what `common.rs` changes so that every
//! test runs against an encrypted repository without a copy of its own.

use std::path::Path;

use crate::common::write;

/// True in the encrypted run of the suite (`CAIRN_TEST_ENCRYPTED=1`, as
/// `.ci/run` does): every repository a test makes through [`Env`] is made
/// with `init --encryption`, and every command gets [`TEST_PASSWORD`] in
/// `CAIRN_PASSWORD` (and a cheap Argon2id, `CAIRN_KDF_MEMORY_KIB=64`).
pub fn encrypted() -> bool {
    std::env::var("CAIRN_TEST_ENCRYPTED").is_ok_and(|v| v == "1")
}

pub const TEST_PASSWORD: &str = "correct horse battery staple";

/// What [`cairn_in`] sets for the encrypted run, for a test that builds its
/// own `std::process::Command`.
pub fn password_env() -> Vec<(&'static str, &'static str)> {
    if encrypted() {
        vec![
            ("CAIRN_PASSWORD", TEST_PASSWORD),
            ("CAIRN_KDF_MEMORY_KIB", "64"),
        ]
    } else {
        Vec::new()
    }
}

/// `init`, with `--encryption` in the encrypted run.
pub fn init_args() -> Vec<&'static str> {
    if encrypted() {
        vec!["init", "--encryption"]
    } else {
        vec!["init"]
    }
}

/// Skips the calling test, visibly, in the encrypted run: for tests that
/// pin or plant unencrypted bytes (the reason says which).
#[macro_export]
macro_rules! skip_if_encrypted {
    ($reason:expr) => {
        if $crate::encrypted_run::encrypted() {
            eprintln!(
                "SKIP (CAIRN_TEST_ENCRYPTED=1) {} at {}:{}: {}",
                module_path!(),
                file!(),
                line!(),
                $reason
            );
            return;
        }
    };
}

/// Plants object `key` holding `bytes` in the repository at `repo`, as
/// cairn would store it: sealed in the encrypted run, else as a file.
pub fn put_object(repo: &Path, key: &str, bytes: &[u8]) {
    if encrypted() {
        open_repo(repo).storage().put(key, bytes).unwrap();
    } else {
        write(&repo.join(key), bytes);
    }
}

/// Opens the repository at `path` in this process (the library, not the
/// binary), with [`TEST_PASSWORD`] as its password source.
pub fn open_repo(path: &Path) -> cairn::Repository {
    cairn::set_password_source(|_, _| Ok(zeroize::Zeroizing::new(TEST_PASSWORD.to_string())));
    cairn::Repository::open(path).unwrap()
}
