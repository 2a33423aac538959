//! The S3 backend against a real SeaweedFS (see `test_server.rs`).

use super::*;

/// The backend for a fresh prefix of the test server, retrying little.
pub(crate) fn storage(test: &str) -> Option<ObjectStorage> {
    let server = test_server::server(test)?;
    let url = url::parse(&server.url(test)).unwrap().unwrap();
    let settings = ObjectSettings {
        endpoint: Some(server.endpoint.clone()),
        credentials: Some((server.access_key.clone(), server.secret_key.clone())),
        retries: 2,
        ..Default::default()
    };
    Some(ObjectStorage::open(url, settings).unwrap())
}

/// The Azure backend meets the same contract against Azurite: create-only
/// puts, ranges, listings, deletes.
#[test]
fn meets_the_storage_contract_on_azurite() {
    let Some(server) = azurite::azurite("azure_contract") else {
        return;
    };
    let url = url::parse(&server.url("azure_contract")).unwrap().unwrap();
    let settings = ObjectSettings {
        endpoint: Some(server.endpoint()),
        credentials: Some((azurite::ACCOUNT.into(), azurite::KEY.into())),
        retries: 2,
        ..Default::default()
    };
    let s = ObjectStorage::open(url, settings).unwrap();
    crate::storage::contract_tests::run(&s);
}

#[test]
fn meets_the_storage_contract_on_a_real_s3_server() {
    let Some(s) = storage("s3_contract") else {
        return;
    };
    crate::storage::contract_tests::run(&s);
}

fn open_with(
    test: &str,
    edit: impl FnOnce(&mut ObjectSettings, &mut ObjectUrl),
) -> Option<ObjectStorage> {
    let server = test_server::server(test)?;
    let mut url = url::parse(&server.url(test)).unwrap().unwrap();
    let mut settings = ObjectSettings {
        endpoint: Some(server.endpoint.clone()),
        credentials: Some((server.access_key.clone(), server.secret_key.clone())),
        retries: 1,
        ..Default::default()
    };
    edit(&mut settings, &mut url);
    Some(ObjectStorage::open(url, settings).unwrap())
}

