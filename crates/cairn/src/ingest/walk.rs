//! Walks the source paths of a snapshot into a sorted list of entries.
//!
//! Each source is stored under its path as given (`models/a.h5`;
//! `/data/llama` → `data/llama/…`, see [`sources`]), with the directories
//! above it, so a restore recreates that layout under its target.
//! Directories come before their contents; siblings are sorted by name so
//! manifests are deterministic.
//!
//! Names and link targets that are not UTF-8 are kept byte for byte, in
//! the carried form of [`crate::format::name`], except in a walk for a
//! repository that writes version-1 manifests ([`Rules::utf8_only`]),
//! which hold UTF-8 only.
//!
//! A lenient walk (`strict` false) leaves out what it cannot take (an entry
//! it may not read, one that vanished after it was listed, in a `utf8_only`
//! walk a name or link target that is not UTF-8) and says why in
//! [`Walk::left_out`]; a strict walk fails on the first such entry. The
//! sources themselves must always be there.
//!
//! [`Rules::excludes`] leaves out, on purpose, what [`Excludes`] patterns
//! match (an excluded directory is not entered); those are only counted in
//! [`Walk::excluded`].

use std::fmt::Write as _;
use std::fs::{self, Metadata};
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::format::manifest::EntryKind;
use crate::format::name;
use crate::ingest::exclude::Excludes;
use crate::ingest::sources;

/// One path found under a source.
#[derive(Debug, Clone, Default)]
pub struct SourceEntry {
    /// Relative, `/`-separated path as stored in the manifest (bytes that
    /// are not UTF-8 carried, see [`crate::format::name`]).
    pub rel: String,
    pub abs: PathBuf,
    pub kind: EntryKind,
    pub mode: u32,
    pub mtime_ns: i64,
    pub size: u64,
    pub inode: u64,
    pub link_target: String,
    /// `(st_uid, st_gid)` (`None` for a stream).
    pub owner: Option<(u32, u32)>,
    /// `st_dev` and `st_nlink`: with `inode`, what tells hard links apart.
    pub dev: u64,
    pub nlink: u64,
    /// `st_rdev` of a character or block device (0 otherwise).
    pub rdev: u64,
}

/// The result of a walk: entries (FIFOs and device nodes among them), plus
/// paths skipped because their type (a socket) cannot be backed up, plus (lenient walks only)
/// entries left out because they could not be taken.
#[derive(Debug, Default)]
pub struct Walk {
    pub entries: Vec<SourceEntry>,
    pub skipped: Vec<PathBuf>,
    pub left_out: Vec<Skipped>,
    /// Entries matched by an exclude pattern (a directory counts once; what
    /// is under it is not walked).
    pub excluded: u64,
    /// The sources walked, absolute, in the order given.
    pub sources: Vec<PathBuf>,
}

/// Why an entry is not in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// A socket (as restic and borg, never stored), or a FIFO or device
    /// in a repository whose manifests cannot record one (version < 4).
    Unsupported,
    /// Opening, listing or reading it was refused, or it vanished after
    /// it was listed.
    Unreadable,
    /// Its name is not valid UTF-8, which a version-1 manifest cannot
    /// store (repositories older than version 4).
    NonUtf8Name,
    /// The symlink's target is not valid UTF-8, likewise.
    NonUtf8LinkTarget,
}

/// Why a name that is not UTF-8 was left out.
const V1_ONLY: &str =
    "(a repository older than version 4 stores UTF-8 names only; `cairn upgrade` raises it)";

/// An entry left out of a snapshot, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The path, with bytes that are not UTF-8 shown as `\xNN`.
    pub path: String,
    pub reason: SkipReason,
    /// What went wrong, for people (the OS error, or what is wrong with the name).
    pub detail: String,
}

impl Skipped {
    /// The record for an error a lenient snapshot tolerates at `path`;
    /// `None` for any other error, which must abort.
    pub fn from_error(path: &Path, err: &Error) -> Option<Skipped> {
        let (reason, detail) = match err {
            Error::Io { source, .. }
                if matches!(
                    source.kind(),
                    ErrorKind::PermissionDenied | ErrorKind::NotFound
                ) =>
            {
                let detail = if source.kind() == ErrorKind::NotFound {
                    format!("vanished while the snapshot ran ({source})")
                } else {
                    source.to_string()
                };
                (SkipReason::Unreadable, detail)
            }
            Error::NonUtf8Name { .. } => (
                SkipReason::NonUtf8Name,
                format!("file name is not valid UTF-8 {V1_ONLY}"),
            ),
            Error::NonUtf8LinkTarget { target, .. } => (
                SkipReason::NonUtf8LinkTarget,
                format!("symlink target is not valid UTF-8: {target} {V1_ONLY}"),
            ),
            _ => return None,
        };
        Some(Skipped {
            path: escaped(path),
            reason,
            detail,
        })
    }
}

