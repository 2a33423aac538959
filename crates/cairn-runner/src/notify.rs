//! Telling people and monitors how a run went: a webhook receives the JSON
//! report (POST); a healthchecks.io-style `ping_url` gets `/start` when a
//! run begins, the URL itself on success, and `/fail` with the log as the
//! body on failure. A notification that cannot be delivered is a warning
//! (returned, printed by the caller); it does not change the run's status.

use std::time::Duration;

use crate::config::Notify;
use crate::run::TargetReport;

/// How long one delivery may take before it is given up.
const TIMEOUT: Duration = Duration::from_secs(10);

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Pings `ping_url/start`, if configured; returns a warning if it failed.
pub fn started(notify: &Notify) -> Option<String> {
    let url = notify.ping_url.as_ref()?;
    let url = format!("{}/start", url.trim_end_matches('/'));
    agent()
        .post(&url)
        .send("")
        .err()
        .map(|e| format!("ping {url}: {e}"))
}

/// Delivers the end of a run: the webhook gets the report, the ping URL
/// success or `/fail` with `log`. Returns a warning per failed delivery.
pub fn finished(notify: &Notify, report: &TargetReport, log: &str) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(url) = &notify.webhook {
        let body = serde_json::to_string(report).expect("a report serializes");
        if let Err(e) = agent()
            .post(url)
            .header("Content-Type", "application/json")
            .send(body)
        {
            warnings.push(format!("webhook {url}: {e}"));
        }
    }
    if let Some(base) = &notify.ping_url {
        let base = base.trim_end_matches('/');
        let url = match report.status {
            crate::state::Status::Ok => base.to_owned(),
            crate::state::Status::Failed => format!("{base}/fail"),
        };
        if let Err(e) = agent().post(&url).send(log) {
            warnings.push(format!("ping {url}: {e}"));
        }
    }
    if let Some(email) = &notify.email {
        if let Err(e) = crate::mail::send(email, report, log) {
            warnings.push(format!("email to {} via {}: {e}", email.to, email.smtp));
        }
    }
    warnings
}

/// Tells the webhook (a JSON event) and the ping URL (`/fail` with
/// `message`) that the daemon paused target `key`.
pub fn paused(notify: &Notify, key: &str, message: &str) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(url) = &notify.webhook {
        let body = serde_json::json!({ "event": "paused", "target": key, "message": message });
        if let Err(e) = agent()
            .post(url)
            .header("Content-Type", "application/json")
            .send(body.to_string())
        {
            warnings.push(format!("webhook {url}: {e}"));
        }
    }
    if let Some(base) = &notify.ping_url {
        let url = format!("{}/fail", base.trim_end_matches('/'));
        if let Err(e) = agent().post(&url).send(message) {
            warnings.push(format!("ping {url}: {e}"));
        }
    }
    warnings
}
