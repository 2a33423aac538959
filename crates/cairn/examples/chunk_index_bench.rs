//! `chunk_index_bench`: how chunk lookups and a snapshot of new data behave
//! as the catalog grows to 10 M chunks (≈ 640 GB of data at 64 KiB chunks;
//! issue #12, "Scale").
//!
//! ```text
//! cargo run --release --example chunk_index_bench -- fill DIR N
//! cargo run --release --example chunk_index_bench -- lookups DIR N
//! cargo run --release --example chunk_index_bench -- snapshot DIR SOURCE
//! cargo run --release --example chunk_index_bench -- compare WORK N DATA_MIB ROUNDS
//! ```
//!
//! * `fill` creates a repository at DIR whose catalog lists N chunks (ids
//!   BLAKE3(i), i < N, so `lookups` can ask for known ones again) in fake
//!   packs of 8192 chunks, through the catalog's own `add_pack`: only rows,
//!   no pack files.
//! * `lookups` asks for known and unknown ids through the path a snapshot
//!   takes (`Catalog::existing`, one call per 64 ids: a 4 MiB read batch at
//!   64 KiB chunks) and the stat cache's single `has_chunk`.
//! * `snapshot` snapshots SOURCE into DIR, in this process, and prints the
//!   wall time and this process's peak RSS (VmHWM).
//! * `compare` fills WORK/big with N chunks (unless it exists: two builds
//!   can then be compared on one catalog), then for each round writes
//!   DATA_MIB of fresh random bytes and snapshots them into a new empty
//!   repository and into WORK/big, alternating which goes first, each in a
//!   child process (so RSS is the snapshot's alone). WORK/big is kept.

use std::path::{Path, PathBuf};
use std::process::{exit, Command};
use std::time::Instant;

use cairn::format::codec::Codec;
use cairn::format::pack::PackEntry;
use cairn::{
    ChunkId, ChunkerParams, NoProgress, PackId, RepoConfig, Repository, SnapshotLabel,
    SnapshotOptions,
};

/// Ids per `existing` call: what one 4 MiB read batch holds at 64 KiB.
const SNAPSHOT_BATCH: usize = 64;
const PROBES: u64 = 400_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> &str { args.get(i).map(String::as_str).unwrap_or_else(|| usage()) };
    let num = |i: usize| -> u64 { arg(i).parse().unwrap_or_else(|_| usage()) };
    match arg(0) {
        "fill" => fill(Path::new(arg(1)), num(2)),
        "lookups" => lookups(Path::new(arg(1)), num(2)),
        "snapshot" => snapshot(Path::new(arg(1)), Path::new(arg(2))),
        "compare" => compare(Path::new(arg(1)), num(2), num(3), num(4)),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: chunk_index_bench fill DIR N | lookups DIR N | snapshot DIR SOURCE | compare WORK N DATA_MIB ROUNDS");
    exit(2)
}

fn id(i: u64) -> ChunkId {
    ChunkId::of(&i.to_le_bytes())
}

fn config() -> RepoConfig {
    RepoConfig::new(ChunkerParams::default(), 1).expect("level 1 is valid")
}

/// A new repository at `dir` whose catalog lists `n` chunks.
fn fill(dir: &Path, n: u64) {
    let t = Instant::now();
    let repo = Repository::init(dir, config()).expect("init");
    let mut ids: Vec<ChunkId> = (0..n).map(id).collect();
    // Key order: SQLite then appends to the B-tree instead of splitting it.
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
        let pack = PackId::of(&(p as u64).to_le_bytes());
        repo.catalog()
            .add_pack(&pack, 32 << 20, &entries)
            .expect("add_pack");
    }
    drop(repo);
    let size = file_len(&dir.join("catalog.db")) + file_len(&dir.join("catalog.db-wal"));
    println!(
        "fill: {n} chunks in {:.1} s; catalog {:.1} MiB ({} bytes/chunk)",
        t.elapsed().as_secs_f64(),
        size as f64 / 1048576.0,
        size / n.max(1)
    );
}

