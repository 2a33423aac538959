//! `cairn mount`: the real binary serving a real FUSE mount, read with
//! ordinary file calls. Where FUSE cannot be used (no /dev/fuse, no
//! fusermount, mounting not permitted) each test is SKIPPED with a message,
//! except under CI (`$CI` set), where that fails the test.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// The unmount helper, if FUSE can be used here at all.
fn fusermount() -> Result<&'static str, String> {
    if !Path::new("/dev/fuse").exists() {
        return Err("/dev/fuse is missing".into());
    }
    ["fusermount3", "fusermount"]
        .into_iter()
        .find(|bin| Command::new(bin).arg("-V").output().is_ok())
        .ok_or_else(|| {
            "neither fusermount3 nor fusermount is installed (apt-get install fuse3)".into()
        })
}

/// Skips (`None`, with a message) where FUSE is unavailable, or fails
/// under CI.
fn skip_unless_fuse<T>(test: &str, why: String) -> Option<T> {
    if std::env::var_os("CI").is_some() {
        panic!("CI must run {test}, but FUSE is unavailable: {why}");
    }
    eprintln!("SKIPPED {test}: FUSE is unavailable here ({why})");
    None
}

fn is_mounted(dir: &Path) -> bool {
    let dir = dir.to_string_lossy();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(&*dir))
}

/// A running `cairn mount`; unmounted (lazily) and killed if the test
/// fails before it unmounts.
pub(crate) struct Mounted {
    child: Option<Child>,
    pub(crate) dir: PathBuf,
    helper: &'static str,
}

impl Mounted {
    /// Starts `cairn mount DIR EXTRA...` and waits until the kernel lists
    /// the mount; `Err` with its stderr when the command gave up.
    fn start(
        env: &Env,
        extra: &[&str],
        envs: &[(&str, &str)],
        helper: &'static str,
    ) -> Result<Self, String> {
        let dir = env.path("mnt");
        fs::create_dir_all(&dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        // A child we can signal, isolated as `cairn_in` isolates the others.
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .envs(password_env())
            .envs(envs.iter().copied())
            .env_remove("CAIRN_REPO")
            .env("XDG_DATA_HOME", env.path("xdg-data"))
            .env("HOME", env.path("home"))
            .arg("--repo")
            .arg(&env.repo)
            .arg("mount")
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !is_mounted(&dir) {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return Err(format!("`cairn mount` exited with {status}: {err}"));
            }
            assert!(
                Instant::now() < deadline,
                "cairn mount did not mount within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self {
            child: Some(child),
            dir,
            helper,
        })
    }

