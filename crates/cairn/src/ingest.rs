//! The way in: walk the sources, learn each file's shape (tensor layouts of
//! safetensors, GGUF and PyTorch checkpoints), cut it into content-defined
//! chunks and read it with its SHA-256. Exclude patterns decide what the
//! walk leaves out on purpose.

pub mod chunker;
pub mod exclude;
pub mod read;
pub mod shape;
pub mod tensor;
pub mod walk;
