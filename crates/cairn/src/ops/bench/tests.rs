use std::fs;
use std::path::{Path, PathBuf};

/// `len` deterministic incompressible bytes.
fn stream(len: usize, seed: u64) -> Vec<u8> {
    crate::test_support::random_bytes(seed, len)
}

use super::*;
use crate::progress::NoProgress;

fn write(path: &Path, data: &[u8]) -> PathBuf {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
    path.to_path_buf()
}

fn settings(avgs: &[u32], levels: &[i32]) -> BenchSettings {
    BenchSettings {
        chunk_avgs: avgs.to_vec(),
        levels: levels.to_vec(),
    }
}

fn one(paths: &[PathBuf], avg: u32, level: i32) -> SettingReport {
    let mut r = run(paths, &settings(&[avg], &[level]), &NoProgress).unwrap();
    assert_eq!(r.settings.len(), 1);
    r.settings.pop().unwrap()
}

/// A safetensors file: `header` bytes of JSON (padded), then a BF16 tensor
/// of `a` bytes and an F32 tensor of `b` bytes.
fn safetensors(a: usize, b: usize, seed: u64) -> (Vec<u8>, usize) {
    let mut header = format!(
        r#"{{"a":{{"dtype":"BF16","shape":[{}],"data_offsets":[0,{a}]}},"b":{{"dtype":"F32","shape":[{}],"data_offsets":[{a},{}]}}}}"#,
        a / 2,
        b / 4,
        a + b
    );
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    let start = out.len();
    out.extend(stream(a + b, seed));
    (out, start)
}

/// An identical second version adds nothing: dedup is exactly 2x.
#[test]
fn identical_second_version_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = stream(3 << 20, 1);
    let v1 = write(&dir.path().join("v1/w.bin"), &data);
    let v2 = write(&dir.path().join("v2/w.bin"), &data);
    let r = one(&[v1, v2], 64 << 10, 3);
    assert_eq!(r.versions[0].tally.new_bytes, 3 << 20);
    assert_eq!(r.versions[1].tally.new_chunks, 0);
    assert_eq!(r.versions[1].tally.new_bytes, 0);
    assert_eq!(r.versions[1].tally.chunks, r.versions[0].tally.chunks);
    assert_eq!(r.total.logical_bytes, 6 << 20);
    assert_eq!(r.dedup_ratio, 2.0);
}

/// Two versions differing in one 100 KB region: the second adds that
/// region plus at most the chunks around it (each ≤ max = 256 KiB).
#[test]
fn one_changed_region_costs_about_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let data = stream(4 << 20, 2);
    let mut changed = data.clone();
    changed[2_000_000..2_100_000].copy_from_slice(&stream(100_000, 3));
    let v1 = write(&dir.path().join("a.bin"), &data);
    let v2 = write(&dir.path().join("b.bin"), &changed);
    let r = one(&[v1.clone(), v2.clone()], 64 << 10, 3);
    assert_eq!(r.versions[0].name, v1.display().to_string());
    assert_eq!(r.versions[0].tally.new_bytes, 4 << 20);
    let added = r.versions[1].tally.new_bytes;
    assert!(
        (100_000..=100_000 + 2 * (256 << 10)).contains(&added),
        "{added}"
    );
    assert_eq!(r.total.new_bytes, (4 << 20) + added);
    let expected = (8 << 20) as f64 / ((4 << 20) + added) as f64;
    assert!((r.dedup_ratio - expected).abs() < 1e-12);
    assert!(r.dedup_ratio > 1.8, "{}", r.dedup_ratio);
    // Random bytes do not compress: stored as they are.
    assert_eq!(r.total.stored_bytes, r.total.new_bytes);
    // A file version is listed under its own name.
    let names: Vec<_> = r.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a.bin", "b.bin"]);
}

/// Level 0 stores raw: stored == after dedup. Several levels share a pass
/// and differ only in stored bytes.
#[test]
fn levels_differ_only_in_stored_bytes_and_level_0_stores_raw() {
    let dir = tempfile::tempdir().unwrap();
    let text: Vec<u8> = (0..2_000_000u32)
        .flat_map(|i| format!("{} ", i % 1000).into_bytes())
        .collect();
    let v = write(&dir.path().join("log.txt"), &text);
    let r = run(&[v], &settings(&[64 << 10], &[3, 0]), &NoProgress).unwrap();
    let (raw, zstd) = (&r.settings[0], &r.settings[1]);
    assert_eq!((raw.level, zstd.level), (0, 3), "levels sorted");
    assert_eq!(raw.total.stored_bytes, raw.total.new_bytes);
    assert_eq!(raw.compression_ratio, 1.0);
    assert!(
        zstd.total.stored_bytes * 5 < zstd.total.new_bytes,
        "{zstd:?}"
    );
    let without_stored = |t: &Tally| Tally {
        stored_bytes: 0,
        delta_stored_bytes: 0,
        ..t.clone()
    };
    assert_eq!(without_stored(&raw.total), without_stored(&zstd.total));
    assert_eq!(raw.histogram, zstd.histogram);
}

