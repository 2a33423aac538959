//! The command line, as clap derive types. Nothing here does work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod retention;
pub use retention::*;

#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version,
    about = "Content-addressed, deduplicating backups for model files, portfolio states and configs",
    long_about = "cairn cuts files into content-defined chunks, stores each distinct chunk once \
                  (BLAKE3 id, zstd) in pack files, and records typed snapshots (kind, name, version, \
                  tags) in a SQLite catalog. Every snapshot is incremental; any snapshot restores \
                  bit-identically.\n\n\
                  SNAPSHOT selectors: an id prefix (>= 4 hex chars); NAME (latest of that name); \
                  NAME~N (N before the latest); NAME@TIME (latest at or before TIME: RFC 3339 or local \
                  YYYY-MM-DD[ HH:MM[:SS]], meaning the end of that day, minute or second); NAME:VERSION (latest with \
                  that version label); KIND/NAME... when a name exists under two kinds.\n\n\
                  Exit codes: 0 success, 1 a verification found damage or a mismatch, 2 usage or runtime error, \
                  3 a snapshot was saved without some of its sources (skipped or changed while read)."
)]
pub struct Cli {
    /// Repository path [default: $XDG_DATA_HOME/cairn, i.e. ~/.local/share/cairn]
    #[arg(
        long,
        global = true,
        env = "CAIRN_REPO",
        value_name = "PATH",
        help_heading = "Global options"
    )]
    pub repo: Option<PathBuf>,

    /// Print only errors: no progress, no summaries (data asked for, such as `list` or `--json`, is still printed)
    #[arg(
        long,
        short,
        global = true,
        help_heading = "Global options",
        conflicts_with = "verbose"
    )]
    pub quiet: bool,

    /// Print more: a line per file on snapshot and restore
    #[arg(long, short, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub verbose: u8,

    /// When another command holds a conflicting lock, keep retrying this long (e.g. 30s, 10m, 2h) instead of failing at once
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_wait, help_heading = "Global options")]
    pub lock_wait: Option<std::time::Duration>,
    /// Read an encrypted repository's password from the first line of FILE
    #[arg(long, global = true, env = "CAIRN_PASSWORD_FILE", value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Run CMD with `sh -c` and use the first line it prints as the password (e.g. "pass show cairn")
    #[arg(long, global = true, value_name = "CMD")]
    pub password_command: Option<String>,

    /// Argon2id memory (KiB) for key files made by this run instead of 65536 (tests only: weak)
    #[arg(
        long,
        global = true,
        env = "CAIRN_KDF_MEMORY_KIB",
        value_name = "KIB",
        hide = true
    )]
    pub kdf_memory_kib: Option<u32>,

    #[command(subcommand)]
    pub command: Command,
}

