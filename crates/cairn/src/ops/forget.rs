//! Forgetting snapshots: apply a retention policy (given, or stored per
//! history, see [`crate::policy::stored`]) → a [`ForgetPlan`] that says, for every
//! snapshot, keep or remove and which rules keep it → [`execute`]. `delete`
//! builds the same kind of plan from named snapshots. Forgetting frees no
//! space by itself; `gc` reclaims the chunks nothing references any more.
//!
//! A plan holds the repository's exclusive lock from the moment it is made
//! until it is dropped, so the snapshots it judged cannot change under it.
//!
//! Removal order (docs/FORMAT.md): first a durable **intent** object
//! `forget/<32 hex>.json` names every snapshot to remove, then each manifest
//! object is deleted (durably), then one catalog transaction deletes the
//! snapshot rows and their file rows, and last the intent is deleted.
//! Manifests are the source of truth, so a crash before the rows go leaves
//! snapshots the catalog still lists but whose manifests are gone: they stay
//! restorable (the catalog has their file lists and gc marks their chunks
//! live). The intent tells that state apart from lost manifests: without it
//! `check` would call it damage and `repair` would rewrite the manifests
//! from the catalog, undoing the forget. With it, `check` reports an
//! interrupted forget, and the next forget, delete or repair finishes it
//! ([`execute`]); `rebuild-catalog` imports no manifest an intent
//! names. The opposite order (rows first) would be unsafe: a gc would free
//! the chunks, and a `rebuild-catalog` would then resurrect a manifest whose
//! data no longer exists.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::FixedOffset;
use serde::{Deserialize, Serialize};

use crate::catalog::{Integrity, SnapshotFilter, SnapshotInfo};
use crate::error::{Error, Result};
use crate::format::id::SnapshotId;
use crate::format::manifest;
use crate::policy::retention::{self, Candidate, RetentionPolicy};
use crate::policy::stored::StoredPolicies;
use crate::repo::lock::Lock;
use crate::repo::repository::Repository;
use crate::storage::{PutMode, Storage};

/// Reason shown for a snapshot removed because `delete` named it.
const NAMED: &str = "named for deletion";

/// Which snapshots to judge, and by which rules.
#[derive(Debug, Clone)]
pub struct ForgetRequest {
    /// Only histories of this kind / name (`tag` is ignored: a policy judges
    /// whole histories).
    pub filter: SnapshotFilter,
    /// Rules to apply to every selected history; `None` applies the stored
    /// policy of each history (histories without one keep everything).
    pub policy: Option<RetentionPolicy>,
    /// Allow a plan that removes every snapshot of some history.
    pub allow_empty: bool,
    /// Wall-clock offset in which days, weeks, ... are counted.
    pub offset: FixedOffset,
}

/// Where a history's policy came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "scope", rename_all = "snake_case")]
pub enum PolicySource {
    /// Rules given with the request.
    Given,
    /// The policy stored for this scope (`kind` or `kind/name`).
    Stored(String),
    /// No stored policy applies: everything is kept.
    None,
    /// `delete` named the snapshots.
    Named,
}

/// The verdict on one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub snapshot: SnapshotInfo,
    pub keep: bool,
    /// Every rule that keeps it; for a removal by `delete`, why it goes.
    pub reasons: Vec<String>,
}

/// The verdicts on one kind/name history, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryPlan {
    pub kind: String,
    pub name: String,
    pub policy: RetentionPolicy,
    pub source: PolicySource,
    pub snapshots: Vec<Verdict>,
}

