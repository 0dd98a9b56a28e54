//! Tiny frame builders shared by `benches/parsers.rs` and `tests/alloc.rs`
//! (included with `#[path]`; not a bench target of its own). Ethernet,
//! optional 802.1Q, IPv4/IPv6, TCP/UDP, DNS queries and TLS ClientHellos,
//! with correct IPv4 header checksums. Deterministic, no dependencies.
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};

pub const ETH_IPV4: u16 = 0x0800;
pub const ETH_IPV6: u16 = 0x86dd;
pub const ETH_VLAN: u16 = 0x8100;

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const PSH: u8 = 0x08;

fn be16(v: u16) -> [u8; 2] {
    v.to_be_bytes()
}

/// Ethernet header, with an 802.1Q tag when `vlan` is set.
pub fn eth(src_mac: [u8; 6], vlan: Option<u16>, ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(1514);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0xfe]);
    f.extend_from_slice(&src_mac);
    if let Some(id) = vlan {
        f.extend_from_slice(&be16(ETH_VLAN));
        f.extend_from_slice(&be16(id & 0x0fff));
    }
    f.extend_from_slice(&be16(ethertype));
    f
}

fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// IPv4 header (20 bytes) for `payload_len` bytes of `proto`.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload_len: usize, id: u16) -> Vec<u8> {
    let total = (20 + payload_len) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&be16(total));
    h.extend_from_slice(&be16(id));
    h.extend_from_slice(&be16(0x4000)); // DF
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let c = ipv4_checksum(&h);
    h[10..12].copy_from_slice(&be16(c));
    h
}

/// IPv6 header (40 bytes).
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload_len: usize) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&be16(payload_len as u16));
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h
}

/// TCP header (20 bytes, no options; checksum left zero).
pub fn tcp(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8) -> Vec<u8> {
    let mut h = Vec::with_capacity(20);
    h.extend_from_slice(&be16(sport));
    h.extend_from_slice(&be16(dport));
    h.extend_from_slice(&seq.to_be_bytes());
    h.extend_from_slice(&ack.to_be_bytes());
    h.extend_from_slice(&[0x50, flags]);
    h.extend_from_slice(&be16(65535));
    h.extend_from_slice(&[0, 0, 0, 0]);
    h
}

/// UDP header (8 bytes; checksum zero = none, legal for IPv4).
pub fn udp(sport: u16, dport: u16, payload_len: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(8);
    h.extend_from_slice(&be16(sport));
    h.extend_from_slice(&be16(dport));
    h.extend_from_slice(&be16((8 + payload_len) as u16));
    h.extend_from_slice(&[0, 0]);
    h
}

/// A whole Ethernet/IPv4/TCP frame.
#[allow(clippy::too_many_arguments)]
pub fn tcp4_frame(
    mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = eth(mac, None, ETH_IPV4);
    f.extend_from_slice(&ipv4(src, dst, 6, 20 + payload.len(), seq as u16));
    f.extend_from_slice(&tcp(sport, dport, seq, ack, flags));
    f.extend_from_slice(payload);
    f
}

/// A whole Ethernet/IPv4/UDP frame.
pub fn udp4_frame(
    mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = eth(mac, None, ETH_IPV4);
    f.extend_from_slice(&ipv4(src, dst, 17, 8 + payload.len(), sport));
    f.extend_from_slice(&udp(sport, dport, payload.len()));
    f.extend_from_slice(payload);
    f
}

/// A whole Ethernet/802.1Q/IPv6/UDP frame.
pub fn udp6_vlan_frame(
    mac: [u8; 6],
    vlan: u16,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = eth(mac, Some(vlan), ETH_IPV6);
    f.extend_from_slice(&ipv6(src, dst, 17, 8 + payload.len()));
    f.extend_from_slice(&udp(sport, dport, payload.len()));
    f.extend_from_slice(payload);
    f
}

/// A standard DNS query (RD set) for `name`, `qtype`, with an EDNS OPT record.
pub fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&be16(id));
    m.extend_from_slice(&[0x01, 0x00]); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]); // QD=1 AN=0 NS=0 AR=1
    for label in name.split('.').filter(|l| !l.is_empty()) {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&be16(qtype));
    m.extend_from_slice(&be16(1)); // IN
                                   // OPT: root name, type 41, udp size 1232, no options
    m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    m
}

fn ext(kind: u16, data: &[u8]) -> Vec<u8> {
    let mut e = be16(kind).to_vec();
    e.extend_from_slice(&be16(data.len() as u16));
    e.extend_from_slice(data);
    e
}