impl Command {
    /// True for commands whose output reports what they did (muted by
    /// `-q`), false for those whose output is the data asked for.
    pub fn reports(&self) -> bool {
        use Command as C;
        match self {
            C::Policy(p) => !matches!(p, PolicyCommand::Show(_)),
            C::Key(k) => !matches!(k, KeyCommand::List(_)),
            C::Init(_) | C::Snapshot(_) | C::Restore(_) | C::Tag(_) | C::Check(_) => true,
            C::Verify(_) | C::RebuildCatalog(_) | C::Repair(_) | C::Unlock(_) => true,
            C::Upgrade(_) => true,
            C::Forget(_) | C::Delete(_) | C::Prune(_) | C::Gc(_) | C::Copy(_) | C::Run(_) => true,
            _ => false,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a repository
    Init(InitArgs),
    /// Take a snapshot of files or directories (creates the default repository on first use)
    Snapshot(SnapshotArgs),
    /// List snapshots, oldest first
    List(ListArgs),
    /// Show the files, sizes and SHA-256 digests in a snapshot
    Show(ShowArgs),
    /// Restore a snapshot (or parts of it) into a directory, verifying every file
    ///
    /// Hard links, FIFOs and symlinks are recreated. As root, device nodes
    /// are created and owners set from the recorded numeric uid/gid (names
    /// are not stored: always as borg's --numeric-owner); as another user,
    /// device nodes are skipped and counted and ownership is not attempted.
    Restore(RestoreArgs),
    /// Write one file of a snapshot to standard output
    Cat(CatArgs),
    /// Edit the tags, version label or description of snapshots (pin a milestone after the fact); each gets a new id
    Tag(TagArgs),
    /// Print a shell completion script (e.g. `cairn completions bash > /etc/bash_completion.d/cairn`)
    Completions(CompletionsArgs),
    /// Write man pages: cairn.1 and one per command (cairn-snapshot.1, …) into DIR
    Man(ManArgs),
    /// List the entries of a snapshot, or of one directory in it
    Ls(LsArgs),
    /// Find files by name or path pattern across snapshots
    Find(FindArgs),
    /// Write a directory (or file) of a snapshot to standard output as a tar stream
    Dump(DumpArgs),
    /// Browse the snapshots as a read-only FUSE file system until unmounted (Ctrl-C or `fusermount -u`)
    Mount(MountArgs),
    /// Files added, removed and changed between two snapshots
    Diff(DiffArgs),
    /// Snapshot counts, logical and stored bytes, dedup and compression ratios
    Stats(StatsArgs),
    /// Compare dedup, compression, delta coding and speed of chunk sizes and levels on successive versions (nothing is written); without PATH, the repository's growth snapshot by snapshot
    ///
    /// Model files (safetensors, GGUF, PyTorch) are broken down by dtype and by tensor group (the tensor name with its layer numbers as N). A tensor with a previous version (the same file in an earlier version, or the previous version when both are single files) is also measured as a delta of it, with the snapshot's keyframe rule, in the WITH DELTA columns: what a snapshot with delta coding would store.
    Bench(BenchArgs),
    /// Check the repository: catalog, packs and manifests agree; --read-data re-hashes every chunk
    Check(CheckArgs),
    /// Rebuild every file of a snapshot in memory and compare with its SHA-256
    Verify(VerifyArgs),
    /// Recreate the SQLite catalog from packs and manifests
    RebuildCatalog(RebuildArgs),
    /// Salvage damaged packs, drop lost chunks, restore manifests, mark broken snapshots; --config: restore the config from its backup
    Repair(RepairArgs),
    /// Remove stale locks (of processes that are gone), or all locks with --all
    Unlock(UnlockArgs),
    /// Raise the repository version to the newest this cairn writes (older cairn builds then refuse the repository)
    #[command(
        long_about = "Raise the repository version to the newest this cairn writes (4: snapshots \
                  with tree objects). A repository made by an earlier cairn keeps its version, and \
                  with it the older way of writing snapshots, until upgraded. Only the config \
                  changes: every stored snapshot stays as it is and reads as before. A cairn that \
                  reads only up to the old version refuses the upgraded repository (every command, \
                  reading or writing), and there is no way back. Asks first on a terminal (--yes \
                  for scripts)."
    )]
    Upgrade(UpgradeArgs),
    /// Remove snapshots by retention rules (those given, else the stored policies)
    #[command(
        long_about = "Remove snapshots by retention rules, applied to each kind/name history \
                  separately. With no --keep-* rule, the policies stored with `cairn policy set` apply \
                  (a history without one keeps everything). Prints every snapshot with keep/remove and \
                  the rules that keep it. Frees no space by itself: run `cairn gc` (or `cairn prune`)."
    )]
    Forget(ForgetArgs),
    /// Remove the named snapshots (asks first on a terminal)
    Delete(DeleteArgs),
    /// Store, show or remove the retention policies `forget` and `prune` apply
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Forget by the stored policies, then gc
    Prune(PruneArgs),
    /// Free the space of data no snapshot uses: delete dead packs, repack mostly-unused ones
    Gc(GcArgs),
    /// Copy snapshots to another repository, sending only the chunks it lacks
    #[command(
        long_about = "Copy snapshots from --from to --to, sending only the chunks the destination \
                  lacks. With no SNAPSHOT and no --kind/--name/--tag, every snapshot is copied.\n\n\
                  When both repositories cut and seal chunks alike (the same --chunk-avg, and both \
                  unencrypted or both under the same key, as `init --from-repo` makes them), chunks \
                  travel as stored and each snapshot keeps its id. Otherwise (plain <-> encrypted, \
                  two keys, two chunk sizes) every file is re-encoded: read from --from and \
                  verified, cut by --to's chunker, deduplicated against --to, compressed and sealed \
                  with --to's key. That costs a full read + chunk + compress + seal of every file \
                  copied (about a snapshot's time), and each copied snapshot gets a new id in --to \
                  (shown as TO ID); its label, time, host, tags, description and every file's \
                  metadata are kept.\n\n\
                  A snapshot is already present when --to lists its id or, when re-encoding, a \
                  snapshot of the same kind, name, version, host and time; so a second run copies \
                  nothing and an interrupted run, rerun, finishes without duplicates. A dry run of \
                  a re-encoding copy says which snapshots and how many raw bytes would be read, \
                  not what would be sent: what deduplicates is known only by reading."
    )]
    Copy(CopyArgs),
    /// Validate the runner's config file, or print a commented example
    #[command(subcommand)]
    Config(super::runner::ConfigCommand),
    /// Back up the config file's targets once (all, the named ones, or those due): snapshot, forget, gc, check, hooks
    Run(super::runner::RunArgs),
    /// OK / LATE / FAILING / NEVER for each target of the config file (exit 0 only if all OK)
    Health(super::runner::HealthArgs),
    /// Prometheus metrics of the config's targets, to stdout or atomically to --textfile PATH (node_exporter); Prometheus text, no --json (`cairn health --json` has the same facts)
    Metrics(super::runner::MetricsArgs),
    /// Stay up and run the config's targets on their schedules; SIGTERM/SIGINT stop (after the run in flight), SIGHUP reloads the config
    Daemon(super::runner::DaemonArgs),
    /// The passwords of an encrypted repository: list, add, remove, change
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Snapshots to copy (id prefix, NAME, NAME~N, NAME@TIME, NAME:VERSION); none: every snapshot, or those --kind/--name/--tag select
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// The repository to copy from (as --repo)
    #[arg(long, value_name = "REPO")]
    pub from: PathBuf,
    /// The repository to copy into (as --repo; it must exist)
    #[arg(long, value_name = "REPO")]
    pub to: PathBuf,
    /// The password of --from: the first line of FILE (without it, both repositories' passwords come from the same places)
    #[arg(long, value_name = "FILE")]
    pub from_password_file: Option<PathBuf>,
    /// Also copy every snapshot of this kind (with --name, of that history)
    #[arg(long)]
    pub kind: Option<String>,
    /// Also copy the whole history of this name
    #[arg(long)]
    pub name: Option<String>,
    /// Also copy every snapshot with this tag
    #[arg(long)]
    pub tag: Option<String>,
    /// Show what would be copied and sent (re-encoding: what would be read); write nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the key files (one per password); `*` marks the one this password opens
    List(JsonArgs),
    /// Add a password (a new key file for the same master key; nothing is re-encrypted)
    Add(NewPasswordArgs),
    /// Remove a key file by id (refused for the last one, and for the one the password given opens)
    Remove(KeyRemoveArgs),
    /// Change the password given: the new key file is written before the old one is removed
    Passwd(NewPasswordArgs),
}