#[test]
fn a_wrong_secret_key_is_an_auth_error_naming_the_url() {
    let Some(s) = open_with("s3_wrong_secret", |s, _| {
        let key = s.credentials.take().unwrap().0;
        s.credentials = Some((key, "wrong".into()))
    }) else {
        return;
    };
    match s.get("config") {
        Err(e @ Error::StorageAuth { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&s.location()), "{text}");
            assert!(text.contains("SignatureDoesNotMatch"), "{text}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_missing_bucket_is_named() {
    let Some(s) = open_with("s3_no_bucket", |_, u| u.bucket = "no-such-bucket".into()) else {
        return;
    };
    for r in [
        s.get("config").map(drop),
        s.put("config", b"x"),
        s.list("").map(drop),
    ] {
        match r {
            Err(Error::BucketNotFound { bucket, .. }) => assert_eq!(bucket, "no-such-bucket"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn large_objects_go_up_in_parts_and_come_back_whole() {
    let Some(s) = storage("s3_multipart") else {
        return;
    };
    let data = crate::test_support::random_bytes(7, MULTIPART_FROM + PART_SIZE / 2 + 3);
    s.put("packs/big", &data).unwrap();
    assert_eq!(s.head("packs/big").unwrap(), data.len() as u64);
    let end = data.len() as u64;
    assert_eq!(
        s.get_range("packs/big", end - 5, 5).unwrap(),
        &data[data.len() - 5..]
    );
    assert!(s.get("packs/big").unwrap() == data);
    s.delete("packs/big").unwrap();
}

#[test]
fn server_errors_and_s3_codes_are_read_from_the_message() {
    let text = "Error performing GET http://h/b/k in 3ms, after 2 retries - Server returned \
                non-2xx status code: 503 Service Unavailable: <Error><Code>SlowDown</Code>";
    assert_eq!(server_error(text), Some("503 Service Unavailable"));
    assert_eq!(s3_code(text).as_deref(), Some("SlowDown"));
    assert_eq!(server_error("status code: 404 Not Found: x"), None);
}

/// No server behind the endpoint: a bounded number of retries, then one
/// error naming the endpoint. Needs no server, so it always runs.
#[test]
fn an_unreachable_endpoint_is_reported_after_bounded_retries() {
    let url = url::parse("s3://bucket/p").unwrap().unwrap();
    let settings = ObjectSettings {
        endpoint: Some("http://127.0.0.1:9".into()),
        credentials: Some(("k".into(), "s".into())),
        retries: 1,
        timeout: Duration::from_secs(2),
    };
    let s = ObjectStorage::open(url, settings).unwrap();
    let start = std::time::Instant::now();
    match s.get("config") {
        Err(e @ Error::StorageUnreachable { .. }) => {
            let text = e.to_string();
            assert!(text.contains("http://127.0.0.1:9"), "{text}");
            assert!(text.contains("s3://bucket/p/config"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// Counts the requests of what runs on it: each call is one request,
/// but a listing (one per 1000 keys).
struct Counting {
    inner: ObjectStorage,
    calls: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Counting {
    fn count(&self, op: &'static str) {
        *self.calls.lock().unwrap().entry(op).or_default() += 1;
    }
    fn take(&self) -> std::collections::BTreeMap<&'static str, u64> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

impl Storage for Counting {
    fn put_with(&self, key: &str, data: &[u8], mode: PutMode) -> Result<()> {
        self.count("put");
        self.inner.put_with(key, data, mode)
    }
    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.count("get");
        self.inner.get(key)
    }
    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.count("get_range");
        self.inner.get_range(key, offset, len)
    }
    fn head(&self, key: &str) -> Result<u64> {
        self.count("head");
        self.inner.head(key)
    }
    fn list_each(
        &self,
        prefix: &str,
        visit: &mut dyn FnMut(ObjectInfo) -> Result<()>,
    ) -> Result<()> {
        self.count("list");
        self.inner.list_each(prefix, visit)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.count("delete");
        self.inner.delete(key)
    }
    fn location(&self) -> String {
        self.inner.location()
    }
}

/// What an unchanged re-snapshot costs in requests, opening included
/// (what one `cairn snapshot` run does): printed, and bounded.
#[test]
fn an_unchanged_resnapshot_makes_a_handful_of_requests() {
    use crate::{ChunkerParams, NoProgress, RepoConfig, Repository, SnapshotLabel};
    let Some(inner) = storage("s3_request_count") else {
        return;
    };
    let counting = std::sync::Arc::new(Counting {
        inner,
        calls: Default::default(),
    });
    let dir = tempfile::tempdir().unwrap();
    let cache = crate::CatalogLocation::cache_dir(dir.path().join("cache"));
    let src = dir.path().join("model");
    std::fs::create_dir(&src).unwrap();
    for i in 0..20u64 {
        let data = crate::test_support::random_bytes(i, 100_000);
        std::fs::write(src.join(format!("shard-{i}.bin")), data).unwrap();
    }
    let opts = crate::SnapshotOptions {
        label: SnapshotLabel::new("model", "m"),
        ..Default::default()
    };
    let config = RepoConfig::new(ChunkerParams::default(), 3).unwrap();
    let repo = Repository::init_with(counting.clone(), cache.clone(), config).unwrap();
    repo.snapshot(std::slice::from_ref(&src), &opts, &NoProgress)
        .unwrap();
    drop(repo);
    counting.take();
    let repo = Repository::open_with(counting.clone(), cache).unwrap();
    let report = repo
        .snapshot(std::slice::from_ref(&src), &opts, &NoProgress)
        .unwrap();
    drop(repo);
    assert_eq!(report.chunks_new, 0);
    let calls = counting.take();
    let total: u64 = calls.values().sum();
    eprintln!("an unchanged re-snapshot of 20 files: {total} requests {calls:?}");
    assert!(total <= 15, "{calls:?}");
}
