//! Snapshot manifests: the immutable record of one snapshot (its metadata and
//! every file's chunk list). Packs + manifests are the source of truth; the
//! catalog is an index over them that `rebuild-catalog` can recreate.
//!
//! File: `MAGIC (8) | version u32 | reserved u32 | body_len u64 | zstd(body)`,
//! where `body` is the bincode encoding (fixed-width little-endian integers)
//! of [`Manifest`]. The snapshot id is the BLAKE3 of `body`, and the file is
//! stored at `snapshots/<id hex>.snap`. See docs/FORMAT.md.
//!
//! Version 2 replaces the file list by the id of a root tree
//! ([`crate::format::tree`]): [`Stored::root`]. In memory a manifest is
//! always the logical [`Manifest`] with its `files`; a version-2 decode
//! leaves `files` empty until the trees are read (`ops::snapshot::trees`).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::id::{ChunkId, SnapshotId};
use crate::format::label::SnapshotLabel;
use crate::format::name;

pub const MAGIC: [u8; 8] = *b"\x89CAIRNSN";
/// Version 1: the initial layout (every file listed in the body).
pub const VERSION: u32 = 1;
/// Version 2: the body names a root tree instead of listing files; written
/// only into repositories of version 4 (`format::config::TREE_VERSION`).
pub const TREES_VERSION: u32 = 2;
pub const HEADER_LEN: usize = 24;
/// Refuse to inflate a manifest beyond this (a 20 GB model at 16 KiB chunks
/// needs ~40 MiB of chunk ids; this leaves room for huge trees).
pub const MAX_BODY_LEN: u64 = 1 << 30;

/// What a manifest entry is. The last three are recorded only in trees
/// (manifest version 2): a version-1 manifest never holds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    #[default]
    File,
    Dir,
    Symlink,
    /// A named pipe (no content).
    Fifo,
    /// A character device node (`rdev` says which).
    CharDevice,
    /// A block device node (`rdev` says which).
    BlockDevice,
}

impl EntryKind {
    /// FIFOs and device nodes: entries with neither content nor children.
    pub fn is_special(self) -> bool {
        matches!(self, Self::Fifo | Self::CharDevice | Self::BlockDevice)
    }
}

/// One path in a snapshot.
///
/// The fields after `chunks` exist only in trees (manifest version 2) and
/// the catalog: they are `serde(skip)`, so a version-1 manifest body (the
/// bincode of this struct) is byte for byte what it was before them, and
/// decodes them as their defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative, `/`-separated, no `.`/`..` components.
    pub path: String,
    pub kind: EntryKind,
    /// Unix permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// File size in bytes (0 for directories and symlinks).
    pub size: u64,
    /// SHA-256 of the file's content (files only; all zero otherwise).
    pub sha256: [u8; 32],
    /// Target of a symlink (empty otherwise).
    pub link_target: String,
    /// The file's chunks, in order.
    pub chunks: Vec<ChunkId>,
    /// `(uid, gid)`, numeric, when recorded.
    #[serde(skip)]
    pub owner: Option<(u32, u32)>,
    /// Regular files of one snapshot with the same group are one inode
    /// (hard links); `None` for a file with no other link in the snapshot.
    #[serde(skip)]
    pub hardlink: Option<u64>,
    /// Device number of a character or block device (0 otherwise).
    #[serde(skip)]
    pub rdev: u64,
    /// The file kept changing while it was read: what was stored may mix
    /// old and new content.
    #[serde(skip)]
    pub incomplete: bool,
}

/// What a snapshot run did, recorded for `list`/`stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStats {
    /// Files whose content was read (not taken from the parent snapshot).
    pub files_read: u64,
    pub bytes_read: u64,
    /// Raw and stored bytes of chunks this snapshot added to the repository.
    pub added_raw: u64,
    pub added_stored: u64,
    pub duration_ms: u64,
}

/// A whole snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Encoded as its five fields inline, at this position (see `label`).
    pub label: SnapshotLabel,
    pub host: String,
    /// When the snapshot was taken, nanoseconds since the Unix epoch (UTC).
    pub time_ns: i64,
    /// Each source path, made absolute, in the order given.
    pub sources: Vec<String>,
    pub parent: Option<SnapshotId>,
    pub stats: RunStats,
    pub files: Vec<FileEntry>,
}

