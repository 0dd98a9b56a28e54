//! Unit tests of the sharder: inner flows of one tunnel spread over the
//! workers, both directions together; fragments follow their datagram's
//! first fragment, held ones keep their order and metadata; limits and
//! timeouts fall back to the fragment's own pair, counted, nothing lost.

use super::*;
use crate::pipeline::pair_shard;
use std::net::Ipv4Addr;

const ETH_IPV4: u16 = 0x0800;

fn eth(et: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    f.extend_from_slice(&et.to_be_bytes());
    f
}

/// IPv4 header; `frag` is the flags/offset word (offset in 8-byte units).
fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload_len: usize, id: u16, frag: u16) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// Inner IPv4/TCP packet (no Ethernet) with `payload`.
fn tcp_ip(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    let mut p = ipv4(src, dst, 6, t.len(), 1, 0);
    p.extend_from_slice(&t);
    p
}

/// The IP payload of an outer IPv4 datagram carrying `inner` (an inner
/// IPv4 packet) in VXLAN (UDP 4789, inner Ethernet).
fn vxlan_payload(inner: &[u8]) -> Vec<u8> {
    let mut v = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    v.extend_from_slice(&eth(ETH_IPV4));
    v.extend_from_slice(inner);
    udp(40001, 4789, &v)
}

/// The IP payload of an outer IPv4 datagram carrying `inner` in GRE.
fn gre_payload(inner: &[u8]) -> Vec<u8> {
    let mut g = vec![0, 0, 0x08, 0x00];
    g.extend_from_slice(inner);
    g
}

const OUTER_A: [u8; 4] = [10, 0, 0, 1];
const OUTER_B: [u8; 4] = [10, 0, 0, 2];

/// Ethernet frame of an outer datagram from `src` to `dst`.
fn outer(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = eth(ETH_IPV4);
    f.extend_from_slice(&ipv4(src, dst, proto, payload.len(), 7, 0));
    f.extend_from_slice(payload);
    f
}

/// The outer datagram cut into fragments of `chunk` bytes (a multiple of 8).
fn fragments(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    id: u16,
    payload: &[u8],
    chunk: usize,
) -> Vec<Vec<u8>> {
    let n = payload.chunks(chunk).count();
    payload
        .chunks(chunk)
        .enumerate()
        .map(|(i, c)| {
            let more = if i + 1 < n { 0x2000 } else { 0 };
            let word = more | ((i * chunk / 8) as u16);
            let mut f = eth(ETH_IPV4);
            f.extend_from_slice(&ipv4(src, dst, proto, c.len(), id, word));
            f.extend_from_slice(c);
            f
        })
        .collect()
}

fn raw(data: &[u8], ts: u64) -> RawPacket<'_> {
    RawPacket {
        ts,
        linktype: 1,
        interface: 0,
        data,
        wire_len: data.len() as u32,
    }
}

fn meta(seq: u64) -> PktMeta {
    PktMeta {
        seq,
        input: 0,
        frame: seq,
    }
}

fn seed() -> ahash::RandomState {
    ahash::RandomState::with_seeds(1, 2, 3, 4)
}

fn host(i: usize) -> [u8; 4] {
    [192, 168, (i / 200) as u8, (i % 200) as u8 + 1]
}

/// Many inner connections inside one outer address pair: each of 4
/// workers gets a fair share, and both directions of a connection (and the
/// outer pair's direction) agree. The old outer-pair key put them all on
/// one worker.
#[test]
fn inner_flows_of_one_tunnel_spread_and_directions_agree() {
    const FLOWS: usize = 800;
    const WORKERS: usize = 4;
    let mut sh = Sharder::new(WORKERS, seed());
    for tunnel in ["vxlan", "gre"] {
        let mut per = [0usize; WORKERS];
        for i in 0..FLOWS {
            let (c, srv) = (host(i), [172, 16, (i % 7) as u8, 10]);
            let wrap = |inner: &[u8], back: bool| {
                let (a, b) = if back {
                    (OUTER_B, OUTER_A)
                } else {
                    (OUTER_A, OUTER_B)
                };
                match tunnel {
                    "vxlan" => outer(a, b, 17, &vxlan_payload(inner)),
                    _ => outer(a, b, 47, &gre_payload(inner)),
                }
            };
            let fwd = wrap(&tcp_ip(c, srv, 40000 + i as u16, 443, b"x"), false);
            let rev = wrap(&tcp_ip(srv, c, 443, 40000 + i as u16, b"y"), true);
            let mut route = |p: &[u8]| {
                let mut got = Vec::new();
                sh.route(meta(1), &raw(p, 0), &mut |w, _, _| got.push(w));
                got
            };
            let got = route(&fwd);
            assert_eq!(got.len(), 1, "{tunnel} flow {i}: {got:?}");
            let w = got[0];
            assert_eq!(route(&rev), [w], "{tunnel} flow {i}");
            per[w] += 1;
        }
        for (w, n) in per.iter().enumerate() {
            assert!(
                *n >= FLOWS / WORKERS / 2,
                "{tunnel}: worker {w} got {n} of {FLOWS}: {per:?}"
            );
        }
    }
}

