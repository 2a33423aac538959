//! Manifests come from disk: decoding arbitrary bytes, framed or not, must
//! never panic; whatever decodes (as version 1 or 2) must re-encode to a
//! manifest that decodes to the same value.
#![no_main]

use cairn::format::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // As a whole file.
    let _ = Manifest::decode_stored(data, None, "fuzz");
    // As a body inside a valid frame of each version, so the bincode
    // decoder sees it.
    for version in [1u32, 2] {
        let mut framed = Vec::from(*b"\x89CAIRNSN");
        framed.extend_from_slice(&version.to_le_bytes());
        framed.extend_from_slice(&0u32.to_le_bytes());
        framed.extend_from_slice(&(data.len() as u64).to_le_bytes());
        framed.extend_from_slice(&zstd::bulk::compress(data, 1).unwrap());
        if let Ok(m) = Manifest::decode_stored(&framed, None, "fuzz") {
            let (id, bytes) = m.encode();
            let again = Manifest::decode_stored(&bytes, Some(&id), "fuzz").unwrap();
            assert_eq!(again, m);
        }
    }
});
