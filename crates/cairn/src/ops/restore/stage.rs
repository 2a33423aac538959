//! Fresh directories of a restore, built under a temp name and moved into
//! place whole.
//!
//! A directory of the restore that does not exist under TARGET yet, and
//! whose parent is not itself fresh, is a *stage root*. It is created as
//! `.cairn-tmp-<pid>-<n>` beside its final name (mode 0700, so nothing in
//! it is reachable by others while it is built); everything beneath it is
//! written there under its real name, with no temp name or rename per
//! file; once every file is written and verified and every mode and mtime
//! set, the stage is renamed to its final name, refusing to replace
//! anything that appeared there meanwhile. A fresh directory therefore
//! appears complete or not at all, and a killed restore leaves only the
//! stage, which the next restore into the same place removes
//! ([`super::target::remove_leftovers`]). Files in directories that already
//! exist keep a temp name and a rename each.
//!
//! Why: on a restore of 30,000 small files into an empty directory, the
//! per-file temp name and rename (and the up-front check that each path is
//! free) were a third of all system calls.

use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::format::manifest::{EntryKind, FileEntry};
use crate::format::name;

/// One fresh directory built under a temp name.
#[derive(Debug)]
struct Stage {
    /// Where it is built: `.cairn-tmp-<pid>-<n>` beside `fin`.
    staged: PathBuf,
    /// Its final path.
    fin: PathBuf,
}

/// The stage roots of one restore, by snapshot-relative path.
#[derive(Debug, Default)]
pub(super) struct Layout {
    roots: HashMap<String, Stage>,
    created: bool,
}

impl Layout {
    /// Finds the stage roots among the directories of `entries` (sorted by
    /// path, so a parent comes before its children). Writes nothing.
    pub(super) fn plan(target: &Path, entries: &[FileEntry]) -> Result<Self> {
        let mut fresh: std::collections::HashSet<&str> = Default::default();
        let mut roots = HashMap::new();
        for d in entries.iter().filter(|e| e.kind == EntryKind::Dir) {
            let parent = d.path.rsplit_once('/').map(|(p, _)| p);
            if parent.is_some_and(|p| fresh.contains(p)) {
                fresh.insert(&d.path);
                continue;
            }
            match fs::symlink_metadata(target.join(name::to_path(&d.path))) {
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                _ => continue,
            }
            fresh.insert(&d.path);
            let fin = super::safe_join(target, &d.path)?;
            let staged = super::target::temp_path(&fin);
            roots.insert(d.path.clone(), Stage { staged, fin });
        }
        Ok(Self {
            roots,
            created: false,
        })
    }

    /// Where `rel` is written when it lies in a stage (a stage root itself
    /// included), or `None` when it is written in place.
    pub(super) fn staged(&self, rel: &str) -> Option<PathBuf> {
        if self.roots.is_empty() {
            return None;
        }
        let ends = rel.match_indices('/').map(|(i, _)| i).chain([rel.len()]);
        ends.filter_map(|end| {
            let stage = self.roots.get(&rel[..end])?;
            Some(match rel.get(end + 1..) {
                Some(rest) => stage.staged.join(name::to_path(rest)),
                None => stage.staged.clone(),
            })
        })
        .next()
    }

    /// True when `rel` is a stage root (made by [`Layout::create`]).
    pub(super) fn is_root(&self, rel: &str) -> bool {
        self.roots.contains_key(rel)
    }

    /// Creates the stage roots (TARGET and their parents must exist).
    pub(super) fn create(&mut self) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        self.created = true;
        for s in self.roots.values() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&s.staged)
                .at(&s.staged)?;
        }
        Ok(())
    }

    /// Moves every stage to its final name; a name taken meanwhile is an
    /// error, never replaced.
    pub(super) fn publish(&self) -> Result<()> {
        for s in self.roots.values() {
            rename_noreplace(&s.staged, &s.fin)?;
        }
        Ok(())
    }

    /// Removes what is left of the stages (after an error: a fresh
    /// directory appears whole or not at all; one already published is
    /// no longer at its stage name and stays).
    pub(super) fn discard(&mut self) {
        if std::mem::take(&mut self.created) {
            for s in self.roots.values() {
                let _ = remove_tree(&s.staged);
            }
        }
    }
}

