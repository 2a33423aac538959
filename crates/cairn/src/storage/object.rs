//! Objects in an S3-compatible bucket (or an Azure Blob container, or a
//! Google Cloud Storage bucket), through the `object_store` crate.
//!
//! The crate is async; this backend owns one tokio runtime and blocks on
//! it in each call, so nothing else in cairn is async. The contract
//! ([`Storage`]) maps onto S3 as follows:
//! - **Atomic, durable put**: an S3 PUT (or a completed multipart upload,
//!   for objects of [`MULTIPART_FROM`] bytes or more) is visible whole or
//!   not at all, and durable when acknowledged.
//! - **Exclusive create**: [`PutMode::CreateNew`] is a PUT with
//!   `If-None-Match: *`; the server answers 412 (or 409) to every writer
//!   but one, which becomes [`Error::ObjectExists`].
//! - **Ranges**: a ranged GET; a range past the end (a 416, or a short
//!   answer) becomes [`Error::ObjectTruncated`] with the object's size.
//!   [`Storage::get_ranges`] keeps up to [`GETS_IN_FLIGHT`] of them in
//!   flight at once, answers in the order asked.
//! - **Several puts at once**: [`Storage::parallel_puts`] is
//!   [`PUTS_IN_FLIGHT`]; each put is its own request with its own promises.
//! - **Listing**: ListObjectsV2 pages, sorted by key before the visits
//!   (not every S3-compatible server lists in byte order).
//! - **Failures**: requests are retried with exponential backoff
//!   (`object_store`'s `RetryConfig`: [`ObjectSettings::retries`]); what is
//!   left is one typed error naming the URL of the object and what failed
//!   ([`Error::StorageAuth`], [`Error::BucketNotFound`],
//!   [`Error::StorageUnreachable`], else [`Error::Storage`]).
//!
//! Endpoint, region and credentials come from the standard variables of
//! each service (see [`s3_store`], [`azure_store`], [`gcs_store`]). S3 and
//! Azure (against Azurite) are tested; GCS is built from the same pieces
//! but not tested against a server.

pub mod aws_files;
#[cfg(test)]
pub(crate) mod azurite;
#[cfg(test)]
pub(crate) mod test_server;
pub mod url;

use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};

use super::{check_key, check_range, ObjectInfo, PutMode, Storage};
use crate::error::{Error, Result};
use url::{ObjectUrl, Service};

/// Objects this large or larger are uploaded in parts, several at once.
pub const MULTIPART_FROM: usize = 64 * 1024 * 1024;
/// The size of one part of a multipart upload.
const PART_SIZE: usize = 16 * 1024 * 1024;
/// How many parts of one upload are in flight at once.
const PARTS_IN_FLIGHT: usize = 4;
/// How many whole-object puts a writer should keep in flight: one at a
/// time left the link idle while a pack was sealed and indexed (#13).
/// Each costs a 32 MiB pack buffer; on the 2 GiB benchmark model to
/// SeaweedFS on loopback 2 and 3 were as fast (3 runs each: 11.9-15.0 s
/// and 12.8-13.4 s), at 160 and 192 MiB peak RSS. A 32 MiB pack takes
/// 32 ms at 1 GB/s, so two in flight also cover a 20 ms round trip.
pub const PUTS_IN_FLIGHT: usize = 2;
/// How many ranged GETs [`Storage::get_ranges`] keeps in flight: restore
/// and check read runs of chunks one request each, and one at a time left
/// them bound by round trips (#13).
pub const GETS_IN_FLIGHT: usize = 8;

/// How the backend connects, beyond the environment, and how hard it tries
/// before it reports a failure: for every object store (S3, Azure, GCS),
/// whose variables keep their historical `CAIRN_S3_` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSettings {
    /// The endpoint URL, overriding `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// Access key id and secret key, overriding the environment's.
    pub credentials: Option<(String, String)>,
    /// Retries of a failed request (connection errors, 5xx, timeouts),
    /// with exponential backoff from 100 ms up to 15 s.
    pub retries: usize,
    /// Timeout of one request, and of connecting.
    pub timeout: Duration,
}

impl Default for ObjectSettings {
    fn default() -> Self {
        Self {
            endpoint: None,
            credentials: None,
            retries: 10,
            timeout: Duration::from_secs(60),
        }
    }
}

