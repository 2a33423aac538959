//! Layout parsing on built and hostile model files.

use super::*;
use proptest::prelude::*;
use std::io::Cursor;

pub(crate) fn parse(bytes: &[u8]) -> Result<Option<TensorLayout>, TensorError> {
    parse_layout(&mut Cursor::new(bytes), bytes.len() as u64)
}

/// Applies byte `edits` to `file`; whatever still parses must keep every
/// region inside the file and no two overlapping.
pub(crate) fn check_mutated(
    mut file: Vec<u8>,
    edits: Vec<(usize, u8)>,
) -> Result<(), TestCaseError> {
    for (i, b) in edits {
        let n = file.len();
        file[i % n] = b;
    }
    if let Ok(Some(l)) = parse(&file) {
        prop_assert!(l
            .tensors
            .iter()
            .all(|t| t.offset + t.len <= file.len() as u64));
        prop_assert!(l
            .tensors
            .windows(2)
            .all(|w| w[0].offset + w[0].len <= w[1].offset));
    }
    Ok(())
}

// ---- builders ----

fn safetensors(header: &str, data_len: usize) -> Vec<u8> {
    let mut f = (header.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(header.as_bytes());
    f.resize(f.len() + data_len, 0xAB);
    f
}

fn st_sample() -> Vec<u8> {
    // Keys out of offset order, metadata, trailing-space padding.
    let h = r#"{"b":{"dtype":"F32","shape":[2,2],"data_offsets":[8,24]},
        "__metadata__":{"format":"pt","nested":{"x":[1,2,{"y":null}]}},
        "a":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]},
        "empty":{"dtype":"F16","shape":[0,3],"data_offsets":[24,24]},
        "u":{"dtype":"U16","shape":[3],"data_offsets":[24,30]},
        "q":{"dtype":"F4","shape":[7],"data_offsets":[30,34]}}   "#;
    safetensors(h, 34)
}

#[derive(Default)]
struct GgufBuilder {
    kv: Vec<u8>,
    kv_count: u64,
    infos: Vec<u8>,
    tensor_count: u64,
    version: u32,
}

impl GgufBuilder {
    fn new() -> Self {
        GgufBuilder {
            version: 3,
            ..Default::default()
        }
    }
    fn str_into(buf: &mut Vec<u8>, s: &str) {
        buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
        buf.extend_from_slice(s.as_bytes());
    }
    fn kv(mut self, key: &str, ty: u32, value: &[u8]) -> Self {
        Self::str_into(&mut self.kv, key);
        self.kv.extend_from_slice(&ty.to_le_bytes());
        self.kv.extend_from_slice(value);
        self.kv_count += 1;
        self
    }
    fn tensor(mut self, name: &str, dims: &[u64], ty: u32, off: u64) -> Self {
        Self::str_into(&mut self.infos, name);
        self.infos
            .extend_from_slice(&(dims.len() as u32).to_le_bytes());
        dims.iter()
            .for_each(|d| self.infos.extend_from_slice(&d.to_le_bytes()));
        self.infos.extend_from_slice(&ty.to_le_bytes());
        self.infos.extend_from_slice(&off.to_le_bytes());
        self.tensor_count += 1;
        self
    }
    /// Header, padded to `align`, then `data_len` data bytes.
    fn build(&self, align: usize, data_len: usize) -> Vec<u8> {
        let mut f = b"GGUF".to_vec();
        f.extend_from_slice(&self.version.to_le_bytes());
        f.extend_from_slice(&self.tensor_count.to_le_bytes());
        f.extend_from_slice(&self.kv_count.to_le_bytes());
        f.extend_from_slice(&self.kv);
        f.extend_from_slice(&self.infos);
        f.resize(f.len().next_multiple_of(align), 0);
        f.resize(f.len() + data_len, 0xCD);
        f
    }
}

fn gguf_string(s: &str) -> Vec<u8> {
    let mut v = Vec::new();
    GgufBuilder::str_into(&mut v, s);
    v
}

