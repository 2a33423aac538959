//! `cairn bench`: how well a sequence of versions (a model before and after
//! a fine-tune, say) would dedup and compress under several chunk sizes and
//! zstd levels, measured without writing a repository.
//!
//! The pipeline is the snapshot's own: [`walk`] → [`ingest`] (the reader
//! thread: FastCDC with forced tensor cuts, SHA-256, codec hints) → BLAKE3 →
//! dedup → sealing ([`HashedBatch`], the blob layer's, as a snapshot does);
//! only packs, catalog and manifest are left out.
//! Versions are taken in the order given: a chunk is *new* the first time
//! any version produces it, as if each version were snapshotted in turn into
//! one fresh repository.
//!
//! Cost: one pass over all versions per chunk size; every zstd level is tried
//! on the new chunks of that same pass, and a setting's time is the pass time
//! less the time spent compressing at the other levels. Memory is bounded like
//! a snapshot's, plus the set of chunk ids seen: about 40 bytes per distinct
//! chunk (~25 MB for 40 GiB of distinct data at 64 KiB chunks).
//!
//! Delta coding (docs/FORMAT.md, "Delta chunks") is measured beside:
//! each new chunk that lies in a tensor whose previous version (the same
//! tensor name, dtype and length in the same file of an earlier version, or
//! in the previous version when both are single files) is also encoded as
//! a delta against that version's bytes at the same offsets, read from the
//! file given, and counted at the smaller of the two
//! ([`Tally::delta_stored_bytes`]). Chains follow the snapshot's keyframe
//! rule as if every chunk of a tensor changed in every version: the first
//! version of a file and every [`KEYFRAME_INTERVAL`]th after it are
//! standalone, the versions between are deltas against that keyframe. The
//! record header is counted with one reference segment (a snapshot's
//! reference may span a few chunks, 40 bytes each).
//!
//! [`history`] reports the same figures for the snapshots of an existing
//! repository, from what each snapshot recorded.
//!
//! [`KEYFRAME_INTERVAL`]: crate::ops::snapshot::delta::KEYFRAME_INTERVAL

pub mod history;
#[cfg(test)]
mod tests;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::Serialize;

use crate::blob::delta::{seal_delta, width_of};
use crate::blob::HashedBatch;
use crate::error::{Error, IoContext, Result};
use crate::format::codec::{self, Hint};
use crate::format::delta::{DeltaHeader, Op, Segment};
use crate::format::id::ChunkId;
use crate::format::manifest::EntryKind;
use crate::format::seal::Crypt;
use crate::ingest::chunker::{Chunker, ChunkerParams};
use crate::ingest::read::{self, Batch, ReadJob};
use crate::ingest::shape::FileShape;
use crate::ingest::tensor::{self, TensorLayout, TensorRegion};
use crate::ingest::walk;
use crate::ops::snapshot::delta::KEYFRAME_INTERVAL;
use crate::progress::Progress;

/// Label of bytes that lie in no tensor: headers, and files of no known
/// model format.
pub const NON_TENSOR: &str = "non-tensor";

/// The settings to compare: every chunk size with every zstd level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchSettings {
    /// Average chunk sizes in bytes (min = avg / 4, max = avg × 4).
    pub chunk_avgs: Vec<u32>,
    /// zstd levels, 0..=19 (0 stores raw).
    pub levels: Vec<i32>,
}

impl Default for BenchSettings {
    /// The repository defaults: 64 KiB chunks, zstd 3.
    fn default() -> Self {
        Self {
            chunk_avgs: vec![ChunkerParams::default().avg],
            levels: vec![3],
        }
    }
}

impl BenchSettings {
    /// Sorted, duplicates removed, every value checked as `init` would.
    pub fn normalized(&self) -> Result<Self> {
        let mut s = self.clone();
        s.chunk_avgs.sort_unstable();
        s.chunk_avgs.dedup();
        s.levels.sort_unstable();
        s.levels.dedup();
        if s.chunk_avgs.is_empty() || s.levels.is_empty() {
            return Err(Error::InvalidArgument(
                "bench needs at least one chunk size and one compression level".into(),
            ));
        }
        for &avg in &s.chunk_avgs {
            ChunkerParams::with_average(avg).validate()?;
        }
        for &level in &s.levels {
            codec::check_level(level)?;
        }
        Ok(s)
    }
}

