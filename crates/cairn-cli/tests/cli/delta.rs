//! Delta chunks (#17) through the real CLI on real safetensors files: a
//! run of checkpoints where every weight moves a little each version, as
//! an optimizer step does. Guards: a chain longer than the keyframe
//! interval stores small deltas and restores every version bit for bit;
//! a damaged keyframe is found and the later checkpoints made from it are
//! named; forget + gc in the middle of a chain keeps what later versions
//! need; `--no-delta` stores standalone; copy carries references along.

use std::fs;
use std::path::PathBuf;

use crate::common::{run_code, run_ok, u, Env, SplitMix64};
use crate::integrity::{affected, damage, flip_byte, locate};

/// Keyframe interval of the writer (`KEYFRAME_INTERVAL` in the library).
const KEYFRAME_INTERVAL: usize = 8;

/// A safetensors file with the given `(name, dtype, bytes)` tensors.
fn safetensors(tensors: &[(&str, &str, Vec<u8>)]) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut offset = 0;
    for (name, dtype, data) in tensors {
        let width = if *dtype == "F32" { 4 } else { 2 };
        entries.push(format!(
            r#""{name}":{{"dtype":"{dtype}","shape":[{}],"data_offsets":[{offset},{}]}}"#,
            data.len() / width,
            offset + data.len()
        ));
        offset += data.len();
    }
    let mut header = format!("{{{}}}", entries.join(",")).into_bytes();
    header.resize(header.len().div_ceil(8) * 8, b' ');
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    for (_, _, data) in tensors {
        out.extend_from_slice(data);
    }
    out
}

/// fp32 weights ~N(0, 0.05) (Box-Muller over the test PRNG).
fn init_weights(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64(seed);
    (0..n)
        .map(|_| {
            let a = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            let b = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            ((-2.0 * (a + 1e-12).ln()).sqrt() * (std::f64::consts::TAU * b).cos() * 0.05) as f32
        })
        .collect()
}

/// One "optimizer step" on every weight: w -= lr * (g + wd * w), with a
/// gradient-like random g; every weight moves, by ~1e-4 relative.
fn step(w: &mut [f32], seed: u64) {
    let mut rng = SplitMix64(seed);
    for x in w.iter_mut() {
        let g = ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0;
        *x -= 1e-5 * (g + 0.01 * *x / 0.05);
    }
}

fn f32_bytes(w: &[f32]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bf16_bytes(w: &[f32]) -> Vec<u8> {
    w.iter()
        .flat_map(|x| {
            let b = x.to_bits();
            let rounded = b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16;
            (rounded as u16).to_le_bytes()
        })
        .collect()
}

/// Checkpoint `k` of a small run: two bf16 matrices and one fp32 one
/// (also used by the S3 reference-cache test).
pub(crate) struct Run {
    weights: Vec<Vec<f32>>,
    steps: u64,
}

impl Run {
    pub(crate) fn new() -> Self {
        Run {
            weights: vec![
                init_weights(600_000, 1),
                init_weights(400_000, 2),
                init_weights(300_000, 3),
            ],
            steps: 0,
        }
    }

    /// Advances by `n` optimizer steps.
    pub(crate) fn train(&mut self, n: u64) {
        for _ in 0..n {
            self.steps += 1;
            for (i, w) in self.weights.iter_mut().enumerate() {
                step(w, self.steps * 10 + i as u64);
            }
        }
    }

    pub(crate) fn checkpoint(&self) -> Vec<u8> {
        safetensors(&[
            ("ffn.up.weight", "BF16", bf16_bytes(&self.weights[0])),
            ("ffn.down.weight", "BF16", bf16_bytes(&self.weights[1])),
            ("attn.v.weight", "F32", f32_bytes(&self.weights[2])),
        ])
    }
}

/// Writes checkpoint `bytes` to `ckpt/model.safetensors`, snapshots `ckpt`
/// into history `run`, and keeps a copy of the bytes for later checks.
fn snap(env: &Env, bytes: &[u8], extra: &[&str]) -> (serde_json::Value, Vec<u8>) {
    let dir = env.path("ckpt");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("model.safetensors"), bytes).unwrap();
    (env.snapshot(&dir, "model", "run", extra), bytes.to_vec())
}

/// Restores snapshot `id` and asserts it is `expected`, bit for bit.
fn assert_restores(env: &Env, id: &str, expected: &[u8]) {
    let out: PathBuf = env.path(&format!("restore-{id}"));
    run_ok(env.cmd(["restore".as_ref(), id.as_ref(), out.as_os_str()]));
    let got = fs::read(out.join("ckpt/model.safetensors")).unwrap();
    assert!(
        got == expected,
        "snapshot {id} does not restore bit for bit"
    );
    fs::remove_dir_all(&out).unwrap();
}

