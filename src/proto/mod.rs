//! Application-layer parsers: pure functions of bytes that find names. `dns`
//! (questions zero-copy, answers via hickory-proto), `tls` (ClientHello SNI,
//! ALPN, ECH), `quic` (Initial decryption and CRYPTO reassembly), `http`
//! (request and response heads), `kupdate` (update paths and magic), `ident`
//! (DHCP, DHCPv6, NetBIOS, EUI-64 host identity). Per protocol, the parser and its
//! stream state sit together: what a TCP direction carries next is asked of
//! `dns::tcp` (length-prefixed messages), `tls` (records around a
//! ClientHello), `socks` (proxy handshakes) and `http::stream` (bodies,
//! response magic), and a UDP flow's QUIC hello collection is
//! [`quic::QuicFlow`]; `flow.rs` only tracks and reassembles connections.
//! `name` normalises what they return before the matcher sees it.

pub mod dns;
pub mod http;
pub mod ident;
pub mod kupdate;
pub mod name;
pub mod quic;
pub mod sha256x8;
pub mod socks;
pub mod tls;

crate::stats::counter_enum! {
    /// Where a name was seen.
    #[derive(PartialOrd, Ord)]
    Protocol {
        Dns => "dns",
        Tls => "tls",
        Quic => "quic",
        Http => "http",
        /// A connection to an address resolved from a matching name.
        Ip => "ip",
    }
}

impl Protocol {
    /// Kind column of `--all-names` (same words as the tshark truth files).
    pub fn name_kind(self) -> &'static str {
        match self {
            Protocol::Dns => "dns-query",
            Protocol::Tls => "tls-sni",
            Protocol::Quic => "quic-sni",
            Protocol::Http => "http-host",
            Protocol::Ip => "ip",
        }
    }
}
