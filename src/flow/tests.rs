use super::*;
use crate::decode::{TCP_ACK, TCP_FIN};

fn tcp(seq: u32, flags: u8, dport: u16) -> TcpInfo {
    TcpInfo {
        sport: 40000,
        dport,
        seq,
        ack: 0,
        flags,
    }
}

/// Feed segments (seq offset relative to ISN+1, bytes) and collect names.
fn feed(dport: u16, segs: &[(u32, &[u8])]) -> (Vec<String>, Counters) {
    let mut d = Dir::default();
    let mut s = Scratch::default();
    let mut c = Counters::default();
    let mut out = Vec::new();
    let isn = 1000u32;
    tcp_segment(
        &mut d,
        &tcp(isn, TCP_SYN, dport),
        &[],
        &mut s,
        &mut c,
        &mut |_| {},
    );
    for (off, data) in segs {
        tcp_segment(
            &mut d,
            &tcp(isn + 1 + off, TCP_ACK, dport),
            data,
            &mut s,
            &mut c,
            &mut |a| {
                out.push(match a {
                    App::Dns(m) => {
                        let mut v = String::from("dns:");
                        dns::questions(m, |q| v.push_str(std::str::from_utf8(q.name).unwrap()));
                        v
                    }
                    App::Tls(h) => {
                        format!("tls:{}", String::from_utf8_lossy(h.sni.unwrap_or_default()))
                    }
                    App::Http(r) => format!(
                        "http:{}",
                        String::from_utf8_lossy(r.host.or(r.authority).unwrap_or_default())
                    ),
                    App::Body(head) => format!("body:{}", String::from_utf8_lossy(head)),
                })
            },
        );
    }
    (out, c)
}

