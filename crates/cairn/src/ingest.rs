//! The way in: walk the sources, learn each file's shape (tensor layouts of
//! safetensors, GGUF and PyTorch checkpoints), cut it into content-defined
//! chunks and read it with its SHA-256. Each source is stored under its path
//! as given. Exclude patterns decide what the
//! walk leaves out on purpose.

pub mod chunker;
pub mod exclude;
pub mod read;
pub mod shape;
pub mod sources;
pub mod tensor;
pub mod walk;
