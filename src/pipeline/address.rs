//! Address evidence, decided per connection. The merger tells the
//! [`AddressBook`] which addresses DNS answers map to Kaspersky names
//! (attributions) and which to other names or which connections name other
//! sites (shared marks), which connections open and what their clients
//! named. A connection to an attributed, unshared address that names nothing
//! itself is held until its client's first message (or its end, or
//! [`CONN_HOLD_NS`] of packet time) and then released as an `address`
//! callback; one that names a site, or whose address turns out shared, is
//! dropped. It also remembers which hosts answer DNS for others (resolvers).
//! Every table is a bounded [`GenMap`] or a capped queue: O(1) amortised per
//! packet, drops counted.

use super::{ConnKey, Head, Named, Obs, ObsKind};
use crate::matcher::Hit;
use crate::stats::{Counters, Limit};
use crate::table::{ip_words, AddressBits, GenMap, Hashed, PairHash, PairKey, PreHashed};
use crate::text::Text;
use std::collections::hash_map::Entry;
use std::collections::VecDeque;
use std::net::IpAddr;

/// Addresses attributed to Kaspersky names (each answer adds a few).
pub const MAX_RESOLUTIONS: usize = 65_536;
/// Addresses known to serve other names (every DNS answer and every named
/// connection adds one; 131,072 entries are ~5 MiB).
pub const MAX_SHARED_ADDRESSES: usize = 131_072;
/// Connections held while their client has not yet said what it names.
pub const MAX_HELD_CONNECTIONS: usize = 4_096;
/// Hosts remembered as DNS resolvers.
pub const MAX_RESOLVERS: usize = 4_096;
/// Longest wait (packet time) for a held connection's first client message.
pub const CONN_HOLD_NS: u64 = 10_000_000_000;
/// Shortest time an answer is trusted, whatever its TTL says (clients keep
/// answers a little past short TTLs).
pub const MIN_ATTRIBUTION_NS: u64 = 300_000_000_000;
/// Longest time an answer is trusted: a day-long TTL should not keep a CDN
/// address attributed to Kaspersky for longer than that. Shared marks from
/// named connections last this long too.
pub const MAX_ATTRIBUTION_NS: u64 = 86_400_000_000_000;

/// An address learned from a DNS answer to a matching question.
#[derive(Clone, Debug)]
pub struct Attribution {
    name: Text,
    pub hit: Hit,
    pub expires: u64,
}

impl Attribution {
    /// The matching name the address was resolved from.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }
}

/// A connection released as an address callback: its opening packet, and
/// the name and signature its address was resolved from.
pub struct Release {
    pub open: Obs,
    pub name: String,
    pub hit: Hit,
}

/// Counts that explain address evidence (exported as metrics).
#[derive(Clone, Copy, Debug, Default)]
pub struct AddressStats {
    /// Attributed addresses found to serve other names too.
    pub shared: u64,
    /// Connections to attributed addresses that gave no address callback
    /// because the address is shared.
    pub suppressed_shared: u64,
    /// Held connections whose client named a site (Kaspersky or not).
    pub settled_by_name: u64,
    /// Connections released as address callbacks.
    pub released: u64,
}

/// A connection held for its decision.
struct Held {
    /// Its opening packet's observation, without name or payload.
    open: Head,
    /// Its key in `held`.
    key: Hashed<ConnKey>,
    /// Which hold this is (queue entries name a slot and a generation: a
    /// slot reused by a later hold is not this one).
    gen: u32,
    /// Held on an `[[address]]` signature (name, hit): released only for a
    /// completed handshake.
    listed: Option<(String, Hit)>,
}

impl PairKey for ConnKey {
    #[inline]
    fn parts(&self) -> ([u64; 2], [u64; 2], u64) {
        let (src, dst, sport, dport, l4) = *self;
        let tail = u64::from(sport)
            | u64::from(dport) << 16
            | (l4 as u64) << 32
            | u64::from(src.is_ipv6()) << 40;
        (ip_words(src), ip_words(dst), tail)
    }
}

fn life(ttl: u32) -> u64 {
    (u64::from(ttl) * 1_000_000_000).clamp(MIN_ATTRIBUTION_NS, MAX_ATTRIBUTION_NS)
}

