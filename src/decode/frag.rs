//! IPv4/IPv6 fragment reassembly with hard caps. The pipeline worker hands
//! each [`Fragment`] from `decode.rs` here; when a datagram is complete the
//! owned payload comes back and decoding resumes with
//! `decode::decode_ip_payload`. Caps: pending datagrams, fragments per
//! datagram, bytes per datagram and in total, and a timeout in packet time.
//! Overlapping fragments with different bytes (teardrop and friends) drop the
//! datagram; every drop is counted.

use super::{Fragment, TunnelPath};
use crate::stats::{Counters, Layer, Limit};
use std::collections::HashMap;
use std::net::IpAddr;

/// Pending datagrams per worker (Linux ipfrag_high_thresh is 4 MiB, i.e. a few thousand).
pub const MAX_FRAG_DATAGRAMS: usize = 4096;
/// Fragments per datagram (Linux caps at 64 for IPv6 by default via ip6frag; 64 is generous).
pub const MAX_FRAGS_PER_DATAGRAM: usize = 64;
/// Largest reassembled IP payload (IPv4 maximum datagram).
pub const MAX_FRAG_BYTES: usize = 65_535;
/// Bytes held across all pending datagrams of one worker.
pub const MAX_FRAG_TOTAL_BYTES: usize = 8 << 20;
/// Pending datagrams expire after this much packet time (Linux ipfrag_time: 30 s).
pub const FRAG_TIMEOUT_NS: u64 = 30_000_000_000;

/// A fragmented datagram's identity (RFC 791/8200: source, destination,
/// identification, protocol); also the reader's shard routes are keyed by it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

impl Key {
    pub fn of(f: &Fragment<'_>) -> Key {
        Key {
            src: f.src,
            dst: f.dst,
            id: f.id,
            proto: f.proto,
        }
    }
}

struct Pending {
    first_ts: u64,
    buf: Vec<u8>,
    ranges: Vec<(u32, u32)>,
    total: Option<u32>,
    src_mac: Option<[u8; 6]>,
    tunnel: TunnelPath,
}

/// A reassembled datagram: header facts plus the owned payload.
pub struct Reassembled {
    pub src_mac: Option<[u8; 6]>,
    pub tunnel: TunnelPath,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub data: Vec<u8>,
}

impl Reassembled {
    /// A fragment view used to resume decoding.
    pub fn as_fragment(&self) -> Fragment<'_> {
        Fragment {
            src_mac: self.src_mac,
            tunnel: self.tunnel,
            src: self.src,
            dst: self.dst,
            id: 0,
            proto: self.proto,
            offset: 0,
            more: false,
            data: &self.data,
        }
    }
}

/// Per-worker fragment table.
#[derive(Default)]
pub struct Reassembler {
    map: HashMap<Key, Pending, ahash::RandomState>,
    bytes: usize,
    last_sweep: u64,
}

impl Reassembler {
    pub fn pending(&self) -> usize {
        self.map.len()
    }

    /// Add a fragment at packet time `ts` (ns). Returns the datagram when complete.
    pub fn push(&mut self, f: &Fragment<'_>, ts: u64, c: &mut Counters) -> Option<Reassembled> {
        self.expire(ts, c);
        let key = Key::of(f);
        let start = f.offset;
        let end = start.saturating_add(f.data.len() as u32);
        if end as usize > MAX_FRAG_BYTES || (f.more && f.data.len() % 8 != 0) {
            c.limit(Limit::FragBytes);
            self.drop_key(&key);
            return None;
        }
        if !self.map.contains_key(&key) {
            if self.map.len() >= MAX_FRAG_DATAGRAMS {
                c.limit(Limit::FragDatagrams);
                return None;
            }
            self.map.insert(
                key,
                Pending {
                    first_ts: ts,
                    buf: Vec::new(),
                    ranges: Vec::new(),
                    total: None,
                    src_mac: f.src_mac,
                    tunnel: f.tunnel,
                },
            );
        }
        let verdict = {
            let p = self.map.get_mut(&key)?;
            add(p, f, start, end, &mut self.bytes, c)
        };
        match verdict {
            Add::Drop => {
                self.drop_key(&key);
                None
            }
            Add::Wait => None,
            Add::Done => {
                let p = self.map.remove(&key)?;
                self.bytes = self.bytes.saturating_sub(p.buf.len());
                let mut data = p.buf;
                data.truncate(p.total.unwrap_or(0) as usize);
                Some(Reassembled {
                    src_mac: p.src_mac,
                    tunnel: p.tunnel,
                    src: key.src,
                    dst: key.dst,
                    proto: key.proto,
                    data,
                })
            }
        }
    }

    fn drop_key(&mut self, key: &Key) {
        if let Some(p) = self.map.remove(key) {
            self.bytes = self.bytes.saturating_sub(p.buf.len());
        }
    }

    /// Drop datagrams older than [`FRAG_TIMEOUT_NS`] (checked at most once a second of packet time).
    pub fn expire(&mut self, now: u64, c: &mut Counters) {
        if self.map.is_empty() || now < self.last_sweep.saturating_add(1_000_000_000) {
            return;
        }
        self.last_sweep = now;
        let before = self.map.len();
        let mut freed = 0usize;
        self.map.retain(|_, p| {
            let keep = now.saturating_sub(p.first_ts) < FRAG_TIMEOUT_NS;
            if !keep {
                freed += p.buf.len();
            }
            keep
        });
        self.bytes = self.bytes.saturating_sub(freed);
        for _ in self.map.len()..before {
            c.limit(Limit::FragTimeout);
        }
    }
}

