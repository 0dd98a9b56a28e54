//! No heap allocation per packet on the common path.
//!
//! A counting global allocator (this test binary only) wraps the system
//! allocator. Established TCP flows (handshake, first client/server bytes:
//! TLS hellos with unmatched names, HTTP, SSH banners, opaque data) are set
//! up during a warm-up, where flow creation may allocate. Then the Worker
//! processes well over 100k further packets: bulk data segments both ways,
//! pure ACKs and unmatched DNS queries over UDP, while allocations on this
//! thread are counted. The assertion is the goal (0), with a tiny tolerance
//! for amortised table growth.
//!
//! When it fails, rerun with a backtrace of the first allocations:
//!
//!     KASWATCH_ALLOC_TRACE=1 cargo test --release --test alloc -- --nocapture
//!
//! Frames are built in Rust (`benches/support/frames.rs`) and patched in
//! place (sequence numbers, DNS ids and names), so the measured loop itself
//! allocates nothing.

// Test code through and through: clippy.toml's allow-*-in-tests applies.
#![cfg(test)]

use kaswatch::capture::RawPacket;
use kaswatch::decode::linktype;
use kaswatch::matcher::Matcher;
use kaswatch::pipeline::{PktMeta, Worker, WorkerConfig};
use kaswatch::signatures::SignatureSet;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[path = "../benches/support/frames.rs"]
mod frames;

// ------------------------------------------------------------------ counting allocator

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static TRACES: Mutex<Vec<String>> = Mutex::new(Vec::new());
const MAX_TRACES: usize = 6;