/// Every metadata value type, incl. arrays of strings and nested arrays.
fn gguf_sample() -> Vec<u8> {
    let mut arr_str = 8u32.to_le_bytes().to_vec();
    arr_str.extend_from_slice(&3u64.to_le_bytes());
    ["<s>", "</s>", "hello"]
        .iter()
        .for_each(|s| arr_str.extend(gguf_string(s)));
    let mut nested = 9u32.to_le_bytes().to_vec(); // array of 2 arrays of u16
    nested.extend_from_slice(&2u64.to_le_bytes());
    for n in [3u64, 1] {
        nested.extend_from_slice(&2u32.to_le_bytes());
        nested.extend_from_slice(&n.to_le_bytes());
        nested.resize(nested.len() + 2 * n as usize, 7);
    }
    let mut arr_f32 = 6u32.to_le_bytes().to_vec();
    arr_f32.extend_from_slice(&4u64.to_le_bytes());
    arr_f32.resize(arr_f32.len() + 16, 0);
    GgufBuilder::new()
        .kv("general.architecture", 8, &gguf_string("llama"))
        .kv("u8", 0, &[1])
        .kv("i8", 1, &[2])
        .kv("u16", 2, &[0; 2])
        .kv("i16", 3, &[0; 2])
        .kv("u32", 4, &[0; 4])
        .kv("i32", 5, &[0; 4])
        .kv("f32", 6, &[0; 4])
        .kv("bool", 7, &[1])
        .kv("u64", 10, &[0; 8])
        .kv("i64", 11, &[0; 8])
        .kv("f64", 12, &[0; 8])
        .kv("tokenizer.ggml.tokens", 9, &arr_str)
        .kv("nested", 9, &nested)
        .kv("scores", 9, &arr_f32)
        .kv("general.alignment", 4, &64u32.to_le_bytes())
        .tensor("tok_embd", &[8, 4], 30, 0) // bf16: 64 bytes
        .tensor("norm", &[5], 0, 64) // f32: 20 bytes
        .tensor("q4k", &[256, 2], 12, 128) // Q4_K: 2 blocks = 288 bytes
        .tensor("future", &[64], 99, 448) // unknown type: omitted
        .tensor("i8", &[3], 24, 512)
        .build(64, 515)
}

// ---- safetensors ----

#[test]
fn safetensors_layout() {
    let f = st_sample();
    let l = parse(&f).unwrap().unwrap();
    let ds = f.len() as u64 - 34;
    assert_eq!(l.format, Format::Safetensors);
    assert_eq!(l.data_start, ds);
    let got: Vec<(&str, Dtype, u64, u64)> = l
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.dtype, t.offset - ds, t.len))
        .collect();
    assert_eq!(
        got,
        [
            ("a", Dtype::BF16, 0, 8),
            ("b", Dtype::F32, 8, 16),
            ("u", Dtype::Other, 24, 6),
            ("q", Dtype::Other, 30, 4)
        ]
    );
    assert_eq!(boundaries(&l), [ds, ds + 8, ds + 24, ds + 30, ds + 34]);
    assert_eq!(dtype_at(&l, ds - 1), None);
    assert_eq!(dtype_at(&l, ds), Some(Dtype::BF16));
    assert_eq!(dtype_at(&l, ds + 7), Some(Dtype::BF16));
    assert_eq!(dtype_at(&l, ds + 8), Some(Dtype::F32));
    assert_eq!(dtype_at(&l, ds + 23), Some(Dtype::F32));
    assert_eq!(dtype_at(&l, ds + 34), None);
    assert_eq!(region_at(&l, ds + 25).map(|t| t.name.as_str()), Some("u"));
}

