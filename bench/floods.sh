#!/usr/bin/env bash
# Table floods (issue 16): each flood must take at most LIMIT (2) times the
# time of an ordinary capture with the same number of packets. The message
# floods have limits of their own, TLS_LIMIT (6) and QUIC_LIMIT (40): every
# packet is a new connection's hello to parse (and for QUIC, keys to derive
# and an Initial to decrypt), as for real new connections (bench/README.md).
# Each table flood is also run with GROWTH (4) times its packets: its CPU time
# must grow at most GROWTH_LIMIT (5) times, i.e. linearly (O(1) per entry).
#
#   bench/floods.sh
#   FLOODS="dns-answers syn" bench/floods.sh
#   KASWATCH=/path/to/kaswatch RUNS=5 bench/floods.sh
#
# Env: FLOODS ("dns-answers dns-queries spoof syn frag syn-kaddr udp tls quic") SEED (1) RUNS (3)
#      ROUNDS (RUNS) PER (3): the timing is ROUNDS interleaved rounds of PER runs of
#      each capture; the ratio is the median of the rounds' ratios
#      LIMIT (2.0) TLS_LIMIT (6) QUIC_LIMIT (40) PROBE_MAX (10: a flood whose single probe run takes longer than this
#      many seconds is not repeated; its probe time is the figure) TIMEOUT (300 s per run)
#      KASWATCH (path; default: cargo build --release) KW_ARGS ("--workers 1")
#      GROWTH (4; 0: skip): also run each table flood with GROWTH times its packets and
#      report how its CPU time grew (linear: about GROWTH, less with fixed costs); fail when
#      it grew by more than GROWTH_LIMIT (GROWTH x 1.25): a table whose cost per entry rises
#      with its fill
# Exit 1 when any flood exceeds LIMIT x ordinary (or times out), or grows faster than linearly.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY=/usr/bin/python3
FLOODS="${FLOODS:-dns-answers dns-queries spoof syn frag syn-kaddr udp tls quic}"
SEED="${SEED:-1}"
RUNS="${RUNS:-3}"
ROUNDS="${ROUNDS:-$RUNS}"
PER="${PER:-3}"
LIMIT="${LIMIT:-2.0}"
TLS_LIMIT="${TLS_LIMIT:-6}"
QUIC_LIMIT="${QUIC_LIMIT:-40}"
PROBE_MAX="${PROBE_MAX:-10}"
TIMEOUT="${TIMEOUT:-300}"
KW_ARGS="${KW_ARGS:---workers 1}"
GROWTH="${GROWTH:-4}"
OUT=target/bench/floods
mkdir -p "$OUT"
command -v hyperfine >/dev/null || { echo "missing hyperfine (Debian package 'hyperfine')" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "missing /usr/bin/time (Debian package 'time')" >&2; exit 1; }
if [ -z "${KASWATCH:-}" ]; then
    cargo build --release --bin kaswatch >&2
    KASWATCH=target/release/kaswatch
fi

packets_of() { case $1 in spoof) echo 200000;; quic) echo 100000;; *) echo 300000;; esac; }
limit_of() { case $1 in tls) echo "$TLS_LIMIT";; quic) echo "$QUIC_LIMIT";; *) echo "$LIMIT";; esac; }
GENHASH=$(cat bench/gen_flood.py bench/gen_span.py | sha256sum | cut -c1-16)
capture() {  # capture KIND PACKETS -> path (cached by kind, packets, seed, generator hash)
    local f=$OUT/$1-$2.pcap key="$1 $2 $SEED $GENHASH"
    if ! [ -f "$f" ] || [ "$(cat "$f.key" 2>/dev/null)" != "$key" ]; then
        $PY bench/gen_flood.py "$1" --packets "$2" --seed "$SEED" --out "$f" >&2
        echo "$key" > "$f.key"
    fi
    echo "$f"
}
cmd() { echo "timeout $TIMEOUT $KASWATCH read $1 $KW_ARGS --format json -q >/dev/null"; }

