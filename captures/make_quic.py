#!/usr/bin/python3
"""Generate captures/quic.pcap and captures/quic.expected.tsv.

QUIC client Initial packets, protected as real clients do (RFC 9001 section 5:
Initial keys from the client's Destination Connection ID, AES-128-GCM payload
protection, AES-ECB header protection). Each carries a TLS 1.3 ClientHello in
CRYPTO frames. Every datagram is padded to 1200 bytes.

  frame 1    192.0.2.10 -> 203.0.113.10  QUIC v1, one Initial, SNI activation-v2.kaspersky.com
  frame 2-3  192.0.2.11 -> 203.0.113.11  QUIC v1, Chrome-style ClientHello (~2.1 KB:
             X25519MLKEM768 0x11ec key share of 1216 bytes + x25519, GREASE, GREASE ECH),
             SNI dnl-04.geo.kaspersky.com, split over TWO Initials (pn 0 and 1).
             Packet 1 has CRYPTO [0, N). Packet 2 has the rest as two CRYPTO
             frames, the higher offset first, then PADDING.
  frame 4    2001:db8:2::c -> 2001:db8:3::c  QUIC v2 (RFC 9369, 0x6b3343cf), SNI
             ksn-url-geo.kaspersky-labs.com
  frame 5    192.0.2.13 -> 203.0.113.13  QUIC v1, decoy SNI kaspersky.com.evil.example

Classic pcap, LINKTYPE_ETHERNET, microsecond timestamps from
2026-03-02T11:00:00Z. Deterministic: fixed connection IDs, ports, IP ids and
packet numbers. "Random" bytes (TLS random, key shares) come from SHA-256 in
counter mode over a fixed seed. AES-GCM with a fixed key and nonce is
deterministic too. The pcap is written with struct; scapy only builds the
IP/UDP headers and checksums.

Run with Debian's python: /usr/bin/python3 captures/make_quic.py
(needs python3-scapy and python3-cryptography). The script first checks its
key derivation against RFC 9001 A.1 and RFC 9369 A.1, and the whole packet
protection against the protected client Initial of RFC 9001 A.2.
"""
import calendar
import hashlib
import hmac
import os
import struct
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from scapy.all import IP, UDP, Ether, IPv6, Raw, conf

conf.verb = 0

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_PCAP = os.path.join(HERE, "quic.pcap")
OUT_TSV = os.path.join(HERE, "quic.expected.tsv")
T0 = calendar.timegm((2026, 3, 2, 11, 0, 0))
CLIENT_MAC, GW_MAC = "02:00:00:00:51:01", "02:00:00:00:51:fe"

QUIC_V1, QUIC_V2 = 0x00000001, 0x6B3343CF
VERSIONS = {
    QUIC_V1: dict(salt=bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),
                  label="quic", initial_type=0b00),
    QUIC_V2: dict(salt=bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"),
                  label="quicv2", initial_type=0b01),
}


