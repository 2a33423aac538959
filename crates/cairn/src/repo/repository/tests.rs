//! One life cycle of a repository, run through the same generic function
//! against each storage backend: what works on a local directory must work
//! on any storage that meets the contract, with the catalog in a cache.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use crate::catalog::location::CatalogLocation;
use crate::error::Error;
use crate::format::config::RepoConfig;
use crate::ingest::chunker::ChunkerParams;
use crate::ops::check::{self, CheckOptions};
use crate::ops::forget::{self, ForgetRequest};
use crate::ops::gc;
use crate::ops::rebuild;
use crate::ops::restore::{self, RestoreOptions};
use crate::ops::snapshot::SnapshotOptions;
use crate::policy::retention::RetentionPolicy;
use crate::progress::NoProgress;
use crate::repo::repository::{RepoStorage, Repository};
use crate::storage::{LocalStorage, MemoryStorage, Storage};
use crate::test_support::random_bytes;
use crate::SnapshotFilter;

/// The files of version `v` of the source tree: one file kept, one
/// changed, one growing, and one that comes and goes.
fn version(v: u64) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    files.insert("same.bin".into(), random_bytes(1, 40_000));
    files.insert(
        "changed.bin".into(),
        random_bytes(10 + v, 30_000 + v as usize),
    );
    let mut grown = random_bytes(2, 20_000);
    grown.extend(random_bytes(20 + v, 5_000 * v as usize));
    files.insert("sub/grown.bin".into(), grown);
    if v % 2 == 0 {
        files.insert("sub/even.txt".into(), format!("version {v}\n").into_bytes());
    }
    files
}

fn write_tree(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    if dir.exists() {
        fs::remove_dir_all(dir).unwrap();
    }
    for (name, data) in files {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    }
}

/// The regular files under `dir`, by `/`-separated relative path.
fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_str().unwrap();
                out.insert(rel.to_string(), fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn restore_latest(repo: &Repository, target: &Path) -> BTreeMap<String, Vec<u8>> {
    let snap = repo.resolve("model/tree").unwrap();
    let r = restore::restore(repo, &snap, target, &RestoreOptions::default(), &NoProgress);
    assert!(r.unwrap().failed.is_empty());
    // The source was `<work>/src`, the target is in `<work>` too.
    let src = target.parent().unwrap().join("src");
    read_tree(&target.join(crate::test_support::stored(&src, "")))
}

fn snapshot_options() -> SnapshotOptions {
    SnapshotOptions {
        label: crate::SnapshotLabel::new("model", "tree"),
        ..Default::default()
    }
}

fn full_check() -> CheckOptions {
    CheckOptions {
        read_data: true,
        subset_pct: None,
    }
}

/// init → 3 snapshots of a changing tree → restore → check --read-data →
/// forget keep-last 1 → gc → rebuild-catalog → restore bit for bit again.
fn life_cycle(storage: Arc<dyn Storage>, catalog: CatalogLocation, work: &Path) {
    life_cycle_of(storage, catalog, work, false)
}

fn life_cycle_of(storage: Arc<dyn Storage>, catalog: CatalogLocation, work: &Path, enc: bool) {
    let mut config = RepoConfig::new(ChunkerParams::with_average(4096), 3)
        .unwrap()
        .with_pack_target(crate::format::pack::MIN_TARGET_SIZE)
        .unwrap();
    if enc {
        crate::test_support::use_passwords("pw", "pw2");
        config = config.with_encryption();
    }
    let repo = Repository::init_with(Arc::clone(&storage), catalog.clone(), config).unwrap();
    let again = RepoConfig::new(ChunkerParams::default(), 3).unwrap();
    assert!(matches!(
        Repository::init_with(Arc::clone(&storage), catalog.clone(), again),
        Err(Error::RepoExists { .. })
    ));

    let src = work.join("src");
    for v in 1..=3 {
        write_tree(&src, &version(v));
        repo.snapshot(std::slice::from_ref(&src), &snapshot_options(), &NoProgress)
            .unwrap();
    }
    assert_eq!(repo.snapshots(&SnapshotFilter::default()).unwrap().len(), 3);
    assert_eq!(restore_latest(&repo, &work.join("out1")), version(3));
    let report = check::check(&repo, full_check(), &NoProgress).unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);

    let request = ForgetRequest {
        filter: SnapshotFilter::default(),
        policy: Some(RetentionPolicy {
            keep_last: Some(1),
            ..Default::default()
        }),
        allow_empty: false,
        offset: chrono::FixedOffset::east_opt(0).unwrap(),
    };
    let plan = forget::plan(&repo, &request).unwrap();
    assert_eq!(forget::execute(&repo, &plan).unwrap().removed.len(), 2);
    drop(plan);

    let plan = gc::plan(&repo, gc::DEFAULT_MAX_UNUSED).unwrap();
    let report = gc::execute(&repo, &plan, &NoProgress).unwrap();
    assert!(
        report.packs_deleted + report.packs_rewritten > 0,
        "{report:?}"
    );
    assert!(report.damaged.is_empty());
    drop(plan);
    drop(repo);

    let unopened = RepoStorage::open(Arc::clone(&storage), catalog).unwrap();
    let rebuilt = rebuild::rebuild_catalog(&unopened, &NoProgress).unwrap();
    assert_eq!((rebuilt.snapshots, rebuilt.unreadable.len()), (1, 0));
    let repo = unopened.open_catalog().unwrap();
    assert_eq!(restore_latest(&repo, &work.join("out2")), version(3));
    let report = check::check(&repo, full_check(), &NoProgress).unwrap();
    assert!(report.is_clean(), "{:?}", report.findings);
    assert!(
        storage.list("locks/").unwrap().is_empty(),
        "every lock released"
    );
}

