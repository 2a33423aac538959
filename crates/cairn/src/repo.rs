//! The repository a user holds: the facade ([`repository::Repository`]),
//! its locks and the snapshot selectors.

pub mod lock;
pub mod repository;
pub mod selector;
