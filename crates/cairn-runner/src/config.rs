//! The config file (TOML): repositories, targets, hooks, notifications.
//!
//! [`Config::load`] reads and validates it; every problem names the file,
//! the line and the dotted key. A problem in the file's structure (TOML
//! syntax, an unknown key, a value of the wrong type) stops parsing, so it
//! is the only one reported; past that, every problem in the values (a bad
//! schedule or duration, a missing `paths`, a reference to an unknown
//! repository, ...) is reported together. Relative paths are relative to
//! the config file's directory. [`EXAMPLE`] is a commented example that
//! itself validates.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn::{RetentionPolicy, SnapshotLabel};
use serde::Deserialize;
use toml::Spanned;

use crate::error::{ConfigProblem, ConfigProblems, Error, IoContext, Result};
use crate::schedule::{parse_span, Schedule};

/// The commented example `cairn config example` prints.
pub const EXAMPLE: &str = include_str!("example.toml");

/// Where a repository is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Path(PathBuf),
    /// A remote repository (`s3://…`), opened by whatever the library
    /// offers for URLs.
    Url(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySpec {
    pub name: String,
    pub location: Location,
    pub password_file: Option<PathBuf>,
}

/// Commands run around a target's run (`sh -c`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    pub before: Option<String>,
    pub after: Option<String>,
    pub on_failure: Option<String>,
}

impl Hooks {
    /// Each hook of `self`, else of `fallback`.
    fn or(&self, fallback: &Hooks) -> Hooks {
        Hooks {
            before: self.before.clone().or_else(|| fallback.before.clone()),
            after: self.after.clone().or_else(|| fallback.after.clone()),
            on_failure: self
                .on_failure
                .clone()
                .or_else(|| fallback.on_failure.clone()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    pub to: String,
    /// `host:port` of the SMTP server.
    pub smtp: String,
    pub from: Option<String>,
}

/// Where reports go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// POSTed the JSON report of every run.
    pub webhook: Option<String>,
    /// healthchecks.io style: `/start`, success on the URL itself, `/fail`.
    pub ping_url: Option<String>,
    pub email: Option<Email>,
}

/// The configured check after a run.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    /// Percentage of packs to read (`read_data_subset`); `None` with
    /// `read_data` false: structure only.
    pub read_data: bool,
    pub subset_pct: Option<f64>,
    /// At most this often (`None`: after every run).
    pub every: Option<Duration>,
}

/// One backup target.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub key: String,
    pub label: SnapshotLabel,
    pub paths: Vec<PathBuf>,
    pub exclude: Vec<String>,
    pub repositories: Vec<String>,
    pub schedule: Option<Schedule>,
    pub retention: Option<RetentionPolicy>,
    pub gc: bool,
    pub check: Option<CheckSpec>,
    pub max_age: Option<Duration>,
    /// The target's own hooks, each falling back to the global one.
    pub hooks: Hooks,
    pub notify: Notify,
    /// Line of each entry of `paths`, for [`Config::missing_paths`].
    path_lines: Vec<Option<usize>>,
}

/// Settings of `cairn daemon`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSettings {
    /// Loopback address serving /metrics and /health (`None`: not served).
    pub listen: Option<String>,
    /// Pause a target after this many failures in a row (0: never).
    pub max_failures: u32,
    /// Run a missed schedule once after downtime (else wait for the next).
    pub catch_up: bool,
}

