//! Every command's `--json` against docs/json/cairn.schema.json (the
//! definitions are closed: a field the schema does not know fails, and so
//! does a missing required one), and docs/JSON.md's field tables against
//! the schema they are generated from.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::*;

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

fn schema() -> Value {
    let path = docs().join("json/cairn.schema.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The errors of `doc` against the schema's definition `def`.
fn errors(def: &str, doc: &Value) -> Vec<String> {
    let root = schema();
    assert!(
        root["$defs"].get(def).is_some(),
        "the schema has no definition {def:?}"
    );
    let one = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": root["$defs"],
        "$ref": format!("#/$defs/{def}"),
    });
    let validator = jsonschema::draft202012::new(&one).expect("the schema compiles");
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Asserts `doc` is a valid `def`; returns it.
#[track_caller]
fn valid(def: &str, doc: Value) -> Value {
    let errs = errors(def, &doc);
    assert!(
        errs.is_empty(),
        "`{def}` output does not match docs/json/cairn.schema.json:\n  {}\n{doc:#}",
        errs.join("\n  ")
    );
    doc
}

/// `cairn ARGS --json` with exit `code`, validated as `def`.
#[track_caller]
fn command(env: &Env, def: &str, args: &[&str], code: i32) -> Value {
    valid(def, env.json_code(args, code))
}

/// Any pack file of the repository at `repo`.
fn a_pack(repo: &Path) -> PathBuf {
    let mut stack = vec![repo.join("packs")];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                return p;
            }
        }
    }
    panic!("no pack under {}", repo.display());
}

/// A source tree with a file, a subdirectory and a symlink.
fn source(env: &Env) -> PathBuf {
    let src = env.path("src");
    write(&src.join("a.bin"), &random_bytes(300_000, 1));
    write(&src.join("sub/b.txt"), b"hello\n");
    std::os::unix::fs::symlink("a.bin", src.join("link")).unwrap();
    src
}

/// Snapshot in all its forms, then every reading command.
#[test]
fn snapshot_and_reading_commands_match_the_schema() {
    let env = Env::new();
    let src = source(&env);
    let s = env.rel(&src).to_str().unwrap();
    let first = command(
        &env,
        "snapshot_report",
        &[
            "snapshot", s, "--kind", "model", "--name", "llama", "--tag", "t",
        ],
        0,
    );
    assert_eq!(first["id"].as_str().unwrap().len(), 64, "{first}");
    assert_eq!(first["short_id"], first["id"].as_str().unwrap()[..8]);
    write(&src.join("sub/b.txt"), b"hello again\n");
    let snap = ["snapshot", s, "--kind", "model", "--name", "llama"];
    command(
        &env,
        "snapshot_report",
        &[&snap[..], &["--version", "v2"]].concat(),
        0,
    );
    let dry = command(
        &env,
        "snapshot_report",
        &[&snap[..], &["--dry-run"]].concat(),
        0,
    );
    assert_eq!(dry["dry_run"], true);
    let same = command(
        &env,
        "snapshot_report",
        &[&snap[..], &["--skip-if-unchanged"]].concat(),
        0,
    );
    assert_eq!(same["unchanged"], true);
    let mut stdin = env.cmd([
        "snapshot",
        "--stdin",
        "--stdin-filename",
        "db.sql",
        "--kind",
        "database",
        "--name",
        "app",
        "--json",
    ]);
    let out = run_ok(stdin.write_stdin("piped\n"));
    valid(
        "snapshot_report",
        serde_json::from_slice(&out.stdout).unwrap(),
    );

    let list = command(&env, "list", &["list"], 0);
    assert_eq!(list.as_array().unwrap().len(), 3);
    command(&env, "show", &["show", "llama"], 0);
    let diff = command(&env, "diff", &["diff", "llama~1", "llama"], 0);
    assert_eq!(diff["changed"][0]["path"], "src/sub/b.txt", "{diff}");
    let target = env.path("restored");
    let r = command(
        &env,
        "restore",
        &["restore", "llama", target.to_str().unwrap()],
        0,
    );
    assert_eq!(r["snapshot"]["id"], list[1]["id"], "{r}");
    command(&env, "verify", &["verify", "llama"], 0);
    command(&env, "check", &["check"], 0);
    command(&env, "check", &["check", "--read-data"], 0);
    command(&env, "check", &["check", "--read-data-subset", "50"], 0);
    command(&env, "stats", &["stats"], 0);
    command(&env, "ls", &["ls", "llama"], 0);
    command(&env, "ls", &["ls", "llama", "src/sub"], 0);
    command(&env, "find", &["find", "*.txt"], 0);
    command(&env, "bench_growth", &["bench"], 0);
    command(&env, "bench", &["bench", s], 0);
}