/// `path` for messages: UTF-8 as is, every other byte as `\xNN`
/// (`a\xff.bin`), so two different names never look the same.
pub fn escaped(path: &Path) -> String {
    let mut out = String::new();
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Walks every source strictly: a missing or unreadable path anywhere is
/// an error naming it.
pub fn walk(sources: &[PathBuf]) -> Result<Walk> {
    walk_with(sources, true)
}

/// Walks every source. A missing or unreadable source is an error naming
/// it; below the sources, `strict` says whether an entry that cannot be
/// taken is an error too or is left out and listed in [`Walk::left_out`].
pub fn walk_with(sources: &[PathBuf], strict: bool) -> Result<Walk> {
    let rules = Rules {
        strict,
        excludes: &Excludes::none(),
        utf8_only: false,
    };
    walk_by(sources, &rules)
}

/// How a walk treats what it finds.
#[derive(Clone, Copy)]
pub struct Rules<'a> {
    /// An entry that cannot be taken is an error, not left out.
    pub strict: bool,
    /// What to leave out (and count) on purpose.
    pub excludes: &'a Excludes,
    /// Names and link targets must be UTF-8 (a version-1 manifest's).
    pub utf8_only: bool,
}

/// Walks every source by `rules`, each stored under its path as given
/// ([`sources`]). A missing or unreadable source is an error naming it.
pub fn walk_by(sources: &[PathBuf], rules: &Rules) -> Result<Walk> {
    let plan = sources::plan(sources)?;
    plan.sources
        .iter()
        .try_for_each(|abs| refuse_special(abs))?;
    let mut walk = Walk::default();
    walk_node(&plan.root, "", &mut walk, rules)?;
    walk.sources = plan.sources;
    Ok(walk)
}

/// Walks a node of the stored layout found at `rel`: a source whole, or a
/// directory above sources as one entry, then the nodes below it.
fn walk_node(node: &sources::Node, rel: &str, walk: &mut Walk, rules: &Rules) -> Result<()> {
    let abs = &node.abs;
    if node.source.is_some() {
        if rel.is_empty() {
            // `.`, `..` or `/`: its contents are the top of the snapshot.
            return visit_children(abs, rel, walk, rules);
        }
        let meta = fs::symlink_metadata(abs).at(abs)?;
        return visit(abs, rel.to_string(), &meta, walk, rules);
    }
    if !rel.is_empty() {
        // Followed: a symlink above a source is stored as the directory
        // it leads to, since the source is read through it. Its mode and
        // owner are kept, its mtime is not (0): it changes whenever a
        // sibling of the source comes or goes (`~` at every shell exit),
        // which is no change to what was backed up.
        let meta = fs::metadata(abs).at(abs)?;
        let mut dir = entry(abs, rel.to_string(), &meta, EntryKind::Dir, rules.utf8_only)?;
        dir.mtime_ns = 0;
        walk.entries.push(dir);
    }
    for (os_name, child) in node.children.values() {
        let name = stored_name(&child.abs, os_name, rules.utf8_only)?;
        walk_node(child, &join(rel, &name), walk, rules)?;
    }
    Ok(())
}

/// `rel/name`, or `name` at the top.
fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

impl Walk {
    /// Lists `path` as left out because of `err` if the walk is lenient
    /// and the error is one it tolerates; else returns the error.
    fn leave_out(&mut self, path: &Path, err: Error, strict: bool) -> Result<()> {
        match Skipped::from_error(path, &err) {
            Some(skipped) if !strict => {
                self.left_out.push(skipped);
                Ok(())
            }
            _ => Err(err),
        }
    }
}

