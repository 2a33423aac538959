//! Command-line layer: clap definitions (`cli/args.rs`), one function per
//! subcommand (`cli/commands.rs`; retention and gc in `cli/maintenance.rs`,
//! replication in `cli/copy.rs`),
//! and output helpers (`cli/output.rs`).
//! Exit codes: 0 success, 1 a verification found damage or a mismatch,
//! 2 usage or runtime error, 3 a snapshot was saved but incomplete.

/// `println!` that returns the write error instead of panicking, so a
/// closed stdout (`cairn list | head -1`) ends the command quietly; muted
/// by `-q` on commands that report what they did ([`muted`]).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if !crate::cli::muted() {
            writeln!(std::io::stdout().lock(), $($arg)*)?
        }
    }};
}

mod args;
mod bench;
mod browse;
mod commands;
mod copy;
mod integrity;
mod json;
mod keys;
mod maintenance;
mod mount;
mod output;
mod password;
mod runner;
mod upgrade;

use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use cairn::{OpenMode, RepoLocation, Repository};
use clap::Parser;

use output::Bar;

pub fn run() -> ExitCode {
    let cli = args::Cli::parse();
    if let Some(wait) = cli.lock_wait {
        cairn::set_lock_wait(wait);
    }
    match lease_from_env().and_then(|()| dispatch(cli)) {
        Ok(code) => code,
        Err(err) => report(err),
    }
}

/// Sets the lock lease from `CAIRN_LOCK_LEASE_SECS` and
/// `CAIRN_LOCK_REFRESH_SECS` (whole seconds; for tests, which cannot wait
/// out the default lease), each defaulting to the library's.
fn lease_from_env() -> anyhow::Result<()> {
    let secs = |var: &str, default: std::time::Duration| -> anyhow::Result<std::time::Duration> {
        match std::env::var(var) {
            Ok(v) => v
                .trim()
                .parse()
                .map(std::time::Duration::from_secs)
                .map_err(|_| anyhow::anyhow!("{var}={v:?} is not a whole number of seconds")),
            Err(_) => Ok(default),
        }
    };
    let duration = secs("CAIRN_LOCK_LEASE_SECS", cairn::Lease::default().duration)?;
    let refresh = secs("CAIRN_LOCK_REFRESH_SECS", cairn::Lease::default().refresh)?;
    cairn::set_lease(cairn::Lease::new(duration, refresh)?);
    Ok(())
}

/// Prints an error once, with its chain, and picks the exit code.
fn report(err: anyhow::Error) -> ExitCode {
    let broken_pipe = err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    let mut shown = err.to_string();
    eprintln!("cairn: error: {shown}");
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        // Library errors already embed their source; print each text once.
        if !shown.contains(&text) {
            eprintln!("  caused by: {text}");
            shown.push_str(&text);
        }
    }
    let library = err.chain().find_map(|c| c.downcast_ref::<cairn::Error>());
    if let Some(hint) = library.and_then(hint) {
        eprintln!("  hint: {hint}");
    }
    let damage = err.chain().any(|c| {
        c.downcast_ref::<cairn::Error>()
            .is_some_and(cairn::Error::is_damage)
    });
    ExitCode::from(if damage { 1 } else { 2 })
}

/// Set by `-q` on a command whose output reports what it did.
static MUTED: AtomicBool = AtomicBool::new(false);

/// True when `-q` silences this command's summaries and tables: only
/// errors (and warnings that data was left out) are printed. Commands
/// whose output is what was asked for (`list`, `cat`, `ls`, `--json` of
/// any command...) still print it.
pub fn muted() -> bool {
    MUTED.load(Ordering::Relaxed)
}

