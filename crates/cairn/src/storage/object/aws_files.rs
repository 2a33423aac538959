//! The AWS shared config and credentials files (`~/.aws/config`,
//! `~/.aws/credentials`), read as the AWS CLI and SDKs read them, for the
//! settings the environment leaves unset.
//!
//! The profile is `$AWS_PROFILE`, else `default`. The credentials file
//! (`$AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`) has a section
//! `[NAME]` per profile; the config file (`$AWS_CONFIG_FILE`, else
//! `~/.aws/config`) has `[default]` and `[profile NAME]`. Read from them:
//! `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`,
//! `region` and `endpoint_url` (credentials file first, as the AWS CLI
//! does). Nested settings (an indented block under `s3 =`) are skipped.
//! A missing file is no error; a profile named by `$AWS_PROFILE` that
//! neither file has is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The settings of one profile, by key (lower case).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Profile(HashMap<String, String>);

impl Profile {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

/// The profile the environment selects, from the files the environment
/// (or the home directory) names; `Ok(None)` when neither file exists.
pub fn load_from_env() -> Result<Option<Profile>> {
    let env = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty());
    let home = env("HOME").map(PathBuf::from);
    let in_home = |rel: &str| home.as_ref().map(|h| h.join(rel));
    let credentials = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| in_home(".aws/credentials"));
    let config = env("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| in_home(".aws/config"));
    let named = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty());
    load(credentials.as_deref(), config.as_deref(), named.as_deref())
}

/// [`load_from_env`] with its inputs given: profile `named` (`default`
/// when `None`) from the two files.
pub fn load(
    credentials: Option<&Path>,
    config: Option<&Path>,
    named: Option<&str>,
) -> Result<Option<Profile>> {
    let name = named.unwrap_or("default");
    let config_section = match name {
        "default" => "default".to_string(),
        other => format!("profile {other}"),
    };
    let mut found = false;
    let mut profile = Profile::default();
    // Config first, then credentials over it: credentials win.
    for (file, section) in [(config, config_section.as_str()), (credentials, name)] {
        let Some(file) = file else { continue };
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(file, e)),
        };
        if let Some(settings) = section_of(&text, section) {
            found = true;
            profile.0.extend(settings);
        }
    }
    if !found {
        return match named {
            Some(name) => Err(Error::InvalidArgument(format!(
                "AWS_PROFILE={name}: no such profile in {} or {}",
                shown(credentials),
                shown(config)
            ))),
            None => Ok(None),
        };
    }
    Ok(Some(profile))
}

fn shown(path: Option<&Path>) -> String {
    path.map_or_else(|| "(no file)".into(), |p| p.display().to_string())
}

/// The `key = value` lines of section `[wanted]` of an INI text, or `None`
/// when it has no such section. Keys are lower-cased; `#` and `;` start
/// comment lines; an indented line belongs to a nested block and is skipped.
fn section_of(text: &str, wanted: &str) -> Option<Vec<(String, String)>> {
    let mut found = false;
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            inside = name.split_whitespace().eq(wanted.split_whitespace());
            found |= inside;
            continue;
        }
        if !inside || line.starts_with(char::is_whitespace) {
            continue;
        }
        if let Some((key, value)) = trimmed.split_once('=') {
            let value = value.trim();
            if !value.is_empty() {
                out.push((key.trim().to_ascii_lowercase(), value.to_string()));
            }
        }
    }
    found.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "# shared config\n[default]\nregion = eu-west-1\n\n[profile  lab]\nregion=us-east-2\nendpoint_url = http://127.0.0.1:8333\ns3 =\n  addressing_style = path\n";
    const CREDENTIALS: &str = "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = sdefault\n; a comment\n[lab]\naws_access_key_id=AKLAB\naws_secret_access_key = s/lab=+\naws_session_token = tok\n";

    fn files() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (creds, config) = (dir.path().join("credentials"), dir.path().join("config"));
        std::fs::write(&creds, CREDENTIALS).unwrap();
        std::fs::write(&config, CONFIG).unwrap();
        (dir, creds, config)
    }

    #[test]
    fn the_default_and_a_named_profile_merge_both_files() {
        let (_dir, creds, config) = files();
        let p = load(Some(&creds), Some(&config), None).unwrap().unwrap();
        assert_eq!(p.get("aws_access_key_id"), Some("AKDEFAULT"));
        assert_eq!(p.get("region"), Some("eu-west-1"));
        assert_eq!(p.get("endpoint_url"), None);
        let p = load(Some(&creds), Some(&config), Some("lab"))
            .unwrap()
            .unwrap();
        assert_eq!(
            p.get("aws_secret_access_key"),
            Some("s/lab=+"),
            "= in a value"
        );
        assert_eq!(p.get("aws_session_token"), Some("tok"));
        assert_eq!(p.get("region"), Some("us-east-2"));
        assert_eq!(p.get("endpoint_url"), Some("http://127.0.0.1:8333"));
        assert_eq!(p.get("addressing_style"), None, "nested blocks are skipped");
    }

    #[test]
    fn missing_files_are_nothing_but_a_missing_named_profile_is_an_error() {
        let (dir, creds, config) = files();
        let none = dir.path().join("none");
        assert_eq!(load(Some(&none), Some(&none), None).unwrap(), None);
        assert_eq!(load(None, None, None).unwrap(), None);
        let err = load(Some(&creds), Some(&config), Some("prod")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("AWS_PROFILE=prod") && msg.contains("credentials"),
            "{msg}"
        );
    }
}