impl ObjectSettings {
    /// The defaults, overridden by `CAIRN_S3_RETRIES` (a count) and
    /// `CAIRN_S3_TIMEOUT_SECS` (whole seconds).
    pub fn from_env() -> Result<Self> {
        let mut s = Self::default();
        let num = |var: &str| -> Result<Option<u64>> {
            match std::env::var(var) {
                Ok(v) => v.trim().parse().map(Some).map_err(|_| {
                    Error::InvalidArgument(format!("{var}={v:?} is not a whole number"))
                }),
                Err(_) => Ok(None),
            }
        };
        if let Some(n) = num("CAIRN_S3_RETRIES")? {
            s.retries = n as usize;
        }
        if let Some(n) = num("CAIRN_S3_TIMEOUT_SECS")? {
            s.timeout = Duration::from_secs(n.max(1));
        }
        Ok(s)
    }
}

/// `builder` with the settings of an AWS profile that the environment did
/// not give already. Keys go together: a profile's secret never pairs with
/// the environment's key id.
fn with_profile(mut builder: AmazonS3Builder, profile: &aws_files::Profile) -> AmazonS3Builder {
    use AmazonS3ConfigKey as K;
    let unset = |b: &AmazonS3Builder, key: &K| b.get_config_value(key).is_none();
    if unset(&builder, &K::AccessKeyId) && unset(&builder, &K::SecretAccessKey) {
        if let (Some(id), Some(secret)) = (
            profile.get("aws_access_key_id"),
            profile.get("aws_secret_access_key"),
        ) {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
            if let Some(token) = profile.get("aws_session_token") {
                builder = builder.with_token(token);
            }
        }
    }
    for (key, name) in [(K::Region, "region"), (K::Endpoint, "endpoint_url")] {
        if let (true, Some(value)) = (unset(&builder, &key), profile.get(name)) {
            builder = builder.with_config(key, value);
        }
    }
    builder
}

/// A client for one service, and how messages name its server.
type Client = (Box<dyn ObjectStore>, String);

/// The `object_store` error of a builder as cairn's.
fn unsupported(url: &ObjectUrl, e: object_store::Error) -> Error {
    Error::UnsupportedUrl {
        url: url.to_url(),
        reason: format!("cannot configure the object store client: {e}"),
    }
}

/// An S3 client. Endpoint, region and credentials come from the
/// environment, as AWS tools read it: `AWS_ENDPOINT_URL` (or
/// `AWS_ENDPOINT`; an `http://` endpoint is allowed as such), `AWS_REGION` /
/// `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, and the other `AWS_*` keys `object_store` knows (web
/// identity, container credentials, `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`;
/// requests are path-style unless that is set). What the environment leaves
/// unset comes from the `~/.aws` config and credentials files (see
/// [`aws_files`]).
fn s3_store(
    url: &ObjectUrl,
    settings: &ObjectSettings,
    client: ClientOptions,
    retry: RetryConfig,
) -> Result<Client> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(&url.bucket);
    if let Some(profile) = aws_files::load_from_env()? {
        builder = with_profile(builder, &profile);
    }
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some((key, secret)) = &settings.credentials {
        builder = builder
            .with_access_key_id(key)
            .with_secret_access_key(secret);
    }
    let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
    let http = endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"));
    let store = builder
        .with_client_options(client.with_allow_http(http))
        .with_retry(retry)
        .build()
        .map_err(|e| unsupported(url, e))?;
    let endpoint = endpoint.unwrap_or_else(|| "the AWS S3 endpoint".to_string());
    Ok((Box::new(store), endpoint))
}

/// An Azure Blob Storage client for the container `url.bucket`, from the
/// `AZURE_STORAGE_*` variables `object_store` reads
/// (`AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`,
/// `AZURE_STORAGE_SAS_KEY`, `AZURE_STORAGE_ENDPOINT`, …;
/// `AZURE_STORAGE_USE_EMULATOR=true` for Azurite, at
/// `AZURITE_BLOB_STORAGE_URL`, default `http://127.0.0.1:10000`).
/// `settings.credentials` are an account name and key.
fn azure_store(
    url: &ObjectUrl,
    settings: &ObjectSettings,
    client: ClientOptions,
    retry: RetryConfig,
) -> Result<Client> {
    use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
    let mut builder = MicrosoftAzureBuilder::from_env().with_container_name(&url.bucket);
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    if let Some((account, key)) = &settings.credentials {
        builder = builder.with_account(account).with_access_key(key);
    }
    let value = |key| builder.get_config_value(&key);
    let emulator = value(AzureConfigKey::UseEmulator).is_some_and(|v| v == "true");
    let endpoint = match (
        value(AzureConfigKey::Endpoint),
        value(AzureConfigKey::AccountName),
    ) {
        _ if emulator => std::env::var("AZURITE_BLOB_STORAGE_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:10000".to_string()),
        (Some(endpoint), _) => endpoint,
        (None, Some(account)) => format!("https://{account}.blob.core.windows.net"),
        (None, None) => "Azure Blob Storage".to_string(),
    };
    let http = endpoint.starts_with("http://");
    let store = builder
        .with_client_options(client.with_allow_http(http))
        .with_retry(retry)
        .build()
        .map_err(|e| unsupported(url, e))?;
    Ok((Box::new(store), endpoint))
}

