//! The blob layer's own guarantees: seal → open round trips for every
//! codec, damage is a typed error naming chunk and pack, and the chunk
//! reader returns chunks in order across packs and runs; each for an
//! unencrypted and an encrypted repository ([`crypts`]).

use super::*;
use crate::format::pack::PackWriter;
use crate::storage::MemoryStorage;
use crate::test_support::random_bytes;

/// Little-endian f32s of a smooth curve: byte planes shrink these.
fn floats(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| (1.0f32 + (i as f32 * 0.001).sin() * 1e-3).to_le_bytes())
        .collect()
}

/// The two kinds of repository: plain, and encrypted with a fixed key.
fn crypts() -> [Crypt; 2] {
    use crate::format::seal::{Keys, SecretKey};
    [
        Crypt::plain(),
        Crypt::with_keys(Keys::derive(SecretKey::from_bytes([11; 32]), "k")),
    ]
}

fn entry_of(sealed: &SealedChunk) -> PackEntry {
    PackEntry {
        chunk: sealed.id,
        offset: 0,
        stored_len: sealed.stored.len() as u32,
        raw_len: sealed.raw_len,
        codec: sealed.codec,
    }
}

#[test]
fn seal_then_open_round_trips_every_codec() {
    let planes = Hint::Planes {
        width: 4,
        float: true,
    };
    let cases = [
        (random_bytes(1, 10_000), 3, Hint::Bytes, Codec::Raw),
        (vec![b'a'; 10_000], 0, Hint::Bytes, Codec::Raw),
        (vec![b'a'; 10_000], 3, Hint::Bytes, Codec::Zstd),
        (floats(4096), 3, planes, Codec::Planes),
    ];
    let pack = PackId([9; 32]);
    for crypt in crypts() {
        for (raw, level, hint, codec) in &cases {
            let sealed = seal_chunk(&crypt, raw, *level, *hint);
            assert_eq!(sealed.codec, *codec, "level {level}, {hint:?}");
            assert_eq!(sealed.id, crypt.chunk_id(raw));
            assert_eq!(
                sealed.id == ChunkId::of(raw),
                !crypt.is_encrypted(),
                "keyed ids when encrypted"
            );
            assert_eq!(sealed.raw_len as usize, raw.len());
            let opened = open_chunk(
                &crypt,
                &References::none(),
                &pack,
                &entry_of(&sealed),
                &sealed.stored,
            )
            .unwrap();
            assert_eq!(&opened, raw);
        }
    }
}

/// Encrypted: two chunks' stored bytes swapped (each still a valid seal)
/// do not open as each other.
#[test]
fn swapped_sealed_chunks_do_not_open() {
    let [_, crypt] = crypts();
    let pack = PackId([9; 32]);
    let a = seal_chunk(&crypt, b"chunk a", 0, Hint::Bytes);
    let b = seal_chunk(&crypt, b"chunk b", 0, Hint::Bytes);
    assert!(open_chunk(&crypt, &References::none(), &pack, &entry_of(&a), &b.stored).is_err());
    assert!(!a.stored.windows(7).any(|w| w == b"chunk a"));
}

#[test]
fn a_flipped_stored_byte_is_a_corrupt_chunk_naming_chunk_and_pack() {
    let pack = PackId([7; 32]);
    let cases = crypts().into_iter().flat_map(|c| {
        [(random_bytes(2, 5000), 0), (vec![b'z'; 5000], 3)]
            .map(|(raw, level)| (c.clone(), raw, level))
    });
    for (crypt, raw, level) in cases {
        let mut sealed = seal_chunk(&crypt, &raw, level, Hint::Bytes);
        let mid = sealed.stored.len() / 2;
        sealed.stored[mid] ^= 0x40;
        match open_chunk(
            &crypt,
            &References::none(),
            &pack,
            &entry_of(&sealed),
            &sealed.stored,
        ) {
            Err(Error::CorruptChunk { chunk, pack: p, .. }) => {
                assert_eq!(chunk, sealed.id);
                assert_eq!(p, pack);
            }
            other => panic!("level {level}: expected CorruptChunk, got {other:?}"),
        }
    }
}

#[test]
fn read_chunks_returns_runs_across_two_packs_in_order() {
    for crypt in crypts() {
        read_chunks_in_order(&crypt);
    }
}

fn read_chunks_in_order(crypt: &Crypt) {
    let storage = MemoryStorage::new();
    let raws: Vec<Vec<u8>> = (0..6).map(|i| random_bytes(10 + i, 3000)).collect();
    // Chunks 0..3 in pack A, 3..6 in pack B.
    let mut locs_by_chunk = Vec::new();
    for part in raws.chunks(3) {
        let mut w = PackWriter::new().sealing(crypt);
        for raw in part {
            let s = seal_chunk(crypt, raw, 3, Hint::Bytes);
            w.add(s.id, s.codec, s.raw_len, &s.stored);
        }
        let sealed = w.finish();
        storage.put(&pack::key(&sealed.id), &sealed.bytes).unwrap();
        locs_by_chunk.extend(sealed.entries.iter().map(|&entry| ChunkLocation {
            pack: sealed.id,
            entry,
        }));
    }
    // Runs A0-A1, B0-B2, A2, A0 (a gap, a pack switch, a repeat).
    let order = [0, 1, 3, 4, 5, 2, 0];
    let locs: Vec<ChunkLocation> = order.iter().map(|&i| locs_by_chunk[i]).collect();
    let got = read_chunks(&storage, crypt, &References::none(), &locs).unwrap();
    let want: Vec<Vec<u8>> = order.iter().map(|&i| raws[i].clone()).collect();
    assert_eq!(got, want);
    assert_eq!(
        read_chunk(&storage, crypt, &References::none(), &locs[2]).unwrap(),
        raws[3]
    );
}

