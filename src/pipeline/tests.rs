//! Unit tests of the pipeline: the worker on hand-built frames, and the
//! address book's decisions.

use super::address::{AddressBook, CONN_HOLD_NS};
use super::*;
use crate::capture::RawPacket;
use crate::matcher::Matcher;
use crate::signatures::SignatureSet;
use crate::stats::Counters;
use std::net::Ipv4Addr;

fn matcher() -> Arc<Matcher> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("signatures");
    Arc::new(Matcher::new(&SignatureSet::load_paths(&[dir]).unwrap()))
}

use std::sync::Arc;

/// Ethernet + IPv4 + UDP (checksums zero: not checked on the way in).
fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
    let len = (20 + 8 + payload.len()) as u16;
    f.extend_from_slice(&[
        0x45,
        0,
        (len >> 8) as u8,
        len as u8,
        0,
        1,
        0,
        0,
        64,
        17,
        0,
        0,
    ]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    let ulen = (8 + payload.len()) as u16;
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&ulen.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

fn run_frames(frames: &[Vec<u8>], all_names: bool) -> Vec<Obs> {
    let mut w = Worker::new(matcher(), WorkerConfig { all_names });
    let mut out = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let raw = RawPacket {
            ts: 1_000_000_000 * (i as u64 + 1),
            linktype: 1,
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
        out.extend(w.take());
    }
    out
}

#[test]
fn netbios_name_queries_are_not_dns() {
    // NBNS query for the encoded name of "WORKGROUP": DNS-shaped, port 137.
    let mut q = vec![0x12, 0x34, 0x01, 0x10, 0, 1, 0, 0, 0, 0, 0, 0, 32];
    q.extend_from_slice(b"FHEPFCELEHFCEPFFFACACACACACACABN");
    q.extend_from_slice(&[0, 0, 0x20, 0, 1]);
    let f = udp4([10, 0, 0, 5], [10, 0, 0, 255], 137, 137, &q);
    let obs = run_frames(std::slice::from_ref(&f), true);
    assert!(obs.iter().all(|o| o.kind != ObsKind::Name), "{obs:?}");
    // The same message on an odd port is read as DNS (heuristic), so the
    // port rule is what keeps it out.
    let f = udp4([10, 0, 0, 5], [10, 0, 0, 9], 40000, 5000, &q);
    let obs = run_frames(&[f], true);
    assert!(obs.iter().any(|o| o.kind == ObsKind::Name), "{obs:?}");
}

#[test]
fn dns_responses_carry_answers_and_queries_their_names() {
    let mut r = vec![0, 7, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    for l in ["www", "shop-example", "com"] {
        r.push(l.len() as u8);
        r.extend_from_slice(l.as_bytes());
    }
    r.extend_from_slice(&[0, 0, 1, 0, 1]);
    r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 203, 0, 113, 80]);
    let f = udp4([10, 0, 0, 1], [10, 0, 0, 5], 53, 40000, &r);
    let obs = run_frames(&[f], false);
    assert_eq!(obs.len(), 1, "{obs:?}");
    let ObsKind::Answers(list) = &obs[0].kind else {
        panic!("{obs:?}")
    };
    assert_eq!(
        list.iter().collect::<Vec<_>>(),
        vec![(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 80)), 60)]
    );
}

fn conn_obs(src: u8, dst: u8, sport: u16, ts: u64, kind: ObsKind) -> Obs {
    Head::of(
        PktMeta::default(),
        ts,
        L4::Tcp,
        Protocol::Ip,
        (IpAddr::V4(Ipv4Addr::new(10, 0, 0, src)), sport),
        (IpAddr::V4(Ipv4Addr::new(198, 51, 100, dst)), 443),
    )
    .obs(kind)
}

fn x(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, n))
}

fn hit() -> crate::matcher::Hit {
    matcher().lookup(b"dnl-01.geo.kaspersky.com").unwrap()
}