/// A Google Cloud Storage client, from the `GOOGLE_*` variables
/// `object_store` reads (`GOOGLE_SERVICE_ACCOUNT` or
/// `GOOGLE_SERVICE_ACCOUNT_KEY`, else application default credentials).
fn gcs_store(
    url: &ObjectUrl,
    settings: &ObjectSettings,
    client: ClientOptions,
    retry: RetryConfig,
) -> Result<Client> {
    if settings.endpoint.is_some() || settings.credentials.is_some() {
        return Err(Error::UnsupportedUrl {
            url: url.to_url(),
            reason:
                "an endpoint or key pair is not supported for gs:// (use the GOOGLE_* variables)"
                    .into(),
        });
    }
    let store = object_store::gcp::GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(&url.bucket)
        .with_client_options(client)
        .with_retry(retry)
        .build()
        .map_err(|e| unsupported(url, e))?;
    Ok((Box::new(store), "Google Cloud Storage".to_string()))
}

/// A repository's objects under one prefix of one bucket.
pub struct ObjectStorage {
    store: Box<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
    url: ObjectUrl,
    /// How messages name the server: the endpoint URL, or AWS's.
    endpoint: String,
}

impl ObjectStorage {
    /// Connects to the bucket of `url` (no request is made yet), with the
    /// settings of its service: [`s3_store`], [`azure_store`] or
    /// [`gcs_store`].
    pub fn open(url: ObjectUrl, settings: ObjectSettings) -> Result<Self> {
        let location = url.to_url();
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: settings.retries,
            retry_timeout: Duration::from_secs(180),
        };
        let client = ClientOptions::new()
            .with_timeout(settings.timeout)
            .with_connect_timeout(settings.timeout);
        let (store, endpoint) = match url.service {
            Service::S3 => s3_store(&url, &settings, client, retry)?,
            Service::Azure => azure_store(&url, &settings, client, retry)?,
            Service::Gcs => gcs_store(&url, &settings, client, retry)?,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::Storage {
                key: location,
                source: format!("cannot start the object store client's runtime: {e}").into(),
            })?;
        Ok(Self {
            store,
            runtime,
            endpoint,
            url,
        })
    }

    /// The URL the repository was opened with (`s3://bucket/prefix`).
    pub fn url(&self) -> &ObjectUrl {
        &self.url
    }

    fn path(&self, key: &str) -> ObjectPath {
        ObjectPath::from(self.full(key))
    }

    /// `key` under the repository's prefix, as the bucket names it.
    fn full(&self, key: &str) -> String {
        match self.url.prefix.is_empty() {
            true => key.to_string(),
            false => format!("{}/{key}", self.url.prefix),
        }
    }

    fn object_url(&self, key: &str) -> String {
        match key.is_empty() {
            true => self.url.to_url(),
            false => format!("{}/{key}", self.url.to_url()),
        }
    }

    fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// One typed error for a failed `op` (`"get"`, `"put"`, …) on `key`.
    fn error(&self, op: &str, key: &str, e: object_store::Error) -> Error {
        let text = e.to_string();
        let url = self.object_url(key);
        if text.contains("NoSuchBucket") || text.contains("ContainerNotFound") {
            return Error::BucketNotFound {
                url,
                bucket: self.url.bucket.clone(),
                endpoint: self.endpoint.clone(),
            };
        }
        let code = s3_code(&text);
        if code.as_deref().is_some_and(|c| AUTH_CODES.contains(&c)) {
            return Error::StorageAuth {
                url,
                reason: code.unwrap_or_default(),
            };
        }
        match e {
            object_store::Error::NotFound { .. } => Error::ObjectNotFound {
                key: key.to_string(),
            },
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => Error::ObjectExists {
                key: key.to_string(),
            },
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => Error::StorageAuth {
                url,
                reason: code.unwrap_or_else(|| "access denied".to_string()),
            },
            e if unreachable(&e) => Error::StorageUnreachable {
                url,
                endpoint: self.endpoint.clone(),
                reason: innermost(&e),
            },
            _ if server_error(&text).is_some() => Error::StorageServerError {
                url,
                endpoint: self.endpoint.clone(),
                reason: format!(
                    "{} {}",
                    server_error(&text).unwrap_or_default(),
                    code.unwrap_or_default()
                )
                .trim()
                .to_string(),
            },
            e => Error::Storage {
                key: url,
                source: format!("{op} failed: {e}").into(),
            },
        }
    }

    async fn put_multipart(&self, path: &ObjectPath, data: &[u8]) -> object_store::Result<()> {
        let upload = self
            .store
            .put_multipart_opts(path, PutMultipartOptions::default())
            .await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        for part in data.chunks(PART_SIZE) {
            writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            writer.write(part);
        }
        // `finish` aborts the upload on failure, leaving no parts behind.
        writer.finish().await.map(drop)
    }

    /// Whether `len` bytes put as `mode` go up in parts.
    fn in_parts(len: usize, mode: PutMode) -> bool {
        mode == PutMode::Overwrite && len >= MULTIPART_FROM
    }

    /// A multipart put of `data`, which the client copies part by part.
    fn put_in_parts(&self, key: &str, data: &[u8]) -> Result<()> {
        check_key(key)?;
        let path = self.path(key);
        self.block(self.put_multipart(&path, data))
            .map_err(|e| self.error("put", key, e))
    }

    /// A single-request put of `data`, which the client takes as it is.
    fn put_whole(&self, key: &str, data: Bytes, mode: PutMode) -> Result<()> {
        check_key(key)?;
        let path = self.path(key);
        let opts = PutOptions {
            mode: match mode {
                PutMode::Overwrite => object_store::PutMode::Overwrite,
                PutMode::CreateNew => object_store::PutMode::Create,
            },
            ..Default::default()
        };
        let payload = PutPayload::from(data);
        self.block(self.store.put_opts(&path, payload, opts))
            .map(drop)
            .map_err(|e| self.error("put", key, e))
    }

    /// The size of `key` (a HEAD request).
    async fn size(&self, key: &str) -> Result<u64> {
        check_key(key)?;
        let path = self.path(key);
        self.store
            .head(&path)
            .await
            .map(|meta| meta.size)
            .map_err(|e| self.error("head", key, e))
    }

    /// One ranged GET with the contract's answers, as a future, so that
    /// [`Storage::get_range`] blocks on one and [`Storage::get_ranges`]
    /// runs several at once.
    async fn range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        check_key(key)?;
        let Some(end) = offset.checked_add(len).filter(|_| len > 0) else {
            // Nothing to read (or no such range): only the size decides.
            check_range(key, offset, len, self.size(key).await?)?;
            return Ok(Vec::new());
        };
        let path = self.path(key);
        let opts = GetOptions {
            range: Some(GetRange::Bounded(offset..end)),
            ..Default::default()
        };
        let got = async {
            let got = self.store.get_opts(&path, opts).await?;
            let size = got.meta.size;
            got.bytes().await.map(|b| (b, size))
        };
        match got.await {
            Ok((bytes, _)) if bytes.len() as u64 == len => Ok(bytes.to_vec()),
            Ok((_, size)) => {
                check_range(key, offset, len, size)?;
                Err(Error::ObjectTruncated {
                    key: key.to_string(),
                    offset,
                    len,
                    size,
                })
            }
            Err(e @ object_store::Error::NotFound { .. }) => Err(self.error("get", key, e)),
            Err(e) => match self.error("ranged get", key, e) {
                // A 416 or the like: the object's size says whether the
                // range was past its end.
                err @ Error::Storage { .. } => match self.size(key).await {
                    Ok(size) => Err(check_range(key, offset, len, size).err().unwrap_or(err)),
                    Err(e) => Err(e),
                },
                other => Err(other),
            },
        }
    }
}

