//! Command-line layer: clap definitions (`cli/args.rs`), one function per
//! subcommand (`cli/commands.rs`; retention and gc in `cli/maintenance.rs`),
//! and output helpers (`cli/output.rs`).
//! Exit codes: 0 success, 1 a verification found damage or a mismatch,
//! 2 usage or runtime error, 3 a snapshot was saved but incomplete.

/// `println!` that returns the write error instead of panicking, so a
/// closed stdout (`cairn list | head -1`) ends the command quietly.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

mod args;
mod bench;
mod commands;
mod integrity;
mod maintenance;
mod output;

use std::io::ErrorKind;
use std::process::ExitCode;

use clap::Parser;

pub fn run() -> ExitCode {
    let cli = args::Cli::parse();
    match lease_from_env().and_then(|()| commands::dispatch(cli)) {
        Ok(code) => code,
        Err(err) => report(err),
    }
}

/// Sets the lock lease from `CAIRN_LOCK_LEASE_SECS` and
/// `CAIRN_LOCK_REFRESH_SECS` (whole seconds; for tests, which cannot wait
/// out the default lease), each defaulting to the library's.
fn lease_from_env() -> anyhow::Result<()> {
    let secs = |var: &str, default: std::time::Duration| -> anyhow::Result<std::time::Duration> {
        match std::env::var(var) {
            Ok(v) => v
                .trim()
                .parse()
                .map(std::time::Duration::from_secs)
                .map_err(|_| anyhow::anyhow!("{var}={v:?} is not a whole number of seconds")),
            Err(_) => Ok(default),
        }
    };
    let duration = secs("CAIRN_LOCK_LEASE_SECS", cairn::lock::LEASE_DURATION)?;
    let refresh = secs("CAIRN_LOCK_REFRESH_SECS", cairn::lock::LEASE_REFRESH)?;
    cairn::lock::set_lease(cairn::lock::Lease::new(duration, refresh)?);
    Ok(())
}

/// Prints an error once, with its chain, and picks the exit code.
fn report(err: anyhow::Error) -> ExitCode {
    let broken_pipe = err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == ErrorKind::BrokenPipe)
    });
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    let mut shown = err.to_string();
    eprintln!("cairn: error: {shown}");
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        // Library errors already embed their source; print each text once.
        if !shown.contains(&text) {
            eprintln!("  caused by: {text}");
            shown.push_str(&text);
        }
    }
    let damage = err.chain().any(|c| {
        c.downcast_ref::<cairn::Error>()
            .is_some_and(cairn::Error::is_damage)
    });
    ExitCode::from(if damage { 1 } else { 2 })
}