/// Labels, retention, gc, prune, catalog rebuild, repair, copy, unlock.
#[test]
fn maintenance_commands_match_the_schema() {
    let env = Env::new();
    let src = source(&env);
    for v in ["v1", "v2", "v3"] {
        write(&src.join("sub/b.txt"), v.as_bytes());
        env.snapshot(&src, "model", "llama", &["--version", v]);
    }
    command(&env, "tag", &["tag", "llama", "--add", "milestone"], 0);
    command(&env, "policy_show", &["policy", "show"], 0);
    command(
        &env,
        "policy_set",
        &["policy", "set", "model", "--keep-last", "2"],
        0,
    );
    command(&env, "policy_show", &["policy", "show"], 0);
    command(
        &env,
        "forget",
        &["forget", "--keep-last", "2", "--dry-run"],
        0,
    );
    let gone = command(&env, "forget", &["forget", "--keep-last", "2"], 0);
    assert_eq!(gone["removed"].as_array().unwrap().len(), 1, "{gone}");
    command(&env, "gc", &["gc", "--dry-run"], 0);
    command(&env, "gc", &["gc", "--max-unused", "0"], 0);
    env.snapshot(&src, "model", "llama", &["--version", "v4", "--force"]);
    command(&env, "prune", &["prune", "--dry-run"], 0);
    command(&env, "prune", &["prune"], 0);
    command(&env, "policy_unset", &["policy", "unset", "model"], 0);
    command(&env, "delete", &["delete", "llama", "--dry-run"], 0);
    command(&env, "delete", &["delete", "llama", "--yes"], 0);
    command(
        &env,
        "rebuild_catalog_dry_run",
        &["rebuild-catalog", "--dry-run"],
        0,
    );
    command(&env, "rebuild_catalog", &["rebuild-catalog", "--yes"], 0);
    command(&env, "repair", &["repair"], 0);
    command(&env, "repair_config", &["repair", "--config"], 0);
    command(&env, "unlock", &["unlock"], 0);

    let to = env.path("copy");
    let to = to.to_str().unwrap();
    let from = env.repo.to_str().unwrap();
    let mut init = cairn_in(env.dir.path());
    init.args(["--repo", to])
        .args([&init_args()[..], &["--from-repo", from, "--json"]].concat());
    valid(
        "init",
        serde_json::from_slice(&run_ok(init).stdout).unwrap(),
    );
    let copy = ["copy", "--from", from, "--to", to];
    command(&env, "copy", &[&copy[..], &["--dry-run"]].concat(), 0);
    let copied = command(&env, "copy", &copy, 0);
    assert_eq!(copied["snapshots_copied"], 1, "{copied}");
}

/// A flipped byte in a pack: check, verify, restore and repair report it,
/// in the same shapes.
#[test]
fn damage_reports_match_the_schema() {
    let env = Env::new();
    let src = source(&env);
    env.snapshot(&src, "model", "llama", &[]);
    let pack = a_pack(&env.repo);
    let mut bytes = fs::read(&pack).unwrap();
    bytes[100] ^= 0xff;
    fs::write(&pack, bytes).unwrap();
    let found = command(&env, "check", &["check", "--read-data"], 1);
    let affected = &found["findings"][0]["affected"][0];
    assert_eq!(
        affected["snapshot"]["id"].as_str().unwrap().len(),
        64,
        "{found}"
    );
    assert_eq!(found["clean"], false);
    command(&env, "verify", &["verify", "llama"], 1);
    let target = env.path("restored");
    let t = target.to_str().unwrap();
    command(
        &env,
        "restore",
        &["restore", "llama", t, "--ignore-errors"],
        1,
    );
    command(&env, "repair", &["repair"], 1);
    command(&env, "list", &["list"], 0);
}

