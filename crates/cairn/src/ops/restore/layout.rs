//! The entry a user means by a path (`restore --path`, `ls`, `cat`,
//! `dump`): the path as stored, or as the source was given to `snapshot`.
//!
//! Sources are stored under their path as given (`ingest::sources`), so
//! `/data/llama/config.json` and `./models/a.h5` name `data/llama/…` and
//! `models/a.h5`: a leading `/`, `.` components and leading `..`
//! components are dropped, as when the source was stored. Snapshots made
//! before that kept each source under its base name (`/data/llama` as
//! `llama/…`); for those, a path at or under one of the snapshot's
//! recorded sources is found under the source's base name too.

use std::path::Path;

use crate::format::manifest::FileEntry;
use crate::ingest::sources;

/// `given` as stored: `/`-separated, without a leading `/`, `.`
/// components or leading `..` components, by the rule sources are stored
/// by ([`sources::stored_components`]); a path with a `..` after a name
/// is only trimmed of `/` (it names nothing).
pub fn normalize(given: &str) -> String {
    match sources::stored_components(Path::new(given)) {
        Ok(names) => {
            let names: Vec<&str> = names.iter().filter_map(|n| n.to_str()).collect();
            names.join("/")
        }
        Err(_) => given.trim_matches('/').to_string(),
    }
}

/// Whether entry path `entry` is `path` or lies below it.
pub fn at_or_under(entry: &str, path: &str) -> bool {
    path.is_empty()
        || entry == path
        || entry
            .strip_prefix(path)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The stored path `given` names in a snapshot of `sources` (as the
/// manifest records them) whose entries are `entries`:
/// `given` normalized if anything is at or under it, else its place in
/// the old layout if that holds something, else `given` normalized
/// (which the caller reports as not in the snapshot).
pub fn resolve(sources: &[String], entries: &[FileEntry], given: &str) -> String {
    let stored = normalize(given);
    let holds = |path: &str| entries.iter().any(|e| at_or_under(&e.path, path));
    if stored.is_empty() || holds(&stored) {
        return stored;
    }
    let Ok(abs) = std::path::absolute(Path::new(given)) else {
        return stored;
    };
    let abs = normalize(&abs.to_string_lossy());
    for source in sources {
        let source = normalize(source);
        let Some(base) = source.rsplit('/').next().filter(|b| !b.is_empty()) else {
            continue;
        };
        let rest = if abs == source {
            Some("")
        } else {
            abs.strip_prefix(&source).and_then(|r| r.strip_prefix('/'))
        };
        if let Some(rest) = rest {
            let old = if rest.is_empty() {
                base.to_string()
            } else {
                format!("{base}/{rest}")
            };
            if holds(&old) {
                return old;
            }
        }
    }
    stored
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::EntryKind;

    fn entry(path: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            kind: EntryKind::File,
            ..Default::default()
        }
    }

    #[test]
    fn given_paths_are_normalized_as_sources_are_stored() {
        assert_eq!(normalize("/data/llama/"), "data/llama");
        assert_eq!(normalize("./models/./a.h5"), "models/a.h5");
        assert_eq!(normalize("../../x"), "x");
        assert_eq!(normalize("a/../b"), "a/../b");
        assert_eq!(normalize("/"), "");
        assert!(at_or_under("a/b", "a") && at_or_under("a", "a"));
        assert!(!at_or_under("ab/c", "a") && !at_or_under("b", "a"));
    }

    #[test]
    fn old_layout_snapshots_are_found_by_the_source_path() {
        let snap = ["/data/llama".to_string()];
        let entries = [entry("llama"), entry("llama/config.json")];
        assert_eq!(
            resolve(&snap, &entries, "/data/llama/config.json"),
            "llama/config.json"
        );
        assert_eq!(resolve(&snap, &entries, "/data/llama"), "llama");
        assert_eq!(
            resolve(&snap, &entries, "llama/config.json"),
            "llama/config.json"
        );
        // Nothing there in either layout: the stored form, for the error.
        assert_eq!(resolve(&snap, &entries, "/data/other"), "data/other");
        // A new-layout snapshot answers the stored form first.
        let entries = [entry("data"), entry("data/llama"), entry("data/llama/c")];
        assert_eq!(resolve(&snap, &entries, "/data/llama/c"), "data/llama/c");
    }
}