# wall time (s) and peak RSS (KiB) of one run: "SECONDS KIB RC"
probe() {
    local rc=0
    /usr/bin/time -f "%e %M" -o "$OUT/probe.txt" sh -c "$(cmd "$1")" || rc=$?
    echo "$(cat "$OUT/probe.txt" | tail -1) $rc"
}

ROWS=$OUT/rows.md
echo "| flood | packets | MB | ordinary (s) | flood (s) | ratio | CPU ratio | peak RSS (MiB) | within limit |" > "$ROWS"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|" >> "$ROWS"
fail=0
declare -A ORD
for k in $FLOODS; do
    n=$(packets_of "$k")
    F=$(capture "$k" "$n")
    O=$(capture ordinary "$n")
    mb=$(awk -v s="$(stat -c %s "$F")" 'BEGIN{printf "%.1f", s/1e6}')
    echo "== $k: $n packets ($mb MB)"
    read -r pt prss prc < <(probe "$F")
    if [ "$prc" != 0 ]; then
        if [ "$prc" = 124 ]; then ft=">$TIMEOUT"; else ft="exit $prc"; fi
        echo "   flood run failed or timed out ($ft)"
        FAILED="${FAILED:-} $k"
        ot=$(hyperfine --style none --runs "$RUNS" --warmup 1 --export-json "$OUT/hf-$k.json" -n ordinary "$(cmd "$O")" >/dev/null &&
            $PY -c 'import json,statistics,sys; print("%.3f" % statistics.median(json.load(open(sys.argv[1]))["results"][0]["times"]))' "$OUT/hf-$k.json")
        echo "| $k | $n | $mb | $ot | $ft | - | - | $(awk -v k="$prss" 'BEGIN{printf "%.1f", k/1024}') | **NO** ($(limit_of "$k")x) |" >> "$ROWS"
        fail=1
        continue
    fi
    if awk -v t="$pt" -v m="$PROBE_MAX" 'BEGIN{exit !(t > m)}'; then
        # too slow to repeat: ordinary timed with hyperfine, flood = the probe run
        hyperfine --style none --runs "$RUNS" --warmup 1 --export-json "$OUT/hf-$k.json" -n ordinary "$(cmd "$O")" >/dev/null
        read -r ot ft < <($PY - "$OUT/hf-$k.json" "$pt" <<'EOF'
import json, statistics, sys
r = json.load(open(sys.argv[1]))["results"][0]["times"]
print("%.3f %.3f" % (statistics.median(r), float(sys.argv[2])))
EOF
)
        note=" (1 run)"
        cr="-"
    else
        # interleaved: ROUNDS hyperfine rounds of (ordinary, flood), PER runs
        # each; the ratio is the median of the rounds' ratios, so drift on a
        # shared machine hits both sides of each ratio alike
        rm -f "$OUT/hf-$k".*.json
        for r in $(seq "$ROUNDS"); do
            hyperfine --style none --runs "$PER" --warmup 1 --export-json "$OUT/hf-$k.$r.json" \
                -n ordinary "$(cmd "$O")" -n "$k" "$(cmd "$F")" >/dev/null
        done
        # CPU ratio (shown, not checked): the same for the user + system
        # time of all threads (hyperfine's mean per round). A single-worker
        # run applies observations on a second thread, so a flood of
        # callbacks costs more CPU than wall time.
        read -r ot ft rr cr < <($PY - "$OUT"/hf-"$k".*.json <<'EOF'
import json, statistics, sys
o, f, ratios, cpu = [], [], [], []
for path in sys.argv[1:]:
    res = {x["command"]: x for x in json.load(open(path))["results"]}
    oo = res.pop("ordinary")
    ff = next(iter(res.values()))
    o += oo["times"]
    f += ff["times"]
    ratios.append(statistics.median(ff["times"]) / statistics.median(oo["times"]))
    cpu.append((ff["user"] + ff["system"]) / (oo["user"] + oo["system"]))
print("%.3f %.3f %.2f %.2f" % (statistics.median(o), statistics.median(f), statistics.median(ratios),
                               statistics.median(cpu)))
EOF
)
        note=""
    fi
    ratio=${rr:-$(awk -v f="$ft" -v o="$ot" 'BEGIN{printf "%.2f", f/o}')}
    rr=""
    lim=$(limit_of "$k")
    ok="yes (${lim}x)"
    if awk -v r="$ratio" -v l="$lim" 'BEGIN{exit !(r > l)}'; then ok="**NO** (${lim}x)"; fail=1; fi
    echo "   ordinary ${ot}s  flood ${ft}s${note}  ratio ${ratio}  CPU ratio ${cr}  peak RSS $((prss / 1024)) MiB  $ok"
    echo "| $k | $n | $mb | $ot | $ft$note | $ratio | $cr | $(awk -v k="$prss" 'BEGIN{printf "%.1f", k/1024}') | $ok |" >> "$ROWS"