impl HistoryPlan {
    pub fn history(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    pub fn kept(&self) -> usize {
        self.snapshots.iter().filter(|v| v.keep).count()
    }

    pub fn removed(&self) -> usize {
        self.snapshots.len() - self.kept()
    }
}

/// What a forget or delete would do; holds the exclusive lock while alive.
#[derive(Serialize)]
pub struct ForgetPlan {
    #[serde(skip)]
    lock: Lock,
    /// The plan is made for, and only valid with, this open repository
    /// ([`Repository::instance`]).
    #[serde(skip)]
    repository: u64,
    pub histories: Vec<HistoryPlan>,
    /// Histories that would lose every snapshot (only for policy plans).
    pub emptied: Vec<String>,
    /// Interrupted forgets found under the lock; [`execute`] finishes them
    /// first. Their snapshots are in no history above: they are going.
    pub interrupted: Vec<Intent>,
    #[serde(skip)]
    allow_empty: bool,
}

impl ForgetPlan {
    /// The snapshots the plan removes, in plan order.
    pub fn to_remove(&self) -> impl Iterator<Item = &SnapshotInfo> {
        self.histories
            .iter()
            .flat_map(|h| &h.snapshots)
            .filter(|v| !v.keep)
            .map(|v| &v.snapshot)
    }

    /// The snapshots of interrupted forgets this plan finishes first.
    pub fn interrupted_snapshots(&self) -> HashSet<SnapshotId> {
        named_by(&self.interrupted)
    }

    /// Ends the plan but keeps its exclusive lock (`prune` hands it to gc).
    pub fn into_lock(self) -> Lock {
        self.lock
    }

    /// Refuses a plan that empties a history unless that was allowed.
    pub fn check_allowed(&self) -> Result<()> {
        if self.emptied.is_empty() || self.allow_empty {
            Ok(())
        } else {
            Err(Error::WouldEmptyHistory {
                histories: self.emptied.clone(),
            })
        }
    }
}

/// What [`execute`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ForgetReport {
    #[serde(serialize_with = "hex_ids")]
    pub removed: Vec<SnapshotId>,
    pub kept: u64,
    /// Snapshots of interrupted forgets whose removal this run finished.
    #[serde(serialize_with = "hex_ids")]
    pub finished: Vec<SnapshotId>,
}

fn hex_ids<S: serde::Serializer>(ids: &[SnapshotId], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(ids.iter().map(SnapshotId::to_hex))
}

/// Judges every snapshot of the selected histories. Takes the exclusive lock
/// (so it fails beside a running snapshot) and keeps it in the plan.
pub fn plan(repo: &Repository, req: &ForgetRequest) -> Result<ForgetPlan> {
    let lock = Lock::exclusive(repo.shared_storage(), "forget")?;
    ensure_sound(repo)?;
    let interrupted = load_intents(repo.storage())?;
    let going = named_by(&interrupted);
    let filter = SnapshotFilter {
        tag: None,
        ..req.filter.clone()
    };
    let stored = match req.policy {
        Some(_) => StoredPolicies::default(),
        None => StoredPolicies::load(repo.storage())?,
    };
    let mut by_history: BTreeMap<(String, String), Vec<SnapshotInfo>> = BTreeMap::new();
    for s in repo.snapshots(&filter)? {
        if going.contains(&s.id) {
            continue;
        }
        by_history
            .entry((s.label.kind.clone(), s.label.name.clone()))
            .or_default()
            .push(s);
    }
    let mut histories = Vec::with_capacity(by_history.len());
    for ((kind, name), snaps) in by_history {
        let (policy, source) = match (&req.policy, stored.for_history(&kind, &name)) {
            (Some(p), _) => (p.clone(), PolicySource::Given),
            (None, Some((scope, p))) => (p.clone(), PolicySource::Stored(scope.to_string())),
            (None, None) => (RetentionPolicy::default(), PolicySource::None),
        };
        let snapshots = judge(&policy, snaps, req.offset);
        histories.push(HistoryPlan {
            kind,
            name,
            policy,
            source,
            snapshots,
        });
    }
    let emptied = histories
        .iter()
        .filter(|h| h.kept() == 0 && !h.snapshots.is_empty())
        .map(HistoryPlan::history)
        .collect();
    Ok(ForgetPlan {
        lock,
        repository: repo.instance(),
        histories,
        emptied,
        interrupted,
        allow_empty: req.allow_empty,
    })
}