const S: u64 = 1_000_000_000;

#[test]
fn held_connection_named_by_another_site_is_no_callback() {
    let mut b = AddressBook::default();
    let mut c = Counters::default();
    b.learn(x(7), "dnl-01.geo.kaspersky.com", hit(), S, 60, &mut c);
    let open = conn_obs(5, 7, 1000, 2 * S, ObsKind::Open(None));
    assert!(b.open(&open, None, || None, &mut c).is_none());
    assert_eq!(b.held(), 1);
    // Its hello names www.shop-example.com: no callback, and X is shared now.
    let d = conn_obs(5, 7, 1000, 3 * S, ObsKind::Decided(Named::Other, false));
    assert!(b.decided(&d, Named::Other, false, &mut c).is_none());
    // So another host's unnamed connection to X gives no address evidence either.
    let open = conn_obs(6, 7, 1001, 4 * S, ObsKind::Open(Some(Named::Nothing)));
    assert!(b
        .open(&open, Some(Named::Nothing), || None, &mut c)
        .is_none());
    assert_eq!((b.stats.shared, b.stats.suppressed_shared), (1, 1));
}

#[test]
fn shared_mark_stops_held_connections_too() {
    let mut b = AddressBook::default();
    let mut c = Counters::default();
    b.learn(x(7), "dnl-01.geo.kaspersky.com", hit(), S, 60, &mut c);
    let open = conn_obs(5, 7, 1000, 2 * S, ObsKind::Open(None));
    assert!(b.open(&open, None, || None, &mut c).is_none());
    // While it is held, a DNS answer maps another name to X.
    b.learn_other(x(7), 3 * S, 60, &mut c);
    let d = conn_obs(5, 7, 1000, 4 * S, ObsKind::Decided(Named::Nothing, false));
    assert!(b.decided(&d, Named::Nothing, false, &mut c).is_none());
    assert_eq!(b.stats.suppressed_shared, 1);
}

#[test]
fn silent_connection_is_released_after_the_hold_and_at_the_end() {
    let mut b = AddressBook::default();
    let mut c = Counters::default();
    b.learn(x(9), "activation-v2.kaspersky.com", hit(), S, 60, &mut c);
    let open = conn_obs(5, 9, 1000, 2 * S, ObsKind::Open(None));
    b.open(&open, None, || None, &mut c);
    let mut out = Vec::new();
    b.expire(2 * S + CONN_HOLD_NS, &mut out);
    assert!(out.is_empty(), "released too early");
    b.expire(3 * S + CONN_HOLD_NS, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].name, "activation-v2.kaspersky.com");
    assert_eq!(
        out[0].open.ts,
        2 * S,
        "the callback is the connection's opening"
    );
    // Another one, drained when the input ends.
    let open = conn_obs(6, 9, 1001, 20 * S, ObsKind::Open(None));
    b.open(&open, None, || None, &mut c);
    let mut out = Vec::new();
    b.drain(21 * S, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(b.held(), 0);
}

#[test]
fn unattributed_or_expired_addresses_hold_nothing() {
    let mut b = AddressBook::default();
    let mut c = Counters::default();
    let open = conn_obs(5, 7, 1000, 2 * S, ObsKind::Open(None));
    assert!(b.open(&open, None, || None, &mut c).is_none());
    assert_eq!(b.held(), 0);
    b.learn(x(7), "dnl-01.geo.kaspersky.com", hit(), S, 60, &mut c);
    // 60 s TTL is clamped to 5 min; a connection two days later is not evidence.
    let late = conn_obs(
        5,
        7,
        1001,
        2 * 86_400 * S,
        ObsKind::Open(Some(Named::Nothing)),
    );
    assert!(b
        .open(&late, Some(Named::Nothing), || None, &mut c)
        .is_none());
}