fn dispatch(cli: args::Cli) -> Result<ExitCode> {
    MUTED.store(cli.quiet && cli.command.reports(), Ordering::Relaxed);
    let ctx = Ctx {
        repo: cli.repo,
        quiet: cli.quiet,
        verbose: cli.verbose > 0,
        passwords: password::Sources {
            command: cli.password_command,
            file: cli.password_file,
            new_file: None,
        },
    };
    password::install(ctx.passwords.clone());
    if let Some(kib) = cli.kdf_memory_kib {
        cairn::set_new_key_kdf(cairn::KdfParams {
            memory_kib: kib,
            ..Default::default()
        });
    }
    let done = |r: Result<()>| r.map(|()| ExitCode::SUCCESS);
    refuse_json(&cli.command)?;
    use args::Command;
    match cli.command {
        Command::Init(a) => done(commands::init(&ctx, a)),
        Command::Snapshot(a) => commands::snapshot(&ctx, a),
        Command::List(a) => done(commands::list(&ctx, a)),
        Command::Show(a) => done(commands::show(&ctx, a)),
        Command::Restore(a) => commands::restore(&ctx, a),
        Command::Cat(a) => done(commands::cat(&ctx, a)),
        Command::Tag(a) => done(maintenance::tag(&ctx, a)),
        Command::Completions(a) => done(commands::completions(a)),
        Command::Man(a) => done(commands::man(a)),
        Command::Ls(a) => done(browse::ls(&ctx, a)),
        Command::Find(a) => done(browse::find(&ctx, a)),
        Command::Dump(a) => done(browse::dump(&ctx, a)),
        Command::Mount(a) => done(mount::mount(&ctx, a)),
        Command::Diff(a) => done(commands::diff(&ctx, a)),
        Command::Stats(a) => done(commands::stats(&ctx, a)),
        Command::Bench(a) => done(bench::bench(&ctx, a)),
        Command::Check(a) => integrity::check(&ctx, a),
        Command::Verify(a) => integrity::verify(&ctx, a),
        Command::RebuildCatalog(a) => integrity::rebuild_catalog(&ctx, a),
        Command::Repair(a) => integrity::repair(&ctx, a),
        Command::Unlock(a) => integrity::unlock(&ctx, a),
        Command::Upgrade(a) => upgrade::upgrade(&ctx, a),
        Command::Forget(a) => done(maintenance::forget(&ctx, a)),
        Command::Delete(a) => maintenance::delete(&ctx, a),
        Command::Policy(a) => done(maintenance::policy(&ctx, a)),
        Command::Prune(a) => maintenance::prune(&ctx, a),
        Command::Gc(a) => maintenance::gc(&ctx, a),
        Command::Copy(a) => done(copy::copy(&ctx, a)),
        Command::Config(a) => runner::config(a),
        Command::Run(a) => runner::run(a),
        Command::Health(a) => runner::health(a),
        Command::Metrics(a) => runner::metrics(a),
        Command::Daemon(a) => runner::daemon(a),
        Command::Key(c) => done(keys::key(&ctx, c)),
    }
}

/// The commands without a JSON form refuse `--json` (a usage error, exit
/// 2), saying why and where the same facts are as JSON (docs/JSON.md,
/// "Commands without JSON").
fn refuse_json(command: &args::Command) -> Result<()> {
    use args::Command as C;
    use runner::ConfigCommand;
    let (name, why) = match command {
        C::Cat(a) if a.no_json.json => ("cat", "it writes the file's bytes to standard output; `cairn ls SNAPSHOT PATH --json` describes the file"),
        C::Dump(a) if a.no_json.json => ("dump", "it writes a tar stream; `cairn ls SNAPSHOT [PATH] --json` lists the entries"),
        C::Mount(a) if a.no_json.json => ("mount", "it serves a file system in the foreground until unmounted; `cairn list --json` lists what it shows"),
        C::Metrics(a) if a.no_json.json => ("metrics", "it prints the Prometheus text format; `cairn health --json` has the same facts as JSON"),
        C::Daemon(a) if a.no_json.json => ("daemon", "it runs in the foreground and logs lines; `cairn health --json` reports its targets"),
        C::Completions(a) if a.no_json.json => ("completions", "it prints a shell script"),
        C::Man(a) if a.no_json.json => ("man", "it writes man pages"),
        C::Config(ConfigCommand::Example(a)) if a.json => ("config example", "it prints a TOML file"),
        _ => return Ok(()),
    };
    anyhow::bail!("`cairn {name}` has no --json: {why} (docs/JSON.md, \"Commands without JSON\")")
}

/// Exit code when a verification found damage or a mismatch.
pub const DAMAGE: u8 = 1;
/// Exit code when a snapshot was saved without some of its sources: an
/// entry was left out, or a file was stored while it changed.
pub const INCOMPLETE: u8 = 3;