/// Forget decides from the catalog's snapshot rows what to remove, so those
/// rows and their index must be sound (module docs: a damaged catalog never
/// decides a removal); the rest of the file must at least be well formed.
fn ensure_sound(repo: &Repository) -> Result<()> {
    repo.catalog().ensure_sound(Integrity::Quick)?;
    repo.catalog().ensure_sound(Integrity::Table("snapshots"))
}

/// Applies `policy` to one history's snapshots; verdicts newest first.
fn judge(policy: &RetentionPolicy, snaps: Vec<SnapshotInfo>, offset: FixedOffset) -> Vec<Verdict> {
    let candidates: Vec<Candidate> = snaps
        .iter()
        .map(|s| Candidate {
            id: s.id.to_hex(),
            group: s.history(),
            time: s.time,
            tags: s.label.tags.clone(),
        })
        .collect();
    let mut by_id: HashMap<String, SnapshotInfo> =
        snaps.into_iter().map(|s| (s.id.to_hex(), s)).collect();
    retention::apply(policy, &candidates, offset)
        .into_iter()
        .map(|d| Verdict {
            snapshot: by_id
                .remove(&d.id)
                .expect("every decision names a candidate"),
            keep: d.keep,
            reasons: d.reasons,
        })
        .collect()
}

/// A plan removing exactly the snapshots `selectors` name (resolved under
/// the lock). Emptying a history this way is allowed: it was asked for.
pub fn plan_delete(repo: &Repository, selectors: &[String]) -> Result<ForgetPlan> {
    let lock = Lock::exclusive(repo.shared_storage(), "delete")?;
    ensure_sound(repo)?;
    let interrupted = load_intents(repo.storage())?;
    let going = named_by(&interrupted);
    let mut by_history: BTreeMap<(String, String), Vec<SnapshotInfo>> = BTreeMap::new();
    for selector in selectors {
        let s = repo.resolve(selector)?;
        if going.contains(&s.id) {
            continue;
        }
        let list = by_history
            .entry((s.label.kind.clone(), s.label.name.clone()))
            .or_default();
        if !list.iter().any(|o| o.id == s.id) {
            list.push(s);
        }
    }
    let histories = by_history
        .into_iter()
        .map(|((kind, name), mut snaps)| {
            snaps.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.id.cmp(&b.id)));
            HistoryPlan {
                kind,
                name,
                policy: RetentionPolicy::default(),
                source: PolicySource::Named,
                snapshots: snaps
                    .into_iter()
                    .map(|snapshot| Verdict {
                        snapshot,
                        keep: false,
                        reasons: vec![NAMED.into()],
                    })
                    .collect(),
            }
        })
        .collect();
    Ok(ForgetPlan {
        lock,
        repository: repo.instance(),
        histories,
        emptied: Vec::new(),
        interrupted,
        allow_empty: true,
    })
}

/// Finishes the interrupted forgets the plan found, then removes the plan's
/// snapshots: intent, manifests, catalog rows in one transaction, intent
/// deleted (see the module docs for why this order). Refuses a plan that
/// empties a history unless the request allowed it (the interrupted
/// forgets are finished all the same: they were decided before).
pub fn execute(repo: &Repository, plan: &ForgetPlan) -> Result<ForgetReport> {
    repo.ensure_made_here(plan.repository, "forget")?;
    plan.lock.ensure_held()?;
    let finished = finish(repo, &plan.interrupted)?;
    plan.check_allowed()?;
    let removed: Vec<SnapshotId> = plan.to_remove().map(|s| s.id).collect();
    if !removed.is_empty() {
        let intent = write_intent(repo.storage(), &removed)?;
        finish(repo, &[intent])?;
    }
    Ok(ForgetReport {
        removed,
        kept: plan.histories.iter().map(|h| h.kept() as u64).sum(),
        finished,
    })
}

/// Key prefix of forget intents: a directory of its own, so that neither
/// the `packs/` and `snapshots/` listings of check, gc and rebuild nor two
/// forgets interrupted one after the other ever meet.
pub const INTENT_PREFIX: &str = "forget/";

