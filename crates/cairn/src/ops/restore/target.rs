//! Where a restore may write, and the temp files it writes there.
//!
//! A TARGET is refused when any restored path would land inside the
//! repository (TARGET is the repository, lies inside it, or is an ancestor
//! of it and the snapshot holds the path down to it): compared on resolved
//! paths, so a symlink or `..` cannot hide the repository.
//!
//! Temp files are named `.cairn-tmp-<pid>-<n>`: short, so a file name at
//! the 255-byte limit still has a temp name beside it (`.NAME.cairn-PID`
//! did not), and fixed, so the next restore into the same directories
//! recognises what a killed one left and removes it.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, IoContext, Result};
use crate::format::manifest::{EntryKind, FileEntry};
use crate::format::name;

const TEMP_PREFIX: &str = ".cairn-tmp-";

/// Numbers the temp files of this process.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// This process's id, asked of the kernel once (every temp name has it).
fn pid() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// A fresh temp name beside `dest`.
pub(super) fn temp_path(dest: &Path) -> PathBuf {
    let n = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    dest.with_file_name(format!("{TEMP_PREFIX}{}-{n}", pid()))
}

/// The pid that made `name`, if it is a restore's temp name: ours
/// (`.cairn-tmp-<pid>-<n>`), or the one cairn used before
/// (`.<file>.cairn-<pid>`), recognised only for a `file` restored into the
/// same directory.
fn temp_owner(name: &str, files_here: &HashSet<&str>) -> Option<u32> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = name.strip_prefix(TEMP_PREFIX) {
        let (pid, n) = rest.split_once('-')?;
        return (digits(pid) && digits(n)).then(|| pid.parse().ok())?;
    }
    let (file, pid) = name.strip_prefix('.')?.rsplit_once(".cairn-")?;
    (files_here.contains(file) && digits(pid)).then(|| pid.parse().ok())?
}

/// Removes the temp files an interrupted restore left in the directories
/// `entries` are restored into, and the stages of fresh directories it
/// left there (`super::stage`: a temp-named directory, removed whole), and
/// returns how many. A temp file or stage of a live process other than
/// this one is left alone: it may be another restore's, still being
/// written. Call before anything is written.
pub(super) fn remove_leftovers(target: &Path, entries: &[&FileEntry]) -> Result<u64> {
    let mut dirs: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for e in entries {
        let (dir, name) = e.path.rsplit_once('/').unwrap_or(("", &e.path));
        let here = dirs.entry(dir).or_default();
        if e.kind == EntryKind::File {
            here.insert(name);
        }
    }
    let me = pid();
    let mut removed = 0;
    for (dir, files_here) in &dirs {
        // A directory that does not exist yet holds no leftovers; one that
        // does is reached only through real directories.
        if fs::metadata(target.join(name::to_path(dir))).is_err() {
            continue;
        }
        let path = if dir.is_empty() {
            target.to_path_buf()
        } else {
            super::safe_join(target, dir)?
        };
        if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        for child in fs::read_dir(&path).at(&path)? {
            let child = child.at(&path)?;
            let name = child.file_name();
            let Some(pid) = name.to_str().and_then(|n| temp_owner(n, files_here)) else {
                continue;
            };
            let kind = child.file_type().at(child.path())?;
            let stage = kind.is_dir() && name.to_str().is_some_and(|n| n.starts_with(TEMP_PREFIX));
            if !(kind.is_file() || stage) || (pid != me && crate::host::pid_alive(pid)) {
                continue;
            }
            if stage {
                super::stage::remove_tree(&child.path())?;
            } else {
                fs::remove_file(child.path()).at(child.path())?;
            }
            removed += 1;
        }
    }
    Ok(removed)
}

