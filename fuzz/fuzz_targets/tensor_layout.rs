//! Model files are input from disk: the layout parser (safetensors, GGUF,
//! PyTorch zip checkpoints and their pickles) must never panic on arbitrary
//! bytes, and every region it accepts must lie inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut cursor = std::io::Cursor::new(data);
    if let Ok(Some(layout)) = cairn::ingest::tensor::parse_layout(&mut cursor, data.len() as u64) {
        for t in &layout.tensors {
            assert!(t.offset + t.len <= data.len() as u64);
        }
        let _ = cairn::ingest::tensor::boundaries(&layout);
    }
});
