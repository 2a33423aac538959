//! Helpers for the library's unit tests: a repository in a temp directory
//! with small chunks, and a deterministic byte stream.

use std::cell::Cell;
use std::path::PathBuf;

use crate::format::config::RepoConfig;
use crate::format::id::SnapshotId;
use crate::ingest::chunker::ChunkerParams;
use crate::ops::snapshot::SnapshotOptions;
use crate::progress::NoProgress;
use crate::repo::repository::Repository;

/// `len` bytes of a SplitMix64 stream seeded with `seed` (incompressible).
pub(crate) fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A repository in a temp dir: 4 KiB average chunks, raw storage (so stored
/// sizes are exact), optionally small packs.
pub(crate) struct TestRepo {
    pub dir: tempfile::TempDir,
    pub repo: Repository,
    runs: Cell<u32>,
}

impl TestRepo {
    pub fn new() -> Self {
        Self::with_pack_target(None)
    }

    pub fn with_pack_target(target: Option<u64>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = RepoConfig::new(ChunkerParams::with_average(4096), 0).unwrap();
        if let Some(n) = target {
            config = config.with_pack_target(n).unwrap();
        }
        let repo = Repository::init(&dir.path().join("repo"), config).unwrap();
        Self {
            dir,
            repo,
            runs: Cell::new(0),
        }
    }

    /// Snapshots one small file whose content is derived from `seed`.
    pub fn snap(&self, kind: &str, name: &str, seed: &[u8], tags: &[&str]) -> SnapshotId {
        let data = seed
            .iter()
            .flat_map(|&b| random_bytes(b as u64, 3000))
            .collect();
        self.snap_files(kind, name, &[("f", data)], tags)
    }

    /// Snapshots `files` (name, content) from a fresh source directory.
    pub fn snap_files(
        &self,
        kind: &str,
        name: &str,
        files: &[(&str, Vec<u8>)],
        tags: &[&str],
    ) -> SnapshotId {
        let src = self.source_dir(files);
        let opts = SnapshotOptions {
            label: crate::SnapshotLabel {
                tags: tags.iter().map(|t| t.to_string()).collect(),
                ..crate::SnapshotLabel::new(kind, name)
            },
            force: true,
            ..Default::default()
        };
        self.repo.snapshot(&[src], &opts, &NoProgress).unwrap().id
    }

    /// A new directory `src<n>` holding `files`.
    pub fn source_dir(&self, files: &[(&str, Vec<u8>)]) -> PathBuf {
        let n = self.runs.get();
        self.runs.set(n + 1);
        let src = self.dir.path().join(format!("src{n}"));
        std::fs::create_dir(&src).unwrap();
        for (name, data) in files {
            std::fs::write(src.join(name), data).unwrap();
        }
        src
    }
}

thread_local! {
    /// (password, new password) this thread's opens and key changes use.
    static PASSWORDS: std::cell::RefCell<(String, String)> =
        const { std::cell::RefCell::new((String::new(), String::new())) };
}

/// Makes this thread's opens of encrypted repositories use `password` (and
/// `new` where a new one is asked for), with a cheap Argon2id. The source is
/// process-wide; the passwords are per thread, so tests may run in parallel.
pub(crate) fn use_passwords(password: &str, new: &str) {
    use crate::repo::keys::{self, PasswordPurpose};
    PASSWORDS.with(|p| *p.borrow_mut() = (password.into(), new.into()));
    keys::set_password_source(|_, purpose| {
        let (old, new) = PASSWORDS.with(|p| p.borrow().clone());
        let pw = if purpose == PasswordPurpose::NewKey {
            new
        } else {
            old
        };
        Ok(zeroize::Zeroizing::new(pw))
    });
    keys::set_new_key_kdf(crate::format::keyfile::KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    });
}

/// Where a snapshot stores source `path` (under its path as given; an
/// absolute temp dir is kept whole, without its leading `/`), joined with
/// `below` when that is not empty: `stored(&src, "a.txt")`.
pub(crate) fn stored(path: &std::path::Path, below: &str) -> String {
    let top = crate::ops::restore::layout::normalize(&path.to_string_lossy());
    if below.is_empty() {
        top
    } else {
        format!("{top}/{below}")
    }
}
