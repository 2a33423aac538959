//! `cairn._cairn`: the native half of the Python package `cairn`.
//!
//! A thin layer over the library's facade ([`cairn::Repository`]): each
//! method converts its arguments, runs the operation with the GIL released
//! (`watch`), and returns the library's report as JSON text, which the pure
//! Python layer (`python/cairn/`) turns into frozen dataclasses. Errors
//! become the `cairn` exception hierarchy (`errors`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use cairn::{
    CheckOptions, ChunkerParams, CopyRequest, ForgetRequest, LabelChange, RepoConfig,
    RestoreOptions, RetentionPolicy, SnapshotFilter, SnapshotLabel, SnapshotOptions,
};

mod errors;
mod runner;
mod watch;

/// The one place a repository is opened: a local path or a URL
/// (`s3://bucket/prefix`), with `password` for an encrypted one.
fn open_repository(location: &str, password: Given) -> cairn::Result<cairn::Repository> {
    let location = cairn::RepoLocation::parse(std::ffi::OsStr::new(location))?;
    with_given(password, || {
        cairn::Repository::open_location(&location, cairn::OpenMode::ReadWrite)
    })
}

/// A password given to `open`/`init`: the text, or a file whose first line
/// it is (read by the library's one reader of password files).
struct Given {
    password: Option<String>,
    file: Option<PathBuf>,
}

/// Runs `f` with the `given` password as the password of what it opens or
/// creates.
fn with_given<T>(given: Given, f: impl FnOnce() -> cairn::Result<T>) -> cairn::Result<T> {
    match given {
        Given {
            password: Some(_),
            file: Some(_),
        } => Err(cairn::Error::InvalidArgument(
            "give password or password_file, not both".into(),
        )),
        Given {
            password: Some(p),
            file: None,
        } => cairn::with_password(cairn::Password::new(p), f),
        Given {
            password: None,
            file: Some(file),
        } => cairn::with_password(cairn::password_from_file(&file)?, f),
        Given {
            password: None,
            file: None,
        } => f(),
    }
}

fn json(value: &impl serde::Serialize) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| PyValueError::new_err(e.to_string()))
}

fn filter(kind: Option<String>, name: Option<String>, tag: Option<String>) -> SnapshotFilter {
    SnapshotFilter { kind, name, tag }
}

/// An open repository (native; use `cairn.Repository`).
#[pyclass(frozen, module = "cairn._cairn")]
struct Repository {
    /// `None` once closed; each call holds its own reference while it runs.
    inner: RwLock<Option<Arc<cairn::Repository>>>,
}

impl Repository {
    fn wrap(repo: cairn::Repository) -> Self {
        Repository {
            inner: RwLock::new(Some(Arc::new(repo))),
        }
    }

    fn get(&self) -> PyResult<Arc<cairn::Repository>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner
            .clone()
            .ok_or_else(|| PyValueError::new_err("the repository is closed"))
    }
}

#[pymethods]
impl Repository {
    #[staticmethod]
    #[pyo3(signature = (location, password=None, password_file=None))]
    fn open(
        py: Python<'_>,
        location: String,
        password: Option<String>,
        password_file: Option<PathBuf>,
    ) -> PyResult<Self> {
        let given = Given {
            password,
            file: password_file,
        };
        watch::quick(py, || open_repository(&location, given)).map(Self::wrap)
    }

    #[staticmethod]
    #[pyo3(signature = (location, chunk_avg=None, compression=3, encryption=false, password=None, password_file=None))]
    fn init(
        py: Python<'_>,
        location: String,
        chunk_avg: Option<u32>,
        compression: i32,
        encryption: bool,
        password: Option<String>,
        password_file: Option<PathBuf>,
    ) -> PyResult<Self> {
        let given = Given {
            password,
            file: password_file,
        };
        let chunker = chunk_avg.map_or_else(ChunkerParams::default, ChunkerParams::with_average);
        watch::quick(py, || {
            let location = cairn::RepoLocation::parse(std::ffi::OsStr::new(&location))?;
            let mut config = RepoConfig::new(chunker, compression)?;
            if encryption {
                config = config.with_encryption();
            }
            with_given(given, || {
                cairn::Repository::init_at_location(&location, config)
            })
        })
        .map(Self::wrap)
    }

