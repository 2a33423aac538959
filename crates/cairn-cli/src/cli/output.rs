//! Output helpers: aligned tables, human sizes and times, JSON, progress bars.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};

/// Prints rows as left-aligned columns separated by two spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    if super::muted() {
        return Ok(());
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// Pretty JSON on stdout.
pub fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    // Back to io::Error so a broken pipe is recognised as one.
    serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

/// `file`, `dir`, `symlink`, `fifo`, `char_device` or `block_device`.
pub fn kind_name(kind: cairn::EntryKind) -> &'static str {
    match kind {
        cairn::EntryKind::File => "file",
        cairn::EntryKind::Dir => "dir",
        cairn::EntryKind::Symlink => "symlink",
        cairn::EntryKind::Fifo => "fifo",
        cairn::EntryKind::CharDevice => "char_device",
        cairn::EntryKind::BlockDevice => "block_device",
    }
}

/// `uid:gid` when recorded, else `-`.
pub fn owner(e: &cairn::FileEntry) -> String {
    e.owner.map_or("-".into(), |(u, g)| format!("{u}:{g}"))
}

/// `major,minor` of a device number (Linux's encoding, as `ls -l` shows it).
pub fn device(rdev: u64) -> String {
    let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff);
    let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff);
    format!("{major},{minor}")
}

/// What `ls -l` and `show` add after a path: `[hard link N]` (its group)
/// and `[incomplete]` (stored while it changed).
pub fn entry_notes(e: &cairn::FileEntry) -> String {
    let mut notes = String::new();
    if let Some(g) = e.hardlink {
        notes.push_str(&format!(" [hard link {g}]"));
    }
    if e.incomplete {
        notes.push_str(" [incomplete]");
    }
    notes
}

/// `1 snapshot`, `2 snapshots`, `3 directories`: a count with its noun.
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else if let Some(stem) = noun.strip_suffix('y') {
        format!("{n} {stem}ies")
    } else {
        format!("{n} {noun}s")
    }
}

/// `1.5 GiB`-style sizes.
/// A stored path (or link target) for a person: bytes that are not UTF-8
/// as `\xNN` (the JSON keeps the carried form, docs/JSON.md).
pub fn path(stored: &str) -> std::borrow::Cow<'_, str> {
    cairn::format::name::display(stored)
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `3d 4h`-style ages.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// The columns that identify a snapshot in tables: ID, TIME, KIND, NAME,
/// VERSION, TAGS.
pub const SNAPSHOT_COLUMNS: [&str; 6] = ["ID", "TIME", "KIND", "NAME", "VERSION", "TAGS"];

/// A snapshot's [`SNAPSHOT_COLUMNS`] cells.
pub fn snapshot_cells(s: &cairn::SnapshotInfo) -> Vec<String> {
    vec![
        s.id.short(),
        local_time(&s.time),
        s.label.kind.clone(),
        s.label.name.clone(),
        s.label.version.clone().unwrap_or_default(),
        s.label.tags.join(","),
    ]
}

/// A local-time rendering of a UTC instant.
pub fn local_time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Exit code of a destructive command whose confirmation was declined.
pub const DECLINED: u8 = 1;

/// The one confirmation rule of every destructive command: with `--yes`
/// go ahead; on a terminal ask `question` (only `y`/`yes` agrees); with no
/// terminal refuse, saying what was not done (`doing`, e.g. "deleting 2
/// snapshots") and that `--yes` does it. Ok(false) is a declined prompt:
/// the caller changes nothing and exits [`DECLINED`].
pub fn confirmed(yes: bool, question: &str, doing: &str) -> anyhow::Result<bool> {
    use std::io::BufRead;
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "not {doing} without confirmation: stdin is not a terminal (pass --yes to go ahead)"
        );
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// A progress bar on stderr when it is a terminal and not `--quiet`.
pub struct Bar(Option<ProgressBar>);

impl Bar {
    pub fn new(quiet: bool) -> Self {
        Bar((!quiet && std::io::stderr().is_terminal()).then(ProgressBar::hidden))
    }
}

impl cairn::Progress for Bar {
    fn start(&self, label: &str, total: u64) {
        if let Some(bar) = &self.0 {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.set_length(total);
            bar.set_position(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>9} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(label.to_string());
        }
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(bytes);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
