#!/usr/bin/python3
"""Generate captures/demo.pcapng and captures/demo.expected.tsv for kaswatch.

Deterministic: fixed timestamps (from 2026-03-02T09:00:00Z), fixed MACs, IPs,
DNS ids, TCP sequence numbers, no randomness.  Re-running produces
byte-identical output.  The pcapng blocks are written by hand with struct so
the file layout does not depend on the scapy version; scapy is only used to
build the Ethernet/IP/TCP/UDP/ICMP headers and checksums.

Run with Debian's python:  /usr/bin/python3 captures/make_demo.py
"""
import calendar
import os
import struct
import sys

from scapy.all import (ARP, ICMP, IP, TCP, UDP, Dot1Q, Ether, ICMPv6EchoReply,
                       ICMPv6EchoRequest, IPv6, Raw, conf)

conf.verb = 0

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_PCAP = os.path.join(HERE, "demo.pcapng")
OUT_TSV = os.path.join(HERE, "demo.expected.tsv")

T0 = calendar.timegm((2026, 3, 2, 9, 0, 0))  # 2026-03-02T09:00:00Z

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101

# --------------------------------------------------------------------------
# minimal DNS wire encoder (no scapy DNS: we want exact control of bytes)
# --------------------------------------------------------------------------
QTYPE = {"A": 1, "NS": 2, "CNAME": 5, "AAAA": 28, "TXT": 16}


def enc_name(name):
    """Encode a name as DNS labels.  A trailing dot is irrelevant on the wire
    (the root label terminates every name), case is preserved as given."""
    out = b""
    for label in name.rstrip(".").split("."):
        lb = label.encode("ascii")
        assert 0 < len(lb) < 64
        out += bytes([len(lb)]) + lb
    return out + b"\x00"


def dns_query(qid, name, qtype="A"):
    hdr = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # RD=1
    return hdr + enc_name(name) + struct.pack("!HH", QTYPE[qtype], 1)


def _rr(owner, rtype, rdata, ttl=300):
    return owner + struct.pack("!HHIH", QTYPE[rtype], 1, ttl, len(rdata)) + rdata


def dns_response(qid, name, qtype, answers, rcode=0):
    """answers: list of (owner_name_or_None, type, value).  owner None means
    "the question name" and is written as a compression pointer 0xc00c."""
    flags = 0x8180 | rcode  # QR, RD, RA
    hdr = struct.pack("!HHHHHH", qid, flags, 1, len(answers), 0, 0)
    body = enc_name(name) + struct.pack("!HH", QTYPE[qtype], 1)
    for owner, rtype, value in answers:
        o = b"\xc0\x0c" if owner is None else enc_name(owner)
        if rtype == "A":
            rd = bytes(int(x) for x in value.split("."))
        elif rtype == "AAAA":
            import ipaddress
            rd = ipaddress.IPv6Address(value).packed
        elif rtype == "CNAME":
            rd = enc_name(value)
        else:
            raise ValueError(rtype)
        body += _rr(o, rtype, rd)
    return hdr + body


# --------------------------------------------------------------------------
# pcapng writer
# --------------------------------------------------------------------------
def _opt(code, value):
    pad = (-len(value)) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\x00" * pad


def _block(btype, body):
    body += b"\x00" * ((-len(body)) % 4)
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def shb():
    opts = _opt(4, b"kaswatch captures/make_demo.py (deterministic)") + _opt(0, b"")
    return _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + opts)


def idb(linktype, name, desc):
    opts = (_opt(2, name.encode()) + _opt(3, desc.encode())
            + _opt(9, b"\x06") + _opt(0, b""))  # if_tsresol = 10^-6
    return _block(0x00000001, struct.pack("<HHI", linktype, 0, 262144) + opts)


def epb(ifid, ts_us, data):
    body = struct.pack("<IIIII", ifid, ts_us >> 32, ts_us & 0xFFFFFFFF,
                       len(data), len(data)) + data
    return _block(0x00000006, body)


