//! The catalog against a real SQLite file in a temp dir.

use super::*;

/// Read-only opening creates nothing, refuses writes, and reads what a
/// writer committed.
#[test]
fn read_only_open_reads_and_never_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    assert!(Catalog::open_read_only(&path).is_err());
    assert!(!path.exists(), "nothing created");
    drop(Catalog::open(&path).unwrap());
    let ro = Catalog::open_read_only(&path).unwrap();
    assert!(ro.is_read_only());
    assert_eq!(ro.pack_totals().unwrap(), (0, 0));
    assert!(ro.lock().execute("DELETE FROM packs", []).is_err());
    let imm = Catalog::open_read_only_with(&path, true).unwrap();
    assert_eq!(imm.pack_totals().unwrap(), (0, 0));
}

#[test]
fn batch_lookup_matches_single_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(&dir.path().join("c.db")).unwrap();
    let ids: Vec<ChunkId> = (0..1200u32)
        .map(|i| ChunkId::of(&i.to_le_bytes()))
        .collect();
    let entries: Vec<PackEntry> = ids
        .iter()
        .step_by(3)
        .enumerate()
        .map(|(i, id)| PackEntry {
            chunk: *id,
            offset: 16 + i as u64,
            stored_len: 1,
            raw_len: 1,
            codec: Codec::Raw,
        })
        .collect();
    cat.add_pack(&PackId::of(b"p"), 1 << 20, &entries).unwrap();
    let found = cat.existing(&ids).unwrap();
    assert_eq!(found.len(), 400);
    for id in &ids {
        assert_eq!(found.contains(id), cat.has_chunk(id).unwrap());
    }
    assert!(cat.existing(&[]).unwrap().is_empty());
}

#[test]
fn threads_share_one_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(&dir.path().join("c.db")).unwrap();
    let ids: Vec<ChunkId> = (0..400u32).map(|i| ChunkId::of(&i.to_le_bytes())).collect();
    std::thread::scope(|s| {
        for (n, group) in ids.chunks(100).enumerate() {
            let cat = &cat;
            s.spawn(move || {
                let entries: Vec<PackEntry> = group
                    .iter()
                    .enumerate()
                    .map(|(i, id)| PackEntry {
                        chunk: *id,
                        offset: 16 + i as u64,
                        stored_len: 1,
                        raw_len: 1,
                        codec: Codec::Raw,
                    })
                    .collect();
                cat.add_pack(&PackId::of(&[n as u8]), 1 << 20, &entries)
                    .unwrap();
                assert_eq!(cat.existing(group).unwrap().len(), group.len());
            });
        }
    });
    assert_eq!(cat.existing(&ids).unwrap().len(), ids.len());
    assert_eq!(cat.pack_totals().unwrap().0, 4);
}

/// Pins the JSON of a listed snapshot (`list --json`, `show --json`):
/// the same keys in the same order, whatever struct holds the label.
#[test]
fn snapshot_info_json_is_pinned() {
    let info = SnapshotInfo {
        id: SnapshotId::of(b"s"),
        label: SnapshotLabel {
            kind: "model".into(),
            name: "llama".into(),
            version: Some("v2".into()),
            tags: vec!["t1".into()],
            description: None,
        },
        host: "box".into(),
        time: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        sources: vec!["/s".into()],
        file_count: 1,
        logical_bytes: 3,
        stats: RunStats::default(),
        damaged: false,
        rowid: 7,
    };
    let id = info.id.to_hex();
    assert_eq!(
        serde_json::to_string(&info).unwrap(),
        format!(
            r#"{{"id":"{id}","kind":"model","name":"llama","version":"v2","tags":["t1"],"description":null,"host":"box","time":"2023-11-14T22:13:20Z","sources":["/s"],"file_count":1,"logical_bytes":3,"stats":{{"files_read":0,"bytes_read":0,"added_raw":0,"added_stored":0,"duration_ms":0}},"damaged":false}}"#
        )
    );
    assert_eq!(info.history(), "model/llama");
}
