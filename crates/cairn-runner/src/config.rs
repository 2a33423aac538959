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
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn::{RetentionPolicy, SnapshotLabel};
use serde::Deserialize;
use toml::Spanned;

use crate::error::{ConfigProblem, ConfigProblems, Error, IoContext, Result};
use crate::schedule::{parse_span, Schedule};

mod problems;
use problems::{structure, Problems};

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
    /// The config's only repository: `CAIRN_REPO` and the global password
    /// variables override it (see [`crate::env`]).
    pub sole: bool,
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
    /// How the connection is secured (default: [`Email::security`]).
    pub tls: Option<SmtpTls>,
    /// AUTH user name; its password is the first line of `password_file`.
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// PEM certificates trusted besides the system's (a private CA, or
    /// the server's own self-signed certificate).
    pub ca_file: Option<PathBuf>,
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text: only for a relay on this machine.
    None,
    /// Plain connection upgraded with STARTTLS, which is required.
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

impl Email {
    /// `host` and `port` of `smtp` (port 25 when not given).
    pub fn host_port(&self) -> Result<(&str, u16), String> {
        match self.smtp.rsplit_once(':') {
            Some((h, p)) => Ok((
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("bad port in {:?}", self.smtp))?,
            )),
            None => Ok((self.smtp.as_str(), 25)),
        }
    }

    /// The `tls` given, else: `tls` on port 465, `none` for a loopback
    /// host (`localhost`, `127.0.0.1`, `::1`), `starttls` otherwise.
    pub fn security(&self) -> SmtpTls {
        if let Some(tls) = self.tls {
            return tls;
        }
        match self.host_port() {
            Ok((_, 465)) => SmtpTls::Tls,
            Ok((host, _)) if is_loopback(host) => SmtpTls::None,
            _ => SmtpTls::Starttls,
        }
    }

    /// What is wrong with these settings, if anything.
    fn problem(&self) -> Option<String> {
        if let Err(e) = self.host_port() {
            return Some(e);
        }
        match (&self.username, &self.password_file) {
            (Some(_), None) => return Some("`username` needs `password_file`".into()),
            (None, Some(_)) => return Some("`password_file` needs `username`".into()),
            _ => {}
        }
        let host = self.host_port().map(|(h, _)| h).unwrap_or_default();
        if self.username.is_some() && self.security() == SmtpTls::None && !is_loopback(host) {
            return Some(format!(
                "refusing to send a password in plain text to {host}: set tls = \"starttls\" or \"tls\""
            ));
        }
        None
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
    /// Targets run at the same time (each target at most once at a time).
    pub concurrency: usize,
    /// On SIGTERM/SIGINT, how long runs in flight may take to finish before
    /// they are cancelled (nothing of a cancelled snapshot is visible).
    pub stop_timeout: Duration,
}

/// Default of `[daemon] stop_timeout`: under systemd's 90 s before SIGKILL.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(60);

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
    concurrency: Option<Spanned<u32>>,
    stop_timeout: Option<Spanned<String>>,
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
        let Some(raw) = structure(&mut problems) else {
            return Err(Error::Config(ConfigProblems(problems.found)));
        };
        let structural = problems.found.len();
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
        let daemon = daemon_settings(&raw.daemon, &mut problems);
        let notify = notify(
            raw.notify.clone(),
            &base,
            Some(("notify.email", 0)),
            &mut problems,
        );
        problems.drop_echoes(structural);
        problems.found.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        if !problems.found.is_empty() {
            return Err(Error::Config(ConfigProblems(problems.found)));
        }
        Ok(Config {
            file: file.to_path_buf(),
            repositories,
            targets,
            notify,
            daemon,
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
                sole: raw.repository.len() == 1,
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
        notify: notify(
            Notify {
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
            base,
            t.notify
                .email
                .as_ref()
                .map(|_| (k("notify.email"), span.start))
                .as_ref()
                .map(|(key, at)| (key.as_str(), *at)),
            p,
        ),
        path_lines,
    }
}

/// `n` with its email's files taken from `base`; its problems added as
/// `key`'s, looked for from byte `from` on (`None`: an email inherited from
/// `[notify]`, whose problems are reported there).
fn notify(mut n: Notify, base: &Path, key: Option<(&str, usize)>, p: &mut Problems) -> Notify {
    if let Some(email) = &mut n.email {
        for file in [&mut email.password_file, &mut email.ca_file]
            .into_iter()
            .flatten()
        {
            *file = base.join(&*file);
        }
        if let (Some(problem), Some((key, from))) = (email.problem(), key) {
            let line = p.key_line("email", from);
            p.add(line, key, problem);
        }
    }
    n
}

fn daemon_settings(raw: &RawDaemon, p: &mut Problems) -> DaemonSettings {
    let concurrency = match &raw.concurrency {
        None => 1,
        Some(n) if *n.get_ref() == 0 => {
            p.add(Some(n.span()), "daemon.concurrency", "must be at least 1");
            1
        }
        Some(n) => *n.get_ref() as usize,
    };
    let stop_timeout = raw
        .stop_timeout
        .as_ref()
        .map_or(Some(DEFAULT_STOP_TIMEOUT), |s| {
            span_of(s, "daemon.stop_timeout", p)
        })
        .unwrap_or(DEFAULT_STOP_TIMEOUT);
    DaemonSettings {
        listen: raw.listen.clone(),
        max_failures: raw.max_failures.unwrap_or(3),
        catch_up: raw.catch_up.unwrap_or(true),
        concurrency,
        stop_timeout,
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
