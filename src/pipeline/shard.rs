//! Reader-side sharding for `read --workers N`: which worker gets each
//! packet. The key is the innermost address pair ([`super::pair_shard`]:
//! order-free, seeded), so the traffic inside one tunnel (VXLAN, GRE, GTP-U,
//! IP-in-IP, ... whatever `decode.rs` unwraps) spreads over the workers while
//! every packet of one inner connection, both directions, reaches one worker.
//!
//! IP fragments need more: all fragments of a datagram must reach the worker
//! that reassembles it, and that must be the worker of the connection the
//! reassembled packet belongs to, yet only the first fragment (offset 0)
//! carries the inner headers. The [`Sharder`] keeps a small table of routes,
//! keyed like `decode/frag.rs` (source, destination, id and protocol of the
//! fragmented layer) and filled when a first fragment is seen (decoded to
//! its innermost addresses, [`decode::inner_addrs_of_first`]). A fragment
//! whose route is unknown (it came before its first fragment) is copied and
//! held in the reader, then released to the route's worker, in arrival
//! order, just before the first fragment. Held fragments keep their packet
//! metadata (sequence number); that is safe for the merger's ordering
//! because a fragment that does not complete its datagram yields no
//! observation, and a held one never completes it (its first fragment has
//! not been processed yet): the observation comes from the packet that
//! completes the datagram, which is routed in its place in the stream.
//!
//! Bounds: [`MAX_HELD_DATAGRAMS`], [`MAX_HELD_BYTES`],
//! [`MAX_HELD_PER_DATAGRAM`] and [`MAX_SHARD_ROUTES`] (counted as
//! `max_shard_fragments`), and [`HOLD_TIMEOUT_NS`] of packet time (counted
//! as `shard_fragment_timeout`). Past them a datagram falls back to the
//! worker of the fragmented layer's own address pair, for all its fragments
//! (the route is kept, so a late first fragment follows): it is still
//! reassembled, but its packet may be tracked apart from the rest of its
//! inner connection. At the end of the input what is still held goes to that
//! worker too: nothing is dropped. Cost: a packet that is not a fragment is
//! decoded to its innermost IP header (TCP headers are not parsed) and
//! hashed, as before with the outermost one; fragments cost a table lookup,
//! held ones a copy.

use super::PktMeta;
use crate::capture::RawPacket;
use crate::decode::frag::{Key, FRAG_TIMEOUT_NS, MAX_FRAGS_PER_DATAGRAM};
use crate::decode::{self, Fragment, Inner};
use crate::stats::{Counters, Limit};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// Datagram routes remembered (fragmented datagrams seen within [`ROUTE_TTL_NS`]).
pub const MAX_SHARD_ROUTES: usize = 16_384;
/// Datagrams with fragments held while their first fragment is awaited.
pub const MAX_HELD_DATAGRAMS: usize = 1024;
/// Bytes of held fragments (captured bytes).
pub const MAX_HELD_BYTES: usize = 4 << 20;
/// Fragments held for one datagram (the reassembler's own per-datagram cap).
pub const MAX_HELD_PER_DATAGRAM: usize = MAX_FRAGS_PER_DATAGRAM;
/// Packet time a fragment waits for its datagram's first fragment (the
/// reassembler gives up on a datagram after as long).
pub const HOLD_TIMEOUT_NS: u64 = FRAG_TIMEOUT_NS;
/// Packet time a datagram's route is kept after it was chosen (the
/// reassembler's timeout plus its sweep interval).
pub const ROUTE_TTL_NS: u64 = FRAG_TIMEOUT_NS + 1_000_000_000;
/// Fragmented layers followed inside one first fragment (a fragment of a
/// tunnel carrying a fragment of an inner datagram, ...).
pub const MAX_NESTED_FRAGMENTS: usize = 4;
/// Stale entries tolerated in the held-order queue, per held datagram, before
/// it is compacted.
const HELD_ORDER_SLACK: usize = 4;

/// A copied fragment waiting for its route.
struct HeldFrag {
    meta: PktMeta,
    ts: u64,
    linktype: u32,
    interface: u32,
    wire_len: u32,
    data: Vec<u8>,
}

/// The fragments of one datagram held so far.
struct Held {
    gen: u64,
    first_ts: u64,
    /// Worker of the fragmented layer's own address pair.
    fallback: usize,
    bytes: usize,
    frags: Vec<HeldFrag>,
}

/// Where each packet of a multi-worker run goes (see the module doc).
pub struct Sharder {
    workers: usize,
    seed: ahash::RandomState,
    /// Decode errors met while sharding: not the run's (the workers count them).
    scratch: Counters,
    routes: HashMap<Key, usize, ahash::RandomState>,
    /// Routes in the order they were made, with their time.
    route_order: VecDeque<(Key, u64)>,
    held: HashMap<Key, Held, ahash::RandomState>,
    /// Held datagrams oldest first; entries whose generation no longer
    /// matches were released already.
    held_order: VecDeque<(Key, u64)>,
    held_bytes: usize,
    next_gen: u64,
    /// Fallbacks at the limits above (`max_shard_fragments`,
    /// `shard_fragment_timeout`), for the run's counters.
    pub counters: Counters,
}

