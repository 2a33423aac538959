//! Repository locks, as objects under `locks/` so any storage backend can
//! hold them. Snapshots take shared locks; `gc`, `forget`, `delete`,
//! `policy set`/`unset` and `rebuild-catalog` take an exclusive one.
//!
//! Protocol: write our lock object, then list `locks/`. A shared lock
//! conflicts with any other exclusive lock; an exclusive lock conflicts with
//! any other lock. On conflict we delete ours and fail, naming the holders,
//! so two racing writers both back off rather than both proceed.
//!
//! Every lock is a **lease**: its object says until when it holds
//! (`expires_ns`), and a background thread of the holder rewrites it every
//! [`Lease::refresh`] to push that time on by [`Lease::duration`]. A lock
//! whose lease ran out is stale, whatever host made it: its holder died, or
//! lost the storage for longer than the lease. A lock of this host whose
//! process is gone is stale at once. Acquiring removes stale locks.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::catalog::now_ns;
use crate::error::{Error, Result};
use crate::storage::{PutMode, Storage};

pub const PREFIX: &str = "locks/";

/// How long a lock holds without a refresh, by default: long enough that a
/// holder stalled by a slow or briefly unreachable storage keeps its lock
/// (nine refreshes may fail in a row), short enough that a crashed host's
/// lock clears within minutes.
pub const LEASE_DURATION: Duration = Duration::from_secs(600);

/// How often a holder refreshes its lock, by default.
pub const LEASE_REFRESH: Duration = Duration::from_secs(60);

/// The lease of a lock object written before leases existed (no
/// `expires_ns`): its holder never refreshes it, so it counts as live for
/// this long after `time_ns`, generously, since an older cairn on another
/// host may still be running a long command under it.
pub const LEGACY_LEASE: Duration = Duration::from_secs(24 * 3600);

/// How long a lock holds and how often its holder refreshes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub duration: Duration,
    pub refresh: Duration,
}

impl Default for Lease {
    fn default() -> Self {
        Lease {
            duration: LEASE_DURATION,
            refresh: LEASE_REFRESH,
        }
    }
}

impl Lease {
    /// Checks that the holder refreshes well within the lease.
    pub fn new(duration: Duration, refresh: Duration) -> Result<Self> {
        if refresh.is_zero() || refresh >= duration {
            return Err(Error::InvalidArgument(format!(
                "a lock lease of {duration:?} needs a refresh interval above 0 and below it, not {refresh:?}"
            )));
        }
        Ok(Lease { duration, refresh })
    }
}

static PROCESS_LEASE: RwLock<Option<Lease>> = RwLock::new(None);

/// How long [`Lock::shared`] and [`Lock::exclusive`] keep retrying while
/// another holder's lock conflicts; zero (the default) fails at once.
static PROCESS_WAIT: RwLock<Duration> = RwLock::new(Duration::ZERO);

/// Sets how long this process waits for a conflicting lock to go before
/// failing with [`Error::Locked`] (the CLI's `--lock-wait`).
pub fn set_lock_wait(wait: Duration) {
    *PROCESS_WAIT.write().unwrap_or_else(|e| e.into_inner()) = wait;
}

fn lock_wait() -> Duration {
    *PROCESS_WAIT.read().unwrap_or_else(|e| e.into_inner())
}

/// Sets the lease of the locks this process takes from now on with
/// [`Lock::shared`] and [`Lock::exclusive`] (the CLI reads it from
/// `CAIRN_LOCK_LEASE_SECS` / `CAIRN_LOCK_REFRESH_SECS`).
pub fn set_lease(lease: Lease) {
    *PROCESS_LEASE.write().unwrap_or_else(|e| e.into_inner()) = Some(lease);
}

/// The lease new locks of this process get.
pub fn lease() -> Lease {
    PROCESS_LEASE
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or_default()
}

/// What a lock object says about its holder (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub exclusive: bool,
    pub host: String,
    pub pid: u32,
    /// What the holder is doing, e.g. `snapshot` or `gc`.
    pub purpose: String,
    /// When the lock was taken.
    pub time_ns: i64,
    /// When the holder last refreshed it (`time_ns` until the first refresh).
    /// Absent in locks of cairn before leases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_ns: Option<i64>,
    /// Until when the lease holds; absent in locks of cairn before leases,
    /// which hold until `time_ns` + [`LEGACY_LEASE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ns: Option<i64>,
}

