//! Restore at the edges. Each test names the defect it guards.

use std::fs;
use std::path::Path;

use crate::common::*;

/// Regression: a 250-byte file name snapshotted fine but did not restore
/// ("File name too long"): the temp name `.NAME.cairn-PID` beside it went
/// over the 255-byte limit, and the whole restore aborted.
#[test]
fn a_file_name_of_250_bytes_restores() {
    let env = Env::new();
    let src = env.path("long");
    let name = format!("{}.bin", "n".repeat(246));
    assert_eq!(name.len(), 250);
    let data = random_bytes(200_000, 21);
    write(&src.join(&name), &data);
    write(&src.join("short.txt"), b"short\n");
    env.snapshot(&src, "config", "long", &[]);
    let out = env.path("out");
    run_ok(env.cmd(["restore".as_ref(), "long".as_ref(), out.as_os_str()]));
    assert_eq!(fs::read(out.join("long").join(&name)).unwrap(), data);
    assert_diff_clean(&src, &out.join("long"));
}

/// Writes a file named like a restore's temp file, as a killed restore
/// leaves it (full size, hidden).
fn leftover(path: &Path) {
    write(path, &random_bytes(100_000, 5));
}

/// Regression: a killed restore left full-size hidden temp files that no
/// later restore removed, not even with `--overwrite`. The next restore
/// removes them in the directories it restores into (and only those; a
/// live restore's temp files and look-alike names stay) and says so.
#[test]
fn leftover_temp_files_of_a_killed_restore_are_removed() {
    let env = Env::new();
    let src = env.path("d");
    write(&src.join("f"), b"f\n");
    write(&src.join("sub/g"), b"g\n");
    env.snapshot(&src, "config", "d", &[]);
    let out = env.path("out");
    let dead = dead_pid();
    // As the killed restore left them: f and sub/ were never finished.
    leftover(&out.join(format!("d/.cairn-tmp-{dead}-0")));
    leftover(&out.join(format!("d/sub/.cairn-tmp-{dead}-1")));
    // Left by cairn before temp names were short: `.NAME.cairn-PID`.
    leftover(&out.join(format!("d/.f.cairn-{dead}")));
    // Not ours to remove: a live process's temp file, names that only look
    // alike, and a directory this restore does not write into.
    let live = LiveProcess::spawn();
    let kept = [
        format!("d/.cairn-tmp-{}-3", live.pid()),
        "d/.cairn-tmp-notes".to_string(),
        format!("d/.other.cairn-{dead}"),
        format!("elsewhere/.cairn-tmp-{dead}-2"),
    ];
    for k in &kept {
        leftover(&out.join(k));
    }

    let done = run_ok(env.cmd(["restore".as_ref(), "d".as_ref(), out.as_os_str()]));
    let err = stderr(&done);
    assert!(
        err.contains("removed 3 leftover temp files of an interrupted restore"),
        "{err}"
    );
    assert_eq!(fs::read(out.join("d/f")).unwrap(), b"f\n");
    assert_eq!(fs::read(out.join("d/sub/g")).unwrap(), b"g\n");
    for gone in [
        format!("d/.cairn-tmp-{dead}-0"),
        format!("d/sub/.cairn-tmp-{dead}-1"),
        format!("d/.f.cairn-{dead}"),
    ] {
        assert!(!out.join(&gone).exists(), "{gone} is still there");
    }
    for k in &kept {
        assert!(out.join(k).exists(), "{k} was removed");
    }

    // With --overwrite over a finished restore too, and in --json.
    leftover(&out.join(format!("d/sub/.cairn-tmp-{dead}-9")));
    let report = env.json([
        "restore".as_ref(),
        "d".as_ref(),
        out.as_os_str(),
        "--overwrite".as_ref(),
    ]);
    assert_eq!(u(&report, "leftovers_removed"), 1, "{report}");
    assert!(!out.join(format!("d/sub/.cairn-tmp-{dead}-9")).exists());
    let report = env.json([
        "restore".as_ref(),
        "d".as_ref(),
        out.as_os_str(),
        "--overwrite".as_ref(),
    ]);
    assert_eq!(u(&report, "leftovers_removed"), 0, "{report}");

    // Rerun without --overwrite over what the killed restore finished: it
    // is refused for the finished files, but its temp files go first.
    leftover(&out.join(format!("d/.cairn-tmp-{dead}-10")));
    let err = run_code(
        env.cmd(["restore".as_ref(), "d".as_ref(), out.as_os_str()]),
        2,
    );
    assert!(
        err.contains("removed 1 leftover temp file of an interrupted restore"),
        "{err}"
    );
    assert!(err.contains("already exists"), "{err}");
    assert!(!out.join(format!("d/.cairn-tmp-{dead}-10")).exists());
    live.kill();
}

