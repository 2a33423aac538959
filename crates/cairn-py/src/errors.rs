//! The library's typed [`cairn::Error`] as the `cairn` exception hierarchy
//! (defined in Python, `cairn/_errors.py`): the class says what kind of
//! failure it is, the attributes what it concerns (path, id, selector), and
//! the message is the library's, the one the CLI prints after `error:`.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use cairn::Error;

/// An exception class of `cairn._errors` and its keyword attributes.
struct Mapped {
    class: &'static str,
    path: Option<String>,
    id: Option<String>,
    selector: Option<String>,
    candidates: Vec<String>,
}

impl Mapped {
    fn new(class: &'static str) -> Self {
        Mapped {
            class,
            path: None,
            id: None,
            selector: None,
            candidates: Vec::new(),
        }
    }
    fn path(mut self, path: impl ToString) -> Self {
        self.path = Some(path.to_string());
        self
    }
    fn id(mut self, id: impl ToString) -> Self {
        self.id = Some(id.to_string());
        self
    }
    fn selector(mut self, selector: &str, candidates: &[String]) -> Self {
        self.selector = Some(selector.to_string());
        self.candidates = candidates.to_vec();
        self
    }
}

fn classify(e: &Error) -> Mapped {
    use Mapped as M;
    match e {
        Error::RepoNotFound { path } | Error::CatalogMissing { path } => {
            M::new("NotFound").path(path.display())
        }
        Error::ObjectNotFound { key } => M::new("NotFound").path(key),
        Error::SnapshotNotFound {
            selector,
            candidates,
            ..
        } => M::new("NotFound").selector(selector, candidates),
        Error::PathNotInSnapshot { path, snapshot } => M::new("NotFound").path(path).id(snapshot),
        Error::AmbiguousSelector {
            selector,
            candidates,
        } => M::new("AmbiguousSelector").selector(selector, candidates),
        Error::BadSelector { selector, .. } => M::new("InvalidSelector").selector(selector, &[]),
        Error::DigestMismatch { path, .. } => M::new("VerificationError").path(path),
        Error::Locked { holders } => {
            let mut m = M::new("RepositoryLocked");
            m.candidates = holders.clone();
            m
        }
        Error::TargetExists { path } => M::new("TargetExists").path(path.display()),
        Error::WrongPassword { path } | Error::PasswordRequired { path } => {
            M::new("WrongPassword").path(path.display())
        }
        Error::RepoExists { path } | Error::RepoDirNotEmpty { path } => {
            M::new("RepositoryExists").path(path.display())
        }
        Error::InFile { path, source } => {
            let inner = classify(source);
            let class = if source.is_damage() {
                "CorruptRepository"
            } else {
                inner.class
            };
            Mapped { class, ..inner }.path(path)
        }
        Error::CorruptPack { pack, .. } => M::new("CorruptRepository").id(pack),
        Error::CorruptChunk { chunk, .. } | Error::ChunkMissing { chunk } => {
            M::new("CorruptRepository").id(chunk)
        }
        Error::CorruptManifest { key, .. } | Error::ObjectTruncated { key, .. } => {
            M::new("CorruptRepository").path(key)
        }
        Error::BadForgetIntent { key, .. } => M::new("CorruptRepository").path(key),
        Error::CatalogDamaged { path, .. }
        | Error::ConfigUnusable { path, .. }
        | Error::ConfigMissing { path } => M::new("CorruptRepository").path(path.display()),
        Error::InvalidArgument(_) | Error::WouldEmptyHistory { .. } => M::new("InvalidArgument"),
        Error::BadPasswordFile { path, .. } => M::new("InvalidArgument").path(path.display()),
        Error::RefusedSource { path, .. } => M::new("InvalidArgument").path(path),
        Error::Io { path, .. } | Error::NoSpace { path } | Error::SourceChanged { path, .. } => {
            M::new("CairnError").path(path.display())
        }
        Error::Catalog { path, .. } | Error::BadConfig { path, .. } => {
            M::new("CairnError").path(path.display())
        }
        Error::Storage { key, .. } => M::new("CairnError").path(key),
        _ => M::new("CairnError"),
    }
}

/// The `cairn` exception for an error of the config runner: a config that
/// does not validate is `ConfigError` (every problem in the message), an
/// unknown target or a missing config file `NotFound`.
pub fn runner_to_py(py: Python<'_>, e: cairn_runner::Error) -> PyErr {
    use cairn_runner::Error as R;
    let e = match e {
        R::Cairn(inner) => return to_py(py, inner),
        other => other,
    };
    let m = match &e {
        R::Config(problems) => {
            let file = problems.0.first().map(|p| p.file.display().to_string());
            Mapped {
                path: file,
                ..Mapped::new("ConfigError")
            }
        }
        R::UnknownTarget { name, file, .. } => Mapped {
            selector: Some(name.clone()),
            ..Mapped::new("NotFound").path(file.display())
        },
        R::NoConfig(_) => Mapped::new("NotFound"),
        R::Io { path, .. } | R::State { path, .. } => {
            Mapped::new("CairnError").path(path.display())
        }
        _ => Mapped::new("CairnError"),
    };
    let message = e.to_string();
    build(py, &m, &message).unwrap_or_else(|err| {
        PyRuntimeError::new_err(format!("{message} (and cairn._errors failed: {err})"))
    })
}

/// The `cairn` exception for `e`.
pub fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let m = classify(&e);
    let message = e.to_string();
    build(py, &m, &message).unwrap_or_else(|err| {
        PyRuntimeError::new_err(format!("{message} (and cairn._errors failed: {err})"))
    })
}

fn build(py: Python<'_>, m: &Mapped, message: &str) -> PyResult<PyErr> {
    let class = py.import("cairn._errors")?.getattr(m.class)?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("path", &m.path)?;
    kwargs.set_item("id", &m.id)?;
    kwargs.set_item("selector", &m.selector)?;
    kwargs.set_item(
        if m.class == "RepositoryLocked" {
            "holders"
        } else {
            "candidates"
        },
        &m.candidates,
    )?;
    let exc = class.call((message,), Some(&kwargs))?;
    Ok(PyErr::from_value(exc))
}
