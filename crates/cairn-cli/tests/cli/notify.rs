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
