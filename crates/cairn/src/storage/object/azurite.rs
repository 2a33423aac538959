//! A real Azure Blob Storage endpoint for tests: Azurite, Microsoft's
//! emulator (npm `azurite`), on 127.0.0.1. Like `test_server.rs`, std only
//! and included by the CLI's tests through `#[path]`.
//!
//! One `azurite-blob` per test binary on a free port, found as
//! `$CAIRN_AZURITE` or `.ci/node/node_modules/.bin/azurite-blob` (which
//! `.ci/run` installs); a watchdog shell stops it when the test process is
//! gone. Its container is made by `.ci/az_create_container.py` (Shared Key
//! signed; `object_store` does not create containers). No Azurite:
//! [`azurite`] prints `SKIPPED: …` and returns `None`, except with
//! `CI=true`, where it panics.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Azurite's well-known development account and key.
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
pub const CONTAINER: &str = "cairn-test";

pub struct Azurite {
    /// `http://127.0.0.1:PORT`
    pub blob_url: String,
}

impl Azurite {
    /// The account's endpoint, path style: `http://127.0.0.1:PORT/ACCOUNT`.
    pub fn endpoint(&self) -> String {
        format!("{}/{ACCOUNT}", self.blob_url)
    }

    /// `az://CONTAINER/NAME-PID-N`, a prefix no other test uses.
    pub fn url(&self, name: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        format!("az://{CONTAINER}/{name}-{}-{n}", std::process::id())
    }

    /// The environment a `cairn` process needs to reach it.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR", "true".to_string()),
            ("AZURITE_BLOB_STORAGE_URL", self.blob_url.clone()),
            ("CAIRN_S3_RETRIES", "2".to_string()),
        ]
    }
}

/// The Azurite of this test binary, started on first use.
pub fn azurite(test: &str) -> Option<&'static Azurite> {
    static SERVER: OnceLock<Result<Azurite, String>> = OnceLock::new();
    match SERVER.get_or_init(start) {
        Ok(a) => Some(a),
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("{test}: CI=true but no Azurite: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED: {test}: no Azurite ({why})");
            None
        }
    }
}

fn workspace(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn start() -> Result<Azurite, String> {
    let bin = std::env::var_os("CAIRN_AZURITE")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace(".ci/node/node_modules/.bin/azurite-blob"));
    if !bin.is_file() {
        return Err(format!(
            "{} not found: set CAIRN_AZURITE, or run `.ci/run`, which installs azurite",
            bin.display()
        ));
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let dir = std::env::temp_dir().join(format!("cairn-azurite-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log = dir.join("azurite.log");
    let script = format!(
        "'{bin}' --blobHost 127.0.0.1 --blobPort {port} --location '{data}' --skipApiVersionCheck \
         >'{log}' 2>&1 & w=$!; \
         while kill -0 {me} 2>/dev/null && kill -0 $w 2>/dev/null; do sleep 0.5; done; \
         kill $w 2>/dev/null; sleep 1; kill -9 $w 2>/dev/null; wait $w; rm -rf '{dir}'",
        bin = bin.display(),
        data = dir.join("data").display(),
        log = log.display(),
        me = std::process::id(),
        dir = dir.display(),
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "azurite did not start within 60 s; its log:\n{tail}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let server = Azurite {
        blob_url: format!("http://127.0.0.1:{port}"),
    };
    let made = Command::new("python3")
        .arg(workspace(".ci/az_create_container.py"))
        .args([&server.endpoint(), ACCOUNT, KEY, CONTAINER])
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !made.status.success() {
        return Err(String::from_utf8_lossy(&made.stderr).into_owned());
    }
    Ok(server)
}