/// A source that is (or is a symlink to) a pipe, socket or device is an
/// error: `/dev/stdin` fed by a pipe would otherwise be stored as a
/// symlink to `/proc/self/fd/0` with none of the piped bytes. A dangling
/// symlink is left to the walk (stored as a symlink).
fn refuse_special(abs: &Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = fs::metadata(abs) else {
        return Ok(());
    };
    let ft = meta.file_type();
    let what = if ft.is_fifo() {
        "pipe"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() || ft.is_block_device() {
        "device"
    } else {
        return Ok(());
    };
    Err(Error::UnsupportedSource {
        path: escaped(abs),
        what,
    })
}

/// `name` as stored: carried, or with `utf8_only` an error if not UTF-8.
fn stored_name(path: &Path, name: &std::ffi::OsStr, utf8_only: bool) -> Result<String> {
    match name.to_str() {
        None if utf8_only => Err(Error::NonUtf8Name {
            path: escaped(path),
        }),
        _ => Ok(name::from_os(name).into_owned()),
    }
}

fn entry(
    abs: &Path,
    rel: String,
    meta: &Metadata,
    kind: EntryKind,
    utf8_only: bool,
) -> Result<SourceEntry> {
    let link_target = if kind == EntryKind::Symlink {
        let target = fs::read_link(abs).at(abs)?;
        if utf8_only && target.to_str().is_none() {
            return Err(Error::NonUtf8LinkTarget {
                path: escaped(abs),
                target: escaped(&target),
            });
        }
        name::from_os(target.as_os_str()).into_owned()
    } else {
        String::new()
    };
    Ok(SourceEntry {
        rel,
        abs: abs.to_path_buf(),
        kind,
        mode: meta.mode() & 0o7777,
        mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        size: if kind == EntryKind::File {
            meta.len()
        } else {
            0
        },
        inode: meta.ino(),
        link_target,
        owner: Some((meta.uid(), meta.gid())),
        dev: meta.dev(),
        nlink: meta.nlink(),
        rdev: if kind.is_special() { meta.rdev() } else { 0 },
    })
}

fn visit(abs: &Path, rel: String, meta: &Metadata, walk: &mut Walk, rules: &Rules) -> Result<()> {
    let Rules {
        strict,
        excludes,
        utf8_only,
    } = *rules;
    let ft = meta.file_type();
    if excludes.excludes(&rel, abs, ft.is_dir()) {
        walk.excluded += 1;
    } else if ft.is_file() {
        walk.entries
            .push(entry(abs, rel, meta, EntryKind::File, utf8_only)?);
    } else if ft.is_symlink() {
        match entry(abs, rel, meta, EntryKind::Symlink, utf8_only) {
            Ok(e) => walk.entries.push(e),
            Err(e) => walk.leave_out(abs, e, strict)?,
        }
    } else if ft.is_dir() {
        walk.entries
            .push(entry(abs, rel.clone(), meta, EntryKind::Dir, utf8_only)?);
        visit_children(abs, &rel, walk, rules)?;
    } else if let Some(kind) = special_kind(&ft) {
        walk.entries.push(entry(abs, rel, meta, kind, utf8_only)?);
    } else {
        walk.skipped.push(abs.to_path_buf());
    }
    Ok(())
}

/// Walks what directory `abs` (stored at `rel`) holds. A directory that
/// cannot be listed stays in the snapshot, empty (lenient walks).
fn visit_children(abs: &Path, rel: &str, walk: &mut Walk, rules: &Rules) -> Result<()> {
    let children = match children(abs, walk, rules) {
        Ok(children) => children,
        Err(e) => return walk.leave_out(abs, e, rules.strict),
    };
    for (name, path) in children {
        match fs::symlink_metadata(&path).at(&path) {
            Ok(meta) => visit(&path, join(rel, &name), &meta, walk, rules)?,
            Err(e) => walk.leave_out(&path, e, rules.strict)?,
        }
    }
    Ok(())
}

/// The kind of a FIFO or device node; `None` for anything else (a socket).
fn special_kind(ft: &fs::FileType) -> Option<EntryKind> {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        Some(EntryKind::Fifo)
    } else if ft.is_char_device() {
        Some(EntryKind::CharDevice)
    } else if ft.is_block_device() {
        Some(EntryKind::BlockDevice)
    } else {
        None
    }
}

