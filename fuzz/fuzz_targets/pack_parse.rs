//! Pack files come from disk and may be damaged or crafted: parsing must
//! never panic or allocate from an unchecked length, and every entry it
//! accepts must lie inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = cairn::format::pack::parse(data) {
        for e in entries {
            let end = e.offset as usize + e.stored_len as usize;
            assert!(end <= data.len());
            let _ = cairn::format::codec::decode(e.codec, &data[e.offset as usize..end], e.raw_len as usize);
        }
    }
});
