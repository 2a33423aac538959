//! One function per subcommand: resolve arguments into library calls, print
//! the result as a table or JSON.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use cairn::{
    ChunkerParams, RepoConfig, Repository, RestoreOptions, SnapshotFilter, SnapshotInfo,
    SnapshotLabel, SnapshotOptions,
};

use super::args::*;
use super::{json, output};
use super::{printing_warnings, Ctx, DAMAGE, INCOMPLETE};

pub fn init(ctx: &Ctx, a: InitArgs) -> Result<()> {
    let (location, _) = ctx.repo_path()?;
    let avg = u32::try_from(a.chunk_avg).context("--chunk-avg is too large")?;
    let mut config = RepoConfig::new(ChunkerParams::with_average(avg), a.compression)?;
    config.verify_after_snapshot = a.verify;
    if let Some(bytes) = a.pack_target {
        config = config.with_pack_target(bytes)?;
    }
    if a.encryption {
        config = config.with_encryption();
    }
    if let Some(v) = a.repo_version {
        config.version = v;
        // The same checks as reading it back (a version-1 repository is
        // never encrypted, a version-2 one always).
        RepoConfig::from_json(&config.to_json(), "--repo-version")?;
    }
    let repo = match &a.from_repo {
        Some(from) => {
            let like = super::copy::open_source(
                ctx,
                from,
                a.from_password_file.as_deref(),
                "--from-repo",
            )?;
            Repository::init_like(&location, config, &like)?
        }
        None => Repository::init_at_location(&location, config)?,
    };
    let encrypted = repo.crypt().is_encrypted();
    if !encrypted && matches!(location, cairn::RepoLocation::Object(_)) {
        eprintln!(
            "cairn: warning: {} is remote and not encrypted: whoever can read it reads \
             your data (`cairn init --encryption` seals everything)",
            location.display()
        );
    }
    if a.json {
        return output::json(&serde_json::json!({
            "repository": location.display().to_string(),
            "encrypted": encrypted,
            "from_repo": a.from_repo.as_ref().map(|p| p.display().to_string()),
        }));
    }
    let how = if encrypted { "encrypted " } else { "" };
    outln!("created {how}cairn repository at {}", location.display());
    if let Some(from) = &a.from_repo {
        outln!(
            "  it shares the chunker{} of {}: `cairn copy` works between them",
            if encrypted { " and master key" } else { "" },
            from.display()
        );
    }
    Ok(())
}

pub fn snapshot(ctx: &Ctx, a: SnapshotArgs) -> Result<ExitCode> {
    let (location, is_default) = ctx.repo_path()?;
    let repo = match Repository::open_location(&location, cairn::OpenMode::ReadWrite) {
        Err(cairn::Error::RepoNotFound { .. }) if is_default => {
            if !ctx.quiet() {
                eprintln!("creating the default repository at {}", location.display());
            }
            Repository::init_at_location(&location, RepoConfig::new(ChunkerParams::default(), 3)?)?
        }
        other => printing_warnings(other?),
    };
    let opts = SnapshotOptions {
        label: SnapshotLabel {
            kind: a.kind,
            name: a.name,
            version: a.version_label,
            tags: a.tags,
            description: a.description,
        },
        force: a.force,
        compression: a.compression,
        verify: a.verify,
        strict: a.strict,
        exclude: patterns(a.exclude, &a.exclude_file)?,
        no_delta: a.no_delta,
        skip_if_unchanged: a.skip_if_unchanged,
        dry_run: a.dry_run,
    };
    let r = match a.stdin_filename {
        Some(name) => repo.snapshot_stream(&name, Box::new(std::io::stdin()), &opts, &ctx.bar())?,
        None => {
            let mut paths = a.paths;
            for file in &a.files_from {
                paths.extend(lines_of(file)?.into_iter().map(PathBuf::from));
            }
            repo.snapshot(&paths, &opts, &ctx.bar())?
        }
    };
    let code = warn_left_out(&r);
    if a.json {
        output::json(&json::SnapshotReport::new(&r))?;
        return Ok(code);
    }
    if ctx.verbose() && !r.unchanged {
        print_changes(&repo, &r)?;
    }
    let secs = r.duration_ms as f64 / 1000.0;
    if r.unchanged {
        outln!(
            "nothing changed since snapshot {} ({}/{}): no new snapshot saved",
            r.id.short(),
            r.kind,
            r.name
        );
        return Ok(code);
    }
    if r.dry_run {
        outln!("dry run: nothing written ({}/{})", r.kind, r.name);
    } else {
        outln!("snapshot {} saved ({}/{})", r.id.short(), r.kind, r.name);
    }
    outln!(
        "  files       {} ({} read, {} unchanged)",
        r.files,
        r.files_read,
        r.files - r.files_read
    );
    if r.excluded > 0 {
        outln!("  excluded    {} (by --exclude patterns)", r.excluded);
    }
    outln!("  logical     {}", output::bytes(r.logical_bytes));
    outln!("  read        {}", output::bytes(r.bytes_read));
    outln!(
        "  new         {} in {}, {} stored",
        output::bytes(r.added_raw),
        output::count(r.chunks_new, "chunk"),
        output::bytes(r.added_stored)
    );
    if r.added_raw == 0 {
        outln!("  dedup       nothing new stored");
    } else {
        outln!("  dedup       {:.1}x", r.dedup_ratio());
    }
    outln!(
        "  time        {secs:.2} s ({}/s read)",
        output::bytes((r.bytes_read as f64 / secs.max(1e-3)) as u64)
    );
    Ok(code)
}