#[test]
fn held_connections_are_bounded() {
    let mut b = AddressBook::default();
    let mut c = Counters::default();
    b.learn(x(7), "dnl-01.geo.kaspersky.com", hit(), S, 86_400, &mut c);
    for i in 0..(address::MAX_HELD_CONNECTIONS as u32 + 100) {
        let open = conn_obs(
            5,
            7,
            (i % 60_000) as u16,
            2 * S + u64::from(i),
            ObsKind::Open(None),
        );
        let mut o = open;
        o.src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        b.open(&o, None, || None, &mut c);
    }
    assert!(b.held() <= address::MAX_HELD_CONNECTIONS);
    assert_eq!(c.get_limit(crate::stats::Limit::HeldConnections), 100);
}

/// Questions a host was asked at port 53 (remembered to spot a forwarder)
/// are bounded by MAX_ASKED; what is forgotten at the bound is counted under
/// its own limit, not as dropped resolvers.
#[test]
fn forwarded_questions_are_bounded_and_counted_apart() {
    use super::merger::{Merger, MAX_ASKED};
    use crate::hosts::HostTable;
    use crate::stats::Limit;
    let mut m = Merger::new(matcher(), HostTable::new(100, None));
    let h = hit();
    for i in 0..(3 * MAX_ASKED) as u64 {
        let mut o = conn_obs(7, 53, 40_000, i * 1_000, ObsKind::Name);
        o.dst = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53));
        o.dport = 53;
        o.l4 = L4::Udp;
        o.protocol = Protocol::Dns;
        o.name = format!("r{i}.kaspersky.com").into();
        o.hit = Some(h);
        o.dns_id = i as u16;
        m.apply(&o);
    }
    let c = &m.counters;
    assert!(c.limit_drops[Limit::ForwardedQuestions as usize] >= MAX_ASKED as u64 / 2);
    assert_eq!(c.limit_drops[Limit::Resolvers as usize], 0);
    // The asking host is a device (it never answered nor forwarded).
    assert_eq!(m.hosts.len(), 1);
}

/// A host that asks upstream for a name it was just asked for is forwarding
/// (a resolver from then on); asking for another name, or being asked
/// nothing, is not. (The merger skips the lookup for hosts never asked:
/// this pins that the skip loses nothing.)
#[test]
fn a_host_asking_for_what_it_was_asked_is_a_forwarder() {
    use super::merger::Merger;
    use crate::evidence::Role;
    use crate::hosts::HostTable;
    let q = |src: IpAddr, dst: IpAddr, name: &str, ts: u64| {
        let mut o = conn_obs(1, 1, 40_000, ts, ObsKind::Name);
        o.src = src;
        o.dst = dst;
        o.dport = 53;
        o.l4 = L4::Udp;
        o.protocol = Protocol::Dns;
        o.name = name.into();
        o.hit = Some(hit());
        o
    };
    let client = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7));
    let lan_dns = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53));
    let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 54));
    let upstream = x(53);
    let mut m = Merger::new(matcher(), HostTable::new(100, None));
    m.apply(&q(client, lan_dns, "a.kaspersky.com", S));
    // Another host, never asked, asks for the same name: a device.
    m.apply(&q(other, upstream, "a.kaspersky.com", S + 1));
    // The asked server asks for a different name: still a device.
    m.apply(&q(lan_dns, upstream, "b.kaspersky.com", S + 2));
    let role = |m: &Merger, ip: &IpAddr| m.hosts.get(ip).map(|h| h.role);
    assert_eq!(role(&m, &other), Some(Role::Device));
    assert_eq!(role(&m, &lan_dns), Some(Role::Device));
    assert!(!m.address.is_resolver(&lan_dns));
    // Now the name it was asked for, within the window: forwarding.
    m.apply(&q(lan_dns, upstream, "a.kaspersky.com", S + 3));
    assert_eq!(role(&m, &lan_dns), Some(Role::Resolver));
    assert!(m.address.is_resolver(&lan_dns));
    assert_eq!(role(&m, &client), Some(Role::Device));
    assert!(!m.address.is_resolver(&other));
}

