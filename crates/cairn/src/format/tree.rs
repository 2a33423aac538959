//! Tree objects: one directory's listing, content-addressed (manifest
//! version 2, docs/FORMAT.md "Tree object"). A tree is stored as a blob in
//! packs exactly like a chunk (its id is the repository's chunk-id function
//! of the encoded bytes), so an unchanged directory is a known id and costs
//! nothing in the next snapshot.
//!
//! The encoding is hand-specified and deterministic: a version byte, then
//! the entries sorted by name bytes, each with every field #10/#18 need
//! (owner, devices, hard links, an `incomplete` flag), which ingest fills
//! in repositories of version 4. Nothing here does I/O: [`build`] turns a snapshot's
//! logical file list into trees, [`expand`] turns a root tree back into the
//! list through a [`Fetch`]er, [`visit`] walks distinct trees for gc.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::format::id::ChunkId;
use crate::format::manifest::{EntryKind, FileEntry};
use crate::format::name;

/// Version 1: the initial tree layout.
pub const VERSION: u8 = 1;
/// A tree is one blob, so it must fit a pack entry's raw length.
pub const MAX_LEN: usize = crate::format::pack::MAX_CHUNK_LEN as usize;
/// Deeper nesting than any path a filesystem accepts (PATH_MAX 4096).
pub const MAX_DEPTH: usize = 2048;

const FLAG_INCOMPLETE: u8 = 1;
const FLAG_OWNER: u8 = 2;
const FLAG_HARDLINK: u8 = 4;
const KNOWN_FLAGS: u8 = FLAG_INCOMPLETE | FLAG_OWNER | FLAG_HARDLINK;

/// What a tree entry is; the byte values are fixed (docs/FORMAT.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeKind {
    File = 0,
    Dir = 1,
    Symlink = 2,
    Fifo = 3,
    CharDevice = 4,
    BlockDevice = 5,
}

impl TreeKind {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::File,
            1 => Self::Dir,
            2 => Self::Symlink,
            3 => Self::Fifo,
            4 => Self::CharDevice,
            5 => Self::BlockDevice,
            _ => return None,
        })
    }

    fn is_device(self) -> bool {
        matches!(self, Self::CharDevice | Self::BlockDevice)
    }

    /// The tree kind of a manifest entry kind (one to one).
    pub fn of(kind: EntryKind) -> Self {
        match kind {
            EntryKind::File => Self::File,
            EntryKind::Dir => Self::Dir,
            EntryKind::Symlink => Self::Symlink,
            EntryKind::Fifo => Self::Fifo,
            EntryKind::CharDevice => Self::CharDevice,
            EntryKind::BlockDevice => Self::BlockDevice,
        }
    }

    /// The manifest entry kind of this tree kind.
    pub fn entry_kind(self) -> EntryKind {
        match self {
            Self::File => EntryKind::File,
            Self::Dir => EntryKind::Dir,
            Self::Symlink => EntryKind::Symlink,
            Self::Fifo => EntryKind::Fifo,
            Self::CharDevice => EntryKind::CharDevice,
            Self::BlockDevice => EntryKind::BlockDevice,
        }
    }
}

/// One name in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// One path component, as bytes (not empty, `.`, `..`, no `/` or NUL).
    pub name: Vec<u8>,
    pub kind: TreeKind,
    /// `st_mode & 0o7777`.
    pub mode: u32,
    pub mtime_ns: i64,
    /// Content size of a file (0 otherwise).
    pub size: u64,
    /// SHA-256 of a file's content (zero otherwise).
    pub sha256: [u8; 32],
    /// `(uid, gid)` when recorded.
    pub owner: Option<(u32, u32)>,
    /// Target of a symlink (empty otherwise).
    pub link_target: Vec<u8>,
    /// A file's chunks, in order (empty otherwise).
    pub chunks: Vec<ChunkId>,
    /// A directory's own tree (`None` exactly for non-directories).
    pub subtree: Option<ChunkId>,
    /// Device number of a character or block device (0 otherwise).
    pub rdev: u64,
    /// Entries sharing a group number within a snapshot are one inode.
    pub hardlink: Option<u64>,
    /// The file changed while it was read or could be read only in part.
    pub incomplete: bool,
}

