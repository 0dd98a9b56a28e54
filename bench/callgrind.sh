#!/usr/bin/env bash
# Instructions per packet of `kaswatch read --workers 1`, under callgrind.
# Deterministic: same binary + same capture => the same count, whatever the
# machine load (unlike wall time). See BENCHMARKS.md.
#
#   bench/callgrind.sh                  # 100k-packet slice of the bench capture
#   PACKETS=200000 bench/callgrind.sh
#   KASWATCH=/path/to/kaswatch bench/callgrind.sh   # skip cargo build
#
# Input: the first PACKETS packets of target/bench/span.pcap (bench/run.sh)
# cut with editcap, or, without it, `gen_span.py --packets PACKETS --seed 1`.
# Fixed start-up cost (signature loading, thread setup) is removed by also
# running a BASE-packet head of the same capture:
#   marginal Ir/packet = (Ir(PACKETS) - Ir(BASE)) / (PACKETS - BASE)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PACKETS="${PACKETS:-100000}"
BASE="${BASE:-1000}"
OUT=target/bench/callgrind
mkdir -p "$OUT"
command -v valgrind >/dev/null || { echo "missing valgrind (Debian package 'valgrind')" >&2; exit 1; }

if [ -z "${KASWATCH:-}" ]; then
    cargo build --release --bin kaswatch >&2
    KASWATCH=target/release/kaswatch
fi

IN=$OUT/slice-$PACKETS.pcap
HEAD=$OUT/slice-$BASE.pcap
if [ -f target/bench/span.pcap ] && command -v editcap >/dev/null; then
    SRC="first $PACKETS packets of target/bench/span.pcap"
    [ -f "$IN" ] && [ "$IN" -nt target/bench/span.pcap ] || editcap -F pcap -r target/bench/span.pcap "$IN" "1-$PACKETS"
    [ -f "$HEAD" ] && [ "$HEAD" -nt target/bench/span.pcap ] || editcap -F pcap -r target/bench/span.pcap "$HEAD" "1-$BASE"
else
    SRC="gen_span.py --packets $PACKETS --seed 1"
    [ -f "$IN" ] || /usr/bin/python3 bench/gen_span.py --packets "$PACKETS" --seed 1 \
        --out "$IN" --truth "$OUT/slice.truth.tsv" >&2
    command -v editcap >/dev/null || { echo "missing editcap (wireshark-common)" >&2; exit 1; }
    [ -f "$HEAD" ] || editcap -F pcap -r "$IN" "$HEAD" "1-$BASE"
fi

ir_of() {  # ir_of CAPTURE NAME -> total Ir
    valgrind --tool=callgrind --callgrind-out-file="$OUT/$2.callgrind" \
        "$KASWATCH" read "$1" --workers 1 --format json >/dev/null 2>"$OUT/$2.log"
    awk '/^summary:/{print $2}' "$OUT/$2.callgrind"
}
IR=$(ir_of "$IN" run)
IR0=$(ir_of "$HEAD" base)
awk -v ir="$IR" -v ir0="$IR0" -v n="$PACKETS" -v b="$BASE" -v src="$SRC" 'BEGIN {
    printf "input: %s\n", src
    printf "Ir total (%d packets): %d\n", n, ir
    printf "Ir total (%d packets): %d\n", b, ir0
    printf "instructions/packet (total / packets):     %.1f\n", ir / n
    printf "instructions/packet (marginal, no start-up): %.1f\n", (ir - ir0) / (n - b)
}' | tee "$OUT/summary.txt"
echo "profile: callgrind_annotate $OUT/run.callgrind | head -40" >&2
