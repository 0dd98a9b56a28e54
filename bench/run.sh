#!/usr/bin/env bash
# kaswatch whole-process benchmark. See bench/README.md.
#
#   bench/run.sh                      # 1M packets, all protocols checked
#   PACKETS=200000 bench/run.sh       # smaller capture
#   BENCH_PROTOCOLS="dns" bench/run.sh
#
# Env: PACKETS (1000000) HOSTS (20000) SEED (1) SLICE (50000) RUNS (5)
#      MODE (alternate|block)  KASWATCH (path; default: cargo build --release)
#      BENCH_PROTOCOLS ("dns tls quic http")  SKIP_CHECK=1  SKIP_TSHARK=1
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY=/usr/bin/python3
PACKETS="${PACKETS:-1000000}"
HOSTS="${HOSTS:-20000}"
SEED="${SEED:-1}"
SLICE="${SLICE:-50000}"
RUNS="${RUNS:-5}"
MODE="${MODE:-alternate}"
export BENCH_PROTOCOLS="${BENCH_PROTOCOLS:-dns tls quic http}"
OUT=target/bench
PCAP=$OUT/span.pcap
TRUTH=$OUT/span.truth.tsv
mkdir -p "$OUT"

# ---------------------------------------------------------------- tools
need() {  # need BINARY DEBIAN_PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing $2 ..." >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >/dev/null; }
    fi
    command -v "$1" >/dev/null 2>&1 || { echo "missing $1: install Debian package '$2'" >&2; exit 1; }
}
need hyperfine hyperfine
need gcc gcc
[ -x /usr/bin/time ] || need /usr/bin/time time
[ -f /usr/include/pcap/pcap.h ] || { [ "$(id -u)" = 0 ] && apt-get install -y libpcap-dev >/dev/null; } ||
    { echo "missing pcap.h: install Debian package 'libpcap-dev'" >&2; exit 1; }
if [ -z "${SKIP_TSHARK:-}" ]; then need tshark tshark; need editcap wireshark-common; fi
$PY -c 'import cryptography' 2>/dev/null || {
    if [ "$(id -u)" = 0 ]; then apt-get install -y python3-cryptography >/dev/null; else
        echo "missing python3-cryptography (Debian package)" >&2; exit 1; fi; }

# ---------------------------------------------------------------- capture (cached by args + generator hash)
KEY="packets=$PACKETS hosts=$HOSTS seed=$SEED gen=$(sha256sum bench/gen_span.py | cut -c1-16)"
if [ -f "$PCAP" ] && [ -f "$TRUTH" ] && [ "$(cat $OUT/span.key 2>/dev/null)" = "$KEY" ]; then
    echo "capture: reusing $PCAP ($KEY)"
else
    echo "capture: generating $PCAP ($KEY)"
    rm -f "$OUT/span.key" "$OUT"/slice.pcap
    /usr/bin/time -f "capture: generated in %e s" $PY bench/gen_span.py --packets "$PACKETS" --hosts "$HOSTS" \
        --seed "$SEED" --out "$PCAP" --truth "$TRUTH"
    echo "$KEY" > "$OUT/span.key"
fi
FRAME_BYTES=$(awk -F'\t' '$1=="frame_bytes"{print $2}' "$TRUTH.summary")
echo "capture: $PACKETS packets, $FRAME_BYTES frame bytes, $(wc -l < "$TRUTH") truth lines"

# ---------------------------------------------------------------- binaries
gcc -O2 -o target/floor bench/floor.c -lpcap
if [ -z "${KASWATCH:-}" ]; then
    cargo build --release --bin kaswatch
    KASWATCH=target/release/kaswatch
fi
[ -x "$KASWATCH" ] || { echo "kaswatch binary $KASWATCH not found" >&2; exit 1; }

# ---------------------------------------------------------------- correctness
if [ -z "${SKIP_CHECK:-}" ]; then
    rm -f $OUT/events.jsonl
    "$KASWATCH" read "$PCAP" --events $OUT/events.jsonl --format json > $OUT/read.json
    $PY bench/check.py "$TRUTH" $OUT/events.jsonl $BENCH_PROTOCOLS || { echo "correctness check failed; not timing" >&2; exit 1; }
fi

# ---------------------------------------------------------------- timing
NAMES=(floor kaswatch-w1 kaswatch-w2)
CMDS=("target/floor $PCAP"
      "$KASWATCH read $PCAP --workers 1 --format json >/dev/null"
      "$KASWATCH read $PCAP --workers 2 --format json >/dev/null")
if [ -z "${SKIP_TSHARK:-}" ]; then
    SL=$OUT/slice.pcap
    N_SLICE=$(( SLICE < PACKETS ? SLICE : PACKETS ))
    [ -f "$SL" ] || editcap -r "$PCAP" "$SL" "1-$N_SLICE"
    NAMES+=(tshark)
    CMDS+=("tshark -r $SL -T fields -e dns.qry.name -e tls.handshake.extensions_server_name -e http.host >/dev/null 2>&1")
else
    N_SLICE=$PACKETS
fi

rm -f $OUT/hf-*.json $OUT/rss-*.txt
hf_args() {  # hf_args INDEX... -> hyperfine -n/command pairs in that order
    for i in "$@"; do printf '%s\0%s\0%s\0' -n "${NAMES[$i]}" "${CMDS[$i]}"; done
}
n=${#NAMES[@]}
fwd=(); for ((i=0; i<n; i++)); do fwd+=($i); done
rev=(); for ((i=n-1; i>=0; i--)); do rev+=($i); done
if [ "$MODE" = block ]; then
    mapfile -d '' A < <(hf_args "${fwd[@]}")
    hyperfine --runs "$RUNS" --warmup 1 --export-json $OUT/hf-block.json "${A[@]}"
else
    # Paired, alternating order: RUNS rounds of one run per command, order
    # forward / reverse / forward ..., one warmup per command in round 1.
    for ((r=1; r<=RUNS; r++)); do
        if (( r % 2 )); then ord=("${fwd[@]}"); else ord=("${rev[@]}"); fi
        mapfile -d '' A < <(hf_args "${ord[@]}")
        W=(); [ $r = 1 ] && W=(--warmup 1)
        echo "round $r/$RUNS: ${ord[*]/#/#}"
        hyperfine --style basic --runs 1 "${W[@]}" --export-json $OUT/hf-round$r.json "${A[@]}" \
            | grep -E '^(Benchmark|  Time)' || true
    done
fi

# peak RSS, one extra run each
for ((i=0; i<n; i++)); do
    /usr/bin/time -f %M -o $OUT/rss-${NAMES[$i]}.txt sh -c "${CMDS[$i]}" >/dev/null
done

echo
$PY bench/report.py "$TRUTH.summary" "$PACKETS" "$N_SLICE" $OUT "${NAMES[@]}" | tee $OUT/report.md
