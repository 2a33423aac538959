//! Shared helpers: a temp directory holding a real repository, a `cairn`
//! command bound to it, deterministic data, tree comparison, and a small
//! RFC 3339 <-> nanoseconds conversion (no chrono).

#![allow(dead_code)]

use std::borrow::BorrowMut;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

pub use crate::encrypted_run::*;

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

/// SplitMix64: a tiny deterministic PRNG, so test data never depends on
/// /dev/urandom and every run sees the same bytes.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// `len` pseudo-random (incompressible) bytes determined by `seed`.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `data` to `path`, creating parent directories.
pub fn write(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Sets the mtime of a file or directory (follows symlinks).
pub fn set_mtime(path: &Path, secs: u64, nanos: u32) {
    let t = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
    fs::File::open(path).unwrap().set_modified(t).unwrap();
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `cairn` binary, isolated from the user's environment: no
/// `CAIRN_REPO`, and `XDG_DATA_HOME`/`HOME` pointing into `sandbox`, so a
/// test can never touch the user's default repository.
pub fn cairn_in(sandbox: &Path) -> Command {
    let mut cmd = Command::cargo_bin("cairn").unwrap();
    cmd.env_remove("CAIRN_REPO")
        .env_remove("CAIRN_PASSWORD_FILE")
        .env_remove("CAIRN_NEW_PASSWORD")
        .env_remove("CAIRN_NEW_PASSWORD_FILE")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_CONFIG_FILE")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env("XDG_DATA_HOME", sandbox.join("xdg-data"))
        .env("HOME", sandbox.join("home"))
        .current_dir(sandbox);
    if encrypted() {
        cmd.env("CAIRN_PASSWORD", TEST_PASSWORD)
            .env("CAIRN_KDF_MEMORY_KIB", "64");
    } else {
        cmd.env_remove("CAIRN_PASSWORD")
            .env_remove("CAIRN_KDF_MEMORY_KIB");
    }
    cmd
}

/// Runs `cmd` (owned or borrowed) and asserts exit code 0.
pub fn run_ok(mut cmd: impl BorrowMut<Command>) -> Output {
    let cmd = cmd.borrow_mut();
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed with {:?}\nstderr: {}\nstdout: {}",
        out.status.code(),
        stderr(&out),
        stdout(&out)
    );
    out
}

/// Runs `cmd` (owned or borrowed), asserts exit code `code`, returns stderr.
pub fn run_code(mut cmd: impl BorrowMut<Command>, code: i32) -> String {
    let cmd = cmd.borrow_mut();
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{cmd:?}: expected exit {code}\nstderr: {}\nstdout: {}",
        stderr(&out),
        stdout(&out)
    );
    stderr(&out)
}

/// A temp directory with a repository at `<dir>/repo` (initialised by
/// [`Env::new`]) and room for source trees and restore targets.
pub struct Env {
    pub dir: TempDir,
    pub repo: PathBuf,
}

impl Env {
    /// A fresh temp dir with an initialised repository.
    pub fn new() -> Self {
        let env = Self::uninit();
        run_ok(env.cairn().args(init_args()));
        assert!(env.repo.join("config").is_file());
        env
    }

