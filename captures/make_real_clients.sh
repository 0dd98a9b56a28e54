#!/bin/bash
# Generate captures/real-clients.pcap and captures/real-clients.expected.tsv
# with REAL clients (openssl s_client, curl) against local servers
# (openssl s_server, python3 http.server) in two private network namespaces.
#
#   kwcap-c  kwc0  198.18.0.1/24  fd00:6b77::1/64   (client)
#   kwcap-s  kws0  198.18.0.2/24  fd00:6b77::2/64   (server, tcpdump runs here)
#
# Nothing leaves the namespaces: there is no default route and the veth pair
# is the only link. Needs root, iproute2, openssl, curl, tcpdump, tshark and
# /usr/bin/python3 (ethtool is optional; it turns off segmentation offloads).
#
# Small segments: IPv6 refuses a link MTU below 1280, so the links stay at
# 1280, the client's IPv4 route gets "mtu lock 600", and the server's routes
# advertise a small MSS ("advmss"). Both client stacks then send TCP segments
# of at most ~500 bytes, so ClientHellos span 2-3 segments.
#
# The output is NOT deterministic (random ports, keys, ISNs, timestamps), so
# make_all.sh runs this only with --real. The expected table is derived from
# the produced pcap by expected_from_tshark.sh.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
OUT_PCAP="$HERE/real-clients.pcap"
OUT_TSV="$HERE/real-clients.expected.tsv"
PY=/usr/bin/python3
NC=kwcap-c
NS=kwcap-s
C4=198.18.0.1 S4=198.18.0.2
C6=fd00:6b77::1 S6=fd00:6b77::2

[ "$(id -u)" = 0 ] || { echo "make_real_clients.sh: needs root" >&2; exit 2; }
for t in ip openssl curl tcpdump tshark "$PY"; do
    command -v "$t" >/dev/null || { echo "make_real_clients.sh: missing $t" >&2; exit 2; }
done

TMP=$(mktemp -d /tmp/kwcap.XXXXXX)
PIDS=()
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    ip netns del "$NC" 2>/dev/null
    ip netns del "$NS" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

ip netns del "$NC" 2>/dev/null || true
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NC"
ip netns add "$NS"
ip link add kwc0 netns "$NC" type veth peer name kws0 netns "$NS"
inc() { ip netns exec "$NC" "$@"; }
ins() { ip netns exec "$NS" "$@"; }
for ns in "$NC" "$NS"; do
    ip netns exec "$ns" ip link set lo up
done
inc ip link set kwc0 address 02:6b:77:00:00:01 mtu 1280
ins ip link set kws0 address 02:6b:77:00:00:02 mtu 1280
if command -v ethtool >/dev/null; then
    inc ethtool -K kwc0 tso off gso off gro off >/dev/null 2>&1 || true
    ins ethtool -K kws0 tso off gso off gro off >/dev/null 2>&1 || true
fi
inc ip addr add $C4/24 dev kwc0
ins ip addr add $S4/24 dev kws0
inc ip -6 addr add $C6/64 dev kwc0 nodad
ins ip -6 addr add $S6/64 dev kws0 nodad
inc ip link set kwc0 up
ins ip link set kws0 up
inc ip route replace 198.18.0.0/24 dev kwc0 src $C4 mtu lock 600 advmss 500
ins ip route replace 198.18.0.0/24 dev kws0 src $S4 advmss 500
inc ip -6 route replace $S6/128 dev kwc0 advmss 480
ins ip -6 route replace $C6/128 dev kws0 advmss 480

# self-signed certificate
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=kwcap.test" \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" >/dev/null 2>&1

# servers (background jobs exec directly so that $! is the server's pid)
srv() { # name, command...
    local name=$1; shift
    ip netns exec "$NS" "$@" </dev/null >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
}
CERT=(-cert "$TMP/cert.pem" -key "$TMP/key.pem")
srv s443v4 openssl s_server -www -accept $S4:443 "${CERT[@]}" -groups ffdhe8192:X25519:P-256
srv s443v6 openssl s_server -www -6 -accept "[$S6]:443" "${CERT[@]}"
srv s8443 openssl s_server -www -accept $S4:8443 "${CERT[@]}"
mkdir -p "$TMP/www/updaters"
echo ok >"$TMP/www/updaters/updater.xml.dif"
srv h80 "$PY" -m http.server --bind $S4 --directory "$TMP/www" 80
srv h8080 "$PY" -m http.server --bind $S4 --directory "$TMP/www" 8080