/// What [`run`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The versions, in the order given.
    pub versions: Vec<VersionSource>,
    /// One entry per (chunk size, level), chunk sizes ascending, then levels.
    pub settings: Vec<SettingReport>,
}

/// One version as walked.
#[derive(Debug, Clone, Serialize)]
pub struct VersionSource {
    /// The path as given.
    pub path: String,
    /// Regular files (directories and symlinks hold no chunks).
    pub files: u64,
    pub logical_bytes: u64,
    /// Paths skipped because their type cannot be backed up (fifos, ...).
    pub skipped: Vec<String>,
}

/// Byte counts of a set of chunks: a version, a file, a dtype, or all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Bytes as read (every chunk, repeats included).
    pub logical_bytes: u64,
    /// Chunks cut, repeats included.
    pub chunks: u64,
    /// Chunks not produced before (by an earlier version or earlier in this one).
    pub new_chunks: u64,
    /// Raw bytes of the new chunks: what is left after dedup.
    pub new_bytes: u64,
    /// Encoded bytes of the new chunks: what is left after compression.
    pub stored_bytes: u64,
    /// The same with delta coding: each new chunk of a tensor that has a
    /// previous version counted as a delta of it where that is smaller
    /// (the module doc says how references are chosen); equals
    /// `stored_bytes` where nothing has a previous version.
    pub delta_stored_bytes: u64,
}

impl Tally {
    /// Logical bytes per byte left after dedup (1 when nothing is left).
    pub fn dedup_ratio(&self) -> f64 {
        ratio(self.logical_bytes, self.new_bytes)
    }

    /// Bytes after dedup per stored byte.
    pub fn compression_ratio(&self) -> f64 {
        ratio(self.new_bytes, self.stored_bytes)
    }

    /// Stored bytes without delta coding per stored byte with it.
    pub fn delta_ratio(&self) -> f64 {
        ratio(self.stored_bytes, self.delta_stored_bytes)
    }
}

pub(crate) fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// A tally under a name (a version's path, a file's path, a dtype).
#[derive(Debug, Clone, Serialize)]
pub struct NamedTally {
    pub name: String,
    #[serde(flatten)]
    pub tally: Tally,
}

/// Chunks whose length is in `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bucket {
    pub from: u64,
    pub to: u64,
    pub chunks: u64,
    pub bytes: u64,
}

/// The results of one (chunk size, level) setting.
#[derive(Debug, Clone, Serialize)]
pub struct SettingReport {
    pub chunk_min: u32,
    pub chunk_avg: u32,
    pub chunk_max: u32,
    pub level: i32,
    /// Over all versions.
    pub total: Tally,
    pub dedup_ratio: f64,
    pub compression_ratio: f64,
    /// Logical bytes per stored byte (dedup × compression).
    pub overall_ratio: f64,
    /// Wall time of the pass (less other levels' compression time).
    pub seconds: f64,
    /// Logical bytes per second.
    pub throughput_bytes_per_sec: f64,
    /// What each version added, in order.
    pub versions: Vec<NamedTally>,
    /// By path inside the version (a file version: its name), over all
    /// versions, sorted by path.
    pub files: Vec<NamedTally>,
    /// By the tensor dtype each chunk lies in (safetensors/GGUF), or
    /// [`NON_TENSOR`], sorted by name.
    pub dtypes: Vec<NamedTally>,
    /// By tensor group: the tensor's name with every run of digits as `N`
    /// (`layer.N.mlp.weight` gathers that weight of every layer), or
    /// [`NON_TENSOR`], sorted by name.
    pub groups: Vec<NamedTally>,
    /// Every chunk cut (repeats included) by length, power-of-two buckets
    /// from the smallest to the largest non-empty one.
    pub histogram: Vec<Bucket>,
}

/// The short form of a size used in labels: `64K`, `1M`, `1000`.
pub fn size_label(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}M", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}K", b >> 10),
        b => b.to_string(),
    }
}

