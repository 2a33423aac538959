//! `gen_tree`: a deterministic generator of a service directory of many
//! small files, the shape trading and ML-ops teams snapshot every hour:
//! JSON portfolio states, CSV trade logs, TOML configs, small binaries.
//!
//! ```text
//! cargo run --release --example gen_tree -- OUT_DIR [--files 30000] [--seed N] [--change PCT [--round R]]
//! ```
//!
//! * `--files N` files in `OUT_DIR/<desk>/<service>/{state,trades,config,bin}/`,
//!   about 10 KB on average (300 MB for 30,000), sizes spread from a few
//!   hundred bytes to 64 KB.
//! * Content is text as the real thing is: JSON objects of positions with
//!   prices, CSV rows of trades with timestamps, TOML with nested tables;
//!   binaries are random bytes. Nothing is one byte repeated, so compression
//!   and dedup see what they would on real files.
//! * `--change PCT` writes the same tree with PCT percent of the files
//!   (chosen by the seed, spread over the tree) rewritten as a later version
//!   would: a state's prices move, a trade log gains rows, a config's value
//!   changes. Run it over an existing tree to make the next version;
//!   `--round R` (default 1) picks another set of files and content for the
//!   R-th change, so rounds 1, 2, 3… make a history.
//! * The same arguments give the same bytes on every machine.
//!
//! Uses std only, so it builds as a cargo example without extra dependencies.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::exit;

/// SplitMix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const DESKS: [&str; 6] = [
    "rates",
    "fx",
    "equities",
    "credit",
    "commodities",
    "ml-platform",
];
const SYMBOLS: [&str; 12] = [
    "AAPL", "MSFT", "NVDA", "EURUSD", "USDJPY", "GBPUSD", "CL1", "GC1", "TY1", "ES1", "BTCUSD",
    "SPY",
];
const SIDES: [&str; 2] = ["buy", "sell"];

/// What kind of file lives at index `i` (fixed by the index, so a changed
/// version keeps every file's kind and path).
#[derive(Clone, Copy)]
enum Kind {
    State,
    Trades,
    Config,
    Binary,
}

fn kind_of(i: u64) -> Kind {
    match i % 10 {
        0..=3 => Kind::State,
        4..=6 => Kind::Trades,
        7..=8 => Kind::Config,
        _ => Kind::Binary,
    }
}

fn path_of(root: &Path, i: u64) -> PathBuf {
    let desk = DESKS[(i % DESKS.len() as u64) as usize];
    let service = format!("svc-{:02}", (i / 7) % 50);
    let (dir, ext) = match kind_of(i) {
        Kind::State => ("state", "json"),
        Kind::Trades => ("trades", "csv"),
        Kind::Config => ("config", "toml"),
        Kind::Binary => ("bin", "bin"),
    };
    root.join(desk)
        .join(service)
        .join(dir)
        .join(format!("{dir}-{i:06}.{ext}"))
}

