//! A snapshot's label: what it is (`kind`), which history it belongs to
//! (`name`), and the free-form `version`, `tags` and `description`. The same
//! five fields are stored in a manifest, listed by the catalog and given to
//! `snapshot`, so they live in one struct with one validation.
//!
//! Format: in a manifest the label is encoded as its fields inline, in the
//! order declared here (bincode encodes a nested struct as its fields); in
//! JSON it is flattened into the enclosing object. Reordering or adding
//! fields changes the manifest format (docs/FORMAT.md).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How a snapshot is labelled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotLabel {
    /// `model`, `portfolio`, `config`, or any word.
    pub kind: String,
    /// The history name; `kind/name` is the history.
    pub name: String,
    /// A version label (never empty or blank when set).
    pub version: Option<String>,
    pub tags: Vec<String>,
    pub description: Option<String>,
}

impl SnapshotLabel {
    /// A label with a kind and a name and nothing else.
    pub fn new(kind: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            name: name.into(),
            ..Self::default()
        }
    }

    /// `kind/name` — the history this snapshot belongs to.
    pub fn history(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    /// Checks what selectors parse (kind, name, tags) is a valid word, and a
    /// version, if given, is not empty or blank.
    pub fn validate(&self) -> Result<()> {
        validate_word("kind", &self.kind)?;
        validate_word("name", &self.name)?;
        for tag in &self.tags {
            validate_word("tag", tag)?;
        }
        if self.version.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(Error::InvalidArgument(
                "invalid version: a version label must not be empty or blank (give none instead)"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Names that appear in selectors must not contain their separators.
pub fn validate_word(what: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= 200
        && value
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))
        && !value.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "invalid {what} `{value}`: use letters, digits, `-`, `_`, `.` or `+` (not starting with `.`)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_and_validation() {
        let mut label = SnapshotLabel::new("model", "llama");
        assert_eq!(label.history(), "model/llama");
        label.validate().unwrap();
        label.version = Some("v2".into());
        label.tags = vec!["a+b".into()];
        label.validate().unwrap();
        for bad in ["", ".x", "a/b", "a b", "a@b"] {
            assert!(validate_word("name", bad).is_err(), "{bad:?}");
            let mut tagged = label.clone();
            tagged.tags.push(bad.into());
            assert!(tagged.validate().is_err(), "tag {bad:?}");
        }
        assert!(validate_word("name", &"x".repeat(201)).is_err());
        for blank in ["", "  "] {
            label.version = Some(blank.into());
            assert!(label.validate().is_err(), "version {blank:?}");
        }
        assert!(SnapshotLabel::new("", "x").validate().is_err());
        assert!(SnapshotLabel::new("model", "a~1").validate().is_err());
    }
}
