//! Running one target once: before hook → for each repository: snapshot →
//! forget by the target's retention → gc when configured → the configured
//! check (when due) → after or on_failure hook → state updated.
//!
//! A failure in one repository does not stop the others; the target
//! succeeds only if every step in every repository did. Hooks run with
//! `sh -c` and see `CAIRN_TARGET`, `CAIRN_STATUS` (`running` for `before`,
//! then `ok` or `failed`), `CAIRN_SNAPSHOT` (the new snapshot ids, one per
//! repository, space-separated), `CAIRN_REPOSITORY` (the repository names,
//! likewise) and `CAIRN_ERROR` (empty on success).

use std::process::Command;
use std::time::Instant;

use cairn::{
    CheckOptions, ForgetRequest, NoProgress, Progress, Repository, SnapshotFilter, SnapshotOptions,
};
use chrono::{DateTime, Offset, Utc};
use serde::Serialize;

use crate::config::{Config, Location, RepositorySpec, Target};
use crate::env::PasswordFrom;
use crate::state::{RepoFigures, State, Status, TargetState};

/// What happened in one repository.
#[derive(Debug, Clone, Serialize)]
pub struct RepoOutcome {
    pub repository: String,
    pub ok: bool,
    pub snapshot: Option<String>,
    /// False when the snapshot was saved without some entries (see the
    /// library's `SnapshotReport::complete`).
    pub complete: bool,
    pub files: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    pub excluded: u64,
    pub forgotten: u64,
    pub gc_packs_deleted: Option<u64>,
    /// `Some(clean)` when a check ran.
    pub check_clean: Option<bool>,
    pub snapshots: u64,
    pub stored_bytes: u64,
    pub error: Option<String>,
}

/// The report of one target's run (the JSON of `cairn run --json` and of
/// webhooks).
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub target: String,
    pub status: Status,
    pub started: DateTime<Utc>,
    pub duration_secs: f64,
    pub repositories: Vec<RepoOutcome>,
    /// What failed, for people (`None` on success).
    pub error: Option<String>,
    /// What went wrong without failing the run: a notification not
    /// delivered, a failing on_failure hook. The caller shows them.
    pub warnings: Vec<String>,
    /// The run was stopped through its `Progress` (the daemon shutting
    /// down): nothing of it is visible in the repositories, no on_failure
    /// hook or failure notification fired, and the state is as before.
    pub cancelled: bool,
}

impl TargetReport {
    /// The text a ping's `/fail` body and an email carry: the summary, then
    /// each repository's error on its own line.
    pub fn log(&self) -> String {
        let mut log = self.summary();
        log.push('\n');
        for r in &self.repositories {
            if let Some(e) = &r.error {
                log.push_str(&format!("{}: {e}\n", r.repository));
            }
        }
        if let Some(e) = &self.error {
            log.push_str(&format!("error: {e}\n"));
        }
        log
    }

    /// One line for people: `portfolio: ok (local 1a2b3c4d, 12 files, 3.1 MB read)`.
    pub fn summary(&self) -> String {
        let repos: Vec<String> = self
            .repositories
            .iter()
            .map(|r| match (&r.snapshot, &r.error) {
                (_, Some(e)) => format!("{}: {e}", r.repository),
                (Some(id), None) => format!(
                    "{} {} ({} files, {} bytes read, {} added{})",
                    r.repository,
                    &id[..id.len().min(8)],
                    r.files,
                    r.bytes_read,
                    r.bytes_added,
                    if r.forgotten > 0 {
                        format!(", {} forgotten", r.forgotten)
                    } else {
                        String::new()
                    }
                ),
                (None, None) => r.repository.clone(),
            })
            .collect();
        let status = match self.status {
            Status::Ok => "ok",
            Status::Failed => "FAILED",
        };
        let mut line = format!("{}: {status} in {:.1}s", self.target, self.duration_secs);
        if !repos.is_empty() {
            line.push_str(&format!(" [{}]", repos.join("; ")));
        }
        if let (Some(e), true) = (
            &self.error,
            self.repositories.iter().all(|r| r.error.is_none()),
        ) {
            line.push_str(&format!(": {e}"));
        }
        line
    }
}

/// Runs `target` once at `now` and records the outcome in `state` (the
/// caller saves it).
pub fn run_target(
    config: &Config,
    target: &Target,
    state: &mut State,
    now: DateTime<Utc>,
) -> TargetReport {
    run_target_with(config, target, state, now, &NoProgress)
}

