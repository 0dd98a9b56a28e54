//! Signature TOML text into the loader; a set that loads compiles into a
//! matcher in which every pattern finds itself.
#![no_main]

use kaswatch::matcher::Matcher;
use kaswatch::signatures::SignatureSet;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut set = SignatureSet::default();
    match set.load_str(Path::new("fuzz.toml"), text) {
        Ok(()) => {
            let m = Matcher::new(&set);
            for s in set.signatures.iter().take(64) {
                assert!(
                    m.lookup(s.pattern.as_bytes()).is_some(),
                    "pattern {:?} does not match itself",
                    s.pattern
                );
                let _ = m.lookup_str(&format!("x.{}", s.pattern));
            }
            let _ = set.count_by_category();
        }
        Err(e) => {
            // Errors are one printable line.
            let msg = e.to_string();
            assert!(!msg.is_empty());
        }
    }
});
