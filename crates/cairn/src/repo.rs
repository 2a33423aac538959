//! The repository a user holds: the facade ([`repository::Repository`]),
//! its locks and the snapshot selectors.

pub mod config;
pub mod keys;
pub mod location;
pub mod lock;
mod operations;
pub mod repository;
pub mod selector;