/// [`run_target`], stopped when `progress` says [`Progress::cancelled`]:
/// the operation in flight ends as a failed one would (a snapshot leaves
/// nothing visible), the steps after it are skipped, the report says
/// `cancelled` and `state` is left as it was.
pub fn run_target_with(
    config: &Config,
    target: &Target,
    state: &mut State,
    now: DateTime<Utc>,
    progress: &dyn Progress,
) -> TargetReport {
    let started = Instant::now();
    let previous = state.target(&target.key);
    let mut report = TargetReport {
        target: target.key.clone(),
        status: Status::Ok,
        started: now,
        duration_secs: 0.0,
        repositories: Vec::new(),
        error: None,
        warnings: Vec::new(),
        cancelled: false,
    };
    let check_due = check_due(target, &previous, now);
    let mut warnings: Vec<String> = crate::notify::started(&target.notify).into_iter().collect();
    match hook(
        target,
        "before",
        target.hooks.before.as_deref(),
        &report,
        "running",
    ) {
        Err(e) => report.error = Some(e),
        Ok(()) => {
            for name in &target.repositories {
                let spec = &config.repositories[name];
                if progress.cancelled() {
                    break;
                }
                report
                    .repositories
                    .push(in_repository(spec, target, check_due, progress));
            }
            let failed: Vec<String> = report
                .repositories
                .iter()
                .filter_map(|r| r.error.as_ref().map(|e| format!("{}: {e}", r.repository)))
                .collect();
            if progress.cancelled() {
                report.error = Some("cancelled".into());
                report.cancelled = true;
            } else if !failed.is_empty() {
                report.error = Some(failed.join("; "));
            } else if let Err(e) = hook(
                target,
                "after",
                target.hooks.after.as_deref(),
                &report,
                "ok",
            ) {
                report.error = Some(e);
            }
        }
    }
    if report.cancelled {
        report.status = Status::Failed;
        report.duration_secs = started.elapsed().as_secs_f64();
        report.warnings = warnings;
        return report;
    }
    if report.error.is_some() {
        report.status = Status::Failed;
        // The run already failed; a failing on_failure hook is only told.
        if let Err(e) = hook(
            target,
            "on_failure",
            target.hooks.on_failure.as_deref(),
            &report,
            "failed",
        ) {
            warnings.push(e);
        }
    }
    report.duration_secs = started.elapsed().as_secs_f64();
    warnings.extend(crate::notify::finished(
        &target.notify,
        &report,
        &report.log(),
    ));
    report.warnings = warnings;
    record(state, target, &report, check_due, now);
    report
}

/// Whether the configured check runs this time.
fn check_due(target: &Target, previous: &TargetState, now: DateTime<Utc>) -> bool {
    match (&target.check, previous.last_check) {
        (None, _) => false,
        (Some(c), Some(last)) => match c.every {
            Some(every) => {
                now >= last + chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX)
            }
            None => true,
        },
        (Some(_), None) => true,
    }
}

fn record(
    state: &mut State,
    target: &Target,
    report: &TargetReport,
    check_ran: bool,
    now: DateTime<Utc>,
) {
    let t = state.targets.entry(target.key.clone()).or_default();
    t.last_run = Some(now);
    t.last_status = Some(report.status);
    t.last_error = report.error.clone();
    t.last_duration_secs = Some(report.duration_secs);
    match report.status {
        Status::Ok => {
            t.consecutive_failures = 0;
            t.last_success = Some(now);
            t.paused = false;
        }
        Status::Failed => t.consecutive_failures += 1,
    }
    if check_ran {
        let results: Vec<bool> = report
            .repositories
            .iter()
            .filter_map(|r| r.check_clean)
            .collect();
        if !results.is_empty() {
            t.last_check = Some(now);
            t.last_check_ok = Some(results.iter().all(|c| *c));
        }
    }
    for r in &report.repositories {
        t.repositories.insert(
            r.repository.clone(),
            RepoFigures {
                success: r.ok,
                snapshot: r.snapshot.clone(),
                files: r.files,
                bytes_read: r.bytes_read,
                bytes_added: r.bytes_added,
                snapshots: r.snapshots,
                stored_bytes: r.stored_bytes,
            },
        );
    }
    t.next_run = target
        .schedule
        .as_ref()
        .map(|s| s.next_after(Some(now), now));
}

/// Opens the repository a spec names, local or remote, as the environment
/// overrides it ([`crate::env`]: `CAIRN_REPO[_NAME]`,
/// `CAIRN_PASSWORD[_FILE][_NAME]`), else with the password from its
/// `password_file`, else the program's (the CLI's `--password-file`, …).
pub fn open(spec: &RepositorySpec) -> cairn::Result<Repository> {
    open_mode(spec, cairn::OpenMode::ReadWrite)
}

/// [`open`] in `mode`.
pub fn open_mode(spec: &RepositorySpec, mode: cairn::OpenMode) -> cairn::Result<Repository> {
    let effective = crate::env::effective(spec, &|name| std::env::var(name).ok())?;
    let location = match &effective.location {
        Location::Path(path) => cairn::RepoLocation::Local(path.clone()),
        Location::Url(url) => cairn::RepoLocation::parse(std::ffi::OsStr::new(url))?,
    };
    let open = || Repository::open_location(&location, mode);
    match effective.password {
        PasswordFrom::Program => open(),
        PasswordFrom::File(file) => cairn::with_password(cairn::password_from_file(&file)?, open),
        PasswordFrom::Text(text) => cairn::with_password(cairn::Password::new(text), open),
    }
}