/// The client Initial of `captures/quic.pcap`'s frame 1 (SNI
/// activation-v2.kaspersky.com), as its UDP payload.
fn quic_initial_payload() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/quic.pcap");
    let mut first = None;
    crate::capture::file::CaptureFile::open(&path)
        .unwrap()
        .for_each(|frame, raw| {
            if frame == 1 {
                let mut c = Counters::default();
                if let crate::decode::Decoded::Packet(p) =
                    crate::decode::decode(raw.linktype, raw.data, &mut c)
                {
                    if let crate::decode::Transport::Udp { payload, .. } = p.transport {
                        first = Some(payload.to_vec());
                    }
                }
            }
        });
    first.unwrap()
}

#[test]
fn tunnels_are_told_by_their_destination_port() {
    // A DNS query for a Kaspersky name inside VXLAN to 4789 is the inner
    // host's; the same bytes *from* 4789 to an ordinary port are not a
    // tunnel unless they pass the heuristic checks (they do here: a real
    // VXLAN header and inner frame), and a QUIC payload never does.
    let inner = udp4(
        [10, 9, 0, 7],
        [10, 9, 0, 53],
        40_000,
        53,
        &frames::dns_query(7, "dnl-01.geo.kaspersky.com", 1),
    );
    // A query from a client whose ephemeral port is a tunnel's, to 53 (its
    // id 0x30ff starts like a GTP-U header, 0x6000 like Teredo's IPv6).
    for (sport, id) in [
        (4789, 7),
        (8472, 7),
        (6081, 7),
        (4754, 7),
        (2152, 0x30ff),
        (3544, 0x6000),
    ] {
        let f = udp4(
            [10, 0, 0, 5],
            [10, 0, 0, 53],
            sport,
            53,
            &frames::dns_query(id, "dnl-01.geo.kaspersky.com", 1),
        );
        let obs = run_frames(&[f], false);
        assert!(
            obs.iter()
                .any(|o| o.kind == ObsKind::Name && o.hit.is_some()),
            "source port {sport}: {obs:?}"
        );
    }
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
    vx.extend_from_slice(&inner);
    for (sport, dport) in [(50_000, 4789), (4789, 50_000)] {
        let f = udp4([198, 51, 100, 1], [198, 51, 100, 2], sport, dport, &vx);
        let obs = run_frames(&[f], false);
        let hosts: Vec<_> = obs
            .iter()
            .filter(|o| o.kind == ObsKind::Name && o.hit.is_some())
            .map(|o| o.src)
            .collect();
        assert_eq!(
            hosts,
            vec![IpAddr::V4(Ipv4Addr::new(10, 9, 0, 7))],
            "{sport}->{dport}: {obs:?}"
        );
    }
}

#[path = "../../benches/support/frames.rs"]
mod frames;