thread_local! {
    /// Count allocations made on this thread (the measuring test thread only).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Capture backtraces (set from KASWATCH_ALLOC_TRACE).
    static TRACE: Cell<bool> = const { Cell::new(false) };
    /// Re-entrancy guard while a backtrace is being captured.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

fn note(size: usize) {
    let on = COUNTING.try_with(Cell::get).unwrap_or(false);
    if !on || IN_HOOK.try_with(Cell::get).unwrap_or(true) {
        return;
    }
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(size as u64, Ordering::Relaxed);
    if TRACE.try_with(Cell::get).unwrap_or(false) {
        IN_HOOK.with(|g| g.set(true));
        if let Ok(mut t) = TRACES.lock() {
            if t.len() < MAX_TRACES {
                let bt = std::backtrace::Backtrace::force_capture();
                t.push(format!("allocation of {size} bytes:\n{bt}"));
            }
        }
        IN_HOOK.with(|g| g.set(false));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size());
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note(l.size());
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note(new);
        unsafe { System.realloc(p, l, new) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ------------------------------------------------------------------ traffic

const FLOWS: usize = 64;
const DNS_CLIENTS: usize = 256;
const WARMUP: usize = 20_000;
const MEASURED: usize = 150_000;
/// 100 µs between packets: the measured part spans 15 s of packet time,
/// so the flow table's periodic sweep (every 5 s) runs inside it.
const STEP_NS: u64 = 100_000;
const T0: u64 = 1_764_000_000_000_000_000;

const SEQ_OFF: usize = 14 + 20 + 4;
const ACK_OFF: usize = 14 + 20 + 8;
const DNS_OFF: usize = 14 + 20 + 8;

fn lcg(s: &mut u64) -> u64 {
    *s = s
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *s >> 33
}

/// One TCP flow: frame templates per direction, patched in place.
struct Flow {
    /// [client->server, server->client] next sequence numbers.
    seq: [u32; 2],
    bulk: [Vec<u8>; 2],
    ack: [Vec<u8>; 2],
}

fn patch_tcp(f: &mut [u8], seq: u32, ack: u32) {
    f[SEQ_OFF..SEQ_OFF + 4].copy_from_slice(&seq.to_be_bytes());
    f[ACK_OFF..ACK_OFF + 4].copy_from_slice(&ack.to_be_bytes());
}

struct Traffic {
    flows: Vec<Flow>,
    dns: Vec<Vec<u8>>,
    /// Offset of the 6 digits in each DNS template's first label.
    dns_digits: usize,
    rng: u64,
    n: u64,
}

const PORTS: [u16; 6] = [443, 80, 22, 445, 873, 8443];

fn endpoints(i: usize) -> (Ipv4Addr, Ipv4Addr, u16, u16) {
    let c = Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250) as u8 + 1);
    let s = Ipv4Addr::new(192, 0, 2, (i % 8) as u8 + 1);
    (c, s, 40_000 + i as u16, PORTS[i % PORTS.len()])
}

fn opaque(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    // High bit clear on byte 0 so it looks like neither TLS nor SSLv2.
    let mut v: Vec<u8> = (0..len).map(|_| lcg(&mut s) as u8).collect();
    v[0] = 0x3c;
    v
}

impl Traffic {
    fn new() -> Self {
        let mut flows = Vec::new();
        for i in 0..FLOWS {
            let (c, s, sp, dp) = endpoints(i);
            let mac = [2, 0, 0, 0, (i >> 8) as u8, i as u8];
            let data = opaque(1448, i as u64);
            let up = frames::tcp4_frame(mac, c, s, sp, dp, 0, 0, frames::ACK | frames::PSH, &data);
            let down = frames::tcp4_frame(
                [2, 0, 0, 1, 0, 1],
                s,
                c,
                dp,
                sp,
                0,
                0,
                frames::ACK | frames::PSH,
                &data,
            );
            let ack_up = frames::tcp4_frame(mac, c, s, sp, dp, 0, 0, frames::ACK, &[]);
            let ack_down =
                frames::tcp4_frame([2, 0, 0, 1, 0, 1], s, c, dp, sp, 0, 0, frames::ACK, &[]);
            flows.push(Flow {
                seq: [1_000_000 * i as u32 + 1, 2_000_000_000 + i as u32],
                bulk: [up, down],
                ack: [ack_up, ack_down],
            });
        }
        let mut dns = Vec::new();
        for k in 0..DNS_CLIENTS {
            let c = Ipv4Addr::new(10, 1, (k / 250) as u8, (k % 250) as u8 + 1);
            let q = frames::dns_query(
                k as u16,
                "w000000.cdn.example.net",
                if k % 2 == 0 { 1 } else { 28 },
            );
            dns.push(frames::udp4_frame(
                [2, 0, 0, 2, 0, k as u8],
                c,
                Ipv4Addr::new(192, 0, 2, 53),
                30_000 + k as u16,
                53,
                &q,
            ));
        }
        Traffic {
            flows,
            dns,
            dns_digits: DNS_OFF + 12 + 2,
            rng: 7,
            n: 0,
        }
    }

    fn ts(&mut self) -> u64 {
        self.n += 1;
        T0 + self.n * STEP_NS
    }

    /// Handshake and first bytes of every flow, in fresh buffers (allocates:
    /// warm-up only).
    fn open_all(&mut self, w: &mut Worker) {
        for i in 0..FLOWS {
            let (c, s, sp, dp) = endpoints(i);
            let mac = [2, 0, 0, 0, (i >> 8) as u8, i as u8];
            let smac = [2, 0, 0, 1, 0, 1];
            let [cs, ss] = self.flows[i].seq;
            let (cs0, ss0) = (cs.wrapping_sub(1), ss.wrapping_sub(1));
            let first_up: Vec<u8> = match dp {
                443 | 8443 => {
                    frames::tls_records(&frames::client_hello("www.example.org", false, 508), &[])
                }
                80 => frames::http_get("download.example.org", "/pub/big.iso"),
                22 => b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n".to_vec(),
                _ => opaque(200, 99 + i as u64),
            };
            let first_down: Vec<u8> = match dp {
                443 | 8443 => {
                    let mut v = vec![22, 3, 3, 0, 90, 2, 0, 0, 86, 3, 3];
                    v.extend_from_slice(&[0x55; 85]);
                    v
                }
                80 => b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec(),
                22 => b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
                _ => opaque(100, 199 + i as u64),
            };
            let pkts = [
                frames::tcp4_frame(mac, c, s, sp, dp, cs0, 0, frames::SYN, &[]),
                frames::tcp4_frame(smac, s, c, dp, sp, ss0, cs, frames::SYN | frames::ACK, &[]),
                frames::tcp4_frame(mac, c, s, sp, dp, cs, ss, frames::ACK, &[]),
                frames::tcp4_frame(
                    mac,
                    c,
                    s,
                    sp,
                    dp,
                    cs,
                    ss,
                    frames::ACK | frames::PSH,
                    &first_up,
                ),
                frames::tcp4_frame(
                    smac,
                    s,
                    c,
                    dp,
                    sp,
                    ss,
                    cs.wrapping_add(first_up.len() as u32),
                    frames::ACK | frames::PSH,
                    &first_down,
                ),
            ];
            self.flows[i].seq = [
                cs.wrapping_add(first_up.len() as u32),
                ss.wrapping_add(first_down.len() as u32),
            ];
            for p in &pkts {
                let ts = self.ts();
                feed(w, self.n, ts, p);
            }
        }
    }

    /// One common-path packet: ~80 % bulk data, ~9 % pure ACK, ~11 % DNS
    /// query with an unmatched name. No allocation here.
    fn step(&mut self, w: &mut Worker) {
        let r = lcg(&mut self.rng);
        let ts = self.ts();
        let pick = r % 100;
        if pick < 89 {
            let i = (r >> 8) as usize % FLOWS;
            // Downloads dominate: 70 % server->client.
            let dir = if (r >> 16) % 10 < 7 { 1 } else { 0 };
            let f = &mut self.flows[i];
            let (seq, ack) = (f.seq[dir], f.seq[1 - dir]);
            if pick < 80 {
                let frame = &mut f.bulk[dir];
                patch_tcp(frame, seq, ack);
                f.seq[dir] = seq.wrapping_add(1448);
                feed(w, self.n, ts, frame);
            } else {
                let frame = &mut f.ack[dir];
                patch_tcp(frame, seq, ack);
                feed(w, self.n, ts, frame);
            }
        } else {
            let k = (r >> 8) as usize % DNS_CLIENTS;
            let d = self.dns_digits;
            let frame = &mut self.dns[k];
            let id = (r >> 20) as u16;
            frame[DNS_OFF..DNS_OFF + 2].copy_from_slice(&id.to_be_bytes());
            let mut v = (r >> 24) % 1_000_000;
            for j in (0..6).rev() {
                frame[d + j] = b'0' + (v % 10) as u8;
                v /= 10;
            }
            feed(w, self.n, ts, frame);
        }
    }
}

fn feed(w: &mut Worker, n: u64, ts: u64, data: &[u8]) {
    let raw = RawPacket {
        ts,
        linktype: linktype::ETHERNET,
        interface: 0,
        data,
        wire_len: data.len() as u32,
    };
    w.process(
        PktMeta {
            seq: n,
            input: 0,
            frame: n,
        },
        &raw,
    );
}

fn shipped_matcher() -> Arc<Matcher> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("signatures");
    Arc::new(Matcher::new(
        &SignatureSet::load_paths(&[dir]).expect("signatures"),
    ))
}