pub struct Ctx {
    repo: Option<PathBuf>,
    quiet: bool,
    verbose: bool,
    passwords: password::Sources,
}

impl Ctx {
    /// The repository (a local path or an `s3://` URL), and whether it is
    /// the per-user default.
    pub fn repo_path(&self) -> Result<(RepoLocation, bool)> {
        match &self.repo {
            Some(p) => Ok((RepoLocation::parse(p.as_os_str())?, false)),
            None => default_path()
                .map(|p| (RepoLocation::Local(p), true))
                .context("no repository given and no home directory: use --repo or $CAIRN_REPO"),
        }
    }

    /// Opens the repository for a command that writes.
    pub fn open(&self) -> Result<Repository> {
        let (location, _) = self.repo_path()?;
        Ok(printing_warnings(Repository::open_location(
            &location,
            OpenMode::ReadWrite,
        )?))
    }

    /// Opens the repository for a command that frees space (forget,
    /// delete, gc, prune), which on a full disk first gives back the
    /// repository's space reserve.
    pub fn open_to_reclaim(&self) -> Result<Repository> {
        let (location, _) = self.repo_path()?;
        Ok(printing_warnings(Repository::open_location(
            &location,
            OpenMode::Reclaim,
        )?))
    }

    /// Opens the repository for a command that only reads: its catalog
    /// read-only, so it works on a full disk.
    pub fn open_read_only(&self) -> Result<Repository> {
        let (location, _) = self.repo_path()?;
        Ok(printing_warnings(Repository::open_location(
            &location,
            OpenMode::ReadOnly,
        )?))
    }

    /// Opens for writing, or read-only when the disk is too full for that
    /// (`check`, whose only write is a best-effort note).
    pub fn open_preferring_write(&self) -> Result<Repository> {
        let (location, _) = self.repo_path()?;
        let repo = match Repository::open_location(&location, OpenMode::ReadWrite) {
            Err(e) if e.is_no_space() => Repository::open_location(&location, OpenMode::ReadOnly)?,
            other => other?,
        };
        Ok(printing_warnings(repo))
    }

    /// True with `--quiet`: no progress and no notes on stderr.
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// True with `-v`: per-file lines (snapshot, restore).
    pub fn verbose(&self) -> bool {
        self.verbose && !self.quiet
    }

    /// The same options for another repository (`copy --from`/`--to`),
    /// so it is opened exactly as `--repo` is.
    pub fn for_repo(&self, repo: PathBuf) -> Ctx {
        Ctx {
            repo: Some(repo),
            quiet: self.quiet,
            verbose: self.verbose,
            passwords: self.passwords.clone(),
        }
    }

    pub fn bar(&self) -> Bar {
        Bar::new(self.quiet)
    }
}

/// Prints the repository's warnings on stderr as they arise.
pub fn printing_warnings(repo: Repository) -> Repository {
    repo.on_warning(|message| eprintln!("cairn: {message}"));
    repo
}

/// The repository used when neither `--repo` nor `$CAIRN_REPO` is given:
/// `$XDG_DATA_HOME/cairn`, else `~/.local/share/cairn`.
pub fn default_path() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(data.join("cairn"))
}