# --------------------------------------------------------------------------
# addresses
# --------------------------------------------------------------------------
MAC_GW = "00:1b:21:aa:00:01"
IP_GW = "192.168.10.1"
IP6_GW = "2001:db8:10::1"
HOSTS = {
    "A": ("192.168.10.21", "00:1b:21:aa:00:21"),
    "B": ("192.168.10.22", "00:1b:21:aa:00:22"),  # VLAN 30
    "C": ("2001:db8:10::23", "00:1b:21:aa:00:23"),
    "D": ("192.168.10.24", "00:1b:21:aa:00:24"),
    "E": ("192.168.10.25", "00:1b:21:aa:00:25"),
    "F": ("192.168.10.26", "00:1b:21:aa:00:26"),
}
TUN_IP = "10.8.0.6"  # VPN client seen on the raw-IP interface (no MAC)
VLAN_B = 30

DECOYS = [
    "notkaspersky.com",
    "kaspersky.com.evil.example",
    "mykaspersky-labs.com",
    "upd.kaspersky.com.cdn.example",
    "kaspersky-labs.com.attacker.test",
    "app-kaspersky.com.cn",
    "kasserver.com",
    "www.kasperskyzh.com",
]


class Capture:
    def __init__(self):
        self.frames = []  # (ifid, ts_us, bytes)
        self.expected = []  # rows
        self.t_us = None

    def add(self, pkt, ifid=0, gap_ms=10):
        # the first frame is exactly at T0, later ones gap_ms after the previous
        self.t_us = 0 if self.t_us is None else self.t_us + gap_ms * 1000
        data = bytes(pkt)
        self.frames.append((ifid, T0 * 1_000_000 + self.t_us, data))
        return len(self.frames)  # 1-based frame number

    def expect(self, frame, src_ip, src_mac, transport, name):
        self.expected.append((frame, src_ip, src_mac, transport,
                              name.lower().rstrip(".")))


def eth(src, dst, vlan=None):
    if vlan is None:
        return Ether(src=src, dst=dst)
    return Ether(src=src, dst=dst) / Dot1Q(vlan=vlan, prio=0)


def ip4(src, dst, ident):
    return IP(src=src, dst=dst, id=ident, ttl=64, flags="DF")


class TcpConn:
    """Tracks sequence numbers for a client<->server TCP connection."""

    def __init__(self, cap, cmac, smac, cip, sip, cport, sport, cisn, sisn,
                 vlan=None, v6=False, ipid=1000):
        self.cap, self.vlan, self.v6 = cap, vlan, v6
        self.c = dict(mac=cmac, ip=cip, port=cport, seq=cisn)
        self.s = dict(mac=smac, ip=sip, port=sport, seq=sisn)
        self.ipid = ipid

    def _pkt(self, frm, to, flags, payload=b"", ack=True):
        self.ipid += 1
        if self.v6:
            l3 = IPv6(src=frm["ip"], dst=to["ip"], hlim=64)
        else:
            l3 = ip4(frm["ip"], to["ip"], self.ipid)
        tcp = TCP(sport=frm["port"], dport=to["port"], seq=frm["seq"],
                  ack=to["seq"] if ack else 0, flags=flags, window=64240,
                  options=[])
        p = eth(frm["mac"], to["mac"], self.vlan) / l3 / tcp
        if payload:
            p = p / Raw(payload)
        return p

    def handshake(self):
        self.cap.add(self._pkt(self.c, self.s, "S", ack=False), gap_ms=5)
        self.c["seq"] += 1
        self.cap.add(self._pkt(self.s, self.c, "SA"), gap_ms=1)
        self.s["seq"] += 1
        self.cap.add(self._pkt(self.c, self.s, "A"), gap_ms=1)

    def send(self, from_client, data, flags="PA", gap_ms=2):
        frm, to = (self.c, self.s) if from_client else (self.s, self.c)
        n = self.cap.add(self._pkt(frm, to, flags, data), gap_ms=gap_ms)
        frm["seq"] += len(data)
        return n

    def ack(self, from_client, gap_ms=1):
        frm, to = (self.c, self.s) if from_client else (self.s, self.c)
        return self.cap.add(self._pkt(frm, to, "A"), gap_ms=gap_ms)

    def close(self):
        self.cap.add(self._pkt(self.c, self.s, "FA"), gap_ms=3)
        self.c["seq"] += 1
        self.cap.add(self._pkt(self.s, self.c, "FA"), gap_ms=1)
        self.s["seq"] += 1
        self.cap.add(self._pkt(self.c, self.s, "A"), gap_ms=1)