    /// Waits for the process to end by itself; its exit code.
    fn wait(&mut self) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("cairn mount did not exit within 20 s of the unmount");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `fusermount -u DIR`, then the exit code of `cairn mount`.
    fn unmount(mut self) -> Option<i32> {
        let out = Command::new(self.helper)
            .arg("-u")
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{} -u: {}", self.helper, stderr(&out));
        self.wait()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new(self.helper)
                .args(["-u", "-z"])
                .arg(&self.dir)
                .output();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts the mount, or says why the test is skipped.
pub(crate) fn mount_or_skip(
    env: &Env,
    extra: &[&str],
    envs: &[(&str, &str)],
    test: &str,
) -> Option<Mounted> {
    let helper = match fusermount() {
        Ok(h) => h,
        Err(why) => return skip_unless_fuse(test, why),
    };
    match Mounted::start(env, extra, envs, helper) {
        Ok(m) => Some(m),
        Err(why) => skip_unless_fuse(test, why),
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    out.sort();
    out
}

/// The folders of snapshots in a history (names starting with a year).
fn time_folders(history: &Path) -> Vec<String> {
    names(history)
        .into_iter()
        .filter(|n| n.starts_with("20"))
        .collect()
}

fn read_range(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut f = fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0; len];
    let mut got = 0;
    while got < len {
        let n = f.read(&mut buf[got..]).unwrap();
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    buf
}

/// Guards the layout (histories, time folders, latest, by-id, by-version),
/// bytes, random access into a multi-chunk file, modes, mtimes, symlinks, a
/// snapshot taken while mounted showing up, the lock a mount holds, and a
/// clean exit on `fusermount -u`.
#[test]
fn mount_shows_histories_and_snapshots_readable_at_any_offset() {
    let env = Env::new();
    let src = env.path("svc");
    let big = random_bytes(1_500_000, 21);
    write(&src.join("state.json"), b"{\"book\": 1}\n");
    write(&src.join("data/weights.bin"), &big);
    write(&src.join("bin/run.sh"), b"#!/bin/sh\necho hi\n");
    chmod(&src.join("bin/run.sh"), 0o750);
    set_mtime(&src.join("state.json"), 1_700_000_000, 0);
    std::os::unix::fs::symlink("state.json", src.join("current")).unwrap();
    let first = env.snapshot(&src, "portfolio", "svc", &["--version", "v1"]);
    write(&env.path("cfg/app.yaml"), b"a: 1\n");
    env.snapshot(&env.path("cfg/app.yaml"), "config", "app", &[]);

    let test = "mount_shows_histories_and_snapshots_readable_at_any_offset";
    let Some(m) = mount_or_skip(&env, &[], &[], test) else {
        return;
    };
    let root = m.dir.clone();
    assert_eq!(names(&root), ["config", "portfolio"]);
    assert_eq!(names(&root.join("portfolio")), ["svc"]);
    let history = root.join("portfolio/svc");
    let folders = time_folders(&history);
    assert_eq!(folders.len(), 1, "{:?}", names(&history));
    assert_eq!(
        names(&history),
        [folders[0].as_str(), "by-id", "by-version", "latest"]
    );
    assert_eq!(
        fs::read_link(history.join("latest")).unwrap(),
        Path::new(&folders[0])
    );
    let short = &first["id"].as_str().unwrap()[..8];
    let up = format!("../{}", folders[0]);
    assert_eq!(
        fs::read_link(history.join("by-id").join(short)).unwrap(),
        Path::new(&up)
    );
    assert_eq!(
        fs::read_link(history.join("by-version/v1")).unwrap(),
        Path::new(&up)
    );

    // Inside the snapshot: the tree as it was, through each way in.
    for way in [
        folders[0].clone(),
        "latest".into(),
        format!("by-id/{short}"),
        "by-version/v1".into(),
    ] {
        let snap = history.join(&way).join("svc");
        assert_eq!(
            names(&snap),
            ["bin", "current", "data", "state.json"],
            "{way}"
        );
        assert_eq!(
            fs::read(snap.join("data/weights.bin")).unwrap(),
            big,
            "{way}"
        );
    }
    let snap = history.join("latest/svc");
    assert_eq!(
        fs::read(snap.join("state.json")).unwrap(),
        b"{\"book\": 1}\n"
    );
    assert_eq!(
        fs::read_link(snap.join("current")).unwrap(),
        Path::new("state.json")
    );
    assert_eq!(fs::read(snap.join("current")).unwrap(), b"{\"book\": 1}\n");
    let run = fs::metadata(snap.join("bin/run.sh")).unwrap();
    assert_eq!(run.permissions().mode() & 0o7777, 0o750);
    assert_eq!(
        fs::metadata(snap.join("state.json")).unwrap().mtime(),
        1_700_000_000
    );
    let weights = snap.join("data/weights.bin");
    assert_eq!(fs::metadata(&weights).unwrap().len(), big.len() as u64);
    assert!(fs::metadata(snap.join("data")).unwrap().is_dir());

    // Random access: seeks into the middle, across chunks, past the end.
    for (offset, len) in [
        (777_777, 300_000),
        (3, 10),
        (1_499_990, 100),
        (2_000_000, 10),
    ] {
        let from = (offset as usize).min(big.len());
        let want = &big[from..(from + len).min(big.len())];
        assert_eq!(read_range(&weights, offset, len), want, "at {offset}");
    }
    assert_eq!(names(&root.join("config/app")).len(), 4);

    // The mount holds a shared lock: gc (exclusive) is refused, naming it.
    let err = run_code(env.cmd(["gc"]), 2);
    assert!(err.contains("mount"), "{err}");

    // A snapshot taken meanwhile shows up in its history.
    write(&src.join("state.json"), b"{\"book\": 2}\n");
    env.snapshot(&src, "portfolio", "svc", &["--version", "v2"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while time_folders(&history).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the second snapshot never appeared"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        fs::read(history.join("by-version/v2/svc/state.json")).unwrap(),
        b"{\"book\": 2}\n"
    );
    assert_eq!(
        fs::read(history.join("by-version/v1/svc/state.json")).unwrap(),
        b"{\"book\": 1}\n"
    );
    assert_eq!(m.unmount(), Some(0));
    assert!(!is_mounted(&root));
}

/// Guards the lock's lease being refreshed while mounted, the unmount on
/// SIGTERM, and the lock's release with it.
#[test]
fn mount_keeps_its_lock_fresh_and_unmounts_and_exits_0_on_sigterm() {
    let env = Env::new();
    write(&env.path("a/x.txt"), b"x\n");
    env.snapshot(&env.path("a"), "config", "a", &[]);
    let test = "mount_keeps_its_lock_fresh_and_unmounts_and_exits_0_on_sigterm";
    // A 2 s lease refreshed every second: without refreshes it would be
    // stale by the time gc looks.
    let lease = [
        ("CAIRN_LOCK_LEASE_SECS", "2"),
        ("CAIRN_LOCK_REFRESH_SECS", "1"),
    ];
    let Some(mut m) = mount_or_skip(&env, &["--kind", "config"], &lease, test) else {
        return;
    };
    let x = m.dir.join("config/a/latest/a/x.txt");
    assert_eq!(fs::read(&x).unwrap(), b"x\n");
    std::thread::sleep(Duration::from_secs(4));
    let err = run_code(env.cmd(["gc"]), 2);
    assert!(err.contains("mount"), "the lease lapsed: {err}");
    assert_eq!(fs::read(&x).unwrap(), b"x\n");
    let pid = m.child.as_ref().unwrap().id();
    // SAFETY: a plain kill(2) of the child this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    assert_eq!(m.wait(), Some(0));
    assert!(!is_mounted(&m.dir));
    // Its lock is gone: an exclusive command runs.
    run_ok(env.cmd(["gc"]));
}