# ---------------------------------------------------------------- crypto
def hkdf_extract(salt, ikm):
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand_label(secret, label, length):
    full = b"tls13 " + label.encode()
    info = struct.pack("!HB", length, len(full)) + full + b"\x00"
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(secret, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def client_initial_keys(dcid, version):
    v = VERSIONS[version]
    initial_secret = hkdf_extract(v["salt"], dcid)
    secret = hkdf_expand_label(initial_secret, "client in", 32)
    return (hkdf_expand_label(secret, v["label"] + " key", 16),
            hkdf_expand_label(secret, v["label"] + " iv", 12),
            hkdf_expand_label(secret, v["label"] + " hp", 16))


def aes_ecb(key, block):
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def varint(v):
    if v < 0x40:
        return struct.pack("!B", v)
    if v < 0x4000:
        return struct.pack("!H", 0x4000 | v)
    if v < 0x40000000:
        return struct.pack("!I", 0x80000000 | v)
    return struct.pack("!Q", 0xC000000000000000 | v)


def protect_initial(version, dcid, scid, pn, payload, pn_len=2, token=b""):
    """Return a protected client Initial packet. payload = plaintext frames."""
    key, iv, hp = client_initial_keys(dcid, version)
    first = 0xC0 | (VERSIONS[version]["initial_type"] << 4) | (pn_len - 1)
    length = pn_len + len(payload) + 16
    header = (struct.pack("!BI", first, version) + bytes([len(dcid)]) + dcid +
              bytes([len(scid)]) + scid + varint(len(token)) + token +
              struct.pack("!H", 0x4000 | length))      # 2-byte Length varint
    pn_offset = len(header)
    header += pn.to_bytes(pn_len, "big")
    nonce = bytes(a ^ b for a, b in zip(iv, pn.to_bytes(12, "big")))
    ct = AESGCM(key).encrypt(nonce, payload, header)
    pkt = bytearray(header + ct)
    sample = bytes(pkt[pn_offset + 4:pn_offset + 20])
    mask = aes_ecb(hp, sample)
    pkt[0] ^= mask[0] & 0x0F
    for i in range(pn_len):
        pkt[pn_offset + i] ^= mask[1 + i]
    return bytes(pkt)


def self_test():
    # RFC 9001 Appendix A.1
    key, iv, hp = client_initial_keys(bytes.fromhex("8394c8f03e515708"), QUIC_V1)
    assert key.hex() == "1f369613dd76d5467730efcbe3b1a22d", key.hex()
    assert iv.hex() == "fa044b2f42a3fd3b46fb255c", iv.hex()
    assert hp.hex() == "9f50449e04a0e810283a1e9933adedd2", hp.hex()
    # RFC 9369 Appendix A.1
    key, iv, hp = client_initial_keys(bytes.fromhex("8394c8f03e515708"), QUIC_V2)
    assert key.hex() == "8b1a0bc121284290a29e0971b5cd045d", key.hex()
    assert iv.hex() == "91f73e2351d8fa91660e909f", iv.hex()
    assert hp.hex() == "45b95e15235d6f45a6b19cbcb0294ba9", hp.hex()
    # RFC 9001 Appendix A.2: the protected client Initial (first bytes)
    crypto = bytes.fromhex(
        "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868"
        "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578"
        "616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
        "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba"
        "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400"
        "0d0010000e0403050306030203080408050806002d00020101001c0002400100"
        "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000"
        "75300901100f088394c8f03e51570806048000ffff")
    payload = crypto + bytes(1162 - len(crypto))
    pkt = protect_initial(QUIC_V1, bytes.fromhex("8394c8f03e515708"), b"", 2, payload, pn_len=4)
    want_head = "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11"
    want_tail = "e221af44860018ab0856972e194cd934"
    assert len(pkt) == 1200 and pkt.hex().startswith(want_head), pkt[:32].hex()
    assert pkt.hex().endswith(want_tail), pkt[-16:].hex()


# ---------------------------------------------------------------- TLS
class Det:
    """Deterministic byte stream: SHA-256(seed || counter)."""

    def __init__(self, seed):
        self.seed, self.ctr = seed.encode(), 0

    def bytes(self, n):
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self.seed + struct.pack("!I", self.ctr)).digest()
            self.ctr += 1
        return out[:n]


def ext(etype, body):
    return struct.pack("!HH", etype, len(body)) + body


def vec16(b):
    return struct.pack("!H", len(b)) + b


def vec8(b):
    return struct.pack("!B", len(b)) + b


def tp(pid, value):
    return varint(pid) + varint(len(value)) + value


def transport_params(scid, chrome=False):
    p = (tp(0x01, varint(30000)) + tp(0x03, varint(1472)) + tp(0x04, varint(15728640)) +
         tp(0x05, varint(6291456)) + tp(0x06, varint(6291456)) + tp(0x07, varint(6291456)) +
         tp(0x08, varint(100)) + tp(0x09, varint(103)) + tp(0x0F, scid))
    if chrome:
        p += tp(0x20, varint(65536)) + tp(0x2AB2, b"") + tp(0x4752, bytes(4))
    return p


