//! Unattended backups (crate cairn-runner): `cairn config check|example`
//! `cairn run`, `cairn health`, `cairn metrics` and `cairn daemon`. The CLI only finds the files, prints and picks the
//! exit code; the runner crate does the work.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use cairn_runner::{locate, Config, State, Status};
use clap::{Args, Subcommand};

use super::output;

#[derive(Debug, Args)]
pub struct ConfigFileArgs {
    /// The config file (default: $CAIRN_CONFIG, else ~/.config/cairn/cairn.toml, under $XDG_CONFIG_HOME if set)
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StateArgs {
    /// Where the run state is kept (default: $CAIRN_STATE_DIR, else $XDG_STATE_HOME/cairn, else ~/.local/state/cairn)
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config file: every problem with its file, line and key (exit 1 if any)
    Check(ConfigCheckArgs),
    /// Print a commented example config
    Example(super::args::NoJson),
}

#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    /// Print the verdict, the targets and every problem as JSON (docs/JSON.md)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub file: ConfigFileArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Targets to run (default: every target)
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Only the targets whose schedule is due (for a cron job or systemd timer that fires often)
    #[arg(long)]
    pub due: bool,
    /// Print the reports as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub file: ConfigFileArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Print the health of each target as JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub file: ConfigFileArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Write the metrics to this file (temp + rename) instead of stdout, e.g. for node_exporter's textfile collector
    #[arg(long, value_name = "PATH")]
    pub textfile: Option<PathBuf>,
    #[command(flatten)]
    pub file: ConfigFileArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub no_json: super::args::NoJson,
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Stop after N target runs (a knob for tests and trials; default: run until stopped)
    #[arg(long, value_name = "N")]
    pub max_runs: Option<u64>,
    #[command(flatten)]
    pub file: ConfigFileArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub no_json: super::args::NoJson,
}

/// The config, found and validated; its problems are the error.
pub fn load(args: &ConfigFileArgs) -> Result<Config> {
    let (file, how) = locate::config_file(args.config.as_deref())?;
    if !file.exists() {
        anyhow::bail!(
            "no config file at {} (from {how})\nhint: start from `cairn config example > {}`",
            file.display(),
            file.display()
        );
    }
    Ok(Config::load(&file)?)
}

pub fn config(cmd: ConfigCommand) -> Result<ExitCode> {
    match cmd {
        ConfigCommand::Example(_) => {
            outln!("{}", cairn_runner::EXAMPLE.trim_end());
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Check(args) => check(&args),
    }
}

fn check(args: &ConfigCheckArgs) -> Result<ExitCode> {
    let (config, problems) = match load(&args.file) {
        Err(e) => match e.downcast_ref::<cairn_runner::Error>() {
            Some(cairn_runner::Error::Config(problems)) => (None, problems.0.clone()),
            _ => return Err(e),
        },
        Ok(c) => {
            let missing = c.missing_paths();
            (Some(c), missing)
        }
    };
    let code = match problems.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    };
    if args.json {
        let file = match &config {
            Some(c) => c.file.clone(),
            None => locate::config_file(args.file.config.as_deref())?.0,
        };
        output::json(&super::json::ConfigCheck::new(
            &file,
            config.as_ref(),
            &problems,
        ))?;
        return Ok(code);
    }
    for p in &problems {
        eprintln!("{p}");
    }
    let Some(config) = config.filter(|_| problems.is_empty()) else {
        return Ok(code);
    };
    outln!(
        "{}: ok ({} repositor{}, {} target{})",
        config.file.display(),
        config.repositories.len(),
        if config.repositories.len() == 1 {
            "y"
        } else {
            "ies"
        },
        config.targets.len(),
        if config.targets.len() == 1 { "" } else { "s" }
    );
    for t in config.targets.values() {
        let schedule = t
            .schedule
            .as_ref()
            .map_or("no schedule".into(), |s| s.to_string());
        outln!(
            "  {:<20} {}/{} -> {} ({schedule})",
            t.key,
            t.label.kind,
            t.label.name,
            t.repositories.join(", ")
        );
    }
    Ok(code)
}

