//! Where each source of a snapshot is stored: under its path as given.
//!
//! As borg does, a source keeps the path the user typed: `models/a.h5`
//! is stored as `models/a.h5`, `/srv/app/config.yaml` as
//! `srv/app/config.yaml` (the leading `/` dropped, so a restore lands
//! under its target, never at `/`). `.` and `./` components are dropped,
//! and so are leading `..` components (`../shared/x` is stored as
//! `shared/x`); a `..` after a name is refused, since the stored path
//! would not say where the data came from. A source that is `.`, `..` or
//! `/` itself puts its contents at the top of the snapshot.
//!
//! The directories above a source (`models` for `models/a.h5`) are stored
//! as directory entries with their mode and owner but none of their other
//! contents, and no mtime (0: it changes whenever a sibling of the source
//! does, which is no change to the snapshot; a restore leaves it as it
//! makes it). Several sources merge into one tree: `models/a.h5
//! config/config.yaml data/config.yaml` holds `config/`, `data/` and
//! `models/` at the top. A source inside another one adds nothing and is
//! dropped; two sources that would be stored under the same path from
//! different places on disk are refused.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// One node of the stored layout: a source, or a directory above one.
#[derive(Debug, Default)]
pub struct Node {
    /// Where it is on disk (absolute, as [`std::path::absolute`] gives it).
    pub abs: PathBuf,
    /// The source given for this node, if it is one (else it is only a
    /// directory above sources).
    pub source: Option<PathBuf>,
    /// The nodes below, by name bytes (a tree's order).
    pub children: BTreeMap<Vec<u8>, (OsString, Node)>,
}

/// The stored layout of a snapshot's sources: the root is the top of the
/// snapshot (a source itself when one is `.`, `..` or `/`).
#[derive(Debug)]
pub struct Plan {
    pub root: Node,
    /// Each source, absolute, in the order given (what the manifest's
    /// `sources` records).
    pub sources: Vec<PathBuf>,
}

