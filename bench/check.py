#!/usr/bin/python3
"""Compare kaswatch events (JSON lines) against gen_span.py ground truth.

usage: check.py TRUTH.tsv EVENTS.jsonl [PROTOCOLS...]

Truth lines: frame<TAB>src_ip<TAB>protocol<TAB>name. Events: JSON objects with
at least src_ip, name, protocol (other lines/objects are ignored).
Only truth lines and events whose protocol is in PROTOCOLS (default: env
BENCH_PROTOCOLS or "dns tls quic http") are compared, as sets of (src_ip, name).

Exit status 1 when recall < 100 % or when any event names a non-Kaspersky name
(a lookalike decoy or an ordinary name) - regardless of protocol.
Content events (signature path:... or magic:..., or evidence "content": the
update protocol, named by the server's address) are exempt from the name check;
their source hosts must be exactly the truth's `content` lines' sources.
Kaspersky-name events that are not in the truth (e.g. CNAME targets taken from
DNS answers) lower precision but do not fail the check.
"""
import ipaddress
import json
import os
import sys

SUFFIXES = ("kaspersky.com", "kaspersky-labs.com")


def is_kaspersky(name):
    return any(name == s or name.endswith("." + s) for s in SUFFIXES)


def norm_ip(s):
    try:
        return str(ipaddress.ip_address(s))
    except ValueError:
        return s


def norm_name(s):
    return s.strip().rstrip(".").lower()


def is_content(ev):
    sig = str(ev.get("signature", ""))
    return ev.get("evidence") == "content" or sig.startswith("path:") or sig.startswith("magic:")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    protos = sys.argv[3:] or os.environ.get("BENCH_PROTOCOLS", "dns tls quic http").split()
    protos = [p.lower() for p in protos]
    truth, truth_all, truth_content = set(), set(), set()
    with open(sys.argv[1]) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4 or line.startswith("#"):
                continue
            _, src, proto, name = parts
            if proto == "content":
                truth_content.add(norm_ip(src))
                continue
            key = (norm_ip(src), norm_name(name))
            truth_all.add(key)
            if proto in protos:
                truth.add(key)
    events, bad, extra_k, n_lines, n_events = set(), {}, set(), 0, 0
    content = set()
    with open(sys.argv[2]) as f:
        for line in f:
            n_lines += 1
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if not isinstance(ev, dict) or "name" not in ev or "src_ip" not in ev:
                continue
            n_events += 1
            if is_content(ev):
                content.add(norm_ip(str(ev["src_ip"])))
                continue
            name = norm_name(str(ev["name"]))
            key = (norm_ip(str(ev["src_ip"])), name)
            if not is_kaspersky(name):
                bad[key] = ev.get("protocol")
                continue
            if str(ev.get("protocol", "")).lower() not in protos:
                continue
            events.add(key)
    hit = truth & events
    missed = truth - events
    extra = events - truth
    recall = len(hit) / len(truth) if truth else 1.0
    precision = len(hit) / len(events) if events else (1.0 if not truth else 0.0)
    print("correctness (protocols: %s)" % " ".join(protos))
    print("  events read: %d lines, %d events with src_ip+name" % (n_lines, n_events))
    print("  truth pairs: %d   reported pairs: %d   matched: %d" % (len(truth), len(events), len(hit)))
    print("  recall    %.2f %%" % (100 * recall))
    print("  precision %.2f %%" % (100 * precision))
    if extra:
        inother = sum(1 for k in extra if k in truth_all)
        print("  %d Kaspersky-name pairs not in truth for these protocols (%d are truth pairs of "
              "other protocols; the rest e.g. DNS answers/CNAMEs or resolver-side):" % (len(extra), inother))
        for k in sorted(extra)[:10]:
            print("    extra  %s  %s" % k)
    for k in sorted(missed)[:20]:
        print("    MISSED %s  %s" % k)
    for k, p in sorted(bad.items())[:20]:
        print("    WRONG  %s  %s  (%s) - not a Kaspersky name" % (k[0], k[1], p))
    c_missing, c_extra = truth_content - content, content - truth_content
    print("  content (update path/magic) hosts: truth %d  reported %d  missing %d  extra %d"
          % (len(truth_content), len(content), len(c_missing), len(c_extra)))
    for h in sorted(c_missing)[:10]:
        print("    MISSED content %s" % h)
    for h in sorted(c_extra)[:10]:
        print("    EXTRA  content %s" % h)
    ok = recall >= 1.0 and not bad and not c_missing and not c_extra
    if c_missing or c_extra:
        print("  FAIL: content hosts differ from the truth")
    if bad:
        print("  FAIL: %d non-Kaspersky (decoy/ordinary) names reported" % len(bad))
    if recall < 1.0:
        print("  FAIL: recall below 100 %% (%d missed)" % len(missed))
    print("  correctness: %s" % ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