impl Storage for ObjectStorage {
    fn put_with(&self, key: &str, data: &[u8], mode: PutMode) -> Result<()> {
        if Self::in_parts(data.len(), mode) {
            return self.put_in_parts(key, data);
        }
        // The client keeps the body as its own: borrowed bytes are copied.
        self.put_whole(key, Bytes::copy_from_slice(data), mode)
    }

    fn put_bytes(&self, key: &str, data: Bytes, mode: PutMode) -> Result<()> {
        if Self::in_parts(data.len(), mode) {
            return self.put_in_parts(key, &data);
        }
        self.put_whole(key, data, mode)
    }

    fn parallel_puts(&self) -> usize {
        PUTS_IN_FLIGHT
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        check_key(key)?;
        let path = self.path(key);
        self.block(async {
            let got = self.store.get(&path).await?;
            got.bytes().await
        })
        .map(|b| b.to_vec())
        .map_err(|e| self.error("get", key, e))
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.block(self.range(key, offset, len))
    }

    fn get_ranges(&self, ranges: &[(&str, u64, u64)]) -> Result<Vec<Vec<u8>>> {
        let requests = ranges
            .iter()
            .map(|&(key, offset, len)| self.range(key, offset, len));
        self.block(
            futures_util::stream::iter(requests)
                .buffered(GETS_IN_FLIGHT)
                .try_collect(),
        )
    }

