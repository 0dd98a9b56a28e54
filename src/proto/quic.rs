//! QUIC Initial decryption, called by the pipeline worker (`pipeline/worker.rs`, which keeps the state in the UDP flow) with the UDP payloads of one client->server flow: it decrypts the client Initial packets and returns the reassembled TLS ClientHello bytes, which the caller passes to the `tls` module.
//!
//! Initial packet protection is removed as in RFC 9001 §5 and RFC 9369 §3, then
//! CRYPTO frames are collected by offset across packets.
//!
//! Pure and panic-free: no I/O, no clock; within the crate it uses only `bytes`
//! and `sha256x8` (one exception to "no I/O": [`KeyBatch::worth_it`] reads
//! `KASWATCH_QUIC_BATCH` from the environment, once).
//! Every buffer and loop is bounded by a `MAX_*` constant below.
//!
//! Typical use by the pipeline worker:
//!
//! 1. [`peek_initial`] on the first client datagram of a UDP flow (cheap, no
//!    crypto). If it returns a header, create one [`QuicClientState`] with
//!    [`QuicClientState::new`] from its version and DCID (the *original*
//!    DCID, which keys every client Initial of the connection).
//! 2. Feed that datagram and every later client->server datagram to
//!    [`QuicClientState::push_datagram`].
//! 3. After [`QuicProgress::Added`], run the TLS parser on
//!    [`QuicClientState::crypto_prefix`], or wait for
//!    [`QuicClientState::client_hello`] to return the complete message.
//!
//! Supported versions: v1, v2, IETF drafts 23–32, mvfst `0xfaceb002` and
//! `0xfaceb00e`, and Google T050/T051 (see [`is_supported_version`]).
use crate::bytes::Reader;
use arrayvec::ArrayVec;
use ring::aead::quic::{HeaderProtectionKey, AES_128};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use ring::hmac;

/// Smallest UDP payload carrying a client Initial that a server accepts
/// (RFC 9000 §14.1: clients pad to it, servers drop smaller ones).
pub const MIN_INITIAL_DATAGRAM: usize = 1200;

/// QUIC version 1 (RFC 9000).
pub const VERSION_1: u32 = 0x0000_0001;
/// QUIC version 2 (RFC 9369).
pub const VERSION_2: u32 = 0x6b33_43cf;
/// mvfst (Facebook) version that follows draft-27 (nDPI/Wireshark map it to draft-27).
pub const VERSION_MVFST_27: u32 = 0xface_b002;
/// mvfst experimental version, also draft-27 based (nDPI).
pub const VERSION_MVFST_EXP: u32 = 0xface_b00e;
/// Google QUIC T050 (TLS handshake inside IETF-style Initial packets).
pub const VERSION_T050: u32 = 0x5430_3530;
/// Google QUIC T051.
pub const VERSION_T051: u32 = 0x5430_3531;

/// Largest connection ID: 20 bytes (RFC 9000 §17.2, "MUST NOT exceed 20 bytes"
/// in QUIC v1; drafts 23+ have the same limit).
pub const MAX_CID_LEN: usize = 20;
/// Largest UDP payload (65535 - 8 byte UDP header); longer inputs are not UDP.
pub const MAX_DATAGRAM_LEN: usize = 65_527;
/// QUIC packets walked in one datagram. RFC 9000 §12.2 coalesces at most one
/// packet per type in practice (Initial, 0-RTT, Handshake, then 1-RTT); 8
/// leaves room for senders that repeat a type.
pub const MAX_PACKETS_PER_DATAGRAM: usize = 8;
/// Frames parsed in one Initial packet. Chromium's "chaos protection" splits
/// the `ClientHello` into a few CRYPTO frames mixed with PING and PADDING runs
/// (under 20 frames); a run of PADDING counts as one frame here.
pub const MAX_FRAMES_PER_PACKET: usize = 64;
/// ACK ranges parsed in one ACK frame. A client Initial acknowledges a few
/// server Initials; quinn caps the ranges it tracks at 64 as well.
pub const MAX_ACK_RANGES: u64 = 64;
/// CRYPTO stream bytes kept per connection. A post-quantum `ClientHello` with
/// ECH is about 2 KiB (X25519MLKEM768 key share is 1216 B); 16 KiB is also
/// the largest TLS record plaintext (RFC 8446 §5.1). Data beyond is dropped.
pub const MAX_CRYPTO_BYTES: usize = 16 * 1024;
/// Disjoint CRYPTO ranges remembered while waiting for gaps to fill. Chromium
/// splits a `ClientHello` over 2–3 Initials with a few frames each; 32 gaps is
/// far above that and keeps the merge loop short.
pub const MAX_CRYPTO_RANGES: usize = 32;

const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];
const SALT_DRAFT_23: [u8; 20] = [
    0xc3, 0xee, 0xf7, 0x12, 0xc7, 0x2e, 0xbb, 0x5a, 0x11, 0xa7, 0xd2, 0x43, 0x2b, 0xb4, 0x63, 0x65,
    0xbe, 0xf9, 0xf5, 0x02,
];
const SALT_DRAFT_29: [u8; 20] = [
    0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0,
    0x43, 0x90, 0xa8, 0x99,
];
const SALT_T050: [u8; 20] = [
    0x7f, 0xf5, 0x79, 0xe5, 0xac, 0xd0, 0x72, 0x91, 0x55, 0x80, 0x30, 0x4c, 0x43, 0xa2, 0x36, 0x7c,
    0x60, 0x48, 0x83, 0x10,
];
const SALT_T051: [u8; 20] = [
    0x7a, 0x4e, 0xde, 0xf4, 0xe7, 0xcc, 0xee, 0x5f, 0xa4, 0x50, 0x6c, 0x19, 0x12, 0x4f, 0xc8, 0xcc,
    0xda, 0x6e, 0x03, 0x3d,
];

/// Length of the AES-128-GCM authentication tag.
const TAG_LEN: usize = 16;
/// Header protection sample length (RFC 9001 §5.4.2).
const SAMPLE_LEN: usize = 16;

/// What differs between versions for client Initial packets.
#[derive(Clone, Copy)]
struct VersionParams {
    salt: &'static [u8; 20],
    /// HKDF labels for key, iv, hp.
    labels: [&'static [u8]; 3],
    /// Long-header type bits (0x30 of the first byte, shifted) of Initial.
    initial_type: u8,
    /// Type bits of Retry, which has no Length field.
    retry_type: u8,
    /// Frame type numbering inside the decrypted payload.
    frames: FrameSet,
}

/// Frame numbering: IETF QUIC (RFC 9000 §19) or Google QUIC T05x, which
/// keeps gQUIC frame types (PING 0x07, CRYPTO 0x08, per Chromium and nDPI).
#[derive(Clone, Copy, PartialEq, Eq)]
enum FrameSet {
    Ietf,
    Gquic,
}

const LABELS_V1: [&[u8]; 3] = [b"quic key", b"quic iv", b"quic hp"];
const LABELS_V2: [&[u8]; 3] = [b"quicv2 key", b"quicv2 iv", b"quicv2 hp"];

fn version_params(version: u32) -> Option<VersionParams> {
    let v1 = |salt| VersionParams {
        salt,
        labels: LABELS_V1,
        initial_type: 0,
        retry_type: 3,
        frames: FrameSet::Ietf,
    };
    match version {
        VERSION_1 => Some(v1(&SALT_V1)),
        VERSION_2 => Some(VersionParams {
            salt: &SALT_V2,
            labels: LABELS_V2,
            initial_type: 1,
            retry_type: 0,
            frames: FrameSet::Ietf,
        }),
        // Drafts 23-28 share one salt, drafts 29-32 the next (draft-ietf-quic-tls
        // §5.2 of each draft; Wireshark packet-quic.c is_quic_draft_max(28/32)).
        // mvfst 0xfaceb002/0xfaceb00e follow draft-27 (nDPI get_u8_quic_ver).
        0xff00_0017..=0xff00_001c | VERSION_MVFST_27 | VERSION_MVFST_EXP => {
            Some(v1(&SALT_DRAFT_23))
        }
        0xff00_001d..=0xff00_0020 => Some(v1(&SALT_DRAFT_29)),
        VERSION_T050 => Some(VersionParams {
            frames: FrameSet::Gquic,
            ..v1(&SALT_T050)
        }),
        VERSION_T051 => Some(VersionParams {
            frames: FrameSet::Gquic,
            ..v1(&SALT_T051)
        }),
        _ => None,
    }
}

/// True when this module can decrypt client Initials of `version`.
#[must_use]
pub fn is_supported_version(version: u32) -> bool {
    version_params(version).is_some()
}

/// Cleartext fields of a client Initial long header, borrowed from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialHeader<'a> {
    /// QUIC version of the packet.
    pub version: u32,
    /// Destination connection ID (keys the Initial secrets).
    pub dcid: &'a [u8],
    /// Source connection ID.
    pub scid: &'a [u8],
    /// Token (non-empty after a Retry or with a `NEW_TOKEN`).
    pub token: &'a [u8],
}

/// Outcome of [`QuicClientState::push_datagram`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuicProgress {
    /// The datagram does not start with a parseable QUIC packet.
    NotQuic,
    /// QUIC, but nothing usable: short header, not an Initial, another
    /// version, or decryption failed.
    Ignored,
    /// At least one Initial decrypted, but it carried no new CRYPTO bytes
    /// (ACK-only, PING, retransmission).
    NoNewData,
    /// New CRYPTO bytes were stored.
    Added,
    /// A named limit was hit (data beyond it dropped); new bytes may still
    /// have been stored. The string is the constant's name.
    Limit(&'static str),
}

/// QUIC variable-length integers (RFC 9000 §16) on the shared cursor.
trait VarInt {
    fn varint(&mut self) -> Option<u64>;
    fn varint_usize(&mut self) -> Option<usize> {
        usize::try_from(self.varint()?).ok()
    }
}

impl VarInt for Reader<'_> {
    fn varint(&mut self) -> Option<u64> {
        let first = self.u8()?;
        let extra = (1usize << (first >> 6)).saturating_sub(1);
        let rest = self.take(extra)?;
        Some(
            rest.iter()
                .fold(u64::from(first & 0x3f), |acc, b| (acc << 8) | u64::from(*b)),
        )
    }
}

/// Long-header fields needed to find and unprotect one packet.
struct LongHeader<'a> {
    version: u32,
    type_bits: u8,
    dcid: &'a [u8],
    scid: &'a [u8],
    token: &'a [u8],
    /// Offset of the packet number inside the packet (Initial/0-RTT/Handshake).
    pn_offset: usize,
    /// Total length of this packet in the datagram.
    packet_len: usize,
}

/// Parse one long-header packet at the start of `buf`. `None` when `buf`
/// does not start with a long header whose length can be determined.
fn parse_long_header(buf: &[u8]) -> Option<LongHeader<'_>> {
    let mut r = Reader::new(buf);
    let first = r.u8()?;
    if first & 0x80 == 0 {
        return None;
    }
    let version = r.u32()?;
    let dcid_len = usize::from(r.u8()?);
    if dcid_len > MAX_CID_LEN {
        return None;
    }
    let dcid = r.take(dcid_len)?;
    let scid_len = usize::from(r.u8()?);
    if scid_len > MAX_CID_LEN {
        return None;
    }
    let scid = r.take(scid_len)?;
    let params = version_params(version)?;
    let type_bits = (first >> 4) & 0x03;
    if type_bits == params.retry_type {
        // Retry has no Length field: it fills the rest of the datagram.
        return Some(LongHeader {
            version,
            type_bits,
            dcid,
            scid,
            token: &[],
            pn_offset: buf.len(),
            packet_len: buf.len(),
        });
    }
    let token = if type_bits == params.initial_type {
        let token_len = r.varint_usize()?;
        r.take(token_len)?
    } else {
        &[]
    };
    let length = r.varint_usize()?;
    let pn_offset = r.pos();
    let packet_len = pn_offset.checked_add(length)?;
    if packet_len > buf.len() {
        return None;
    }
    Some(LongHeader {
        version,
        type_bits,
        dcid,
        scid,
        token,
        pn_offset,
        packet_len,
    })
}

