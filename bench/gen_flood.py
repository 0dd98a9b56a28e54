#!/usr/bin/python3
"""Flood captures for kaswatch's table limits (issue 16): time, not memory.

usage: gen_flood.py KIND [--packets N] [--seed S] --out FILE.pcap

Each KIND fills one table with entries that never repeat:
  dns-answers   DNS responses (no query captured) for random <x>.kaspersky.com,
                each with its own A address: attribution map, per-host names
                (a response to a matching question counts for its client)
  dns-queries   unanswered queries for random <x>.kaspersky.com from 64
                clients: pending-query table, per-host names
  spoof         queries for random <x>.kaspersky.com, every one from a new
                spoofed source address: host table (evictions), pending queries
  syn           TCP SYNs of new flows (random source, destination, ports):
                flow table
  frag          first IPv4 fragments (MF set, offset 0) never completed, each
                a new (source, destination, id): fragment table
  syn-kaddr     one DNS answer resolving k.kaspersky.com to an address, then
                SYNs from spoofed sources to it, none sending payload: address
                decisions held per connection (issue 13), host table
  udp           datagrams of new UDP flows (random source, destination,
                ports; 20-120 bytes that are no DNS, QUIC or tunnel): flow
                table, connection openings
  tls           TLS ClientHellos (~570 B), each opening a new connection from
                one of 64 clients to a random server, SNI alternately a random
                <x>.kaspersky.com and a random www.<x>.example.com: flow table,
                shared addresses, per-host names, and a hello parse per packet
  quic          QUIC v1 client Initials (1,200 B, ClientHello for a random
                <x>.kaspersky.com), each a new connection (random DCID) from
                one of 64 clients: flow table, QUIC state, and one key
                derivation + decryption per packet, as for real new
                connections
  ordinary      same-size packets that fill nothing: answered DNS lookups of
                500 ordinary names by 200 clients (a few source ports each)
                and small segments of 256 established TCP flows

Classic pcap, Ethernet, microsecond timestamps 10 us apart, valid IPv4/UDP/TCP
checksums, deterministic per seed. Default packet counts follow issue 16:
300,000 (spoof: 200,000; quic: 100,000, sealed in Python at ~15k a second).
"""
import argparse
import os
import random
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_span import REC, csum_raw, fold, ip4_header, pseudo_sum, build_eth  # noqa: E402

KINDS = ("dns-answers", "dns-queries", "spoof", "syn", "frag", "syn-kaddr", "udp", "tls", "quic", "ordinary")
DEFAULT_PACKETS = {"spoof": 200000, "quic": 100000}
GW = bytes.fromhex("00005e000101")
RESOLVER = bytes([10, 0, 0, 53])
ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"


def dns_name(name):
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"


def udp_frame(src_mac, dst_mac, src, dst, sp, dp, payload, ident):
    seg = struct.pack("!HHHH", sp, dp, 8 + len(payload), 0) + payload
    cs = ~fold(pseudo_sum(src, dst, 17, len(seg)) + csum_raw(seg)) & 0xFFFF
    seg = seg[:6] + struct.pack("!H", cs or 0xFFFF) + seg[8:]
    return build_eth(dst_mac, src_mac, None, 0x0800) + ip4_header(src, dst, 17, len(seg), 64, ident) + seg


def tcp_frame(src_mac, dst_mac, src, dst, sp, dp, seq, ack, flags, payload, ident):
    hdr = struct.pack("!HHIIBBHHH", sp, dp, seq, ack, 5 << 4, flags, 64240, 0, 0)
    seg = hdr + payload
    cs = ~fold(pseudo_sum(src, dst, 6, len(seg)) + csum_raw(seg)) & 0xFFFF
    seg = seg[:16] + struct.pack("!H", cs) + seg[18:]
    return build_eth(dst_mac, src_mac, None, 0x0800) + ip4_header(src, dst, 6, len(seg), 64, ident) + seg