#[test]
fn life_cycle_on_local_storage() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let storage = Arc::new(LocalStorage::create(&root).unwrap());
    life_cycle(storage, CatalogLocation::in_repository(&root), dir.path());
    assert!(Repository::open(&root).is_ok(), "path-based open agrees");
}

/// The same life on an encrypted repository in memory: the cache is
/// rebuilt from sealed packs and manifests, and nothing in storage holds a
/// file name.
#[test]
fn life_cycle_on_encrypted_memory_storage() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(MemoryStorage::new());
    let cache = CatalogLocation::cache_dir(dir.path().join("cache"));
    life_cycle_of(storage.clone(), cache, dir.path(), true);
    let cfg = String::from_utf8(storage.get("config").unwrap()).unwrap();
    assert!(cfg.contains("\"version\": 4"), "{cfg}");
    for obj in storage.list("").unwrap() {
        let bytes = storage.get(&obj.key).unwrap();
        assert!(!bytes.windows(8).any(|w| w == b"same.bin"), "{}", obj.key);
    }
}

#[test]
fn life_cycle_on_memory_storage() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let storage = Arc::new(MemoryStorage::new());
    life_cycle(storage, CatalogLocation::cache_dir(&cache), dir.path());
    let entries: Vec<_> = fs::read_dir(&cache).unwrap().collect();
    assert_eq!(entries.len(), 1, "one cache directory per repository id");
}

/// A cached catalog is a cache: losing it costs a rebuild at the next
/// open, not an error; a local one still says so and names rebuild-catalog.
#[test]
fn a_missing_cache_is_rebuilt_but_a_missing_local_catalog_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let cache = CatalogLocation::cache_dir(dir.path().join("cache"));
    let config = RepoConfig::new(ChunkerParams::with_average(4096), 0).unwrap();
    let repo = Repository::init_with(Arc::clone(&storage), cache.clone(), config).unwrap();
    let src = dir.path().join("src");
    write_tree(&src, &version(2));
    repo.snapshot(std::slice::from_ref(&src), &snapshot_options(), &NoProgress)
        .unwrap();
    let id = repo.id().to_string();
    assert_eq!(
        id,
        repo.config().id,
        "a well-formed config id names the cache"
    );
    drop(repo);
    fs::remove_dir_all(dir.path().join("cache")).unwrap();
    let repo = Repository::open_with(Arc::clone(&storage), cache).unwrap();
    assert_eq!(repo.id(), id);
    assert_eq!(restore_latest(&repo, &dir.path().join("out")), version(2));
    assert!(
        storage.list("locks/").unwrap().is_empty(),
        "rebuild's lock released"
    );

    let root = dir.path().join("local");
    Repository::init(&root, RepoConfig::new(ChunkerParams::default(), 3).unwrap()).unwrap();
    fs::remove_file(root.join("catalog.db")).unwrap();
    match Repository::open(&root) {
        Err(e @ Error::CatalogMissing { .. }) => {
            assert!(e.to_string().contains("catalog.db"), "names the file: {e}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened without a catalog"),
    }
    assert!(
        !root.join("catalog.db").exists(),
        "open creates no empty catalog"
    );
}

