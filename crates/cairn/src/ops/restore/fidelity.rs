//! What a restore recreates beyond file contents, directories and
//! symlinks: hard links (the first selected path of a group is written,
//! the others are linked to it), FIFOs (`mkfifo`), device nodes (`mknod`,
//! only as root: otherwise counted as skipped) and numeric ownership
//! (`lchown`, only as root, as restic and borg do; names are not stored).
//!
//! `mkfifo`, `mknod` and `geteuid` come from `libc` (already a dependency
//! for `utimensat`): std has `lchown` but none of these.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::stage::Layout;
use super::RestoreFailure;
use crate::error::{Error, IoContext, Result};
use crate::format::manifest::{EntryKind, FileEntry};
use crate::format::name;

/// True when this process runs as root: then device nodes are created and
/// owners set; otherwise neither is attempted.
pub fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// What restore does with a FIFO or device entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpecialAction {
    Create,
    /// A device node without root: counted, not created.
    SkipNeedsRoot,
}

/// The decision for a special entry of `kind` (pure, so both sides are
/// tested whoever runs the tests).
pub(crate) fn special_action(kind: EntryKind, privileged: bool) -> SpecialAction {
    match kind {
        EntryKind::CharDevice | EntryKind::BlockDevice if !privileged => {
            SpecialAction::SkipNeedsRoot
        }
        _ => SpecialAction::Create,
    }
}

/// Splits `files` into those to write and the hard links to make after
/// them: `(later, first)` pairs, `first` being the first selected path of
/// its group (so a group split by `restore --path` still restores each
/// selected file, linked to the others selected with it).
/// A hard link to make: `(later, first)`.
pub(super) type Link<'a> = (&'a FileEntry, &'a FileEntry);

pub(super) fn split_links(files: Vec<&FileEntry>) -> (Vec<&FileEntry>, Vec<Link<'_>>) {
    let mut first: HashMap<u64, &FileEntry> = HashMap::new();
    let (mut write, mut links) = (Vec::new(), Vec::new());
    for f in files {
        match f.hardlink {
            Some(g) => match first.get(&g) {
                // Only a link to identical content: a damaged or hostile
                // manifest must not make two different files one.
                Some(lead) if lead.sha256 == f.sha256 && lead.size == f.size => {
                    links.push((f, *lead))
                }
                Some(_) => write.push(f),
                None => {
                    first.insert(g, f);
                    write.push(f);
                }
            },
            None => write.push(f),
        }
    }
    (write, links)
}

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::UnsafePath {
        path: path.display().to_string(),
    })
}

/// Creates the FIFO or device node `e` at `path` (which must not exist),
/// with its mode and mtime.
pub(super) fn make_special(path: &Path, e: &FileEntry) -> Result<()> {
    let c = c_path(path)?;
    let perm = (e.mode & 0o7777) as libc::mode_t;
    // SAFETY: `c` is NUL-terminated and outlives the call.
    let rc = unsafe {
        match e.kind {
            EntryKind::Fifo => libc::mkfifo(c.as_ptr(), perm),
            EntryKind::CharDevice => {
                libc::mknod(c.as_ptr(), libc::S_IFCHR | perm, e.rdev as libc::dev_t)
            }
            _ => libc::mknod(c.as_ptr(), libc::S_IFBLK | perm, e.rdev as libc::dev_t),
        }
    };
    if rc != 0 {
        return Err(Error::io(path, std::io::Error::last_os_error()));
    }
    // The umask narrowed the mode; a path-based chmod never opens the node
    // (opening a FIFO would block).
    fs::set_permissions(path, fs::Permissions::from_mode(e.mode & 0o7777)).at(path)?;
    super::set_symlink_mtime(path, e.mtime_ns)
}

/// Sets the recorded owner of the restored `path` (not following a
/// symlink), then the mode again where chown cleared set-id bits.
pub(super) fn set_owner(path: &Path, e: &FileEntry) -> Result<()> {
    let Some((uid, gid)) = e.owner else {
        return Ok(());
    };
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).at(path)?;
    if e.kind != EntryKind::Symlink && e.mode & 0o6000 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(e.mode & 0o7777)).at(path)?;
    }
    Ok(())
}

