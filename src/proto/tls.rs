//! TLS ClientHello scanner: pulls the SNI, first ALPN protocol, ECH presence and offered version out of a client's first flight. The flow layer calls [`scan_client_stream`] with the client's reassembled TCP stream bytes from the start of the connection (possibly only a prefix); the quic module calls [`scan_handshake`] with CRYPTO-stream bytes.
//!
//! Detection is by content only (never by port): a TLS record of type 22
//! (handshake) with version 0x0300..=0x0304, whose first handshake message is
//! a ClientHello (type 1). [`looks_like_tls`] rejects other streams from their
//! first byte so the caller can stop buffering early.
//!
//! The ClientHello is hand-parsed with a small checked [`Reader`] instead of
//! `tls-parser`: tls-parser builds `Vec`s for the cipher list, every extension
//! and their contents, walks lists with unbounded `many0`, and fails the whole
//! extension block when one known extension has an odd body. Here every read
//! is length-checked, every loop has a `MAX_*` bound, nothing is allocated,
//! and all returned names borrow the input. tls-parser serves as a test
//! oracle for the same fixtures.
//!
//! A ClientHello fragmented over several handshake records is reassembled into
//! the caller's `scratch` buffer (at most [`MAX_HELLO_LEN`] + 4 bytes); a
//! hello that fits the first record is parsed in place without copying.

use crate::bytes::{be16, be24, Reader};

/// Largest TLS record length accepted: RFC 8446 §5.2 caps a TLSCiphertext
/// fragment at 2^14 + 256 bytes (plaintext records at 2^14, §5.1). A first
/// record claiming more is not TLS.
pub const MAX_RECORD_LEN: usize = (1 << 14) + 256;

/// Largest ClientHello body (handshake length field) accepted. Real hellos are
/// 0.2–2 KB (about 1.8 KB with an X25519MLKEM768 key share, a few KB with
/// ECH and padding); 16 KiB leaves ample room and bounds `scratch`.
pub const MAX_HELLO_LEN: usize = 16 * 1024;

/// Most TLS records walked to reassemble one ClientHello. Clients send it in
/// one record, or two when it exceeds a record or a middlebox splits it;
/// 32 still allows [`MAX_HELLO_LEN`] in 512-byte fragments.
pub const MAX_HELLO_RECORDS: usize = 32;

/// Most extensions examined in one ClientHello. The IANA registry defines
/// about 60 types and browsers send about 20 (plus GREASE); more is abuse.
pub const MAX_EXTENSIONS: usize = 128;

/// Most server_name entries examined (RFC 6066 §3 allows one name per type,
/// and host_name is the only type defined).
pub const MAX_SNI_ENTRIES: usize = 8;

/// Most ALPN protocol names examined while skipping GREASE ones (browsers
/// send 2–3 names; RFC 7301 puts no limit, so a small cap).
pub const MAX_ALPN_ENTRIES: usize = 32;

/// Most entries in supported_versions: the list is `versions<2..254>` of
/// 2-byte values (RFC 8446 §4.2.1), so at most 127.
pub const MAX_SUPPORTED_VERSIONS: usize = 127;

/// TLS record header: type(1) version(2) length(2).
const RECORD_HEADER_LEN: usize = 5;
/// Handshake header: msg_type(1) length(3).
const HS_HEADER_LEN: usize = 4;
const CONTENT_HANDSHAKE: u8 = 22;
const HS_CLIENT_HELLO: u8 = 1;
const RANDOM_LEN: usize = 32;
const MAX_SESSION_ID_LEN: usize = 32;

const EXT_SERVER_NAME: u16 = 0x0000;
const EXT_ALPN: u16 = 0x0010;
const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;
const EXT_ECH: u16 = 0xfe0d;
const SNI_HOST_NAME: u8 = 0;

/// What a ClientHello tells about the destination. Slices borrow the input
/// (or the caller's `scratch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHello<'a> {
    /// First host_name of the server_name extension (0x0000), as sent
    /// (not lowercased). With ECH this is the outer (public) name.
    pub sni: Option<&'a [u8]>,
    /// First non-GREASE protocol of the ALPN extension (0x0010).
    pub alpn: Option<&'a [u8]>,
    /// encrypted_client_hello extension (0xfe0d) present.
    pub ech: bool,
    /// Highest non-GREASE supported_versions entry, else legacy_version.
    pub version: u16,
}