/// The body of a version-2 manifest: the version-1 fields with `files`
/// replaced by the root tree and two totals (so `list` needs no walk).
#[derive(Serialize, Deserialize)]
struct BodyV2 {
    label: SnapshotLabel,
    host: String,
    time_ns: i64,
    sources: Vec<String>,
    parent: Option<SnapshotId>,
    stats: RunStats,
    root: ChunkId,
    file_count: u64,
    logical_bytes: u64,
}

/// A decoded manifest file: the manifest (for version 2 with `files` not
/// yet read from its trees) and, for version 2, the root tree and totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub manifest: Manifest,
    /// `Some` exactly for a version-2 manifest.
    pub root: Option<ChunkId>,
    /// Entries and logical bytes the trees must add up to (version 2).
    pub file_count: u64,
    pub logical_bytes: u64,
}

impl Stored {
    pub fn version(&self) -> u32 {
        if self.root.is_some() {
            TREES_VERSION
        } else {
            VERSION
        }
    }

    /// Encodes again as the same version (the same bytes for the same
    /// content: `tag` and `copy` keep ids).
    pub fn encode(&self) -> (SnapshotId, Vec<u8>) {
        match &self.root {
            Some(root) => self
                .manifest
                .encode_v2(root, self.file_count, self.logical_bytes),
            None => self.manifest.encode(),
        }
    }
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<{ MAX_BODY_LEN as usize }>()
}

/// The key prefix under which manifests are stored.
pub const PREFIX: &str = "snapshots/";

/// The storage key of a manifest.
pub fn key(id: &SnapshotId) -> String {
    format!("snapshots/{}.snap", id.to_hex())
}

/// Parses a manifest key back to its id.
pub fn id_from_key(key: &str) -> Option<SnapshotId> {
    SnapshotId::from_hex(key.strip_prefix("snapshots/")?.strip_suffix(".snap")?)
}

fn framed(version: u32, body: &[u8]) -> (SnapshotId, Vec<u8>) {
    let id = SnapshotId::of(body);
    let packed = zstd::bulk::compress(body, 3).expect("zstd on a Vec cannot fail");
    let mut out = Vec::with_capacity(HEADER_LEN + packed.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&packed);
    (id, out)
}

impl Manifest {
    /// Encodes as version 1 (every file in the body) to the file bytes and
    /// the snapshot id they name.
    /// Paths and link targets are written as the UTF-8 they stand for
    /// ([`crate::format::name`]): a version-1 manifest holds names as plain
    /// UTF-8, as every build wrote them, so an entry must
    /// [`FileEntry::fits_v1`] (snapshot leaves out those that do not).
    pub fn encode(&self) -> (SnapshotId, Vec<u8>) {
        let carried = |f: &FileEntry| name::is_carried(&f.path) || name::is_carried(&f.link_target);
        let body = if self.files.iter().any(carried) {
            let mut plain = self.clone();
            for f in &mut plain.files {
                debug_assert!(f.fits_v1(), "{} cannot be written in a v1 manifest", f.path);
                f.path = plain_utf8(&f.path);
                f.link_target = plain_utf8(&f.link_target);
            }
            bincode::serde::encode_to_vec(&plain, bincode_config())
        } else {
            bincode::serde::encode_to_vec(self, bincode_config())
        };
        framed(VERSION, &body.expect("manifest encodes"))
    }

    /// Encodes as version 2: the label, host, time, sources, parent and
    /// stats, then `root` (the tree [`crate::format::tree::build`] made of
    /// `files`) and the totals of `files`, which are not in the body.
    pub fn encode_v2(
        &self,
        root: &ChunkId,
        file_count: u64,
        logical_bytes: u64,
    ) -> (SnapshotId, Vec<u8>) {
        let body = BodyV2 {
            label: self.label.clone(),
            host: self.host.clone(),
            time_ns: self.time_ns,
            sources: self.sources.clone(),
            parent: self.parent,
            stats: self.stats.clone(),
            root: *root,
            file_count,
            logical_bytes,
        };
        let body =
            bincode::serde::encode_to_vec(&body, bincode_config()).expect("manifest encodes");
        framed(TREES_VERSION, &body)
    }

    /// The version-1 form of this logical manifest: directories list no
    /// chunks (in the logical model a version-2 directory's `chunks` is its
    /// subtree), and every entry's owner, hard-link group, rdev and
    /// `incomplete` are dropped (so the catalog holds what the version-1
    /// manifest does). What `copy` writes into a repository of version < 4.
    /// (FIFO and device entries stay: this build reads them in either
    /// version, an older one refuses them.)
    pub fn without_trees(mut self) -> Self {
        for f in &mut self.files {
            if f.kind == EntryKind::Dir {
                f.chunks.clear();
            }
            (f.owner, f.hardlink, f.rdev, f.incomplete) = (None, None, 0, false);
        }
        self
    }