fn in_repository(
    spec: &RepositorySpec,
    target: &Target,
    check_due: bool,
    progress: &dyn Progress,
) -> RepoOutcome {
    let mut out = RepoOutcome {
        repository: spec.name.clone(),
        ok: false,
        snapshot: None,
        complete: true,
        files: 0,
        bytes_read: 0,
        bytes_added: 0,
        excluded: 0,
        forgotten: 0,
        gc_packs_deleted: None,
        check_clean: None,
        snapshots: 0,
        stored_bytes: 0,
        error: None,
    };
    match steps(spec, target, check_due, progress, &mut out) {
        Ok(()) => out.ok = true,
        Err(e) => out.error = Some(e),
    }
    out
}

fn steps(
    spec: &RepositorySpec,
    target: &Target,
    check_due: bool,
    progress: &dyn Progress,
    out: &mut RepoOutcome,
) -> Result<(), String> {
    let text = |e: cairn::Error| e.to_string();
    let repo = open(spec).map_err(text)?;
    let opts = SnapshotOptions {
        label: target.label.clone(),
        exclude: target.exclude.clone(),
        ..Default::default()
    };
    let r = repo
        .snapshot(&target.paths, &opts, progress)
        .map_err(text)?;
    out.snapshot = Some(r.id.to_hex());
    out.complete = r.complete;
    out.files = r.files;
    out.bytes_read = r.bytes_read;
    out.bytes_added = r.added_stored;
    out.excluded = r.excluded;
    if progress.cancelled() {
        return Err("cancelled after the snapshot".into());
    }
    let history = SnapshotFilter {
        kind: Some(target.label.kind.clone()),
        name: Some(target.label.name.clone()),
        tag: None,
    };
    if let Some(policy) = &target.retention {
        let plan = repo
            .forget_plan(&ForgetRequest {
                filter: history.clone(),
                policy: Some(policy.clone()),
                allow_empty: false,
                offset: chrono::Local::now().offset().fix(),
            })
            .map_err(|e| format!("forget: {e}"))?;
        out.forgotten = repo
            .forget(&plan)
            .map_err(|e| format!("forget: {e}"))?
            .removed
            .len() as u64;
    }
    if target.gc {
        let plan = repo
            .gc_plan(cairn::DEFAULT_MAX_UNUSED)
            .map_err(|e| format!("gc: {e}"))?;
        out.gc_packs_deleted = Some(
            repo.gc(&plan, progress)
                .map_err(|e| format!("gc: {e}"))?
                .packs_deleted,
        );
    }
    if let (true, Some(c)) = (check_due, &target.check) {
        let opts = CheckOptions {
            read_data: c.read_data,
            subset_pct: c.subset_pct,
        };
        let report = repo
            .check(opts, progress)
            .map_err(|e| format!("check: {e}"))?;
        out.check_clean = Some(report.is_clean());
        if !report.is_clean() {
            return Err(format!(
                "check found {} problem(s); run `cairn check` on it",
                report.findings.len()
            ));
        }
    }
    let stats = repo.stats(&history).map_err(text)?;
    out.snapshots = stats.snapshots;
    out.stored_bytes = stats.repository_pack_bytes;
    Ok(())
}

/// Runs hook `which` if configured; an error says how it failed.
fn hook(
    target: &Target,
    which: &str,
    command: Option<&str>,
    report: &TargetReport,
    status: &str,
) -> Result<(), String> {
    let Some(command) = command else {
        return Ok(());
    };
    let join = |f: &dyn Fn(&RepoOutcome) -> Option<String>| {
        report
            .repositories
            .iter()
            .filter_map(f)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let result = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("CAIRN_TARGET", &target.key)
        .env("CAIRN_STATUS", status)
        .env("CAIRN_SNAPSHOT", join(&|r| r.snapshot.clone()))
        .env("CAIRN_REPOSITORY", target.repositories.join(" "))
        .env("CAIRN_ERROR", report.error.clone().unwrap_or_default())
        .status();
    match result {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{which} hook `{command}` failed ({s})")),
        Err(e) => Err(format!("{which} hook `{command}` could not start: {e}")),
    }
}

/// Whether a scheduled target is due at `now` (never for a target without
/// a schedule, or one the daemon paused).
pub fn is_due(target: &Target, state: &State, now: DateTime<Utc>) -> bool {
    let t = state.target(&target.key);
    match &target.schedule {
        Some(s) if !t.paused => s.next_after(t.last_run, now) <= now,
        _ => false,
    }
}