#[test]
fn safetensors_errors() {
    let bad = |h: &str, data: usize| parse(&safetensors(h, data));
    let t = |dtype: &str, shape: &str, offs: &str| {
        format!(r#"{{"t":{{"dtype":"{dtype}","shape":{shape},"data_offsets":{offs}}}}}"#)
    };
    assert!(matches!(
        bad(&t("F32", "[2]", "[0,8]"), 7),
        Err(TensorError::OutOfBounds { .. })
    ));
    assert!(matches!(
        bad(&t("F32", "[3]", "[0,8]"), 8),
        Err(TensorError::SizeMismatch { .. })
    ));
    assert!(matches!(
        bad(&t("F32", "[2]", "[8,0]"), 8),
        Err(TensorError::Malformed(_))
    ));
    let huge = t("F32", "[18446744073709551615, 2]", "[0,8]");
    assert!(matches!(bad(&huge, 8), Err(TensorError::Malformed(_))));
    let far = t("I8", "[1]", "[18446744073709551615,18446744073709551615]");
    assert!(bad(&far, 8).is_err());
    assert!(matches!(bad("{not json", 8), Err(TensorError::Json(_))));
    assert!(matches!(
        bad(r#"{"t":{"dtype":"F32"}}"#, 8),
        Err(TensorError::Json(_))
    ));
    assert!(matches!(bad(r#"{"t":5}"#, 8), Err(TensorError::Json(_))));
    let overlap = r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},
                      "b":{"dtype":"U8","shape":[2],"data_offsets":[3,5]}}"#;
    assert!(matches!(bad(overlap, 8), Err(TensorError::Overlap { .. })));
    // Deeply nested metadata is skipped (serde_json skips iteratively,
    // so this cannot overflow the stack).
    let deep = format!(
        r#"{{"__metadata__":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(bad(&deep, 0).unwrap().unwrap().tensors.is_empty());
    let deep_shape = t("F32", &"[".repeat(100_000), "[0,8]");
    assert!(matches!(bad(&deep_shape, 8), Err(TensorError::Json(_))));
}

#[test]
fn not_a_model_is_none() {
    assert!(parse(b"").unwrap().is_none());
    assert!(parse(b"GGUF").unwrap().is_none()); // shorter than the probe
    assert!(parse(b"hello world, just text").unwrap().is_none());
    assert!(parse(&[0u8; 64]).unwrap().is_none());
    // Plausible length but no '{', or a length past the file / cap.
    assert!(parse(&safetensors("[1,2,3]", 10)).unwrap().is_none());
    let mut f = safetensors("{}", 0);
    f[..8].copy_from_slice(&3u64.to_le_bytes());
    assert!(parse(&f).unwrap().is_none());
    f[..8].copy_from_slice(&(MAX_SAFETENSORS_HEADER + 1).to_le_bytes());
    assert!(parse(&f).unwrap().is_none());
    // An empty safetensors file is a valid, empty layout.
    let l = parse(&safetensors("{}", 0)).unwrap().unwrap();
    assert!(l.tensors.is_empty());
    assert_eq!(boundaries(&l), [10]);
}

/// Reads past the probe count: Ok(None) must come from the first 9 bytes.
struct CountingReader<'a>(Cursor<&'a [u8]>, u64);
impl Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1 += n as u64;
        Ok(n)
    }
}
impl Seek for CountingReader<'_> {
    fn seek(&mut self, p: SeekFrom) -> io::Result<u64> {
        self.0.seek(p)
    }
}

#[test]
fn detection_reads_only_a_probe() {
    let junk = vec![0x5Au8; 1 << 20];
    let mut r = CountingReader(Cursor::new(&junk), 0);
    assert!(parse_layout(&mut r, junk.len() as u64).unwrap().is_none());
    assert_eq!(r.1, 9);
}

// ---- GGUF ----

#[test]
fn gguf_layout() {
    let f = gguf_sample();
    let l = parse(&f).unwrap().unwrap();
    assert_eq!(l.format, Format::Gguf);
    assert_eq!(l.data_start % 64, 0);
    assert_eq!(l.data_start, f.len() as u64 - 515);
    let ds = l.data_start;
    let got: Vec<(&str, Dtype, u64, u64)> = l
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.dtype, t.offset - ds, t.len))
        .collect();
    assert_eq!(
        got,
        [
            ("tok_embd", Dtype::BF16, 0, 64),
            ("norm", Dtype::F32, 64, 20),
            ("q4k", Dtype::Other, 128, 288),
            ("i8", Dtype::I8, 512, 3)
        ]
    );
    assert_eq!(boundaries(&l), [ds, ds + 64, ds + 128, ds + 512, ds + 515]);
    assert_eq!(dtype_at(&l, ds + 100), None); // padding after "norm"
    assert_eq!(dtype_at(&l, ds + 130), Some(Dtype::Other));
}