def tcp_dns(msg):
    return struct.pack("!H", len(msg)) + msg


def build():
    cap = Capture()

    def udp_dns(host, payload, sport, to_resolver=True, vlan=None, ipid=1,
                gap_ms=10):
        hip, hmac = HOSTS[host]
        v6 = ":" in hip
        if to_resolver:
            src, dst, smac, dmac, sp, dp = hip, (IP6_GW if v6 else IP_GW), hmac, MAC_GW, sport, 53
        else:
            src, dst, smac, dmac, sp, dp = (IP6_GW if v6 else IP_GW), hip, MAC_GW, hmac, 53, sport
        l3 = IPv6(src=src, dst=dst, hlim=64) if v6 else ip4(src, dst, ipid)
        return cap.add(eth(smac, dmac, vlan) / l3 / UDP(sport=sp, dport=dp) / Raw(payload),
                       gap_ms=gap_ms)

    # ---- E: ARP for the gateway (ordinary LAN noise) -----------------------
    eip, emac = HOSTS["E"]
    cap.add(Ether(src=emac, dst="ff:ff:ff:ff:ff:ff") /
            ARP(op=1, hwsrc=emac, psrc=eip, hwdst="00:00:00:00:00:00", pdst=IP_GW))
    cap.add(Ether(src=MAC_GW, dst=emac) /
            ARP(op=2, hwsrc=MAC_GW, psrc=IP_GW, hwdst=emac, pdst=eip), gap_ms=1)

    # ---- A: plain UDP DNS, mixed case, CNAME chain --------------------------
    aip, amac = HOSTS["A"]
    qn = "DnL-01.GEO.kaspersky.COM"
    f = udp_dns("A", dns_query(0x1a01, qn), 50001, ipid=0x2101)
    cap.expect(f, aip, amac, "udp", qn)
    udp_dns("A", dns_response(0x1a01, qn, "A", [
        (None, "CNAME", "dnl-01.geo.kaspersky.com.edge.example.net"),
        ("dnl-01.geo.kaspersky.com.edge.example.net", "CNAME", "e1234.a.example.net"),
        ("e1234.a.example.net", "A", "203.0.113.11"),
        ("e1234.a.example.net", "A", "203.0.113.12"),
    ]), 50001, to_resolver=False, ipid=0x0101, gap_ms=4)
    qn = "dc1.ksn.kaspersky-labs.com"
    f = udp_dns("A", dns_query(0x1a02, qn), 50002, ipid=0x2102)
    cap.expect(f, aip, amac, "udp", qn)
    udp_dns("A", dns_response(0x1a02, qn, "A", [(None, "A", "203.0.113.21")]),
            50002, to_resolver=False, ipid=0x0102, gap_ms=4)

    # ---- E: ordinary DNS ----------------------------------------------------
    for i, qn in enumerate(["www.example.org", "debian.org"]):
        udp_dns("E", dns_query(0x1e01 + i, qn), 50101 + i, ipid=0x2501 + i)
        udp_dns("E", dns_response(0x1e01 + i, qn, "A",
                                  [(None, "A", "198.51.100.%d" % (80 + i))]),
                50101 + i, to_resolver=False, ipid=0x0111 + i, gap_ms=3)

    # ---- B: VLAN 30, UDP activation-v2 --------------------------------------
    bip, bmac = HOSTS["B"]
    qn = "activation-v2.kaspersky.com"
    f = udp_dns("B", dns_query(0x1b01, qn), 50201, vlan=VLAN_B, ipid=0x2201)
    cap.expect(f, bip, bmac, "udp", qn)
    udp_dns("B", dns_response(0x1b01, qn, "A", [(None, "A", "203.0.113.31")]),
            50201, to_resolver=False, vlan=VLAN_B, ipid=0x0121, gap_ms=4)

    # ---- D: lookalike decoys, none may match --------------------------------
    for i, qn in enumerate(DECOYS):
        udp_dns("D", dns_query(0x1d01 + i, qn), 50301 + i, ipid=0x2401 + i, gap_ms=7)
        udp_dns("D", dns_response(0x1d01 + i, qn, "A", [], rcode=3),  # NXDOMAIN
                50301 + i, to_resolver=False, ipid=0x0131 + i, gap_ms=2)

    # ---- B: DNS over TCP, query split over two segments ---------------------
    qn = "s07.upd.kaspersky.com"
    conn = TcpConn(cap, bmac, MAC_GW, bip, IP_GW, 40022, 53, 0x0B000000,
                   0x5B000000, vlan=VLAN_B, ipid=0x2210)
    conn.handshake()
    msg = tcp_dns(dns_query(0x1b02, qn))
    cut = 2 + 12 + 5  # length prefix + header + first label and part of next
    conn.send(True, msg[:cut], flags="A")
    f = conn.send(True, msg[cut:])
    cap.expect(f, bip, bmac, "tcp", qn)
    conn.ack(False)
    conn.send(False, tcp_dns(dns_response(0x1b02, qn, "A", [(None, "A", "203.0.113.41")])))
    conn.ack(True)
    conn.close()

    # ---- C: IPv6 host -------------------------------------------------------
    cip, cmac = HOSTS["C"]
    qn = "ksn-file-geo.kaspersky-labs.com"
    f = udp_dns("C", dns_query(0x1c01, qn, "AAAA"), 50401)
    cap.expect(f, cip, cmac, "udp", qn)
    udp_dns("C", dns_response(0x1c01, qn, "AAAA", [(None, "AAAA", "2001:db8:113::51")]),
            50401, to_resolver=False, gap_ms=4)
    # "trailing-dot" form: on the DNS wire the root label always terminates a
    # name, so this is byte-identical to the dotless form; the expected name is
    # the normalised one.
    qn = "downloads.upd.kaspersky.com."
    f = udp_dns("C", dns_query(0x1c02, qn, "AAAA"), 50402)
    cap.expect(f, cip, cmac, "udp", qn)
    udp_dns("C", dns_response(0x1c02, qn, "AAAA", [(None, "AAAA", "2001:db8:113::52")]),
            50402, to_resolver=False, gap_ms=4)
    # ordinary IPv6 ping to the gateway
    cap.add(Ether(src=cmac, dst=MAC_GW) / IPv6(src=cip, dst=IP6_GW, hlim=64) /
            ICMPv6EchoRequest(id=0x23, seq=1, data=b"kaswatch-demo-v6"))
    cap.add(Ether(src=MAC_GW, dst=cmac) / IPv6(src=IP6_GW, dst=cip, hlim=64) /
            ICMPv6EchoReply(id=0x23, seq=1, data=b"kaswatch-demo-v6"), gap_ms=1)

    # ---- E: TCP/443 data without a ClientHello, ICMP ping -------------------
    conn = TcpConn(cap, emac, MAC_GW, eip, "198.51.100.80", 40025, 443,
                   0x0E000000, 0x5E000000, ipid=0x2520)
    conn.handshake()
    # a TLS application-data record (not a handshake): no SNI to find
    conn.send(True, b"\x17\x03\x03\x00\x20" + bytes(range(0x20)))
    conn.ack(False)
    conn.send(False, b"\x17\x03\x03\x00\x10" + bytes(range(0x40, 0x50)))
    conn.ack(True)
    conn.close()
    cap.add(Ether(src=emac, dst=MAC_GW) / ip4(eip, IP_GW, 0x2530) /
            ICMP(type=8, id=0x25, seq=1) / Raw(b"kaswatch-demo-v4"))
    cap.add(Ether(src=MAC_GW, dst=emac) / ip4(IP_GW, eip, 0x0140) /
            ICMP(type=0, id=0x25, seq=1) / Raw(b"kaswatch-demo-v4"), gap_ms=1)

    # ---- F: DNS over TCP, two queries + one ordinary in one connection ------
    # segment 1 = [cm.k A] + [www.wikipedia.org A] + first 9 bytes of [cm.k AAAA]
    # segment 2 = rest of [cm.k AAAA]
    fip, fmac = HOSTS["F"]
    qn = "cm.k.kaspersky-labs.com"
    conn = TcpConn(cap, fmac, MAC_GW, fip, IP_GW, 40026, 53, 0x0F000000,
                   0x5F000000, ipid=0x2610)
    conn.handshake()
    m1 = tcp_dns(dns_query(0x1f01, qn, "A"))
    m2 = tcp_dns(dns_query(0x1f02, "www.wikipedia.org", "A"))
    m3 = tcp_dns(dns_query(0x1f03, qn, "AAAA"))
    f1 = conn.send(True, m1 + m2 + m3[:9], flags="A")
    cap.expect(f1, fip, fmac, "tcp", qn)
    f2 = conn.send(True, m3[9:])
    cap.expect(f2, fip, fmac, "tcp", qn)
    conn.ack(False)
    conn.send(False,
              tcp_dns(dns_response(0x1f01, qn, "A", [(None, "A", "203.0.113.61")]))
              + tcp_dns(dns_response(0x1f02, "www.wikipedia.org", "A",
                                     [(None, "A", "198.51.100.90")]))
              + tcp_dns(dns_response(0x1f03, qn, "AAAA",
                                     [(None, "AAAA", "2001:db8:113::61")])))
    conn.ack(True)
    conn.close()

    # ---- interface 1 (LINKTYPE_RAW, "tun0"): VPN client, no MAC ------------
    qn = "dnl-02.geo.kaspersky.com"
    f = cap.add(ip4(TUN_IP, IP_GW, 0x0601) / UDP(sport=50601, dport=53) /
                Raw(dns_query(0x1601, qn)), ifid=1)
    cap.expect(f, TUN_IP, "-", "udp", qn)
    cap.add(ip4(IP_GW, TUN_IP, 0x0151) / UDP(sport=53, dport=50601) /
            Raw(dns_response(0x1601, qn, "A", [(None, "A", "203.0.113.71")])),
            ifid=1, gap_ms=4)
    cap.add(ip4(TUN_IP, IP_GW, 0x0602) / UDP(sport=50602, dport=53) /
            Raw(dns_query(0x1602, "www.example.org")), ifid=1)
    cap.add(ip4(IP_GW, TUN_IP, 0x0152) / UDP(sport=53, dport=50602) /
            Raw(dns_response(0x1602, "www.example.org", "A",
                             [(None, "A", "198.51.100.80")])), ifid=1, gap_ms=4)

    # ---- back on eth0: A repeats a query (same name later in time) ----------
    qn = "dc1.ksn.kaspersky-labs.com"
    f = udp_dns("A", dns_query(0x1a03, qn), 50003, ipid=0x2103, gap_ms=1000)
    cap.expect(f, aip, amac, "udp", qn)
    udp_dns("A", dns_response(0x1a03, qn, "A", [(None, "A", "203.0.113.21")]),
            50003, to_resolver=False, ipid=0x0103, gap_ms=4)
    return cap


