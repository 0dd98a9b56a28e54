#!/usr/bin/python3
"""Synthetic span-port capture generator for kaswatch benchmarks.

Writes a classic pcap (Ethernet, microsecond timestamps, strictly increasing
packet times) plus exact ground truth (see bench/README.md, "Truth files"):

    <truth>             frame<TAB>src_ip<TAB>protocol<TAB>name, one line per
                        message that is evidence of a device: dns|tls|quic|http
                        (a Kaspersky name) and content (update path / magic)
    <truth>.hosts       the exact device set (name or content evidence,
                        resolvers excluded), one address a line
    <truth>.other       hosts whose only evidence is the address (a connection
                        naming nothing to an address resolved from a Kaspersky
                        name and no other name): listed apart, not as devices
    <truth>.resolvers   resolvers that forwarded Kaspersky lookups upstream
    <truth>.dns_servers every address that sends DNS responses (may be listed
                        as a resolver, never as a device)
    <truth>.summary     counts

frame is 1-based and is the frame that *completes* the message (for a
ClientHello split over two TCP segments that is the second segment).

Mixes (--mix):
  span   (default) ~80 % bulk TCP payload segments of 64 concurrent long-lived
         flows, ~9 % pure ACKs, the rest full sessions: TCP handshakes and
         teardowns, DNS over UDP (A/AAAA, CNAME chains, EDNS) and TCP, TLS
         ClientHellos (half X25519MLKEM768, split over two segments), QUIC v1
         Initials (RFC 9001 encrypted), HTTP/1.1 GETs, server responses.
  heavy  50,000 long-lived connections already open when the capture starts,
         each packet's connection drawn from a Pareto (alpha 1.2) weight: 80 %
         data (1400/600/200 B), 8 % ACKs; plus 6 % DNS, 3 % TLS hellos,
         1.5 % QUIC Initials, 1.5 % HTTP requests (as churn).
  churn  every data packet and ACK is a connection never seen before: 80 %
         server->client data (1400/600/200 B), 8 % client ACKs, 6 % DNS,
         3 % TLS hellos (half post-quantum, two segments), 1.5 % QUIC Initials,
         1.5 % HTTP requests; 20,000 hosts, 200 servers.
In heavy and churn, hellos, Initials and requests open their connection (no
handshake in the capture), except the address-only and content sessions
below, which are full TCP sessions.

Precision cases in every mix:
  - Kaspersky names resolve to fixed addresses: some Kaspersky-only, some
    SHARED with ordinary names (DNS answers map both to them, and ordinary
    hosts connect to them with ordinary SNI/Host: these hosts are not devices).
  - Reserved "address-only" hosts open TLS without SNI to Kaspersky-only
    addresses (resolved earlier by others): only in <truth>.other. Ordinary
    hosts also open TLS without SNI to shared addresses: no evidence at all.
  - Reserved "content" hosts fetch update paths (/updaters/..., /index/u*g.xml.dif,
    /updates/...*.klzu) from an internal mirror 10.0.0.80 by address and get
    KLZF/KLD2 bodies: devices by content.
  - A forwarding resolver 10.0.0.60 answers clients from port 53 and sends
    its own queries for the same names upstream (9.9.9.9): a resolver, never
    a device; its clients asking for Kaspersky names are devices.
  - A prologue at the start of the capture resolves every Kaspersky and shared
    ordinary name once (A and AAAA), so address state is known before any
    connection; the forwarder answers one ordinary lookup first.
Some hosts sit behind 802.1Q VLAN tags, some sessions run over IPv6.
All IPv4, TCP and UDP checksums are correct. 2.5 % of name-carrying messages
use a Kaspersky name, 2.5 % a lookalike decoy, the rest ordinary names.

Deterministic for a given --seed and --mix (random.Random, lists, dicts only).
Requires python3-cryptography (AES-GCM / AES-ECB) for QUIC Initials.
"""
import argparse
import bisect
import hashlib
import hmac
import ipaddress
import itertools
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
# Kaspersky names hosted on shared (CDN-like) addresses; the others have Kaspersky-only addresses.
K_SHARED = ["dnl-01.geo.kaspersky.com", "downloads.upd.kaspersky.com", "my.kaspersky.com"]
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
UPDATE_PATHS = ["/updaters/updater.xml.dif", "/index/u0607g.xml.dif",
                "/updates/kdb/i386/base%03d.kdc.klzu", "/updates/ksn/ksn-0607g.xml.klz"]
MAGICS = [b"KLZF", b"KLD2"]
MIXES = ("span", "heavy", "churn")

SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
MASK32 = 0xFFFFFFFF
LITTLE = sys.byteorder == "little"

REC = struct.Struct("<IIII")
TCPD = struct.Struct("!IIHHHH4sII")  # seq ack offflags win csum urg opt(nop nop ts 10) tsval tsecr
TCPF = struct.Struct("!HHIIHHHH4sII")  # ports + TCPD
TSOPT = b"\x01\x01\x08\x0a"
IP4 = struct.Struct("!BBHHHBBH4s4s")
IP6 = struct.Struct("!IHBB16s16s")