/// The content of file `i` at `version` (0 = first). Later versions keep
/// most of the earlier content: a state's prices move, a log grows.
fn content(seed: u64, i: u64, version: u64) -> Vec<u8> {
    let mut base = Rng::new(seed ^ i.wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut moved =
        Rng::new(seed ^ i.wrapping_mul(0x9E37_79B9) ^ version.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let mut out = String::new();
    match kind_of(i) {
        Kind::State => {
            let positions = 10 + base.below(120);
            out.push_str("{\n  \"book\": \"");
            out.push_str(base.pick(&DESKS));
            let _ = write!(
                out,
                "\",\n  \"as_of_version\": {version},\n  \"positions\": [\n"
            );
            for p in 0..positions {
                let qty = base.below(100_000) as i64 - 50_000;
                let price = 10.0 + base.below(500_000) as f64 / 100.0;
                // A new version moves about a third of the prices.
                let price = if version > 0 && moved.below(3) == 0 {
                    price * (1.0 + (moved.below(2000) as f64 - 1000.0) / 100_000.0)
                } else {
                    price
                };
                let sep = if p + 1 == positions { "" } else { "," };
                let _ = writeln!(
                    out,
                    "    {{\"symbol\": \"{}\", \"qty\": {qty}, \"price\": {price:.4}, \"account\": \"A{:05}\"}}{sep}",
                    base.pick(&SYMBOLS),
                    base.below(100_000)
                );
            }
            out.push_str("  ]\n}\n");
        }
        Kind::Trades => {
            out.push_str("ts,symbol,side,qty,price,venue,order_id\n");
            let rows = 40 + base.below(600) + version * (5 + moved.below(40));
            let mut ts = 1_764_547_200_000u64 + base.below(86_400_000);
            let mut rows_rng = Rng::new(base.next());
            for _ in 0..rows {
                ts += 1 + rows_rng.below(5_000);
                let _ = writeln!(
                    out,
                    "{ts},{},{},{},{:.4},X{},{:016x}",
                    rows_rng.pick(&SYMBOLS),
                    rows_rng.pick(&SIDES),
                    1 + rows_rng.below(10_000),
                    10.0 + rows_rng.below(500_000) as f64 / 100.0,
                    rows_rng.below(12),
                    rows_rng.next()
                );
            }
        }
        Kind::Config => {
            let _ = writeln!(
                out,
                "# service config, generated\n[service]\nname = \"svc-{i}\"\nreplicas = {}",
                1 + base.below(8)
            );
            let _ = writeln!(
                out,
                "timeout_ms = {}",
                if version > 0 {
                    500 + moved.below(5000)
                } else {
                    1000 + base.below(4000)
                }
            );
            for section in 0..(2 + base.below(8)) {
                let _ = writeln!(out, "\n[limits.{}]\nmax_notional = {}\nmax_orders_per_s = {}\nsymbols = [\"{}\", \"{}\"]",
                    section, base.below(10_000_000), base.below(500), base.pick(&SYMBOLS), base.pick(&SYMBOLS));
            }
        }
        Kind::Binary => {
            let len = 1024 + base.below(63 * 1024) as usize;
            let mut bytes = Vec::with_capacity(len + 8);
            let mut r = if version > 0 { moved } else { base };
            while bytes.len() < len {
                bytes.extend_from_slice(&r.next().to_le_bytes());
            }
            bytes.truncate(len);
            return bytes;
        }
    }
    out.into_bytes()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut out: Option<PathBuf> = None;
    let (mut files, mut seed, mut change, mut round) = (30_000u64, 1u64, 0.0f64, 1u64);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("gen_tree: {name} needs a value");
                exit(2)
            })
        };
        let number = |name: &str, v: String| -> f64 {
            v.parse().unwrap_or_else(|_| {
                eprintln!("gen_tree: {name} {v:?} is not a number");
                exit(2)
            })
        };
        match a.as_str() {
            "--files" => files = number("--files", value("--files")) as u64,
            "--seed" => seed = number("--seed", value("--seed")) as u64,
            "--change" => change = number("--change", value("--change")),
            "--round" => round = number("--round", value("--round")) as u64,
            "-h" | "--help" => {
                eprintln!(
                    "usage: gen_tree OUT_DIR [--files 30000] [--seed N] [--change PCT [--round R]]"
                );
                exit(0)
            }
            _ if out.is_none() && !a.starts_with('-') => out = Some(PathBuf::from(a)),
            _ => {
                eprintln!("gen_tree: unexpected argument {a:?}");
                exit(2)
            }
        }
    }
    let Some(root) = out else {
        eprintln!("usage: gen_tree OUT_DIR [--files 30000] [--seed N] [--change PCT]");
        exit(2)
    };
    // Which files a --change run rewrites: every file whose hash falls
    // under the share, so they spread over the whole tree.
    let threshold = (change / 100.0 * u64::MAX as f64) as u64;
    let mut pick = Rng::new(seed ^ 0x5EED ^ round.wrapping_mul(0xA076_1D64_78BD_642F));
    let (mut written, mut bytes) = (0u64, 0u64);
    for i in 0..files {
        let changed = change > 0.0 && pick.next() < threshold;
        let path = path_of(&root, i);
        if change > 0.0 && !changed && path.exists() {
            continue;
        }
        let data = content(seed, i, if changed { round } else { 0 });
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).unwrap_or_else(|e| {
                eprintln!("gen_tree: {}: {e}", dir.display());
                exit(1)
            });
        }
        fs::write(&path, &data).unwrap_or_else(|e| {
            eprintln!("gen_tree: {}: {e}", path.display());
            exit(1)
        });
        written += 1;
        bytes += data.len() as u64;
    }
    eprintln!(
        "gen_tree: wrote {written} files, {:.1} MB, under {}",
        bytes as f64 / 1e6,
        root.display()
    );
}