/// `key list | add | remove | passwd` on an encrypted repository.
#[test]
fn key_commands_match_the_schema() {
    let env = Env::uninit();
    let pw = env.path("pw");
    let new = env.path("new-pw");
    write(&pw, b"first password\n");
    write(&new, b"second password\n");
    let cmd = |args: &[&str]| {
        let mut c = env.cmd(args);
        c.arg("--password-file")
            .arg(&pw)
            .env("CAIRN_KDF_MEMORY_KIB", "64");
        c.env_remove("CAIRN_PASSWORD");
        c
    };
    run_ok(cmd(&["init", "--encryption"]));
    let parse = |c| -> Value { serde_json::from_slice(&run_ok(c).stdout).unwrap() };
    let keys = valid("key_list", parse(cmd(&["key", "list", "--json"])));
    assert_eq!(keys[0]["current"], true, "{keys}");
    let mut add = cmd(&["key", "add", "--json"]);
    add.arg("--new-password-file").arg(&new);
    let added = valid("key_add", parse(add));
    let second = added["added"].as_str().unwrap();
    valid(
        "key_remove",
        parse(cmd(&["key", "remove", second, "--json"])),
    );
    let mut passwd = cmd(&["key", "passwd", "--json"]);
    passwd.arg("--new-password-file").arg(&new);
    let changed = valid("key_passwd", parse(passwd));
    assert_eq!(changed["removed"], keys[0]["id"], "{changed}");
}

/// `cairn run --json` and `cairn health --json` of a one-target config.
#[test]
fn runner_reports_match_the_schema() {
    let env = Env::new();
    write(&env.path("data/state.json"), b"{}");
    let config = env.path("cairn.toml");
    let repo = env.repo.display();
    write(
        &config,
        format!(
            "[repository.local]\npath = \"{repo}\"\n\n[target.book]\nkind = \"portfolio\"\npaths = [\"data\"]\n"
        )
        .as_bytes(),
    );
    let runner = |args: &[&str]| -> Value {
        let mut c = cairn_in(env.dir.path());
        c.args(args)
            .arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(env.path("state"))
            .arg("--json");
        serde_json::from_slice(&run_ok(c).stdout).unwrap()
    };
    valid("run", runner(&["run"]));
    valid("health", runner(&["health"]));
}

/// `config check` of a good and a broken runner config.
#[test]
fn config_check_matches_the_schema() {
    let env = Env::new();
    let config = env.path("cairn.toml");
    let repo = env.repo.display();
    write(&env.path("data/state.json"), b"{}");
    write(
        &config,
        format!(
            "[repository.local]\npath = \"{repo}\"\n\n[target.book]\nkind = \"portfolio\"\npaths = [\"data\"]\nschedule = \"daily 02:00\"\n"
        )
        .as_bytes(),
    );
    let check = |code| {
        let mut c = cairn_in(env.dir.path());
        c.args(["config", "check", "--json", "--config"])
            .arg(&config);
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
        valid("config_check", serde_json::from_slice(&out.stdout).unwrap())
    };
    let good = check(0);
    assert_eq!(
        (&good["ok"], &good["targets"][0]["target"]),
        (&json!(true), &json!("book")),
        "{good}"
    );
    write(&config, b"[target.book]\nkind = 3\n");
    let bad = check(1);
    assert_eq!(bad["ok"], false, "{bad}");
    assert!(bad["problems"][0]["line"].is_u64(), "{bad}");
}

/// `upgrade` of a version-3 repository: dry run, upgrade, nothing to do.
#[test]
fn upgrade_matches_the_schema() {
    let env = Env::with_init(&["--repo-version", "3"]);
    let dry = command(&env, "upgrade", &["upgrade", "--dry-run"], 0);
    assert_eq!((&dry["from"], &dry["to"]), (&json!(3), &json!(4)), "{dry}");
    let done = command(&env, "upgrade", &["upgrade", "--yes"], 0);
    assert_eq!(done["upgraded"], true, "{done}");
    let again = command(&env, "upgrade", &["upgrade", "--yes"], 0);
    assert_eq!(
        (&again["from"], &again["upgraded"]),
        (&json!(4), &json!(false))
    );
}

