//! Retention policies stored in the repository, so that `forget` without
//! rules and `prune` apply the same rules whoever runs them.
//!
//! The object at key [`KEY`] is a JSON object mapping a *scope* to a
//! [`RetentionPolicy`]. A scope is a kind (`model`) or a kind and a name
//! (`model/llama`). For one history the most specific scope wins:
//! `model/llama` over `model`; a history no scope matches has no policy, and
//! no policy keeps everything. Changes are read-modify-write under the
//! exclusive lock, so two `policy set`s cannot lose each other's update and a
//! `prune` never sees a half-made change. Unknown rules make the object
//! unreadable rather than ignored (see [`RetentionPolicy`]): a rule written by
//! a newer cairn must not be silently dropped by an older one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::label::validate_word;
use crate::policy::retention::RetentionPolicy;
use crate::repo::lock::Lock;
use crate::repo::repository::Repository;
use crate::storage::Storage;

/// Storage key of the stored policies.
pub const KEY: &str = "policies";

/// The stored policies, by scope (sorted, so `policy show` is stable).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StoredPolicies(BTreeMap<String, RetentionPolicy>);

/// Checks a scope is `KIND` or `KIND/NAME` with valid labels.
pub fn check_scope(scope: &str) -> Result<()> {
    let mut parts = scope.split('/');
    let kind = parts.next().unwrap_or_default();
    validate_word("kind", kind)?;
    if let Some(name) = parts.next() {
        validate_word("name", name)?;
    }
    if parts.next().is_some() {
        return Err(Error::InvalidArgument(format!(
            "invalid policy scope `{scope}`: use KIND or KIND/NAME"
        )));
    }
    Ok(())
}

impl StoredPolicies {
    /// Reads the stored policies; a repository without any has none.
    pub fn load(storage: &dyn Storage) -> Result<Self> {
        let bytes = match storage.get(KEY) {
            Ok(bytes) => bytes,
            Err(Error::ObjectNotFound { .. }) => return Ok(Self::default()),
            Err(e) => return Err(e),
        };
        let policies: Self = serde_json::from_slice(&bytes).map_err(|e| Error::BadPolicies {
            key: KEY.into(),
            reason: e.to_string(),
        })?;
        if let Some(bad) = policies.0.keys().find(|s| check_scope(s).is_err()) {
            return Err(Error::BadPolicies {
                key: KEY.into(),
                reason: format!("invalid scope `{bad}`"),
            });
        }
        Ok(policies)
    }

    /// Writes them back (atomic and durable, like every object).
    pub fn save(&self, storage: &dyn Storage) -> Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("policies serialise");
        bytes.push(b'\n');
        storage.put(KEY, &bytes)
    }

    /// Sets the policy of `scope`, replacing any. An empty policy is refused:
    /// it would read as "keep everything" while looking like a rule.
    pub fn set(&mut self, scope: &str, policy: RetentionPolicy) -> Result<()> {
        check_scope(scope)?;
        if policy.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "no rule given for `{scope}` (use --keep-last, --keep-daily, ...; `policy unset` removes a policy)"
            )));
        }
        self.0.insert(scope.to_string(), policy);
        Ok(())
    }

    /// Removes the policy of `scope`, returning it.
    pub fn unset(&mut self, scope: &str) -> Option<RetentionPolicy> {
        self.0.remove(scope)
    }

    /// Every scope and its policy, sorted by scope.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RetentionPolicy)> {
        self.0.iter().map(|(scope, p)| (scope.as_str(), p))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The policy that applies to history `kind/name` and the scope it is
    /// stored under: `kind/name` if set, else `kind`, else none.
    pub fn for_history(&self, kind: &str, name: &str) -> Option<(&str, &RetentionPolicy)> {
        [format!("{kind}/{name}"), kind.to_string()]
            .into_iter()
            .find_map(|scope| self.0.get_key_value(&scope))
            .map(|(scope, p)| (scope.as_str(), p))
    }
}

/// Stores `policy` for `scope` under the exclusive lock; returns the result.
pub fn set(repo: &Repository, scope: &str, policy: RetentionPolicy) -> Result<StoredPolicies> {
    let _lock = Lock::exclusive(repo.shared_storage(), "policy")?;
    let mut all = StoredPolicies::load(repo.storage())?;
    all.set(scope, policy)?;
    all.save(repo.storage())?;
    Ok(all)
}

/// Removes the policy of `scope` under the exclusive lock. An unknown scope
/// is an error naming it, so a typo is not mistaken for success.
pub fn unset(repo: &Repository, scope: &str) -> Result<RetentionPolicy> {
    let _lock = Lock::exclusive(repo.shared_storage(), "policy")?;
    let mut all = StoredPolicies::load(repo.storage())?;
    let removed = all
        .unset(scope)
        .ok_or_else(|| Error::InvalidArgument(format!("no policy is stored for `{scope}`")))?;
    all.save(repo.storage())?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::LocalStorage;

    fn last(n: u32) -> RetentionPolicy {
        RetentionPolicy {
            keep_last: Some(n),
            ..Default::default()
        }
    }

    #[test]
    fn most_specific_scope_wins() {
        let mut p = StoredPolicies::default();
        p.set("model", last(5)).unwrap();
        p.set("model/llama", last(2)).unwrap();
        assert_eq!(
            p.for_history("model", "llama"),
            Some(("model/llama", &last(2)))
        );
        assert_eq!(p.for_history("model", "bert"), Some(("model", &last(5))));
        assert_eq!(p.for_history("config", "llama"), None);
        assert_eq!(p.unset("model/llama"), Some(last(2)));
        assert_eq!(p.for_history("model", "llama"), Some(("model", &last(5))));
    }

    #[test]
    fn scopes_and_rules_are_validated() {
        let mut p = StoredPolicies::default();
        for bad in ["", "a/b/c", "model/", "/x", "mo del", ".hidden"] {
            assert!(p.set(bad, last(1)).is_err(), "{bad:?}");
        }
        assert!(
            p.set("model", RetentionPolicy::default()).is_err(),
            "empty policy"
        );
        assert!(p.is_empty());
    }

    #[test]
    fn load_save_round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path());
        assert!(
            StoredPolicies::load(&s).unwrap().is_empty(),
            "absent means none"
        );
        let mut p = StoredPolicies::default();
        let tiered = RetentionPolicy {
            keep_last: Some(5),
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_tags: vec!["milestone".into()],
            ..Default::default()
        };
        p.set("model", tiered).unwrap();
        p.set(
            "portfolio/book",
            RetentionPolicy {
                keep_within: Some(crate::policy::retention::parse_duration("30d").unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
        p.save(&s).unwrap();
        assert_eq!(StoredPolicies::load(&s).unwrap(), p);
        let text = String::from_utf8(s.get(KEY).unwrap()).unwrap();
        assert!(text.contains("\"keep_within\": \"30d\""), "{text}");

        s.put(
            KEY,
            br#"{"model": {"keep_last": 3, "keep_fortnightly": 1}}"#,
        )
        .unwrap();
        assert!(matches!(
            StoredPolicies::load(&s),
            Err(Error::BadPolicies { .. })
        ));
        s.put(KEY, br#"{"a/b/c": {"keep_last": 3}}"#).unwrap();
        assert!(matches!(
            StoredPolicies::load(&s),
            Err(Error::BadPolicies { .. })
        ));
    }
}