rm -f "$OUT_PCAP"
ip netns exec "$NS" tcpdump -Z root -i kws0 -U -n -s 0 -w "$OUT_PCAP" >"$TMP/tcpdump.log" 2>&1 &
TCPDUMP=$!
PIDS+=($TCPDUMP)
for _ in $(seq 50); do
    grep -q listening "$TMP/tcpdump.log" 2>/dev/null && break
    sleep 0.1
done
# wait for the servers to listen
for port in 443 8443 80 8080; do
    for _ in $(seq 50); do
        ins ss -ltnH "sport = :$port" | grep -q . && break
        sleep 0.1
    done
done
sleep 0.5

step() { sleep 0.3; "$@" >>"$TMP/clients.log" 2>&1 || true; }
TO="timeout 10"

# 1. openssl s_client, big ClientHello: ffdhe8192 key share (1024 bytes)
step inc $TO openssl s_client -connect $S4:443 -servername dc1.ksn.kaspersky-labs.com \
    -alpn h2,http/1.1 -groups ffdhe8192:X25519:P-256:P-384 </dev/null
# 2. curl --resolve, IPv4
step inc $TO curl -sS -k -o /dev/null --resolve activation-v2.kaspersky.com:443:$S4 \
    https://activation-v2.kaspersky.com/
# 3. curl over IPv6
step inc $TO curl -sS -k -6 -o /dev/null --resolve "s07.upd.kaspersky.com:443:[$S6]" \
    https://s07.upd.kaspersky.com/
# 4. TLS to a non-standard port
step inc $TO openssl s_client -connect $S4:8443 -servername ds.kaspersky.com </dev/null
# 5. decoy SNI
step inc $TO curl -sS -k -o /dev/null --resolve notkaspersky.com:443:$S4 https://notkaspersky.com/
# 6. ordinary SNI
step inc $TO curl -sS -k -o /dev/null --resolve www.example.org:443:$S4 https://www.example.org/
# 7. HTTP/1.1 with a Kaspersky Host header
step inc $TO curl -sS -o /dev/null -H 'Host: dnl-03.geo.kaspersky.com' \
    http://$S4/updaters/updater.xml.dif
# 8. absolute-form request through a "proxy"
step inc $TO curl -sS -o /dev/null -x http://$S4:8080 \
    http://downloads.upd.kaspersky.com/index/u0607g.xml.dif
# 9. CONNECT through the "proxy" (http.server answers 501; the request line is what matters)
step inc $TO curl -sS -o /dev/null -p -x http://$S4:8080 https://cm.k.kaspersky-labs.com/
# 10. decoy: Kaspersky name only in the URL query
step inc $TO curl -sS -o /dev/null -H 'Host: www.example.org' 'http://198.18.0.2/?r=kaspersky.com'
sleep 1

kill -INT "$TCPDUMP"
wait "$TCPDUMP" || true
cat "$TMP/tcpdump.log" >&2
if [ -n "${KWCAP_DEBUG:-}" ]; then tail -n 5 "$TMP"/*.log >&2; fi

# expected table
{
    echo "# kaswatch real-clients.pcap expected Kaspersky matches (generated by make_real_clients.sh"
    echo "# via expected_from_tshark.sh from this exact pcap; real clients, so NOT reproducible)."
    echo "# frame = the frame that completes the ClientHello / HTTP request (TCP reassembly)."
    echo "# client 198.18.0.1 / fd00:6b77::1, server 198.18.0.2 / fd00:6b77::2."
    echo "# all names tshark sees, including decoys and ordinary names that must NOT match:"
    ./expected_from_tshark.sh "$OUT_PCAP" | sed 's/^/#   /'
    echo "# columns: frame	src_ip	protocol	name"
    ./expected_from_tshark.sh -k "$OUT_PCAP"
} >"$OUT_TSV"
cat "$OUT_TSV"
echo "ClientHello segment counts (frame, tcp.segment.count, SNI):"
tshark -r "$OUT_PCAP" -o tcp.desegment_tcp_streams:TRUE -o tls.desegment_ssl_records:TRUE \
    -d tcp.port==8443,tls -Y 'tls.handshake.type==1' -T fields -e frame.number -e tcp.segment.count -e tls.handshake.extensions_server_name 2>/dev/null
