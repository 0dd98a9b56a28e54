#!/usr/bin/python3
"""Generate captures/tunnels.pcap and captures/tunnels.expected.tsv.

One UDP DNS query per encapsulation, each for a distinct Kaspersky name
(sNN.upd.kaspersky.com), from inner source 10.99.0.N (2001:db8:99::N for the
IPv6 inner packet of 6in4).  Classic pcap, LINKTYPE_ETHERNET, microsecond
timestamps from 2026-03-02T10:00:00Z, one frame per second.  Deterministic:
the pcap is written with struct; scapy only builds IP/UDP headers/checksums.
Tunnel headers are packed by hand so the bytes do not depend on scapy's
contrib layers.

Run with Debian's python:  /usr/bin/python3 captures/make_tunnels.py
"""
import calendar
import os
import struct
import sys

from scapy.all import IP, UDP, Ether, IPv6, Raw, conf

conf.verb = 0

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_PCAP = os.path.join(HERE, "tunnels.pcap")
OUT_TSV = os.path.join(HERE, "tunnels.expected.tsv")
T0 = calendar.timegm((2026, 3, 2, 10, 0, 0))

OUT_SMAC, OUT_DMAC = "02:00:00:00:99:01", "02:00:00:00:99:02"
OUT4_SRC, OUT4_DST = "198.51.100.1", "198.51.100.2"
OUT6_SRC, OUT6_DST = "2001:db8:99::1", "2001:db8:99::2"
INNER_DST4, INNER_DST6 = "10.99.0.254", "2001:db8:99::fe"

ETH_IPV4, ETH_IPV6, ETH_VLAN, ETH_QINQ = 0x0800, 0x86DD, 0x8100, 0x88A8
ETH_MPLS, ETH_TEB, ETH_PPPOE_S = 0x8847, 0x6558, 0x8864
ETH_ERSPAN2, ETH_ERSPAN3 = 0x88BE, 0x22EB


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def enc_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\x00"


def dns_query(qid, name, qtype=1):
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + enc_name(name) + struct.pack("!HH", qtype, 1)


def inner_ipv4(n, name):
    """IPv4/UDP/DNS from 10.99.0.n -> 10.99.0.254, bytes."""
    p = (IP(src="10.99.0.%d" % n, dst=INNER_DST4, id=0x6300 + n, ttl=64) /
         UDP(sport=33000 + n, dport=53) / Raw(dns_query(0x5300 + n, name)))
    return bytes(p)


def inner_ipv6(n, name):
    p = (IPv6(src="2001:db8:99::%x" % n, dst=INNER_DST6, hlim=64) /
         UDP(sport=33000 + n, dport=53) / Raw(dns_query(0x5300 + n, name, 28)))
    return bytes(p)


def ether_hdr(ethertype, smac=OUT_SMAC, dmac=OUT_DMAC):
    return mac(dmac) + mac(smac) + struct.pack("!H", ethertype)


def inner_ether(n, payload, ethertype=ETH_IPV4):
    return ether_hdr(ethertype, smac="02:00:00:00:00:%02x" % n, dmac="02:00:00:00:00:fe") + payload


def outer_ipv4(proto, payload, ident):
    return bytes(IP(src=OUT4_SRC, dst=OUT4_DST, proto=proto, id=ident, ttl=64) / Raw(payload))


def outer_ipv6(nh, payload):
    return bytes(IPv6(src=OUT6_SRC, dst=OUT6_DST, nh=nh, hlim=64) / Raw(payload))


def outer_udp4(dport, sport, payload, ident):
    return bytes(IP(src=OUT4_SRC, dst=OUT4_DST, id=ident, ttl=64) /
                 UDP(sport=sport, dport=dport) / Raw(payload))


def vlan_tag(tpid_next, vid, prio=0):
    # a tag is TCI followed by the *next* ethertype; caller supplies the first TPID
    return struct.pack("!HH", (prio << 13) | vid, tpid_next)


def gre(proto, key=None, seq=None):
    flags = 0
    if key is not None:
        flags |= 0x2000
    if seq is not None:
        flags |= 0x1000
    h = struct.pack("!HH", flags, proto)
    if key is not None:
        h += struct.pack("!I", key)
    if seq is not None:
        h += struct.pack("!I", seq)
    return h