/// Regression: a snapshot of a folder named `locks` restored into the
/// repository root landed in REPO/locks and locked everyone out. Every
/// target from which a restored path would land inside the repository is
/// refused (exit 2, both paths named, nothing written); an ancestor of the
/// repository whose restored paths all land beside it is fine.
#[test]
fn restore_into_the_repository_is_refused() {
    let env = Env::new();
    let locks = env.path("src/locks");
    write(&locks.join("x.lock"), b"not a lock\n");
    // Given as `locks` from inside `src`: stored as `locks/x.lock`.
    let args = ["snapshot", "locks", "--kind", "config", "--name", "locks"];
    run_ok(env.cmd(args).current_dir(env.path("src")));
    let named_repo = env.path("other/repo");
    write(&named_repo.join("config"), b"a file named config\n");
    // Likewise stored as `repo/config`.
    let args = [
        "snapshot",
        "repo",
        "--kind",
        "config",
        "--name",
        "named-repo",
    ];
    run_ok(env.cmd(args).current_dir(env.path("other")));
    std::os::unix::fs::symlink(&env.repo, env.path("alias")).unwrap();
    let before = env.state();

    let refused = [
        ("locks", env.repo.clone()),
        ("locks", env.repo.join("packs/new/deeper")),
        ("locks", env.path("alias")),
        ("locks", env.path("alias/snapshots")),
        ("locks", env.path("missing/../repo")),
        // The parent of the repository: `repo/config` would be replaced.
        ("named-repo", env.dir.path().to_path_buf()),
    ];
    for (snap, target) in &refused {
        let err = run_code(
            env.cmd([
                "restore".as_ref(),
                snap.as_ref(),
                target.as_os_str(),
                "--overwrite".as_ref(),
            ]),
            2,
        );
        assert!(
            err.contains("inside the repository")
                && err.contains(&target.display().to_string())
                && err.contains(&env.repo.display().to_string()),
            "{}: {err}",
            target.display()
        );
        assert_eq!(env.state(), before, "{}", target.display());
    }
    assert!(!env.repo.join("packs/new").exists());
    assert!(!env.path("missing").exists());

    // Beside the repository is fine, even from its parent.
    run_ok(env.cmd([
        "restore".as_ref(),
        "locks".as_ref(),
        env.dir.path().as_os_str(),
    ]));
    assert_eq!(fs::read(env.path("locks/x.lock")).unwrap(), b"not a lock\n");
    assert_eq!(env.state(), before);
}

/// Regression: a restore whose TARGET is a dangling symlink failed with a
/// bare "File exists". The error names the path and what it is.
#[test]
fn a_dangling_symlink_target_is_named() {
    let env = Env::new();
    let src = env.path("d");
    write(&src.join("f"), b"f");
    env.snapshot(&src, "config", "d", &[]);
    let target = env.path("target");
    std::os::unix::fs::symlink(env.path("gone"), &target).unwrap();
    for t in [target.clone(), target.join("below")] {
        let err = run_code(
            env.cmd(["restore".as_ref(), "d".as_ref(), t.as_os_str()]),
            2,
        );
        assert!(
            err.contains(&format!("{} is a dangling symlink", target.display())),
            "{err}"
        );
        assert!(!env.path("gone").exists());
    }
}

/// Regression: sparse files came back fully allocated. Whole 4 KiB blocks
/// of zeros are left as holes, so a file that was mostly hole on the source
/// is mostly hole restored, with the same bytes.
#[test]
fn sparse_files_restore_sparse() {
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::MetadataExt;

    const SIZE: u64 = 64 << 20;
    let env = Env::new();
    let src = env.path("sparse");
    fs::create_dir(&src).unwrap();
    let file = src.join("holes.bin");
    let mut f = fs::File::create(&file).unwrap();
    f.set_len(SIZE).unwrap();
    f.seek(SeekFrom::Start(16 << 20)).unwrap();
    f.write_all(&random_bytes(1 << 20, 8)).unwrap();
    f.seek(SeekFrom::Start((40 << 20) + 123)).unwrap();
    f.write_all(&random_bytes(5000, 9)).unwrap();
    drop(f);
    let allocated = |p: &Path| fs::metadata(p).unwrap().blocks() * 512;
    if allocated(&file) > 8 << 20 {
        eprintln!("skipped: this file system does not keep holes");
        return;
    }
    env.snapshot(&src, "model", "sparse", &[]);
    let out = env.path("out");
    run_ok(env.cmd(["restore".as_ref(), "sparse".as_ref(), out.as_os_str()]));
    let back = out.join("sparse/holes.bin");
    assert_eq!(fs::metadata(&back).unwrap().len(), SIZE);
    assert!(fs::read(&back).unwrap() == fs::read(&file).unwrap());
    assert!(
        allocated(&back) < 4 << 20,
        "{} bytes allocated for a file of 1 MiB + 5000 bytes of data",
        allocated(&back)
    );
}

