//! What is stored, byte for byte (docs/FORMAT.md): the ids, the pack and
//! manifest layouts, the snapshot label, the chunk codecs (zstd, byte planes)
//! and the repository config. Nothing here does I/O but through bytes it is
//! given.

pub mod byteplane;
pub mod codec;
pub mod config;
pub mod delta;
pub mod id;
pub mod keyfile;
pub mod label;
pub mod manifest;
pub mod name;
pub mod pack;
pub mod seal;
pub mod tree;
