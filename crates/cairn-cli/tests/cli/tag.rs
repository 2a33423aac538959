//! `tag`: pinning a milestone after the fact, through the real CLI.

use crate::common::*;

/// A snapshot tagged `milestone` after it was taken survives a forget that
/// keeps only the newest one and milestones; its files and stat cache come
/// along, the old id is gone, and the repository checks clean.
#[test]
fn a_milestone_pinned_after_the_fact_survives_retention() {
    let env = Env::new();
    let src = env.path("m");
    let mut taken = Vec::new();
    for v in 0..3u64 {
        write(&src.join("w.bin"), &random_bytes(50_000, v));
        taken.push(
            env.snapshot(&src, "model", "m", &[])["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let first = &taken[0][..12];
    let out = stdout(&run_ok(env.cmd([
        "tag",
        first,
        "--add",
        "milestone",
        "--description",
        "the good one",
    ])));
    assert!(out.contains("tags milestone"), "{out}");
    let listed = env.list();
    let pinned = listed
        .iter()
        .find(|s| {
            s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "milestone")
        })
        .expect("the pinned snapshot is listed");
    assert_eq!(pinned["description"], "the good one");
    assert_ne!(
        pinned["id"].as_str().unwrap(),
        taken[0],
        "an edited snapshot has a new id"
    );
    assert!(!ids(&listed).contains(&taken[0]));
    let err = run_code(env.cmd(["show", first]), 2);
    assert!(err.contains(first), "{err}");

    run_ok(env.cmd([
        "forget",
        "--name",
        "m",
        "--keep-last",
        "1",
        "--keep-tag",
        "milestone",
    ]));
    let kept = env.list();
    assert_eq!(kept.len(), 2, "the newest and the milestone");
    let pinned_id = pinned["id"].as_str().unwrap();
    assert!(
        ids(&kept).iter().any(|id| id == pinned_id),
        "the milestone is kept"
    );
    let out = env.path("out");
    run_ok(env.cmd(["restore".as_ref(), pinned_id.as_ref(), out.as_os_str()]));
    assert_eq!(
        std::fs::read(out.join("m/w.bin")).unwrap(),
        random_bytes(50_000, 0)
    );
    // The forgotten snapshot's pack is unreferenced until gc; nothing else.
    run_ok(env.cmd(["gc"]));
    let report = env.json(["check", "--read-data"]);
    assert_eq!(report["findings"].as_array().unwrap().len(), 0, "{report}");

    // Unchanged, JSON, and refusals.
    let again = env.json(["tag", "m~1", "--add", "milestone"]);
    assert_eq!(again[0]["changed"], false, "{again}");
    let err = run_code(env.cmd(["tag", "m"]), 2);
    assert!(err.contains("nothing to change"), "{err}");
    let err = run_code(env.cmd(["tag", "m", "--add", "two words"]), 2);
    assert!(err.contains("invalid tag `two words`"), "{err}");
    let err = run_code(env.cmd(["tag", "nope", "--add", "x"]), 2);
    assert!(err.contains("nope"), "{err}");
}