/// One directory's listing, entries sorted by name bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub entries: Vec<TreeEntry>,
}

impl Tree {
    /// The stored bytes (before compression and sealing, which the blob
    /// layer applies as to any chunk). Entries must be sorted and valid.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            put_bytes(&mut out, &e.name);
            out.push(e.kind as u8);
            let flags = (e.incomplete as u8 * FLAG_INCOMPLETE)
                | (e.owner.is_some() as u8 * FLAG_OWNER)
                | (e.hardlink.is_some() as u8 * FLAG_HARDLINK);
            out.push(flags);
            out.extend_from_slice(&e.mode.to_le_bytes());
            out.extend_from_slice(&e.mtime_ns.to_le_bytes());
            out.extend_from_slice(&e.size.to_le_bytes());
            out.extend_from_slice(&e.sha256);
            if let Some((uid, gid)) = e.owner {
                out.extend_from_slice(&uid.to_le_bytes());
                out.extend_from_slice(&gid.to_le_bytes());
            }
            if let Some(group) = e.hardlink {
                out.extend_from_slice(&group.to_le_bytes());
            }
            put_bytes(&mut out, &e.link_target);
            match e.kind {
                TreeKind::File => {
                    out.extend_from_slice(&(e.chunks.len() as u32).to_le_bytes());
                    e.chunks.iter().for_each(|c| out.extend_from_slice(&c.0));
                }
                TreeKind::Dir => out.extend_from_slice(&e.subtree.expect("a dir has a tree").0),
                k if k.is_device() => out.extend_from_slice(&e.rdev.to_le_bytes()),
                _ => {}
            }
        }
        out
    }

    /// Parses stored bytes; anything but exactly one valid tree is an error
    /// (a reason, which the caller turns into damage naming the tree).
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        let mut r = Reader { bytes, at: 0 };
        let version = r.u8()?;
        if version != VERSION {
            return Err(format!(
                "tree version {version} is not supported (this build reads {VERSION})"
            ));
        }
        let n = r.u32()? as usize;
        // Every entry takes at least 62 bytes: bound n before allocating.
        if n > bytes.len() / 62 {
            return Err(format!("{n} entries cannot fit in {} bytes", bytes.len()));
        }
        let mut entries: Vec<TreeEntry> = Vec::with_capacity(n);
        for _ in 0..n {
            let e = r.entry()?;
            if let Some(prev) = entries.last() {
                if prev.name >= e.name {
                    return Err(format!(
                        "entry `{}` is out of order or repeated",
                        String::from_utf8_lossy(&e.name)
                    ));
                }
            }
            entries.push(e);
        }
        if r.at != bytes.len() {
            return Err("trailing bytes after the last entry".into());
        }
        Ok(Self { entries })
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> std::result::Result<&'b [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| "truncated".to_string())?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn id(&mut self) -> std::result::Result<ChunkId, String> {
        Ok(ChunkId(self.take(32)?.try_into().expect("32")))
    }
    fn bytes(&mut self) -> std::result::Result<Vec<u8>, String> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }

    fn entry(&mut self) -> std::result::Result<TreeEntry, String> {
        let name = self.bytes()?;
        if name.is_empty()
            || name == b"."
            || name == b".."
            || name.contains(&b'/')
            || name.contains(&0)
        {
            return Err(format!("bad name `{}`", String::from_utf8_lossy(&name)));
        }
        let kind = self.u8()?;
        let kind = TreeKind::from_byte(kind).ok_or_else(|| format!("unknown entry kind {kind}"))?;
        let flags = self.u8()?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(format!("unknown entry flags {flags:#04x}"));
        }
        let mode = self.u32()?;
        let mtime_ns = self.u64()? as i64;
        let size = self.u64()?;
        let sha256 = self.take(32)?.try_into().expect("32");
        let owner = match flags & FLAG_OWNER {
            0 => None,
            _ => Some((self.u32()?, self.u32()?)),
        };
        let hardlink = match flags & FLAG_HARDLINK {
            0 => None,
            _ => Some(self.u64()?),
        };
        let link_target = self.bytes()?;
        let (mut chunks, mut subtree, mut rdev) = (Vec::new(), None, 0);
        match kind {
            TreeKind::File => {
                let n = self.u32()? as usize;
                if n > (self.bytes.len() - self.at) / 32 {
                    return Err("truncated chunk list".into());
                }
                chunks = (0..n)
                    .map(|_| self.id())
                    .collect::<std::result::Result<_, _>>()?;
            }
            TreeKind::Dir => subtree = Some(self.id()?),
            k if k.is_device() => rdev = self.u64()?,
            _ => {}
        }
        Ok(TreeEntry {
            name,
            kind,
            mode,
            mtime_ns,
            size,
            sha256,
            owner,
            link_target,
            chunks,
            subtree,
            rdev,
            hardlink,
            incomplete: flags & FLAG_INCOMPLETE != 0,
        })
    }
}