/// A validated config file.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub repositories: BTreeMap<String, RepositorySpec>,
    pub targets: BTreeMap<String, Target>,
    pub notify: Notify,
    pub daemon: DaemonSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    repository: BTreeMap<String, Spanned<RawRepository>>,
    #[serde(default)]
    target: BTreeMap<String, Spanned<RawTarget>>,
    #[serde(default)]
    hooks: Hooks,
    #[serde(default)]
    notify: Notify,
    #[serde(default)]
    daemon: RawDaemon,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepository {
    path: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    kind: Option<Spanned<String>>,
    name: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    version: Option<String>,
    description: Option<String>,
    paths: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    repositories: Option<Vec<Spanned<String>>>,
    schedule: Option<Spanned<String>>,
    retention: Option<Spanned<RawRetention>>,
    #[serde(default)]
    gc: bool,
    check: Option<RawCheck>,
    max_age: Option<Spanned<String>>,
    #[serde(default)]
    hooks: Hooks,
    #[serde(default)]
    notify: Notify,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    keep_last: Option<u32>,
    keep_hourly: Option<u32>,
    keep_daily: Option<u32>,
    keep_weekly: Option<u32>,
    keep_monthly: Option<u32>,
    keep_yearly: Option<u32>,
    keep_within: Option<Spanned<String>>,
    #[serde(default)]
    keep_tag: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    #[serde(default)]
    read_data: bool,
    read_data_subset: Option<Spanned<String>>,
    every: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    listen: Option<String>,
    max_failures: Option<u32>,
    catch_up: Option<bool>,
}

/// Collects problems with their lines while a file is validated.
struct Problems<'a> {
    file: &'a Path,
    text: &'a str,
    found: Vec<ConfigProblem>,
}

impl Problems<'_> {
    fn line(&self, span: &Range<usize>) -> usize {
        self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn add(&mut self, span: Option<Range<usize>>, key: &str, message: impl Into<String>) {
        let line = span.map(|s| self.line(&s));
        self.found.push(ConfigProblem {
            file: self.file.to_path_buf(),
            line,
            key: key.to_owned(),
            message: message.into(),
        });
    }
}

impl Config {
    /// Reads and validates the config at `file`.
    pub fn load(file: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(file).at(file)?;
        Config::parse(&text, file)
    }

    /// Validates `text` as the config file `file` (relative paths are
    /// taken from `file`'s directory).
    pub fn parse(text: &str, file: &Path) -> Result<Config> {
        let mut problems = Problems {
            file,
            text,
            found: Vec::new(),
        };
        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let key = e
                    .span()
                    .map(|s| key_at(text, &s))
                    .unwrap_or_else(|| "(file)".into());
                problems.add(e.span(), &key, e.message().trim().to_owned());
                return Err(Error::Config(ConfigProblems(problems.found)));
            }
        };
        let base = file.parent().unwrap_or(Path::new(".")).to_path_buf();
        let repositories = repositories(&raw, &base, &mut problems);
        let mut targets = BTreeMap::new();
        for (key, t) in &raw.target {
            let target = target(key, t, &raw, &base, &mut problems);
            targets.insert(key.clone(), target);
        }
        if raw.target.is_empty() {
            problems.add(
                None,
                "target",
                "no [target.NAME] section: nothing to back up",
            );
        }
        if !problems.found.is_empty() {
            return Err(Error::Config(ConfigProblems(problems.found)));
        }
        Ok(Config {
            file: file.to_path_buf(),
            repositories,
            targets,
            notify: raw.notify,
            daemon: DaemonSettings {
                listen: raw.daemon.listen,
                max_failures: raw.daemon.max_failures.unwrap_or(3),
                catch_up: raw.daemon.catch_up.unwrap_or(true),
            },
        })
    }

    /// Source paths that do not exist now, as problems naming their line
    /// (`config check` reports them; a run fails on them).
    pub fn missing_paths(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        for t in self.targets.values() {
            for (path, line) in t.paths.iter().zip(&t.path_lines) {
                if std::fs::symlink_metadata(path).is_err() {
                    out.push(ConfigProblem {
                        file: self.file.clone(),
                        line: *line,
                        key: format!("target.{}.paths", t.key),
                        message: format!("{} does not exist", path.display()),
                    });
                }
            }
        }
        out
    }

    /// The targets named (all when `names` is empty), in config order.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Target>> {
        if names.is_empty() {
            return Ok(self.targets.values().collect());
        }
        names
            .iter()
            .map(|n| {
                self.targets.get(n).ok_or_else(|| Error::UnknownTarget {
                    name: n.clone(),
                    file: self.file.clone(),
                    known: self.targets.keys().cloned().collect::<Vec<_>>().join(", "),
                })
            })
            .collect()
    }
}

