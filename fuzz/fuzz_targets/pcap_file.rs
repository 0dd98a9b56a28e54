//! The capture file readers (pcap, pcapng, either gzipped) over arbitrary
//! file contents, through `CaptureFile::open` + `for_each` as `kaswatch read`
//! uses them. The API takes a path, so each input is written to a file in
//! /dev/shm (tmpfs) first, or the system temp dir.
#![no_main]

use kaswatch::capture::file::{CaptureFile, End};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn path() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("kaswatch-fuzz-pcap-{}.bin", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let p = path();
    std::fs::write(p, data).expect("write temp capture");
    let Ok(f) = CaptureFile::open(p) else {
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
