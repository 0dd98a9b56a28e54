#!/usr/bin/env bash
# kaswatch live-capture benchmark (root only): the span mix replayed with
# tcpreplay from one network namespace over a veth pair into another, where
# `kaswatch live` and `tcpdump -w /dev/null` capture the same interface at the
# same time, each with the same kernel buffer. Reports, per offered rate,
# what tcpreplay achieved, what each capture received and what the kernel
# dropped (pcap stats), and checks kaswatch's callbacks/hosts against
# `kaswatch read` on the same file whenever nothing was dropped.
#
#   bench/live.sh
#   PACKETS=100000 RATES="200000 400000" bench/live.sh
#   KW_ARGS="--snaplen 2048" bench/live.sh      # extra `kaswatch live` options
#   MIX=churn bench/live.sh                     # another gen_span.py mix (span heavy churn)
#   BACKENDS="pcap afpacket:2" bench/live.sh    # capture backends compared (default: pcap afpacket:1 afpacket:2)
#
# Env: MIX (span) PACKETS (300000) HOSTS (20000) SEED (1) RATES ("100000 200000 300000 400000 500000 700000")
#      TOPSPEED (1: also one --topspeed run, first) REPS (1) BUFFER_MIB (32) MTU (9000)
#      PORT (9464) KASWATCH (path; default: cargo build --release) KW_ARGS ("") NO_TCPDUMP (unset)
#      BACKENDS ("pcap afpacket:1 afpacket:2": `pcap` is libpcap, `afpacket:N` is
#      `--capture afpacket --fanout N`; every rate is run once per backend, each beside tcpdump)
# Output: Markdown table on stdout (also target/bench/live/report.md), logs in target/bench/live/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY=/usr/bin/python3
PACKETS="${PACKETS:-300000}"
HOSTS="${HOSTS:-20000}"
SEED="${SEED:-1}"
RATES="${RATES:-100000 200000 300000 400000 500000 700000}"
TOPSPEED="${TOPSPEED:-1}"
REPS="${REPS:-1}"
BUFFER_MIB="${BUFFER_MIB:-32}"
MTU="${MTU:-9000}"
PORT="${PORT:-9464}"
KW_ARGS="${KW_ARGS:-}"
BACKENDS="${BACKENDS:-pcap afpacket:1 afpacket:2}"
OUT=target/bench/live
MIX="${MIX:-span}"
if [ "$MIX" = span ]; then LIVE=live; else LIVE=live-$MIX; fi
PCAP=target/bench/$LIVE.pcap
TRUTH=target/bench/$LIVE.truth.tsv
mkdir -p "$OUT"

[ "$(id -u)" = 0 ] || { echo "bench/live.sh needs root (network namespaces, raw capture)" >&2; exit 1; }
for b in ip tcpreplay tcpdump curl timeout; do
    command -v "$b" >/dev/null || { echo "missing $b" >&2; exit 1; }
done

# ---------------------------------------------------------------- binary
if [ -z "${KASWATCH:-}" ]; then
    cargo build --release --bin kaswatch >&2
    KASWATCH=target/release/kaswatch
fi
[ -x "$KASWATCH" ] || { echo "kaswatch binary $KASWATCH not found" >&2; exit 1; }
KASWATCH="$(cd "$(dirname "$KASWATCH")" && pwd)/$(basename "$KASWATCH")"

# ---------------------------------------------------------------- capture (cached by args + generator hash)
KEY="mix=$MIX packets=$PACKETS hosts=$HOSTS seed=$SEED gen=$(sha256sum bench/gen_span.py | cut -c1-16)"
if [ -f "$PCAP" ] && [ -f "$TRUTH" ] && [ "$(cat target/bench/$LIVE.key 2>/dev/null)" = "$KEY" ]; then
    echo "capture: reusing $PCAP ($KEY)" >&2
else
    echo "capture: generating $PCAP ($KEY)" >&2
    rm -f target/bench/$LIVE.key
    $PY bench/gen_span.py --mix "$MIX" --packets "$PACKETS" --hosts "$HOSTS" --seed "$SEED" --out "$PCAP" --truth "$TRUTH" >&2
    echo "$KEY" > target/bench/$LIVE.key
fi
# Largest frame on the wire (classic pcap, either byte order): the veth MTU must carry it.
MAXFRAME=$($PY - "$PCAP" <<'EOF'
import struct, sys
f = open(sys.argv[1], 'rb'); h = f.read(24)
e = '<' if h[:4] in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1') else '>'
mx = 0
while True:
    r = f.read(16)
    if len(r) < 16: break
    _, _, incl, orig = struct.unpack(e + 'IIII', r)
    f.seek(incl, 1); mx = max(mx, orig)
print(mx)
EOF
)
# MTU counts the L3 payload; a frame is MTU + 14 (Ethernet) + 4 (one 802.1Q tag).
if (( MAXFRAME - 18 > MTU )); then MTU=$(( MAXFRAME - 14 )); fi
echo "capture: $PACKETS packets, largest frame $MAXFRAME B, veth MTU $MTU" >&2

