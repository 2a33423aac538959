//! Repository URLs: which `--repo` values name object storage, and the one
//! parser for them. A value is a URL when it starts with `scheme://`; any
//! other value is a local path (so a directory named `s3:x` stays one).
//! Only `s3://bucket[/prefix]` is supported; every other scheme is refused
//! by name, so a typo never becomes a local directory called `s3:`.

use crate::error::{Error, Result};

/// `s3://bucket/prefix`: a repository under `prefix` in `bucket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectUrl {
    pub bucket: String,
    /// `/`-separated, without leading or trailing `/`; empty for the
    /// bucket's root.
    pub prefix: String,
}

impl ObjectUrl {
    /// The URL in its normal form, as messages name it.
    pub fn to_url(&self) -> String {
        match self.prefix.is_empty() {
            true => format!("s3://{}", self.bucket),
            false => format!("s3://{}/{}", self.bucket, self.prefix),
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

/// `None` for a local path; the parsed URL for `s3://…`; an
/// [`Error::UnsupportedUrl`] naming the value for any other URL or a
/// malformed `s3://` one.
pub fn parse(value: &str) -> Result<Option<ObjectUrl>> {
    let Some(scheme) = scheme(value) else {
        return Ok(None);
    };
    let bad = |reason: &str| Error::UnsupportedUrl {
        url: value.to_string(),
        reason: reason.to_string(),
    };
    match scheme.to_ascii_lowercase().as_str() {
        "s3" => {}
        "az" | "azure" | "abfs" | "gs" | "gcs" => {
            return Err(bad(
                "only s3:// repositories are supported (Azure Blob and GCS are not yet)",
            ))
        }
        _ => {
            return Err(bad(
                "only s3://bucket/prefix URLs and local paths are supported",
            ))
        }
    }
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
    }

    #[test]
    fn other_urls_and_bad_s3_urls_are_refused_by_name() {
        for u in [
            "http://host/x",
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
