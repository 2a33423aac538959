//! `cairn bench`: with PATHs, how successive versions would dedup and
//! compress under several chunk sizes and levels (nothing is written); with
//! no PATH, how the repository grew, snapshot by snapshot.

mod plot;

use super::args::BenchArgs;
use super::output;
use super::Ctx;
use anyhow::{bail, Context, Result};
use cairn::bench::{self, BenchReport, BenchSettings, NamedTally, SettingReport};

pub fn bench(ctx: &Ctx, a: BenchArgs) -> Result<()> {
    if a.paths.is_empty() {
        if a.chunk_avg.is_some() || a.compression.is_some() || a.plot.is_some() {
            bail!(
                "--chunk-avg, --compression and --plot need PATHs to read \
                 (without PATH, bench reports the repository's snapshots)"
            );
        }
        return history(ctx, a.json);
    }
    let defaults = BenchSettings::default();
    let chunk_avgs = match a.chunk_avg {
        Some(sizes) => sizes
            .into_iter()
            .map(|s| u32::try_from(s).with_context(|| format!("--chunk-avg {s} is too large")))
            .collect::<Result<_>>()?,
        None => defaults.chunk_avgs,
    };
    let settings = BenchSettings {
        chunk_avgs,
        levels: a.compression.unwrap_or(defaults.levels),
    };
    let report = bench::run(&a.paths, &settings, &ctx.bar())?;
    if let Some(path) = &a.plot {
        plot::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
    }
    if a.json {
        return output::json(&super::json::with_aliases(
            &report,
            &super::json::BENCH_ALIASES,
        ));
    }
    print_report(&report)?;
    if let Some(path) = &a.plot {
        outln!();
        outln!("chart written to {}", path.display());
    }
    Ok(())
}

fn print_report(r: &BenchReport) -> Result<()> {
    for v in &r.versions {
        for skipped in &v.skipped {
            eprintln!("cairn: warning: skipped {skipped} (not a file, directory or symlink)");
        }
    }
    let rows: Vec<Vec<String>> = (r.versions.iter().enumerate())
        .map(|(i, v)| {
            vec![
                (i + 1).to_string(),
                v.path.clone(),
                v.files.to_string(),
                output::bytes(v.logical_bytes),
            ]
        })
        .collect();
    output::table(&["#", "VERSION", "FILES", "LOGICAL"], &rows)?;
    let several_files = r.versions.iter().any(|v| v.files > 1);
    let mut previous_avg = None;
    for s in &r.settings {
        outln!();
        // The histogram depends on the chunk size only: once per size.
        let histogram = previous_avg.replace(s.chunk_avg) != Some(s.chunk_avg);
        print_setting(s, several_files, histogram)?;
    }
    if r.settings.len() > 1 {
        outln!();
        outln!("== summary ==");
        print_summary(&r.settings)?;
    }
    Ok(())
}

fn setting_name(s: &SettingReport) -> String {
    format!(
        "chunk avg {} (min {}, max {}), zstd {}",
        bench::size_label(s.chunk_avg.into()),
        bench::size_label(s.chunk_min.into()),
        bench::size_label(s.chunk_max.into()),
        s.level
    )
}

fn print_setting(s: &SettingReport, several_files: bool, histogram: bool) -> Result<()> {
    outln!("== {} ==", setting_name(s));
    let total = NamedTally {
        name: "total".into(),
        tally: s.total.clone(),
    };
    let versions: Vec<&NamedTally> = s.versions.iter().chain([&total]).collect();
    // Delta columns only when some chunk had a previous version to code against.
    let delta = s.total.delta_stored_bytes != s.total.stored_bytes;
    tally_table("VERSION", &versions, delta)?;
    outln!(
        "dedup {:.2}x, compression {:.2}x, overall {:.2}x; {}/s ({:.2} s)",
        s.dedup_ratio,
        s.compression_ratio,
        s.overall_ratio,
        output::bytes(s.throughput_bytes_per_sec as u64),
        s.seconds
    );
    if delta {
        outln!(
            "with delta coding: {} stored, {:.2}x less than standalone",
            output::bytes(s.total.delta_stored_bytes),
            s.total.delta_ratio()
        );
    }
    outln!();
    tally_table("DTYPE", &s.dtypes.iter().collect::<Vec<_>>(), delta)?;
    if delta {
        largest("TENSOR GROUP", "groups", &s.groups, delta)?;
    }
    if several_files {
        largest("FILE", "files", &s.files, delta)?;
    }
    if histogram {
        outln!();
        print_histogram(s)?;
    }
    Ok(())
}

/// The tallies that store the most, largest first, as a table headed
/// `first`; says how many `what` (`files`, `groups`) are left out.
fn largest(first: &str, what: &str, tallies: &[NamedTally], delta: bool) -> Result<()> {
    const SHOWN: usize = 20;
    let mut rows: Vec<&NamedTally> = tallies.iter().collect();
    rows.sort_by_key(|t| std::cmp::Reverse(t.tally.stored_bytes));
    outln!();
    tally_table(first, &rows[..rows.len().min(SHOWN)], delta)?;
    if rows.len() > SHOWN {
        outln!(
            "... {} more {what} (--json lists every one)",
            rows.len() - SHOWN
        );
    }
    Ok(())
}

