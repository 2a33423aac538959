//! How cairn behaves as the catalog grows: fills catalogs with 10 k, 1 M and
//! 10 M synthetic chunk records (≈ 640 GB of data at 64 KiB chunks), then
//! measures lookups per second, the throughput and peak RSS of a snapshot of
//! new data through the real CLI, and catalog bytes per chunk.
//!
//! `cargo bench --bench scale` (sizes: `SCALE_CHUNKS=10000,1000000,10000000`,
//! snapshot size: `SCALE_SNAPSHOT_MB=256`). Needs GNU time (`/usr/bin/time`).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use cairn::format::codec::Codec;
use cairn::format::pack::PackEntry;
use cairn::{ChunkId, ChunkerParams, PackId, RepoConfig, Repository};

fn main() {
    let sizes: Vec<u64> = std::env::var("SCALE_CHUNKS")
        .unwrap_or_else(|_| "10000,1000000,10000000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("SCALE_CHUNKS: numbers"))
        .collect();
    let snap_mb: u64 = std::env::var("SCALE_SNAPSHOT_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let cairn = env!("CARGO_BIN_EXE_cairn");
    let work =
        tempfile::tempdir_in(std::env::var("SCALE_DIR").unwrap_or_else(|_| "/tmp".into())).unwrap();
    let source = work.path().join("src");
    std::fs::create_dir_all(&source).unwrap();
    println!("| catalog chunks | fill s | catalog MiB | bytes/chunk | lookups/s (batch) | lookups/s (single) | snapshot {snap_mb} MiB new: s | MiB/s | peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (round, &n) in [0].iter().chain(&sizes).enumerate() {
        let root = work.path().join(format!("repo{n}"));
        let repo =
            Repository::init(&root, RepoConfig::new(ChunkerParams::default(), 1).unwrap()).unwrap();
        let fill = Instant::now();
        fill_catalog(&repo, n);
        let fill_s = fill.elapsed().as_secs_f64();
        let (batch, single) = lookup_rates(&repo, n);
        drop(repo);
        let db = std::fs::metadata(root.join("catalog.db"))
            .map(|m| m.len())
            .unwrap_or(0)
            + std::fs::metadata(root.join("catalog.db-wal"))
                .map(|m| m.len())
                .unwrap_or(0);
        // Fresh data each round so every chunk is a miss.
        write_noise(&source.join("data.bin"), snap_mb << 20, round as u64 + 1);
        let (secs, rss_kb) = timed_snapshot(cairn, &root, &source);
        println!(
            "| {n} | {fill_s:.1} | {:.1} | {} | {} | {} | {secs:.2} | {:.0} | {:.0} |",
            db as f64 / 1048576.0,
            if n > 0 {
                format!("{:.0}", db as f64 / n as f64)
            } else {
                "-".into()
            },
            batch.map_or("-".into(), |r| format!("{r:.0}")),
            single.map_or("-".into(), |r| format!("{r:.0}")),
            snap_mb as f64 / secs,
            rss_kb as f64 / 1024.0,
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}

fn id(i: u64) -> ChunkId {
    ChunkId::of(&i.to_le_bytes())
}

/// Inserts `n` chunk rows in key order (fast appends) across packs of
/// 8192 chunks; the pack files do not exist, only their catalog rows.
fn fill_catalog(repo: &Repository, n: u64) {
    let mut ids: Vec<ChunkId> = (0..n).map(id).collect();
    ids.sort_unstable();
    for (p, group) in ids.chunks(8192).enumerate() {
        let entries: Vec<PackEntry> = group
            .iter()
            .enumerate()
            .map(|(i, c)| PackEntry {
                chunk: *c,
                offset: 16 + i as u64 * 40_000,
                stored_len: 40_000,
                raw_len: 65_536,
                codec: Codec::Zstd,
            })
            .collect();
        repo.catalog()
            .add_pack(&PackId::of(&(p as u64).to_le_bytes()), 32 << 20, &entries)
            .unwrap();
    }
}

/// Random hits and misses, half each: (batched, one query per id).
fn lookup_rates(repo: &Repository, n: u64) -> (Option<f64>, Option<f64>) {
    if n == 0 {
        return (None, None);
    }
    let probes: Vec<ChunkId> = (0..200_000u64)
        .map(|i| {
            if i % 2 == 0 {
                id((i.wrapping_mul(0x9E37_79B9)) % n)
            } else {
                id(n + i)
            }
        })
        .collect();
    let t = Instant::now();
    let found: usize = probes
        .chunks(4096)
        .map(|g| repo.catalog().existing(g).unwrap().len())
        .sum();
    let batch = probes.len() as f64 / t.elapsed().as_secs_f64();
    assert_eq!(found, probes.len() / 2);
    let t = Instant::now();
    let single = probes[..50_000]
        .iter()
        .filter(|p| repo.catalog().has_chunk(p).unwrap())
        .count();
    assert_eq!(single, 25_000);
    (Some(batch), Some(50_000.0 / t.elapsed().as_secs_f64()))
}

fn write_noise(path: &Path, len: u64, seed: u64) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = Vec::with_capacity(len as usize);
    while (buf.len() as u64) < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        buf.extend_from_slice(&state.to_le_bytes());
    }
    std::fs::write(path, buf).unwrap();
}

/// Runs `cairn snapshot` under GNU time: (wall seconds, peak RSS KiB).
fn timed_snapshot(cairn: &str, repo: &Path, source: &Path) -> (f64, u64) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%e %M", cairn, "--repo"])
        .arg(repo)
        .args(["snapshot", "--kind", "data", "--name", "scale", "--quiet"])
        .arg(source)
        .output()
        .expect("run /usr/bin/time (apt-get install time)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    let mut it = last.split_whitespace();
    (
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse().unwrap(),
    )
}
