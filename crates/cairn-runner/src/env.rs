//! Environment variables over the config file, for a repository's location
//! and password, as restic and borg users expect.
//!
//! For the repository `[repository.NAME]` (`NAME` upper-cased, every
//! character other than a letter or digit as `_`: `off-site` is
//! `OFF_SITE`), the first of these that is set wins:
//!
//! | what | order |
//! |---|---|
//! | location | `CAIRN_REPO_NAME`; `CAIRN_REPO` (only when the config has one repository); the file's `path`/`url` |
//! | password | `CAIRN_PASSWORD_FILE_NAME`; `CAIRN_PASSWORD_NAME`; with one repository: `CAIRN_PASSWORD_FILE`, `CAIRN_PASSWORD`; the file's `password_file`; with several: `CAIRN_PASSWORD_FILE`, `CAIRN_PASSWORD`; the program's password source (the CLI's `--password-command`, `--password-file`, terminal) |
//!
//! With several repositories, `CAIRN_REPO` cannot say which one it means:
//! a run of a target then fails naming the variables to use instead; the
//! global password variables only fill in for repositories without a
//! `password_file`. An empty variable counts as unset.

use std::path::PathBuf;

use crate::config::{Location, RepositorySpec};

/// Where a repository's password comes from, after the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordFrom {
    /// The first line of this file (`*_PASSWORD_FILE*`, `password_file`).
    File(PathBuf),
    /// This text (`CAIRN_PASSWORD*`).
    Text(String),
    /// Nothing here: the program's password source decides.
    Program,
}

/// A repository as the environment makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub location: Location,
    pub password: PasswordFrom,
}

/// `NAME` of the per-repository variables for repository `name`.
pub fn var_suffix(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// `spec` with the overrides of `var` (a lookup of the environment; tests
/// pass their own).
pub fn effective(
    spec: &RepositorySpec,
    var: &dyn Fn(&str) -> Option<String>,
) -> cairn::Result<Effective> {
    let var = |name: &str| var(name).filter(|v| !v.is_empty());
    let suffix = var_suffix(&spec.name);
    let location = match (var(&format!("CAIRN_REPO_{suffix}")), var("CAIRN_REPO")) {
        (Some(own), _) => parse_location(own),
        (None, Some(global)) if spec.sole => parse_location(global),
        (None, Some(_)) => {
            return Err(cairn::Error::InvalidArgument(format!(
                "CAIRN_REPO is set, but the config has several repositories: set \
                 CAIRN_REPO_{suffix} to move repository {:?}, or unset CAIRN_REPO",
                spec.name
            )))
        }
        (None, None) => spec.location.clone(),
    };
    let global = || {
        var("CAIRN_PASSWORD_FILE")
            .map(|f| PasswordFrom::File(f.into()))
            .or_else(|| var("CAIRN_PASSWORD").map(PasswordFrom::Text))
    };
    let file = || spec.password_file.clone().map(PasswordFrom::File);
    let password = var(&format!("CAIRN_PASSWORD_FILE_{suffix}"))
        .map(|f| PasswordFrom::File(f.into()))
        .or_else(|| var(&format!("CAIRN_PASSWORD_{suffix}")).map(PasswordFrom::Text))
        .or_else(|| {
            if spec.sole {
                global().or_else(file)
            } else {
                file().or_else(global)
            }
        })
        .unwrap_or(PasswordFrom::Program);
    Ok(Effective { location, password })
}

/// A location from a variable: a URL when it has a scheme, else a path.
fn parse_location(text: String) -> Location {
    if text.contains("://") {
        Location::Url(text)
    } else {
        Location::Path(PathBuf::from(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, sole: bool, password_file: Option<&str>) -> RepositorySpec {
        RepositorySpec {
            name: name.into(),
            location: Location::Path("/file/path".into()),
            password_file: password_file.map(PathBuf::from),
            sole,
        }
    }

    fn with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    /// Table: (sole, config password_file, environment) → (location, password).
    #[test]
    fn the_environment_overrides_the_file_in_the_documented_order() {
        use PasswordFrom::*;
        let path = |p: &str| Location::Path(p.into());
        type Case<'a> = (
            bool,
            Option<&'a str>,
            Vec<(&'a str, &'a str)>,
            Location,
            PasswordFrom,
        );
        let cases: Vec<Case> = vec![
            (true, None, vec![], path("/file/path"), Program),
            (
                true,
                Some("/cfg/pw"),
                vec![],
                path("/file/path"),
                File("/cfg/pw".into()),
            ),
            (
                true,
                Some("/cfg/pw"),
                vec![("CAIRN_REPO", "/env"), ("CAIRN_PASSWORD", "t")],
                path("/env"),
                Text("t".into()),
            ),
            (
                true,
                Some("/cfg/pw"),
                vec![("CAIRN_PASSWORD_FILE", "/env/pw"), ("CAIRN_PASSWORD", "t")],
                path("/file/path"),
                File("/env/pw".into()),
            ),
            (
                true,
                None,
                vec![("CAIRN_REPO", "s3://b/p")],
                Location::Url("s3://b/p".into()),
                Program,
            ),
            (
                true,
                None,
                vec![("CAIRN_REPO", "/env"), ("CAIRN_REPO_OFF_SITE", "/own")],
                path("/own"),
                Program,
            ),
            (
                false,
                Some("/cfg/pw"),
                vec![("CAIRN_PASSWORD", "t")],
                path("/file/path"),
                File("/cfg/pw".into()),
            ),
            (
                false,
                None,
                vec![("CAIRN_PASSWORD", "t")],
                path("/file/path"),
                Text("t".into()),
            ),
            (
                false,
                Some("/cfg/pw"),
                vec![
                    ("CAIRN_PASSWORD_OFF_SITE", "own"),
                    ("CAIRN_PASSWORD_FILE", "/g"),
                ],
                path("/file/path"),
                Text("own".into()),
            ),
            (
                false,
                Some("/cfg/pw"),
                vec![
                    ("CAIRN_PASSWORD_FILE_OFF_SITE", "/own"),
                    ("CAIRN_PASSWORD_OFF_SITE", "t"),
                ],
                path("/file/path"),
                File("/own".into()),
            ),
            (
                true,
                Some("/cfg/pw"),
                vec![("CAIRN_REPO", ""), ("CAIRN_PASSWORD", "")],
                path("/file/path"),
                File("/cfg/pw".into()),
            ),
        ];
        for (i, (sole, pw, vars, location, password)) in cases.into_iter().enumerate() {
            let got = effective(&spec("off-site", sole, pw), &with(&vars)).unwrap();
            assert_eq!(got, Effective { location, password }, "case {i}: {vars:?}");
        }
    }

    #[test]
    fn cairn_repo_with_several_repositories_is_refused_naming_the_variable() {
        let err = effective(
            &spec("off-site", false, None),
            &with(&[("CAIRN_REPO", "/x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("CAIRN_REPO_OFF_SITE"), "{err}");
        let own = effective(
            &spec("off-site", false, None),
            &with(&[("CAIRN_REPO", "/x"), ("CAIRN_REPO_OFF_SITE", "/y")]),
        )
        .unwrap();
        assert_eq!(own.location, Location::Path("/y".into()));
    }
}
