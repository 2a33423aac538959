//! Comparing two snapshots: which paths were added, removed or changed.

use serde::Serialize;

use crate::format::manifest::FileEntry;

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub path: String,
    /// Size in the older snapshot (0 for added paths).
    pub old_size: u64,
    /// Size in the newer snapshot (0 for removed paths).
    pub new_size: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub added: Vec<Change>,
    pub removed: Vec<Change>,
    pub changed: Vec<Change>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Compares two path-sorted entry lists. Content is compared by SHA-256, so
/// a file that was rewritten with the same bytes is unchanged; a change of
/// type, mode, owner, device number or symlink target counts as changed.
pub fn diff(old: &[FileEntry], new: &[FileEntry]) -> Diff {
    let mut out = Diff::default();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        let order = match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) => a.path.cmp(&b.path),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                out.removed.push(change(Some(&old[i]), None));
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.added.push(change(None, Some(&new[j])));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (a, b) = (&old[i], &new[j]);
                // An owner counts when both snapshots recorded one: one
                // taken before the repository recorded owners is not a change.
                let owner = a.owner.is_some() && b.owner.is_some() && a.owner != b.owner;
                if owner
                    || (a.kind, a.mode, &a.sha256, &a.link_target, a.rdev)
                        != (b.kind, b.mode, &b.sha256, &b.link_target, b.rdev)
                {
                    out.changed.push(change(Some(a), Some(b)));
                }
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn change(old: Option<&FileEntry>, new: Option<&FileEntry>) -> Change {
    Change {
        path: old.or(new).map(|e| e.path.clone()).unwrap_or_default(),
        old_size: old.map_or(0, |e| e.size),
        new_size: new.map_or(0, |e| e.size),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::EntryKind;

    fn entry(path: &str, sha: u8) -> FileEntry {
        FileEntry {
            path: path.into(),
            kind: EntryKind::File,
            mode: 0o644,
            mtime_ns: 0,
            size: sha as u64,
            sha256: [sha; 32],
            link_target: String::new(),
            chunks: vec![],
            ..Default::default()
        }
    }

    #[test]
    fn an_owner_change_is_a_change_unless_one_side_has_none() {
        let a = FileEntry {
            owner: Some((1, 1)),
            ..entry("a", 1)
        };
        let b = FileEntry {
            owner: Some((2, 1)),
            ..entry("a", 1)
        };
        assert_eq!(diff(std::slice::from_ref(&a), &[b]).changed.len(), 1);
        assert!(diff(&[entry("a", 1)], &[a]).is_empty());
    }

    #[test]
    fn finds_added_removed_changed() {
        let old = [entry("a", 1), entry("b", 2), entry("c", 3)];
        let new = [entry("b", 2), entry("c", 4), entry("d", 5)];
        let d = diff(&old, &new);
        let paths = |v: &[Change]| v.iter().map(|c| c.path.clone()).collect::<Vec<_>>();
        assert_eq!(paths(&d.removed), ["a"]);
        assert_eq!(paths(&d.changed), ["c"]);
        assert_eq!(paths(&d.added), ["d"]);
        assert_eq!((d.changed[0].old_size, d.changed[0].new_size), (3, 4));
        assert!(diff(&old, &old).is_empty());
    }
}
