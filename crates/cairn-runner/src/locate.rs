//! Where the config file and the state file are.
//!
//! Config: `--config PATH`, else `$CAIRN_CONFIG`, else
//! `$XDG_CONFIG_HOME/cairn/cairn.toml`, else `~/.config/cairn/cairn.toml`.
//! State: `--state-dir DIR`, else `$CAIRN_STATE_DIR`, else
//! `$XDG_STATE_HOME/cairn`, else `~/.local/state/cairn`; the file in it is
//! `runner-state.json`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The state file's name inside the state directory.
pub const STATE_FILE: &str = "runner-state.json";

/// The config file to use, and how it was found (for messages).
pub fn config_file(given: Option<&Path>) -> Result<(PathBuf, &'static str)> {
    if let Some(p) = given {
        return Ok((p.to_path_buf(), "--config"));
    }
    if let Some(p) = env_path("CAIRN_CONFIG") {
        return Ok((p, "$CAIRN_CONFIG"));
    }
    let dir = env_path("XDG_CONFIG_HOME")
        .or_else(|| env_path("HOME").map(|h| h.join(".config")))
        .ok_or_else(|| {
            Error::NoConfig(
                "none of --config, $CAIRN_CONFIG, $XDG_CONFIG_HOME, $HOME is set".into(),
            )
        })?;
    Ok((
        dir.join("cairn").join("cairn.toml"),
        "the user config directory",
    ))
}

/// The state file to use.
pub fn state_file(given_dir: Option<&Path>) -> Result<PathBuf> {
    let dir = match given_dir {
        Some(d) => d.to_path_buf(),
        None => env_path("CAIRN_STATE_DIR")
            .or_else(|| env_path("XDG_STATE_HOME").map(|d| d.join("cairn")))
            .or_else(|| env_path("HOME").map(|h| h.join(".local/state/cairn")))
            .ok_or_else(|| {
                Error::NoConfig("no state directory: set $CAIRN_STATE_DIR or $HOME".into())
            })?,
    };
    Ok(dir.join(STATE_FILE))
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}
