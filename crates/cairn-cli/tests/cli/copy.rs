//! `cairn copy` between two local repositories through the real binary:
//! everything, one selector, a history; a second run copies nothing; the
//! copies restore bit for bit and `check --read-data` is clean; only the
//! chunks the destination lacks travel; between repositories that cut or
//! seal chunks differently every snapshot is re-encoded; refusals leave
//! the destination untouched; and a copy SIGKILLed at random moments, rerun, finishes
//! without duplicates.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// A source repository with `model/llama` v1 and v2 (v2 rewrites 200 KB of
/// a 1.2 MB file) and one `portfolio/book`, each from its own directory;
/// returns it with the directory of each snapshot, oldest first, and the
/// snapshot reports.
fn source() -> (Env, Vec<PathBuf>, Vec<Value>) {
    let env = Env::new();
    let v1 = env.path("v1/llama");
    let mut weights = random_bytes(1_200_000, 11);
    write(&v1.join("weights.bin"), &weights);
    write(&v1.join("config.json"), b"{\"layers\": 2}\n");
    let v2 = env.path("v2/llama");
    weights[400_000..600_000].copy_from_slice(&random_bytes(200_000, 12));
    write(&v2.join("weights.bin"), &weights);
    write(&v2.join("config.json"), b"{\"layers\": 2}\n");
    let book = env.path("b/book");
    write(&book.join("book.parquet"), &random_bytes(300_000, 13));
    let reports = vec![
        env.snapshot(
            &v1,
            "model",
            "llama",
            &["--version", "v1", "--tag", "milestone"],
        ),
        env.snapshot(
            &v2,
            "model",
            "llama",
            &["--version", "v2", "--description", "ft"],
        ),
        env.snapshot(&book, "portfolio", "book", &[]),
    ];
    (env, vec![v1, v2, book], reports)
}

/// `cairn copy ARGS... --from SRC --to DST`.
fn copy_cmd(src: &Env, dst: &Path, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = src.cmd(["copy"]);
    cmd.args(args)
        .arg("--from")
        .arg(&src.repo)
        .arg("--to")
        .arg(dst);
    cmd
}

