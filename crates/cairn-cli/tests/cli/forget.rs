//! `forget`, `delete`, `policy` and `prune` through the binary. Retention
//! semantics with a fixed clock are table-tested in src/retention.rs; these
//! check the commands: what they print, what they change, what they refuse.

use crate::common::{random_bytes, Env};

/// `n` snapshots of `kind/name`, each of a different small file; `tagged`
/// gets `--tag milestone`. Returns their ids, oldest first.
fn history(env: &Env, kind: &str, name: &str, n: usize, tagged: Option<usize>) -> Vec<String> {
    (0..n)
        .map(|i| {
            let data = random_bytes(20_000, i as u64 + name.len() as u64 * 1000);
            let version = format!("v{}", i + 1);
            let mut args = vec![
                "--kind",
                kind,
                "--name",
                name,
                "--version",
                version.as_str(),
            ];
            if tagged == Some(i) {
                args.extend(["--tag", "milestone"]);
            }
            env.snapshot_files(&format!("src-{name}"), &[("w.bin", &data)], &args)
        })
        .collect()
}

fn short(id: &str) -> &str {
    &id[..8]
}

/// The ACTION and REASONS of `id`'s row in a forget table.
fn row<'a>(out: &'a str, id: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(short(id)))
        .unwrap_or_else(|| panic!("{id} not in:\n{out}"))
}

#[test]
fn keep_5_per_model_lists_every_snapshot_with_its_reasons() {
    let env = Env::new();
    let a = history(&env, "model", "llama", 7, None);
    let b = history(&env, "model", "bert", 6, None);
    let cfg = history(&env, "config", "app", 2, None);
    let out = env.ok(&["forget", "--kind", "model", "--keep-last", "5"]);
    assert!(out.contains("model/llama: keep-last 5"), "{out}");
    assert!(
        out.contains("ID        TIME                 VERSION  TAGS  ACTION  REASONS"),
        "{out}"
    );
    assert!(row(&out, &a[6]).contains("keep    last snapshot"), "{out}");
    assert!(row(&out, &a[1]).trim_end().ends_with("remove"), "{out}");
    assert!(
        out.contains("5 kept, 2 removed") && out.contains("5 kept, 1 removed"),
        "{out}"
    );
    assert!(out.contains("removed 3 snapshots"), "{out}");
    let left = env.snapshot_ids();
    assert_eq!(left.len(), 12);
    for gone in [&a[0], &a[1], &b[0]] {
        assert!(!left.contains(gone));
        assert!(
            !env.repo.join(format!("snapshots/{gone}.snap")).exists(),
            "manifest of {gone} deleted"
        );
    }
    assert!(
        cfg.iter().all(|c| left.contains(c)),
        "--kind model leaves configs alone"
    );
}

#[test]
fn tiered_policy_keeps_milestones_forever() {
    let env = Env::new();
    let ids = history(&env, "model", "llama", 8, Some(0));
    let tiered = [
        "--keep-last",
        "5",
        "--keep-daily",
        "7",
        "--keep-weekly",
        "4",
        "--keep-tag",
        "milestone",
    ];
    let out = env.ok(&[&["forget"], &tiered[..]].concat());
    assert!(
        out.contains("model/llama: keep-last 5, keep-daily 7, keep-weekly 4, keep-tag milestone"),
        "{out}"
    );
    // All taken the same day: the newest is the day's and the week's.
    assert!(
        row(&out, &ids[7]).contains("last snapshot, daily snapshot, weekly snapshot"),
        "{out}"
    );
    assert!(row(&out, &ids[3]).ends_with("last snapshot"), "{out}");
    assert!(
        row(&out, &ids[0]).contains("milestone  keep    tag milestone"),
        "{out}"
    );
    assert!(row(&out, &ids[1]).trim_end().ends_with("remove"), "{out}");
    let left = env.snapshot_ids();
    assert_eq!(left, [&ids[..1], &ids[3..]].concat());
}

