//! `forget`, `delete`, `policy`, `prune` and `gc`: retention and getting the
//! space back. Each turns its arguments into library calls (plan, then
//! execute) and prints the plan and what was done.

use std::process::ExitCode;

use anyhow::Result;
use cairn::{ForgetPlan, ForgetRequest, GcPlan, GcReport, PackUsage, PolicySource};
use cairn::{Repository, RetentionPolicy, SnapshotFilter, SnapshotId, StoredPolicies};
use chrono::Offset;

use super::args::*;
use super::{json, output};
use super::{Ctx, DAMAGE};

/// The rules given on the command line; `None` when no rule flag was given
/// at all (counts of 0 and zero spans, which the rules read as "no rule",
/// are refused by the parser).
fn given_rules(r: &RuleArgs) -> Option<RetentionPolicy> {
    let policy = RetentionPolicy {
        keep_last: r.keep_last,
        keep_hourly: r.keep_hourly,
        keep_daily: r.keep_daily,
        keep_weekly: r.keep_weekly,
        keep_monthly: r.keep_monthly,
        keep_yearly: r.keep_yearly,
        keep_within: r.keep_within,
        keep_tags: r.keep_tags.clone(),
        keep_tagged: r.keep_tagged.iter().cloned().collect(),
    };
    (policy != RetentionPolicy::default()).then_some(policy)
}

fn request(
    filter: &FilterArgs,
    policy: Option<RetentionPolicy>,
    allow_empty: bool,
) -> ForgetRequest {
    ForgetRequest {
        filter: SnapshotFilter {
            kind: filter.kind.clone(),
            name: filter.name.clone(),
            tag: None,
        },
        policy,
        allow_empty,
        offset: chrono::Local::now().offset().fix(),
    }
}

pub fn forget(ctx: &Ctx, a: ForgetArgs) -> Result<()> {
    let repo = ctx.open_to_reclaim()?;
    let plan = repo.forget_plan(&request(&a.filter, given_rules(&a.rules), a.allow_empty))?;
    if !a.json {
        print_forget(&plan)?;
    }
    let removed = if a.dry_run {
        Vec::new()
    } else {
        repo.forget(&plan)?.removed
    };
    if a.json {
        return output::json(&json::ForgetReport::new(&plan, a.dry_run, &removed));
    }
    print_forget_outcome(&plan, a.dry_run, removed.len())?;
    Ok(())
}

/// One table per history (a line for histories no policy touches).
fn print_forget(plan: &ForgetPlan) -> Result<()> {
    if plan.histories.is_empty() {
        outln!("no snapshots match");
    }
    for h in &plan.histories {
        let n = h.snapshots.len();
        let source = match &h.source {
            PolicySource::Given => String::new(),
            PolicySource::Stored(scope) => format!(" (stored for {scope})"),
            PolicySource::Named => String::new(),
            PolicySource::None => {
                outln!("{}: no stored policy, {n} snapshots kept", h.history());
                continue;
            }
        };
        outln!("{}: {}{source}", h.history(), h.policy);
        let rows: Vec<Vec<String>> = h
            .snapshots
            .iter()
            .map(|v| {
                let s = &v.snapshot;
                vec![
                    s.id.short(),
                    output::local_time(&s.time),
                    s.label.version.clone().unwrap_or_default(),
                    s.label.tags.join(","),
                    if v.keep { "keep" } else { "remove" }.to_string(),
                    v.reasons.join(", "),
                ]
            })
            .collect();
        output::table(
            &["ID", "TIME", "VERSION", "TAGS", "ACTION", "REASONS"],
            &rows,
        )?;
        outln!("{} kept, {} removed", h.kept(), h.removed());
        outln!();
    }
    Ok(())
}

