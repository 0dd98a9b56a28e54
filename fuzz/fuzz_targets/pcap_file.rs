//! The capture file readers (pcap, pcapng, either gzipped) over arbitrary
//! file contents, through `CaptureFile::from_bytes` + `for_each`: the same
//! recognition and reading loop as `CaptureFile::open` on a file holding
//! these bytes (`kaswatch read`), without a file per input.
#![no_main]

use kaswatch::capture::file::{CaptureFile, End};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(f) = CaptureFile::from_bytes(data.to_vec()) else {
        return;
    };
    let mut frames = 0u64;
    let mut bytes = 0usize;
    let summary = f.for_each(|n, raw| {
        frames += 1;
        assert_eq!(n, frames, "frames numbered from 1 without gaps");
        bytes = bytes.wrapping_add(raw.data.len());
    });
    match &summary.end {
        End::Complete => assert_eq!(summary.frames, frames),
        // The count includes a frame that was numbered but refused (an
        // undescribed interface), so it may be one more than delivered.
        End::Damaged(why) => {
            assert!(!why.is_empty());
            assert!(summary.frames == frames || summary.frames == frames + 1);
        }
    }
});
