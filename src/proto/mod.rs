//! Application-layer parsers: pure functions of bytes that find names. `dns`
//! (questions zero-copy, answers via hickory-proto), `tls` (ClientHello SNI,
//! ALPN, ECH), `quic` (Initial decryption and CRYPTO reassembly), `http`
//! (request line and Host). The flow layer feeds them; `name` normalises what
//! they return before the matcher sees it.

pub mod dns;
pub mod http;
pub mod ident;
pub mod kupdate;
pub mod name;
pub mod quic;
pub mod tls;

/// Where a name was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Dns,
    Tls,
    Quic,
    Http,
    /// A connection to an address resolved from a matching name.
    Ip,
}

impl Protocol {
    pub const ALL: [Protocol; 5] = [
        Protocol::Dns,
        Protocol::Tls,
        Protocol::Quic,
        Protocol::Http,
        Protocol::Ip,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Dns => "dns",
            Protocol::Tls => "tls",
            Protocol::Quic => "quic",
            Protocol::Http => "http",
            Protocol::Ip => "ip",
        }
    }
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
