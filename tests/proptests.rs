//! Property tests (issue 16): arbitrary and mutated bytes never panic any
//! parser; a TLS ClientHello cut into TCP segments, and a QUIC ClientHello
//! cut into CRYPTO frames of several Initials, delivered in random order
//! with duplicates through the pipeline (`Worker::process` on frames built
//! here) yield the same SNI as in one piece. Case counts keep the file well
//! under 30 s in a debug build; `PROPTEST_CASES=N` overrides them all.
#![cfg(test)]

use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use aes::Aes128;
use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, Nonce};
use hkdf::Hkdf;
use kaswatch::capture::RawPacket;
use kaswatch::decode::{self, linktype};
use kaswatch::matcher::Matcher;
use kaswatch::pipeline::{ObsKind, PktMeta, Worker, WorkerConfig};
use kaswatch::proto::name::MAX_NAME_LEN;
use kaswatch::proto::{dns, http, quic, tls, Protocol};
use kaswatch::signatures::SignatureSet;
use kaswatch::stats::Counters;
use proptest::prelude::*;
use proptest::sample::Index;
use sha2::Sha256;
use std::sync::{Arc, OnceLock};

fn matcher() -> Arc<Matcher> {
    static M: OnceLock<Arc<Matcher>> = OnceLock::new();
    M.get_or_init(|| {
        let mut set = SignatureSet::default();
        set.load_path(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("signatures"))
            .expect("shipped signatures load");
        Arc::new(Matcher::new(&set))
    })
    .clone()
}

