//! `check`, `verify`, `rebuild-catalog`, `repair`, `unlock`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use cairn::{CheckOptions, CheckReport};

use super::args::{CheckArgs, RebuildArgs, RepairArgs, UnlockArgs, VerifyArgs};
use super::{json, output};
use super::{Ctx, DAMAGE};

fn verdict(clean: bool) -> ExitCode {
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(DAMAGE)
    }
}

pub fn check(ctx: &Ctx, a: CheckArgs) -> Result<ExitCode> {
    let repo = ctx.open_preferring_write()?;
    let opts = CheckOptions {
        read_data: a.read_data || a.read_data_subset.is_some(),
        subset_pct: a.read_data_subset,
    };
    let r = repo.check(opts, &ctx.bar())?;
    if a.json {
        // Affected snapshots are named by short id: look up the rest.
        let affects = r.findings.iter().any(|f| !f.affected.is_empty());
        let snaps = match affects {
            true => repo.snapshots(&cairn::SnapshotFilter::default())?,
            false => Vec::new(),
        };
        output::json(&json::CheckReport::new(&r, &snaps))?;
    } else {
        print_check(&r)?;
    }
    Ok(verdict(r.is_clean()))
}

fn print_check(r: &CheckReport) -> Result<()> {
    for f in &r.findings {
        let label = if f.damage { "DAMAGE" } else { "note" };
        let detail = serde_json::to_value(&f.problem).unwrap_or_default();
        outln!("{label}: {}", describe(&detail));
        for a in &f.affected {
            outln!(
                "  affects snapshot {} ({}): {}",
                a.snapshot,
                a.history,
                a.files.join(", ")
            );
        }
    }
    outln!(
        "checked {}, {}; read {}, {}, {}",
        output::count(r.snapshots, "snapshot"),
        output::count(r.packs, "pack"),
        output::count(r.packs_read, "pack"),
        output::count(r.chunks_read, "chunk"),
        output::bytes(r.bytes_read)
    );
    let forget_interrupted = r
        .findings
        .iter()
        .any(|f| matches!(f.problem, cairn::Problem::ForgetInterrupted { .. }));
    if forget_interrupted {
        outln!("forget interrupted; rerun `cairn forget` (or `cairn repair`) to finish it");
    }
    let damage = r.findings.iter().filter(|f| f.damage).count();
    let catalog_damaged = r
        .findings
        .iter()
        .any(|f| matches!(f.problem, cairn::Problem::CatalogCorrupt { .. }));
    if damage == 0 {
        outln!("no damage found");
    } else if catalog_damaged {
        outln!("the catalog is damaged; `cairn rebuild-catalog` recreates it from packs and manifests, then run `cairn check` again");
    } else {
        outln!(
            "{} found; `cairn repair` salvages what it can (see README: Repair)",
            output::count(damage as u64, "problem")
        );
    }
    Ok(())
}

/// `pack_missing: pack=…` from a problem's JSON form.
fn describe(v: &serde_json::Value) -> String {
    let Some(map) = v.as_object() else {
        return v.to_string();
    };
    let kind = map
        .get("problem")
        .and_then(|p| p.as_str())
        .unwrap_or("problem")
        .replace('_', " ");
    let fields: Vec<String> = map
        .iter()
        .filter(|(k, _)| *k != "problem")
        .map(|(k, v)| {
            format!(
                "{k} {}",
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            )
        })
        .collect();
    format!("{kind}: {}", fields.join(", "))
}

pub fn verify(ctx: &Ctx, a: VerifyArgs) -> Result<ExitCode> {
    let repo = ctx.open_read_only()?;
    let snap = repo.resolve(&a.snapshot)?;
    let r = repo.verify(&snap, &ctx.bar())?;
    if a.json {
        output::json(&json::VerifyReport::new(&snap, &r))?;
    } else {
        for f in &r.failures {
            outln!("FAILED {}: {}", output::path(&f.path), f.error);
        }
        outln!(
            "verified {} files ({}) of snapshot {}: {}",
            r.files,
            output::bytes(r.bytes),
            snap.id.short(),
            if r.failures.is_empty() {
                "all match their SHA-256".to_string()
            } else {
                format!("{} failed", r.failures.len())
            }
        );
    }
    Ok(verdict(r.failures.is_empty()))
}

pub fn rebuild_catalog(ctx: &Ctx, a: RebuildArgs) -> Result<ExitCode> {
    let (location, _) = ctx.repo_path()?;
    let repo = cairn::Repository::open_storage_location(&location)?;
    print_warnings(repo.warnings());
    let healthy = repo.catalog_is_healthy();
    if a.dry_run {
        return rebuild_dry_run(&repo, healthy, a.json);
    }
    if healthy
        && !output::confirmed(
            a.yes,
            "The catalog opens and checks fine. Replace it with one rebuilt from packs and manifests?",
            "replacing a healthy catalog",
        )?
    {
        if !a.json {
            outln!("nothing changed");
        }
        return Ok(ExitCode::from(output::DECLINED));
    }
    let r = repo.rebuild_catalog(&ctx.bar())?;
    if a.json {
        output::json(&r)?;
    } else {
        for u in &r.unreadable {
            outln!("unreadable {}: {}", u.key, u.error);
        }
        for s in &r.forgets_finished {
            outln!("snapshot {s} not imported: an interrupted forget was removing it");
        }
        outln!(
            "rebuilt the catalog: {}, {}, {}",
            output::count(r.packs, "pack"),
            output::count(r.chunks, "chunk"),
            output::count(r.snapshots, "snapshot")
        );
        if let Some(old) = &r.old_catalog {
            outln!("the previous catalog was kept as {}", old.display());
        }
        print_stat_cache(&r.stat_cache)?;
    }
    Ok(verdict(r.unreadable.is_empty()))
}