/// Refuses a `target` that is, or passes through, a dangling symlink, and
/// one from which any of `entries` would land inside the repository at
/// `repo` (when the repository is a directory on this machine). Nothing is
/// written.
pub(super) fn check_target(
    repo: Option<&Path>,
    target: &Path,
    entries: &[FileEntry],
) -> Result<()> {
    let resolved = resolve(target)?;
    let Some(repo) = repo else {
        return Ok(());
    };
    let repo_resolved = fs::canonicalize(repo).at(repo)?;
    let inside = resolved.starts_with(&repo_resolved)
        || (repo_resolved.starts_with(&resolved)
            && entries.iter().any(|e| {
                resolved
                    .join(name::to_path(&e.path))
                    .starts_with(&repo_resolved)
            }));
    if inside {
        return Err(Error::TargetInRepository {
            target: target.to_path_buf(),
            repo: repo.to_path_buf(),
        });
    }
    Ok(())
}

/// `path` made absolute with every symlink resolved, though it may not
/// exist yet: its longest existing prefix is canonicalized and the missing
/// rest appended lexically (missing components cannot be symlinks, so
/// their `..` means what it says). A dangling symlink on the way is an
/// error naming it.
fn resolve(path: &Path) -> Result<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().at(".")?.join(path)
    };
    let mut components = abs.components();
    let mut existing = PathBuf::new();
    let mut missing = Vec::new();
    for c in components.by_ref() {
        let next = existing.join(c);
        match fs::symlink_metadata(&next) {
            Ok(m)
                if m.file_type().is_symlink()
                    && fs::metadata(&next).is_err_and(|e| e.kind() == ErrorKind::NotFound) =>
            {
                return Err(Error::DanglingSymlink {
                    points_to: fs::read_link(&next).at(&next)?,
                    path: next,
                })
            }
            Ok(_) => existing = next,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                missing.push(c);
                break;
            }
            Err(e) => return Err(Error::io(next, e)),
        }
    }
    missing.extend(components);
    let mut resolved = fs::canonicalize(&existing).at(&existing)?;
    for c in missing {
        match c {
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(name) => resolved.push(name),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_short_and_distinct() {
        let long = "n".repeat(255);
        let tmp = temp_path(&Path::new("/t").join(&long));
        let name = tmp.file_name().unwrap().to_str().unwrap();
        assert!(name.len() < 40, "{name}");
        assert!(name.starts_with(TEMP_PREFIX), "{name}");
        assert_eq!(tmp.parent(), Some(Path::new("/t")));
        assert_ne!(temp_path(&tmp), tmp);
    }

    #[test]
    fn temp_names_are_recognised_and_nothing_else() {
        let files: HashSet<&str> = ["f", "g.bin"].into();
        let ours = temp_path(Path::new("/t/f"));
        let ours = ours.file_name().unwrap().to_str().unwrap();
        assert_eq!(temp_owner(ours, &files), Some(std::process::id()));
        assert_eq!(temp_owner(".cairn-tmp-12-3", &files), Some(12));
        assert_eq!(temp_owner(".f.cairn-77", &files), Some(77));
        assert_eq!(temp_owner(".g.bin.cairn-78", &files), Some(78));
        for other in [
            ".cairn-tmp-12",
            ".cairn-tmp-12-",
            ".cairn-tmp--3",
            ".cairn-tmp-+1-3",
            ".cairn-tmp-1-3x",
            ".cairn-tmp-notes",
            ".h.cairn-77",
            ".f.cairn-",
            ".f.cairn-7a",
            "f.cairn-77",
            "f",
        ] {
            assert_eq!(temp_owner(other, &files), None, "{other}");
        }
    }

    #[test]
    fn resolve_handles_missing_paths_symlinks_and_dot_dot() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("alias")).unwrap();
        std::os::unix::fs::symlink(root.join("gone"), root.join("dangling")).unwrap();
        let cases = [
            ("real", root.join("real")),
            ("alias", root.join("real")),
            ("alias/new/deeper", root.join("real/new/deeper")),
            ("missing/../real/x", root.join("real/x")),
            ("alias/../real/./y", root.join("real/y")),
        ];
        for (rel, want) in cases {
            assert_eq!(resolve(&dir.path().join(rel)).unwrap(), want, "{rel}");
        }
        for rel in ["dangling", "dangling/below"] {
            let err = resolve(&dir.path().join(rel)).unwrap_err();
            assert!(
                matches!(&err, Error::DanglingSymlink { path, .. } if path.ends_with("dangling")),
                "{rel}: {err}"
            );
        }
    }
}