/// A long header with plausible connection ID lengths, any version (the
/// version may be unknown to us, e.g. a greased one forcing negotiation).
fn looks_like_long_header(buf: &[u8]) -> bool {
    let mut r = Reader::new(buf);
    let ok = (|| {
        let first = r.u8()?;
        r.u32()?;
        let dcid_len = usize::from(r.u8()?);
        Some(first & 0x80 != 0 && dcid_len <= MAX_CID_LEN)
    })();
    ok == Some(true)
}

/// Cheap check (no crypto): does `datagram` start with a client Initial of a
/// supported version? Returns its cleartext header fields.
#[must_use]
pub fn peek_initial(datagram: &[u8]) -> Option<InitialHeader<'_>> {
    if datagram.len() > MAX_DATAGRAM_LEN {
        return None;
    }
    let h = parse_long_header(datagram)?;
    let params = version_params(h.version)?;
    if h.type_bits != params.initial_type {
        return None;
    }
    // Packet number (1..4 bytes) plus the 16-byte sample must fit.
    if h.packet_len < h.pn_offset.checked_add(4 + SAMPLE_LEN)? {
        return None;
    }
    Some(InitialHeader {
        version: h.version,
        dcid: h.dcid,
        scid: h.scid,
        token: h.token,
    })
}

/// Client Initial keys for one (version, DCID).
struct InitialKeys {
    version: u32,
    /// At most [`MAX_CID_LEN`] bytes, held inline (no allocation).
    dcid: ArrayVec<u8, MAX_CID_LEN>,
    aead: LessSafeKey,
    iv: [u8; 12],
    hp: HeaderProtectionKey,
}

/// Longest HKDF label used (`quicv2 key`, `client in`: 10 bytes at most).
const MAX_LABEL_LEN: usize = 16;

/// HMAC-SHA256 as the Initial key schedule uses it: keys of one SHA-256
/// length or a 20-byte salt, messages of at most [`lean::MAX_MSG_LEN`]
/// bytes, a 32-byte tag. Two implementations, same results (fixture
/// `lean_and_ring_hmac_derive_the_same_keys`): [`lean::Key`] where the CPU
/// has the SHA extensions, ring's otherwise.
trait Hmac: Sized {
    fn key(key: &[u8]) -> Option<Self>;
    fn sign(&self, msg: &[u8]) -> Option<[u8; 32]>;
}

/// ring's HMAC: on a CPU without the SHA extensions its SHA-256 runs AVX
/// assembly (~2,100 instructions a block), well ahead of the portable code
/// behind [`lean::Key`] (~3,400).
impl Hmac for hmac::Key {
    fn key(key: &[u8]) -> Option<Self> {
        Some(hmac::Key::new(hmac::HMAC_SHA256, key))
    }
    fn sign(&self, msg: &[u8]) -> Option<[u8; 32]> {
        hmac::sign(self, msg).as_ref().try_into().ok()
    }
}

/// HMAC-SHA256 over the bare SHA-256 compression function
/// (`sha2::block_api::compress256`, which runs the CPU's SHA instructions
/// when it has them): a key is the two hash states after its padded blocks
/// (RFC 2104), a tag is one block on each, built on the stack. ring's HMAC
/// does the same hashing but copies its contexts, buffers and tags through
/// several layers: with the SHA instructions that copying took longer than
/// the hashing (a new QUIC connection's 14 blocks, ~0.45 us, behind ~0.55 us
/// of it; `perf` on a flood of Initials).
mod lean {
    use sha2::block_api::compress256;

