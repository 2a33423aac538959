//! A storage wrapper that injects faults into the N-th `put`, for crash-
//! consistency tests: the put either fails cleanly (nothing written) or is
//! torn (a prefix of the object lands under its key, then an error), the way
//! a backend without atomic writes could fail. With [`Fault::Crash`] it
//! counts every mutation (put, delete, leftover removal) instead, and from
//! the N-th on changes nothing, as if the process had died just before it.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{ObjectInfo, PutMode, Storage};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The put returns an error and writes nothing.
    Fail,
    /// Half the object is written under its key, then the put errors.
    Tear,
    /// Mutation N and every later one (puts, deletes, leftover removals)
    /// error and change nothing.
    Crash,
}

pub struct FaultyStorage<S> {
    inner: S,
    fault: Fault,
    fail_at: u64,
    puts: AtomicU64,
    parallel_puts: usize,
}

impl<S: Storage> FaultyStorage<S> {
    /// Injects `fault` into put number `fail_at` (1-based) and every later one.
    pub fn new(inner: S, fault: Fault, fail_at: u64) -> Self {
        Self {
            fault,
            fail_at,
            puts: AtomicU64::new(0),
            parallel_puts: inner.parallel_puts(),
            inner,
        }
    }

    /// Advises `n` puts in flight, whatever the inner storage does, so a
    /// fault can hit one of several parallel writers.
    pub fn with_parallel_puts(mut self, n: usize) -> Self {
        self.parallel_puts = n;
        self
    }
}

impl<S: Storage> FaultyStorage<S> {
    /// Under [`Fault::Crash`], fails mutation number `fail_at` and later.
    fn crash_check(&self, key: &str) -> Result<()> {
        if self.fault != Fault::Crash {
            return Ok(());
        }
        let n = self.puts.fetch_add(1, Ordering::SeqCst) + 1;
        if n < self.fail_at {
            return Ok(());
        }
        Err(injected(
            key,
            format!("injected crash before mutation #{n}"),
        ))
    }
}

impl<S: Storage> Storage for FaultyStorage<S> {
    fn put_with(&self, key: &str, data: &[u8], mode: PutMode) -> Result<()> {
        if self.fault == Fault::Crash {
            self.crash_check(key)?;
            return self.inner.put_with(key, data, mode);
        }
        let n = self.puts.fetch_add(1, Ordering::SeqCst) + 1;
        if n < self.fail_at {
            return self.inner.put_with(key, data, mode);
        }
        if self.fault == Fault::Tear {
            self.inner.put_with(key, &data[..data.len() / 2], mode)?;
        }
        Err(injected(key, format!("injected fault on put #{n}")))
    }

    fn parallel_puts(&self) -> usize {
        self.parallel_puts
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.inner.get(key)
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.inner.get_range(key, offset, len)
    }

    fn head(&self, key: &str) -> Result<u64> {
        self.inner.head(key)
    }

    fn list_each(
        &self,
        prefix: &str,
        visit: &mut dyn FnMut(ObjectInfo) -> Result<()>,
    ) -> Result<()> {
        self.inner.list_each(prefix, visit)
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    fn local_root(&self) -> Option<&std::path::Path> {
        self.inner.local_root()
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.crash_check(key)?;
        self.inner.delete(key)
    }

    fn leftovers(&self) -> Result<Vec<ObjectInfo>> {
        self.inner.leftovers()
    }

    fn remove_leftover(&self, key: &str) -> Result<()> {
        self.crash_check(key)?;
        self.inner.remove_leftover(key)
    }
}

/// An injected failure, reported as a backend failure on `key` would be.
fn injected(key: &str, what: String) -> Error {
    Error::Storage {
        key: key.to_string(),
        source: what.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;

    /// Below the fault the wrapper is the storage it wraps.
    #[test]
    fn passes_the_storage_contract_before_its_fault() {
        let s = FaultyStorage::new(MemoryStorage::new(), Fault::Fail, u64::MAX);
        crate::storage::contract_tests::run(&s);
    }
}
