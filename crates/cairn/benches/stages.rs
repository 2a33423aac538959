//! Throughput of each stage of the snapshot path, per core, beside the
//! machine's own limits for moving the same bytes (memory copy, page-cache
//! read). `cargo bench --bench stages`; figures go in docs/BENCHMARKS.md.

use std::hint::black_box;
use std::io::{Read, Write};

use cairn::format::codec::{self, Hint};
use cairn::format::pack::PackWriter;
use cairn::format::seal::{self, Sealed};
use cairn::ingest::chunker::{Chunker, ChunkerParams};
use cairn::ChunkId;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sha2::Digest;

const LEN: usize = 64 << 20;

/// bf16-like weights: normal values around 0 with scale 0.02, as bytes.
fn weights(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Sum of uniforms ≈ normal; enough for byte statistics.
        let u = ((state & 0xFFFF) + ((state >> 16) & 0xFFFF) + ((state >> 32) & 0xFFFF)) as f32
            / 65535.0
            - 1.5;
        let bits = (u * 0.02f32).to_bits();
        out.extend_from_slice(&((bits >> 16) as u16).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn limits(c: &mut Criterion) {
    let data = weights(LEN);
    let mut g = c.benchmark_group("limit");
    g.throughput(Throughput::Bytes(LEN as u64)).sample_size(10);
    let mut dst = vec![0u8; LEN];
    g.bench_function("memcpy", |b| {
        b.iter(|| dst.copy_from_slice(black_box(&data)))
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&data)
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    g.bench_function("page_cache_read", |b| {
        b.iter(|| {
            let mut f = std::fs::File::open(&path).unwrap();
            while f.read(&mut buf).unwrap() > 0 {}
        })
    });
    g.finish();
}

fn stages(c: &mut Criterion) {
    let data = weights(LEN);
    let chunker = Chunker::new(ChunkerParams::default()).unwrap();
    let lens = chunker.split_all(&data);
    let chunks: Vec<&[u8]> = {
        let mut off = 0;
        lens.iter()
            .map(|&l| {
                off += l;
                &data[off - l..off]
            })
            .collect()
    };
    let mut g = c.benchmark_group("stage");
    g.throughput(Throughput::Bytes(LEN as u64)).sample_size(10);
    g.bench_function("fastcdc_64k", |b| {
        b.iter(|| black_box(chunker.split_all(black_box(&data))))
    });
    g.bench_function("blake3_per_chunk", |b| {
        b.iter(|| {
            for c in &chunks {
                black_box(ChunkId::of(c));
            }
        })
    });
    g.bench_function("sha256", |b| {
        b.iter(|| black_box(sha2::Sha256::digest(black_box(&data))))
    });
    g.bench_function("zstd3", |b| {
        b.iter(|| {
            chunks
                .iter()
                .map(|c| codec::encode(c, 3, Hint::Bytes).1.len())
                .sum::<usize>()
        })
    });
    let planes = Hint::Planes {
        width: 2,
        float: true,
    };
    g.bench_function("planes_bf16", |b| {
        b.iter(|| {
            chunks
                .iter()
                .map(|c| codec::encode(c, 3, planes).1.len())
                .sum::<usize>()
        })
    });
    let encoded: Vec<_> = chunks
        .iter()
        .map(|c| (ChunkId::of(c), codec::encode(c, 3, planes), c.len()))
        .collect();
    g.bench_function("planes_decode", |b| {
        b.iter(|| {
            encoded
                .iter()
                .map(|(_, (k, s), n)| codec::decode(*k, s, *n).unwrap().len())
                .sum::<usize>()
        })
    });
    g.bench_function("pack_write", |b| {
        b.iter(|| {
            let mut w = PackWriter::new();
            for (id, (k, s), n) in &encoded {
                w.add(*id, *k, *n as u32, s);
                if w.is_full() {
                    black_box(std::mem::take(&mut w).finish());
                }
            }
            black_box(w.finish())
        })
    });
    g.finish();
    // An encrypted repository's extra work per chunk, on the same chunks:
    // sealing on snapshot, opening (authenticate, then decrypt) on restore;
    // per byte sealed, the codec's output.
    let key = seal::SecretKey::from_bytes([7; 32]);
    let stored: usize = encoded.iter().map(|(_, (_, s), _)| s.len()).sum();
    let mut g = c.benchmark_group("aead");
    g.throughput(Throughput::Bytes(stored as u64))
        .sample_size(10);
    g.bench_function("xchacha_seal", |b| {
        b.iter(|| {
            encoded
                .iter()
                .map(|(id, (_, s), _)| seal::seal(&key, Sealed::Chunk(id), s).len())
                .sum::<usize>()
        })
    });
    let sealed: Vec<_> = encoded
        .iter()
        .map(|(id, (_, s), _)| (*id, seal::seal(&key, Sealed::Chunk(id), s)))
        .collect();
    g.bench_function("xchacha_open", |b| {
        b.iter(|| {
            sealed
                .iter()
                .map(|(id, s)| seal::open(&key, Sealed::Chunk(id), s).unwrap().len())
                .sum::<usize>()
        })
    });
    g.finish();
}

/// Point lookups in a catalog of 100k chunks (the scale bench measures 10M).
fn catalog(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let repo = cairn::Repository::init(
        &dir.path().join("r"),
        cairn::RepoConfig::new(ChunkerParams::default(), 3).unwrap(),
    )
    .unwrap();
    let ids: Vec<ChunkId> = (0..100_000u64)
        .map(|i| ChunkId::of(&i.to_le_bytes()))
        .collect();
    let entries: Vec<cairn::format::pack::PackEntry> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| cairn::format::pack::PackEntry {
            chunk: *id,
            offset: 16 + i as u64 * 10,
            stored_len: 10,
            raw_len: 10,
            codec: codec::Codec::Raw,
        })
        .collect();
    repo.catalog()
        .add_pack(&cairn::PackId::of(b"p"), 1 << 30, &entries)
        .unwrap();
    let mut g = c.benchmark_group("catalog");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("has_chunk_hit_x1000", |b| {
        let mut i = 0;
        b.iter(|| {
            for _ in 0..1000 {
                i = (i + 7919) % ids.len();
                assert!(repo.catalog().has_chunk(&ids[i]).unwrap());
            }
        })
    });
    g.bench_function("has_chunk_miss_x1000", |b| {
        let mut i = 0u64;
        b.iter(|| {
            for _ in 0..1000 {
                i += 1;
                assert!(!repo
                    .catalog()
                    .has_chunk(&ChunkId::of(&((i + 1) << 40).to_le_bytes()))
                    .unwrap());
            }
        })
    });
    g.bench_function("existing_batch_x1000", |b| {
        let mut i = 0;
        b.iter(|| {
            let probe: Vec<ChunkId> = (0..1000)
                .map(|_| {
                    i = (i + 7919) % ids.len();
                    ids[i]
                })
                .collect();
            assert_eq!(repo.catalog().existing(&probe).unwrap().len(), 1000);
        })
    });
    g.finish();
}

criterion_group!(benches, limits, stages, catalog);
criterion_main!(benches);