/// The trees of one snapshot: the root's id and every tree's encoding (each
/// distinct id once, children before parents).
#[derive(Debug, Clone)]
pub struct Built {
    pub root: ChunkId,
    pub trees: Vec<(ChunkId, Vec<u8>)>,
}

/// Builds the trees of `files` (a snapshot's logical list: directories
/// before their contents), naming each with `id_of` (the repository's
/// chunk-id function), and sets each directory entry's `chunks` to exactly
/// its subtree's id. `None` when a listing would exceed [`MAX_LEN`] (the
/// caller then writes a version-1 manifest).
pub fn build(files: &mut [FileEntry], id_of: &dyn Fn(&[u8]) -> ChunkId) -> Option<Built> {
    let mut trees = Vec::new();
    let root = build_each(files, id_of, &mut |id, bytes| {
        trees.push((id, bytes));
        Ok::<(), std::convert::Infallible>(())
    });
    match root {
        Ok(root) => root.map(|root| Built { root, trees }),
        Err(never) => match never {},
    }
}

/// [`build`], handing each distinct tree to `emit` as soon as it is
/// encoded (children before parents) instead of holding them all: a
/// snapshot's trees are as large as its file list. On `None` (a listing
/// over [`MAX_LEN`]) the trees emitted before are not part of any root.
pub fn build_each<E>(
    files: &mut [FileEntry],
    id_of: &dyn Fn(&[u8]) -> ChunkId,
    emit: &mut dyn FnMut(ChunkId, Vec<u8>) -> std::result::Result<(), E>,
) -> std::result::Result<Option<ChunkId>, E> {
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        children.entry(parent_of(&f.path)).or_default().push(i);
    }
    let children: HashMap<String, Vec<usize>> = children
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let mut seen = HashSet::new();
    let mut encode = |files: &[FileEntry],
                      list: Option<&Vec<usize>>|
     -> std::result::Result<Option<ChunkId>, E> {
        let mut tree = Tree {
            entries: list
                .map(|l| l.iter().map(|&i| tree_entry(&files[i])).collect())
                .unwrap_or_default(),
        };
        tree.entries.sort_by(|a, b| a.name.cmp(&b.name));
        let bytes = tree.encode();
        if bytes.len() > MAX_LEN {
            return Ok(None);
        }
        let id = id_of(&bytes);
        if seen.insert(id) {
            emit(id, bytes)?;
        }
        Ok(Some(id))
    };
    // Reverse pre-order: every directory after all of its descendants.
    let dirs: Vec<usize> = (0..files.len())
        .rev()
        .filter(|&i| files[i].kind == EntryKind::Dir)
        .collect();
    for i in dirs {
        let Some(id) = encode(files, children.get(files[i].path.as_str()))? else {
            return Ok(None);
        };
        files[i].chunks = vec![id];
    }
    encode(files, children.get(""))
}