/// Version of the intent object's JSON (docs/FORMAT.md); 1: initial.
pub const INTENT_VERSION: u32 = 1;

/// A forget that was decided and durably announced but may not be finished:
/// the object under `key` names the snapshots it removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Intent {
    pub key: String,
    #[serde(serialize_with = "hex_ids")]
    pub snapshots: Vec<SnapshotId>,
}

/// The intent object's JSON; unknown fields are ignored.
#[derive(Serialize, Deserialize)]
struct IntentBody {
    version: u32,
    time_ns: i64,
    host: String,
    snapshots: Vec<String>,
}

/// Durably writes a new intent naming `ids` (before anything is deleted).
fn write_intent(storage: &dyn Storage, ids: &[SnapshotId]) -> Result<Intent> {
    let key = format!(
        "{INTENT_PREFIX}{}.json",
        crate::format::config::random_hex(16)
    );
    let body = IntentBody {
        version: INTENT_VERSION,
        time_ns: crate::catalog::now_ns(),
        host: crate::host::hostname(),
        snapshots: ids.iter().map(SnapshotId::to_hex).collect(),
    };
    let json = serde_json::to_vec(&body).expect("an intent always serializes");
    // CreateNew: never over another intent, should two random names meet.
    storage.put_with(&key, &json, PutMode::CreateNew)?;
    Ok(Intent {
        key,
        snapshots: ids.to_vec(),
    })
}

/// Every intent object, each parsed or with why it cannot be (check
/// reports those; everything else refuses to guess what they named).
pub(crate) fn scan_intents(storage: &dyn Storage) -> Result<Vec<(String, Result<Intent>)>> {
    storage
        .list(INTENT_PREFIX)?
        .into_iter()
        .map(|o| {
            let parsed = storage.get(&o.key).and_then(|b| parse_intent(&o.key, &b));
            Ok((o.key, parsed))
        })
        .collect()
}

/// Every intent; an unreadable one is an error naming it.
pub fn load_intents(storage: &dyn Storage) -> Result<Vec<Intent>> {
    scan_intents(storage)?.into_iter().map(|(_, i)| i).collect()
}

fn parse_intent(key: &str, bytes: &[u8]) -> Result<Intent> {
    let bad = |reason: String| Error::BadForgetIntent {
        key: key.to_string(),
        reason,
    };
    let body: IntentBody = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if body.version != INTENT_VERSION {
        return Err(bad(format!(
            "version {}, this cairn reads {INTENT_VERSION}",
            body.version
        )));
    }
    let snapshots = body
        .snapshots
        .iter()
        .map(|h| SnapshotId::from_hex(h).ok_or_else(|| bad(format!("`{h}` is not a snapshot id"))))
        .collect::<Result<_>>()?;
    Ok(Intent {
        key: key.to_string(),
        snapshots,
    })
}

/// The snapshots any of `intents` removes.
pub fn named_by(intents: &[Intent]) -> HashSet<SnapshotId> {
    intents.iter().flat_map(|i| &i.snapshots).copied().collect()
}

/// Deletes the manifests an intent names (durable; missing ones are fine).
pub(crate) fn delete_manifests<'a>(
    storage: &dyn Storage,
    ids: impl IntoIterator<Item = &'a SnapshotId>,
) -> Result<()> {
    ids.into_iter()
        .try_for_each(|id| storage.delete(&manifest::key(id)))
}

