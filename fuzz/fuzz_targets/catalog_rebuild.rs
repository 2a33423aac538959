//! rebuild-catalog reads every pack trailer and manifest in a repository:
//! a repository holding one arbitrary pack and one arbitrary manifest body
//! must rebuild without panicking, reporting what it cannot read, and the
//! rebuilt catalog must open and list.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| *b as usize * data.len() / 256);
    let (pack, body) = data.split_at(split.min(data.len()));
    let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
    let dir = tempfile::tempdir_in(base).unwrap();
    let root = dir.path().join("repo");
    let config = cairn::RepoConfig::new(cairn::ChunkerParams::default(), 1).unwrap();
    drop(cairn::Repository::init(&root, config).unwrap());
    std::fs::remove_file(root.join("catalog.db")).unwrap();

    let pack_name = blake3::hash(pack).to_hex();
    std::fs::create_dir_all(root.join("packs").join(&pack_name[..2])).unwrap();
    std::fs::write(root.join(format!("packs/{}/{pack_name}.pack", &pack_name[..2])), pack).unwrap();
    let mut manifest = Vec::from(*b"\x89CAIRNSN");
    manifest.extend_from_slice(&1u32.to_le_bytes());
    manifest.extend_from_slice(&0u32.to_le_bytes());
    manifest.extend_from_slice(&(body.len() as u64).to_le_bytes());
    manifest.extend_from_slice(&zstd::bulk::compress(body, 1).unwrap());
    std::fs::write(root.join(format!("snapshots/{}.snap", blake3::hash(body).to_hex())), manifest).unwrap();

    let storage = cairn::Repository::open_storage(&root).unwrap();
    let report = storage.rebuild_catalog(&cairn::NoProgress).unwrap();
    assert!(report.packs + report.snapshots + report.unreadable.len() as u64 >= 2);
    let repo = cairn::Repository::open(&root).unwrap();
    let _ = repo.snapshots(&Default::default()).unwrap();
});