/// Whether the next snapshot will re-read unchanged files.
fn print_stat_cache(s: &cairn::StatCache) -> Result<()> {
    if s.kept > 0 {
        outln!(
            "stat cache kept for {}: unchanged files are not read again",
            output::count(s.kept, "snapshot")
        );
    }
    if s.lost > 0 {
        let why = match &s.error {
            Some(e) => format!(" (the previous catalog could not be read: {e})"),
            None => String::new(),
        };
        outln!(
            "stat cache lost for {}{why}: the next snapshot of each of their histories reads its files again, once",
            output::count(s.lost, "snapshot")
        );
    }
    Ok(())
}

/// `rebuild-catalog --dry-run`: what a rebuild would read, and whether it
/// would replace a healthy catalog.
fn rebuild_dry_run(repo: &cairn::RepoStorage, healthy: bool, json: bool) -> Result<ExitCode> {
    let packs = repo.storage().list("packs/")?.len() as u64;
    let manifests = repo.storage().list("snapshots/")?.len() as u64;
    let catalog = repo.catalog_file();
    let state = match (healthy, catalog.exists()) {
        (true, _) => "healthy",
        (false, true) => "unusable",
        (false, false) => "missing",
    };
    if json {
        output::json(&serde_json::json!({
            "dry_run": true,
            "packs": packs,
            "manifests": manifests,
            "catalog": catalog.path(),
            "catalog_state": state,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "dry run: would rebuild the catalog from {} and {}",
        output::count(packs, "pack"),
        output::count(manifests, "snapshot manifest")
    );
    outln!(
        "the current catalog ({}) is {state}{}; nothing was changed",
        catalog.path().display(),
        if catalog.exists() {
            " and would be set aside"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn print_warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("cairn: {w}");
    }
}

/// `repair --config`: works from storage alone, never the catalog.
fn repair_config(ctx: &Ctx, a: &RepairArgs) -> Result<ExitCode> {
    let (location, _) = ctx.repo_path()?;
    let recreate = match a.chunk_avg {
        Some(avg) => {
            let avg = u32::try_from(avg).context("--chunk-avg is too large")?;
            Some(cairn::RepoConfig::new(
                cairn::ChunkerParams::with_average(avg),
                a.compression,
            )?)
        }
        None => None,
    };
    let recreated = recreate.is_some();
    let done = cairn::repair_config_at(&location, recreate)?;
    if a.json {
        output::json(&serde_json::json!({ "outcome": done }))?;
        return Ok(ExitCode::SUCCESS);
    }
    use cairn::ConfigRepair;
    match done {
        ConfigRepair::Nothing => outln!("config and config.backup are intact and identical"),
        ConfigRepair::ConfigFromBackup => outln!("config restored from config.backup"),
        ConfigRepair::BackupFromConfig => outln!("config.backup rewritten from config"),
        ConfigRepair::Recreated => {
            outln!("config and config.backup recreated with the given chunker and compression");
            eprintln!(
                "cairn: warning: new data deduplicates against old data only if --chunk-avg is the repository's original chunk size; run `cairn check`"
            );
        }
    }
    if recreated && done != ConfigRepair::Recreated {
        eprintln!(
            "cairn: --chunk-avg/--compression ignored: an intact copy of the config was used"
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn repair(ctx: &Ctx, a: RepairArgs) -> Result<ExitCode> {
    if a.config {
        return repair_config(ctx, &a);
    }
    let repo = ctx.open()?;
    let r = repo.repair(&ctx.bar())?;
    if a.json {
        let snaps = match r.damaged_snapshots.is_empty() {
            true => Vec::new(),
            false => repo.snapshots(&cairn::SnapshotFilter::default())?,
        };
        output::json(&json::RepairReport::new(&r, &snaps))?;
    } else {
        for (pack, saved, lost) in &r.packs_rewritten {
            outln!("pack {pack}: {saved} chunks salvaged into a new pack, {lost} lost");
        }
        for m in &r.manifests_restored {
            outln!("manifest of {m} restored from the catalog");
        }
        for m in &r.manifests_imported {
            outln!("snapshot {m} imported from its manifest");
        }
        for m in &r.trees_restored {
            outln!("trees of {m} built again from the catalog");
        }
        for s in &r.forgets_finished {
            outln!("snapshot {s} removed: finished an interrupted forget");
        }
        for u in &r.unresolved {
            outln!("unresolved: {u}");
        }
        if r.damaged_snapshots.is_empty() {
            outln!("every snapshot is complete");
        } else {
            outln!("snapshots still missing data (marked damaged):");
            for s in &r.damaged_snapshots {
                outln!("  {s}");
            }
            outln!("snapshot the same source again to re-supply lost chunks, then run `cairn repair` again");
        }
    }
    Ok(verdict(
        r.damaged_snapshots.is_empty() && r.unresolved.is_empty(),
    ))
}

pub fn unlock(ctx: &Ctx, a: UnlockArgs) -> Result<ExitCode> {
    let (location, _) = ctx.repo_path()?;
    // Not `Repository::open`: unlocking must work while the catalog is lost,
    // since `rebuild-catalog` needs the exclusive lock.
    let repo = cairn::Repository::open_storage_location(&location)?;
    print_warnings(repo.warnings());
    let removed = repo.unlock(a.all)?;
    if a.json {
        output::json(&removed)?;
        return Ok(ExitCode::SUCCESS);
    }
    for r in &removed.locks {
        outln!("removed {r}");
    }
    for t in &removed.temp_files {
        outln!("removed leftover temp file {t}");
    }
    outln!(
        "{} removed",
        output::count(removed.locks.len() as u64, "lock")
    );
    Ok(ExitCode::SUCCESS)
}