    /// Decodes file bytes of either version; `expected` (from the key) must
    /// match the content. A version-2 manifest comes back with its `files`
    /// empty: `ops::snapshot::trees::load` reads them from its trees.
    pub fn decode_stored(bytes: &[u8], expected: Option<&SnapshotId>, key: &str) -> Result<Stored> {
        let corrupt = |reason: String| Error::CorruptManifest {
            key: key.to_string(),
            reason,
        };
        if bytes.len() < HEADER_LEN || bytes[..8] != MAGIC {
            return Err(corrupt("bad magic (not a cairn manifest)".into()));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION && version != TREES_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "manifest",
                path: key.to_string(),
                found: version,
                supported: TREES_VERSION,
            });
        }
        let body = Self::body(bytes, expected, key)?;
        if version == TREES_VERSION {
            let (b, used): (BodyV2, usize) =
                bincode::serde::decode_from_slice(&body, bincode_config())
                    .map_err(|e| corrupt(e.to_string()))?;
            if used != body.len() {
                return Err(corrupt("trailing bytes after the body".into()));
            }
            let manifest = Manifest {
                label: b.label,
                host: b.host,
                time_ns: b.time_ns,
                sources: b.sources,
                parent: b.parent,
                stats: b.stats,
                files: Vec::new(),
            };
            return Ok(Stored {
                manifest,
                root: Some(b.root),
                file_count: b.file_count,
                logical_bytes: b.logical_bytes,
            });
        }
        let manifest = Self::decode_v1(&body, key)?;
        Ok(Stored {
            file_count: manifest.files.len() as u64,
            logical_bytes: manifest.logical_bytes(),
            manifest,
            root: None,
        })
    }

    /// Checks that a version-2 manifest's files, read from its trees, are
    /// what its body says: no path twice, and its totals.
    pub fn check_expanded(stored: &Stored, key: &str) -> Result<()> {
        let m = &stored.manifest;
        unique_paths(m, key)?;
        Self::check_totals(stored, m.files.len() as u64, m.logical_bytes(), key)
    }

    /// That a version-2 manifest's trees listed `entries` entries of
    /// `bytes` logical bytes, as its header says they must.
    pub fn check_totals(stored: &Stored, entries: u64, bytes: u64, key: &str) -> Result<()> {
        if entries != stored.file_count || bytes != stored.logical_bytes {
            return Err(Error::CorruptManifest {
                key: key.to_string(),
                reason: format!(
                    "its trees list {entries} entries of {bytes} bytes, the manifest says {} of {}",
                    stored.file_count, stored.logical_bytes
                ),
            });
        }
        Ok(())
    }

    /// The uncompressed body, checked against the header and `expected`.
    fn body(bytes: &[u8], expected: Option<&SnapshotId>, key: &str) -> Result<Vec<u8>> {
        let corrupt = |reason: String| Error::CorruptManifest {
            key: key.to_string(),
            reason,
        };
        let body_len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
        if body_len > MAX_BODY_LEN {
            return Err(corrupt(format!("body length {body_len} exceeds the limit")));
        }
        let body = zstd::bulk::decompress(&bytes[HEADER_LEN..], body_len as usize)
            .map_err(|e| corrupt(format!("zstd: {e}")))?;
        if body.len() as u64 != body_len {
            return Err(corrupt("body length does not match the header".into()));
        }
        if let Some(expected) = expected {
            if SnapshotId::of(&body) != *expected {
                return Err(corrupt("content does not match its id".into()));
            }
        }
        Ok(body)
    }

    fn decode_v1(body: &[u8], key: &str) -> Result<Self> {
        let corrupt = |reason: String| Error::CorruptManifest {
            key: key.to_string(),
            reason,
        };
        let (manifest, used): (Manifest, usize) =
            bincode::serde::decode_from_slice(body, bincode_config())
                .map_err(|e| corrupt(e.to_string()))?;
        if used != body.len() {
            return Err(corrupt("trailing bytes after the body".into()));
        }
        let mut manifest = manifest;
        for f in &mut manifest.files {
            // Plain UTF-8 to the carried form (the same string for all but
            // names holding U+10FF80..U+10FFFF).
            if let Cow::Owned(p) = name::from_bytes(f.path.as_bytes()) {
                f.path = p;
            }
            if let Cow::Owned(t) = name::from_bytes(f.link_target.as_bytes()) {
                f.link_target = t;
            }
        }
        unique_paths(&manifest, key)?;
        Ok(manifest)
    }

    /// Logical bytes: the sum of file sizes.
    pub fn logical_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// The plain UTF-8 a carried string stands for (itself if it is not UTF-8,
