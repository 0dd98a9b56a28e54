#!/usr/bin/python3
"""Derive the expected kaswatch callbacks of a capture from tshark's decoding.

    precision_expected.py [--check-scenario] CAPTURE

writes, next to CAPTURE (precision.pcap -> precision.*.tsv):

  <stem>.expected.tsv  one row per expected callback event:
        frame src_ip evidence protocol transport dst_ip dst_port name role
  <stem>.hosts.tsv     expected report membership: section host
                       (section = hosts | resolvers | other)

tshark is the oracle; the rules are issue 13's precision semantics:

* name evidence: a Kaspersky name (kaspersky.com, kaspersky-labs.com or a
  subdomain) the host itself put on the wire: a DNS query (UDP or TCP, to
  port 53; every query message is one event), a TLS ClientHello SNI (tls over
  TCP, quic over UDP; one per connection), an HTTP request's Host header or
  CONNECT / absolute-form target (one per request). frame = the frame that
  completes the message (TCP reassembly on). DNS responses never count.
* address evidence: a connection (TCP: the client's first SYN; UDP other than
  port 53: the first datagram of a flow) to an address that a DNS response
  seen earlier in the capture (from anyone to anyone) answered for a Kaspersky
  name, when the connection itself names nothing (no SNI, no Host / CONNECT
  target that is a name; an IP-literal Host names nothing) and the address is
  not shared when the connection is decided (its first client payload, or its
  last frame when it carries none). frame = the SYN (first datagram);
  protocol ip; name = the Kaspersky name of the latest such answer.
* shared address: some DNS response answered it for a non-Kaspersky name, or
  some connection to it named a non-Kaspersky name (from that frame on).
* resolver: a host that sends DNS responses (source port 53) to another host.
  Its own events get role "resolver", other hosts' role "device".
* report: resolvers with events -> section resolvers; other hosts with name or
  content evidence -> hosts (devices under the default --evidence
  name,content); hosts with only address evidence -> other. Hosts without any
  event (servers, the upstream authoritative server) are not listed.

Not modelled (the precision capture has none of it): content evidence (update
paths, KLZF/KLD2 magic), DNS answer TTL expiry, the bounded wait for
connections that never send a payload, tunnels beyond taking the innermost
address.
"""
import ipaddress
import os
import subprocess
import sys

TSHARK = ["tshark", "-n", "-o", "tcp.desegment_tcp_streams:TRUE",
          "-o", "tls.desegment_ssl_records:TRUE", "-o", "http.desegment_headers:TRUE",
          "-d", "tcp.port==8443,tls"]


def fields(pcap, dfilter, names):
    cmd = TSHARK + ["-r", pcap, "-Y", dfilter, "-T", "fields", "-E", "separator=\t",
                    "-E", "occurrence=a", "-E", "aggregator=,"]
    for n in names:
        cmd += ["-e", n]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split("\t")
        parts += [""] * (len(names) - len(parts))
        rows.append(dict(zip(names, parts)))
    return rows


def last(v):
    """Innermost of several values (tunnels), '' when absent."""
    return v.split(",")[-1] if v else ""


def addr(row, key):
    return last(row.get("ip." + key, "")) or last(row.get("ipv6." + key, ""))


def kasp(n):
    return n in ("kaspersky.com", "kaspersky-labs.com") or \
        n.endswith(".kaspersky.com") or n.endswith(".kaspersky-labs.com")


def clean(h):
    """Lowercase host name without scheme, path, userinfo, port, brackets, trailing dot."""
    h = h.strip().lower()
    if "://" in h:
        h = h.split("://", 1)[1]
    h = h.split("/", 1)[0]
    h = h.rsplit("@", 1)[-1]
    if h.startswith("["):
        h = h[1:].split("]", 1)[0]
    elif h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


def is_ip_literal(h):
    try:
        ipaddress.ip_address(h)
        return True
    except ValueError:
        return False


def ipkey(a):
    ip = ipaddress.ip_address(a)
    return (ip.version, int(ip))