fn dns_tcp(name: &str) -> Vec<u8> {
    let mut m = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in name.split('.') {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut f = (m.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(&m);
    f
}

fn hello(sni: &str, pad: usize) -> Vec<u8> {
    // Minimal TLS 1.2 ClientHello with SNI and a padding extension.
    let mut ext = Vec::new();
    let host = sni.as_bytes();
    ext.extend_from_slice(&[0, 0]);
    ext.extend_from_slice(&((host.len() + 5) as u16).to_be_bytes());
    ext.extend_from_slice(&((host.len() + 3) as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(host.len() as u16).to_be_bytes());
    ext.extend_from_slice(host);
    ext.extend_from_slice(&[0, 21]);
    ext.extend_from_slice(&(pad as u16).to_be_bytes());
    ext.extend(std::iter::repeat_n(0u8, pad));
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

#[test]
fn dns_over_tcp_split_and_packed() {
    let a = dns_tcp("a.kaspersky.com");
    let b = dns_tcp("b.example.org");
    let both = [a.clone(), b.clone()].concat();
    // one message split at every byte
    for cut in 1..a.len() {
        let (names, _) = feed(53, &[(0, &a[..cut]), (cut as u32, &a[cut..])]);
        assert_eq!(names, vec!["dns:a.kaspersky.com"], "cut {cut}");
    }
    // two messages in one segment, then a third across a reordered pair
    let c = dns_tcp("c.kaspersky.com");
    let n = both.len() as u32;
    let (names, _) = feed(53, &[(0, &both), (n + 5, &c[5..]), (n, &c[..5])]);
    assert_eq!(
        names,
        vec![
            "dns:a.kaspersky.com",
            "dns:b.example.org",
            "dns:c.kaspersky.com"
        ]
    );
}

#[test]
fn tls_hello_three_segments_any_order_with_retransmission() {
    let h = hello("dc1.ksn.kaspersky-labs.com", 1500);
    let (p1, p2) = (600usize, 1200usize);
    let segs: Vec<(u32, &[u8])> = vec![
        (0, &h[..p1]),
        (p1 as u32, &h[p1..p2]),
        (p2 as u32, &h[p2..]),
    ];
    for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [0, 2, 1]] {
        let mut s: Vec<(u32, &[u8])> = order.iter().map(|&i| segs[i]).collect();
        s.insert(1, segs[order[0]]); // duplicate
        let (names, _) = feed(8443, &s);
        assert_eq!(names, vec!["tls:dc1.ksn.kaspersky-labs.com"], "{order:?}");
    }
    // overlapping retransmission covering two segments
    let (names, _) = feed(
        443,
        &[(0, &h[..p1]), (100, &h[100..p2]), (p2 as u32, &h[p2..])],
    );
    assert_eq!(names, vec!["tls:dc1.ksn.kaspersky-labs.com"]);
}

#[test]
fn tls_missing_segment_gives_no_name() {
    let h = hello("x.kaspersky.com", 1500);
    let (names, _) = feed(443, &[(0, &h[..600]), (1200, &h[1200..])]);
    assert!(names.is_empty());
}

#[test]
fn http_pipelined_with_bodies_and_socks5() {
    let r1 = b"POST /a HTTP/1.1\r\nHost: ds.kaspersky.com\r\nContent-Length: 5\r\n\r\nhello";
    let r2 = b"GET /updaters/updater.xml.dif HTTP/1.0\r\nHost: dnl-01.geo.kaspersky.com:80\r\n\r\n";
    let all = [&r1[..], &r2[..]].concat();
    let (names, _) = feed(80, &[(0, &all[..30]), (30, &all[30..70]), (70, &all[70..])]);
    assert_eq!(
        names,
        vec!["http:ds.kaspersky.com", "http:dnl-01.geo.kaspersky.com:80"]
    );
    let socks = [
        &[5u8, 1, 0][..],
        &[5, 1, 0, 3, 14],
        b"www.google.com",
        &[0, 80],
        r2,
    ]
    .concat();
    let (names, _) = feed(1080, &[(0, &socks[..3]), (3, &socks[3..])]);
    assert_eq!(names, vec!["http:dnl-01.geo.kaspersky.com:80"]);
}

#[test]
fn bulk_stream_is_done_after_first_bytes_and_caps_hold() {
    let junk = vec![0xabu8; 1448];
    let mut d = Dir::default();
    let mut s = Scratch::default();
    let mut c = Counters::default();
    tcp_segment(
        &mut d,
        &tcp(1, TCP_ACK, 443),
        &junk,
        &mut s,
        &mut c,
        &mut |_| panic!("no name"),
    );
    assert_eq!(d.state, State::Done);
    assert_eq!(d.buf_len(), 0);
    // A hello that never completes stops at MAX_STREAM_BYTES.
    let h = hello("x.kaspersky.com", 15000);
    let mut d = Dir::default();
    let mut off = 0u32;
    for chunk in h[..h.len() - 10].chunks(1000) {
        tcp_segment(
            &mut d,
            &tcp(1 + off, TCP_ACK, 443),
            chunk,
            &mut s,
            &mut c,
            &mut |_| {},
        );
        off += chunk.len() as u32;
    }
    assert!(d.buf_len() <= MAX_STREAM_BYTES);
    // Endless out-of-order segments: pending is capped and counted.
    let mut d = Dir::default();
    tcp_segment(
        &mut d,
        &tcp(1, TCP_ACK, 443),
        &h[..10],
        &mut s,
        &mut c,
        &mut |_| {},
    );
    for i in 0..100u32 {
        tcp_segment(
            &mut d,
            &tcp(1 + 20 + i * 10, TCP_ACK, 443),
            &h[..5],
            &mut s,
            &mut c,
            &mut |_| {},
        );
    }
    assert!(d.pending_len() <= MAX_PENDING_SEGMENTS);
    assert!(c.get_limit(Limit::StreamGapSegments) > 0);
}

#[test]
fn flow_table_cap_and_idle_sweep() {
    let mut t = FlowTable::default();
    let mut c = Counters::default();
    let a: IpAddr = "10.0.0.1".parse().unwrap();
    let b: IpAddr = "10.0.0.2".parse().unwrap();
    let (k1, d1) = FlowKey::new(a, b, 1, 2, 6);
    let (k2, d2) = FlowKey::new(b, a, 2, 1, 6);
    assert_eq!(k1, k2);
    assert_ne!(d1, d2);
    assert!(t.get(k1, d1, 0, true, &mut c).unwrap().created);
    assert!(!t.get(k2, d2, 1, true, &mut c).unwrap().created);
    t.sweep(TCP_IDLE_NS + 10, &mut c);
    assert!(t.is_empty());
    assert_eq!(c.flows_expired, 1);
}

#[test]
fn flow_entries_stay_small() {
    // MAX_FLOWS entries must fit the memory budget: buffers and QUIC state are
    // only allocated when a flow needs them.
    assert!(
        std::mem::size_of::<Flow>() <= 176,
        "Flow is {} bytes",
        std::mem::size_of::<Flow>()
    );
    assert!(std::mem::size_of::<FlowKey>() <= 40);
}

#[test]
fn full_generation_drops_the_older_one_and_counts_only_unfinished_flows() {
    let mut t = FlowTable::default();
    let mut c = Counters::default();
    let a: IpAddr = "10.0.0.1".parse().unwrap();
    let b: IpAddr = "10.0.0.2".parse().unwrap();
    let key = |i: u32, p: u8| FlowKey::new(a, b, (i % 60000) as u16 + 2, (i / 60000) as u16 + 2, p);
    // One TCP flow still waiting for its first bytes (not finished) ...
    let (k0, d0) = FlowKey::new(a, b, 1, 443, 6);
    t.get(k0, d0, 0, true, &mut c).unwrap();
    // ... and UDP flows without QUIC state (finished) filling the generation.
    for i in 1..GEN_FLOWS as u32 {
        let (k, d) = key(i, 17);
        t.get(k, d, 0, false, &mut c).unwrap();
    }
    assert_eq!(t.len(), GEN_FLOWS);
    // The next new flow rotates: nothing dropped yet, all kept as the older generation.
    let (k, d) = key(0, 6);
    assert!(t.get(k, d, 0, true, &mut c).unwrap().created);
    assert_eq!(t.len(), GEN_FLOWS + 1);
    assert_eq!(c.flows_evicted, 0);
    // A flow used again moves into the current generation and survives.
    assert!(!t.get(k0, d0, 0, true, &mut c).unwrap().created);
    for i in 1..GEN_FLOWS as u32 {
        let (k, d) = key(i, 6);
        t.get(k, d, 0, true, &mut c).unwrap();
    }
    assert!(t.len() <= MAX_FLOWS);
    // The older generation (finished UDP flows) went at the second rotation: no limit drops.
    assert_eq!(c.flows_evicted, GEN_FLOWS as u64 - 1);
    assert_eq!(c.get_limit(Limit::Flows), 0);
    assert!(
        !t.get(k0, d0, 0, true, &mut c).unwrap().created,
        "the flow in use survives"
    );
    let (k1, d1) = key(1, 17);
    assert!(t.get(k1, d1, 0, false, &mut c).unwrap().created);
}

#[test]
fn unfinished_flows_pushed_out_are_limit_drops_and_the_table_stays_bounded() {
    let mut t = FlowTable::default();
    let mut c = Counters::default();
    let a: IpAddr = "10.0.0.1".parse().unwrap();
    let b: IpAddr = "10.0.0.2".parse().unwrap();
    let n = 4 * MAX_FLOWS as u32;
    for i in 0..n {
        let (k, d) = FlowKey::new(a, b, (i % 60000) as u16 + 2, (i / 60000) as u16 + 2, 6);
        assert!(t.get(k, d, u64::from(i), true, &mut c).unwrap().created);
        assert!(t.len() <= MAX_FLOWS);
    }
    // Every flow but the last two generations' was pushed out, each counted.
    assert_eq!(c.get_limit(Limit::Flows) + t.len() as u64, u64::from(n));
    assert!(t.len() > GEN_FLOWS);
}

fn seg(flags: u8, sport: u16, dport: u16) -> TcpInfo {
    TcpInfo {
        sport,
        dport,
        seq: 5000,
        ack: 0,
        flags,
    }
}

#[test]
fn unknown_connections_cost_a_lookup_unless_they_can_carry_a_name() {
    let mut t = FlowTable::default();
    let mut c = Counters::default();
    let a: IpAddr = "192.0.2.1".parse().unwrap();
    let b: IpAddr = "198.51.100.7".parse().unwrap();
    let (k, d) = FlowKey::new(b, a, 443, 50000, 6);
    let ack = seg(TCP_ACK, 443, 50000);
    let bulk = [0x5au8; 1400];
    // Pure ACK, FIN, RST and bulk data of a connection never seen: no flow.
    assert!(t.tcp(k, d, 0, &ack, &[], &mut c).is_none());
    assert!(t
        .tcp(k, d, 0, &seg(TCP_ACK | TCP_FIN, 443, 50000), &[], &mut c)
        .is_none());
    assert!(t
        .tcp(k, d, 0, &seg(TCP_RST, 443, 50000), &[], &mut c)
        .is_none());
    assert!(t.tcp(k, d, 0, &ack, &bulk, &mut c).is_none());
    assert!(t.is_empty());
    // A segment that can start a message (an HTTP response, a ClientHello) does.
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nKLZF";
    assert!(t.tcp(k, d, 0, &ack, resp, &mut c).unwrap().created);
    let (k2, d2) = FlowKey::new(a, b, 50001, 443, 6);
    let h = hello("example.com", 0);
    assert!(
        t.tcp(k2, d2, 0, &seg(TCP_ACK, 50001, 443), &h, &mut c)
            .unwrap()
            .created
    );
    // A SYN always does.
    let (k3, d3) = FlowKey::new(a, b, 50002, 443, 6);
    assert!(
        t.tcp(k3, d3, 0, &seg(TCP_SYN, 50002, 443), &[], &mut c)
            .unwrap()
            .created
    );
    assert_eq!(t.len(), 3);
}

#[test]
fn a_finished_connection_leaves_a_mark_and_is_not_classified_again() {
    let mut t = FlowTable::default();
    let mut c = Counters::default();
    let mut s = Scratch::default();
    let a: IpAddr = "192.0.2.1".parse().unwrap();
    let b: IpAddr = "198.51.100.7".parse().unwrap();
    let (k, dc) = FlowKey::new(a, b, 50000, 443, 6);
    let ds = 1 - dc;
    let syn = seg(TCP_SYN, 50000, 443);
    assert!(t.tcp(k, dc, 0, &syn, &[], &mut c).unwrap().created);
    // Client sends opaque bytes, server too: both directions done.
    for (dir, sp, dp) in [(dc, 50000, 443), (ds, 443, 50000)] {
        let l = t
            .tcp(k, dir, 0, &seg(TCP_ACK, sp, dp), &[1u8; 100], &mut c)
            .unwrap();
        assert!(!l.created);
        let mut x = seg(TCP_ACK, sp, dp);
        x.seq = 5000;
        let dirs = &mut l.flow.dirs;
        dirs[dir].started = true;
        dirs[dir].next_seq = 5000;
        tcp_segment(&mut dirs[dir], &x, &[1u8; 100], &mut s, &mut c, &mut |_| {});
        assert!(dirs[dir].is_done());
    }
    // The next segment removes the spent flow and leaves a mark ...
    let looks_tls = hello("example.com", 0);
    assert!(t
        .tcp(k, dc, 1, &seg(TCP_ACK, 50000, 443), &looks_tls, &mut c)
        .is_none());
    assert!(t.is_empty());
    // ... so even a segment that could start a message is ignored, as before.
    assert!(t
        .tcp(k, dc, 2, &seg(TCP_ACK, 50000, 443), &looks_tls, &mut c)
        .is_none());
    assert!(t.is_empty());
    // A new connection on the same tuple starts afresh.
    assert!(t.tcp(k, dc, 3, &syn, &[], &mut c).unwrap().created);
}

#[test]
fn may_start_agrees_with_classify() {
    let mut rng = crate::testrng::XorShift64(0x1234_5678_9abc_def0);
    let mut next = || rng.next();
    let mut seeds: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\n".to_vec(),
        b"HTTP/1.1 200".to_vec(),
        b"HTT".to_vec(),
        b"GE".to_vec(),
        hello("a.example", 0),
        dns_tcp("kaspersky.com"),
        vec![5, 1, 0],
        vec![5, 2, 0, 2, 5],
        vec![4, 1, 0, 80, 1, 2, 3, 4, 0],
        vec![0x80, 0x2e, 1, 3, 1],
        vec![],
    ];
    for _ in 0..20_000 {
        let n = (next() % 40) as usize;
        let mut v: Vec<u8> = (0..n).map(|_| next() as u8).collect();
        if let Some(f) = v.first_mut() {
            *f = [0x16, 0x80, b'G', b'H', 4, 5, 0, *f][(next() % 8) as usize];
        }
        seeds.push(v);
    }
    for p in &seeds {
        for port in [443u16, 53, 8080] {
            let t = seg(TCP_ACK, 40000, port);
            assert_eq!(
                may_start(p, &t),
                classify(p, &t) != Some(State::Done),
                "{p:?} port {port}"
            );
        }
    }
}

#[test]
fn http_responses_framed_and_update_magic_found() {
    // Server side: a head, then a body opening with KLZF in the next segment, then
    // a second response whose body does not.
    let r1 = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n";
    let b1 = b"KLZF\x01\x02\x03\x04";
    let r2 = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n<html>";
    let all = [&r1[..], &b1[..], &r2[..]].concat();
    let n1 = r1.len() as u32;
    let (names, _) = feed(80, &[(0, r1), (n1, &all[r1.len()..])]);
    assert_eq!(names, vec!["body:KLZF\u{1}\u{2}\u{3}\u{4}", "body:<html>"]);
    let r3 = b"HTTP/1.0 304 Not Modified\r\n\r\nHTTP/1.0 200 OK\r\n\r\nKLD2";
    let (names, _) = feed(80, &[(0, r3)]);
    assert_eq!(names, vec!["body:KLD2"]);
}

#[test]
fn tls_hello_inside_an_http_connect_tunnel() {
    let connect = b"CONNECT dnl-01.geo.kaspersky.com:443 HTTP/1.1\r\nHost: dnl-01.geo.kaspersky.com:443\r\n\r\n";
    let h = hello("dnl-01.geo.kaspersky.com", 300);
    // The hello in the same segment as the CONNECT, and in later segments.
    let one = [&connect[..], &h[..]].concat();
    let (names, _) = feed(3128, &[(0, &one)]);
    assert_eq!(
        names,
        vec![
            "http:dnl-01.geo.kaspersky.com:443",
            "tls:dnl-01.geo.kaspersky.com"
        ]
    );
    let n = connect.len() as u32;
    let (names, _) = feed(
        3128,
        &[(0, &connect[..]), (n, &h[..100]), (n + 100, &h[100..])],
    );
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn http_pipelined_in_one_segment_and_head_over_many_segments() {
    let r1 = b"GET /a HTTP/1.1\r\nHost: www.example.org\r\n\r\n";
    let r2 = b"GET /b HTTP/1.1\r\nHost: ds.kaspersky.com\r\n\r\n";
    let both = [&r1[..], &r2[..]].concat();
    let (names, _) = feed(80, &[(0, &both)]);
    assert_eq!(names, vec!["http:www.example.org", "http:ds.kaspersky.com"]);
    // A head spread over one segment per 7 bytes.
    let long = b"GET /updaters/updater.xml.dif HTTP/1.1\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)\r\nAccept: */*\r\nHost: dnl-01.geo.kaspersky.com\r\nConnection: keep-alive\r\n\r\n";
    let segs: Vec<(u32, &[u8])> = long
        .chunks(7)
        .enumerate()
        .map(|(i, c)| ((i * 7) as u32, c))
        .collect();
    let (names, _) = feed(80, &segs);
    assert_eq!(names, vec!["http:dnl-01.geo.kaspersky.com"]);
}

/// A connection whose flow moved to the older generation is found again by
/// its retransmitted SYN and by its next segment (a new SYN skips probing
/// the older generation only when the presence filter says the key is in
/// neither), and a SYN of a new connection still creates a flow.
#[test]
fn syn_finds_a_flow_of_the_older_generation() {
    let mut t = FlowTable::default();
    let mut c = Counters::default();
    let a: IpAddr = "192.0.2.1".parse().unwrap();
    let b: IpAddr = "198.51.100.7".parse().unwrap();
    let syn_of = |i: u32| {
        let sport = (i % 60000) as u16 + 1024;
        let dport = (i / 60000) as u16 + 443;
        let (k, d) = FlowKey::new(a, b, sport, dport, 6);
        (k, d, seg(TCP_SYN, sport, dport))
    };
    let (k0, d0, s0) = syn_of(0);
    assert!(t.tcp(k0, d0, 0, &s0, &[], &mut c).unwrap().created);
    // Fill the current generation: the next new flow rotates the first into the older one.
    for i in 1..=GEN_FLOWS as u32 {
        let (k, d, s) = syn_of(i);
        assert!(t.tcp(k, d, 0, &s, &[], &mut c).unwrap().created);
    }
    assert_eq!(t.len(), GEN_FLOWS + 1);
    assert!(
        !t.tcp(k0, d0, 1, &s0, &[], &mut c).unwrap().created,
        "a retransmitted SYN finds the flow in the older generation"
    );
    assert_eq!(t.len(), GEN_FLOWS + 1, "moved, not copied");
    let (k1, d1, s1) = syn_of(1);
    let h = hello("example.com", 0);
    let data = TcpInfo {
        flags: TCP_ACK,
        seq: s1.seq.wrapping_add(1),
        ..s1
    };
    assert!(!t.tcp(k1, d1, 1, &data, &h, &mut c).unwrap().created);
    let (kn, dn, sn) = syn_of(GEN_FLOWS as u32 + 1);
    assert!(t.tcp(kn, dn, 1, &sn, &[], &mut c).unwrap().created);
    assert_eq!(t.len(), GEN_FLOWS + 2);
}
