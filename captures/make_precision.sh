#!/bin/bash
# Generate captures/precision.pcap with REAL software in private network
# namespaces, then derive captures/precision.expected.tsv and
# captures/precision.hosts.tsv from it with precision_expected.py (tshark).
#
# One switch: namespace kwp-sw holds the bridge kwpbr0; tcpdump records on it
# (LINKTYPE_ETHERNET, -s 0). Every host is its own namespace with one veth
# (eth0) plugged into the bridge. IPv6 is disabled everywhere (no ND/MLD noise).
#
#   ns      addr         MAC                 software
#   kwp-r   10.77.0.2    02:6b:77:00:00:02   R: dnsmasq, forwarding resolver (clients use it)
#   kwp-u   10.77.0.3    02:6b:77:00:00:03   U: dnsmasq in auth mode: authoritative only, no recursion
#   kwp-x   10.77.0.80   02:6b:77:00:00:50   X: shared server: openssl s_server :443, python http.server :80
#   kwp-y   10.77.0.90   02:6b:77:00:00:5a   Y: Kaspersky-only server: openssl s_server :443, TCP sink :80
#   kwp-a   10.77.0.11   02:6b:77:00:00:0b   A: curl + openssl s_client to dnl-01.geo.kaspersky.com (SNI)
#   kwp-b   10.77.0.12   02:6b:77:00:00:0c   B: curl https://www.shop-example.com/ (SNI, same X)
#   kwp-c   10.77.0.13   02:6b:77:00:00:0d   C: curl http://static.news-example.org/ (Host, same X)
#   kwp-d   10.77.0.14   02:6b:77:00:00:0e   D: s_client -noservername to activation-v2.kaspersky.com:443,
#                                               and 10 non-HTTP bytes over TCP to activation-v2...:80
#   kwp-e   10.77.0.15   02:6b:77:00:00:0f   E: s_client -noservername to 10.77.0.90:443 (IP literal, no DNS)
#
# U answers: dnl-01.geo.kaspersky.com, www.shop-example.com, static.news-example.org -> X;
# activation-v2.kaspersky.com -> Y (TTL 300, so R caches). Clients resolve through R via
# /etc/netns/<ns>/resolv.conf (glibc, as a real client would). The sensor sees both legs:
# client -> R and R -> U.
#
# Nothing leaves the namespaces: no default routes, the bridge is the only link.
# Needs root, iproute2, dnsmasq (apt-get install dnsmasq-base), openssl, curl, tcpdump,
# tshark, /usr/bin/python3; ethtool is optional (turns off offloads).
#
# Usage: captures/make_precision.sh          regenerate (root); replaces the three files
#                                            only when precision_expected.py --check-scenario
#                                            confirms every scenario and the pcap is < 100 kB
#        captures/make_precision.sh --check  re-derive the tables from the committed pcap
#                                            and diff them (tshark only, no root)
#
# The output is NOT deterministic (ports, DNS ids, keys, ISNs, timestamps, and how
# many packets glibc/dnsmasq send), so make_all.sh runs this only with --real and
# the pcap and both tables are committed together. Rerunning is safe (idempotent):
# stale namespaces and /etc/netns entries from an aborted run are removed first.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
OUT_PCAP="$HERE/precision.pcap"
OUT_TSV="$HERE/precision.expected.tsv"
OUT_HOSTS="$HERE/precision.hosts.tsv"
PY=/usr/bin/python3
SW=kwp-sw BR=kwpbr0
HOSTS="r u x y a b c d e"
declare -A IP=([r]=10.77.0.2 [u]=10.77.0.3 [x]=10.77.0.80 [y]=10.77.0.90
               [a]=10.77.0.11 [b]=10.77.0.12 [c]=10.77.0.13 [d]=10.77.0.14 [e]=10.77.0.15)
R=${IP[r]} U=${IP[u]} X=${IP[x]} Y=${IP[y]}

# --check: re-derive both tables from the committed pcap and compare (no root needed)
if [ "${1:-}" = "--check" ]; then
    CK=$(mktemp -d /tmp/kwprec-check.XXXXXX)
    trap 'rm -rf "$CK"' EXIT
    cp "$OUT_PCAP" "$CK/precision.pcap"
    "$PY" "$HERE/precision_expected.py" --check-scenario "$CK/precision.pcap"
    diff "$OUT_TSV" "$CK/precision.expected.tsv" >&2 && diff "$OUT_HOSTS" "$CK/precision.hosts.tsv" >&2 || {
        echo "make_precision.sh: committed tables differ from precision_expected.py" >&2
        exit 1
    }
    echo "precision.pcap: committed tables match tshark ($(grep -vc '^#' "$OUT_TSV") events)"
    exit 0