impl Walk {
    /// Gives every regular file that shares its inode with another file
    /// of this walk (hard links: `st_nlink` > 1, same `st_dev` and
    /// `st_ino`) a group number: the inode number, or the next free number
    /// after it when another device's file took it. Deterministic, and
    /// stable while the inodes are, so unchanged directories keep their
    /// trees. `groups[i]` belongs to `entries[i]`.
    pub fn hardlink_groups(&self) -> Vec<Option<u64>> {
        use std::collections::HashMap;
        let linked = |e: &SourceEntry| e.kind == EntryKind::File && e.nlink > 1 && e.inode != 0;
        let mut count: HashMap<(u64, u64), usize> = HashMap::new();
        for e in self.entries.iter().filter(|e| linked(e)) {
            *count.entry((e.dev, e.inode)).or_default() += 1;
        }
        let mut group_of: HashMap<(u64, u64), u64> = HashMap::new();
        let mut taken: std::collections::HashSet<u64> = Default::default();
        self.entries
            .iter()
            .map(|e| {
                let key = (e.dev, e.inode);
                if !linked(e) || count.get(&key).copied().unwrap_or(0) < 2 {
                    return None;
                }
                Some(*group_of.entry(key).or_insert_with(|| {
                    let mut g = e.inode;
                    while !taken.insert(g) {
                        g = g.wrapping_add(1);
                    }
                    g
                }))
            })
            .collect()
    }

    /// Moves FIFOs and device nodes from `entries` to `skipped`, for a
    /// repository whose manifests (version 1) cannot record them.
    pub fn skip_special(&mut self) {
        let (special, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|e| e.kind.is_special());
        self.entries = kept;
        self.skipped.extend(special.into_iter().map(|e| e.abs));
    }
}

