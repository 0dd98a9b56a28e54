#!/usr/bin/python3
"""Synthetic span-port capture generator for kaswatch benchmarks.

Writes a classic pcap (Ethernet, microsecond timestamps, strictly increasing
packet times) plus a ground-truth TSV listing every message that carries a
Kaspersky name and must be reported by the sensor:

    frame<TAB>src_ip<TAB>protocol<TAB>name

frame is 1-based and is the frame that *completes* the message (for a
ClientHello split over two TCP segments that is the second segment).
A summary is written to <truth>.summary.

Traffic mix (by packets, approximate):
  ~80 %  bulk TCP payload segments (1448 B over IPv4, 1428 B over IPv6) of
         long-lived flows between internal hosts 10.x.y.z and external servers
  ~9 %   pure ACKs of those flows
  rest   TCP handshakes/teardowns, DNS over UDP (A/AAAA, CNAME chains, EDNS),
         DNS over TCP, TLS ClientHellos with SNI on tcp/443 (half carry an
         X25519MLKEM768 key_share and are split over two segments), QUIC v1
         Initials on udp/443 (RFC 9001 encrypted, header protected, padded to
         1200 B), HTTP/1.1 GETs with Host headers, server responses.
Some hosts sit behind 802.1Q VLAN tags, some sessions run over IPv6.
All IPv4, TCP and UDP checksums are correct.

Deterministic for a given --seed (uses only random.Random, lists, no sets).
Requires python3-cryptography (AES-GCM / AES-ECB) for QUIC Initials.
"""
import argparse
import hashlib
import hmac
import ipaddress
import os
import random
import struct
import sys
import time
from array import array

try:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
except ImportError:  # pragma: no cover
    sys.exit("gen_span.py needs python3-cryptography: apt-get install -y python3-cryptography")

KASPERSKY = [
    "dnl-01.geo.kaspersky.com", "s07.upd.kaspersky.com", "downloads.upd.kaspersky.com",
    "dc1.ksn.kaspersky-labs.com", "ksn-file-geo.kaspersky-labs.com", "activation-v2.kaspersky.com",
    "cm.k.kaspersky-labs.com", "my.kaspersky.com",
]
DECOYS = [
    "notkaspersky.com", "kaspersky.com.evil.example", "mykaspersky-labs.com",
    "upd.kaspersky.com.cdn.example", "app-kaspersky.com.cn", "kasserver.com",
    "www.notkaspersky.com", "dnl-01.geo.kaspersky.com.evil.example", "s07.mykaspersky-labs.com",
]
WORDS = (
    "alpha amber anchor apple arrow atlas aurora autumn badger banner basil beacon birch bison "
    "blossom bolt breeze bright brook bronze cactus candle canyon carbon cedar cinder citrus clover "
    "cobalt comet copper coral cosmic crane crystal cypress dahlia delta desert dragon drift eagle "
    "ember falcon fern fjord flint forest fossil galaxy garnet glacier granite harbor hazel helix "
    "heron horizon indigo iris island ivory jade jasper juniper kelp kestrel lagoon lantern lemon "
    "lotus lunar magnet maple marble meadow meteor mint mirror mosaic nebula nectar nova oak ocean "
    "olive onyx orbit orchid otter pebble pepper phoenix pine planet plaza polar prairie prism "
    "quartz quill radar raven reef ridge river robin ruby saffron sage sapphire shadow sierra "
    "silver sparrow spruce summit sunset tango thistle thunder tiger timber topaz tulip tundra "
    "velvet vertex violet vista walnut willow winter zenith zephyr shop news mail cloud media "
    "games travel bank health data stream photo video music sports tech labs works market"
).split()
TLDS = ["com", "com", "com", "net", "org", "io", "de", "co.uk", "fr", "ru", "info", "app", "dev", "nl"]
PREFIXES = ["www", "www", "api", "cdn", "static", "img", "mail", "login", "app", "m", "edge",
            "assets", "update", "telemetry", "graph", "s3", "media", "push"]

SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
MASK32 = 0xFFFFFFFF
LITTLE = sys.byteorder == "little"

REC = struct.Struct("<IIII")
TCPD = struct.Struct("!IIHHHH4sII")  # seq ack offflags win csum urg opt(nop nop ts 10) tsval tsecr
TSOPT = b"\x01\x01\x08\x0a"
IP4 = struct.Struct("!BBHHHBBH4s4s")
IP6 = struct.Struct("!IHBB16s16s")


# ----------------------------------------------------------------------------- checksums
def csum_raw(data):
    """One's-complement sum of data folded to 16 bits, network order value."""
    if len(data) & 1:
        data = data + b"\0"
    s = sum(array("H", data))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    if LITTLE:
        s = ((s & 0xFF) << 8) | (s >> 8)
    return s


