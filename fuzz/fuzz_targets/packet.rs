//! Whole pipeline from link-layer bytes: each record of the input is one
//! captured frame; its tag picks the link type (low 5 bits) and how much
//! packet time passes before it (high 3 bits). Observations go through a
//! Merger (host table, attribution map) as in `kaswatch read`.
#![no_main]

use kaswatch::capture::RawPacket;
use kaswatch::decode::linktype as lt;
use kaswatch::hosts::HostTable;
use kaswatch::pipeline::{Merger, PktMeta, Worker, WorkerConfig};
use libfuzzer_sys::fuzz_target;

/// Every link type the decoder knows, plus one it does not.
const LINKTYPES: [u32; 18] = [
    lt::ETHERNET,
    lt::RAW,
    lt::LINUX_SLL,
    lt::LINUX_SLL2,
    lt::NULL,
    lt::LOOP,
    lt::IPV4,
    lt::IPV6,
    lt::PPP,
    lt::PPP_HDLC,
    lt::C_HDLC,
    lt::RAW_OLD,
    lt::RAW_OLD2,
    lt::IEEE802_11,
    lt::IEEE802_11_RADIOTAP,
    lt::NFLOG,
    lt::PKTAP,
    147, // LINKTYPE_USER0: unknown to the decoder
];

/// Packet time between frames, by the tag's top 3 bits.
const DELTA_NS: [u64; 8] = [
    0,
    1_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    61_000_000_000,
    3_600_000_000_000,
    86_400_000_000_000,
];

fuzz_target!(|data: &[u8]| {
    let matcher = kaswatch_fuzz::matcher();
    let cfg = WorkerConfig {
        all_names: data.first().is_some_and(|b| b & 0x80 != 0),
    };
    let mut worker = Worker::new(matcher.clone(), cfg);
    // New QUIC connections' Initials held and keyed in batches, their
    // observations taken every 16 packets (otherwise each packet's at once).
    let batching = data.first().is_some_and(|b| b & 0x40 != 0);
    worker.batch_quic_keys(batching);
    let mut merger = Merger::new(matcher, HostTable::new(64, Some(600_000_000_000)));
    let mut ts = 1_700_000_000_000_000_000u64;
    for (i, (tag, bytes)) in kaswatch_fuzz::records(data).enumerate().take(256) {
        ts = ts.saturating_add(DELTA_NS[usize::from(tag >> 5)]);
        let raw = RawPacket {
            ts,
            linktype: LINKTYPES[usize::from(tag & 0x1f) % LINKTYPES.len()],
            interface: 0,
            data: bytes,
            wire_len: bytes.len() as u32,
        };
        let meta = PktMeta {
            seq: i as u64,
            input: 0,
            frame: i as u64 + 1,
        };
        worker.process(meta, &raw);
        if !batching || i % 16 == 15 {
            for o in worker.take() {
                merger.apply(&o);
            }
        }
    }
    for o in worker.take() {
        merger.apply(&o);
    }
    let _ = worker.counters();
    merger.flush();
});
