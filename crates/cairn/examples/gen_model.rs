//! `gen_model`: a deterministic generator of synthetic, realistic-looking
//! safetensors model files, for cairn's benchmarks and tests.
//!
//! ```text
//! cargo run --release --example gen_model -- OUT.safetensors \
//!     [--size 2G] [--seed N] [--perturb K] [--dtype bf16|f16|f32] [--tensors-mb 32]
//! ```
//!
//! * The output is a valid safetensors file: an 8-byte little-endian header
//!   length, a JSON header (space-padded to a multiple of 8 bytes) and the
//!   tensor data, laid out contiguously in header order.
//! * Tensors are named like a transformer checkpoint
//!   (`model.layers.{l}.self_attn.q_proj.weight`, ..., `mlp.down_proj.weight`),
//!   2-D with one side 4096, each about `--tensors-mb` MiB; the total is within
//!   one row (4096 elements) of `--size`.
//! * Values are normally distributed with a per-tensor scale in [0.01, 0.03],
//!   from xoshiro256++ (seeded through splitmix64, one stream per 1 Mi-element
//!   block) and a branch-free f32 Box-Muller whose log/sin/cos are polynomials
//!   written here from basic IEEE-754 operations (no libm, no FMA), so the same
//!   arguments give the same bytes on every machine, with or without AVX2
//!   (`GEN_MODEL_NO_SIMD=1` forces the portable path) and whatever the number of
//!   threads. bf16 and f16 are rounded to nearest-even from f32.
//! * `--perturb K` writes the "fine-tuned" sibling of the same seed: identical
//!   header and bytes, except tensors `i` with `i % K == K - 1` whose values get
//!   Gaussian noise of 1e-3 x the tensor's scale added before quantisation
//!   (in bf16 that changes about 30% of those tensors' values, spread evenly).
//! * About 0.3-0.7 GB/s on 2 cores (2 GiB in 3-7 s), most of it kernel write time.
//!
//! Uses std only, so it builds as a cargo example without extra dependencies.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::exit;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::Instant;

/// The "hidden size": one side of every 2-D tensor.
const HIDDEN: u64 = 4096;
/// Elements per generation block. Each block has its own PRNG streams, so this
/// constant is part of the definition of the output (do not change it).
const BLOCK_ELEMS: u64 = 1 << 20;
/// Relative size of the fine-tuning noise.
const PERTURB_REL: f64 = 1e-3;

const MODULES: [(&str, bool); 7] = [
    // (name, transposed: shape [HIDDEN, n] instead of [n, HIDDEN])
    ("self_attn.q_proj", false),
    ("self_attn.k_proj", false),
    ("self_attn.v_proj", false),
    ("self_attn.o_proj", true),
    ("mlp.gate_proj", false),
    ("mlp.up_proj", false),
    ("mlp.down_proj", true),
];

// Domain-separation tags for the PRNG streams.
const TAG_SCALE: u64 = 0x5343_414c_4521;
const TAG_BASE: u64 = 0x4241_5345_2121;
const TAG_NOISE: u64 = 0x4e4f_4953_4521;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum DType {
    Bf16,
    F16,
    F32,
}

impl DType {
    fn size(self) -> u64 {
        match self {
            DType::Bf16 | DType::F16 => 2,
            DType::F32 => 4,
        }
    }
    fn name(self) -> &'static str {
        match self {
            DType::Bf16 => "BF16",
            DType::F16 => "F16",
            DType::F32 => "F32",
        }
    }
}

struct Args {
    out: PathBuf,
    size: u64,
    seed: u64,
    perturb: Option<u64>,
    dtype: DType,
    tensor_bytes: u64,
}

struct Tensor {
    name: String,
    shape: Vec<u64>,
    elems: u64,
    scale: f64,
    perturbed: bool,
}

// ---------------------------------------------------------------- PRNG ----

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hash a list of words into one seed.
fn mix(words: &[u64]) -> u64 {
    let mut st = 0x6361_6972_6e21_u64; // "cairn!"
    let mut h = 0;
    for &w in words {
        st ^= w;
        h = splitmix64(&mut st);
        st = h;
    }
    h
}

