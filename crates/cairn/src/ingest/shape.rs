//! What cairn knows about a file's bytes before chunking it: where chunk
//! boundaries must fall (the start of each tensor in a safetensors, GGUF or
//! PyTorch zip file, so an edit that shifts tensors does not shift their
//! chunks) and how each region's chunks should be encoded (byte planes for
//! float tensors).
//!
//! Probing costs one header parse, or for files of no known format one
//! 256 KiB sample from the middle; files under [`PROBE_MIN`] are not probed.

use std::io::{Read, Seek, SeekFrom};

use crate::format::codec::Hint;
use crate::ingest::tensor::{self, TensorError, TensorLayout};

/// Smaller files are configs and the like: plain zstd, no probing.
pub const PROBE_MIN: u64 = 1 << 20;

/// The cut points and codec hints of one file.
#[derive(Debug, Clone, Default)]
pub struct FileShape {
    /// Offsets where a chunk must end (sorted).
    cuts: Vec<u64>,
    layout: Option<TensorLayout>,
    /// Hint for bytes outside any tensor (or for the whole file).
    default: Hint,
}

impl FileShape {
    /// Probes `file` (`size` bytes) and leaves it positioned at its start.
    pub fn probe<R: Read + Seek>(file: &mut R, size: u64) -> std::io::Result<Self> {
        if size < PROBE_MIN {
            return Ok(Self::default());
        }
        let shape = match tensor::parse_layout(file, size) {
            Ok(Some(layout)) => Self {
                cuts: tensor::boundaries(&layout),
                layout: Some(layout),
                default: Hint::Bytes,
            },
            Err(TensorError::Io(e)) => return Err(e),
            // Not a model format we know (or a malformed header): sample.
            _ => {
                let mut sample = vec![0u8; tensor::PREDICT_SAMPLE.min(size as usize)];
                file.seek(SeekFrom::Start((size - sample.len() as u64) / 2))?;
                file.read_exact(&mut sample)?;
                let default = match tensor::predict_width(&sample) {
                    Some(w) => Hint::Planes {
                        width: w as u8,
                        float: false,
                    },
                    None => Hint::Bytes,
                };
                Self {
                    default,
                    ..Self::default()
                }
            }
        };
        file.seek(SeekFrom::Start(0))?;
        Ok(shape)
    }

    /// The first forced cut strictly after `offset`.
    pub fn next_cut_after(&self, offset: u64) -> Option<u64> {
        let i = self.cuts.partition_point(|&c| c <= offset);
        self.cuts.get(i).copied()
    }

    /// How to encode a chunk that starts at `offset`.
    pub fn hint_at(&self, offset: u64) -> Hint {
        let Some(layout) = &self.layout else {
            return self.default;
        };
        match tensor::dtype_at(layout, offset) {
            Some(d) if d.is_float() => match d.width() {
                Some(w @ (2 | 4 | 8)) => Hint::Planes {
                    width: w as u8,
                    float: true,
                },
                _ => Hint::Bytes,
            },
            Some(d) => match d.width() {
                Some(w @ 2..=8) => Hint::Planes {
                    width: w as u8,
                    float: false,
                },
                _ => Hint::Bytes,
            },
            None => self.default,
        }
    }

    /// The tensor layout, when the file has one.
    pub fn layout(&self) -> Option<&TensorLayout> {
        self.layout.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A minimal safetensors file: two bf16 tensors after a JSON header.
    pub(crate) fn safetensors(a: usize, b: usize) -> Vec<u8> {
        let header = format!(
            r#"{{"a":{{"dtype":"BF16","shape":[{}],"data_offsets":[0,{a}]}},"b":{{"dtype":"F32","shape":[{}],"data_offsets":[{a},{}]}}}}"#,
            a / 2,
            b / 4,
            a + b
        );
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend((0..a + b).map(|i| (i * 7 % 251) as u8));
        out
    }

    #[test]
    fn safetensors_cuts_and_hints() {
        let file = safetensors(1 << 20, 1 << 20);
        let start = file.len() as u64 - (2 << 20);
        let shape = FileShape::probe(&mut Cursor::new(&file), file.len() as u64).unwrap();
        assert_eq!(shape.next_cut_after(0), Some(start));
        assert_eq!(shape.next_cut_after(start), Some(start + (1 << 20)));
        assert_eq!(shape.hint_at(0), Hint::Bytes);
        assert_eq!(
            shape.hint_at(start + 10),
            Hint::Planes {
                width: 2,
                float: true
            }
        );
        assert_eq!(
            shape.hint_at(start + (1 << 20)),
            Hint::Planes {
                width: 4,
                float: true
            }
        );
    }

    #[test]
    fn pytorch_checkpoint_storages_get_float_planes() {
        use crate::ingest::tensor::torchzip::tests::{pid_pickle, zip};
        let (f32s, bf16s) = (vec![0x41u8; 1 << 20], vec![0x3Fu8; 1 << 19]);
        let pickle = pid_pickle(&[
            ("FloatStorage", "0", 1 << 18),
            ("BFloat16Storage", "1", 1 << 18),
        ]);
        let file = zip(
            &[
                ("ckpt/data.pkl", &pickle, 0),
                ("ckpt/data/0", &f32s, 0),
                ("ckpt/data/1", &bf16s, 0),
            ],
            false,
        );
        let shape = FileShape::probe(&mut Cursor::new(&file), file.len() as u64).unwrap();
        let t = &shape.layout().unwrap().tensors;
        assert_eq!((t[0].len, t[1].len), (1 << 20, 1 << 19));
        assert_eq!(shape.next_cut_after(0), Some(t[0].offset));
        assert_eq!(shape.next_cut_after(t[0].offset), Some(t[1].offset));
        assert_eq!(shape.hint_at(0), Hint::Bytes); // data.pkl
        assert_eq!(
            shape.hint_at(t[0].offset + 4096),
            Hint::Planes {
                width: 4,
                float: true
            }
        );
        assert_eq!(
            shape.hint_at(t[1].offset),
            Hint::Planes {
                width: 2,
                float: true
            }
        );
    }

    #[test]
    fn small_and_unknown_files() {
        let small = vec![1u8; 1000];
        let shape = FileShape::probe(&mut Cursor::new(&small), 1000).unwrap();
        assert_eq!(
            (shape.next_cut_after(0), shape.hint_at(0)),
            (None, Hint::Bytes)
        );
        let (weights, _) = crate::format::byteplane::tests::weights("bf16", 2 << 20);
        let shape = FileShape::probe(&mut Cursor::new(&weights), weights.len() as u64).unwrap();
        assert_eq!(
            shape.hint_at(12345),
            Hint::Planes {
                width: 2,
                float: false
            }
        );
        let noise = crate::test_support::random_bytes(1, 2 << 20);
        let shape = FileShape::probe(&mut Cursor::new(&noise), noise.len() as u64).unwrap();
        assert_eq!(shape.hint_at(0), Hint::Bytes);
    }
}
