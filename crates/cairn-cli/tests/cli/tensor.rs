//! Model-aware storage through the real CLI on real safetensors files:
//! tensor-aware chunk boundaries (header edits, one changed tensor, an
//! appended tensor store only what changed) and byte-plane compression of
//! bf16 weights with bit-identical restore.

use std::fs;
use std::path::Path;

use crate::common::{run_ok, u, Env, SplitMix64};

/// Largest chunk the default chunker cuts (256 KiB).
const MAX_CHUNK: u64 = 256 * 1024;

/// A bf16 tensor of `len` bytes with weight-like values (small exponents,
/// random sign and mantissa), deterministic in `seed`.
fn weights(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64(seed);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let r = rng.next_u64();
        for k in 0..4 {
            let bits = (r >> (16 * k)) as u16;
            let exp = 117 + (bits >> 8) % 7; // |x| ≈ 2^-10 .. 2^-4
            let v = (bits & 0x8000) | (exp << 7) | (bits & 0x7F);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

/// A safetensors file: 8-byte header length, JSON header (padded to 8),
/// tensors back to back. `meta` adds a `__metadata__` entry.
fn safetensors(tensors: &[(String, Vec<u8>)], meta: Option<&str>) -> Vec<u8> {
    let mut entries = Vec::new();
    if let Some(m) = meta {
        entries.push(format!(r#""__metadata__":{{"note":"{m}"}}"#));
    }
    let mut offset = 0;
    for (name, data) in tensors {
        entries.push(format!(
            r#""{name}":{{"dtype":"BF16","shape":[{}],"data_offsets":[{offset},{}]}}"#,
            data.len() / 2,
            offset + data.len()
        ));
        offset += data.len();
    }
    let mut header = format!("{{{}}}", entries.join(",")).into_bytes();
    header.resize(header.len().div_ceil(8) * 8, b' ');
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    for (_, data) in tensors {
        out.extend_from_slice(data);
    }
    out
}

fn model(n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| (format!("layers.{i}.weight"), weights(1 << 20, i as u64 + 1)))
        .collect()
}

/// Snapshots `bytes` as `model/model.safetensors` and returns the report.
fn snap(env: &Env, bytes: &[u8]) -> serde_json::Value {
    let dir = env.path("model");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("model.safetensors"), bytes).unwrap();
    env.snapshot(&dir, "model", "llm", &["--force"])
}

/// Guards tensor-aware cuts: a header edit that shifts every tensor by a
/// few bytes (a metadata key added) stores < 0.1% new bytes.
#[test]
fn header_edit_shifting_every_tensor_stores_almost_nothing() {
    let env = Env::new();
    let tensors = model(8);
    snap(&env, &safetensors(&tensors, None));
    let v2 = safetensors(&tensors, Some("fine-tuned on desk data, run 42"));
    let report = snap(&env, &v2);
    let added = u(&report, "added_raw");
    assert!(
        added * 1000 < v2.len() as u64,
        "added {added} of {}",
        v2.len()
    );
    assert!(added > 0, "the header itself changed");
}

/// Guards tensor-aware cuts: rewriting one tensor stores that tensor's
/// bytes plus at most one chunk on each side.
#[test]
fn changing_one_tensor_stores_about_that_tensor() {
    let env = Env::new();
    let mut tensors = model(8);
    snap(&env, &safetensors(&tensors, None));
    tensors[3].1 = weights(1 << 20, 99);
    let report = snap(&env, &safetensors(&tensors, None));
    let added = u(&report, "added_raw");
    let len = tensors[3].1.len() as u64;
    assert!(
        added >= len * 9 / 10 && added <= len + 2 * MAX_CHUNK,
        "added {added}, tensor {len}"
    );
}

/// Guards tensor-aware cuts: appending a tensor stores about the new
/// tensor (plus the rewritten header).
#[test]
fn appending_a_tensor_stores_about_the_new_tensor() {
    let env = Env::new();
    let mut tensors = model(6);
    snap(&env, &safetensors(&tensors, None));
    tensors.push(("layers.6.weight".into(), weights(1 << 20, 77)));
    let report = snap(&env, &safetensors(&tensors, None));
    let added = u(&report, "added_raw");
    assert!(
        (1 << 20..=(1 << 20) + 64 * 1024).contains(&added),
        "added {added}"
    );
}

/// Guards dtype-aware compression: bf16 weights are stored as byte planes
/// well below raw size and plain zstd's, and restore bit-identically.
#[test]
fn bf16_weights_compress_as_planes_and_restore_exactly() {
    let env = Env::new();
    let file = safetensors(&model(4), None);
    let report = snap(&env, &file);
    let stored = u(&report, "added_stored") as f64 / u(&report, "added_raw") as f64;
    let zstd = zstd::bulk::compress(&file, 3).unwrap().len() as f64 / file.len() as f64;
    assert!(stored < 0.8, "stored/raw {stored:.3}");
    assert!(
        stored < zstd - 0.05,
        "planes {stored:.3} vs plain zstd {zstd:.3}"
    );
    let out = env.path("out");
    run_ok(env.cmd(["restore", "llm"]).arg(&out));
    assert_eq!(fs::read(out.join("model/model.safetensors")).unwrap(), file);
    run_ok(env.cmd(["check", "--read-data"]));
    assert!(Path::new(&out).join("model").is_dir());
}