/// `cairn copy ARGS... --json` into `dst`, which must succeed.
fn copy_json(src: &Env, dst: &Env, args: &[&str]) -> Value {
    let out = run_ok(copy_cmd(src, &dst.repo, args).arg("--json"));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What identifies a listed snapshot and what it carries over.
fn identity(list: &[Value]) -> Vec<Value> {
    list.iter()
        .map(|s| {
            serde_json::json!([
                s["id"],
                s["kind"],
                s["name"],
                s["version"],
                s["tags"],
                s["description"],
                s["host"],
                s["time"],
                s["sources"]
            ])
        })
        .collect()
}

/// A destination for copies from `src`: a repository of its own, or in the
/// encrypted run one made with `init --from-repo`, sharing `src`'s master
/// key (copy refuses encrypted repositories whose keys differ).
fn destination(src: &Env) -> Env {
    if !crate::encrypted_run::encrypted() {
        return Env::new();
    }
    let dst = Env::uninit();
    run_ok(dst.cmd(init_args()).arg("--from-repo").arg(&src.repo));
    dst
}

/// Restores `id` from `env` and compares it with `src`, stored as
/// `stored`, bit for bit.
fn assert_restores(env: &Env, id: &str, stored: &Path, src: &Path) {
    let out = env.restore(id);
    let restored = out.join(stored);
    assert_diff_clean(src, &restored);
    assert_eq!(tree_nodes(src), tree_nodes(&restored), "snapshot {id}");
    fs::remove_dir_all(out).unwrap();
}

#[test]
fn copy_everything_then_a_second_run_copies_nothing() {
    let (src, dirs, _) = source();
    let dst = destination(&src);
    let r = copy_json(&src, &dst, &[]);
    assert_eq!(
        (u(&r, "snapshots_copied"), u(&r, "snapshots_present")),
        (3, 0)
    );
    assert!(u(&r, "chunks_sent") > 0 && u(&r, "bytes_sent") > 0, "{r}");
    assert!(r["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["state"] == "copied"));
    assert_eq!(identity(&dst.list()), identity(&src.list()));
    for (s, dir) in src.list().iter().zip(&dirs) {
        assert_restores(&dst, s["id"].as_str().unwrap(), src.rel(dir), dir);
    }
    assert!(dst.check_read_data().is_empty(), "nothing left over");

    let again = copy_json(&src, &dst, &[]);
    assert_eq!(
        (
            u(&again, "snapshots_copied"),
            u(&again, "snapshots_present")
        ),
        (0, 3)
    );
    assert_eq!((u(&again, "chunks_sent"), u(&again, "bytes_sent")), (0, 0));
    assert!(again["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["state"] == "present"));
    let human = stdout(&run_ok(copy_cmd(&src, &dst.repo, &[])));
    assert!(
        human.contains("copied 0 snapshots (3 already present); sent 0 chunks"),
        "{human}"
    );
    assert_eq!(dst.list().len(), 3, "no duplicates");
}

#[test]
fn copy_a_selector_then_a_history_sends_only_the_new_chunks() {
    let (src, dirs, reports) = source();
    let dst = destination(&src);
    let v1 = copy_json(&src, &dst, &["llama~1"]);
    assert_eq!(u(&v1, "snapshots_copied"), 1);
    assert_eq!(dst.snapshot_ids(), vec![reports[0]["id"].as_str().unwrap()]);
    // The file chunks the snapshot added, and its trees (which a
    // snapshot's `added_raw` does not count).
    let trees = u(&v1, "raw_bytes_sent") - u(&reports[0], "added_raw");
    assert!((1..8192).contains(&trees), "{v1}");

    let dry = copy_json(&src, &dst, &["--name", "llama", "--dry-run"]);
    assert_eq!(dst.snapshot_ids().len(), 1, "a dry run writes nothing");
    let history = copy_json(&src, &dst, &["--name", "llama"]);
    assert_eq!(
        (
            u(&history, "snapshots_copied"),
            u(&history, "snapshots_present")
        ),
        (1, 1)
    );
    // v2 travels as exactly the chunks it added to the source, and its
    // new trees (its root and the changed directory's: manifest version 2).
    let trees = u(&history, "chunks_sent") - u(&reports[1], "chunks_new");
    assert!((1..=4).contains(&trees), "{history}");
    assert!(u(&history, "raw_bytes_sent") > u(&reports[1], "added_raw"));
    // The 200 KB change plus the chunks around it: with the fixed gear
    // table of a plain repository under 400 KB; with an encrypted one's
    // seeded table the boundaries move, so up to a max chunk (256 KiB) on
    // either side.
    let bound = match crate::encrypted_run::encrypted() {
        true => 200_000 + 2 * (256 << 10),
        false => 400_000,
    };
    assert!(u(&history, "raw_bytes_sent") < bound, "{history}");
    assert_eq!(u(&dry, "bytes_sent"), u(&history, "bytes_sent"));

    let book = &reports[2]["id"].as_str().unwrap()[..10];
    let by_id = copy_json(&src, &dst, &[book, "llama:v2"]);
    assert_eq!(
        (
            u(&by_id, "snapshots_copied"),
            u(&by_id, "snapshots_present")
        ),
        (1, 1)
    );
    assert_eq!(identity(&dst.list()), identity(&src.list()));
    for (r, dir) in reports.iter().zip(&dirs) {
        assert_restores(&dst, r["id"].as_str().unwrap(), src.rel(dir), dir);
    }
    dst.check_read_data();
}

#[test]
fn refusals_name_the_problem_and_leave_the_destination_untouched() {
    let (src, _, _) = source();
    let dst = Env::new();
    copy_json(&src, &dst, &["book"]);
    let before = dst.state();
    let refuse = |cmd: assert_cmd::Command, wants: &[&str]| {
        let err = run_code(cmd, 2);
        for w in wants {
            assert!(err.contains(w), "wanted {w:?} in: {err}");
        }
        assert_eq!(dst.state(), before, "{err}");
    };
    refuse(
        copy_cmd(&src, &dst.repo, &["llama", "nope"]),
        &["nope", "model/llama"],
    );
    refuse(
        copy_cmd(&src, &dst.repo, &["llama~x"]),
        &["llama~x", "number"],
    );
    refuse(
        copy_cmd(&src, &dst.repo, &["--name", "lama"]),
        &["--name lama", "model/llama"],
    );
    let mut missing = src.cmd(["copy", "--to"]);
    missing
        .arg(&dst.repo)
        .arg("--from")
        .arg(src.path("no-such-repo"));
    refuse(
        missing,
        &["source repository", "no-such-repo", "cairn init"],
    );
    let err = run_code(copy_cmd(&src, &src.path("nowhere"), &[]), 2);
    assert!(
        err.contains("destination repository") && err.contains("cairn init"),
        "{err}"
    );
    assert!(!src.path("nowhere").exists(), "copy creates no repository");
}

/// Guards crash consistency of `copy` under SIGKILL at random moments: after
/// each kill, rerunning the copy exits 0 and leaves the destination with
/// exactly the source's snapshots, once each, restoring bit for bit, and
/// `check --read-data` clean (unreferenced packs of the killed run are notes).
#[test]
fn copy_killed_at_random_moments_finishes_on_rerun_without_duplicates() {
    crate::skip_if_encrypted!("its killed children are plain commands without the test password; the encrypted copy path runs in the other copy tests");
    let trials = kill_trials(5, 30);
    let (src, dirs, _) = source();
    let fresh_dest = |n: usize| {
        let repo = src.path(&format!("dest-{n}"));
        run_ok(cairn_in(src.dir.path()).arg("--repo").arg(&repo).args([
            "init",
            "--pack-target",
            "16K",
        ]));
        repo
    };
    // A child we can kill, isolated as `cairn_in` isolates the others.
    let spawn = |dst: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
            .env_remove("CAIRN_REPO")
            .env("XDG_DATA_HOME", src.path("xdg-data"))
            .env("HOME", src.path("home"))
            .args(["--quiet", "copy", "--from"])
            .arg(&src.repo)
            .arg("--to")
            .arg(dst)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // The slowest of three uninterrupted runs, so kill times span a run.
    let full = (0..3)
        .map(|n| {
            let started = Instant::now();
            assert!(spawn(&fresh_dest(1000 + n)).wait().unwrap().success());
            started.elapsed()
        })
        .max()
        .unwrap();
    let mut rng = SplitMix64(0xC0B1_0001);
    let (mut killed, mut midway, mut failures) = (0, 0, Vec::new());
    for trial in 1..=trials {
        let dst = fresh_dest(trial);
        let mut child = spawn(&dst);
        std::thread::sleep(Duration::from_micros(
            rng.next_u64() % full.as_micros() as u64,
        ));
        let _ = child.kill();
        if child.wait().unwrap().signal() == Some(libc::SIGKILL) {
            killed += 1;
            let packs = fs::read_dir(dst.join("packs")).map_or(0, |d| d.count());
            let manifests = fs::read_dir(dst.join("snapshots")).map_or(0, |d| d.count());
            midway += (packs + manifests > 0) as usize;
        }
        let rerun = copy_cmd(&src, &dst, &["--json"]).output().unwrap();
        if !rerun.status.success() {
            failures.push(format!("trial {trial}: rerun failed: {}", stderr(&rerun)));
            continue;
        }
        let dst_env = Env {
            dir: tempfile::tempdir().unwrap(),
            repo: dst,
        };
        if identity(&dst_env.list()) != identity(&src.list()) {
            failures.push(format!("trial {trial}: {:?}", dst_env.snapshot_ids()));
        }
        dst_env.check_read_data();
        for (s, dir) in src.list().iter().zip(&dirs) {
            assert_restores(&dst_env, s["id"].as_str().unwrap(), src.rel(dir), dir);
        }
    }
    eprintln!(
        "copy kill suite: {trials} trials, {killed} killed before they exited ({midway} of \
         them after writing packs or manifests) (a full copy took {full:?})"
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Into a repository with another chunker (in the encrypted run also
/// another key), copy re-encodes: every snapshot gets a new id, keeps its
/// label, time, host and sources, restores bit for bit with its metadata,
/// `check --read-data` is clean, and a second run copies nothing (present
/// by kind, name, version, host and time). A dry run says what it would
/// read, and that it cannot say what would be sent.
#[test]
fn copy_into_another_chunker_re_encodes_every_snapshot() {
    let (src, dirs, reports) = source();
    let dst = Env::with_init(&["--chunk-avg", "16K"]);
    let dry = run_ok(copy_cmd(&src, &dst.repo, &["--dry-run"]));
    let dry = stdout(&dry);
    assert!(
        // Plain run: the chunkers differ; encrypted run: the keys first.
        dry.contains("re-encoding: their") && dry.contains("differ") && dry.contains("would read"),
        "{dry}"
    );
    assert!(dry.contains("known only by reading"), "{dry}");
    assert_eq!(dst.list().len(), 0, "a dry run writes nothing");

    let r = copy_json(&src, &dst, &[]);
    assert_eq!(r["mode"], "re_encoded", "{r}");
    assert!(r["reason"].as_str().unwrap().contains("differ"), "{r}");
    assert_eq!(u(&r, "snapshots_copied"), 3, "{r}");
    assert_eq!(u(&r, "raw_bytes_read"), 2 * (1_200_000 + 14) + 300_000);
    let listed = dst.list();
    let from = src.list();
    let carried = |l: &[Value]| -> Vec<Value> {
        identity(l)
            .into_iter()
            .map(|mut v| {
                v.as_array_mut().unwrap().remove(0);
                v
            })
            .collect()
    };
    assert_eq!(carried(&listed), carried(&from));
    for ((copied, there), (report, dir)) in r["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&listed)
        .zip(reports.iter().zip(&dirs))
    {
        assert_eq!(copied["to_id"], there["id"]);
        assert_ne!(copied["to_id"], report["id"], "a new id");
        assert_restores(&dst, there["id"].as_str().unwrap(), src.rel(dir), dir);
    }
    dst.check_read_data();

    let again = copy_json(&src, &dst, &[]);
    assert_eq!(
        (
            u(&again, "snapshots_copied"),
            u(&again, "snapshots_present")
        ),
        (0, 3),
        "{again}"
    );
    assert_eq!(u(&again, "chunks_sent"), 0);
    assert_eq!(dst.list().len(), 3);
}

/// Plain -> encrypted -> encrypted under another key -> plain: each hop
/// re-encodes, names why, and the last copy restores bit for bit.
#[test]
fn copy_between_plain_and_encrypted_repositories_re_encodes() {
    let env = Env::uninit();
    let cairn = |args: &[&std::ffi::OsStr]| {
        let mut cmd = cairn_in(env.dir.path());
        cmd.args(args)
            .env("CAIRN_PASSWORD", "one password for all")
            .env("CAIRN_KDF_MEMORY_KIB", "64");
        cmd
    };
    let (plain, a, b, back) = (
        env.path("plain"),
        env.path("a"),
        env.path("b"),
        env.path("back"),
    );
    for (repo, enc) in [(&plain, false), (&a, true), (&b, true), (&back, false)] {
        let mut args: Vec<&std::ffi::OsStr> =
            vec!["init".as_ref(), "--repo".as_ref(), repo.as_os_str()];
        if enc {
            args.push("--encryption".as_ref());
        }
        run_ok(cairn(&args));
    }
    let src = env.path("src");
    write(&src.join("f"), &random_bytes(300_000, 3));
    write(&src.join("d/g"), &random_bytes(20_000, 4));
    run_ok(cairn(&[
        "snapshot".as_ref(),
        env.rel(&src).as_os_str(),
        "--kind".as_ref(),
        "model".as_ref(),
        "--name".as_ref(),
        "m".as_ref(),
        "--repo".as_ref(),
        plain.as_os_str(),
    ]));
    for (from, to, why) in [
        (&plain, &a, "the destination is encrypted"),
        (&a, &b, "encryption keys differ"),
        (&b, &back, "the source is encrypted"),
    ] {
        let out = run_ok(cairn(&[
            "copy".as_ref(),
            "--from".as_ref(),
            from.as_os_str(),
            "--to".as_ref(),
            to.as_os_str(),
        ]));
        let out = stdout(&out);
        assert!(
            out.contains(why) && out.contains("copied 1 snapshot"),
            "{out}"
        );
        run_ok(cairn(&[
            "check".as_ref(),
            "--read-data".as_ref(),
            "--repo".as_ref(),
            to.as_os_str(),
        ]));
    }
    let restored = env.path("restored");
    run_ok(cairn(&[
        "restore".as_ref(),
        "m".as_ref(),
        restored.as_os_str(),
        "--repo".as_ref(),
        back.as_os_str(),
    ]));
    let restored = restored.join(env.rel(&src));
    assert_diff_clean(&src, &restored);
    assert_eq!(tree_nodes(&src), tree_nodes(&restored));
}

/// `init --from-repo` makes a repository that shares the source's chunker
/// and master key (under its own password and key file), so copies go both
/// ways between encrypted repositories, sending only what is missing.
#[test]
fn init_from_repo_shares_the_key_so_encrypted_repositories_copy() {
    let env = Env::uninit();
    let (a, b) = (env.path("a"), env.path("b"));
    let pass_a = env.path("pass-a");
    write(&pass_a, b"password of a\n");
    let cairn = |password: &str, args: &[&str]| {
        let mut cmd = cairn_in(env.dir.path());
        cmd.env("CAIRN_PASSWORD", password)
            .env("CAIRN_KDF_MEMORY_KIB", "64")
            .args(args);
        cmd
    };
    let pa = "password of a";
    let pb = "password of b";
    run_ok(
        cairn(pa, &["init", "--encryption", "--chunk-avg", "16K"])
            .arg("--repo")
            .arg(&a),
    );
    let src = env.path("src/m");
    write(&src.join("w.bin"), &random_bytes(400_000, 21));
    write(&src.join("c.json"), b"{}");
    run_ok(
        cairn(pa, &["snapshot", "--kind", "model", "--name", "m"])
            .arg(env.rel(&src))
            .arg("--repo")
            .arg(&a),
    );

    let out = run_ok(
        cairn(pb, &["init"])
            .arg("--repo")
            .arg(&b)
            .arg("--from-repo")
            .arg(&a)
            .arg("--from-password-file")
            .arg(&pass_a),
    );
    assert!(
        stdout(&out).contains("created encrypted cairn repository"),
        "{}",
        stdout(&out)
    );
    let copy = |password: &str, from: &Path, to: &Path| {
        let out = run_ok(
            cairn(password, &["copy", "--json", "--from-password-file"])
                .arg(&pass_a)
                .arg("--from")
                .arg(from)
                .arg("--to")
                .arg(to),
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let r = copy(pb, &a, &b);
    assert_eq!(u(&r, "snapshots_copied"), 1, "{r}");
    let restored = env.path("restored");
    run_ok(
        cairn(pb, &["restore", "m"])
            .arg(&restored)
            .arg("--repo")
            .arg(&b),
    );
    assert_diff_clean(&src, &restored.join("src/m"));
    run_ok(cairn(pb, &["check", "--read-data"]).arg("--repo").arg(&b));
    // Its own key file: a's password does not open b.
    let err = run_code(cairn(pa, &["list"]).arg("--repo").arg(&b), 2);
    assert!(err.contains("password"), "{err}");

    // A new version snapshotted into b goes back to a with only its new chunks.
    let mut w = fs::read(src.join("w.bin")).unwrap();
    w[100_000..120_000].copy_from_slice(&random_bytes(20_000, 22));
    write(&src.join("w.bin"), &w);
    run_ok(
        cairn(pb, &["snapshot", "--kind", "model", "--name", "m"])
            .arg(env.rel(&src))
            .arg("--repo")
            .arg(&b),
    );
    let back = run_ok(
        cairn(pa, &["copy", "--json"])
            .arg("--from")
            .arg(&b)
            .arg("--to")
            .arg(&a)
            .env("CAIRN_PASSWORD", pa)
            .arg("--from-password-file")
            .arg({
                let p = env.path("pass-b");
                write(&p, pb.as_bytes());
                p
            }),
    );
    let back: Value = serde_json::from_slice(&back.stdout).unwrap();
    assert_eq!(
        (u(&back, "snapshots_copied"), u(&back, "snapshots_present")),
        (1, 1),
        "{back}"
    );
    assert!(
        u(&back, "bytes_sent") < 200_000,
        "sent more than the change: {back}"
    );
    run_ok(cairn(pa, &["check", "--read-data"]).arg("--repo").arg(&a));

    // A plain source shares only its chunker; asking for encryption from it
    // is refused, and so is a chunker of one's own.
    let plain = env.path("plain");
    run_ok(cairn(pa, &["init"]).arg("--repo").arg(&plain));
    let err = run_code(
        cairn(pa, &["init", "--encryption"])
            .arg("--repo")
            .arg(env.path("c"))
            .arg("--from-repo")
            .arg(&plain),
        2,
    );
    assert!(
        err.contains("not encrypted, so there is no key to share"),
        "{err}"
    );
    assert!(!env.path("c").join("config").exists(), "nothing made");
    let err = run_code(
        cairn(pa, &["init", "--chunk-avg", "1M"])
            .arg("--repo")
            .arg(env.path("d"))
            .arg("--from-repo")
            .arg(&a),
        2,
    );
    assert!(err.contains("cannot be used with"), "{err}");
}
