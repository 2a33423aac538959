//! cairn-runner: unattended backups on top of the cairn library.
//!
//! A TOML config file ([`Config`]) names repositories and targets; a target
//! is a set of paths with a snapshot label, a [`Schedule`], retention, an
//! optional check, hooks and notifications. [`State`] remembers, per target,
//! when it last ran and how that went, in a small JSON file in the user's
//! state directory. The CLI (`cairn config`, `cairn run`, `cairn health`,
//! `cairn metrics`, `cairn daemon`) and the Python package are thin layers
//! over this crate.
//!
//! ```
//! let text = "[repository.local]\npath = \"/backups\"\n\
//!             [target.cfg]\nkind = \"config\"\npaths = [\"/etc/app\"]\nschedule = \"daily 02:00\"\n";
//! let config = cairn_runner::Config::parse(text, std::path::Path::new("/etc/cairn.toml")).unwrap();
//! assert_eq!(config.targets["cfg"].label.name, "cfg");
//! ```

pub mod config;
pub mod daemon;
pub mod env;
pub mod error;
pub mod health;
pub mod locate;
pub mod mail;
pub mod metrics;
pub mod notify;
pub mod run;
pub mod schedule;
pub mod state;

pub use config::{Config, Hooks, Location, Notify, RepositorySpec, Target, EXAMPLE};
pub use error::{ConfigProblem, ConfigProblems, Error, Result};
pub use health::{health, Health, TargetHealth};
pub use run::{is_due, run_target, RepoOutcome, TargetReport};
pub use schedule::{format_span, parse_span, Schedule};
pub use state::{State, Status, TargetState};
