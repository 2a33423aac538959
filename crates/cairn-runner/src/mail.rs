//! Email reports over SMTP (lettre's SMTP client, TLS through rustls).
//!
//! `tls = "starttls"` upgrades the plain connection and refuses a server
//! that does not offer STARTTLS; `"tls"` speaks TLS from the first byte
//! (SMTPS, port 465); `"none"` is plain text, for a relay on this machine.
//! Without `tls`: `tls` on port 465, `none` for a loopback host, else
//! `starttls`. The server's certificate must chain to the system's roots
//! or to a certificate in `ca_file` (PEM), and name the host of `smtp`.
//! With `username`, the client authenticates (AUTH PLAIN or LOGIN, as the
//! server offers) with the first line of `password_file` as the password;
//! a password is never sent in plain text to a host that is not loopback.

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use crate::config::{Email, SmtpTls};
use crate::run::TargetReport;
use crate::state::Status;

/// Sends the report of one run to `email.to`.
pub fn send(email: &Email, report: &TargetReport, log: &str) -> Result<(), String> {
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
    transport(email)?
        .send(&message)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The SMTP client `email` describes.
fn transport(email: &Email) -> Result<SmtpTransport, String> {
    let (host, port) = email.host_port()?;
    let tls = match email.security() {
        SmtpTls::None => Tls::None,
        SmtpTls::Starttls => Tls::Required(tls_parameters(email, host)?),
        SmtpTls::Tls => Tls::Wrapper(tls_parameters(email, host)?),
    };
    let mut builder = SmtpTransport::builder_dangerous(host)
        .port(port)
        .tls(tls)
        .timeout(Some(std::time::Duration::from_secs(10)));
    if let (Some(user), Some(file)) = (&email.username, &email.password_file) {
        let password = cairn::password_from_file(file).map_err(|e| e.to_string())?;
        builder = builder.credentials(Credentials::new(user.clone(), password.to_string()));
    }
    Ok(builder.build())
}

fn tls_parameters(email: &Email, host: &str) -> Result<TlsParameters, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut params = TlsParameters::builder(host.to_owned());
    if let Some(file) = &email.ca_file {
        let pem = std::fs::read(file).map_err(|e| format!("ca_file {}: {e}", file.display()))?;
        let cert =
            Certificate::from_pem(&pem).map_err(|e| format!("ca_file {}: {e}", file.display()))?;
        params = params.add_root_certificate(cert);
    }
    params.build_rustls().map_err(|e| e.to_string())
}