fn print_forget_outcome(plan: &ForgetPlan, dry_run: bool, removed: usize) -> Result<()> {
    print_interrupted(plan, dry_run)?;
    let planned = plan.to_remove().count();
    if dry_run {
        outln!(
            "dry run: would remove {}; nothing was changed",
            output::count(planned as u64, "snapshot")
        );
        if let Err(refusal) = plan.check_allowed() {
            outln!("note: {refusal}");
        }
    } else if removed > 0 {
        outln!(
            "removed {} (run `cairn gc` to reclaim their space)",
            output::count(removed as u64, "snapshot")
        );
    } else {
        outln!("nothing to remove");
    }
    Ok(())
}

pub fn delete(ctx: &Ctx, a: DeleteArgs) -> Result<ExitCode> {
    let repo = ctx.open_to_reclaim()?;
    let plan = repo.delete_plan(&a.snapshots)?;
    let rows: Vec<Vec<String>> = plan.to_remove().map(output::snapshot_cells).collect();
    if !a.json {
        output::table(&output::SNAPSHOT_COLUMNS, &rows)?;
    }
    let n = output::count(rows.len() as u64, "snapshot");
    if a.json && a.dry_run {
        return output::json(&json::ForgetReport::new(&plan, true, &[]))
            .map(|()| ExitCode::SUCCESS);
    }
    if a.dry_run {
        print_interrupted(&plan, true)?;
        outln!("dry run: would delete {n}; nothing was changed");
        return Ok(ExitCode::SUCCESS);
    }
    if !output::confirmed(a.yes, &format!("Delete {n}?"), &format!("deleting {n}"))? {
        if !a.json {
            outln!("nothing deleted");
        }
        return Ok(ExitCode::from(output::DECLINED));
    }
    let report = repo.forget(&plan)?;
    if a.json {
        return output::json(&json::ForgetReport::new(&plan, false, &report.removed))
            .map(|()| ExitCode::SUCCESS);
    }
    print_interrupted(&plan, false)?;
    outln!(
        "deleted {} (run `cairn gc` to reclaim their space)",
        output::count(report.removed.len() as u64, "snapshot")
    );
    Ok(ExitCode::SUCCESS)
}

/// Says that an interrupted forget is (or would be) finished first.
fn print_interrupted(plan: &ForgetPlan, dry_run: bool) -> Result<()> {
    let n = plan.interrupted_snapshots().len();
    if plan.interrupted.is_empty() {
        return Ok(());
    }
    if dry_run {
        outln!(
            "dry run: would first finish an interrupted forget of {}",
            output::count(n as u64, "snapshot")
        );
    } else {
        outln!(
            "finished an interrupted forget: {} removed",
            output::count(n as u64, "snapshot")
        );
    }
    Ok(())
}

pub fn policy(ctx: &Ctx, cmd: PolicyCommand) -> Result<()> {
    let repo = match cmd {
        PolicyCommand::Show(_) => ctx.open_read_only()?,
        _ => ctx.open()?,
    };
    match cmd {
        PolicyCommand::Set(a) => {
            let policy = given_rules(&a.rules).unwrap_or_default();
            repo.set_policy(&a.scope, policy.clone())?;
            if a.json {
                return output::json(&serde_json::json!({ "scope": a.scope, "policy": policy }));
            }
            outln!("policy for {}: {policy}", a.scope);
        }
        PolicyCommand::Unset(a) => {
            let old = repo.unset_policy(&a.scope)?;
            if a.json {
                return output::json(&serde_json::json!({ "scope": a.scope, "removed": old }));
            }
            outln!("removed the policy for {} ({old})", a.scope);
        }
        PolicyCommand::Show(a) => show_policies(&repo, a.json)?,
    }
    Ok(())
}