#[test]
fn no_allocation_per_packet_on_common_path() {
    let mut w = Worker::new(shipped_matcher(), WorkerConfig::default());
    let mut t = Traffic::new();
    t.open_all(&mut w);
    for _ in 0..WARMUP {
        t.step(&mut w);
    }
    let before = w.counters();
    assert_eq!(before.packets as usize, FLOWS * 5 + WARMUP);
    // Each connection opens (SYN) and is settled by its client's first
    // message (a name of another site, or nothing): two observations without
    // a name, so nothing allocated; nothing else.
    let warm = w.take();
    assert_eq!(warm.len(), 2 * FLOWS);
    use kaswatch::pipeline::ObsKind;
    assert!(
        warm.iter()
            .all(|o| o.name.is_empty()
                && matches!(o.kind, ObsKind::Open(None) | ObsKind::Decided(..)))
    );
    // Room for what the measured part could legitimately push (nothing).
    w.out.reserve(16);

    // The counter works: one deliberate allocation is seen.
    COUNTING.with(|c| c.set(true));
    let probe = std::hint::black_box(Box::new(12345u64));
    COUNTING.with(|c| c.set(false));
    assert_eq!(
        ALLOCS.swap(0, Ordering::SeqCst),
        1,
        "counting allocator is not counting"
    );
    drop(probe);

    TRACE.with(|c| c.set(std::env::var_os("KASWATCH_ALLOC_TRACE").is_some()));
    ALLOCS.store(0, Ordering::SeqCst);
    BYTES.store(0, Ordering::SeqCst);
    COUNTING.with(|c| c.set(true));
    for _ in 0..MEASURED {
        t.step(&mut w);
    }
    COUNTING.with(|c| c.set(false));
    let allocs = ALLOCS.load(Ordering::SeqCst);
    let bytes = BYTES.load(Ordering::SeqCst);

    let after = w.counters();
    assert_eq!(
        after.decode_errors, before.decode_errors,
        "frames did not decode cleanly"
    );
    assert_eq!((after.packets - before.packets) as usize, MEASURED);
    assert!(w.out.is_empty(), "unmatched traffic produced observations");
    let traces = TRACES
        .lock()
        .map(|t| t.join("\n----\n"))
        .unwrap_or_default();
    eprintln!(
        "alloc test: {MEASURED} packets measured, {allocs} allocations ({bytes} bytes), {:.6} per packet",
        allocs as f64 / MEASURED as f64
    );
    // Goal: 0. Tolerance: amortised growth of a table, far below one per
    // thousand packets.
    assert!(
        (allocs as f64) < MEASURED as f64 * 0.001,
        "{allocs} allocations ({bytes} bytes) over {MEASURED} common-path packets; \
         rerun with KASWATCH_ALLOC_TRACE=1 -- --nocapture for backtraces\n{traces}"
    );
    if allocs > 0 {
        eprintln!("allocations seen (within tolerance):\n{traces}");
    }
}