    /// Longest message signed: one block with its padding (RFC 6234 §4.1).
    pub const MAX_MSG_LEN: usize = 55;
    /// Longest key taken as is (longer ones would be hashed first: not needed).
    pub const MAX_KEY_LEN: usize = 64;
    /// SHA-256 initial hash value (FIPS 180-4 §5.3.3).
    pub(super) const IV: [u32; 8] = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];

    pub struct Key {
        pub(super) inner: [u32; 8],
        pub(super) outer: [u32; 8],
    }

    /// The block of `key` (at most 64 bytes) XOR `pad`.
    pub(super) fn pad_block(key: &[u8], pad: u8) -> [u8; 64] {
        let mut block = [pad; 64];
        for (b, k) in block.iter_mut().zip(key) {
            *b ^= k;
        }
        block
    }

    /// The hash state after one block of `key` XOR `pad`.
    fn padded(key: &[u8], pad: u8) -> [u32; 8] {
        let mut state = IV;
        compress256(&mut state, &[pad_block(key, pad)]);
        state
    }

    /// One final block: `msg`, the 0x80 marker, zeros, then the bit length
    /// of everything hashed (a 64-byte key block before `msg`).
    pub(super) fn last_block(msg: &[u8]) -> Option<[u8; 64]> {
        if msg.len() > MAX_MSG_LEN {
            return None;
        }
        let mut block = [0u8; 64];
        block.get_mut(..msg.len())?.copy_from_slice(msg);
        *block.get_mut(msg.len())? = 0x80;
        let bits = ((64 + msg.len()) as u64) * 8;
        block.get_mut(56..)?.copy_from_slice(&bits.to_be_bytes());
        Some(block)
    }

    pub(super) fn digest(state: [u32; 8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(state) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    impl super::Hmac for Key {
        fn key(key: &[u8]) -> Option<Self> {
            (key.len() <= MAX_KEY_LEN).then(|| Key {
                inner: padded(key, 0x36),
                outer: padded(key, 0x5c),
            })
        }
        fn sign(&self, msg: &[u8]) -> Option<[u8; 32]> {
            let mut inner = self.inner;
            compress256(&mut inner, &[last_block(msg)?]);
            let mut outer = self.outer;
            compress256(&mut outer, &[last_block(&digest(inner))?]);
            Some(digest(outer))
        }
    }

    /// Whether this CPU has the SHA extensions (what `compress256` uses).
    pub fn hardware() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("sha")
                && std::arch::is_x86_feature_detected!("sse4.1")
        }
        #[cfg(target_arch = "aarch64")]
        {
            std::arch::is_aarch64_feature_detected!("sha2")
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            false
        }
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context, for outputs of
/// at most one SHA-256 length (all QUIC Initial secrets and keys are): the
/// output is the first `N` bytes of HMAC(secret, HkdfLabel || 0x01)
/// (RFC 5869 §2.3, T(1)). The label is built on the stack and hashed in one
/// call (ring's `Prk::expand` takes it in pieces, ~1,000 instructions more
/// per output).
fn expand_label<H: Hmac, const N: usize>(secret: &H, label: &[u8]) -> Option<[u8; N]> {
    let (info, len) = label_info(label, N)?;
    let t1 = secret.sign(info.get(..len)?)?;
    t1.get(..N)?.try_into().ok()
}

/// HKDF-Expand-Label's message for an output of `n` (at most 32) bytes:
/// the HkdfLabel (length, "tls13 " + label, empty context) and the block
/// counter 1; returned with its length.
fn label_info(label: &[u8], n: usize) -> Option<([u8; 2 + 1 + 6 + MAX_LABEL_LEN + 1 + 1], usize)> {
    if n > 32 || label.len() > MAX_LABEL_LEN {
        return None;
    }
    let mut info = [0u8; 2 + 1 + 6 + MAX_LABEL_LEN + 1 + 1];
    let len = 2 + 1 + 6 + label.len() + 1 + 1;
    let (head, rest) = info.split_at_mut(3);
    head.copy_from_slice(&[0, n as u8, (6 + label.len()) as u8]);
    let (tls13, rest) = rest.split_at_mut(6);
    tls13.copy_from_slice(b"tls13 ");
    let (l, rest) = rest.split_at_mut(label.len());
    l.copy_from_slice(label);
    // The empty context's length (0), then the HKDF block counter.
    rest.get_mut(..2)?.copy_from_slice(&[0, 1]);
    Some((info, len))
}

/// Both HMAC keys of one version salt (HKDF-Extract's key).
struct SaltKeys {
    salt: &'static [u8; 20],
    ring: hmac::Key,
    lean: Option<lean::Key>,
}

/// The version salts' HMAC keys, set up once per process: the HMAC key
/// schedule of a salt (two SHA-256 blocks) is not repeated for every
/// connection's Initial keys.
fn salt_for(salt: &'static [u8; 20]) -> Option<&'static SaltKeys> {
    use std::sync::OnceLock;
    static SALTS: OnceLock<Vec<SaltKeys>> = OnceLock::new();
    let all = SALTS.get_or_init(|| {
        [
            &SALT_V1,
            &SALT_V2,
            &SALT_DRAFT_23,
            &SALT_DRAFT_29,
            &SALT_T050,
            &SALT_T051,
        ]
        .into_iter()
        .map(|s| SaltKeys {
            salt: s,
            ring: hmac::Key::new(hmac::HMAC_SHA256, s),
            lean: Hmac::key(s),
        })
        .collect()
    });
    all.iter().find(|k| k.salt == salt)
}

/// Raw client Initial key material: (key, iv, hp).
type KeyMaterial = ([u8; 16], [u8; 12], [u8; 16]);

/// The client Initial key schedule (RFC 9001 §5.2, RFC 9369 §3.3) with one
/// HMAC implementation, from the salt's key: 14 SHA-256 blocks.
fn key_schedule<H: Hmac>(salt: &H, labels: [&[u8]; 3], dcid: &[u8]) -> Option<KeyMaterial> {
    // HKDF-Extract (RFC 5869 §2.2): HMAC(salt, DCID).
    let initial = H::key(&salt.sign(dcid)?)?;
    let client = H::key(&expand_label::<H, 32>(&initial, b"client in")?)?;
    let [key_label, iv_label, hp_label] = labels;
    Some((
        expand_label(&client, key_label)?,
        expand_label(&client, iv_label)?,
        expand_label(&client, hp_label)?,
    ))
}

/// Derive the client Initial key, IV and header protection key
/// (RFC 9001 §5.2, RFC 9369 §3.3): with [`lean::Key`] where the CPU has the
/// SHA extensions, with ring's HMAC otherwise (see [`Hmac`]).
fn derive_client_key_material(version: u32, dcid: &[u8]) -> Option<KeyMaterial> {
    use std::sync::OnceLock;
    static HARDWARE: OnceLock<bool> = OnceLock::new();
    let params = version_params(version)?;
    if dcid.len() > MAX_CID_LEN || dcid.len() > lean::MAX_MSG_LEN {
        return None;
    }
    let salt = salt_for(params.salt)?;
    match &salt.lean {
        Some(lean) if *HARDWARE.get_or_init(lean::hardware) => {
            key_schedule(lean, params.labels, dcid)
        }
        _ => key_schedule(&salt.ring, params.labels, dcid),
    }
}

/// New connections whose client Initial keys [`KeyBatch`] derives together.
pub const MAX_KEY_BATCH: usize = 8;

/// Client Initial keys of several new connections derived together, on a
/// CPU without the SHA extensions (see [`KeyBatch::worth_it`]): the 14
/// SHA-256 blocks of each connection's key schedule go through
/// [`sha256x8`](super::sha256x8) eight blocks at a time, stage by stage
/// (two for HKDF-Extract, two for each secret's HMAC key, two for each of
/// the four HKDF-Expand-Label outputs). The pipeline worker asks with
/// [`KeyBatch::want`] for the DCIDs of held Initials, calls
/// [`KeyBatch::derive`], then replays the packets:
/// [`QuicClientState::new_in`] takes the keys from the batch. The same key
/// material as one connection at a time (fixture
/// `batched_keys_are_the_keys_one_at_a_time`).
#[derive(Default)]
pub struct KeyBatch {
    wanted: ArrayVec<(u32, ArrayVec<u8, MAX_CID_LEN>), MAX_KEY_BATCH>,
    ready: ArrayVec<(u32, ArrayVec<u8, MAX_CID_LEN>, KeyMaterial), MAX_KEY_BATCH>,
}

impl KeyBatch {
    /// Whether batching saves anything here: the CPU lacks the SHA
    /// extensions (with them a block costs ~190 instructions one at a time)
    /// and has the eight-lane code's AVX2. `KASWATCH_QUIC_BATCH=1` (or `0`)
    /// in the environment turns it on (off) whatever the CPU, to compare.
    pub fn worth_it() -> bool {
        use std::sync::OnceLock;
        static WORTH: OnceLock<bool> = OnceLock::new();
        *WORTH.get_or_init(|| match std::env::var("KASWATCH_QUIC_BATCH").as_deref() {
            Ok("1") => true,
            Ok("0") => false,
            _ => !lean::hardware() && super::sha256x8::available(),
        })
    }

    /// Ask for the keys of `(version, dcid)`. False when the batch is full
    /// (derive first) or the pair cannot have keys (unknown version, DCID
    /// over 20 bytes); true when it is wanted already.
    pub fn want(&mut self, version: u32, dcid: &[u8]) -> bool {
        if version_params(version).is_none() || dcid.len() > MAX_CID_LEN {
            return false;
        }
        if self
            .wanted
            .iter()
            .any(|(v, d)| *v == version && d.as_slice() == dcid)
        {
            return true;
        }
        match ArrayVec::try_from(dcid) {
            Ok(d) => self.wanted.try_push((version, d)).is_ok(),
            Err(_) => false,
        }
    }

    /// No room for another connection.
    pub fn is_full(&self) -> bool {
        self.wanted.is_full()
    }

    /// Derive the keys of every wanted connection (those of the last call
    /// not taken are dropped); returns how many were derived.
    pub fn derive(&mut self) -> usize {
        self.ready.clear();
        let wanted = std::mem::take(&mut self.wanted);
        let keys = key_schedule_batch(&wanted);
        for ((v, d), k) in wanted.into_iter().zip(keys) {
            if let Some(k) = k {
                self.ready.push((v, d, k));
            }
        }
        self.ready.len()
    }

    /// The derived keys of `(version, dcid)`, once.
    fn take(&mut self, version: u32, dcid: &[u8]) -> Option<KeyMaterial> {
        let i = self
            .ready
            .iter()
            .position(|(v, d, _)| *v == version && d.as_slice() == dcid)?;
        Some(self.ready.swap_remove(i).2)
    }
}

/// [`key_schedule`] for several connections at once (each with its own
/// version's salt and labels), stage by stage over
/// [`sha256x8::compress_all`](super::sha256x8::compress_all). `None` for a
/// connection whose version or DCID has no keys.
fn key_schedule_batch(
    reqs: &[(u32, ArrayVec<u8, MAX_CID_LEN>)],
) -> ArrayVec<Option<KeyMaterial>, MAX_KEY_BATCH> {
    use super::sha256x8::{compress_all, Job};
    type Jobs = ArrayVec<Job, { 3 * MAX_KEY_BATCH }>;
    let mut out: ArrayVec<Option<KeyMaterial>, MAX_KEY_BATCH> = ArrayVec::new();
    // The connections that can have keys: their labels and salt keys.
    let mut live: ArrayVec<(usize, [&'static [u8]; 3]), MAX_KEY_BATCH> = ArrayVec::new();
    let mut jobs = Jobs::new();
    let mut outer: ArrayVec<[u32; 8], MAX_KEY_BATCH> = ArrayVec::new();
    for (i, (version, dcid)) in reqs.iter().enumerate().take(MAX_KEY_BATCH) {
        out.push(None);
        let salt = version_params(*version).and_then(|p| Some((p, salt_for(p.salt)?)));
        let (Some((params, salt)), Some(block)) = (salt, lean::last_block(dcid)) else {
            continue;
        };
        let Some(key) = salt.lean.as_ref() else {
            continue;
        };
        live.push((i, params.labels));
        jobs.push(Job {
            state: key.inner,
            block,
        });
        outer.push(key.outer);
    }
    // HMAC's outer hash over each inner hash: the tag's state.
    let finish = |jobs: &mut Jobs, outer: &[[u32; 8]]| -> Option<()> {
        compress_all(jobs);
        for (j, o) in jobs.iter_mut().zip(outer) {
            j.block = lean::last_block(&lean::digest(j.state))?;
            j.state = *o;
        }
        compress_all(jobs);
        Some(())
    };
    // Each tag (a secret) becomes an HMAC key: its inner and outer states.
    let keys_of = |jobs: &mut Jobs| -> ArrayVec<([u32; 8], [u32; 8]), MAX_KEY_BATCH> {
        let secrets: ArrayVec<[u8; 32], MAX_KEY_BATCH> =
            jobs.iter().map(|j| lean::digest(j.state)).collect();
        jobs.clear();
        for s in &secrets {
            for pad in [0x36, 0x5c] {
                jobs.push(Job {
                    state: lean::IV,
                    block: lean::pad_block(s, pad),
                });
            }
        }
        compress_all(jobs);
        let keys = jobs.chunks_exact(2).filter_map(|p| match p {
            [i, o] => Some((i.state, o.state)),
            _ => None,
        });
        keys.collect()
    };
    // HKDF-Extract: the initial secret.
    if finish(&mut jobs, &outer).is_none() {
        return out;
    }
    // The client's Initial secret.
    let initial = keys_of(&mut jobs);
    let Some((info, len)) = label_info(b"client in", 32) else {
        return out;
    };
    let Some(block) = info.get(..len).and_then(lean::last_block) else {
        return out;
    };
    jobs.clear();
    jobs.extend(initial.iter().map(|(i, _)| Job { state: *i, block }));
    let outer: ArrayVec<[u32; 8], MAX_KEY_BATCH> = initial.iter().map(|(_, o)| *o).collect();
    if finish(&mut jobs, &outer).is_none() {
        return out;
    }
    // Key, IV and header protection key from the client secret.
    let client = keys_of(&mut jobs);
    jobs.clear();
    let mut outer3: ArrayVec<[u32; 8], { 3 * MAX_KEY_BATCH }> = ArrayVec::new();
    for ((i, o), (_, labels)) in client.iter().zip(&live) {
        for (label, n) in labels.iter().zip([16, 12, 16]) {
            let Some(block) =
                label_info(label, n).and_then(|(info, len)| lean::last_block(info.get(..len)?))
            else {
                return out;
            };
            jobs.push(Job { state: *i, block });
            outer3.push(*o);
        }
    }
    if finish(&mut jobs, &outer3).is_none() {
        return out;
    }
    for (tags, (i, _)) in jobs.chunks_exact(3).zip(&live) {
        let [k, v, h] = tags else { continue };
        let (k, v, h) = (
            lean::digest(k.state),
            lean::digest(v.state),
            lean::digest(h.state),
        );
        let material = (|| {
            Some((
                k.get(..16)?.try_into().ok()?,
                v.get(..12)?.try_into().ok()?,
                h.get(..16)?.try_into().ok()?,
            ))
        })();
        if let Some(slot) = out.get_mut(*i) {
            *slot = material;
        }
    }
    out
}

impl InitialKeys {
    fn derive(version: u32, dcid: &[u8]) -> Option<Self> {
        Self::from_material(version, dcid, derive_client_key_material(version, dcid)?)
    }

    fn from_material(version: u32, dcid: &[u8], material: KeyMaterial) -> Option<Self> {
        let (key, iv, hp) = material;
        Some(Self {
            version,
            dcid: ArrayVec::try_from(dcid).ok()?,
            aead: LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &key).ok()?),
            iv,
            hp: HeaderProtectionKey::new(&AES_128, &hp).ok()?,
        })
    }

    /// Header protection mask from a 16-byte sample (RFC 9001 §5.4.3): the
    /// first 5 bytes of AES-ECB(hp, sample), all a client Initial needs.
    fn mask(&self, sample: &[u8]) -> Option<[u8; 5]> {
        self.hp.new_mask(sample).ok()
    }

    /// Unprotect and decrypt one Initial packet (`packet` is exactly the
    /// packet's bytes) into `scratch`. On success returns (packet number,
    /// plaintext range inside `scratch`).
    fn open(
        &self,
        packet: &[u8],
        pn_offset: usize,
        largest_pn: Option<u64>,
        scratch: &mut Vec<u8>,
    ) -> Option<(u64, core::ops::Range<usize>)> {
        let sample_start = pn_offset.checked_add(4)?;
        let sample = packet.get(sample_start..sample_start.checked_add(SAMPLE_LEN)?)?;
        let mask = self.mask(sample)?;
        scratch.clear();
        scratch.extend_from_slice(packet);
        let first = scratch.first_mut()?;
        *first ^= mask.first()? & 0x0f;
        let pn_len = usize::from(*first & 0x03) + 1;
        let pn_end = pn_offset.checked_add(pn_len)?;
        let mut truncated = 0u64;
        let pn_bytes = scratch.get_mut(pn_offset..pn_end)?;
        // At most 4 packet number bytes (pn_len is 1..=4).
        for (b, m) in pn_bytes.iter_mut().zip(mask.get(1..)?.iter()) {
            *b ^= m;
            truncated = (truncated << 8) | u64::from(*b);
        }
        let pn = decode_packet_number(largest_pn, truncated, pn_len);
        let mut nonce = self.iv;
        // 8 iterations: the packet number is XORed into the IV's last bytes.
        for (n, p) in nonce.iter_mut().rev().zip(pn.to_be_bytes().iter().rev()) {
            *n ^= p;
        }
        let tag_start = scratch.len().checked_sub(TAG_LEN)?;
        if tag_start < pn_end {
            return None;
        }
        let (aad, sealed) = scratch.split_at_mut(pn_end);
        let plain_len = self
            .aead
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&*aad),
                sealed,
            )
            .ok()?
            .len();
        Some((pn, pn_end..pn_end.checked_add(plain_len)?))
    }
}

/// Reconstruct a full packet number (RFC 9000 Appendix A.3).
fn decode_packet_number(largest: Option<u64>, truncated: u64, pn_len: usize) -> u64 {
    let bits = u32::try_from(pn_len.saturating_mul(8)).unwrap_or(32);
    let expected = largest.map_or(0, |l| l.saturating_add(1));
    let win = 1u64 << bits;
    let hwin = win / 2;
    let mask = win - 1;
    let candidate = (expected & !mask) | truncated;
    if candidate.saturating_add(hwin) <= expected && candidate < (1u64 << 62).saturating_sub(win) {
        candidate.saturating_add(win)
    } else if candidate > expected.saturating_add(hwin) && candidate >= win {
        candidate - win
    } else {
        candidate
    }
}

/// CRYPTO stream reassembly: bytes by offset, first copy wins.
#[derive(Debug, Default, Clone)]
struct CryptoBuffer {
    data: Vec<u8>,
    /// Sorted, disjoint, non-adjacent [start, end) ranges that hold data.
    ranges: Vec<(usize, usize)>,
}

/// Result of one CRYPTO insert.
#[derive(Debug, Default, Clone, Copy)]
struct InsertResult {
    added: bool,
    limit: Option<&'static str>,
}