/// A tunnelled datagram fragmented at the outer layer, first fragment
/// last: the others are held, then released (in arrival order, with their
/// own metadata) to the inner connection's worker just before it.
#[test]
fn fragments_follow_their_first_fragment() {
    const WORKERS: usize = 4;
    let s = seed();
    // Find an inner connection whose worker differs from the outer pair's.
    let outer_w = pair_shard(OUTER_A.into_ip(), OUTER_B.into_ip(), WORKERS, &s);
    let (c, srv) = (1..1000)
        .map(|i| (host(i), [172, 16, 0, 10]))
        .find(|(c, srv)| pair_shard(c.into_ip(), srv.into_ip(), WORKERS, &s) != outer_w)
        .unwrap();
    let inner_w = pair_shard(c.into_ip(), srv.into_ip(), WORKERS, &s);
    let inner = tcp_ip(c, srv, 40000, 443, &[b'z'; 600]);
    let frags = fragments(OUTER_A, OUTER_B, 17, 99, &vxlan_payload(&inner), 256);
    assert_eq!(frags.len(), 3);
    let mut sh = Sharder::new(WORKERS, seed());
    let mut got = Vec::new();
    let mut send =
        |w: usize, m: PktMeta, r: &RawPacket<'_>| got.push((w, m.seq, r.ts, r.data.to_vec()));
    sh.route(meta(1), &raw(&frags[2], 10), &mut send);
    sh.route(meta(2), &raw(&frags[1], 20), &mut send);
    assert_eq!(sh.held_fragments(), 2);
    sh.route(meta(3), &raw(&frags[0], 30), &mut send);
    // A fragment of the same datagram after the first one goes straight there.
    sh.route(meta(4), &raw(&frags[1], 40), &mut send);
    assert_eq!(sh.held_fragments(), 0);
    let want: Vec<(usize, u64, u64, Vec<u8>)> = vec![
        (inner_w, 1, 10, frags[2].clone()),
        (inner_w, 2, 20, frags[1].clone()),
        (inner_w, 3, 30, frags[0].clone()),
        (inner_w, 4, 40, frags[1].clone()),
    ];
    assert_eq!(got, want);
    assert_eq!(sh.finish(&mut |_, _, _| {}), 0);
    assert_eq!(sh.counters.limit_drops.iter().sum::<u64>(), 0);

    // In order, nothing is held: every fragment goes to the inner worker at once.
    let mut sh = Sharder::new(WORKERS, seed());
    let mut ws = Vec::new();
    for (i, f) in frags.iter().enumerate() {
        sh.route(meta(i as u64), &raw(f, 0), &mut |w, _, _| ws.push(w));
        assert_eq!(sh.held_fragments(), 0);
    }
    assert_eq!(ws, [inner_w; 3]);
}

/// A first fragment cut inside the inner IPv4 header: the deepest complete
/// header (the outer one) decides, for every fragment alike.
#[test]
fn first_fragment_too_short_for_inner_header_uses_deepest() {
    const WORKERS: usize = 4;
    let s = seed();
    let inner = tcp_ip(host(3), [172, 16, 0, 10], 40000, 443, &[0; 100]);
    // UDP 8 + VXLAN 8 + Ethernet 14 = 30: 32 bytes cut the inner IP header.
    let frags = fragments(OUTER_A, OUTER_B, 17, 5, &vxlan_payload(&inner), 32);
    let outer_w = pair_shard(OUTER_A.into_ip(), OUTER_B.into_ip(), WORKERS, &s);
    let mut sh = Sharder::new(WORKERS, seed());
    let mut ws = Vec::new();
    for (i, f) in frags.iter().enumerate().rev() {
        sh.route(meta(i as u64), &raw(f, 0), &mut |w, _, _| ws.push(w));
    }
    assert_eq!(ws.len(), frags.len());
    assert!(ws.iter().all(|w| *w == outer_w), "{ws:?}");
}

