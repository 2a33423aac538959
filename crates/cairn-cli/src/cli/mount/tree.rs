//! The directory tree `cairn mount` shows, without FUSE: every node has a
//! stable inode number for as long as the mount lives, handed out the first
//! time its name is listed or looked up.
//!
//! ```text
//! KIND/NAME/2026-12-01T13:05:00Z/…   one folder per snapshot, named by its UTC time
//! KIND/NAME/latest                   -> the newest of them
//! KIND/NAME/by-version/VERSION       -> ../TIME (the newest with that label)
//! KIND/NAME/by-id/SHORTID            -> ../TIME
//! ```
//!
//! Inside a snapshot folder: the snapshot's entries, with their modes,
//! sizes, times and symlink targets. A parent directory a snapshot does not
//! record (a source stored under a path with several components) is shown
//! as a plain folder.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use cairn::{EntryKind, FileEntry, SnapshotId, SnapshotInfo};

pub type Ino = u64;
pub const ROOT: Ino = 1;

/// What a node is, enough to list it and to answer `stat`.
#[derive(Debug, Clone)]
pub struct Node {
    pub parent: Ino,
    pub kind: EntryKind,
    /// Permission bits.
    pub mode: u32,
    pub size: u64,
    pub mtime_ns: i64,
    pub content: Content,
}

#[derive(Debug, Clone)]
pub enum Content {
    Root,
    Kind(String),
    History(String, String),
    ByVersion(String, String),
    ById(String, String),
    /// A symlink the mount makes (`latest`, `by-version/…`, `by-id/…`).
    Link(String),
    /// An entry of a snapshot (`path` empty: the snapshot's folder).
    Entry {
        snap: SnapshotId,
        path: String,
    },
}

/// What the tree needs of a snapshot.
#[derive(Debug, Clone)]
pub struct Shown {
    pub id: SnapshotId,
    pub kind: String,
    pub name: String,
    pub version: Option<String>,
    pub time: DateTime<Utc>,
}

impl From<&SnapshotInfo> for Shown {
    fn from(s: &SnapshotInfo) -> Self {
        Self {
            id: s.id,
            kind: s.label.kind.clone(),
            name: s.label.name.clone(),
            version: s.label.version.clone(),
            time: s.time,
        }
    }
}

/// One snapshot's entries, indexed for listing.
#[derive(Debug)]
pub struct SnapTree {
    pub info: Shown,
    entries: HashMap<String, FileEntry>,
    /// Directory path (`""` for the top) -> names in it, sorted.
    dirs: HashMap<String, Vec<String>>,
}

impl SnapTree {
    pub fn new(info: Shown, entries: Vec<FileEntry>) -> Self {
        let mut dirs: HashMap<String, Vec<String>> = HashMap::new();
        dirs.insert(String::new(), Vec::new());
        for e in &entries {
            let mut path = e.path.as_str();
            if e.kind == EntryKind::Dir {
                dirs.entry(path.to_string()).or_default();
            }
            // Link the entry and every ancestor into its parent, once.
            loop {
                let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
                let names = dirs.entry(parent.to_string()).or_default();
                if names.iter().any(|n| n == name) {
                    break;
                }
                names.push(name.to_string());
                if parent.is_empty() {
                    break;
                }
                path = parent;
            }
        }
        for names in dirs.values_mut() {
            names.sort();
        }
        let entries = entries.into_iter().map(|e| (e.path.clone(), e)).collect();
        Self {
            info,
            entries,
            dirs,
        }
    }

    /// The recorded entry at `path`, if the snapshot has one.
    pub fn entry(&self, path: &str) -> Option<&FileEntry> {
        self.entries.get(path)
    }

    /// The names in directory `path`; `None` when it is not a directory.
    pub fn names(&self, path: &str) -> Option<&[String]> {
        self.dirs.get(path).map(Vec::as_slice)
    }

