//! The JSON event schema (one object per match, JSON Lines), shared by `read`
//! and `live`. Built by the pipeline's merger from an observation that
//! matched a signature; serialised by `export::jsonlog`. Documented in the
//! README; later protocols add values, never new shapes.

use serde::Serialize;

/// One callback.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Event {
    /// Packet time, RFC 3339 UTC with microseconds.
    pub ts: String,
    pub src_ip: String,
    /// Source MAC of the innermost Ethernet header, or null.
    pub src_mac: Option<String>,
    pub dst_ip: String,
    pub dst_port: u16,
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// `dns`, `tls`, `quic`, `http` or `ip`.
    pub protocol: &'static str,
    /// Lowercased, no trailing dot; odd bytes escaped as `\DDD`.
    pub name: String,
    pub category: &'static str,
    /// What the callback rests on: `name`, `content` or `address`.
    pub evidence: &'static str,
    /// `device`, or `resolver` for a host that answers DNS for others (its
    /// queries are its clients' lookups, forwarded).
    pub role: &'static str,
    /// The signature pattern that matched.
    pub signature: String,
    /// Input file (read mode) or interface (live mode).
    pub file: String,
    /// 1-based frame number in that file (the frame that completed the message).
    pub frame: u64,
    /// First ALPN protocol offered (TLS/QUIC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
    /// TLS/QUIC ClientHello carried encrypted_client_hello (name is the outer SNI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ech: Option<bool>,
    /// Encapsulations, outermost first, e.g. ["vlan:10","vxlan:42"].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tunnel: Vec<String>,
    /// Host is in the managed inventory.
    pub managed: bool,
    /// The device: its MAC when its addresses are grouped, else `src_ip`.
    pub device: String,
    /// What the device calls itself (DHCP, mDNS, LLMNR, NetBIOS), if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The MAC's vendor (IEEE registry), if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
}
