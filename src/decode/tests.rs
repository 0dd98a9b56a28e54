use super::*;

fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0,
        0,
        64,
        17,
        0,
        0,
    ];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

fn eth(et: u16, body: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    f.extend_from_slice(&et.to_be_bytes());
    f.extend_from_slice(body);
    f
}

fn udp_payload<'a>(d: &Decoded<'a>) -> (&'a [u8], Vec<String>) {
    match d {
        Decoded::Packet(p) => match p.transport {
            Transport::Udp { payload, .. } => (payload, p.tunnel.labels()),
            _ => panic!("not udp"),
        },
        other => panic!("not a packet: {other:?}"),
    }
}

#[test]
fn ethernet_ipv4_udp_trims_padding() {
    let mut f = eth(
        0x0800,
        &ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1234, 53, b"hello"),
    );
    f.extend_from_slice(&[0; 20]); // Ethernet padding
    let mut c = Counters::default();
    let d = decode(linktype::ETHERNET, &f, &mut c);
    let (pl, tun) = udp_payload(&d);
    assert_eq!(pl, b"hello");
    assert!(tun.is_empty());
    if let Decoded::Packet(p) = d {
        assert_eq!(p.src_mac, Some([2, 0, 0, 0, 0, 2]));
        assert_eq!(p.src.to_string(), "10.0.0.1");
    }
}

#[test]
fn qinq_and_vlan_depth_cap() {
    let inner = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1, 53, b"x");
    let mut body = vec![0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x08, 0x00];
    body.extend_from_slice(&inner);
    let f = eth(0x88a8, &body);
    let mut c = Counters::default();
    let d = decode(linktype::ETHERNET, &f, &mut c);
    assert_eq!(udp_payload(&d).1, vec!["vlan:10", "vlan:20"]);
    // MAX_VLAN_DEPTH + 1 tags: dropped and counted.
    let mut body = Vec::new();
    for _ in 0..MAX_VLAN_DEPTH {
        body.extend_from_slice(&[0, 1, 0x81, 0x00]);
    }
    body.extend_from_slice(&[0, 1, 0x08, 0x00]);
    body.extend_from_slice(&inner);
    let f = eth(0x8100, &body);
    assert!(matches!(
        decode(linktype::ETHERNET, &f, &mut c),
        Decoded::Skip
    ));
    assert_eq!(c.get_limit(Limit::VlanDepth), 1);
}