    /// The node of `path` under `parent`.
    fn node(&self, parent: Ino, path: &str) -> Node {
        let content = Content::Entry {
            snap: self.info.id,
            path: path.to_string(),
        };
        match self.entries.get(path) {
            Some(e) => Node {
                parent,
                kind: e.kind,
                mode: e.mode,
                size: match e.kind {
                    EntryKind::File => e.size,
                    EntryKind::Symlink => e.link_target.len() as u64,
                    _ => 0,
                },
                mtime_ns: e.mtime_ns,
                content,
            },
            None => dir(parent, 0o755, time_ns(&self.info), content),
        }
    }
}

fn dir(parent: Ino, mode: u32, mtime_ns: i64, content: Content) -> Node {
    Node {
        parent,
        kind: EntryKind::Dir,
        mode,
        size: 0,
        mtime_ns,
        content,
    }
}

fn link(parent: Ino, target: String, mtime_ns: i64) -> Node {
    Node {
        parent,
        kind: EntryKind::Symlink,
        mode: 0o777,
        size: target.len() as u64,
        mtime_ns,
        content: Content::Link(target),
    }
}

fn time_ns(s: &Shown) -> i64 {
    s.time.timestamp_nanos_opt().unwrap_or(0)
}

/// The folder name of each snapshot of one history (oldest first): its UTC
/// time to the second, with `-SHORTID` added when an earlier one of the
/// history has that name already.
pub fn folder_names(history: &[&Shown]) -> Vec<String> {
    let mut taken = std::collections::HashSet::new();
    history
        .iter()
        .map(|s| {
            let name = s.time.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            if taken.insert(name.clone()) {
                name
            } else {
                format!("{name}-{}", s.id.short())
            }
        })
        .collect()
}

/// Every node handed out so far, and the snapshot list they were made from.
pub struct Tree {
    nodes: Vec<Node>,
    names: HashMap<(Ino, String), Ino>,
    /// The snapshots shown, oldest first.
    snapshots: Vec<Shown>,
    trees: HashMap<SnapshotId, Arc<SnapTree>>,
}

impl Tree {
    pub fn new(snapshots: Vec<Shown>) -> Self {
        let root = dir(0, 0o555, 0, Content::Root);
        let mut tree = Self {
            nodes: vec![root],
            names: HashMap::new(),
            snapshots: Vec::new(),
            trees: HashMap::new(),
        };
        tree.set_snapshots(snapshots);
        tree
    }

    /// Replaces the snapshot list (a snapshot taken since shows up; one
    /// removed disappears). Nodes keep their numbers.
    pub fn set_snapshots(&mut self, snapshots: Vec<Shown>) {
        self.nodes[0].mtime_ns = snapshots.iter().map(time_ns).max().unwrap_or(0);
        self.snapshots = snapshots;
    }

    pub fn node(&self, ino: Ino) -> Option<&Node> {
        self.nodes.get(usize::try_from(ino).ok()?.checked_sub(1)?)
    }

    /// The loaded entries of snapshot `id`, if loaded.
    pub fn snap_tree(&self, id: &SnapshotId) -> Option<Arc<SnapTree>> {
        self.trees.get(id).cloned()
    }

    pub fn add_snap_tree(&mut self, tree: SnapTree) {
        self.trees.insert(tree.info.id, Arc::new(tree));
    }

    /// The snapshot whose entries `ino`'s children are, when they are not
    /// loaded yet (the caller loads them with [`Tree::add_snap_tree`]).
    pub fn needs_snap_tree(&self, ino: Ino) -> Option<SnapshotId> {
        match &self.node(ino)?.content {
            Content::Entry { snap, .. } if !self.trees.contains_key(snap) => Some(*snap),
            _ => None,
        }
    }