    fn close(&self) {
        self.inner.write().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn root(&self) -> PyResult<String> {
        Ok(self.get()?.root().display().to_string())
    }

    fn id(&self) -> PyResult<String> {
        Ok(self.get()?.id().to_string())
    }

    fn warnings(&self) -> PyResult<Vec<String>> {
        Ok(self.get()?.warnings())
    }

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (paths, kind, name, version, tags, description, force, strict, verify, compression, exclude, progress))]
    fn snapshot(
        &self,
        py: Python<'_>,
        paths: Vec<PathBuf>,
        kind: String,
        name: String,
        version: Option<String>,
        tags: Vec<String>,
        description: Option<String>,
        force: bool,
        strict: bool,
        verify: bool,
        compression: Option<i32>,
        exclude: Vec<String>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let repo = self.get()?;
        let opts = SnapshotOptions {
            label: SnapshotLabel {
                version,
                tags,
                description,
                ..SnapshotLabel::new(kind, name)
            },
            force,
            compression,
            verify,
            strict,
            exclude,
            ..Default::default()
        };
        let report = watch::run(py, progress, |p| repo.snapshot(&paths, &opts, p))?;
        let mut value =
            serde_json::to_value(&report).map_err(|e| PyValueError::new_err(e.to_string()))?;
        value["dedup_ratio"] = report.dedup_ratio().into();
        json(&value)
    }

    #[pyo3(signature = (kind=None, name=None, tag=None))]
    fn snapshots(
        &self,
        py: Python<'_>,
        kind: Option<String>,
        name: Option<String>,
        tag: Option<String>,
    ) -> PyResult<String> {
        let repo = self.get()?;
        json(&watch::quick(py, || {
            repo.snapshots(&filter(kind, name, tag))
        })?)
    }

    fn resolve(&self, py: Python<'_>, selector: String) -> PyResult<String> {
        let repo = self.get()?;
        json(&watch::quick(py, || repo.resolve(&selector))?)
    }

    fn files(&self, py: Python<'_>, selector: String) -> PyResult<String> {
        let repo = self.get()?;
        json(&watch::quick(py, || repo.files(&repo.resolve(&selector)?))?)
    }

    #[pyo3(signature = (selector, dest, overwrite, paths, ignore_errors, progress))]
    #[allow(clippy::too_many_arguments)]
    fn restore(
        &self,
        py: Python<'_>,
        selector: String,
        dest: PathBuf,
        overwrite: bool,
        paths: Vec<String>,
        ignore_errors: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let repo = self.get()?;
        let opts = RestoreOptions {
            paths,
            overwrite,
            ignore_errors,
        };
        let snap = watch::quick(py, || repo.resolve(&selector))?;
        json(&watch::run(py, progress, |p| {
            repo.restore(&snap, &dest, &opts, p)
        })?)
    }

    fn cat(&self, py: Python<'_>, selector: String, path: String) -> PyResult<Vec<u8>> {
        let repo = self.get()?;
        watch::quick(py, || {
            let mut out = Vec::new();
            repo.cat(&repo.resolve(&selector)?, &path, &mut out)?;
            Ok(out)
        })
    }

    #[pyo3(signature = (selector, progress))]
    fn verify(
        &self,
        py: Python<'_>,
        selector: String,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let repo = self.get()?;
        let snap = watch::quick(py, || repo.resolve(&selector))?;
        json(&watch::run(py, progress, |p| repo.verify(&snap, p))?)
    }

    #[pyo3(signature = (read_data, read_data_subset, progress))]
    fn check(
        &self,
        py: Python<'_>,
        read_data: bool,
        read_data_subset: Option<f64>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let repo = self.get()?;
        let opts = CheckOptions {
            read_data: read_data || read_data_subset.is_some(),
            subset_pct: read_data_subset,
        };
        json(&watch::run(py, progress, |p| repo.check(opts, p))?)
    }

    fn diff(&self, py: Python<'_>, a: String, b: String) -> PyResult<String> {
        let repo = self.get()?;
        json(&watch::quick(py, || {
            repo.diff(&repo.resolve(&a)?, &repo.resolve(&b)?)
        })?)
    }

    #[pyo3(signature = (kind=None, name=None))]
    fn stats(
        &self,
        py: Python<'_>,
        kind: Option<String>,
        name: Option<String>,
    ) -> PyResult<String> {
        let repo = self.get()?;
        json(&watch::quick(py, || repo.stats(&filter(kind, name, None)))?)
    }

    /// `rules` holds the keep_* counts by name, `keep_within` the span text.
    #[pyo3(signature = (kind, name, counts, keep_within, keep_tag, allow_empty))]
    #[allow(clippy::too_many_arguments)]
    fn forget_plan(
        &self,
        py: Python<'_>,
        kind: Option<String>,
        name: Option<String>,
        counts: [Option<u32>; 6],
        keep_within: Option<String>,
        keep_tag: Vec<String>,
        allow_empty: bool,
    ) -> PyResult<ForgetPlan> {
        let repo = self.get()?;
        let policy = rules(counts, keep_within, keep_tag)?;
        let req = ForgetRequest {
            filter: filter(kind, name, None),
            policy,
            allow_empty,
            offset: chrono::Local::now().fixed_offset().offset().to_owned(),
        };
        let plan = watch::quick(py, || repo.forget_plan(&req))?;
        Ok(ForgetPlan::new(repo, plan))
    }

    fn delete_plan(&self, py: Python<'_>, selectors: Vec<String>) -> PyResult<ForgetPlan> {
        let repo = self.get()?;
        let plan = watch::quick(py, || repo.delete_plan(&selectors))?;
        Ok(ForgetPlan::new(repo, plan))
    }

    /// Copies the snapshots `selectors` name, plus whole histories matching
    /// `kind`/`name`/`tag` (none of either: every snapshot) into `to`.
    #[pyo3(signature = (to, selectors, kind, name, tag, dry_run, progress))]
    #[allow(clippy::too_many_arguments)]
    fn copy(
        &self,
        py: Python<'_>,
        to: PyRef<'_, Repository>,
        selectors: Vec<String>,
        kind: Option<String>,
        name: Option<String>,
        tag: Option<String>,
        dry_run: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let (from, to) = (self.get()?, to.get()?);
        let filter =
            (kind.is_some() || name.is_some() || tag.is_some()).then(|| filter(kind, name, tag));
        let req = CopyRequest {
            selectors,
            filter,
            dry_run,
        };
        json(&watch::run(py, progress, |p| from.copy_to(&to, &req, p))?)
    }

    /// Changes the labels of the snapshots `selectors` name (`cairn tag`).
    #[pyo3(signature = (selectors, add, remove, set, version, description))]
    #[allow(clippy::too_many_arguments)]
    fn tag(
        &self,
        py: Python<'_>,
        selectors: Vec<String>,
        add: Vec<String>,
        remove: Vec<String>,
        set: Option<Vec<String>>,
        version: Option<String>,
        description: Option<String>,
    ) -> PyResult<String> {
        let repo = self.get()?;
        let change = LabelChange {
            add,
            remove,
            set,
            version,
            description,
        };
        json(&watch::quick(py, || repo.tag(&selectors, &change))?)
    }

    fn gc_plan(&self, py: Python<'_>, max_unused: f64) -> PyResult<GcPlan> {
        let repo = self.get()?;
        let plan = watch::quick(py, || repo.gc_plan(max_unused))?;
        Ok(GcPlan {
            repo,
            plan: Mutex::new(Some(plan)),
        })
    }
}