FWD_IP = bytes([10, 0, 0, 60])       # forwarding resolver
UPSTREAM_IP = bytes([9, 9, 9, 9])    # its upstream
MIRROR_IP = bytes([10, 0, 0, 80])    # internal update mirror (content evidence)


def ip_str(b):
    return str(ipaddress.ip_address(b))


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


def wsum(b):
    """Unfolded sum of the big-endian 16-bit words of an address."""
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))


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
    __slots__ = ("ip4", "ip6", "mac", "vlan", "ip4s", "ip6s", "s4", "s6", "e4c", "e4s", "e6c", "e6s")


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
        self.rng = rng = random.Random("%s:%d" % (args.mix, args.seed) if args.mix != "span" else args.seed)
        self.mix = args.mix
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
            self.finish_host(h)
            self.hosts.append(h)
        # Reserved hosts: address-only (TLS without SNI to Kaspersky-only addresses, nothing else)
        # and content-only (update paths from the internal mirror, by address).
        n_addr = max(2, args.hosts // 500)
        n_content = max(2, args.hosts // 1000)
        self.addr_hosts = self.hosts[:n_addr]
        self.content_hosts = self.hosts[n_addr:n_addr + n_content]
        self.gen_hosts = self.hosts[n_addr + n_content:]
        if not self.gen_hosts:
            sys.exit("gen_span.py: --hosts too small")
        self.resolver4 = [bytes([10, 0, 0, 53]), bytes([10, 0, 0, 54])]
        self.resolver6 = [bytes.fromhex("fd005e1a000000000000000000000053")]
        fwd = Host()
        fwd.ip4, fwd.ip4s, fwd.ip6, fwd.ip6s = FWD_IP, ip_str(FWD_IP), None, None
        fwd.mac, fwd.vlan = bytes.fromhex("020000000060"), None
        self.finish_host(fwd)
        self.fwd = fwd
        self.dns_servers = [ip_str(x) for x in self.resolver4 + self.resolver6 + [FWD_IP, UPSTREAM_IP]]
        n4, n6 = (160, 40) if args.mix == "churn" else (4000, 1000)
        self.servers4, seen = [], {}
        while len(self.servers4) < n4:
            b = rng.getrandbits(32)
            o = b >> 24
            if o in (0, 9, 10, 127, 100, 169, 172, 192, 198, 203) or o >= 224 or b in seen:
                continue
            seen[b] = 1
            self.servers4.append(struct.pack("!I", b))
        self.servers6, seen = [], {}
        while len(self.servers6) < n6:
            s6 = bytes.fromhex("2a0" + "%x" % rng.randrange(1, 10)) + rng.randbytes(14)
            if s6 not in seen:
                seen[s6] = 1
                self.servers6.append(s6)
        self.ssum = {}
        for s in self.servers4 + self.servers6 + self.resolver4 + self.resolver6 + [UPSTREAM_IP, MIRROR_IP]:
            self.ssum[s] = wsum(s)
        # address pools: Kaspersky-only, shared (Kaspersky and ordinary names), general
        self.konly4, self.konly6 = self.servers4[:10], self.servers6[:5]
        self.shared4, self.shared6 = self.servers4[10:22], self.servers6[5:8]
        self.gen4, self.gen6 = self.servers4[22:], self.servers6[8:]
        ordinary, seen = [], {}
        while len(ordinary) < 6000:
            w = rng.choice(WORDS)
            if rng.random() < 0.4:
                w = w + "-" + rng.choice(WORDS)
            elif rng.random() < 0.2:
                w = w + str(rng.randrange(2, 99))
            n = rng.choice(PREFIXES) + "." + w + "." + rng.choice(TLDS)
            if n not in seen:
                seen[n] = 1
                ordinary.append(n)
        self.ordinary = ordinary
        self.shared_ordinary = ordinary[:48]
        self.addr4, self.addr6 = {}, {}
        konly_names = [n for n in KASPERSKY if n not in K_SHARED]
        for i, n in enumerate(konly_names):
            self.addr4[n] = [self.konly4[2 * i], self.konly4[2 * i + 1]]
            self.addr6[n] = [self.konly6[i]]
        for i, n in enumerate(K_SHARED):
            self.addr4[n] = self.shared4[4 * i:4 * i + 4]
            self.addr6[n] = [self.shared6[i]]
        for j, n in enumerate(self.shared_ordinary):
            self.addr4[n] = [self.shared4[j % 12], self.shared4[(j + 5) % 12]]
            self.addr6[n] = [self.shared6[j % 3]]
        self.ip_id = rng.getrandbits(16)
        self.name_counts = {}
        # Set for the last frames of the capture: no new session may reach a Kaspersky-only address
        # (Kaspersky names are then drawn from the shared ones), so no connection to such an
        # address is cut by the end of the capture before its first client payload.
        self.tail = False

    def finish_host(self, h):
        h.s4 = wsum(h.ip4)
        h.e4c = build_eth(self.gw_mac, h.mac, h.vlan, 0x0800)
        h.e4s = build_eth(h.mac, self.gw_mac, h.vlan, 0x0800)
        if h.ip6 is not None:
            h.s6 = wsum(h.ip6)
            h.e6c = build_eth(self.gw_mac, h.mac, h.vlan, 0x86DD)
            h.e6s = build_eth(h.mac, self.gw_mac, h.vlan, 0x86DD)
        else:
            h.s6 = h.e6c = h.e6s = None

    # ------------------------------------------------------------------ names and addresses
    def pick_name(self, proto):
        r = self.rng.random()
        if r < 0.025:
            cat, name = "kaspersky", self.rng.choice(K_SHARED if self.tail else KASPERSKY)
        elif r < 0.05:
            cat, name = "decoy", self.rng.choice(DECOYS)
        elif r < 0.24:
            cat, name = "ordinary", self.rng.choice(self.shared_ordinary)
        else:
            cat, name = "ordinary", self.rng.choice(self.ordinary)
        k = (proto, cat)
        self.name_counts[k] = self.name_counts.get(k, 0) + 1
        return cat, name

    def answer_addrs(self, name, qtype):
        """Addresses in a DNS answer: fixed per Kaspersky / shared name, else general."""
        lst = (self.addr4 if qtype == 1 else self.addr6).get(name)
        if lst is not None:
            return lst
        pool = self.gen4 if qtype == 1 else self.gen6
        return [self.rng.choice(pool) for _ in range(self.rng.randrange(1, 5))]

    def server_for(self, name, v6):
        lst = (self.addr6 if v6 else self.addr4).get(name) if name is not None else None
        if lst:
            return self.rng.choice(lst)
        return self.rng.choice(self.gen6 if v6 else self.gen4)

    # ------------------------------------------------------------------ connections
    def new_conn(self, proto, sport, v6=None, server=None, host=None, name=None):
        rng = self.rng
        c = Conn()
        h = host or rng.choice(self.gen_hosts)
        if v6 is None:
            v6 = h.ip6 is not None and rng.random() < 0.4
        if v6 and h.ip6 is None:
            v6 = False
        c.v6 = v6
        if server is None:
            server = self.server_for(name, v6)
        if v6:
            c.csrc, c.src_str = h.ip6, h.ip6s
        else:
            c.csrc, c.src_str = h.ip4, h.ip4s
        c.sdst = server
        c.eth_c2s = h.e6c if v6 else h.e4c
        c.eth_s2c = h.e6s if v6 else h.e4s
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

    def fast_tcp(self, eth, src, dst, asum, sp, dp, seq, ack, flags, win, ttl, tsv, plen, psum, v6):
        """Header bytes (Ethernet..TCP with timestamps) of a mid-stream segment whose payload
        has length plen and checksum sum psum; asum = wsum(src) + wsum(dst)."""
        l4len = 32 + plen
        s = asum + 6 + l4len + sp + dp + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF) + \
            (0x8000 | flags) + win + 0x0101 + 0x080A + (tsv >> 16) + (tsv & 0xFFFF) + psum
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        tcp = TCPF.pack(sp, dp, seq, ack, 0x8000 | flags, win, ~s & 0xFFFF, 0, TSOPT, tsv, 0)
        if v6:
            return eth + IP6.pack(0x60000000, l4len, 6, ttl, src, dst) + tcp
        self.ip_id = ident = (self.ip_id + 1) & 0xFFFF
        tot = 20 + l4len
        c = 0x4500 + tot + ident + 0x4000 + ((ttl << 8) | 6) + asum
        c = (c & 0xFFFF) + (c >> 16)
        c = (c & 0xFFFF) + (c >> 16)
        c = (c & 0xFFFF) + (c >> 16)
        return eth + IP4.pack(0x45, 0, tot, ident, 0x4000, ttl, 6, ~c & 0xFFFF, src, dst) + tcp

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
        addrs = self.answer_addrs(name, qtype)
        nans = len(addrs)
        for rd in addrs:
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
        if sni is not None:  # None: no server_name extension (a client connecting by address)
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
    # A session is a list of (frame, kind, truth); truth is None or (proto, name, src):
    #   proto dns|tls|quic|http|content -> truth TSV line, src is a device
    #   proto address  -> src has address evidence only (<truth>.other unless a device)
    #   proto resolver -> src is a resolver that forwarded a Kaspersky lookup
    def session(self):
        """One full session of the span mix."""
        r = self.rng.random()
        if r < 0.40:
            return self.s_dns_udp()
        if r < 0.44:
            return self.s_dns_fwd()
        if r < 0.46:
            return self.s_dns_tcp()
        if r < 0.74:
            return self.s_tls()
        if r < 0.745:
            return self.s_tls() if self.tail else self.s_tls_nosni(False)
        if r < 0.75:
            return self.s_tls_nosni(True)
        if r < 0.855:
            return self.s_quic()
        if r < 0.86:
            return self.s_content()
        return self.s_http()

    def lean_session(self, cls):
        """heavy/churn: the session of one class; hellos, Initials and requests open their
        connection (no handshake), address-only and content sessions are full TCP sessions."""
        r = self.rng.random()
        if cls == "dns":
            if r < 0.85:
                return self.s_dns_udp()
            if r < 0.95:
                return self.s_dns_fwd()
            return self.s_dns_tcp()
        if cls == "tls":
            if r < 0.04:
                return self.s_tls_hello() if self.tail else self.s_tls_nosni(False)
            if r < 0.05:
                return self.s_tls_nosni(True)
            return self.s_tls_hello()
        if cls == "quic":
            return self.s_quic_initial()
        if r < 0.04:
            return self.s_content()
        return self.s_http_request()

    def resolver_conn(self, proto, host=None):
        rng = self.rng
        h = host or rng.choice(self.gen_hosts)
        v6 = h.ip6 is not None and rng.random() < 0.4
        server = rng.choice(self.resolver6 if v6 else self.resolver4)
        return self.new_conn(proto, 53, v6=v6, server=server, host=h)

    def dns_exchange(self, c, name, cat, qtype=None, truth_src=True):
        rng = self.rng
        if qtype is None:
            qtype = 1 if rng.random() < 0.7 else 28
        qid = rng.getrandbits(16)
        edns = rng.random() < 0.6
        truth = ("dns", name, c.src_str) if cat == "kaspersky" and truth_src else None
        out = [(self.udp(c, True, self.dns_query(qid, name, qtype, edns)), "dns_query", truth)]
        return out, qid, qtype, edns

    def s_dns_udp(self, name=None, qtype=None, answer=None):
        rng = self.rng
        c = self.resolver_conn(17)
        if name is None:
            cat, name = self.pick_name("dns")
        else:
            cat = "kaspersky" if name in KASPERSKY else "ordinary"
        out, qid, qtype, edns = self.dns_exchange(c, name, cat, qtype)
        if answer or (answer is None and rng.random() < 0.97):
            out.append((self.udp(c, False, self.dns_response(qid, name, qtype, cat, edns)), "dns_response", None))
        return out

    def s_dns_fwd(self, name=None):
        """Client asks the forwarding resolver, which asks upstream and answers the client."""
        rng = self.rng
        h = rng.choice(self.gen_hosts)
        c = self.new_conn(17, 53, v6=False, server=FWD_IP, host=h)
        if name is None:
            cat, name = self.pick_name("dns")
        else:
            cat = "kaspersky" if name in KASPERSKY else "ordinary"
        out, qid, qtype, edns = self.dns_exchange(c, name, cat)
        u = self.new_conn(17, 53, v6=False, server=UPSTREAM_IP, host=self.fwd)
        uqid = rng.getrandbits(16)
        tr = ("resolver", name, self.fwd.ip4s) if cat == "kaspersky" else None
        out.append((self.udp(u, True, self.dns_query(uqid, name, qtype, True)), "dns_fwd_query", tr))
        resp = self.dns_response(uqid, name, qtype, cat, True)
        out.append((self.udp(u, False, resp), "dns_fwd_response", None))
        if not edns:  # strip the OPT record the client did not ask for
            resp = resp[:10] + b"\x00\x00" + resp[12:-11]
        out.append((self.udp(c, False, struct.pack("!H", qid) + resp[2:]), "dns_response", None))
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

    def tls_conn(self, port=443):
        cat, name = self.pick_name("tls")
        return self.new_conn(6, port, name=name), cat, name

    def tls_prelude(self, c, cat, name, out, pq=None, handshake=True):
        """Handshake + ClientHello (+ server ACK of a two-segment hello)."""
        rng = self.rng
        if handshake:
            self.handshake(c, out)
        if pq is None:
            pq = rng.random() < 0.5
        rec = self.tls_record(0x16, self.client_hello(name, pq, False), 0x0301)
        truth = ("tls", name, c.src_str) if cat == "kaspersky" else None
        self.send_stream(c, True, rec, "tls_hello_pq" if pq else "tls_hello", out, truth)
        if pq and handshake:
            out.append((self.tcp(c, False, 0x10), "tcp_ack", None))

    def tls_rest(self, c, out):
        rng = self.rng
        sh = self.tls_record(0x16, b"\x02" + rng.randbytes(rng.randrange(2200, 3800)))
        self.send_stream(c, False, sh, "tls_server", out)
        out.append((self.tcp(c, True, 0x10), "tcp_ack", None))
        fin = self.tls_record(0x14, b"\x01") + self.tls_record(0x17, rng.randbytes(rng.randrange(53, 600)))
        out.append((self.tcp(c, True, 0x18, fin), "tls_client_data", None))
        out.append((self.tcp(c, False, 0x18, self.tls_record(0x17, rng.randbytes(rng.randrange(100, 1400)))),
                    "tls_server", None))
        self.teardown(c, out)

    def s_tls(self):
        c, cat, name = self.tls_conn()
        out = []
        self.tls_prelude(c, cat, name, out)
        self.tls_rest(c, out)
        return out

    def s_tls_hello(self):
        c, cat, name = self.tls_conn()
        out = []
        self.tls_prelude(c, cat, name, out, handshake=False)
        return out

    def s_tls_nosni(self, shared):
        """TLS without SNI: a reserved address-only host to a Kaspersky-only address (address
        evidence), or an ordinary host to a shared address (no evidence)."""
        rng = self.rng
        h = rng.choice(self.gen_hosts if shared else self.addr_hosts)
        v6 = h.ip6 is not None and rng.random() < 0.4
        if shared:
            server = rng.choice(self.shared6 if v6 else self.shared4)
        else:
            server = rng.choice(self.konly6 if v6 else self.konly4)
        c = self.new_conn(6, 443, v6=v6, server=server, host=h)
        out = []
        self.handshake(c, out)
        rec = self.tls_record(0x16, self.client_hello(None, rng.random() < 0.5, False), 0x0301)
        tr = None if shared else ("address", ip_str(server), c.src_str)
        self.send_stream(c, True, rec, "tls_hello_nosni", out, tr)
        self.tls_rest(c, out)
        return out

    def quic_conn(self):
        cat, name = self.pick_name("quic")
        c = self.new_conn(17, 443, name=name)
        dcid, scid = self.rng.randbytes(8), self.rng.randbytes(8)
        truth = ("quic", name, c.src_str) if cat == "kaspersky" else None
        return c, name, dcid, scid, truth

    def s_quic(self):
        rng = self.rng
        c, name, dcid, scid, truth = self.quic_conn()
        out = [(self.udp(c, True, self.quic_initial(name, dcid, scid)), "quic_initial", truth)]
        for i in range(rng.randrange(1, 4)):
            # server 1-RTT (short header) packets addressed to the client's SCID
            p = bytes([0x40 | rng.getrandbits(6)]) + scid + rng.randbytes(rng.randrange(60, 1240))
            out.append((self.udp(c, False, p), "quic_short", None))
        p = bytes([0x40 | rng.getrandbits(6)]) + rng.randbytes(8) + rng.randbytes(rng.randrange(30, 60))
        out.append((self.udp(c, True, p), "quic_short", None))
        return out

    def s_quic_initial(self):
        c, name, dcid, scid, truth = self.quic_conn()
        return [(self.udp(c, True, self.quic_initial(name, dcid, scid)), "quic_initial", truth)]

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

    def body(self, n):
        b = self.rng.randbytes(n)
        return b"\0" + b[1:] if b[:4] in MAGICS else b

    def s_http(self):
        rng = self.rng
        cat, name = self.pick_name("http")
        c = self.new_conn(6, 80, name=name)
        out = []
        self.handshake(c, out)
        truth = ("http", name, c.src_str) if cat == "kaspersky" else None
        out.append((self.tcp(c, True, 0x18, self.http_get(name)), "http_get", truth))
        bl = rng.randrange(100, 4000)
        self.send_stream(c, False, self.http_response(bl) + self.body(bl), "http_response", out)
        out.append((self.tcp(c, True, 0x10), "tcp_ack", None))
        self.teardown(c, out)
        return out

    def s_http_request(self):
        cat, name = self.pick_name("http")
        c = self.new_conn(6, 80, name=name)
        truth = ("http", name, c.src_str) if cat == "kaspersky" else None
        return [(self.tcp(c, True, 0x18, self.http_get(name)), "http_get", truth)]

    def s_content(self):
        """A reserved host fetches an update file from the internal mirror by address."""
        rng = self.rng
        h = rng.choice(self.content_hosts)
        c = self.new_conn(6, 80, v6=False, server=MIRROR_IP, host=h)
        out = []
        self.handshake(c, out)
        path = rng.choice(UPDATE_PATHS)
        if "%" in path:
            path = path % rng.randrange(1000)
        out.append((self.tcp(c, True, 0x18, self.http_get(ip_str(MIRROR_IP), path)), "http_get_update",
                    ("content", "path:" + path, c.src_str)))
        bl = rng.randrange(200, 3000)
        magic = rng.choice(MAGICS)
        self.send_stream(c, False, self.http_response(bl) + magic + rng.randbytes(bl - 4), "http_response_update",
                         out)
        out.append((self.tcp(c, True, 0x10), "tcp_ack", None))
        self.teardown(c, out)
        return out

    def prologue(self):
        """Resolve every Kaspersky and shared ordinary name once (A and AAAA) and let the
        forwarder answer one ordinary lookup, before any connection."""
        out = []
        for name in KASPERSKY + self.shared_ordinary:
            for qtype in (1, 28):
                out += self.s_dns_udp(name=name, qtype=qtype, answer=True)
        out += self.s_dns_fwd(name=self.ordinary[-1])
        return out


# ----------------------------------------------------------------------------- span: bulk flows
class Bulk:
    __slots__ = ("c", "pre", "pos", "remaining", "vl", "v6", "d_pre", "d_c2s", "a_pre", "plen", "dsum", "asum",
                 "dwin", "awin", "dts", "ats", "pay", "psum")


def new_bulk(g, payloads):
    rng = g.rng
    port = rng.choice([443, 443, 443, 80, 80, 22, 445, 873, 8443])
    pre = []
    if port in (443, 8443):
        c, cat, name = g.tls_conn(port)
        g.tls_prelude(c, cat, name, pre)
        sh = g.tls_record(0x16, b"\x02" + rng.randbytes(rng.randrange(2200, 3800)))
        g.send_stream(c, False, sh, "tls_server", pre)
        pre.append((g.tcp(c, True, 0x10), "tcp_ack", None))
    elif port == 80:
        cat, name = g.pick_name("http")
        c = g.new_conn(6, port, name=name)
        g.handshake(c, pre)
        truth = ("http", name, c.src_str) if cat == "kaspersky" else None
        pre.append((g.tcp(c, True, 0x18, g.http_get(name)), "http_get", truth))
    else:
        c = g.new_conn(6, port)
        g.handshake(c, pre)
    b = Bulk()
    b.c = c
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


def payload_set(rng, sizes, n=64):
    """n slices per size of one random blob, with checksum sums; none starts with update magic."""
    blob = bytearray(rng.randbytes(1 << 17))
    out = {}
    for plen in sizes:
        pays, sums = [], []
        for k in range(n):
            off = rng.randrange(0, len(blob) - plen)
            p = bytes(blob[off:off + plen])
            if p[:4] in MAGICS:
                p = b"\0" + p[1:]
            pays.append(p)
            sums.append(csum_raw(p))
        out[plen] = (pays, sums)
    return out


# ----------------------------------------------------------------------------- output
class Writer:
    """pcap writer + truth/summary bookkeeping shared by the mixes."""

    def __init__(self, g, path):
        self.g = g
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        self.out = []
        self.t0 = self.t = 1764000000 * 1000000 + g.rng.getrandbits(20)
        self.total_bytes = 0
        self.vlan_pkts = self.v6_pkts = 0
        self.counts = {}
        self.truth_lines = []
        self.devices = {}
        self.address = {}
        self.resolvers = {}

    def emit(self, frame, fr, kind, tr):
        """A frame from a session (slow path: counts, VLAN/IPv6, truth)."""
        t = self.t
        L = len(fr)
        self.out.append(REC.pack(t // 1000000, t % 1000000, L, L))
        self.out.append(fr)
        self.total_bytes += L
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if fr[12] == 0x81:
            self.vlan_pkts += 1
            et = fr[16:18]
        else:
            et = fr[12:14]
        if et == b"\x86\xdd":
            self.v6_pkts += 1
        if tr is not None:
            proto, name, src = tr
            if proto == "address":
                self.address[src] = 1
            elif proto == "resolver":
                self.resolvers[src] = 1
            else:
                self.truth_lines.append("%d\t%s\t%s\t%s\n" % (frame, src, proto, name))
                self.devices[src] = 1

    def flush(self, force=False):
        if force or len(self.out) > 12000:
            self.f.write(b"".join(self.out))
            self.out.clear()

    def close(self, args, truth_path, elapsed, extra_counts):
        self.flush(True)
        self.f.close()
        g = self.g
        with open(truth_path, "w") as tf:
            tf.writelines(self.truth_lines)

        def norm(s):
            return str(ipaddress.ip_address(s))

        def write_set(path, items):
            with open(path, "w") as sf:
                for s in sorted(norm(x) for x in items):
                    sf.write(s + "\n")
        devices = list(self.devices)
        write_set(truth_path + ".hosts", devices)
        write_set(truth_path + ".other", [a for a in self.address if a not in self.devices])
        write_set(truth_path + ".resolvers", list(self.resolvers))
        write_set(truth_path + ".dns_servers", g.dns_servers)
        counts = dict(self.counts)
        counts.update(extra_counts)
        fsize = os.path.getsize(args.out)
        with open(truth_path + ".summary", "w") as sf:
            sf.write("mix\t%s\n" % args.mix)
            sf.write("seed\t%d\n" % args.seed)
            sf.write("packets\t%d\n" % args.packets)
            sf.write("frame_bytes\t%d\n" % self.total_bytes)
            sf.write("file_bytes\t%d\n" % fsize)
            sf.write("hosts\t%d\n" % args.hosts)
            sf.write("truth_lines\t%d\n" % len(self.truth_lines))
            sf.write("truth_devices\t%d\n" % len(devices))
            sf.write("truth_address_only\t%d\n" % len([a for a in self.address if a not in self.devices]))
            sf.write("truth_resolvers\t%d\n" % len(self.resolvers))
            sf.write("vlan_tagged_packets\t%d\n" % self.vlan_pkts)
            sf.write("ipv6_packets\t%d\n" % self.v6_pkts)
            sf.write("capture_seconds\t%.3f\n" % ((self.t - self.t0) / 1e6))
            sf.write("gen_seconds\t%.2f\n" % elapsed)
            for k in sorted(counts):
                sf.write("kind.%s\t%d\n" % (k, counts[k]))
            for k in sorted(g.name_counts):
                sf.write("names.%s.%s\t%d\n" % (k[0], k[1], g.name_counts[k]))
            tp = {}
            for line in self.truth_lines:
                p = line.split("\t")[2]
                tp[p] = tp.get(p, 0) + 1
            for k in sorted(tp):
                sf.write("truth.%s\t%d\n" % (k, tp[k]))
        return fsize


def tail_start(N):
    return N - min(30000, N // 10)


def run_prologue(g, w, N):
    frame = 0
    for fr, kind, tr in g.prologue():
        if frame >= N:
            break
        frame += 1
        w.t += 1 + g.rng.getrandbits(5)
        w.emit(frame, fr, kind, tr)
    return frame


# ----------------------------------------------------------------------------- span mix
def gen_span_mix(g, w, args):
    rng = g.rng
    payloads = payload_set(rng, (1448, 1428))
    nflows = args.bulk_flows
    flows = [new_bulk(g, payloads) for _ in range(nflows)]
    active = []
    target_active = 48
    out = w.out
    app = out.append
    n_bulk = n_ack = 0
    vlan_pkts = v6_pkts = 0
    total_bytes = 0
    rand = rng.random
    grb = rng.getrandbits
    rrange = rng.randrange
    recpack = REC.pack
    tcpd = TCPD.pack
    N = args.packets
    first = run_prologue(g, w, N) + 1
    tail_frame = tail_start(N)
    t = w.t
    for frame in range(first, N + 1):
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
                    fins = []
                    g.teardown(c, fins)
                    active.append([fins, 0])
                    flows[flows.index(b)] = new_bulk(g, payloads)
                if len(out) > 12000:
                    w.flush()
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
            if frame >= tail_frame:
                g.tail = True
            while len(active) < target_active:
                active.append([g.session(), 0])
            i = rrange(len(active))
            s_ = active[i]
            fr, kind, tr = s_[0][s_[1]]
            s_[1] += 1
            if s_[1] >= len(s_[0]):
                active[i] = active[-1]
                active.pop()
        w.t = t
        w.emit(frame, fr, kind, tr)
    w.t = t
    w.total_bytes += total_bytes
    w.vlan_pkts += vlan_pkts
    w.v6_pkts += v6_pkts
    return {"bulk_data": n_bulk, "bulk_ack": n_ack}


# ----------------------------------------------------------------------------- heavy and churn mixes
DATA_SIZES = (1400, 600, 200)
DATA_CUM = (0.6, 0.85, 1.0)  # 60 % 1400 B, 25 % 600 B, 15 % 200 B
SERVER_PORTS = [443, 443, 443, 443, 80, 80, 8443, 22, 993, 445]
TTLS = [48, 52, 55, 57, 116, 118, 243]
CWINS = [501, 502, 512, 1026, 2052]
SWINS = [235, 501, 1024, 65535 >> 2]


class HC:
    """A long-lived connection of the heavy mix, seen mid-stream (no handshake in the capture).
    d_* is the data direction, the ACK direction is its reverse."""
    __slots__ = ("v6", "vl", "eth_d", "eth_a", "src_d", "dst_d", "asum", "sp_d", "dp_d", "ttl_d", "ttl_a",
                 "win_d", "win_a", "seq_d", "seq_a")


def new_hc(g, rng):
    h = rng.choice(g.gen_hosts)
    v6 = h.ip6 is not None and rng.random() < 0.4
    srv = rng.choice(g.gen6 if v6 else g.gen4)
    cip = h.ip6 if v6 else h.ip4
    hc = HC()
    hc.v6 = 1 if v6 else 0
    hc.vl = 1 if h.vlan is not None else 0
    hc.asum = (h.s6 if v6 else h.s4) + g.ssum[srv]
    sport, cport = rng.choice(SERVER_PORTS), rng.randrange(32768, 61000)
    ttl_s, cwin, swin = rng.choice(TTLS), rng.choice(CWINS), rng.choice(SWINS)
    ec, es = (h.e6c, h.e6s) if v6 else (h.e4c, h.e4s)
    if rng.random() < 0.85:  # download
        hc.eth_d, hc.eth_a, hc.src_d, hc.dst_d, hc.sp_d, hc.dp_d = es, ec, srv, cip, sport, cport
        hc.ttl_d, hc.ttl_a, hc.win_d, hc.win_a = ttl_s, 64, swin, cwin
    else:
        hc.eth_d, hc.eth_a, hc.src_d, hc.dst_d, hc.sp_d, hc.dp_d = ec, es, cip, srv, cport, sport
        hc.ttl_d, hc.ttl_a, hc.win_d, hc.win_a = 64, ttl_s, cwin, swin
    hc.seq_d, hc.seq_a = rng.getrandbits(32), rng.getrandbits(32)
    return hc


def gen_class_mix(g, w, args):
    rng = g.rng
    heavy = args.mix == "heavy"
    payloads = payload_set(rng, DATA_SIZES)
    pays = [payloads[s] for s in DATA_SIZES]
    if heavy:
        conns = [new_hc(g, rng) for _ in range(args.connections)]
        cum = list(itertools.accumulate(rng.paretovariate(args.pareto_alpha) for _ in conns))
        total_w = cum[-1]
        ncon = len(conns)
    hosts = g.gen_hosts
    nhosts = len(hosts)
    servers = [(s, g.ssum[s]) for s in g.gen4]
    servers6 = [(s, g.ssum[s]) for s in g.gen6]
    pools = {"dns": [], "tls": [], "quic": [], "http": []}
    target = {"dns": 16, "tls": 8, "quic": 4, "http": 4}
    out = w.out
    app = out.append
    n_bulk = n_ack = 0
    vlan_pkts = v6_pkts = 0
    total_bytes = 0
    rand = rng.random
    grb = rng.getrandbits
    rrange = rng.randrange
    choice = rng.choice
    recpack = REC.pack
    fast = g.fast_tcp
    bis = bisect.bisect_left
    N = args.packets
    first = run_prologue(g, w, N) + 1
    tail_frame = tail_start(N)
    t = w.t
    for frame in range(first, N + 1):
        t += 1 + grb(5)
        r = rand()
        if r < 0.88:
            tsv = (t // 1000) & MASK32
            if r < 0.80:
                q = rand()
                si = 0 if q < DATA_CUM[0] else (1 if q < DATA_CUM[1] else 2)
                plen = DATA_SIZES[si]
                k = grb(6)
                psum = pays[si][1][k]
            else:
                plen = psum = 0
            if heavy:
                hc = conns[min(bis(cum, rand() * total_w), ncon - 1)]
                if plen:
                    hdr = fast(hc.eth_d, hc.src_d, hc.dst_d, hc.asum, hc.sp_d, hc.dp_d, hc.seq_d, hc.seq_a,
                               0x18, hc.win_d, hc.ttl_d, tsv, plen, psum, hc.v6)
                    hc.seq_d = (hc.seq_d + plen) & MASK32
                else:
                    hdr = fast(hc.eth_a, hc.dst_d, hc.src_d, hc.asum, hc.dp_d, hc.sp_d, hc.seq_a, hc.seq_d,
                               0x10, hc.win_a, hc.ttl_a, tsv, 0, 0, hc.v6)
                vlan_pkts += hc.vl
                v6_pkts += hc.v6
            else:
                h = hosts[rrange(nhosts)]
                v6 = h.ip6 is not None and rand() < 0.4
                if v6:
                    srv, ssum = servers6[rrange(len(servers6))]
                    cip, asum = h.ip6, h.s6 + ssum
                    v6_pkts += 1
                else:
                    srv, ssum = servers[rrange(len(servers))]
                    cip, asum = h.ip4, h.s4 + ssum
                if h.vlan is not None:
                    vlan_pkts += 1
                sport = choice(SERVER_PORTS)
                cport = 1024 + rrange(64511)
                if plen:  # server -> client data of a connection never seen before
                    hdr = fast(h.e6s if v6 else h.e4s, srv, cip, asum, sport, cport, grb(32), grb(32),
                               0x18, choice(SWINS), choice(TTLS), tsv, plen, psum, v6)
                else:  # client ACK of a connection never seen before
                    hdr = fast(h.e6c if v6 else h.e4c, cip, srv, asum, cport, sport, grb(32), grb(32),
                               0x10, choice(CWINS), 64, tsv, 0, 0, v6)
            if plen:
                L = len(hdr) + plen
                app(recpack(t // 1000000, t % 1000000, L, L))
                app(hdr)
                app(pays[si][0][k])
                n_bulk += 1
            else:
                L = len(hdr)
                app(recpack(t // 1000000, t % 1000000, L, L))
                app(hdr)
                n_ack += 1
            total_bytes += L
            if len(out) > 12000:
                w.flush()
            continue
        if r < 0.94:
            cls = "dns"
        elif r < 0.97:
            cls = "tls"
        elif r < 0.985:
            cls = "quic"
        else:
            cls = "http"
        if frame >= tail_frame:
            g.tail = True
        pool = pools[cls]
        while len(pool) < target[cls]:
            pool.append([g.lean_session(cls), 0])
        i = rrange(len(pool))
        s_ = pool[i]
        fr, kind, tr = s_[0][s_[1]]
        s_[1] += 1
        if s_[1] >= len(s_[0]):
            pool[i] = pool[-1]
            pool.pop()
        w.t = t
        w.emit(frame, fr, kind, tr)
    w.t = t
    w.total_bytes += total_bytes
    w.vlan_pkts += vlan_pkts
    w.v6_pkts += v6_pkts
    return {"bulk_data": n_bulk, "bulk_ack": n_ack}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mix", choices=MIXES, default="span")
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--hosts", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="span.pcap")
    ap.add_argument("--truth", default=None)
    ap.add_argument("--bulk-flows", type=int, default=64, help="span: concurrent long-lived bulk flows")
    ap.add_argument("--connections", type=int, default=50000, help="heavy: long-lived connections")
    ap.add_argument("--pareto-alpha", type=float, default=1.2, help="heavy: Pareto shape of connection weights")
    args = ap.parse_args()
    truth_path = args.truth or os.path.splitext(args.out)[0] + ".truth.tsv"
    t0 = time.time()
    g = Gen(args)
    w = Writer(g, args.out)
    if args.mix == "span":
        extra = gen_span_mix(g, w, args)
    else:
        extra = gen_class_mix(g, w, args)
    elapsed = time.time() - t0
    fsize = w.close(args, truth_path, elapsed, extra)
    sys.stderr.write("wrote %s (%s mix, %d packets, %d bytes) and %s (%d lines, %d devices, %d address-only, "
                     "%d resolvers) in %.1f s\n"
                     % (args.out, args.mix, args.packets, fsize, truth_path, len(w.truth_lines), len(w.devices),
                        len([a for a in w.address if a not in w.devices]), len(w.resolvers), elapsed))


if __name__ == "__main__":
    main()