/// Result of scanning a stream prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsScan<'a> {
    /// Could still be a ClientHello; call again with more bytes.
    NeedMore,
    /// Not TLS: stop buffering this stream for TLS.
    NotTls,
    /// TLS (or SSLv2), but the first handshake message is not a ClientHello,
    /// is malformed, or exceeds a `MAX_*` cap. Stop buffering.
    NoClientHello,
    /// A complete, well-formed ClientHello.
    Hello(ClientHello<'a>),
}

/// Scans client->server stream bytes from the connection start (`buf` may be
/// a prefix) for a ClientHello.
///
/// `scratch` is cleared on every call; it is filled only when the ClientHello
/// spans several TLS records (at most [`MAX_HELLO_LEN`] + 4 bytes are kept).
/// Borrows in the result point into `buf` or `scratch`.
pub fn scan_client_stream<'a>(buf: &'a [u8], scratch: &'a mut Vec<u8>) -> TlsScan<'a> {
    scratch.clear();
    match looks_like_tls(buf) {
        None => return TlsScan::NeedMore,
        Some(false) => return TlsScan::NotTls,
        Some(true) => {}
    }
    if buf.first().is_some_and(|&b| b != CONTENT_HANDSHAKE) {
        // SSLv2-format ClientHello: carries no extensions, hence no name.
        return TlsScan::NoClientHello;
    }
    let total = match gather(buf, scratch) {
        Ok(total) => total,
        Err(scan) => return scan,
    };
    let hello: &'a [u8] = scratch.as_slice();
    match hello.get(..total) {
        Some(msg) => scan_handshake(msg),
        None => TlsScan::NoClientHello,
    }
}

/// Scans one handshake message (`msg` starts at its 4-byte header; bytes
/// after the message are ignored). Used by QUIC on the CRYPTO stream.
/// Returns `NeedMore` while `msg` is shorter than the declared length and
/// never returns `NotTls`.
pub fn scan_handshake(msg: &[u8]) -> TlsScan<'_> {
    match hs_header(msg) {
        Hs::Short => TlsScan::NeedMore,
        Hs::NotHello | Hs::TooLong => TlsScan::NoClientHello,
        Hs::Total(total) => match msg.get(HS_HEADER_LEN..total) {
            None => TlsScan::NeedMore,
            Some(body) => parse_client_hello(body).map_or(TlsScan::NoClientHello, TlsScan::Hello),
        },
    }
}

/// Cheap test of a stream's first bytes: `Some(true)` when it starts like a
/// TLS handshake record (0x16, 0x03, 0x00..=0x04, and once 5 bytes are there
/// a length of 1..=[`MAX_RECORD_LEN`]) or like an SSLv2-format ClientHello;
/// `Some(false)` as soon as a byte rules TLS out; `None` when more bytes are
/// needed (at most 3 for a TLS record, 5 for SSLv2).
pub fn looks_like_tls(prefix: &[u8]) -> Option<bool> {
    let first = *prefix.first()?;
    if first == CONTENT_HANDSHAKE {
        match record(prefix) {
            Rec::Bad => Some(false),
            Rec::Short if prefix.len() < 3 => None,
            Rec::Short | Rec::Body { .. } => Some(true),
        }
    } else if first & 0x80 != 0 {
        looks_like_sslv2_hello(prefix)
    } else {
        Some(false)
    }
}

/// SSLv2 2-byte record header, then msg_type 1 (CLIENT-HELLO) and a version
/// of 0x0002 (SSL 2.0) or 0x0300..=0x0304.
fn looks_like_sslv2_hello(prefix: &[u8]) -> Option<bool> {
    let &msg_type = prefix.get(2)?;
    if msg_type != HS_CLIENT_HELLO {
        return Some(false);
    }
    let &major = prefix.get(3)?;
    if major != 0 && major != 3 {
        return Some(false);
    }
    let &minor = prefix.get(4)?;
    Some(if major == 0 { minor == 2 } else { minor <= 4 })
}

/// One TLS record at the start of a byte slice.
enum Rec<'a> {
    /// Header incomplete, but the bytes present are valid so far.
    Short,
    /// Not a handshake record of TLS 1.x, or a bad length.
    Bad,
    /// `avail` = the payload bytes present; `full` = all of them are;
    /// `rest` = bytes after the record (empty unless `full`).
    Body {
        avail: &'a [u8],
        full: bool,
        rest: &'a [u8],
    },
}

