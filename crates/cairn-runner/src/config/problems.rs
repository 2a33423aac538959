//! Collecting every problem of a config file in one pass: structural
//! problems (TOML syntax, unknown keys, wrong types) by blanking out the
//! lines they point at and parsing again, value problems with the line
//! of the key that set them.

use std::ops::Range;
use std::path::Path;

use super::RawConfig;
use crate::error::ConfigProblem;

/// Collects problems with their lines while a file is validated.
pub(super) struct Problems<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
    pub(super) found: Vec<ConfigProblem>,
}

impl Problems<'_> {
    /// Drops the problems after the first `structural` ones that only echo
    /// one of those (a key or a table of a line that was blanked out: a
    /// `paths` of the wrong type is not also "missing").
    pub(super) fn drop_echoes(&mut self, structural: usize) {
        let keys: Vec<String> = self.found[..structural]
            .iter()
            .map(|p| p.key.clone())
            .collect();
        let mut i = structural;
        while i < self.found.len() {
            let k = &self.found[i].key;
            if keys
                .iter()
                .any(|s| s == k || s.starts_with(&format!("{k}.")))
            {
                self.found.remove(i);
            } else {
                i += 1;
            }
        }
    }

    pub(super) fn line(&self, span: &Range<usize>) -> usize {
        self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    /// The span of the first line that sets `key` (`key = …`), for a
    /// problem found after parsing.
    pub(super) fn key_line(&self, key: &str, from: usize) -> Option<Range<usize>> {
        let mut at = 0;
        for line in self.text.split_inclusive('\n') {
            let sets = line.match_indices(key).any(|(i, _)| {
                line[i + key.len()..].trim_start().starts_with('=')
                    && !line[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
            });
            if at >= from && sets {
                return Some(at..at + line.len());
            }
            at += line.len();
        }
        None
    }

    pub(super) fn add(
        &mut self,
        span: Option<Range<usize>>,
        key: &str,
        message: impl Into<String>,
    ) {
        let line = span.map(|s| self.line(&s));
        self.found.push(ConfigProblem {
            file: self.file.to_path_buf(),
            line,
            key: key.to_owned(),
            message: message.into(),
        });
    }
}

/// At most this many structural problems are reported from one file.
const MAX_STRUCTURAL: usize = 20;

/// Deserializes the file. A structural problem (TOML syntax, an unknown
/// key, a value of the wrong type) is recorded, the lines it points at are
/// blanked out (spaces, so every later span still points into the real
/// file) and parsing starts again, so that one run reports every such
/// problem; `None` when the file never parses (a problem without a place,
/// or the same line again).
pub(super) fn structure(problems: &mut Problems) -> Option<RawConfig> {
    let text = problems.text;
    let mut work = text.as_bytes().to_vec();
    let mut blanked = Vec::new();
    for _ in 0..MAX_STRUCTURAL {
        let err = match toml::from_str::<RawConfig>(std::str::from_utf8(&work).ok()?) {
            Ok(raw) => return Some(raw),
            Err(e) => e,
        };
        let key = err
            .span()
            .map(|s| key_at(text, &s))
            .unwrap_or_else(|| "(file)".into());
        problems.add(err.span(), &key, err.message().trim().to_owned());
        let span = err.span()?;
        let bytes = text.as_bytes();
        let start = span.start.min(bytes.len());
        let first = bytes[..start]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        if blanked.contains(&first) {
            return None;
        }
        blanked.push(first);
        let end = span.end.max(start + 1).min(bytes.len()).max(first);
        let from = end.saturating_sub(1).max(first);
        let last = bytes[from..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |i| from + i);
        work[first..last]
            .iter_mut()
            .filter(|b| **b != b'\n')
            .for_each(|b| *b = b' ');
    }
    None
}

/// The dotted key a parse error points at: the `[section]` above it and
/// the key on its line.
fn key_at(text: &str, span: &Range<usize>) -> String {
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let section = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_owned());
    match (section, key) {
        (Some(s), Some(k)) => format!("{s}.{k}"),
        (None, Some(k)) => k,
        (Some(s), None) => s,
        (None, None) => line.trim_matches(|c| c == '[' || c == ']').to_owned(),
    }
}
