//! The library's one error type. Every variant carries what a user needs to
//! act on it: the path, the object key, the snapshot or chunk id.

use std::path::PathBuf;

use crate::format::id::{ChunkId, PackId};

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in cairn's library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("no cairn repository at {path}")]
    RepoNotFound { path: PathBuf },

    #[error("{path} already holds a cairn repository")]
    RepoExists { path: PathBuf },

    #[error("{path} exists and is not empty; refusing to create a repository there")]
    RepoDirNotEmpty { path: PathBuf },

    #[error("{what} at {path} has format version {found}, this cairn reads up to {supported}")]
    UnsupportedVersion {
        what: &'static str,
        path: String,
        found: u32,
        supported: u32,
    },

    #[error("repository config {path} is invalid: {reason}")]
    BadConfig { path: PathBuf, reason: String },

    /// Neither `config` nor `config.backup` is there, but the repository's
    /// data is: not a place for `init`, which would refuse it anyway.
    #[error(
        "{path} holds a cairn repository (packs and snapshots) but its config and config.backup are both missing"
    )]
    ConfigMissing { path: PathBuf },

    /// `config` and `config.backup` are both unusable; each reason says why.
    #[error(
        "the repository config at {path} is unusable: config: {config}; config.backup: {backup}"
    )]
    ConfigUnusable {
        path: PathBuf,
        config: String,
        backup: String,
    },

    /// The filesystem is full (ENOSPC, EDQUOT, or SQLite's `SQLITE_FULL`).
    /// Nothing is damaged: the write that failed left no partial object.
    #[error("{path}: no space left on device; nothing is damaged")]
    NoSpace { path: PathBuf },

    /// The storage contract's "not found": no object under `key` (see
    /// [`crate::storage::Storage`]).
    #[error("object {key} not found in the repository")]
    ObjectNotFound { key: String },

    /// A `put` with [`crate::storage::PutMode::CreateNew`] found an object
    /// already under `key`; nothing was written.
    #[error("object {key} already exists in the repository")]
    ObjectExists { key: String },

    /// A range read past the end of the object: it is shorter than whoever
    /// asked for the range expected (a truncated object).
    #[error("object {key}: range {offset}+{len} is past the end of the {size}-byte object")]
    ObjectTruncated {
        key: String,
        offset: u64,
        len: u64,
        size: u64,
    },

    /// A backend failed to carry out an operation on `key` (network,
    /// permissions, an injected fault). Local files report [`Error::Io`]
    /// instead, with the full path of the file behind the key.
    #[error("{key}: {source}")]
    Storage {
        key: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The object store refused the credentials (a wrong secret key, an
    /// expired token, no permission for the bucket). Retrying cannot help.
    #[error("{url}: the object store refused the credentials ({reason})")]
    StorageAuth { url: String, reason: String },

    /// The bucket a repository URL names does not exist at the endpoint.
    #[error("{url}: bucket `{bucket}` does not exist at {endpoint}")]
    BucketNotFound {
        url: String,
        bucket: String,
        endpoint: String,
    },

    /// The object store did not answer (connection refused, timeouts),
    /// also after the configured retries.
    #[error("{url}: cannot reach the object store at {endpoint} ({reason})")]
    StorageUnreachable {
        url: String,
        endpoint: String,
        reason: String,
    },

    /// The object store kept answering with a server error (5xx), also
    /// after the configured retries.
    #[error("{url}: the object store at {endpoint} failed ({reason})")]
    StorageServerError {
        url: String,
        endpoint: String,
        reason: String,
    },

    /// A `--repo` value that looks like a URL but is not one cairn can open.
    #[error("unsupported repository URL `{url}`: {reason}")]
    UnsupportedUrl { url: String, reason: String },

    #[error("pack {pack} is corrupt: {reason}")]
    CorruptPack { pack: String, reason: String },

    #[error("manifest {key} is corrupt: {reason}")]
    CorruptManifest { key: String, reason: String },

    /// A sealed object of an encrypted repository that does not open.
    #[error("object {key} is corrupt: {reason}")]
    CorruptObject { key: String, reason: String },

    #[error("key file {key} is unreadable: {reason}")]
    BadKeyFile { key: String, reason: String },

    #[error("repository {path} is encrypted and no password was given")]
    PasswordRequired { path: PathBuf },

    #[error("wrong password for repository {path}: no key file in keys/ opens with it")]
    WrongPassword { path: PathBuf },

    /// A password file that gives no password (unreadable, not UTF-8, or
    /// an empty first line).
    #[error("password file {path}: {reason}")]
    BadPasswordFile { path: PathBuf, reason: String },

    #[error("repository {path} is not encrypted: it has no keys")]
    NotEncrypted { path: PathBuf },

    #[error("no key `{id}` in repository {path} (`cairn key list` shows them)")]
    KeyNotFound { path: PathBuf, id: String },

    #[error("refusing to remove key {id} of repository {path}: {reason}")]
    KeyRemovalRefused {
        path: PathBuf,
        id: String,
        reason: &'static str,
    },

    #[error("chunk {chunk} is not in the catalog (the repository is damaged)")]
    ChunkMissing { chunk: ChunkId },

    #[error("chunk {chunk} in pack {pack} is corrupt: {reason}")]
    CorruptChunk {
        chunk: ChunkId,
        pack: PackId,
        reason: String,
    },

    #[error("catalog {path} is missing")]
    CatalogMissing { path: PathBuf },

    #[error("catalog {path}: {source}")]
    Catalog {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error("catalog {path} is damaged ({problem}); nothing was changed")]
    CatalogDamaged { path: PathBuf, problem: String },

    #[error("no snapshot matches `{selector}`{}", candidates_hint(.heading, .candidates))]
    SnapshotNotFound {
        selector: String,
        /// What `candidates` are, e.g. "known names" or "snapshots of model/llm".
        heading: String,
        candidates: Vec<String>,
    },

    #[error("`{selector}` is ambiguous; it matches:\n  {}", .candidates.join("\n  "))]
    AmbiguousSelector {
        selector: String,
        candidates: Vec<String>,
    },

    #[error("invalid snapshot selector `{selector}`: {reason}")]
    BadSelector { selector: String, reason: String },

    #[error(
        "{path} changed while it was read ({reason}); snapshot aborted, nothing was committed"
    )]
    SourceChanged { path: PathBuf, reason: String },

    /// The manifest stores names as UTF-8; `path` shows other bytes as `\xNN`.
    #[error("file name is not valid UTF-8: {path}")]
    NonUtf8Name { path: String },

    #[error("symlink target of {path} is not valid UTF-8: {target}")]
    NonUtf8LinkTarget { path: String, target: String },

    #[error("{path} already exists")]
    TargetExists { path: PathBuf },

    #[error(
        "{path} is a dangling symlink (to {points_to}, which does not exist); cannot restore there"
    )]
    DanglingSymlink { path: PathBuf, points_to: PathBuf },

    #[error(
        "refusing to restore into {target}: restored files would land inside the repository {repo}"
    )]
    TargetInRepository { target: PathBuf, repo: PathBuf },

    #[error(
        "{path}: restored content does not match its SHA-256 (expected {expected}, got {actual})"
    )]
    DigestMismatch {
        path: String,
        expected: String,
        actual: String,
    },

    #[error("{path} is not in snapshot {snapshot}")]
    PathNotInSnapshot { path: String, snapshot: String },

    #[error("{path} in snapshot {snapshot} is a {kind}, not a file")]
    NotAFile {
        path: String,
        snapshot: String,
        kind: &'static str,
    },

    /// A chunk-level error met while reading one file of a snapshot.
    #[error("{path}: {source}")]
    InFile {
        path: String,
        #[source]
        source: Box<Error>,
    },

    #[error("unsafe path in manifest: {path}")]
    UnsafePath { path: String },

    /// Each holder says who holds it, since when, and what to do about it.
    #[error(
        "repository is locked:\n  {}",
        .holders.join("\n  ")
    )]
    Locked { holders: Vec<String> },

    #[error("the repository lock {key} is no longer held: {reason}; stopped before changing anything it protects")]
    LockLost { key: String, reason: String },

    #[error(
        "the policy would remove every snapshot of {}; refusing",
        .histories.join(", ")
    )]
    WouldEmptyHistory { histories: Vec<String> },

    #[error("stored retention policies ({key}) are unreadable: {reason}")]
    BadPolicies { key: String, reason: String },

    #[error("forget intent {key} is unreadable: {reason}; it names snapshots an interrupted forget was removing (docs/FORMAT.md, \"Forgetting a snapshot\")")]
    BadForgetIntent { key: String, reason: String },

    /// `copy` between repositories whose chunks cannot be copied as they
    /// are (see `ops::copy::compatibility`); nothing was written.
    #[error("cannot copy from {from} to {to}: {reason}")]
    IncompatibleRepositories {
        from: String,
        to: String,
        reason: String,
    },

    #[error("{0}")]
    InvalidArgument(String),

    /// A source given to `snapshot` cannot be stored under its path as
    /// given (a `..` after a name, or two sources that would share a
    /// stored path); nothing was written.
    #[error("cannot snapshot {path}: {reason}")]
    RefusedSource { path: String, reason: String },

    /// A source given to `snapshot` is a pipe, socket or device (for
    /// example `/dev/stdin` fed by a pipe): its bytes cannot be walked as
    /// a file; nothing was written.
    #[error("cannot snapshot {path}: it is a {what}, not a file, directory or symlink")]
    UnsupportedSource { path: String, what: &'static str },

    /// The caller's [`crate::Progress::cancelled`] asked the operation to
    /// stop; it stopped as a failed run would (nothing half-visible).
    #[error("cancelled; the repository is as it was before")]
    Cancelled,
}