fn cases(n: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    ProptestConfig {
        cases: n,
        // Failures are reported with the shrunk input; no files written.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------- frames

const CLIENT: [u8; 4] = [192, 168, 10, 21];
const SERVER: [u8; 4] = [203, 0, 113, 80];

fn ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![
        0x00, 0x1b, 0x21, 0xaa, 0x00, 0x01, 0x00, 0x1b, 0x21, 0xaa, 0x00, 0x21,
    ];
    f.extend([0x08, 0x00]);
    let total = (20 + l4.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend(CLIENT);
    ip.extend(SERVER);
    let sum = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum::<u32>();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend(ip);
    f.extend_from_slice(l4);
    f
}

fn tcp_frame(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload.len());
    t.extend(49152u16.to_be_bytes());
    t.extend(443u16.to_be_bytes());
    t.extend(seq.to_be_bytes());
    t.extend(
        if flags & decode::TCP_ACK != 0 {
            7u32
        } else {
            0
        }
        .to_be_bytes(),
    );
    t.extend([0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    ipv4(6, &t)
}

fn udp_frame(payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend(50000u16.to_be_bytes());
    u.extend(443u16.to_be_bytes());
    u.extend(((8 + payload.len()) as u16).to_be_bytes());
    u.extend([0, 0]);
    u.extend_from_slice(payload);
    ipv4(17, &u)
}

/// Run Ethernet frames through one worker; the names it reports for `proto`.
fn names(frames: &[Vec<u8>], proto: Protocol) -> Vec<String> {
    let mut w = Worker::new(matcher(), WorkerConfig { all_names: true });
    for (i, f) in frames.iter().enumerate() {
        let raw = RawPacket {
            ts: 1_700_000_000_000_000_000 + i as u64 * 1_000_000,
            linktype: linktype::ETHERNET,
            interface: 0,
            data: f,
            wire_len: f.len() as u32,
        };
        let meta = PktMeta {
            seq: i as u64,
            input: 0,
            frame: i as u64 + 1,
        };
        w.process(meta, &raw);
    }
    w.take()
        .into_iter()
        .filter(|o| o.protocol == proto && o.kind == ObsKind::Name)
        .map(|o| o.name.to_string())
        .collect()
}

// ---------------------------------------------------------------- TLS

const NAMES: [&str; 5] = [
    "dnl-01.geo.kaspersky.com",
    "ds.kaspersky.com",
    "ksn-a-stat-geo.kaspersky-labs.com",
    "www.example.org",
    "a.b",
];

/// A TLS 1.3-style ClientHello handshake message naming `sni`, padded by
/// `pad` bytes (post-quantum key shares make real ones 1.5-2 KB).
fn client_hello(sni: &str, pad: usize, quic_params: bool) -> Vec<u8> {
    let mut ext = Vec::new();
    let mut push = |t: u16, body: &[u8]| {
        ext.extend(t.to_be_bytes());
        ext.extend((body.len() as u16).to_be_bytes());
        ext.extend_from_slice(body);
    };
    let n = sni.as_bytes();
    let mut sn = ((n.len() + 3) as u16).to_be_bytes().to_vec();
    sn.push(0);
    sn.extend((n.len() as u16).to_be_bytes());
    sn.extend_from_slice(n);
    push(0x0a0a, &[]); // GREASE
    push(0, &sn);
    push(16, b"\x00\x0c\x02h2\x08http/1.1");
    push(43, &[4, 0x03, 0x04, 0x03, 0x03]);
    push(10, &[0, 4, 0, 0x1d, 0, 0x17]);
    if quic_params {
        push(0x39, &[0x01, 0x02, 0x40, 0x64]);
    }
    push(21, &vec![0u8; pad]);
    let mut body = vec![0x03, 0x03];
    body.extend((0..32u8).map(|i| i.wrapping_mul(37)));
    body.push(32);
    body.extend([0x5a; 32]);
    body.extend([0, 6, 0x13, 0x01, 0x13, 0x02, 0x13, 0x03]);
    body.extend([1, 0]);
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut msg = vec![1];
    msg.extend(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend(body);
    msg
}

/// The handshake message in TLS records, cut at `cuts` (record boundaries).
fn records(msg: &[u8], cuts: &[Index]) -> Vec<u8> {
    let mut at: Vec<usize> = cuts.iter().map(|c| 1 + c.index(msg.len() - 1)).collect();
    at.push(msg.len());
    at.sort_unstable();
    at.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for end in at {
        out.extend([0x16, 0x03, 0x01]);
        out.extend(((end - start) as u16).to_be_bytes());
        out.extend_from_slice(&msg[start..end]);
        start = end;
    }
    out
}

/// Deterministic shuffle (xorshift seeded by the case).
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    seed |= 1;
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

const ISN: u32 = 0xffff_ff00; // the stream's sequence numbers wrap

/// Segments of `stream` as (offset, bytes): cut at `cuts`, plus duplicates
/// of some and retransmissions that straddle boundaries.
fn segments(
    stream: &[u8],
    cuts: &[Index],
    dups: &[Index],
    overlaps: &[(Index, Index)],
) -> Vec<(usize, Vec<u8>)> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len())).collect();
    at.extend([0, stream.len()]);
    at.sort_unstable();
    at.dedup();
    let mut segs: Vec<(usize, Vec<u8>)> = at
        .windows(2)
        .map(|w| (w[0], stream[w[0]..w[1]].to_vec()))
        .collect();
    let n = segs.len();
    for d in dups {
        segs.push(segs[d.index(n)].clone());
    }
    for (a, len) in overlaps {
        let start = a.index(stream.len());
        let end = (start + 1 + len.index(600)).min(stream.len());
        segs.push((start, stream[start..end].to_vec()));
    }
    segs
}

fn tls_frames(segs: &[(usize, Vec<u8>)]) -> Vec<Vec<u8>> {
    let mut frames = vec![tcp_frame(ISN, decode::TCP_SYN, &[])];
    for (off, data) in segs {
        let seq = ISN.wrapping_add(1).wrapping_add(*off as u32);
        frames.push(tcp_frame(seq, decode::TCP_ACK | 0x08, data));
    }
    frames
}

proptest! {
    #![proptest_config(cases(1024))]

    #[test]
    fn tls_hello_in_any_segments_any_order(
        name in 0..NAMES.len(),
        pad in 0usize..2500,
        record_cuts in prop::collection::vec(any::<Index>(), 0..3),
        cuts in prop::collection::vec(any::<Index>(), 0..14),
        dups in prop::collection::vec(any::<Index>(), 0..4),
        overlaps in prop::collection::vec((any::<Index>(), any::<Index>()), 0..3),
        order in any::<u64>(),
    ) {
        let sni = NAMES[name];
        let stream = records(&client_hello(sni, pad, false), &record_cuts);
        let whole = names(&tls_frames(&[(0, stream.clone())]), Protocol::Tls);
        prop_assert_eq!(&whole, &vec![sni.to_string()]);
        let mut segs = segments(&stream, &cuts, &dups, &overlaps);
        shuffle(&mut segs, order);
        let split = names(&tls_frames(&segs), Protocol::Tls);
        prop_assert_eq!(split, whole);
    }
}

// ---------------------------------------------------------------- QUIC

const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];

fn expand_label(hk: &Hkdf<Sha256>, label: &[u8], out: &mut [u8]) {
    let mut info = (out.len() as u16).to_be_bytes().to_vec();
    info.push(6 + label.len() as u8);
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label);
    info.push(0);
    hk.expand(&info, out).unwrap();
}

