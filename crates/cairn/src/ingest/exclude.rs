//! Exclude patterns: which walked entries a snapshot leaves out on purpose.
//!
//! Patterns follow gitignore rules (through the `ignore` crate, ripgrep's
//! implementation): `*.tmp` matches a name at any depth, `cache/` only a
//! directory, `!keep.tmp` takes an earlier match back, `**` spans
//! directories, and a pattern with a slash other than a trailing one is
//! anchored. Anchored patterns are tried against two forms of each entry's
//! path, and either match excludes it: the path as stored in the snapshot
//! (`data/cache` for a source given as `data`; `srv/data/cache` for one
//! given as `/srv/data`) and the absolute path on disk (`/srv/data/cache`).
//! An excluded directory is not entered, so its contents are excluded with
//! it (as in git, a `!` pattern cannot bring back a file inside an excluded
//! directory).
//!
//! Excluded entries are not "left out": the snapshot is still complete,
//! and the report only counts them.

use std::path::Path;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

use crate::error::{Error, Result};

/// A compiled set of exclude patterns; the default excludes nothing.
#[derive(Debug, Clone)]
pub struct Excludes {
    matcher: Option<Gitignore>,
}

impl Default for Excludes {
    fn default() -> Self {
        Excludes::none()
    }
}

impl Excludes {
    /// Excludes nothing.
    pub fn none() -> Excludes {
        Excludes { matcher: None }
    }

    /// Compiles `patterns`, one gitignore line each (blank lines and lines
    /// starting with `#` are ignored, as in a `.gitignore`). A pattern that
    /// does not compile is an error naming it.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Excludes> {
        let mut builder = GitignoreBuilder::new("/");
        let mut any = false;
        for pattern in patterns {
            let line = pattern.as_ref();
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            builder.add_line(None, line).map_err(|e| {
                Error::InvalidArgument(format!("exclude pattern {line:?} is not valid: {e}"))
            })?;
            any = true;
        }
        if !any {
            return Ok(Excludes::none());
        }
        let matcher = builder
            .build()
            .map_err(|e| Error::InvalidArgument(format!("exclude patterns: {e}")))?;
        Ok(Excludes {
            matcher: Some(matcher),
        })
    }

    /// True when the patterns exclude nothing.
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// Whether the entry stored as `rel` (`/`-separated, under its source's
    /// path as given) and found at `abs` on disk is excluded.
    pub fn excludes(&self, rel: &str, abs: &Path, is_dir: bool) -> bool {
        let Some(m) = &self.matcher else {
            return false;
        };
        let ignored = |path: &Path| matches!(m.matched(path, is_dir), Match::Ignore(_));
        ignored(&Path::new("/").join(rel)) || ignored(abs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Table of (patterns, stored path, absolute path, is_dir, excluded).
    #[test]
    fn gitignore_rules_on_stored_and_absolute_paths() {
        let cases: &[(&[&str], &str, &str, bool, bool)] = &[
            (&["*.tmp"], "data/a.tmp", "/srv/data/a.tmp", false, true),
            (
                &["*.tmp"],
                "data/deep/b.tmp",
                "/srv/data/deep/b.tmp",
                false,
                true,
            ),
            (&["*.tmp"], "data/a.tmpx", "/srv/data/a.tmpx", false, false),
            (&["cache/"], "data/cache", "/srv/data/cache", true, true),
            (&["cache/"], "data/cache", "/srv/data/cache", false, false),
            (&["data/cache"], "data/cache", "/srv/data/cache", true, true),
            (
                &["data/cache"],
                "x/data/cache",
                "/srv/x/data/cache",
                true,
                false,
            ),
            (
                &["/srv/data/cache"],
                "data/cache",
                "/srv/data/cache",
                true,
                true,
            ),
            (
                &["*.tmp", "!keep.tmp"],
                "data/keep.tmp",
                "/s/data/keep.tmp",
                false,
                false,
            ),
            (
                &["**/logs/*.log"],
                "a/b/logs/x.log",
                "/a/b/logs/x.log",
                false,
                true,
            ),
            (&["# comment", ""], "data/a", "/srv/data/a", false, false),
        ];
        for (patterns, rel, abs, is_dir, want) in cases {
            let ex = Excludes::new(patterns).unwrap();
            assert_eq!(
                ex.excludes(rel, Path::new(abs), *is_dir),
                *want,
                "{patterns:?} on {rel} ({abs}, dir: {is_dir})"
            );
        }
        assert!(Excludes::new(&["# only a comment"]).unwrap().is_empty());
    }

    #[test]
    fn a_bad_pattern_is_named() {
        let err = Excludes::new(&["a{b"]).unwrap_err().to_string();
        assert!(err.contains("\"a{b\""), "{err}");
    }
}