struct Xoshiro256pp {
    s: [u64; 4],
}

impl Xoshiro256pp {
    fn new(seed: u64) -> Self {
        let mut st = seed;
        let s = [
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
        ];
        Xoshiro256pp { s }
    }

    #[inline(always)]
    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Natural logarithm of a positive, normal, finite `x` (f32 precision), from
/// basic IEEE-754 operations only: bit-for-bit reproducible on every machine
/// (no libm), and branch-free so that loops over it vectorise.
#[inline(always)]
fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    let e = (bits >> 23) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // [1, 2)
    let big = m > std::f32::consts::SQRT_2;
    let m = if big { m * 0.5 } else { m };
    let e = if big { e + 1 } else { e };
    // ln(m) = 2 atanh(f), f = (m - 1) / (m + 1), |f| <= 0.1716
    let f = (m - 1.0) / (m + 1.0);
    let f2 = f * f;
    let p = f2 * (2.0 / 9.0);
    let p = f2 * (2.0 / 7.0 + p);
    let p = f2 * (2.0 / 5.0 + p);
    let p = f2 * (2.0 / 3.0 + p);
    let p = f * (2.0 + p);
    e as f32 * std::f32::consts::LN_2 + p
}

/// Two standard normal deviates from 48 random bits (Box-Muller, branch-free).
/// The angle is drawn in [0, pi/2) and two random sign bits pick the quadrant,
/// so sin/cos are only needed on [-pi/4, pi/4) where short Taylor polynomials
/// are accurate to f32 precision.
#[inline(always)]
fn box_muller(r: u64) -> (f32, f32) {
    const INV24: f32 = 1.0 / (1u32 << 24) as f32;
    const INV22: f32 = 1.0 / (1u32 << 22) as f32;
    let u1 = ((r >> 40) as u32 + 1) as f32 * INV24; // (0, 1]
    let u2 = ((r >> 18) as u32 & 0x3f_ffff) as f32 * INV22; // [0, 1)
    let rad = (-2.0 * ln(u1)).sqrt();
    let d = (u2 - 0.5) * std::f32::consts::FRAC_PI_2; // angle - pi/4
    let d2 = d * d;
    let s = d
        * (1.0
            + d2 * (-1.0 / 6.0
                + d2 * (1.0 / 120.0 + d2 * (-1.0 / 5040.0 + d2 * (1.0 / 362880.0)))));
    let c = 1.0 + d2 * (-0.5 + d2 * (1.0 / 24.0 + d2 * (-1.0 / 720.0 + d2 * (1.0 / 40320.0))));
    let k = rad * std::f32::consts::FRAC_1_SQRT_2;
    let z0 = (c - s) * k; // rad * cos(pi/4 + d)
    let z1 = (c + s) * k; // rad * sin(pi/4 + d)
    let s0 = ((r >> 17) as u32 & 1) << 31;
    let s1 = ((r >> 16) as u32 & 1) << 31;
    (
        f32::from_bits(z0.to_bits() ^ s0),
        f32::from_bits(z1.to_bits() ^ s1),
    )
}

/// Normal deviates times `scale`, two per random word: `out.len() == 2 * r.len()`.
#[inline(always)]
fn normals_body(r: &[u64], scale: f32, out: &mut [f32]) {
    for (o, &w) in out.chunks_exact_mut(2).zip(r) {
        let (a, b) = box_muller(w);
        o[0] = a * scale;
        o[1] = b * scale;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn normals_avx2(r: &[u64], scale: f32, out: &mut [f32]) {
    normals_body(r, scale, out)
}

/// Same IEEE-754 operations whichever path runs, so the same bits.
fn normals(r: &[u64], scale: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if *USE_AVX2 {
            // SAFETY: the CPU supports AVX2 (checked at run time).
            return unsafe { normals_avx2(r, scale, out) };
        }
    }
    normals_body(r, scale, out)
}

/// AVX2 unless absent or `GEN_MODEL_NO_SIMD` is set (for testing that both
/// paths write the same bytes).
static USE_AVX2: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
    #[cfg(target_arch = "x86_64")]
    {
        std::env::var_os("GEN_MODEL_NO_SIMD").is_none() && is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
});