/// which [`FileEntry::fits_v1`] rules out).
fn plain_utf8(s: &str) -> String {
    String::from_utf8(name::to_bytes(s).into_owned()).unwrap_or_else(|_| s.to_owned())
}

impl FileEntry {
    /// Whether this entry's path and link target are UTF-8 (what a
    /// version-1 manifest can hold; trees hold any bytes).
    pub fn fits_v1(&self) -> bool {
        let utf8 = |s: &str| std::str::from_utf8(&name::to_bytes(s)).is_ok();
        utf8(&self.path) && utf8(&self.link_target)
    }
}

fn unique_paths(m: &Manifest, key: &str) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(m.files.len());
    match m.files.iter().find(|f| !seen.insert(f.path.as_str())) {
        Some(dup) => Err(twice(key, &dup.path)),
        None => Ok(()),
    }
}

/// The error of a manifest that lists `path` twice.
pub fn twice(key: &str, path: &str) -> Error {
    Error::CorruptManifest {
        key: key.to_string(),
        reason: format!("path `{path}` appears twice"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn decode(bytes: &[u8], expected: Option<&SnapshotId>, key: &str) -> Result<Manifest> {
        Manifest::decode_stored(bytes, expected, key).map(|s| s.manifest)
    }

    pub(crate) fn sample() -> Manifest {
        Manifest {
            label: SnapshotLabel {
                kind: "model".into(),
                name: "llama".into(),
                version: Some("v2".into()),
                tags: vec!["milestone".into()],
                description: None,
            },
            host: "box".into(),
            time_ns: 1_700_000_000_000_000_000,
            sources: vec!["/data/llama".into()],
            parent: None,
            stats: RunStats::default(),
            files: vec![FileEntry {
                path: "llama/weights.bin".into(),
                kind: EntryKind::File,
                mode: 0o644,
                mtime_ns: 5,
                size: 3,
                sha256: [1; 32],
                link_target: String::new(),
                chunks: vec![ChunkId::of(b"abc")],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn round_trip_and_id_check() {
        let m = sample();
        let (id, bytes) = m.encode();
        assert_eq!(decode(&bytes, Some(&id), "k").unwrap(), m);
        let other = SnapshotId::of(b"other");
        assert!(matches!(
            decode(&bytes, Some(&other), "k"),
            Err(Error::CorruptManifest { .. })
        ));
        assert_eq!(id_from_key(&key(&id)), Some(id));
    }

    /// Pins the body encoding documented in docs/FORMAT.md: u64 LE lengths
    /// for strings and vectors, a u8 tag for options, u32 LE enum variants,
    /// fixed 32-byte ids.
    #[test]
    fn body_encoding_matches_the_spec() {
        let mut m = sample();
        m.label.tags.clear();
        m.sources.clear();
        m.files.truncate(0);
        m.label.version = None;
        let body = bincode::serde::encode_to_vec(&m, bincode_config()).unwrap();
        let mut want = Vec::new();
        want.extend_from_slice(&5u64.to_le_bytes());
        want.extend_from_slice(b"model");
        want.extend_from_slice(&5u64.to_le_bytes());
        want.extend_from_slice(b"llama");
        want.push(0); // version: None
        want.extend_from_slice(&0u64.to_le_bytes()); // tags: []
        want.push(0); // description: None
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"box");
        want.extend_from_slice(&1_700_000_000_000_000_000i64.to_le_bytes());
        want.extend_from_slice(&0u64.to_le_bytes()); // sources: []
        want.push(0); // parent: None
        want.extend_from_slice(&[0u8; 40]); // stats: five u64 zeros
        want.extend_from_slice(&0u64.to_le_bytes()); // files: []
        assert_eq!(body, want);

        let entry = bincode::serde::encode_to_vec(&sample().files[0], bincode_config()).unwrap();
        assert_eq!(&entry[..8], &17u64.to_le_bytes());
        assert_eq!(&entry[25..29], &0u32.to_le_bytes()); // EntryKind::File
        assert_eq!(&entry[29..33], &0o644u32.to_le_bytes());
        assert_eq!(entry.len(), 8 + 17 + 4 + 4 + 8 + 8 + 32 + 8 + 8 + 32);
    }

    /// Pins the whole body byte for byte, every field set, as encoded by the
    /// code before the label fields became one nested `SnapshotLabel`: a
    /// nested struct must encode exactly as its fields inline, or every
    /// existing snapshot id would change.
    #[test]
    fn body_bytes_are_pinned() {
        let mut m = sample();
        m.label.description = Some("d".into());
        m.sources = vec!["/s".into()];
        m.parent = Some(SnapshotId::of(b"p"));
        m.stats = RunStats {
            files_read: 1,
            bytes_read: 2,
            added_raw: 3,
            added_stored: 4,
            duration_ms: 5,
        };
        let body = bincode::serde::encode_to_vec(&m, bincode_config()).unwrap();
        let hex: String = body.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, PINNED_BODY_HEX.concat());
        let (id, bytes) = m.encode();
        assert_eq!(id.to_hex(), PINNED_ID_HEX);
        assert_eq!(decode(&bytes, Some(&id), "k").unwrap(), m);
    }

    const PINNED_BODY_HEX: &[&str] = &[
        "05000000000000006d6f64656c",                         // kind: "model"
        "05000000000000006c6c616d61",                         // name: "llama"
        "0102000000000000007632",                             // version: Some("v2")
        "010000000000000009000000000000006d696c6573746f6e65", // tags: ["milestone"]
        "01010000000000000064",                               // description: Some("d")
        "0300000000000000626f78",                             // host: "box"
        "00002a36fe9c9717",                                   // time_ns
        "010000000000000002000000000000002f73",               // sources: ["/s"]
        "0173f291693e31fe77be7bfb78ebc9042b2e2c437c87eca0c122e0e8a0bbfbe625", // parent: Some(id)
        "01000000000000000200000000000000030000000000000004000000000000000500000000000000", // stats: 1, 2, 3, 4, 5
        "0100000000000000",                                   // files: 1 entry
        "11000000000000006c6c616d612f776569676874732e62696e", // path "llama/weights.bin"
        "00000000",                                           // kind: File
        "a4010000",                                           // mode: 0o644
        "0500000000000000",                                   // mtime_ns: 5
        "0300000000000000",                                   // size: 3
        "0101010101010101010101010101010101010101010101010101010101010101", // sha256
        "0000000000000000",                                   // link_target: ""
        "01000000000000006437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85", // chunks: [ChunkId::of(b"abc")]
    ];
    const PINNED_ID_HEX: &str = "f34ad62bfec74eb4bc071baf766ddb04a8f5476ac24ffd88a090ac2871ffa977";

    /// The fields only trees hold leave a version-1 body as it was: the
    /// same bytes (and id) with them set, and defaults when decoded.
    #[test]
    fn tree_only_fields_leave_v1_bytes_unchanged() {
        let m = sample();
        let mut with = m.clone();
        with.files[0].owner = Some((1000, 1000));
        with.files[0].hardlink = Some(7);
        with.files[0].rdev = 9;
        with.files[0].incomplete = true;
        assert_eq!(with.encode(), m.encode());
        let (id, bytes) = with.encode();
        assert_eq!(decode(&bytes, Some(&id), "k").unwrap(), m);
    }

    /// Regression: a manifest listing one path twice decoded fine, and the
    /// catalog's unique (snapshot, path) key then failed the whole of
    /// `rebuild-catalog` and `repair`, not just that manifest.
    #[test]
    fn a_path_listed_twice_is_corrupt() {
        let mut m = sample();
        m.files.push(m.files[0].clone());
        let (id, bytes) = m.encode();
        let err = decode(&bytes, Some(&id), "k").unwrap_err();
        assert!(
            matches!(&err, Error::CorruptManifest { reason, .. } if reason.contains("llama/weights.bin")),
            "{err}"
        );
    }

    #[test]
    fn damaged_manifests_are_errors() {
        let (_, bytes) = sample().encode();
        assert!(decode(&bytes[..bytes.len() - 2], None, "k").is_err());
        assert!(decode(&bytes[..10], None, "k").is_err());
        let mut huge = bytes.clone();
        huge[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&huge, None, "k").is_err());
        let mut newer = bytes;
        newer[8] = 3;
        assert!(matches!(
            decode(&newer, None, "k"),
            Err(Error::UnsupportedVersion { found: 3, .. })
        ));
    }
}