#[test]
fn gguf_default_alignment_and_v2() {
    let mut b = GgufBuilder::new()
        .tensor("w", &[3], 1, 0)
        .tensor("x", &[2], 0, 32);
    b.version = 2;
    let f = b.build(32, 40);
    let l = parse(&f).unwrap().unwrap();
    assert_eq!(l.data_start, f.len() as u64 - 40);
    assert_eq!(l.tensors[1].offset, l.data_start + 32);
    // No tensors, file ends before the padding: still a layout.
    let mut f = GgufBuilder::new().build(1, 0);
    f.truncate(24);
    let l = parse(&f).unwrap().unwrap();
    assert_eq!((l.data_start, l.tensors.len()), (24, 0));
}

#[test]
fn gguf_errors() {
    let mut b = GgufBuilder::new();
    b.version = 1;
    assert!(matches!(
        parse(&b.build(32, 0)),
        Err(TensorError::UnsupportedVersion(1))
    ));
    b.version = 3u32.swap_bytes(); // big-endian file
    assert!(matches!(
        parse(&b.build(32, 0)),
        Err(TensorError::UnsupportedVersion(_))
    ));
    let oob = GgufBuilder::new().tensor("w", &[100], 0, 0).build(32, 399);
    assert!(matches!(parse(&oob), Err(TensorError::OutOfBounds { .. })));
    let ovl = GgufBuilder::new()
        .tensor("a", &[16], 0, 0)
        .tensor("b", &[4], 0, 32)
        .build(32, 64);
    assert!(matches!(parse(&ovl), Err(TensorError::Overlap { .. })));
    let unaligned = GgufBuilder::new().tensor("a", &[1], 0, 4).build(32, 64);
    assert!(matches!(parse(&unaligned), Err(TensorError::Malformed(_))));
    let partial_block = GgufBuilder::new().tensor("q", &[33], 8, 0).build(32, 64);
    assert!(matches!(
        parse(&partial_block),
        Err(TensorError::Malformed(_))
    ));
    let dims = GgufBuilder::new().tensor("d", &[1; 9], 0, 0).build(32, 64);
    assert!(matches!(parse(&dims), Err(TensorError::Malformed(_))));
    let overflow = GgufBuilder::new()
        .tensor("o", &[u64::MAX, 4], 0, 0)
        .build(32, 64);
    assert!(matches!(parse(&overflow), Err(TensorError::Malformed(_))));
    let align = GgufBuilder::new()
        .kv("general.alignment", 4, &3u32.to_le_bytes())
        .build(1, 0);
    assert!(matches!(parse(&align), Err(TensorError::Malformed(_))));
    let align_ty = GgufBuilder::new()
        .kv("general.alignment", 10, &[0; 8])
        .build(1, 0);
    assert!(matches!(parse(&align_ty), Err(TensorError::Malformed(_))));
    let bad_ty = GgufBuilder::new().kv("k", 13, &[0; 8]).build(1, 0);
    assert!(matches!(parse(&bad_ty), Err(TensorError::Malformed(_))));
}

#[test]
fn gguf_huge_counts_fail_fast_without_allocating() {
    let mut f = GgufBuilder::new().build(1, 64);
    f[8..16].copy_from_slice(&u64::MAX.to_le_bytes()); // tensor_count
    assert!(matches!(parse(&f), Err(TensorError::Truncated { .. })));
    let mut f = GgufBuilder::new().build(1, 64);
    f[16..24].copy_from_slice(&(1u64 << 60).to_le_bytes()); // kv_count
    assert!(matches!(parse(&f), Err(TensorError::Truncated { .. })));
    // An array of 2^61 u64s, or of 2^40 strings, in a tiny file.
    for (elem, n) in [(10u32, 1u64 << 61), (8, 1 << 40), (9, 1 << 40)] {
        let mut v = elem.to_le_bytes().to_vec();
        v.extend_from_slice(&n.to_le_bytes());
        let f = GgufBuilder::new().kv("a", 9, &v).build(1, 64);
        assert!(parse(&f).is_err());
    }
    // A 2^62-byte tensor name.
    let mut f = GgufBuilder::new().tensor("n", &[1], 0, 0).build(32, 64);
    f[24..32].copy_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(matches!(parse(&f), Err(TensorError::Malformed(_))));
}