# Reference result of the same file, offline.
"$KASWATCH" read "$PCAP" -q --format json --metrics-out "$OUT/read.prom" >/dev/null
sum_metric() {  # sum_metric FILE NAME [LABEL-SUBSTRING]: sum of all samples of NAME
    awk -v n="$2" -v l="${3:-}" '$1 ~ "^"n"([{]|$)" && index($1, l) { s += $NF } END { printf "%d", s }' "$1"
}
REF_CB=$(sum_metric "$OUT/read.prom" kaswatch_callbacks_total)
REF_HOSTS=$(sum_metric "$OUT/read.prom" kaswatch_hosts)
echo "reference (kaswatch read): $REF_CB callbacks, $REF_HOSTS hosts" >&2

# ---------------------------------------------------------------- namespaces, cleaned up on every path
ID=$$
NS_S="kwlive${ID}s"; NS_P="kwlive${ID}p"
IF_S="kwl${ID}a";    IF_P="kwl${ID}b"
KW_PID=""; TD_PID=""
stop_pid() {  # stop_pid PID SIGNAL: signal, wait up to 10 s, then SIGKILL
    local p="$1"
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
    kill -"$2" "$p" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}
cleanup() {
    stop_pid "$KW_PID" TERM; KW_PID=""
    stop_pid "$TD_PID" INT;  TD_PID=""
    ip netns del "$NS_S" 2>/dev/null || true
    ip netns del "$NS_P" 2>/dev/null || true
    ip link del "$IF_S" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

ip netns add "$NS_S"
ip netns add "$NS_P"
ip link add "$IF_S" mtu "$MTU" type veth peer name "$IF_P" mtu "$MTU"
ip link set "$IF_S" netns "$NS_S"
ip link set "$IF_P" netns "$NS_P"
# No IPv6 on the veth ends: no router solicitations/MLD mixed into the counts.
ip netns exec "$NS_S" sysctl -qw "net.ipv6.conf.$IF_S.disable_ipv6=1"
ip netns exec "$NS_P" sysctl -qw "net.ipv6.conf.$IF_P.disable_ipv6=1"
ip -n "$NS_S" link set lo up
ip -n "$NS_S" link set "$IF_S" up
ip -n "$NS_P" link set "$IF_P" up

metrics() { ip netns exec "$NS_S" curl -s --max-time 5 "http://127.0.0.1:$PORT/metrics"; }

# ---------------------------------------------------------------- one run
ROWS=()
backend_args() {  # backend_args pcap|afpacket:N -> kaswatch live flags
    case "$1" in
        pcap) ;;
        afpacket:*) echo "--capture afpacket --fanout ${1#afpacket:}" ;;
        *) echo "unknown backend $1 (pcap or afpacket:N)" >&2; exit 1 ;;
    esac
}
run_one() {  # run_one BACKEND LABEL RUN-ID TCPREPLAY-RATE-ARGS...
    local backend="$1" label="$2" rid="$3"; shift 3
    local d="$OUT/$rid"; rm -rf "$d"; mkdir -p "$d"
    # shellcheck disable=SC2086
    ip netns exec "$NS_S" "$KASWATCH" live -i "$IF_S" --listen "127.0.0.1:$PORT" \
        --buffer-size "$BUFFER_MIB" $(backend_args "$backend") $KW_ARGS >"$d/kaswatch.out" 2>"$d/kaswatch.err" &
    KW_PID=$!   # `ip netns exec` execs, so this is kaswatch's pid
    if [ -z "${NO_TCPDUMP:-}" ]; then
        ip netns exec "$NS_S" tcpdump -i "$IF_S" -n -w /dev/null -B $(( BUFFER_MIB * 1024 )) \
            >"$d/tcpdump.out" 2>"$d/tcpdump.err" &
        TD_PID=$!
    fi
    local ok=""
    for _ in $(seq 200); do
        if [ "$(ip netns exec "$NS_S" curl -s --max-time 1 "http://127.0.0.1:$PORT/healthz" 2>/dev/null)" = ok ] &&
           { [ -z "$TD_PID" ] || grep -q "listening on" "$d/tcpdump.err"; }; then ok=1; break; fi
        kill -0 "$KW_PID" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$ok" ] || { echo "captures did not start; kaswatch: $(cat "$d/kaswatch.err"); tcpdump: $(cat "$d/tcpdump.err" 2>/dev/null)" >&2; exit 1; }

    timeout 300 ip netns exec "$NS_P" tcpreplay --intf1="$IF_P" "$@" "$PCAP" >"$d/tcpreplay.out" 2>&1 ||
        { echo "tcpreplay failed:" >&2; cat "$d/tcpreplay.out" >&2; exit 1; }
    local achieved sent failed
    achieved=$(awk '/Rated:/ { for (i = 1; i <= NF; i++) if ($i ~ /^pps/) { v = $(i-1) } } END { printf "%d", v }' "$d/tcpreplay.out")
    sent=$(awk '/Successful packets:/ { print $NF }' "$d/tcpreplay.out")
    failed=$(awk '/Failed packets:/ { print $NF }' "$d/tcpreplay.out")

    # Drain: kaswatch reports counters and pcap stats every 0.5 s; wait until
    # received + dropped covers what was sent, or nothing moved for 2 s.
    local m prev="" same=0 rx=0 dk=0 di=0
    for _ in $(seq 60); do
        sleep 0.5
        m=$(metrics)
        rx=$(sum_metric <(echo "$m") kaswatch_packets_total "interface=\"$IF_S\"")
        dk=$(sum_metric <(echo "$m") kaswatch_capture_dropped_packets_total 'reason="kernel"')
        di=$(sum_metric <(echo "$m") kaswatch_capture_dropped_packets_total 'reason="interface"')
        (( rx + dk + di >= sent )) && { sleep 1; m=$(metrics); break; }
        if [ "$rx/$dk/$di" = "$prev" ]; then same=$((same + 1)); (( same >= 4 )) && break; else same=0; fi
        prev="$rx/$dk/$di"
    done
    echo "$m" > "$d/metrics.prom"
    rx=$(sum_metric "$d/metrics.prom" kaswatch_packets_total "interface=\"$IF_S\"")
    dk=$(sum_metric "$d/metrics.prom" kaswatch_capture_dropped_packets_total 'reason="kernel"')
    di=$(sum_metric "$d/metrics.prom" kaswatch_capture_dropped_packets_total 'reason="interface"')
    local cb hosts
    cb=$(sum_metric "$d/metrics.prom" kaswatch_callbacks_total)
    hosts=$(sum_metric "$d/metrics.prom" kaswatch_hosts)

    stop_pid "$KW_PID" TERM; KW_PID=""
    local trx="-" tdr="-"
    if [ -n "$TD_PID" ]; then
        stop_pid "$TD_PID" INT; TD_PID=""
        trx=$(awk '/packets received by filter/ { print $1 }' "$d/tcpdump.err")
        tdr=$(awk '/packets dropped by kernel/ { print $1 }' "$d/tcpdump.err")
    fi
    local check
    if (( dk + di > 0 || rx != sent )); then
        check="n/a (loss)"
    elif [ "$cb" = "$REF_CB" ] && [ "$hosts" = "$REF_HOSTS" ]; then
        check="same ($cb / $hosts)"
    else
        check="**differs** ($cb / $hosts vs $REF_CB / $REF_HOSTS)"
    fi
    echo "$backend $label: achieved $achieved pps, sent $sent (failed $failed); kaswatch rx $rx drop $dk+$di; tcpdump rx $trx drop $tdr; $check" >&2
    ROWS+=("$backend|$label|$achieved|$sent|$rx|$((dk + di))|$trx|$tdr|$check")
}

fmt() { [[ "$1" =~ ^[0-9]+$ ]] && sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1" || printf '%s' "$1"; }

for ((rep = 1; rep <= REPS; rep++)); do
    # Backends alternate within each rate, so machine load hits them alike.
    if [ "$TOPSPEED" = 1 ]; then
        for b in $BACKENDS; do run_one "$b" "topspeed" "r$rep-${b/:/}-topspeed" --topspeed; done
    fi
    for r in $RATES; do
        for b in $BACKENDS; do run_one "$b" "$r" "r$rep-${b/:/}-$r" --pps="$r"; done
    done
done

# ---------------------------------------------------------------- report
{
    echo "| backend | offered (pps) | achieved (pps, tcpreplay) | sent | kaswatch received | kaswatch dropped | tcpdump received | tcpdump dropped | callbacks / hosts vs \`read\` |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
    declare -A best=()
    for row in "${ROWS[@]}"; do
        IFS='|' read -r backend label ach sent rx drop trx tdr check <<<"$row"
        off=$label; [ "$label" != topspeed ] && off=$(fmt "$label")
        echo "| $backend | $off | $(fmt "$ach") | $(fmt "$sent") | $(fmt "$rx") | $(fmt "$drop") | $(fmt "$trx") | $(fmt "$tdr") | $check |"
        : "${best[$backend]:=0}"
        if (( drop == 0 && rx == sent && ach > best[$backend] )); then best[$backend]=$ach; fi
    done
    echo
    for b in $BACKENDS; do
        echo "Highest achieved rate with zero kaswatch drops, $b: **$(fmt "${best[$b]:-0}") pps** ($PACKETS packets of the $MIX mix, buffer $BUFFER_MIB MiB${KW_ARGS:+, kaswatch $KW_ARGS})."
    done
} | tee "$OUT/report.md"