fn record(s: &[u8]) -> Rec<'_> {
    match s.first() {
        None => return Rec::Short,
        Some(&t) if t != CONTENT_HANDSHAKE => return Rec::Bad,
        Some(_) => {}
    }
    match s.get(1) {
        None => return Rec::Short,
        Some(&major) if major != 3 => return Rec::Bad,
        Some(_) => {}
    }
    match s.get(2) {
        None => return Rec::Short,
        Some(&minor) if minor > 4 => return Rec::Bad,
        Some(_) => {}
    }
    let Some(len) = be16(s, 3).map(usize::from) else {
        return Rec::Short;
    };
    if len == 0 || len > MAX_RECORD_LEN {
        return Rec::Bad;
    }
    let body = s.get(RECORD_HEADER_LEN..).unwrap_or_default();
    match (body.get(..len), body.get(len..)) {
        (Some(avail), Some(rest)) => Rec::Body {
            avail,
            full: true,
            rest,
        },
        _ => Rec::Body {
            avail: body,
            full: false,
            rest: &[],
        },
    }
}

/// Handshake header at the start of the handshake byte stream.
enum Hs {
    Short,
    NotHello,
    TooLong,
    /// Header plus body length of the ClientHello.
    Total(usize),
}

fn hs_header(b: &[u8]) -> Hs {
    match b.first() {
        None => return Hs::Short,
        Some(&t) if t != HS_CLIENT_HELLO => return Hs::NotHello,
        Some(_) => {}
    }
    let Some(len) = be24(b, 1) else {
        return Hs::Short;
    };
    if len > MAX_HELLO_LEN {
        Hs::TooLong
    } else {
        Hs::Total(HS_HEADER_LEN + len)
    }
}

/// Walks handshake records. `Err` carries a final answer (including a Hello
/// parsed in place from the first record); `Ok(total)` means `scratch` now
/// holds the whole `total`-byte ClientHello message.
fn gather<'a>(buf: &'a [u8], scratch: &mut Vec<u8>) -> Result<usize, TlsScan<'a>> {
    let mut rest = buf;
    for i in 0..MAX_HELLO_RECORDS {
        let (avail, full, next) = match record(rest) {
            Rec::Short => return Err(TlsScan::NeedMore),
            Rec::Bad if i == 0 => return Err(TlsScan::NotTls),
            Rec::Bad => return Err(TlsScan::NoClientHello),
            Rec::Body { avail, full, rest } => (avail, full, rest),
        };
        if i == 0 {
            match hs_header(avail) {
                Hs::NotHello | Hs::TooLong => return Err(TlsScan::NoClientHello),
                Hs::Total(total) if avail.len() >= total => return Err(scan_handshake(avail)),
                Hs::Short | Hs::Total(_) => {}
            }
            if !full {
                return Err(TlsScan::NeedMore);
            }
            scratch.extend_from_slice(avail);
        } else {
            let want = match hs_header(scratch) {
                Hs::Total(total) => total.saturating_sub(scratch.len()),
                _ => avail.len(),
            };
            scratch.extend_from_slice(avail.get(..want).unwrap_or(avail));
            match hs_header(scratch) {
                Hs::NotHello | Hs::TooLong => return Err(TlsScan::NoClientHello),
                Hs::Total(total) if scratch.len() >= total => {
                    scratch.truncate(total);
                    return Ok(total);
                }
                Hs::Short | Hs::Total(_) => {}
            }
            if !full {
                return Err(TlsScan::NeedMore);
            }
        }
        rest = next;
    }
    // The hello is still incomplete after MAX_HELLO_RECORDS records.
    Err(TlsScan::NoClientHello)
}

/// Bytes (whole TLS records) occupied by the ClientHello at the start of
/// `b`, one that [`scan_client_stream`] has found: record lengths summed
/// until they cover the handshake message. May exceed `b.len()` while the
/// last record is still arriving.
pub fn hello_extent(b: &[u8]) -> Option<usize> {
    let need = be24(b, RECORD_HEADER_LEN + 1)? + HS_HEADER_LEN;
    let mut off = 0usize;
    let mut got = 0usize;
    for _ in 0..MAX_HELLO_RECORDS {
        let len = usize::from(be16(b, off + 3)?);
        got += len;
        off += RECORD_HEADER_LEN + len;
        if got >= need {
            return Some(off);
        }
    }
    None
}

/// What follows a ClientHello on the client's stream, as far as it matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterHello {
    NeedMore,
    /// A ChangeCipherSpec record (middlebox compatibility, RFC 8446 D.4) of
    /// this many bytes with its header, which may precede a retried hello.
    ChangeCipherSpec(usize),
    /// A handshake record holding another ClientHello (after a HelloRetryRequest).
    Hello,
    /// Anything else: encrypted data, nothing more to find.
    Other,
}