impl CryptoBuffer {
    fn insert(&mut self, offset: u64, bytes: &[u8]) -> InsertResult {
        let mut res = InsertResult::default();
        let Ok(start) = usize::try_from(offset) else {
            res.limit = Some("MAX_CRYPTO_BYTES");
            return res;
        };
        if bytes.is_empty() {
            return res;
        }
        if start >= MAX_CRYPTO_BYTES {
            res.limit = Some("MAX_CRYPTO_BYTES");
            return res;
        }
        let want_end = start.saturating_add(bytes.len());
        let end = want_end.min(MAX_CRYPTO_BYTES);
        if end < want_end {
            res.limit = Some("MAX_CRYPTO_BYTES");
        }
        // Would the new range exceed the range budget? Count how many
        // existing ranges it touches (merges with).
        let touching = self
            .ranges
            .iter()
            .filter(|(s, e)| *s <= end && *e >= start)
            .count();
        if touching == 0 && self.ranges.len() >= MAX_CRYPTO_RANGES {
            res.limit = Some("MAX_CRYPTO_RANGES");
            return res;
        }
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        // Copy only into the gaps between existing ranges (first copy wins).
        let mut cursor = start;
        let gaps: Vec<(usize, usize)> = {
            let mut g = Vec::new();
            for &(s, e) in self.ranges.iter().take(MAX_CRYPTO_RANGES) {
                if e <= cursor {
                    continue;
                }
                if s >= end {
                    break;
                }
                if s > cursor {
                    g.push((cursor, s));
                }
                cursor = cursor.max(e);
            }
            if cursor < end {
                g.push((cursor, end));
            }
            g
        };
        // At most MAX_CRYPTO_RANGES + 1 gaps.
        for (gs, ge) in gaps {
            let (Some(src), Some(dst)) = (
                bytes.get(gs.saturating_sub(start)..ge.saturating_sub(start)),
                self.data.get_mut(gs..ge),
            ) else {
                continue;
            };
            dst.copy_from_slice(src);
            res.added = true;
        }
        // Merge [start, end) into the sorted range list.
        let mut merged = Vec::with_capacity(self.ranges.len().saturating_add(1));
        let mut new = (start, end);
        let mut placed = false;
        for &(s, e) in self.ranges.iter().take(MAX_CRYPTO_RANGES) {
            if e < new.0 {
                merged.push((s, e));
            } else if s > new.1 {
                if !placed {
                    merged.push(new);
                    placed = true;
                }
                merged.push((s, e));
            } else {
                new = (new.0.min(s), new.1.max(e));
            }
        }
        if !placed {
            merged.push(new);
        }
        self.ranges = merged;
        res
    }

    fn prefix(&self) -> &[u8] {
        match self.ranges.first() {
            Some(&(0, end)) => self.data.get(..end).unwrap_or(&[]),
            _ => &[],
        }
    }
}

/// Per-connection state for the client side of one QUIC connection (one per
/// client->server UDP flow).
pub struct QuicClientState {
    /// Keys from the original DCID.
    keys: InitialKeys,
    /// Keys for a DCID chosen by the server (after a Retry), cached.
    alt_keys: Option<InitialKeys>,
    largest_pn: Option<u64>,
    crypto: CryptoBuffer,
    packets_decrypted: u64,
}

impl core::fmt::Debug for QuicClientState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QuicClientState")
            .field("version", &self.keys.version)
            .field("dcid_len", &self.keys.dcid.len())
            .field("largest_pn", &self.largest_pn)
            .field("crypto_ranges", &self.crypto.ranges)
            .field("packets_decrypted", &self.packets_decrypted)
            .finish_non_exhaustive()
    }
}

impl QuicClientState {
    /// State keyed by the original DCID of the connection. `None` for an
    /// unsupported version or a DCID longer than [`MAX_CID_LEN`].
    #[must_use]
    pub fn new(version: u32, dcid: &[u8]) -> Option<Self> {
        Self::with_keys(InitialKeys::derive(version, dcid)?)
    }

    /// [`QuicClientState::new`] with the keys from `batch` when it derived
    /// them (see [`KeyBatch`]).
    pub fn new_in(version: u32, dcid: &[u8], batch: &mut KeyBatch) -> Option<Self> {
        match batch.take(version, dcid) {
            Some(m) => Self::with_keys(InitialKeys::from_material(version, dcid, m)?),
            None => Self::new(version, dcid),
        }
    }

    fn with_keys(keys: InitialKeys) -> Option<Self> {
        Some(Self {
            keys,
            alt_keys: None,
            largest_pn: None,
            crypto: CryptoBuffer::default(),
            packets_decrypted: 0,
        })
    }

    /// Version the state was created for.
    #[must_use]
    pub fn version(&self) -> u32 {
        self.keys.version
    }

    /// Number of Initial packets decrypted so far.
    #[must_use]
    pub fn packets_decrypted(&self) -> u64 {
        self.packets_decrypted
    }

    /// Contiguous CRYPTO bytes from offset 0 collected so far.
    #[must_use]
    pub fn crypto_prefix(&self) -> &[u8] {
        self.crypto.prefix()
    }

    /// Total length (4-byte header + body) of the first TLS handshake
    /// message, once its header has arrived.
    #[must_use]
    pub fn handshake_len(&self) -> Option<usize> {
        let p = self.crypto_prefix();
        let hdr = p.get(..4)?;
        let body = hdr
            .get(1..4)?
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        body.checked_add(4)
    }

    /// The complete first handshake message (a `ClientHello` when its first
    /// byte is 1), or `None` while bytes are missing. A message longer than
    /// [`MAX_CRYPTO_BYTES`] never completes.
    #[must_use]
    pub fn client_hello(&self) -> Option<&[u8]> {
        let len = self.handshake_len()?;
        self.crypto_prefix().get(..len)
    }

    /// Feed one client->server UDP payload. Walks up to
    /// [`MAX_PACKETS_PER_DATAGRAM`] coalesced long-header packets and
    /// decrypts every client Initial among them, first with the keys of the
    /// original DCID, then (at most one extra key derivation per packet)
    /// with keys from the packet's own DCID, which a client uses after a
    /// Retry. Never panics; undecryptable packets are skipped.
    pub fn push_datagram(&mut self, datagram: &[u8]) -> QuicProgress {
        self.push_datagram_in(datagram, &mut Vec::new())
    }

    /// [`Self::push_datagram`], decrypting into `scratch` (cleared first,
    /// left holding at most one datagram, [`MAX_DATAGRAM_LEN`] bytes): a
    /// worker keeps one for all its connections instead of one each.
    pub fn push_datagram_in(&mut self, datagram: &[u8], scratch: &mut Vec<u8>) -> QuicProgress {
        if datagram.is_empty() || datagram.len() > MAX_DATAGRAM_LEN {
            return QuicProgress::NotQuic;
        }
        let mut rest = datagram;
        let mut decrypted = false;
        let mut added = false;
        let mut limit: Option<&'static str> = None;
        let mut quic = false;
        let mut walked = 0usize;
        while walked < MAX_PACKETS_PER_DATAGRAM {
            let Some(first) = rest.first() else { break };
            if first & 0x80 == 0 {
                // Short header (1-RTT) runs to the end of the datagram.
                quic |= walked > 0 || first & 0x40 != 0;
                break;
            }
            let Some(h) = parse_long_header(rest) else {
                // Unknown version or truncated: still QUIC-shaped?
                quic |= walked > 0 || looks_like_long_header(rest);
                break;
            };
            walked += 1;
            quic = true;
            let (packet, tail) = rest.split_at(h.packet_len.min(rest.len()));
            rest = tail;
            let Some(params) = version_params(h.version) else {
                break;
            };
            if h.type_bits != params.initial_type {
                continue;
            }
            if let Some(out) = self.open_packet(&h, packet, scratch) {
                decrypted = true;
                added |= out.added;
                limit = limit.or(out.limit);
            }
        }
        if walked >= MAX_PACKETS_PER_DATAGRAM && parse_long_header(rest).is_some() {
            limit = limit.or(Some("MAX_PACKETS_PER_DATAGRAM"));
        }
        match (quic, limit, added, decrypted) {
            (false, _, _, _) => QuicProgress::NotQuic,
            (true, Some(name), _, _) => QuicProgress::Limit(name),
            (true, None, true, _) => QuicProgress::Added,
            (true, None, false, true) => QuicProgress::NoNewData,
            (true, None, false, false) => QuicProgress::Ignored,
        }
    }

    /// Decrypt one Initial (trying the original keys, then at most one
    /// derivation from the packet's own DCID) and collect its CRYPTO frames.
    fn open_packet(
        &mut self,
        h: &LongHeader<'_>,
        packet: &[u8],
        scratch: &mut Vec<u8>,
    ) -> Option<InsertResult> {
        let mut opened = None;
        let frames = version_params(h.version)?.frames;
        if h.version == self.keys.version {
            opened = self
                .keys
                .open(packet, h.pn_offset, self.largest_pn, scratch);
        }
        if opened.is_none() {
            // Candidate keys: after compatible version negotiation (RFC 9368)
            // the new version keys from the original DCID; after a Retry
            // (RFC 9001 §5.2) the keys come from the packet's own DCID.
            let dcid: &[u8] = if h.version == self.keys.version {
                h.dcid
            } else {
                &self.keys.dcid
            };
            let is_primary = h.version == self.keys.version && dcid == self.keys.dcid.as_slice();
            let cached = self
                .alt_keys
                .as_ref()
                .filter(|k| k.version == h.version && k.dcid.as_slice() == dcid);
            if let Some(k) = cached {
                opened = k.open(packet, h.pn_offset, self.largest_pn, scratch);
            } else if !is_primary {
                // The single key derivation this packet may cost; the key set
                // is kept only when it decrypts, so garbage cannot evict it.
                if let Some(k) = InitialKeys::derive(h.version, dcid) {
                    opened = k.open(packet, h.pn_offset, self.largest_pn, scratch);
                    if opened.is_some() {
                        self.alt_keys = Some(k);
                    }
                }
            }
        }
        let result = opened.map(|(pn, range)| {
            self.largest_pn = Some(self.largest_pn.map_or(pn, |l| l.max(pn)));
            self.packets_decrypted = self.packets_decrypted.saturating_add(1);
            let plain = scratch.get(range).unwrap_or(&[]);
            parse_frames(plain, frames, &mut self.crypto)
        });
        result
    }
}

/// Walk the frames of a decrypted Initial payload, storing CRYPTO data.
/// Stops at the first unknown or malformed frame.
fn parse_frames(payload: &[u8], frames: FrameSet, crypto: &mut CryptoBuffer) -> InsertResult {
    let mut res = InsertResult::default();
    let mut r = Reader::new(payload);
    for _ in 0..MAX_FRAMES_PER_PACKET {
        if r.remaining() == 0 {
            return res;
        }
        let step = match frames {
            FrameSet::Ietf => parse_ietf_frame(&mut r, crypto, &mut res),
            FrameSet::Gquic => parse_gquic_frame(&mut r, crypto, &mut res),
        };
        if step.is_none() {
            return res;
        }
    }
    if r.remaining() > 0 {
        res.limit = res.limit.or(Some("MAX_FRAMES_PER_PACKET"));
    }
    res
}

/// One frame of a Google QUIC T05x Initial: PADDING, PING, CRYPTO; any
/// other type stops the walk.
fn parse_gquic_frame(
    r: &mut Reader<'_>,
    crypto: &mut CryptoBuffer,
    res: &mut InsertResult,
) -> Option<()> {
    match r.u8()? {
        0x00 => skip_padding(r)?,
        0x07 => {}
        0x08 => crypto_frame(r, crypto, res)?,
        _ => return None,
    }
    Some(())
}

/// Skip a run of PADDING (zero) bytes as one frame.
fn skip_padding(r: &mut Reader<'_>) -> Option<()> {
    let rest = r.rest();
    // Eight bytes per step over the run (a client Initial is mostly padding).
    let zero_words = rest
        .chunks_exact(8)
        .take_while(|c| c.iter().fold(0u8, |a, b| a | b) == 0)
        .count();
    let from = zero_words * 8;
    let tail = rest.get(from..).unwrap_or_default();
    let run = from + tail.iter().position(|b| *b != 0).unwrap_or(tail.len());
    r.take(run).map(|_| ())
}

/// CRYPTO frame body (RFC 9000 §19.6): offset, length, data.
fn crypto_frame(
    r: &mut Reader<'_>,
    crypto: &mut CryptoBuffer,
    res: &mut InsertResult,
) -> Option<()> {
    let offset = r.varint()?;
    let len = r.varint_usize()?;
    let data = r.take(len)?;
    let out = crypto.insert(offset, data);
    res.added |= out.added;
    res.limit = res.limit.or(out.limit);
    Some(())
}