#[test]
fn ipv6_extension_headers_and_fragment() {
    let mut p = vec![0x60, 0, 0, 0];
    let udp = [0x30, 0x39, 0, 53, 0, 9, 0, 0, b'z'];
    let ext_len = 8 + 8;
    p.extend_from_slice(&((ext_len + udp.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0, 64]); // next = hop-by-hop
    p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    p.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]); // HbH -> dest opts
    p.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]); // dest opts -> UDP
    p.extend_from_slice(&udp);
    let mut c = Counters::default();
    let d = decode(linktype::RAW, &p, &mut c);
    assert_eq!(udp_payload(&d).0, b"z");
    // Same packet with a fragment header (offset 0, more) instead of dest opts.
    let mut q = p.clone();
    q[6] = 44; // next = fragment
    q[40..48].copy_from_slice(&[17, 0, 0, 1, 0, 0, 0, 9]);
    q[48..56].copy_from_slice(&[0x30, 0x39, 0, 53, 0, 9, 0, 0]);
    match decode(linktype::RAW, &q, &mut c) {
        Decoded::Fragment(f) => {
            assert_eq!((f.id, f.offset, f.more, f.proto), (9, 0, true, 17));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn link_types_sll_sll2_null_raw_ipv4() {
    let ip = ipv4_udp([1, 2, 3, 4], [5, 6, 7, 8], 9, 53, b"q");
    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 9, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&ip);
    let mut sll2 = vec![
        0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 9, 0, 0,
    ];
    sll2.extend_from_slice(&ip);
    let mut null = 2u32.to_le_bytes().to_vec();
    null.extend_from_slice(&ip);
    let mut c = Counters::default();
    for (lt, f) in [
        (linktype::LINUX_SLL, &sll),
        (linktype::LINUX_SLL2, &sll2),
        (linktype::NULL, &null),
        (linktype::IPV4, &ip),
    ] {
        assert_eq!(udp_payload(&decode(lt, f, &mut c)).0, b"q", "linktype {lt}");
    }
    if let Decoded::Packet(p) = decode(linktype::LINUX_SLL, &sll, &mut c) {
        assert_eq!(p.src_mac, Some([2, 0, 0, 0, 0, 9]));
    }
    assert!(matches!(decode(147, &ip, &mut c), Decoded::Skip));
    assert_eq!(c.get_decode(Layer::UnknownLinkType), 1);
}

/// VXLAN header (VNI 42) + inner Ethernet/IPv4/UDP DNS with payload "in".
fn vxlan_42() -> Vec<u8> {
    let inner = eth(
        0x0800,
        &ipv4_udp([10, 9, 9, 9], [10, 9, 9, 1], 5, 53, b"in"),
    );
    [&[0x08, 0, 0, 0, 0, 0, 42, 0][..], &inner].concat()
}

#[test]
fn vxlan_gre_and_mpls_paths() {
    let vx = vxlan_42();
    let outer = eth(
        0x0800,
        &ipv4_udp([1, 1, 1, 1], [2, 2, 2, 2], 40000, 4789, &vx),
    );
    let mut c = Counters::default();
    let d = decode(linktype::ETHERNET, &outer, &mut c);
    assert_eq!(udp_payload(&d), (&b"in"[..], vec!["vxlan:42".to_string()]));
    // Same VXLAN on an odd port: found by the strict heuristic.
    let odd = eth(
        0x0800,
        &ipv4_udp([1, 1, 1, 1], [2, 2, 2, 2], 40000, 9999, &vx),
    );
    assert_eq!(
        udp_payload(&decode(linktype::ETHERNET, &odd, &mut c)).1,
        vec!["vxlan:42"]
    );
    // MPLS bottom-of-stack -> IPv4
    let mut m = vec![0x00, 0x06, 0x40, 0x40, 0x00, 0x0c, 0x81, 0x40];
    m.extend_from_slice(&ipv4_udp([3, 3, 3, 3], [4, 4, 4, 4], 1, 53, b"m"));
    let f = eth(0x8847, &m);
    let d = decode(linktype::ETHERNET, &f, &mut c);
    assert_eq!(
        udp_payload(&d),
        (
            &b"m"[..],
            vec!["mpls:100".to_string(), "mpls:200".to_string()]
        )
    );
}

#[test]
fn every_truncation_and_random_bytes_never_panic() {
    let vx = vxlan_42();
    let outer = eth(
        0x8100,
        &[
            &[0u8, 5, 0x08, 0x00][..],
            &ipv4_udp([1, 1, 1, 1], [2, 2, 2, 2], 4, 4789, &vx),
        ]
        .concat(),
    );
    let mut c = Counters::default();
    for n in 0..outer.len() {
        for lt in [
            linktype::ETHERNET,
            linktype::RAW,
            linktype::LINUX_SLL2,
            linktype::NFLOG,
            linktype::IEEE802_11_RADIOTAP,
            linktype::PKTAP,
            linktype::PPP,
        ] {
            let _ = decode(lt, &outer[..n], &mut c);
        }
    }
    let mut x = 0x1234_5678u32;
    let mut buf = vec![0u8; 200];
    for _ in 0..20_000 {
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        for lt in [
            linktype::ETHERNET,
            linktype::RAW,
            linktype::NULL,
            linktype::C_HDLC,
        ] {
            let _ = decode(lt, &buf, &mut c);
        }
    }
}