def client_hello(sni, scid, seed, chrome=False):
    rnd = Det(seed)
    sigalgs = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
    exts = []
    if chrome:
        exts.append(ext(0x0A0A, b""))                                    # GREASE
    exts.append(ext(0x0000, vec16(b"\x00" + vec16(sni.encode()))))    # server_name
    if chrome:
        groups = [0x2A2A, 0x11EC, 0x001D, 0x0017, 0x0018]
    else:
        groups = [0x001D, 0x0017, 0x0018]
    exts.append(ext(0x000A, vec16(b"".join(struct.pack("!H", g) for g in groups))))
    exts.append(ext(0x000D, vec16(b"".join(struct.pack("!H", s) for s in sigalgs))))
    exts.append(ext(0x0010, vec16(vec8(b"h3"))))                        # ALPN
    if chrome:
        exts.append(ext(0x001B, vec8(struct.pack("!H", 2))))            # compress_certificate brotli
        exts.append(ext(0x44CD, vec16(vec8(b"h3"))))                    # application_settings
        # GREASE ECH: outer, cipher suite, config id, enc (32), payload (240)
        exts.append(ext(0xFE0D, b"\x00" + struct.pack("!HH", 0x0001, 0x0001) + b"\x5a" +
                        vec16(rnd.bytes(32)) + vec16(rnd.bytes(240))))
    versions = (b"\x6a\x6a" if chrome else b"") + b"\x03\x04"
    exts.append(ext(0x002B, vec8(versions)))                            # supported_versions
    exts.append(ext(0x002D, vec8(b"\x01")))                             # psk_key_exchange_modes
    shares = b""
    if chrome:
        shares += struct.pack("!H", 0x2A2A) + vec16(b"\x00")
        shares += struct.pack("!H", 0x11EC) + vec16(rnd.bytes(1216))   # X25519MLKEM768
    shares += struct.pack("!H", 0x001D) + vec16(rnd.bytes(32))         # x25519
    exts.append(ext(0x0033, vec16(shares)))                             # key_share
    exts.append(ext(0x0039, transport_params(scid, chrome)))            # quic_transport_parameters
    if chrome:
        exts.append(ext(0x3A3A, b"\x00"))                               # GREASE
    extensions = b"".join(exts)
    if chrome:
        # pad the whole handshake message to 2100 bytes (padding extension, RFC 7685)
        base = 4 + 2 + 32 + 1 + 2 + 8 + 2 + 2 + len(extensions) + 4
        extensions += ext(0x0015, bytes(max(0, 2100 - base)))
    suites = [0x1301, 0x1302, 0x1303]
    if chrome:
        suites = [0x1A1A] + suites
    body = (b"\x03\x03" + rnd.bytes(32) + b"\x00" +                    # no legacy session id
            vec16(b"".join(struct.pack("!H", s) for s in suites)) + b"\x01\x00" +
            vec16(extensions))
    return b"\x01" + len(body).to_bytes(3, "big") + body


def crypto_frame(offset, data):
    return b"\x06" + varint(offset) + varint(len(data)) + data


# ---------------------------------------------------------------- packets
def initial_payload_room(dcid, scid, pn_len=2, dgram=1200):
    """Bytes of plaintext frames that make the datagram exactly `dgram`."""
    header = 1 + 4 + 1 + len(dcid) + 1 + len(scid) + 1 + 2 + pn_len
    return dgram - header - 16


def padded(frames, room):
    assert len(frames) <= room, (len(frames), room)
    return frames + bytes(room - len(frames))                          # PADDING frames


def udp_frame(src, dst, sport, ipid, payload):
    if ":" in src:
        l3 = IPv6(src=src, dst=dst, hlim=64, fl=0)
    else:
        l3 = IP(src=src, dst=dst, id=ipid, flags="DF", ttl=64)
    return bytes(Ether(src=CLIENT_MAC, dst=GW_MAC) / l3 / UDP(sport=sport, dport=443) / Raw(payload))