/// Takes `n` checkpoints, 50 steps apart; returns (report, bytes) each.
fn chain(env: &Env, n: usize) -> Vec<(serde_json::Value, Vec<u8>)> {
    let mut run = Run::new();
    (0..n)
        .map(|_| {
            let c = run.checkpoint();
            run.train(50);
            snap(env, &c, &[])
        })
        .collect()
}

fn id(report: &serde_json::Value) -> String {
    report["id"].as_str().unwrap().to_string()
}

/// Guards the chain: versions after the first store a fraction of the
/// first (deltas), one version per keyframe interval is stored whole again
/// (the next keyframe), and every version restores bit for bit.
#[test]
fn a_chain_longer_than_the_keyframe_interval_round_trips() {
    let env = Env::new();
    let snaps = chain(&env, KEYFRAME_INTERVAL + 3);
    let first = u(&snaps[0].0, "added_stored");
    let stored: Vec<u64> = snaps.iter().map(|(r, _)| u(r, "added_stored")).collect();
    for (k, s) in stored.iter().enumerate().skip(1) {
        if k == KEYFRAME_INTERVAL {
            assert!(
                *s * 10 > first * 8,
                "version {k} is the next keyframe: {stored:?}"
            );
        } else {
            assert!(*s * 10 < first * 6, "version {k} is a delta: {stored:?}");
        }
    }
    for (report, bytes) in &snaps {
        assert_restores(&env, &id(report), bytes);
    }
    assert!(damage(&env.json(["check", "--read-data"])).is_empty());
}

/// Guards `--no-delta`: every chunk is then stored standalone.
#[test]
fn no_delta_stores_standalone() {
    let env = Env::new();
    let mut run = Run::new();
    let (first, _) = snap(&env, &run.checkpoint(), &[]);
    run.train(50);
    let (second, bytes) = snap(&env, &run.checkpoint(), &["--no-delta"]);
    assert!(u(&second, "added_stored") * 10 > u(&first, "added_stored") * 8);
    assert_restores(&env, &id(&second), &bytes);
}

/// Guards check through references: a flipped byte in a chunk of the
/// keyframe is found, and the finding names the keyframe's file and every
/// later checkpoint made against it; restore of a dependant fails.
#[test]
fn a_damaged_keyframe_is_found_and_its_dependants_named() {
    let env = Env::new();
    let snaps = chain(&env, 3);
    let c = locate(&env.repo, &id(&snaps[0].0), "ckpt/model.safetensors", 2);
    flip_byte(&c.pack_file, c.offset + c.stored_len / 2);
    let report = env.json_code(["check", "--read-data"], 1);
    let found = damage(&report);
    let named: Vec<(String, String, Vec<String>)> = found.iter().flat_map(affected).collect();
    for (r, _) in &snaps {
        let short = &id(r)[..8];
        assert!(
            named
                .iter()
                .any(|(s, _, files)| s.starts_with(short) && files == &["ckpt/model.safetensors"]),
            "{short} not named: {report}"
        );
    }
    let out = env.path("broken");
    let failed = env
        .cmd([
            "restore".as_ref(),
            id(&snaps[2].0).as_ref(),
            out.as_os_str(),
        ])
        .output()
        .unwrap();
    assert!(!failed.status.success());
}

/// Guards the reference closure in gc: delete the keyframe's snapshot and
/// one in the middle, gc, and every remaining checkpoint still restores
/// bit for bit and checks clean.
#[test]
fn forget_and_gc_in_the_middle_of_a_chain_keep_what_later_versions_need() {
    let env = Env::new();
    let snaps = chain(&env, 5);
    for k in [0, 2] {
        run_ok(env.cmd(["delete", "--yes", &id(&snaps[k].0)]));
    }
    run_ok(env.cmd(["gc", "--max-unused", "0"]));
    for k in [1, 3, 4] {
        assert_restores(&env, &id(&snaps[k].0), &snaps[k].1);
    }
    assert!(damage(&env.json(["check", "--read-data"])).is_empty());
    // Once no delta needs them, the keyframe's chunks go too.
    for k in [1, 3, 4] {
        run_ok(env.cmd(["delete", "--yes", &id(&snaps[k].0)]));
    }
    run_ok(env.cmd(["gc", "--max-unused", "0"]));
    assert!(
        fs::read_dir(env.repo.join("packs")).map_or(0, count_packs) == 0,
        "packs left after everything was forgotten"
    );
}

fn count_packs(dir: fs::ReadDir) -> usize {
    dir.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                fs::read_dir(&p).map_or(0, count_packs)
            } else {
                usize::from(p.extension().is_some_and(|x| x == "pack"))
            }
        })
        .sum()
}