/// What to do about a library error, in this program's commands and flags:
/// the library says what went wrong, the command line says which command
/// mends it.
fn hint(e: &cairn::Error) -> Option<&'static str> {
    use cairn::Error as E;
    Some(match e {
        E::RepoNotFound { .. } => "create one with `cairn init`",
        E::NonUtf8Name { .. } | E::NonUtf8LinkTarget { .. } => {
            "a repository older than version 4 stores UTF-8 names only: `cairn upgrade` raises \
             it to version 4, whose trees keep any name; or leave --strict off to skip such names"
        }
        E::ConfigMissing { .. } => {
            "`cairn repair --config --chunk-avg BYTES [--compression N]` recreates the config \
             (use the chunk size the repository was created with, or new data will not \
             deduplicate against old data)"
        }
        E::ConfigUnusable { .. } => {
            "if one of them can be fixed by hand, `cairn repair --config` copies it over the \
             other; else `cairn repair --config --chunk-avg BYTES [--compression N]` recreates it"
        }
        E::NoSpace { .. } => {
            "free space on that filesystem (in the repository, `cairn forget` then `cairn gc` \
             reclaim the space of old snapshots) and try again"
        }
        E::ChunkMissing { .. } => "run `cairn check` to see what is damaged",
        E::CatalogMissing { .. } | E::CatalogDamaged { .. } => {
            "`cairn rebuild-catalog` recreates the catalog from packs and manifests"
        }
        E::Catalog { .. } => {
            "if the catalog is damaged, `cairn rebuild-catalog` recreates it from packs and manifests"
        }
        E::UnsupportedVersion { what: "catalog schema", .. } => {
            "`cairn rebuild-catalog` recreates the catalog in this version's schema"
        }
        E::TargetExists { .. } => "use --overwrite to replace it",
        E::NotAFile { .. } => {
            "`cairn ls SNAPSHOT PATH` lists it; `cairn dump SNAPSHOT PATH > out.tar` writes it as a tar stream"
        }
        E::Locked { .. } => {
            "`--lock-wait 10m` waits for the holder to finish; `cairn unlock` clears stale locks \
             (of dead processes on this host, or whose lease expired); `cairn unlock --all` \
             clears every lock, for when no holder runs any more"
        }
        E::WouldEmptyHistory { .. } => "pass --allow-empty to allow it",
        E::StorageAuth { url, .. } if url.starts_with("az://") => {
            "check AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (or \
             AZURE_STORAGE_SAS_KEY) and their permissions on the container"
        }
        E::BucketNotFound { url, .. } if url.starts_with("az://") => {
            "create the container first, or check its name, AZURE_STORAGE_ACCOUNT_NAME and \
             AZURE_STORAGE_ENDPOINT (AZURITE_BLOB_STORAGE_URL for the emulator)"
        }
        E::StorageUnreachable { url, .. } | E::StorageServerError { url, .. }
            if url.starts_with("az://") =>
        {
            "check AZURE_STORAGE_ENDPOINT (AZURITE_BLOB_STORAGE_URL for the emulator) and that \
             the service runs; CAIRN_S3_RETRIES and CAIRN_S3_TIMEOUT_SECS set how long cairn \
             keeps trying"
        }
        E::StorageAuth { url, .. } if url.starts_with("gs://") => {
            "check GOOGLE_SERVICE_ACCOUNT (or GOOGLE_SERVICE_ACCOUNT_KEY, or the application \
             default credentials) and its permissions on the bucket"
        }
        E::StorageAuth { .. } => {
            "check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) and the \
             key's permissions on the bucket"
        }
        E::BucketNotFound { .. } => {
            "create the bucket first, or check the bucket name and AWS_ENDPOINT_URL"
        }
        E::StorageUnreachable { .. } | E::StorageServerError { .. } => {
            "check AWS_ENDPOINT_URL and that the server runs; CAIRN_S3_RETRIES and \
             CAIRN_S3_TIMEOUT_SECS set how long cairn keeps trying"
        }
        E::UnsupportedUrl { .. } => {
            "use s3://BUCKET/PREFIX, az://CONTAINER/PREFIX, gs://BUCKET/PREFIX or a local path \
             (a relative path that looks like a URL can be written ./NAME)"
        }
        E::IncompatibleRepositories { .. } => {
            "copy into a repository made with the source's chunk size (`cairn init --chunk-avg \
             SIZE`, the size `cairn bench --repo SOURCE` shows); nothing was written"
        }
        E::PasswordRequired { .. } => password::WAYS,
        E::WrongPassword { .. } => {
            "nothing was written; check CAIRN_PASSWORD / the password file or command \
             (`cairn key list` shows the key files, once unlocked)"
        }
        E::NotEncrypted { .. } => "encryption is chosen at `cairn init --encryption`",
        E::KeyRemovalRefused { .. } => "`cairn key add` first, or `cairn key passwd` to replace it",
        E::UnsupportedSource { .. } => {
            "to back up piped data, give it on standard input: \
             `… | cairn snapshot --stdin --stdin-filename NAME --kind K --name N`"
        }
        E::InFile { source, .. } => return hint(source),
        _ => return None,
    })
}