/// Measures `settings` over `versions` (files or directories, oldest first).
/// Nothing is written. Fails if a file changes while it is read.
pub fn run(
    versions: &[PathBuf],
    settings: &BenchSettings,
    progress: &dyn Progress,
) -> Result<BenchReport> {
    let settings = settings.normalized()?;
    if versions.is_empty() {
        return Err(Error::InvalidArgument(
            "nothing to benchmark: give at least one path".into(),
        ));
    }
    let plan = Plan::new(versions)?;
    let mut reports = Vec::new();
    for &avg in &settings.chunk_avgs {
        let params = ChunkerParams::with_average(avg);
        progress.start(&format!("avg {}", size_label(avg.into())), plan.logical());
        let pass = Pass::run(&plan, Chunker::new(params)?, &settings.levels, progress)?;
        progress.finish();
        reports.extend((0..settings.levels.len()).map(|l| pass.report(&plan, params, l)));
    }
    Ok(BenchReport {
        versions: plan.versions,
        settings: reports,
    })
}

/// The files of every version, walked and probed once for all passes.
struct Plan {
    versions: Vec<VersionSource>,
    files: Vec<PlannedFile>,
    /// File keys (path inside the version), sorted; `PlannedFile::key` indexes it.
    keys: Vec<String>,
}

struct PlannedFile {
    version: usize,
    key: usize,
    job: ReadJob,
    /// The tensor layout the reader will also find (cuts fall on its edges).
    layout: Option<TensorLayout>,
    /// The planned file (of an earlier version) this one's tensors are
    /// delta-coded against: see the module doc.
    reference: Option<usize>,
}

impl Plan {
    fn new(paths: &[PathBuf]) -> Result<Self> {
        let mut versions = Vec::new();
        let mut found = Vec::new();
        for (v, path) in paths.iter().enumerate() {
            let walked = walk::walk(std::slice::from_ref(path))?;
            let files: Vec<_> = walked
                .entries
                .into_iter()
                .filter(|e| e.kind == EntryKind::File)
                .collect();
            versions.push(VersionSource {
                path: path.display().to_string(),
                files: files.len() as u64,
                logical_bytes: files.iter().map(|e| e.size).sum(),
                skipped: walked
                    .skipped
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect(),
            });
            // Keyed by the path below the version's own: `…/v1/a/b` →
            // `a/b`; a file version keeps its own name.
            let prefix = crate::ops::restore::layout::normalize(&crate::format::name::from_os(
                path.as_os_str(),
            ));
            found.extend(files.into_iter().map(|e| {
                let key = match e.rel.strip_prefix(&prefix) {
                    Some(rest) if rest.starts_with('/') => rest[1..].to_string(),
                    _ if prefix.is_empty() => e.rel.clone(),
                    _ => e.rel.rsplit('/').next().unwrap_or(&e.rel).to_string(),
                };
                (v, key, e)
            }));
        }
        let keys: Vec<String> = found
            .iter()
            .map(|(_, k, _)| k.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut files = Vec::with_capacity(found.len());
        for (i, (version, key, e)) in found.into_iter().enumerate() {
            let mut f = File::open(&e.abs).at(&e.abs)?;
            let layout = FileShape::probe(&mut f, e.size)
                .at(&e.abs)?
                .layout()
                .cloned();
            files.push(PlannedFile {
                version,
                key: keys.binary_search(&key).expect("key was collected"),
                job: ReadJob {
                    file: i,
                    path: e.abs,
                    size: e.size,
                    mtime_ns: e.mtime_ns,
                },
                layout,
                reference: None,
            });
        }
        choose_references(&mut files, &versions);
        Ok(Self {
            versions,
            files,
            keys,
        })
    }

    fn logical(&self) -> u64 {
        self.versions.iter().map(|v| v.logical_bytes).sum()
    }
}

/// Sets each model file's delta reference: its keyframe among the earlier
/// versions of the same file (the same key, or the only file of the
/// previous version when both versions are single files), the first and
/// every [`KEYFRAME_INTERVAL`]th version of a chain being its own keyframe.
fn choose_references(files: &mut [PlannedFile], versions: &[VersionSource]) {
    let single = |v: usize| versions[v].files == 1;
    let mut last_of_key: HashMap<usize, usize> = HashMap::new();
    let mut last_single: Option<usize> = None;
    // Per file: its place in its chain and the chain's current keyframe.
    let mut place: Vec<(usize, usize)> = Vec::with_capacity(files.len());
    for i in 0..files.len() {
        let (key, version) = (files[i].key, files[i].version);
        let previous = last_of_key.get(&key).copied().or_else(|| {
            last_single.filter(|&j| single(version) && files[j].version + 1 == version)
        });
        let at = match previous {
            Some(j) if files[i].layout.is_some() && files[j].layout.is_some() => {
                let (at, keyframe) = place[j];
                let at = at + 1;
                if at % KEYFRAME_INTERVAL as usize != 0 {
                    files[i].reference = Some(keyframe);
                }
                at
            }
            _ => 0,
        };
        let keyframe = files[i].reference.unwrap_or(i);
        place.push((at, keyframe));
        last_of_key.insert(key, i);
        last_single = single(version).then_some(i);
    }
}

/// A [`Tally`] for every level at once: all but the stored bytes are the
/// same whatever the level.
#[derive(Debug, Clone)]
struct PassTally {
    logical: u64,
    chunks: u64,
    new_chunks: u64,
    new_bytes: u64,
    stored: Vec<u64>,
    /// With delta coding, per level.
    delta: Vec<u64>,
}

impl PassTally {
    fn new(levels: usize) -> Self {
        Self {
            logical: 0,
            chunks: 0,
            new_chunks: 0,
            new_bytes: 0,
            stored: vec![0; levels],
            delta: vec![0; levels],
        }
    }

