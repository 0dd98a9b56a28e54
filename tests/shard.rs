//! `read --workers N` shards packets by their innermost addresses: a
//! capture built here (many inner hosts inside one VXLAN tunnel, and one
//! query in a tunnelled datagram fragmented at the outer layer, written
//! first fragment last) gives every callback, the fragmented one included,
//! and the same report and events with 1, 2 and 4 workers.

// Test code through and through: clippy.toml's allow-*-in-tests applies.
#![cfg(test)]

mod common;
use common::*;

const OUTER_SRC: [u8; 4] = [198, 51, 100, 1];
const OUTER_DST: [u8; 4] = [198, 51, 100, 2];
const INNER_HOSTS: usize = 40;
/// The inner host whose query travels in fragments.
const FRAGMENTED_HOST: [u8; 4] = [10, 77, 1, 1];

/// Ethernet/IPv4 frame; `frag` is the flags/offset word.
fn outer_frame(payload: &[u8], id: u16, frag: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 0xee, 2, 0, 0, 0, 0, 0xe1, 0x08, 0x00];
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&id.to_be_bytes());
    ip.extend_from_slice(&frag.to_be_bytes());
    ip.extend_from_slice(&[64, 17, 0, 0]);
    ip.extend_from_slice(&OUTER_SRC);
    ip.extend_from_slice(&OUTER_DST);
    f.extend_from_slice(&ip);
    f.extend_from_slice(payload);
    f
}

/// UDP/VXLAN (port 4789, VNI 7) carrying an inner Ethernet frame.
fn vxlan(inner: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&50000u16.to_be_bytes());
    u.extend_from_slice(&4789u16.to_be_bytes());
    u.extend_from_slice(&((16 + inner.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0, 0x08, 0, 0, 0, 0, 0, 7, 0]);
    u.extend_from_slice(inner);
    u
}

fn name(i: usize) -> String {
    format!("s{:02}.upd.kaspersky.com", i % 100)
}

fn build(path: &std::path::Path) {
    let mut w = PcapWriter::create(path, 1);
    let mut ts = 1_700_000_000_000_000_000u64;
    for i in 0..INNER_HOSTS {
        ts += 1_000_000;
        let q = dns_query([10, 77, 0, i as u8 + 1], i as u16, &name(i));
        w.packet(ts, &outer_frame(&vxlan(&q), i as u16, 0));
    }
    // The fragmented datagram: 40-byte pieces of the outer UDP payload, the
    // first piece (UDP, VXLAN, the inner headers) written last.
    let q = dns_query(FRAGMENTED_HOST, 4242, "s99.upd.kaspersky.com");
    let payload = vxlan(&q);
    let pieces: Vec<&[u8]> = payload.chunks(40).collect();
    assert!(pieces.len() >= 3);
    let mut order: Vec<usize> = (1..pieces.len()).collect();
    order.push(0);
    for i in order {
        ts += 1_000_000;
        let more = if i + 1 < pieces.len() { 0x2000 } else { 0 };
        w.packet(ts, &outer_frame(pieces[i], 999, more | (i * 40 / 8) as u16));
    }
    // Traffic after it, so the held pieces are not just flushed at the end.
    for i in 0..INNER_HOSTS {
        ts += 1_000_000;
        let q = dns_query([10, 77, 2, i as u8 + 1], 1000 + i as u16, &name(i));
        w.packet(ts, &outer_frame(&vxlan(&q), 2000 + i as u16, 0));
    }
}

#[test]
fn fragmented_tunnelled_query_first_fragment_last_counts_with_four_workers() {
    let path = tmp("shard-frag-vxlan.pcap");
    build(&path);
    let cap = path.to_string_lossy();
    let read = |workers: &str| {
        let o = read_json_events(&cap, workers, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        let err = stderr(&o);
        // The report is on stderr (events took stdout), the summary line last.
        let (report, summary) = err.trim_end().rsplit_once('\n').unwrap();
        (stdout(&o), report.to_string(), summary.to_string())
    };
    let (ev1, rep1, sum1) = read("1");
    let hosts = 2 * INNER_HOSTS + 1;
    assert!(
        sum1.contains(&format!("{hosts} hosts matched, {hosts} callbacks")),
        "{sum1}"
    );
    for workers in ["2", "4"] {
        let (ev, rep, sum) = read(workers);
        assert_eq!(ev, ev1, "events, --workers {workers}");
        assert_eq!(rep, rep1, "report, --workers {workers}");
        assert!(
            sum.contains(&format!("{hosts} hosts matched, {hosts} callbacks")),
            "--workers {workers}: {sum}"
        );
        let frag_events: Vec<&str> = ev
            .lines()
            .filter(|l| l.contains("10.77.1.1") && l.contains("s99.upd.kaspersky.com"))
            .collect();
        assert_eq!(frag_events.len(), 1, "--workers {workers}: {ev}");
    }
    let json: serde_json::Value = serde_json::from_str(&rep1).unwrap();
    let host = json["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "10.77.1.1")
        .unwrap();
    assert_eq!(host["names"][0], "s99.upd.kaspersky.com");
}
