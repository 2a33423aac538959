//! Repository URLs: which `--repo` values name object storage, and the one
//! parser for them. A value is a URL when it starts with `scheme://`; any
//! other value is a local path (so a directory named `s3:x` stays one).
//! Supported: `s3://bucket[/prefix]` (S3 and its compatibles),
//! `az://container[/prefix]` (Azure Blob Storage, also `azure://`) and
//! `gs://bucket[/prefix]` (Google Cloud Storage, also `gcs://`); every other
//! scheme is refused by name, so a typo never becomes a local directory
//! called `s3:`.

use crate::error::{Error, Result};

/// Which object store a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `s3://`: Amazon S3 and S3-compatible servers.
    S3,
    /// `az://`: Azure Blob Storage (a container of a storage account).
    Azure,
    /// `gs://`: Google Cloud Storage.
    Gcs,
}

impl Service {
    /// The scheme of the URL's normal form.
    pub fn scheme(self) -> &'static str {
        match self {
            Service::S3 => "s3",
            Service::Azure => "az",
            Service::Gcs => "gs",
        }
    }
}

/// `s3://bucket/prefix` (or `az://`, `gs://`): a repository under `prefix`
/// in `bucket` (for Azure, a container).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectUrl {
    pub service: Service,
    pub bucket: String,
    /// `/`-separated, without leading or trailing `/`; empty for the
    /// bucket's root.
    pub prefix: String,
}

impl ObjectUrl {
    /// The URL in its normal form, as messages name it.
    pub fn to_url(&self) -> String {
        let scheme = self.service.scheme();
        match self.prefix.is_empty() {
            true => format!("{scheme}://{}", self.bucket),
            false => format!("{scheme}://{}/{}", self.bucket, self.prefix),
        }
    }
}

/// The scheme of `value` if it is written as a URL (`scheme://…`).
fn scheme(value: &str) -> Option<&str> {
    let (scheme, _) = value.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

/// `None` for a local path; the parsed URL for `s3://…`, `az://…` or
/// `gs://…`; an [`Error::UnsupportedUrl`] naming the value for any other
/// URL or a malformed one.
pub fn parse(value: &str) -> Result<Option<ObjectUrl>> {
    let Some(scheme) = scheme(value) else {
        return Ok(None);
    };
    let bad = |reason: &str| Error::UnsupportedUrl {
        url: value.to_string(),
        reason: reason.to_string(),
    };
    let service =
        match scheme.to_ascii_lowercase().as_str() {
            "s3" => Service::S3,
            "az" | "azure" => Service::Azure,
            "gs" | "gcs" => Service::Gcs,
            _ => return Err(bad(
                "only s3://, az:// and gs:// URLs (bucket/prefix) and local paths are supported",
            )),
        };
    let rest = &value[scheme.len() + 3..];
    if rest.contains(['?', '#']) {
        return Err(bad("a repository URL takes no query or fragment"));
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if !valid_bucket(bucket) {
        return Err(bad(
            "the bucket name must be 3-63 characters of a-z, 0-9, `.` and `-`",
        ));
    }
    let prefix = prefix.trim_end_matches('/');
    if !prefix.is_empty()
        && prefix
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == ".." || p.starts_with(".tmp-"))
    {
        return Err(bad(
            "the prefix must be `/`-separated names, none empty, `.` or `..`",
        ));
    }
    Ok(Some(ObjectUrl {
        service,
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
    }))
}

fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.as_bytes()[0].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_stay_local() {
        for p in [
            "/backups/r",
            "rel/dir",
            "s3:x",
            "C:foo",
            "./s3://x",
            "a/b://c",
        ] {
            assert_eq!(parse(p).unwrap(), None, "{p}");
        }
    }

    #[test]
    fn s3_urls_parse_to_bucket_and_prefix() {
        let u = parse("s3://backups/cairn/team/").unwrap().unwrap();
        assert_eq!(
            (u.bucket.as_str(), u.prefix.as_str()),
            ("backups", "cairn/team")
        );
        assert_eq!(u.to_url(), "s3://backups/cairn/team");
        let root = parse("S3://my-bucket").unwrap().unwrap();
        assert_eq!(
            (root.bucket.as_str(), root.prefix.as_str()),
            ("my-bucket", "")
        );
        assert_eq!(root.to_url(), "s3://my-bucket");
        let az = parse("azure://backups/cairn").unwrap().unwrap();
        assert_eq!(
            (az.service, az.to_url().as_str()),
            (Service::Azure, "az://backups/cairn")
        );
        let gs = parse("gs://backups").unwrap().unwrap();
        assert_eq!(
            (gs.service, gs.to_url().as_str()),
            (Service::Gcs, "gs://backups")
        );
    }

    #[test]
    fn other_urls_and_bad_s3_urls_are_refused_by_name() {
        for u in [
            "http://host/x",
            "abfs://c/p",
            "gs://b/p",
            "az://c/p",
            "s3://",
            "s3://x",
            "s3://Upper/p",
            "s3://b_b/p",
            "s3://bkt/a//b",
            "s3://bkt/../b",
            "s3://bkt/p?x=1",
        ] {
            match parse(u) {
                Err(Error::UnsupportedUrl { url, .. }) => assert_eq!(url, u),
                other => panic!("{u}: {other:?}"),
            }
        }
    }
}