/// Client Initial sealing (RFC 9001 §5, RFC 9369 §3) for v1 or v2.
struct Sealer {
    version: u32,
    aead: Aes128Gcm,
    iv: [u8; 12],
    hp: Aes128,
}

impl Sealer {
    fn new(v2: bool, dcid: &[u8]) -> Self {
        let (version, salt, prefix) = if v2 {
            (quic::VERSION_2, SALT_V2, "quicv2 ")
        } else {
            (quic::VERSION_1, SALT_V1, "quic ")
        };
        let (_, initial) = Hkdf::<Sha256>::extract(Some(&salt), dcid);
        let mut secret = [0u8; 32];
        expand_label(&initial, b"client in", &mut secret);
        let hk = Hkdf::<Sha256>::from_prk(&secret).unwrap();
        let (mut key, mut iv, mut hp) = ([0u8; 16], [0u8; 12], [0u8; 16]);
        expand_label(&hk, format!("{prefix}key").as_bytes(), &mut key);
        expand_label(&hk, format!("{prefix}iv").as_bytes(), &mut iv);
        expand_label(&hk, format!("{prefix}hp").as_bytes(), &mut hp);
        Sealer {
            version,
            aead: Aes128Gcm::new(&Array::from(key)),
            iv,
            hp: Aes128::new(&Array::from(hp)),
        }
    }

    /// One client Initial carrying `frames`, padded to 1200 bytes as clients do.
    fn seal(&self, dcid: &[u8], pn: u32, pn_len: usize, frames: &[u8]) -> Vec<u8> {
        let mut payload = frames.to_vec();
        let overhead = 1 + 4 + 1 + dcid.len() + 1 + 1 + 2 + pn_len + 16;
        payload.resize(payload.len().max(1200 - overhead), 0);
        let ty = if self.version == quic::VERSION_2 {
            1
        } else {
            0
        };
        let mut pkt = vec![0xc0 | (ty << 4) | (pn_len as u8 - 1)];
        pkt.extend(self.version.to_be_bytes());
        pkt.push(dcid.len() as u8);
        pkt.extend_from_slice(dcid);
        pkt.extend([0, 0]); // SCID length, token length
        pkt.extend(((pn_len + payload.len() + 16) as u16 | 0x4000).to_be_bytes());
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
            .unwrap();
        pkt.extend_from_slice(&payload);
        pkt.extend_from_slice(&tag);
        let sample: [u8; 16] = pkt[pn_offset + 4..pn_offset + 20].try_into().unwrap();
        let mut block = Array::from(sample);
        self.hp.encrypt_block(&mut block);
        pkt[0] ^= block[0] & 0x0f;
        for i in 0..pn_len {
            pkt[pn_offset + i] ^= block[1 + i];
        }
        pkt
    }
}

fn varint(v: usize) -> Vec<u8> {
    match v {
        0..=63 => vec![v as u8],
        64..=16383 => (v as u16 | 0x4000).to_be_bytes().to_vec(),
        _ => (v as u32 | 0x8000_0000).to_be_bytes().to_vec(),
    }
}

fn crypto_frame(off: usize, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x06];
    f.extend(varint(off));
    f.extend(varint(data.len()));
    f.extend_from_slice(data);
    f
}

const DCID: [u8; 8] = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];

