#!/bin/sh
# Regenerate every committed capture in this directory.
# Needs Debian's python3 with scapy (apt-get install python3-scapy); the
# outputs are committed, so building or testing kaswatch does not need this.
# Add new generators below; each must be deterministic (byte-identical reruns).
set -eu
cd "$(dirname "$0")"
PY=${PYTHON:-/usr/bin/python3}

"$PY" make_demo.py
"$PY" make_tunnels.py

if [ "${1:-}" = "--check" ]; then
    # optional: compare the expected tables with tshark's decoding
    "$PY" check_tshark.py
fi
sha256sum *.pcap *.pcapng *.tsv