    /// Adds one chunk; `stored` holds its encoded length per level if new,
    /// standalone and with delta coding.
    fn add(&mut self, len: u64, stored: Option<Encoded>) {
        self.logical += len;
        self.chunks += 1;
        if let Some((stored, delta)) = stored {
            self.new_chunks += 1;
            self.new_bytes += len;
            for (acc, s) in self.stored.iter_mut().zip(stored) {
                *acc += s;
            }
            for (acc, s) in self.delta.iter_mut().zip(delta) {
                *acc += s;
            }
        }
    }

    fn at(&self, level: usize) -> Tally {
        Tally {
            logical_bytes: self.logical,
            chunks: self.chunks,
            new_chunks: self.new_chunks,
            new_bytes: self.new_bytes,
            stored_bytes: self.stored[level],
            delta_stored_bytes: self.delta[level],
        }
    }
}

/// A new chunk's encoded lengths per level: standalone, and the smaller of
/// standalone and delta.
type Encoded<'a> = (&'a [u64], &'a [u64]);

/// One pass over every version with one chunk size.
struct Pass<'l> {
    levels: &'l [i32],
    seen: HashSet<ChunkId>,
    /// Bytes of each file consumed so far: the next chunk's offset.
    offsets: Vec<u64>,
    total: PassTally,
    versions: Vec<PassTally>,
    files: Vec<PassTally>,
    dtypes: BTreeMap<&'static str, PassTally>,
    groups: BTreeMap<String, PassTally>,
    /// Model files opened to read delta references, by planned file.
    opened: HashMap<usize, File>,
    /// Chunks and bytes by floor(log2(len)).
    histogram: [(u64, u64); 64],
    /// Time spent encoding, per level.
    encoding: Vec<Duration>,
    elapsed: Duration,
}

impl<'l> Pass<'l> {
    fn run(
        plan: &Plan,
        chunker: Chunker,
        levels: &'l [i32],
        progress: &dyn Progress,
    ) -> Result<Self> {
        let started = Instant::now();
        let n = levels.len();
        let mut pass = Pass {
            levels,
            seen: HashSet::new(),
            offsets: vec![0; plan.files.len()],
            total: PassTally::new(n),
            versions: vec![PassTally::new(n); plan.versions.len()],
            files: vec![PassTally::new(n); plan.keys.len()],
            dtypes: BTreeMap::new(),
            groups: BTreeMap::new(),
            opened: HashMap::new(),
            histogram: [(0, 0); 64],
            encoding: vec![Duration::ZERO; n],
            elapsed: Duration::ZERO,
        };
        let jobs = plan.files.iter().map(|f| f.job.clone()).collect();
        read::spawn(jobs, chunker).for_each(|batch| pass.take(plan, batch, progress))?;
        pass.elapsed = started.elapsed();
        Ok(pass)
    }