/// A stream of normal deviates in batches.
struct Normals {
    rng: Xoshiro256pp,
    words: Vec<u64>,
}

impl Normals {
    fn new(seed: u64) -> Self {
        Normals {
            rng: Xoshiro256pp::new(seed),
            words: vec![0; BATCH / 2],
        }
    }

    /// Fill `out` (even length, at most BATCH) with deviates times `scale`.
    fn fill(&mut self, scale: f32, out: &mut [f32]) {
        let w = &mut self.words[..out.len() / 2];
        for x in w.iter_mut() {
            *x = self.rng.next_u64();
        }
        normals(w, scale, out);
    }
}

// --------------------------------------------------------- conversions ----

/// f32 -> bfloat16, round to nearest, ties to even.
#[inline(always)]
fn f32_to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x0040) as u16; // keep it a (quiet) NaN
    }
    let round = 0x7fff + ((b >> 16) & 1);
    (b.wrapping_add(round) >> 16) as u16
}

/// f32 -> IEEE half, round to nearest, ties to even (subnormals, overflow to
/// infinity and NaN handled).
#[inline(always)]
fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x007f_ffff;
    if exp == 0xff {
        return sign
            | 0x7c00
            | if man != 0 {
                0x0200 | (man >> 13) as u16
            } else {
                0
            };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign; // below half the smallest subnormal: +-0
        }
        let m = man | 0x0080_0000;
        let shift = (14 - e) as u32; // 14..=24
        let half = 1u32 << (shift - 1);
        let rem = m & ((1u32 << shift) - 1);
        let mut k = m >> shift;
        if rem > half || (rem == half && (k & 1) == 1) {
            k += 1; // may carry into the smallest normal, which is correct
        }
        return sign | k as u16;
    }
    let mut h = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    if rem > 0x1000 || (rem == 0x1000 && (h & 1) == 1) {
        h += 1; // may carry into the exponent (up to infinity), which is correct
    }
    sign | h as u16
}

// -------------------------------------------------------------- layout ----

fn plan(a: &Args) -> Vec<Tensor> {
    let es = a.dtype.size();
    let per = ((a.tensor_bytes / es) / HIDDEN).max(1) * HIDDEN;
    let mut remaining = a.size / es;
    let mut tensors = Vec::new();
    while remaining > 0 {
        let i = tensors.len() as u64;
        let (shape, elems) = if remaining >= HIDDEN {
            let n = per.min(remaining) / HIDDEN;
            let transposed = MODULES[(i % MODULES.len() as u64) as usize].1;
            let shape = if transposed {
                vec![HIDDEN, n]
            } else {
                vec![n, HIDDEN]
            };
            (shape, n * HIDDEN)
        } else if tensors.is_empty() {
            (vec![remaining], remaining) // tiny file: a single 1-D tensor
        } else {
            break; // less than one row left over
        };
        let (layer, module) = (
            i / MODULES.len() as u64,
            MODULES[(i % MODULES.len() as u64) as usize].0,
        );
        let mut srng = Xoshiro256pp::new(mix(&[a.seed, i, TAG_SCALE]));
        let scale = 0.01 + 0.02 * srng.next_f64();
        let perturbed = matches!(a.perturb, Some(k) if i % k == k - 1);
        tensors.push(Tensor {
            name: format!("model.layers.{layer}.{module}.weight"),
            shape,
            elems,
            scale,
            perturbed,
        });
        remaining -= elems;
    }
    tensors
}

fn header(tensors: &[Tensor], dtype: DType) -> Vec<u8> {
    let mut json = String::from("{");
    let mut off = 0u64;
    for t in tensors {
        let end = off + t.elems * dtype.size();
        let shape: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
        json.push_str(&format!(
            "\"{}\":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}},",
            t.name,
            dtype.name(),
            shape.join(","),
            off,
            end
        ));
        off = end;
    }
    json.push_str("\"__metadata__\":{\"format\":\"pt\"}}");
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    out
}