/// Carries each intent out: its manifests, then its catalog rows (one
/// transaction, by id, so rows already gone are simply not there), then
/// the intent itself. Idempotent, so a crash anywhere is finished by the
/// next run. Returns the snapshots named. The caller holds the exclusive
/// lock (forget, delete, repair).
pub(crate) fn finish(repo: &Repository, intents: &[Intent]) -> Result<Vec<SnapshotId>> {
    let mut done = Vec::new();
    for intent in intents {
        delete_manifests(repo.storage(), &intent.snapshots)?;
        repo.catalog().remove_snapshots(&intent.snapshots)?;
        repo.storage().delete(&intent.key)?;
        done.extend_from_slice(&intent.snapshots);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TestRepo;

    fn request(policy: Option<RetentionPolicy>) -> ForgetRequest {
        ForgetRequest {
            filter: SnapshotFilter::default(),
            policy,
            allow_empty: false,
            offset: FixedOffset::east_opt(0).unwrap(),
        }
    }

    fn last(n: u32) -> RetentionPolicy {
        RetentionPolicy {
            keep_last: Some(n),
            ..Default::default()
        }
    }

    fn ids(repo: &Repository) -> Vec<SnapshotId> {
        repo.snapshots(&SnapshotFilter::default())
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect()
    }

    #[test]
    fn keep_last_per_history_removes_manifest_and_rows() {
        let t = TestRepo::new();
        let a: Vec<SnapshotId> = (0..3).map(|i| t.snap("model", "a", &[i], &[])).collect();
        let b = t.snap("model", "b", &[9], &[]);
        let plan = plan(&t.repo, &request(Some(last(1)))).unwrap();
        assert_eq!(plan.histories.len(), 2);
        let removed: Vec<SnapshotId> = plan.to_remove().map(|s| s.id).collect();
        assert_eq!(removed, [a[1], a[0]], "newest first, the newest kept");
        let verdict = &plan.histories[0].snapshots[0];
        assert_eq!(
            (verdict.keep, verdict.reasons.clone()),
            (true, vec!["last snapshot".to_string()])
        );
        let report = execute(&t.repo, &plan).unwrap();
        drop(plan);
        assert_eq!((report.removed.len(), report.kept), (2, 2));
        assert_eq!(ids(&t.repo), [a[2], b]);
        for gone in &a[..2] {
            assert!(matches!(
                t.repo.storage().get(&manifest::key(gone)),
                Err(Error::ObjectNotFound { .. })
            ));
        }
        let orphan_files = t.repo.catalog().orphaned_file_rows().unwrap();
        assert_eq!(orphan_files, 0);
    }

    #[test]
    fn refuses_to_empty_a_history_unless_allowed() {
        let t = TestRepo::new();
        t.snap("model", "a", &[1], &[]);
        t.snap("model", "b", &[2], &["milestone"]);
        let only_tag = RetentionPolicy {
            keep_tags: vec!["milestone".into()],
            ..Default::default()
        };
        let p = plan(&t.repo, &request(Some(only_tag.clone()))).unwrap();
        assert_eq!(p.emptied, ["model/a"]);
        let err = execute(&t.repo, &p).unwrap_err();
        assert!(
            matches!(&err, Error::WouldEmptyHistory { histories } if histories == &["model/a"]),
            "{err}"
        );
        drop(p);
        assert_eq!(ids(&t.repo).len(), 2, "nothing removed");
        let mut req = request(Some(only_tag));
        req.allow_empty = true;
        let p = plan(&t.repo, &req).unwrap();
        execute(&t.repo, &p).unwrap();
        drop(p);
        assert_eq!(ids(&t.repo).len(), 1);
    }

    #[test]
    fn stored_policies_apply_most_specific_and_none_keeps_all() {
        let t = TestRepo::new();
        for i in 0..3 {
            t.snap("model", "a", &[i], &[]);
            t.snap("model", "b", &[10 + i], &[]);
            t.snap("config", "c", &[20 + i], &[]);
        }
        crate::policy::stored::set(&t.repo, "model", last(2)).unwrap();
        crate::policy::stored::set(&t.repo, "model/b", last(1)).unwrap();
        let p = plan(&t.repo, &request(None)).unwrap();
        let summary: Vec<(String, PolicySource, usize, usize)> = p
            .histories
            .iter()
            .map(|h| (h.history(), h.source.clone(), h.kept(), h.removed()))
            .collect();
        assert_eq!(
            summary,
            [
                ("config/c".into(), PolicySource::None, 3, 0),
                ("model/a".into(), PolicySource::Stored("model".into()), 2, 1),
                (
                    "model/b".into(),
                    PolicySource::Stored("model/b".into()),
                    1,
                    2
                ),
            ]
        );
        assert_eq!(p.histories[0].snapshots[0].reasons, ["no policy"]);
    }

    #[test]
    fn filter_limits_the_histories_judged() {
        let t = TestRepo::new();
        t.snap("model", "a", &[1], &[]);
        t.snap("model", "a", &[2], &[]);
        t.snap("model", "b", &[3], &[]);
        t.snap("model", "b", &[4], &[]);
        let mut req = request(Some(last(1)));
        req.filter.name = Some("b".into());
        let p = plan(&t.repo, &req).unwrap();
        assert_eq!(p.histories.len(), 1);
        execute(&t.repo, &p).unwrap();
        drop(p);
        assert_eq!(ids(&t.repo).len(), 3);
    }

    #[test]
    fn delete_removes_named_snapshots_even_the_last_one() {
        let t = TestRepo::new();
        let a = t.snap("model", "a", &[1], &[]);
        let b = t.snap("model", "b", &[2], &[]);
        let p = plan_delete(
            &t.repo,
            &[a.to_hex()[..8].to_string(), "b".into(), "b".into()],
        )
        .unwrap();
        assert_eq!(p.to_remove().count(), 2, "named twice, removed once");
        execute(&t.repo, &p).unwrap();
        drop(p);
        assert!(ids(&t.repo).is_empty());
        let _ = b;
        assert!(plan_delete(&t.repo, &["nope".into()]).is_err());
    }

    #[test]
    fn a_crash_between_manifest_and_rows_is_finished_by_a_rerun() {
        let t = TestRepo::new();
        let old = t.snap("model", "a", &[1], &[]);
        let new = t.snap("model", "a", &[2], &[]);
        // The crash: the manifest is gone, the rows are still there.
        t.repo.storage().delete(&manifest::key(&old)).unwrap();
        assert_eq!(ids(&t.repo), [old, new]);
        let p = plan(&t.repo, &request(Some(last(1)))).unwrap();
        execute(&t.repo, &p).unwrap();
        drop(p);
        assert_eq!(ids(&t.repo), [new]);
    }

    /// How a test finishes a crashed forget.
    #[derive(Debug, Clone, Copy)]
    enum Finisher {
        Repair,
        Rerun,
        Rebuild,
    }

    /// Guards item 5 of the reliability issue: a forget that dies before
    /// any storage mutation N is never reported as damage, and neither
    /// repair, a rerun nor rebuild-catalog resurrects what it removed.
    #[test]
    fn a_forget_crashed_anywhere_is_finished_never_undone() {
        use crate::ops::check::{check, CheckOptions, Problem};
        use crate::storage::faulty::{Fault, FaultyStorage};
        use crate::storage::LocalStorage;
        use crate::NoProgress;
        // lock put, intent put, 3 manifest deletes, intent delete, lock delete.
        let mut interrupted = 0;
        for fail_at in 1..=8 {
            for finisher in [Finisher::Repair, Finisher::Rerun, Finisher::Rebuild] {
                let ctx = format!("crash before mutation {fail_at}, then {finisher:?}");
                let t = TestRepo::new();
                let all: Vec<SnapshotId> =
                    (0..4).map(|i| t.snap("model", "a", &[i], &[])).collect();
                let root = t.dir.path().join("repo");
                {
                    let faulty =
                        FaultyStorage::new(LocalStorage::new(&root), Fault::Crash, fail_at);
                    let location = crate::CatalogLocation::in_repository(&root);
                    let crashing =
                        Repository::open_with(std::sync::Arc::new(faulty), location).unwrap();
                    let _ = plan(&crashing, &request(Some(last(1))))
                        .and_then(|p| execute(&crashing, &p));
                }
                // The dead process's lock (this pid is alive, so not stale).
                crate::repo::lock::unlock(&LocalStorage::new(&root), true).unwrap();
                let repo = Repository::open(&root).unwrap();
                let report = check(&repo, CheckOptions::READ_ALL, &NoProgress).unwrap();
                assert!(report.is_clean(), "{ctx}: {:?}", report.findings);
                assert!(
                    !report.findings.iter().any(|f| matches!(
                        f.problem,
                        Problem::ManifestMissing { .. } | Problem::ManifestNotInCatalog { .. }
                    )),
                    "{ctx}: {:?}",
                    report.findings
                );
                interrupted += report
                    .findings
                    .iter()
                    .any(|f| matches!(f.problem, Problem::ForgetInterrupted { .. }))
                    as usize;
                match finisher {
                    Finisher::Repair => {
                        let r = crate::ops::repair::repair(&repo, &NoProgress).unwrap();
                        assert!(r.manifests_restored.is_empty(), "{ctx}: {r:?}");
                    }
                    Finisher::Rerun => {
                        let p = plan(&repo, &request(Some(last(1)))).unwrap();
                        execute(&repo, &p).unwrap();
                    }
                    Finisher::Rebuild => {
                        drop(repo);
                        let storage = Repository::open_storage(&root).unwrap();
                        crate::ops::rebuild::rebuild_catalog(&storage, &NoProgress).unwrap();
                    }
                }
                let repo = Repository::open(&root).unwrap();
                let left = ids(&repo);
                let intents = load_intents(repo.storage()).unwrap();
                assert!(intents.is_empty(), "{ctx}: {intents:?}");
                let untouched = left == all;
                assert!(
                    left == all[3..] || (untouched && !matches!(finisher, Finisher::Rerun)),
                    "{ctx}: left {left:?}"
                );
                let report = check(&repo, CheckOptions::READ_ALL, &NoProgress).unwrap();
                let notes: Vec<&Problem> = report
                    .findings
                    .iter()
                    .map(|f| &f.problem)
                    .filter(|p| !matches!(p, Problem::UnreferencedPack { .. }))
                    .collect();
                assert!(notes.is_empty(), "{ctx}: {notes:?}");
            }
        }
        // Crashes after the intent put and before the rows go: 3 of 8 (the
        // one before the intent's delete leaves nothing of the snapshots).
        assert_eq!(interrupted, 3 * 3, "the crashes hit the forget's window");
    }

    #[test]
    fn an_intent_is_json_naming_the_snapshots_and_a_bad_one_is_refused() {
        let t = TestRepo::new();
        let a = t.snap("model", "a", &[1], &[]);
        let b = t.snap("model", "a", &[2], &[]);
        let intent = write_intent(t.repo.storage(), &[a, b]).unwrap();
        assert!(intent.key.starts_with(INTENT_PREFIX) && intent.key.ends_with(".json"));
        assert_eq!(
            load_intents(t.repo.storage()).unwrap(),
            std::slice::from_ref(&intent)
        );
        let json: serde_json::Value =
            serde_json::from_slice(&t.repo.storage().get(&intent.key).unwrap()).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["snapshots"][1], b.to_hex());
        assert!(json["time_ns"].as_i64().unwrap() > 0 && json["host"].is_string());
        t.repo.storage().put("forget/bad.json", b"{").unwrap();
        assert!(matches!(
            load_intents(t.repo.storage()),
            Err(Error::BadForgetIntent { key, .. }) if key == "forget/bad.json"
        ));
    }

    #[test]
    fn a_plan_holds_the_exclusive_lock() {
        let t = TestRepo::new();
        t.snap("model", "a", &[1], &[]);
        let p = plan(&t.repo, &request(Some(last(1)))).unwrap();
        assert!(matches!(
            Lock::shared(t.repo.shared_storage(), "snapshot"),
            Err(Error::Locked { .. })
        ));
        drop(p);
        assert!(Lock::shared(t.repo.shared_storage(), "snapshot").is_ok());
    }
}
