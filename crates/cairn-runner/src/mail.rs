//! Email reports over SMTP (lettre's SMTP client, plain connection to the
//! configured `host:port`: a local relay such as Postfix or a loopback
//! sink; TLS and authentication are not configured yet).

use lettre::message::Mailbox;
use lettre::{Message, SmtpTransport, Transport};

use crate::config::Email;
use crate::run::TargetReport;
use crate::state::Status;

/// Sends the report of one run to `email.to`.
pub fn send(email: &Email, report: &TargetReport, log: &str) -> Result<(), String> {
    let (host, port) = match email.smtp.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("bad port in {:?}", email.smtp))?,
        ),
        None => (email.smtp.as_str(), 25),
    };
    let from = email
        .from
        .clone()
        .unwrap_or_else(|| "cairn@localhost".into());
    let mailbox = |a: &str| {
        a.parse::<Mailbox>()
            .map_err(|e| format!("address {a:?}: {e}"))
    };
    let status = match report.status {
        Status::Ok => "ok",
        Status::Failed => "FAILED",
    };
    let message = Message::builder()
        .from(mailbox(&from)?)
        .to(mailbox(&email.to)?)
        .subject(format!("cairn: {} {status}", report.target))
        .body(log.to_owned())
        .map_err(|e| e.to_string())?;
    let transport = SmtpTransport::builder_dangerous(host)
        .port(port)
        .timeout(Some(std::time::Duration::from_secs(10)))
        .build();
    transport
        .send(&message)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
