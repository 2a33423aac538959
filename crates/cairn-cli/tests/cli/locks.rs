//! Repository locks through the real binary (docs/FORMAT.md, "Locks"):
//! stale locks (of dead processes on this host, or whose lease expired on
//! any host) are cleared, live holders are named and respected,
//! temp files of killed lock writes are cleaned up, `unlock` /
//! `unlock --all` do what they say, and concurrent snapshots into one
//! repository both commit intact.

use std::fs;
use std::process::Stdio;

use crate::common::*;

/// A repository with one snapshot `base` of `src/`.
fn base() -> Env {
    let env = Env::new();
    write(&env.path("src/a.bin"), &random_bytes(200_000, 201));
    write(&env.path("src/b.txt"), b"settings\n");
    env.snapshot(&env.path("src"), "model", "base", &[]);
    env
}

/// `cairn snapshot src --kind model --name NAME`.
fn snapshot_cmd(env: &Env, name: &str) -> assert_cmd::Command {
    let mut cmd = env.cairn();
    cmd.arg("snapshot")
        .arg(env.path("src"))
        .args(["--kind", "model", "--name", name]);
    cmd
}

/// Guards automatic clearing of stale locks: locks of dead processes on
/// this host (shared and exclusive) never block a snapshot, the exclusive
/// one is removed by it, and the next exclusive command clears the rest.
#[test]
fn stale_locks_of_dead_processes_are_cleared_automatically() {
    let env = base();
    let host = hostname();
    let stale_x = write_lock(&env.repo, true, &host, dead_pid(), "gc");
    let stale_s = write_lock(&env.repo, false, &host, dead_pid(), "snapshot");

    run_ok(snapshot_cmd(&env, "next"));
    assert!(!stale_x.exists(), "the stale exclusive lock is cleared");
    assert_eq!(env.list().len(), 2);

    let r = env.json(["repair"]);
    assert_eq!(r["unresolved"], serde_json::json!([]));
    assert!(!stale_s.exists(), "the stale shared lock is cleared");
    assert_eq!(lock_files(&env.repo), Vec::<String>::new());
}

/// Guards `cairn unlock`: it removes exactly the stale locks (dead pid on
/// this host) and names them; a live holder's lock and a lock of another
/// host stay; `unlock --all` removes everything.
#[test]
fn unlock_removes_stale_locks_but_not_live_ones() {
    let env = base();
    let host = hostname();
    let holder = LiveProcess::spawn();
    let dead = dead_pid();
    let stale_s = write_lock(&env.repo, false, &host, dead, "snapshot");
    let stale_x = write_lock(&env.repo, true, &host, dead, "gc");
    let live = write_lock(&env.repo, false, &host, holder.pid(), "snapshot");
    let remote = write_lock(&env.repo, true, "some-other-host", dead, "gc");

    let out = run_ok(env.cmd(["unlock"]));
    let text = stdout(&out);
    assert!(text.contains("2 locks removed"), "{text}");
    assert!(text.contains(&format!("pid {dead}")), "{text}");
    assert!(!stale_s.exists() && !stale_x.exists());
    assert!(live.exists(), "a live holder's lock stays");
    assert!(
        remote.exists(),
        "another host's lock cannot be judged and stays"
    );

    // The other host's exclusive lock still blocks a snapshot, named.
    let err = run_code(snapshot_cmd(&env, "next"), 2);
    assert!(
        err.contains("some-other-host") && err.contains("exclusive lock for `gc`"),
        "{err}"
    );

    let out = run_ok(env.cmd(["unlock", "--all"]));
    assert!(stdout(&out).contains("2 locks removed"), "{}", stdout(&out));
    assert_eq!(lock_files(&env.repo), Vec::<String>::new());
    run_ok(snapshot_cmd(&env, "next"));
    holder.kill();
}