/// The stored policies, then which one each history of the repository gets.
fn show_policies(repo: &Repository, json: bool) -> Result<()> {
    let stored = StoredPolicies::load(repo.storage())?;
    if json {
        return output::json(&stored);
    }
    if stored.is_empty() {
        outln!("no stored policies (store one with `cairn policy set KIND[/NAME] --keep-...`)");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = stored
        .iter()
        .map(|(scope, p)| vec![scope.to_string(), p.to_string()])
        .collect();
    output::table(&["SCOPE", "POLICY"], &rows)?;
    let mut histories: Vec<(String, String)> = repo
        .snapshots(&SnapshotFilter::default())?
        .into_iter()
        .map(|s| (s.label.kind, s.label.name))
        .collect();
    histories.dedup();
    histories.sort();
    histories.dedup();
    if !histories.is_empty() {
        outln!();
        let rows: Vec<Vec<String>> = histories
            .iter()
            .map(|(kind, name)| {
                let applied = stored
                    .for_history(kind, name)
                    .map_or("none (keeps everything)".into(), |(s, _)| s.to_string());
                vec![format!("{kind}/{name}"), applied]
            })
            .collect();
        output::table(&["HISTORY", "APPLIED SCOPE"], &rows)?;
    }
    Ok(())
}

pub fn gc(ctx: &Ctx, a: GcArgs) -> Result<ExitCode> {
    let repo = ctx.open_to_reclaim()?;
    let plan = repo.gc_plan(a.max_unused)?;
    run_gc(ctx, &repo, &plan, &a, None)
}

/// Prints the plan, executes it unless `dry_run`, prints the report. Damage
/// found on the way (a live chunk that does not verify) exits 1.
fn run_gc(
    ctx: &Ctx,
    repo: &Repository,
    plan: &GcPlan,
    a: &GcArgs,
    forget: Option<serde_json::Value>,
) -> Result<ExitCode> {
    if !a.json {
        print_gc_plan(plan)?;
    }
    let report = match a.dry_run || plan.is_empty() {
        true => None,
        false => Some(repo.gc(plan, &ctx.bar())?),
    };
    if a.json {
        output::json(&json::GcOutput {
            dry_run: a.dry_run,
            forget,
            plan: json::GcPlan::new(plan),
            report: report.as_ref(),
        })?;
    } else if a.dry_run {
        outln!("dry run: nothing was changed");
    } else if let Some(r) = &report {
        print_gc_report(r)?;
    } else {
        outln!("nothing to do");
    }
    let damaged = report.map(|r| r.damaged).unwrap_or_default();
    for d in &damaged {
        eprintln!("cairn: damage: {d}");
    }
    if damaged.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "cairn: {} packs were left in place because a live chunk in them is damaged; run `cairn check`",
            damaged.len()
        );
        Ok(ExitCode::from(DAMAGE))
    }
}

fn print_gc_plan(p: &GcPlan) -> Result<()> {
    let b = output::bytes;
    let sum = |v: &[PackUsage]| v.iter().map(|u| u.size).sum::<u64>();
    outln!(
        "gc plan (repack packs more than {}% unused)",
        p.max_unused * 100.0
    );
    let unlisted = match p.unlisted_manifests.len() {
        0 => String::new(),
        n => format!(", plus {n} manifests the catalog does not list (kept)"),
    };
    outln!(
        "  live      {} snapshots, {} chunks{unlisted}",
        p.snapshots,
        p.live_chunks
    );
    outln!(
        "  delete    {} packs, {} (no live chunks)",
        p.delete.len(),
        b(sum(&p.delete))
    );
    outln!(
        "  repack    {} packs, {} ({} live to copy)",
        p.repack.len(),
        b(sum(&p.repack)),
        b(p.bytes_to_move())
    );
    outln!(
        "  keep      {} packs, {} ({} unused)",
        p.kept_packs,
        b(p.kept_bytes),
        b(p.kept_unused_bytes)
    );
    if !p.unknown_packs.is_empty() || !p.leftovers.is_empty() {
        let size = |v: &[cairn::storage::ObjectInfo]| b(v.iter().map(|o| o.size).sum());
        outln!(
            "  debris    {} pack files the catalog does not list ({}), {} temp files ({})",
            p.unknown_packs.len(),
            size(&p.unknown_packs),
            p.leftovers.len(),
            size(&p.leftovers)
        );
    }
    for obj in &p.unknown_packs_kept {
        outln!(
            "  left      {} ({}): not in the catalog but may hold needed chunks; see `cairn check`",
            obj.key,
            b(obj.size)
        );
    }
    for u in &p.unverified {
        outln!(
            "  left      pack {} ({}): {}; see `cairn check`",
            u.pack,
            b(u.size),
            u.reason
        );
    }
    outln!("  reclaim   about {}", b(p.bytes_to_reclaim()));
    Ok(())
}