/// The retention rules of a forget, checked as the CLI checks its flags.
fn rules(
    counts: [Option<u32>; 6],
    keep_within: Option<String>,
    keep_tags: Vec<String>,
) -> PyResult<Option<RetentionPolicy>> {
    const NAMES: [&str; 6] = [
        "keep_last",
        "keep_hourly",
        "keep_daily",
        "keep_weekly",
        "keep_monthly",
        "keep_yearly",
    ];
    for (n, name) in counts.iter().zip(NAMES) {
        if *n == Some(0) {
            return Err(invalid(&format!(
                "{name} must be at least 1 (leave it out for no such rule)"
            )));
        }
    }
    if keep_tags.iter().any(String::is_empty) {
        return Err(invalid("keep_tag must not be empty"));
    }
    let keep_within = match keep_within {
        None => None,
        Some(s) => {
            let span = cairn::parse_duration(&s).map_err(|e| invalid(&e.to_string()))?;
            if span.is_zero() {
                return Err(invalid("keep_within must be longer than zero"));
            }
            Some(span)
        }
    };
    let [keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly] = counts;
    let policy = RetentionPolicy {
        keep_last,
        keep_hourly,
        keep_daily,
        keep_weekly,
        keep_monthly,
        keep_yearly,
        keep_within,
        keep_tags,
        keep_tagged: Default::default(),
    };
    Ok((policy != RetentionPolicy::default()).then_some(policy))
}