#[derive(Debug, Args)]
pub struct NewPasswordArgs {
    /// Read the new password from the first line of FILE [else $CAIRN_NEW_PASSWORD_FILE, $CAIRN_NEW_PASSWORD, or asked twice on the terminal]
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
    /// Print the result as JSON (docs/JSON.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct KeyRemoveArgs {
    /// The key's id, as `cairn key list` shows it
    pub id: String,
    /// Print the result as JSON (docs/JSON.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Read every pack, decompress and re-hash every chunk
    #[arg(long)]
    pub read_data: bool,
    /// Read only this percentage of packs, least recently verified first (implies --read-data)
    #[arg(long, value_name = "PCT", value_parser = parse_pct)]
    pub read_data_subset: Option<f64>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The snapshot (id prefix, NAME, NAME~N, NAME@TIME, NAME:VERSION)
    pub snapshot: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// Replace a catalog that opens and checks fine without asking (needed when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Say what would be read and replaced; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// `--json` on a command that has no JSON form (raw data, a file format
/// of its own, or a foreground process): accepted by the parser only to be
/// refused, saying why and what to use instead (`cli::refuse_json`;
/// docs/JSON.md, "Commands without JSON").
#[derive(Debug, Args)]
pub struct NoJson {
    #[arg(long, hide = true)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// Upgrade without asking (needed when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Say what would change; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Print the result as JSON (docs/JSON.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Remove every lock, even those of live processes (make sure nothing runs)
    #[arg(long)]
    pub all: bool,
    /// Print the result as JSON (docs/JSON.md)
    #[arg(long)]
    pub json: bool,
}

/// `90`, `90s`, `10m` or `2h`.
fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    let (digits, unit) = s.trim().split_at(
        s.trim()
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(s.trim().len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: use e.g. 30s, 10m or 2h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("`{s}` is not a duration: use e.g. 30s, 10m or 2h")),
    };
    Ok(std::time::Duration::from_secs(secs))
}