fn print_gc_report(r: &GcReport) -> Result<()> {
    outln!("gc done: reclaimed {}", output::bytes(r.bytes_reclaimed));
    outln!(
        "  deleted   {} with no live chunks",
        output::count(r.packs_deleted, "pack")
    );
    outln!(
        "  rewrote   {} packs into {} new ({} chunks, {} moved)",
        r.packs_rewritten,
        r.packs_written,
        r.chunks_moved,
        output::bytes(r.bytes_moved)
    );
    outln!("  dropped   {} records of dead chunks", r.chunks_dropped);
    if r.packs_left_for_space > 0 {
        outln!(
            "  left      {} not repacked: the disk has no room for their live chunks (free space, then run `cairn gc` again)",
            output::count(r.packs_left_for_space, "pack")
        );
    }
    if r.unknown_packs_deleted + r.leftovers_deleted > 0 {
        outln!(
            "  debris    {} unlisted pack files and {} temp files removed",
            r.unknown_packs_deleted,
            r.leftovers_deleted
        );
    }
    Ok(())
}

/// Forget by the stored policies, then gc, under one exclusive lock.
pub fn prune(ctx: &Ctx, a: PruneArgs) -> Result<ExitCode> {
    let repo = ctx.open_to_reclaim()?;
    let fplan = repo.forget_plan(&request(&a.filter, None, a.allow_empty))?;
    if !a.gc.json {
        if fplan
            .histories
            .iter()
            .all(|h| h.source == PolicySource::None)
        {
            outln!(
                "no stored policy applies (store one with `cairn policy set`); forgetting nothing"
            );
        }
        print_forget(&fplan)?;
    }
    let removed = if a.gc.dry_run {
        Vec::new()
    } else {
        repo.forget(&fplan)?.removed
    };
    let forget_json =
        a.gc.json
            .then(|| serde_json::to_value(json::ForgetReport::new(&fplan, a.gc.dry_run, &removed)))
            .transpose()?;
    if !a.gc.json {
        print_forget_outcome(&fplan, a.gc.dry_run, removed.len())?;
        outln!();
    }
    // With a dry run nothing was forgotten; plan the gc as if it had been.
    let forgotten: Vec<SnapshotId> = match a.gc.dry_run {
        true => fplan
            .to_remove()
            .map(|s| s.id)
            .chain(fplan.interrupted_snapshots())
            .collect(),
        false => Vec::new(),
    };
    let gplan = repo.gc_plan_after(fplan, a.gc.max_unused, &forgotten)?;
    run_gc(ctx, &repo, &gplan, &a.gc, forget_json)
}

pub fn tag(ctx: &Ctx, a: TagArgs) -> Result<()> {
    let repo = ctx.open()?;
    let change = cairn::LabelChange {
        add: a.add,
        remove: a.remove,
        set: (a.clear_tags || !a.set.is_empty()).then_some(a.set),
        version: a.version_label,
        description: a.description,
    };
    let done = repo.tag(&a.snapshots, &change)?;
    if a.json {
        let done: Vec<json::Relabeled> = done.iter().map(json::Relabeled::new).collect();
        return output::json(&done);
    }
    for r in &done {
        let tags = if r.label.tags.is_empty() {
            "no tags".to_string()
        } else {
            format!("tags {}", r.label.tags.join(","))
        };
        if r.changed {
            outln!("{} -> {}: {tags}", r.old_id.short(), r.new_id.short());
        } else {
            outln!("{}: unchanged ({tags})", r.old_id.short());
        }
    }
    Ok(())
}
