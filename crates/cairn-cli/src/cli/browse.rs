//! Browsing snapshots without restoring them: `ls`, `find`, `dump`.

use std::io::{IsTerminal, Write};

use anyhow::{bail, Context, Result};
use cairn::{EntryKind, FileEntry, SnapshotFilter};

use super::args::{DumpArgs, FindArgs, LsArgs};
use super::Ctx;
use super::{json, output};

pub fn ls(ctx: &Ctx, a: LsArgs) -> Result<()> {
    let repo = ctx.open_read_only()?;
    let snap = repo.resolve(&a.snapshot)?;
    let entries = repo.ls(&snap, a.path.as_deref().unwrap_or(""))?;
    if a.json {
        #[derive(serde::Serialize)]
        struct Listed<'a> {
            snapshot: json::Snapshot,
            entries: Vec<json::Entry<'a>>,
        }
        return output::json(&Listed {
            snapshot: json::Snapshot::new(&snap),
            entries: json::entries(&entries),
        });
    }
    print_entries(&entries, a.long)
}

/// One path per line, or with `long` a table of kind, mode, size, time.
fn print_entries(entries: &[FileEntry], long: bool) -> Result<()> {
    if !long {
        let mut out = std::io::stdout().lock();
        for e in entries {
            let slash = if e.kind == EntryKind::Dir { "/" } else { "" };
            writeln!(out, "{}{slash}", output::path(&e.path))?;
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let time = chrono::DateTime::from_timestamp_nanos(e.mtime_ns);
            let path = match e.kind {
                EntryKind::Symlink => {
                    format!(
                        "{} -> {}",
                        output::path(&e.path),
                        output::path(&e.link_target)
                    )
                }
                EntryKind::Dir => format!("{}/", output::path(&e.path)),
                _ => output::path(&e.path).into_owned(),
            };
            let size = match e.kind {
                EntryKind::File => e.size.to_string(),
                EntryKind::CharDevice | EntryKind::BlockDevice => output::device(e.rdev),
                _ => "-".into(),
            };
            vec![
                output::kind_name(e.kind).into(),
                format!("{:04o}", e.mode),
                output::owner(e),
                size,
                output::local_time(&time),
                path + &output::entry_notes(e),
            ]
        })
        .collect();
    output::table(
        &["KIND", "MODE", "OWNER", "SIZE", "MODIFIED", "PATH"],
        &rows,
    )?;
    Ok(())
}

pub fn find(ctx: &Ctx, a: FindArgs) -> Result<()> {
    let repo = ctx.open_read_only()?;
    let filter = SnapshotFilter {
        kind: a.filter.kind,
        name: a.filter.name,
        tag: a.tag,
    };
    let found = repo.find(&a.pattern, &filter)?;
    if a.json {
        #[derive(serde::Serialize)]
        struct Matches<'a> {
            snapshot: json::Snapshot,
            entries: Vec<json::Entry<'a>>,
        }
        let out: Vec<Matches> = (found.iter())
            .map(|f| Matches {
                snapshot: json::Snapshot::new(&f.snapshot),
                entries: json::entries(&f.entries),
            })
            .collect();
        return output::json(&out);
    }
    let matches: usize = found.iter().map(|f| f.entries.len()).sum();
    for f in &found {
        let s = &f.snapshot;
        outln!(
            "snapshot {} of {} at {}:",
            s.id.short(),
            s.history(),
            output::local_time(&s.time)
        );
        print_entries(&f.entries, a.long)?;
        outln!();
    }
    let matches = if matches == 1 {
        "1 match".to_string()
    } else {
        format!("{matches} matches")
    };
    outln!(
        "{matches} in {}",
        output::count(found.len() as u64, "snapshot")
    );
    Ok(())
}

pub fn dump(ctx: &Ctx, a: DumpArgs) -> Result<()> {
    let stdout = std::io::stdout();
    if a.output.is_none() && stdout.is_terminal() {
        bail!("refusing to write a tar stream to a terminal: redirect it (`> out.tar`, `| tar -x`) or pass --output FILE");
    }
    let repo = ctx.open_read_only()?;
    let snap = repo.resolve(&a.snapshot)?;
    let path = a.path.as_deref().unwrap_or("");
    let report = match &a.output {
        Some(file) => {
            // Into a temp name, renamed when whole: a failed dump leaves
            // no truncated archive under the name asked for.
            let tmp = file.with_extension("cairn-partial");
            let mut out = std::io::BufWriter::new(
                std::fs::File::create(&tmp)
                    .with_context(|| format!("creating {}", tmp.display()))?,
            );
            let result = repo
                .dump(&snap, path, &mut out)
                .map_err(anyhow::Error::from)
                .and_then(|r| {
                    out.into_inner()
                        .map_err(|e| e.into_error())
                        .and_then(|f| f.sync_all())
                        .with_context(|| format!("writing {}", tmp.display()))?;
                    Ok(r)
                });
            match result {
                Ok(r) => {
                    std::fs::rename(&tmp, file).with_context(|| {
                        format!("renaming {} to {}", tmp.display(), file.display())
                    })?;
                    r
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            }
        }
        None => {
            let mut out = stdout.lock();
            let r = repo.dump(&snap, path, &mut out)?;
            out.flush()?;
            r
        }
    };
    if !ctx.quiet() {
        eprintln!(
            "cairn: dumped {} ({}), {}, {} of {}",
            output::count(report.files, "file"),
            output::bytes(report.bytes),
            output::count(report.dirs, "directory"),
            output::count(report.symlinks, "symlink"),
            snap.id.short()
        );
    }
    Ok(())
}
