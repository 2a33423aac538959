//! One module per operation on a repository, each driven by the facade:
//! the way in (`snapshot`) and out (`restore`), checking (`check`, `repair`,
//! `rebuild`), replicating (`copy`), giving space back (`forget`, `gc`), raising the repository version (`upgrade`) and reports (`diff`,
//! `stats`, `bench`).

pub mod bench;
pub mod browse;
pub mod check;
pub mod copy;
pub mod diff;
pub mod forget;
pub mod gc;
pub mod rebuild;
pub mod repair;
pub mod restore;
pub mod snapshot;
pub mod stats;
pub mod tag;
pub mod upgrade;
