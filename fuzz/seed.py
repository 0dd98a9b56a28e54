#!/usr/bin/env python3
"""Write raw seed corpora for the kaswatch fuzz targets (stdlib only).

    fuzz/seed.py OUTDIR CAPTURE... (files or directories, searched for *.pcap*)

Reads pcap/pcapng (optionally gzipped) captures and writes, per target,
OUTDIR/<target>/<sha1>:
  packet      frames of one flow (or the first frames of a file) as records
              [tag][len u16 BE][frame] (tag = link type index | 1 ms step)
  dns         DNS messages (UDP 53/5353/5355 payloads, TCP 53 framed messages)
  tls         client->server TCP stream starts that open with a TLS record
  http        first payload of TCP directions that start like HTTP/1.x
  quic        [0] + client->server UDP datagrams of QUIC flows as raw records,
              and sealed-Initial seeds made from TLS ClientHellos (CRYPTO frames)
  pcap_file   small capture files as they are, and prefixes of larger ones
  signatures  the shipped signatures/*.toml and a few edge cases
  inventory   inventory CSV samples
The result is minimised with `cargo fuzz cmin` by tools/fuzz.sh seed.
"""
import gzip
import hashlib
import os
import struct
import sys

# Order must match LINKTYPES in fuzz_targets/packet.rs.
LINKTYPES = [1, 101, 113, 276, 0, 108, 228, 229, 9, 50, 104, 12, 14, 105, 127, 239, 258, 147]
STEP_1MS = 1 << 5
DNS_PORTS = {53, 5353, 5355}
QUIC_VERSIONS = {0x00000001, 0x6B3343CF, 0xFACEB002, 0xFACEB00E, 0x54303530, 0x54303531}
QUIC_VERSIONS |= set(range(0xFF000017, 0xFF000021))
# Public-corpus sources without an open-source licence (see its MANIFEST.md):
# nothing derived from them is committed.
EXCLUDE = ("/ja4/", "/chrissanders-packets/")
HTTP_STARTS = (b"GET ", b"POST ", b"HEAD ", b"PUT ", b"CONNECT ", b"OPTIONS ", b"DELETE ", b"PATCH ", b"HTTP/1.")