fn invalid(message: &str) -> PyErr {
    Python::attach(|py| errors::to_py(py, cairn::Error::InvalidArgument(message.to_string())))
}

/// A forget or delete plan; holds the repository's exclusive lock until it
/// is executed or released.
#[pyclass(frozen, module = "cairn._cairn")]
struct ForgetPlan {
    repo: Arc<cairn::Repository>,
    plan: Mutex<Option<cairn::ForgetPlan>>,
    summary: String,
}

impl ForgetPlan {
    fn new(repo: Arc<cairn::Repository>, plan: cairn::ForgetPlan) -> Self {
        let summary = serde_json::to_string(&plan).unwrap_or_default();
        ForgetPlan {
            repo,
            plan: Mutex::new(Some(plan)),
            summary,
        }
    }
}

#[pymethods]
impl ForgetPlan {
    fn json(&self) -> String {
        self.summary.clone()
    }

    fn execute(&self, py: Python<'_>) -> PyResult<String> {
        let plan = self.plan.lock().unwrap_or_else(|e| e.into_inner()).take();
        let plan =
            plan.ok_or_else(|| PyValueError::new_err("the plan was already executed or released"))?;
        let repo = &self.repo;
        json(&watch::quick(py, || repo.forget(&plan))?)
    }

    fn release(&self) {
        self.plan.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// A gc plan; holds the exclusive lock until executed or released.
#[pyclass(frozen, module = "cairn._cairn")]
struct GcPlan {
    repo: Arc<cairn::Repository>,
    plan: Mutex<Option<cairn::GcPlan>>,
}

#[pymethods]
impl GcPlan {
    fn json(&self) -> PyResult<String> {
        let plan = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        let plan = plan
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("the plan was already executed or released"))?;
        let mut value =
            serde_json::to_value(plan).map_err(|e| PyValueError::new_err(e.to_string()))?;
        value["bytes_to_reclaim"] = plan.bytes_to_reclaim().into();
        json(&value)
    }

    #[pyo3(signature = (progress))]
    fn execute(&self, py: Python<'_>, progress: Option<Py<PyAny>>) -> PyResult<String> {
        let plan = self.plan.lock().unwrap_or_else(|e| e.into_inner()).take();
        let plan =
            plan.ok_or_else(|| PyValueError::new_err("the plan was already executed or released"))?;
        let repo = &self.repo;
        json(&watch::run(py, progress, |p| repo.gc(&plan, p))?)
    }

    fn release(&self) {
        self.plan.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

#[pymodule]
fn _cairn(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Repository>()?;
    m.add_class::<ForgetPlan>()?;
    m.add_class::<GcPlan>()?;
    m.add_function(wrap_pyfunction!(runner::run, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
