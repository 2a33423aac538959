//! `cairn bench`: its figures agree with what real snapshots of the same
//! versions add; tables, JSON and the SVG chart; argument errors.

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use crate::common::*;

/// `len` bytes of a 16-letter alphabet: compressible (about 2x), but with
/// no long repeats, so every chunk is distinct.
fn letters(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64(seed);
    (0..len)
        .map(|_| b'a' + (rng.next_u64() % 16) as u8)
        .collect()
}

/// Two versions of a 3 MB file; the second has 200 KB rewritten in the middle.
fn two_versions(env: &Env) -> (PathBuf, PathBuf) {
    let data = letters(3_000_000, 41);
    let mut changed = data.clone();
    changed[1_400_000..1_600_000].copy_from_slice(&letters(200_000, 42));
    let v1 = env.path("v1/weights.bin");
    let v2 = env.path("v2/weights.bin");
    write(&v1, &data);
    write(&v2, &changed);
    (v1, v2)
}

fn bench_json(env: &Env, args: &[&str], paths: &[&PathBuf]) -> Value {
    let mut cmd = env.cmd(["bench"]);
    cmd.args(paths).args(args).arg("--json");
    let out = run_ok(cmd);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)))
}

/// At the repository's settings (64K, zstd 3), bench predicts exactly what
/// snapshotting the versions in turn adds: same new chunks, raw and stored
/// bytes. It is the same pipeline, minus the packs.
#[test]
fn bench_predicts_what_snapshots_add() {
    crate::skip_if_encrypted!(
        "bench models an unencrypted repository (default gear table, no seal overhead)"
    );
    let env = Env::new();
    let (v1, v2) = two_versions(&env);
    let r = bench_json(&env, &[], &[&v1, &v2]);
    let settings = r["settings"].as_array().unwrap();
    assert_eq!(settings.len(), 1, "defaults: one setting");
    let s = &settings[0];
    assert_eq!((u(s, "chunk_avg"), s["level"].as_i64()), (65536, Some(3)));
    let versions = s["versions"].as_array().unwrap();
    for (path, v) in [&v1, &v2].into_iter().zip(versions) {
        let snap = env.snapshot(path, "model", "w", &[]);
        assert_eq!(v["name"], path.display().to_string());
        assert_eq!(u(v, "logical_bytes"), u(&snap, "logical_bytes"));
        assert_eq!(u(v, "new_chunks"), u(&snap, "chunks_new"), "{v} {snap}");
        assert_eq!(u(v, "new_bytes"), u(&snap, "added_raw"), "{v} {snap}");
        assert_eq!(u(v, "stored_bytes"), u(&snap, "added_stored"), "{v} {snap}");
    }
    let total = &s["total"];
    assert_eq!(u(total, "logical_bytes"), 6_000_000);
    assert_eq!(u(&versions[0], "new_bytes"), 3_000_000);
    let added = u(&versions[1], "new_bytes");
    assert!(
        (200_000..=200_000 + 2 * 262_144).contains(&added),
        "{added}"
    );
    assert!(
        u(total, "stored_bytes") * 3 < u(total, "new_bytes") * 2,
        "{total}"
    );
    let dedup = s["dedup_ratio"].as_f64().unwrap();
    assert!((dedup - 6e6 / (3e6 + added as f64)).abs() < 1e-9, "{dedup}");

    // The repository report adds up the same numbers.
    let h = env.json(["bench"]);
    let snaps = h["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    assert_eq!(u(&snaps[1], "cumulative_raw"), u(total, "new_bytes"));
    assert_eq!(u(&snaps[1], "cumulative_stored"), u(total, "stored_bytes"));
    assert_eq!(u(&snaps[1], "cumulative_logical"), 6_000_000);
    assert_eq!(snaps[1]["dedup_ratio"].as_f64(), Some(dedup));
    // The repository's chunks: the files', and the snapshots' few trees.
    let trees = u(&h, "chunks") - u(total, "new_chunks");
    assert!((1..=6).contains(&trees), "{h}");
}

/// Several settings: one entry per (chunk size, level), sorted; level 0
/// stores raw; the histogram covers every chunk; bench writes nothing.
#[test]
fn every_setting_is_reported_and_nothing_is_written() {
    let env = Env::uninit();
    let (v1, v2) = two_versions(&env);
    let r = bench_json(
        &env,
        &["--chunk-avg", "256K,16K", "--compression", "3,0"],
        &[&v1, &v2],
    );
    assert!(!env.repo.exists(), "bench must not create a repository");
    assert!(!env.path("xdg-data").exists());
    let settings = r["settings"].as_array().unwrap();
    let keys: Vec<(u64, i64)> = settings
        .iter()
        .map(|s| (u(s, "chunk_avg"), s["level"].as_i64().unwrap()))
        .collect();
    assert_eq!(keys, [(16384, 0), (16384, 3), (262144, 0), (262144, 3)]);
    for s in settings {
        let total = &s["total"];
        assert_eq!(u(total, "logical_bytes"), 6_000_000);
        if s["level"] == 0 {
            assert_eq!(u(total, "stored_bytes"), u(total, "new_bytes"));
        } else {
            assert!(u(total, "stored_bytes") < u(total, "new_bytes"));
        }
        let buckets = s["histogram"].as_array().unwrap();
        let chunks: u64 = buckets.iter().map(|b| u(b, "chunks")).sum();
        let bytes: u64 = buckets.iter().map(|b| u(b, "bytes")).sum();
        assert_eq!((chunks, bytes), (u(total, "chunks"), 6_000_000));
        // No model header: every byte is non-tensor.
        assert_eq!(s["dtypes"][0]["name"], "non-tensor");
        assert_eq!(u(&s["dtypes"][0], "logical_bytes"), 6_000_000);
        assert!(s["throughput_bytes_per_sec"].as_f64().unwrap() > 0.0);
    }
    // Smaller chunks isolate the change better.
    let new = |i: usize| u(&settings[i]["versions"][1], "new_bytes");
    assert!(new(0) < new(2), "{} vs {}", new(0), new(2));
}

/// The human report: the versions, a section per setting with per-version
/// and per-dtype tables, a histogram per chunk size, a summary.
#[test]
fn human_report_has_a_section_per_setting_and_a_summary() {
    let env = Env::uninit();
    let (v1, v2) = two_versions(&env);
    let out = run_ok(
        env.cmd(["bench", "--chunk-avg", "16K,64K", "--compression", "0,3"])
            .arg(&v1)
            .arg(&v2),
    );
    let text = stdout(&out);
    for section in [
        "== chunk avg 16K (min 4K, max 64K), zstd 0 ==",
        "== chunk avg 16K (min 4K, max 64K), zstd 3 ==",
        "== chunk avg 64K (min 16K, max 256K), zstd 0 ==",
        "== chunk avg 64K (min 16K, max 256K), zstd 3 ==",
        "== summary ==",
    ] {
        assert_eq!(text.matches(section).count(), 1, "{section}\n{text}");
    }
    assert_eq!(text.matches("CHUNK SIZE").count(), 2, "{text}");
    assert_eq!(text.matches("\nnon-tensor ").count(), 4, "{text}");
    assert!(text.contains(&format!("1  {}", v1.display())), "{text}");
    let summary = text.split("== summary ==").nth(1).unwrap();
    assert_eq!(summary.lines().filter(|l| l.starts_with("16K ")).count(), 2);
    assert!(
        text.lines()
            .any(|l| l.starts_with("total") && l.contains("5.7 MiB")),
        "{text}"
    );
}

/// `--plot` writes an SVG with axis titles, a legend entry per series and
/// a tick label per chunk size.
#[test]
fn plot_writes_a_labelled_svg() {
    let env = Env::uninit();
    let (v1, v2) = two_versions(&env);
    let svg = env.path("chart.svg");
    let out = run_ok(
        env.cmd(["bench", "--chunk-avg", "16K,64K,256K", "--plot"])
            .arg(&svg)
            .arg(&v1)
            .arg(&v2),
    );
    assert!(stdout(&out).contains(&format!("chart written to {}", svg.display())));
    let text = fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{}", &text[..100]);
    let texts: Vec<&str> = text
        .split("<text")
        .skip(1)
        .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim()))
        .collect();
    for label in [
        "average chunk size (log scale)",
        "size (MiB), solid",
        "throughput (MiB/s), dashed",
        "after dedup",
        "stored, zstd 3",
        "throughput, zstd 3",
        "16K",
        "64K",
        "256K",
    ] {
        assert!(texts.contains(&label), "{label} missing from {texts:?}");
    }
}

#[test]
fn bad_arguments_are_usage_errors() {
    let env = Env::new();
    let (v1, _) = two_versions(&env);
    let v1 = v1.to_str().unwrap();
    let err = run_code(env.cmd(["bench", v1, "--chunk-avg", "100"]), 2);
    assert!(err.contains("unsupported chunk sizes"), "{err}");
    let err = run_code(env.cmd(["bench", v1, "--compression", "3,25"]), 2);
    assert!(err.contains("25 is out of range"), "{err}");
    let missing = env.path("nope");
    let err = run_code(env.cmd(["bench"]).arg(&missing), 2);
    assert!(err.contains(&missing.display().to_string()), "{err}");
    // Without PATH the repository is reported; chunk options make no sense.
    let err = run_code(env.cmd(["bench", "--plot", "x.svg"]), 2);
    assert!(err.contains("need PATHs"), "{err}");
    let empty = env.json(["bench"]);
    assert_eq!(empty["snapshots"].as_array().map(Vec::len), Some(0));
    let none = Env::uninit();
    let err = run_code(none.cmd(["bench"]), 2);
    assert!(err.contains("give PATHs to benchmark files"), "{err}");
}