/// Past MAX_HELD_DATAGRAMS the oldest held datagram goes to its fallback
/// worker (counted); past HOLD_TIMEOUT_NS too; a late first fragment then
/// follows its datagram's fallback; at the end everything held is sent.
#[test]
fn held_fragments_are_bounded_counted_and_never_lost() {
    const WORKERS: usize = 4;
    let s = seed();
    let inner = tcp_ip(host(9), [172, 16, 0, 10], 40000, 443, &[1; 200]);
    let payload = vxlan_payload(&inner);
    let mut sh = Sharder::new(WORKERS, seed());
    let mut sent = 0usize;
    let extra = 5;
    for id in 0..(MAX_HELD_DATAGRAMS + extra) {
        let frags = fragments(OUTER_A, OUTER_B, 17, id as u16, &payload, 128);
        sh.route(meta(id as u64), &raw(&frags[1], 0), &mut |_, _, _| {
            sent += 1
        });
    }
    assert_eq!(sent, extra);
    assert_eq!(sh.counters.get_limit(Limit::ShardFragments), extra as u64);
    assert_eq!(sh.held_fragments(), MAX_HELD_DATAGRAMS);
    // The first datagram was let go: its late first fragment follows it.
    let outer_w = pair_shard(OUTER_A.into_ip(), OUTER_B.into_ip(), WORKERS, &s);
    let first = fragments(OUTER_A, OUTER_B, 17, 0, &payload, 128);
    let mut ws = Vec::new();
    sh.route(meta(9999), &raw(&first[0], 1), &mut |w, _, _| ws.push(w));
    assert_eq!(ws, [outer_w]);
    // Timeout: a fragment HOLD_TIMEOUT_NS later lets every held one go.
    let late = fragments(OUTER_A, OUTER_B, 17, 60_000, &payload, 128);
    sent = 0;
    sh.route(
        meta(10_000),
        &raw(&late[1], HOLD_TIMEOUT_NS + 1),
        &mut |_, _, _| sent += 1,
    );
    assert_eq!(sent, MAX_HELD_DATAGRAMS);
    assert_eq!(
        sh.counters.get_limit(Limit::ShardTimeout),
        MAX_HELD_DATAGRAMS as u64
    );
    assert_eq!(sh.held_fragments(), 1);
    assert_eq!(sh.finish(&mut |_, _, _| {}), 1);
    assert_eq!(sh.held_fragments(), 0);
}

/// Routes are bounded too; garbage never panics and is always sent.
#[test]
fn routes_bounded_and_garbage_is_routed() {
    let mut sh = Sharder::new(3, seed());
    let payload = vxlan_payload(&tcp_ip(host(1), host(2), 1, 2, &[0; 64]));
    for id in 0..(MAX_SHARD_ROUTES + 10) {
        let frags = fragments(OUTER_A, OUTER_B, 17, (id % 65_536) as u16, &payload, 64);
        let mut f = frags[0].clone();
        // Distinct keys beyond 65,536 ids: vary the source address too.
        f[14 + 12] = (id / 65_536) as u8 + 1;
        sh.route(meta(id as u64), &raw(&f, 0), &mut |_, _, _| {});
    }
    assert!(sh.routes() <= MAX_SHARD_ROUTES);
    assert_eq!(sh.counters.get_limit(Limit::ShardFragments), 10);
    let mut x = 0x1234_5678u32;
    for len in 0..2000usize {
        let mut f = outer(OUTER_A, OUTER_B, 17, &payload);
        for b in f.iter_mut().skip(14 + (len % 60)) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        f.truncate(len % f.len().max(1));
        let mut n = 0;
        for lt in [1, 101, 113, 276, 0] {
            sh.route(meta(len as u64), &raw_lt(&f, lt), &mut |w, _, _| {
                assert!(w < 3);
                n += 1;
            });
        }
        let _ = n;
    }
    sh.finish(&mut |w, _, _| assert!(w < 3));
    assert_eq!(sh.held_fragments(), 0);
}

fn raw_lt(data: &[u8], linktype: u32) -> RawPacket<'_> {
    RawPacket {
        linktype,
        ..raw(data, 0)
    }
}

trait IntoIp {
    fn into_ip(self) -> IpAddr;
}

impl IntoIp for [u8; 4] {
    fn into_ip(self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(self))
    }
}