/// See the module doc.
pub struct AddressBook {
    attrib: GenMap<IpAddr, Attribution>,
    /// Address -> packet time until which it counts as shared.
    shared: GenMap<IpAddr, u64>,
    /// Held connection -> its slot in `slots`. Keys are hashed once (a
    /// flood of connections looks each up three times).
    held: PreHashed<ConnKey, u32>,
    /// The held connections (an observation is a few hundred bytes: kept
    /// in place, not moved by the map nor allocated per connection).
    slots: Vec<Option<Held>>,
    /// Free slots.
    free: Vec<u32>,
    /// Held connections in the order they opened: (open time, slot,
    /// generation). 16 bytes an entry: the oldest, read once per new hold
    /// in a flood, is a short sequential walk, not a scattered key.
    queue: VecDeque<(u64, u32, u32)>,
    /// Generation of the next hold.
    next_gen: u32,
    /// Random per-run seeds of the connection-key hash ([`Self::conn_key`]).
    keys: PairHash,
    resolvers: GenMap<IpAddr, ()>,
    /// Every address ever marked a resolver: most callbacks' hosts are not
    /// one, and this says so without a lookup in `resolvers`.
    ever_resolvers: AddressBits,
    /// A resolver known to be in `resolvers` (reset by every insert).
    last_resolver: Option<IpAddr>,
    pub stats: AddressStats,
}

impl Default for AddressBook {
    fn default() -> Self {
        AddressBook {
            attrib: GenMap::new(MAX_RESOLUTIONS),
            shared: GenMap::new(MAX_SHARED_ADDRESSES),
            held: PreHashed::default(),
            slots: Vec::new(),
            free: Vec::new(),
            queue: VecDeque::new(),
            next_gen: 0,
            keys: PairHash::new(),
            resolvers: GenMap::new(MAX_RESOLVERS),
            ever_resolvers: AddressBits::default(),
            last_resolver: None,
            stats: AddressStats::default(),
        }
    }
}

impl AddressBook {
    /// Addresses currently attributed to matching names.
    pub fn attributed(&self) -> usize {
        self.attrib.len()
    }

    /// Connections held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// A DNS answer maps `addr` to a Kaspersky name.
    pub fn learn(
        &mut self,
        addr: IpAddr,
        name: impl Into<Text>,
        hit: Hit,
        ts: u64,
        ttl: u32,
        c: &mut Counters,
    ) {
        let a = Attribution {
            // From an observation's `Text`: a fixed-size copy (a copy
            // of the text's bytes, then a move of the value, stalled the
            // loads on the bytes' smaller stores: 2 % of a DNS flood).
            name: name.into(),
            hit,
            expires: ts.saturating_add(life(ttl)),
        };
        let dropped = self.attrib.insert(addr, a, |a| a.expires >= ts);
        c.limit_n(Limit::Resolutions, dropped);
        if self.is_shared(&addr, ts) {
            self.stats.shared += 1;
        }
    }

    /// `addr` serves another name until `until` (a DNS answer to another
    /// question, or a connection that named another site).
    pub fn mark_shared(&mut self, addr: IpAddr, until: u64, ts: u64, c: &mut Counters) {
        let was = self.is_shared(&addr, ts);
        let (slot, dropped) = self.shared.get_mut(&addr, |u| *u >= ts);
        let dropped = match slot {
            Some(u) => {
                *u = (*u).max(until);
                dropped
            }
            None => dropped + self.shared.insert(addr, until, |u| *u >= ts),
        };
        c.limit_n(Limit::SharedAddresses, dropped);
        if !was && self.attrib.get(&addr).is_some_and(|a| a.expires >= ts) {
            self.stats.shared += 1;
        }
    }

    /// A DNS answer maps `addr` to a non-Kaspersky name.
    pub fn learn_other(&mut self, addr: IpAddr, ts: u64, ttl: u32, c: &mut Counters) {
        self.mark_shared(addr, ts.saturating_add(life(ttl)), ts, c);
    }

    fn is_shared(&self, addr: &IpAddr, ts: u64) -> bool {
        self.shared.get(addr).is_some_and(|u| *u >= ts)
    }