// ---------------------------------------------------------- generation ----

#[derive(Clone, Copy)]
struct Job {
    tensor: u64,
    block: u64,
    elems: u64,
    scale: f64,
    perturbed: bool,
}

fn jobs(tensors: &[Tensor]) -> Vec<Job> {
    let mut v = Vec::new();
    for (i, t) in tensors.iter().enumerate() {
        let mut start = 0;
        let mut block = 0;
        while start < t.elems {
            let elems = BLOCK_ELEMS.min(t.elems - start);
            v.push(Job {
                tensor: i as u64,
                block,
                elems,
                scale: t.scale,
                perturbed: t.perturbed,
            });
            start += elems;
            block += 1;
        }
    }
    v
}

/// Values are generated in batches of this many (also part of the definition
/// of the output, through the order in which random words are consumed).
const BATCH: usize = 4096;

fn encode_slice(dtype: DType, src: &[f32], out: &mut [u8]) {
    match dtype {
        DType::Bf16 => {
            for (o, &x) in out.chunks_exact_mut(2).zip(src) {
                o.copy_from_slice(&f32_to_bf16(x).to_le_bytes());
            }
        }
        DType::F16 => {
            for (o, &x) in out.chunks_exact_mut(2).zip(src) {
                o.copy_from_slice(&f32_to_f16(x).to_le_bytes());
            }
        }
        DType::F32 => {
            for (o, &x) in out.chunks_exact_mut(4).zip(src) {
                o.copy_from_slice(&x.to_le_bytes());
            }
        }
    }
}

/// Fill `buf` with the job's encoded values; returns how many elements differ
/// from the unperturbed version (0 for unperturbed tensors).
fn run_job(seed: u64, dtype: DType, job: &Job, buf: &mut Vec<u8>) -> u64 {
    let es = dtype.size() as usize;
    let n = job.elems as usize;
    buf.clear();
    buf.resize(n * es, 0);
    let scale = job.scale as f32;
    let nscale = (job.scale * PERTURB_REL) as f32;
    let mut base = Normals::new(mix(&[seed, job.tensor, job.block, TAG_BASE]));
    let mut noise = if job.perturbed {
        Some(Normals::new(mix(&[seed, job.tensor, job.block, TAG_NOISE])))
    } else {
        None
    };
    let mut v = vec![0f32; BATCH];
    let mut p = vec![0f32; BATCH];
    let mut orig = vec![0u8; BATCH * es];
    let mut changed = 0u64;
    let mut done = 0;
    while done < n {
        let k = BATCH.min(n - done);
        let even = (k + 1) & !1; // an odd tail discards one deviate
        base.fill(scale, &mut v[..even]);
        let out = &mut buf[done * es..(done + k) * es];
        match noise.as_mut() {
            None => encode_slice(dtype, &v[..k], out),
            Some(noise) => {
                noise.fill(nscale, &mut p[..even]);
                for (p, v) in p[..k].iter_mut().zip(&v[..k]) {
                    *p += *v;
                }
                encode_slice(dtype, &v[..k], &mut orig[..k * es]);
                encode_slice(dtype, &p[..k], out);
                changed += out
                    .chunks_exact(es)
                    .zip(orig.chunks_exact(es))
                    .filter(|(a, b)| a != b)
                    .count() as u64;
            }
        }
        done += k;
    }
    changed
}

fn generate(a: &Args, tensors: &[Tensor], file: &mut File) -> std::io::Result<u64> {
    let jobs = jobs(tensors);
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 16);
    let (seed, dtype) = (a.seed, a.dtype);
    let mut changed = 0u64;
    std::thread::scope(|s| -> std::io::Result<()> {
        // Job j goes to worker j % workers; the writer takes results in job order.
        let mut results: Vec<Receiver<(Vec<u8>, u64)>> = Vec::new();
        let mut recycle: Vec<SyncSender<Vec<u8>>> = Vec::new();
        for w in 0..workers {
            let (tx, rx) = sync_channel::<(Vec<u8>, u64)>(2);
            let (btx, brx) = sync_channel::<Vec<u8>>(4);
            results.push(rx);
            recycle.push(btx);
            let jobs = &jobs;
            s.spawn(move || {
                for job in jobs.iter().skip(w).step_by(workers) {
                    let mut buf = brx.try_recv().unwrap_or_default();
                    let c = run_job(seed, dtype, job, &mut buf);
                    if tx.send((buf, c)).is_err() {
                        return; // writer gave up
                    }
                }
            });
        }
        for j in 0..jobs.len() {
            let (buf, c) = results[j % workers].recv().expect("worker died");
            file.write_all(&buf)?;
            changed += c;
            let _ = recycle[j % workers].try_send(buf);
        }
        Ok(())
    })?;
    Ok(changed)
}