/// The id of a config whose `id` is not plain hex (hand-edited) is derived
/// from the config's bytes, so it can never escape the cache directory.
#[test]
fn a_malformed_config_id_is_replaced_by_a_digest() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let mut config = RepoConfig::new(ChunkerParams::default(), 3).unwrap();
    config.id = "../../etc".into();
    storage
        .put(crate::format::config::KEY, &config.to_json())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let r = RepoStorage::open(storage, CatalogLocation::cache_dir(dir.path())).unwrap();
    assert_eq!(r.id().len(), 32);
    assert!(r.id().bytes().all(|b| b.is_ascii_hexdigit()));
}

/// A repository can be shared between threads: the catalog keeps its one
/// connection behind a mutex. Fails to compile, not to run, if that breaks.
#[test]
fn a_repository_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Repository>();
    assert_send_sync::<crate::catalog::Catalog>();
}

/// Two clients of one storage, each with its own cache: each open sees what
/// the other wrote (a snapshot added, then one forgotten and its packs
/// collected), because a cache that no longer lists what storage holds is
/// rebuilt, while an up-to-date cache is opened as it is.
#[test]
fn a_stale_cache_is_rebuilt_when_another_client_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let (cache_a, cache_b) = (
        CatalogLocation::cache_dir(dir.path().join("a")),
        CatalogLocation::cache_dir(dir.path().join("b")),
    );
    let config = RepoConfig::new(ChunkerParams::with_average(4096), 0).unwrap();
    drop(Repository::init_with(Arc::clone(&storage), cache_a.clone(), config).unwrap());
    let src = dir.path().join("src");
    let count = |location: &CatalogLocation| {
        Repository::open_with(Arc::clone(&storage), location.clone())
            .unwrap()
            .snapshots(&SnapshotFilter::default())
            .unwrap()
            .len()
    };
    assert_eq!(count(&cache_a), 0);

    write_tree(&src, &version(1));
    let b = Repository::open_with(Arc::clone(&storage), cache_b.clone()).unwrap();
    b.snapshot(std::slice::from_ref(&src), &snapshot_options(), &NoProgress)
        .unwrap();
    drop(b);
    assert_eq!(count(&cache_a), 1, "A sees B's snapshot");
    let a_file = cache_a.file(
        RepoStorage::open(Arc::clone(&storage), cache_a.clone())
            .unwrap()
            .id(),
    );
    let built = fs::metadata(a_file.path()).unwrap().modified().unwrap();
    assert_eq!(count(&cache_a), 1);
    assert_eq!(
        fs::metadata(a_file.path()).unwrap().modified().unwrap(),
        built,
        "an up-to-date cache is not rebuilt"
    );

    let a = Repository::open_with(Arc::clone(&storage), cache_a.clone()).unwrap();
    let plan = forget::plan_delete(&a, &["model/tree".to_string()]).unwrap();
    forget::execute(&a, &plan).unwrap();
    drop(plan);
    let gc_plan = gc::plan(&a, 0.0).unwrap();
    gc::execute(&a, &gc_plan, &NoProgress).unwrap();
    drop((gc_plan, a));
    let b = Repository::open_with(Arc::clone(&storage), cache_b).unwrap();
    assert!(
        b.snapshots(&SnapshotFilter::default()).unwrap().is_empty(),
        "B sees the forget"
    );
    assert_eq!(
        b.catalog().pack_totals().unwrap().0,
        0,
        "and no pack gc deleted"
    );
    let leftovers: Vec<_> = fs::read_dir(dir.path().join("b"))
        .unwrap()
        .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("broken"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "a stale cache is not kept aside: {leftovers:?}"
    );
}
