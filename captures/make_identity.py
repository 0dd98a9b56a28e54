#!/usr/bin/python3
"""Writes captures/identity.pcap and captures/ksc.pcap (issue 14), deterministic.

identity.pcap: who the device is.
  L  laptop, MAC 00:1b:21:57:00:01: DHCP DISCOVER with host name LAPTOP-57, client
     FQDN laptop-57.corp.example and vendor class "MSFT 5.0"; the server's ACK leases
     10.40.0.57; a Kaspersky lookup from there; a later lease moves it to 10.40.0.99
     and it looks up another Kaspersky name: one device, two addresses.
  P  10.40.0.60, MAC 3c:22:fb:00:00:02: announces itself over mDNS as macbook-p.local,
     then looks up activation-v2.kaspersky.com (no lease seen: keyed by address).
  S  MAC 00:1b:21:57:00:03: a lease for 10.40.0.70 and a SLAAC EUI-64 IPv6 address,
     a Kaspersky lookup from each: one device with both addresses.
  N  10.40.0.80: registers the NetBIOS name FILESRV-9, then an HTTP request with a
     Kaspersky Host.
  R  two hosts behind a router (192.0.2.10, 192.0.2.11), both seen with the router's
     MAC 00:00:5e:00:01:01: never merged.
ksc.pcap: Kaspersky Security Center ports.
  A  10.50.0.21 completes a TCP handshake with the KSC server 10.50.0.5:13000 and
     sends data: a management callback (evidence port), managed by KSC 10.50.0.5.
  B  10.50.0.22 only sends SYNs to 13000 and 14000 (answered with resets) and a UDP
     datagram to 15000 (no answer): nobody is reported.
  C  10.50.0.23 answers the server's UDP datagram on its Network Agent port 15000:
     a management callback of C (the agent side).
"""
from scapy.all import Ether, IP, IPv6, UDP, TCP, DNS, DNSQR, DNSRR, BOOTP, DHCP, Raw, wrpcap
import os

HERE = os.path.dirname(os.path.abspath(__file__))
T0 = 1772460000  # 2026-03-02T14:00:00Z
SRV_MAC, SRV = "00:1b:21:57:00:fe", "10.40.0.1"
ROUTER = "00:00:5e:00:01:01"
pkts = []


def add(p, t):
    p.time = T0 + t
    pkts.append(p)


def mac_bytes(m):
    return bytes(int(x, 16) for x in m.split(":"))


def dhcp(op, mac, yiaddr, opts, t, src="0.0.0.0", dst="255.255.255.255"):
    sport, dport = (68, 67) if op == 1 else (67, 68)
    emac = mac if op == 1 else SRV_MAC
    add(Ether(src=emac, dst="ff:ff:ff:ff:ff:ff") / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) /
        BOOTP(op=op, chaddr=mac_bytes(mac) + b"\0" * 10, yiaddr=yiaddr, xid=0x5700) / DHCP(options=opts + ["end"]), t)


def query(mac, ip, name, t, qid, dst=SRV):
    add(Ether(src=mac, dst=SRV_MAC) / IP(src=ip, dst=dst) / UDP(sport=40000 + qid, dport=53) /
        DNS(id=qid, rd=1, qd=DNSQR(qname=name)), t)


L = "00:1b:21:57:00:01"
fqdn = b"\x05\x00\x00" + b"\x09laptop-57\x04corp\x07example\x00"
dhcp(1, L, "0.0.0.0", [("message-type", "discover"), ("hostname", b"LAPTOP-57"),
                        (81, fqdn), ("vendor_class_id", b"MSFT 5.0")], 0.0)
dhcp(2, L, "10.40.0.57", [("message-type", "ack"), ("lease_time", 3600), ("server_id", SRV)], 0.01, src=SRV)
query(L, "10.40.0.57", "dnl-01.geo.kaspersky.com", 1.0, 1)
dhcp(1, L, "0.0.0.0", [("message-type", "request"), ("hostname", b"LAPTOP-57")], 60.0)
dhcp(2, L, "10.40.0.99", [("message-type", "ack"), ("lease_time", 3600), ("server_id", SRV)], 60.01, src=SRV)
query(L, "10.40.0.99", "dc1.ksn.kaspersky-labs.com", 61.0, 2)

P = "3c:22:fb:00:00:02"
add(Ether(src=P, dst="01:00:5e:00:00:fb") / IP(src="10.40.0.60", dst="224.0.0.251") / UDP(sport=5353, dport=5353) /
    DNS(id=0, qr=1, aa=1, an=DNSRR(rrname="macbook-p.local", type="A", ttl=120, rdata="10.40.0.60")), 2.0)
query(P, "10.40.0.60", "activation-v2.kaspersky.com", 3.0, 3)

S = "00:1b:21:57:00:03"
dhcp(1, S, "0.0.0.0", [("message-type", "request"), ("hostname", b"scanner-3")], 4.0)
dhcp(2, S, "10.40.0.70", [("message-type", "ack"), ("lease_time", 3600), ("server_id", SRV)], 4.01, src=SRV)
query(S, "10.40.0.70", "s07.upd.kaspersky.com", 5.0, 4)
add(Ether(src=S, dst=SRV_MAC) / IPv6(src="2001:db8:40::21b:21ff:fe57:3", dst="2001:db8:40::1") /
    UDP(sport=40005, dport=53) / DNS(id=5, rd=1, qd=DNSQR(qname="s07.upd.kaspersky.com", qtype="AAAA")), 6.0)

N = "00:1b:21:57:00:04"
enc = b"".join(bytes([0x41 + (c >> 4), 0x41 + (c & 15)]) for c in b"FILESRV-9      \x00")
nbns = (b"\x80\x01\x29\x10\x00\x01\x00\x00\x00\x00\x00\x01" + b"\x20" + enc + b"\x00\x00\x20\x00\x01" +
        b"\xc0\x0c\x00\x20\x00\x01\x00\x00\x0e\x10\x00\x06\x00\x00" + bytes([10, 40, 0, 80]))
