//! Restore at the edges. Each test names the defect it guards.

use std::fs;

use crate::common::*;

/// Regression: a 250-byte file name snapshotted fine but did not restore
/// ("File name too long"): the temp name `.NAME.cairn-PID` beside it went
/// over the 255-byte limit, and the whole restore aborted.
#[test]
fn a_file_name_of_250_bytes_restores() {
    let env = Env::new();
    let src = env.path("long");
    let name = format!("{}.bin", "n".repeat(246));
    assert_eq!(name.len(), 250);
    let data = random_bytes(200_000, 21);
    write(&src.join(&name), &data);
    write(&src.join("short.txt"), b"short\n");
    env.snapshot(&src, "config", "long", &[]);
    let out = env.path("out");
    run_ok(env.cmd(["restore".as_ref(), "long".as_ref(), out.as_os_str()]));
    assert_eq!(fs::read(out.join("long").join(&name)).unwrap(), data);
    assert_diff_clean(&src, &out.join("long"));
}
