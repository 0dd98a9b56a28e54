#!/usr/bin/python3
"""Assert that a `kaswatch read --format json` report names exactly the true hosts.

usage: check_hosts.py TRUTH.tsv REPORT.json [LABEL]

Truth sets written by gen_span.py beside TRUTH.tsv (one address a line):
  .hosts        devices: hosts with name or content evidence, resolvers excluded
  .other        hosts with address evidence only
  .resolvers    resolvers that forwarded Kaspersky lookups
  .dns_servers  every address that sends DNS responses

Checks (default --evidence name,content):
  1. set(hosts[].host) == .hosts exactly: 0 missing, 0 extra; no row of
     hosts[] has role "resolver".
  2. .resolvers is a subset of resolvers[].host, and every row of resolvers[]
     is a DNS server (.dns_servers).
  3. set(other[].host) == .other exactly.
A report without a "resolvers" or "other" key (a kaswatch from before the
precision work of issue 13) skips checks 2 or 3 with a message saying so; all
other failures exit 1.
"""
import ipaddress
import json
import sys


def norm(s):
    try:
        return str(ipaddress.ip_address(str(s).strip()))
    except ValueError:
        return str(s).strip()


def read_set(path):
    try:
        with open(path) as f:
            return {norm(x) for x in f.read().split() if x and not x.startswith("#")}
    except FileNotFoundError:
        sys.exit("check_hosts.py: missing truth file %s (regenerate with bench/gen_span.py)" % path)


def rows(report, key):
    v = report.get(key)
    if v is None:
        return None
    return {norm(r.get("host")): r for r in v if isinstance(r, dict) and "host" in r}


def why(r):
    """Short description of a report row: evidence, protocols, names."""
    if r is None:
        return ""
    parts = []
    for k in ("role", "evidence", "protocols", "names"):
        if k in r:
            v = r[k]
            if isinstance(v, list):
                v = ",".join(str(x) for x in v[:3]) + (",..." if len(v) > 3 else "")
            elif isinstance(v, dict):
                v = ",".join("%s=%s" % kv for kv in sorted(v.items()))
            parts.append("%s=%s" % (k, v))
    return " ".join(parts)


def compare(what, truth, got, show=8):
    missing = sorted(truth - set(got))
    extra = sorted(set(got) - truth)
    ok = not missing and not extra
    print("  %-9s truth %6d  reported %6d  missing %6d  extra %6d  %s"
          % (what, len(truth), len(got), len(missing), len(extra), "ok" if ok else "FAIL"))
    for h in missing[:show]:
        print("      missing %s" % h)
    for h in extra[:show]:
        print("      extra   %s  %s" % (h, why(got[h])))
    return ok


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    truth_path, report_path = sys.argv[1], sys.argv[2]
    label = sys.argv[3] if len(sys.argv) > 3 else report_path
    t_hosts = read_set(truth_path + ".hosts")
    t_other = read_set(truth_path + ".other")
    t_res = read_set(truth_path + ".resolvers")
    dns_servers = read_set(truth_path + ".dns_servers")
    try:
        with open(report_path) as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        print("hosts check (%s): cannot read report %s: %s" % (label, report_path, e))
        return 1
    if not isinstance(report, dict) or rows(report, "hosts") is None:
        print("hosts check (%s): report has no \"hosts\" array" % label)
        return 1
    print("hosts check (%s)" % label)
    ok = True
    hosts = rows(report, "hosts")
    ok &= compare("hosts", t_hosts, hosts)
    as_res = sorted(h for h, r in hosts.items() if r.get("role") == "resolver")
    if as_res:
        ok = False
        print("      FAIL: rows of hosts[] with role resolver: %s" % " ".join(as_res[:8]))
    res = rows(report, "resolvers")
    if res is None:
        print("  resolvers NOT CHECKED: the report has no \"resolvers\" key (kaswatch without resolver "
              "reporting, issue 13); expected there: %s" % " ".join(sorted(t_res)))
    else:
        missing = sorted(t_res - set(res))
        stray = sorted(h for h in res if h not in dns_servers)
        r_ok = not missing and not stray
        print("  %-9s truth %6d  reported %6d  missing %6d  not DNS servers %d  %s"
              % ("resolvers", len(t_res), len(res), len(missing), len(stray), "ok" if r_ok else "FAIL"))
        for h in missing:
            print("      missing %s%s" % (h, "  (listed in hosts[])" if h in hosts else ""))
        for h in stray[:8]:
            print("      not a DNS server %s  %s" % (h, why(res[h])))
        ok &= r_ok
    other = rows(report, "other")
    if other is None:
        print("  other     NOT CHECKED: the report has no \"other\" key (kaswatch without evidence "
              "classes, issue 13); %d address-only hosts expected there" % len(t_other))
    else:
        ok &= compare("other", t_other, other)
    print("  hosts check: %s" % ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
