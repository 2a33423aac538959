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

fn v4_fixture_catalog() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../cairn-cli/tests/fixtures/catalog-v4/repo/catalog.db")
}

/// (pack id, chunk id, offset) of every chunk row, read with plain SQL.
fn raw_chunk_rows(path: &Path) -> Vec<(Vec<u8>, Vec<u8>, i64)> {
    Connection::open(path)
        .unwrap()
        .prepare(
            "SELECT p.pack_id, c.chunk_id, c.offset FROM chunks c JOIN packs p ON p.id = c.pack
             ORDER BY p.pack_id, c.offset",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// Every pack's entries as `pack_entries` returns them, by pack id.
fn entries_by_pack(cat: &Catalog) -> Vec<(Vec<u8>, Vec<u8>, i64)> {
    let mut out = Vec::new();
    for p in cat.pack_rows().unwrap() {
        for e in cat.pack_entries(p.rowid).unwrap() {
            out.push((p.id.0.to_vec(), e.chunk.0.to_vec(), e.offset as i64));
        }
    }
    out.sort();
    out
}

/// A catalog written by the cairn of schema 4 (with `chunks_by_pack`) is
/// upgraded in place by a read-write or a read-only open: the index goes,
/// no row changes, and each pack's chunks read back the same through the
/// scan and through check's temporary by-pack table.
#[test]
fn a_schema_4_catalog_is_upgraded_on_open() {
    for read_only in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::copy(v4_fixture_catalog(), &path).unwrap();
        let before = raw_chunk_rows(&path);
        assert!(before.len() > 4, "{before:?}");
        let cat = if read_only {
            Catalog::open_read_only(&path).unwrap()
        } else {
            Catalog::open(&path).unwrap()
        };
        assert_eq!(cat.schema_version().unwrap(), SCHEMA_VERSION.to_string());
        let indexes: i64 = cat
            .lock()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'chunks_by_pack'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 0);
        assert_eq!(cat.snapshots(&SnapshotFilter::default()).unwrap().len(), 2);
        let scanned = entries_by_pack(&cat);
        let by_pack = cat.chunks_by_pack().unwrap();
        assert_eq!(entries_by_pack(&cat), scanned);
        drop(by_pack);
        let mut before = before;
        before.sort();
        assert_eq!(scanned, before);
        assert!(cat.integrity_problems(Integrity::Quick).unwrap().is_empty());
    }
}

fn entry(i: u32, offset: u64) -> PackEntry {
    PackEntry {
        chunk: ChunkId::of(&i.to_le_bytes()),
        offset,
        stored_len: 10,
        raw_len: 20,
        codec: Codec::Raw,
    }
}

/// gc's questions by pack without a by-pack index: usage per pack against
/// the mark set, in row order, and dropping packs only when no live chunk
/// is located in them (then every row of theirs goes, and no other).
#[test]
fn pack_usage_and_drop_packs_scan_by_pack() {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(&dir.path().join(FILE_NAME)).unwrap();
    let packs: Vec<PackId> = (0..3u8).map(|i| PackId([i + 1; 32])).collect();
    for (p, pack) in packs.iter().enumerate() {
        // Offsets out of order: pack_entries must return file order.
        let entries: Vec<PackEntry> = (0..4)
            .map(|j| entry(p as u32 * 10 + j, 16 + 100 * u64::from(3 - j)))
            .collect();
        cat.add_pack(pack, 1000, &entries).unwrap();
    }
    let entries = cat
        .pack_entries(cat.pack_row_id(&packs[1]).unwrap())
        .unwrap();
    let offsets: Vec<u64> = entries.iter().map(|e| e.offset).collect();
    assert_eq!(offsets, [16, 116, 216, 316]);
    assert!(entries.iter().all(|e| e.chunk.0[..4] != [0; 4]));

    cat.mark_referenced(MarkSet::GcLive, &[]).unwrap();
    let live = [entry(0, 0).chunk, entry(1, 0).chunk, entry(20, 0).chunk];
    cat.mark_chunks(MarkSet::GcLive, &live).unwrap();
    let usage = cat.pack_usage(MarkSet::GcLive).unwrap();
    let got: Vec<(PackId, u64, u64, u64)> = usage
        .iter()
        .map(|u| (u.pack, u.chunks, u.live_chunks, u.live_bytes))
        .collect();
    assert_eq!(
        got,
        [
            (packs[0], 4, 2, 20),
            (packs[1], 4, 0, 0),
            (packs[2], 4, 1, 10)
        ]
    );

    let row = |i: usize| usage[i].rowid;
    let refused = cat.drop_packs(MarkSet::GcLive, [(row(1), &packs[1]), (row(2), &packs[2])]);
    let message = refused.unwrap_err().to_string();
    assert!(message.contains(&packs[2].to_string()), "{message}");
    assert_eq!(cat.chunk_totals().unwrap().0, 12, "nothing dropped");
    assert_eq!(
        cat.drop_packs(MarkSet::GcLive, [(row(1), &packs[1])])
            .unwrap(),
        4
    );
    assert_eq!(cat.pack_totals().unwrap().0, 2);
    assert_eq!(cat.chunk_totals().unwrap().0, 8);
    assert!(cat.locate(&entry(10, 0).chunk).unwrap().is_none());
    assert!(cat.locate(&entry(20, 0).chunk).unwrap().is_some());
}