/// `snapshot -v`: a line per entry added, changed or removed since the
/// parent (all added for a first snapshot); nothing for a dry run, whose
/// snapshot is not in the catalog.
fn print_changes(repo: &Repository, r: &cairn::SnapshotReport) -> Result<()> {
    if r.dry_run {
        return Ok(());
    }
    let snaps = repo.snapshots(&SnapshotFilter {
        kind: Some(r.kind.clone()),
        name: Some(r.name.clone()),
        tag: None,
    })?;
    let Some(at) = snaps.iter().position(|s| s.id == r.id) else {
        return Ok(());
    };
    let d = match at.checked_sub(1) {
        Some(parent) => repo.diff(&snaps[parent], &snaps[at])?,
        None => cairn::Diff {
            added: (repo.files(&snaps[at])?.into_iter())
                .map(|f| cairn::Change {
                    path: f.path,
                    old_size: 0,
                    new_size: f.size,
                })
                .collect(),
            ..Default::default()
        },
    };
    for (what, changes) in [
        ("added", &d.added),
        ("changed", &d.changed),
        ("removed", &d.removed),
    ] {
        for c in changes {
            outln!("{what:<8} {}", output::path(&c.path));
        }
    }
    Ok(())
}

/// The `--exclude` patterns followed by those of every `--exclude-file`.
fn patterns(mut given: Vec<String>, files: &[PathBuf]) -> Result<Vec<String>> {
    for file in files {
        given.extend(lines_of(file)?);
    }
    Ok(given)
}