/// One IETF QUIC frame allowed in a client Initial.
fn parse_ietf_frame(
    r: &mut Reader<'_>,
    crypto: &mut CryptoBuffer,
    res: &mut InsertResult,
) -> Option<()> {
    match r.varint()? {
        // PADDING: skip the whole run of zero bytes as one frame.
        0x00 => skip_padding(r)?,
        // PING
        0x01 => {}
        // ACK / ACK_ECN (RFC 9000 §19.3)
        t @ (0x02 | 0x03) => {
            r.varint()?; // largest acknowledged
            r.varint()?; // ack delay
            let ranges = r.varint()?;
            r.varint()?; // first ack range
            if ranges > MAX_ACK_RANGES {
                res.limit = res.limit.or(Some("MAX_ACK_RANGES"));
                return None;
            }
            for _ in 0..ranges {
                r.varint()?; // gap
                r.varint()?; // ack range length
            }
            if t == 0x03 {
                r.varint()?; // ECT0
                r.varint()?; // ECT1
                r.varint()?; // ECN-CE
            }
        }
        // CRYPTO (RFC 9000 §19.6)
        0x06 => crypto_frame(r, crypto, res)?,
        // CONNECTION_CLOSE (transport / application)
        t @ (0x1c | 0x1d) => {
            r.varint()?; // error code
            if t == 0x1c {
                r.varint()?; // frame type
            }
            let len = r.varint_usize()?;
            r.take(len)?;
        }
        _ => return None,
    }
    Some(())
}

/// QUIC bookkeeping of one UDP flow, kept in `flow::Flow` (boxed: most
/// flows never need it) and driven by the pipeline worker.
#[derive(Debug, Default)]
pub struct QuicFlow {
    /// Client state while its ClientHello is being collected.
    pub state: Option<Box<QuicClientState>>,
    /// Direction the client sends in.
    pub dir: u8,
    pub done: bool,
    /// ClientHellos seen on this flow (a second follows a Retry).
    pub hellos: u8,
    dcid: [u8; 20],
    dcid_len: u8,
}