    /// The children of directory `ino`, by name, each with its inode; `None`
    /// when `ino` is not a directory (or its snapshot's entries are not
    /// loaded: see [`Tree::needs_snap_tree`]).
    pub fn children(&mut self, ino: Ino) -> Option<Vec<(String, Ino)>> {
        let node = self.node(ino)?.clone();
        let made: Vec<(String, Node)> = match &node.content {
            Content::Root => self.kinds(ino),
            Content::Kind(k) => self.names_of(ino, k),
            Content::History(k, n) => self.history(ino, k, n),
            Content::ByVersion(k, n) => self.versions(ino, k, n),
            Content::ById(k, n) => self.ids(ino, k, n),
            Content::Link(_) => return None,
            Content::Entry { snap, path } => {
                let tree = self.trees.get(snap)?.clone();
                let names = tree.names(path)?;
                names
                    .iter()
                    .map(|name| {
                        let child = if path.is_empty() {
                            name.clone()
                        } else {
                            format!("{path}/{name}")
                        };
                        (name.clone(), tree.node(ino, &child))
                    })
                    .collect()
            }
        };
        Some(
            made.into_iter()
                .map(|(name, node)| {
                    let ino = self.intern(ino, &name, node);
                    (name, ino)
                })
                .collect(),
        )
    }

    /// The inode of `name` under `parent`, made or updated to `node`.
    fn intern(&mut self, parent: Ino, name: &str, node: Node) -> Ino {
        match self.names.get(&(parent, name.to_string())) {
            Some(&ino) => {
                self.nodes[(ino - 1) as usize] = node;
                ino
            }
            None => {
                self.nodes.push(node);
                let ino = self.nodes.len() as Ino;
                self.names.insert((parent, name.to_string()), ino);
                ino
            }
        }
    }

    fn kinds(&self, ino: Ino) -> Vec<(String, Node)> {
        let mut kinds: BTreeMap<&str, i64> = BTreeMap::new();
        for s in &self.snapshots {
            let t = kinds.entry(&s.kind).or_default();
            *t = (*t).max(time_ns(s));
        }
        kinds
            .into_iter()
            .map(|(k, t)| (k.to_string(), dir(ino, 0o555, t, Content::Kind(k.into()))))
            .collect()
    }

    fn names_of(&self, ino: Ino, kind: &str) -> Vec<(String, Node)> {
        let mut names: BTreeMap<&str, i64> = BTreeMap::new();
        for s in self.snapshots.iter().filter(|s| s.kind == kind) {
            let t = names.entry(&s.name).or_default();
            *t = (*t).max(time_ns(s));
        }
        names
            .into_iter()
            .map(|(n, t)| {
                let content = Content::History(kind.into(), n.into());
                (n.to_string(), dir(ino, 0o555, t, content))
            })
            .collect()
    }

    fn history_of(&self, kind: &str, name: &str) -> Vec<&Shown> {
        self.snapshots
            .iter()
            .filter(|s| s.kind == kind && s.name == name)
            .collect()
    }

    fn history(&self, ino: Ino, kind: &str, name: &str) -> Vec<(String, Node)> {
        let snaps = self.history_of(kind, name);
        let folders = folder_names(&snaps);
        let mut out: Vec<(String, Node)> = snaps
            .iter()
            .zip(&folders)
            .map(|(s, f)| {
                let content = Content::Entry {
                    snap: s.id,
                    path: String::new(),
                };
                (f.clone(), dir(ino, 0o555, time_ns(s), content))
            })
            .collect();
        if let (Some(s), Some(f)) = (snaps.last(), folders.last()) {
            let newest = time_ns(s);
            out.push(("latest".into(), link(ino, f.clone(), newest)));
            let by = |c| dir(ino, 0o555, newest, c);
            let (k, n) = (kind.to_string(), name.to_string());
            out.push(("by-id".into(), by(Content::ById(k.clone(), n.clone()))));
            out.push(("by-version".into(), by(Content::ByVersion(k, n))));
        }
        out
    }