    /// A fresh temp dir; the repository path does not exist yet.
    pub fn uninit() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cairn-it-")
            .tempdir()
            .unwrap();
        let repo = dir.path().join("repo");
        Env { dir, repo }
    }

    /// `<dir>/rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `path` relative to the temp dir, where commands run: a source given
    /// so is stored under that short path (`src/…`), as a user in that
    /// directory would give it; a path elsewhere is returned as it is.
    pub fn rel<'a>(&self, path: &'a Path) -> &'a Path {
        path.strip_prefix(self.dir.path()).unwrap_or(path)
    }

    /// `cairn --repo <repo>`, isolated from the user's environment.
    pub fn cairn(&self) -> Command {
        let mut cmd = cairn_in(self.dir.path());
        cmd.arg("--repo").arg(&self.repo);
        cmd
    }

    /// `cairn --repo <repo> ARGS...`.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.cairn();
        cmd.args(args);
        cmd
    }

    /// Runs `cairn ARGS... --json` successfully and parses stdout.
    pub fn json<I, S>(&self, args: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = run_ok(self.cmd(args).arg("--json"));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(&out)))
    }

    /// `cairn snapshot PATH --kind KIND --name NAME EXTRA... --json`, which must succeed.
    pub fn snapshot(&self, path: &Path, kind: &str, name: &str, extra: &[&str]) -> Value {
        let mut cmd = self.cairn();
        cmd.arg("snapshot")
            .arg(self.rel(path))
            .args(["--kind", kind, "--name", name])
            .args(extra)
            .arg("--json");
        let out = run_ok(&mut cmd);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Runs `cairn ARGS... --json`, asserts exit code `code`, parses stdout.
    pub fn json_code<I, S>(&self, args: I, code: i32) -> Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.cmd(args);
        cmd.arg("--json");
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{cmd:?}: expected exit {code}\nstderr: {}\nstdout: {}",
            stderr(&out),
            stdout(&out)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(&out)))
    }

    /// Restores every listed snapshot into a fresh directory and asserts it
    /// reproduces its source bit for bit (content, modes, mtimes, links).
    /// `source_of` maps a snapshot's name to the directory it was taken of
    /// (given relative to this temp dir, or absolute).
    pub fn assert_all_restore(&self, source_of: &dyn Fn(&str) -> PathBuf) {
        let list = self.list();
        assert!(!list.is_empty(), "no snapshots to restore");
        for s in &list {
            let id = s["id"].as_str().unwrap();
            let src = source_of(s["name"].as_str().unwrap());
            let out = self.path(&format!("restore-all-{id}-{}", now_ns()));
            run_ok(self.cmd(["restore".as_ref(), id.as_ref(), out.as_os_str()]));
            let restored = restored_source(&out, self.dir.path(), &src);
            assert_diff_clean(&src, &restored);
            assert_eq!(
                tree_nodes(&src),
                tree_nodes(&restored),
                "snapshot {id} ({})",
                s["name"]
            );
            fs::remove_dir_all(&out).unwrap();
        }
    }

    /// `list --json` as an array.
    pub fn list(&self) -> Vec<Value> {
        self.json(["list"]).as_array().unwrap().clone()
    }

    /// What a failed command must leave unchanged.
    pub fn state(&self) -> RepoState {
        RepoState {
            list: stdout(&run_ok(self.cmd(["list", "--json"]))),
            files: repo_files(&self.repo),
        }
    }
}

/// The visible state of a repository: `list --json`, and every regular file
/// under it with its size and mtime (the catalog's WAL and shared-memory
/// files are churn of any SQLite open and are left out; the catalog itself is
/// compared through `list --json`, by presence only here).
#[derive(Debug, PartialEq, Eq)]
pub struct RepoState {
    pub list: String,
    pub files: BTreeMap<String, Option<(u64, i64, i64)>>,
}

pub fn repo_files(root: &Path) -> BTreeMap<String, Option<(u64, i64, i64)>> {
    let mut out = BTreeMap::new();
    for (rel, meta) in walk(root) {
        if !meta.file_type().is_file()
            || rel.ends_with("catalog.db-wal")
            || rel.ends_with("catalog.db-shm")
        {
            continue;
        }
        let value = if rel == "catalog.db" {
            None
        } else {
            Some((meta.len(), meta.mtime(), meta.mtime_nsec()))
        };
        out.insert(rel, value);
    }
    out
}

/// Every path under `root` (relative, `/`-separated, sorted) with its
/// `symlink_metadata`; `root` itself is not included.
pub fn walk(root: &Path) -> Vec<(String, fs::Metadata)> {
    fn visit(dir: &Path, rel: &str, out: &mut Vec<(String, fs::Metadata)>) {
        let mut children: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let name = child.file_name().into_string().unwrap();
            let child_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = fs::symlink_metadata(child.path()).unwrap();
            let is_dir = meta.is_dir();
            out.push((child_rel.clone(), meta));
            if is_dir {
                visit(&child.path(), &child_rel, out);
            }
        }
    }
    let mut out = Vec::new();
    visit(root, "", &mut out);
    out
}

/// What a restore must reproduce of one path: type, permission bits,
/// mtime (files and directories), size, symlink target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: Option<u32>,
    pub mtime: Option<(i64, i64)>,
    pub size: u64,
    pub link_target: Option<PathBuf>,
}

