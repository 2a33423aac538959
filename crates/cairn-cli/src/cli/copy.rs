//! `copy`: snapshots from one repository to another, only missing chunks
//! sent. Both repositories are opened as `--repo` opens one.

use anyhow::{Context, Result};
use std::path::Path;

use cairn::{CopyMode, CopyReport, CopyRequest, CopyState, Repository, SnapshotFilter};

use super::args::CopyArgs;
use super::output;
use super::Ctx;

pub fn copy(ctx: &Ctx, a: CopyArgs) -> Result<()> {
    let source = open_source(ctx, &a.from, a.from_password_file.as_deref(), "--from")?;
    let to = ctx.for_repo(a.to.clone());
    let dest = if a.dry_run {
        to.open_read_only()
    } else {
        to.open()
    }
    .with_context(|| {
        format!(
            "cannot open the destination repository --to {}",
            a.to.display()
        )
    })?;
    let histories = a.kind.is_some() || a.name.is_some() || a.tag.is_some();
    let req = CopyRequest {
        selectors: a.snapshots,
        filter: histories.then_some(SnapshotFilter {
            kind: a.kind,
            name: a.name,
            tag: a.tag,
        }),
        dry_run: a.dry_run,
    };
    let report = source.copy_to(&dest, &req, &ctx.bar())?;
    if a.json {
        return output::json(&super::json::CopyReport::new(&report));
    }
    print(&report)
}

/// Opens the repository `repo` of option `option` read-only, with the
/// password in `password_file` when one is given.
pub fn open_source(
    ctx: &Ctx,
    repo: &Path,
    password_file: Option<&Path>,
    option: &str,
) -> Result<Repository> {
    let from = ctx.for_repo(repo.to_path_buf());
    let open = || from.open_read_only();
    let opened = match password_file {
        Some(file) => cairn::with_password(cairn::password_from_file(file)?, open),
        None => open(),
    };
    opened.with_context(|| {
        format!(
            "cannot open the source repository {option} {}",
            repo.display()
        )
    })
}

fn print(r: &CopyReport) -> Result<()> {
    if let (CopyMode::ReEncoded, Some(reason)) = (r.mode, &r.reason) {
        outln!(
            "re-encoding: {reason}; every file is read, cut, compressed and sealed again for --to, \
             and each copied snapshot gets a new id there"
        );
    }
    if !r.snapshots.is_empty() {
        let mut header = vec!["STATE"];
        header.extend(output::SNAPSHOT_COLUMNS);
        header.push("SENT");
        if r.mode == CopyMode::ReEncoded {
            header.push("TO ID");
        }
        let rows: Vec<Vec<String>> = r
            .snapshots
            .iter()
            .map(|s| {
                let state = match s.state {
                    CopyState::Copied => "copied",
                    CopyState::Present => "present",
                    CopyState::WouldCopy => "copy",
                };
                let mut row = vec![state.to_string()];
                row.extend(output::snapshot_cells(&s.snapshot));
                row.push(output::bytes(s.bytes_sent));
                if r.mode == CopyMode::ReEncoded {
                    let to = s.to_id.map(|id| id.short()).unwrap_or_else(|| "-".into());
                    row.push(to);
                }
                row
            })
            .collect();
        output::table(&header, &rows)?;
    }
    let (copied, send) = if r.dry_run {
        ("would copy", "would send")
    } else {
        ("copied", "sent")
    };
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let packs = if r.dry_run {
        String::new()
    } else {
        format!(" in {}", plural(r.packs_written, "new pack", "new packs"))
    };
    outln!(
        "{copied} {} ({} already present); {send} {}, {} stored ({} raw){packs}",
        plural(r.snapshots_copied, "snapshot", "snapshots"),
        r.snapshots_present,
        plural(r.chunks_sent, "chunk", "chunks"),
        output::bytes(r.bytes_sent),
        output::bytes(r.raw_bytes_sent),
    );
    if r.mode == CopyMode::ReEncoded {
        let read = if r.dry_run { "would read" } else { "read" };
        outln!(
            "{read} {} of file content from --from{}",
            output::bytes(r.raw_bytes_read),
            if r.dry_run {
                " (what of it the destination already holds is known only by reading it, \
                 so a dry run cannot say what would be sent)"
            } else {
                ""
            }
        );
    }
    Ok(())
}
