//! Command-line layer: clap definitions (`cli/args.rs`), one function per
//! subcommand (`cli/commands.rs`; retention and gc in `cli/maintenance.rs`),
//! and output helpers (`cli/output.rs`).
//! Exit codes: 0 success, 1 a verification found damage or a mismatch,
//! 2 usage or runtime error.

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
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => report(err),
    }
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