/// What [`link_and_make`] did.
#[derive(Debug, Default)]
pub(super) struct Made {
    pub hardlinks: u64,
    pub fifos: u64,
    pub devices: u64,
    pub devices_skipped: u64,
    /// Paths not restored (their group's first file failed, or a device
    /// without root): no owner is set on them.
    pub not_restored: HashSet<String>,
}

/// After the files are written (and before the directories get their
/// mtimes): links each `(later, first)` pair, unless `first` is among
/// `failed` (then `later` fails too and is added to `failed`), and creates
/// the FIFOs and device nodes of `specials`.
pub(super) fn link_and_make(
    target: &Path,
    layout: &Layout,
    verified_dirs: &HashSet<&str>,
    links: &[(&FileEntry, &FileEntry)],
    specials: &[&FileEntry],
    failed: &mut Vec<RestoreFailure>,
) -> Result<Made> {
    let mut made = Made::default();
    // Where this restore puts `e`, with whatever was there removed (the
    // caller refused existing names already unless overwriting).
    let place = |e: &FileEntry| -> Result<std::path::PathBuf> {
        Ok(match layout.staged(&e.path) {
            Some(path) => path,
            None => {
                let path = super::in_place_dest(target, verified_dirs, &e.path)?;
                let _ = fs::remove_file(&path);
                path
            }
        })
    };
    for (later, first) in links {
        if failed.iter().any(|f| f.path == first.path) {
            failed.push(RestoreFailure {
                path: later.path.clone(),
                error: format!("not linked: `{}`, its first link, failed", first.path),
            });
            made.not_restored.insert(later.path.clone());
            continue;
        }
        let from = layout
            .staged(&first.path)
            .unwrap_or_else(|| target.join(name::to_path(&first.path)));
        let to = place(later)?;
        fs::hard_link(&from, &to).at(&to)?;
        made.hardlinks += 1;
    }
    let root = privileged();
    for e in specials {
        if special_action(e.kind, root) == SpecialAction::SkipNeedsRoot {
            made.devices_skipped += 1;
            made.not_restored.insert(e.path.clone());
            continue;
        }
        make_special(&place(e)?, e)?;
        match e.kind {
            EntryKind::Fifo => made.fifos += 1,
            _ => made.devices += 1,
        }
    }
    Ok(made)
}

/// As root, sets the recorded owner of every restored entry under
/// `target` (their directories were all made or checked by this restore);
/// otherwise does nothing. True when owners were set.
pub(super) fn set_owners(
    target: &Path,
    entries: &[FileEntry],
    skip: &HashSet<String>,
) -> Result<bool> {
    if !privileged() {
        return Ok(false);
    }
    for e in entries.iter().filter(|e| !skip.contains(&e.path)) {
        set_owner(&target.join(name::to_path(&e.path)), e)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_need_root_and_fifos_do_not() {
        use SpecialAction::*;
        for (kind, root, want) in [
            (EntryKind::Fifo, false, Create),
            (EntryKind::Fifo, true, Create),
            (EntryKind::CharDevice, false, SkipNeedsRoot),
            (EntryKind::BlockDevice, false, SkipNeedsRoot),
            (EntryKind::CharDevice, true, Create),
            (EntryKind::BlockDevice, true, Create),
        ] {
            assert_eq!(special_action(kind, root), want, "{kind:?} root={root}");
        }
    }

    #[test]
    fn the_first_path_of_a_group_is_written_the_rest_linked() {
        let f = |path: &str, group: Option<u64>, sha: u8| FileEntry {
            path: path.into(),
            sha256: [sha; 32],
            hardlink: group,
            ..Default::default()
        };
        let files = [
            f("a", Some(1), 1),
            f("b", None, 2),
            f("c", Some(1), 1),
            f("d", Some(2), 3),
            f("e", Some(1), 9), // not the same content: written, not linked
        ];
        let (write, links) = split_links(files.iter().collect());
        let names = |v: Vec<&FileEntry>| v.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
        assert_eq!(names(write), ["a", "b", "d", "e"]);
        let pairs: Vec<_> = links
            .iter()
            .map(|(l, f)| (l.path.as_str(), f.path.as_str()))
            .collect();
        assert_eq!(pairs, [("c", "a")]);
    }
}
