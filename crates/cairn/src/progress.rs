//! Progress reporting from long operations to whoever is watching (the CLI
//! draws bars; tests and scripts pass [`NoProgress`]), and the one way a
//! watcher stops an operation: [`Progress::cancelled`].

use crate::error::{Error, Result};

/// Receives byte counts as work advances. Must be cheap: it is called once
/// per batch of chunks.
pub trait Progress: Sync {
    /// A phase starts; `total` bytes of work are expected.
    fn start(&self, _label: &str, _total: u64) {}
    /// `bytes` more bytes are done.
    fn advance(&self, _bytes: u64) {}
    /// The phase is over.
    fn finish(&self) {}
    /// True when the watcher wants the operation stopped (a Python caller
    /// pressed Ctrl-C, its callback raised). Operations poll it where they
    /// report progress and stop with [`Error::Cancelled`], leaving the
    /// repository as a failed run of the same operation would: nothing of
    /// a snapshot visible, no restored file half-written, locks released.
    fn cancelled(&self) -> bool {
        false
    }
}

/// [`Error::Cancelled`] if `progress` asks for it: the poll every
/// operation makes.
pub(crate) fn check_cancelled(progress: &dyn Progress) -> Result<()> {
    if progress.cancelled() {
        return Err(Error::Cancelled);
    }
    Ok(())
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{random_bytes, TestRepo};
    use crate::{RestoreOptions, SnapshotFilter, SnapshotLabel, SnapshotOptions};

    /// Asks to stop from the start.
    struct Stop;
    impl Progress for Stop {
        fn cancelled(&self) -> bool {
            true
        }
    }

    /// A cancelled snapshot, restore and verify each stop with
    /// `Cancelled`, leave nothing visible and hold no lock afterwards.
    #[test]
    fn cancelled_operations_stop_cleanly() {
        let t = TestRepo::new();
        let src = t.source_dir(&[("w.bin", random_bytes(1, 200_000))]);
        let opts = SnapshotOptions {
            label: SnapshotLabel::new("model", "m"),
            ..Default::default()
        };
        let err = t
            .repo
            .snapshot(std::slice::from_ref(&src), &opts, &Stop)
            .unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{err}");
        let none = t.repo.snapshots(&SnapshotFilter::default()).unwrap();
        assert!(none.is_empty(), "a cancelled snapshot is not visible");

        t.repo.snapshot(&[src], &opts, &NoProgress).unwrap();
        let snap = t.repo.resolve("m").unwrap();
        let out = t.dir.path().join("out");
        let err = t
            .repo
            .restore(&snap, &out, &RestoreOptions::default(), &Stop)
            .unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{err}");
        assert!(!out.join("w.bin").exists(), "no half-restored file");
        let err = t.repo.verify(&snap, &Stop).unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{err}");
        // The exclusive lock is free again: gc can run.
        t.repo.gc_plan(0.1).unwrap();
    }
}