fi

[ "$(id -u)" = 0 ] || { echo "make_precision.sh: needs root" >&2; exit 2; }
for t in ip dnsmasq openssl curl tcpdump tshark "$PY"; do
    command -v "$t" >/dev/null || { echo "make_precision.sh: missing $t" >&2; exit 2; }
done

TMP=$(mktemp -d /tmp/kwprec.XXXXXX)
PIDS=()
ETC_NETNS_MADE=0
[ -d /etc/netns ] || ETC_NETNS_MADE=1
teardown() {
    for h in $HOSTS; do
        ip netns del "kwp-$h" 2>/dev/null || true
        rm -rf "/etc/netns/kwp-$h"
    done
    ip netns del "$SW" 2>/dev/null || true
    if [ "$ETC_NETNS_MADE" = 1 ]; then rmdir /etc/netns 2>/dev/null || true; fi
    return 0
}
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    teardown
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
teardown

nsx() { local h=$1; shift; ip netns exec "kwp-$h" "$@"; }
noipv6() {
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
        net.ipv6.conf.default.disable_ipv6=1 2>/dev/null || true
}

# the switch
ip netns add "$SW"
noipv6 "$SW"
ip netns exec "$SW" ip link set lo up
ip netns exec "$SW" ip link add "$BR" type bridge stp_state 0 forward_delay 0 mcast_snooping 0
ip netns exec "$SW" ip link set "$BR" address 02:6b:77:00:00:fe
ip netns exec "$SW" ip link set "$BR" up

# the hosts
mkdir -p /etc/netns
for h in $HOSTS; do
    ns=kwp-$h
    ip netns add "$ns"
    noipv6 "$ns"
    ip link add eth0 netns "$ns" type veth peer name "p-$h" netns "$SW"
    last=${IP[$h]##*.}
    nsx "$h" ip link set lo up
    nsx "$h" ip link set eth0 address "$(printf '02:6b:77:00:00:%02x' "$last")"
    if command -v ethtool >/dev/null; then
        nsx "$h" ethtool -K eth0 tso off gso off gro off >/dev/null 2>&1 || true
        ip netns exec "$SW" ethtool -K "p-$h" tso off gso off gro off >/dev/null 2>&1 || true
    fi
    nsx "$h" ip addr add "${IP[$h]}/24" dev eth0
    nsx "$h" ip link set eth0 up
    ip netns exec "$SW" ip link set "p-$h" master "$BR" up
    # glibc in a client namespace asks R (ip netns exec bind-mounts this over
    # /etc/resolv.conf); servers get a resolver on their own loopback where nothing
    # listens, so their own lookups (python's getfqdn at bind) stay off the wire
    mkdir -p "/etc/netns/$ns"
    case $h in a|b|c|d|e) ns_ip=$R ;; *) ns_ip=127.0.0.1 ;; esac
    printf 'nameserver %s\noptions timeout:2 attempts:2\n' "$ns_ip" >"/etc/netns/$ns/resolv.conf"
done
if command -v ethtool >/dev/null; then
    ip netns exec "$SW" ethtool -K "$BR" tso off gso off gro off >/dev/null 2>&1 || true
fi

# small EC certificate (keeps the capture small)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=kwprec.test" -keyout "$TMP/key.pem" -out "$TMP/cert.pem" >/dev/null 2>&1

srv() { # name, host, command...   (exec directly so that $! is the server's pid)
    local name=$1 h=$2; shift 2
    ip netns exec "kwp-$h" "$@" </dev/null >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
}
DNSMASQ=(dnsmasq -k --conf-file=/dev/null --no-hosts --no-resolv --bind-interfaces
         --pid-file= --user=root --group=root --log-queries)
# U: authoritative server (dnsmasq auth mode) for three zones, TTL 300, no recursion:
# names without an AAAA record get NOERROR/NODATA with the zone's SOA
srv u-dns u "${DNSMASQ[@]}" --listen-address=$U --log-facility="$TMP/u-dns.queries" \
    --auth-server=ns1.u.test,$U --auth-ttl=300 --local-ttl=300 \
    --auth-zone=kaspersky.com --auth-zone=shop-example.com --auth-zone=news-example.org \
    --host-record=dnl-01.geo.kaspersky.com,$X \
    --host-record=www.shop-example.com,$X \
    --host-record=static.news-example.org,$X \
    --host-record=activation-v2.kaspersky.com,$Y
# R: forwarding resolver with a cache; the clients' resolver
srv r-dns r "${DNSMASQ[@]}" --listen-address=$R --log-facility="$TMP/r-dns.queries" \
    --server=$U --cache-size=150
