//! TLS ClientHello scanning as the flow layer does it: on stream prefixes
//! (a hello found in a prefix must be found, the same, in the whole), and on
//! a bare handshake message as QUIC hands it over.
#![no_main]

use kaswatch::proto::tls::{self, TlsScan};
use libfuzzer_sys::fuzz_target;

fn sni(s: &TlsScan<'_>) -> Option<Option<Vec<u8>>> {
    match s {
        TlsScan::Hello(h) => Some(h.sni.map(<[u8]>::to_vec)),
        _ => None,
    }
}

fuzz_target!(|buf: &[u8]| {
    let _ = tls::looks_like_tls(buf);
    let mut scratch = Vec::new();
    let whole = sni(&tls::scan_client_stream(buf, &mut scratch));
    // Prefixes at a few cut points, as segments arrive.
    let cuts = [
        1usize,
        5,
        6,
        9,
        buf.len() / 3,
        buf.len() / 2,
        buf.len().saturating_sub(1),
    ];
    for &cut in &cuts {
        let Some(prefix) = buf.get(..cut) else {
            continue;
        };
        let mut s2 = Vec::new();
        let part = tls::scan_client_stream(prefix, &mut s2);
        if let Some(name) = sni(&part) {
            assert_eq!(
                whole.as_ref(),
                Some(&name),
                "hello in a prefix of {cut} bytes differs"
            );
        }
    }
    let _ = tls::scan_handshake(buf);
});