/// The components `given` is stored under: its path as given, without a
/// leading `/`, `.` components and leading `..` components.
pub fn stored_components(given: &Path) -> Result<Vec<&OsStr>> {
    let mut out = Vec::new();
    for component in given.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::ParentDir if out.is_empty() => {}
            Component::ParentDir => {
                return Err(Error::RefusedSource {
                    path: crate::ingest::walk::escaped(given),
                    reason: "`..` after a name cannot be stored as given; \
                             give the path without it"
                        .into(),
                });
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

/// Plans where each of `sources` goes. A source that does not exist is an
/// error naming it.
pub fn plan(sources: &[PathBuf]) -> Result<Plan> {
    let mut root = Node::default();
    let mut absolute = Vec::with_capacity(sources.len());
    // The disk path of the top of the snapshot for each source: they must
    // agree when a source is the top itself (`.` and `/srv/x` do not).
    let mut tops = Vec::with_capacity(sources.len());
    for given in sources {
        let abs = std::path::absolute(given).at(given)?;
        std::fs::symlink_metadata(&abs).at(given)?;
        let names = stored_components(given)?;
        // The disk path of each node on the way, deepest first.
        let mut below: Vec<PathBuf> = abs.ancestors().map(Path::to_path_buf).collect();
        below.truncate(names.len() + 1);
        let top = below.pop().expect("abs has itself as an ancestor");
        if names.is_empty() && root.source.is_none() {
            root.abs = top.clone();
        }
        tops.push((top, given));
        place(&mut root, given, &names, &mut below)?;
        absolute.push(abs);
    }
    if root.source.is_some() {
        if let Some((_, given)) = tops.iter().find(|(top, _)| *top != root.abs) {
            return Err(Error::RefusedSource {
                path: crate::ingest::walk::escaped(given),
                reason: format!(
                    "{} is stored at the top of the snapshot, and this path is not below it; \
                     snapshot them separately",
                    crate::ingest::walk::escaped(&root.abs)
                ),
            });
        }
    }
    Ok(Plan {
        root,
        sources: absolute,
    })
}

/// Puts source `given` at `names` below `node`; `below` holds the disk
/// paths of the nodes on the way, deepest first.
fn place(node: &mut Node, given: &Path, names: &[&OsStr], below: &mut Vec<PathBuf>) -> Result<()> {
    if node.source.is_some() {
        return Ok(()); // inside a source already given: nothing to add
    }
    let Some((name, rest)) = names.split_first() else {
        node.source = Some(given.to_path_buf());
        node.children.clear(); // sources given inside this one
        return Ok(());
    };
    let abs = below.pop().expect("one disk path per name");
    let (_, child) = node
        .children
        .entry(name.as_bytes().to_vec())
        .or_insert_with(|| {
            let child = Node {
                abs: abs.clone(),
                ..Node::default()
            };
            (name.to_os_string(), child)
        });
    if child.abs != abs {
        return Err(Error::RefusedSource {
            path: crate::ingest::walk::escaped(given),
            reason: format!(
                "it would be stored under `{}`, as {} is; \
                 snapshot them separately or give their common parent",
                stored_path(given)?,
                crate::ingest::walk::escaped(&child.abs),
            ),
        });
    }
    place(child, given, rest, below)
}

/// `given` as stored, `/`-separated, for messages.
fn stored_path(given: &Path) -> Result<String> {
    let names = stored_components(given)?;
    let joined: PathBuf = names.iter().collect();
    Ok(crate::ingest::walk::escaped(&joined))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(p: &str) -> Vec<String> {
        stored_components(Path::new(p))
            .unwrap()
            .iter()
            .map(|n| n.to_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn paths_are_kept_as_given_without_root_dots_or_leading_dotdots() {
        assert_eq!(stored("models/a.h5"), ["models", "a.h5"]);
        assert_eq!(
            stored("/srv/app/config.yaml"),
            ["srv", "app", "config.yaml"]
        );
        assert_eq!(stored("./a/./b/"), ["a", "b"]);
        assert_eq!(stored("../../shared/x"), ["shared", "x"]);
        assert!(stored(".").is_empty());
        assert!(stored("/").is_empty());
        assert!(stored("..").is_empty());
        let err = stored_components(Path::new("a/../b")).unwrap_err();
        assert!(matches!(err, Error::RefusedSource { .. }), "{err}");
        assert!(err.to_string().contains("a/../b"), "{err}");
    }

    #[test]
    fn sources_merge_into_one_layout() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in ["models/a.h5", "config/config.yaml", "data/config.yaml"] {
            std::fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            std::fs::write(d.join(f), f).unwrap();
        }
        let sources: Vec<PathBuf> = ["models/a.h5", "config/config.yaml", "data/config.yaml"]
            .iter()
            .map(|f| d.join(f))
            .collect();
        let plan = plan(&sources).unwrap();
        // The absolute paths are stored whole: descend to the temp dir.
        let mut node = &plan.root;
        for name in stored_components(d).unwrap() {
            node = &node.children[name.as_bytes()].1;
            assert!(node.source.is_none());
        }
        assert_eq!(node.abs, d);
        let top: Vec<&[u8]> = node.children.keys().map(Vec::as_slice).collect();
        assert_eq!(top, [&b"config"[..], b"data", b"models"]);
        let cfg = &node.children[&b"data"[..]].1.children[&b"config.yaml"[..]].1;
        assert_eq!(
            cfg.source.as_deref(),
            Some(d.join("data/config.yaml").as_path())
        );
        assert_eq!(plan.sources, sources);
    }

    #[test]
    fn a_source_inside_another_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        let (outer, inner) = (dir.path().join("a"), dir.path().join("a/b"));
        for order in [[&inner, &outer], [&outer, &inner]] {
            let plan = plan(&[order[0].clone(), order[1].clone()]).unwrap();
            let mut node = &plan.root;
            while node.source.is_none() {
                assert_eq!(node.children.len(), 1);
                node = &node.children.values().next().unwrap().1;
            }
            assert_eq!(node.abs, outer);
            assert!(node.children.is_empty());
        }
    }

    #[test]
    fn a_missing_source_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = plan(&[dir.path().join("nope")]).unwrap_err();
        assert!(missing.to_string().contains("nope"), "{missing}");
    }

    #[test]
    fn the_top_as_a_source_refuses_sources_from_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        // `/` is the top: every absolute path is below it.
        plan(&[PathBuf::from("/"), dir.path().join("a")]).unwrap();
        // A relative `.` (the crate directory) and an absolute path are not.
        let err = plan(&[PathBuf::from("."), dir.path().join("a")]).unwrap_err();
        assert!(matches!(err, Error::RefusedSource { .. }), "{err}");
    }
}