def query(qid, name):
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + dns_name(name) + struct.pack("!HH", 1, 1)


def answer(qid, name, addrs):
    msg = struct.pack("!HHHHHH", qid, 0x8180, 1, len(addrs), 0, 0) + dns_name(name) + struct.pack("!HH", 1, 1)
    for a in addrs:
        msg += struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + a
    return msg


class Flood:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.ident = 0
        self.clients = [self.host() for _ in range(64)]

    def host(self):
        r = self.rng
        while True:
            a = r.getrandbits(24)
            if (a >> 8) and (a & 0xFF) not in (0, 255):
                return bytes([10, a >> 16, (a >> 8) & 0xFF, a & 0xFF]), bytes([2]) + r.randbytes(5)

    def public(self):
        r = self.rng
        while True:
            b = r.getrandbits(32)
            if (b >> 24) not in (0, 10, 127, 169, 172, 192, 224) and (b >> 24) < 224:
                return struct.pack("!I", b)

    def rand_k(self):
        r = self.rng
        return "".join(r.choice(ALNUM) for _ in range(r.randrange(6, 14))) + ".kaspersky.com"

    def hello_maker(self):
        """gen_span's ClientHello and QUIC Initial builders (python3-cryptography),
        drawing from this flood's random numbers."""
        from gen_span import Gen  # noqa: E402
        g = Gen.__new__(Gen)
        g.rng = self.rng
        return g

    def next_id(self):
        self.ident = (self.ident + 1) & 0xFFFF
        return self.ident

    def frames(self, kind, n):
        r = self.rng
        if kind == "dns-answers":
            base = 0x64400000  # distinct addresses, counting up
            for i in range(n):
                ip, mac = self.clients[i & 63]
                yield udp_frame(GW, mac, RESOLVER, ip, 53, 20000 + (i % 40000), answer(
                    r.getrandbits(16), self.rand_k(), [struct.pack("!I", base + i)]), self.next_id())
        elif kind == "dns-queries":
            for i in range(n):
                ip, mac = self.clients[i & 63]
                yield udp_frame(mac, GW, ip, RESOLVER, 1024 + r.randrange(64000), 53,
                                query(r.getrandbits(16), self.rand_k()), self.next_id())
        elif kind == "spoof":
            for i in range(n):
                ip = struct.pack("!I", r.getrandbits(32) | 0x01000000)
                yield udp_frame(r.randbytes(6), GW, ip, RESOLVER, 1024 + r.randrange(64000), 53,
                                query(r.getrandbits(16), self.rand_k()), self.next_id())
        elif kind == "syn":
            for i in range(n):
                ip, mac = self.host()
                yield tcp_frame(mac, GW, ip, self.public(), 1024 + r.randrange(64000), r.choice([80, 443, 8080]),
                                r.getrandbits(32), 0, 0x02, b"", self.next_id())
        elif kind == "syn-kaddr":
            kaddr = bytes([81, 19, 104, 42])
            ip, mac = self.clients[0]
            yield udp_frame(GW, mac, RESOLVER, ip, 53, 33333, answer(7, "dnl-07.geo.kaspersky.com", [kaddr]), 1)
            for i in range(n - 1):
                src = struct.pack("!I", r.getrandbits(32) | 0x01000000)
                yield tcp_frame(r.randbytes(6), GW, src, kaddr, 1024 + r.randrange(64000), 443,
                                r.getrandbits(32), 0, 0x02, b"", self.next_id())
        elif kind == "frag":
            for i in range(n):
                ip, mac = self.clients[i & 63]
                dst = self.public()
                ident = (i >> 6) & 0xFFFF
                payload = struct.pack("!HHHH", 1024 + r.randrange(64000), 443, 1208, 0) + r.randbytes(64)
                h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x2000, 64, 17, 0, ip, dst)
                h = h[:10] + struct.pack("!H", ~csum_raw(h) & 0xFFFF) + h[12:]
                yield build_eth(GW, mac, None, 0x0800) + h + payload
        elif kind == "udp":
            for i in range(n):
                ip, mac = self.host()
                yield udp_frame(mac, GW, ip, self.public(), 1024 + r.randrange(64000),
                                r.choice([443, 3478, 5060, 51820]), r.randbytes(r.randrange(20, 120)),
                                self.next_id())
        elif kind == "tls":
            g = self.hello_maker()
            for i in range(n):
                ip, mac = self.clients[i & 63]
                name = self.rand_k() if i % 2 else "www.%06x.example.com" % r.getrandbits(24)
                ch = g.client_hello(name, False, False)
                rec = struct.pack("!BHH", 22, 0x0301, len(ch)) + ch
                yield tcp_frame(mac, GW, ip, self.public(), 1024 + r.randrange(64000), 443,
                                r.getrandbits(32), r.getrandbits(32), 0x18, rec, self.next_id())
        elif kind == "quic":
            g = self.hello_maker()
            for i in range(n):
                ip, mac = self.clients[i & 63]
                ini = g.quic_initial(self.rand_k(), r.randbytes(8), r.randbytes(8))
                yield udp_frame(mac, GW, ip, self.public(), 1024 + r.randrange(64000), 443, ini, self.next_id())
        elif kind == "ordinary":
            names = ["www.%s%d.example.com" % (r.choice(["shop", "news", "mail", "cdn", "img"]), k)
                     for k in range(500)]
            clients = [self.host() for _ in range(200)]
            ports = [[r.randrange(32768, 61000) for _ in range(4)] for _ in clients]
            servers = [self.public() for _ in range(64)]
            where = {name: servers[k % 64] for k, name in enumerate(names)}
            flows = []
            for k in range(256):
                ip, mac = clients[k % 200]
                flows.append([ip, mac, r.choice(servers), r.randrange(32768, 61000), r.choice([443, 22]),
                              r.getrandbits(32), r.getrandbits(32)])
            pending = None
            for i in range(n):
                if pending is not None:
                    yield pending
                    pending = None
                    continue
                if r.random() < 0.5 and i < n - 1:
                    c = r.randrange(200)
                    ip, mac = clients[c]
                    sp = r.choice(ports[c])
                    qid = r.getrandbits(16)
                    name = r.choice(names)
                    yield udp_frame(mac, GW, ip, RESOLVER, sp, 53, query(qid, name), self.next_id())
                    pending = udp_frame(GW, mac, RESOLVER, ip, 53, sp,
                                        answer(qid, name, [where[name]]), self.next_id())
                else:
                    f = flows[r.randrange(256)]
                    pay = r.randbytes(r.randrange(40, 120))
                    if r.random() < 0.5:
                        yield tcp_frame(f[1], GW, f[0], f[2], f[3], f[4], f[5], f[6], 0x18, pay, self.next_id())
                        f[5] = (f[5] + len(pay)) & 0xFFFFFFFF
                    else:
                        yield tcp_frame(GW, f[1], f[2], f[0], f[4], f[3], f[6], f[5], 0x18, pay, self.next_id())
                        f[6] = (f[6] + len(pay)) & 0xFFFFFFFF
        else:
            raise ValueError(kind)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("kind", choices=KINDS)
    ap.add_argument("--packets", type=int, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    n = a.packets or DEFAULT_PACKETS.get(a.kind, 300000)
    fl = Flood(a.seed)
    t = 1764000000 * 1000000
    buf, nbytes = [], 0
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for fr in fl.frames(a.kind, n):
            t += 10
            buf.append(REC.pack(t // 1000000, t % 1000000, len(fr), len(fr)))
            buf.append(fr)
            nbytes += len(fr)
            if len(buf) > 20000:
                f.write(b"".join(buf))
                buf.clear()
        f.write(b"".join(buf))
    sys.stderr.write("wrote %s: %s, %d packets, %d frame bytes\n" % (a.out, a.kind, n, nbytes))


if __name__ == "__main__":
    main()