def read_capture(path):
    """Yield (linktype, frame bytes); stops quietly at damage."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            return
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        lt = struct.unpack(e + "I", data[20:24])[0] & 0x0FFFFFFF
        off = 24
        while off + 16 <= len(data):
            _, _, incl, _ = struct.unpack(e + "IIII", data[off:off + 16])
            off += 16
            if incl > len(data) - off:
                return
            yield lt, data[off:off + incl]
            off += incl
    elif magic == b"\x0a\x0d\x0d\x0a":
        e = "<"
        off = 0
        ifaces = []
        while off + 12 <= len(data):
            btype = struct.unpack(e + "I", data[off:off + 4])[0]
            if btype == 0x0A0D0D0A:
                bom = data[off + 8:off + 12]
                e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
                ifaces = []
            blen = struct.unpack(e + "I", data[off + 4:off + 8])[0]
            if blen < 12 or off + blen > len(data):
                return
            body = data[off + 8:off + blen - 4]
            if btype == 1 and len(body) >= 2:
                ifaces.append(struct.unpack(e + "H", body[:2])[0])
            elif btype == 6 and len(body) >= 20:
                ifid, _, _, cap, _ = struct.unpack(e + "IIIII", body[:20])
                if ifid < len(ifaces):
                    yield ifaces[ifid], body[20:20 + cap]
            elif btype == 3 and len(body) >= 4 and ifaces:
                yield ifaces[0], body[4:]
            off += blen


def ip_layer(lt, fr):
    """(ip bytes) for plain link types; None otherwise."""
    if lt == 1:
        off, et = 12, None
        while off + 2 <= len(fr):
            et = struct.unpack(">H", fr[off:off + 2])[0]
            if et in (0x8100, 0x88A8, 0x9100):
                off += 4
                continue
            break
        return fr[off + 2:] if et in (0x0800, 0x86DD) else None
    if lt in (101, 12, 14, 228, 229):
        return fr
    if lt in (0, 108):
        return fr[4:]
    if lt == 113:
        return fr[16:] if fr[14:16] in (b"\x08\x00", b"\x86\xdd") else None
    if lt == 276:
        return fr[20:] if fr[0:2] in (b"\x08\x00", b"\x86\xdd") else None
    return None


def transport(ip):
    """(proto, src, dst, sport, dport, seq, flags, payload) or None."""
    if len(ip) < 20:
        return None
    v = ip[0] >> 4
    if v == 4:
        ihl = (ip[0] & 15) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        if struct.unpack(">H", ip[6:8])[0] & 0x3FFF:
            return None  # fragment
        proto, src, dst, body = ip[9], ip[12:16], ip[16:20], ip[ihl:max(total, ihl)]
    elif v == 6 and len(ip) >= 40:
        proto, src, dst, body = ip[6], ip[8:24], ip[24:40], ip[40:40 + struct.unpack(">H", ip[4:6])[0]]
    else:
        return None
    if proto == 17 and len(body) >= 8:
        sp, dp = struct.unpack(">HH", body[:4])
        return 17, src, dst, sp, dp, 0, 0, body[8:]
    if proto == 6 and len(body) >= 20:
        sp, dp, seq = struct.unpack(">HHI", body[:8])
        doff = (body[12] >> 4) * 4
        return 6, src, dst, sp, dp, seq, body[13], body[doff:]
    return None


class Out:
    def __init__(self, root):
        self.root = root
        self.count = {}

    def put(self, target, data, limit=None):
        if not data or (limit and len(data) > limit):
            return
        d = os.path.join(self.root, target)
        os.makedirs(d, exist_ok=True)
        name = hashlib.sha1(data).hexdigest()
        p = os.path.join(d, name)
        if not os.path.exists(p):
            with open(p, "wb") as f:
                f.write(data)
            self.count[target] = self.count.get(target, 0) + 1


def rec(tag, b):
    b = b[:0xFFFF]
    return bytes([tag]) + struct.pack(">H", len(b)) + b


def varint(v):
    if v < 64:
        return bytes([v])
    if v < 16384:
        return struct.pack(">H", v | 0x4000)
    return struct.pack(">I", v | 0x80000000)


def crypto_frame(off, data, gquic=False):
    return bytes([0x08 if gquic else 0x06]) + varint(off) + varint(len(data)) + data


def capture_files(args):
    for a in args:
        if os.path.isdir(a):
            for root, _, files in os.walk(a):
                for n in sorted(files):
                    p = os.path.join(root, n)
                    if ".pcap" in n and not any(x in p + "/" for x in EXCLUDE):
                        yield p
        elif os.path.isfile(a):
            yield a


def main():
    out = Out(sys.argv[1])
    hellos = []
    for path in capture_files(sys.argv[2:]):
        raw = open(path, "rb").read()
        # pcap_file: small files whole, larger ones as a prefix.
        out.put("pcap_file", raw[:16384])
        if raw[:2] != b"\x1f\x8b" and len(raw) <= 4096:
            out.put("pcap_file", gzip.compress(raw, mtime=0))
        frames = list(read_capture(path))
        head = [rec(LINKTYPES.index(lt) | STEP_1MS, fr) for lt, fr in frames[:24] if lt in LINKTYPES]
        out.put("packet", b"".join(head), 32768)
        flows = {}
        streams = {}
        for lt, fr in frames:
            if lt not in LINKTYPES:
                continue
            ip = ip_layer(lt, fr)
            t = ip and transport(ip)
            if not t:
                continue
            proto, src, dst, sp, dp, seq, flags, pl = t
            key = (proto,) + tuple(sorted([(src, sp), (dst, dp)]))
            flows.setdefault(key, []).append(rec(LINKTYPES.index(lt) | STEP_1MS, fr))
            if proto == 17:
                if sp in DNS_PORTS or dp in DNS_PORTS:
                    out.put("dns", pl, 4096)
                elif len(pl) >= 7 and pl[0] & 0xC0 == 0xC0 and struct.unpack(">I", pl[1:5])[0] in QUIC_VERSIONS:
                    streams.setdefault(("q", src, dst, sp, dp), []).append(pl)
            elif pl:
                if sp == 53 or dp == 53:
                    off = 0
                    while off + 2 <= len(pl):
                        n = struct.unpack(">H", pl[off:off + 2])[0]
                        if n == 0 or off + 2 + n > len(pl):
                            break
                        out.put("dns", pl[off + 2:off + 2 + n], 4096)
                        off += 2 + n
                d = streams.setdefault(("t", src, dst, sp, dp), {})
                if seq not in d and len(d) < 16:
                    d[seq] = pl
        for key, recs in flows.items():
            out.put("packet", b"".join(recs[:16]), 32768)
        for key, v in streams.items():
            if key[0] == "q":
                out.put("quic", b"\x00" + b"".join(rec(0, d) for d in v[:4]), 16384)
                continue
            segs = [v[s] for s in sorted(v)]
            stream = b"".join(segs)[:20000]
            if stream[:1] == b"\x16" and stream[1:2] == b"\x03":
                out.put("tls", stream)
                n = struct.unpack(">H", stream[3:5])[0]
                hs = stream[5:5 + n]
                if hs[:1] == b"\x01" and len(hs) < 3000:
                    hellos.append(hs)
            if stream.startswith(HTTP_STARTS):
                out.put("http", segs[0][:8192])
    # Sealed QUIC seeds: ClientHellos in one or two CRYPTO frames, several versions.
    for i, hs in enumerate(hellos[:40]):
        v = i % 4
        gq = v == 3
        if i % 2:
            mid = len(hs) // 2
            seed = bytes([v]) + rec(1, crypto_frame(mid, hs[mid:], gq)) + rec(3 | (1 << 3), crypto_frame(0, hs[:mid], gq) + b"\x00" * 8)
        else:
            seed = bytes([v]) + rec(1, (b"\x01" if not gq else b"\x07") + crypto_frame(0, hs, gq) + b"\x00" * 16)
        out.put("quic", seed)
    here = os.path.dirname(os.path.abspath(__file__))
    sigdir = os.path.join(here, "..", "signatures")
    for n in sorted(os.listdir(sigdir)):
        if n.endswith(".toml"):
            out.put("signatures", open(os.path.join(sigdir, n), "rb").read())
    out.put("signatures", b'[meta]\nversion = "1"\ndate = "2026-01-01"\n\n[[signature]]\npattern = "*.Example.COM."\nmatch = "suffix"\ncategory = "update"\nsource = "x"\n')
    out.put("signatures", b'[meta]\nversion = "1"\ndate = ""\n[[signature]]\npattern = "a.b"\nmatch = "exact"\ncategory = "ksn"\nsource = "s"\ncomment = "c"\n[[signature]]\npattern = "a.b"\nmatch = "suffix"\ncategory = "other"\nsource = "s"\n')
    for inv in [
        b'address,name\n192.168.10.21,"Reception PC"\n2001:db8:10::/64\n',
        b"address,name\n192.168.10.21,pc21\n10.99.0.0/24,lab\n2001:db8:10::/64\n00:1b:21:aa:00:26,pc26\n",
        b"# comment\n\n10.0.0.0/0,all\n::/0\n00-1B-21-AA-00-26\n1.2.3.4\nbogus,x\n",
        b"ip\n10.0.0.1/33\n",
    ]:
        out.put("inventory", inv)
    for t in sorted(out.count):
        print(f"{t}: {out.count[t]} seeds", file=sys.stderr)


if __name__ == "__main__":
    main()