/// The state at `--state-dir` (or its default place).
pub fn state(args: &StateArgs) -> Result<State> {
    let path = locate::state_file(args.state_dir.as_deref())?;
    State::load(&path).context("cannot read the runner state")
}

pub fn run(a: RunArgs) -> Result<ExitCode> {
    let config = load(&a.file)?;
    let mut state = state(&a.state)?;
    let now = chrono::Utc::now();
    let mut targets = config.select(&a.targets)?;
    if a.due {
        targets.retain(|t| cairn_runner::is_due(t, &state, now));
    }
    let mut reports = Vec::new();
    for t in targets {
        let report = cairn_runner::run_target(&config, t, &mut state, chrono::Utc::now());
        state.save().with_context(|| {
            format!("cannot save the runner state to {}", display(state.path()))
        })?;
        for w in &report.warnings {
            eprintln!("cairn: warning: {}: {w}", report.target);
        }
        if !a.json {
            outln!("{}", report.summary());
        }
        reports.push(report);
    }
    if a.json {
        output::json(&super::json::with_aliases(
            &reports,
            &super::json::RUN_ALIASES,
        ))?;
    } else if reports.is_empty() {
        outln!(
            "nothing to run{}",
            if a.due { " (no target is due)" } else { "" }
        );
    }
    let failed = reports
        .iter()
        .filter(|r| r.status == Status::Failed)
        .count();
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

pub fn health(a: HealthArgs) -> Result<ExitCode> {
    let config = load(&a.file)?;
    let state = state(&a.state)?;
    let all = cairn_runner::health(&config, &state, chrono::Utc::now());
    if a.json {
        output::json(&super::json::with_aliases(
            &all,
            &super::json::HEALTH_ALIASES,
        ))?;
    } else {
        for h in &all {
            let when = h.last_success.map_or("never".into(), |t| {
                t.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            });
            outln!(
                "{:<8} {:<20} last success {when}{}{}",
                h.health.word(),
                h.target,
                if h.detail.is_empty() { "" } else { ": " },
                h.detail
            );
        }
    }
    let ok = all.iter().all(|h| h.health == cairn_runner::Health::Ok);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn metrics(a: MetricsArgs) -> Result<ExitCode> {
    let config = load(&a.file)?;
    let state = state(&a.state)?;
    let text = cairn_runner::metrics::render(&config, &state);
    match &a.textfile {
        Some(path) => cairn_runner::metrics::write_textfile(path, &text)?,
        None => write!(std::io::stdout().lock(), "{text}")?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The last signal the daemon received (0: none), set by [`on_signal`].
static SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, std::sync::atomic::Ordering::SeqCst);
}

pub fn daemon(a: DaemonArgs) -> Result<ExitCode> {
    let state = state(&a.state)?;
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only stores into an atomic, which is
        // async-signal-safe.
        unsafe {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            )
        };
    }
    let control = || match SIGNAL.swap(0, std::sync::atomic::Ordering::SeqCst) {
        0 => cairn_runner::daemon::Control::Continue,
        libc::SIGHUP => cairn_runner::daemon::Control::Reload,
        _ => cairn_runner::daemon::Control::Stop,
    };
    let log = |line: &str| {
        let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S");
        let _ = writeln!(std::io::stdout().lock(), "{now} {line}");
    };
    let load = || {
        load(&a.file).map_err(|e| match e.downcast::<cairn_runner::Error>() {
            Ok(e) => e,
            Err(e) => cairn_runner::Error::NoConfig(e.to_string()),
        })
    };
    let opts = cairn_runner::daemon::DaemonOptions {
        max_runs: a.max_runs,
    };
    let runs = cairn_runner::daemon::run(&load, state, &opts, &control, &log)?;
    log(&format!("stopped after {runs} run(s)"));
    Ok(ExitCode::SUCCESS)
}
