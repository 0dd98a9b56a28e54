#!/usr/bin/env bash
# Instructions per packet of `kaswatch read --workers 1` (and of the libpcap
# floor, bench/floor.c), under callgrind. Deterministic: same binary + same
# capture => the same count, whatever the machine load (unlike wall time).
# See BENCHMARKS.md.
#
#   bench/callgrind.sh                  # 100k-packet slice of target/bench/span.pcap
#   CAPTURE=target/bench/churn.pcap bench/callgrind.sh
#   PACKETS=200000 bench/callgrind.sh
#   KASWATCH=/path/to/kaswatch bench/callgrind.sh   # skip cargo build
#
# Input: the first PACKETS packets of CAPTURE (default target/bench/span.pcap,
# made by bench/run.sh) cut with editcap, or, without it, `gen_span.py --mix
# MIX --packets PACKETS --seed 1` (MIX from the capture's name). Results in
# target/bench/callgrind/<capture name>/. Fixed start-up cost (signature
# loading, thread setup) is removed by also running a BASE-packet head:
#   marginal Ir/packet = (Ir(PACKETS) - Ir(BASE)) / (PACKETS - BASE)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PACKETS="${PACKETS:-100000}"
BASE="${BASE:-1000}"
CAPTURE="${CAPTURE:-target/bench/span.pcap}"
NAME=$(basename "$CAPTURE" .pcap)
OUT=target/bench/callgrind/$NAME
mkdir -p "$OUT"
command -v valgrind >/dev/null || { echo "missing valgrind (Debian package 'valgrind')" >&2; exit 1; }
command -v editcap >/dev/null || { echo "missing editcap (wireshark-common)" >&2; exit 1; }

if [ -z "${KASWATCH:-}" ]; then
    cargo build --release --bin kaswatch >&2
    KASWATCH=target/release/kaswatch
fi
[ -x target/floor ] && [ target/floor -nt bench/floor.c ] || gcc -O2 -o target/floor bench/floor.c -lpcap

IN=$OUT/slice-$PACKETS.pcap
HEAD=$OUT/slice-$BASE.pcap
if [ -f "$CAPTURE" ]; then
    SRC="first $PACKETS packets of $CAPTURE"
    [ -f "$IN" ] && [ "$IN" -nt "$CAPTURE" ] || editcap -F pcap -r "$CAPTURE" "$IN" "1-$PACKETS"
    [ -f "$HEAD" ] && [ "$HEAD" -nt "$CAPTURE" ] || editcap -F pcap -r "$CAPTURE" "$HEAD" "1-$BASE"
else
    case $NAME in heavy|churn) MIX=$NAME;; *) MIX=span;; esac
    SRC="gen_span.py --mix $MIX --packets $PACKETS --seed 1"
    [ -f "$IN" ] || /usr/bin/python3 bench/gen_span.py --mix "$MIX" --packets "$PACKETS" --seed 1 \
        --out "$IN" --truth "$OUT/slice.truth.tsv" >&2
    [ -f "$HEAD" ] || editcap -F pcap -r "$IN" "$HEAD" "1-$BASE"
fi

ir_of() {  # ir_of NAME COMMAND... -> total Ir
    local name=$1; shift
    valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.callgrind" "$@" >/dev/null 2>"$OUT/$name.log"
    awk '/^summary:/{print $2}' "$OUT/$name.callgrind"
}
IR=$(ir_of run "$KASWATCH" read "$IN" --workers 1 --format json)
IR0=$(ir_of base "$KASWATCH" read "$HEAD" --workers 1 --format json)
# valgrind shows the program no SHA extensions, so kaswatch keys new QUIC
# connections in batches of eight (src/proto/sha256x8.rs). A CPU with them
# keys one connection at a time: measured too, then estimated with them.
IR1=$(KASWATCH_QUIC_BATCH=0 ir_of single "$KASWATCH" read "$IN" --workers 1 --format json)
IR10=$(KASWATCH_QUIC_BATCH=0 ir_of single-base "$KASWATCH" read "$HEAD" --workers 1 --format json)
FIR=$(ir_of floor target/floor "$IN")
FIR0=$(ir_of floor-base target/floor "$HEAD")
# The same had the CPU's SHA extensions been visible (see bench/sha_native.py)
read -r NIR SHA_CALLS _ SHA_HW < <(/usr/bin/python3 bench/sha_native.py "$KASWATCH" "$OUT/single.callgrind")
read -r NIR0 _ _ _ < <(/usr/bin/python3 bench/sha_native.py "$KASWATCH" "$OUT/single-base.callgrind")
awk -v ir="$IR" -v ir0="$IR0" -v fir="$FIR" -v fir0="$FIR0" -v n="$PACKETS" -v b="$BASE" -v src="$SRC" \
    -v ir1="$IR1" -v ir10="$IR10" \
    -v nir="$NIR" -v nir0="$NIR0" -v calls="$SHA_CALLS" -v hw="$SHA_HW" 'BEGIN {
    printf "input: %s\n", src
    printf "Ir total (%d packets): %d\n", n, ir
    printf "Ir total (%d packets): %d\n", b, ir0
    printf "instructions/packet (total / packets):     %.1f\n", ir / n
    printf "instructions/packet (marginal, no start-up): %.1f\n", (ir - ir0) / (n - b)
    printf "floor instructions/packet (total / packets):     %.1f\n", fir / n
    printf "floor instructions/packet (marginal, no start-up): %.1f\n", (fir - fir0) / (n - b)
    printf "QUIC keys one connection at a time (KASWATCH_QUIC_BATCH=0), marginal: %.1f\n", (ir1 - ir10) / (n - b)
    if (nir != "-" && calls > 0)
        printf "  the same estimated with the SHA extensions: %.1f (%d SHA-256 blocks at %d instructions, not AVX code)\n", (nir - nir0) / (n - b), calls, hw
}' | tee "$OUT/summary.txt"
echo "profile: callgrind_annotate $OUT/run.callgrind | head -40" >&2