impl Sharder {
    pub fn new(workers: usize, seed: ahash::RandomState) -> Sharder {
        Sharder {
            workers: workers.max(1),
            seed,
            scratch: Counters::default(),
            routes: HashMap::default(),
            route_order: VecDeque::new(),
            held: HashMap::default(),
            held_order: VecDeque::new(),
            held_bytes: 0,
            next_gen: 0,
            counters: Counters::default(),
        }
    }

    /// Fragments currently held.
    pub fn held_fragments(&self) -> usize {
        self.held.values().map(|h| h.frags.len()).sum()
    }

    /// Datagram routes currently remembered.
    pub fn routes(&self) -> usize {
        self.routes.len()
    }

    /// Worker of an address pair (order-free).
    fn pick(&self, a: IpAddr, b: IpAddr) -> usize {
        super::pair_shard(a, b, self.workers, &self.seed)
    }

    /// Route one packet: `send(worker, meta, packet)` is called for it, and
    /// first for any held fragments it releases (in arrival order), or not at
    /// all when the packet is held.
    pub fn route<F>(&mut self, meta: PktMeta, raw: &RawPacket<'_>, send: &mut F)
    where
        F: FnMut(usize, PktMeta, &RawPacket<'_>),
    {
        if self.workers <= 1 {
            send(0, meta, raw);
            return;
        }
        match decode::inner_addrs(raw.linktype, raw.data, &mut self.scratch) {
            Inner::Addrs(a, b) => send(self.pick(a, b), meta, raw),
            Inner::None => send(0, meta, raw),
            Inner::Fragment(f) => self.fragment(meta, raw, &f, send),
        }
    }

    /// End of input: everything still held goes to its fallback worker (the
    /// datagram's first fragment never came, so it cannot complete anyway).
    /// Returns how many packets were sent.
    pub fn finish<F>(&mut self, send: &mut F) -> usize
    where
        F: FnMut(usize, PktMeta, &RawPacket<'_>),
    {
        let mut sent = 0;
        while let Some((key, gen)) = self.held_order.pop_front() {
            if self.held.get(&key).is_some_and(|h| h.gen == gen) {
                sent += self.release(&key, None, send);
            }
        }
        sent
    }

    fn fragment<F>(&mut self, meta: PktMeta, raw: &RawPacket<'_>, f: &Fragment<'_>, send: &mut F)
    where
        F: FnMut(usize, PktMeta, &RawPacket<'_>),
    {
        let now = raw.ts;
        self.expire(now, send);
        let key = Key::of(f);
        if let Some(&w) = self.routes.get(&key) {
            send(w, meta, raw);
            return;
        }
        if f.offset == 0 {
            let w = self.first_fragment_worker(f, now, send);
            self.settle(key, w, now, send);
            send(w, meta, raw);
            return;
        }
        self.hold(key, f, meta, raw, send);
    }

    /// The worker of a datagram from its first fragment: that of the
    /// innermost addresses inside, following nested fragmented layers (each
    /// given the same route).
    fn first_fragment_worker<F>(&mut self, f: &Fragment<'_>, now: u64, send: &mut F) -> usize
    where
        F: FnMut(usize, PktMeta, &RawPacket<'_>),
    {
        let mut cur = *f;
        let mut nested: [Option<Key>; MAX_NESTED_FRAGMENTS] = [None; MAX_NESTED_FRAGMENTS];
        let mut w = self.pick(f.src, f.dst);
        for slot in nested.iter_mut() {
            match decode::inner_addrs_of_first(&cur, &mut self.scratch) {
                Inner::Addrs(a, b) => {
                    w = self.pick(a, b);
                    break;
                }
                Inner::None => break,
                Inner::Fragment(g) => {
                    let gk = Key::of(&g);
                    w = self.pick(g.src, g.dst);
                    if let Some(&known) = self.routes.get(&gk) {
                        w = known;
                        break;
                    }
                    *slot = Some(gk);
                    if g.offset != 0 {
                        break;
                    }
                    cur = g;
                }
            }
        }
        for gk in nested.into_iter().flatten() {
            self.settle(gk, w, now, send);
        }
        w
    }

    /// Give `key` the route `w` (unless it has one) and release what is held for it.
    fn settle<F>(&mut self, key: Key, w: usize, now: u64, send: &mut F)
    where
        F: FnMut(usize, PktMeta, &RawPacket<'_>),
    {
        if !self.routes.contains_key(&key) {
            while self.routes.len() >= MAX_SHARD_ROUTES {
                match self.route_order.pop_front() {
                    Some((old, _)) => {
                        self.routes.remove(&old);
                        self.counters.limit(Limit::ShardFragments);
                    }
                    None => break,
                }
            }
            self.routes.insert(key, w);
            self.route_order.push_back((key, now));
        }
        self.release(&key, Some(w), send);
    }

    /// Send what is held for `key` to `to` (or its fallback worker, which
    /// then becomes its route). Returns how many packets were sent.
    fn release<F>(&mut self, key: &Key, to: Option<usize>, send: &mut F) -> usize
    where
        F: FnMut(usize, PktMeta, &RawPacket<'_>),
    {
        let Some(h) = self.held.remove(key) else {
            return 0;
        };
        self.held_bytes = self.held_bytes.saturating_sub(h.bytes);
        let w = match to {
            Some(w) => w,
            None => {
                if !self.routes.contains_key(key) && self.routes.len() < MAX_SHARD_ROUTES {
                    self.routes.insert(*key, h.fallback);
                    self.route_order.push_back((*key, h.first_ts));
                }
                h.fallback
            }
        };
        let n = h.frags.len();
        for hf in &h.frags {
            let raw = RawPacket {
                ts: hf.ts,
                linktype: hf.linktype,
                interface: hf.interface,
                data: &hf.data,
                wire_len: hf.wire_len,
            };
            send(w, hf.meta, &raw);
        }
        n
    }

    /// Hold a fragment that came before its datagram's first fragment.
    fn hold<F>(
        &mut self,
        key: Key,
        f: &Fragment<'_>,
        meta: PktMeta,
        raw: &RawPacket<'_>,
        send: &mut F,
    ) where
        F: FnMut(usize, PktMeta, &RawPacket<'_>),
    {
        let len = raw.data.len();
        let fallback = self.pick(f.src, f.dst);
        if len > MAX_HELD_BYTES
            || self
                .held
                .get(&key)
                .is_some_and(|h| h.frags.len() >= MAX_HELD_PER_DATAGRAM)
        {
            self.counters.limit(Limit::ShardFragments);
            self.release(&key, None, send);
            send(
                self.routes.get(&key).copied().unwrap_or(fallback),
                meta,
                raw,
            );
            return;
        }
        // Make room: the oldest held datagrams go to their fallback workers.
        while self.held_bytes + len > MAX_HELD_BYTES
            || (!self.held.contains_key(&key) && self.held.len() >= MAX_HELD_DATAGRAMS)
        {
            let Some((old, gen)) = self.held_order.pop_front() else {
                break;
            };
            if self.held.get(&old).is_some_and(|h| h.gen == gen) {
                self.counters.limit(Limit::ShardFragments);
                self.release(&old, None, send);
            }
        }
        if let Some(&w) = self.routes.get(&key) {
            // This datagram itself was let go to make room.
            send(w, meta, raw);
            return;
        }
        let frag = HeldFrag {
            meta,
            ts: raw.ts,
            linktype: raw.linktype,
            interface: raw.interface,
            wire_len: raw.wire_len,
            data: raw.data.to_vec(),
        };
        self.held_bytes += len;
        match self.held.get_mut(&key) {
            Some(h) => {
                h.bytes += len;
                h.frags.push(frag);
            }
            None => {
                let gen = self.next_gen;
                self.next_gen += 1;
                self.held.insert(
                    key,
                    Held {
                        gen,
                        first_ts: raw.ts,
                        fallback,
                        bytes: len,
                        frags: vec![frag],
                    },
                );
                self.held_order.push_back((key, gen));
                if self.held_order.len() > HELD_ORDER_SLACK * MAX_HELD_DATAGRAMS {
                    let held = &self.held;
                    self.held_order
                        .retain(|(k, g)| held.get(k).is_some_and(|h| h.gen == *g));
                }
            }
        }
    }

    /// Forget routes past [`ROUTE_TTL_NS`]; let fragments held past
    /// [`HOLD_TIMEOUT_NS`] go to their fallback workers. Runs on fragments
    /// only (packet time), so other packets pay nothing.
    fn expire<F>(&mut self, now: u64, send: &mut F)
    where
        F: FnMut(usize, PktMeta, &RawPacket<'_>),
    {
        while let Some(&(key, t)) = self.route_order.front() {
            if now.saturating_sub(t) < ROUTE_TTL_NS {
                break;
            }
            self.route_order.pop_front();
            self.routes.remove(&key);
        }
        while let Some(&(key, gen)) = self.held_order.front() {
            match self.held.get(&key) {
                Some(h) if h.gen == gen => {
                    if now.saturating_sub(h.first_ts) < HOLD_TIMEOUT_NS {
                        break;
                    }
                    self.held_order.pop_front();
                    self.counters.limit(Limit::ShardTimeout);
                    self.release(&key, None, send);
                }
                _ => {
                    self.held_order.pop_front();
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "shard_tests.rs"]
mod tests;
