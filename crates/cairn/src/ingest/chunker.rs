//! Content-defined chunking (FastCDC 2020), as a pure function over bytes.
//!
//! [`Chunker::next_boundary`] looks at the start of a buffer and says where
//! the first chunk ends, or that it needs more bytes. It never does I/O, so the
//! snapshot reader can feed it from any buffer. Boundaries depend only on the
//! bytes, never on how they were fed: the cut is computed only once `max`
//! bytes are available (or at end of input), because FastCDC's normalisation
//! window shrinks when it is handed fewer than `avg` bytes.

use fastcdc::v2020::{self, Normalization};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Chunk size bounds in bytes, fixed per repository at `init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl Default for ChunkerParams {
    /// 16 KiB / 64 KiB / 256 KiB: small enough that a partial model update
    /// dedups well, large enough that the catalog stays small.
    fn default() -> Self {
        Self::with_average(64 * 1024)
    }
}

impl ChunkerParams {
    /// `min = avg / 4`, `max = avg * 4`, the FastCDC paper's ratios.
    pub fn with_average(avg: u32) -> Self {
        Self {
            min: avg / 4,
            avg,
            max: avg.saturating_mul(4),
        }
    }

    /// Checks the bounds FastCDC supports: even sizes, min < avg < max,
    /// 64 B ≤ min ≤ 1 MiB, 256 B ≤ avg ≤ 4 MiB, 1 KiB ≤ max ≤ 16 MiB.
    pub fn validate(&self) -> Result<()> {
        let (min, avg, max) = (self.min as usize, self.avg as usize, self.max as usize);
        let ok = min % 2 == 0
            && avg % 2 == 0
            && max % 2 == 0
            && min < avg
            && avg < max
            && (v2020::MINIMUM_MIN..=v2020::MINIMUM_MAX).contains(&min)
            && (v2020::AVERAGE_MIN..=v2020::AVERAGE_MAX).contains(&avg)
            && (v2020::MAXIMUM_MIN..=v2020::MAXIMUM_MAX).contains(&max);
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "unsupported chunk sizes min {min} / avg {avg} / max {max}: need even sizes, \
                 min < avg < max, avg between 256 B and 4 MiB, max at most 16 MiB"
            )))
        }
    }
}

/// A configured FastCDC cutter.
#[derive(Debug, Clone)]
pub struct Chunker {
    params: ChunkerParams,
    mask_s: u64,
    mask_l: u64,
    /// The gear tables (plain and shifted) for a seeded chunker; `None`
    /// for the crate's default tables.
    gear: Option<std::sync::Arc<(Vec<u64>, Vec<u64>)>>,
}

impl Chunker {
    pub fn new(params: ChunkerParams) -> Result<Self> {
        Self::seeded(params, 0)
    }

    /// A chunker whose gear table is seeded with `seed` (fastcdc's
    /// `get_gear_with_seed`; 0 = the default table). An encrypted
    /// repository seeds it from its key, so chunk boundaries reveal nothing
    /// a known file would predict.
    pub fn seeded(params: ChunkerParams, seed: u64) -> Result<Self> {
        params.validate()?;
        let (mask_s, mask_l) = v2020::select_masks(params.avg as usize, Normalization::Level1);
        let gear = (seed != 0).then(|| {
            let (g, ls) = v2020::get_gear_with_seed(seed);
            std::sync::Arc::new((g.into_owned(), ls.into_owned()))
        });
        Ok(Self {
            params,
            mask_s,
            mask_l,
            gear,
        })
    }

    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// The length of the chunk that starts at `data[0]`, or `None` when the
    /// answer needs more bytes (fewer than `max` are given and `eof` is
    /// false) or `data` is empty.
    pub fn next_boundary(&self, data: &[u8], eof: bool) -> Option<usize> {
        let max = self.params.max as usize;
        if data.is_empty() || (data.len() < max && !eof) {
            return None;
        }
        let window = &data[..data.len().min(max)];
        let (min, avg) = (self.params.min as usize, self.params.avg as usize);
        let (ms, ml) = (self.mask_s, self.mask_l);
        let (_, cut) = match &self.gear {
            None => v2020::cut(window, min, avg, max, ms, ml, ms << 1, ml << 1),
            Some(g) => v2020::cut_gear(window, min, avg, max, ms, ml, ms << 1, ml << 1, &g.0, &g.1),
        };
        Some(cut)
    }

    /// All chunk lengths of a complete in-memory buffer.
    pub fn split_all(&self, mut data: &[u8]) -> Vec<usize> {
        let mut lens = Vec::new();
        while let Some(len) = self.next_boundary(data, true) {
            lens.push(len);
            data = &data[len..];
        }
        lens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden values come from a fixed SplitMix64 stream, never a crate's RNG.
    fn stream(len: usize, seed: u64) -> Vec<u8> {
        crate::test_support::random_bytes(seed, len)
    }

    fn small() -> Chunker {
        Chunker::new(ChunkerParams::with_average(4096)).unwrap()
    }

    /// Golden boundaries: if these change, every existing repository would
    /// stop deduplicating against new snapshots. Never update them casually.
    #[test]
    fn golden_boundaries_default_params() {
        let data = stream(1 << 20, 42);
        let lens = Chunker::new(ChunkerParams::default())
            .unwrap()
            .split_all(&data);
        assert_eq!(lens.iter().sum::<usize>(), data.len());
        assert_eq!(lens, GOLDEN_DEFAULT);
    }

    #[test]
    fn golden_boundaries_small_params() {
        let data = stream(64 * 1024, 7);
        assert_eq!(small().split_all(&data), GOLDEN_SMALL);
    }

    const GOLDEN_DEFAULT: &[usize] = &[
        106594, 75208, 19070, 105223, 66060, 92895, 156030, 42707, 136630, 120388, 69647, 50111,
        8013,
    ];
    const GOLDEN_SMALL: &[usize] = &[
        10041, 3108, 5874, 7972, 4176, 8311, 7262, 8242, 4603, 1037, 3045, 1865,
    ];

    #[test]
    fn matches_fastcdc_reference_iterator() {
        let data = stream(3 << 20, 1);
        let p = ChunkerParams::default();
        let reference: Vec<usize> =
            fastcdc::v2020::FastCDC::new(&data, p.min as usize, p.avg as usize, p.max as usize)
                .map(|c| c.length)
                .collect();
        assert_eq!(Chunker::new(p).unwrap().split_all(&data), reference);
    }

    /// Feeds `data` in pieces of `piece` bytes, the way the snapshot reader
    /// does, and returns the boundaries found.
    fn split_streaming(chunker: &Chunker, data: &[u8], piece: usize) -> Vec<usize> {
        let (mut buf, mut lens, mut fed) = (Vec::new(), Vec::new(), 0);
        loop {
            let eof = fed == data.len();
            match chunker.next_boundary(&buf, eof) {
                Some(len) => {
                    lens.push(len);
                    buf.drain(..len);
                }
                None if eof => return lens,
                None => {
                    let end = (fed + piece).min(data.len());
                    buf.extend_from_slice(&data[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn boundaries_do_not_depend_on_feed_size() {
        let data = stream(300_000, 9);
        let chunker = small();
        let whole = chunker.split_all(&data);
        for piece in [1, 37, 255, 4096, 65_536, 1 << 20] {
            assert_eq!(
                split_streaming(&chunker, &data, piece),
                whole,
                "piece {piece}"
            );
        }
    }

    #[test]
    fn edge_inputs() {
        let chunker = small();
        assert_eq!(chunker.split_all(&[]), Vec::<usize>::new());
        assert_eq!(chunker.split_all(&[5]), vec![1]);
        // All zeroes never match the mask: every chunk is max-sized.
        let zeros = vec![0u8; 40_000];
        assert_eq!(chunker.split_all(&zeros), vec![16_384, 16_384, 7_232]);
        assert_eq!(chunker.next_boundary(&zeros[..100], false), None);
    }

    #[test]
    fn rejects_unsupported_params() {
        for (min, avg, max) in [
            (1, 2, 3),
            (4096, 4096, 8192),
            (16, 64, 256),
            (1024, 4096, 1 << 25),
        ] {
            assert!(ChunkerParams { min, avg, max }.validate().is_err());
        }
        assert!(ChunkerParams::with_average(1 << 20).validate().is_ok());
    }
}