/// The histogram counts every chunk once, repeats included, in the bucket
/// of its length; buckets are contiguous powers of two.
#[test]
fn histogram_sums_to_the_chunk_count() {
    let dir = tempfile::tempdir().unwrap();
    let data = stream(5 << 20, 4);
    let v1 = write(&dir.path().join("v1/x"), &data);
    let v2 = write(&dir.path().join("v2/x"), &data[..3 << 20]);
    let r = run(
        &[v1, v2],
        &settings(&[16 << 10, 256 << 10], &[1]),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(r.settings.len(), 2);
    for s in &r.settings {
        let chunks: u64 = s.histogram.iter().map(|b| b.chunks).sum();
        let bytes: u64 = s.histogram.iter().map(|b| b.bytes).sum();
        assert_eq!(chunks, s.total.chunks);
        assert_eq!(bytes, s.total.logical_bytes);
        assert_eq!(bytes, 8 << 20);
        for pair in s.histogram.windows(2) {
            assert_eq!(pair[0].to, pair[1].from);
        }
        for b in &s.histogram {
            assert!(b.to == 2 * b.from && b.from.is_power_of_two());
            assert!(b.chunks == 0 || (b.bytes >= b.chunks * b.from && b.bytes < b.chunks * b.to));
        }
        // Only the last chunk of a file may be shorter than min.
        let short: u64 = (s.histogram.iter())
            .filter(|b| b.to <= s.chunk_min as u64)
            .map(|b| b.chunks)
            .sum();
        assert!(short <= 2, "{short}");
    }
    // Smaller chunks: more of them.
    assert!(r.settings[0].total.chunks > 8 * r.settings[1].total.chunks);
}

/// Chunks are attributed to the dtype of the tensor they lie in; header
/// bytes and files of no known format are non-tensor.
#[test]
fn dtype_breakdown_follows_the_tensor_layout() {
    let dir = tempfile::tempdir().unwrap();
    let (model, start) = safetensors(1 << 20, 3 << 19, 5);
    let v = dir.path().join("v");
    write(&v.join("model.safetensors"), &model);
    write(&v.join("notes.txt"), b"fine-tuned on Tuesday");
    let r = one(std::slice::from_ref(&v), 16 << 10, 1);
    let by: BTreeMap<_, _> = r
        .dtypes
        .iter()
        .map(|d| (d.name.as_str(), &d.tally))
        .collect();
    assert_eq!(
        by.keys().copied().collect::<Vec<_>>(),
        ["BF16", "F32", NON_TENSOR]
    );
    assert_eq!(by["BF16"].logical_bytes, 1 << 20);
    assert_eq!(by["F32"].logical_bytes, 3 << 19);
    assert_eq!(by[NON_TENSOR].logical_bytes, start as u64 + 21);
    // Files inside a directory version are named relative to it.
    let names: Vec<_> = r.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["model.safetensors", "notes.txt"]);
    assert_eq!(r.versions[0].tally.logical_bytes, model.len() as u64 + 21);
}

/// The same file in two directory versions is one row of the per-file
/// breakdown; what changed shows up in the file that changed.
#[test]
fn files_are_grouped_across_directory_versions() {
    let dir = tempfile::tempdir().unwrap();
    let a = stream(1 << 20, 6);
    let b = stream(1 << 20, 7);
    write(&dir.path().join("r1/a"), &a);
    write(&dir.path().join("r1/sub/b"), &b);
    write(&dir.path().join("r2/a"), &a);
    write(&dir.path().join("r2/sub/b"), &stream(1 << 20, 8));
    let r = one(&[dir.path().join("r1"), dir.path().join("r2")], 64 << 10, 3);
    let names: Vec<_> = r.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a", "sub/b"]);
    assert_eq!(r.files[0].tally.logical_bytes, 2 << 20);
    assert_eq!(r.files[0].tally.new_bytes, 1 << 20);
    assert_eq!(r.files[1].tally.new_bytes, 2 << 20);
    assert_eq!(r.versions[1].tally.new_bytes, 1 << 20);
}

#[test]
fn settings_are_sorted_and_checked() {
    let s = settings(&[1 << 20, 16 << 10, 1 << 20], &[9, 1, 9]);
    assert_eq!(
        s.normalized().unwrap(),
        settings(&[16 << 10, 1 << 20], &[1, 9])
    );
    assert!(settings(&[100], &[3]).normalized().is_err());
    assert!(settings(&[64 << 10], &[20]).normalized().is_err());
    assert!(settings(&[], &[3]).normalized().is_err());
    let err = run(&[], &BenchSettings::default(), &NoProgress).unwrap_err();
    assert!(err.to_string().contains("at least one path"), "{err}");
    let missing = PathBuf::from("/nonexistent/cairn-bench");
    let err = run(&[missing], &BenchSettings::default(), &NoProgress).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/cairn-bench"),
        "{err}"
    );
}

