//! `snapshot --stdin --stdin-filename NAME`: piped bytes become one
//! regular file of the snapshot, chunked and deduplicated like any file;
//! a source path that is a pipe, socket or device is refused (it used to
//! be stored as a symlink to `/proc/self/fd/0`, with no data).

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::common::*;

/// `cairn snapshot --stdin --stdin-filename NAME ... --json` fed `data`.
fn snapshot_stdin(env: &Env, name: &str, data: &[u8]) -> Value {
    let mut cmd = env.cmd(["snapshot", "--stdin", "--stdin-filename", name]);
    cmd.args(["--kind", "database", "--name", "app", "--json"])
        .write_stdin(data.to_vec());
    let out = run_ok(cmd);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn stdin_is_stored_as_one_file_and_restores_bit_for_bit() {
    let env = Env::new();
    let dump = random_bytes(3 << 20, 7);
    let r = snapshot_stdin(&env, "db.sql", &dump);
    assert_eq!(r["files"], 1, "{r}");
    assert_eq!(r["logical_bytes"], dump.len() as u64, "{r}");
    assert_eq!(r["bytes_read"], dump.len() as u64, "{r}");
    assert!(u(&r, "chunks_new") > 1, "chunked like any file: {r}");

    let out = run_ok(env.cmd(["cat", "app", "db.sql"]));
    assert!(out.stdout == dump, "cat gives the piped bytes back");
    let target = env.path("restored");
    run_ok(env.cmd(["restore".as_ref(), "app".as_ref(), target.as_os_str()]));
    let restored = target.join("db.sql");
    assert!(std::fs::read(&restored).unwrap() == dump);
    let meta = std::fs::metadata(&restored).unwrap();
    assert!(meta.is_file());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
    let age = std::time::SystemTime::now()
        .duration_since(meta.modified().unwrap())
        .unwrap_or_default();
    assert!(age.as_secs() < 600, "mtime is the time of the snapshot");

    // The same bytes again: deduplicated against the first.
    let again = snapshot_stdin(&env, "db.sql", &dump);
    assert_eq!(again["chunks_new"], 0, "{again}");
    assert_ne!(again["id"], r["id"]);
    assert_eq!(env.list().len(), 2);
}

#[test]
fn empty_stdin_is_an_empty_file() {
    let env = Env::new();
    let r = snapshot_stdin(&env, "empty.bin", b"");
    assert_eq!(r["files"], 1, "{r}");
    assert_eq!(r["logical_bytes"], 0, "{r}");
    let out = run_ok(env.cmd(["cat", "app", "empty.bin"]));
    assert!(out.stdout.is_empty());
}

#[test]
fn stdin_filename_must_be_one_name_and_is_required() {
    let env = Env::new();
    let before = env.state();
    let mut cmd = env.cmd(["snapshot", "--stdin", "--stdin-filename", "a/b"]);
    cmd.args(["--kind", "database", "--name", "app"])
        .write_stdin(b"x".to_vec());
    let err = run_code(cmd, 2);
    assert!(err.contains("--stdin-filename `a/b`"), "{err}");
    let mut cmd = env.cmd(["snapshot", "--stdin", "--kind", "database", "--name", "app"]);
    let err = run_code(cmd.write_stdin(b"x".to_vec()), 2);
    assert!(err.contains("--stdin-filename"), "{err}");
    assert_eq!(env.state(), before, "nothing written");
}

#[test]
fn a_pipe_as_source_is_refused_and_suggests_stdin() {
    let env = Env::new();
    let before = env.state();
    let mut cmd = env.cmd([
        "snapshot",
        "/dev/stdin",
        "--kind",
        "database",
        "--name",
        "app",
    ]);
    let err = run_code(cmd.write_stdin(b"piped data\n".to_vec()), 2);
    assert!(
        err.contains("cannot snapshot /dev/stdin: it is a pipe"),
        "{err}"
    );
    assert!(err.contains("--stdin --stdin-filename"), "hint: {err}");
    assert_eq!(env.state(), before, "nothing written");
}

#[test]
fn a_socket_or_device_as_source_is_refused() {
    let env = Env::new();
    let before = env.state();
    let sock = env.path("s.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let err = run_code(
        env.cmd(["snapshot".as_ref(), sock.as_os_str()])
            .args(["--kind", "k", "--name", "n"]),
        2,
    );
    assert!(err.contains("it is a socket"), "{err}");
    let err = run_code(
        env.cmd(["snapshot", "/dev/null", "--kind", "k", "--name", "n"]),
        2,
    );
    assert!(
        err.contains("cannot snapshot /dev/null: it is a device"),
        "{err}"
    );
    assert_eq!(env.state(), before, "nothing written");
}
