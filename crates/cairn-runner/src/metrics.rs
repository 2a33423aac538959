//! Prometheus text exposition (format 0.0.4) of the run state: what
//! `cairn metrics --textfile` writes for node_exporter's textfile collector
//! and what the daemon will serve on /metrics. Built from the persisted
//! state alone, so it costs no repository access. No sample carries a
//! timestamp (the textfile collector refuses them); times are values.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::error::{IoContext, Result};
use crate::state::{State, Status};

/// One metric family: name, help, and its samples (labels, value).
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

fn secs(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// The exposition text for every target of `config`.
pub fn render(config: &Config, state: &State) -> String {
    let mut families = vec![
        Family {
            name: "cairn_last_success_timestamp_seconds",
            help: "Unix time of the target's last successful run",
            samples: vec![],
        },
        Family {
            name: "cairn_last_run_success",
            help: "1 if the target's last run succeeded, else 0",
            samples: vec![],
        },
        Family {
            name: "cairn_last_run_timestamp_seconds",
            help: "Unix time the target's last run started",
            samples: vec![],
        },
        Family {
            name: "cairn_last_run_duration_seconds",
            help: "How long the target's last run took",
            samples: vec![],
        },
        Family {
            name: "cairn_consecutive_failures",
            help: "Failed runs of the target in a row",
            samples: vec![],
        },
        Family {
            name: "cairn_target_paused",
            help: "1 if the daemon paused the target after repeated failures",
            samples: vec![],
        },
        Family {
            name: "cairn_check_success",
            help: "1 if the target's last check found the repositories clean",
            samples: vec![],
        },
        Family {
            name: "cairn_last_check_timestamp_seconds",
            help: "Unix time of the target's last check",
            samples: vec![],
        },
        Family {
            name: "cairn_last_run_repository_success",
            help: "1 if the last run succeeded in this repository",
            samples: vec![],
        },
        Family {
            name: "cairn_bytes_read",
            help: "Bytes the last snapshot read",
            samples: vec![],
        },
        Family {
            name: "cairn_bytes_added",
            help: "Bytes the last snapshot added to the repository (stored)",
            samples: vec![],
        },
        Family {
            name: "cairn_files",
            help: "Files in the last snapshot",
            samples: vec![],
        },
        Family {
            name: "cairn_snapshots",
            help: "Snapshots of the target's history in the repository",
            samples: vec![],
        },
        Family {
            name: "cairn_repository_stored_bytes",
            help: "Bytes of all packs in the repository, as of its last run",
            samples: vec![],
        },
    ];
    let mut stored: BTreeMap<String, u64> = BTreeMap::new();
    for key in config.targets.keys() {
        let t = state.target(key);
        let l = || vec![("target", key.clone())];
        let mut put = |i: usize, v: Option<f64>, labels: Vec<(&'static str, String)>| {
            if let Some(v) = v {
                families[i].samples.push((labels, v));
            }
        };
        put(0, t.last_success.map(secs), l());
        put(
            1,
            t.last_status.map(|s| f64::from(u8::from(s == Status::Ok))),
            l(),
        );
        put(2, t.last_run.map(secs), l());
        put(3, t.last_duration_secs, l());
        put(4, Some(f64::from(t.consecutive_failures)), l());
        put(5, Some(f64::from(u8::from(t.paused))), l());
        put(6, t.last_check_ok.map(|ok| f64::from(u8::from(ok))), l());
        put(7, t.last_check.map(secs), l());
        for (repo, f) in &t.repositories {
            let rl = || vec![("target", key.clone()), ("repository", repo.clone())];
            put(8, Some(f64::from(u8::from(f.success))), rl());
            put(9, Some(f.bytes_read as f64), rl());
            put(10, Some(f.bytes_added as f64), rl());
            put(11, Some(f.files as f64), rl());
            put(12, Some(f.snapshots as f64), rl());
            if f.stored_bytes > 0 {
                stored.insert(repo.clone(), f.stored_bytes);
            }
        }
    }
    for (repo, bytes) in stored {
        families[13]
            .samples
            .push((vec![("repository", repo)], bytes as f64));
    }
    let mut out = String::new();
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} gauge", f.name);
        for (labels, value) in &f.samples {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = writeln!(out, "{}{{{}}} {value}", f.name, labels.join(","));
        }
    }
    out
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes the exposition to `path` atomically (temp + fsync + rename), so
/// the textfile collector never reads half a file.
pub fn write_textfile(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, text).at(&tmp)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .at(&tmp)?;
    std::fs::rename(&tmp, path).at(path)?;
    Ok(())
}
