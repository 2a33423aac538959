//! Integration tests of the `cairn` binary: one test binary, modules in
//! `tests/cli/`. Every test works in its own temp directory against a real
//! repository on disk, passed with `--repo` (or `CAIRN_REPO`); data is
//! generated deterministically (`common::SplitMix64`).

#[path = "cli/common.rs"]
mod common;

#[path = "cli/arg_checks.rs"]
mod arg_checks;
#[path = "cli/bad_input.rs"]
mod bad_input;
#[path = "cli/bench.rs"]
mod bench;
#[path = "cli/catalog_damage.rs"]
mod catalog_damage;
#[path = "cli/commands.rs"]
mod commands;
#[path = "cli/config_backup.rs"]
mod config_backup;
#[path = "cli/crash.rs"]
mod crash;
#[path = "cli/dedup.rs"]
mod dedup;
#[path = "cli/encrypted_run.rs"]
mod encrypted_run;
#[path = "cli/encryption.rs"]
mod encryption;
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
#[path = "cli/kill.rs"]
mod kill;
#[path = "cli/locks.rs"]
mod locks;
#[path = "cli/manifests.rs"]
mod manifests;
#[path = "cli/repo.rs"]
mod repo;
#[path = "cli/restore_edge.rs"]
mod restore_edge;
#[path = "cli/roundtrip.rs"]
mod roundtrip;
#[path = "cli/selectors.rs"]
mod selectors;
#[path = "cli/tensor.rs"]
mod tensor;