#[test]
fn dry_run_changes_nothing_and_json_has_the_plan() {
    let env = Env::new();
    let ids = history(&env, "portfolio", "book", 3, None);
    let out = env.ok(&[
        "forget",
        "--keep-within",
        "30d",
        "--keep-last",
        "1",
        "--dry-run",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["removed"].as_array().unwrap().len(), 0);
    let verdicts = v["histories"][0]["snapshots"].as_array().unwrap();
    assert_eq!(verdicts.len(), 3);
    assert_eq!(verdicts[0]["snapshot"]["id"], ids[2].as_str());
    assert_eq!(
        verdicts[0]["reasons"],
        serde_json::json!(["last snapshot", "within 30d"])
    );
    assert_eq!(verdicts[2]["reasons"], serde_json::json!(["within 30d"]));

    let out = env.ok(&["forget", "--keep-last", "1", "--dry-run"]);
    assert!(
        out.contains("dry run: would remove 2 snapshots; nothing was changed"),
        "{out}"
    );
    assert_eq!(env.snapshot_ids(), ids);
}

#[test]
fn refuses_to_empty_a_history_unless_allowed() {
    let env = Env::new();
    history(&env, "model", "llama", 2, None);
    let out = env.run(&["forget", "--keep-tag", "milestone"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("would remove every snapshot of model/llama") && err.contains("--allow-empty"),
        "{err}"
    );
    assert_eq!(env.snapshot_ids().len(), 2);
    let dry = env.ok(&["forget", "--keep-tag", "milestone", "--dry-run"]);
    assert!(
        dry.contains("note: the policy would remove every snapshot"),
        "{dry}"
    );
    env.ok(&["forget", "--keep-tag", "milestone", "--allow-empty"]);
    assert!(env.snapshot_ids().is_empty());
}

#[test]
fn stored_policies_most_specific_wins_and_forget_without_rules_applies_them() {
    let env = Env::new();
    let llama = history(&env, "model", "llama", 4, None);
    let bert = history(&env, "model", "bert", 4, None);
    let book = history(&env, "portfolio", "book", 3, None);
    env.ok(&["policy", "set", "model", "--keep-last", "3"]);
    env.ok(&["policy", "set", "model/bert", "--keep-last", "1"]);
    let shown = env.ok(&["policy", "show"]);
    assert!(shown.contains("model/bert  keep-last 1"), "{shown}");
    assert!(
        shown.contains("portfolio/book  none (keeps everything)"),
        "{shown}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["policy", "show", "--json"])).unwrap();
    assert_eq!(json["model"]["keep_last"], 3);

    let out = env.ok(&["forget"]);
    assert!(
        out.contains("model/llama: keep-last 3 (stored for model)"),
        "{out}"
    );
    assert!(
        out.contains("model/bert: keep-last 1 (stored for model/bert)"),
        "{out}"
    );
    assert!(
        out.contains("portfolio/book: no stored policy, 3 snapshots kept"),
        "{out}"
    );
    assert_eq!(
        env.snapshot_ids(),
        [&llama[1..], &bert[3..], &book[..]].concat()
    );

    let bad = env.run(&["policy", "set", "model/a/b", "--keep-last", "1"]);
    assert_eq!(bad.status.code(), Some(2));
    let empty = env.run(&["policy", "set", "model"]);
    assert_eq!(empty.status.code(), Some(2));
    env.ok(&["policy", "unset", "model/bert"]);
    assert_eq!(
        env.run(&["policy", "unset", "model/bert"]).status.code(),
        Some(2)
    );
    assert!(!env.ok(&["policy", "show"]).contains("model/bert  keep"));
}

#[test]
fn delete_needs_yes_without_a_terminal() {
    let env = Env::new();
    let ids = history(&env, "model", "llama", 3, None);
    let out = env.run(&["delete", "llama~1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --yes"));
    assert_eq!(env.snapshot_ids().len(), 3, "nothing deleted");
    let out = env.ok(&["delete", "--yes", "llama~1", short(&ids[0])]);
    assert!(out.contains("deleted 2 snapshots"), "{out}");
    assert_eq!(env.snapshot_ids(), [ids[2].clone()]);
    assert_eq!(
        env.run(&["delete", "--yes", "nosuch"]).status.code(),
        Some(2)
    );
}

#[test]
fn prune_forgets_by_stored_policy_then_gives_the_space_back() {
    let env = Env::new();
    history(&env, "model", "llama", 4, None);
    env.ok(&["policy", "set", "model/llama", "--keep-last", "1"]);
    let before = crate::common::dir_size(&env.repo.join("packs"));
    let dry = env.ok(&["prune", "--dry-run"]);
    assert!(dry.contains("would remove 3 snapshots"), "{dry}");
    assert!(
        dry.contains("delete    3 packs"),
        "the gc plan counts the forget: {dry}"
    );
    assert_eq!(env.snapshot_ids().len(), 4);
    let out = env.ok(&["prune"]);
    assert!(
        out.contains("removed 3 snapshots") && out.contains("gc done"),
        "{out}"
    );
    assert_eq!(env.snapshot_ids().len(), 1);
    let after = crate::common::dir_size(&env.repo.join("packs"));
    assert!(after * 3 < before, "{before} -> {after}");
    crate::common::verify_repository(&env.repo);
    assert_eq!(env.check_read_data(), Vec::<serde_json::Value>::new());
}