/// The sealer agrees with kaswatch's decryption (RFC 9001 A.2 keys are
/// checked in src/proto/quic.rs; this checks our copy of the derivation).
#[test]
fn sealed_initials_decrypt() {
    for v2 in [false, true] {
        let s = Sealer::new(v2, &DCID);
        let hello = client_hello("ds.kaspersky.com", 0, true);
        let pkt = s.seal(&DCID, 0, 2, &crypto_frame(0, &hello));
        let mut st = quic::QuicClientState::new(s.version, &DCID).unwrap();
        assert_eq!(st.push_datagram(&pkt), quic::QuicProgress::Added);
        assert_eq!(st.client_hello(), Some(hello.as_slice()));
    }
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn quic_hello_in_any_crypto_frames_any_order(
        name in 0..NAMES.len(),
        v2 in any::<bool>(),
        pad in 0usize..2500,
        cuts in prop::collection::vec(any::<Index>(), 0..10),
        groups in prop::collection::vec(any::<Index>(), 0..10),
        dups in prop::collection::vec(any::<Index>(), 0..3),
        pn_len in 1usize..=4,
        order in any::<u64>(),
        frame_order in any::<u64>(),
    ) {
        let sni = NAMES[name];
        let hello = client_hello(sni, pad, true);
        let s = Sealer::new(v2, &DCID);
        let whole_pkt = s.seal(&DCID, 0, pn_len, &crypto_frame(0, &hello));
        let whole = names(&[udp_frame(&whole_pkt)], Protocol::Quic);
        prop_assert_eq!(&whole, &vec![sni.to_string()]);

        // CRYPTO frames at the cuts, grouped into Initials of at most ~1100 bytes.
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(hello.len())).collect();
        at.extend([0, hello.len()]);
        at.sort_unstable();
        at.dedup();
        let mut frames: Vec<Vec<u8>> = at.windows(2).map(|w| crypto_frame(w[0], &hello[w[0]..w[1]])).collect();
        shuffle(&mut frames, frame_order);
        let mut breaks: Vec<usize> = groups.iter().map(|g| g.index(frames.len())).collect();
        breaks.sort_unstable();
        let mut packets: Vec<Vec<u8>> = vec![Vec::new()];
        for (i, f) in frames.into_iter().enumerate() {
            let last = packets.last_mut().unwrap();
            if !last.is_empty() && (breaks.contains(&i) || last.len() + f.len() > 1100) {
                packets.push(f);
            } else {
                last.extend(f);
            }
        }
        let mut datagrams: Vec<Vec<u8>> = packets
            .iter()
            .enumerate()
            .map(|(pn, p)| s.seal(&DCID, pn as u32, pn_len, p))
            .collect();
        let n = datagrams.len();
        for d in &dups {
            datagrams.push(datagrams[d.index(n)].clone());
        }
        shuffle(&mut datagrams, order);
        let frames: Vec<Vec<u8>> = datagrams.iter().map(|d| udp_frame(d)).collect();
        let split = names(&frames, Protocol::Quic);
        prop_assert_eq!(split, whole);
    }
}

// ---------------------------------------------------------------- no panics

const LINKTYPES: [u32; 17] = [
    linktype::ETHERNET,
    linktype::RAW,
    linktype::LINUX_SLL,
    linktype::LINUX_SLL2,
    linktype::NULL,
    linktype::LOOP,
    linktype::IPV4,
    linktype::IPV6,
    linktype::PPP,
    linktype::PPP_HDLC,
    linktype::C_HDLC,
    linktype::RAW_OLD,
    linktype::RAW_OLD2,
    linktype::IEEE802_11,
    linktype::IEEE802_11_RADIOTAP,
    linktype::NFLOG,
    linktype::PKTAP,
];

fn every_parser(bytes: &[u8]) {
    let mut c = Counters::default();
    for lt in LINKTYPES {
        let _ = decode::decode(lt, bytes, &mut c);
        let _ = decode::inner_addrs(lt, bytes, &mut c);
    }
    let _ = dns::header(bytes);
    let _ = dns::plausible(bytes);
    let _ = dns::questions(bytes, |_| {});
    let _ = dns::answers(bytes);
    let mut out = [0u8; MAX_NAME_LEN];
    for off in 0..bytes.len().min(16) {
        let _ = dns::read_name(bytes, off, &mut out);
    }
    let mut scratch = Vec::new();
    let _ = tls::looks_like_tls(bytes);
    let _ = tls::scan_client_stream(bytes, &mut scratch);
    let _ = tls::scan_handshake(bytes);
    let _ = http::looks_like_http(bytes);
    let _ = http::scan_request(bytes);
    let _ = http::looks_like_response(bytes);
    let _ = http::scan_response(bytes);
    let _ = http::host_for_match(bytes);
    if let Some(h) = quic::peek_initial(bytes) {
        if let Some(mut st) = quic::QuicClientState::new(h.version, h.dcid) {
            let _ = st.push_datagram(bytes);
            let _ = st.client_hello();
        }
    }
    let mut st = quic::QuicClientState::new(quic::VERSION_1, &DCID).unwrap();
    let _ = st.push_datagram(bytes);
}