/// A flipped byte in one chunk of a run read with one range request (and
/// opened in place in the read buffer) fails the read naming that chunk;
/// its neighbours in the same run still read on their own.
#[test]
fn a_damaged_chunk_inside_a_run_is_named() {
    for crypt in crypts() {
        let storage = MemoryStorage::new();
        let raws: Vec<Vec<u8>> = (0..3).map(|i| random_bytes(20 + i, 3000)).collect();
        let mut w = PackWriter::new().sealing(&crypt);
        for raw in &raws {
            let s = seal_chunk(&crypt, raw, 3, Hint::Bytes);
            w.add(s.id, s.codec, s.raw_len, &s.stored);
        }
        let sealed = w.finish();
        let locs: Vec<ChunkLocation> = sealed
            .entries
            .iter()
            .map(|&entry| ChunkLocation {
                pack: sealed.id,
                entry,
            })
            .collect();
        let mut bytes = sealed.bytes.clone();
        let hit = &locs[1].entry;
        bytes[(hit.offset + hit.stored_len as u64 / 2) as usize] ^= 0x08;
        storage.put(&pack::key(&sealed.id), &bytes).unwrap();
        match read_chunks(&storage, &crypt, &References::none(), &locs) {
            Err(Error::CorruptChunk { chunk, pack: p, .. }) => {
                assert_eq!((chunk, p), (hit.chunk, sealed.id), "{crypt:?}");
            }
            other => panic!("{crypt:?}: expected CorruptChunk, got {other:?}"),
        }
        let ends = [locs[0], locs[2]];
        let got = read_chunks(&storage, &crypt, &References::none(), &ends).unwrap();
        assert_eq!(got, vec![raws[0].clone(), raws[2].clone()]);
    }
}

#[test]
fn a_missing_pack_is_a_corrupt_chunk() {
    let storage = MemoryStorage::new();
    let s = seal_chunk(&Crypt::plain(), b"lost", 0, Hint::Bytes);
    let loc = ChunkLocation {
        pack: PackId([1; 32]),
        entry: entry_of(&s),
    };
    match read_chunks(&storage, &Crypt::plain(), &References::none(), &[loc]) {
        Err(Error::CorruptChunk { reason, .. }) => assert_eq!(reason, "pack is missing"),
        other => panic!("expected CorruptChunk, got {other:?}"),
    }
}

/// Adjacent chunks join one range request up to [`SPAN_MAX`]; a longer
/// run is split (so object storage reads it with several requests in
/// flight), and a single chunk longer than that is still one request.
#[test]
fn runs_are_cut_at_span_max() {
    let loc = |pack: u8, offset: u64, stored_len: u32| ChunkLocation {
        pack: PackId([pack; 32]),
        entry: PackEntry {
            chunk: ChunkId([offset as u8; 32]),
            offset,
            stored_len,
            raw_len: stored_len,
            codec: Codec::Raw,
        },
    };
    let mut locs: Vec<ChunkLocation> = (0..6).map(|i| loc(1, i * 700_000, 700_000)).collect();
    locs.push(loc(1, 4_200_000, 3 << 20));
    locs.push(loc(2, 0, 100));
    let lens: Vec<usize> = runs_of(&locs).iter().map(|r| r.len()).collect();
    // 3 x 700,000 bytes would pass 2 MiB (2,097,152).
    assert_eq!(lens, [2, 2, 2, 1, 1]);
    assert!(runs_of(&[]).is_empty());
}

/// A run longer than [`SPAN_MAX`] read in pieces comes back whole and in
/// order, and a pack cut short is damage to a chunk of the piece past
/// its end.
#[test]
fn a_run_read_in_pieces_comes_back_in_order() {
    let storage = MemoryStorage::new();
    let crypt = Crypt::plain();
    let raws: Vec<Vec<u8>> = (0..5).map(|i| random_bytes(40 + i, 1 << 20)).collect();
    let mut w = PackWriter::new();
    for raw in &raws {
        let s = seal_chunk(&crypt, raw, 0, Hint::Bytes);
        w.add(s.id, s.codec, s.raw_len, &s.stored);
    }
    let sealed = w.finish();
    storage.put(&pack::key(&sealed.id), &sealed.bytes).unwrap();
    let locs: Vec<ChunkLocation> = sealed
        .entries
        .iter()
        .map(|&entry| ChunkLocation {
            pack: sealed.id,
            entry,
        })
        .collect();
    assert!(runs_of(&locs).len() >= 3);
    let got = read_chunks(&storage, &crypt, &References::none(), &locs).unwrap();
    assert_eq!(got, raws);

    let cut = locs[4].entry.offset as usize + 10;
    storage
        .put(&pack::key(&sealed.id), &sealed.bytes[..cut])
        .unwrap();
    match read_chunks(&storage, &crypt, &References::none(), &locs) {
        Err(Error::CorruptChunk { chunk, reason, .. }) => {
            assert_eq!(reason, "pack is truncated");
            assert_eq!(chunk, runs_of(&locs).last().unwrap()[0].entry.chunk);
        }
        other => panic!("expected CorruptChunk, got {other:?}"),
    }
}
