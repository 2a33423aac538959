//! Where a restore writes its temp files.
//!
//! Temp files are named `.cairn-tmp-<pid>-<n>`: short, so a file name at
//! the 255-byte limit still has a temp name beside it (`.NAME.cairn-PID`
//! did not), and fixed, so they are recognisable as a restore's.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const TEMP_PREFIX: &str = ".cairn-tmp-";

/// Numbers the temp files of this process.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// A fresh temp name beside `dest`.
pub(super) fn temp_path(dest: &Path) -> PathBuf {
    let n = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    dest.with_file_name(format!("{TEMP_PREFIX}{}-{n}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_short_and_distinct() {
        let long = "n".repeat(255);
        let tmp = temp_path(&Path::new("/t").join(&long));
        let name = tmp.file_name().unwrap().to_str().unwrap();
        assert!(name.len() < 40, "{name}");
        assert!(name.starts_with(TEMP_PREFIX), "{name}");
        assert_eq!(tmp.parent(), Some(Path::new("/t")));
        assert_ne!(temp_path(&tmp), tmp);
    }
}
