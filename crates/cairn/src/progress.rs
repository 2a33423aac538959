//! Progress reporting from long operations to whoever is watching (the CLI
//! draws bars; tests and scripts pass [`NoProgress`]).

/// Receives byte counts as work advances. Must be cheap: it is called once
/// per batch of chunks.
pub trait Progress: Sync {
    /// A phase starts; `total` bytes of work are expected.
    fn start(&self, _label: &str, _total: u64) {}
    /// `bytes` more bytes are done.
    fn advance(&self, _bytes: u64) {}
    /// The phase is over.
    fn finish(&self) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
