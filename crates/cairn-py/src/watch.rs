//! Runs a library operation with the GIL released, on a thread of its own,
//! while the calling thread watches it: at most every [`TICK`] it takes the
//! GIL back, calls the Python progress callback with `(done, total)` and
//! checks for signals (Ctrl-C). A raised exception (KeyboardInterrupt, or
//! whatever the callback raised) asks the operation to stop through
//! [`Progress::cancelled`]; the exception propagates once the operation has
//! stopped cleanly (its locks released, nothing half-visible).
//!
//! Each phase's start waits for the callback to see `(0, total)`: so the
//! callback runs at least once while the operation can still stop, even
//! when it finishes within one tick, and raising there always aborts it.
//!
//! Signals are checked on the calling thread because Python runs signal
//! handlers only on its main thread: the operation's own threads could not
//! see a Ctrl-C.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use cairn::Progress;

/// How often the watcher takes the GIL: the bound on the callback's rate
/// and on how long a Ctrl-C waits to be noticed.
const TICK: Duration = Duration::from_millis(100);

/// What the operation's thread tells the watcher.
enum Event {
    /// A phase started; the sender waits until the callback has seen it.
    Started(mpsc::Sender<()>),
    /// The operation returned.
    Done,
}

/// What the operation's threads report; read by the watcher.
struct Shared {
    done: AtomicU64,
    total: AtomicU64,
    stop: AtomicBool,
    /// Set when there is a callback to wait for at each start.
    events: Option<mpsc::Sender<Event>>,
}

impl Progress for Shared {
    fn start(&self, _label: &str, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        if let Some(events) = &self.events {
            let (ack, seen) = mpsc::channel();
            if events.send(Event::Started(ack)).is_ok() {
                let _ = seen.recv();
            }
        }
    }
    fn advance(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }
    fn cancelled(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Calls the callback when the figures moved, then checks signals; the
/// first exception is kept and stops the operation.
struct Watcher {
    callback: Option<Py<PyAny>>,
    last: Option<(u64, u64)>,
    raised: Option<PyErr>,
}

impl Watcher {
    fn poll(&mut self, py: Python<'_>, shared: &Shared) {
        if self.raised.is_some() {
            return;
        }
        let now = (
            shared.done.load(Ordering::Relaxed),
            shared.total.load(Ordering::Relaxed),
        );
        if let Some(cb) = &self.callback {
            if self.last != Some(now) {
                self.last = Some(now);
                if let Err(e) = cb.call1(py, now) {
                    self.raised = Some(e);
                }
            }
        }
        if self.raised.is_none() {
            if let Err(e) = py.check_signals() {
                self.raised = Some(e);
            }
        }
        if self.raised.is_some() {
            shared.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Runs `op` as described in the module comment. A cairn error becomes the
/// matching `cairn` exception; an exception raised while it ran wins over
/// its result (the operation stopped because of it).
pub fn run<T: Send>(
    py: Python<'_>,
    callback: Option<Py<PyAny>>,
    op: impl FnOnce(&dyn Progress) -> cairn::Result<T> + Send,
) -> PyResult<T> {
    let (events, inbox) = mpsc::channel::<Event>();
    let shared = Shared {
        done: AtomicU64::new(0),
        total: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        events: callback.is_some().then(|| events.clone()),
    };
    let mut watcher = Watcher {
        callback,
        last: None,
        raised: None,
    };
    let (shared_ref, watcher_ref) = (&shared, &mut watcher);
    // `move`: the receiver goes into the closure (it is not Sync).
    let outcome = py.detach(move || {
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                let result = op(shared_ref);
                let _ = events.send(Event::Done);
                result
            });
            loop {
                match inbox.recv_timeout(TICK) {
                    Ok(Event::Done) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    Ok(Event::Started(ack)) => {
                        Python::attach(|py| watcher_ref.poll(py, shared_ref));
                        let _ = ack.send(());
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        Python::attach(|py| watcher_ref.poll(py, shared_ref))
                    }
                }
            }
            worker.join()
        })
    });
    // The last figures, so a callback always sees the end of the work.
    watcher.poll(py, &shared);
    if let Some(e) = watcher.raised {
        return Err(e);
    }
    match outcome {
        Ok(result) => result.map_err(|e| crate::errors::to_py(py, e)),
        Err(_) => Err(PyRuntimeError::new_err("cairn: the operation panicked")),
    }
}

/// Runs a short operation with the GIL released (no progress, no thread).
pub fn quick<T: Send>(py: Python<'_>, op: impl FnOnce() -> cairn::Result<T> + Send) -> PyResult<T> {
    py.detach(op).map_err(|e| crate::errors::to_py(py, e))
}