def main():
    cap = build()
    out = shb()
    out += idb(LINKTYPE_ETHERNET, "eth0", "LAN 192.168.10.0/24 + 2001:db8:10::/64 (VLAN 30 tagged)")
    out += idb(LINKTYPE_RAW, "tun0", "VPN raw IP 10.8.0.0/24")
    for ifid, ts, data in cap.frames:
        out += epb(ifid, ts, data)
    with open(OUT_PCAP, "wb") as fh:
        fh.write(out)
    lines = [
        "# kaswatch demo.pcapng expected Kaspersky matches (generated by make_demo.py)",
        "# frame is 1-based across the whole file (both interfaces); for TCP DNS it is the",
        "# frame that completes the DNS message. src_mac '-' = LINKTYPE_RAW interface (no MAC).",
        "# only query senders are hosts; resolver responses (192.168.10.1 / 2001:db8:10::1) are not matches.",
        "# decoys (must NOT match, all from 192.168.10.24): " + " ".join(DECOYS),
        "# ordinary names (must NOT match): www.example.org debian.org www.wikipedia.org",
        "# columns: frame\tsrc_ip\tsrc_mac\ttransport\tname",
    ]
    for row in cap.expected:
        lines.append("\t".join(str(x) for x in row))
    with open(OUT_TSV, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("wrote %s (%d frames) and %s (%d matches)" % (
        OUT_PCAP, len(cap.frames), OUT_TSV, len(cap.expected)), file=sys.stderr)


if __name__ == "__main__":
    main()