    /// The live attribution of `addr` at `ts`, if any (shared or not).
    fn attribution(&self, addr: &IpAddr, ts: u64) -> Option<&Attribution> {
        self.attrib.get(addr).filter(|a| a.expires >= ts)
    }

    /// A connection opened (`o.kind` is `Open`). Returns an address callback
    /// when the opening packet already settles it as naming nothing.
    /// `listed`: the `[[address]]` signature of its destination, if any (a
    /// TCP connection to it is held and counts only once its handshake
    /// completed), asked for only when the destination has no live
    /// attribution (one lookup of the destination per opening packet).
    pub fn open(
        &mut self,
        o: &Obs,
        settled: Option<Named>,
        listed: impl FnOnce() -> Option<(String, Hit)>,
        c: &mut Counters,
    ) -> Option<Release> {
        let Some(a) = self.attribution(&o.dst, o.ts) else {
            let l = listed()?;
            if self.is_shared(&o.dst, o.ts) {
                self.stats.suppressed_shared += 1;
                return None;
            }
            self.hold(o, Some(l), c);
            return None;
        };
        if self.is_shared(&o.dst, o.ts) {
            self.stats.suppressed_shared += 1;
            return None;
        }
        match settled {
            Some(Named::Nothing) => {
                let (name, hit) = (a.name().to_string(), a.hit);
                self.stats.released += 1;
                Some(Release {
                    open: o.clone(),
                    name,
                    hit,
                })
            }
            Some(_) => None,
            None => {
                self.hold(o, None, c);
                None
            }
        }
    }

    fn hold(&mut self, o: &Obs, listed: Option<(String, Hit)>, c: &mut Counters) {
        // Bounded: the oldest held connection is dropped (not released: a
        // callback on weak evidence is worse than none), counted.
        while self.held.len() >= MAX_HELD_CONNECTIONS
            || self.queue.len() >= 2 * MAX_HELD_CONNECTIONS
        {
            let Some((_, slot, gen)) = self.queue.pop_front() else {
                break;
            };
            if self.unmap_slot(slot, gen) {
                // Dropped in place (not moved out: a hold is ~170 bytes).
                if let Some(s) = self.slots.get_mut(slot as usize) {
                    *s = None;
                }
                self.free.push(slot);
                c.limit(Limit::HeldConnections);
            }
        }
        let key = self.conn_key(o);
        let gen = self.next_gen;
        self.next_gen = gen.wrapping_add(1);
        let held = Held {
            open: o.head.clone(),
            key,
            gen,
            listed,
        };
        let slot = match self.free.pop() {
            Some(i) => {
                if let Some(s) = self.slots.get_mut(i as usize) {
                    *s = Some(held);
                }
                i
            }
            None => {
                // At most MAX_HELD_CONNECTIONS slots exist (the loop above).
                self.slots.push(Some(held));
                (self.slots.len() - 1) as u32
            }
        };
        self.queue.push_back((o.ts, slot, gen));
        if let Some(old) = self.held.insert(key, slot) {
            // The same connection opened again: the newer one is held.
            self.vacate(old);
        }
    }

    /// `o`'s connection key with its hash ([`PairHash`]: the generic
    /// hasher's seven updates cost ~90 instructions a SYN in a flood).
    fn conn_key(&self, o: &Obs) -> Hashed<ConnKey> {
        let k = o.conn_key();
        Hashed::with_hash(self.keys.key(&k), k)
    }

    /// Take out the hold in `slot` if it is still generation `gen` (a
    /// queue entry may name a slot vacated or reused since).
    fn take_slot(&mut self, slot: u32, gen: u32) -> Option<Held> {
        if !self.unmap_slot(slot, gen) {
            return None;
        }
        self.vacate(slot)
    }

    /// Unmap the hold in `slot` if it is still generation `gen`; true if
    /// it is (the slot itself is left to the caller).
    fn unmap_slot(&mut self, slot: u32, gen: u32) -> bool {
        let key = match self.slots.get(slot as usize) {
            Some(Some(h)) if h.gen == gen => h.key,
            _ => return false,
        };
        // One probe: the entry is removed through its handle.
        if let Entry::Occupied(e) = self.held.entry(key) {
            if *e.get() == slot {
                e.remove();
            }
        }
        true
    }

