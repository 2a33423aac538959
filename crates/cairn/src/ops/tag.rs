//! `tag`: edit a snapshot's tags, version label and description after the
//! fact (pin a milestone so retention keeps it).
//!
//! A manifest is immutable and its id is the hash of its content, so an
//! edited snapshot is a new manifest with a new id (as restic's `tag`),
//! everything but the label unchanged. Order, under the exclusive lock:
//! the new manifest is put (create-only), the catalog row takes the new id
//! and label in one statement (keeping its file rows and stat cache), then
//! the old manifest is deleted. Killed after the first step, the new
//! manifest is an unlisted extra that check reports and rebuild lists as a
//! second snapshot with the new label; after the second, the old manifest
//! is the extra. Nothing is ever lost: both name the same chunks.

use crate::catalog::Integrity;
use crate::error::{Error, Result};
use crate::format::id::SnapshotId;
use crate::format::label::SnapshotLabel;
use crate::format::manifest::{self, Manifest};
use crate::repo::lock::Lock;
use crate::repo::repository::Repository;
use crate::storage::PutMode;

/// What to change in each selected snapshot's label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelChange {
    /// Tags to add (kept once).
    pub add: Vec<String>,
    /// Tags to remove.
    pub remove: Vec<String>,
    /// Replace all tags with these (before `add`/`remove`).
    pub set: Option<Vec<String>>,
    /// A new version label.
    pub version: Option<String>,
    /// A new description; `Some("")` removes it.
    pub description: Option<String>,
}

impl LabelChange {
    fn is_empty(&self) -> bool {
        self == &LabelChange::default()
    }

    /// `label` with this change applied (tags sorted, once each).
    pub fn apply(&self, label: &SnapshotLabel) -> SnapshotLabel {
        let mut out = label.clone();
        if let Some(set) = &self.set {
            out.tags = set.clone();
        }
        out.tags.extend(self.add.iter().cloned());
        out.tags.retain(|t| !self.remove.contains(t));
        out.tags.sort();
        out.tags.dedup();
        if let Some(v) = &self.version {
            out.version = Some(v.clone());
        }
        if let Some(d) = &self.description {
            out.description = (!d.is_empty()).then(|| d.clone());
        }
        out
    }
}

/// One snapshot `tag` looked at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Relabeled {
    #[serde(serialize_with = "crate::catalog::hex_id")]
    pub old_id: SnapshotId,
    /// The snapshot's id after the change (the same when nothing changed).
    #[serde(serialize_with = "crate::catalog::hex_id")]
    pub new_id: SnapshotId,
    pub changed: bool,
    pub label: SnapshotLabel,
}

/// Applies `change` to every snapshot `selectors` name (each resolved as
/// the CLI does); a selector that matches nothing fails before anything is
/// written.
pub fn tag(
    repo: &Repository,
    selectors: &[String],
    change: &LabelChange,
) -> Result<Vec<Relabeled>> {
    if change.is_empty() {
        return Err(Error::InvalidArgument(
            "nothing to change: give --add, --remove, --set, --version or --description".into(),
        ));
    }
    if selectors.is_empty() {
        return Err(Error::InvalidArgument("give at least one snapshot".into()));
    }
    let lock = Lock::exclusive(repo.shared_storage(), "tag")?;
    repo.catalog().ensure_sound(Integrity::Quick)?;
    let snaps = selectors
        .iter()
        .map(|s| repo.resolve(s))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(snaps.len());
    for snap in snaps {
        let key = manifest::key(&snap.id);
        // A version-2 manifest's trees are not read: only the label changes,
        // the root stays.
        let mut m = Manifest::decode_stored(&repo.storage().get(&key)?, Some(&snap.id), &key)?;
        let label = change.apply(&m.manifest.label);
        label.validate()?;
        if label == m.manifest.label {
            out.push(Relabeled {
                old_id: snap.id,
                new_id: snap.id,
                changed: false,
                label,
            });
            continue;
        }
        m.manifest.label = label.clone();
        let (new_id, bytes) = m.encode();
        lock.ensure_held()?;
        match repo
            .storage()
            .put_with(&manifest::key(&new_id), &bytes, PutMode::CreateNew)
        {
            // The same label again (a rerun after a kill): the same bytes.
            Ok(()) | Err(Error::ObjectExists { .. }) => {}
            Err(e) => return Err(e),
        }
        repo.catalog().relabel_snapshot(&snap.id, &new_id, &label)?;
        repo.storage().delete(&key)?;
        out.push(Relabeled {
            old_id: snap.id,
            new_id,
            changed: true,
            label,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TestRepo;

    #[test]
    fn changes_apply_in_order_and_keep_tags_once() {
        let label = SnapshotLabel {
            tags: vec!["b".into(), "a".into()],
            ..SnapshotLabel::new("model", "m")
        };
        let change = LabelChange {
            add: vec!["milestone".into(), "a".into()],
            remove: vec!["b".into()],
            description: Some(String::new()),
            ..Default::default()
        };
        let out = change.apply(&label);
        assert_eq!(out.tags, ["a", "milestone"]);
        assert_eq!(out.description, None);
        let set = LabelChange {
            set: Some(vec!["x".into()]),
            version: Some("v2".into()),
            ..Default::default()
        };
        let out = set.apply(&label);
        assert_eq!(
            (out.tags, out.version.as_deref()),
            (vec!["x".to_string()], Some("v2"))
        );
    }

    /// Guards the order of the steps: the catalog row keeps its file rows
    /// under the new id, the old manifest goes, a rebuilt catalog agrees,
    /// and an unchanged label writes nothing.
    #[test]
    fn a_tagged_snapshot_keeps_its_files_under_a_new_id() {
        let t = TestRepo::new();
        let id = t.snap("model", "m", b"abc", &[]);
        let files_before = t
            .repo
            .files(&t.repo.resolve(&id.to_hex()).unwrap())
            .unwrap();
        let change = LabelChange {
            add: vec!["milestone".into()],
            ..Default::default()
        };
        let done = tag(&t.repo, &[id.to_hex()], &change).unwrap();
        assert!(done[0].changed && done[0].new_id != id);
        let snap = t.repo.resolve("m").unwrap();
        assert_eq!(
            (snap.id, snap.label.tags.clone()),
            (done[0].new_id, vec!["milestone".to_string()])
        );
        assert_eq!(t.repo.files(&snap).unwrap(), files_before);
        let manifests = t.repo.storage().list(manifest::PREFIX).unwrap();
        assert_eq!(manifests.len(), 1);
        assert_eq!(manifests[0].key, manifest::key(&done[0].new_id));
        assert!(t
            .repo
            .check(crate::CheckOptions::READ_ALL, &crate::NoProgress)
            .unwrap()
            .is_clean());

        let again = tag(&t.repo, &["m".into()], &change).unwrap();
        assert!(!again[0].changed);
        assert!(tag(&t.repo, &["nope".into()], &change).is_err());
        assert!(tag(&t.repo, &["m".into()], &LabelChange::default()).is_err());
        let bad = LabelChange {
            add: vec!["no spaces".into()],
            ..Default::default()
        };
        assert!(tag(&t.repo, &["m".into()], &bad).is_err());
        assert_eq!(
            t.repo.resolve("m").unwrap().id,
            done[0].new_id,
            "a refused change writes nothing"
        );
    }
}