fn candidates_hint(heading: &str, candidates: &[String]) -> String {
    if candidates.is_empty() {
        String::new()
    } else {
        format!("; {heading}:\n  {}", candidates.join("\n  "))
    }
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    /// A full filesystem becomes [`Error::NoSpace`], so no caller has to
    /// look at the errno to tell the user what to do.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        if is_enospc(&source) {
            return Error::NoSpace { path: path.into() };
        }
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the error is a full filesystem, wherever it came from.
    pub fn is_no_space(&self) -> bool {
        match self {
            Error::NoSpace { .. } => true,
            Error::Io { source, .. } => is_enospc(source),
            Error::InFile { source, .. } => source.is_no_space(),
            _ => false,
        }
    }

    /// True when the storage itself could not be used (credentials refused,
    /// no such bucket, no answer): nothing is known about any object.
    pub fn is_storage_unavailable(&self) -> bool {
        matches!(
            self,
            Error::StorageAuth { .. }
                | Error::BucketNotFound { .. }
                | Error::StorageUnreachable { .. }
                | Error::StorageServerError { .. }
        )
    }

    /// True when the error means the data read back is not what was written:
    /// the CLI maps these to exit code 1 ("damage found").
    pub fn is_damage(&self) -> bool {
        match self {
            Error::InFile { source, .. } => source.is_damage(),
            _ => matches!(
                self,
                Error::CorruptPack { .. }
                    | Error::CorruptManifest { .. }
                    | Error::CorruptObject { .. }
                    | Error::ChunkMissing { .. }
                    | Error::CorruptChunk { .. }
                    | Error::DigestMismatch { .. }
                    | Error::ObjectTruncated { .. }
            ),
        }
    }

    /// Adds the snapshot file `path` to an error about a chunk or pack,
    /// which names only the chunk; errors that already name a path are
    /// returned unchanged.
    pub fn in_file(self, path: &str) -> Self {
        match self {
            Error::CorruptChunk { .. }
            | Error::ChunkMissing { .. }
            | Error::CorruptPack { .. }
            | Error::ObjectNotFound { .. } => Error::InFile {
                path: path.to_string(),
                source: Box::new(self),
            },
            other => other,
        }
    }
}

fn is_enospc(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Adds a path to `io::Result`s, so no `io::Error` leaves the library bare.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
