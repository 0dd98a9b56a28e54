//! Helpers shared by the kaswatch fuzz targets: the input record format, the
//! shipped signatures compiled once, and QUIC Initial sealing so fuzzed
//! frames get past AEAD into the frame parser.
//!
//! Record format (packet and quic targets): `[tag u8][len u16 BE][len bytes]`
//! repeated; a short last record takes what is left. Seeds are written in
//! this format by `fuzz/seed.py` (run by `tools/fuzz.sh seed`).

use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use aes::Aes128;
use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, Nonce};
use hkdf::Hkdf;
use kaswatch::matcher::Matcher;
use kaswatch::signatures::SignatureSet;
use sha2::Sha256;
use std::sync::{Arc, OnceLock};

/// Split `data` into `(tag, bytes)` records.
pub fn records(mut data: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (&tag, rest) = data.split_first()?;
        let (len, rest) = match rest {
            [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
            _ => (rest.len(), rest),
        };
        let (rec, rest) = rest.split_at(len.min(rest.len()));
        data = rest;
        Some((tag, rec))
    })
}

/// The shipped signatures (`signatures/`), loaded and compiled once.
pub fn matcher() -> Arc<Matcher> {
    static M: OnceLock<Arc<Matcher>> = OnceLock::new();
    M.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../signatures");
        let mut set = SignatureSet::default();
        set.load_path(std::path::Path::new(dir))
            .unwrap_or_else(|e| panic!("loading {dir}: {e}"));
        Arc::new(Matcher::new(&set))
    })
    .clone()
}

/// (version, salt, HKDF labels of key/iv/hp, Initial type bits).
pub type SealVersion = (u32, [u8; 20], [&'static [u8]; 3], u8);

/// Versions [`SealKeys::seal`] can protect.
pub const SEAL_VERSIONS: [SealVersion; 4] = [
    (
        0x0000_0001,
        [
            0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8,
            0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a,
        ],
        [b"quic key", b"quic iv", b"quic hp"],
        0,
    ),
    (
        0x6b33_43cf,
        [
            0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26,
            0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9,
        ],
        [b"quicv2 key", b"quicv2 iv", b"quicv2 hp"],
        1,
    ),
    (
        0xff00_001d,
        [
            0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61,
            0x11, 0xe0, 0x43, 0x90, 0xa8, 0x99,
        ],
        [b"quic key", b"quic iv", b"quic hp"],
        0,
    ),
    // Google T051: gQUIC frame numbering inside IETF-style Initials.
    (
        0x5430_3531,
        [
            0x7a, 0x4e, 0xde, 0xf4, 0xe7, 0xcc, 0xee, 0x5f, 0xa4, 0x50, 0x6c, 0x19, 0x12, 0x4f,
            0xc8, 0xcc, 0xda, 0x6e, 0x03, 0x3d,
        ],
        [b"quic key", b"quic iv", b"quic hp"],
        0,
    ),
];

fn expand_label(hk: &Hkdf<Sha256>, label: &[u8], out: &mut [u8]) {
    let mut info = Vec::with_capacity(label.len() + 10);
    info.extend_from_slice(&(out.len() as u16).to_be_bytes());
    info.push(6 + label.len() as u8);
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label);
    info.push(0);
    hk.expand(&info, out).expect("HKDF output length");
}

/// Client Initial keys (key, iv, hp) of `SEAL_VERSIONS[v]` for `dcid`.
pub struct SealKeys {
    version: u32,
    initial_type: u8,
    aead: Aes128Gcm,
    iv: [u8; 12],
    hp: Aes128,
}

impl SealKeys {
    pub fn new(v: usize, dcid: &[u8]) -> Self {
        let (version, salt, labels, initial_type) = SEAL_VERSIONS[v % SEAL_VERSIONS.len()];
        let (_, initial) = Hkdf::<Sha256>::extract(Some(&salt), dcid);
        let mut secret = [0u8; 32];
        expand_label(&initial, b"client in", &mut secret);
        let hk = Hkdf::<Sha256>::from_prk(&secret).expect("PRK length");
        let (mut key, mut iv, mut hp) = ([0u8; 16], [0u8; 12], [0u8; 16]);
        expand_label(&hk, labels[0], &mut key);
        expand_label(&hk, labels[1], &mut iv);
        expand_label(&hk, labels[2], &mut hp);
        SealKeys {
            version,
            initial_type,
            aead: Aes128Gcm::new(&Array::from(key)),
            iv,
            hp: Aes128::new(&Array::from(hp)),
        }
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// A protected client Initial (RFC 9001 §5) carrying `frames` (padded
    /// with PADDING to at least 4 bytes so the header-protection sample exists).
    pub fn seal(&self, dcid: &[u8], pn: u32, pn_len: usize, frames: &[u8]) -> Vec<u8> {
        let pn_len = pn_len.clamp(1, 4);
        let mut payload = frames.to_vec();
        if payload.len() < 4 {
            payload.resize(4, 0);
        }
        let mut pkt = vec![0xc0 | (self.initial_type << 4) | (pn_len as u8 - 1)];
        pkt.extend(self.version.to_be_bytes());
        pkt.push(dcid.len() as u8);
        pkt.extend_from_slice(dcid);
        pkt.push(0); // SCID length
        pkt.push(0); // token length
        let length = (pn_len + payload.len() + 16) as u64;
        if length < 0x4000 {
            pkt.extend(((length as u16) | 0x4000).to_be_bytes());
        } else {
            pkt.extend(((length as u32) | 0x8000_0000).to_be_bytes());
        }
        let pn_offset = pkt.len();
        pkt.extend_from_slice(&pn.to_be_bytes()[4 - pn_len..]);
        let mut nonce = self.iv;
        for (n, p) in nonce
            .iter_mut()
            .rev()
            .zip(u64::from(pn).to_be_bytes().iter().rev())
        {
            *n ^= p;
        }
        let tag = self
            .aead
            .encrypt_inout_detached(&Nonce::from(nonce), &pkt, payload.as_mut_slice().into())
            .expect("AES-GCM seal");
        pkt.extend_from_slice(&payload);
        pkt.extend_from_slice(&tag);
        let sample: [u8; 16] = pkt[pn_offset + 4..pn_offset + 20]
            .try_into()
            .expect("sample");
        let mut block = Array::from(sample);
        self.hp.encrypt_block(&mut block);
        pkt[0] ^= block[0] & 0x0f;
        for i in 0..pn_len {
            pkt[pn_offset + i] ^= block[1 + i];
        }
        pkt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split() {
        let v: Vec<_> = records(&[1, 0, 2, 9, 9, 3, 0, 5, 7]).collect();
        assert_eq!(v, vec![(1, &[9u8, 9][..]), (3, &[7][..])]);
        let v: Vec<_> = records(&[4, 0]).collect();
        assert_eq!(v, vec![(4, &[0u8][..])]);
    }

    /// Sealed Initials decrypt in kaswatch (keys and header protection right).
    #[test]
    fn sealed_initial_opens() {
        let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
        for v in 0..SEAL_VERSIONS.len() {
            let k = SealKeys::new(v, &dcid);
            let frames = [0u8; 40]; // PADDING: only decryption is checked here
            let pkt = k.seal(&dcid, 0, 1, &frames);
            let mut st =
                kaswatch::proto::quic::QuicClientState::new(k.version(), &dcid).expect("state");
            st.push_datagram(&pkt);
            assert_eq!(st.packets_decrypted(), 1, "version {:08x}", k.version());
        }
    }
}