/// Sets the mtime of `path` itself, not what it points to.
fn set_symlink_mtime(path: &Path, secs: i64, nanos: i64) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: secs,
            tv_nsec: nanos,
        },
    ];
    // SAFETY: `c` is a valid C string and `times` two timespecs, as required.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
}

/// Regression: symlinks came back with the time of the restore as their
/// mtime instead of the one snapshotted.
#[test]
fn symlink_mtimes_are_restored() {
    use std::os::unix::fs::MetadataExt;

    let env = Env::new();
    let src = env.path("links");
    write(&src.join("file"), b"x");
    std::os::unix::fs::symlink("file", src.join("to-file")).unwrap();
    std::os::unix::fs::symlink("nowhere", src.join("dangling")).unwrap();
    set_symlink_mtime(&src.join("to-file"), 1_111_111_111, 222_333_444);
    set_symlink_mtime(&src.join("dangling"), 1_222_222_222, 5);
    env.snapshot(&src, "config", "links", &[]);
    let out = env.path("out");
    run_ok(env.cmd(["restore".as_ref(), "links".as_ref(), out.as_os_str()]));
    for (name, want) in [
        ("to-file", (1_111_111_111, 222_333_444)),
        ("dangling", (1_222_222_222, 5)),
    ] {
        let m = fs::symlink_metadata(out.join("links").join(name)).unwrap();
        assert!(m.file_type().is_symlink());
        assert_eq!((m.mtime(), m.mtime_nsec()), want, "{name}");
    }
    assert_eq!(
        fs::read_link(out.join("links/to-file")).unwrap(),
        Path::new("file")
    );
}

/// A tree of many small files for the restore-path tests: several modes
/// (a set-uid one too) and mtimes in nested directories (one read-only),
/// symlinks, an empty file, files at the top.
fn build_mixed_tree(src: &Path) {
    for i in 0..150u64 {
        let p = src.join(format!("d{}/e{}/f{i:03}.bin", i % 3, i % 5));
        write(&p, &random_bytes(1 + (i as usize * 397) % 9000, 900 + i));
        chmod(&p, [0o644, 0o600, 0o755, 0o444, 0o4755][i as usize % 5]);
        set_mtime(&p, 1_500_000_000 + i, (i * 7_777) as u32);
    }
    write(&src.join("top.txt"), b"top\n");
    write(&src.join("empty"), b"");
    std::os::unix::fs::symlink("top.txt", src.join("link")).unwrap();
    std::os::unix::fs::symlink("../top.txt", src.join("d1/up")).unwrap();
    for (i, dir) in ["d0", "d1/e1", "d2/e0", "d2"].iter().enumerate() {
        set_mtime(&src.join(dir), 1_400_000_000 + i as u64, 11);
    }
    chmod(&src.join("d2/e0"), 0o555);
}

/// Gives every directory under `root` owner write permission again, so
/// the temp dir can be removed.
fn unlock_dirs(root: &Path) {
    for (rel, meta) in walk(root) {
        if meta.is_dir() {
            chmod(&root.join(rel), 0o755);
        }
    }
}

/// Restore temp names (`.cairn-tmp-*`, files or stage directories)
/// anywhere under `dir`.
fn temp_names_under(dir: &Path) -> Vec<String> {
    walk(dir)
        .into_iter()
        .map(|(rel, _)| rel)
        .filter(|rel| rel.split('/').any(|c| c.starts_with(".cairn-tmp-")))
        .collect()
}

/// Guards the fresh-directory path: a restore into an empty TARGET builds
/// each new directory under a temp name and moves it into place whole;
/// modes (set-uid included), mtimes of files and directories, a read-only
/// directory and symlinks come back exactly, and no temp name remains.
#[test]
fn a_fresh_target_restores_every_mode_mtime_and_symlink() {
    let env = Env::new();
    let src = env.path("mixed");
    build_mixed_tree(&src);
    env.snapshot(&src, "config", "mixed", &[]);
    let out = env.path("out");
    let report = env.json(["restore".as_ref(), "mixed".as_ref(), out.as_os_str()]);
    assert_eq!(u(&report, "files"), 152, "{report}");
    assert_eq!(u(&report, "symlinks"), 2, "{report}");
    assert_eq!(tree_nodes(&src), tree_nodes(&out.join("mixed")));
    assert_diff_clean(&src, &out.join("mixed"));
    assert_eq!(temp_names_under(&out), Vec::<String>::new());
    unlock_dirs(&src);
    unlock_dirs(&out);
}