def derive(pcap):
    events = []      # (frame, src, evidence, protocol, transport, dst, dport, name)
    resolvers = set()
    answers = {}     # address -> [(frame, kaspersky name)]
    shared_at = {}   # address -> first frame from which it is shared
    named_conn = {}  # ("tcp"|"udp", stream) -> first frame that named it

    def share(a, frame):
        if a and (a not in shared_at or frame < shared_at[a]):
            shared_at[a] = frame

    # DNS on port 53 (UDP and TCP; TCP DNS frames are the completing frames)
    for r in fields(pcap, "dns && (udp.port==53 || tcp.port==53)",
                    ["frame.number", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
                     "udp.srcport", "udp.dstport", "tcp.srcport", "tcp.dstport",
                     "dns.flags.response", "dns.qry.name", "dns.a", "dns.aaaa"]):
        frame = int(r["frame.number"])
        src, dst = addr(r, "src"), addr(r, "dst")
        transport = "udp" if r["udp.srcport"] else "tcp"
        sport = last(r["udp.srcport"] or r["tcp.srcport"])
        dport = last(r["udp.dstport"] or r["tcp.dstport"])
        qnames = [clean(q) for q in r["dns.qry.name"].split(",") if q]
        response = last(r["dns.flags.response"]) in ("1", "True")
        if not response:
            if dport != "53":
                continue
            for q in qnames:
                if kasp(q):
                    events.append((frame, src, "name", "dns", transport, dst, dport, q))
            continue
        if sport != "53":
            continue
        if dst != src:
            resolvers.add(src)
        addrs = [a for a in (r["dns.a"] + "," + r["dns.aaaa"]).split(",") if a]
        for q in qnames[:1]:
            for a in addrs:
                if kasp(q):
                    answers.setdefault(a, []).append((frame, q))
                else:
                    share(a, frame)

    # TLS / QUIC ClientHello SNI: one per connection (a second hello after a
    # HelloRetryRequest is the same connection)
    for r in fields(pcap, "tls.handshake.type==1",
                    ["frame.number", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
                     "tcp.stream", "tcp.dstport", "udp.stream", "udp.dstport",
                     "tls.handshake.extensions_server_name"]):
        frame = int(r["frame.number"])
        src, dst = addr(r, "src"), addr(r, "dst")
        if r["udp.stream"]:
            key, proto, transport, dport = ("udp", last(r["udp.stream"])), "quic", "udp", \
                last(r["udp.dstport"])
        else:
            key, proto, transport, dport = ("tcp", last(r["tcp.stream"])), "tls", "tcp", \
                last(r["tcp.dstport"])
        sni = clean(last(r["tls.handshake.extensions_server_name"]))
        if not sni or is_ip_literal(sni) or key in named_conn:
            continue
        named_conn[key] = frame
        if kasp(sni):
            events.append((frame, src, "name", proto, transport, dst, dport, sni))
        else:
            share(dst, frame)

    # HTTP requests: Host, or the CONNECT / absolute-form target
    for r in fields(pcap, "http.request",
                    ["frame.number", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
                     "tcp.stream", "tcp.dstport", "http.request.method",
                     "http.request.uri", "http.host"]):
        frame = int(r["frame.number"])
        src, dst = addr(r, "src"), addr(r, "dst")
        key, dport = ("tcp", last(r["tcp.stream"])), last(r["tcp.dstport"])
        methods = r["http.request.method"].split(",")
        uris = r["http.request.uri"].split(",")
        hosts = r["http.host"].split(",")
        for i, m in enumerate(methods):
            uri = uris[i] if i < len(uris) else ""
            host = hosts[i] if i < len(hosts) else ""
            if m == "CONNECT":
                name = clean(uri)
            elif "://" in uri:
                name = clean(uri)
            else:
                name = clean(host)
            if not name or is_ip_literal(name):
                continue
            named_conn.setdefault(key, frame)
            if kasp(name):
                events.append((frame, src, "name", "http", "tcp", dst, dport, name))
            else:
                share(dst, frame)

    # connections: TCP by the client's first SYN, UDP (not DNS) by the first datagram
    conns = {}  # key -> dict(start, src, dst, dport, transport, decide)
    for r in fields(pcap, "tcp", ["frame.number", "ip.src", "ip.dst", "ipv6.src",
                                  "ipv6.dst", "tcp.stream", "tcp.srcport", "tcp.dstport",
                                  "tcp.flags.syn", "tcp.flags.ack", "tcp.len"]):
        frame = int(r["frame.number"])
        key = ("tcp", last(r["tcp.stream"]))
        src, dst = addr(r, "src"), addr(r, "dst")
        syn = last(r["tcp.flags.syn"]) in ("1", "True")
        ack = last(r["tcp.flags.ack"]) in ("1", "True")
        c = conns.get(key)
        if c is None:
            if syn and not ack:
                conns[key] = c = dict(start=frame, src=src, dst=dst, transport="tcp",
                                      dport=last(r["tcp.dstport"]), decide=None, end=frame)
            continue
        c["end"] = frame
        if c["decide"] is None and src == c["src"] and int(last(r["tcp.len"]) or 0) > 0:
            c["decide"] = frame
    for r in fields(pcap, "udp && !(udp.port==53)",
                    ["frame.number", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
                     "udp.stream", "udp.dstport"]):
        frame = int(r["frame.number"])
        key = ("udp", last(r["udp.stream"]))
        if key not in conns:
            conns[key] = dict(start=frame, src=addr(r, "src"), dst=addr(r, "dst"),
                              transport="udp", dport=last(r["udp.dstport"]), decide=frame,
                              end=frame)
    for key, c in conns.items():
        if key in named_conn:
            continue  # the connection's own name decides it
        before = [(f, n) for f, n in answers.get(c["dst"], []) if f < c["start"]]
        if not before:
            continue
        decide = c["decide"] or c["end"]
        if shared_at.get(c["dst"], decide + 1) <= decide:
            continue
        events.append((c["start"], c["src"], "address", "ip", c["transport"], c["dst"],
                       c["dport"], before[-1][1]))

    events.sort(key=lambda e: (e[0], e[2]))
    rows = [e + ("resolver" if e[1] in resolvers else "device",) for e in events]
    members = {}
    for e in rows:
        src, evidence, role = e[1], e[2], e[8]
        m = members.setdefault(src, set())
        m.add("resolver" if role == "resolver" else evidence)
    sections = []
    for host in sorted(members, key=ipkey):
        m = members[host]
        if "resolver" in m:
            sec = "resolvers"
        elif m & {"name", "content"}:
            sec = "hosts"
        else:
            sec = "other"
        sections.append((sec, host))
    order = {"hosts": 0, "resolvers": 1, "other": 2}
    sections.sort(key=lambda s: (order[s[0]], ipkey(s[1])))
    return rows, sections, resolvers, shared_at


