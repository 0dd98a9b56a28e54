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
"$PY" make_quic.py      # also needs python3-cryptography
"$PY" make_attribution.py   # also writes update-paths.pcap
"$PY" make_identity.py      # identity.pcap and ksc.pcap

# real-clients.pcap comes from real openssl/curl clients in network namespaces.
# It is NOT deterministic, so it is only regenerated on request (--real), and
# only as root with the tools present; otherwise the committed file is kept.
case " $* " in *" --real "*)
    missing=
    for t in ip tcpdump openssl curl tshark; do
        command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
    done
    if [ "$(id -u)" != 0 ] || [ -n "$missing" ]; then
        echo "make_all.sh: --real needs root and:$missing; real-clients.pcap not regenerated" >&2
    else
        ./make_real_clients.sh
        if command -v dnsmasq >/dev/null 2>&1; then ./make_precision.sh; else echo "make_all.sh: --real needs dnsmasq (apt-get install dnsmasq-base); precision.pcap not regenerated" >&2; fi
    fi;;
esac

case " $* " in *" --check "*)
    # optional: compare the expected tables with tshark's decoding
    "$PY" check_tshark.py
    ./make_precision.sh --check    # precision.*.tsv = precision_expected.py on precision.pcap
    # TLS/QUIC/HTTP tables: the Kaspersky rows must equal expected_from_tshark.sh -k
    for base in quic real-clients; do
        grep -v '^#' "$base.expected.tsv" >"$base.want.tmp"
        ./expected_from_tshark.sh -k "$base.pcap" 2>/dev/null >"$base.got.tmp"
        if cmp -s "$base.want.tmp" "$base.got.tmp"; then
            echo "$base.pcap: $(wc -l <"$base.want.tmp") expected rows match tshark"
        else
            echo "$base.pcap: expected table differs from tshark:" >&2
            diff "$base.want.tmp" "$base.got.tmp" >&2 || true
            rm -f "$base.want.tmp" "$base.got.tmp"
            exit 1
        fi
        rm -f "$base.want.tmp" "$base.got.tmp"
    done;;
esac
sha256sum *.pcap *.pcapng *.tsv