fn parent_of(path: &str) -> &str {
    path.rfind('/').map_or("", |at| &path[..at])
}

fn tree_entry(f: &FileEntry) -> TreeEntry {
    let name = f.path.rsplit('/').next().unwrap_or_default();
    let kind = TreeKind::of(f.kind);
    TreeEntry {
        name: name::to_bytes(name).into_owned(),
        kind,
        mode: f.mode,
        mtime_ns: f.mtime_ns,
        size: f.size,
        sha256: f.sha256,
        owner: f.owner,
        link_target: name::to_bytes(&f.link_target).into_owned(),
        chunks: if kind == TreeKind::File {
            f.chunks.clone()
        } else {
            Vec::new()
        },
        subtree: (kind == TreeKind::Dir).then(|| f.chunks[0]),
        rdev: if kind.is_device() { f.rdev } else { 0 },
        hardlink: f.hardlink.filter(|_| kind == TreeKind::File),
        incomplete: f.incomplete,
    }
}

/// How the readers here get trees: [`Fetch::fetch`] gives one tree's
/// stored-and-opened bytes. Any `FnMut(&ChunkId) -> Result<Vec<u8>>` is
/// one.
pub trait Fetch {
    fn fetch(&mut self, id: &ChunkId) -> Result<Vec<u8>>;

    /// A hint that the trees `ids` (a directory's subtrees) are about to
    /// be fetched, so a fetcher on object storage can read them in one
    /// batch instead of one request per directory (#13). It may do
    /// nothing (the default); it reports nothing, as each fetch that
    /// follows still reports its own tree's failure, naming its directory.
    /// `&mut self`, as a fetcher keeps what it read ahead.
    fn prefetch(&mut self, ids: &[ChunkId]) {
        let _ = ids;
    }
}

impl<F: FnMut(&ChunkId) -> Result<Vec<u8>>> Fetch for F {
    fn fetch(&mut self, id: &ChunkId) -> Result<Vec<u8>> {
        self(id)
    }
}

/// The subtrees of `tree`'s directories, for [`Fetch::prefetch`].
fn subtrees(tree: &Tree) -> Vec<ChunkId> {
    tree.entries.iter().filter_map(|e| e.subtree).collect()
}

/// Reads tree `id` of directory `dir` (`""` = the root) for the manifest
/// at `key`: damage (missing, corrupt or undecodable) is
/// [`Error::CorruptManifest`] naming the directory, other errors pass.
fn read(fetch: &mut dyn Fetch, id: &ChunkId, dir: &str, key: &str) -> Result<Tree> {
    let damaged = |reason: String| Error::CorruptManifest {
        key: key.to_string(),
        reason: format!(
            "tree {} of directory `{}` is unreadable, hiding the files under it: {reason}",
            id.short(),
            if dir.is_empty() { "/" } else { dir }
        ),
    };
    let bytes = match fetch.fetch(id) {
        Ok(b) => b,
        Err(e) if e.is_damage() || matches!(e, Error::ObjectNotFound { .. }) => {
            return Err(damaged(e.to_string()))
        }
        Err(e) => return Err(e),
    };
    Tree::decode(&bytes).map_err(damaged)
}

/// The logical file list of the snapshot whose root tree is `root`, in
/// manifest order (pre-order, siblings by name); each directory entry's
/// `chunks` holds its subtree's id. `key` names the manifest in errors.
pub fn expand(root: &ChunkId, fetch: &mut dyn Fetch, key: &str) -> Result<Vec<FileEntry>> {
    let mut out = Vec::new();
    expand_each(root, fetch, key, &mut |f| {
        out.push(f);
        Ok(())
    })?;
    Ok(out)
}