/// One row per tally: what was read, what dedup and compression leave,
/// and with `delta`, what delta coding leaves.
fn tally_table(first: &str, rows: &[&NamedTally], delta: bool) -> Result<()> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|n| {
            let t = &n.tally;
            let mut row = vec![
                n.name.clone(),
                output::bytes(t.logical_bytes),
                t.chunks.to_string(),
                t.new_chunks.to_string(),
                output::bytes(t.new_bytes),
                output::bytes(t.stored_bytes),
                format!("{:.2}x", t.dedup_ratio()),
                format!("{:.2}x", t.compression_ratio()),
            ];
            if delta {
                row.push(output::bytes(t.delta_stored_bytes));
                row.push(format!("{:.2}x", t.delta_ratio()));
            }
            row
        })
        .collect();
    let mut header = vec![
        first,
        "LOGICAL",
        "CHUNKS",
        "NEW",
        "AFTER DEDUP",
        "STORED",
        "DEDUP",
        "COMPRESSION",
    ];
    if delta {
        header.extend(["WITH DELTA", "DELTA"]);
    }
    output::table(&header, &rows)?;
    Ok(())
}

fn print_histogram(s: &SettingReport) -> Result<()> {
    const WIDTH: u64 = 40;
    let most = s
        .histogram
        .iter()
        .map(|b| b.chunks)
        .max()
        .unwrap_or(0)
        .max(1);
    let rows: Vec<Vec<String>> = (s.histogram.iter())
        .map(|b| {
            // Any non-empty bucket gets at least one mark.
            let marks = (b.chunks * WIDTH).div_ceil(most) as usize;
            vec![
                format!("{}..{}", bench::size_label(b.from), bench::size_label(b.to)),
                b.chunks.to_string(),
                output::bytes(b.bytes),
                "#".repeat(marks),
            ]
        })
        .collect();
    output::table(&["CHUNK SIZE", "CHUNKS", "BYTES", ""], &rows)?;
    Ok(())
}

fn print_summary(settings: &[SettingReport]) -> Result<()> {
    let delta = settings
        .iter()
        .any(|s| s.total.delta_stored_bytes != s.total.stored_bytes);
    let rows: Vec<Vec<String>> = settings
        .iter()
        .map(|s| {
            let mut row = vec![
                bench::size_label(s.chunk_avg.into()),
                s.level.to_string(),
                output::bytes(s.total.logical_bytes),
                output::bytes(s.total.new_bytes),
                output::bytes(s.total.stored_bytes),
                format!("{:.2}x", s.dedup_ratio),
                format!("{:.2}x", s.compression_ratio),
                format!("{:.2}x", s.overall_ratio),
                s.total.chunks.to_string(),
                format!("{}/s", output::bytes(s.throughput_bytes_per_sec as u64)),
            ];
            if delta {
                row.push(output::bytes(s.total.delta_stored_bytes));
            }
            row
        })
        .collect();
    let mut header = vec![
        "CHUNK AVG",
        "ZSTD",
        "LOGICAL",
        "AFTER DEDUP",
        "STORED",
        "DEDUP",
        "COMPRESSION",
        "OVERALL",
        "CHUNKS",
        "THROUGHPUT",
    ];
    if delta {
        header.push("WITH DELTA");
    }
    output::table(&header, &rows)?;
    Ok(())
}

/// The repository's growth, from what each snapshot recorded.
fn history(ctx: &Ctx, json: bool) -> Result<()> {
    let (location, _) = ctx.repo_path()?;
    let repo = cairn::Repository::open_location(&location, cairn::OpenMode::ReadOnly)
        .map(super::printing_warnings)
        .context("bench without PATH reports a repository; give PATHs to benchmark files")?;
    let h = bench::history::report(&repo)?;
    if json {
        return output::json(&super::json::growth(&h));
    }
    outln!(
        "repository {} (chunk avg {}, zstd {}): {} snapshots",
        location.display(),
        bench::size_label(h.chunk_avg.into()),
        h.level,
        h.snapshots.len()
    );
    outln!();
    let rows: Vec<Vec<String>> = (h.snapshots.iter())
        .map(|s| {
            vec![
                output::local_time(&s.time),
                s.id[..8].to_string(),
                s.history.clone(),
                s.version.clone().unwrap_or_default(),
                output::bytes(s.logical_bytes),
                output::bytes(s.bytes_read),
                output::bytes(s.added_raw),
                output::bytes(s.added_stored),
                output::bytes(s.cumulative_stored),
                format!("{:.2}x", s.dedup_ratio),
                format!("{:.2}x", s.compression_ratio),
                format!("{}/s", output::bytes(s.throughput_bytes_per_sec as u64)),
            ]
        })
        .collect();
    output::table(
        &[
            "TIME",
            "ID",
            "HISTORY",
            "VERSION",
            "LOGICAL",
            "READ",
            "ADDED",
            "STORED",
            "TOTAL STORED",
            "DEDUP",
            "COMPRESSION",
            "THROUGHPUT",
        ],
        &rows,
    )?;
    outln!();
    outln!(
        "catalog now: {} chunks, {} after dedup, {} stored",
        h.chunks,
        output::bytes(h.raw_bytes),
        output::bytes(h.stored_bytes)
    );
    outln!("(DEDUP and COMPRESSION are cumulative up to each snapshot; THROUGHPUT is bytes read per second)");
    Ok(())
}