    fn vacate(&mut self, slot: u32) -> Option<Held> {
        let h = self.slots.get_mut(slot as usize)?.take();
        self.free.push(slot);
        h
    }

    /// Remove `k`'s held connection.
    fn take(&mut self, k: &Hashed<ConnKey>) -> Option<Held> {
        let slot = self.held.remove(k)?;
        self.vacate(slot)
    }

    /// What a connection's client named (`o` is oriented client first).
    /// Returns an address callback when it named nothing.
    pub fn decided(
        &mut self,
        o: &Obs,
        named: Named,
        completed: bool,
        c: &mut Counters,
    ) -> Option<Release> {
        if named == Named::Other {
            self.mark_shared(o.dst, o.ts.saturating_add(MAX_ATTRIBUTION_NS), o.ts, c);
        }
        if self.held.is_empty() {
            return None;
        }
        let held = self.take(&self.conn_key(o))?;
        if named != Named::Nothing {
            self.stats.settled_by_name += 1;
            return None;
        }
        self.release(held, o.ts, completed)
    }

    /// A listed address counts for completed handshakes only; a connection
    /// released by time (its client never spoke) is never completed here.
    fn release(&mut self, held: Held, now: u64, completed: bool) -> Option<Release> {
        if held.listed.is_some() && !completed {
            return None;
        }
        let dst = held.open.dst;
        if self.is_shared(&dst, now) {
            self.stats.suppressed_shared += 1;
            return None;
        }
        if let Some((name, hit)) = held.listed {
            self.stats.released += 1;
            return Some(Release {
                open: held.open.obs(ObsKind::Open(None)),
                name,
                hit,
            });
        }
        let a = self.attribution(&dst, held.open.ts)?;
        let (name, hit) = (a.name().to_string(), a.hit);
        self.stats.released += 1;
        Some(Release {
            open: held.open.obs(ObsKind::Open(None)),
            name,
            hit,
        })
    }

    /// Some held connection's wait is over at `now` (what [`Self::expire`]
    /// would release; a check per observation, so kept to one compare).
    pub fn expires_by(&self, now: u64) -> bool {
        self.queue
            .front()
            .is_some_and(|&(t, _, _)| now.saturating_sub(t) > CONN_HOLD_NS)
    }

    /// Release connections held longer than [`CONN_HOLD_NS`] at `now`
    /// (their client never said anything), in the order they opened.
    pub fn expire(&mut self, now: u64, out: &mut Vec<Release>) {
        while let Some(&(t, slot, gen)) = self.queue.front() {
            if now.saturating_sub(t) <= CONN_HOLD_NS {
                break;
            }
            self.queue.pop_front();
            if let Some(h) = self.take_slot(slot, gen) {
                out.extend(self.release(h, now, false));
            }
        }
    }

    /// End of input: every connection still held is released (its client
    /// said nothing before the capture ended).
    pub fn drain(&mut self, now: u64, out: &mut Vec<Release>) {
        while let Some((_, slot, gen)) = self.queue.pop_front() {
            if let Some(h) = self.take_slot(slot, gen) {
                out.extend(self.release(h, now, false));
            }
        }
        self.held.clear();
        self.slots.clear();
        self.free.clear();
    }

    /// `addr` answered a DNS query for another host. Returns true the first
    /// time (within the table's memory).
    pub fn mark_resolver(&mut self, addr: IpAddr, c: &mut Counters) -> bool {
        // Most answers come from the resolver of the answer before.
        if self.last_resolver == Some(addr) {
            return false;
        }
        if self.resolvers.contains_key(&addr) {
            self.last_resolver = Some(addr);
            return false;
        }
        self.ever_resolvers.set(&addr);
        for _ in 0..self.resolvers.insert(addr, (), |_| true) {
            c.limit(Limit::Resolvers);
        }
        // Only an insert can drop an entry (a rotation): the one just made is kept.
        self.last_resolver = Some(addr);
        true
    }

    pub fn is_resolver(&self, addr: &IpAddr) -> bool {
        self.ever_resolvers.maybe(addr) && self.resolvers.contains_key(addr)
    }
}