CERT=(-cert "$TMP/cert.pem" -key "$TMP/key.pem")
srv x443 x openssl s_server -www -accept $X:443 "${CERT[@]}"
mkdir -p "$TMP/www"
echo ok >"$TMP/www/index.html"
srv x80 x "$PY" -m http.server --bind $X --directory "$TMP/www" 80
srv y443 y openssl s_server -www -accept $Y:443 "${CERT[@]}"
# Y:80: a plain TCP sink (reads what the client sends, answers 4 bytes, closes)
srv y80 y "$PY" -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 80)); s.listen(4)
while True:
    c, _ = s.accept(); c.settimeout(3)
    try:
        c.recv(1024); c.sendall(b"\x00\x00ok")
    except OSError:
        pass
    c.close()
' $Y

# record into $TMP; the committed files are replaced only after the checks pass
PCAP="$TMP/precision.pcap"
ip netns exec "$SW" tcpdump -Z root -i "$BR" -U -n -s 0 -w "$PCAP" >"$TMP/tcpdump.log" 2>&1 &
TCPDUMP=$!
PIDS+=($TCPDUMP)
for _ in $(seq 50); do
    grep -q listening "$TMP/tcpdump.log" 2>/dev/null && break
    sleep 0.1
done
wait_listen() { # host, ss filter
    for _ in $(seq 50); do
        nsx "$1" ss -4 -lnH "$2" 2>/dev/null | grep -q . && return 0
        sleep 0.1
    done
    echo "make_precision.sh: nothing listening on $1 ($2)" >&2
    tail -n 5 "$TMP"/*.log >&2
    exit 1
}
wait_listen u 'sport = :53'
wait_listen r 'sport = :53'
wait_listen x 'sport = :443'
wait_listen x 'sport = :80'
wait_listen y 'sport = :443'
wait_listen y 'sport = :80'
sleep 0.5

FAIL=0
step() { # label, host, command...   (a client that fails is reported, the run goes on)
    local label=$1 h=$2; shift 2
    sleep 0.4
    echo "== $label" >>"$TMP/clients.log"
    nsx "$h" timeout 10 "$@" </dev/null >>"$TMP/clients.log" 2>&1 || {
        echo "make_precision.sh: step $label failed" >&2
        FAIL=1
    }
}

# A: named TLS to X, twice (two connections, each resolving through R)
step A1 a curl -sS -k -o /dev/null https://dnl-01.geo.kaspersky.com/
step A2 a openssl s_client -connect dnl-01.geo.kaspersky.com:443 -brief
# B: a shop on the same address X
step B b curl -sS -k -o /dev/null https://www.shop-example.com/
# C: a news site on X, plain HTTP
step C c curl -sS -o /dev/null http://static.news-example.org/
# D: TLS without SNI to Y (Kaspersky-only address), then non-HTTP bytes to Y:80
step D1 d openssl s_client -connect activation-v2.kaspersky.com:443 -noservername -brief
step D2 d "$PY" -c '
import socket
s = socket.create_connection(("activation-v2.kaspersky.com", 80), timeout=5)
s.sendall(b"\x01\x02\x03\x04kwp\x00\r\n")
s.recv(16)
s.close()
'
# E: no DNS at all; IP literal, no SNI
step E e openssl s_client -connect $Y:443 -noservername -brief
sleep 1

kill -INT "$TCPDUMP"
wait "$TCPDUMP" || true
cat "$TMP/tcpdump.log" >&2
if [ -n "${KWPREC_DEBUG:-}" ] || [ "$FAIL" = 1 ]; then
    tail -n 20 "$TMP"/*.log "$TMP"/*.queries >&2 || true
fi
[ "$FAIL" = 0 ] || { echo "make_precision.sh: a client failed; pcap not usable" >&2; exit 1; }

# expected tables from tshark, and a check that every scenario came out as intended
"$PY" "$HERE/precision_expected.py" --check-scenario "$PCAP" || {
    echo "make_precision.sh: scenario check failed; committed files left alone" >&2
    exit 1
}
size=$(stat -c %s "$PCAP")
[ "$size" -lt 100000 ] || { echo "make_precision.sh: capture is $size bytes (>= 100 kB)" >&2; exit 1; }
cp "$PCAP" "$OUT_PCAP"
cp "$TMP/precision.expected.tsv" "$OUT_TSV"
cp "$TMP/precision.hosts.tsv" "$OUT_HOSTS"
echo "wrote $OUT_PCAP ($size bytes, $(tshark -r "$OUT_PCAP" 2>/dev/null | wc -l) frames)" >&2
cat "$OUT_TSV" "$OUT_HOSTS"
