#!/bin/sh
# Print the names tshark sees in a capture, one row per message:
#   frame <TAB> src_ip <TAB> protocol <TAB> name
# protocol: tls  (TLS ClientHello SNI over TCP),
#           quic (ClientHello SNI inside a QUIC Initial; tshark decrypts these),
#           http (HTTP request: the Host header, or for CONNECT the
#                 request-target authority).
# name is lowercased, without port, IPv6 brackets or a trailing dot.
# frame is the frame that completes the message (TCP reassembly on; for QUIC
# the packet in which tshark completes the CRYPTO stream).
#
# Usage: captures/expected_from_tshark.sh [-k] FILE
#   -k  keep only Kaspersky names: kaspersky.com, kaspersky-labs.com and their
#       subdomains (what kaswatch must report; lookalikes are dropped).
set -eu
KONLY=0
if [ "${1:-}" = "-k" ]; then KONLY=1; shift; fi
[ $# -eq 1 ] || { echo "usage: $0 [-k] FILE" >&2; exit 2; }

tshark -r "$1" -n \
    -o tcp.desegment_tcp_streams:TRUE -o tls.desegment_ssl_records:TRUE \
    -o http.desegment_headers:TRUE \
    -d tcp.port==8443,tls \
    -Y 'tls.handshake.type==1 || http.request' \
    -T fields -E separator='	' -E occurrence=a -E aggregator=',' \
    -e frame.number -e ip.src -e ipv6.src -e udp.srcport \
    -e tls.handshake.extensions_server_name \
    -e http.request.method -e http.request.uri -e http.host |
awk -F '\t' -v konly="$KONLY" '
function clean(h) {
    h = tolower(h)
    sub(/^[a-z][a-z0-9+.-]*:\/\//, "", h)       # scheme of an absolute URI
    sub(/\/.*$/, "", h)                          # path
    sub(/^.*@/, "", h)                           # userinfo
    if (h ~ /^\[/) { sub(/^\[/, "", h); sub(/\].*$/, "", h) }   # [v6]:port
    else sub(/:[0-9]*$/, "", h)                  # host:port
    sub(/\.$/, "", h)
    return h
}
function kasp(n) {
    return n == "kaspersky.com" || n == "kaspersky-labs.com" ||
           n ~ /\.kaspersky\.com$/ || n ~ /\.kaspersky-labs\.com$/
}
function emit(frame, src, proto, name) {
    if (name == "") return
    if (konly && !kasp(name)) return
    print frame "\t" src "\t" proto "\t" name
}
{
    frame = $1; src = ($2 != "") ? $2 : $3
    # tunnelled packets can carry several addresses; the innermost is last
    n = split(src, a, ","); src = a[n]
    if ($5 != "") {
        proto = ($4 != "") ? "quic" : "tls"
        n = split($5, s, ",")
        for (i = 1; i <= n; i++) emit(frame, src, proto, clean(s[i]))
    }
    if ($6 != "") {
        n = split($6, m, ","); split($7, u, ","); split($8, h, ",")
        for (i = 1; i <= n; i++) {
            name = (m[i] == "CONNECT") ? clean(u[i]) : clean(h[i])
            if (name == "" && u[i] ~ /^[a-zA-Z]+:\/\//) name = clean(u[i])
            emit(frame, src, "http", name)
        }
    }
}'