/// `root` and everything under it as [`Node`]s keyed by relative path (`.`
/// is the root).
pub fn tree_nodes(root: &Path) -> BTreeMap<String, Node> {
    let node = |path: &Path, meta: &fs::Metadata| {
        let ft = meta.file_type();
        if ft.is_symlink() {
            Node {
                kind: "symlink",
                mode: None,
                mtime: None,
                size: 0,
                link_target: Some(fs::read_link(path).unwrap()),
            }
        } else {
            Node {
                kind: if ft.is_dir() { "dir" } else { "file" },
                mode: Some(meta.mode() & 0o7777),
                mtime: Some((meta.mtime(), meta.mtime_nsec())),
                size: if ft.is_dir() { 0 } else { meta.len() },
                link_target: None,
            }
        }
    };
    let mut out = BTreeMap::new();
    let meta = fs::symlink_metadata(root).unwrap();
    out.insert(".".to_string(), node(root, &meta));
    if meta.is_dir() {
        for (rel, meta) in walk(root) {
            out.insert(rel.clone(), node(&root.join(&rel), &meta));
        }
    }
    out
}

/// Runs the real `diff -r --no-dereference A B` and asserts no difference.
pub fn assert_diff_clean(a: &Path, b: &Path) {
    let out = std::process::Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(a)
        .arg(b)
        .output()
        .expect("the `diff` command is needed by this test");
    assert!(
        out.status.success(),
        "diff -r --no-dereference {} {} found differences:\n{}{}",
        a.display(),
        b.display(),
        stdout(&out),
        stderr(&out)
    );
}

/// Snapshot ids in `list --json` order.
pub fn ids(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

pub fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is not a u64 in {v}"))
}

/// This host's name as cairn records it in lock objects.
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// The pid of a process that has exited and been reaped.
pub fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// A live process (`sleep 60`) to stand for a lock holder; killed and
/// reaped on drop, so a panicking test leaves nothing behind.
pub struct LiveProcess(pub std::process::Child);

