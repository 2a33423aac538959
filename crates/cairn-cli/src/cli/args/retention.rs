//! The retention commands' arguments (forget, delete, prune, gc, policy)
//! and the parsers of their rules.

use clap::{Args, Subcommand};

use super::{parse_share, FilterArgs};

/// Retention rules; a snapshot is kept if any rule keeps it.
#[derive(Debug, Args, Default)]
pub struct RuleArgs {
    /// Keep the N newest snapshots
    #[arg(long, value_name = "N", value_parser = |s: &str| parse_count(s, "--keep-last"))]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one
    #[arg(long, value_name = "N", value_parser = |s: &str| parse_count(s, "--keep-hourly"))]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days that have one
    #[arg(long, value_name = "N", value_parser = |s: &str| parse_count(s, "--keep-daily"))]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one
    #[arg(long, value_name = "N", value_parser = |s: &str| parse_count(s, "--keep-weekly"))]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months that have one
    #[arg(long, value_name = "N", value_parser = |s: &str| parse_count(s, "--keep-monthly"))]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years that have one
    #[arg(long, value_name = "N", value_parser = |s: &str| parse_count(s, "--keep-yearly"))]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot within this span of the history's newest: 30d, 2w, 12h, 90m, 6M, 1y6M
    #[arg(long, value_name = "DURATION", value_parser = parse_within)]
    pub keep_within: Option<cairn::KeepWithin>,
    /// Never remove snapshots with this tag (repeatable), e.g. milestone
    #[arg(long = "keep-tag", value_name = "TAG", value_parser = parse_keep_tag)]
    pub keep_tags: Vec<String>,
    /// Keep the N newest snapshots carrying TAG (repeatable, one per tag), e.g. frequent=5
    #[arg(long = "keep-tagged", value_name = "TAG=N", value_parser = parse_keep_tagged)]
    pub keep_tagged: Vec<(String, u32)>,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Allow removing every snapshot of a history
    #[arg(long)]
    pub allow_empty: bool,
    /// Show what would be removed; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Snapshots to remove (id prefix, NAME, NAME~N, NAME@TIME, NAME:VERSION)
    #[arg(required = true, value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Do not ask for confirmation (needed when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Show what would be removed; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Print the result as JSON (docs/JSON.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Store the policy for a kind (`model`) or one history (`model/llama`); the most specific applies
    Set(PolicySetArgs),
    /// Show the stored policies
    Show(PolicyShowArgs),
    /// Remove the stored policy of a kind or history
    Unset(PolicyUnsetArgs),
}

#[derive(Debug, Args)]
pub struct PolicySetArgs {
    /// KIND or KIND/NAME
    pub scope: String,
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Print the result as JSON (docs/JSON.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PolicyShowArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PolicyUnsetArgs {
    /// KIND or KIND/NAME
    pub scope: String,
    /// Print the result as JSON (docs/JSON.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Repack packs more than this percentage unused
    #[arg(long, value_name = "PCT", default_value = "10", value_parser = parse_share)]
    pub max_unused: f64,
    /// Print the plan; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Allow removing every snapshot of a history
    #[arg(long)]
    pub allow_empty: bool,
    #[command(flatten)]
    pub gc: GcArgs,
}

/// Parses a `--keep-*` count. 0 is refused: the retention rules read a
/// count of 0 as "no rule", which is not what `--keep-last 0` asks for.
fn parse_count(s: &str, flag: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(0) => Err(format!("{flag} must be at least 1")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a count (e.g. 7)")),
    }
}

/// Parses a `--keep-within` span; a zero span is refused for the same
/// reason as a count of 0.
fn parse_within(s: &str) -> Result<cairn::KeepWithin, String> {
    let span = cairn::parse_duration(s).map_err(|e| e.to_string())?;
    if span.is_zero() {
        return Err("--keep-within must be longer than zero".into());
    }
    Ok(span)
}

/// Parses a `--keep-tag`: an empty tag could never match a snapshot.
fn parse_keep_tag(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("--keep-tag must not be empty".into());
    }
    Ok(s.to_string())
}

/// Parses a `--keep-tagged TAG=N`: a tag and a count of at least 1.
fn parse_keep_tagged(s: &str) -> Result<(String, u32), String> {
    let Some((tag, n)) = s.rsplit_once('=') else {
        return Err(format!("`{s}` is not TAG=N (e.g. frequent=5)"));
    };
    if tag.is_empty() {
        return Err("--keep-tagged needs a tag before `=`".into());
    }
    Ok((tag.to_string(), parse_count(n, "--keep-tagged")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_rules() {
        assert_eq!(parse_count("3", "--keep-last"), Ok(3));
        assert_eq!(
            parse_count("0", "--keep-last"),
            Err("--keep-last must be at least 1".into())
        );
        assert!(parse_count("-1", "--keep-daily").is_err());
        assert!(parse_within("0d").is_err() && parse_within("0m1h").is_ok());
        assert!(parse_keep_tag("").is_err());
    }
}
