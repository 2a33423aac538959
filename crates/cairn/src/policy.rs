//! Retention: which snapshots a policy keeps (pure rules) and the policies
//! stored in the repository.

pub mod retention;
pub mod stored;