def erspan2(session, vlan=0, index=0):
    # Ver=1 | VLAN(12) ; COS(3) En(2) T(1) SessionID(10) ; Reserved(12) Index(20)
    w1 = (1 << 12) | vlan
    w2 = (0 << 13) | (0 << 11) | (0 << 10) | session  # En=0: originally untagged
    return struct.pack("!HHI", w1, w2, index & 0xFFFFF)


def erspan3(session, timestamp, with_subheader=True):
    # Ver=2 | VLAN ; COS BSO T SessionID ; Timestamp(32) ;
    # SGT(16) P(1) FT(5) HwID(6) D(1) Gra(2) O(1)
    w1 = (2 << 12) | 0
    w2 = (0 << 13) | (0 << 11) | (0 << 10) | session
    sgt = 0
    o = 1 if with_subheader else 0
    last = (1 << 15) | (0 << 10) | (5 << 4) | (0 << 3) | (1 << 1) | o  # P=1 (Ethernet PDU, as Linux sets) FT=0 HwID=5 D=0 Gra=01
    h = struct.pack("!HHIHH", w1, w2, timestamp, sgt, last)
    if with_subheader:
        # platform-specific subheader, Platf ID 3: PlatfID(6) Reserved(26) ... 8 bytes
        h += struct.pack("!II", (3 << 26), 0x00001234)
    return h


def vxlan(vni):
    return struct.pack("!II", 0x08000000, vni << 8)


def geneve(vni, proto=ETH_TEB):
    # one option TLV: class 0x0104, type 0x01, length 1 (4-byte words of data)
    opt = struct.pack("!HBB", 0x0104, 0x01, 1) + b"\xca\xfe\xba\xbe"
    optlen_words = len(opt) // 4
    h = struct.pack("!BBH", (0 << 6) | optlen_words, 0, proto) + struct.pack("!I", vni << 8)
    return h + opt


def pppoe_session(sid, ppp_payload):
    body = struct.pack("!H", 0x0021) + ppp_payload  # PPP protocol IPv4
    return struct.pack("!BBHH", 0x11, 0x00, sid, len(body)) + body


