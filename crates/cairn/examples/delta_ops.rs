//! Which residual stores a checkpoint's tensors smallest against the
//! previous checkpoint: XOR (what the writer uses), wrapping integer
//! difference (`Sub`, which the delta record also supports), or either per
//! chunk (#17 asks to measure both). Prints, per dtype and as a fraction of
//! the raw tensor bytes, the size of every tensor that is in both files
//! with the same dtype and shape, cut into 1 MiB pieces, stored:
//!
//! - `standalone`: byte planes + zstd, as a first version is stored;
//! - `xor`, `sub`: a delta record (format/delta.rs) with that operation;
//! - `writer`: the smaller of `standalone` and `xor` per piece (today's
//!   writer);
//! - `best`: the smallest of the three per piece;
//! - `sub+zigzag`: the difference zigzag-coded (small negative numbers
//!   become small positive ones) in byte planes: NOT in the format, printed
//!   to show whether adding it would pay;
//! - `floor`: the order-0 entropy of the difference values, one table per
//!   tensor (table not counted): no coder that codes each value on its own
//!   gets below it. A context model could, where neighbouring differences
//!   are correlated.
//!
//! `cargo run --release --example delta_ops -- OLD.safetensors NEW.safetensors [LEVEL]`

use std::collections::BTreeMap;

use cairn::format::byteplane::{self, Transform};
use cairn::format::delta::{self, DeltaHeader, Op, Segment};
use cairn::ChunkId;
use serde_json::Value;

const PIECE: usize = 1 << 20;

fn read(path: &str) -> (BTreeMap<String, Value>, Vec<u8>, usize) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        eprintln!("delta_ops: {path}: {e}");
        std::process::exit(2);
    });
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: BTreeMap<String, Value> =
        serde_json::from_slice(&bytes[8..8 + n]).unwrap_or_else(|e| {
            eprintln!("delta_ops: {path}: bad header: {e}");
            std::process::exit(2);
        });
    (header, bytes, 8 + n)
}

fn width_of(dtype: &str) -> Option<(usize, bool)> {
    Some(match dtype {
        "F64" => (8, true),
        "F32" => (4, true),
        "F16" | "BF16" => (2, true),
        "I64" | "U64" => (8, false),
        "I32" | "U32" => (4, false),
        "I16" | "U16" => (2, false),
        _ => return None,
    })
}

fn zigzag_sub(new: &[u8], old: &[u8], width: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(new.len());
    for (c, r) in new.chunks_exact(width).zip(old.chunks_exact(width)) {
        let word = |b: &[u8]| {
            let mut w = [0u8; 8];
            w[..width].copy_from_slice(b);
            u64::from_le_bytes(w)
        };
        let bits = (width * 8) as u32;
        let shift = 64 - bits;
        // The difference as a signed `bits`-bit number, then zigzag.
        let d = ((word(c).wrapping_sub(word(r)) << shift) as i64) >> shift;
        let z = ((d << 1) ^ (d >> 63)) as u64;
        out.extend_from_slice(&z.to_le_bytes()[..width]);
    }
    out
}

#[derive(Default)]
struct Row {
    raw: u64,
    standalone: u64,
    xor: u64,
    sub: u64,
    writer: u64,
    best: u64,
    zigzag: u64,
    /// Bits.
    floor: f64,
}

/// The order-0 entropy in bits of the `width`-byte words of `diff`.
fn entropy_bits(diff: &[u8], width: usize) -> f64 {
    let mut words: Vec<u64> = diff
        .chunks_exact(width)
        .map(|w| {
            let mut b = [0u8; 8];
            b[..width].copy_from_slice(w);
            u64::from_le_bytes(b)
        })
        .collect();
    words.sort_unstable();
    let n = words.len() as f64;
    let mut bits = 0.0;
    for run in words.chunk_by(|a, b| a == b) {
        let c = run.len() as f64;
        bits -= c * (c / n).log2();
    }
    bits
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (old_path, new_path) = match args.as_slice() {
        [_, a, b] | [_, a, b, _] => (a.as_str(), b.as_str()),
        _ => {
            eprintln!("usage: delta_ops OLD.safetensors NEW.safetensors [LEVEL]");
            std::process::exit(2);
        }
    };
    let level: i32 = args.get(3).map_or(3, |l| l.parse().expect("a zstd level"));
    let (old_h, old_b, old_at) = read(old_path);
    let (new_h, new_b, new_at) = read(new_path);
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for (name, t) in &new_h {
        let Some(prev) = old_h.get(name) else {
            continue;
        };
        let dtype = t["dtype"].as_str().unwrap_or_default();
        if prev["dtype"] != t["dtype"] || prev["shape"] != t["shape"] {
            continue;
        }
        let Some((width, float)) = width_of(dtype) else {
            continue;
        };
        let range = |t: &Value, at: usize| {
            let o = t["data_offsets"].as_array().unwrap();
            at + o[0].as_u64().unwrap() as usize..at + o[1].as_u64().unwrap() as usize
        };
        let new = &new_b[range(t, new_at)];
        let old = &old_b[range(prev, old_at)];
        let row = rows.entry(dtype.to_string()).or_default();
        row.floor += entropy_bits(&zigzag_sub(new, old, width), width);
        let piece = PIECE - PIECE % width;
        for (c, r) in new.chunks(piece).zip(old.chunks(piece)) {
            let header = |op| DeltaHeader {
                width: width as u8,
                op,
                age: 1,
                segments: vec![Segment {
                    chunk: ChunkId([0; 32]),
                    offset: 0,
                    len: c.len() as u32,
                }],
            };
            let transform = if float {
                Transform::FloatRotate
            } else {
                Transform::Bytes
            };
            let alone = byteplane::encode_with(c, width, transform, level).len() as u64;
            let xor = delta::encode(c, r, &header(Op::Xor), float, level).len() as u64;
            let sub = delta::encode(c, r, &header(Op::Sub), float, level).len() as u64;
            let zz =
                byteplane::encode_with(&zigzag_sub(c, r, width), width, Transform::Bytes, level)
                    .len() as u64
                    + (delta::HEADER_LEN + delta::SEGMENT_LEN + 1) as u64;
            row.raw += c.len() as u64;
            row.standalone += alone;
            row.xor += xor;
            row.sub += sub;
            row.writer += alone.min(xor);
            row.best += alone.min(xor).min(sub);
            row.zigzag += zz;
        }
    }
    println!("zstd level {level}, 1 MiB pieces; fraction of the raw tensor bytes");
    println!("| dtype | raw MB | standalone | xor | sub | writer (min standalone, xor) | best of three | sub+zigzag (not in format) | floor |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (dtype, r) in &rows {
        let f = |x: u64| format!("{:.3}", x as f64 / r.raw.max(1) as f64);
        println!(
            "| {dtype} | {:.1} | {} | {} | {} | {} | {} | {} | {:.3} |",
            r.raw as f64 / 1e6,
            f(r.standalone),
            f(r.xor),
            f(r.sub),
            f(r.writer),
            f(r.best),
            f(r.zigzag),
            r.floor / 8.0 / r.raw.max(1) as f64
        );
    }
}
