//! `cairn.run(config=…, targets=[…])`: the config runner (crate
//! cairn-runner) from Python, as `cairn run` runs it: each target once,
//! in config order, the state saved after each; the reports as JSON text
//! for the Python layer.

use std::path::PathBuf;

use pyo3::prelude::*;

use cairn_runner::{locate, Config, State};

/// Runs the `targets` of the config file (all when empty; with `due`,
/// only those whose schedule is due) once. The file is found as the CLI
/// finds it (`config`, else `$CAIRN_CONFIG`, else the user's config
/// directory); the state likewise (`state_dir`, `$CAIRN_STATE_DIR`, …).
/// Ctrl-C (or a raising callback) cancels the target in flight: nothing of
/// its snapshot is visible and its state is as before; targets finished
/// earlier keep theirs.
#[pyfunction]
#[pyo3(signature = (config=None, targets=Vec::new(), state_dir=None, due=false, progress=None))]
pub fn run(
    py: Python<'_>,
    config: Option<PathBuf>,
    targets: Vec<String>,
    state_dir: Option<PathBuf>,
    due: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let (config, mut state, keys) = py
        .detach(|| load(config, &targets, state_dir, due))
        .map_err(|e| crate::errors::runner_to_py(py, e))?;
    let reports = crate::watch::run(py, progress, |p| {
        let mut reports = Vec::new();
        for key in &keys {
            let target = &config.targets[key];
            let report = cairn_runner::run::run_target_with(&config, target, &mut state, now(), p);
            let stop = report.cancelled;
            reports.push(report);
            if stop {
                break;
            }
            state.save().map_err(as_cairn)?;
        }
        Ok(reports)
    })?;
    let mut values = Vec::new();
    for r in &reports {
        let mut v = serde_json::to_value(r)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        v["summary"] = r.summary().into();
        values.push(v);
    }
    crate::json(&values)
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// The config, the state and the keys of the targets to run.
fn load(
    config: Option<PathBuf>,
    targets: &[String],
    state_dir: Option<PathBuf>,
    due: bool,
) -> cairn_runner::Result<(Config, State, Vec<String>)> {
    let (file, how) = locate::config_file(config.as_deref())?;
    if !file.exists() {
        return Err(cairn_runner::Error::NoConfig(format!(
            "no config file at {} (from {how})",
            file.display()
        )));
    }
    let config = Config::load(&file)?;
    let state = State::load(&locate::state_file(state_dir.as_deref())?)?;
    let now = now();
    let keys = config
        .select(targets)?
        .into_iter()
        .filter(|t| !due || cairn_runner::is_due(t, &state, now))
        .map(|t| t.key.clone())
        .collect();
    Ok((config, state, keys))
}

/// A runner error inside a library operation (saving the state).
fn as_cairn(e: cairn_runner::Error) -> cairn::Error {
    match e {
        cairn_runner::Error::Io { path, source } => cairn::Error::io(path, source),
        cairn_runner::Error::Cairn(e) => e,
        other => cairn::Error::InvalidArgument(other.to_string()),
    }
}