/// Guards the exclusive commands against a running snapshot: while a live
/// process holds a shared lock, `repair` and `rebuild-catalog` exit 2
/// naming the holder and change nothing, while another snapshot may still
/// run; once the holder is gone its lock is stale and `repair` proceeds.
#[test]
fn a_live_shared_holder_blocks_repair_and_rebuild() {
    let env = base();
    let holder = LiveProcess::spawn();
    let lock = write_lock(&env.repo, false, &hostname(), holder.pid(), "snapshot");
    let before = env.state();
    for cmd in ["repair", "rebuild-catalog"] {
        let yes = (cmd == "rebuild-catalog").then_some("--yes");
        let err = run_code(env.cmd([cmd].into_iter().chain(yes)), 2);
        assert!(
            err.contains("repository is locked")
                && err.contains("shared lock for `snapshot`")
                && err.contains(&format!("held by pid {}", holder.pid()))
                && err.contains(&hostname()),
            "{cmd}: {err}"
        );
        assert_eq!(env.state(), before, "{cmd} changed the repository");
        assert_eq!(lock_files(&env.repo).len(), 1, "{cmd} left its own lock");
    }
    run_ok(snapshot_cmd(&env, "beside"));
    assert!(lock.exists());

    holder.kill();
    env.json(["repair"]);
    assert!(!lock.exists());
    assert_eq!(lock_files(&env.repo), Vec::<String>::new());
}

/// Guards exclusivity in the other direction: a live exclusive holder
/// (say a `gc`) makes `snapshot` exit 2 naming it, without committing
/// anything.
#[test]
fn a_live_exclusive_holder_blocks_snapshots() {
    let env = base();
    let holder = LiveProcess::spawn();
    write_lock(&env.repo, true, &hostname(), holder.pid(), "gc");
    let before = env.state();
    let err = run_code(snapshot_cmd(&env, "blocked"), 2);
    assert!(
        err.contains(&format!(
            "exclusive lock for `gc` held by pid {}",
            holder.pid()
        )) && err.contains("cairn unlock"),
        "{err}"
    );
    assert_eq!(env.state(), before);
    holder.kill();
    run_ok(snapshot_cmd(&env, "after"));
}

/// Guards unreadable lock objects: one counts as an exclusive lock of an
/// unknown holder (writers refuse, saying so), `unlock` leaves it (it
/// cannot tell it is stale), and `unlock --all` removes it.
#[test]
fn an_unreadable_lock_blocks_until_unlock_all() {
    let env = base();
    let bad = env.repo.join(format!("locks/{}.lock", "0f".repeat(16)));
    write(&bad, b"{\"exclusive\": tr");
    let err = run_code(snapshot_cmd(&env, "blocked"), 2);
    assert!(
        err.contains("exclusive lock of an unknown holder: unreadable lock file")
            && err.contains("`cairn unlock --all` removes it")
            && !err.contains("1970"),
        "{err}"
    );
    run_ok(env.cmd(["unlock"]));
    assert!(bad.exists());
    let out = run_ok(env.cmd(["unlock", "--all"]));
    assert!(stdout(&out).contains("1 lock removed"), "{}", stdout(&out));
    run_ok(snapshot_cmd(&env, "after"));
}

/// Guards concurrent writers: two `snapshot` processes started together
/// into one repository, over overlapping data, both succeed; afterwards
/// `check --read-data` finds no damage and each restores bit for bit.
#[test]
fn two_concurrent_snapshots_both_commit() {
    let env = Env::new();
    let shared = random_bytes(20_000_000, 202);
    for (dir, seed) in [("one", 203), ("two", 204)] {
        write(&env.path(&format!("{dir}/shared.bin")), &shared);
        write(
            &env.path(&format!("{dir}/own.bin")),
            &random_bytes(6_000_000, seed),
        );
        write(
            &env.path(&format!("{dir}/cfg/settings.toml")),
            dir.as_bytes(),
        );
    }
    let spawn = |dir: &str| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("cairn"))
            .envs(password_env())
            .arg("--repo")
            .arg(&env.repo)
            .arg("snapshot")
            .arg(env.path(dir))
            .args(["--kind", "model", "--name", dir, "--json", "--quiet"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children = [spawn("one"), spawn("two")];
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "concurrent snapshot failed: {}",
            stderr(&out)
        );
    }
    assert_eq!(env.list().len(), 2);
    let report = env.json(["check", "--read-data"]);
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["damage"] == false),
        "{report}"
    );
    env.assert_all_restore(&|name| env.path(name));
    assert_eq!(lock_files(&env.repo), Vec::<String>::new());
}

