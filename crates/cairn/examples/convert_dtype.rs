//! Converts the F32 tensors of a safetensors file to BF16 or F16 (round to
//! nearest even), keeping every other tensor and the metadata, so real
//! published fp32 weights can be measured as bf16/fp16 too.
//!
//! `cargo run --release --example convert_dtype -- IN.safetensors OUT.safetensors bf16|f16`

use std::collections::BTreeMap;

use serde_json::{json, Value};

fn bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

fn f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xFF) as i32;
    let man = b & 0x7F_FFFF;
    if exp == 0xFF {
        return sign | 0x7C00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1F {
        return sign | 0x7C00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rounded = m + half - 1 + ((m >> shift) & 1);
        return sign | (rounded >> shift) as u16;
    }
    let rounded = man + 0xFFF + ((man >> 13) & 1);
    let (e, m) = if rounded & 0x80_0000 != 0 {
        (e + 1, 0)
    } else {
        (e, rounded >> 13)
    };
    if e >= 0x1F {
        return sign | 0x7C00;
    }
    sign | ((e as u16) << 10) | m as u16
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output, dtype] = args.as_slice() else {
        eprintln!("usage: convert_dtype IN.safetensors OUT.safetensors bf16|f16");
        std::process::exit(2);
    };
    let convert: fn(f32) -> u16 = match dtype.as_str() {
        "bf16" => bf16,
        "f16" => f16,
        _ => panic!("dtype must be bf16 or f16"),
    };
    let name = if dtype == "bf16" { "BF16" } else { "F16" };
    let bytes = std::fs::read(input).expect("read input");
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: BTreeMap<String, Value> =
        serde_json::from_slice(&bytes[8..8 + n]).expect("safetensors header");
    let data = &bytes[8 + n..];
    let mut tensors: Vec<(&String, &Value)> = header
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .collect();
    tensors.sort_by_key(|(_, v)| v["data_offsets"][0].as_u64().unwrap());
    let (mut out_header, mut out_data) = (serde_json::Map::new(), Vec::new());
    if let Some(meta) = header.get("__metadata__") {
        out_header.insert("__metadata__".into(), meta.clone());
    }
    for (key, v) in tensors {
        let (b, e) = (
            v["data_offsets"][0].as_u64().unwrap() as usize,
            v["data_offsets"][1].as_u64().unwrap() as usize,
        );
        let start = out_data.len();
        let dt = if v["dtype"] == "F32" {
            for w in data[b..e].chunks_exact(4) {
                out_data.extend_from_slice(
                    &convert(f32::from_le_bytes(w.try_into().unwrap())).to_le_bytes(),
                );
            }
            name
        } else {
            out_data.extend_from_slice(&data[b..e]);
            v["dtype"].as_str().unwrap()
        };
        out_header.insert(
            key.clone(),
            json!({"dtype": dt, "shape": v["shape"], "data_offsets": [start, out_data.len()]}),
        );
    }
    let mut h = serde_json::to_vec(&Value::Object(out_header)).unwrap();
    h.resize(h.len().div_ceil(8) * 8, b' ');
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&out_data);
    std::fs::write(output, out).expect("write output");
}