/// `rename(from, to)` unless `to` exists (then [`Error::TargetExists`]).
fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::UnsafePath {
            path: p.display().to_string(),
        })
    };
    let (c_from, c_to) = (c(from)?, c(to)?);
    // SAFETY: both are NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            c_from.as_ptr(),
            libc::AT_FDCWD,
            c_to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    match std::io::Error::last_os_error() {
        e if e.kind() == ErrorKind::AlreadyExists => Err(Error::TargetExists {
            path: to.to_path_buf(),
        }),
        // A file system without renameat2 flags: check, then rename (the
        // window between them is the only difference).
        e if e.raw_os_error() == Some(libc::EINVAL) => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(Error::TargetExists {
                    path: to.to_path_buf(),
                });
            }
            fs::rename(from, to).at(to)
        }
        e => Err(Error::io(to, e)),
    }
}

/// Removes the directory tree `path`, first giving each directory in it
/// owner write and search permission (a stage may hold directories whose
/// restored mode forbids removing their entries). Symlinks are removed,
/// never followed.
pub(super) fn remove_tree(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::symlink_metadata(path).at(path)?;
    if !meta.is_dir() {
        return fs::remove_file(path).at(path);
    }
    let mode = meta.permissions().mode();
    if mode & 0o700 != 0o700 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o700)).at(path)?;
    }
    for child in fs::read_dir(path).at(path)? {
        remove_tree(&child.at(path)?.path())?;
    }
    fs::remove_dir(path).at(path)
}

/// True when a file created with permission bits `mode` gets exactly them,
/// so no `fchmod` is needed after the create: no set-id or sticky bit (the
/// kernel may clear those), and none masked by this process's umask. The
/// umask is read from `/proc/self/status` (asking `umask(2)` would have to
/// change it, racing other threads' file creation); unknown means false.
pub(super) fn created_exactly(mode: u32) -> bool {
    static UMASK: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    let umask = UMASK.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
        u32::from_str_radix(line.trim(), 8).ok()
    });
    umask.is_some_and(|u| mode & 0o7000 == 0 && mode & u == 0)
}

#[cfg(test)]
mod tests {
    use super::super::tests::entry;
    use super::*;

    /// Only fresh directories whose parent exists are roots; everything
    /// beneath a root is placed in its stage, everything else in place.
    #[test]
    fn stage_roots_are_the_topmost_fresh_directories() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("old/kept")).unwrap();
        let entries = [
            entry("new", EntryKind::Dir),
            entry("new/a", EntryKind::Dir),
            entry("new/a/f", EntryKind::File),
            entry("new-b", EntryKind::Dir),
            entry("old", EntryKind::Dir),
            entry("old/f", EntryKind::File),
            entry("old/kept", EntryKind::Dir),
            entry("old/kept/g", EntryKind::File),
            entry("old/made", EntryKind::Dir),
            entry("old/made/h", EntryKind::File),
            entry("top", EntryKind::File),
        ];
        let layout = Layout::plan(dir.path(), &entries).unwrap();
        let mut roots: Vec<&str> = layout.roots.keys().map(String::as_str).collect();
        roots.sort();
        assert_eq!(roots, ["new", "new-b", "old/made"]);
        let new = &layout.roots["new"].staged;
        assert_eq!(new.parent(), Some(dir.path()));
        assert_eq!(layout.staged("new"), Some(new.clone()));
        assert_eq!(layout.staged("new/a/f"), Some(new.join("a/f")));
        let made = &layout.roots["old/made"].staged;
        assert_eq!(made.parent(), Some(dir.path().join("old").as_path()));
        assert_eq!(layout.staged("old/made/h"), Some(made.join("h")));
        for in_place in ["old", "old/f", "old/kept/g", "top", "newer", "new-b2"] {
            assert_eq!(layout.staged(in_place), None, "{in_place}");
        }
    }

    /// A stage is never moved over something that appeared at its name,
    /// and a discarded one is gone, read-only directories and all.
    #[test]
    fn publish_never_replaces_and_discard_removes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let entries = [entry("d", EntryKind::Dir)];
        let mut layout = Layout::plan(dir.path(), &entries).unwrap();
        layout.create().unwrap();
        let inner = layout.staged("d").unwrap().join("ro");
        fs::create_dir(&inner).unwrap();
        fs::write(inner.join("f"), b"x").unwrap();
        fs::set_permissions(&inner, fs::Permissions::from_mode(0o500)).unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        let err = layout.publish().unwrap_err();
        assert!(matches!(err, Error::TargetExists { .. }), "{err}");
        assert!(fs::read_dir(dir.path().join("d")).unwrap().next().is_none());
        layout.discard();
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only d: the stage is gone");
    }

    #[test]
    fn set_id_bits_always_need_a_chmod() {
        for mode in [0o4755, 0o2755, 0o1777] {
            assert!(!created_exactly(mode), "{mode:o}");
        }
    }
}