/// The commands without a JSON form refuse `--json` as a usage error that
/// says why (docs/JSON.md, "Commands without JSON"), printing nothing on
/// stdout.
#[test]
fn commands_without_json_refuse_it_clearly() {
    let env = Env::new();
    let config = env.path("cairn.toml");
    let c = config.to_str().unwrap();
    let mnt = env.path("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let m = mnt.to_str().unwrap();
    for args in [
        vec!["cat", "x", "y"],
        vec!["dump", "x"],
        vec!["mount", m],
        vec!["metrics", "--config", c],
        vec!["daemon", "--config", c],
        vec!["completions", "bash"],
        vec!["man", m],
        vec!["config", "example"],
    ] {
        let mut cmd = env.cmd(&args);
        cmd.arg("--json");
        let out = cmd.output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
        let name = match args[0] {
            "config" => "config example",
            other => other,
        };
        assert!(
            err.contains(&format!("`cairn {name}` has no --json: ")),
            "{args:?}: {err}"
        );
    }
}

/// The definitions are closed: an unknown field or a missing required one
/// is an error, so a command printing a field the schema does not know
/// fails the tests above.
#[test]
fn the_schema_rejects_undocumented_and_missing_fields() {
    let root = schema();
    for (name, def) in root["$defs"].as_object().unwrap() {
        if def.get("properties").is_some() {
            assert_eq!(
                def["additionalProperties"], false,
                "$defs/{name} must set additionalProperties: false"
            );
        }
    }
    let good = json!({"id": "ab".repeat(32), "short_id": "abababab", "kind": "model", "name": "x"});
    assert_eq!(errors("snapshot_ref", &good), Vec::<String>::new());
    let mut extra = good.clone();
    extra["undocumented"] = json!(1);
    assert!(
        !errors("snapshot_ref", &extra).is_empty(),
        "an unknown field passed"
    );
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("short_id");
    assert!(
        !errors("snapshot_ref", &missing).is_empty(),
        "a missing field passed"
    );
    let mut short = good;
    short["id"] = json!("abababab");
    assert!(
        !errors("snapshot_ref", &short).is_empty(),
        "a short id passed as `id`"
    );
}

/// docs/JSON.md's field tables are generated from the schema; rewrite them
/// with `CAIRN_BLESS=1 cargo test -p cairn-cli --test cli json_md`.
#[test]
fn json_md_tables_are_generated_from_the_schema() {
    const BEGIN: &str = "<!-- BEGIN GENERATED FIELDS -->\n";
    const END: &str = "<!-- END GENERATED FIELDS -->";
    let path = docs().join("JSON.md");
    let text = fs::read_to_string(&path).unwrap();
    let (head, rest) = text
        .split_once(BEGIN)
        .expect("JSON.md has the BEGIN marker");
    let (_, tail) = rest.split_once(END).expect("JSON.md has the END marker");
    let wanted = format!("{head}{BEGIN}{}{END}{tail}", field_tables(&schema()));
    if std::env::var("CAIRN_BLESS").is_ok_and(|v| v == "1") {
        fs::write(&path, &wanted).unwrap();
        return;
    }
    assert!(
        text == wanted,
        "docs/JSON.md's field tables differ from docs/json/cairn.schema.json: \
         run `CAIRN_BLESS=1 cargo test -p cairn-cli --test cli json_md` and review the diff"
    );
}

/// One `### name` section per definition: its description, then a table
/// of its fields (name, type, required, meaning).
fn field_tables(root: &Value) -> String {
    let mut out = String::new();
    for (name, def) in root["$defs"].as_object().unwrap() {
        out.push_str(&format!("\n### `{name}`\n\n"));
        if let Some(d) = def["description"].as_str() {
            out.push_str(&format!("{d}\n\n"));
        }
        let Some(props) = def["properties"].as_object() else {
            out.push_str(&format!("Type: {}.\n", type_of(def)));
            continue;
        };
        let required: Vec<&str> = (def["required"].as_array().into_iter().flatten())
            .filter_map(Value::as_str)
            .collect();
        out.push_str("| field | type | always | meaning |\n|---|---|---|---|\n");
        for (field, p) in props {
            let mut meaning = p["description"].as_str().unwrap_or("").to_string();
            if p["deprecated"] == true {
                meaning = format!("**deprecated**, removed in the next release: {meaning}");
            }
            let always = if required.contains(&field.as_str()) {
                "yes"
            } else {
                "no"
            };
            out.push_str(&format!(
                "| `{field}` | {} | {always} | {meaning} |\n",
                type_of(p)
            ));
        }
    }
    out
}

/// A short human form of a property's type.
fn type_of(p: &Value) -> String {
    if let Some(r) = p["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return format!("[`{name}`](#{name})");
    }
    if let Some(any) = p["anyOf"].as_array().or(p["oneOf"].as_array()) {
        return any.iter().map(type_of).collect::<Vec<_>>().join(" or ");
    }
    if let Some(values) = p["enum"].as_array() {
        let v: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
        return v.join(", ");
    }
    let base = match &p["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => (ts.iter())
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".into(),
    };
    match p.get("items") {
        Some(items) => base.replacen("array", &format!("array of {}", type_of(items)), 1),
        None if p.get("additionalProperties").is_some_and(Value::is_object) => {
            format!("object of {}", type_of(&p["additionalProperties"]))
        }
        None => base,
    }
}
