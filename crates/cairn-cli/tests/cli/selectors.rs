//! Every SNAPSHOT selector form, through the real CLI (`show --json`, `cat`).

use serde_json::Value;

use crate::common::*;

const FILE: &str = "llm/weights.txt";

fn show_id(env: &Env, selector: &str) -> String {
    env.json(["show", selector])["snapshot"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn cat(env: &Env, selector: &str) -> String {
    stdout(&run_ok(env.cmd(["cat", selector, FILE])))
}

fn id(report: &Value) -> String {
    report["id"].as_str().unwrap().to_string()
}

/// The shortest prefix (at least 4 hex chars) of `full` that no other id shares.
fn unique_prefix(full: &str, all: &[String]) -> String {
    (4..=full.len())
        .map(|n| &full[..n])
        .find(|p| all.iter().filter(|other| other.starts_with(p)).count() == 1)
        .unwrap()
        .to_string()
}

/// `model/llm` ×3 (v1, v2, v2, the first two ≥1.1 s apart, each with
/// different content) and `shared` under both `model` and `config`.
struct Fixture {
    env: Env,
    s1: String,
    s2: String,
    s3: String,
    shared_model: String,
    shared_config: String,
}

fn fixture(gap: bool) -> Fixture {
    let env = Env::new();
    let src = env.path("llm");
    let weights = src.join("weights.txt");
    let shared = env.path("shared");
    write(&shared.join("settings.toml"), b"threads = 4\n");

    write(&weights, b"one");
    let before = now_ns();
    let s1 = id(&env.snapshot(&src, "model", "llm", &["--version", "v1"]));
    let after = now_ns();
    if gap {
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    write(&weights, b"second");
    let s2 = id(&env.snapshot(&src, "model", "llm", &["--version", "v2"]));
    write(&weights, b"third version");
    let s3 = id(&env.snapshot(&src, "model", "llm", &["--version", "v2"]));
    let shared_model = id(&env.snapshot(&shared, "model", "shared", &[]));
    let shared_config = id(&env.snapshot(&shared, "config", "shared", &[]));

    // The recorded time of s1 is the wall-clock time it was taken (this also
    // checks the RFC 3339 reader used below).
    let list = env.list();
    let t1 = rfc3339_to_ns(list[0]["time"].as_str().unwrap());
    assert_eq!(list[0]["id"], s1.as_str());
    assert!(
        before <= t1 && t1 <= after,
        "s1 time {t1} not within [{before}, {after}]"
    );
    Fixture {
        env,
        s1,
        s2,
        s3,
        shared_model,
        shared_config,
    }
}

fn time_of(env: &Env, id: &str) -> i128 {
    let list = env.list();
    let s = list.iter().find(|s| s["id"] == id).unwrap();
    rfc3339_to_ns(s["time"].as_str().unwrap())
}

/// Each selector form picks the intended snapshot: id prefix (≥4 chars,
/// any case), full id, NAME, NAME~N, NAME~, NAME@TIME (a time between two
/// snapshots, an exact snapshot time, a bare far-future date), NAME:VERSION,
/// and KIND/NAME when a name exists under two kinds.
#[test]
fn every_selector_form_resolves() {
    let Fixture {
        env,
        s1,
        s2,
        s3,
        shared_model,
        shared_config,
    } = fixture(true);
    let all = ids(&env.list());
    assert_eq!(all.len(), 5);

    // Id prefixes.
    let prefix = unique_prefix(&s1, &all);
    assert!(prefix.len() >= 4);
    assert_eq!(show_id(&env, &prefix), s1, "prefix {prefix}");
    assert_eq!(show_id(&env, &s1[..12].to_ascii_uppercase()), s1);
    assert_eq!(show_id(&env, &s1), s1);
    assert_eq!(cat(&env, &prefix), "one");

    // NAME and NAME~N.
    assert_eq!(show_id(&env, "llm"), s3);
    assert_eq!(cat(&env, "llm"), "third version");
    assert_eq!(show_id(&env, "llm~1"), s2);
    assert_eq!(show_id(&env, "llm~"), s2);
    assert_eq!(show_id(&env, "llm~2"), s1);
    assert_eq!(cat(&env, "llm~2"), "one");

    // NAME@TIME: half a second after s1 is before s2 (taken ≥1.1 s later).
    let (t1, t2) = (time_of(&env, &s1), time_of(&env, &s2));
    let between = t1 + 500_000_000;
    assert!(between < t2, "s2 at {t2} must be later than {between}");
    let between = ns_to_rfc3339(between);
    assert_eq!(
        show_id(&env, &format!("llm@{between}")),
        s1,
        "llm@{between}"
    );
    assert_eq!(cat(&env, &format!("llm@{between}")), "one");
    assert_eq!(
        show_id(&env, &format!("llm@{}", ns_to_rfc3339(t2))),
        s2,
        "at-or-before includes the instant"
    );
    assert_eq!(show_id(&env, "llm@2999-01-01"), s3);
    assert_eq!(show_id(&env, &format!("model/llm@{between}")), s1);

    // NAME:VERSION takes the latest with that label.
    assert_eq!(show_id(&env, "llm:v1"), s1);
    assert_eq!(show_id(&env, "llm:v2"), s3);
    assert_eq!(cat(&env, "model/llm:v1"), "one");

    // KIND/NAME.
    assert_eq!(show_id(&env, "model/shared"), shared_model);
    assert_eq!(show_id(&env, "config/shared"), shared_config);
    assert_eq!(show_id(&env, "model/llm~1"), s2);
    let shown = env.json(["show", "config/shared"]);
    assert_eq!(shown["snapshot"]["kind"], "config");
    assert_eq!(shown["snapshot"]["name"], "shared");
}

/// Selectors that match nothing or too much fail with exit 2 and say why:
/// an ambiguous name lists both kinds, an unknown name lists the known
/// histories, `~99`, a time before the first snapshot and an unknown
/// version name the selector.
#[test]
fn unresolvable_selectors_fail_with_candidates() {
    let Fixture { env, .. } = fixture(false);
    let state = env.state();

    let err = run_code(&mut env.cmd(["show", "shared"]), 2);
    assert!(err.contains("ambiguous"), "{err}");
    assert!(
        err.contains("model/shared") && err.contains("config/shared"),
        "{err}"
    );
    let err = run_code(&mut env.cmd(["cat", "shared", "shared/settings.toml"]), 2);
    assert!(
        err.contains("model/shared") && err.contains("config/shared"),
        "{err}"
    );

    let err = run_code(&mut env.cmd(["show", "nosuch"]), 2);
    assert!(err.contains("nosuch"), "{err}");
    for known in ["model/llm", "model/shared", "config/shared"] {
        assert!(
            err.contains(known),
            "unknown name must list `{known}`: {err}"
        );
    }

    let err = run_code(&mut env.cmd(["show", "llm~99"]), 2);
    assert!(err.contains("llm~99"), "{err}");
    let err = run_code(&mut env.cmd(["show", "llm@2000-01-01T00:00:00Z"]), 2);
    assert!(err.contains("llm@2000-01-01T00:00:00Z"), "{err}");
    let err = run_code(&mut env.cmd(["show", "llm:v9"]), 2);
    assert!(err.contains("llm:v9") && err.contains(":v2"), "{err}");
    let err = run_code(&mut env.cmd(["show", "portfolio/llm"]), 2);
    assert!(err.contains("portfolio/llm"), "{err}");
    let err = run_code(&mut env.cmd(["show", "llm~x"]), 2);
    assert!(err.contains("llm~x"), "{err}");
    let err = run_code(&mut env.cmd(["show", "llm@yesterday"]), 2);
    assert!(err.contains("yesterday"), "{err}");

    assert_eq!(
        env.state(),
        state,
        "failed lookups must not change the repository"
    );
}
