//! How small could any lossless coder make the 16-bit float tensors (F16,
//! BF16) of a safetensors file? Prints, per dtype and as a fraction of the
//! raw size:
//!
//! - `order-0`: the entropy of the values over the whole file: the floor
//!   for any coder that codes each value on its own with one table
//!   (Huffman, zstd literals, byte planes);
//! - `per tensor`: the same with one table per tensor;
//! - `sign+mantissa | exp`: the part of the per-tensor figure that is sign
//!   and mantissa given the exponent; in trained weights these bits are
//!   close to random, so this is a floor for any model that only predicts
//!   exponents;
//! - `exp | previous exp` and `exp | row`: per-tensor exponent entropy
//!   conditioned on the previous value's exponent or on the row of a 2-D
//!   tensor (plus sign+mantissa given the exponent). These are empirical
//!   conditional entropies, which ignore the cost of the model itself, so
//!   they are optimistic: a context-modelling coder would not beat them.
//!
//! `cargo run --release --example entropy_floor -- MODEL.safetensors`

use std::collections::BTreeMap;

use serde_json::Value;

/// Bits needed to code `counts` with its own empirical distribution.
fn bits(counts: &[u64]) -> f64 {
    let n: u64 = counts.iter().sum();
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| -(c as f64) * (c as f64 / n as f64).log2())
        .sum()
}

/// Bits to code `symbol` (below `n_symbols`) given `context`, summed over
/// contexts, each with its own empirical distribution.
fn conditional_bits(pairs: impl Iterator<Item = (usize, usize)>, n_symbols: usize) -> f64 {
    let mut tables: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for (context, symbol) in pairs {
        tables.entry(context).or_insert_with(|| vec![0; n_symbols])[symbol] += 1;
    }
    tables.values().map(|t| bits(t)).sum()
}

/// Exponent field position and width of a 16-bit float dtype.
fn exponent_field(dtype: &str) -> Option<(u32, u32)> {
    match dtype {
        "F16" => Some((10, 5)),
        "BF16" => Some((7, 8)),
        _ => None,
    }
}

/// The non-negative integers of a JSON array (empty if it is not one).
fn numbers(v: &Value) -> Vec<usize> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_u64())
                .map(|n| n as usize)
                .collect()
        })
        .unwrap_or_default()
}

#[derive(Default)]
struct Totals {
    values: u64,
    whole_file: Vec<u64>,
    per_tensor: f64,
    sign_mantissa: f64,
    after_previous: f64,
    after_row: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, path] = args.as_slice() else {
        eprintln!("usage: entropy_floor MODEL.safetensors");
        std::process::exit(2);
    };
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        eprintln!("entropy_floor: {path}: {e}");
        std::process::exit(2);
    });
    let header_len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
        .filter(|&n| bytes.len() >= 8 + n)
        .unwrap_or_else(|| {
            eprintln!("entropy_floor: {path}: not a safetensors file");
            std::process::exit(2);
        });
    let header: BTreeMap<String, Value> = serde_json::from_slice(&bytes[8..8 + header_len])
        .unwrap_or_else(|e| {
            eprintln!("entropy_floor: {path}: bad header: {e}");
            std::process::exit(2);
        });
    let data = &bytes[8 + header_len..];

    let mut by_dtype: BTreeMap<String, Totals> = BTreeMap::new();
    for (name, t) in &header {
        let dtype = t["dtype"].as_str().unwrap_or_default();
        let Some((shift, width)) = exponent_field(dtype) else {
            continue;
        };
        let offsets = numbers(&t["data_offsets"]);
        let Some(raw) = offsets.get(..2).and_then(|o| data.get(o[0]..o[1])) else {
            eprintln!("entropy_floor: {path}: tensor {name} lies outside the file");
            std::process::exit(2);
        };
        let values: Vec<u16> = raw
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let shape = numbers(&t["shape"]);
        let row_len = match shape.as_slice() {
            [_, cols] if *cols > 0 => *cols,
            _ => values.len().max(1),
        };
        let exp = |v: u16| ((v >> shift) & ((1 << width) - 1)) as usize;
        let rest = |v: u16| (v & !(((1 << width) - 1) << shift)) as usize;

        let totals = by_dtype.entry(dtype.to_string()).or_default();
        totals.whole_file.resize(1 << 16, 0);
        let mut counts = vec![0u64; 1 << 16];
        for &v in &values {
            counts[v as usize] += 1;
            totals.whole_file[v as usize] += 1;
        }
        let sign_mantissa = conditional_bits(values.iter().map(|&v| (exp(v), rest(v))), 1 << 16);
        let exps = 1 << width;
        totals.values += values.len() as u64;
        totals.per_tensor += bits(&counts);
        totals.sign_mantissa += sign_mantissa;
        let previous = std::iter::once(0).chain(values.iter().map(|&v| exp(v)));
        totals.after_previous +=
            sign_mantissa + conditional_bits(previous.zip(values.iter().map(|&v| exp(v))), exps);
        totals.after_row += sign_mantissa
            + conditional_bits(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| (i / row_len, exp(v))),
                exps,
            );
    }
    if by_dtype.is_empty() {
        eprintln!("entropy_floor: {path}: no F16 or BF16 tensors");
        std::process::exit(2);
    }
    println!(
        "{:<5} {:>12} {:>8} {:>10} {:>21} {:>19} {:>9}",
        "dtype",
        "values",
        "order-0",
        "per tensor",
        "sign+mantissa | exp",
        "exp | previous exp",
        "exp | row"
    );
    for (dtype, t) in &by_dtype {
        let raw_bits = 16.0 * t.values as f64;
        println!(
            "{:<5} {:>12} {:>8.4} {:>10.4} {:>21.4} {:>19.4} {:>9.4}",
            dtype,
            t.values,
            bits(&t.whole_file) / raw_bits,
            t.per_tensor / raw_bits,
            t.sign_mantissa / raw_bits,
            t.after_previous / raw_bits,
            t.after_row / raw_bits,
        );
    }
}