def build():
    cases = []  # (inner_src, path, name, frame bytes)

    def name(i):
        return "s%02d.upd.kaspersky.com" % i

    # 0: 802.1ad QinQ: outer S-tag 0x88a8 vid 100, C-tag 0x8100 vid 200
    i = 0; n = i + 1
    f = ether_hdr(ETH_QINQ) + vlan_tag(ETH_VLAN, 100) + vlan_tag(ETH_IPV4, 200) + inner_ipv4(n, name(i))
    cases.append(("10.99.0.%d" % n, "vlan:100,vlan:200", name(i), f))

    # 1: triple 802.1Q
    i = 1; n = i + 1
    f = (ether_hdr(ETH_VLAN) + vlan_tag(ETH_VLAN, 100) + vlan_tag(ETH_VLAN, 200)
         + vlan_tag(ETH_IPV4, 300) + inner_ipv4(n, name(i)))
    cases.append(("10.99.0.%d" % n, "vlan:100,vlan:200,vlan:300", name(i), f))

    # 2: MPLS two-label stack over Ethernet
    i = 2; n = i + 1
    mpls = struct.pack("!II", (100 << 12) | (0 << 9) | (0 << 8) | 64,
                       (200 << 12) | (0 << 9) | (1 << 8) | 64)
    f = ether_hdr(ETH_MPLS) + mpls + inner_ipv4(n, name(i))
    cases.append(("10.99.0.%d" % n, "mpls:100,mpls:200", name(i), f))

    # 3: GRE (0x0800) over IPv4
    i = 3; n = i + 1
    f = ether_hdr(ETH_IPV4) + outer_ipv4(47, gre(ETH_IPV4) + inner_ipv4(n, name(i)), 0x7003)
    cases.append(("10.99.0.%d" % n, "gre", name(i), f))

    # 4: GRE with key 42 over IPv6, inner IPv4
    i = 4; n = i + 1
    f = ether_hdr(ETH_IPV6) + outer_ipv6(47, gre(ETH_IPV4, key=42) + inner_ipv4(n, name(i)))
    cases.append(("10.99.0.%d" % n, "gre:key=42", name(i), f))

    # 5: GRE transparent Ethernet bridging (0x6558) over IPv4
    i = 5; n = i + 1
    f = ether_hdr(ETH_IPV4) + outer_ipv4(47, gre(ETH_TEB) + inner_ether(n, inner_ipv4(n, name(i))), 0x7005)
    cases.append(("10.99.0.%d" % n, "gre", name(i), f))

    # 6: ERSPAN type II (GRE 0x88be, S bit + sequence), session 5
    i = 6; n = i + 1
    f = ether_hdr(ETH_IPV4) + outer_ipv4(
        47, gre(ETH_ERSPAN2, seq=6) + erspan2(5) + inner_ether(n, inner_ipv4(n, name(i))), 0x7006)
    cases.append(("10.99.0.%d" % n, "erspan2:session=5", name(i), f))

    # 7: ERSPAN type III (GRE 0x22eb), 12-byte header, O bit set + 8-byte subheader, session 6
    i = 7; n = i + 1
    f = ether_hdr(ETH_IPV4) + outer_ipv4(
        47, gre(ETH_ERSPAN3, seq=7) + erspan3(6, 0x0A0B0C0D) + inner_ether(n, inner_ipv4(n, name(i))), 0x7007)
    cases.append(("10.99.0.%d" % n, "erspan3:session=6", name(i), f))

    # 8: VXLAN udp/4789, VNI 42
    i = 8; n = i + 1
    f = ether_hdr(ETH_IPV4) + outer_udp4(4789, 49152 + i, vxlan(42) + inner_ether(n, inner_ipv4(n, name(i))), 0x7008)
    cases.append(("10.99.0.%d" % n, "vxlan:42", name(i), f))

    # 9: Geneve udp/6081, VNI 7, one option TLV, protocol 0x6558 (inner Ethernet)
    i = 9; n = i + 1
    f = ether_hdr(ETH_IPV4) + outer_udp4(6081, 49152 + i, geneve(7) + inner_ether(n, inner_ipv4(n, name(i))), 0x7009)
    cases.append(("10.99.0.%d" % n, "geneve:7", name(i), f))

    # 10: PPPoE session 0x1234, PPP protocol 0x0021 (IPv4)
    i = 10; n = i + 1
    f = ether_hdr(ETH_PPPOE_S) + pppoe_session(0x1234, inner_ipv4(n, name(i)))
    cases.append(("10.99.0.%d" % n, "pppoe:0x1234", name(i), f))

    # 11: IP-in-IP (IPv4 proto 4)
    i = 11; n = i + 1
    f = ether_hdr(ETH_IPV4) + outer_ipv4(4, inner_ipv4(n, name(i)), 0x700B)
    cases.append(("10.99.0.%d" % n, "ipip", name(i), f))

    # 12: IPv6-in-IPv4 (proto 41), inner IPv6 AAAA query
    i = 12; n = i + 1
    f = ether_hdr(ETH_IPV4) + outer_ipv4(41, inner_ipv6(n, name(i)), 0x700C)
    cases.append(("2001:db8:99::%x" % n, "6in4", name(i), f))

    # 13: IPv4-in-IPv6 (next header 4)
    i = 13; n = i + 1
    f = ether_hdr(ETH_IPV6) + outer_ipv6(4, inner_ipv4(n, name(i)))
    cases.append(("10.99.0.%d" % n, "4in6", name(i), f))
    return cases


def main():
    cases = build()
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    for k, (_, _, _, data) in enumerate(cases):
        out += struct.pack("<IIII", T0 + k, 0, len(data), len(data)) + data
    with open(OUT_PCAP, "wb") as fh:
        fh.write(out)
    lines = [
        "# kaswatch tunnels.pcap expected matches (generated by make_tunnels.py)",
        "# one UDP DNS query per encapsulation; tunnel_path is outermost -> innermost.",
        "# frame 6 is GRE transparent Ethernet bridging (0x6558); erspan3 has the O bit and 8-byte subheader.",
        "# columns: frame\tinner_src_ip\ttunnel_path\tname",
    ]
    for k, (src, path, name, _) in enumerate(cases):
        lines.append("%d\t%s\t%s\t%s" % (k + 1, src, path, name))
    with open(OUT_TSV, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("wrote %s (%d frames) and %s" % (OUT_PCAP, len(cases), OUT_TSV), file=sys.stderr)


if __name__ == "__main__":
    main()
