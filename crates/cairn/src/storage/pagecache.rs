//! Keeping streamed data out of the page cache.
//!
//! cairn streams large amounts of data that nobody reads again soon: packs
//! are written once and read once per restore, check or repack, and a
//! restore writes whole files. Left in the page cache, these bytes evict the
//! user's working set. On virtual machines whose free memory is handed back
//! to the host they are also slow: every new page-cache page is a fresh host
//! page fault, while dropped pages are reused hot. Measured on the 2-vCPU
//! development VM (docs/BENCHMARKS.md):
//!
//! - writing 1.3 GiB of packs with fsync: 4.5 s of kernel time cached,
//!   0.9 s dropped after each fsync;
//! - restoring 2 GiB from packs not in the cache: 4.3–5.3 s with cached pack
//!   reads, 2.7–3.3 s with pack reads dropped; with the restored file also
//!   written behind ([`WriteBehind`]), 3.0–3.1 s instead of 3.5–5.3 s
//!   into cold memory.
//!
//! Everything here is advisory: a failed or unsupported call changes nothing
//! but speed, so errors are ignored and other platforms get no-ops.

use std::fs::File;

/// Asks the kernel to drop `len` bytes of `file` from `offset` (`len` 0 =
/// to the end) from the page cache. Clean pages go at once; dirty ones only
/// after writeback, so call it after `fsync` or [`WriteBehind`]'s wait.
pub fn drop_range(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: posix_fadvise only reads its integer arguments; the fd is
        // open for the duration of the call.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_DONTNEED) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// Write-behind for one file being written sequentially: every
/// [`WriteBehind::STEP`] bytes it starts writeback of the new step, then
/// waits for the step before the previous one to reach the disk and drops it
/// from the cache. At most ~3 steps of the file are in the cache at a time,
/// and the disk writes overlap with producing the data.
///
/// This is not `fsync`: no durability is claimed (the last steps are
/// still only in the cache when the file is done), as with restic and borg.
#[derive(Debug, Default)]
pub struct WriteBehind {
    /// Bytes written so far.
    written: u64,
    /// Writeback has been started for `..started`.
    started: u64,
    /// `..dropped` is on disk and out of the cache.
    dropped: u64,
}

impl WriteBehind {
    /// Writeback granularity.
    pub const STEP: u64 = 8 << 20;

    /// Records that `len` more bytes were written to `file`.
    pub fn wrote(&mut self, file: &File, len: usize) {
        self.written += len as u64;
        if self.written - self.started < Self::STEP {
            return;
        }
        sync_range(file, self.started, self.written, false);
        let settled = self.started.saturating_sub(Self::STEP);
        self.started = self.written;
        if settled > self.dropped {
            sync_range(file, self.dropped, settled, true);
            drop_range(file, self.dropped, settled - self.dropped);
            self.dropped = settled;
        }
    }
}

/// Starts writeback of `file[from..to]`; with `wait`, also waits until
/// those bytes are on the disk.
fn sync_range(file: &File, from: u64, to: u64, wait: bool) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else {
            return;
        };
        let flags = if wait {
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER
        } else {
            libc::SYNC_FILE_RANGE_WRITE
        };
        // SAFETY: sync_file_range only reads its integer arguments; the fd
        // is open for the duration of the call.
        unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, from, to, wait);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// The hints never change what a file holds, whatever the write sizes.
    #[test]
    fn write_behind_keeps_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = File::create(&path).unwrap();
        let data = crate::test_support::random_bytes(9, 3 * WriteBehind::STEP as usize + 12_345);
        let mut wb = WriteBehind::default();
        for piece in data.chunks(1 << 20 | 77) {
            file.write_all(piece).unwrap();
            wb.wrote(&file, piece.len());
        }
        assert_eq!(wb.written, data.len() as u64);
        assert!(wb.dropped > 0 && wb.dropped <= wb.started && wb.started <= wb.written);
        drop_range(&file, 0, 0);
        drop(file);
        let mut back = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut back).unwrap();
        assert!(back == data);
    }
}