/// ClientHello handshake message (type 1 + 3-byte length + body) as a modern
/// browser sends it: SNI, ALPN h2/http1.1, supported_versions, groups,
/// signature algorithms, key_share (x25519, plus X25519MLKEM768 when `pq`)
/// and padding up to `pad` bytes of extensions.
pub fn client_hello(sni: &str, pq: bool, pad: usize) -> Vec<u8> {
    let mut exts = Vec::new();
    let mut sn = vec![0u8];
    sn.extend_from_slice(&be16(sni.len() as u16));
    sn.extend_from_slice(sni.as_bytes());
    let mut d = be16(sn.len() as u16).to_vec();
    d.extend_from_slice(&sn);
    exts.push(ext(0x0000, &d));
    exts.push(ext(0x0017, &[])); // extended master secret
    exts.push(ext(0xff01, &[0])); // renegotiation info
    exts.push(ext(0x000a, &[0, 8, 0x11, 0xec, 0, 0x1d, 0, 0x17, 0, 0x18])); // groups
    exts.push(ext(0x000b, &[1, 0])); // ec point formats
    exts.push(ext(0x0023, &[])); // session ticket
    let alpn = [
        0u8, 12, 2, b'h', b'2', 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1',
    ];
    exts.push(ext(0x0010, &alpn));
    exts.push(ext(0x0005, &[1, 0, 0, 0, 0])); // status request
    exts.push(ext(
        0x000d,
        &[0, 16, 4, 3, 8, 4, 4, 1, 5, 3, 8, 5, 5, 1, 8, 6, 6, 1],
    ));
    let mut shares = Vec::new();
    let groups: &[(u16, usize)] = if pq {
        &[(0x11ec, 1216), (0x001d, 32)]
    } else {
        &[(0x001d, 32)]
    };
    for &(g, len) in groups {
        shares.extend_from_slice(&be16(g));
        shares.extend_from_slice(&be16(len as u16));
        shares.extend((0..len).map(|i| (i * 7 + 3) as u8));
    }
    let mut ks = be16(shares.len() as u16).to_vec();
    ks.extend_from_slice(&shares);
    exts.push(ext(0x0033, &ks));
    exts.push(ext(0x002b, &[4, 0x03, 0x04, 0x03, 0x03])); // supported versions
    exts.push(ext(0x002d, &[1, 1])); // psk modes
    let mut all: Vec<u8> = exts.concat();
    if all.len() + 4 < pad {
        let n = pad - all.len() - 4;
        all.extend_from_slice(&ext(0x0015, &vec![0; n]));
    }
    let mut body = be16(0x0303).to_vec();
    body.extend_from_slice(&[0x42; 32]);
    body.push(32);
    body.extend_from_slice(&[0x17; 32]);
    let suites = [
        0x1301u16, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9,
    ];
    body.extend_from_slice(&be16((suites.len() * 2) as u16));
    for s in suites {
        body.extend_from_slice(&be16(s));
    }
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&be16(all.len() as u16));
    body.extend_from_slice(&all);
    let mut msg = vec![1u8];
    msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend_from_slice(&body);
    msg
}

/// Wrap a handshake byte stream into TLS handshake records cut at `cuts`.
pub fn tls_records(hs: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&hs.len())) {
        let frag = &hs[start..end];
        out.extend_from_slice(&[22, 3, 1]);
        out.extend_from_slice(&be16(frag.len() as u16));
        out.extend_from_slice(frag);
        start = end;
    }
    out
}

/// An HTTP/1.1 GET as a package updater sends it.
pub fn http_get(host: &str, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) \
         AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36\r\nAccept: */*\r\n\
         Accept-Encoding: gzip, deflate\r\nAccept-Language: en-US,en;q=0.9\r\n\
         Cache-Control: no-cache\r\nConnection: keep-alive\r\n\r\n"
    )
    .into_bytes()
}

/// One packet read back: (ts_ns, linktype, frame bytes, wire_len).
pub type PcapRecord = (u64, u32, Vec<u8>, u32);

/// Minimal classic-pcap reader: the first `max` packets. Returns `None` for
/// anything but a classic pcap.
pub fn read_classic_pcap(path: &std::path::Path, max: usize) -> Option<Vec<PcapRecord>> {
    use std::io::Read;
    let mut f = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path).ok()?);
    let mut gh = [0u8; 24];
    f.read_exact(&mut gh).ok()?;
    let magic = u32::from_le_bytes(gh[0..4].try_into().ok()?);
    let (nanos, le) = match magic {
        0xa1b2c3d4 => (false, true),
        0xa1b23c4d => (true, true),
        0xd4c3b2a1 => (false, false),
        0x4d3cb2a1 => (true, false),
        _ => return None,
    };
    let u32_at = |b: &[u8], o: usize| {
        let a: [u8; 4] = b[o..o + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let linktype = u32_at(&gh, 20) & 0x0fff_ffff;
    let mut out = Vec::new();
    let mut rh = [0u8; 16];
    while out.len() < max && f.read_exact(&mut rh).is_ok() {
        let (s, frac, caplen, wire) = (
            u32_at(&rh, 0),
            u32_at(&rh, 4),
            u32_at(&rh, 8),
            u32_at(&rh, 12),
        );
        let mut data = vec![0u8; caplen as usize];
        if f.read_exact(&mut data).is_err() {
            break;
        }
        let ts = u64::from(s) * 1_000_000_000
            + if nanos {
                u64::from(frac)
            } else {
                u64::from(frac) * 1000
            };
        out.push((ts, linktype, data, wire));
    }
    Some(out)
}
