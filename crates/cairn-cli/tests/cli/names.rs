//! Names and symlink targets that are not UTF-8 are stored byte for byte
//! (#10 item 7): a snapshot takes them like any other, restore gives the
//! same bytes back, listings show the odd bytes as `\xNN`, and the stat
//! cache knows them the next time. Version 4 repositories keep them in
//! trees; older ones (version-1 manifests, UTF-8 only) leave them out
//! (tests/cli/incomplete.rs).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::common::*;
use crate::trees::{manifest_version, set_repo_version};

/// The raw names under `src/` and what each holds (a symlink: its target).
const FILES: [(&[u8], &[u8]); 5] = [
    (b"good.txt", b"good\n"),
    (b"a\xff.bin", b"bad name\n"),
    // The literal text `a\xff.bin`: shown the same, stored apart.
    (b"a\\xff.bin", b"backslash\n"),
    // A valid name made of the characters cairn carries bytes in.
    ("\u{10ffab}".as_bytes(), b"private use\n"),
    (b"d\xfe/inner", b"in a bad dir\n"),
];

fn make_source(env: &Env) {
    let src = env.path("src");
    for (name, data) in FILES {
        write(&src.join(OsStr::from_bytes(name)), data);
    }
    std::os::unix::fs::symlink(OsStr::from_bytes(b"t\xfe"), src.join("link")).unwrap();
}

fn names(dir: &Path) -> BTreeSet<Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect()
}

fn round_trip(env: &Env) {
    make_source(env);
    let snap = |extra: &[&str]| {
        let out = run_ok(
            env.cmd([
                "snapshot", "src", "--kind", "config", "--name", "odd", "--json",
            ])
            .args(extra),
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = snap(&["--strict"]);
    assert_eq!(first["complete"], true, "{first}");
    assert_eq!(
        first["skipped"].as_array().map(Vec::len),
        Some(0),
        "{first}"
    );

    let out = env.path("out");
    run_ok(env.cmd(["restore", "odd"]).arg(&out));
    let src = env.path("src");
    assert_eq!(names(&out.join("src")), names(&src));
    for (name, data) in FILES {
        let path = out.join("src").join(OsStr::from_bytes(name));
        assert_eq!(fs::read(&path).unwrap(), data, "{}", path.display());
    }
    let target = fs::read_link(out.join("src/link")).unwrap();
    assert_eq!(target.as_os_str().as_bytes(), b"t\xfe");

    let listed = stdout(&run_ok(env.cmd(["ls", "odd", "-l"])));
    for shown in ["src/a\\xff.bin", "src/d\\xfe/inner", "src/link -> t\\xfe"] {
        assert!(listed.contains(shown), "{shown} not in:\n{listed}");
    }
    // `dump` gives tar the same bytes; GNU tar unpacks them.
    let tar = env.path("odd.tar");
    fs::write(&tar, run_ok(env.cmd(["dump", "odd", "src"])).stdout).unwrap();
    let unpacked = env.path("untar");
    fs::create_dir(&unpacked).unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(names(&unpacked.join("src")), names(&src));
    let target = fs::read_link(unpacked.join("src/link")).unwrap();
    assert_eq!(target.as_os_str().as_bytes(), b"t\xfe");
    run_ok(env.cmd(["verify", "odd"]));
    let second = snap(&[]);
    assert_eq!(
        second["files_read"], 0,
        "the stat cache knows them: {second}"
    );
    let diff = env.json(["diff", "odd~1", "odd"]);
    assert_eq!(diff["changed"].as_array().map(Vec::len), Some(0), "{diff}");
}

#[test]
fn names_and_link_targets_that_are_not_utf8_round_trip() {
    let env = Env::new();
    round_trip(&env);
}

/// A version-1 manifest (repositories before version 4) holds plain
/// UTF-8: a valid name made of the characters cairn carries bytes in is
/// written as itself, and read back as itself.
#[test]
fn a_version_3_repository_keeps_private_use_names_as_plain_utf8() {
    crate::skip_if_encrypted!("edits the repository config by hand");
    let env = Env::new();
    set_repo_version(&env.repo, 4, 3);
    let name = "\u{10ffab}\u{10ff80}.txt";
    write(&env.path("src").join(name), b"private use\n");
    let report = env.json(["snapshot", "src", "--kind", "config", "--name", "pua"]);
    let id = report["id"].as_str().unwrap();
    assert_eq!(manifest_version(&env.repo, id), 1);
    let body = fs::read(env.repo.join(format!("snapshots/{id}.snap"))).unwrap();
    let body = zstd::decode_all(&body[24..]).unwrap();
    assert!(
        body.windows(name.len()).any(|w| w == name.as_bytes()),
        "the manifest holds the name as plain UTF-8"
    );
    let out = env.path("out");
    run_ok(env.cmd(["restore", "pua"]).arg(&out));
    assert_eq!(
        names(&out.join("src")),
        BTreeSet::from([name.as_bytes().to_vec()])
    );
    // In JSON such a name has its bytes carried (docs/JSON.md "paths").
    let listed = env.json(["ls", "pua"]);
    let carried = cairn::format::name::from_bytes(name.as_bytes());
    assert_eq!(listed["entries"][1]["path"], format!("src/{carried}"));
}

/// Through FUSE the names are the original bytes too.
#[test]
fn mounted_snapshots_show_the_original_name_bytes() {
    let env = Env::new();
    make_source(&env);
    run_ok(env.cmd(["snapshot", "src", "--kind", "config", "--name", "odd"]));
    let test = "mounted_snapshots_show_the_original_name_bytes";
    let Some(m) = crate::mount::mount_or_skip(&env, &[], &[], test) else {
        return;
    };
    let src = m.dir.join("config/odd/latest/src");
    assert_eq!(names(&src), names(&env.path("src")));
    let bad = src.join(OsStr::from_bytes(b"a\xff.bin"));
    assert_eq!(fs::read(&bad).unwrap(), b"bad name\n");
    let target = fs::read_link(src.join("link")).unwrap();
    assert_eq!(target.as_os_str().as_bytes(), b"t\xfe");
}