def main():
    self_test()
    frames = []   # (bytes)
    expected = []  # (frame, src, name)

    # (a) v1, one Initial
    dcid, scid = bytes.fromhex("6b77000000000a01"), bytes.fromhex("c1a0000a")
    ch = client_hello("activation-v2.kaspersky.com", scid, "kwquic-a")
    room = initial_payload_room(dcid, scid)
    pkt = protect_initial(QUIC_V1, dcid, scid, 0, padded(crypto_frame(0, ch), room))
    frames.append(udp_frame("192.0.2.10", "203.0.113.10", 50010, 0x5101, pkt))
    expected.append((len(frames), "192.0.2.10", "activation-v2.kaspersky.com"))

    # (b) v1, Chrome-style hello over two Initials, out-of-order CRYPTO frames in the second
    dcid, scid = bytes.fromhex("6b77000000000b02"), bytes.fromhex("c1a0000b")
    ch = client_hello("dnl-04.geo.kaspersky.com", scid, "kwquic-b", chrome=True)
    assert 2000 <= len(ch) <= 2200, len(ch)
    room = initial_payload_room(dcid, scid)
    n = room - 4        # CRYPTO type (1) + offset 0 (1) + 2-byte length: fills packet 1
    first = crypto_frame(0, ch[:n])
    assert len(first) <= room
    rest = ch[n:]
    mid = n + len(rest) // 2
    second = crypto_frame(mid, ch[mid:]) + crypto_frame(n, ch[n:mid])  # higher offset first
    p1 = protect_initial(QUIC_V1, dcid, scid, 0, padded(first, room))
    p2 = protect_initial(QUIC_V1, dcid, scid, 1, padded(second, room))
    frames.append(udp_frame("192.0.2.11", "203.0.113.11", 50011, 0x5102, p1))
    frames.append(udp_frame("192.0.2.11", "203.0.113.11", 50011, 0x5103, p2))
    expected.append((len(frames), "192.0.2.11", "dnl-04.geo.kaspersky.com"))
    split_info = (len(ch), n, mid)

    # (c) QUIC v2 over IPv6
    dcid, scid = bytes.fromhex("6b77000000000c03"), bytes.fromhex("c1a0000c")
    ch = client_hello("ksn-url-geo.kaspersky-labs.com", scid, "kwquic-c")
    room = initial_payload_room(dcid, scid)
    pkt = protect_initial(QUIC_V2, dcid, scid, 0, padded(crypto_frame(0, ch), room))
    frames.append(udp_frame("2001:db8:2::c", "2001:db8:3::c", 50012, 0, pkt))
    expected.append((len(frames), "2001:db8:2::c", "ksn-url-geo.kaspersky-labs.com"))

    # (d) decoy
    dcid, scid = bytes.fromhex("6b77000000000d04"), bytes.fromhex("c1a0000d")
    ch = client_hello("kaspersky.com.evil.example", scid, "kwquic-d")
    room = initial_payload_room(dcid, scid)
    pkt = protect_initial(QUIC_V1, dcid, scid, 0, padded(crypto_frame(0, ch), room))
    frames.append(udp_frame("192.0.2.13", "203.0.113.13", 50013, 0x5104, pkt))

    with open(OUT_PCAP, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for i, f in enumerate(frames):
            usec = i * 100000
            fh.write(struct.pack("<IIII", T0 + usec // 1000000, usec % 1000000, len(f), len(f)))
            fh.write(f)

    with open(OUT_TSV, "w") as fh:
        fh.write("# kaswatch quic.pcap expected Kaspersky matches (generated by make_quic.py)\n")
        fh.write("# client Initials only; for the two-packet ClientHello (frames 2-3) the frame is the\n")
        fh.write("# packet that completes the CRYPTO stream (3). ClientHello %d bytes: packet 1 CRYPTO\n" % split_info[0])
        fh.write("# [0,%d), packet 2 CRYPTO [%d,%d) then [%d,%d).\n" % (split_info[1], split_info[2], split_info[0], split_info[1], split_info[2]))
        fh.write("# frame 4 is QUIC v2 (0x6b3343cf) over IPv6.\n")
        fh.write("# decoy (must NOT match): frame 5, 192.0.2.13, kaspersky.com.evil.example\n")
        fh.write("# columns: frame\tsrc_ip\tprotocol\tname\n")
        for frame, src, name in expected:
            fh.write("%d\t%s\tquic\t%s\n" % (frame, src, name))
    print("wrote %s (%d frames) and %s" % (OUT_PCAP, len(frames), OUT_TSV))


if __name__ == "__main__":
    sys.exit(main())