    fn versions(&self, ino: Ino, kind: &str, name: &str) -> Vec<(String, Node)> {
        let snaps = self.history_of(kind, name);
        let mut newest: BTreeMap<&str, (&str, i64)> = BTreeMap::new();
        let folders = folder_names(&snaps);
        for (s, f) in snaps.iter().zip(&folders) {
            if let Some(v) = s.version.as_deref() {
                // Oldest first, so the last one written wins.
                newest.insert(v, (f.as_str(), time_ns(s)));
            }
        }
        newest
            .into_iter()
            .filter(|(v, _)| !v.contains('/') && *v != "." && *v != "..")
            .map(|(v, (f, t))| (v.to_string(), link(ino, format!("../{f}"), t)))
            .collect()
    }

    fn ids(&self, ino: Ino, kind: &str, name: &str) -> Vec<(String, Node)> {
        let snaps = self.history_of(kind, name);
        let folders = folder_names(&snaps);
        snaps
            .iter()
            .zip(&folders)
            .map(|(s, f)| (s.id.short(), link(ino, format!("../{f}"), time_ns(s))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind) -> FileEntry {
        FileEntry {
            path: path.into(),
            kind,
            mode: 0o644,
            mtime_ns: 0,
            size: 3,
            sha256: [0; 32],
            link_target: if kind == EntryKind::Symlink {
                "t".into()
            } else {
                String::new()
            },
            chunks: Vec::new(),
            ..Default::default()
        }
    }

    fn info(n: u8, name: &str, secs: i64, version: Option<&str>) -> Shown {
        Shown {
            id: SnapshotId([n; 32]),
            kind: "model".into(),
            name: name.into(),
            version: version.map(String::from),
            time: DateTime::from_timestamp(secs, 0).unwrap(),
        }
    }

    #[test]
    fn entries_without_recorded_parents_still_form_folders() {
        let t = SnapTree::new(
            info(1, "m", 0, None),
            vec![
                entry("a", EntryKind::Dir),
                entry("a/x.bin", EntryKind::File),
                entry("models/deep/b.h5", EntryKind::File),
                entry("l", EntryKind::Symlink),
            ],
        );
        assert_eq!(t.names("").unwrap(), ["a", "l", "models"]);
        assert_eq!(t.names("a").unwrap(), ["x.bin"]);
        assert_eq!(t.names("models").unwrap(), ["deep"]);
        assert_eq!(t.names("models/deep").unwrap(), ["b.h5"]);
        assert!(t.names("a/x.bin").is_none());
    }

    #[test]
    fn histories_list_time_folders_links_and_keep_their_inodes() {
        let mut tree = Tree::new(vec![
            info(1, "m", 100, Some("v1")),
            info(2, "m", 100, Some("v2")),
        ]);
        let kinds = tree.children(ROOT).unwrap();
        assert_eq!(kinds.len(), 1);
        let names = tree.children(kinds[0].1).unwrap();
        let hist = names[0].1;
        let listed: Vec<String> = tree
            .children(hist)
            .unwrap()
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(
            listed,
            [
                "1970-01-01T00:01:40Z",
                "1970-01-01T00:01:40Z-02020202",
                "latest",
                "by-id",
                "by-version"
            ]
        );
        let first = tree.children(hist).unwrap()[0].1;
        tree.set_snapshots(vec![
            info(1, "m", 100, Some("v1")),
            info(2, "m", 100, Some("v2")),
            info(3, "m", 200, Some("v1")),
        ]);
        let again = tree.children(hist).unwrap();
        assert_eq!(again[0].1, first, "a folder keeps its inode");
        let latest = again.iter().find(|c| c.0 == "latest").unwrap().1;
        assert!(
            matches!(&tree.node(latest).unwrap().content, Content::Link(t) if t == "1970-01-01T00:03:20Z")
        );
        let by_version = again.iter().find(|c| c.0 == "by-version").unwrap().1;
        let v = tree.children(by_version).unwrap();
        let v1 = tree.node(v[0].1).unwrap();
        assert!(matches!(&v1.content, Content::Link(t) if t == "../1970-01-01T00:03:20Z"));
    }
}