enum Add {
    Wait,
    Done,
    Drop,
}

fn add(
    p: &mut Pending,
    f: &Fragment<'_>,
    start: u32,
    end: u32,
    bytes: &mut usize,
    c: &mut Counters,
) -> Add {
    if !f.more {
        if p.total.is_some_and(|t| t != end) || p.ranges.iter().any(|&(_, e)| e > end) {
            c.limit(Limit::FragOverlap);
            return Add::Drop;
        }
        p.total = Some(end);
    } else if p.total.is_some_and(|t| end > t) {
        c.limit(Limit::FragOverlap);
        return Add::Drop;
    }
    // Overlap: identical bytes are a harmless retransmission; different bytes drop the datagram.
    for &(s, e) in &p.ranges {
        if start < e && s < end {
            let (os, oe) = (start.max(s) as usize, end.min(e) as usize);
            let old = p.buf.get(os..oe);
            let new = f.data.get(os - start as usize..oe - start as usize);
            if old != new || old.is_none() {
                c.limit(Limit::FragOverlap);
                return Add::Drop;
            }
            if s <= start && end <= e {
                return if complete(p) { Add::Done } else { Add::Wait };
            }
        }
    }
    if p.ranges.len() >= MAX_FRAGS_PER_DATAGRAM {
        c.limit(Limit::FragsPerDatagram);
        return Add::Drop;
    }
    let need = end as usize;
    if need > p.buf.len() {
        let grow = need - p.buf.len();
        if *bytes + grow > MAX_FRAG_TOTAL_BYTES {
            c.limit(Limit::FragBytes);
            return Add::Drop;
        }
        *bytes += grow;
        p.buf.resize(need, 0);
    }
    match p.buf.get_mut(start as usize..end as usize) {
        Some(dst) => dst.copy_from_slice(f.data),
        None => {
            c.decode_error(Layer::Fragment);
            return Add::Drop;
        }
    }
    p.ranges.push((start, end));
    if complete(p) {
        Add::Done
    } else {
        Add::Wait
    }
}

fn complete(p: &mut Pending) -> bool {
    let Some(total) = p.total else { return false };
    p.ranges.sort_unstable();
    let mut covered = 0u32;
    for &(s, e) in &p.ranges {
        if s > covered {
            return false;
        }
        covered = covered.max(e);
    }
    covered >= total
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn frag(off: u32, more: bool, data: &[u8]) -> Fragment<'_> {
        Fragment {
            src_mac: None,
            tunnel: TunnelPath::default(),
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            id: 7,
            proto: 17,
            offset: off,
            more,
            data,
        }
    }

    #[test]
    fn reassembles_out_of_order() {
        let mut r = Reassembler::default();
        let mut c = Counters::default();
        let a = [1u8; 8];
        let b = [2u8; 8];
        let z = [3u8; 3];
        assert!(r.push(&frag(16, false, &z), 0, &mut c).is_none());
        assert!(r.push(&frag(0, true, &a), 0, &mut c).is_none());
        let d = r.push(&frag(8, true, &b), 0, &mut c).unwrap();
        assert_eq!(d.data, [&a[..], &b[..], &z[..]].concat());
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn conflicting_overlap_dropped_and_counted() {
        let mut r = Reassembler::default();
        let mut c = Counters::default();
        assert!(r.push(&frag(0, true, &[1u8; 16]), 0, &mut c).is_none());
        assert!(r.push(&frag(8, false, &[9u8; 8]), 0, &mut c).is_none());
        assert_eq!(c.get_limit(Limit::FragOverlap), 1);
        assert_eq!(r.pending(), 0);
        // identical duplicate is fine
        assert!(r.push(&frag(0, true, &[1u8; 8]), 0, &mut c).is_none());
        assert!(r.push(&frag(0, true, &[1u8; 8]), 0, &mut c).is_none());
        assert!(r.push(&frag(8, false, &[1u8; 2]), 0, &mut c).is_some());
    }

    #[test]
    fn caps_and_timeout() {
        let mut r = Reassembler::default();
        let mut c = Counters::default();
        let big = vec![0u8; 8];
        assert!(r.push(&frag(65_528, true, &big), 0, &mut c).is_none());
        assert_eq!(c.get_limit(Limit::FragBytes), 1);
        assert!(r.push(&frag(0, true, &big), 0, &mut c).is_none());
        assert_eq!(r.pending(), 1);
        r.expire(FRAG_TIMEOUT_NS + 2_000_000_000, &mut c);
        assert_eq!(r.pending(), 0);
        assert_eq!(c.get_limit(Limit::FragTimeout), 1);
        for i in 0..(MAX_FRAG_DATAGRAMS as u32 + 5) {
            let mut f = frag(0, true, &big);
            f.id = i;
            r.push(&f, FRAG_TIMEOUT_NS + 2_000_000_000, &mut c);
        }
        assert_eq!(r.pending(), MAX_FRAG_DATAGRAMS);
        assert_eq!(c.get_limit(Limit::FragDatagrams), 5);
    }
}