/// The lines of `file` that are neither blank nor `#` comments, trimmed of
/// their line ending (`--exclude-file`, `--files-from`).
fn lines_of(file: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(text
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

/// Warns about every entry left out or stored while changing; picks exit 0
/// or [`INCOMPLETE`].
fn warn_left_out(r: &cairn::SnapshotReport) -> ExitCode {
    for s in &r.skipped {
        eprintln!("cairn: warning: skipped {}: {}", s.path, s.detail);
    }
    for c in &r.changed {
        eprintln!(
            "cairn: warning: {} changed while it was read, also when read again ({}); stored as last read",
            c.path, c.detail
        );
    }
    if r.complete {
        ExitCode::SUCCESS
    } else {
        let saved = if r.dry_run {
            "would be saved (dry run)"
        } else {
            "saved"
        };
        eprintln!(
            "cairn: snapshot {} {saved} but incomplete: {} left out, {} stored while changing (--strict fails instead)",
            r.id.short(),
            r.skipped
                .iter()
                .filter(|s| s.reason != cairn::SkipReason::Unsupported)
                .count(),
            r.changed.len()
        );
        ExitCode::from(INCOMPLETE)
    }
}

pub fn list(ctx: &Ctx, a: ListArgs) -> Result<()> {
    let repo = ctx.open_read_only()?;
    let filter = SnapshotFilter {
        kind: a.filter.kind,
        name: a.filter.name,
        tag: a.tag,
    };
    let snaps = repo.snapshots(&filter)?;
    if a.json {
        return output::json(&json::snapshots(&snaps));
    }
    let rows: Vec<Vec<String>> = snaps
        .iter()
        .map(|s| {
            let mut row = output::snapshot_cells(s);
            row.push(output::bytes(s.logical_bytes));
            row.push(output::bytes(s.stats.added_stored));
            row.push(if s.damaged {
                "DAMAGED".into()
            } else {
                String::new()
            });
            row
        })
        .collect();
    let mut header = output::SNAPSHOT_COLUMNS.to_vec();
    header.extend(["SIZE", "ADDED", "STATE"]);
    output::table(&header, &rows)?;
    outln!("{}", output::count(snaps.len() as u64, "snapshot"));
    Ok(())
}

pub fn show(ctx: &Ctx, a: ShowArgs) -> Result<()> {
    let repo = ctx.open_read_only()?;
    let snap = repo.resolve(&a.snapshot)?;
    let files = repo.catalog().files(&snap)?;
    if a.json {
        #[derive(serde::Serialize)]
        struct Shown<'a> {
            snapshot: json::Snapshot,
            entries: Vec<json::Entry<'a>>,
        }
        return output::json(&Shown {
            snapshot: json::Snapshot::new(&snap),
            entries: json::entries(&files),
        });
    }
    print_header(&snap)?;
    let rows: Vec<Vec<String>> = files
        .iter()
        .map(|f| {
            let (size, digest) = match f.kind {
                cairn::EntryKind::File => (f.size.to_string(), hex::encode(f.sha256)),
                cairn::EntryKind::Dir => ("-".into(), "-".into()),
                cairn::EntryKind::Symlink => {
                    ("-".into(), format!("-> {}", output::path(&f.link_target)))
                }
                cairn::EntryKind::Fifo => ("-".into(), "fifo".into()),
                _ => (output::device(f.rdev), output::kind_name(f.kind).into()),
            };
            let path = output::path(&f.path).into_owned() + &output::entry_notes(f);
            vec![
                format!("{:o}", f.mode),
                output::owner(f),
                size,
                digest,
                path,
            ]
        })
        .collect();
    output::table(&["MODE", "OWNER", "SIZE", "SHA256", "PATH"], &rows)?;
    Ok(())
}

fn print_header(s: &SnapshotInfo) -> Result<()> {
    outln!("snapshot {}", s.id);
    outln!(
        "  {}/{}{}",
        s.label.kind,
        s.label.name,
        s.label
            .version
            .as_deref()
            .map(|v| format!(":{v}"))
            .unwrap_or_default()
    );
    outln!("  taken   {} on {}", output::local_time(&s.time), s.host);
    if !s.label.tags.is_empty() {
        outln!("  tags    {}", s.label.tags.join(", "));
    }
    if let Some(d) = &s.label.description {
        outln!("  about   {d}");
    }
    outln!("  sources {}", s.sources.join(", "));
    outln!();
    Ok(())
}

pub fn restore(ctx: &Ctx, a: RestoreArgs) -> Result<ExitCode> {
    let repo = ctx.open_read_only()?;
    let snap = repo.resolve(&a.snapshot)?;
    let selected = a.paths.clone();
    let opts = RestoreOptions {
        paths: a.paths,
        overwrite: a.overwrite,
        ignore_errors: a.ignore_errors,
    };
    let r = repo
        .restore(&snap, &a.target, &opts, &ctx.bar())
        .with_context(|| format!("restoring {} into {}", snap.id.short(), a.target.display()))?;
    let code = if r.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(DAMAGE)
    };
    if a.json {
        output::json(&json::RestoreReport::new(&snap, &a.target, &r))?;
        return Ok(code);
    }
    for f in &r.failed {
        eprintln!("cairn: failed: {}: {}", output::path(&f.path), f.error);
    }
    if ctx.verbose() {
        let failed: std::collections::HashSet<&str> =
            r.failed.iter().map(|f| f.path.as_str()).collect();
        for f in repo.files(&snap)? {
            let wanted = selected.is_empty()
                || (selected.iter()).any(|s| {
                    let s = s.trim_end_matches('/');
                    f.path == s || f.path.strip_prefix(s).is_some_and(|r| r.starts_with('/'))
                });
            if wanted && !failed.contains(f.path.as_str()) {
                outln!("restored {}", output::path(&f.path));
            }
        }
    }
    outln!(
        "restored {}, {}, {} ({}) from {} into {}; every restored file matches its SHA-256",
        output::count(r.files, "file"),
        output::count(r.dirs, "directory"),
        output::count(r.symlinks, "symlink"),
        output::bytes(r.bytes),
        snap.id.short(),
        a.target.display()
    );
    if r.hardlinks + r.fifos + r.devices > 0 {
        outln!(
            "  of them {} as hard links; also {} and {}",
            r.hardlinks,
            output::count(r.fifos, "FIFO"),
            output::count(r.devices, "device node")
        );
    }
    if r.devices_skipped > 0 {
        outln!(
            "{} skipped: need root",
            output::count(r.devices_skipped, "device node")
        );
    }
    if r.owners_restored {
        outln!("owners set as recorded (numeric uid/gid)");
    }
    if !r.failed.is_empty() {
        outln!(
            "{} could not be restored (listed above)",
            output::count(r.failed.len() as u64, "file")
        );
    }
    Ok(code)
}