add(Ether(src=N, dst="ff:ff:ff:ff:ff:ff") / IP(src="10.40.0.80", dst="10.40.0.255") / UDP(sport=137, dport=137) /
    Raw(nbns), 7.0)
syn = Ether(src=N, dst=SRV_MAC) / IP(src="10.40.0.80", dst="198.51.100.30")
add(syn / TCP(sport=50080, dport=80, flags="S", seq=100), 8.0)
add(Ether(src=SRV_MAC, dst=N) / IP(src="198.51.100.30", dst="10.40.0.80") /
    TCP(sport=80, dport=50080, flags="SA", seq=900, ack=101), 8.01)
add(syn / TCP(sport=50080, dport=80, flags="PA", seq=101, ack=901) /
    Raw(b"GET /index.html HTTP/1.1\r\nHost: dnl-03.geo.kaspersky.com\r\n\r\n"), 8.02)

for i, ip in enumerate(["192.0.2.10", "192.0.2.11"]):
    query(ROUTER, ip, "dnl-04.geo.kaspersky.com", 9.0 + i, 6 + i)

wrpcap(os.path.join(HERE, "identity.pcap"), pkts)

# ---------------------------------------------------------------- ksc.pcap
pkts = []
K, KM = "10.50.0.5", "00:1b:21:50:00:05"


def tcp(smac, src, dst, sport, dport, flags, seq, ack, t, data=b""):
    p = Ether(src=smac, dst="02:00:00:00:00:01") / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack)
    add(p / Raw(data) if data else p, t)


A, AM = "10.50.0.21", "00:1b:21:50:00:21"
tcp(AM, A, K, 51000, 13000, "S", 1000, 0, 0.0)
tcp(KM, K, A, 13000, 51000, "SA", 5000, 1001, 0.01)
tcp(AM, A, K, 51000, 13000, "A", 1001, 5001, 0.02)
tcp(AM, A, K, 51000, 13000, "PA", 1001, 5001, 0.03, b"\x16\x03\x01\x00\x05hello")
B, BM = "10.50.0.22", "00:1b:21:50:00:22"
for i, port in enumerate([13000, 14000]):
    tcp(BM, B, K, 52000 + i, port, "S", 2000, 0, 1.0 + i)
    tcp(KM, K, B, port, 52000 + i, "RA", 0, 2001, 1.01 + i)
add(Ether(src=BM, dst=KM) / IP(src=B, dst=K) / UDP(sport=52010, dport=15000) / Raw(b"\x00" * 16), 3.0)
C, CM = "10.50.0.23", "00:1b:21:50:00:23"
add(Ether(src=KM, dst=CM) / IP(src=K, dst=C) / UDP(sport=53000, dport=15000) / Raw(b"\x01" * 16), 4.0)
add(Ether(src=CM, dst=KM) / IP(src=C, dst=K) / UDP(sport=15000, dport=53000) / Raw(b"\x02" * 16), 4.01)
wrpcap(os.path.join(HERE, "ksc.pcap"), pkts)

# ---------------------------------------------------------------- content.pcap
# Content signatures a site adds ([[address]], [[user_agent]]; tests/identity.rs
# writes the site file): a completed connection that names nothing to a listed
# address (a callback), a refused SYN to it (none), an HTTP request whose
# User-Agent a site lists, and lookalikes (a /blog/updates/ path, a body that
# opens with KLD1, not KLD2) that must not match.
pkts = []
CM, SM = "02:60:00:00:00:01", "02:60:00:00:00:fe"


def seg(src, dst, sport, dport, flags, seq, ack, t, data=b"", mac=CM):
    p = Ether(src=mac, dst=SM) / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack)
    add(p / Raw(data) if data else p, t)


X = "203.0.113.99"
seg("10.60.0.5", X, 55000, 443, "S", 100, 0, 0.0)
seg(X, "10.60.0.5", 443, 55000, "SA", 900, 101, 0.01, mac=SM)
seg("10.60.0.5", X, 55000, 443, "A", 101, 901, 0.02)
seg("10.60.0.5", X, 55000, 443, "PA", 101, 901, 0.03, b"\x00\x01\x02binary-protocol")
seg("10.60.0.6", X, 55001, 443, "S", 200, 0, 1.0)
seg(X, "10.60.0.6", 443, 55001, "RA", 0, 201, 1.01, mac=SM)
W = "198.51.100.40"
seg("10.60.0.7", W, 55002, 80, "S", 300, 0, 2.0)
seg(W, "10.60.0.7", 80, 55002, "SA", 700, 301, 2.01, mac=SM)
seg("10.60.0.7", W, 55002, 80, "PA", 301, 701, 2.02,
    b"GET /download/file.bin HTTP/1.1\r\nHost: downloads.example.net\r\nUser-Agent: KLUpdater/14.0\r\n\r\n")
seg("10.60.0.8", W, 55003, 80, "S", 400, 0, 3.0)
seg(W, "10.60.0.8", 80, 55003, "SA", 800, 401, 3.01, mac=SM)
seg("10.60.0.8", W, 55003, 80, "PA", 401, 801, 3.02,
    b"GET /blog/updates/base.html HTTP/1.1\r\nHost: 198.51.100.40\r\nUser-Agent: Mozilla/5.0\r\n\r\n")
seg(W, "10.60.0.8", 80, 55003, "PA", 801, 401 + 82, 3.03,
    b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nKLD1\x00\x00\x00\x00", mac=SM)
wrpcap(os.path.join(HERE, "content.pcap"), pkts)