fn lookups(dir: &Path, n: u64) {
    let filter = dir.join("catalog.chunkfilter");
    let _ = std::fs::remove_file(&filter);
    let unknown: Vec<ChunkId> = (0..PROBES).map(|i| id(n + 1 + i)).collect();
    // The first lookup of a process loads the chunk filter, or builds it
    // from the chunk rows when its file is missing (here: the first open).
    // A process that adds chunks writes it back on close, as a snapshot
    // does: here one chunk in one more fake pack.
    for (what, round) in [("built", 0u64), ("loaded", 1)] {
        let repo = Repository::open(dir).expect("open");
        let (t, cpu) = (Instant::now(), cpu_seconds());
        repo.catalog().existing(&unknown[..1]).expect("existing");
        println!(
            "first lookup, chunk filter {what}: {:.3} s wall, {:.2} s CPU",
            t.elapsed().as_secs_f64(),
            cpu_seconds() - cpu
        );
        let entry = PackEntry {
            chunk: id(u64::MAX - round),
            offset: 16,
            stored_len: 1,
            raw_len: 1,
            codec: Codec::Raw,
        };
        let pack = PackId::of(&(u64::MAX - round).to_le_bytes());
        repo.catalog()
            .add_pack(&pack, 17, &[entry])
            .expect("add_pack");
    }
    if let Ok(m) = std::fs::metadata(&filter) {
        println!("chunk filter file: {:.1} MiB", m.len() as f64 / 1048576.0);
    }
    let repo = Repository::open(dir).expect("open");
    repo.catalog().existing(&unknown[..1]).expect("existing");
    // Distinct ids (7919 is prime to any power of ten), as a batch would hold.
    let known: Vec<ChunkId> = (0..PROBES.min(n))
        .map(|i| id((i * 7_919 + 13) % n.max(1)))
        .collect();
    for (what, probes, expect) in [("unknown", &unknown, 0), ("known", &known, 1)] {
        let (t, cpu) = (Instant::now(), cpu_seconds());
        let found: usize = probes
            .chunks(SNAPSHOT_BATCH)
            .map(|g| repo.catalog().existing(g).expect("existing").len())
            .sum();
        assert!(n == 0 || found == probes.len() * expect, "{what}: {found}");
        rates(
            &format!("{what} ids, existing() per {SNAPSHOT_BATCH}"),
            probes.len(),
            t,
            cpu,
        );
    }
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let single = known[..50_000]
        .iter()
        .filter(|p| repo.catalog().has_chunk(p).expect("has_chunk"))
        .count();
    assert!(n == 0 || single == 50_000);
    rates("known ids, has_chunk() one by one", 50_000, t, cpu);
}

/// Lookups per second of wall time, and per second of this process's CPU
/// time (what a quiet machine would give, on a shared one).
fn rates(what: &str, n: usize, wall: Instant, cpu: f64) {
    let wall = wall.elapsed().as_secs_f64();
    let cpu = (cpu_seconds() - cpu).max(0.01);
    println!(
        "{what}: {:.0}/s wall, {:.0}/s per CPU second",
        n as f64 / wall,
        n as f64 / cpu
    );
}

/// User + system CPU time of this process so far (all threads), from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and
    // stime are the 12th and 13th, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

fn snapshot(dir: &Path, source: &Path) {
    let repo = Repository::open(dir).expect("open");
    let opts = SnapshotOptions {
        label: SnapshotLabel::new("data", "scale"),
        ..Default::default()
    };
    let (t, cpu) = (Instant::now(), cpu_seconds());
    let report = repo
        .snapshot(&[source.to_path_buf()], &opts, &NoProgress)
        .expect("snapshot");
    drop(repo);
    println!(
        "snapshot: {:.2} s wall, {:.2} s CPU, {} new chunks, peak RSS {} MiB",
        t.elapsed().as_secs_f64(),
        cpu_seconds() - cpu,
        report.chunks_new,
        peak_rss_kib() / 1024
    );
}

fn compare(work: &Path, n: u64, data_mib: u64, rounds: u64) {
    std::fs::create_dir_all(work).expect("create WORK");
    let big = work.join("big");
    if !big.exists() {
        fill(&big, n);
    }
    let me = std::env::current_exe().expect("own path");
    // New bytes on every run, so a second run on the same WORK/big stores
    // new data too.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let run = |repo: &Path, source: &Path| -> String {
        let out = Command::new(&me)
            .arg("snapshot")
            .arg(repo)
            .arg(source)
            .output()
            .expect("run snapshot");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    for round in 0..rounds {
        let source = work.join("data.bin");
        write_noise(&source, data_mib << 20, seed + round);
        let empty = work.join(format!("empty{round}"));
        Repository::init(&empty, config()).expect("init");
        let order: [(&str, &PathBuf); 2] = match round % 2 {
            0 => [("empty", &empty), ("big", &big)],
            _ => [("big", &big), ("empty", &empty)],
        };
        for (name, repo) in order {
            println!("round {round} {name}: {}", run(repo, &source));
        }
        std::fs::remove_dir_all(&empty).expect("remove empty repo");
        std::fs::remove_file(&source).expect("remove data");
    }
}

/// `len` bytes of xorshift noise: incompressible, and new to every catalog.
fn write_noise(path: &Path, len: u64, seed: u64) {
    use std::io::Write;
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create data"));
    let mut buf = Vec::with_capacity(1 << 20);
    for _ in 0..len >> 20 {
        buf.clear();
        while buf.len() < 1 << 20 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            buf.extend_from_slice(&state.to_le_bytes());
        }
        out.write_all(&buf).expect("write data");
    }
    out.flush().expect("write data");
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// This process's peak resident set, from /proc (0 where there is none).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