// ----------------------------------------------------------------- CLI ----

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let lower = lower.trim_end_matches("ib").trim_end_matches('b');
    let (num, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1u64 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1u64 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1u64 << 40),
        _ => (lower, 1),
    };
    let err = || format!("bad size {s:?} (expected e.g. 512M, 2G, 1.5G, 1048576)");
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult).ok_or_else(err);
    }
    let f: f64 = num.parse().map_err(|_| err())?;
    if !(f >= 0.0 && f.is_finite()) {
        return Err(err());
    }
    Ok((f * mult as f64).round() as u64)
}

const USAGE: &str = "usage: gen_model OUT.safetensors [--size 2G] [--seed N] [--perturb K] \
[--dtype bf16|f16|f32] [--tensors-mb 32]";

fn parse_args() -> Result<Args, String> {
    let mut out = None;
    let mut a = Args {
        out: PathBuf::new(),
        size: 2 << 30,
        seed: 1,
        perturb: None,
        dtype: DType::Bf16,
        tensor_bytes: 32 << 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut val = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match key.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                exit(0);
            }
            "--size" => a.size = parse_size(&val("--size")?)?,
            "--seed" => {
                a.seed = val("--seed")?
                    .parse()
                    .map_err(|e| format!("bad --seed: {e}"))?
            }
            "--perturb" => {
                let k: u64 = val("--perturb")?
                    .parse()
                    .map_err(|e| format!("bad --perturb: {e}"))?;
                a.perturb = if k == 0 { None } else { Some(k) };
            }
            "--dtype" => {
                a.dtype = match val("--dtype")?.to_ascii_lowercase().as_str() {
                    "bf16" => DType::Bf16,
                    "f16" | "fp16" => DType::F16,
                    "f32" | "fp32" => DType::F32,
                    d => return Err(format!("bad --dtype {d:?} (bf16, f16 or f32)")),
                }
            }
            "--tensors-mb" => {
                let mb: f64 = val("--tensors-mb")?
                    .parse()
                    .map_err(|e| format!("bad --tensors-mb: {e}"))?;
                if !(mb > 0.0 && mb.is_finite()) {
                    return Err("--tensors-mb must be positive".into());
                }
                a.tensor_bytes = (mb * (1u64 << 20) as f64) as u64;
            }
            k if k.starts_with('-') && k.len() > 1 => return Err(format!("unknown option {k}")),
            _ if out.is_none() => out = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    a.out = out.ok_or("missing OUT path")?;
    Ok(a)
}