/// Guards the in-place path beside the staged one: into a TARGET holding
/// the snapshot's directory with stale files, `--overwrite` replaces the
/// snapshot's files (under temp names renamed over them), builds the
/// directories that are missing as stages, leaves files the snapshot does
/// not hold alone; without `--overwrite` it is refused and writes nothing.
#[test]
fn a_target_with_stale_files_is_overwritten_in_place() {
    let env = Env::new();
    let src = env.path("mixed");
    build_mixed_tree(&src);
    env.snapshot(&src, "config", "mixed", &[]);
    let out = env.path("out");
    let stale = out.join("mixed");
    write(&stale.join("top.txt"), b"stale top\n");
    write(&stale.join("d0/e0/f000.bin"), b"stale");
    write(&stale.join("d0/e0/extra.txt"), b"not in the snapshot\n");
    std::os::unix::fs::symlink("elsewhere", stale.join("link")).unwrap();
    let before = tree_nodes(&out);
    let err = run_code(
        env.cmd(["restore".as_ref(), "mixed".as_ref(), out.as_os_str()]),
        2,
    );
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(tree_nodes(&out), before, "a refused restore writes nothing");

    run_ok(env.cmd([
        "restore".as_ref(),
        "mixed".as_ref(),
        out.as_os_str(),
        "--overwrite".as_ref(),
    ]));
    let mut got = tree_nodes(&stale);
    assert_eq!(
        fs::read(stale.join("d0/e0/extra.txt")).unwrap(),
        b"not in the snapshot\n"
    );
    got.remove("d0/e0/extra.txt");
    assert_eq!(tree_nodes(&src), got);
    assert_eq!(fs::read(stale.join("top.txt")).unwrap(), b"top\n");
    assert_eq!(temp_names_under(&out), Vec::<String>::new());
    unlock_dirs(&src);
    unlock_dirs(&out);
}

/// Guards "a fresh directory appears whole or not at all": a restore that
/// fails on a damaged file removes the stage it built, so nothing of the
/// snapshot and no temp name is left; with `--ignore-errors` the directory
/// appears without the files that failed.
#[test]
fn a_failed_restore_into_a_fresh_target_leaves_nothing() {
    let env = Env::new();
    let src = env.path("mixed");
    build_mixed_tree(&src);
    env.snapshot(&src, "config", "mixed", &[]);
    for pack in walk(&env.repo.join("packs")) {
        if pack.0.ends_with(".pack") {
            fs::remove_file(env.repo.join("packs").join(&pack.0)).unwrap();
        }
    }
    let out = env.path("out");
    let run = env
        .cmd(["restore".as_ref(), "mixed".as_ref(), out.as_os_str()])
        .output()
        .unwrap();
    assert!(!run.status.success(), "{}", stderr(&run));
    assert!(
        !out.join("mixed").exists(),
        "the failed restore left mixed/"
    );
    assert_eq!(temp_names_under(&out), Vec::<String>::new());

    let run = env
        .cmd([
            "restore".as_ref(),
            "mixed".as_ref(),
            out.as_os_str(),
            "--ignore-errors".as_ref(),
        ])
        .output()
        .unwrap();
    assert!(!run.status.success(), "damage is still reported");
    assert!(out.join("mixed/d2/e0").is_dir());
    assert!(fs::symlink_metadata(out.join("mixed/link")).is_ok());
    assert!(!out.join("mixed/top.txt").exists());
    assert_eq!(temp_names_under(&out), Vec::<String>::new());
    unlock_dirs(&src);
    unlock_dirs(&out);
}

/// Regression guard for leftovers of the fresh-directory path: a killed
/// restore leaves its stage `.cairn-tmp-PID-N/` (read-only directories
/// and all) beside the directory it was building; the next restore there
/// removes it whole and counts it once.
#[test]
fn a_leftover_stage_of_a_killed_restore_is_removed() {
    let env = Env::new();
    let src = env.path("mixed");
    build_mixed_tree(&src);
    env.snapshot(&src, "config", "mixed", &[]);
    let out = env.path("out");
    let stage = out.join(format!(".cairn-tmp-{}-0", dead_pid()));
    write(&stage.join("d0/e0/f000.bin"), b"half");
    chmod(&stage.join("d0/e0"), 0o500);
    let report = env.json(["restore".as_ref(), "mixed".as_ref(), out.as_os_str()]);
    assert_eq!(u(&report, "leftovers_removed"), 1, "{report}");
    assert!(!stage.exists());
    assert_eq!(tree_nodes(&src), tree_nodes(&out.join("mixed")));
    unlock_dirs(&src);
    unlock_dirs(&out);
}