/// The entries of directory `abs` sorted by name bytes (a tree's order),
/// each with its stored name; in a `utf8_only` walk those whose name is
/// not UTF-8 are left out (lenient) or an error (strict).
fn children(abs: &Path, walk: &mut Walk, rules: &Rules) -> Result<Vec<(String, PathBuf)>> {
    let mut listed = Vec::new();
    for child in fs::read_dir(abs).at(abs)? {
        listed.push(child.at(abs)?.path());
    }
    listed.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    let mut children = Vec::with_capacity(listed.len());
    for path in listed {
        let os_name = path.file_name().unwrap_or_default();
        match stored_name(&path, os_name, rules.utf8_only) {
            Ok(name) => children.push((name, path)),
            Err(e) => walk.leave_out(&path, e, rules.strict)?,
        }
    }
    Ok(children)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `w` without the directories above `dir` (an absolute temp dir is
    /// stored whole) and with paths relative to it.
    fn under(mut w: Walk, dir: &Path) -> Walk {
        let prefix = format!("{}/", crate::test_support::stored(dir, ""));
        w.entries.retain(|e| e.rel.starts_with(&prefix));
        for e in &mut w.entries {
            e.rel.drain(..prefix.len());
        }
        w
    }

    #[test]
    fn walks_sorted_with_dirs_first_and_names_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("src");
        fs::create_dir_all(root.join("b")).unwrap();
        fs::write(root.join("b/z"), b"1").unwrap();
        fs::write(root.join("a"), b"22").unwrap();
        std::os::unix::fs::symlink("a", root.join("c")).unwrap();
        let w = under(walk(std::slice::from_ref(&root)).unwrap(), dir.path());
        let rels: Vec<_> = w.entries.iter().map(|e| e.rel.as_str()).collect();
        assert_eq!(rels, ["src", "src/a", "src/b", "src/b/z", "src/c"]);
        assert_eq!(w.entries[1].size, 2);
        assert_eq!(w.entries[4].link_target, "a");
        let missing = dir.path().join("nope");
        let err = walk(std::slice::from_ref(&missing))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&missing.display().to_string()), "{err}");
        // The same source twice is walked once.
        let twice = under(walk(&[root.clone(), root]).unwrap(), dir.path());
        assert_eq!(twice.entries.len(), 5);
    }

    /// FIFOs are entries (with owner); sockets are skipped; hard links in
    /// one walk share a group and a lone file has none.
    #[test]
    fn records_fifos_owners_and_hard_link_groups() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("src");
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("a"), b"1").unwrap();
        fs::hard_link(root.join("a"), root.join("b")).unwrap();
        fs::write(root.join("c"), b"2").unwrap();
        fs::hard_link(root.join("c"), dir.path().join("outside")).unwrap();
        let fifo = std::ffi::CString::new(root.join("p").as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path, not kept after the call.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
        let _sock = std::os::unix::net::UnixListener::bind(root.join("s")).unwrap();
        let w = under(walk(std::slice::from_ref(&root)).unwrap(), dir.path());
        let rels: Vec<_> = w.entries.iter().map(|e| e.rel.as_str()).collect();
        assert_eq!(rels, ["src", "src/a", "src/b", "src/c", "src/p"]);
        assert_eq!(w.entries[4].kind, EntryKind::Fifo);
        assert_eq!(w.entries[4].mode, 0o640);
        let me = fs::metadata(&root).unwrap();
        assert_eq!(w.entries[1].owner, Some((me.uid(), me.gid())));
        assert_eq!(w.skipped, [root.join("s")]);
        let groups = w.hardlink_groups();
        let ino = w.entries[1].inode;
        assert_eq!(groups, [None, Some(ino), Some(ino), None, None]);
        let mut w = w;
        w.skip_special();
        assert_eq!(w.entries.len(), 4);
        assert_eq!(w.skipped, [root.join("s"), root.join("p")]);
    }

    /// Names and link targets that are not UTF-8 are walked like any
    /// other, strict or not, carried byte for byte and sorted by bytes.
    #[test]
    fn non_utf8_names_and_link_targets_are_kept() {
        use std::ffi::OsStr;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("src");
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("ok"), b"1").unwrap();
        fs::write(root.join("\u{e9}"), b"3").unwrap();
        fs::write(root.join(OsStr::from_bytes(b"a\xff.bin")), b"2").unwrap();
        std::os::unix::fs::symlink(OsStr::from_bytes(b"t\xfe"), root.join("link")).unwrap();
        for strict in [true, false] {
            let w = under(
                walk_with(std::slice::from_ref(&root), strict).unwrap(),
                dir.path(),
            );
            assert!(w.left_out.is_empty());
            let rels: Vec<_> = w.entries.iter().map(|e| name::display(&e.rel)).collect();
            assert_eq!(
                rels,
                ["src", "src/a\\xff.bin", "src/link", "src/ok", "src/\u{e9}"]
            );
            assert_eq!(name::to_bytes(&w.entries[1].rel).as_ref(), b"src/a\xff.bin");
            assert_eq!(name::to_bytes(&w.entries[2].link_target).as_ref(), b"t\xfe");
        }
    }

    /// A `utf8_only` walk (for a version-1 manifest): a lenient one leaves
    /// out a name or link target that is not UTF-8 and says why, with the
    /// bad bytes escaped; a strict one fails with a message naming which of
    /// the two it is.
    #[test]
    fn utf8_only_walks_leave_out_non_utf8_names_unless_strict() {
        use std::ffi::OsStr;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("src");
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("ok"), b"1").unwrap();
        fs::write(root.join(OsStr::from_bytes(b"a\xff.bin")), b"2").unwrap();
        std::os::unix::fs::symlink(OsStr::from_bytes(b"t\xfe"), root.join("link")).unwrap();
        let utf8_walk = |strict| {
            let rules = Rules {
                strict,
                excludes: &Excludes::none(),
                utf8_only: true,
            };
            walk_by(std::slice::from_ref(&root), &rules)
        };
        let w = under(utf8_walk(false).unwrap(), dir.path());
        let rels: Vec<_> = w.entries.iter().map(|e| e.rel.as_str()).collect();
        assert_eq!(rels, ["src", "src/ok"]);
        let shown = |name: &str| format!("{}/{name}", root.display());
        let left: Vec<_> = w
            .left_out
            .iter()
            .map(|s| (s.reason, s.path.clone()))
            .collect();
        assert_eq!(
            left,
            [
                (SkipReason::NonUtf8Name, shown("a\\xff.bin")),
                (SkipReason::NonUtf8LinkTarget, shown("link")),
            ]
        );
        assert!(
            w.left_out[1].detail.contains(": t\\xfe "),
            "{:?}",
            w.left_out
        );
        let err = utf8_walk(true).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("file name is not valid UTF-8: {}", shown("a\\xff.bin"))
        );
        fs::remove_file(root.join(OsStr::from_bytes(b"a\xff.bin"))).unwrap();
        let err = utf8_walk(true).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "symlink target of {} is not valid UTF-8: t\\xfe",
                shown("link")
            )
        );
    }
}