/// The dotted key a parse error points at: the `[section]` above it and
/// the key on its line.
fn key_at(text: &str, span: &Range<usize>) -> String {
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let section = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_owned());
    match (section, key) {
        (Some(s), Some(k)) => format!("{s}.{k}"),
        (None, Some(k)) => k,
        (Some(s), None) => s,
        (None, None) => line.trim_matches(|c| c == '[' || c == ']').to_owned(),
    }
}

fn repositories(
    raw: &RawConfig,
    base: &Path,
    problems: &mut Problems,
) -> BTreeMap<String, RepositorySpec> {
    let mut out = BTreeMap::new();
    for (name, r) in &raw.repository {
        let key = format!("repository.{name}");
        let location = match (&r.get_ref().path, &r.get_ref().url) {
            (Some(p), None) => Location::Path(base.join(p.get_ref())),
            (None, Some(u)) if u.get_ref().contains("://") => Location::Url(u.get_ref().clone()),
            (None, Some(u)) => {
                problems.add(
                    Some(u.span()),
                    &format!("{key}.url"),
                    format!("{:?} is not a URL (scheme://…)", u.get_ref()),
                );
                continue;
            }
            (Some(_), Some(u)) => {
                problems.add(Some(u.span()), &key, "give either path or url, not both");
                continue;
            }
            (None, None) => {
                problems.add(Some(r.span()), &key, "missing key `path` (or `url`)");
                continue;
            }
        };
        let password_file = r
            .get_ref()
            .password_file
            .as_ref()
            .map(|p| base.join(p.get_ref()));
        out.insert(
            name.clone(),
            RepositorySpec {
                name: name.clone(),
                location,
                password_file,
            },
        );
    }
    if raw.repository.is_empty() {
        problems.add(
            None,
            "repository",
            "no [repository.NAME] section: nowhere to back up to",
        );
    }
    out
}