/// Classify the record at the start of the stream after a ClientHello.
pub fn after_hello(b: &[u8]) -> AfterHello {
    let (Some(&typ), Some(len)) = (b.first(), be16(b, 3)) else {
        return AfterHello::NeedMore;
    };
    match typ {
        20 => AfterHello::ChangeCipherSpec(RECORD_HEADER_LEN + usize::from(len)),
        CONTENT_HANDSHAKE => match b.get(RECORD_HEADER_LEN) {
            None => AfterHello::NeedMore,
            Some(&HS_CLIENT_HELLO) => AfterHello::Hello,
            Some(_) => AfterHello::Other,
        },
        _ => AfterHello::Other,
    }
}

/// RFC 8701 GREASE value: 0x?A?A with both bytes equal.
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// Parses a ClientHello body (after the handshake header). `None` if malformed.
fn parse_client_hello(body: &[u8]) -> Option<ClientHello<'_>> {
    let mut r = Reader::new(body);
    let legacy_version = r.u16()?;
    if legacy_version >> 8 != 3 {
        return None;
    }
    r.take(RANDOM_LEN)?;
    if r.vec8()?.len() > MAX_SESSION_ID_LEN {
        return None;
    }
    let suites = r.vec16()?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return None;
    }
    if r.vec8()?.is_empty() {
        return None;
    }
    let mut hello = ClientHello {
        sni: None,
        alpn: None,
        ech: false,
        version: legacy_version,
    };
    if r.is_empty() {
        // Extension block is optional (pre-RFC 5246 clients).
        return Some(hello);
    }
    let mut exts = Reader::new(r.vec16()?);
    let mut best_version: Option<u16> = None;
    for _ in 0..MAX_EXTENSIONS {
        if exts.is_empty() {
            break;
        }
        let ext_type = exts.u16()?;
        let data = exts.vec16()?;
        match ext_type {
            EXT_SERVER_NAME if hello.sni.is_none() => hello.sni = parse_sni(data)?,
            EXT_ALPN if hello.alpn.is_none() => hello.alpn = parse_alpn(data)?,
            EXT_SUPPORTED_VERSIONS if best_version.is_none() => {
                best_version = parse_supported_versions(data)?;
            }
            EXT_ECH => hello.ech = true,
            _ => {}
        }
    }
    if !exts.is_empty() {
        // More than MAX_EXTENSIONS extensions.
        return None;
    }
    if let Some(v) = best_version {
        hello.version = v;
    }
    Some(hello)
}

/// server_name (RFC 6066 §3): first non-empty host_name. Outer `None` = malformed.
fn parse_sni(data: &[u8]) -> Option<Option<&[u8]>> {
    if data.is_empty() {
        return Some(None);
    }
    let mut list = Reader::new(Reader::new(data).vec16()?);
    for _ in 0..MAX_SNI_ENTRIES {
        if list.is_empty() {
            break;
        }
        let name_type = list.u8()?;
        let name = list.vec16()?;
        if name_type == SNI_HOST_NAME {
            return Some((!name.is_empty()).then_some(name));
        }
    }
    Some(None)
}

/// ALPN (RFC 7301 §3.1): first protocol that is not a GREASE value
/// (RFC 8701 §2 reserves the two-byte names 0x?A?A). Outer `None` = malformed.
fn parse_alpn(data: &[u8]) -> Option<Option<&[u8]>> {
    let mut list = Reader::new(Reader::new(data).vec16()?);
    for _ in 0..MAX_ALPN_ENTRIES {
        if list.is_empty() {
            break;
        }
        let proto = list.vec8()?;
        match *proto {
            [] => return None,
            [hi, lo] if is_grease(u16::from_be_bytes([hi, lo])) => {}
            _ => return Some(Some(proto)),
        }
    }
    Some(None)
}

