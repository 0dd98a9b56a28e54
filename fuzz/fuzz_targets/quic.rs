//! QUIC client Initials. The first byte picks the version the connection
//! is keyed for and the DCID length; then each record is one datagram:
//! tag bit 0 clear = raw bytes as captured, set = the record is the
//! plaintext frame payload of an Initial that this target seals (packet
//! number from the tag's other bits), so fuzzed frames and CRYPTO
//! reassembly are reached behind the AEAD. Complete hellos go to the TLS
//! parser as the pipeline does.
#![no_main]

use kaswatch::proto::quic::{self, QuicClientState};
use kaswatch::proto::tls;
use kaswatch_fuzz::{records, SealKeys, SEAL_VERSIONS};
use libfuzzer_sys::fuzz_target;

const DCID: [u8; 20] = [
    0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
    0x99, 0xaa, 0xbb, 0xcc,
];

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let v = usize::from(head & 0x03) % SEAL_VERSIONS.len();
    // DCID length 0, 4, 8 (RFC vectors) or 20 (longest).
    let dcid = &DCID[..[8usize, 0, 4, 20][usize::from(head >> 2 & 0x03)]];
    let keys = SealKeys::new(v, dcid);
    let mut state: Option<QuicClientState> = None;
    for (tag, rec) in records(rest).take(64) {
        let sealed;
        let datagram = if tag & 1 == 1 {
            let pn_len = usize::from(tag >> 1 & 0x03) + 1;
            sealed = keys.seal(dcid, u32::from(tag >> 3), pn_len, rec);
            &sealed[..]
        } else {
            rec
        };
        let peek = quic::peek_initial(datagram);
        if let Some(h) = peek {
            assert!(h.dcid.len() <= quic::MAX_CID_LEN);
            let _ = quic::is_supported_version(h.version);
        }
        if state.is_none() {
            // Keyed by the connection's version and original DCID, as the
            // pipeline keys it from the first Initial it sees.
            state = match peek {
                Some(h) if tag & 1 == 0 => QuicClientState::new(h.version, h.dcid),
                _ => QuicClientState::new(keys.version(), dcid),
            };
        }
        let Some(st) = state.as_mut() else { continue };
        let _ = st.push_datagram(datagram);
        let _ = tls::scan_handshake(st.crypto_prefix());
        if let Some(hello) = st.client_hello() {
            // A complete message fits the CRYPTO buffer and has its declared length.
            assert!(hello.len() <= quic::MAX_CRYPTO_BYTES);
            assert_eq!(st.handshake_len(), Some(hello.len()));
            let _ = tls::scan_handshake(hello);
        }
    }
});