/// Guards the exclusive lock against a real running snapshot: a
/// `snapshot` frozen (SIGSTOP) while it holds its shared lock makes
/// `repair` exit 2 naming its pid; resumed, it commits, and the repository
/// checks clean.
#[test]
fn a_running_snapshot_blocks_repair_naming_it() {
    let env = base();
    write(&env.path("big/w.bin"), &random_bytes(24_000_000, 205));
    for attempt in 0..5 {
        let name = format!("big-{attempt}");
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("cairn"))
            .envs(password_env())
            .arg("--repo")
            .arg(&env.repo)
            .arg("snapshot")
            .arg(env.path("big"))
            .args(["--kind", "model", "--name", &name, "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        while lock_files(&env.repo).is_empty() && child.try_wait().unwrap().is_none() {
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
        // Freeze it; if it already finished, try again with a new name.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
        let holds = lock_files(&env.repo).len() == 1 && child.try_wait().unwrap().is_none();
        if holds {
            let err = run_code(env.cmd(["repair"]), 2);
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
            assert!(
                err.contains(&format!("shared lock for `snapshot` held by pid {pid}")),
                "{err}"
            );
        } else {
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        if holds {
            assert_eq!(lock_files(&env.repo), Vec::<String>::new());
            let report = env.json(["check", "--read-data"]);
            assert!(
                report["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|f| f["damage"] == false),
                "{report}"
            );
            env.assert_all_restore(&|n| env.path(if n == "base" { "src" } else { "big" }));
            return;
        }
    }
    panic!("the snapshot finished before its lock was seen, 5 times");
}

/// Regression guard: `unlock` works while the catalog is lost. It used to
/// open the catalog first, so a lock `rebuild-catalog` could not clear by
/// itself (an unreadable one, or another host's) left the repository stuck:
/// `rebuild-catalog` said "locked, run `cairn unlock`", and `unlock` said
/// "catalog missing, run `cairn rebuild-catalog`".
#[test]
fn unlock_works_without_a_catalog() {
    let env = base();
    let before = stdout(&run_ok(env.cmd(["list", "--json"])));
    write_lock(&env.repo, true, "some-other-host", 4242, "gc");
    fs::remove_file(env.repo.join("catalog.db")).unwrap();
    let err = run_code(env.cmd(["rebuild-catalog", "--yes"]), 2);
    assert!(
        err.contains("some-other-host") && err.contains("cairn unlock"),
        "{err}"
    );
    let out = run_ok(env.cmd(["unlock", "--all"]));
    assert!(stdout(&out).contains("1 lock removed"), "{}", stdout(&out));
    env.json(["rebuild-catalog", "--yes"]);
    assert_eq!(stdout(&run_ok(env.cmd(["list", "--json"]))), before);
    // A missing repository is still an error naming it.
    let nowhere = env.path("nowhere");
    let err = run_code(
        cairn_in(env.dir.path())
            .arg("--repo")
            .arg(&nowhere)
            .arg("unlock"),
        2,
    );
    assert!(err.contains("cairn init"), "{err}");
}

const HOUR: i64 = 3_600_000_000_000;

/// Guards item 8 of the reliability issue: another host's lock used to
/// never go stale. One whose lease expired (and a lock from before leases,
/// taken over a day ago) no longer blocks a snapshot, and `unlock` clears
/// it, naming the host.
#[test]
fn another_hosts_expired_lease_is_stale() {
    let env = base();
    let now = now_ns() as i64;
    let expired = Lease {
        time_ns: now - 2 * HOUR,
        refreshed_ns: Some(now - HOUR),
        expires_ns: Some(now - 1),
    };
    let legacy = Lease {
        time_ns: now - 25 * HOUR,
        refreshed_ns: None,
        expires_ns: None,
    };
    let x = write_lock_with(&env.repo, true, "gone-host", 4242, "gc", expired);
    let old = write_lock_with(&env.repo, true, "old-host", 4243, "gc", legacy);
    run_ok(snapshot_cmd(&env, "next"));
    assert!(!x.exists() && !old.exists(), "the snapshot cleared both");

    let expired = Lease {
        time_ns: now - 2 * HOUR,
        refreshed_ns: Some(now - HOUR),
        expires_ns: Some(now - 1),
    };
    write_lock_with(&env.repo, false, "gone-host", 4242, "snapshot", expired);
    let text = stdout(&run_ok(env.cmd(["unlock"])));
    assert!(
        text.contains("1 lock removed") && text.contains("on gone-host"),
        "{text}"
    );
    assert_eq!(lock_files(&env.repo), Vec::<String>::new());
}

/// Guards the advice of a live lease of another host: the error names the
/// host, the age and when the lease expires, and no longer claims that
/// `cairn unlock` clears it (it does not; only `--all` does).
#[test]
fn another_hosts_live_lease_blocks_with_true_advice() {
    let env = base();
    let lock = write_lock(&env.repo, true, "busy-host", 4242, "gc");
    let before = env.state();
    let err = run_code(snapshot_cmd(&env, "blocked"), 2);
    assert!(
        err.contains("exclusive lock for `gc` held by pid 4242 on busy-host")
            && err.contains("(1h 00m ago")
            && err.contains("if busy-host is gone, the lock expires at")
            && err.contains("`cairn unlock --all` clears every lock")
            && !err.contains("if that process is gone")
            && !err.contains("is running on this host"),
        "{err}"
    );
    assert_eq!(env.state(), before);
    run_ok(env.cmd(["unlock"]));
    assert!(lock.exists(), "a live lease is not stale");
}

/// Guards item 9: a lock temp file left by a killed writer is reported by
/// `check` as a note (not damage) and removed by `unlock` and by `gc`,
/// while one whose writer runs is left alone.
#[test]
fn temp_files_of_killed_lock_writes_are_reported_and_removed() {
    let env = base();
    let locks = env.repo.join("locks");
    fs::create_dir_all(&locks).unwrap();
    let killed = |n: u32| locks.join(format!(".tmp-{}.lock-{}-{n}", "ab".repeat(16), dead_pid()));
    let live = LiveProcess::spawn();
    let running = locks.join(format!(".tmp-{}.lock-{}-0", "cd".repeat(16), live.pid()));
    write(&running, b"{\"excl");
    let first = killed(0);
    write(&first, b"{\"excl");

    let report = env.json(["check"]);
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(findings[0]["problem"], "lock_temp_file");
    assert_eq!(findings[0]["damage"], false);
    let text = stdout(&run_ok(env.cmd(["check"])));
    assert!(
        text.contains("note: lock temp file") && text.contains("no damage found"),
        "{text}"
    );

    let text = stdout(&run_ok(env.cmd(["unlock"])));
    assert!(
        text.contains("removed leftover temp file locks/.tmp-"),
        "{text}"
    );
    assert!(!first.exists() && running.exists());

    let second = killed(1);
    write(&second, b"{\"excl");
    let r = env.json(["gc"]);
    assert_eq!(r["report"]["leftovers_deleted"], 1, "{r}");
    assert!(!second.exists() && running.exists());
    live.kill();
}

/// Guards the lease settings' parsing: a bad value is an error naming the
/// variable, not a silently default lease.
#[test]
fn a_bad_lease_setting_is_an_error() {
    let env = base();
    let mut cmd = env.cmd(["list"]);
    cmd.env("CAIRN_LOCK_REFRESH_SECS", "soon");
    let err = run_code(cmd, 2);
    assert!(err.contains("CAIRN_LOCK_REFRESH_SECS"), "{err}");
    let mut cmd = env.cmd(["list"]);
    cmd.env("CAIRN_LOCK_LEASE_SECS", "5")
        .env("CAIRN_LOCK_REFRESH_SECS", "5");
    let err = run_code(cmd, 2);
    assert!(err.contains("refresh interval"), "{err}");
}

/// Guards `--lock-wait`: a snapshot meeting a live gc's lock fails at once
/// without it, and with it waits until the lock goes, then saves.
#[test]
fn lock_wait_retries_until_the_holder_is_done() {
    let env = Env::new();
    write(&env.path("src/f"), b"data\n");
    let live = LiveProcess::spawn();
    let lock = write_lock(&env.repo, true, &hostname(), live.pid(), "gc");
    let err = run_code(snapshot_cmd(&env, "first"), 2);
    assert!(
        err.contains("--lock-wait"),
        "the hint offers waiting: {err}"
    );

    let remover = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        std::fs::remove_file(&lock).unwrap();
    });
    let started = std::time::Instant::now();
    run_ok(snapshot_cmd(&env, "waited").args(["--lock-wait", "2m"]));
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    remover.join().unwrap();
    assert_eq!(env.list().len(), 1);
    live.kill();

    let err = run_code(env.cmd(["--lock-wait", "soon", "list"]), 2);
    assert!(err.contains("`soon` is not a duration"), "{err}");
}