/// Guards copy: a delta chain copied alone into another repository (its
/// keyframe's snapshot not selected) restores there bit for bit.
#[test]
fn copy_of_a_delta_carries_its_references() {
    let src = Env::new();
    let snaps = chain(&src, 3);
    // In the encrypted run, a destination sharing the source's key (copy
    // refuses encrypted repositories whose keys differ).
    let dst = Env::uninit();
    let mut init = dst.cmd(crate::encrypted_run::init_args());
    if crate::encrypted_run::encrypted() {
        init.arg("--from-repo").arg(&src.repo);
    }
    run_ok(init);
    let last = id(&snaps[2].0);
    run_ok(
        src.cmd(["copy", &last])
            .arg("--from")
            .arg(&src.repo)
            .arg("--to")
            .arg(&dst.repo),
    );
    assert_restores(&dst, &last, &snaps[2].1);
    assert!(damage(&dst.json(["check", "--read-data"])).is_empty());
}

/// Guards the repository version gate: a repository of version 1 (made by
/// an older cairn, which would misread delta chunks as damage) gets only
/// standalone chunks, and a copy of delta chunks into it is refused,
/// naming why, with nothing copied.
#[test]
fn an_older_repository_version_gets_no_delta_chunks() {
    crate::skip_if_encrypted!(
        "it rewrites an unencrypted config by hand (an encrypted one is authenticated)"
    );
    let old = Env::new();
    for key in ["config", "config.backup"] {
        let path = old.repo.join(key);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"version\": 4"), "{text}");
        fs::write(&path, text.replace("\"version\": 4", "\"version\": 1")).unwrap();
    }
    let mut run = Run::new();
    let (first, _) = snap(&old, &run.checkpoint(), &[]);
    run.train(50);
    let (second, bytes) = snap(&old, &run.checkpoint(), &[]);
    assert!(
        u(&second, "added_stored") * 10 > u(&first, "added_stored") * 8,
        "a version-1 repository stored a delta: {second}"
    );
    assert_restores(&old, &id(&second), &bytes);

    // The third checkpoint of the same run is new to `old` (it holds the
    // first two, standalone) and a delta in the source.
    let src = Env::new();
    // A version-3 source: delta chunks, version-1 manifests (a version-2
    // manifest would be refused first, for its trees).
    for key in ["config", "config.backup"] {
        let path = src.repo.join(key);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("\"version\": 4", "\"version\": 3")).unwrap();
    }
    let snaps = chain(&src, 3);
    let err = run_code(
        src.cmd(["copy", &id(&snaps[2].0)])
            .arg("--from")
            .arg(&src.repo)
            .arg("--to")
            .arg(&old.repo),
        2,
    );
    assert!(
        err.contains("delta chunks") && err.contains("version-1"),
        "{err}"
    );
    assert_eq!(old.list().len(), 2, "nothing was copied");
}

/// `cairn bench` over the checkpoints of a run predicts what delta-coded
/// snapshots of them store (within the bench's simplifications: one
/// reference segment per header, chains per tensor), shows the delta
/// columns, and groups the tensors.
#[test]
fn bench_measures_what_delta_coding_stores() {
    crate::skip_if_encrypted!("bench models an unencrypted repository");
    let env = Env::new();
    let mut run = Run::new();
    let mut versions = Vec::new();
    for k in 0..3 {
        let path = env.path(&format!("v{k}/model.safetensors"));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, run.checkpoint()).unwrap();
        versions.push(path.parent().unwrap().to_path_buf());
        run.train(50);
    }
    let mut cmd = env.cmd(["bench"]);
    cmd.args(&versions).arg("--json");
    let report: serde_json::Value = serde_json::from_slice(&run_ok(cmd).stdout).unwrap();
    let setting = &report["settings"][0];
    let benched = setting["versions"].as_array().unwrap();
    for (k, dir) in versions.iter().enumerate() {
        fs::create_dir_all(env.path("ckpt")).unwrap();
        fs::copy(
            dir.join("model.safetensors"),
            env.path("ckpt/model.safetensors"),
        )
        .unwrap();
        let snap = env.snapshot(&env.path("ckpt"), "model", "run", &[]);
        let (predicted, stored) = (
            u(&benched[k], "delta_stored_bytes"),
            u(&snap, "added_stored"),
        );
        let off = predicted.abs_diff(stored) as f64 / stored as f64;
        assert!(
            off < 0.02,
            "version {k}: bench {predicted}, snapshot {stored}"
        );
        if k > 0 {
            assert!(
                predicted * 10 < u(&benched[k], "stored_bytes") * 8,
                "version {k}: deltas should save: {}",
                benched[k]
            );
        }
    }
    let groups: Vec<&str> = setting["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        [
            "attn.v.weight",
            "ffn.down.weight",
            "ffn.up.weight",
            "non-tensor"
        ]
    );
    let mut cmd = env.cmd(["bench"]);
    cmd.args(&versions);
    let text = String::from_utf8(run_ok(cmd).stdout).unwrap();
    assert!(
        text.contains("WITH DELTA") && text.contains("TENSOR GROUP"),
        "{text}"
    );
}
