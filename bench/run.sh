#!/usr/bin/env bash
# kaswatch whole-process benchmark on three generated mixes. See bench/README.md.
#
#   bench/run.sh                      # span, heavy, churn; 1M packets each
#   MIXES="churn" PACKETS=200000 bench/run.sh
#   HOSTS_CHECK=warn bench/run.sh     # time even when the host set is wrong (marked in the table)
#
# Order: generate every mix, then check every mix (exact host set, resolvers, address-only hosts,
# events vs truth) BEFORE timing anything; then per mix: paired hyperfine rounds against the
# libpcap floor, peak RSS (/usr/bin/time -v), callgrind instructions/packet (bench/callgrind.sh).
#
# Env: MIXES ("span heavy churn") PACKETS (1000000) HOSTS (20000) SEED (1) RUNS (5)
#      MODE (alternate|block) KASWATCH (path; default: cargo build --release)
#      HOSTS_CHECK (strict|warn) SKIP_CHECK=1 (no correctness at all) SKIP_CALLGRIND=1
#      CALLGRIND_PACKETS (100000) W2 (1: also time --workers 2) SKIP_TSHARK=1 (tshark on span only)
#      SLICE (50000 packets for tshark) BENCH_PROTOCOLS ("dns tls quic http")
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY=/usr/bin/python3
MIXES="${MIXES:-span heavy churn}"
PACKETS="${PACKETS:-1000000}"
HOSTS="${HOSTS:-20000}"
SEED="${SEED:-1}"
SLICE="${SLICE:-50000}"
RUNS="${RUNS:-5}"
MODE="${MODE:-alternate}"
HOSTS_CHECK="${HOSTS_CHECK:-strict}"
W2="${W2:-1}"
CALLGRIND_PACKETS="${CALLGRIND_PACKETS:-100000}"
export BENCH_PROTOCOLS="${BENCH_PROTOCOLS:-dns tls quic http}"
OUT=target/bench
mkdir -p "$OUT"
for m in $MIXES; do
    case $m in span|heavy|churn) ;; *) echo "unknown mix '$m' (span heavy churn)" >&2; exit 2;; esac
done

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
[ -n "${SKIP_CALLGRIND:-}" ] || { need valgrind valgrind; need editcap wireshark-common; }
$PY -c 'import cryptography' 2>/dev/null || {
    if [ "$(id -u)" = 0 ]; then apt-get install -y python3-cryptography >/dev/null; else
        echo "missing python3-cryptography (Debian package)" >&2; exit 1; fi; }

pcap_of() { echo "$OUT/$1.pcap"; }
truth_of() { echo "$OUT/$1.truth.tsv"; }

# ---------------------------------------------------------------- captures (cached by args + generator hash)
for m in $MIXES; do
    PCAP=$(pcap_of $m); TRUTH=$(truth_of $m)
    KEY="mix=$m packets=$PACKETS hosts=$HOSTS seed=$SEED gen=$(sha256sum bench/gen_span.py | cut -c1-16)"
    if [ -f "$PCAP" ] && [ -f "$TRUTH.hosts" ] && [ "$(cat $OUT/$m.key 2>/dev/null)" = "$KEY" ]; then
        echo "capture $m: reusing $PCAP ($KEY)"
    else
        echo "capture $m: generating $PCAP ($KEY)"
        rm -f "$OUT/$m.key" "$OUT/$m.slice.pcap"
        /usr/bin/time -f "capture $m: generated in %e s" $PY bench/gen_span.py --mix "$m" --packets "$PACKETS" \
            --hosts "$HOSTS" --seed "$SEED" --out "$PCAP" --truth "$TRUTH"
        echo "$KEY" > "$OUT/$m.key"
    fi
done

# ---------------------------------------------------------------- binaries
gcc -O2 -o target/floor bench/floor.c -lpcap
if [ -z "${KASWATCH:-}" ]; then
    cargo build --release --bin kaswatch
    KASWATCH=target/release/kaswatch
fi
[ -x "$KASWATCH" ] || { echo "kaswatch binary $KASWATCH not found" >&2; exit 1; }

# ---------------------------------------------------------------- correctness, every mix, before any timing
declare -A HOSTS_OK
fail=0
for m in $MIXES; do
    PCAP=$(pcap_of $m); TRUTH=$(truth_of $m)
    if [ -n "${SKIP_CHECK:-}" ]; then HOSTS_OK[$m]="not checked"; continue; fi
    rm -f "$OUT/$m.events.jsonl"
    "$KASWATCH" read "$PCAP" --format json -q --events "$OUT/$m.events.jsonl" > "$OUT/$m.read.json"
    ok=1
    $PY bench/check_hosts.py "$TRUTH" "$OUT/$m.read.json" "$m" | tee "$OUT/$m.hosts-check.txt" || ok=0
    $PY bench/check.py "$TRUTH" "$OUT/$m.events.jsonl" $BENCH_PROTOCOLS | tee "$OUT/$m.events-check.txt" || ok=0
    hl=$(awk '$1=="hosts" && $2=="truth" {print $7 " missing, " $9 " extra"}' "$OUT/$m.hosts-check.txt")
    if [ $ok = 1 ]; then HOSTS_OK[$m]="yes"; else HOSTS_OK[$m]="**NO** ($hl)"; fail=1; fi
done
if [ $fail = 1 ]; then
    if [ "$HOSTS_CHECK" = warn ]; then
        echo "correctness FAILED on some mix; HOSTS_CHECK=warn: timing anyway (marked in the table)" >&2
    else
        echo "correctness FAILED; not timing (HOSTS_CHECK=warn times anyway)" >&2
        exit 1
    fi
