//! Manifests come from disk: decoding arbitrary bytes, framed or not, must
//! never panic; whatever decodes must re-encode to a manifest that decodes
//! to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // As a whole file.
    let _ = cairn::format::manifest::Manifest::decode(data, None, "fuzz");
    // As a body inside a valid frame, so the bincode decoder sees it.
    let mut framed = Vec::from(*b"\x89CAIRNSN");
    framed.extend_from_slice(&1u32.to_le_bytes());
    framed.extend_from_slice(&0u32.to_le_bytes());
    framed.extend_from_slice(&(data.len() as u64).to_le_bytes());
    framed.extend_from_slice(&zstd::bulk::compress(data, 1).unwrap());
    if let Ok(m) = cairn::format::manifest::Manifest::decode(&framed, None, "fuzz") {
        let (id, bytes) = m.encode();
        let again = cairn::format::manifest::Manifest::decode(&bytes, Some(&id), "fuzz").unwrap();
        assert_eq!(again, m);
    }
});
