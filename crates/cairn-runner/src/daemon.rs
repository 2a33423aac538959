//! `cairn daemon`: runs targets on their schedules.
//!
//! The loop takes the targets due earliest (never run: due at once; missed
//! while the daemon was down: run once, or with `catch_up = false` moved to
//! its next slot) and runs up to `[daemon] concurrency` of them at a time
//! (default 1: one after the other), each in its own thread and each target
//! at most once at a time. It saves the state after every run (so a
//! restart continues where it was), and pauses a target after
//! `max_failures` failures in a row, with a notification; a paused target
//! stays paused across restarts until a `cairn run` of it succeeds. Between
//! runs it sleeps in short steps and asks `control` whether to stop or
//! reload the config (SIGHUP). On stop (the CLI maps SIGTERM/SIGINT to it)
//! no new run starts; runs in flight get `stop_timeout` to finish, after
//! which they are cancelled through [`Progress::cancelled`]: a cancelled
//! snapshot leaves nothing visible, and the target's state stays as it was
//! before that run (it is due again at the next start). A second stop
//! cancels at once. When `[daemon]
//! listen` is set, a thread serves `GET /metrics` (the text of
//! [`crate::metrics`]) and `GET /health` (JSON, 200 when all OK, else 503)
//! on that loopback address.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cairn::Progress;
use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::run::{run_target_with, TargetReport};
use crate::state::{State, TargetState};

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

/// The cancellation of every run in flight, once the stop grace is over.
#[derive(Clone, Default)]
struct Cancel(Arc<AtomicBool>);

impl Progress for Cancel {
    fn cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A run in flight: its thread returns the report and the target's new state.
type Running = BTreeMap<String, JoinHandle<(TargetReport, TargetState)>>;

/// Runs until `control` says stop or `max_runs` runs are done; returns the
/// number of runs finished (cancelled ones not counted). `load` reads the
/// config again on reload (a config that no longer validates is reported
/// and the old one kept).
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
    let cancel = Cancel::default();
    let mut running = Running::new();
    let (mut started, mut runs) = (0u64, 0u64);
    let mut stop_at: Option<Instant> = None;
    loop {
        runs += reap(&shared, &mut running, false, log)?;
        match control() {
            Control::Stop if stop_at.is_none() => {
                let grace = shared
                    .lock()
                    .expect("daemon state lock")
                    .0
                    .daemon
                    .stop_timeout;
                if !running.is_empty() {
                    log(&format!(
                        "stopping: waiting up to {} for {} run(s) in flight",
                        crate::schedule::format_span(grace),
                        running.len()
                    ));
                }
                stop_at = Some(Instant::now() + grace);
            }
            // A second stop signal does not wait for the grace.
            Control::Stop => stop_at = Some(Instant::now()),
            Control::Reload => reload(&shared, load, log),
            Control::Continue => {}
        }
        let done = opts.max_runs.is_some_and(|m| started >= m);
        if stop_at.is_some() || done {
            if running.is_empty() {
                return Ok(runs);
            }
            if stop_at.is_some_and(|at| Instant::now() >= at) && !cancel.cancelled() {
                log("stop timeout passed: cancelling the runs in flight");
                cancel.0.store(true, Ordering::SeqCst);
                runs += reap(&shared, &mut running, true, log)?;
                return Ok(runs);
            }
            std::thread::sleep(TICK);
            continue;
        }
        let limit = shared
            .lock()
            .expect("daemon state lock")
            .0
            .daemon
            .concurrency;
        let mut spawned = false;
        while running.len() < limit && opts.max_runs.is_none_or(|m| started < m) {
            let Some(key) = next_due(&shared, &running, Utc::now()) else {
                break;
            };
            running.insert(key.clone(), spawn(&shared, &key, &cancel));
            started += 1;
            spawned = true;
        }
        if !spawned {
            std::thread::sleep(TICK);
        }
    }
}

/// Starts `key`'s run in a thread, on copies of the config and state (so
/// /metrics, /health and the other runs go on meanwhile).
fn spawn(shared: &Shared, key: &str, cancel: &Cancel) -> JoinHandle<(TargetReport, TargetState)> {
    let (config, mut state) = shared.lock().expect("daemon state lock").clone();
    let (key, cancel) = (key.to_owned(), cancel.clone());
    std::thread::spawn(move || {
        let target = &config.targets[&key];
        let report = run_target_with(&config, target, &mut state, Utc::now(), &cancel);
        (report, state.target(&key))
    })
}

/// Takes the finished runs (all of them with `wait`) into the shared state
/// and saves it; returns how many finished without being cancelled.
fn reap(shared: &Shared, running: &mut Running, wait: bool, log: &dyn Fn(&str)) -> Result<u64> {
    let keys: Vec<String> = running
        .iter()
        .filter(|(_, h)| wait || h.is_finished())
        .map(|(k, _)| k.clone())
        .collect();
    let mut finished = 0;
    for key in keys {
        let handle = running.remove(&key).expect("listed above");
        let Ok((report, target_state)) = handle.join() else {
            log(&format!("{key}: the run panicked; its state is unchanged"));
            continue;
        };
        if report.cancelled {
            log(&format!(
                "{key}: cancelled (nothing of this run is visible; it runs again at the next start)"
            ));
            continue;
        }
        finished += 1;
        record(shared, &key, report, target_state, log)?;
    }
    Ok(finished)
}

/// Logs one finished run, pauses its target after too many failures, and
/// saves its state.
fn record(
    shared: &Shared,
    key: &str,
    report: TargetReport,
    mut t: TargetState,
    log: &dyn Fn(&str),
) -> Result<()> {
    log(&report.summary());
    for w in &report.warnings {
        log(&format!("warning: {key}: {w}"));
    }
    let mut guard = shared.lock().expect("daemon state lock");
    let (config, state) = &mut *guard;
    let max = config.daemon.max_failures;
    if max > 0 && t.consecutive_failures >= max {
        t.paused = true;
        let failures = t.consecutive_failures;
        let msg = format!(
            "{key}: paused after {failures} failures in a row (`cairn run {key}` resumes it)"
        );
        log(&msg);
        if let Some(target) = config.targets.get(key) {
            for w in crate::notify::paused(&target.notify, key, &msg) {
                log(&format!("warning: {key}: {w}"));
            }
        }
    }
    state.targets.insert(key.to_owned(), t);
    state.save()
}

/// The key of the due target that was due first, if any.
fn next_due(shared: &Shared, running: &Running, now: DateTime<Utc>) -> Option<String> {
    let guard = shared.lock().expect("daemon state lock");
    let (config, state) = &*guard;
    config
        .targets
        .values()
        .filter(|t| !running.contains_key(&t.key))
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