    /// Hashes a batch's chunks, keeps the unseen ones, encodes those at
    /// every level (in parallel, as a snapshot does), and tallies.
    fn take(&mut self, plan: &Plan, batch: &Batch, progress: &dyn Progress) -> Result<()> {
        let plain = Crypt::plain();
        let hashed = HashedBatch::new(batch, &plain);
        let ids = &hashed.ids;
        let fresh: Vec<usize> = (0..ids.len())
            .filter(|&i| self.seen.insert(ids[i]))
            .collect();
        // Each chunk's file offset (the reader sends a file's chunks in order).
        let at: Vec<u64> = hashed
            .chunks
            .iter()
            .map(|c| {
                let offset = self.offsets[c.file];
                self.offsets[c.file] += c.data.len() as u64;
                offset
            })
            .collect();
        let references = self.references(plan, &hashed, &fresh, &at)?;
        // stored[k * levels + l] and delta[k * levels + l]: encoded length
        // of fresh chunk k at level l, standalone and with delta coding.
        let n = self.levels.len();
        let mut stored = vec![0u64; fresh.len() * n];
        let mut delta = vec![0u64; fresh.len() * n];
        for (l, &level) in self.levels.iter().enumerate() {
            let t = Instant::now();
            let lens: Vec<(u64, u64)> = (hashed.seal(&fresh, level).into_par_iter())
                .zip(fresh.par_iter().zip(&references))
                .map(|(standalone, (&i, reference))| {
                    let len = standalone.stored.len() as u64;
                    let Some(reference) = reference else {
                        return (len, len);
                    };
                    let c = &hashed.chunks[i];
                    let header = one_segment_header(c.hint, c.data.len());
                    let chosen = seal_delta(
                        &plain, standalone, c.data, reference, &header, c.hint, level,
                    );
                    (len, chosen.stored.len() as u64)
                })
                .collect();
            self.encoding[l] += t.elapsed();
            for (k, (len, with_delta)) in lens.into_iter().enumerate() {
                stored[k * n + l] = len;
                delta[k * n + l] = with_delta;
            }
        }
        let mut next_fresh = fresh.iter().enumerate().peekable();
        for (i, c) in hashed.chunks.iter().enumerate() {
            let enc = match next_fresh.peek() {
                Some(&(k, &j)) if j == i => {
                    next_fresh.next();
                    Some((&stored[k * n..(k + 1) * n], &delta[k * n..(k + 1) * n]))
                }
                _ => None,
            };
            self.tally(plan, c.file, at[i], c.data.len() as u64, enc);
        }
        progress.advance(hashed.raw_bytes());
        Ok(())
    }

