//! `upgrade`: raise the repository version to the newest this build
//! writes, after saying what older cairn builds will then do.

use std::process::ExitCode;

use anyhow::Result;
use cairn::UpgradeReport;

use super::args::UpgradeArgs;
use super::{output, Ctx};

pub fn upgrade(ctx: &Ctx, a: UpgradeArgs) -> Result<ExitCode> {
    let (location, _) = ctx.repo_path()?;
    let name = location.display();
    // The storage alone: the catalog plays no part in the version.
    let repo = cairn::Repository::open_storage_location(&location)?;
    for w in repo.warnings() {
        eprintln!("cairn: {w}");
    }
    let planned = repo.upgrade(true)?;
    if planned.already_newest() {
        print(&name, &planned, a.json, &format!(
            "{name} is already at repository version {}, the newest this cairn writes; nothing changed",
            planned.from
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    if a.dry_run {
        let text = format!(
            "dry run: would upgrade {name} from repository version {} to {}: {}; nothing was changed",
            planned.from,
            planned.to,
            gains(planned.from)
        );
        print(&name, &planned, a.json, &text)?;
        warn_older_builds(&planned);
        return Ok(ExitCode::SUCCESS);
    }
    let question = format!(
        "Upgrade {name} from repository version {} to {}? A cairn that reads only up to version {} then refuses to open it, and there is no way back.",
        planned.from, planned.to, planned.from
    );
    if !output::confirmed(a.yes, &question, "upgrading the repository")? {
        if !a.json {
            outln!("nothing changed");
        }
        return Ok(ExitCode::from(output::DECLINED));
    }
    let done = repo.upgrade(false)?;
    let text = format!(
        "upgraded {name} from repository version {} to {}: {}; the snapshots stored are unchanged and read as before",
        done.from,
        done.to,
        gains(done.from)
    );
    print(&name, &done, a.json, &text)?;
    warn_older_builds(&done);
    Ok(ExitCode::SUCCESS)
}

fn print(name: &str, r: &UpgradeReport, json: bool, text: &str) -> Result<()> {
    if json {
        return output::json(&serde_json::json!({
            "repository": name,
            "from": r.from,
            "to": r.to,
            "upgraded": r.upgraded,
            "dry_run": r.dry_run,
        }));
    }
    outln!("{text}");
    Ok(())
}

/// What new snapshots get from version `from` on.
fn gains(from: u32) -> &'static str {
    match from {
        1 | 2 => "new snapshots are written with tree objects (an unchanged directory is stored once) and may store training checkpoints as delta chunks",
        _ => "new snapshots are written with tree objects (an unchanged directory is stored once)",
    }
}

/// What an older build does with the upgraded repository, exactly: its
/// config check refuses any version above the one it reads, for every
/// command, reading or writing.
fn warn_older_builds(r: &UpgradeReport) {
    eprintln!(
        "cairn: note: a cairn that reads only up to repository version {} cannot open the repository afterwards, to read or to write: every command fails with \"repository at … has format version {}, this cairn reads up to {}\"; upgrade every cairn that uses it",
        r.from, r.to, r.from
    );
}
