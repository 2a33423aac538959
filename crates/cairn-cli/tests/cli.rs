//! Integration tests of the `cairn` binary: one test binary, modules in
//! `tests/cli/`. Every test works in its own temp directory against a real
//! repository on disk, passed with `--repo` (or `CAIRN_REPO`); data is
//! generated deterministically (`common::SplitMix64`).

#[path = "cli/azure.rs"]
mod azure;
/// The S3 server of the library's tests (std only), shared, not copied.
#[path = "../../cairn/src/storage/object/azurite.rs"]
mod azurite;
#[path = "cli/common.rs"]
mod common;
#[path = "../../cairn/src/storage/object/test_server.rs"]
mod test_server;

#[path = "cli/arg_checks.rs"]
mod arg_checks;
#[path = "cli/bad_input.rs"]
mod bad_input;
#[path = "cli/bench.rs"]
mod bench;
#[path = "cli/browse.rs"]
mod browse;
#[path = "cli/catalog_damage.rs"]
mod catalog_damage;
#[path = "cli/catalog_v3.rs"]
mod catalog_v3;
#[path = "cli/catalog_v4.rs"]
mod catalog_v4;
#[path = "cli/commands.rs"]
mod commands;
#[path = "cli/config_backup.rs"]
mod config_backup;
#[path = "cli/confirm.rs"]
mod confirm;
#[path = "cli/copy.rs"]
mod copy;
#[path = "cli/crash.rs"]
mod crash;
#[path = "cli/daemon.rs"]
mod daemon;
#[path = "cli/dedup.rs"]
mod dedup;
#[path = "cli/delta.rs"]
mod delta;
#[path = "cli/encrypted_run.rs"]
mod encrypted_run;
#[path = "cli/encryption.rs"]
mod encryption;
#[path = "cli/excludes.rs"]
mod excludes;
#[path = "cli/fidelity.rs"]
mod fidelity;
#[path = "cli/fixture.rs"]
mod fixture;
#[path = "cli/forget.rs"]
mod forget;
#[path = "cli/forget_intent.rs"]
mod forget_intent;
#[path = "cli/full_disk.rs"]
mod full_disk;
#[path = "cli/gc.rs"]
mod gc;
#[path = "cli/incomplete.rs"]
mod incomplete;
#[path = "cli/integrity.rs"]
mod integrity;
#[path = "cli/json_schema.rs"]
mod json_schema;
#[path = "cli/kill.rs"]
mod kill;
#[path = "cli/kill_keys.rs"]
mod kill_keys;
#[path = "cli/locks.rs"]
mod locks;
#[path = "cli/manifests.rs"]
mod manifests;
#[path = "cli/mount.rs"]
mod mount;
#[path = "cli/names.rs"]
mod names;
#[path = "cli/notify.rs"]
mod notify;
#[path = "cli/paths.rs"]
mod paths;
#[path = "cli/quiet.rs"]
mod quiet;
#[path = "cli/rebuild_stat_cache.rs"]
mod rebuild_stat_cache;
#[path = "cli/repo.rs"]
mod repo;
#[path = "cli/restore_edge.rs"]
mod restore_edge;
#[path = "cli/roundtrip.rs"]
mod roundtrip;
#[path = "cli/runner.rs"]
mod runner;
#[path = "cli/s3.rs"]
mod s3;
#[path = "cli/s3_faults.rs"]
mod s3_faults;
#[path = "cli/s3_writers.rs"]
mod s3_writers;
#[path = "cli/selectors.rs"]
mod selectors;
#[path = "cli/stdin.rs"]
mod stdin;
#[path = "cli/tag.rs"]
mod tag;
#[path = "cli/tensor.rs"]
mod tensor;
#[path = "cli/tiers.rs"]
mod tiers;
#[path = "cli/trees.rs"]
mod trees;
#[path = "cli/unchanged.rs"]
mod unchanged;
#[path = "cli/upgrade.rs"]
mod upgrade;
