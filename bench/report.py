#!/usr/bin/python3
"""Merge hyperfine JSON exports + /usr/bin/time RSS files into a Markdown table.

usage: report.py SUMMARY PACKETS SLICE_PACKETS OUTDIR NAME... 
Reads OUTDIR/hf-*.json (any number of hyperfine exports; times of the same
command name are pooled) and OUTDIR/rss-NAME.txt (peak RSS in KiB).
The command named 'tshark' ran on a slice; its time is scaled by
PACKETS/SLICE_PACKETS.
"""
import glob
import json
import os
import statistics
import sys


def main():
    summary, packets, slice_n, outdir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    names = sys.argv[5:]
    frame_bytes = None
    with open(summary) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            if k == "frame_bytes":
                frame_bytes = int(v)
    times = {}
    cmds = {}
    for p in sorted(glob.glob(os.path.join(outdir, "hf-*.json"))):
        with open(p) as f:
            for r in json.load(f)["results"]:
                times.setdefault(r["command"], []).extend(r["times"])
    floor = None
    rows = []
    for n in names:
        ts = times.get(n)
        if not ts:
            continue
        med = statistics.median(ts)
        note = ""
        if n == "tshark":
            med = med * packets / slice_n
            note = " (scaled from %d-pkt slice)" % slice_n
        if n == "floor":
            floor = med
        rss = "n/a"
        rp = os.path.join(outdir, "rss-%s.txt" % n)
        if os.path.exists(rp):
            try:
                rss = "%.1f" % (int(open(rp).read().split()[-1]) / 1024)
            except (ValueError, IndexError):
                pass
        rows.append((n + note, med, len(ts), rss))
    print("| command | wall median (s) | packets/s | Gbit/s | peak RSS (MiB) | ratio to floor |")
    print("|---|---:|---:|---:|---:|---:|")
    for n, med, k, rss in rows:
        pps = packets / med
        gbps = frame_bytes * 8 / med / 1e9 if frame_bytes else float("nan")
        ratio = "%.2f" % (med / floor) if floor else "n/a"
        print("| %s | %.3f | %s | %.2f | %s | %s |" % (n, med, "{:,.0f}".format(pps), gbps, rss, ratio))
    print()
    print("%d packets, %d frame bytes; medians over %s runs each" %
          (packets, frame_bytes or 0, "/".join(str(r[2]) for r in rows)))


if __name__ == "__main__":
    main()
