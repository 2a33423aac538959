//! What the runner remembers between runs, per target: when it last ran,
//! how that went, when it is next due. One small JSON file, replaced whole
//! (temp file in the same directory → fsync → rename → fsync the
//! directory), so a crash leaves the old state or the new, never half.
//!
//! Writers do not lock the file: `cairn run` from cron and `cairn daemon`
//! on the same state directory can lose one another's update (the last
//! writer wins). Give each its own `--state-dir` if both are used.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// Version of the state file's layout.
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Failed,
}

/// Figures of a target's last run, per repository (for metrics).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepoFigures {
    pub success: bool,
    pub snapshot: Option<String>,
    pub files: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    pub snapshots: u64,
    pub stored_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TargetState {
    pub last_run: Option<DateTime<Utc>>,
    pub last_status: Option<Status>,
    pub last_error: Option<String>,
    pub last_duration_secs: Option<f64>,
    pub last_success: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    pub next_run: Option<DateTime<Utc>>,
    pub last_check: Option<DateTime<Utc>>,
    pub last_check_ok: Option<bool>,
    /// Set by the daemon after too many failures in a row; a successful
    /// `cairn run` of the target clears it.
    pub paused: bool,
    pub repositories: BTreeMap<String, RepoFigures>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub targets: BTreeMap<String, TargetState>,
    #[serde(skip)]
    path: PathBuf,
}

impl State {
    /// Reads the state at `path`; a file that does not exist is an empty state.
    pub fn load(path: &Path) -> Result<State> {
        let empty = State {
            version: STATE_VERSION,
            targets: BTreeMap::new(),
            path: path.to_path_buf(),
        };
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(empty),
            Err(e) => return Err(e).at(path),
        };
        let mut state: State = serde_json::from_slice(&bytes).map_err(|e| Error::State {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if state.version != STATE_VERSION {
            return Err(Error::State {
                path: path.to_path_buf(),
                reason: format!(
                    "version {} (this build reads {STATE_VERSION})",
                    state.version
                ),
            });
        }
        state.path = path.to_path_buf();
        Ok(state)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state of target `key` (default if it never ran).
    pub fn target(&self, key: &str) -> TargetState {
        self.targets.get(key).cloned().unwrap_or_default()
    }

    /// Writes the state durably: temp + fsync + rename + fsync(dir).
    pub fn save(&self) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).at(dir)?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            std::process::id()
        ));
        let bytes = serde_json::to_vec_pretty(self).expect("state serializes");
        let mut f = fs::File::create(&tmp).at(&tmp)?;
        f.write_all(&bytes).at(&tmp)?;
        f.sync_all().at(&tmp)?;
        drop(f);
        fs::rename(&tmp, &self.path).at(&self.path)?;
        fs::File::open(dir).and_then(|d| d.sync_all()).at(dir)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        let mut s = State::load(&path).unwrap();
        assert!(s.targets.is_empty());
        let t = s.targets.entry("a".into()).or_default();
        t.consecutive_failures = 2;
        t.last_status = Some(Status::Failed);
        s.save().unwrap();
        let back = State::load(&path).unwrap();
        assert_eq!(back, s);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"], "no temp file left");
        fs::write(&path, b"{oops").unwrap();
        let err = State::load(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
}
