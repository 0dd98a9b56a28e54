//! kaswatch: a passive network sensor that finds devices still phoning home to
//! Kaspersky update, KSN, activation and management endpoints.
//!
//! One pipeline, many drivers (the `kaswatch` binary, tests, benches):
//!
//! ```text
//! PacketSource (pcap/pcapng file | live libpcap)          capture/
//!   -> decode   link, VLAN/QinQ, MPLS, tunnels, IPv4/IPv6, fragments   decode/
//!   -> flow     bounded per-flow buffers: TCP streams, QUIC CRYPTO      flow.rs
//!   -> proto    pure parsers: dns, tls, quic, http -> names             proto/
//!   -> matcher  compiled signatures -> category, signature              matcher.rs
//!   -> hosts    per-host state, bounded                                 hosts.rs
//!   -> export   report table, JSON-lines events, Prometheus metrics     export/
//! ```
//!
//! Time is always packet time, so offline output is deterministic. Every
//! buffer, table and loop has a named `MAX_*` limit and every drop at a limit
//! is counted in [`stats::Counters`].

pub mod bytes;
pub mod capture;
pub mod cli;
pub mod decode;
pub mod error;
pub mod event;
pub mod evidence;
pub mod export;
pub mod flow;
pub mod glob;
pub mod hosts;
pub mod identity;
pub mod inventory;
pub mod live;
pub mod matcher;
pub mod oui;
pub mod pipeline;
pub mod proto;
pub mod reload;
pub mod run;
pub mod signatures;
pub mod stats;
pub mod table;
#[cfg(test)]
pub(crate) mod testrng;
pub mod text;
pub mod timefmt;