    fn head(&self, key: &str) -> Result<u64> {
        self.block(self.size(key))
    }

    fn list_each(
        &self,
        prefix: &str,
        visit: &mut dyn FnMut(ObjectInfo) -> Result<()>,
    ) -> Result<()> {
        // S3 lists by any string prefix, `object_store` by whole path
        // segments: list the segments before the last `/` and filter.
        let full = self.full(prefix);
        let full = match prefix.is_empty() && !self.url.prefix.is_empty() {
            true => format!("{}/", self.url.prefix),
            false => full,
        };
        let dir = full.rsplit_once('/').map(|(dir, _)| dir).unwrap_or("");
        let dir_path = (!dir.is_empty()).then(|| ObjectPath::from(dir));
        let strip = match self.url.prefix.is_empty() {
            true => 0,
            false => self.url.prefix.len() + 1,
        };
        // Collected and sorted before the visits: S3 lists in byte order,
        // but not every S3-compatible server does (SeaweedFS walks its
        // directories depth first, `a/x` before `a.b`). The pages are
        // fetched one after another; only keys and sizes are kept.
        let mut found = Vec::new();
        let mut stream = self.store.list(dir_path.as_ref());
        while let Some(next) = self.block(stream.next()) {
            let meta = next.map_err(|e| self.error("list", prefix, e))?;
            let name = meta.location.as_ref();
            if name.starts_with(&full) {
                found.push(ObjectInfo {
                    key: name[strip..].to_string(),
                    size: meta.size,
                });
            }
        }
        found.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        found.into_iter().try_for_each(visit)
    }

    fn delete(&self, key: &str) -> Result<()> {
        check_key(key)?;
        let path = self.path(key);
        match self.block(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", key, e)),
        }
    }

    fn location(&self) -> String {
        self.url.to_url()
    }
}

/// S3 (and Azure) error codes that mean the credentials were refused, whichever request
/// (and `object_store` error variant) they came with.
const AUTH_CODES: &[&str] = &[
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    // Azure Blob Storage
    "AuthenticationFailed",
    "AuthorizationFailure",
    "AuthorizationPermissionMismatch",
];

/// The S3 error code in a response body (`<Code>SignatureDoesNotMatch</Code>`).
fn s3_code(text: &str) -> Option<String> {
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(text[start..start + len].to_string())
}

/// The status of a 5xx answer (`500 Internal Server Error`), as
/// `object_store` words it.
fn server_error(text: &str) -> Option<&str> {
    let at = text.find("status code: 5")? + "status code: ".len();
    let rest = &text[at..];
    let end = rest.find(':').unwrap_or(rest.len());
    Some(rest[..end].trim())
}

/// True when the request never got an answer: the connection failed or
/// timed out (after the retries).
fn unreachable(e: &object_store::Error) -> bool {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(http) = c.downcast_ref::<HttpError>() {
            return matches!(http.kind(), HttpErrorKind::Connect | HttpErrorKind::Timeout);
        }
        cause = c.source();
    }
    false
}

/// The last error of a chain, which says what the network did.
fn innermost(e: &object_store::Error) -> String {
    let mut cause: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests;
