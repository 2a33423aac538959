//! Shapes other crates serialize (the runner's reports, bench's tallies),
//! given this schema's names by adding them beside the old ones.

use serde::Serialize;

use super::History;

/// For shapes another crate serializes (the runner's reports, bench's
/// tallies): adds `new` beside every `old` key, at any depth, keeping `old`
/// as a deprecated alias.
pub fn with_aliases(value: impl Serialize, pairs: &[(&str, &str)]) -> serde_json::Value {
    fn walk(v: &mut serde_json::Value, pairs: &[(&str, &str)]) {
        match v {
            serde_json::Value::Object(map) => {
                for (old, new) in pairs {
                    if let Some(x) = map.get(*old).cloned() {
                        map.insert(new.to_string(), x);
                    }
                }
                map.values_mut().for_each(|x| walk(x, pairs));
            }
            serde_json::Value::Array(list) => list.iter_mut().for_each(|x| walk(x, pairs)),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(value).unwrap_or_default();
    walk(&mut v, pairs);
    v
}

/// `cairn run --json`: the runner's reports, with this schema's names.
pub const RUN_ALIASES: [(&str, &str); 2] = [
    ("duration_secs", "duration_s"),
    ("bytes_added", "added_stored_bytes"),
];
/// `cairn health --json`.
pub const HEALTH_ALIASES: [(&str, &str); 2] =
    [("age_secs", "age_s"), ("max_age_secs", "max_age_s")];
/// A `check` finding's `pack_size` sizes.
pub const PROBLEM_ALIASES: [(&str, &str); 2] = [
    ("catalog", "catalog_size_bytes"),
    ("actual", "actual_size_bytes"),
];
/// `cairn bench --json`.
pub const BENCH_ALIASES: [(&str, &str); 7] = [
    ("seconds", "duration_s"),
    ("chunk_min", "chunk_min_bytes"),
    ("chunk_avg", "chunk_avg_bytes"),
    ("chunk_max", "chunk_max_bytes"),
    ("from", "from_bytes"),
    ("to", "to_bytes"),
    ("bytes", "chunk_bytes"),
];
/// `cairn bench --json` without PATH (the repository's growth).
pub const GROWTH_ALIASES: [(&str, &str); 7] = [
    ("seconds", "duration_s"),
    ("chunk_avg", "chunk_avg_bytes"),
    ("added_raw", "added_raw_bytes"),
    ("added_stored", "added_stored_bytes"),
    ("cumulative_logical", "cumulative_logical_bytes"),
    ("cumulative_raw", "cumulative_raw_bytes"),
    ("cumulative_stored", "cumulative_stored_bytes"),
];

/// `cairn bench --json` without PATH: each snapshot also gets `short_id`,
/// `kind` and `name`.
pub fn growth(h: &cairn::HistoryReport) -> serde_json::Value {
    let mut v = with_aliases(h, &GROWTH_ALIASES);
    let list = v.get_mut("snapshots").and_then(|s| s.as_array_mut());
    for (s, g) in list.into_iter().flatten().zip(&h.snapshots) {
        let History { kind, name } = History::parse(&g.history);
        if let Some(map) = s.as_object_mut() {
            map.insert(
                "short_id".into(),
                g.id.chars().take(8).collect::<String>().into(),
            );
            map.insert("kind".into(), kind.into());
            map.insert("name".into(), name.into());
        }
    }
    v
}

/// `cairn config check --json`: the verdict on the runner's config file.
#[derive(Serialize)]
pub struct ConfigCheck {
    pub file: String,
    pub ok: bool,
    pub repositories: Vec<String>,
    pub targets: Vec<ConfigTarget>,
    pub problems: Vec<ConfigProblem>,
}

#[derive(Serialize)]
pub struct ConfigTarget {
    pub target: String,
    pub kind: String,
    pub name: String,
    pub repositories: Vec<String>,
    pub schedule: Option<String>,
}

#[derive(Serialize)]
pub struct ConfigProblem {
    pub file: String,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl ConfigCheck {
    /// `config` is `None` when it did not parse (its problems say why).
    pub fn new(
        file: &std::path::Path,
        config: Option<&cairn_runner::Config>,
        problems: &[cairn_runner::ConfigProblem],
    ) -> Self {
        let targets = config.into_iter().flat_map(|c| c.targets.values());
        ConfigCheck {
            file: file.display().to_string(),
            ok: problems.is_empty(),
            repositories: config
                .map(|c| c.repositories.keys().cloned().collect())
                .unwrap_or_default(),
            targets: targets
                .map(|t| ConfigTarget {
                    target: t.key.clone(),
                    kind: t.label.kind.clone(),
                    name: t.label.name.clone(),
                    repositories: t.repositories.clone(),
                    schedule: t.schedule.as_ref().map(|s| s.to_string()),
                })
                .collect(),
            problems: problems
                .iter()
                .map(|p| ConfigProblem {
                    file: p.file.display().to_string(),
                    line: p.line,
                    key: p.key.clone(),
                    message: p.message.clone(),
                })
                .collect(),
        }
    }
}