#[test]
fn gguf_deeply_nested_arrays_are_bounded() {
    // 10 levels of array-of-array (each with one element): past the depth cap.
    let mut v = Vec::new();
    for _ in 0..10 {
        v.extend_from_slice(&9u32.to_le_bytes());
        v.extend_from_slice(&1u64.to_le_bytes());
    }
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    let f = GgufBuilder::new().kv("deep", 9, &v).build(1, 64);
    assert!(matches!(parse(&f), Err(TensorError::Malformed(_))));
}

#[test]
fn every_truncation_is_handled() {
    for f in [gguf_sample(), st_sample()] {
        let full = parse(&f).unwrap().unwrap();
        for cut in 0..f.len() {
            // The claimed length is honest: anything goes but a panic or success
            // past the data. A layout may only come back when all regions fit.
            if let Ok(Some(l)) = parse(&f[..cut]) {
                assert!(l.tensors.iter().all(|t| t.offset + t.len <= cut as u64));
                assert!(l.tensors.len() <= full.tensors.len());
            }
        }
    }
}

#[test]
fn lying_file_len_gives_io_error() {
    let f = gguf_sample();
    let r = parse_layout(&mut Cursor::new(&f[..100]), f.len() as u64);
    assert!(matches!(r, Err(TensorError::Io(_))));
}

#[test]
fn dtype_names_and_serde_agree() {
    use Dtype::*;
    for d in [
        BF16, F16, F32, F64, F8E4M3, F8E5M2, I8, U8, I16, I32, I64, Bool, Other,
    ] {
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{d}\""));
        assert_eq!(
            serde_json::from_str::<Dtype>(&format!("\"{d}\"")).unwrap(),
            d
        );
        if d != Other {
            assert_eq!(Dtype::from_safetensors(d.name()).0, d);
            assert!(d.width().is_some());
        }
    }
    assert_eq!(F8E4M3.to_string(), "F8_E4M3");
    assert_eq!(Dtype::from_safetensors("U32"), (Other, Some(4)));
    assert_eq!(Dtype::from_ggml(30), Some((BF16, 1, 2)));
    assert_eq!(Dtype::from_ggml(31), None);
}

#[test]
fn layout_serde_roundtrip() {
    let l = parse(&gguf_sample()).unwrap().unwrap();
    let j = serde_json::to_string(&l).unwrap();
    assert_eq!(serde_json::from_str::<TensorLayout>(&j).unwrap(), l);
}

#[test]
fn predict_width_finds_float_structure() {
    // bf16-like: top byte from a small set, low byte noisy.
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let bf16: Vec<u8> = (0..1 << 17)
        .flat_map(|_| {
            let r = next();
            [r as u8, 0x3C + (r >> 8) as u8 % 3]
        })
        .collect();
    assert_eq!(predict_width(&bf16), Some(2));
    let f32: Vec<u8> = (0..1 << 16)
        .flat_map(|_| {
            let r = next();
            [
                r as u8,
                (r >> 8) as u8,
                (r >> 16) as u8 & 0x0F,
                0x3C + (r >> 24) as u8 % 2,
            ]
        })
        .collect();
    assert_eq!(predict_width(&f32), Some(4));
    for (kind, w) in [("bf16", 2), ("fp16", 2), ("fp32", 4)] {
        let (data, _) = crate::format::byteplane::tests::weights(kind, PREDICT_SAMPLE);
        assert_eq!(predict_width(&data), Some(w), "{kind}");
    }
    let random: Vec<u8> = (0..1 << 18).map(|_| next() as u8).collect();
    assert_eq!(predict_width(&random), None);
    let text = "the quick brown fox jumps over the lazy dog ".repeat(3000);
    assert_eq!(predict_width(text.as_bytes()), None);
    assert_eq!(predict_width(&[]), None);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn mutated_gguf_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        check_mutated(gguf_sample(), edits)?;
    }

    #[test]
    fn mutated_safetensors_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        check_mutated(st_sample(), edits)?;
    }

    #[test]
    fn dtype_at_matches_linear_scan(off in 0u64..700) {
        let l = parse(&gguf_sample()).unwrap().unwrap();
        let lin = l.tensors.iter().find(|t| t.offset <= off && off < t.offset + t.len).map(|t| t.dtype);
        prop_assert_eq!(dtype_at(&l, off), lin);
    }
}