fn write_model(a: &Args) -> std::io::Result<(u64, usize, usize, u64, u64)> {
    let tensors = plan(a);
    let hdr = header(&tensors, a.dtype);
    if let Some(parent) = a.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    // Write next to the target and rename, so a reader never sees half a file.
    let tmp = tmp_path(&a.out);
    let mut file = File::create(&tmp)?;
    file.write_all(&hdr)?;
    let changed = match generate(a, &tensors, &mut file) {
        Ok(c) => c,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    file.flush()?;
    drop(file);
    fs::rename(&tmp, &a.out)?;
    let data: u64 = tensors.iter().map(|t| t.elems * a.dtype.size()).sum();
    let pert: Vec<&Tensor> = tensors.iter().filter(|t| t.perturbed).collect();
    let pert_elems = pert.iter().map(|t| t.elems).sum();
    Ok((
        hdr.len() as u64 + data,
        tensors.len(),
        pert.len(),
        changed,
        pert_elems,
    ))
}

fn tmp_path(out: &Path) -> PathBuf {
    let mut name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp{}", std::process::id()));
    out.with_file_name(name)
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gen_model: {e}\n{USAGE}");
            exit(2);
        }
    };
    let t0 = Instant::now();
    match write_model(&a) {
        Ok((bytes, n, npert, changed, pert_elems)) => {
            let secs = t0.elapsed().as_secs_f64();
            let pert = match a.perturb {
                Some(k) => format!(
                    ", perturbed {npert} (every {k}th; {:.1}% of their values changed)",
                    if pert_elems > 0 {
                        100.0 * changed as f64 / pert_elems as f64
                    } else {
                        0.0
                    }
                ),
                None => ", perturbed 0".to_string(),
            };
            eprintln!(
                "gen_model: {}: {bytes} bytes, {n} tensors {} seed {}{pert}; {secs:.2}s ({:.0} MiB/s)",
                a.out.display(),
                a.dtype.name(),
                a.seed,
                bytes as f64 / (1u64 << 20) as f64 / secs.max(1e-9)
            );
        }
        Err(e) => {
            eprintln!("gen_model: {}: {e}", a.out.display());
            exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("256M").unwrap(), 256 << 20);
        assert_eq!(parse_size("4k").unwrap(), 4096);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("x").is_err());
    }

    #[test]
    fn ln_matches_std() {
        let mut r = Xoshiro256pp::new(7);
        for _ in 0..1_000_000 {
            let x = ((r.next_u64() >> 40) as u32 + 1) as f32 / (1u32 << 24) as f32;
            let (a, b) = (ln(x), x.ln());
            assert!((a - b).abs() <= 4e-7 * b.abs().max(1.0), "{x}: {a} vs {b}");
        }
    }

    #[test]
    fn f16_known_values() {
        for (x, h) in [
            (0.0f32, 0x0000u16),
            (-0.0, 0x8000),
            (1.0, 0x3c00),
            (-2.0, 0xc000),
            (65504.0, 0x7bff),
            (65520.0, 0x7c00), // rounds up to infinity
            (f32::INFINITY, 0x7c00),
            (f32::from_bits(113 << 23), 0x0400), // smallest normal
            (f32::from_bits(103 << 23), 0x0001), // smallest subnormal
            (f32::from_bits(102 << 23), 0x0000), // half of it: tie to even -> 0
            (f32::from_bits(102 << 23 | 1 << 22), 0x0001), // 0.75 of it -> 1
            (0.1, 0x2e66),
            (1.0 / 3.0, 0x3555),
        ] {
            assert_eq!(f32_to_f16(x), h, "{x}");
        }
        assert_eq!(f32_to_f16(f32::NAN) & 0x7c00, 0x7c00);
        assert_ne!(f32_to_f16(f32::NAN) & 0x03ff, 0);
    }

    #[test]
    fn bf16_known_values() {
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80); // tie -> even
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82); // tie -> even
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(f32_to_bf16(f32::MAX), 0x7f80); // overflow -> inf
    }

    #[test]
    fn normal_moments() {
        let mut n = Normals::new(42);
        let (mut s1, mut s2, mut s4, mut s01) = (0.0, 0.0, 0.0, 0.0);
        let mut buf = vec![0f32; BATCH];
        let count = 4_000_000;
        for _ in 0..count / BATCH {
            n.fill(1.0, &mut buf);
            for pair in buf.chunks_exact(2) {
                s01 += (pair[0] * pair[1]) as f64;
            }
            for &z in &buf {
                let z = z as f64;
                assert!(z.is_finite() && z.abs() < 6.0);
                s1 += z;
                s2 += z * z;
                s4 += z * z * z * z;
            }
        }
        assert!((s01 / (count / 2) as f64).abs() < 0.005);
        let c = count as f64;
        assert!((s1 / c).abs() < 0.005);
        assert!((s2 / c - 1.0).abs() < 0.01);
        assert!((s4 / c - 3.0).abs() < 0.05);
    }
}