    /// The reference bytes of each fresh chunk (chunk `fresh[k]` at file
    /// offset `at[fresh[k]]`) that lies in a tensor of a file with a
    /// reference: the old tensor's bytes at the same offsets, read from the
    /// reference's file (see the module doc); `None` for the others.
    fn references(
        &mut self,
        plan: &Plan,
        hashed: &HashedBatch,
        fresh: &[usize],
        at: &[u64],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let mut references = Vec::with_capacity(fresh.len());
        for &i in fresh {
            let c = &hashed.chunks[i];
            let f = &plan.files[c.file];
            let old =
                f.reference.and_then(|r| {
                    let new = tensor::region_at(f.layout.as_ref()?, at[i])?;
                    let old =
                        plan.files[r].layout.as_ref()?.tensors.iter().find(|t| {
                            t.name == new.name && t.dtype == new.dtype && t.len == new.len
                        })?;
                    (at[i] + c.data.len() as u64 <= new.offset + new.len)
                        .then(|| (r, old.offset + (at[i] - new.offset)))
                });
            let Some((r, offset)) = old else {
                references.push(None);
                continue;
            };
            let path = &plan.files[r].job.path;
            let file = match self.opened.entry(r) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(File::open(path).at(path)?),
            };
            let mut bytes = vec![0; c.data.len()];
            file.read_exact_at(&mut bytes, offset).at(path)?;
            references.push(Some(bytes));
        }
        Ok(references)
    }

    fn tally(&mut self, plan: &Plan, file: usize, offset: u64, len: u64, stored: Option<Encoded>) {
        let f = &plan.files[file];
        // Forced cuts at every tensor edge: a chunk lies in one tensor or none.
        let region = f
            .layout
            .as_ref()
            .and_then(|layout| tensor::region_at(layout, offset));
        let dtype = region.map_or(NON_TENSOR, |t| t.dtype.name());
        let n = self.levels.len();
        self.total.add(len, stored);
        self.versions[f.version].add(len, stored);
        self.files[f.key].add(len, stored);
        self.dtypes
            .entry(dtype)
            .or_insert_with(|| PassTally::new(n))
            .add(len, stored);
        self.groups
            .entry(region.map_or_else(|| NON_TENSOR.to_string(), group_of))
            .or_insert_with(|| PassTally::new(n))
            .add(len, stored);
        let bucket = &mut self.histogram[len.ilog2() as usize];
        bucket.0 += 1;
        bucket.1 += len;
    }

    /// The report for level number `l`.
    fn report(&self, plan: &Plan, params: ChunkerParams, l: usize) -> SettingReport {
        let others: Duration = (self.encoding.iter().enumerate())
            .filter(|&(j, _)| j != l)
            .map(|(_, d)| *d)
            .sum();
        let seconds = self.elapsed.saturating_sub(others).as_secs_f64();
        let total = self.total.at(l);
        SettingReport {
            chunk_min: params.min,
            chunk_avg: params.avg,
            chunk_max: params.max,
            level: self.levels[l],
            dedup_ratio: total.dedup_ratio(),
            compression_ratio: total.compression_ratio(),
            overall_ratio: ratio(total.logical_bytes, total.stored_bytes),
            throughput_bytes_per_sec: total.logical_bytes as f64 / seconds.max(1e-9),
            seconds,
            total,
            versions: named(plan.versions.iter().map(|v| &*v.path), &self.versions, l),
            files: named(plan.keys.iter().map(String::as_str), &self.files, l),
            dtypes: named(self.dtypes.keys().copied(), self.dtypes.values(), l),
            groups: named(
                self.groups.keys().map(String::as_str),
                self.groups.values(),
                l,
            ),
            histogram: histogram(&self.histogram),
        }
    }
}

/// The header a snapshot would write for a delta of a chunk of `len`
/// bytes with `hint`, with a one-segment reference (the chunk id is not
/// known here and does not change the length).
fn one_segment_header(hint: Hint, len: usize) -> DeltaHeader {
    DeltaHeader {
        width: width_of(hint),
        op: Op::Xor,
        age: 1,
        segments: vec![Segment {
            chunk: ChunkId([0; 32]),
            offset: 0,
            len: len as u32,
        }],
    }
}

/// A tensor's group: its name with every run of ASCII digits as `N`.
fn group_of(tensor: &TensorRegion) -> String {
    let mut group = String::with_capacity(tensor.name.len());
    let mut in_digits = false;
    for ch in tensor.name.chars() {
        match (ch.is_ascii_digit(), in_digits) {
            (true, true) => {}
            (true, false) => group.push('N'),
            (false, _) => group.push(ch),
        }
        in_digits = ch.is_ascii_digit();
    }
    group
}

fn named<'a>(
    names: impl Iterator<Item = &'a str>,
    tallies: impl IntoIterator<Item = &'a PassTally>,
    level: usize,
) -> Vec<NamedTally> {
    names
        .zip(tallies)
        .map(|(name, t)| NamedTally {
            name: name.to_string(),
            tally: t.at(level),
        })
        .collect()
}

/// The buckets from the smallest to the largest non-empty one.
fn histogram(counts: &[(u64, u64); 64]) -> Vec<Bucket> {
    let used = |&(chunks, _): &(u64, u64)| chunks > 0;
    let (Some(lo), Some(hi)) = (counts.iter().position(used), counts.iter().rposition(used)) else {
        return Vec::new();
    };
    (lo..=hi)
        .map(|k| Bucket {
            from: 1 << k,
            to: 1u64.checked_shl(k as u32 + 1).unwrap_or(u64::MAX),
            chunks: counts[k].0,
            bytes: counts[k].1,
        })
        .collect()
}
