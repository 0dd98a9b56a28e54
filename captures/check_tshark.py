#!/usr/bin/python3
"""Cross-check the *.expected.tsv files against tshark's decoding (needs tshark).

For every DNS query tshark sees, a name that is (case-insensitively, without a
trailing dot) listed in the expected table must appear there with the same
frame and source; every expected row must be seen by tshark.  Exit 1 on a
mismatch.  Usage: /usr/bin/python3 captures/check_tshark.py
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def tshark(pcap, fields):
    cmd = ["tshark", "-r", os.path.join(HERE, pcap), "-Y", "dns.flags.response==0",
           "-T", "fields"] + sum([["-e", f] for f in fields], [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def expected(tsv):
    rows = []
    with open(os.path.join(HERE, tsv)) as fh:
        for line in fh:
            if line.strip() and not line.startswith("#"):
                rows.append(line.rstrip("\n").split("\t"))
    return rows


def main():
    ok = True
    # demo: frame, src ip, name
    exp = {(r[0], r[1], r[4]) for r in expected("demo.expected.tsv")}
    seen = set()
    for frame, ip4, ip6, names in tshark("demo.pcapng", ["frame.number", "ip.src", "ipv6.src", "dns.qry.name"]):
        for name in names.split(","):
            n = name.lower().rstrip(".")
            if n.endswith("kaspersky.com") or n.endswith("kaspersky-labs.com"):
                if n.endswith((".kaspersky.com", ".kaspersky-labs.com")) or n in ("kaspersky.com", "kaspersky-labs.com"):
                    seen.add((frame, ip4 or ip6, n))
    for miss in sorted(exp - seen):
        print("demo: expected but tshark does not show:", miss); ok = False
    for extra in sorted(seen - exp):
        print("demo: tshark shows a Kaspersky query not in expected:", extra); ok = False
    print("demo.pcapng: %d expected, %d seen by tshark" % (len(exp), len(seen)))
    # tunnels: frame, name
    exp = {(r[0], r[3]) for r in expected("tunnels.expected.tsv")}
    seen = {(f, n.lower()) for f, n in tshark("tunnels.pcap", ["frame.number", "dns.qry.name"])}
    for miss in sorted(exp - seen):
        print("tunnels: expected but tshark does not show:", miss); ok = False
    for extra in sorted(seen - exp):
        print("tunnels: unexpected:", extra); ok = False
    print("tunnels.pcap: %d expected, %d seen by tshark" % (len(exp), len(seen)))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
