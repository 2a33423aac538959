//! Repository locks, as objects under `locks/` so any storage backend can
//! hold them. Snapshots take shared locks; `gc`, `forget`, `delete`,
//! `policy set`/`unset` and `rebuild-catalog` take an exclusive one.
//!
//! Protocol: write our lock object, then list `locks/`. A shared lock
//! conflicts with any other exclusive lock; an exclusive lock conflicts with
//! any other lock. On conflict we delete ours and fail, naming the holder,
//! so two racing writers both back off rather than both proceed. A lock of
//! this host whose process is gone is stale and removed automatically.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::catalog::now_ns;
use crate::error::{Error, Result};
use crate::storage::{PutMode, Storage};

pub const PREFIX: &str = "locks/";

/// What a lock object says about its holder (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub exclusive: bool,
    pub host: String,
    pub pid: u32,
    /// What the holder is doing, e.g. `snapshot` or `gc`.
    pub purpose: String,
    pub time_ns: i64,
}

impl LockInfo {
    /// True when the holder is a process of this host that no longer runs.
    pub fn is_stale(&self) -> bool {
        self.host == crate::snapshot::hostname() && !pid_alive(self.pid)
    }

    fn describe(&self, key: &str) -> String {
        let t = chrono::DateTime::from_timestamp_nanos(self.time_ns);
        format!(
            "{} lock for `{}` held by pid {} on {} since {} ({key})",
            if self.exclusive {
                "exclusive"
            } else {
                "shared"
            },
            self.purpose,
            self.pid,
            self.host,
            t.format("%Y-%m-%d %H:%M:%S UTC"),
        )
    }
}

pub(crate) fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // Signal 0 checks existence; EPERM means it exists but is not ours.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A held lock; released (its object deleted) on drop. Owns its storage,
/// so it outlives any borrow of the repository.
pub struct Lock {
    storage: Arc<dyn Storage>,
    key: String,
    exclusive: bool,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock").field("key", &self.key).finish()
    }
}

impl Lock {
    /// Takes a shared lock (several may coexist; excludes exclusive ones).
    pub fn shared(storage: Arc<dyn Storage>, purpose: &str) -> Result<Self> {
        Self::acquire(storage, purpose, false)
    }

    /// Takes an exclusive lock (no other lock may exist).
    pub fn exclusive(storage: Arc<dyn Storage>, purpose: &str) -> Result<Self> {
        Self::acquire(storage, purpose, true)
    }

    /// True for an exclusive lock (callers that take a held lock check it).
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    fn acquire(storage: Arc<dyn Storage>, purpose: &str, exclusive: bool) -> Result<Self> {
        let info = LockInfo {
            exclusive,
            host: crate::snapshot::hostname(),
            pid: std::process::id(),
            purpose: purpose.to_string(),
            time_ns: now_ns(),
        };
        let key = format!("{PREFIX}{}.lock", crate::config::random_hex(16));
        // Never over another's lock, should two random names ever meet.
        if let Err(e) = storage.put_with(
            &key,
            &serde_json::to_vec(&info).expect("lock info serialises"),
            PutMode::CreateNew,
        ) {
            // A backend may have left part of it; never leave a torn lock.
            // But an existing object under the name is someone else's.
            if !matches!(e, Error::ObjectExists { .. }) {
                let _ = storage.delete(&key);
            }
            return Err(e);
        }
        let lock = Lock {
            storage,
            key,
            exclusive,
        };
        for (other_key, other) in list(lock.storage.as_ref())? {
            if other_key == lock.key || !(exclusive || other.exclusive) {
                continue;
            }
            if other.is_stale() {
                lock.storage.delete(&other_key)?;
                continue;
            }
            return Err(Error::Locked {
                holder: other.describe(&other_key),
            });
        }
        Ok(lock)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
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
            }),
            Err(Error::ObjectNotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        out.push((obj.key, info));
    }
    Ok(out)
}

/// Removes stale locks, or every lock with `all`. Returns what was removed.
pub fn unlock(storage: &dyn Storage, all: bool) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for (key, info) in list(storage)? {
        if all || info.is_stale() {
            storage.delete(&key)?;
            removed.push(info.describe(&key));
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::LocalStorage;

    #[test]
    fn shared_coexist_exclusive_excludes_and_releases_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
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

    #[test]
    fn stale_locks_of_dead_processes_are_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let s: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        child.wait().unwrap();
        let stale = LockInfo {
            exclusive: true,
            host: crate::snapshot::hostname(),
            pid: dead_pid,
            purpose: "gc".into(),
            time_ns: 0,
        };
        s.put("locks/old.lock", &serde_json::to_vec(&stale).unwrap())
            .unwrap();
        let _ok = Lock::shared(s.clone(), "snapshot").unwrap();
        assert_eq!(list(s.as_ref()).unwrap().len(), 1);
        let live = LockInfo {
            pid: std::process::id(),
            ..stale
        };
        s.put("locks/live.lock", &serde_json::to_vec(&live).unwrap())
            .unwrap();
        assert!(unlock(s.as_ref(), false).unwrap().is_empty());
        assert_eq!(unlock(s.as_ref(), true).unwrap().len(), 2);
    }
}