#[test]
fn every_source_port_carries_its_name() {
    // A sweep of all 65,535 source ports (QUIC: every port below 10,000
    // and a stride above): a client's own port never decides the protocol
    // of what it sends to a server's port (53, 443, 80). Before, a QUIC
    // Initial from 53, 5353, 137, 67 ... was read as DNS, NetBIOS or DHCP,
    // one from 4789, 8472, 6081 ... as a tunnel header, and a TLS hello or
    // HTTP request from TCP port 53 as DNS: each callback lost.
    let name = "dnl-01.geo.kaspersky.com";
    let client = Ipv4Addr::new(10, 0, 0, 5);
    let server = Ipv4Addr::new(203, 0, 113, 9);
    let mac = [2, 0, 0, 0, 0, 5];
    let hello = frames::tls_records(&frames::client_hello(name, false, 0), &[]);
    let request = frames::http_get(name, "/");
    let query = frames::dns_query(7, name, 1);
    let initial = quic_initial_payload();
    let quic_name = "activation-v2.kaspersky.com";
    let mut w = Worker::new(matcher(), WorkerConfig { all_names: false });
    let mut missed = Vec::new();
    for sport in 1..=u16::MAX {
        let mut sends = vec![
            (
                "dns",
                frames::udp4_frame(mac, client, server, sport, 53, &query),
                name,
            ),
            (
                "tls",
                frames::tcp4_frame(mac, client, server, sport, 443, 1, 1, 0x18, &hello),
                name,
            ),
            (
                "http",
                frames::tcp4_frame(mac, client, server, sport, 80, 1, 1, 0x18, &request),
                name,
            ),
        ];
        if sport < 10_000 || sport % 997 == 0 {
            sends.push((
                "quic",
                frames::udp4_frame(mac, client, server, sport, 443, &initial),
                quic_name,
            ));
        }
        for (what, f, want) in sends {
            let raw = RawPacket {
                ts: 1_000_000_000 * u64::from(sport),
                linktype: 1,
                interface: 0,
                data: &f,
                wire_len: f.len() as u32,
            };
            let meta = PktMeta {
                seq: u64::from(sport),
                input: 0,
                frame: u64::from(sport),
            };
            w.process(meta, &raw);
            let found = w
                .take()
                .iter()
                .any(|o| o.kind == ObsKind::Name && o.hit.is_some() && o.name.as_str() == want);
            if !found {
                missed.push((what, sport));
            }
        }
    }
    assert!(missed.is_empty(), "missed: {missed:?}");
}

/// Observations and counters of `file` through one worker, taking the
/// observations every `every` packets, new QUIC connections keyed in
/// batches or not; with how many were batched.
fn observe_file(
    m: &Arc<Matcher>,
    file: &std::path::Path,
    batch: bool,
    every: usize,
) -> (String, u64) {
    let mut w = Worker::new(m.clone(), WorkerConfig { all_names: true });
    w.batch_quic_keys(batch);
    let mut out = Vec::new();
    let mut seq = 0u64;
    crate::capture::file::CaptureFile::open(file)
        .unwrap()
        .for_each(|frame, raw| {
            seq += 1;
            w.process(
                PktMeta {
                    seq,
                    input: 0,
                    frame,
                },
                &raw,
            );
            if seq % every as u64 == 0 {
                out.extend(w.take());
            }
        });
    out.extend(w.take());
    (
        format!("{out:#?}\n{:#?}", w.counters()),
        w.quic_keys_batched(),
    )
}

#[test]
fn held_initials_change_no_output() {
    // Every capture in captures/ and the public corpus: the same
    // observations (in the same order) and counters whether new QUIC
    // connections' keys are derived one at a time or held and derived in
    // batches, whenever the observations are taken (after every packet,
    // every 7, or only at the end).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["captures", "tests/corpus"] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if crate::capture::file::CaptureFile::open(&p).is_ok() {
                    files.push(p);
                }
            }
        }
    }
    files.sort();
    assert!(files.len() > 50, "captures not found: {}", files.len());
    let mut batched = 0;
    // One signature set (a hit names its set).
    let m = matcher();
    for f in &files {
        let (one, none) = observe_file(&m, f, false, usize::MAX);
        assert_eq!(none, 0);
        for every in [1, 7, usize::MAX] {
            let (held, n) = observe_file(&m, f, true, every);
            if held != one {
                let d = one
                    .lines()
                    .zip(held.lines())
                    .enumerate()
                    .find(|(_, (a, b))| a != b)
                    .map(|(i, (a, b))| format!("line {i}: {a} / {b}"));
                panic!(
                    "{}: output differs when taken every {every}: {d:?}",
                    f.display()
                );
            }
            if every == usize::MAX {
                batched += n;
            }
        }
    }
    assert!(
        batched >= 20,
        "too few connections keyed in batches to test: {batched}"
    );
}
