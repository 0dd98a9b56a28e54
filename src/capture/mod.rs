//! Packet sources. `file.rs` reads pcap/pcapng (optionally gzip) with the
//! pure-Rust pcap-parser (libpcap stops at the first pcapng interface whose
//! link type differs from the first); `live.rs` captures from interfaces with
//! libpcap, `afpacket.rs` with AF_PACKET fanout rings. All hand [`RawPacket`]s to the pipeline; `bpf.rs` applies a
//! libpcap-compiled filter to packets read from files.

pub mod afpacket;
pub mod bpf;
pub mod file;
pub mod live;

/// One captured frame, borrowed from the source's buffer.
#[derive(Clone, Copy, Debug)]
pub struct RawPacket<'a> {
    /// Packet time, nanoseconds since the Unix epoch.
    pub ts: u64,
    /// pcap LINKTYPE_* of the interface it was captured on.
    pub linktype: u32,
    /// Interface index within the file (pcapng) or live source.
    pub interface: u32,
    /// Captured bytes.
    pub data: &'a [u8],
    /// Length on the wire.
    pub wire_len: u32,
}
