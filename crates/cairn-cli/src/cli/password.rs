//! Where the passwords of encrypted repositories come from, in this order:
//! `--password-command CMD` (its standard output), `--password-file FILE`
//! (or `$CAIRN_PASSWORD_FILE`), `$CAIRN_PASSWORD`, else the terminal (a new
//! repository's password asked twice). A new password for `key add` and
//! `key passwd` comes from `--new-password-file FILE`,
//! `$CAIRN_NEW_PASSWORD_FILE`, `$CAIRN_NEW_PASSWORD`, else the terminal
//! (twice). Without any of them and without a terminal the library's
//! `PasswordRequired` error names the repository; `hint` names the ways.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use cairn::{Password, PasswordPurpose};
use zeroize::Zeroizing;

/// The ways of giving a password, for errors and `--help`.
pub const WAYS: &str = "set CAIRN_PASSWORD or CAIRN_PASSWORD_FILE=FILE, or pass \
                        --password-file FILE or --password-command CMD (on a terminal it is asked for)";

/// The password options of one run of the program.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub command: Option<String>,
    pub file: Option<PathBuf>,
    /// `--new-password-file` of `key add` / `key passwd`.
    pub new_file: Option<PathBuf>,
}

/// Makes `sources` the library's password source for this process.
pub fn install(sources: Sources) {
    cairn::set_password_source(move |root, purpose| sources.password(root, purpose));
}

impl Sources {
    fn password(&self, root: &Path, purpose: PasswordPurpose) -> cairn::Result<Password> {
        let given = match purpose {
            PasswordPurpose::NewKey => self.new_password()?,
            PasswordPurpose::Unlock | PasswordPurpose::Create => self.given()?,
        };
        let password = match given {
            Some(p) => p,
            None => {
                let twice = purpose != PasswordPurpose::Unlock;
                let what = match purpose {
                    PasswordPurpose::NewKey => "new password",
                    _ => "password",
                };
                prompt(root, what, twice)?.ok_or_else(|| cairn::Error::PasswordRequired {
                    path: root.to_path_buf(),
                })?
            }
        };
        if password.is_empty() {
            return Err(cairn::Error::InvalidArgument(format!(
                "the password for {} is empty",
                root.display()
            )));
        }
        Ok(password)
    }

    fn given(&self) -> cairn::Result<Option<Password>> {
        if let Some(cmd) = &self.command {
            return run_command(cmd).map(Some);
        }
        if let Some(file) = &self.file {
            return cairn::password_from_file(file).map(Some);
        }
        Ok(std::env::var("CAIRN_PASSWORD").ok().map(Zeroizing::new))
    }

    fn new_password(&self) -> cairn::Result<Option<Password>> {
        let env_file = std::env::var_os("CAIRN_NEW_PASSWORD_FILE").map(PathBuf::from);
        if let Some(file) = self.new_file.as_ref().or(env_file.as_ref()) {
            return cairn::password_from_file(file).map(Some);
        }
        Ok(std::env::var("CAIRN_NEW_PASSWORD").ok().map(Zeroizing::new))
    }
}

/// The first line `cmd` (run by `sh -c`) prints; it must exit 0.
fn run_command(cmd: &str) -> cairn::Result<Password> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| cairn::Error::InvalidArgument(format!("--password-command `{cmd}`: {e}")))?;
    let stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        return Err(cairn::Error::InvalidArgument(format!(
            "--password-command `{cmd}` failed ({})",
            out.status
        )));
    }
    cairn::password_from_first_line(&stdout).ok_or_else(|| {
        cairn::Error::InvalidArgument(format!("--password-command `{cmd}` printed non-UTF-8"))
    })
}

/// Asks on the controlling terminal with echo off; `None` when standard
/// input is not a terminal (a script must give the password another way).
fn prompt(root: &Path, what: &str, twice: bool) -> cairn::Result<Option<Password>> {
    // SAFETY: isatty only inspects the descriptor.
    if unsafe { libc::isatty(0) } != 1 {
        return Ok(None);
    }
    let io = |source| cairn::Error::Io {
        path: "/dev/tty".into(),
        source,
    };
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(io)?;
    let first = ask(&tty, &format!("{what} for {}: ", root.display())).map_err(io)?;
    if twice {
        let again = ask(&tty, &format!("repeat the {what}: ")).map_err(io)?;
        if *again != *first {
            return Err(cairn::Error::InvalidArgument(
                "the passwords do not match".into(),
            ));
        }
    }
    Ok(Some(first))
}

/// One line from the terminal with echo turned off (and back on after).
fn ask(tty: &std::fs::File, question: &str) -> std::io::Result<Password> {
    use std::os::fd::AsRawFd;
    let fd = tty.as_raw_fd();
    let mut writer = tty;
    writer.write_all(question.as_bytes())?;
    writer.flush()?;
    // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    let have_termios = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
    if have_termios {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: a termios derived from the one just read.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let mut line = Zeroizing::new(String::new());
    let read = std::io::BufReader::new(tty).read_line(&mut line);
    if have_termios {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    }
    read?;
    let trimmed = line.trim_end_matches(['\n', '\r']).to_string();
    Ok(Zeroizing::new(trimmed))
}