# What the precision scenario must produce (make_precision.sh --check-scenario)
SCENARIO_SECTIONS = [("hosts", "10.77.0.11"), ("hosts", "10.77.0.14"),
                     ("resolvers", "10.77.0.2"), ("other", "10.77.0.15")]


def check_scenario(rows, sections, resolvers, shared_at):
    errs = []
    if sections != SCENARIO_SECTIONS:
        errs.append(f"sections {sections} != {SCENARIO_SECTIONS}")
    by = lambda src, ev, proto: [r for r in rows if r[1] == src and r[2] == ev and r[3] == proto]
    a_tls = by("10.77.0.11", "name", "tls")
    if len(a_tls) != 2 or {r[7] for r in a_tls} != {"dnl-01.geo.kaspersky.com"}:
        errs.append(f"A: want 2 tls rows for dnl-01.geo.kaspersky.com, got {a_tls}")
    if not by("10.77.0.11", "name", "dns"):
        errs.append("A: no DNS query row")
    d_addr = by("10.77.0.14", "address", "ip")
    if sorted((r[5], r[6]) for r in d_addr) != [("10.77.0.90", "443"), ("10.77.0.90", "80")]:
        errs.append(f"D: want address rows to 10.77.0.90:443 and :80, got {d_addr}")
    if not by("10.77.0.14", "name", "dns"):
        errs.append("D: no DNS query row")
    e_rows = [r for r in rows if r[1] == "10.77.0.15"]
    if [(r[2], r[5], r[6], r[7]) for r in e_rows] != \
            [("address", "10.77.0.90", "443", "activation-v2.kaspersky.com")]:
        errs.append(f"E: want one address row to 10.77.0.90:443, got {e_rows}")
    if any(r[2] == "address" and r[5] == "10.77.0.80" for r in rows):
        errs.append("an address row to the shared server X")
    if "10.77.0.80" not in shared_at:
        errs.append("X (10.77.0.80) is not shared")
    if "10.77.0.90" in shared_at:
        errs.append("Y (10.77.0.90) is shared")
    if not any(r[8] == "resolver" and r[1] == "10.77.0.2" for r in rows):
        errs.append("R has no forwarded query rows")
    if resolvers != {"10.77.0.2", "10.77.0.3"}:
        errs.append(f"resolvers {resolvers} != R and U")
    if any(r[1] in ("10.77.0.12", "10.77.0.13") for r in rows):
        errs.append("B or C has an event")
    return errs


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    check = "--check-scenario" in argv[1:]
    if len(args) != 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    pcap = args[0]
    rows, sections, resolvers, shared_at = derive(pcap)
    base = os.path.splitext(pcap)[0]
    name = os.path.basename(pcap)
    with open(base + ".expected.tsv", "w") as f:
        f.write(f"# kaswatch {name}: expected callback events, derived from tshark's decoding of\n"
                f"# this exact capture by precision_expected.py (issue 13 precision semantics;\n"
                f"# rules in that script's docstring and in captures/README.md).\n"
                f"# evidence name: frame completes the DNS query / ClientHello / HTTP request;\n"
                f"# evidence address: frame of the client's SYN, name = the Kaspersky name the\n"
                f"# address was answered for. role: resolver = a host sending DNS responses.\n"
                f"# resolvers seen: {' '.join(sorted(resolvers, key=ipkey)) or '-'}\n"
                f"# shared addresses (no address evidence): "
                f"{' '.join(sorted(shared_at, key=ipkey)) or '-'}\n"
                "# frame\tsrc_ip\tevidence\tprotocol\ttransport\tdst_ip\tdst_port\tname\trole\n")
        for r in rows:
            f.write("\t".join(str(x) for x in r) + "\n")
    with open(base + ".hosts.tsv", "w") as f:
        f.write(f"# kaswatch {name}: expected report membership (default --evidence name,content,\n"
                "# no --count-resolvers). hosts = devices (name or content evidence);\n"
                "# resolvers = hosts that answer DNS for others, listed when they have events;\n"
                "# other = hosts whose only evidence is address. Hosts without events are absent.\n"
                "# section\thost\n")
        for s in sections:
            f.write("\t".join(s) + "\n")
    if check:
        errs = check_scenario(rows, sections, resolvers, shared_at)
        for e in errs:
            print(f"precision_expected.py: scenario check failed: {e}", file=sys.stderr)
        if errs:
            return 1
        print(f"{name}: scenario check passed ({len(rows)} events)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
