//! `copy`: snapshots from one repository to another, only missing chunks
//! sent. Both repositories are opened as `--repo` opens one.

use anyhow::{Context, Result};
use cairn::{CopyReport, CopyRequest, CopyState, SnapshotFilter};

use super::args::CopyArgs;
use super::output;
use super::Ctx;

pub fn copy(ctx: &Ctx, a: CopyArgs) -> Result<()> {
    let from = ctx.for_repo(a.from.clone());
    let source = from.open_read_only().with_context(|| {
        format!(
            "cannot open the source repository --from {}",
            a.from.display()
        )
    })?;
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
        return output::json(&report);
    }
    print(&report)
}

fn print(r: &CopyReport) -> Result<()> {
    if !r.snapshots.is_empty() {
        let mut header = vec!["STATE"];
        header.extend(output::SNAPSHOT_COLUMNS);
        header.push("SENT");
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
    Ok(())
}