pub fn cat(ctx: &Ctx, a: CatArgs) -> Result<()> {
    let repo = ctx.open_read_only()?;
    let snap = repo.resolve(&a.snapshot)?;
    let mut out = std::io::stdout().lock();
    repo.cat(&snap, &a.file, &mut out)?;
    Ok(())
}

pub fn diff(ctx: &Ctx, a: DiffArgs) -> Result<()> {
    let repo = ctx.open_read_only()?;
    let (from, to) = (repo.resolve(&a.from)?, repo.resolve(&a.to)?);
    let d = repo.diff(&from, &to)?;
    if a.json {
        return output::json(&json::Diff::new(&from, &to, &d));
    }
    outln!("{} -> {}", from.id.short(), to.id.short());
    for c in &d.added {
        outln!(
            "+ {}  ({})",
            output::path(&c.path),
            output::bytes(c.new_size)
        );
    }
    for c in &d.removed {
        outln!(
            "- {}  ({})",
            output::path(&c.path),
            output::bytes(c.old_size)
        );
    }
    for c in &d.changed {
        outln!(
            "M {}  ({} -> {})",
            output::path(&c.path),
            output::bytes(c.old_size),
            output::bytes(c.new_size)
        );
    }
    outln!(
        "{} added, {} removed, {} changed",
        d.added.len(),
        d.removed.len(),
        d.changed.len()
    );
    Ok(())
}

pub fn stats(ctx: &Ctx, a: StatsArgs) -> Result<()> {
    let repo = ctx.open_read_only()?;
    let filter = SnapshotFilter {
        kind: a.filter.kind,
        name: a.filter.name,
        tag: None,
    };
    let s = repo.stats(&filter)?;
    if a.json {
        return output::json(&json::Stats::new(&s, &repo.snapshots(&filter)?));
    }
    outln!("snapshots          {}", s.snapshots);
    outln!("logical bytes      {}", output::bytes(s.logical_bytes));
    outln!("after dedup        {}", output::bytes(s.unique_bytes));
    outln!("stored (packed)    {}", output::bytes(s.stored_bytes));
    outln!("dedup ratio        {:.2}x", s.dedup_ratio);
    outln!("compression ratio  {:.2}x", s.compression_ratio);
    outln!(
        "repository packs   {}",
        output::bytes(s.repository_pack_bytes)
    );
    outln!();
    let rows: Vec<Vec<String>> = s
        .histories
        .iter()
        .map(|h| {
            vec![
                h.history.clone(),
                h.snapshots.to_string(),
                h.latest_id.clone(),
                output::local_time(&h.latest_time),
                output::age(h.age_seconds),
            ]
        })
        .collect();
    output::table(&["HISTORY", "SNAPSHOTS", "LATEST", "TAKEN", "AGE"], &rows)?;
    Ok(())
}

pub fn completions(a: CompletionsArgs) -> Result<()> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(a.shell, &mut cmd, "cairn", &mut std::io::stdout().lock());
    Ok(())
}

pub fn man(a: ManArgs) -> Result<()> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let cmd = <Cli as clap::CommandFactory>::command();
    clap_mangen::generate_to(cmd, &a.dir)
        .with_context(|| format!("writing man pages into {}", a.dir.display()))?;
    outln!("wrote man pages into {}", a.dir.display());
    Ok(())
}
