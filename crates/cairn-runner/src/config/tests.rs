//! Config validation: the example validates; each kind of problem names the
//! file, the line and the key.

use super::*;

fn problems(text: &str) -> Vec<String> {
    match Config::parse(text, Path::new("/etc/cairn.toml")) {
        Ok(_) => Vec::new(),
        Err(Error::Config(ConfigProblems(ps))) => ps.iter().map(|p| p.to_string()).collect(),
        Err(e) => panic!("{e}"),
    }
}

const GOOD: &str = r#"
[repository.local]
path = "/b"

[target.t]
kind = "model"
paths = ["m.bin"]
"#;

#[test]
fn the_example_validates() {
    let c = Config::parse(EXAMPLE, Path::new("/etc/cairn/cairn.toml")).unwrap();
    let t = &c.targets["trading_model"];
    assert_eq!(
        t.paths,
        [PathBuf::from("/etc/cairn/models/trading_model.joblib")]
    );
    assert_eq!(t.retention.as_ref().unwrap().keep_last, Some(5));
    assert_eq!(t.check.as_ref().unwrap().subset_pct, Some(5.0));
    assert_eq!(t.max_age, Some(Duration::from_secs(26 * 3600)));
    let p = &c.targets["portfolio"];
    assert_eq!(p.exclude, ["*.tmp", "cache/"]);
    assert!(p.hooks.on_failure.is_some());
    assert_eq!(p.repositories, ["local"]);
    assert_eq!(c.daemon.max_failures, 3);
}

#[test]
fn defaults_name_and_repositories() {
    let c = Config::parse(GOOD, Path::new("/etc/cairn.toml")).unwrap();
    let t = &c.targets["t"];
    assert_eq!(t.label.name, "t");
    assert_eq!(t.repositories, ["local"]);
    assert_eq!(t.paths, [PathBuf::from("/etc/m.bin")]);
}

#[test]
fn an_unknown_key_names_file_line_and_key() {
    let text = format!("{GOOD}colour = \"red\"\n");
    let ps = problems(&text);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(
        ps[0].starts_with("/etc/cairn.toml:8: target.t.colour: "),
        "{ps:?}"
    );
    assert!(ps[0].contains("unknown field `colour`"), "{ps:?}");
}

#[test]
fn value_problems_are_all_reported_with_lines() {
    let text = r#"
[repository.local]
path = "/b"

[target.a]
kind = "model"
paths = ["m.bin"]
schedule = "every 6"
max_age = "soon"
repositories = ["local", "offsite"]
retention = { keep_within = "30x" }

[target.b]
paths = []
check = { read_data_subset = "500%" }
"#;
    let ps = problems(text);
    let want = [
        "/etc/cairn.toml:10: target.a.repositories: unknown repository \"offsite\" (defined: local)",
        "/etc/cairn.toml:8: target.a.schedule: \"6\" is not a duration",
        "/etc/cairn.toml:9: target.a.max_age: \"soon\" is not a duration",
        "/etc/cairn.toml:11: target.a.retention.keep_within: invalid duration \"30x\"",
        "/etc/cairn.toml:13: target.b.kind: missing key `kind`",
        "/etc/cairn.toml:14: target.b.paths: is empty",
        "/etc/cairn.toml:15: target.b.check.read_data_subset: \"500%\" is not a percentage",
    ];
    assert_eq!(ps.len(), want.len(), "{ps:#?}");
    for w in want {
        assert!(
            ps.iter().any(|p| p.starts_with(w)),
            "missing {w:?} in {ps:#?}"
        );
    }
}

#[test]
fn syntax_errors_and_missing_repository_keys() {
    // The syntax error, and (parsing goes on past it) the missing target.
    let ps = problems("[repository.local]\npath = \n");
    assert_eq!(ps.len(), 2, "{ps:?}");
    assert!(ps[1].contains("no [target.NAME] section"), "{ps:?}");
    assert!(
        ps[0].starts_with("/etc/cairn.toml:2: repository.local.path: "),
        "{ps:?}"
    );
    let ps = problems("[repository.local]\n[target.t]\nkind = \"m\"\npaths = [\"x\"]\n");
    assert_eq!(
        ps,
        ["/etc/cairn.toml:1: repository.local: missing key `path` (or `url`)"]
    );
}

/// Structural problems (an unknown key, a wrong type, bad syntax) no
/// longer hide each other or the value problems: all of them, each once.
#[test]
fn every_structural_problem_is_reported_with_the_value_problems() {
    let text = r#"
[repository.local]
path = "/b"
colour = "red"

[target.a]
kind = "model"
paths = 5
schedule = "every 6"
gc = "yes"
max_age = "26h

[target.b]
kind = "config"
paths = ["x"]
repositories = ["nowhere"]
"#;
    let ps = problems(text);
    let want = [
        "/etc/cairn.toml:4: repository.local.colour: unknown field `colour`",
        "/etc/cairn.toml:8: target.a.paths: invalid type: integer `5`, expected",
        "/etc/cairn.toml:10: target.a.gc: invalid type: string \"yes\", expected a boolean",
        "/etc/cairn.toml:11: target.a.max_age: ",
        "/etc/cairn.toml:9: target.a.schedule: \"6\" is not a duration",
        "/etc/cairn.toml:16: target.b.repositories: unknown repository \"nowhere\"",
    ];
    for w in want {
        assert!(
            ps.iter().any(|p| p.starts_with(w)),
            "missing {w:?} in {ps:#?}"
        );
    }
    assert_eq!(ps.len(), want.len(), "{ps:#?}");
}

#[test]
fn missing_paths_name_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cairn.toml");
    std::fs::write(dir.path().join("m.bin"), b"x").unwrap();
    let text = "[repository.r]\npath = \"repo\"\n[target.t]\nkind = \"model\"\npaths = [\n  \"m.bin\",\n  \"gone.bin\",\n]\n";
    let c = Config::parse(text, &file).unwrap();
    let missing = c.missing_paths();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].line, Some(7));
    assert_eq!(missing[0].key, "target.t.paths");
}