impl LiveProcess {
    pub fn spawn() -> Self {
        LiveProcess(
            std::process::Command::new("sleep")
                .arg("60")
                .spawn()
                .unwrap(),
        )
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Kills and reaps it; its pid is dead afterwards.
    pub fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for LiveProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes a lock object `locks/<32 hex>.lock` as docs/FORMAT.md specifies,
/// taken an hour ago and refreshed now, with a lease an hour long, and
/// returns its path.
pub fn write_lock(repo: &Path, exclusive: bool, host: &str, pid: u32, purpose: &str) -> PathBuf {
    let now = now_ns() as i64;
    let hour = 3_600_000_000_000i64;
    let lease = Lease {
        time_ns: now - hour,
        refreshed_ns: Some(now),
        expires_ns: Some(now + hour),
    };
    write_lock_with(repo, exclusive, host, pid, purpose, lease)
}

/// The times in a lock object; `None` leaves a field out, as locks written
/// before leases do.
pub struct Lease {
    pub time_ns: i64,
    pub refreshed_ns: Option<i64>,
    pub expires_ns: Option<i64>,
}

/// [`write_lock`] with the given times.
pub fn write_lock_with(
    repo: &Path,
    exclusive: bool,
    host: &str,
    pid: u32,
    purpose: &str,
    lease: Lease,
) -> PathBuf {
    let mut body = serde_json::json!({
        "exclusive": exclusive, "host": host, "pid": pid, "purpose": purpose,
        "time_ns": lease.time_ns,
    });
    if let Some(t) = lease.refreshed_ns {
        body["refreshed_ns"] = t.into();
    }
    if let Some(t) = lease.expires_ns {
        body["expires_ns"] = t.into();
    }
    let name: String = random_bytes(16, pid as u64 ^ now_ns() as u64)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = repo.join("locks").join(format!("{name}.lock"));
    write(&path, body.to_string().as_bytes());
    path
}

/// The lock objects in `repo/locks` (file names), sorted.
pub fn lock_files(repo: &Path) -> Vec<String> {
    let mut out: Vec<String> = match fs::read_dir(repo.join("locks")) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.starts_with(".tmp-"))
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// The probe for tests that need permissions to bite: true when this
/// process can read a file with mode 000 (root, or CAP_DAC_OVERRIDE).
pub fn permissions_are_bypassed(scratch: &Path) -> bool {
    let probe = scratch.join(".perm-probe");
    fs::write(&probe, b"x").unwrap();
    chmod(&probe, 0o000);
    let readable = fs::read(&probe).is_ok();
    chmod(&probe, 0o600);
    fs::remove_file(&probe).unwrap();
    readable
}

// ---- RFC 3339 (UTC) without chrono: civil-date algorithms by H. Hinnant ----

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Nanoseconds since the Unix epoch of a UTC RFC 3339 time such as
/// `2026-11-22T00:04:00.838222961Z` (as cairn's JSON prints them).
pub fn rfc3339_to_ns(s: &str) -> i128 {
    let body = s
        .strip_suffix('Z')
        .or_else(|| s.strip_suffix("+00:00"))
        .unwrap_or_else(|| panic!("`{s}` is not a UTC RFC 3339 time"));
    let (date, time) = body.split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let t: Vec<i64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    assert!(d.len() == 3 && t.len() == 3 && frac.len() <= 9, "`{s}`");
    let nanos: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().unwrap()
    };
    let secs = days_from_civil(d[0], d[1], d[2]) * 86_400 + t[0] * 3600 + t[1] * 60 + t[2];
    secs as i128 * 1_000_000_000 + nanos
}

/// The inverse of [`rfc3339_to_ns`], always with nine fraction digits.
pub fn ns_to_rfc3339(ns: i128) -> String {
    let secs = ns.div_euclid(1_000_000_000) as i64;
    let nanos = ns.rem_euclid(1_000_000_000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Now, in nanoseconds since the Unix epoch.
pub fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}

/// The RFC 3339 helpers agree with known instants and with each other.
#[test]
fn rfc3339_helpers_round_trip() {
    assert_eq!(rfc3339_to_ns("1970-01-01T00:00:00Z"), 0);
    assert_eq!(
        rfc3339_to_ns("2000-03-01T00:00:01.5Z"),
        951_868_801_500_000_000
    );
    assert_eq!(
        rfc3339_to_ns("2024-02-29T23:59:59.000000001+00:00"),
        1_709_251_199_000_000_001
    );
    for ns in [
        0i128,
        951_868_801_500_000_000,
        1_709_251_199_000_000_001,
        4_102_444_800_123_456_789,
    ] {
        assert_eq!(rfc3339_to_ns(&ns_to_rfc3339(ns)), ns);
    }
    assert_eq!(
        ns_to_rfc3339(1_709_251_199_000_000_001),
        "2024-02-29T23:59:59.000000001Z"
    );
}

/// Trials of a kill suite: `CAIRN_KILL_TRIALS=N` if set, else `long` under
/// `CAIRN_LONG_TESTS=1`, else `default` (few, so `cargo test` stays fast).
pub fn kill_trials(default: usize, long: usize) -> usize {
    if let Some(n) = std::env::var("CAIRN_KILL_TRIALS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return n;
    }
    match std::env::var("CAIRN_LONG_TESTS").as_deref() {
        Ok("1") => long,
        _ => default,
    }
}

/// The PRNG is deterministic and not trivially repetitive.
#[test]
fn splitmix_is_deterministic() {
    assert_eq!(random_bytes(1000, 7), random_bytes(1000, 7));
    assert_ne!(random_bytes(1000, 7), random_bytes(1000, 8));
    assert_eq!(SplitMix64(0).next_u64(), 0xE220_A839_7B1D_CDAF);
}

// Retention and gc (tests/cli/forget.rs, tests/cli/gc.rs).

impl Env {
    /// A fresh temp dir with a repository made by `cairn init ARGS...`.
    pub fn with_init(args: &[&str]) -> Self {
        let env = Self::uninit();
        run_ok(env.cmd([&init_args()[..], args].concat()));
        env
    }

    /// Runs `cairn ARGS...` and returns its output, whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs `cairn ARGS...`, asserts exit 0, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        stdout(&run_ok(self.cmd(args)))
    }

    /// Writes `files` into a fresh directory `dir` and snapshots it with
    /// `args` (`--kind`, `--name`, ...), re-reading every file; returns the id.
    pub fn snapshot_files(&self, dir: &str, files: &[(&str, &[u8])], args: &[&str]) -> String {
        let src = self.path(dir);
        let _ = fs::remove_dir_all(&src);
        fs::create_dir_all(&src).unwrap();
        for (file, data) in files {
            fs::write(src.join(file), data).unwrap();
        }
        let out = self.ok(&[&["snapshot", "--json", "--force", dir], args].concat());
        let report: Value = serde_json::from_str(&out).unwrap();
        report["id"].as_str().unwrap().to_string()
    }

    /// Snapshot ids, oldest first.
    pub fn snapshot_ids(&self) -> Vec<String> {
        ids(&self.list())
    }

    /// Restores `selector` into a new directory and returns it.
    pub fn restore(&self, selector: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let target = self.path(&format!("restore-{n}"));
        self.ok(&["restore", selector, target.to_str().unwrap()]);
        target
    }

    /// `check --read-data --json`: asserts it finds no damage (exit 0) and
    /// returns the findings (leftovers of interrupted runs are notes).
    pub fn check_read_data(&self) -> Vec<Value> {
        let out = self.run(&["check", "--read-data", "--json"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        assert!(
            out.status.success(),
            "check --read-data found damage ({}): {report}\n{}",
            out.status,
            stderr(&out)
        );
        report["findings"].as_array().cloned().unwrap_or_default()
    }
}

/// Bytes of all files under `path`.
pub fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(path).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_size(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// What [`verify_repository`] read.
#[derive(Debug, Default)]
pub struct Verified {
    pub snapshots: u64,
    pub live_chunks: u64,
    pub packs: u64,
    pub pack_chunks: u64,
}

/// Library-level verification beside `check --read-data`: every chunk of
/// every listed snapshot is located by the catalog and reads back with its
/// BLAKE3 verified, every pack file is named by its content, every chunk in
/// every pack file decodes to its id, and catalog and storage hold the same
/// number of packs (no leftovers).
pub fn verify_repository(repo_path: &Path) -> Verified {
    let repo = open_repo(repo_path);
    let mut v = Verified::default();
    for snap in repo.snapshots(&cairn::SnapshotFilter::default()).unwrap() {
        v.snapshots += 1;
        for f in repo.catalog().files(&snap).unwrap() {
            for loc in repo.locate_all(&f.chunks).unwrap() {
                cairn::blob::read_chunk(repo.storage(), repo.crypt(), &repo.references(), &loc)
                    .unwrap();
                v.live_chunks += 1;
            }
        }
    }
    for obj in repo.storage().list("packs/").unwrap() {
        let pack = cairn::format::pack::id_from_key(&obj.key).unwrap();
        assert_eq!(
            cairn::PackId::of(&repo.storage().get(&obj.key).unwrap()),
            pack,
            "{}",
            obj.key
        );
        for entry in
            cairn::format::pack::read_entries(repo.storage(), repo.crypt(), &pack, obj.size)
                .unwrap()
        {
            let loc = cairn::ChunkLocation { pack, entry };
            cairn::blob::read_chunk(repo.storage(), repo.crypt(), &repo.references(), &loc)
                .unwrap();
            v.pack_chunks += 1;
        }
        v.packs += 1;
    }
    let (catalog_packs, _) = repo.catalog().pack_totals().unwrap();
    assert_eq!(
        catalog_packs, v.packs,
        "catalog and storage list the same packs"
    );
    v
}

/// Where a restore into `out` put source `src` of a snapshot taken in
/// `cwd`: `src` was given relative to `cwd` (stored so), or whole.
pub fn restored_source(out: &Path, cwd: &Path, src: &Path) -> PathBuf {
    let given = out.join(src.strip_prefix(cwd).unwrap_or(src));
    if given.exists() {
        given
    } else {
        out.join(stored(src))
    }
}

/// Where a snapshot stores a source given as `path` (its path as given,
/// without a leading `/` or `.` components): `out.join(stored(&src))` is
/// where a restore into `out` puts it.
pub fn stored(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect()
}