fn add_ns(t: i64, d: Duration) -> i64 {
    t.saturating_add(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl LockInfo {
    fn new(purpose: &str, exclusive: bool, lease: Lease) -> Self {
        let now = now_ns();
        LockInfo {
            exclusive,
            host: crate::host::hostname(),
            pid: std::process::id(),
            purpose: purpose.to_string(),
            time_ns: now,
            refreshed_ns: Some(now),
            expires_ns: Some(add_ns(now, lease.duration)),
        }
    }

    /// Until when the lock holds unless refreshed.
    pub fn expires_ns(&self) -> i64 {
        self.expires_ns
            .unwrap_or_else(|| add_ns(self.time_ns, LEGACY_LEASE))
    }

    /// The stand-in [`list`] reports for an object that does not parse.
    fn is_unreadable(&self) -> bool {
        self.pid == 0 && self.host == "?"
    }

    fn on_this_host(&self) -> bool {
        self.host == crate::host::hostname()
    }

    /// True when the holder is surely gone: the lease ran out, or the
    /// holder is a process of this host that no longer runs.
    pub fn is_stale(&self) -> bool {
        self.expires_ns() <= now_ns() || (self.on_this_host() && !crate::host::pid_alive(self.pid))
    }

    /// The holder, its age, and what to do about it.
    fn describe(&self, key: &str) -> String {
        if self.is_unreadable() {
            return format!(
                "exclusive lock of an unknown holder: {} ({key})",
                self.purpose
            );
        }
        let kind = if self.exclusive {
            "exclusive"
        } else {
            "shared"
        };
        let now = now_ns();
        let mut text = format!(
            "{kind} lock for `{}` held by pid {} on {} since {} ({} ago",
            self.purpose,
            self.pid,
            self.host,
            utc(self.time_ns),
            age(now - self.time_ns),
        );
        if let Some(r) = self.refreshed_ns.filter(|r| *r != self.time_ns) {
            text.push_str(&format!(", refreshed {} ago", age(now - r)));
        }
        text.push_str(&format!(") ({key})"));
        text
    }

    /// What the user can do about this live lock, truthfully.
    fn advice(&self) -> String {
        let expires = utc(self.expires_ns());
        if self.is_unreadable() {
            "it cannot be read; `cairn unlock --all` removes it".to_string()
        } else if self.on_this_host() {
            format!(
                "pid {} is running on this host: wait for it to finish (if that pid is \
                 an unrelated process now, the lock expires at {expires})",
                self.pid
            )
        } else {
            format!(
                "its lease is live: wait for it to finish; if {} is gone, the lock \
                 expires at {expires}",
                self.host
            )
        }
    }
}

fn utc(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

/// `3h 05m`, `4m 10s`, `12s`: how long ago, for people.
fn age(ns: i64) -> String {
    let s = (ns.max(0) / 1_000_000_000) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// A held lock: refreshed by a background thread while alive, released
/// (its object deleted) on drop. Owns its storage, so it outlives any
/// borrow of the repository.
pub struct Lock {
    storage: Arc<dyn Storage>,
    key: String,
    exclusive: bool,
    lease: Lease,
    /// The expiry our lock object last said, as written by us: another
    /// client may judge the lock stale from then on.
    expires_ns: Arc<AtomicI64>,
    heartbeat: Option<Heartbeat>,
}

/// The refreshing thread; dropping `stop` wakes it to end.
struct Heartbeat {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
    lost: Arc<AtomicBool>,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock").field("key", &self.key).finish()
    }
}

impl Lock {
    /// Takes a shared lock (several may coexist; excludes exclusive ones),
    /// with this process's [`lease`].
    pub fn shared(storage: Arc<dyn Storage>, purpose: &str) -> Result<Self> {
        Self::acquire_waiting(storage, purpose, false, lease(), lock_wait())
    }

    /// Takes an exclusive lock (no other lock may exist), with this
    /// process's [`lease`].
    pub fn exclusive(storage: Arc<dyn Storage>, purpose: &str) -> Result<Self> {
        Self::acquire_waiting(storage, purpose, true, lease(), lock_wait())
    }

    /// [`Lock::acquire`], retried while it meets a conflicting lock, for up
    /// to `wait` (polling at growing intervals, at most 5 s apart). Our own
    /// object is removed between tries, so waiters never block each other
    /// or the holder they wait for.
    pub fn acquire_waiting(
        storage: Arc<dyn Storage>,
        purpose: &str,
        exclusive: bool,
        lease: Lease,
        wait: Duration,
    ) -> Result<Self> {
        let deadline = std::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(100);
        loop {
            match Self::acquire(storage.clone(), purpose, exclusive, lease) {
                Err(Error::Locked { .. }) if std::time::Instant::now() + pause <= deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }

    /// True for an exclusive lock (callers that take a held lock check it).
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    /// True once the heartbeat found our lock object gone: someone judged
    /// it stale (this process stalled past its lease) or ran
    /// `unlock --all`. The lock then no longer protects anything.
    pub fn is_lost(&self) -> bool {
        self.heartbeat
            .as_ref()
            .is_some_and(|h| h.lost.load(Ordering::Relaxed))
    }

    /// Confirms, just before work that the lock must cover is made
    /// visible (a manifest committed, packs deleted), that the lock still
    /// holds and will for a while: its object is still there, and its
    /// lease has at least half of the slack between refreshes left, so
    /// another client cannot judge it stale while the step runs (given
    /// clocks within that slack of each other). Fails with
    /// [`Error::LockLost`] otherwise; the caller then stops before the step.
    pub fn ensure_held(&self) -> Result<()> {
        let lost = |reason: String| Error::LockLost {
            key: self.key.clone(),
            reason,
        };
        if self.is_lost() {
            return Err(lost(
                "another client removed it (judged stale, or `unlock --all`)".into(),
            ));
        }
        let slack = self.lease.duration.saturating_sub(self.lease.refresh) / 2;
        let left_ns = self
            .expires_ns
            .load(Ordering::Relaxed)
            .saturating_sub(now_ns());
        if left_ns < i64::try_from(slack.as_nanos()).unwrap_or(i64::MAX) {
            return Err(lost(format!(
                "its lease could not be refreshed in time ({} s left of {} s)",
                left_ns.max(0) / 1_000_000_000,
                self.lease.duration.as_secs()
            )));
        }
        match self.storage.head(&self.key) {
            Ok(_) => Ok(()),
            Err(Error::ObjectNotFound { .. }) => {
                if let Some(h) = &self.heartbeat {
                    h.lost.store(true, Ordering::Relaxed);
                }
                Err(lost(
                    "another client removed it (judged stale, or `unlock --all`)".into(),
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// Takes a lock with an explicit `lease`.
    pub fn acquire(
        storage: Arc<dyn Storage>,
        purpose: &str,
        exclusive: bool,
        lease: Lease,
    ) -> Result<Self> {
        let info = LockInfo::new(purpose, exclusive, lease);
        let key = format!("{PREFIX}{}.lock", crate::format::config::random_hex(16));
        // Never over another's lock, should two random names ever meet.
        if let Err(e) = storage.put_with(&key, &to_json(&info), PutMode::CreateNew) {
            // A backend may have left part of it; never leave a torn lock.
            // But an existing object under the name is someone else's.
            if !matches!(e, Error::ObjectExists { .. }) {
                let _ = storage.delete(&key);
            }
            return Err(e);
        }
        let mut lock = Lock {
            storage,
            key,
            exclusive,
            lease,
            expires_ns: Arc::new(AtomicI64::new(info.expires_ns())),
            heartbeat: None,
        };
        let mut holders = Vec::new();
        for (other_key, other) in list(lock.storage.as_ref())? {
            if other_key == lock.key || !(exclusive || other.exclusive) {
                continue;
            }
            if other.is_stale() {
                lock.storage.delete(&other_key)?;
                continue;
            }
            holders.push(format!(
                "{}; {}",
                other.describe(&other_key),
                other.advice()
            ));
        }
        if !holders.is_empty() {
            return Err(Error::Locked { holders });
        }
        lock.heartbeat = Some(lock.start_heartbeat(info, lease));
        Ok(lock)
    }

    fn start_heartbeat(&self, mut info: LockInfo, lease: Lease) -> Heartbeat {
        let (stop, stopped) = mpsc::channel::<()>();
        let lost = Arc::new(AtomicBool::new(false));
        let (storage, key, flag) = (self.storage.clone(), self.key.clone(), lost.clone());
        let expires = Arc::clone(&self.expires_ns);
        let thread = std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(lease.refresh) {
                // Never recreate a lock someone removed: an exclusive
                // holder may have taken the repository meanwhile.
                match storage.head(&key) {
                    Err(Error::ObjectNotFound { .. }) => {
                        flag.store(true, Ordering::Relaxed);
                        return;
                    }
                    // A failed refresh is retried next time; the lease
                    // outlasts several.
                    Err(_) => continue,
                    Ok(_) => {}
                }
                let now = now_ns();
                info.refreshed_ns = Some(now);
                info.expires_ns = Some(add_ns(now, lease.duration));
                if storage
                    .put_with(&key, &to_json(&info), PutMode::Overwrite)
                    .is_ok()
                {
                    expires.store(info.expires_ns(), Ordering::Relaxed);
                }
            }
        });
        Heartbeat { stop, thread, lost }
    }
}

fn to_json(info: &LockInfo) -> Vec<u8> {
    serde_json::to_vec(info).expect("lock info serialises")
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Stop refreshing first, so no refresh recreates the deleted object.
        if let Some(h) = self.heartbeat.take() {
            drop(h.stop);
            let _ = h.thread.join();
        }
        let _ = self.storage.delete(&self.key);
    }
}

/// All lock objects and what they say; unreadable ones are reported as
/// exclusive locks of an unknown holder (never silently ignored).
pub fn list(storage: &dyn Storage) -> Result<Vec<(String, LockInfo)>> {
    let mut out = Vec::new();
    for obj in storage.list(PREFIX)? {
        let info = match storage.get(&obj.key) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|_| LockInfo {
                exclusive: true,
                host: "?".into(),
                pid: 0,
                purpose: "unreadable lock file".into(),
                time_ns: 0,
                refreshed_ns: None,
                // Never expires: nobody can tell whether its holder lives.
                expires_ns: Some(i64::MAX),
            }),
            Err(Error::ObjectNotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        out.push((obj.key, info));
    }
    Ok(out)
}

/// What [`unlock`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Unlocked {
    /// The removed locks, described.
    pub locks: Vec<String>,
    /// Temp files of interrupted lock writes (`locks/.tmp-*` on a local
    /// repository) whose writer is gone.
    pub temp_files: Vec<String>,
}

/// Removes stale locks, or every lock with `all`, and the leftovers of
/// interrupted lock writes. Returns what was removed.
pub fn unlock(storage: &dyn Storage, all: bool) -> Result<Unlocked> {
    let mut removed = Unlocked::default();
    for (key, info) in list(storage)? {
        if all || info.is_stale() {
            storage.delete(&key)?;
            removed.locks.push(info.describe(&key));
        }
    }
    for obj in leftover_temp_files(storage)? {
        storage.remove_leftover(&obj.key)?;
        removed.temp_files.push(obj.key);
    }
    Ok(removed)
}

/// Temp files of interrupted lock writes whose writer is gone (the storage
/// names only those under `locks/`, see [`Storage::leftovers`]): anyone may
/// remove them, without a lock. Other leftovers need the exclusive lock.
pub fn leftover_temp_files(storage: &dyn Storage) -> Result<Vec<crate::storage::ObjectInfo>> {
    let mut out = storage.leftovers()?;
    out.retain(|obj| obj.key.starts_with(PREFIX));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{LocalStorage, MemoryStorage};

    fn local(dir: &tempfile::TempDir) -> Arc<dyn Storage> {
        Arc::new(LocalStorage::new(dir.path()))
    }

    #[test]
    fn shared_coexist_exclusive_excludes_and_releases_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let s = local(&dir);
        let a = Lock::shared(s.clone(), "snapshot").unwrap();
        let b = Lock::shared(s.clone(), "snapshot").unwrap();
        let err = Lock::exclusive(s.clone(), "gc").unwrap_err().to_string();
        assert!(err.contains("shared lock for `snapshot`"), "{err}");
        assert_eq!(
            list(s.as_ref()).unwrap().len(),
            2,
            "the failed attempt removed its own lock"
        );
        drop((a, b));
        let x = Lock::exclusive(s.clone(), "gc").unwrap();
        assert!(Lock::shared(s.clone(), "snapshot").is_err());
        drop(x);
        assert!(list(s.as_ref()).unwrap().is_empty());
    }

    fn remote(exclusive: bool, time_ns: i64, expires_ns: Option<i64>) -> LockInfo {
        LockInfo {
            exclusive,
            host: "some-other-host".into(),
            pid: 4242,
            purpose: "gc".into(),
            time_ns,
            refreshed_ns: expires_ns.map(|_| time_ns),
            expires_ns,
        }
    }

    #[test]
    fn stale_locks_of_dead_processes_are_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let s = local(&dir);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        child.wait().unwrap();
        let stale = LockInfo {
            host: crate::host::hostname(),
            pid: dead_pid,
            ..remote(true, now_ns(), Some(i64::MAX))
        };
        s.put("locks/old.lock", &to_json(&stale)).unwrap();
        let _ok = Lock::shared(s.clone(), "snapshot").unwrap();
        assert_eq!(list(s.as_ref()).unwrap().len(), 1);
        let live = LockInfo {
            pid: std::process::id(),
            ..stale
        };
        s.put("locks/live.lock", &to_json(&live)).unwrap();
        assert!(unlock(s.as_ref(), false).unwrap().locks.is_empty());
        assert_eq!(unlock(s.as_ref(), true).unwrap().locks.len(), 2);
    }

    /// Guards the lease rule: another host's lock is stale once its lease
    /// ran out (a legacy lock without one: a day after it was taken), live
    /// before, and a live one names its host, age and expiry.
    #[test]
    fn expired_leases_are_stale_whatever_host() {
        let s: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let now = now_ns();
        let hour = 3_600_000_000_000i64;
        s.put(
            "locks/expired.lock",
            &to_json(&remote(true, now - hour, Some(now - 1))),
        )
        .unwrap();
        s.put(
            "locks/legacy.lock",
            &to_json(&remote(true, now - 25 * hour, None)),
        )
        .unwrap();
        let lock = Lock::shared(s.clone(), "snapshot").unwrap();
        assert_eq!(
            list(s.as_ref()).unwrap().len(),
            1,
            "both stale ones removed"
        );
        drop(lock);

        let legacy =
            br#"{"exclusive":true,"host":"some-other-host","pid":4242,"purpose":"gc","time_ns":0}"#;
        let parsed: LockInfo = serde_json::from_slice(legacy).unwrap();
        assert!(parsed.is_stale() && parsed.expires_ns.is_none());

        s.put(
            "locks/live.lock",
            &to_json(&remote(true, now - 2 * hour, Some(now + hour))),
        )
        .unwrap();
        let err = Lock::shared(s.clone(), "snapshot").unwrap_err().to_string();
        assert!(
            err.contains("on some-other-host")
                && err.contains("(2h 00m ago")
                && err.contains("if some-other-host is gone, the lock expires at")
                && !err.contains("pid 4242 is running"),
            "{err}"
        );
        assert!(unlock(s.as_ref(), false).unwrap().locks.is_empty());
    }

    /// Guards the heartbeat: a held lock's object is rewritten under the
    /// same key with a later refresh time and expiry; dropping the lock
    /// stops the thread and deletes the object; a lock removed by someone
    /// else is not recreated, and its holder learns it is lost.
    #[test]
    fn a_holder_keeps_its_lease_fresh() {
        let s: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let lease = Lease::new(Duration::from_secs(5), Duration::from_millis(50)).unwrap();
        let lock = Lock::acquire(s.clone(), "snapshot", false, lease).unwrap();
        let first = list(s.as_ref()).unwrap();
        assert_eq!(first.len(), 1);
        let (key, before) = first[0].clone();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let after = loop {
            std::thread::sleep(Duration::from_millis(20));
            let now = list(s.as_ref()).unwrap();
            assert_eq!(now.len(), 1);
            assert_eq!(now[0].0, key, "the refresh keeps the key");
            if now[0].1.refreshed_ns > before.refreshed_ns {
                break now[0].1.clone();
            }
            assert!(std::time::Instant::now() < deadline, "never refreshed");
        };
        assert!(after.expires_ns > before.expires_ns);
        assert_eq!(after.time_ns, before.time_ns);
        drop(lock);
        assert!(list(s.as_ref()).unwrap().is_empty());

        let lock = Lock::acquire(s.clone(), "snapshot", false, lease).unwrap();
        unlock(s.as_ref(), true).unwrap();
        while !lock.is_lost() {
            assert!(std::time::Instant::now() < deadline + Duration::from_secs(20));
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(list(s.as_ref()).unwrap().is_empty(), "not recreated");
    }

    /// Guards the commit points (snapshot's manifest, gc's and forget's
    /// deletions): a holder confirms its lock before them, and learns it
    /// is gone both when someone removed it and when its own refreshes
    /// failed long enough that another client may soon judge it stale.
    #[test]
    fn a_holder_confirms_its_lock_before_committing() {
        let s: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let lease = Lease::new(Duration::from_secs(60), Duration::from_secs(1)).unwrap();
        let lock = Lock::acquire(s.clone(), "snapshot", false, lease).unwrap();
        lock.ensure_held().unwrap();
        unlock(s.as_ref(), true).unwrap();
        let err = lock.ensure_held().unwrap_err();
        assert!(matches!(err, Error::LockLost { .. }), "{err}");
        assert!(
            err.to_string().contains("another client removed it"),
            "{err}"
        );
        assert!(lock.is_lost(), "the holder remembers");

        // Every refresh fails (the first put is the lock itself): within
        // the lease, but past half its slack, the lock no longer counts.
        use crate::storage::faulty::{Fault, FaultyStorage};
        let failing: Arc<dyn Storage> =
            Arc::new(FaultyStorage::new(MemoryStorage::new(), Fault::Fail, 2));
        let lease = Lease::new(Duration::from_millis(1000), Duration::from_millis(100)).unwrap();
        let lock = Lock::acquire(failing.clone(), "gc", true, lease).unwrap();
        lock.ensure_held().unwrap();
        std::thread::sleep(Duration::from_millis(700));
        let err = lock.ensure_held().unwrap_err();
        assert!(
            matches!(err, Error::LockLost { .. })
                && err.to_string().contains("could not be refreshed"),
            "{err}"
        );
    }

    /// Guards `--lock-wait`: a waiter gets the lock once the holder lets
    /// go within the wait, and fails as before when it does not.
    #[test]
    fn a_waiter_gets_the_lock_once_the_holder_lets_go() {
        let s: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let lease = Lease::default();
        let holder = Lock::acquire(s.clone(), "gc", true, lease).unwrap();
        let err = Lock::acquire_waiting(
            s.clone(),
            "snapshot",
            false,
            lease,
            Duration::from_millis(300),
        );
        assert!(matches!(err, Err(Error::Locked { .. })), "{err:?}");
        let released = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(holder);
        });
        let started = std::time::Instant::now();
        let got =
            Lock::acquire_waiting(s.clone(), "snapshot", false, lease, Duration::from_secs(20))
                .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(200));
        released.join().unwrap();
        assert_eq!(
            list(s.as_ref()).unwrap().len(),
            1,
            "only the waiter's lock remains"
        );
        drop(got);
    }

    #[test]
    fn a_lease_refreshes_within_itself() {
        assert!(Lease::new(Duration::from_secs(10), Duration::from_secs(10)).is_err());
        assert!(Lease::new(Duration::from_secs(10), Duration::ZERO).is_err());
        assert_eq!(
            Lease::new(LEASE_DURATION, LEASE_REFRESH).unwrap(),
            Lease::default()
        );
    }
}