def fold(s):
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return (s & 0xFFFF) + (s >> 16)


def ip4_header(src, dst, proto, l4len, ttl, ident):
    h = IP4.pack(0x45, 0, 20 + l4len, ident, 0x4000, ttl, proto, 0, src, dst)
    c = ~csum_raw(h) & 0xFFFF
    return h[:10] + struct.pack("!H", c) + h[12:]


def pseudo_sum(src, dst, proto, l4len):
    if len(src) == 4:
        return csum_raw(src + dst + struct.pack("!BBH", 0, proto, l4len))
    return csum_raw(src + dst + struct.pack("!IxxxB", l4len, proto))


# ----------------------------------------------------------------------------- hosts & connections
class Host:
    __slots__ = ("ip4", "ip6", "mac", "vlan", "ip4s", "ip6s")


class Conn:
    """One transport 5-tuple, client side is always the internal host."""
    __slots__ = ("v6", "csrc", "sdst", "cport", "sport", "eth_c2s", "eth_s2c", "cseq", "sseq",
                 "proto", "src_str", "ttl_s", "cwin", "swin", "tsc", "tss")


def build_eth(dst_mac, src_mac, vlan, ethertype):
    if vlan is None:
        return dst_mac + src_mac + struct.pack("!H", ethertype)
    return dst_mac + src_mac + struct.pack("!HHH", 0x8100, vlan, ethertype)