/// supported_versions (RFC 8446 §4.2.1): highest non-GREASE version.
/// Outer `None` = malformed.
fn parse_supported_versions(data: &[u8]) -> Option<Option<u16>> {
    let list = Reader::new(data).vec8()?;
    if list.len() % 2 != 0 {
        return None;
    }
    let best = list
        .chunks_exact(2)
        .take(MAX_SUPPORTED_VERSIONS)
        .filter_map(|c| match *c {
            [hi, lo] => Some(u16::from_be_bytes([hi, lo])),
            _ => None,
        })
        .filter(|&v| !is_grease(v))
        .max();
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ClientHello sent by `openssl s_client -servername x.kaspersky.com
    /// -alpn h2,http/1.1` (OpenSSL 3.0.19), captured on loopback: one record.
    const OPENSSL_HELLO: &str = "\
160301014e0100014a03036b64f01f39660b7f1e6605bed57801d927f304d36f5d9237056eb98a17a1f9e8200b0eb62f\
a00dafbba6c37f101ece1d997f3cf2cf1f7fdf72ba066e27e29d5327003e130213031301c02cc030009fcca9cca8ccaa\
c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000c3\
00000014001200000f782e6b6173706572736b792e636f6d000b000403000102000a00160014001d0017001e00190018\
01000101010201030104002300000010000e000c02683208687474702f312e310016000000170000000d002a00280403\
05030603080708080809080a080b080408050806040105010601030303010302040205020602002b0009080304030303\
020301002d00020101003300260024001d00207aac272e3ee9dbd17ac0c5cf2d71fe58f7c76747b2cab5a3f549e4d7c7\
914524";

    fn fixture() -> Vec<u8> {
        hex::decode(OPENSSL_HELLO).unwrap()
    }

    fn scan(buf: &[u8]) -> TlsScan<'_> {
        // Leaks a scratch per call so the result can outlive it; tests only.
        let scratch: &'static mut Vec<u8> = Box::leak(Box::default());
        scan_client_stream(buf, scratch)
    }

    fn hello_of(s: TlsScan<'_>) -> ClientHello<'_> {
        match s {
            TlsScan::Hello(h) => h,
            other => panic!("expected Hello, got {other:?}"),
        }
    }

    fn u16b(v: u16) -> [u8; 2] {
        v.to_be_bytes()
    }

    fn ext(ty: u16, data: &[u8]) -> Vec<u8> {
        let mut e = u16b(ty).to_vec();
        e.extend_from_slice(&u16b(data.len() as u16));
        e.extend_from_slice(data);
        e
    }

    fn ext_sni(name: &[u8]) -> Vec<u8> {
        let mut entry = vec![SNI_HOST_NAME];
        entry.extend_from_slice(&u16b(name.len() as u16));
        entry.extend_from_slice(name);
        let mut d = u16b(entry.len() as u16).to_vec();
        d.extend_from_slice(&entry);
        ext(EXT_SERVER_NAME, &d)
    }

    fn ext_alpn(protos: &[&[u8]]) -> Vec<u8> {
        let mut list = Vec::new();
        for p in protos {
            list.push(p.len() as u8);
            list.extend_from_slice(p);
        }
        let mut d = u16b(list.len() as u16).to_vec();
        d.extend_from_slice(&list);
        ext(EXT_ALPN, &d)
    }

    fn ext_versions(vs: &[u16]) -> Vec<u8> {
        let mut d = vec![(vs.len() * 2) as u8];
        for v in vs {
            d.extend_from_slice(&u16b(*v));
        }
        ext(EXT_SUPPORTED_VERSIONS, &d)
    }

    /// key_share (0x0033) with X25519MLKEM768 (0x11ec, 1216 bytes) and x25519.
    fn ext_pq_key_share() -> Vec<u8> {
        let mut shares = Vec::new();
        for (group, len) in [(0x11ecu16, 1216usize), (0x001d, 32)] {
            shares.extend_from_slice(&u16b(group));
            shares.extend_from_slice(&u16b(len as u16));
            shares.extend((0..len).map(|i| (i * 7) as u8));
        }
        let mut d = u16b(shares.len() as u16).to_vec();
        d.extend_from_slice(&shares);
        ext(0x0033, &d)
    }

    /// Handshake message (type 1 + 3-byte length + body) with these extensions.
    fn hello_msg(exts: &[Vec<u8>]) -> Vec<u8> {
        let mut body = u16b(0x0303).to_vec();
        body.extend_from_slice(&[0x42; 32]); // random
        body.push(32);
        body.extend_from_slice(&[0x17; 32]); // session id
        let suites = [0x1301u16, 0x1302, 0x1303, 0xc02b];
        body.extend_from_slice(&u16b((suites.len() * 2) as u16));
        for s in suites {
            body.extend_from_slice(&u16b(s));
        }
        body.extend_from_slice(&[1, 0]); // null compression
        let all: Vec<u8> = exts.concat();
        body.extend_from_slice(&u16b(all.len() as u16));
        body.extend_from_slice(&all);
        let mut msg = vec![HS_CLIENT_HELLO];
        msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend_from_slice(&body);
        msg
    }

    /// Wraps a handshake byte stream into handshake records cut at `cuts`.
    fn records(hs: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut start = 0;
        for &end in cuts.iter().chain(std::iter::once(&hs.len())) {
            let frag = &hs[start..end];
            out.extend_from_slice(&[CONTENT_HANDSHAKE, 3, 1]);
            out.extend_from_slice(&u16b(frag.len() as u16));
            out.extend_from_slice(frag);
            start = end;
        }
        out
    }

    fn assert_all_prefixes_need_more(stream: &[u8]) {
        for n in 0..stream.len() {
            let mut scratch = Vec::new();
            let got = scan_client_stream(&stream[..n], &mut scratch);
            assert_eq!(got, TlsScan::NeedMore, "prefix of {n} bytes");
        }
    }

    #[test]
    fn openssl_fixture_gives_sni_alpn_version() {
        let buf = fixture();
        let h = hello_of(scan(&buf));
        assert_eq!(h.sni, Some(&b"x.kaspersky.com"[..]));
        assert_eq!(h.alpn, Some(&b"h2"[..]));
        assert!(!h.ech);
        assert_eq!(h.version, 0x0304);
        // The name borrows the input in place (single record: no copy).
        let sni = h.sni.unwrap();
        assert!(buf.as_ptr_range().contains(&sni.as_ptr()));
    }

    #[test]
    fn openssl_fixture_agrees_with_tls_parser() {
        use tls_parser::{
            parse_tls_extensions, parse_tls_plaintext, TlsExtension, TlsMessage,
            TlsMessageHandshake,
        };
        let buf = fixture();
        let (_, rec) = parse_tls_plaintext(&buf).unwrap();
        let Some(TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch))) = rec.msg.first()
        else {
            panic!("tls-parser did not see a ClientHello");
        };
        let (_, exts) = parse_tls_extensions(ch.ext.unwrap()).unwrap();
        let oracle_sni = exts.iter().find_map(|e| match e {
            TlsExtension::SNI(v) => v.first().map(|(_, n)| *n),
            _ => None,
        });
        let oracle_alpn = exts.iter().find_map(|e| match e {
            TlsExtension::ALPN(v) => v.first().copied(),
            _ => None,
        });
        let h = hello_of(scan(&buf));
        assert_eq!(h.sni, oracle_sni);
        assert_eq!(h.alpn, oracle_alpn);
    }

    #[test]
    fn every_prefix_of_fixture_needs_more() {
        assert_all_prefixes_need_more(&fixture());
    }

    #[test]
    fn fixture_split_over_two_records() {
        let buf = fixture();
        let hs = &buf[RECORD_HEADER_LEN..];
        for cut in [1, 2, 3, 4, 5, 40, 100, hs.len() / 2, hs.len() - 1] {
            let stream = records(hs, &[cut]);
            let mut scratch = Vec::new();
            let h = hello_of(scan_client_stream(&stream, &mut scratch));
            assert_eq!(h.sni, Some(&b"x.kaspersky.com"[..]), "cut {cut}");
            assert_eq!(h.alpn, Some(&b"h2"[..]));
            assert_eq!(h.version, 0x0304);
            assert_all_prefixes_need_more(&stream);
        }
    }

    #[test]
    fn trailing_bytes_after_hello_are_ignored() {
        let buf = fixture();
        let hs = &buf[RECORD_HEADER_LEN..];
        let mut stream = records(hs, &[150]);
        // Next record (e.g. early data) follows; must not disturb the result.
        stream.extend_from_slice(&[23, 3, 3, 0, 3, 1, 2, 3]);
        let h = hello_of(scan(&stream));
        assert_eq!(h.sni, Some(&b"x.kaspersky.com"[..]));
    }

    #[test]
    fn big_post_quantum_hello_over_two_records() {
        let msg = hello_msg(&[
            ext_sni(b"dnl-01.geo.kaspersky.com"),
            ext_versions(&[0x0304, 0x0303]),
            ext_pq_key_share(),
            ext_alpn(&[b"h2", b"http/1.1"]),
            ext(0x0015, &[0; 400]), // padding, as Chrome sends
        ]);
        assert!(msg.len() > 1750 && msg.len() < 1900, "{}", msg.len());
        let stream = records(&msg, &[1200]);
        let mut scratch = Vec::new();
        let got = scan_client_stream(&stream, &mut scratch);
        let h = hello_of(got);
        assert_eq!(h.sni, Some(&b"dnl-01.geo.kaspersky.com"[..]));
        assert_eq!(h.alpn, Some(&b"h2"[..]));
        assert_eq!(h.version, 0x0304);
        assert_all_prefixes_need_more(&stream);
        // Also whole in one record, and via scan_handshake.
        assert_eq!(hello_of(scan(&records(&msg, &[]))), h);
        assert_eq!(hello_of(scan_handshake(&msg)), h);
    }

    #[test]
    fn scratch_holds_only_the_hello() {
        let msg = hello_msg(&[ext_sni(b"a.example"), ext_pq_key_share()]);
        let stream = records(&msg, &[700]);
        let mut scratch = vec![9; 5];
        let h = hello_of(scan_client_stream(&stream, &mut scratch));
        assert_eq!(h.sni, Some(&b"a.example"[..]));
        assert_eq!(scratch, msg);
    }

    #[test]
    fn grease_values_are_ignored() {
        let msg = hello_msg(&[
            ext(0x0a0a, &[]),
            ext_sni(b"grease.example"),
            ext(0xfafa, &[0]),
            ext_versions(&[0x2a2a, 0x0304, 0x0303]),
            ext_alpn(&[&[0x3a, 0x3a], b"h2"]),
            ext(0x1a1a, &[1, 2, 3]),
        ]);
        let stream = records(&msg, &[]);
        let h = hello_of(scan(&stream));
        assert_eq!(h.sni, Some(&b"grease.example"[..]));
        assert_eq!(h.alpn, Some(&b"h2"[..]));
        assert_eq!(h.version, 0x0304);
        assert!(is_grease(0x0a0a) && is_grease(0xfafa) && !is_grease(0x0a1a));
    }

    #[test]
    fn only_grease_versions_fall_back_to_legacy() {
        let msg = hello_msg(&[ext_versions(&[0x7a7a])]);
        assert_eq!(hello_of(scan_handshake(&msg)).version, 0x0303);
    }

    #[test]
    fn no_sni_no_alpn() {
        let msg = hello_msg(&[ext_versions(&[0x0303])]);
        let stream = records(&msg, &[]);
        let h = hello_of(scan(&stream));
        assert_eq!(h.sni, None);
        assert_eq!(h.alpn, None);
        assert!(!h.ech);
        assert_eq!(h.version, 0x0303);
    }

    #[test]
    fn no_extensions_at_all() {
        let mut msg = hello_msg(&[]);
        msg.truncate(msg.len() - 2); // drop the empty extensions length
        let len = msg.len() - HS_HEADER_LEN;
        msg[1..4].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
        let h = hello_of(scan_handshake(&msg));
        assert_eq!((h.sni, h.alpn, h.version), (None, None, 0x0303));
    }

    #[test]
    fn ech_extension_reported_with_outer_sni() {
        let msg = hello_msg(&[
            ext_sni(b"public.example"),
            ext(EXT_ECH, &[0, 0, 1, 0, 1, 7, 0, 0]),
            ext_versions(&[0x0304]),
        ]);
        let stream = records(&msg, &[]);
        let h = hello_of(scan(&stream));
        assert!(h.ech);
        assert_eq!(h.sni, Some(&b"public.example"[..]));
    }

    #[test]
    fn http_is_not_tls_from_first_byte() {
        assert_eq!(looks_like_tls(b"G"), Some(false));
        assert_eq!(scan(b"G"), TlsScan::NotTls);
        assert_eq!(scan(b"GET / HTTP/1.1\r\n"), TlsScan::NotTls);
        assert_eq!(scan(b"SSH-2.0-OpenSSH_9.6\r\n"), TlsScan::NotTls);
    }

    #[test]
    fn looks_like_tls_needs_three_bytes() {
        assert_eq!(looks_like_tls(b""), None);
        assert_eq!(looks_like_tls(&[0x16]), None);
        assert_eq!(looks_like_tls(&[0x16, 0x03]), None);
        assert_eq!(looks_like_tls(&[0x16, 0x03, 0x01]), Some(true));
        assert_eq!(looks_like_tls(&[0x16, 0x02]), Some(false));
        assert_eq!(looks_like_tls(&[0x16, 0x03, 0x05]), Some(false));
        assert_eq!(looks_like_tls(&[0x17, 0x03, 0x03]), Some(false));
        assert_eq!(looks_like_tls(&fixture()), Some(true));
    }

    #[test]
    fn oversized_record_is_not_tls() {
        let too_big = (MAX_RECORD_LEN + 1) as u16;
        let mut buf = vec![0x16, 3, 1];
        buf.extend_from_slice(&too_big.to_be_bytes());
        assert_eq!(looks_like_tls(&buf), Some(false));
        assert_eq!(scan(&buf), TlsScan::NotTls);
        assert_eq!(scan(&[0x16, 3, 1, 0, 0]), TlsScan::NotTls);
    }

    #[test]
    fn sslv2_hello_has_no_name() {
        // SSLv2 CLIENT-HELLO offering TLS 1.0 (2-byte header, msg type 1).
        let buf = hex::decode("802e0103010015000000100000040000ff0100800300800700c0").unwrap();
        assert_eq!(looks_like_tls(&buf), Some(true));
        assert_eq!(scan(&buf), TlsScan::NoClientHello);
        assert_eq!(scan(&buf[..4]), TlsScan::NeedMore);
        assert_eq!(looks_like_tls(&[0x80, 0x2e, 0x02]), Some(false));
    }

    #[test]
    fn server_hello_is_no_client_hello() {
        assert_eq!(scan(&[0x16, 3, 3, 0, 0x4a, 2]), TlsScan::NoClientHello);
        assert_eq!(scan_handshake(&[2, 0, 0, 4]), TlsScan::NoClientHello);
    }

    #[test]
    fn declared_hello_too_long() {
        let len = (MAX_HELLO_LEN + 1) as u32;
        let mut msg = vec![HS_CLIENT_HELLO];
        msg.extend_from_slice(&len.to_be_bytes()[1..]);
        assert_eq!(scan_handshake(&msg), TlsScan::NoClientHello);
        assert_eq!(scan(&records(&msg, &[])), TlsScan::NoClientHello);
    }

    #[test]
    fn non_handshake_record_mid_hello() {
        let buf = fixture();
        let mut stream = records(&buf[RECORD_HEADER_LEN..200], &[]);
        stream.extend_from_slice(&[0x14, 3, 3, 0, 1, 1]);
        assert_eq!(scan(&stream), TlsScan::NoClientHello);
    }

    #[test]
    fn record_count_is_capped() {
        let msg = hello_msg(&[ext_sni(b"frag.example")]);
        // Within the cap: MAX_HELLO_RECORDS fragments.
        let step = msg.len().div_ceil(MAX_HELLO_RECORDS);
        let cuts: Vec<usize> = (1..MAX_HELLO_RECORDS).map(|i| i * step).collect();
        let cuts: Vec<usize> = cuts.into_iter().filter(|&c| c < msg.len()).collect();
        let stream = records(&msg, &cuts);
        let h = hello_of(scan(&stream));
        assert_eq!(h.sni, Some(&b"frag.example"[..]));
        // One byte per record: far past the cap.
        let cuts: Vec<usize> = (1..msg.len()).collect();
        assert_eq!(scan(&records(&msg, &cuts)), TlsScan::NoClientHello);
    }

    #[test]
    fn scan_handshake_prefixes_need_more() {
        let buf = fixture();
        let hs = &buf[RECORD_HEADER_LEN..];
        let h = hello_of(scan_handshake(hs));
        assert_eq!(h.sni, Some(&b"x.kaspersky.com"[..]));
        for n in 0..hs.len() {
            assert_eq!(scan_handshake(&hs[..n]), TlsScan::NeedMore, "prefix {n}");
        }
    }

    #[test]
    fn malformed_sni_is_no_client_hello() {
        // server_name list length claims more than the extension holds.
        let msg = hello_msg(&[ext(EXT_SERVER_NAME, &[0, 9, 0, 0, 1, b'a'])]);
        assert_eq!(scan_handshake(&msg), TlsScan::NoClientHello);
    }

    /// xorshift64*: deterministic pseudo-random bytes without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn random_and_mutated_input_never_panics() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut hellos = 0;
        for _ in 0..20_000 {
            let len = (rng.next() % 600) as usize;
            let mut buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if rng.next() % 2 == 0 && buf.len() >= 3 {
                buf[..3].copy_from_slice(&[0x16, 3, 1]);
            }
            let _ = scan(&buf);
            let _ = scan_handshake(&buf);
            let _ = looks_like_tls(&buf);
        }
        let base = fixture();
        for _ in 0..20_000 {
            let mut buf = base.clone();
            for _ in 0..(rng.next() % 4 + 1) {
                let i = (rng.next() as usize) % buf.len();
                buf[i] = rng.next() as u8;
            }
            let mut scratch = Vec::new();
            if let TlsScan::Hello(h) = scan_client_stream(&buf, &mut scratch) {
                hellos += 1;
                if let Some(sni) = h.sni {
                    assert!(buf.as_ptr_range().contains(&sni.as_ptr()));
                }
            }
        }
        // Most single-byte mutations hit the random or key share.
        assert!(hellos > 1000, "{hellos}");
    }
}