fi

# ---------------------------------------------------------------- timing, RSS, instructions per mix
hf_args() {  # hf_args INDEX... -> hyperfine -n/command pairs in that order
    for i in "$@"; do printf '%s\0%s\0%s\0' -n "${NAMES[$i]}" "${CMDS[$i]}"; done
}
SUMMARY=$OUT/summary.md
{
    echo "| mix | floor (s) | kaswatch-w1 (s) | ratio | instr/pkt | floor instr/pkt | peak RSS (MiB) | hosts ok |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|"
} > "$SUMMARY.rows"
for m in $MIXES; do
    PCAP=$(pcap_of $m); TRUTH=$(truth_of $m)
    D=$OUT/$m; mkdir -p "$D"
    echo; echo "=== $m: $(awk -F'\t' '$1=="frame_bytes"{print $2}' "$TRUTH.summary") frame bytes, $PACKETS packets"
    NAMES=(floor kaswatch-w1)
    CMDS=("target/floor $PCAP" "$KASWATCH read $PCAP --workers 1 --format json >/dev/null")
    if [ "$W2" = 1 ]; then
        NAMES+=(kaswatch-w2); CMDS+=("$KASWATCH read $PCAP --workers 2 --format json >/dev/null")
    fi
    N_SLICE=$PACKETS
    if [ -z "${SKIP_TSHARK:-}" ] && [ "$m" = span ]; then
        SL=$OUT/$m.slice.pcap
        N_SLICE=$(( SLICE < PACKETS ? SLICE : PACKETS ))
        [ -f "$SL" ] || editcap -r "$PCAP" "$SL" "1-$N_SLICE"
        NAMES+=(tshark)
        CMDS+=("tshark -r $SL -T fields -e dns.qry.name -e tls.handshake.extensions_server_name -e http.host >/dev/null 2>&1")
    fi
    rm -f "$D"/hf-*.json "$D"/rss-*.txt
    n=${#NAMES[@]}
    fwd=(); for ((i=0; i<n; i++)); do fwd+=($i); done
    rev=(); for ((i=n-1; i>=0; i--)); do rev+=($i); done
    if [ "$MODE" = block ]; then
        mapfile -d '' A < <(hf_args "${fwd[@]}")
        hyperfine --runs "$RUNS" --warmup 1 --export-json "$D/hf-block.json" "${A[@]}"
    else
        # Paired, alternating order: RUNS rounds of one run per command, order
        # forward / reverse / forward ..., one warmup per command in round 1.
        for ((r=1; r<=RUNS; r++)); do
            if (( r % 2 )); then ord=("${fwd[@]}"); else ord=("${rev[@]}"); fi
            mapfile -d '' A < <(hf_args "${ord[@]}")
            W=(); [ $r = 1 ] && W=(--warmup 1)
            echo "round $r/$RUNS: ${ord[*]/#/#}"
            hyperfine --style basic --runs 1 "${W[@]}" --export-json "$D/hf-round$r.json" "${A[@]}" \
                | grep -E '^(Benchmark|  Time)' || true
        done
    fi
    # peak RSS, one extra run each (/usr/bin/time -v: "Maximum resident set size (kbytes)")
    for ((i=0; i<n; i++)); do
        /usr/bin/time -v -o "$D/time-${NAMES[$i]}.txt" sh -c "${CMDS[$i]}" >/dev/null
        awk -F': ' '/Maximum resident set size/{print $2}' "$D/time-${NAMES[$i]}.txt" > "$D/rss-${NAMES[$i]}.txt"
    done
    echo
    $PY bench/report.py "$TRUTH.summary" "$PACKETS" "$N_SLICE" "$D" "${NAMES[@]}" | tee "$D/report.md"
    IPP=n/a; FIPP=n/a
    if [ -z "${SKIP_CALLGRIND:-}" ]; then
        CAPTURE="$PCAP" PACKETS="$CALLGRIND_PACKETS" KASWATCH="$KASWATCH" bench/callgrind.sh
        CS=$OUT/callgrind/$m/summary.txt
        IPP=$(awk -F': +' '/^instructions\/packet \(total/{print $2}' "$CS")
        FIPP=$(awk -F': +' '/^floor instructions\/packet \(total/{print $2}' "$CS")
    fi
    $PY - "$D" "$IPP" "$FIPP" "$m" "${HOSTS_OK[$m]}" >> "$SUMMARY.rows" <<'EOF'
import glob, json, statistics, sys
d, ipp, fipp, mix, ok = sys.argv[1:6]
t = {}
for p in glob.glob(d + "/hf-*.json"):
    for r in json.load(open(p))["results"]:
        t.setdefault(r["command"], []).extend(r["times"])
fl, kw = statistics.median(t["floor"]), statistics.median(t["kaswatch-w1"])
rss = int(open(d + "/rss-kaswatch-w1.txt").read().split()[-1]) / 1024
fmt = lambda s: s if s == "n/a" else "{:,.0f}".format(float(s))
print("| %s | %.3f | %.3f | %.2f | %s | %s | %.1f | %s |" % (mix, fl, kw, kw / fl, fmt(ipp), fmt(fipp), rss, ok))
EOF
done
mv "$SUMMARY.rows" "$SUMMARY"
echo
echo "Summary ($PACKETS packets per mix, medians of $RUNS paired runs; instr/pkt: callgrind, first $CALLGRIND_PACKETS packets, total/packets):"
cat "$SUMMARY"
[ $fail = 0 ]
