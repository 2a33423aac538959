//! Walks the source paths of a snapshot into a sorted list of entries.
//!
//! Each source is stored under its own base name (`/data/llama` → `llama/…`),
//! so a restore recreates the same relative layout. Directories come before
//! their contents; siblings are sorted by name so manifests are deterministic.

use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::format::manifest::EntryKind;

/// One path found under a source.
#[derive(Debug, Clone)]
pub struct SourceEntry {
    /// Relative, `/`-separated path as stored in the manifest.
    pub rel: String,
    pub abs: PathBuf,
    pub kind: EntryKind,
    pub mode: u32,
    pub mtime_ns: i64,
    pub size: u64,
    pub inode: u64,
    pub link_target: String,
}

/// The result of a walk: entries, plus paths skipped because their type
/// (socket, fifo, device) cannot be backed up.
#[derive(Debug, Default)]
pub struct Walk {
    pub entries: Vec<SourceEntry>,
    pub skipped: Vec<PathBuf>,
}

/// Walks every source. A missing or unreadable path is an error naming it.
pub fn walk(sources: &[PathBuf]) -> Result<Walk> {
    let mut roots = Vec::with_capacity(sources.len());
    for source in sources {
        let abs = std::path::absolute(source).at(source)?;
        let meta = fs::symlink_metadata(&abs).at(&abs)?;
        roots.push((base_name(&abs)?, abs, meta));
    }
    // By name, not argument order: the manifest of the same sources is the
    // same however they were listed.
    roots.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = roots.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::InvalidArgument(format!(
            "two sources are both named `{}`; snapshot their parent directory instead",
            pair[0].0
        )));
    }
    let mut walk = Walk::default();
    for (name, abs, meta) in roots {
        visit(&abs, name, &meta, &mut walk)?;
    }
    Ok(walk)
}

pub(crate) fn utf8_name(path: &Path, name: &std::ffi::OsStr) -> Result<String> {
    name.to_str().map(str::to_owned).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{}: file names must be valid UTF-8",
            path.display()
        ))
    })
}

fn base_name(abs: &Path) -> Result<String> {
    let resolved;
    let name = match abs.file_name() {
        Some(name) => name,
        None => {
            resolved = fs::canonicalize(abs).at(abs)?;
            resolved.file_name().ok_or_else(|| {
                Error::InvalidArgument(format!("cannot snapshot {}: it has no name", abs.display()))
            })?
        }
    };
    utf8_name(abs, name)
}

fn entry(abs: &Path, rel: String, meta: &Metadata, kind: EntryKind) -> Result<SourceEntry> {
    let link_target = if kind == EntryKind::Symlink {
        let target = fs::read_link(abs).at(abs)?;
        utf8_name(abs, target.as_os_str())?
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
    })
}

fn visit(abs: &Path, rel: String, meta: &Metadata, walk: &mut Walk) -> Result<()> {
    let ft = meta.file_type();
    if ft.is_file() {
        walk.entries.push(entry(abs, rel, meta, EntryKind::File)?);
    } else if ft.is_symlink() {
        walk.entries
            .push(entry(abs, rel, meta, EntryKind::Symlink)?);
    } else if ft.is_dir() {
        walk.entries
            .push(entry(abs, rel.clone(), meta, EntryKind::Dir)?);
        let mut children = Vec::new();
        for child in fs::read_dir(abs).at(abs)? {
            let child = child.at(abs)?;
            children.push((utf8_name(&child.path(), &child.file_name())?, child.path()));
        }
        children.sort();
        for (name, path) in children {
            let meta = fs::symlink_metadata(&path).at(&path)?;
            visit(&path, format!("{rel}/{name}"), &meta, walk)?;
        }
    } else {
        walk.skipped.push(abs.to_path_buf());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_sorted_with_dirs_first_and_names_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("src");
        fs::create_dir_all(root.join("b")).unwrap();
        fs::write(root.join("b/z"), b"1").unwrap();
        fs::write(root.join("a"), b"22").unwrap();
        std::os::unix::fs::symlink("a", root.join("c")).unwrap();
        let w = walk(std::slice::from_ref(&root)).unwrap();
        let rels: Vec<_> = w.entries.iter().map(|e| e.rel.as_str()).collect();
        assert_eq!(rels, ["src", "src/a", "src/b", "src/b/z", "src/c"]);
        assert_eq!(w.entries[1].size, 2);
        assert_eq!(w.entries[4].link_target, "a");
        let missing = dir.path().join("nope");
        let err = walk(std::slice::from_ref(&missing))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&missing.display().to_string()), "{err}");
        assert!(walk(&[root.clone(), root]).is_err());
    }
}