class Gen:
    def __init__(self, args):
        self.rng = rng = random.Random(args.seed)
        self.gw_mac = bytes.fromhex("00005e000101")
        self.hosts = []
        seen = {}
        while len(self.hosts) < args.hosts:
            a = rng.getrandbits(24)
            if a in seen or (a & 0xFF) in (0, 255) or (a >> 8) == 0:
                continue
            seen[a] = 1
            h = Host()
            h.ip4 = bytes([10, a >> 16, (a >> 8) & 0xFF, a & 0xFF])
            h.ip4s = "10.%d.%d.%d" % (a >> 16, (a >> 8) & 0xFF, a & 0xFF)
            h.mac = bytes([0x02]) + rng.randbytes(5)
            h.vlan = rng.choice([10, 20, 30, 100, 205]) if rng.random() < 0.2 else None
            if rng.random() < 0.25:
                h.ip6 = bytes.fromhex("fd005e1a00000000") + rng.randbytes(8)
                h.ip6s = str(ipaddress.IPv6Address(h.ip6))
            else:
                h.ip6 = None
                h.ip6s = None
            self.hosts.append(h)
        self.resolver4 = [bytes([10, 0, 0, 53]), bytes([10, 0, 0, 54])]
        self.resolver6 = [bytes.fromhex("fd005e1a000000000000000000000053")]
        self.servers4 = []
        while len(self.servers4) < 4000:
            b = rng.getrandbits(32)
            o = b >> 24
            if o in (0, 10, 127, 100, 169, 172, 192, 198, 203) or o >= 224:
                continue
            self.servers4.append(struct.pack("!I", b))
        self.servers6 = [bytes.fromhex("2a0" + "%x" % rng.randrange(1, 10)) + rng.randbytes(14)
                         for _ in range(1000)]
        self.ordinary = []
        for _ in range(6000):
            w = rng.choice(WORDS)
            if rng.random() < 0.4:
                w = w + "-" + rng.choice(WORDS)
            elif rng.random() < 0.2:
                w = w + str(rng.randrange(2, 99))
            self.ordinary.append(rng.choice(PREFIXES) + "." + w + "." + rng.choice(TLDS))
        self.ip_id = rng.getrandbits(16)
        self.counts = {}
        self.name_counts = {}
        self.quic_key_cache = {}
        self.PAYLEN = {}

    # ------------------------------------------------------------------ names
    def pick_name(self, proto):
        r = self.rng.random()
        if r < 0.025:
            cat, name = "kaspersky", self.rng.choice(KASPERSKY)
        elif r < 0.05:
            cat, name = "decoy", self.rng.choice(DECOYS)
        else:
            cat, name = "ordinary", self.rng.choice(self.ordinary)
        k = (proto, cat)
        self.name_counts[k] = self.name_counts.get(k, 0) + 1
        return cat, name

    # ------------------------------------------------------------------ connections
    def new_conn(self, proto, sport, v6=None, server=None, host=None):
        rng = self.rng
        c = Conn()
        h = host or rng.choice(self.hosts)
        if v6 is None:
            v6 = h.ip6 is not None and rng.random() < 0.4
        if v6 and h.ip6 is None:
            v6 = False
        c.v6 = v6
        if v6:
            c.csrc, c.src_str = h.ip6, h.ip6s
            c.sdst = server or rng.choice(self.servers6)
        else:
            c.csrc, c.src_str = h.ip4, h.ip4s
            c.sdst = server or rng.choice(self.servers4)
        et = 0x86DD if v6 else 0x0800
        c.eth_c2s = build_eth(self.gw_mac, h.mac, h.vlan, et)
        c.eth_s2c = build_eth(h.mac, self.gw_mac, h.vlan, et)
        c.cport = rng.randrange(32768, 61000)
        c.sport = sport
        c.cseq = rng.getrandbits(32)
        c.sseq = rng.getrandbits(32)
        c.proto = proto
        c.ttl_s = rng.choice([48, 52, 55, 57, 116, 118, 243])
        c.cwin = rng.choice([501, 502, 512, 1026, 2052])
        c.swin = rng.choice([235, 501, 1024, 65535 >> 2])
        c.tsc = rng.getrandbits(32)
        c.tss = rng.getrandbits(32)
        return c

    def ip_wrap(self, c, c2s, proto, l4):
        if c2s:
            src, dst, ttl = c.csrc, c.sdst, 64
        else:
            src, dst, ttl = c.sdst, c.csrc, c.ttl_s
        if c.v6:
            ip = IP6.pack(0x60000000, len(l4), proto, ttl, src, dst)
        else:
            self.ip_id = (self.ip_id + 1) & 0xFFFF
            ip = ip4_header(src, dst, proto, len(l4), ttl, self.ip_id)
        return (c.eth_c2s if c2s else c.eth_s2c) + ip + l4

    def tcp(self, c, c2s, flags, payload=b"", opts=None):
        """Build a TCP frame and advance the sender's sequence number."""
        if c2s:
            sp, dp, seq, ack, win = c.cport, c.sport, c.cseq, c.sseq, c.cwin
            tsv, tse = c.tsc, c.tss
        else:
            sp, dp, seq, ack, win = c.sport, c.cport, c.sseq, c.cseq, c.swin
            tsv, tse = c.tss, c.tsc
        if flags & 0x02 and not flags & 0x10:
            ack = 0
        if opts is None:
            opts = TSOPT + struct.pack("!II", tsv, tse)
        hl = 20 + len(opts)
        hdr = struct.pack("!HHIIBBHHH", sp, dp, seq, ack, (hl // 4) << 4, flags, win, 0, 0) + opts
        seg = hdr + payload
        src, dst = (c.csrc, c.sdst) if c2s else (c.sdst, c.csrc)
        cs = ~fold(pseudo_sum(src, dst, 6, len(seg)) + csum_raw(seg)) & 0xFFFF
        seg = seg[:16] + struct.pack("!H", cs) + seg[18:]
        adv = len(payload) + (1 if flags & 0x03 else 0)  # SYN/FIN consume one
        if c2s:
            c.cseq = (c.cseq + adv) & MASK32
            c.tsc = (c.tsc + 3) & MASK32
        else:
            c.sseq = (c.sseq + adv) & MASK32
            c.tss = (c.tss + 3) & MASK32
        return self.ip_wrap(c, c2s, 6, seg)

    def udp(self, c, c2s, payload):
        sp, dp = (c.cport, c.sport) if c2s else (c.sport, c.cport)
        src, dst = (c.csrc, c.sdst) if c2s else (c.sdst, c.csrc)
        seg = struct.pack("!HHHH", sp, dp, 8 + len(payload), 0) + payload
        cs = ~fold(pseudo_sum(src, dst, 17, len(seg)) + csum_raw(seg)) & 0xFFFF
        if cs == 0:
            cs = 0xFFFF
        seg = seg[:6] + struct.pack("!H", cs) + seg[8:]
        return self.ip_wrap(c, c2s, 17, seg)

    def handshake(self, c, out):
        syn_opts = b"\x02\x04" + struct.pack("!H", 1440 if c.v6 else 1460) + b"\x04\x02\x08\x0a" + \
            struct.pack("!II", c.tsc, 0) + b"\x01\x03\x03\x07"
        out.append((self.tcp(c, True, 0x02, b"", syn_opts), "tcp_syn", None))
        sa_opts = b"\x02\x04" + struct.pack("!H", 1440 if c.v6 else 1460) + b"\x04\x02\x08\x0a" + \
            struct.pack("!II", c.tss, c.tsc) + b"\x01\x03\x03\x09"
        out.append((self.tcp(c, False, 0x12, b"", sa_opts), "tcp_synack", None))
        out.append((self.tcp(c, True, 0x10), "tcp_ack", None))

    def teardown(self, c, out):
        out.append((self.tcp(c, True, 0x11), "tcp_fin", None))
        out.append((self.tcp(c, False, 0x11), "tcp_fin", None))
        out.append((self.tcp(c, True, 0x10), "tcp_ack", None))

    def mss(self, c):
        return 1428 if c.v6 else 1448

    def send_stream(self, c, c2s, data, kind, out, truth=None):
        """Segment data at MSS; the truth entry goes on the last segment."""
        m = self.mss(c)
        n = (len(data) + m - 1) // m
        for i in range(n):
            chunk = data[i * m:(i + 1) * m]
            last = i == n - 1
            out.append((self.tcp(c, c2s, 0x18 if last else 0x10, chunk),
                        kind if n == 1 else "%s_seg%d" % (kind, i + 1), truth if last else None))

    # ------------------------------------------------------------------ payload builders
    @staticmethod
    def dns_name(name):
        return b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"

    def dns_query(self, qid, name, qtype, edns):
        msg = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1 if edns else 0)
        msg += self.dns_name(name) + struct.pack("!HH", qtype, 1)
        if edns:
            msg += b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
        return msg

    def dns_response(self, qid, name, qtype, cat, edns):
        rng = self.rng
        qn = self.dns_name(name)
        chain = []
        if cat == "kaspersky":
            if rng.random() < 0.4:
                t = rng.choice(KASPERSKY)
                if t != name:
                    chain.append(t)
        elif rng.random() < 0.3:
            base = name.split(".", 1)[1] if name.count(".") > 1 else name
            chain.append(name.split(".")[0] + "." + base + ".edgekey.net")
            if rng.random() < 0.5:
                chain.append("e%d.a.akamaiedge.net" % rng.randrange(1, 9999))
        body = b""
        off = 12 + len(qn) + 4
        owner = 0xC00C
        ttl = rng.choice([30, 60, 300, 3600])
        for t in chain:
            rd = self.dns_name(t)
            rr = struct.pack("!HHHIH", owner, 5, 1, ttl, len(rd))
            body += rr + rd
            owner = 0xC000 | (off + len(rr))
            off += len(rr) + len(rd)
        nans = rng.randrange(1, 5)
        for _ in range(nans):
            if qtype == 1:
                rd = self.rng.choice(self.servers4)
            else:
                rd = self.rng.choice(self.servers6)
            body += struct.pack("!HHHIH", owner, qtype, 1, ttl, len(rd)) + rd
        ar = 1 if edns else 0
        msg = struct.pack("!HHHHHH", qid, 0x8180, 1, len(chain) + nans, 0, ar) + qn + \
            struct.pack("!HH", qtype, 1) + body
        if edns:
            msg += b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)
        return msg

    def client_hello(self, sni, pq, quic):
        """TLS 1.3 ClientHello handshake message (no record header)."""
        rng = self.rng
        exts = []

        def ext(t, d):
            exts.append(struct.pack("!HH", t, len(d)) + d)
        g = rng.choice([0x0A0A, 0x1A1A, 0x2A2A, 0x3A3A, 0x4A4A, 0x5A5A])
        ext(g, b"")
        sn = sni.encode()
        ext(0x0000, struct.pack("!HBH", len(sn) + 3, 0, len(sn)) + sn)
        ext(0x0017, b"")
        ext(0xFF01, b"\x00")
        groups = ([0x11EC] if pq else []) + [0x001D, 0x0017, 0x0018]
        ext(0x000A, struct.pack("!H", 2 * len(groups)) + b"".join(struct.pack("!H", x) for x in groups))
        ext(0x000B, b"\x01\x00")
        if not quic:
            ext(0x0023, b"")
        alpn = [b"h3"] if quic else [b"h2", b"http/1.1"]
        al = b"".join(bytes([len(a)]) + a for a in alpn)
        ext(0x0010, struct.pack("!H", len(al)) + al)
        ext(0x0005, b"\x01\x00\x00\x00\x00")
        sigs = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
        ext(0x000D, struct.pack("!H", 2 * len(sigs)) + b"".join(struct.pack("!H", x) for x in sigs))
        ext(0x0012, b"")
        shares = b""
        if pq:
            shares += struct.pack("!HH", 0x11EC, 1216) + rng.randbytes(1216)
        shares += struct.pack("!HH", 0x001D, 32) + rng.randbytes(32)
        ext(0x002D, b"\x01\x01")
        ext(0x002B, b"\x02\x03\x04" if quic else b"\x04\x03\x04\x03\x03")
        ext(0x001B, b"\x02\x00\x02")
        if quic:
            tp = b"\x01\x04\x80\x00\x75\x30" + b"\x04\x04\x80\x98\x96\x80" + b"\x05\x04\x80\x06\x00\x00" + \
                 b"\x06\x04\x80\x06\x00\x00" + b"\x07\x04\x80\x06\x00\x00" + b"\x08\x02\x40\x64" + \
                 b"\x09\x02\x40\x64" + b"\x0f\x08" + rng.randbytes(8)
            ext(0x0039, tp)
        ext(0x0033, struct.pack("!H", len(shares)) + shares)
        suites = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8,
                  0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035]
        head = b"\x03\x03" + rng.randbytes(32)
        head += (b"\x00" if quic else b"\x20" + rng.randbytes(32))
        head += struct.pack("!H", 2 * len(suites)) + b"".join(struct.pack("!H", x) for x in suites)
        head += b"\x01\x00"
        body_len = len(head) + 2 + sum(len(e) for e in exts)
        if not quic and not pq and body_len < 508:
            pad = 508 - body_len - 4
            if pad >= 0:
                exts.append(struct.pack("!HH", 0x0015, pad) + b"\0" * pad)
        e = b"".join(exts)
        body = head + struct.pack("!H", len(e)) + e
        return b"\x01" + struct.pack("!I", len(body))[1:] + body

    @staticmethod
    def tls_record(ctype, data, ver=0x0303):
        return struct.pack("!BHH", ctype, ver, len(data)) + data

    # ------------------------------------------------------------------ QUIC
    @staticmethod
    def hkdf_expand_label(secret, label, length):
        full = b"tls13 " + label
        info = struct.pack("!HB", length, len(full)) + full + b"\x00"
        out, t, i = b"", b"", 1
        while len(out) < length:
            t = hmac.new(secret, t + info + bytes([i]), hashlib.sha256).digest()
            out += t
            i += 1
        return out[:length]

    @classmethod
    def quic_client_keys(cls, dcid):
        initial = hmac.new(SALT_V1, dcid, hashlib.sha256).digest()
        cs = cls.hkdf_expand_label(initial, b"client in", 32)
        return (cls.hkdf_expand_label(cs, b"quic key", 16), cls.hkdf_expand_label(cs, b"quic iv", 12),
                cls.hkdf_expand_label(cs, b"quic hp", 16))

    @staticmethod
    def varint(v):
        if v < 64:
            return bytes([v])
        if v < 16384:
            return struct.pack("!H", 0x4000 | v)
        return struct.pack("!I", 0x80000000 | v)

    def quic_initial(self, sni, dcid, scid):
        ch = self.client_hello(sni, False, True)
        pn, pn_len = 0, 1
        hdr = bytes([0xC0 | (pn_len - 1)]) + b"\x00\x00\x00\x01" + bytes([len(dcid)]) + dcid + \
            bytes([len(scid)]) + scid + b"\x00"
        hdr_len = len(hdr) + 2 + pn_len
        pt_len = 1200 - hdr_len - 16
        crypto = b"\x06" + self.varint(0) + self.varint(len(ch)) + ch
        if len(crypto) > pt_len:
            raise ValueError("ClientHello too large for one Initial")
        plaintext = crypto + b"\0" * (pt_len - len(crypto))
        length = pn_len + pt_len + 16
        hdr += struct.pack("!H", 0x4000 | length)
        pn_off = len(hdr)
        hdr += pn.to_bytes(pn_len, "big")
        key, iv, hp = self.quic_client_keys(dcid)
        nonce = (int.from_bytes(iv, "big") ^ pn).to_bytes(12, "big")
        ct = AESGCM(key).encrypt(nonce, plaintext, hdr)
        pkt = bytearray(hdr + ct)
        sample = bytes(pkt[pn_off + 4:pn_off + 20])
        enc = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
        mask = enc.update(sample) + enc.finalize()
        pkt[0] ^= mask[0] & 0x0F
        for i in range(pn_len):
            pkt[pn_off + i] ^= mask[1 + i]
        assert len(pkt) == 1200
        return bytes(pkt)

    # ------------------------------------------------------------------ sessions
    def session(self):
        """Return a list of (frame, kind, truth) for one short session."""
        r = self.rng.random()
        if r < 0.44:
            return self.s_dns_udp()
        if r < 0.46:
            return self.s_dns_tcp()
        if r < 0.75:
            return self.s_tls()
        if r < 0.86:
            return self.s_quic()
        return self.s_http()

    def resolver_conn(self, proto):
        rng = self.rng
        h = rng.choice(self.hosts)
        v6 = h.ip6 is not None and rng.random() < 0.4
        server = rng.choice(self.resolver6 if v6 else self.resolver4)
        return self.new_conn(proto, 53, v6=v6, server=server, host=h)

    def s_dns_udp(self):
        rng = self.rng
        c = self.resolver_conn(17)
        cat, name = self.pick_name("dns")
        qtype = 1 if rng.random() < 0.7 else 28
        qid = rng.getrandbits(16)
        edns = rng.random() < 0.6
        truth = ("dns", name, c.src_str) if cat == "kaspersky" else None
        out = [(self.udp(c, True, self.dns_query(qid, name, qtype, edns)), "dns_query", truth)]
        if rng.random() < 0.97:
            out.append((self.udp(c, False, self.dns_response(qid, name, qtype, cat, edns)), "dns_response", None))
        return out

    def s_dns_tcp(self):
        rng = self.rng
        c = self.resolver_conn(6)
        out = []
        self.handshake(c, out)
        cat, name = self.pick_name("dns")
        qtype = 1 if rng.random() < 0.7 else 28
        qid = rng.getrandbits(16)
        q = self.dns_query(qid, name, qtype, True)
        truth = ("dns", name, c.src_str) if cat == "kaspersky" else None
        out.append((self.tcp(c, True, 0x18, struct.pack("!H", len(q)) + q), "dns_tcp_query", truth))
        a = self.dns_response(qid, name, qtype, cat, True)
        out.append((self.tcp(c, False, 0x18, struct.pack("!H", len(a)) + a), "dns_tcp_response", None))
        self.teardown(c, out)
        return out

    def tls_prelude(self, c, out, pq=None):
        """Handshake + ClientHello (+ server ACK); returns nothing."""
        rng = self.rng
        self.handshake(c, out)
        cat, name = self.pick_name("tls")
        if pq is None:
            pq = rng.random() < 0.5
        rec = self.tls_record(0x16, self.client_hello(name, pq, False), 0x0301)
        truth = ("tls", name, c.src_str) if cat == "kaspersky" else None
        self.send_stream(c, True, rec, "tls_hello_pq" if pq else "tls_hello", out, truth)
        if pq:
            out.append((self.tcp(c, False, 0x10), "tcp_ack", None))

    def s_tls(self):
        rng = self.rng
        c = self.new_conn(6, 443)
        out = []
        self.tls_prelude(c, out)
        sh = self.tls_record(0x16, b"\x02" + rng.randbytes(rng.randrange(2200, 3800)))
        self.send_stream(c, False, sh, "tls_server", out)
        out.append((self.tcp(c, True, 0x10), "tcp_ack", None))
        fin = self.tls_record(0x14, b"\x01") + self.tls_record(0x17, rng.randbytes(rng.randrange(53, 600)))
        out.append((self.tcp(c, True, 0x18, fin), "tls_client_data", None))
        out.append((self.tcp(c, False, 0x18, self.tls_record(0x17, rng.randbytes(rng.randrange(100, 1400)))),
                    "tls_server", None))
        self.teardown(c, out)
        return out

    def s_quic(self):
        rng = self.rng
        c = self.new_conn(17, 443)
        cat, name = self.pick_name("quic")
        dcid, scid = rng.randbytes(8), rng.randbytes(8)
        truth = ("quic", name, c.src_str) if cat == "kaspersky" else None
        out = [(self.udp(c, True, self.quic_initial(name, dcid, scid)), "quic_initial", truth)]
        for i in range(rng.randrange(1, 4)):
            # server 1-RTT (short header) packets addressed to the client's SCID
            p = bytes([0x40 | rng.getrandbits(6)]) + scid + rng.randbytes(rng.randrange(60, 1240))
            out.append((self.udp(c, False, p), "quic_short", None))
        p = bytes([0x40 | rng.getrandbits(6)]) + rng.randbytes(8) + rng.randbytes(rng.randrange(30, 60))
        out.append((self.udp(c, True, p), "quic_short", None))
        return out

    def http_get(self, name, path=None):
        rng = self.rng
        if path is None:
            path = rng.choice(["/", "/index.html", "/favicon.ico", "/api/v1/status?id=%d" % rng.randrange(1 << 20),
                               "/bases/av/kdb/i386/kdb-i386-%04d.dif" % rng.randrange(10000),
                               "/static/js/app.%08x.js" % rng.getrandbits(32), "/update/index.xml"])
        ua = rng.choice(["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                         "Chrome/131.0.0.0 Safari/537.36", "curl/8.5.0", "Microsoft-CryptoAPI/10.0",
                         "KSN/1.0", "Wget/1.21.4"])
        return ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: */*\r\n"
                "Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n" % (path, name, ua)).encode()

    def http_response(self, body_len):
        return ("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n"
                "Server: nginx\r\nCache-Control: max-age=3600\r\n\r\n" % body_len).encode()

    def s_http(self):
        rng = self.rng
        c = self.new_conn(6, 80)
        out = []
        self.handshake(c, out)
        cat, name = self.pick_name("http")
        truth = ("http", name, c.src_str) if cat == "kaspersky" else None
        out.append((self.tcp(c, True, 0x18, self.http_get(name)), "http_get", truth))
        bl = rng.randrange(100, 4000)
        self.send_stream(c, False, self.http_response(bl) + rng.randbytes(bl), "http_response", out)
        out.append((self.tcp(c, True, 0x10), "tcp_ack", None))
        self.teardown(c, out)
        return out


# ----------------------------------------------------------------------------- bulk flows
class Bulk:
    __slots__ = ("c", "pre", "pos", "remaining", "vl", "v6", "d_pre", "d_c2s", "a_pre", "plen", "dsum", "asum",
                 "dwin", "awin", "dts", "ats", "pay", "psum")


def new_bulk(g, payloads):
    rng = g.rng
    port = rng.choice([443, 443, 443, 80, 80, 22, 445, 873, 8443])
    c = g.new_conn(6, port)
    b = Bulk()
    b.c = c
    pre = []
    if port in (443, 8443):
        g.tls_prelude(c, pre)
        sh = g.tls_record(0x16, b"\x02" + rng.randbytes(rng.randrange(2200, 3800)))
        g.send_stream(c, False, sh, "tls_server", pre)
        pre.append((g.tcp(c, True, 0x10), "tcp_ack", None))
    elif port == 80:
        g.handshake(c, pre)
        cat, name = g.pick_name("http")
        truth = ("http", name, c.src_str) if cat == "kaspersky" else None
        pre.append((g.tcp(c, True, 0x18, g.http_get(name)), "http_get", truth))
    else:
        g.handshake(c, pre)
    b.pre = pre
    b.pos = 0
    b.remaining = rng.randrange(2000, 40000)
    c2s = rng.random() < 0.25  # upload vs download
    if port == 80:
        c2s = False
        pre.append((g.tcp(c, False, 0x10, g.http_response(b.remaining * g.mss(c))), "http_response", None))
    b.d_c2s = c2s
    v6 = c.v6
    b.v6 = 1 if v6 else 0
    b.vl = 1 if c.eth_c2s[12] == 0x81 else 0
    plen = 1428 if v6 else 1448
    b.plen = plen
    b.pay, b.psum = payloads[plen]
    # data direction template: eth + ip + ports ; checksums precomputed with IP id 0 + DF.
    for which in ("d", "a"):
        dc2s = c2s if which == "d" else not c2s
        src, dst = (c.csrc, c.sdst) if dc2s else (c.sdst, c.csrc)
        sp, dp = (c.cport, c.sport) if dc2s else (c.sport, c.cport)
        l4len = 32 + (plen if which == "d" else 0)
        ttl = 64 if dc2s else c.ttl_s
        if v6:
            ip = IP6.pack(0x60000000, l4len, 6, ttl, src, dst)
        else:
            ip = ip4_header(src, dst, 6, l4len, ttl, 0)
        pre_b = (c.eth_c2s if dc2s else c.eth_s2c) + ip + struct.pack("!HH", sp, dp)
        win = c.cwin if dc2s else c.swin
        flags = 0x8018 if which == "d" else 0x8010
        # constant part of TCP checksum: pseudo header + ports + offflags + win + TS option kind/len + tsecr(=0)
        const = pseudo_sum(src, dst, 6, l4len) + sp + dp + flags + win + 0x0101 + 0x080A
        if which == "d":
            b.d_pre, b.dsum, b.dwin = pre_b, const, win
        else:
            b.a_pre, b.asum, b.awin = pre_b, const, win
    return b


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--hosts", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="span.pcap")
    ap.add_argument("--truth", default=None)
    ap.add_argument("--bulk-flows", type=int, default=64, help="concurrent long-lived bulk flows")
    args = ap.parse_args()
    truth_path = args.truth or os.path.splitext(args.out)[0] + ".truth.tsv"
    t0 = time.time()
    g = Gen(args)
    rng = g.rng
    # pre-sliced bulk payloads with precomputed checksum sums
    blob = rng.randbytes(1 << 17)
    payloads = {}
    for plen in (1448, 1428):
        pays, sums = [], []
        for k in range(64):
            off = rng.randrange(0, len(blob) - plen)
            p = blob[off:off + plen]
            pays.append(p)
            sums.append(csum_raw(p))
        payloads[plen] = (pays, sums)

    nflows = args.bulk_flows
    flows = [new_bulk(g, payloads) for _ in range(nflows)]
    active = []
    target_active = 48
    counts = {}
    truth_lines = []
    f = open(args.out, "wb")
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    out = []
    app = out.append
    t = 1764000000 * 1000000 + rng.getrandbits(20)
    total_bytes = 0
    n_bulk = n_ack = 0
    vlan_pkts = v6_pkts = 0
    rand = rng.random
    grb = rng.getrandbits
    rrange = rng.randrange
    recpack = REC.pack
    tcpd = TCPD.pack
    N = args.packets
    bulk_bytes_d = {}
    for frame in range(1, N + 1):
        t += 1 + grb(5)
        r = rand()
        if r < 0.895:
            b = flows[rrange(nflows)]
            if b.pos < len(b.pre):
                fr, kind, tr = b.pre[b.pos]
                b.pos += 1
            elif r < 0.805:
                c = b.c
                tsv = (t // 1000) & MASK32
                k = grb(6)
                if b.d_c2s:
                    seq, ack = c.cseq, c.sseq
                else:
                    seq, ack = c.sseq, c.cseq
                s = b.dsum + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF) + \
                    (tsv >> 16) + (tsv & 0xFFFF) + b.psum[k]
                s = (s & 0xFFFF) + (s >> 16)
                s = (s & 0xFFFF) + (s >> 16)
                s = (s & 0xFFFF) + (s >> 16)
                hdr = b.d_pre + tcpd(seq, ack, 0x8018, b.dwin, ~s & 0xFFFF, 0, TSOPT, tsv, 0)
                L = len(hdr) + b.plen
                app(recpack(t // 1000000, t % 1000000, L, L))
                app(hdr)
                app(b.pay[k])
                total_bytes += L
                n_bulk += 1
                vlan_pkts += b.vl
                v6_pkts += b.v6
                if b.d_c2s:
                    c.cseq = (seq + b.plen) & MASK32
                else:
                    c.sseq = (seq + b.plen) & MASK32
                b.remaining -= 1
                if b.remaining <= 0:
                    tail = []
                    g.teardown(c, tail)
                    active.append([tail, 0])
                    flows[flows.index(b)] = new_bulk(g, payloads)
                if len(out) > 12000:
                    f.write(b"".join(out))
                    out.clear()
                continue
            else:
                c = b.c
                tsv = (t // 1000) & MASK32
                if b.d_c2s:
                    seq, ack = c.sseq, c.cseq
                else:
                    seq, ack = c.cseq, c.sseq
                s = b.asum + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF) + \
                    (tsv >> 16) + (tsv & 0xFFFF)
                s = (s & 0xFFFF) + (s >> 16)
                s = (s & 0xFFFF) + (s >> 16)
                s = (s & 0xFFFF) + (s >> 16)
                hdr = b.a_pre + tcpd(seq, ack, 0x8010, b.awin, ~s & 0xFFFF, 0, TSOPT, tsv, 0)
                L = len(hdr)
                app(recpack(t // 1000000, t % 1000000, L, L))
                app(hdr)
                total_bytes += L
                n_ack += 1
                vlan_pkts += b.vl
                v6_pkts += b.v6
                continue
        else:
            while len(active) < target_active:
                active.append([g.session(), 0])
            i = rrange(len(active))
            s_ = active[i]
            fr, kind, tr = s_[0][s_[1]]
            s_[1] += 1
            if s_[1] >= len(s_[0]):
                active[i] = active[-1]
                active.pop()
        L = len(fr)
        app(recpack(t // 1000000, t % 1000000, L, L))
        app(fr)
        total_bytes += L
        counts[kind] = counts.get(kind, 0) + 1
        if fr[12] == 0x81:
            vlan_pkts += 1
            et = fr[16:18]
        else:
            et = fr[12:14]
        if et == b"\x86\xdd":
            v6_pkts += 1
        if tr is not None:
            proto, name, src = tr
            truth_lines.append("%d\t%s\t%s\t%s\n" % (frame, src, proto, name))
    f.write(b"".join(out))
    f.close()
    with open(truth_path, "w") as tf:
        tf.writelines(truth_lines)
    elapsed = time.time() - t0
    counts["bulk_data"] = n_bulk
    counts["bulk_ack"] = n_ack
    fsize = os.path.getsize(args.out)
    with open(truth_path + ".summary", "w") as sf:
        sf.write("seed\t%d\n" % args.seed)
        sf.write("packets\t%d\n" % N)
        sf.write("frame_bytes\t%d\n" % total_bytes)
        sf.write("file_bytes\t%d\n" % fsize)
        sf.write("hosts\t%d\n" % args.hosts)
        sf.write("truth_lines\t%d\n" % len(truth_lines))
        sf.write("vlan_tagged_packets\t%d\n" % vlan_pkts)
        sf.write("ipv6_packets\t%d\n" % v6_pkts)
        sf.write("capture_seconds\t%.3f\n" % ((t - (1764000000 * 1000000)) / 1e6))
        sf.write("gen_seconds\t%.2f\n" % elapsed)
        for k in sorted(counts):
            sf.write("kind.%s\t%d\n" % (k, counts[k]))
        for k in sorted(g.name_counts):
            sf.write("names.%s.%s\t%d\n" % (k[0], k[1], g.name_counts[k]))
        tp = {}
        for line in truth_lines:
            p = line.split("\t")[2]
            tp[p] = tp.get(p, 0) + 1
        for k in sorted(tp):
            sf.write("truth.%s\t%d\n" % (k, tp[k]))
    sys.stderr.write("wrote %s (%d packets, %d bytes) and %s (%d lines) in %.1f s\n"
                     % (args.out, N, fsize, truth_path, len(truth_lines), elapsed))


if __name__ == "__main__":
    main()