/// [`expand`], passing each entry to `each` in the same order as its tree
/// is read instead of collecting the list (a check of a snapshot of many
/// files need not hold it twice).
pub fn expand_each(
    root: &ChunkId,
    fetch: &mut dyn Fetch,
    key: &str,
    each: &mut dyn FnMut(FileEntry) -> Result<()>,
) -> Result<()> {
    expand_into(root, "", 0, fetch, key, each)
}

fn expand_into(
    id: &ChunkId,
    dir: &str,
    depth: usize,
    fetch: &mut dyn Fetch,
    key: &str,
    out: &mut dyn FnMut(FileEntry) -> Result<()>,
) -> Result<()> {
    let corrupt = |reason: String| Error::CorruptManifest {
        key: key.to_string(),
        reason,
    };
    if depth > MAX_DEPTH {
        return Err(corrupt(format!(
            "directories nested deeper than {MAX_DEPTH} under `{dir}`"
        )));
    }
    let tree = read(fetch, id, dir, key)?;
    fetch.prefetch(&subtrees(&tree));
    for e in tree.entries {
        let name = name::from_bytes(&e.name);
        let path = if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        };
        let kind = e.kind.entry_kind();
        let link_target = name::from_bytes(&e.link_target).into_owned();
        let subtree = e.subtree;
        out(FileEntry {
            path: path.clone(),
            kind,
            mode: e.mode,
            mtime_ns: e.mtime_ns,
            size: e.size,
            sha256: e.sha256,
            link_target,
            chunks: subtree.map_or(e.chunks, |s| vec![s]),
            owner: e.owner,
            hardlink: e.hardlink,
            rdev: e.rdev,
            incomplete: e.incomplete,
        })?;
        if let Some(sub) = subtree {
            expand_into(&sub, &path, depth + 1, fetch, key, out)?;
        }
    }
    Ok(())
}

/// Walks the trees under `root` that are not in `visited` (adding them),
/// passing each tree's id and each file's chunk list to `mark`; a tree seen
/// under an earlier root is not read again (gc's mark over all manifests).
/// A walk that fails adds nothing to `visited`, so a later walk through the
/// same trees fails too instead of skipping what could not be read.
pub fn visit(
    root: &ChunkId,
    fetch: &mut dyn Fetch,
    key: &str,
    visited: &mut HashSet<ChunkId>,
    mark: &mut dyn FnMut(&[ChunkId]) -> Result<()>,
) -> Result<()> {
    let mut added = Vec::new();
    let walked = visit_from(root, fetch, key, visited, &mut added, mark);
    if walked.is_err() {
        for id in &added {
            visited.remove(id);
        }
    }
    walked
}

fn visit_from(
    root: &ChunkId,
    fetch: &mut dyn Fetch,
    key: &str,
    visited: &mut HashSet<ChunkId>,
    added: &mut Vec<ChunkId>,
    mark: &mut dyn FnMut(&[ChunkId]) -> Result<()>,
) -> Result<()> {
    let mut stack = vec![(*root, String::new())];
    while let Some((id, dir)) = stack.pop() {
        if visited.contains(&id) {
            continue;
        }
        let tree = read(fetch, &id, &dir, key)?;
        visited.insert(id);
        added.push(id);
        mark(&[id])?;
        let unseen: Vec<ChunkId> = subtrees(&tree)
            .into_iter()
            .filter(|s| !visited.contains(s))
            .collect();
        fetch.prefetch(&unseen);
        for e in tree.entries {
            mark(&e.chunks)?;
            if let Some(sub) = e.subtree {
                let name = String::from_utf8_lossy(&e.name);
                let path = if dir.is_empty() {
                    name.into_owned()
                } else {
                    format!("{dir}/{name}")
                };
                stack.push((sub, path));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "tree/tests.rs"]
mod tests;