impl QuicFlow {
    /// DCID of the connection whose hello is collected (to spot the post-Retry one).
    pub fn dcid(&self) -> &[u8] {
        self.dcid.get(..usize::from(self.dcid_len)).unwrap_or(&[])
    }
    pub fn set_dcid(&mut self, d: &[u8]) {
        let n = d.len().min(self.dcid.len());
        if let (Some(dst), Some(src)) = (self.dcid.get_mut(..n), d.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.dcid_len = n as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // Test packets are sealed with RustCrypto (an implementation independent
    // of the ring code that opens them).
    use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
    use aes::Aes128;
    use aes_gcm::aead::AeadInOut;
    use aes_gcm::Aes128Gcm;

    /// A PADDING run of any length and alignment ends exactly at the first
    /// non-zero byte (the run is skipped eight bytes at a time), or at the
    /// end of the packet.
    #[test]
    fn padding_run_ends_at_first_nonzero_byte() {
        for lead in 0..9usize {
            for run in 0..41usize {
                let mut buf = vec![0xffu8; lead];
                buf.extend(std::iter::repeat_n(0u8, run));
                buf.extend([0x06, 0x00]);
                let mut r = Reader::new(&buf);
                r.take(lead).unwrap();
                skip_padding(&mut r).unwrap();
                assert_eq!(r.pos(), lead + run, "lead {lead} run {run}");
                let only = vec![0u8; run];
                let mut r = Reader::new(&only);
                skip_padding(&mut r).unwrap();
                assert_eq!(r.remaining(), 0, "run {run} to the end");
            }
        }
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
        s.chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect()
    }

    const RFC_DCID: &str = "8394c8f03e515708";

    /// RFC 9001 A.2 / RFC 9369 A.2: the CRYPTO frame of the client Initial.
    const RFC_CRYPTO_FRAME: &str = concat!(
        "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868",
        "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578",
        "616d706c652e636f6dff01000100000a00080006001d00170018001000070005",
        "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba",
        "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400",
        "0d0010000e0403050306030203080408050806002d00020101001c0002400100",
        "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000",
        "75300901100f088394c8f03e51570806048000ffff",
    );

    /// RFC 9001 Appendix A.2, protected client Initial (1200 bytes).
    const RFC9001_A2_PACKET: &str = concat!(
        "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11",
        "d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399",
        "1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c",
        "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212",
        "30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5",
        "457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208",
        "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec",
        "4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3",
        "485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db",
        "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c",
        "7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8",
        "9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556",
        "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74",
        "68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a",
        "c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00",
        "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632",
        "291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964",
        "25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd",
        "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff",
        "ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198",
        "e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd",
        "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73",
        "203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f",
        "cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e",
        "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade",
        "a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047",
        "90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2",
        "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4",
        "40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0",
        "6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e",
        "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0",
        "be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400",
        "54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab",
        "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9",
        "f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4",
        "056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064",
        "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241",
        "e221af44860018ab0856972e194cd934",
    );

    /// RFC 9369 Appendix A.2, protected client Initial (1200 bytes).
    const RFC9369_A2_PACKET: &str = concat!(
        "d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485",
        "dd04de806071bf03dceebfa162e75d6c96058bdbfb127cdfcbf903388e99ad04",
        "9f9a3dd4425ae4d0992cfff18ecf0fdb5a842d09747052f17ac2053d21f57c5d",
        "250f2c4f0e0202b70785b7946e992e58a59ac52dea6774d4f03b55545243cf1a",
        "12834e3f249a78d395e0d18f4d766004f1a2674802a747eaa901c3f10cda5500",
        "cb9122faa9f1df66c392079a1b40f0de1c6054196a11cbea40afb6ef5253cd68",
        "18f6625efce3b6def6ba7e4b37a40f7732e093daa7d52190935b8da58976ff33",
        "12ae50b187c1433c0f028edcc4c2838b6a9bfc226ca4b4530e7a4ccee1bfa2a3",
        "d396ae5a3fb512384b2fdd851f784a65e03f2c4fbe11a53c7777c023462239dd",
        "6f7521a3f6c7d5dd3ec9b3f233773d4b46d23cc375eb198c63301c21801f6520",
        "bcfb7966fc49b393f0061d974a2706df8c4a9449f11d7f3d2dcbb90c6b877045",
        "636e7c0c0fe4eb0f697545460c806910d2c355f1d253bc9d2452aaa549e27a1f",
        "ac7cf4ed77f322e8fa894b6a83810a34b361901751a6f5eb65a0326e07de7c12",
        "16ccce2d0193f958bb3850a833f7ae432b65bc5a53975c155aa4bcb4f7b2c4e5",
        "4df16efaf6ddea94e2c50b4cd1dfe06017e0e9d02900cffe1935e0491d77ffb4",
        "fdf85290fdd893d577b1131a610ef6a5c32b2ee0293617a37cbb08b847741c3b",
        "8017c25ca9052ca1079d8b78aebd47876d330a30f6a8c6d61dd1ab5589329de7",
        "14d19d61370f8149748c72f132f0fc99f34d766c6938597040d8f9e2bb522ff9",
        "9c63a344d6a2ae8aa8e51b7b90a4a806105fcbca31506c446151adfeceb51b91",
        "abfe43960977c87471cf9ad4074d30e10d6a7f03c63bd5d4317f68ff325ba3bd",
        "80bf4dc8b52a0ba031758022eb025cdd770b44d6d6cf0670f4e990b22347a7db",
        "848265e3e5eb72dfe8299ad7481a408322cac55786e52f633b2fb6b614eaed18",
        "d703dd84045a274ae8bfa73379661388d6991fe39b0d93debb41700b41f90a15",
        "c4d526250235ddcd6776fc77bc97e7a417ebcb31600d01e57f32162a8560cacc",
        "7e27a096d37a1a86952ec71bd89a3e9a30a2a26162984d7740f81193e8238e61",
        "f6b5b984d4d3dfa033c1bb7e4f0037febf406d91c0dccf32acf423cfa1e70710",
        "10d3f270121b493ce85054ef58bada42310138fe081adb04e2bd901f2f13458b",
        "3d6758158197107c14ebb193230cd1157380aa79cae1374a7c1e5bbcb80ee23e",
        "06ebfde206bfb0fcbc0edc4ebec309661bdd908d532eb0c6adc38b7ca7331dce",
        "8dfce39ab71e7c32d318d136b6100671a1ae6a6600e3899f31f0eed19e3417d1",
        "34b90c9058f8632c798d4490da4987307cba922d61c39805d072b589bd52fdf1",
        "e86215c2d54e6670e07383a27bbffb5addf47d66aa85a0c6f9f32e59d85a44dd",
        "5d3b22dc2be80919b490437ae4f36a0ae55edf1d0b5cb4e9a3ecabee93dfc6e3",
        "8d209d0fa6536d27a5d6fbb17641cde27525d61093f1b28072d111b2b4ae5f89",
        "d5974ee12e5cf7d5da4d6a31123041f33e61407e76cffcdcfd7e19ba58cf4b53",
        "6f4c4938ae79324dc402894b44faf8afbab35282ab659d13c93f70412e85cb19",
        "9a37ddec600545473cfb5a05e08d0b209973b2172b4d21fb69745a262ccde96b",
        "a18b2faa745b6fe189cf772a9f84cbfc",
    );

    /// The ClientHello carried by the RFC vectors (CRYPTO frame minus its
    /// 4-byte frame header: type 06, offset 00, length 40f1).
    fn rfc_client_hello() -> Vec<u8> {
        hex(RFC_CRYPTO_FRAME)[4..].to_vec()
    }

    fn varint(v: u64) -> Vec<u8> {
        if v < 64 {
            vec![v as u8]
        } else if v < 16384 {
            ((v as u16) | 0x4000).to_be_bytes().to_vec()
        } else {
            ((v as u32) | 0x8000_0000).to_be_bytes().to_vec()
        }
    }

    fn crypto_frame_bytes(offset: u64, data: &[u8]) -> Vec<u8> {
        let mut f = vec![0x06];
        f.extend(varint(offset));
        f.extend(varint(data.len() as u64));
        f.extend_from_slice(data);
        f
    }

    /// Test-only protection of a client Initial (RFC 9001 §5): encrypt the
    /// payload with AES-128-GCM, then apply header protection. `payload_len`
    /// pads the plaintext with PADDING up to that size. Validated against
    /// the RFC A.2 packets below.
    fn protect(
        version: u32,
        dcid: &[u8],
        pn: u32,
        pn_len: usize,
        frames: &[u8],
        payload_len: usize,
    ) -> Vec<u8> {
        protect_with(version, dcid, dcid, pn, pn_len, frames, payload_len)
    }

    /// [`protect`] with keys from `key_dcid` and `dcid` in the header.
    fn protect_with(
        version: u32,
        key_dcid: &[u8],
        dcid: &[u8],
        pn: u32,
        pn_len: usize,
        frames: &[u8],
        payload_len: usize,
    ) -> Vec<u8> {
        let params = version_params(version).unwrap();
        let (key, iv, hp) = derive_client_key_material(version, key_dcid).unwrap();
        let mut payload = frames.to_vec();
        if payload.len() < payload_len {
            payload.resize(payload_len, 0);
        }
        let mut pkt = vec![0xc0 | (params.initial_type << 4) | (pn_len as u8 - 1)];
        pkt.extend(version.to_be_bytes());
        pkt.push(dcid.len() as u8);
        pkt.extend_from_slice(dcid);
        pkt.push(0); // SCID length
        pkt.push(0); // token length
        let length = (pn_len + payload.len() + TAG_LEN) as u64;
        pkt.extend(((length as u16) | 0x4000).to_be_bytes());
        let pn_offset = pkt.len();
        pkt.extend_from_slice(&pn.to_be_bytes()[4 - pn_len..]);
        let mut nonce = iv;
        for (n, p) in nonce
            .iter_mut()
            .rev()
            .zip(u64::from(pn).to_be_bytes().iter().rev())
        {
            *n ^= p;
        }
        let aead = Aes128Gcm::new(&Array::from(key));
        let tag = aead
            .encrypt_inout_detached(
                &aes_gcm::Nonce::from(nonce),
                &pkt,
                payload.as_mut_slice().into(),
            )
            .unwrap();
        pkt.extend_from_slice(&payload);
        pkt.extend_from_slice(&tag);
        let hp = Aes128::new(&Array::from(hp));
        let mut block =
            Array::from(<[u8; 16]>::try_from(&pkt[pn_offset + 4..pn_offset + 20]).unwrap());
        hp.encrypt_block(&mut block);
        pkt[0] ^= block[0] & 0x0f;
        for i in 0..pn_len {
            pkt[pn_offset + i] ^= block[1 + i];
        }
        pkt
    }

    /// A long-header packet of another type (0-RTT/Handshake) with random
    /// contents, for coalescing tests.
    fn other_long_packet(version: u32, type_bits: u8, body_len: usize) -> Vec<u8> {
        let mut pkt = vec![0xc0 | (type_bits << 4)];
        pkt.extend(version.to_be_bytes());
        pkt.push(4);
        pkt.extend([1, 2, 3, 4]);
        pkt.push(0);
        pkt.extend(((body_len as u16) | 0x4000).to_be_bytes());
        pkt.extend((0..body_len).map(|i| (i * 7) as u8));
        pkt
    }

    use crate::testrng::XorShift64 as Rng;

    /// One version of each key schedule (salt and labels) the tests cover.
    const KEYED_VERSIONS: [u32; 7] = [
        VERSION_1,
        VERSION_2,
        0xff00_001d, // draft-29
        0xff00_0017, // draft-23
        VERSION_MVFST_27,
        VERSION_T050,
        VERSION_T051,
    ];

    /// Key material with each HMAC implementation (the RFC vectors below
    /// go through the one this CPU picks).
    fn both_schedules(version: u32, dcid: &[u8]) -> (KeyMaterial, KeyMaterial) {
        let params = version_params(version).unwrap();
        let salt = salt_for(params.salt).unwrap();
        let lean = key_schedule(salt.lean.as_ref().unwrap(), params.labels, dcid).unwrap();
        let ring = key_schedule(&salt.ring, params.labels, dcid).unwrap();
        (lean, ring)
    }

    #[test]
    fn batched_keys_are_the_keys_one_at_a_time() {
        // Batches of every size up to full, mixed versions and DCID lengths
        // (0..=20), an unknown version and an over-long DCID among them.
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let versions = KEYED_VERSIONS;
        for round in 0..200usize {
            let n = 1 + round % MAX_KEY_BATCH;
            let mut reqs = Vec::new();
            for i in 0..n {
                let len = (rng.next() as usize) % (MAX_CID_LEN + 1);
                let dcid: ArrayVec<u8, MAX_CID_LEN> = (0..len).map(|_| rng.next() as u8).collect();
                let v = match (round + i) % 23 {
                    0 => 0x0a0a_0a0a, // reserved (greased), no keys
                    _ => versions[(rng.next() as usize) % versions.len()],
                };
                reqs.push((v, dcid));
            }
            let batch = key_schedule_batch(&reqs);
            assert_eq!(batch.len(), n);
            for ((v, d), got) in reqs.iter().zip(&batch) {
                let want = version_params(*v)
                    .map(|p| key_schedule(&salt_for(p.salt).unwrap().ring, p.labels, d).unwrap());
                assert_eq!(*got, want, "version {v:#x}, dcid {d:02x?}");
            }
        }
        // Through KeyBatch: wanted, derived, taken once; a full batch
        // refuses more; an over-long DCID is refused.
        let mut b = KeyBatch::default();
        assert!(!b.want(VERSION_1, &[7; MAX_CID_LEN + 1]));
        for i in 0..MAX_KEY_BATCH as u8 {
            assert!(b.want(VERSION_1, &[i; 8]));
            assert!(b.want(VERSION_1, &[i; 8]), "asked twice, kept once");
        }
        assert!(b.is_full() && !b.want(VERSION_2, &[1; 8]));
        b.derive();
        let rfc = hex(RFC_DCID);
        let s = QuicClientState::new_in(VERSION_1, &[3; 8], &mut b).unwrap();
        assert_eq!(s.version(), VERSION_1);
        assert!(b.take(VERSION_1, &[3; 8]).is_none(), "taken once");
        assert_eq!(
            b.take(VERSION_1, &[4; 8]),
            derive_client_key_material(VERSION_1, &[4; 8])
        );
        // Not in the batch: derived on the spot.
        assert!(QuicClientState::new_in(VERSION_1, &rfc, &mut b).is_some());
    }

    #[test]
    fn lean_and_ring_hmac_derive_the_same_keys() {
        // The RFC vectors with both, then 3,000 pseudo-random DCIDs of every
        // length, every version.
        for (version, key) in [
            (VERSION_1, "1f369613dd76d5467730efcbe3b1a22d"),
            (VERSION_2, "8b1a0bc121284290a29e0971b5cd045d"),
        ] {
            let (lean, ring) = both_schedules(version, &hex(RFC_DCID));
            assert_eq!(lean.0.to_vec(), hex(key));
            assert_eq!(lean, ring);
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut next = || rng.next();
        let versions = KEYED_VERSIONS;
        for i in 0..3_000 {
            let dcid: Vec<u8> = (0..i % (MAX_CID_LEN + 1)).map(|_| next() as u8).collect();
            let v = versions[i % versions.len()];
            let (lean, ring) = both_schedules(v, &dcid);
            assert_eq!(lean, ring, "version {v:#x}, dcid {dcid:02x?}");
        }
        // The HMAC itself at every key and message length it takes.
        for klen in 0..=lean::MAX_KEY_LEN {
            let key: Vec<u8> = (0..klen).map(|_| next() as u8).collect();
            let l = <lean::Key as Hmac>::key(&key).unwrap();
            let r = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
            for mlen in 0..=lean::MAX_MSG_LEN {
                let msg: Vec<u8> = (0..mlen).map(|_| next() as u8).collect();
                assert_eq!(
                    l.sign(&msg).unwrap().to_vec(),
                    ring::hmac::sign(&r, &msg).as_ref().to_vec(),
                    "key {klen} bytes, message {mlen} bytes"
                );
            }
        }
        assert!(<lean::Key as Hmac>::key(&[0; lean::MAX_KEY_LEN + 1]).is_none());
        let k = <lean::Key as Hmac>::key(b"k").unwrap();
        assert!(k.sign(&[0; lean::MAX_MSG_LEN + 1]).is_none());
    }

    #[test]
    fn rfc9001_a1_client_keys() {
        let (key, iv, hp) = derive_client_key_material(VERSION_1, &hex(RFC_DCID)).unwrap();
        assert_eq!(key.to_vec(), hex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(iv.to_vec(), hex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(hp.to_vec(), hex("9f50449e04a0e810283a1e9933adedd2"));
    }

    #[test]
    fn rfc9369_a1_client_keys() {
        let (key, iv, hp) = derive_client_key_material(VERSION_2, &hex(RFC_DCID)).unwrap();
        assert_eq!(key.to_vec(), hex("8b1a0bc121284290a29e0971b5cd045d"));
        assert_eq!(iv.to_vec(), hex("91f73e2351d8fa91660e909f"));
        assert_eq!(hp.to_vec(), hex("45b95e15235d6f45a6b19cbcb0294ba9"));
    }

    #[test]
    fn rfc9001_a2_header_protection_mask() {
        let keys = InitialKeys::derive(VERSION_1, &hex(RFC_DCID)).unwrap();
        let mask = keys.mask(&hex("d1b1c98dd7689fb8ec11d242b123dc9b")).unwrap();
        assert_eq!(mask[..5].to_vec(), hex("437b9aec36"));
    }

    #[test]
    fn test_protect_reproduces_rfc_packets() {
        let dcid = hex(RFC_DCID);
        let frame = hex(RFC_CRYPTO_FRAME);
        assert_eq!(
            protect(VERSION_1, &dcid, 2, 4, &frame, 1162),
            hex(RFC9001_A2_PACKET)
        );
        assert_eq!(
            protect(VERSION_2, &dcid, 2, 4, &frame, 1162),
            hex(RFC9369_A2_PACKET)
        );
    }

    fn check_rfc_packet(version: u32, packet_hex: &str) {
        let pkt = hex(packet_hex);
        assert_eq!(pkt.len(), 1200);
        let h = peek_initial(&pkt).unwrap();
        assert_eq!(h.version, version);
        assert_eq!(h.dcid, hex(RFC_DCID).as_slice());
        assert!(h.scid.is_empty());
        assert!(h.token.is_empty());
        let mut st = QuicClientState::new(h.version, h.dcid).unwrap();
        assert_eq!(st.version(), version);
        assert_eq!(st.push_datagram(&pkt), QuicProgress::Added);
        let ch = rfc_client_hello();
        assert_eq!(st.crypto_prefix(), ch.as_slice());
        assert_eq!(st.handshake_len(), Some(ch.len()));
        assert_eq!(st.client_hello(), Some(ch.as_slice()));
        assert_eq!(st.client_hello().unwrap()[0], 1);
        assert!(st.crypto_prefix().windows(11).any(|w| w == b"example.com"));
        // The same datagram again adds nothing.
        assert_eq!(st.push_datagram(&pkt), QuicProgress::NoNewData);
        assert_eq!(st.packets_decrypted(), 2);
    }

    #[test]
    fn rfc9001_a2_client_initial_decrypts() {
        check_rfc_packet(VERSION_1, RFC9001_A2_PACKET);
    }

    #[test]
    fn rfc9369_a2_client_initial_decrypts() {
        check_rfc_packet(VERSION_2, RFC9369_A2_PACKET);
    }

    #[test]
    fn v2_packet_is_not_a_v1_initial_type() {
        // The v1 Initial type bits (00) mean Retry in v2 and vice versa.
        let mut pkt = hex(RFC9369_A2_PACKET);
        pkt[1..5].copy_from_slice(&VERSION_1.to_be_bytes());
        assert!(peek_initial(&pkt).is_none());
    }

    #[test]
    fn wrong_dcid_keys_are_ignored() {
        let pkt = hex(RFC9001_A2_PACKET);
        let mut st = QuicClientState::new(VERSION_1, &[9, 9, 9, 9]).unwrap();
        // The packet's own DCID is tried once, so this decrypts through the
        // alternate key set; the original is wrong but that is recoverable.
        assert_eq!(st.push_datagram(&pkt), QuicProgress::Added);
        // A corrupted tag never decrypts.
        let mut bad = pkt.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let mut st = QuicClientState::new(VERSION_1, &hex(RFC_DCID)).unwrap();
        assert_eq!(st.push_datagram(&bad), QuicProgress::Ignored);
        assert!(st.crypto_prefix().is_empty());
    }

    #[test]
    fn unsupported_versions() {
        assert!(QuicClientState::new(0x0a0a_0a0a, &[1; 8]).is_none());
        assert!(QuicClientState::new(VERSION_1, &[1; 21]).is_none());
        assert!(!is_supported_version(0));
        assert!(!is_supported_version(0xff00_0016));
        for v in [
            VERSION_1,
            VERSION_2,
            0xff00_0017,
            0xff00_001b,
            0xff00_001c,
            0xff00_001d,
            0xff00_0020,
            VERSION_MVFST_27,
            VERSION_MVFST_EXP,
            VERSION_T050,
            VERSION_T051,
        ] {
            assert!(is_supported_version(v), "{v:08x}");
            // Round trip through the test protector for every version.
            let dcid = [0x11; 8];
            let ch = rfc_client_hello();
            let mut frame = crypto_frame_bytes(0, &ch);
            if version_params(v).unwrap().frames == FrameSet::Gquic {
                frame[0] = 0x08; // gQUIC CRYPTO
            }
            let pkt = protect(v, &dcid, 0, 1, &frame, 1100);
            let h = peek_initial(&pkt).unwrap();
            let mut st = QuicClientState::new(h.version, h.dcid).unwrap();
            assert_eq!(st.push_datagram(&pkt), QuicProgress::Added, "{v:08x}");
            assert_eq!(st.client_hello(), Some(ch.as_slice()));
        }
    }

    #[test]
    fn client_hello_split_over_two_initials_any_order() {
        let dcid = [0xab; 8];
        let ch: Vec<u8> = {
            // A 2000-byte "ClientHello": type 1, length 1996.
            let mut v = vec![1, 0, 0x07, 0xcc];
            v.extend((0..1996).map(|i| (i % 251) as u8));
            v
        };
        let p1 = protect(
            VERSION_1,
            &dcid,
            0,
            1,
            &crypto_frame_bytes(0, &ch[..1100]),
            1150,
        );
        let p2 = protect(
            VERSION_1,
            &dcid,
            1,
            2,
            &crypto_frame_bytes(1100, &ch[1100..]),
            1150,
        );
        for order in [[&p1, &p2], [&p2, &p1]] {
            let mut st = QuicClientState::new(VERSION_1, &dcid).unwrap();
            assert_eq!(st.push_datagram(order[0]), QuicProgress::Added);
            assert!(st.client_hello().is_none());
            assert_eq!(st.push_datagram(order[1]), QuicProgress::Added);
            assert_eq!(st.handshake_len(), Some(2000));
            assert_eq!(st.client_hello(), Some(ch.as_slice()));
        }
    }

    /// A worker decrypts every connection's Initials in one buffer: two
    /// connections whose hellos are split over two Initials each, their
    /// packets interleaved, still give each its own hello (the buffer left
    /// holding one connection's plaintext is not read as the other's).
    #[test]
    fn connections_sharing_one_decryption_buffer_keep_their_own_hellos() {
        let hello = |seed: u8| -> Vec<u8> {
            let mut v = vec![1, 0, 0x05, 0xdc];
            v.extend((0..1500u32).map(|i| (i as u8).wrapping_mul(seed)));
            v
        };
        let (a, b) = (hello(3), hello(7));
        let (da, db) = ([0x11; 8], [0x22; 12]);
        let halves = |dcid: &[u8], ch: &[u8]| {
            [
                protect(
                    VERSION_1,
                    dcid,
                    0,
                    1,
                    &crypto_frame_bytes(0, &ch[..900]),
                    1150,
                ),
                protect(
                    VERSION_1,
                    dcid,
                    1,
                    2,
                    &crypto_frame_bytes(900, &ch[900..]),
                    1150,
                ),
            ]
        };
        let [a1, a2] = halves(&da, &a);
        let [b1, b2] = halves(&db, &b);
        let mut sa = QuicClientState::new(VERSION_1, &da).unwrap();
        let mut sb = QuicClientState::new(VERSION_1, &db).unwrap();
        let mut plain = Vec::new();
        assert_eq!(sa.push_datagram_in(&a1, &mut plain), QuicProgress::Added);
        assert_eq!(sb.push_datagram_in(&b2, &mut plain), QuicProgress::Added);
        assert_eq!(sb.push_datagram_in(&b1, &mut plain), QuicProgress::Added);
        assert_eq!(sa.push_datagram_in(&a2, &mut plain), QuicProgress::Added);
        assert_eq!(sa.client_hello(), Some(a.as_slice()));
        assert_eq!(sb.client_hello(), Some(b.as_slice()));
        assert!(plain.len() <= MAX_DATAGRAM_LEN);
    }

    #[test]
    fn crypto_frames_out_of_order_in_one_packet_with_ping_and_ack() {
        let dcid = [7u8; 8];
        let ch = rfc_client_hello();
        let mut frames = vec![0x01]; // PING
        frames.extend(crypto_frame_bytes(200, &ch[200..]));
        frames.extend([0x00, 0x00, 0x00]); // PADDING run
                                           // ACK: largest 5, delay 0, 2 extra ranges, first range 1
        frames.extend([0x02, 0x05, 0x00, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00]);
        frames.extend(crypto_frame_bytes(0, &ch[..100]));
        frames.push(0x01);
        // ACK_ECN with no extra range
        frames.extend([0x03, 0x01, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03]);
        frames.extend(crypto_frame_bytes(100, &ch[100..200]));
        let pkt = protect(VERSION_1, &dcid, 3, 1, &frames, 1100);
        let mut st = QuicClientState::new(VERSION_1, &dcid).unwrap();
        assert_eq!(st.push_datagram(&pkt), QuicProgress::Added);
        assert_eq!(st.client_hello(), Some(ch.as_slice()));
    }

    #[test]
    fn overlapping_frames_first_copy_wins() {
        let dcid = [7u8; 8];
        let ch = rfc_client_hello();
        let mut conflicting = ch[50..150].to_vec();
        conflicting[..50].fill(0xee); // disagrees with the first copy
        let mut frames = crypto_frame_bytes(0, &ch[..100]);
        frames.extend(crypto_frame_bytes(50, &conflicting));
        frames.extend(crypto_frame_bytes(120, &ch[120..]));
        frames.extend(crypto_frame_bytes(0, &[0xff; 10])); // full duplicate, ignored
        let pkt = protect(VERSION_1, &dcid, 0, 1, &frames, 1100);
        let mut st = QuicClientState::new(VERSION_1, &dcid).unwrap();
        assert_eq!(st.push_datagram(&pkt), QuicProgress::Added);
        assert_eq!(st.client_hello(), Some(ch.as_slice()));
    }

    #[test]
    fn crypto_buffer_ranges_merge() {
        let mut b = CryptoBuffer::default();
        assert!(b.insert(10, &[1; 5]).added);
        assert!(b.insert(20, &[2; 5]).added);
        assert!(b.prefix().is_empty());
        assert!(b.insert(0, &[3; 10]).added);
        assert_eq!(b.prefix().len(), 15);
        assert!(b.insert(12, &[4; 10]).added); // fills 15..20 only
        assert_eq!(b.prefix().len(), 25);
        assert_eq!(&b.prefix()[10..15], &[1; 5]);
        assert_eq!(&b.prefix()[15..20], &[4; 5]);
        assert_eq!(b.ranges, vec![(0, 25)]);
        assert!(!b.insert(3, &[9; 4]).added);
        assert!(!b.insert(3, &[]).added);
    }

    #[test]
    fn crypto_limits() {
        let mut b = CryptoBuffer::default();
        let r = b.insert((MAX_CRYPTO_BYTES - 10) as u64, &[1; 100]);
        assert!(r.added);
        assert_eq!(r.limit, Some("MAX_CRYPTO_BYTES"));
        assert_eq!(b.data.len(), MAX_CRYPTO_BYTES);
        let r = b.insert(MAX_CRYPTO_BYTES as u64, &[1]);
        assert_eq!(r.limit, Some("MAX_CRYPTO_BYTES"));
        let r = b.insert(u64::MAX, &[1]);
        assert_eq!(r.limit, Some("MAX_CRYPTO_BYTES"));

        let mut b = CryptoBuffer::default();
        for i in 0..MAX_CRYPTO_RANGES {
            assert_eq!(b.insert((i * 10 + 1) as u64, &[1; 2]).limit, None);
        }
        let r = b.insert(5000, &[1; 2]);
        assert_eq!(r.limit, Some("MAX_CRYPTO_RANGES"));
        // Filling a gap still works when the range list is full.
        assert_eq!(b.insert(0, &[0; 12]).limit, None);
        assert_eq!(b.prefix().len(), 13);

        // Through the packet path: a frame far beyond the cap reports Limit.
        let dcid = [1u8; 8];
        let frames = crypto_frame_bytes(MAX_CRYPTO_BYTES as u64 + 5, &[1, 2, 3]);
        let pkt = protect(VERSION_1, &dcid, 0, 1, &frames, 1100);
        let mut st = QuicClientState::new(VERSION_1, &dcid).unwrap();
        assert_eq!(
            st.push_datagram(&pkt),
            QuicProgress::Limit("MAX_CRYPTO_BYTES")
        );
    }

    #[test]
    fn frame_limits_and_unknown_frames() {
        let dcid = [1u8; 8];
        // 100 PINGs before the CRYPTO frame: the frame budget runs out.
        let mut frames = vec![0x01; 100];
        frames.extend(crypto_frame_bytes(0, b"abc"));
        let pkt = protect(VERSION_1, &dcid, 0, 1, &frames, 1100);
        let mut st = QuicClientState::new(VERSION_1, &dcid).unwrap();
        assert_eq!(
            st.push_datagram(&pkt),
            QuicProgress::Limit("MAX_FRAMES_PER_PACKET")
        );
        // Too many ACK ranges.
        let mut frames = vec![0x02, 0x00, 0x00, 0x40, 0xff, 0x00];
        frames.extend(crypto_frame_bytes(0, b"abc"));
        let pkt = protect(VERSION_1, &dcid, 1, 1, &frames, 1100);
        assert_eq!(
            st.push_datagram(&pkt),
            QuicProgress::Limit("MAX_ACK_RANGES")
        );
        // CONNECTION_CLOSE is skipped; an unknown frame (STREAM 0x08) stops.
        let mut frames = vec![0x1c, 0x01, 0x06, 0x03, b'b', b'y', b'e'];
        frames.extend(crypto_frame_bytes(0, b"abc"));
        frames.extend([0x08, 0x00, 0x01]);
        frames.extend(crypto_frame_bytes(3, b"def"));
        let pkt = protect(VERSION_1, &dcid, 2, 1, &frames, 1100);
        let mut st = QuicClientState::new(VERSION_1, &dcid).unwrap();
        assert_eq!(st.push_datagram(&pkt), QuicProgress::Added);
        assert_eq!(st.crypto_prefix(), b"abc");
    }

    #[test]
    fn coalesced_initial_with_0rtt_and_handshake() {
        let dcid = [5u8; 8];
        let ch = rfc_client_hello();
        let i1 = protect(
            VERSION_1,
            &dcid,
            0,
            1,
            &crypto_frame_bytes(0, &ch[..100]),
            300,
        );
        let i2 = protect(
            VERSION_1,
            &dcid,
            1,
            1,
            &crypto_frame_bytes(100, &ch[100..]),
            200,
        );
        let mut dgram = i1.clone();
        dgram.extend(other_long_packet(VERSION_1, 1, 50)); // 0-RTT
        dgram.extend(i2);
        dgram.extend(other_long_packet(VERSION_1, 2, 60)); // Handshake
        dgram.extend([0x40, 1, 2, 3, 4, 5]); // short header to the end
        let mut st = QuicClientState::new(VERSION_1, &dcid).unwrap();
        assert_eq!(st.push_datagram(&dgram), QuicProgress::Added);
        assert_eq!(st.client_hello(), Some(ch.as_slice()));
        assert_eq!(st.packets_decrypted(), 2);

        // v2 type bits: 0-RTT = 2, Handshake = 3.
        let v2 = protect(VERSION_2, &dcid, 0, 1, &crypto_frame_bytes(0, &ch), 300);
        let mut dgram = other_long_packet(VERSION_2, 2, 40);
        dgram.extend(v2);
        let mut st = QuicClientState::new(VERSION_2, &dcid).unwrap();
        assert_eq!(st.push_datagram(&dgram), QuicProgress::Added);
        assert_eq!(st.client_hello(), Some(ch.as_slice()));

        // Too many coalesced packets.
        let mut dgram = Vec::new();
        for _ in 0..MAX_PACKETS_PER_DATAGRAM + 1 {
            dgram.extend(other_long_packet(VERSION_1, 2, 30));
        }
        assert_eq!(
            st.push_datagram(&dgram),
            QuicProgress::Limit("MAX_PACKETS_PER_DATAGRAM")
        );
    }

    #[test]
    fn retry_changes_dcid() {
        let original = [0x10u8; 8];
        let server_chosen = [0x20u8; 12];
        let ch = rfc_client_hello();
        let before = protect(
            VERSION_1,
            &original,
            0,
            1,
            &crypto_frame_bytes(0, &ch[..50]),
            1100,
        );
        let after1 = protect(
            VERSION_1,
            &server_chosen,
            1,
            1,
            &crypto_frame_bytes(50, &ch[50..150]),
            1100,
        );
        let after2 = protect(
            VERSION_1,
            &server_chosen,
            2,
            1,
            &crypto_frame_bytes(150, &ch[150..]),
            1100,
        );
        let h = peek_initial(&before).unwrap();
        let mut st = QuicClientState::new(h.version, h.dcid).unwrap();
        assert_eq!(st.push_datagram(&before), QuicProgress::Added);
        assert_eq!(st.push_datagram(&after1), QuicProgress::Added);
        assert_eq!(st.push_datagram(&after2), QuicProgress::Added);
        assert_eq!(st.client_hello(), Some(ch.as_slice()));
        // An Initial whose header carries the server's CID but is keyed by
        // the original DCID (the normal case without Retry) decrypts with
        // the primary keys.
        let normal = protect_with(
            VERSION_1,
            &original,
            &server_chosen,
            3,
            1,
            &crypto_frame_bytes(2000, b"x"),
            1100,
        );
        assert_eq!(st.push_datagram(&normal), QuicProgress::Added);
        assert_eq!(st.packets_decrypted(), 4);
        let mut cut = normal;
        cut.truncate(30);
        assert_eq!(st.push_datagram(&cut), QuicProgress::Ignored);
    }

    #[test]
    fn not_quic_and_ignored() {
        let mut st = QuicClientState::new(VERSION_1, &[1; 8]).unwrap();
        assert_eq!(st.push_datagram(&[]), QuicProgress::NotQuic);
        assert_eq!(st.push_datagram(&[0x00, 1, 2, 3]), QuicProgress::NotQuic);
        // Short header with the fixed bit: QUIC 1-RTT, ignored.
        assert_eq!(st.push_datagram(&[0x41, 1, 2, 3]), QuicProgress::Ignored);
        // Version negotiation forcing version: QUIC-shaped, unknown version.
        let mut vn = vec![0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 4, 1, 2, 3, 4, 0];
        vn.extend([0; 40]);
        assert_eq!(st.push_datagram(&vn), QuicProgress::Ignored);
        assert!(peek_initial(&vn).is_none());
        // Handshake-only datagram.
        assert_eq!(
            st.push_datagram(&other_long_packet(VERSION_1, 2, 40)),
            QuicProgress::Ignored
        );
    }

    #[test]
    fn packet_number_decoding() {
        // RFC 9000 Appendix A.3 example.
        assert_eq!(
            decode_packet_number(Some(0xa82f_30ea), 0x9b32, 2),
            0xa82f_9b32
        );
        assert_eq!(decode_packet_number(None, 0, 1), 0);
        assert_eq!(decode_packet_number(None, 5, 4), 5);
        assert_eq!(decode_packet_number(Some(254), 1, 1), 257);
        let _ = decode_packet_number(Some(u64::MAX), 1, 4);
        let _ = decode_packet_number(Some(u64::MAX - 5), 0xff, 1);
        // Packet numbers past the 1-byte window decrypt in sequence.
        let dcid = [3u8; 8];
        let mut st = QuicClientState::new(VERSION_1, &dcid).unwrap();
        for pn in 0..300u32 {
            let pkt = protect(VERSION_1, &dcid, pn, 1, &[0x01], 40);
            let got = st.push_datagram(&pkt);
            assert_eq!(got, QuicProgress::NoNewData, "pn {pn}");
        }
    }

    #[test]
    fn every_truncation_never_panics() {
        for packet in [RFC9001_A2_PACKET, RFC9369_A2_PACKET] {
            let pkt = hex(packet);
            let h = peek_initial(&pkt).unwrap();
            let mut st = QuicClientState::new(h.version, h.dcid).unwrap();
            for n in 0..pkt.len() {
                let _ = peek_initial(&pkt[..n]);
                let got = st.push_datagram(&pkt[..n]);
                assert_ne!(got, QuicProgress::Added, "truncated at {n}");
            }
            assert!(st.crypto_prefix().is_empty());
            assert_eq!(st.push_datagram(&pkt), QuicProgress::Added);
        }
    }

    #[test]
    fn random_and_mutated_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let base = hex(RFC9001_A2_PACKET);
        let mut st = QuicClientState::new(VERSION_1, &hex(RFC_DCID)).unwrap();
        for _ in 0..3000 {
            let len = (rng.next() % 1400) as usize;
            let mut d: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if let Some(b) = d.first_mut() {
                // Bias toward long headers of known versions.
                if rng.next() % 2 == 0 {
                    *b |= 0xc0;
                    if d.len() > 5 {
                        let v = [VERSION_1, VERSION_2, 0xff00_001d][(rng.next() % 3) as usize];
                        d[1..5].copy_from_slice(&v.to_be_bytes());
                        d[5] %= 24;
                    }
                }
            }
            let _ = peek_initial(&d);
            let _ = st.push_datagram(&d);
        }
        for _ in 0..3000 {
            let mut d = base.clone();
            for _ in 0..(1 + rng.next() % 4) {
                let i = (rng.next() as usize) % d.len();
                d[i] ^= 1 << (rng.next() % 8);
            }
            let _ = peek_initial(&d);
            let _ = st.push_datagram(&d);
        }
        assert!(st.crypto_prefix().is_empty() || st.crypto_prefix() == rfc_client_hello());
        // Random plaintext frames never panic the frame parser either.
        for _ in 0..3000 {
            let len = (rng.next() % 300) as usize;
            let d: Vec<u8> = (0..len).map(|_| (rng.next() % 40) as u8).collect();
            let mut b = CryptoBuffer::default();
            let _ = parse_frames(&d, FrameSet::Ietf, &mut b);
            let _ = parse_frames(&d, FrameSet::Gquic, &mut b);
        }
    }

    // ---- Real captures (the public corpus kept in the repository) ----

    const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");

    /// Packets of a pcap or pcapng file as (link type, frame bytes).
    fn read_capture(data: &[u8]) -> Vec<(u32, Vec<u8>)> {
        let mut out = Vec::new();
        let u32_at = |b: &[u8], o: usize, le: bool| {
            let a: [u8; 4] = b[o..o + 4].try_into().unwrap();
            if le {
                u32::from_le_bytes(a)
            } else {
                u32::from_be_bytes(a)
            }
        };
        if data.len() < 24 {
            return out;
        }
        if data[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
            let le = data[8..12] == [0x4d, 0x3c, 0x2b, 0x1a];
            let mut links = Vec::new();
            let mut pos = 0;
            while pos + 12 <= data.len() {
                let btype = u32_at(data, pos, le);
                let blen = u32_at(data, pos + 4, le) as usize;
                if blen < 12 || pos + blen > data.len() {
                    break;
                }
                let body = &data[pos + 8..pos + blen - 4];
                match btype {
                    1 => {
                        let lt = if le {
                            u16::from_le_bytes([body[0], body[1]])
                        } else {
                            u16::from_be_bytes([body[0], body[1]])
                        };
                        links.push(u32::from(lt));
                    }
                    6 => {
                        let ifid = u32_at(body, 0, le) as usize;
                        let cap = u32_at(body, 12, le) as usize;
                        if let (Some(lt), Some(f)) = (links.get(ifid), body.get(20..20 + cap)) {
                            out.push((*lt, f.to_vec()));
                        }
                    }
                    _ => {}
                }
                pos += blen;
            }
            return out;
        }
        let le = match data[..4] {
            [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
            [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
            _ => return out,
        };
        let link = u32_at(data, 20, le) & 0x0fff_ffff;
        let mut pos = 24;
        while pos + 16 <= data.len() {
            let cap = u32_at(data, pos + 8, le) as usize;
            let Some(f) = data.get(pos + 16..pos + 16 + cap) else {
                break;
            };
            out.push((link, f.to_vec()));
            pos += 16 + cap;
        }
        out
    }

    /// (flow key, UDP payload) of an IPv4/IPv6 UDP frame.
    fn udp_of(link: u32, f: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        let ip: &[u8] = match link {
            1 => {
                let mut et = u16::from_be_bytes([*f.get(12)?, *f.get(13)?]);
                let mut off = 14;
                while et == 0x8100 || et == 0x88a8 {
                    et = u16::from_be_bytes([*f.get(off + 2)?, *f.get(off + 3)?]);
                    off += 4;
                }
                if et != 0x0800 && et != 0x86dd {
                    return None;
                }
                f.get(off..)?
            }
            0 => f.get(4..)?,
            9 => {
                let f = if f.starts_with(&[0xff, 0x03]) {
                    f.get(2..)?
                } else {
                    f
                };
                let proto = u16::from_be_bytes([*f.first()?, *f.get(1)?]);
                if proto != 0x21 && proto != 0x57 {
                    return None;
                }
                f.get(2..)?
            }
            101 | 228 | 229 => f,
            113 => f.get(16..)?,
            276 => f.get(20..)?,
            _ => return None,
        };
        let (key, udp) = match ip.first()? >> 4 {
            4 => {
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                let frag = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]);
                if *ip.get(9)? != 17 || frag & 0x3fff != 0 {
                    return None;
                }
                let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
                (ip.get(12..20)?.to_vec(), ip.get(ihl..total.min(ip.len()))?)
            }
            6 => {
                if *ip.get(6)? != 17 {
                    return None;
                }
                (ip.get(8..40)?.to_vec(), ip.get(40..)?)
            }
            _ => return None,
        };
        let ulen = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
        let payload = udp.get(8..ulen.min(udp.len()))?;
        if udp.get(2..4)? == [0x17, 0xc1] {
            // Geneve (udp/6081): decapsulate Ethernet or IP.
            let opt_len = usize::from(payload.first()? & 0x3f) * 4;
            let inner = payload.get(8 + opt_len..)?;
            match payload.get(2..4)? {
                [0x65, 0x58] => return udp_of(1, inner),
                [0x08, 0x00] | [0x86, 0xdd] => return udp_of(101, inner),
                _ => {}
            }
        }
        let mut k = key;
        k.extend_from_slice(udp.get(..4)?);
        Some((k, payload.to_vec()))
    }

    /// Run every client flow of a capture through the module; returns the
    /// CRYPTO prefixes of all QUIC states.
    fn run_capture(path: &std::path::Path) -> Vec<Vec<u8>> {
        let data = std::fs::read(path).unwrap();
        let mut flows: std::collections::HashMap<Vec<u8>, QuicClientState> =
            std::collections::HashMap::new();
        let mut order = Vec::new();
        for (link, frame) in read_capture(&data) {
            let Some((key, payload)) = udp_of(link, &frame) else {
                continue;
            };
            if let Some(st) = flows.get_mut(&key) {
                let _ = st.push_datagram(&payload);
                continue;
            }
            let Some(h) = peek_initial(&payload) else {
                continue;
            };
            let Some(mut st) = QuicClientState::new(h.version, h.dcid) else {
                continue;
            };
            let _ = st.push_datagram(&payload);
            order.push(key.clone());
            flows.insert(key, st);
        }
        order
            .iter()
            .filter_map(|k| flows.get(k))
            .map(|s| s.crypto_prefix().to_vec())
            .collect()
    }

    fn truth_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                truth_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "tsv") {
                out.push(p);
            }
        }
    }

    #[test]
    fn real_captures_quic_sni() {
        let root = std::path::Path::new(CAPTURES);
        let truth_root = root.join("truth");
        let mut files = Vec::new();
        truth_files(&truth_root, &mut files);
        files.sort();
        assert!(
            !files.is_empty(),
            "no truth files in {}",
            truth_root.display()
        );
        let mut failures = Vec::new();
        let mut checked = 0;
        for tsv in files {
            let text = std::fs::read_to_string(&tsv).unwrap();
            let snis: Vec<String> = text
                .lines()
                .filter_map(|l| {
                    let c: Vec<&str> = l.split('\t').collect();
                    (c.get(2) == Some(&"quic-sni")).then(|| c[3].to_string())
                })
                .collect();
            if snis.is_empty() {
                continue;
            }
            let rel = tsv.strip_prefix(&truth_root).unwrap();
            let cap = root.join(rel.to_str().unwrap().trim_end_matches(".tsv"));
            let prefixes = run_capture(&cap);
            for sni in snis {
                checked += 1;
                let found = prefixes
                    .iter()
                    .any(|p| p.windows(sni.len()).any(|w| w == sni.as_bytes()));
                if !found {
                    failures.push(format!("{}: {sni}", rel.display()));
                }
            }
        }
        eprintln!("checked {checked} quic-sni rows; missing: {failures:#?}");
        assert!(checked > 0, "no quic-sni rows in {}", truth_root.display());
        assert!(failures.is_empty(), "missing SNI: {failures:#?}");
    }
}
