//! Notifications of `cairn run`, delivered to real servers on 127.0.0.1
//! started by the tests: an HTTP receiver (std TcpListener) for webhooks
//! and healthchecks-style pings, and aiosmtpd (PyPI) as the SMTP sink.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// One HTTP request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: String,
}

/// A tiny HTTP/1.1 receiver: answers 200 to everything and sends each
/// request down a channel.
pub struct HttpSink {
    pub url: String,
    pub requests: Receiver<Request>,
}

impl HttpSink {
    pub fn start() -> HttpSink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, requests) = channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if let Some(req) = serve(stream) {
                    if tx.send(req).is_err() {
                        return;
                    }
                }
            }
        });
        HttpSink { url, requests }
    }

    /// Every request received within `wait` after the last one.
    pub fn drain(&self, wait: Duration) -> Vec<Request> {
        let mut out = Vec::new();
        while let Ok(r) = self.requests.recv_timeout(wait) {
            out.push(r);
        }
        out
    }
}

fn serve(stream: TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut len = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let mut stream = stream;
    let _ =
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK");
    Some(Request {
        method,
        path,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A config with one repository (`env.repo`), target `good` on `good/`,
/// target `gone` on a path that does not exist, and `notify` as given.
fn config(env: &Env, notify: &str) -> PathBuf {
    write(&env.path("good/a.txt"), b"alpha");
    let text = format!(
        "[repository.main]\npath = \"{}\"\n\n[target.good]\nkind = \"config\"\npaths = [\"good\"]\n\n\
         [target.gone]\nkind = \"config\"\npaths = [\"missing\"]\n\n[notify]\n{notify}\n",
        env.repo.display()
    );
    let file = env.path("cairn.toml");
    write(&file, text.as_bytes());
    file
}

fn run(env: &Env, file: &PathBuf, code: i32) -> String {
    let mut cmd = cairn_in(env.dir.path());
    cmd.arg("run")
        .arg("--config")
        .arg(file)
        .arg("--state-dir")
        .arg(env.path("state"));
    run_code(cmd, code)
}

#[test]
fn webhook_gets_each_report_and_pings_say_start_success_and_fail() {
    let env = Env::new();
    let sink = HttpSink::start();
    let url = &sink.url;
    let file = config(
        &env,
        &format!("webhook = \"{url}/hook\"\nping_url = \"{url}/ping/abc\""),
    );
    let err = run(&env, &file, 1);
    assert!(!err.contains("warning"), "every delivery worked: {err}");
    let reqs = sink.drain(Duration::from_millis(500));
    let seen: Vec<(String, String)> = reqs
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    // Targets run in name order: gone, then good.
    assert_eq!(
        seen,
        [
            ("POST".into(), "/ping/abc/start".into()),
            ("POST".into(), "/hook".into()),
            ("POST".into(), "/ping/abc/fail".into()),
            ("POST".into(), "/ping/abc/start".into()),
            ("POST".into(), "/hook".into()),
            ("POST".into(), "/ping/abc".into()),
        ]
    );
    let failed: Value = serde_json::from_str(&reqs[1].body).unwrap();
    assert_eq!(failed["target"], "gone");
    assert_eq!(failed["status"], "failed");
    assert!(
        reqs[2].body.contains("gone: FAILED") && reqs[2].body.contains("missing"),
        "{}",
        reqs[2].body
    );
    let ok: Value = serde_json::from_str(&reqs[4].body).unwrap();
    assert_eq!(ok["status"], "ok");
    assert_eq!(
        ok["repositories"][0]["snapshot"].as_str().unwrap().len(),
        64
    );
}

#[test]
fn an_unreachable_webhook_is_a_warning_not_a_failure() {
    let env = Env::new();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = config(&env, &format!("webhook = \"http://127.0.0.1:{port}/hook\""));
    let mut cmd = cairn_in(env.dir.path());
    cmd.args(["run", "good", "--config"])
        .arg(&file)
        .arg("--state-dir")
        .arg(env.path("state"));
    let out = run_ok(cmd);
    let err = stderr(&out);
    assert!(
        err.contains("warning: good: webhook http://127.0.0.1:"),
        "{err}"
    );
}

/// A Python with aiosmtpd: `.ci/venv` (made by `.ci/run`), else python3.
/// `None` (and a visible skip) when there is none, except under CI.
pub fn python_with(module: &str) -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.ci/venv/bin/python");
    for py in [venv, PathBuf::from("python3")] {
        let ok = Command::new(&py)
            .args(["-c", &format!("import {module}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(py);
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI: the Python module {module} must be installed (.ci/run puts it in .ci/venv)"
    );
    eprintln!("SKIPPED: no Python with {module} (run .ci/run or pip install {module})");
    None
}

struct Smtpd(Child);

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn email_reaches_a_real_smtp_server() {
    let Some(py) = python_with("aiosmtpd") else {
        return;
    };
    let env = Env::new();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = std::fs::File::create(env.path("smtpd.out")).unwrap();
    let child = Command::new(py)
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _smtpd = Smtpd(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "aiosmtpd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let file = config(
        &env,
        &format!("email = {{ to = \"ops@example.com\", smtp = \"127.0.0.1:{port}\", from = \"cairn@example.com\" }}"),
    );
    let err = run(&env, &file, 1);
    assert!(!err.contains("warning"), "{err}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = std::fs::read_to_string(env.path("smtpd.out")).unwrap();
        if got.contains("cairn: good ok") && got.contains("cairn: gone FAILED") {
            assert!(got.contains("ops@example.com"), "{got}");
            assert!(
                got.contains("missing"),
                "the failure's log is the body: {got}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "mail not received:\n{got}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// aiosmtpd with TLS (STARTTLS required, or SMTPS) and AUTH required for
/// user `cairn` with password `s3cret pw`; each message it accepts is
/// appended to OUT after a line saying whether the session was
/// authenticated and encrypted.
const TLS_SMTPD: &str = r#"
import ssl, sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
mode, port, cert, key, out = sys.argv[1:6]
class Sink:
    async def handle_DATA(self, server, session, envelope):
        with open(out, "a") as f:
            tls = server.transport.get_extra_info("sslcontext") is not None
            f.write(f"SESSION auth={bool(session.authenticated)} tls={tls}\n")
            f.write(envelope.content.decode("utf8", "replace") + "\n")
        return "250 OK"
def auth(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == b"cairn" and data.password == b"s3cret pw"
    return AuthResult(success=ok, handled=False)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
kw = dict(hostname="127.0.0.1", port=int(port), authenticator=auth, auth_required=True)
if mode == "starttls":
    c = Controller(Sink(), tls_context=ctx, require_starttls=True, **kw)
else:
    # aiosmtpd offers AUTH only after its own STARTTLS unless told that
    # this connection, wrapped in TLS from the first byte, is safe.
    c = Controller(Sink(), server_hostname="127.0.0.1", ssl_context=ctx,
                   auth_require_tls=False, **kw)
c.start()
while True:
    time.sleep(1)
"#;

/// A self-signed certificate for 127.0.0.1 (cert.pem, key.pem in `env`),
/// made by openssl; `false` (and a visible skip) without openssl.
fn self_signed(env: &Env) -> bool {
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth", "-keyout"])
        .arg(env.path("key.pem"))
        .arg("-out")
        .arg(env.path("cert.pem"))
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: openssl must be installed"
        );
        eprintln!("SKIPPED: no openssl to make a test certificate");
    }
    made
}

fn start_tls_smtpd(py: &PathBuf, env: &Env, mode: &str, out: &str) -> (Smtpd, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    write(&env.path("tls_smtpd.py"), TLS_SMTPD.as_bytes());
    let child = Command::new(py)
        .arg(env.path("tls_smtpd.py"))
        .args([mode, &port.to_string()])
        .args([env.path("cert.pem"), env.path("key.pem"), env.path(out)])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(env.path(&format!("{out}.err"))).unwrap())
        .spawn()
        .unwrap();
    let smtpd = Smtpd(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the TLS aiosmtpd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (smtpd, port)
}

/// Waits for both reports in `out`; returns its text.
fn received(env: &Env, out: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = std::fs::read_to_string(env.path(out)).unwrap_or_default();
        if got.contains("cairn: good ok") && got.contains("cairn: gone FAILED") {
            return got;
        }
        assert!(Instant::now() < deadline, "mail not received:\n{got}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// STARTTLS and SMTPS with AUTH against aiosmtpd holding a self-signed
/// certificate the config trusts through `ca_file`: both deliver, over TLS,
/// authenticated; a wrong password and an untrusted certificate are
/// warnings that name the server, and nothing is delivered.
#[test]
fn email_over_starttls_and_smtps_with_auth() {
    let Some(py) = python_with("aiosmtpd") else {
        return;
    };
    let env = Env::new();
    if !self_signed(&env) {
        return;
    }
    write(&env.path("smtp-pw"), b"s3cret pw\n");
    write(&env.path("wrong-pw"), b"guess\n");
    let email = |port: u16, tls: &str, pw: &str, ca: bool| {
        let ca = if ca {
            format!(
                ", ca_file = {:?}",
                env.path("cert.pem").display().to_string()
            )
        } else {
            String::new()
        };
        format!(
            "email = {{ to = \"ops@example.com\", smtp = \"127.0.0.1:{port}\", tls = \"{tls}\", \
             username = \"cairn\", password_file = {:?}{ca} }}",
            env.path(pw).display().to_string()
        )
    };
    for mode in ["starttls", "tls"] {
        let out = format!("{mode}.out");
        let (_smtpd, port) = start_tls_smtpd(&py, &env, mode, &out);
        let file = config(&env, &email(port, mode, "smtp-pw", true));
        let err = run(&env, &file, 1);
        assert!(!err.contains("warning"), "{mode}: {err}");
        let got = received(&env, &out);
        assert!(got.contains("SESSION auth=True tls=True"), "{mode}: {got}");

        for (pw, ca, want) in [
            ("wrong-pw", true, "email to ops@example.com via 127.0.0.1"),
            ("smtp-pw", false, "certificate"),
        ] {
            let before = std::fs::read_to_string(env.path(&out)).unwrap();
            let file = config(&env, &email(port, mode, pw, ca));
            let err = run(&env, &file, 1);
            assert!(
                err.contains("warning") && err.contains(want),
                "{mode} {pw} ca={ca}: {err}"
            );
            std::thread::sleep(Duration::from_millis(300));
            assert_eq!(
                std::fs::read_to_string(env.path(&out)).unwrap(),
                before,
                "nothing delivered"
            );
        }
    }
    // A password is never sent in plain text to a remote host.
    let file = config(
        &env,
        &email(25, "none", "smtp-pw", false).replace("127.0.0.1", "mail.example.com"),
    );
    let mut cmd = cairn_in(env.dir.path());
    cmd.args(["config", "check", "--config"]).arg(&file);
    let err = run_code(cmd, 1);
    assert!(
        err.contains("notify.email: refusing to send a password in plain text"),
        "{err}"
    );
}