done
if [ "$GROWTH" != 0 ]; then
    GROWTH_LIMIT="${GROWTH_LIMIT:-$(awk -v g="$GROWTH" 'BEGIN{print g * 1.25}')}"
    GROWS=$OUT/growth.md
    echo "| flood | packets | CPU (s) | x$GROWTH packets | CPU (s) | growth | within ${GROWTH_LIMIT}x |" > "$GROWS"
    echo "|---|---:|---:|---:|---:|---:|---|" >> "$GROWS"
    for k in $FLOODS; do
        case $k in tls|quic) continue;; esac
        n=$(packets_of "$k")
        big=$((n * GROWTH))
        F=$(capture "$k" "$n")
        B=$(capture "$k" "$big")
        echo "== growth of $k: $n -> $big packets"
        # A flood that already failed above, or a run that fails or times
        # out here, is a failure in this table too (not an abort without it).
        if [[ " ${FAILED:-} " == *" $k "* ]] ||
            ! hyperfine --style none --runs "$RUNS" --warmup 1 --export-json "$OUT/growth-$k.json" \
                -n small "$(cmd "$F")" -n big "$(cmd "$B")" >/dev/null; then
            echo "   a run failed or timed out"
            echo "| $k | $n | - | $big | - | - | **NO** (a run failed) |" >> "$GROWS"
            fail=1
            continue
        fi
        read -r cs cb g < <($PY - "$OUT/growth-$k.json" <<'EOF2'
import json, sys
res = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
cpu = {k: v["user"] + v["system"] for k, v in res.items()}
print("%.3f %.3f %.2f" % (cpu["small"], cpu["big"], cpu["big"] / cpu["small"]))
EOF2
)
        ok=yes
        if awk -v g="$g" -v l="$GROWTH_LIMIT" 'BEGIN{exit !(g > l)}'; then ok="**NO**"; fail=1; fi
        echo "   CPU ${cs}s -> ${cb}s: x$g ($ok)"
        echo "| $k | $n | $cs | $big | $cb | $g | $ok |" >> "$GROWS"
    done
fi
mv "$ROWS" "$OUT/report.md"
echo
echo "Floods vs ordinary traffic of the same packet count ($KASWATCH read $KW_ARGS; times: medians of $ROUNDS x $PER runs; ratio: median of the $ROUNDS rounds' ratios):"
cat "$OUT/report.md"
if [ "$GROWTH" != 0 ]; then
    echo
    echo "CPU time (user + system, hyperfine's mean) of each table flood at $GROWTH times its packets:"
    cat "$GROWS"
fi
if [ $fail = 1 ]; then echo "FAIL: some flood takes more than its limit times the ordinary time, or grows faster than its packets" >&2; exit 1; fi