/// A valid message with bytes overwritten, inserted or cut off.
fn mutate(mut v: Vec<u8>, edits: &[(Index, u8, u8)], cut: Option<Index>) -> Vec<u8> {
    for (at, kind, b) in edits {
        let i = at.index(v.len().max(1)).min(v.len());
        match kind % 3 {
            0 if i < v.len() => v[i] = *b,
            1 => v.insert(i, *b),
            _ if i < v.len() => {
                v.remove(i);
            }
            _ => {}
        }
    }
    if let Some(c) = cut {
        v.truncate(c.index(v.len() + 1));
    }
    v
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1600)) {
        every_parser(&bytes);
    }

    #[test]
    fn arbitrary_frames_through_the_pipeline_never_panic(
        frames in prop::collection::vec((0..LINKTYPES.len(), prop::collection::vec(any::<u8>(), 0..300)), 1..8),
    ) {
        let mut w = Worker::new(matcher(), WorkerConfig { all_names: true });
        for (i, (lt, data)) in frames.iter().enumerate() {
            let raw = RawPacket { ts: i as u64, linktype: LINKTYPES[*lt], interface: 0, data, wire_len: data.len() as u32 };
            w.process(PktMeta::default(), &raw);
        }
        let _ = w.take();
    }

    #[test]
    fn mutated_messages_never_panic(
        which in 0..4usize,
        pad in 0usize..600,
        edits in prop::collection::vec((any::<Index>(), any::<u8>(), any::<u8>()), 1..6),
        cut in prop::option::of(any::<Index>()),
    ) {
        let hello = client_hello(NAMES[pad % NAMES.len()], pad, which == 2);
        let valid = match which {
            0 => records(&hello, &[]),
            1 => {
                // DNS query for a Kaspersky name with EDNS.
                let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
                for l in NAMES[pad % 3].split('.') {
                    q.push(l.len() as u8);
                    q.extend(l.as_bytes());
                }
                q.extend([0, 0, 1, 0, 1, 0, 0, 0x29, 0x10, 0, 0, 0, 0, 0, 0, 0]);
                q
            }
            2 => Sealer::new(pad % 2 == 1, &DCID).seal(&DCID, 0, 1, &crypto_frame(0, &hello)),
            _ => format!("GET /bases/av/kdb/i386/kdb-i386-1211g.xml.klz HTTP/1.1\r\nHost: dnl-0{}.geo.kaspersky.com:80\r\nUser-Agent: x\r\n\r\n", pad % 10).into_bytes(),
        };
        let v = mutate(valid, &edits, cut);
        every_parser(&v);
        let frame = if which == 2 { udp_frame(&v) } else { tcp_frame(1, decode::TCP_ACK | 0x08, &v) };
        let _ = names(&[tcp_frame(0, decode::TCP_SYN, &[]), frame], Protocol::Tls);
    }
}

// ---------------------------------------------------------------- capture files

/// Fuzzing found (pcap_file target): a pcapng Process Information Block
/// declaring 4..=11 bytes made pcap-parser 0.17 subtract past zero (a panic
/// in builds with overflow checks). The reader must stop there with a
/// damage report, after delivering the packets before it, in both byte orders.
#[test]
fn pcapng_block_shorter_than_its_header_is_damage() {
    use kaswatch::capture::file::{CaptureFile, End};
    let dir = tempfile::tempdir().unwrap();
    for big in [false, true] {
        for len in 4u32..12 {
            let u32b = |v: u32| {
                if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            };
            let u16b = |v: u16| {
                if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            };
            let mut f = Vec::new();
            // Section header: type, length 28, byte-order magic, version 1.0, section length -1.
            f.extend([0x0a, 0x0d, 0x0d, 0x0a]);
            f.extend(u32b(28));
            f.extend(u32b(0x1a2b_3c4d));
            f.extend(u16b(1));
            f.extend(u16b(0));
            f.extend([0xff; 8]);
            f.extend(u32b(28));
            // Interface description: Ethernet.
            f.extend(u32b(1));
            f.extend(u32b(20));
            f.extend(u16b(1));
            f.extend(u16b(0));
            f.extend(u32b(0xffff));
            f.extend(u32b(20));
            // One enhanced packet of 4 bytes.
            f.extend(u32b(6));
            f.extend(u32b(36));
            f.extend(u32b(0));
            f.extend(u32b(0));
            f.extend(u32b(0));
            f.extend(u32b(4));
            f.extend(u32b(4));
            f.extend([1, 2, 3, 4]);
            f.extend(u32b(36));
            // Process Information Block (0x80000001) declaring `len` bytes.
            f.extend(u32b(0x8000_0001));
            f.extend(u32b(len));
            f.extend([0u8; 16]);
            let p = dir.path().join(format!("pib-{big}-{len}.pcapng"));
            std::fs::write(&p, &f).unwrap();
            let mut seen = 0;
            let s = CaptureFile::open(&p).unwrap().for_each(|_, _| seen += 1);
            assert_eq!((seen, s.frames), (1, 1), "big endian {big}, length {len}");
            match s.end {
                End::Damaged(why) => assert!(why.contains("less than 12"), "{why}"),
                End::Complete => panic!("length {len} accepted"),
            }
        }
    }
}
