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
    live.kill();
}