#[test]
fn size_labels() {
    assert_eq!(size_label(16 << 10), "16K");
    assert_eq!(size_label(1 << 20), "1M");
    assert_eq!(size_label(1536), "1536");
    assert_eq!(size_label(1000), "1000");
}

/// The repository report adds up what each snapshot recorded.
#[test]
fn history_accumulates_what_each_snapshot_added() {
    use crate::{RepoConfig, Repository, SnapshotOptions};
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(
        &dir.path().join("repo"),
        RepoConfig::new(ChunkerParams::default(), 0).unwrap(),
    )
    .unwrap();
    let src = write(&dir.path().join("w.bin"), &stream(2 << 20, 9));
    let opts = SnapshotOptions {
        label: crate::SnapshotLabel::new("model", "m"),
        force: true,
        ..Default::default()
    };
    repo.snapshot(std::slice::from_ref(&src), &opts, &NoProgress)
        .unwrap();
    repo.snapshot(std::slice::from_ref(&src), &opts, &NoProgress)
        .unwrap();
    let h = history::report(&repo).unwrap();
    assert_eq!((h.chunk_avg, h.level), (64 << 10, 0));
    assert_eq!(h.snapshots.len(), 2);
    let (first, second) = (&h.snapshots[0], &h.snapshots[1]);
    assert_eq!(first.added_raw, 2 << 20);
    assert_eq!(first.added_stored, 2 << 20);
    assert_eq!(second.added_raw, 0);
    assert_eq!(second.bytes_read, 2 << 20);
    assert_eq!(second.cumulative_logical, 4 << 20);
    assert_eq!(second.cumulative_raw, 2 << 20);
    assert!(
        (1.99..=2.0).contains(&second.dedup_ratio),
        "{}",
        second.dedup_ratio
    );
    assert_eq!(second.history, "model/m");
    // The repository's chunks: the file's, and its snapshots' one tree.
    let tree = h.raw_bytes - (2 << 20);
    assert!(
        tree > 0 && tree < 2048 && h.stored_bytes == h.raw_bytes,
        "{tree}"
    );
}

/// A BF16 checkpoint of two tensors `layer.0.w` and `layer.1.w` of `n`
/// values each after `step` small optimizer-like steps from the same start:
/// every weight moves a little, so chunks never repeat between steps.
fn checkpoint(n: usize, step: u32) -> Vec<u8> {
    let mut header = format!(
        r#"{{"layer.0.w":{{"dtype":"BF16","shape":[{n}],"data_offsets":[0,{}]}},"layer.1.w":{{"dtype":"BF16","shape":[{n}],"data_offsets":[{},{}]}}}}"#,
        2 * n,
        2 * n,
        4 * n
    );
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut uniform = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    for _ in 0..2 * n {
        let start = 0.05 * (uniform() + uniform() + uniform());
        // The same drift for a weight at every step: a trained direction.
        let drift = 2e-4 * uniform();
        let w = start + drift * step as f32;
        out.extend_from_slice(&((w.to_bits() >> 16) as u16).to_le_bytes());
    }
    out
}

/// Successive checkpoints cost less as deltas; the first version and every
/// keyframe are standalone; tensors of all layers form one group.
#[test]
fn delta_coding_is_measured_per_version_and_group_with_keyframes() {
    let dir = tempfile::tempdir().unwrap();
    let interval = crate::ops::snapshot::delta::KEYFRAME_INTERVAL as u32;
    let versions: Vec<PathBuf> = (0..=interval)
        .map(|step| {
            let path = dir.path().join(format!("ckpt-{step}.safetensors"));
            write(&path, &checkpoint(300_000, step))
        })
        .collect();
    let r = one(&versions, 64 << 10, 3);
    let v = &r.versions;
    assert_eq!(v[0].tally.delta_stored_bytes, v[0].tally.stored_bytes);
    for (k, version) in v.iter().enumerate().skip(1) {
        let t = &version.tally;
        // Only the header repeats.
        assert!(t.new_bytes >= 1_200_000, "version {k}: {t:?}");
        if k as u32 % interval == 0 {
            assert_eq!(
                t.delta_stored_bytes, t.stored_bytes,
                "version {k} is a keyframe"
            );
        } else {
            assert!(
                t.delta_stored_bytes * 10 < t.stored_bytes * 9,
                "version {k}: delta {} standalone {}",
                t.delta_stored_bytes,
                t.stored_bytes
            );
        }
    }
    let names: Vec<_> = r.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["layer.N.w", NON_TENSOR]);
    let weights = &r.groups[0].tally;
    assert_eq!(weights.logical_bytes, (interval as u64 + 1) * 1_200_000);
    assert!(weights.delta_ratio() > 1.25, "{weights:?}");
    assert_eq!(
        r.total.delta_stored_bytes,
        r.groups
            .iter()
            .map(|g| g.tally.delta_stored_bytes)
            .sum::<u64>()
    );
}
