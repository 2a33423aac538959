//! `cairn daemon`: runs targets on their schedules, one at a time.
//!
//! The loop takes the target due earliest (never run: due at once; missed
//! while the daemon was down: run once, or with `catch_up = false` moved to
//! its next slot), runs it with [`run_target`], saves the state after every
//! run (so a restart continues where it was), and pauses a target after
//! `max_failures` failures in a row, with a notification; a paused target
//! stays paused across restarts until a `cairn run` of it succeeds. Between
//! runs it sleeps in short steps and asks `control` whether to stop (the
//! CLI maps SIGTERM/SIGINT to that: a run in flight finishes first, so
//! nothing is left half-visible) or reload the config (SIGHUP). When
//! `[daemon] listen` is set, a thread serves `GET /metrics` (the text of
//! [`crate::metrics`]) and `GET /health` (JSON, 200 when all OK, else 503)
//! on that loopback address.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::run::run_target;
use crate::state::State;

/// What the daemon should do next, as the caller's signals say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
    Reload,
}

/// How long the daemon sleeps between looks at the clock and `control`.
const TICK: Duration = Duration::from_millis(100);

/// Options of one daemon process.
pub struct DaemonOptions {
    /// Stop after this many target runs (a test knob; `None`: run until told).
    pub max_runs: Option<u64>,
}

/// What config and state the HTTP thread reads.
type Shared = Arc<Mutex<(Config, State)>>;

/// Runs until `control` says stop or `max_runs` runs are done; returns the
/// number of runs. `load` reads the config again on reload (a config that
/// no longer validates is reported and the old one kept).
pub fn run(
    load: &dyn Fn() -> Result<Config>,
    state: State,
    opts: &DaemonOptions,
    control: &dyn Fn() -> Control,
    log: &dyn Fn(&str),
) -> Result<u64> {
    let config = load()?;
    let shared: Shared = Arc::new(Mutex::new((config, state)));
    let _server = serve(&shared, log)?;
    skip_missed(&shared, Utc::now());
    let mut runs = 0;
    loop {
        if opts.max_runs.is_some_and(|m| runs >= m) {
            return Ok(runs);
        }
        match control() {
            Control::Stop => return Ok(runs),
            Control::Reload => reload(&shared, load, log),
            Control::Continue => {}
        }
        let now = Utc::now();
        let Some(key) = next_due(&shared, now) else {
            std::thread::sleep(TICK);
            continue;
        };
        run_one(&shared, &key, log)?;
        runs += 1;
    }
}

/// The key of the due target that was due first, if any.
fn next_due(shared: &Shared, now: DateTime<Utc>) -> Option<String> {
    let guard = shared.lock().expect("daemon state lock");
    let (config, state) = &*guard;
    config
        .targets
        .values()
        .filter_map(|t| {
            let s = state.target(&t.key);
            if s.paused {
                return None;
            }
            let due = s.next_run.or_else(|| {
                t.schedule
                    .as_ref()
                    .map(|sch| sch.next_after(s.last_run, now))
            })?;
            t.schedule.as_ref()?;
            (due <= now).then(|| (due, t.key.clone()))
        })
        .min()
        .map(|(_, key)| key)
}

/// With `catch_up = false`, a run missed while the daemon was down waits
/// for the schedule's next slot instead of running at once.
fn skip_missed(shared: &Shared, now: DateTime<Utc>) {
    let mut guard = shared.lock().expect("daemon state lock");
    let (config, state) = &mut *guard;
    if config.daemon.catch_up {
        return;
    }
    for t in config.targets.values() {
        let (Some(schedule), Some(s)) = (&t.schedule, state.targets.get_mut(&t.key)) else {
            continue;
        };
        if s.last_run.is_some() && schedule.next_after(s.last_run, now) < now {
            s.next_run = Some(schedule.next_from_now(now));
        }
    }
}

fn run_one(shared: &Shared, key: &str, log: &dyn Fn(&str)) -> Result<()> {
    // Run on copies so /metrics and /health answer during a long run.
    let (config, mut state) = shared.lock().expect("daemon state lock").clone();
    let target = &config.targets[key];
    let report = run_target(&config, target, &mut state, Utc::now());
    log(&report.summary());
    for w in &report.warnings {
        log(&format!("warning: {key}: {w}"));
    }
    let failures = state.target(key).consecutive_failures;
    let max = config.daemon.max_failures;
    if max > 0 && failures >= max {
        if let Some(t) = state.targets.get_mut(key) {
            t.paused = true;
        }
        let msg = format!(
            "{key}: paused after {failures} failures in a row (`cairn run {key}` resumes it)"
        );
        log(&msg);
        for w in crate::notify::paused(&target.notify, key, &msg) {
            log(&format!("warning: {key}: {w}"));
        }
    }
    state.save()?;
    shared.lock().expect("daemon state lock").1 = state;
    Ok(())
}

fn reload(shared: &Shared, load: &dyn Fn() -> Result<Config>, log: &dyn Fn(&str)) {
    match load() {
        Ok(config) => {
            let n = config.targets.len();
            shared.lock().expect("daemon state lock").0 = config;
            log(&format!("config reloaded ({n} targets)"));
        }
        Err(e) => log(&format!("config not reloaded, keeping the old one: {e}")),
    }
}

/// Serves /metrics and /health on `[daemon] listen`, if set; the server
/// stops when the returned guard is dropped.
fn serve(shared: &Shared, log: &dyn Fn(&str)) -> Result<Option<ServerGuard>> {
    let Some(addr) = shared
        .lock()
        .expect("daemon state lock")
        .0
        .daemon
        .listen
        .clone()
    else {
        return Ok(None);
    };
    let server = tiny_http::Server::http(&addr).map_err(|e| Error::Io {
        path: addr.clone().into(),
        source: std::io::Error::other(format!("cannot listen on {addr}: {e}")),
    })?;
    let server = Arc::new(server);
    log(&format!("serving /metrics and /health on http://{addr}"));
    let (srv, shared) = (Arc::clone(&server), Arc::clone(shared));
    let thread = std::thread::spawn(move || {
        for request in srv.incoming_requests() {
            let (status, content_type, body) = answer(&shared, request.url());
            let header =
                tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes())
                    .expect("a valid header");
            let response = tiny_http::Response::from_string(body)
                .with_status_code(status)
                .with_header(header);
            let _ = request.respond(response);
        }
    });
    Ok(Some(ServerGuard {
        server,
        thread: Some(thread),
    }))
}

fn answer(shared: &Shared, url: &str) -> (u16, &'static str, String) {
    let (config, state) = shared.lock().expect("daemon state lock").clone();
    match url.split('?').next().unwrap_or("") {
        "/metrics" => (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            crate::metrics::render(&config, &state),
        ),
        "/health" => {
            let all = crate::health::health(&config, &state, Utc::now());
            let ok = all.iter().all(|h| h.health == crate::health::Health::Ok);
            let body = serde_json::to_string_pretty(&all).expect("health serializes");
            (if ok { 200 } else { 503 }, "application/json", body)
        }
        _ => (
            404,
            "text/plain",
            "not found: try /metrics or /health\n".into(),
        ),
    }
}

/// Stops the HTTP thread when dropped.
struct ServerGuard {
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