fn target(
    key: &str,
    t: &Spanned<RawTarget>,
    raw: &RawConfig,
    base: &Path,
    p: &mut Problems,
) -> Target {
    let section = format!("target.{key}");
    let k = |field: &str| format!("{section}.{field}");
    let span = t.span();
    let t = t.get_ref();
    let kind = match &t.kind {
        Some(kind) => kind.get_ref().clone(),
        None => {
            p.add(
                Some(span.clone()),
                &k("kind"),
                "missing key `kind` (e.g. model, portfolio, config)",
            );
            String::new()
        }
    };
    let label = SnapshotLabel {
        kind,
        name: t.name.clone().unwrap_or_else(|| key.to_owned()),
        version: t.version.clone(),
        tags: t.tags.clone(),
        description: t.description.clone(),
    };
    if let (Err(e), Some(kind)) = (label.validate(), &t.kind) {
        p.add(Some(kind.span()), &section, e.to_string());
    }
    let (paths, path_lines) = match &t.paths {
        Some(paths) if !paths.get_ref().is_empty() => paths
            .get_ref()
            .iter()
            .map(|s| (base.join(s.get_ref()), Some(p.line(&s.span()))))
            .unzip(),
        Some(paths) => {
            p.add(
                Some(paths.span()),
                &k("paths"),
                "is empty: give at least one path",
            );
            (Vec::new(), Vec::new())
        }
        None => {
            p.add(Some(span.clone()), &k("paths"), "missing key `paths`");
            (Vec::new(), Vec::new())
        }
    };
    if let Err(e) = cairn::ingest::exclude::Excludes::new(
        &t.exclude
            .iter()
            .map(|s| s.get_ref().clone())
            .collect::<Vec<_>>(),
    ) {
        let at = t.exclude.first().map(|s| s.span());
        p.add(at, &k("exclude"), e.to_string());
    }
    let repositories = match &t.repositories {
        None => raw.repository.keys().cloned().collect(),
        Some(names) => {
            for n in names {
                if !raw.repository.contains_key(n.get_ref()) {
                    let known: Vec<_> = raw.repository.keys().cloned().collect();
                    p.add(
                        Some(n.span()),
                        &k("repositories"),
                        format!(
                            "unknown repository {:?} (defined: {})",
                            n.get_ref(),
                            known.join(", ")
                        ),
                    );
                }
            }
            names.iter().map(|n| n.get_ref().clone()).collect()
        }
    };
    let schedule = t.schedule.as_ref().and_then(|s| {
        s.get_ref()
            .parse::<Schedule>()
            .map_err(|e| p.add(Some(s.span()), &k("schedule"), e))
            .ok()
    });
    let max_age = t
        .max_age
        .as_ref()
        .and_then(|s| span_of(s, &k("max_age"), p));
    let retention = t
        .retention
        .as_ref()
        .map(|r| retention(r, &k("retention"), p));
    let check = t.check.as_ref().map(|c| check(c, &k("check"), p));
    Target {
        key: key.to_owned(),
        label,
        paths,
        exclude: t.exclude.iter().map(|s| s.get_ref().clone()).collect(),
        repositories,
        schedule,
        retention,
        gc: t.gc,
        check,
        max_age,
        hooks: t.hooks.or(&raw.hooks),
        notify: Notify {
            webhook: t
                .notify
                .webhook
                .clone()
                .or_else(|| raw.notify.webhook.clone()),
            ping_url: t
                .notify
                .ping_url
                .clone()
                .or_else(|| raw.notify.ping_url.clone()),
            email: t.notify.email.clone().or_else(|| raw.notify.email.clone()),
        },
        path_lines,
    }
}

fn span_of(s: &Spanned<String>, key: &str, p: &mut Problems) -> Option<Duration> {
    parse_span(s.get_ref())
        .map_err(|e| p.add(Some(s.span()), key, e))
        .ok()
}

fn retention(r: &Spanned<RawRetention>, key: &str, p: &mut Problems) -> RetentionPolicy {
    let raw = r.get_ref();
    let keep_within = raw.keep_within.as_ref().and_then(|w| {
        cairn::parse_duration(w.get_ref())
            .map_err(|e| p.add(Some(w.span()), &format!("{key}.keep_within"), e.to_string()))
            .ok()
    });
    let policy = RetentionPolicy {
        keep_last: raw.keep_last,
        keep_hourly: raw.keep_hourly,
        keep_daily: raw.keep_daily,
        keep_weekly: raw.keep_weekly,
        keep_monthly: raw.keep_monthly,
        keep_yearly: raw.keep_yearly,
        keep_within,
        keep_tags: raw.keep_tag.clone(),
        keep_tagged: Default::default(),
    };
    if policy.is_empty() && raw.keep_within.is_none() {
        p.add(
            Some(r.span()),
            key,
            "has no rule: it would keep everything (leave retention out instead)",
        );
    }
    policy
}

fn check(c: &RawCheck, key: &str, p: &mut Problems) -> CheckSpec {
    let subset_pct = c.read_data_subset.as_ref().and_then(|s| {
        let text = s.get_ref();
        text.trim_end_matches('%')
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| *v > 0.0 && *v <= 100.0)
            .or_else(|| {
                let msg = format!("{text:?} is not a percentage (e.g. \"5%\")");
                p.add(Some(s.span()), &format!("{key}.read_data_subset"), msg);
                None
            })
    });
    CheckSpec {
        read_data: c.read_data || subset_pct.is_some(),
        subset_pct,
        every: c
            .every
            .as_ref()
            .and_then(|s| span_of(s, &format!("{key}.every"), p)),
    }
}

#[cfg(test)]
#[path = "config/tests.rs"]
mod tests;
