//! Manifests damaged, wrong or hostile, through the real binary: `check`
//! names the snapshot, `repair` rewrites a manifest byte-identical from the
//! catalog, `rebuild-catalog` and `repair` survive manifests they cannot
//! import, and no crafted manifest writes outside the restore target.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::*;
use crate::integrity::*;

/// The path of the manifest of the latest snapshot called `name`.
fn manifest_file(env: &Env, name: &str) -> (String, PathBuf) {
    let id = env.json(["show", name])["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = env.repo.join("snapshots").join(format!("{id}.snap"));
    assert!(path.is_file(), "{}", path.display());
    (id, path)
}

/// Guards manifest damage: a manifest replaced by another valid manifest,
/// one with a corrupted body, and a deleted one are each found by the
/// structure check naming the snapshot, and `repair` rewrites each
/// byte-identical from the catalog.
#[test]
fn wrong_corrupt_or_missing_manifests_are_restored_by_repair() {
    crate::skip_if_encrypted!(
        "repair seals a rewritten manifest with a fresh nonce, so it is not byte-identical \
         (swapped and flipped manifests are covered by encryption.rs)"
    );
    let fx = Fixture::new();
    let env = &fx.env;
    let (alpha, alpha_file) = manifest_file(env, "alpha");
    let (beta, beta_file) = manifest_file(env, "beta");
    let (gamma, gamma_file) = manifest_file(env, "gamma");
    let originals: Vec<Vec<u8>> = [&alpha_file, &beta_file, &gamma_file]
        .iter()
        .map(|p| fs::read(p).unwrap())
        .collect();

    fs::write(&alpha_file, &originals[2]).unwrap(); // gamma's bytes under alpha's name
    let mut body = originals[1].clone();
    let mid = 24 + (body.len() - 24) / 2;
    body[mid] ^= 0x55;
    fs::write(&beta_file, &body).unwrap();
    fs::remove_file(&gamma_file).unwrap();

    let report = env.json_code(["check"], 1);
    let mut found: Vec<(String, String)> = damage(&report)
        .iter()
        .map(|f| {
            (
                f["problem"].as_str().unwrap().to_string(),
                f["snapshot"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    found.sort();
    let mut want = vec![
        ("manifest_corrupt".to_string(), alpha.clone()),
        ("manifest_corrupt".to_string(), beta.clone()),
        ("manifest_missing".to_string(), gamma.clone()),
    ];
    want.sort();
    assert_eq!(found, want, "{report}");

    let r = env.json(["repair"]);
    assert_eq!(
        sorted(
            r["manifests_restored"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect()
        ),
        sorted(vec![alpha, beta, gamma]),
        "{r}"
    );
    for (path, original) in [&alpha_file, &beta_file, &gamma_file]
        .iter()
        .zip(&originals)
    {
        assert_eq!(&fs::read(path).unwrap(), original, "{}", path.display());
    }
    assert!(damage(&env.json(["check", "--read-data"])).is_empty());
    fx.assert_all_restore();
}

/// Guards the manifest/catalog cross-check: a catalog row edited behind
/// cairn's back is reported as a mismatch naming the snapshot and entry;
/// `repair` refuses to guess (exit 1, pointing at `rebuild-catalog`), and
/// `rebuild-catalog` makes the catalog agree with the manifest again.
#[test]
fn manifest_catalog_mismatch_is_found_and_rebuilt() {
    let fx = Fixture::new();
    let env = &fx.env;
    let (alpha, _) = manifest_file(env, "alpha");
    let before = list_text(env);
    {
        let db = rusqlite::Connection::open(env.repo.join("catalog.db")).unwrap();
        let n = db
            .execute(
                // Catalog schema 2: an entry row is shared by every snapshot
                // holding that exact file; here only alpha has it.
                "UPDATE entries SET mode = 511 WHERE path = 'a/config.json'",
                [],
            )
            .unwrap();
        assert_eq!(n, 1);
    }
    let report = env.json_code(["check"], 1);
    let found = damage(&report);
    assert_eq!(found.len(), 1, "{report}");
    assert_eq!(found[0]["problem"], "manifest_mismatch");
    assert_eq!(found[0]["snapshot"], alpha.as_str());
    assert!(
        found[0]["reason"]
            .as_str()
            .unwrap()
            .contains("a/config.json"),
        "{report}"
    );
    let r = env.json_code(["repair"], 1);
    let unresolved = r["unresolved"].as_array().unwrap();
    assert_eq!(unresolved.len(), 1, "{r}");
    assert!(
        unresolved[0].as_str().unwrap().contains("rebuild-catalog"),
        "{r}"
    );
    env.json(["rebuild-catalog", "--yes"]);
    assert_eq!(list_text(env), before);
    assert!(damage(&env.json(["check", "--read-data"])).is_empty());
    fx.assert_all_restore();
}

/// Snapshot `base`'s first file entry, for cloning into hostile manifests.
fn sample_file(repo: &Path) -> cairn::format::manifest::FileEntry {
    let r = crate::common::open_repo(repo);
    let snap = r.resolve("base").unwrap();
    r.catalog()
        .files(&snap)
        .unwrap()
        .into_iter()
        .find(|f| f.kind == cairn::format::manifest::EntryKind::File)
        .unwrap()
}

/// Writes a manifest named `name` holding `files` into the repository's
/// `snapshots/`, as a crafted (or corrupted) repository would contain it.
fn plant_manifest(repo: &Path, name: &str, files: Vec<cairn::format::manifest::FileEntry>) {
    let m = cairn::format::manifest::Manifest {
        label: cairn::SnapshotLabel::new("model", name),
        host: "elsewhere".into(),
        time_ns: 1_700_000_000_000_000_000,
        sources: vec!["/src".into()],
        parent: None,
        stats: Default::default(),
        files,
    };
    let (id, bytes) = m.encode();
    put_object(repo, &cairn::format::manifest::key(&id), &bytes);
}

fn dir_entry(path: &str) -> cairn::format::manifest::FileEntry {
    cairn::format::manifest::FileEntry {
        path: path.into(),
        kind: cairn::format::manifest::EntryKind::Dir,
        mode: 0o755,
        mtime_ns: 0,
        size: 0,
        sha256: [0; 32],
        link_target: String::new(),
        chunks: vec![],
        ..Default::default()
    }
}

/// Guards restore against hostile manifests (imported by
/// `rebuild-catalog`): a `..` path, an absolute path, and a symlink
/// followed by a file beneath it each fail with exit 2 naming the unsafe
/// path, and nothing is written outside TARGET.
#[test]
fn hostile_manifests_never_write_outside_the_target() {
    let env = Env::new();
    write(&env.path("src/f.txt"), b"payload\n");
    env.snapshot(&env.path("src"), "model", "base", &[]);
    let file = sample_file(&env.repo);
    let outside = env.path("outside");
    fs::create_dir(&outside).unwrap();
    let with_path = |path: &str| cairn::format::manifest::FileEntry {
        path: path.into(),
        ..file.clone()
    };
    let link = cairn::format::manifest::FileEntry {
        path: "x/link".into(),
        kind: cairn::format::manifest::EntryKind::Symlink,
        mode: 0o777,
        size: 0,
        sha256: [0; 32],
        link_target: outside.display().to_string(),
        chunks: vec![],
        ..file.clone()
    };
    plant_manifest(
        &env.repo,
        "dotdot",
        vec![dir_entry("x"), with_path("x/../../outside/evil")],
    );
    plant_manifest(
        &env.repo,
        "absolute",
        vec![with_path(&format!("{}/evil", outside.display()))],
    );
    plant_manifest(
        &env.repo,
        "through-link",
        vec![dir_entry("x"), link, with_path("x/link/evil")],
    );
    let r = env.json(["rebuild-catalog", "--yes"]);
    assert_eq!(u(&r, "snapshots"), 4, "{r}");

    for (name, unsafe_path) in [
        ("dotdot", "x/../../outside/evil".to_string()),
        ("absolute", format!("{}/evil", outside.display())),
        ("through-link", "x/link/evil".to_string()),
    ] {
        for extra in [&[][..], &["--ignore-errors"][..], &["--overwrite"][..]] {
            let target = env.path(&format!("t-{name}-{}", extra.len()));
            let err = run_code(
                env.cmd(["restore".as_ref(), name.as_ref(), target.as_os_str()])
                    .args(extra),
                2,
            );
            assert!(
                err.contains("unsafe path") && err.contains(&unsafe_path),
                "{name} {extra:?}: {err}"
            );
            assert_eq!(
                fs::read_dir(&outside).unwrap().count(),
                0,
                "{name} {extra:?} wrote outside the target"
            );
            assert!(!env.path("evil").exists());
        }
    }
    // The honest snapshot still restores.
    run_ok(env.cmd([
        "restore".as_ref(),
        "base".as_ref(),
        env.path("ok").as_os_str(),
    ]));
    assert_eq!(fs::read(env.path("ok/src/f.txt")).unwrap(), b"payload\n");
}

/// Guards `rebuild-catalog` and `repair` against manifests they cannot
/// import (garbage bytes; a path listed twice): each is reported by key
/// (exit 1) and every other snapshot comes back; `check` counts them as
/// leftovers, not damage.
#[test]
fn unimportable_manifests_do_not_stop_rebuild_or_repair() {
    let fx = Fixture::new();
    let env = &fx.env;
    let before = list_text(env);
    let r = crate::common::open_repo(&env.repo);
    let snap = r.resolve("gamma").unwrap();
    let mut files = r.catalog().files(&snap).unwrap();
    drop(r);
    files.push(files.last().unwrap().clone());
    plant_manifest(&env.repo, "twice", files);
    let garbage = "ab".repeat(32);
    write(
        &env.repo.join(format!("snapshots/{garbage}.snap")),
        &random_bytes(500, 106),
    );
    let planted: Vec<String> = fs::read_dir(env.repo.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !before.contains(n.trim_end_matches(".snap")))
        .collect();
    assert_eq!(planted.len(), 2, "{planted:?}");

    let report = env.json(["check"]);
    let notes: Vec<&Value> = report["findings"].as_array().unwrap().iter().collect();
    assert_eq!(notes.len(), 2, "{report}");
    assert!(notes
        .iter()
        .all(|n| n["problem"] == "manifest_not_in_catalog"));

    let r = env.json_code(["repair"], 1);
    let unresolved = r["unresolved"].to_string();
    for name in &planted {
        assert!(unresolved.contains(name.trim_end_matches(".snap")), "{r}");
    }
    assert_eq!(list_text(env), before);

    fs::remove_file(env.repo.join("catalog.db")).unwrap();
    let r = env.json_code(["rebuild-catalog", "--yes"], 1);
    assert_eq!(u(&r, "snapshots"), 3, "{r}");
    let mut unreadable: Vec<String> = r["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            x["key"]
                .as_str()
                .unwrap()
                .trim_start_matches("snapshots/")
                .to_string()
        })
        .collect();
    unreadable.sort();
    let mut planted = planted;
    planted.sort();
    assert_eq!(unreadable, planted, "{r}");
    assert!(r.to_string().contains("appears twice"), "{r}");
    assert_eq!(list_text(env), before);
    fx.assert_all_restore();
}