fn parse_pct(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{s}` is not a percentage"))?;
    if v > 0.0 && v <= 100.0 {
        Ok(v)
    } else {
        Err(format!("`{s}` must be in (0, 100]"))
    }
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    /// Only repair the config: rewrite `config` from `config.backup` or the
    /// other way round, whichever is intact (needs no catalog)
    #[arg(long)]
    pub config: bool,
    /// With --config when both copies are lost: recreate the config with
    /// this average chunk size (use the repository's original one, or new
    /// data will not deduplicate against old data)
    #[arg(long, value_name = "SIZE", value_parser = parse_size, requires = "config")]
    pub chunk_avg: Option<u64>,
    /// With --config --chunk-avg: default zstd level of the recreated config
    #[arg(long, value_name = "N", default_value_t = 3, requires = "chunk_avg")]
    pub compression: i32,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Encryption (--encryption) is chosen here and fixed for the repository's life. \
A repository on storage you do not control (a bucket, a remote disk) should be encrypted: \
everything in it is then sealed with XChaCha20-Poly1305 under a random master key, and whoever \
reads it learns only sizes and counts. The password is asked twice on a terminal, or taken from \
CAIRN_PASSWORD, CAIRN_PASSWORD_FILE, --password-file FILE or --password-command CMD. \
Lose every password and the data is gone: `cairn key add` adds a second one."
)]
pub struct InitArgs {
    /// Encrypt everything stored (password asked twice, or from CAIRN_PASSWORD[_FILE], --password-file, --password-command)
    #[arg(long)]
    pub encryption: bool,
    /// Average chunk size (e.g. 64K, 1M); min is a quarter of it, max four times it
    #[arg(long, value_name = "SIZE", default_value = "64K", value_parser = parse_size)]
    pub chunk_avg: u64,
    /// Default zstd level for new chunks, 0..19 (0 stores raw)
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub compression: i32,
    /// Verify written packs before each snapshot is committed (repository default)
    #[arg(long)]
    pub verify: bool,
    /// Seal packs at this much chunk data instead of 32M (small packs: finer-grained gc; used by tests)
    #[arg(long, value_name = "SIZE", value_parser = parse_size, hide = true)]
    pub pack_target: Option<u64>,
    /// Make the repository at an older repository version (1–4), as an
    /// earlier cairn made it: for tests of `upgrade` and of old repositories
    #[arg(long, value_name = "N", hide = true)]
    pub repo_version: Option<u32>,
    /// Make this repository take `cairn copy` from REPO (and give to it) as stored: it gets REPO's chunker and, if REPO is encrypted, REPO's master key under this repository's own password
    #[arg(long, value_name = "REPO", conflicts_with = "chunk_avg")]
    pub from_repo: Option<PathBuf>,
    /// The password of --from-repo: the first line of FILE (without it, --from-repo's password comes from the same places as --repo's)
    #[arg(long, value_name = "FILE", requires = "from_repo")]
    pub from_password_file: Option<PathBuf>,
    /// Print the result as JSON (docs/JSON.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Files or directories to snapshot; each is stored under its path as given (`models/a.h5` as `models/a.h5`, `/data/llama` as `data/llama`, `.` as the top), and restores to that layout under the target
    #[arg(required_unless_present_any = ["files_from", "stdin"], value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Store standard input as one file named by --stdin-filename (e.g. `pg_dump app | cairn snapshot --stdin --stdin-filename app.sql ...`)
    #[arg(long, requires = "stdin_filename", conflicts_with_all = ["paths", "files_from"])]
    pub stdin: bool,
    /// With --stdin: the file name the piped bytes are stored under
    #[arg(long, value_name = "NAME", requires = "stdin")]
    pub stdin_filename: Option<String>,
    /// Leave out entries matching this gitignore-style pattern (repeatable), e.g. '*.tmp', 'cache/', 'data/scratch'
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Read exclude patterns from FILE, one per line (blank lines and '#' comments ignored; repeatable)
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Read the paths to snapshot from FILE, one per line (blank lines and '#' comments ignored; repeatable)
    #[arg(long, value_name = "FILE")]
    pub files_from: Vec<PathBuf>,
    /// What the snapshot holds: model, portfolio, config, or any word
    #[arg(long)]
    pub kind: String,
    /// The history this snapshot belongs to, e.g. trading_model
    #[arg(long)]
    pub name: String,
    /// A version label, e.g. v3 or 2026-11-17-finetune
    #[arg(long = "version", value_name = "V")]
    pub version_label: Option<String>,
    /// A tag (repeatable), e.g. milestone
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// Free-text description
    #[arg(long)]
    pub description: Option<String>,
    /// Re-read every file even when size, mtime and inode match the previous snapshot
    #[arg(long)]
    pub force: bool,
    /// zstd level for this snapshot's new chunks, 0..19 (default: the repository's)
    #[arg(long, value_name = "N")]
    pub compression: Option<i32>,
    /// Read back every new pack and check it before the snapshot is committed
    #[arg(long)]
    pub verify: bool,
    /// Save no new snapshot when every file matches the latest snapshot of this history (says so; exit 0)
    #[arg(long)]
    pub skip_if_unchanged: bool,
    /// Read and chunk as a snapshot would and say what would be read and roughly stored; write nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Fail (exit 2, nothing saved) on an unreadable entry, a name that is not UTF-8, or a file changing while read, instead of skipping or storing it as read (exit 3)
    #[arg(long)]
    pub strict: bool,
    /// Store every chunk standalone, never as a delta of the previous version of its tensor
    #[arg(long)]
    pub no_delta: bool,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Default)]
pub struct FilterArgs {
    /// Only this kind
    #[arg(long)]
    pub kind: Option<String>,
    /// Only this name
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only snapshots with this tag
    #[arg(long)]
    pub tag: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The snapshot (id prefix, NAME, NAME~N, NAME@TIME, NAME:VERSION)
    pub snapshot: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The snapshot (id prefix, NAME, NAME~N, NAME@TIME, NAME:VERSION)
    pub snapshot: String,
    /// Directory to restore into (created if missing)
    pub target: PathBuf,
    /// Restore only this file or subtree (repeatable), as shown by `cairn show`
    #[arg(long = "path", value_name = "P")]
    pub paths: Vec<String>,
    /// Replace files that already exist in TARGET
    #[arg(long)]
    pub overwrite: bool,
    /// Restore every file that can be restored, list those that fail (exit 1)
    #[arg(long)]
    pub ignore_errors: bool,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CatArgs {
    /// The snapshot
    pub snapshot: String,
    /// The file's path in the snapshot, as shown by `cairn show`
    pub file: String,
    #[command(flatten)]
    pub no_json: NoJson,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// The snapshots (id prefix, NAME, NAME~N, NAME@TIME, NAME:VERSION)
    #[arg(required = true)]
    pub snapshots: Vec<String>,
    /// Add this tag (repeatable)
    #[arg(long, value_name = "T")]
    pub add: Vec<String>,
    /// Remove this tag (repeatable)
    #[arg(long, value_name = "T")]
    pub remove: Vec<String>,
    /// Replace all tags with these (repeatable; applied before --add and --remove)
    #[arg(long, value_name = "T", conflicts_with = "clear_tags")]
    pub set: Vec<String>,
    /// Remove every tag
    #[arg(long)]
    pub clear_tags: bool,
    /// Set the version label
    #[arg(long = "version", value_name = "V")]
    pub version_label: Option<String>,
    /// Set the description (an empty one removes it)
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    pub shell: clap_complete::Shell,
    #[command(flatten)]
    pub no_json: NoJson,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing)
    pub dir: PathBuf,
    #[command(flatten)]
    pub no_json: NoJson,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// The snapshot (id prefix, NAME, NAME~N, NAME@TIME, NAME:VERSION)
    pub snapshot: String,
    /// Only this file or directory and what is under it, as shown by `cairn show`
    pub path: Option<String>,
    /// Long format: kind, mode, size, modification time
    #[arg(long, short)]
    pub long: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct FindArgs {
    /// A glob (`*`, `?`, `[abc]`, `**`): matched against file names, or against
    /// whole paths in the snapshot when it contains a `/` (e.g. `*.json`, `data/**/*.csv`)
    pub pattern: String,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only snapshots with this tag
    #[arg(long)]
    pub tag: Option<String>,
    /// Long format: kind, mode, size, modification time
    #[arg(long, short)]
    pub long: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The snapshot (id prefix, NAME, NAME~N, NAME@TIME, NAME:VERSION)
    pub snapshot: String,
    /// The directory or file to write [default: the whole snapshot]
    pub path: Option<String>,
    /// Write the archive to this file (complete or not at all) instead of standard output
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub no_json: NoJson,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older snapshot
    pub from: String,
    /// The newer snapshot
    pub to: String,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// Parses a percentage, `10`, `10%` or `2.5`, as a share (0.10, 0.10,
/// 0.025); unlike `parse_pct`, 0 is allowed.
pub fn parse_share(s: &str) -> Result<f64, String> {
    let pct: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{s}` is not a percentage (e.g. 10 or 2.5%)"))?;
    if (0.0..=100.0).contains(&pct) {
        Ok(pct / 100.0)
    } else {
        Err(format!("`{s}` is outside 0..100%"))
    }
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Versions in order, oldest first (a file or a directory each); without
    /// PATH, report the repository (--repo / $CAIRN_REPO) snapshot by snapshot
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Average chunk sizes to compare, comma-separated [default: 64K]
    #[arg(long, value_name = "SIZES", value_delimiter = ',', value_parser = parse_size)]
    pub chunk_avg: Option<Vec<u64>>,
    /// zstd levels to compare, comma-separated, 0..19 (0 stores raw) [default: 3]
    #[arg(long, value_name = "LEVELS", value_delimiter = ',')]
    pub compression: Option<Vec<i32>>,
    /// Write an SVG chart of stored size and throughput against chunk size
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

/// Parses `4096`, `64K`, `1M`, `2G` (binary units, optional `iB`/`B`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let digits = upper.trim_end_matches(['I', 'B']);
    let (num, mult) = match digits.chars().last() {
        Some('K') => (&digits[..digits.len() - 1], 1u64 << 10),
        Some('M') => (&digits[..digits.len() - 1], 1 << 20),
        Some('G') => (&digits[..digits.len() - 1], 1 << 30),
        Some('T') => (&digits[..digits.len() - 1], 1 << 40),
        _ => (digits, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("`{s}` is not a size (e.g. 4096, 64K, 1M)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert!(parse_size("x").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_share("10"), Ok(0.10));
        assert_eq!(parse_share("2.5%"), Ok(0.025));
        assert_eq!(parse_share("0"), Ok(0.0));
        assert!(parse_share("101").is_err());
        assert!(parse_share("-1").is_err());
        assert!(parse_share("ten").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// An existing (empty) directory to mount on: KIND/NAME/TIME/… per snapshot, with
    /// `latest`, `by-version/VERSION` and `by-id/SHORTID` links in each history
    pub mountpoint: PathBuf,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub no_json: NoJson,
}
