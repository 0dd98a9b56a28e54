//! Bounded maps for state that traffic (and so an attacker) can grow: the
//! merger's address attributions, shared-address marks, pending DNS queries
//! and resolvers. A [`GenMap`] keeps two generations of at most `max / 2`
//! entries each; when the current one is full the older generation is
//! cleared in one pass and the current one becomes the older. Insert, lookup
//! and eviction are O(1) amortised (no scan per insert, no sort, no
//! allocation after the first fill), and an entry that is used again moves
//! back into the current generation, so live entries survive a flood of new
//! ones for at least `max / 2` inserts. Used by `pipeline::merger`,
//! `pipeline::address` and `identity`; the callers count what was dropped.
//!
//! A generation is a [`Gen`]: entries in a dense `Vec` behind a small index
//! of `u32` positions (hashbrown's `HashTable`), so a flood of new keys
//! probes a cache-resident index and appends. The flow table (`flow.rs`)
//! keeps its two generations of flows in the same structure.
//!
//! An [`Lru`] orders the host table's entries by packet time for eviction
//! (least recently seen first) in O(1) per touch: a doubly linked list in a
//! slab, no tree, no allocation once the slab has grown.
//!
//! A [`FingerprintSet`] remembers the host table's overflow-name
//! fingerprints in cache-line buckets (one line per lookup, no allocation).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// A key with its hash computed once ([`GenMap`] looks a key up in two
/// generations, then inserts it: one hash, not five).
#[derive(Clone, Copy)]
pub struct Hashed<K> {
    h: u64,
    k: K,
}

impl<K: Eq> PartialEq for Hashed<K> {
    fn eq(&self, o: &Self) -> bool {
        self.h == o.h && self.k == o.k
    }
}
impl<K: Eq> Eq for Hashed<K> {}

impl<K> Hash for Hashed<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.h);
    }
}

/// Hands the precomputed hash of a [`Hashed`] key to the map unchanged.
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `Hashed`; fold anything else anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// A map whose keys carry their hash (see [`Hashed::with_hash`]).
pub type PreHashed<K, V> = HashMap<Hashed<K>, V, BuildHasherDefault<PassThrough>>;

/// Most entries a generation's index can name (indices are `u32`).
pub const MAX_GENERATION: usize = u32::MAX as usize;

/// One generation: entries in insertion order in a dense `Vec`, found
/// through a small open-addressing index of `u32` positions. A flood of new
/// keys probes only the index (5 bytes a slot: a 32,768-entry generation's
/// index is 320 KiB, cache-resident) and appends the entry at the end of
/// the `Vec` (sequential writes), where a map of whole entries would touch
/// a random line of a multi-MiB table per key; a rotation clears the index
/// and truncates the `Vec`, and counts the live entries in one sequential
/// pass. Removal swaps the last entry into the hole (O(1)). Also the flow
/// table's generations (`flow.rs`).
pub struct Gen<K, V> {
    index: hashbrown::HashTable<u32>,
    entries: Vec<(Hashed<K>, V)>,
    /// Entries room is made for at the first insert (0: grow as needed).
    /// Growing an index re-reads every entry's hash from the `Vec` in
    /// index order (a cache miss per entry): a table that fills once per
    /// flood is better sized once.
    lazy: usize,
}

impl<K: Eq, V> Gen<K, V> {
    pub fn new() -> Self {
        Self::lazy(0)
    }

    /// Empty, with room for `entries` made at the first insert (no memory
    /// for a table never used).
    pub fn lazy(entries: usize) -> Self {
        Gen {
            index: hashbrown::HashTable::new(),
            entries: Vec::new(),
            lazy: entries,
        }
    }

    /// Room for `entries` entries, and an index sized for `slots` of them
    /// (more slots than entries keep probes short and let removals' marks
    /// be cleaned in place instead of growing the index).
    pub fn with_capacity(entries: usize, slots: usize) -> Self {
        Gen {
            index: hashbrown::HashTable::with_capacity(slots),
            entries: Vec::with_capacity(entries),
            lazy: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Position of `k`'s entry.
    #[inline]
    pub fn pos(&self, k: &Hashed<K>) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let entries = &self.entries;
        self.index
            .find(k.h, |&i| entries.get(i as usize).is_some_and(|e| e.0 == *k))
            .map(|&i| i as usize)
    }

    /// Appends `k` (the caller knows it is absent). A generation never
    /// holds more than [`MAX_GENERATION`] entries: beyond that the entry is
    /// not added (unreachable with the bounds `GenMap` is given).
    pub fn push(&mut self, k: Hashed<K>, v: V) -> Option<&mut V> {
        self.push_with(k, || v)
    }

    /// [`Self::push`] of the value `make` builds, built in place.
    #[inline]
    pub fn push_with(&mut self, k: Hashed<K>, make: impl FnOnce() -> V) -> Option<&mut V> {
        let i = u32::try_from(self.entries.len()).ok()?;
        self.make_lazy_room();
        let entries = &self.entries;
        self.index
            .insert_unique(k.h, i, |&j| entries.get(j as usize).map_or(0, |e| e.0.h));
        push_in_place(&mut self.entries, || (k, make()));
        self.entries.last_mut().map(|e| &mut e.1)
    }

    /// Replace `k`'s value, or append `k` when absent: one probe of the
    /// index either way. `true` when `k` was added.
    pub fn upsert(&mut self, k: Hashed<K>, v: V) -> bool {
        self.make_lazy_room();
        let Ok(i) = u32::try_from(self.entries.len()) else {
            return false;
        };
        let entries = &mut self.entries;
        match self.index.entry(
            k.h,
            |&j| entries.get(j as usize).is_some_and(|e| e.0 == k),
            |&j| entries.get(j as usize).map_or(0, |e| e.0.h),
        ) {
            hashbrown::hash_table::Entry::Occupied(o) => {
                if let Some(e) = entries.get_mut(*o.get() as usize) {
                    e.1 = v;
                }
                false
            }
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(i);
                entries.push((k, v));
                true
            }
        }
    }

    /// At the first insert, the room [`Self::lazy`] promised.
    #[inline]
    fn make_lazy_room(&mut self) {
        if self.lazy > 0 && self.entries.capacity() == 0 {
            let n = std::mem::take(&mut self.lazy);
            self.entries.reserve_exact(n);
            self.index.reserve(n, |_| 0);
        }
    }

    /// The value at position `i`.
    #[inline]
    pub fn value(&self, i: usize) -> Option<&V> {
        self.entries.get(i).map(|e| &e.1)
    }

    /// The value at position `i`, to change.
    #[inline]
    pub fn value_mut(&mut self, i: usize) -> Option<&mut V> {
        self.entries.get_mut(i).map(|e| &mut e.1)
    }

    pub fn remove(&mut self, k: &Hashed<K>) -> Option<V> {
        if self.entries.is_empty() {
            return None;
        }
        let entries = &self.entries;
        let slot = self
            .index
            .find_entry(k.h, |&i| entries.get(i as usize).is_some_and(|e| e.0 == *k))
            .ok()?;
        let (i, _) = slot.remove();
        self.take(i as usize)
    }

    /// Remove the entry at position `i` (from [`Self::pos`]).
    pub fn remove_at(&mut self, i: usize) -> Option<V> {
        let h = self.entries.get(i)?.0.h;
        let slot = self.index.find_entry(h, |&j| j as usize == i).ok()?;
        slot.remove();
        self.take(i)
    }

    /// Takes entry `i` out of the `Vec` once its index slot is gone.
    fn take(&mut self, i: usize) -> Option<V> {
        let last = self.entries.len().checked_sub(1)?;
        if i != last {
            // The last entry moves into the hole: repoint its index slot.
            let h = self.entries.get(last).map(|e| e.0.h)?;
            if let Some(p) = self.index.find_mut(h, |&j| j as usize == last) {
                *p = i as u32;
            }
        }
        let (_, v) = self.entries.swap_remove(i);
        Some(v)
    }

    pub fn clear(&mut self) {
        self.index.clear();
        self.entries.clear();
    }

    /// [`Self::clear`], returning how many entries `live` held for: one
    /// pass that counts and drops (a count then a clear read a large
    /// generation twice when its values need dropping).
    pub fn clear_counting(&mut self, mut live: impl FnMut(&V) -> bool) -> usize {
        self.index.clear();
        self.entries.drain(..).filter(|e| live(&e.1)).count()
    }

    pub fn iter(&self) -> impl Iterator<Item = &(Hashed<K>, V)> {
        self.entries.iter()
    }

    /// Keep the entries for which `keep` holds; the index is rebuilt (one
    /// pass: for periodic sweeps, not per packet).
    pub fn retain(&mut self, mut keep: impl FnMut(&mut V) -> bool) {
        let before = self.entries.len();
        self.entries.retain_mut(|e| keep(&mut e.1));
        if self.entries.len() == before {
            return;
        }
        self.index.clear();
        let entries = &self.entries;
        for (i, e) in entries.iter().enumerate() {
            let Ok(i) = u32::try_from(i) else { break };
            self.index
                .insert_unique(e.0.h, i, |&j| entries.get(j as usize).map_or(0, |e| e.0.h));
        }
    }
}

impl<K: Eq, V> Default for Gen<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K> Hashed<K> {
    /// `k` with a hash its owner computed (the flow table's own keyed hash).
    #[inline]
    pub fn with_hash(h: u64, k: K) -> Self {
        Hashed { h, k }
    }

    #[inline]
    pub fn hash(&self) -> u64 {
        self.h
    }
}

/// The folded 64x64 -> 128-bit multiply: the mixing step of [`PairHash`].
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

/// An address as two words, high then low (IPv4 in the low word; callers
/// put the family in the tail of [`PairHash::hash`]).
#[inline]
pub fn ip_words(ip: std::net::IpAddr) -> [u64; 2] {
    match ip {
        std::net::IpAddr::V4(v) => [0, u64::from(u32::from(v))],
        std::net::IpAddr::V6(v) => {
            let x = u128::from(v);
            [(x >> 64) as u64, x as u64]
        }
    }
}

/// Keyed hash of an address pair and a tail word (ports, protocol,
/// family) in three folded multiplies, with per-run random seeds (keys
/// come from packets): every [`PairKey`] (flow, held-connection and
/// generational-map keys), where a generic hasher's per-field updates cost
/// several times as much.
#[derive(Clone, Copy)]
pub struct PairHash([u64; 5]);

impl PairHash {
    pub fn new() -> Self {
        let rs = ahash::RandomState::new();
        PairHash([0u64, 1, 2, 3, 4].map(|i| rs.hash_one(i) | 1))
    }

    /// The hash of a [`PairKey`].
    #[inline]
    pub fn key<K: PairKey>(&self, k: &K) -> u64 {
        let (a, b, tail) = k.parts();
        self.hash(a, b, tail)
    }

    #[inline]
    pub fn hash(&self, a: [u64; 2], b: [u64; 2], tail: u64) -> u64 {
        let s = &self.0;
        let lo = fold_mul(a[1] ^ s[0], b[1] ^ s[1]);
        let hi = fold_mul(a[0] ^ s[2], b[0] ^ s[3]);
        fold_mul(lo ^ tail, hi ^ s[4])
    }
}

impl Default for PairHash {
    fn default() -> Self {
        Self::new()
    }
}

/// A key a [`GenMap`] hashes with [`PairHash`]: at most two addresses and
/// a tail word. Equality stays the key's own, so parts may collide (an IPv4
/// address and its IPv4-compatible IPv6 form) at the cost of a compare.
pub trait PairKey: Copy + Eq {
    fn parts(&self) -> ([u64; 2], [u64; 2], u64);
}

/// Family bit of an address for a tail word.
fn family(ip: std::net::IpAddr) -> u64 {
    u64::from(ip.is_ipv6()) << 63
}

impl PairKey for std::net::IpAddr {
    #[inline]
    fn parts(&self) -> ([u64; 2], [u64; 2], u64) {
        (ip_words(*self), [0, 0], family(*self))
    }
}

impl PairKey for (std::net::IpAddr, std::net::IpAddr, u16, u16) {
    #[inline]
    fn parts(&self) -> ([u64; 2], [u64; 2], u64) {
        let (a, b, p, q) = *self;
        let tail = (u64::from(p) << 16 | u64::from(q)) ^ family(a) ^ (family(b) >> 1);
        (ip_words(a), ip_words(b), tail)
    }
}

impl PairKey for (std::net::IpAddr, u64) {
    #[inline]
    fn parts(&self) -> ([u64; 2], [u64; 2], u64) {
        (ip_words(self.0), [0, self.1], family(self.0))
    }
}

impl PairKey for [u8; 6] {
    #[inline]
    fn parts(&self) -> ([u64; 2], [u64; 2], u64) {
        let mut w = [0u8; 8];
        for (d, s) in w.iter_mut().zip(self) {
            *d = *s;
        }
        ([0, u64::from_le_bytes(w)], [0, 0], 1)
    }
}

impl PairKey for u32 {
    #[inline]
    fn parts(&self) -> ([u64; 2], [u64; 2], u64) {
        ([0, u64::from(*self)], [0, 0], 2)
    }
}

impl PairKey for u64 {
    #[inline]
    fn parts(&self) -> ([u64; 2], [u64; 2], u64) {
        ([0, *self], [0, 0], 3)
    }
}

/// Append the value `make` builds, built in the vector's spare room. A
/// value of a few hundred bytes (an observation, a flow) built on the stack
/// and then copied in makes the copy's wide loads wait on the narrow stores
/// that built it (a store-forwarding stall: 5 % of a SYN flood's time);
/// built in place there is no copy.
#[inline(always)]
pub fn push_in_place<T>(v: &mut Vec<T>, make: impl FnOnce() -> T) {
    v.reserve(1);
    if let Some(slot) = v.spare_capacity_mut().first_mut() {
        slot.write(make());
        // SAFETY: the element at index `len` was initialised just above
        // (`reserve` made room for it); nothing else changed the vector.
        unsafe { v.set_len(v.len() + 1) };
    }
}

/// A map bounded to `max` entries with generational eviction.
pub struct GenMap<K, V> {
    cur: Gen<K, V>,
    old: Gen<K, V>,
    /// Hashes of the keys each generation was given ([`KeyBits`]): a key
    /// whose bit is clear is not in the older generation, so a new key
    /// costs one probe (its insert), not two (an insert, and a removal from
    /// the older generation that finds nothing: a cache miss in a flood).
    cur_bits: KeyBits,
    old_bits: KeyBits,
    half: usize,
    /// Random per-run keyed hash: keys (addresses, ports, ids) are chosen
    /// by whoever sends packets. Three folded multiplies (a generic hasher
    /// fed the key's fields one by one cost several times as much).
    seed: PairHash,
}

impl<K: PairKey, V> GenMap<K, V> {
    /// A map of at most `max` entries (at least 2).
    pub fn new(max: usize) -> Self {
        let half = (max / 2).clamp(1, MAX_GENERATION);
        GenMap {
            cur: Gen::lazy(half),
            old: Gen::lazy(half),
            cur_bits: KeyBits::for_entries(half),
            old_bits: KeyBits::for_entries(half),
            half,
            seed: PairHash::new(),
        }
    }

    #[inline]
    fn key(&self, k: &K) -> Hashed<K> {
        Hashed::with_hash(self.seed.key(k), *k)
    }

    /// Entries held (both generations).
    pub fn len(&self) -> usize {
        self.cur.len() + self.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cur.is_empty() && self.old.is_empty()
    }

    /// Position of `k` in the older generation.
    #[inline]
    fn old_pos(&self, k: &Hashed<K>) -> Option<usize> {
        if self.old_bits.maybe(k.h) {
            self.old.pos(k)
        } else {
            None
        }
    }

    /// Takes `k` out of the older generation.
    #[inline]
    fn old_remove(&mut self, k: &Hashed<K>) -> Option<V> {
        if self.old_bits.maybe(k.h) {
            self.old.remove(k)
        } else {
            None
        }
    }

    /// Appends `k` (absent from both generations) to the current one.
    #[inline]
    fn cur_push(&mut self, k: Hashed<K>, v: V) -> Option<&mut V> {
        self.cur_bits.set(k.h);
        self.cur.push(k, v)
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        if self.is_empty() {
            return None;
        }
        let k = self.key(k);
        if let Some(i) = self.cur.pos(&k) {
            return self.cur.entries.get(i).map(|e| &e.1);
        }
        let i = self.old_pos(&k)?;
        self.old.entries.get(i).map(|e| &e.1)
    }

    pub fn contains_key(&self, k: &K) -> bool {
        if self.is_empty() {
            return false;
        }
        let k = self.key(k);
        self.cur.pos(&k).is_some() || self.old_pos(&k).is_some()
    }

    /// Mutable access; an entry of the older generation moves to the
    /// current one (it is in use). Returns the value and the number of
    /// entries for which `live` held that a rotation dropped.
    pub fn get_mut(&mut self, k: &K, live: impl Fn(&V) -> bool) -> (Option<&mut V>, u64) {
        if self.is_empty() {
            return (None, 0);
        }
        let k = self.key(k);
        if let Some(i) = self.cur.pos(&k) {
            return (self.cur.entries.get_mut(i).map(|e| &mut e.1), 0);
        }
        match self.old_remove(&k) {
            Some(v) => {
                let dropped = self.make_room(&live);
                (self.cur_push(k, v), dropped)
            }
            None => (None, 0),
        }
    }

    /// Insert or replace. Returns how many entries for which `live` held
    /// were dropped to make room (0 almost always).
    pub fn insert(&mut self, k: K, v: V, live: impl Fn(&V) -> bool) -> u64 {
        let k = self.key(&k);
        if self.cur.len() >= self.half && self.cur.pos(&k).is_none() {
            // A new key at a full generation: out of the older one (where
            // the rotation would count it as dropped), rotate, append (rare).
            self.old_remove(&k);
            let dropped = self.make_room(&live);
            self.cur_push(k, v);
            return dropped;
        }
        self.cur_bits.set(k.h);
        if self.cur.upsert(k, v) {
            self.old_remove(&k);
        }
        0
    }

    /// Insert `k` unless present (in either generation, which is left as
    /// it is). `None` when it was present; otherwise what [`Self::insert`]
    /// returns.
    pub fn insert_new(&mut self, k: K, v: V, live: impl Fn(&V) -> bool) -> Option<u64> {
        let k = self.key(&k);
        if self.cur.pos(&k).is_some() || self.old_pos(&k).is_some() {
            return None;
        }
        let dropped = self.make_room(&live);
        self.cur_push(k, v);
        Some(dropped)
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        // Nothing to find (a table of answers' questions with no query seen):
        // no hash.
        if self.is_empty() {
            return None;
        }
        let k = self.key(k);
        if let Some(i) = self.cur.pos(&k) {
            return self.cur.remove_at(i);
        }
        self.old_remove(&k)
    }

    /// Rotate when the current generation is full: the older one is
    /// cleared (its allocation reused), the current one becomes the older.
    fn make_room(&mut self, live: &impl Fn(&V) -> bool) -> u64 {
        if self.cur.len() < self.half {
            return 0;
        }
        let dropped = self.old.clear_counting(live) as u64;
        std::mem::swap(&mut self.cur, &mut self.old);
        std::mem::swap(&mut self.cur_bits, &mut self.old_bits);
        self.cur_bits.clear();
        dropped
    }
}

/// A filter of keys by hash: one bit per hash, set for every key a table
/// is given. A clear bit means the key was never given (since the last
/// clear); a set one only that it may have been (a lookup tells), so a
/// lookup it skips could not have found anything. Allocated at the first
/// key. In front of a [`GenMap`]'s generations (eight bits a key of a full
/// generation: about one absent key in nine finds its bit set), the flow
/// table ([`crate::flow`]) and address tables ([`AddressBits`]).
pub struct KeyBits {
    words: Vec<u64>,
    /// Bits less one (their count is a power of two).
    mask: usize,
}

/// Most bits a [`KeyBits`] has (512 KiB).
pub const MAX_KEY_BITS: usize = 1 << 22;

impl KeyBits {
    /// `bits` bits (rounded up to a power of two, at least 64, at most
    /// [`MAX_KEY_BITS`]).
    pub fn with_bits(bits: usize) -> Self {
        KeyBits {
            words: Vec::new(),
            mask: bits.next_power_of_two().clamp(64, MAX_KEY_BITS) - 1,
        }
    }

    /// Eight bits per key for a table of `n` keys.
    pub fn for_entries(n: usize) -> Self {
        Self::with_bits(n.saturating_mul(8))
    }

    /// Word and bit of hash `h` (bits 24 and up: a generation's index uses
    /// the low ones for its bucket and the top seven for its tags).
    #[inline]
    fn at(&self, h: u64) -> (usize, u64) {
        let b = ((h >> 24) as usize) & self.mask;
        (b >> 6, 1u64 << (b & 63))
    }

    #[inline]
    pub fn set(&mut self, h: u64) {
        if self.words.is_empty() {
            self.words = vec![0; (self.mask + 1) / 64];
        }
        let (w, b) = self.at(h);
        if let Some(x) = self.words.get_mut(w) {
            *x |= b;
        }
    }

    /// False only when no key of hash `h` was set since the last clear
    /// (before the first key there are no words, and nothing was set).
    #[inline]
    pub fn maybe(&self, h: u64) -> bool {
        let (w, b) = self.at(h);
        self.words.get(w).is_some_and(|x| x & b != 0)
    }

    pub fn clear(&mut self) {
        self.words.fill(0);
    }
}

/// Keys seen recently, each with the packet time it was last seen: a
/// bounded cache of 64-bit fingerprints of keyed hashes, four ways to a
/// 64-byte bucket. An insert, a lookup or a removal reads one line (a
/// [`GenMap`] reads three or four for a new key: its index, its filters,
/// its entries), and nothing else is kept: for tables that only need "was
/// this key seen, and when" (DNS questions awaiting their answer, names
/// asked of a server). Two ways per key it may hold keep collisions rare
/// below the bound; a key whose bucket is full of live entries takes the
/// oldest one's place, counted as dropped, as a rotation's would be.
/// Fingerprints are 64-bit (a false match is a 1 in 2^62 event per lookup)
/// of a hash keyed per run, so senders cannot aim at a bucket.
pub struct RecentKeys<K> {
    buckets: Vec<RecentBucket>,
    /// Buckets made at the first insert (none for a table never used).
    lazy: usize,
    /// Occupied ways (a removal from an empty table costs no hash).
    used: usize,
    seed: PairHash,
    key: std::marker::PhantomData<K>,
}

/// Hint the cache to fetch the line at `t`.
#[inline]
fn prefetch_line<T>(t: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing into the program and cannot fault;
    // `t` is a valid reference besides.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (t as *const T).cast::<i8>(),
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = t;
}

/// Ways per [`RecentKeys`] bucket.
const RECENT_WAYS: usize = 4;

/// Fingerprints (0: a free way) and times of one bucket, one cache line.
#[derive(Clone, Copy, Default)]
#[repr(align(64))]
struct RecentBucket {
    fp: [u64; RECENT_WAYS],
    ts: [u64; RECENT_WAYS],
}

impl<K: PairKey> RecentKeys<K> {
    /// Room for `max` keys (twice as many ways, in whole buckets).
    pub fn new(max: usize) -> Self {
        RecentKeys {
            buckets: Vec::new(),
            lazy: (max.saturating_mul(2) / RECENT_WAYS)
                .max(1)
                .next_power_of_two(),
            used: 0,
            seed: PairHash::new(),
            key: std::marker::PhantomData,
        }
    }

    /// Keys the table can hold at once (ways).
    pub fn capacity(&self) -> usize {
        self.lazy.max(self.buckets.len()) * RECENT_WAYS
    }

    /// Fingerprint (never 0) and bucket of `k`.
    #[inline]
    fn locate(&self, k: &K) -> (u64, usize) {
        let h = self.seed.key(k);
        let n = self.buckets.len().max(1);
        (h | 1, ((h >> 32) as usize) & (n - 1))
    }

    /// Remember `k` seen at `ts`. Returns 1 when a live entry (per `live`
    /// of its time) gave up its place, else 0.
    pub fn insert(&mut self, k: &K, ts: u64, live: impl Fn(u64) -> bool) -> u64 {
        if self.buckets.is_empty() {
            self.buckets = vec![RecentBucket::default(); self.lazy];
        }
        let (fp, b) = self.locate(k);
        let Some(bucket) = self.buckets.get_mut(b) else {
            return 0;
        };
        // The key's own way, else a free one, else one whose time is no
        // longer live, else the oldest.
        let mut way = None;
        let mut free = None;
        let mut stale = None;
        let mut oldest = 0;
        for (i, (&f, &t)) in bucket.fp.iter().zip(bucket.ts.iter()).enumerate() {
            if f == fp {
                way = Some(i);
            } else if f == 0 {
                free = free.or(Some(i));
            } else if !live(t) {
                stale = stale.or(Some(i));
            } else if bucket.ts.get(oldest).is_some_and(|&o| t < o) {
                oldest = i;
            }
        }
        let (i, dropped) = match (way, free, stale) {
            (Some(i), ..) => (i, 0),
            (None, Some(i), _) => {
                self.used += 1;
                (i, 0)
            }
            (None, None, Some(i)) => (i, 0),
            (None, None, None) => (oldest, 1),
        };
        if let (Some(f), Some(t)) = (bucket.fp.get_mut(i), bucket.ts.get_mut(i)) {
            *f = fp;
            *t = ts;
        }
        dropped
    }

    /// Start fetching `k`'s bucket (a hint: no effect on the table), for
    /// an insert or lookup a little later, so that the misses of several
    /// tables overlap instead of following one another.
    #[inline]
    pub fn prefetch(&self, k: &K) {
        let (_, b) = self.locate(k);
        if let Some(bucket) = self.buckets.get(b) {
            prefetch_line(bucket);
        }
    }

    /// When `k` was last seen, if it is held.
    pub fn get(&self, k: &K) -> Option<u64> {
        if self.used == 0 {
            return None;
        }
        let (fp, b) = self.locate(k);
        let bucket = self.buckets.get(b)?;
        let i = bucket.fp.iter().position(|&f| f == fp)?;
        bucket.ts.get(i).copied()
    }

    /// Forget `k`; when it was last seen, if it was held.
    pub fn remove(&mut self, k: &K) -> Option<u64> {
        if self.used == 0 {
            return None;
        }
        let (fp, b) = self.locate(k);
        let bucket = self.buckets.get_mut(b)?;
        let i = bucket.fp.iter().position(|&f| f == fp)?;
        if let Some(f) = bucket.fp.get_mut(i) {
            *f = 0;
        }
        self.used -= 1;
        bucket.ts.get(i).copied()
    }
}

/// A filter in front of a bounded address table ([`KeyBits`] of
/// [`ADDRESS_BITS`] bits, 8 KiB, fixed: no limit to count), set for every
/// address the table is given and never cleared.
pub struct AddressBits(KeyBits);

/// Bits in an [`AddressBits`].
pub const ADDRESS_BITS: usize = 1 << 16;

impl Default for AddressBits {
    fn default() -> Self {
        AddressBits(KeyBits::with_bits(ADDRESS_BITS))
    }
}

impl AddressBits {
    /// A hash of `a` whose top bits, rotated to where [`KeyBits`] takes
    /// its bit, choose it.
    #[inline]
    fn hash(a: &std::net::IpAddr) -> u64 {
        let [hi, lo] = ip_words(*a);
        (lo ^ hi.rotate_left(17))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(40)
    }

    pub fn set(&mut self, a: &std::net::IpAddr) {
        self.0.set(Self::hash(a));
    }

    #[inline]
    pub fn maybe(&self, a: &std::net::IpAddr) -> bool {
        self.0.maybe(Self::hash(a))
    }
}

/// Steps an out-of-order touch may walk back from the newest entry to find
/// its place by time; beyond that it is placed there (eviction order is
/// then approximate for that entry; in-order packet time never walks).
pub const MAX_ORDER_WALK: usize = 64;

const NIL: u32 = u32::MAX;

struct Node<K> {
    key: K,
    ts: u64,
    /// In the list (false once removed, until the slot is reused).
    live: bool,
    prev: u32,
    next: u32,
}

/// Keys ordered by time (oldest at the front), ties in arrival order. Each
/// key is held by the slot number [`Lru::push`] returned; the caller keeps it.
pub struct Lru<K> {
    nodes: Vec<Node<K>>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    len: usize,
}

impl<K: Copy> Default for Lru<K> {
    fn default() -> Self {
        Lru {
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }
}

impl<K: Copy> Lru<K> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn node(&self, i: u32) -> Option<&Node<K>> {
        self.nodes.get(i as usize)
    }

    fn node_mut(&mut self, i: u32) -> Option<&mut Node<K>> {
        self.nodes.get_mut(i as usize)
    }

    /// The oldest entry: (time, key).
    pub fn front(&self) -> Option<(u64, K)> {
        self.node(self.head).map(|n| (n.ts, n.key))
    }

    /// Drop the oldest entry (for a caller whose own record of it is gone).
    pub fn pop_front(&mut self) {
        self.remove(self.head);
    }

    /// Add `key` seen at `ts`; returns its slot. `None` only when 2^32 - 1
    /// entries are held at once (the host table is far smaller).
    pub fn push(&mut self, key: K, ts: u64) -> Option<u32> {
        let node = Node {
            key,
            ts,
            live: true,
            prev: NIL,
            next: NIL,
        };
        let slot = match self.free.pop() {
            Some(i) => {
                *self.node_mut(i)? = node;
                i
            }
            None => {
                let i = u32::try_from(self.nodes.len()).ok().filter(|i| *i != NIL)?;
                self.nodes.push(node);
                i
            }
        };
        self.link(slot, ts);
        self.len += 1;
        Some(slot)
    }

    /// `slot` was seen again at `ts` (later than before): move it to its
    /// place by time, normally the back.
    pub fn touch(&mut self, slot: u32, ts: u64) {
        if !self.node(slot).is_some_and(|n| n.live) {
            return;
        }
        self.unlink(slot);
        if let Some(n) = self.node_mut(slot) {
            n.ts = ts;
        }
        self.link(slot, ts);
    }

    /// Drop `slot` (its number may be handed out again).
    pub fn remove(&mut self, slot: u32) {
        if !self.node(slot).is_some_and(|n| n.live) {
            return;
        }
        self.unlink(slot);
        if let Some(n) = self.node_mut(slot) {
            n.live = false;
        }
        self.free.push(slot);
        self.len = self.len.saturating_sub(1);
    }

    fn unlink(&mut self, slot: u32) {
        let Some((prev, next)) = self.node(slot).map(|n| (n.prev, n.next)) else {
            return;
        };
        match self.node_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.node_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
    }

    /// Insert an unlinked `slot` after the newest entry not later than `ts`
    /// (walking back at most [`MAX_ORDER_WALK`] entries).
    fn link(&mut self, slot: u32, ts: u64) {
        let mut after = self.tail;
        for _ in 0..MAX_ORDER_WALK {
            match self.node(after) {
                Some(n) if n.ts > ts => after = n.prev,
                _ => break,
            }
        }
        let next = match self.node(after) {
            Some(n) => n.next,
            None => self.head,
        };
        if let Some(n) = self.node_mut(slot) {
            n.prev = after;
            n.next = next;
        }
        match self.node_mut(after) {
            Some(a) => a.next = slot,
            None => self.head = slot,
        }
        match self.node_mut(next) {
            Some(n) => n.prev = slot,
            None => self.tail = slot,
        }
    }
}

/// Fingerprints per bucket: sixteen `u32`s, one 64-byte cache line.
const BUCKET_WAYS: usize = 16;

/// One bucket, aligned to its cache line (a `Vec` of `[u32; 16]` is only
/// 4-byte aligned: most buckets would straddle two lines).
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Bucket([u32; BUCKET_WAYS]);

/// A bounded set of 64-bit fingerprints in buckets of one cache line each
/// (16-way set-associative, like a CPU cache): membership and insert touch
/// one line, nothing is allocated after `new`, and the whole set is small
/// enough to stay in cache (65,536 fingerprints are 256 KiB). A bucket is
/// chosen by a fingerprint's top bits and keeps 32 of its low bits, so two
/// fingerprints are confused only when both agree (about 1 in 2^28 per
/// lookup at full capacity). A full bucket replaces one of its
/// fingerprints (chosen by the new one's bits), so a fingerprint may be
/// forgotten, and then counted as new again, once more than sixteen land
/// in its bucket (a bucket with sixteen or fewer loses nothing).
/// Used by the host table to count each host's distinct names beyond the
/// ones it keeps.
#[derive(Clone)]
pub struct FingerprintSet {
    buckets: Vec<Bucket>,
    /// Bucket index mask (a power of two less one).
    mask: u64,
}

impl FingerprintSet {
    /// A set of about `max` fingerprints (rounded up to whole buckets, a
    /// power of two of them).
    pub fn new(max: usize) -> Self {
        let n = (max / BUCKET_WAYS).max(1).next_power_of_two();
        FingerprintSet {
            buckets: vec![Bucket([0; BUCKET_WAYS]); n],
            mask: n as u64 - 1,
        }
    }

    /// Fingerprints the set can hold at once.
    pub fn capacity(&self) -> usize {
        self.buckets.len() * BUCKET_WAYS
    }

    /// Add `fp`; true when it was not in the set. (Its low 32 bits are
    /// stored; 0 marks an empty way, so low bits of 0 are stored as 1.)
    pub fn insert(&mut self, fp: u64) -> bool {
        // The bucket from the top bits, the stored word and the way to
        // replace from the low ones.
        let Some(Bucket(b)) = self.buckets.get_mut(((fp >> 40) & self.mask) as usize) else {
            return false;
        };
        let fp = (fp as u32).max(1);
        // One pass over the sixteen ways, no early exit (it compiles to
        // vector compares): which hold `fp`, which are empty.
        let (mut found, mut empty) = (0u32, 0u32);
        for (i, &x) in b.iter().enumerate() {
            found |= u32::from(x == fp) << i;
            empty |= u32::from(x == 0) << i;
        }
        if found != 0 {
            return false;
        }
        let way = match empty {
            0 => (fp as usize) % BUCKET_WAYS,
            e => e.trailing_zeros() as usize,
        };
        if let Some(x) = b.get_mut(way) {
            *x = fp;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A splitmix64 stream: distinct, well-spread test fingerprints.
    fn fps(seed: u64, n: usize) -> Vec<u64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^ (z >> 31)
            })
            .collect()
    }

    /// Below capacity little is forgotten (only in buckets that got more
    /// than sixteen); at five times capacity the set stays its size and
    /// the newest fingerprints are the ones found.
    #[test]
    fn fingerprint_set_remembers_within_its_buckets() {
        let mut s = FingerprintSet::new(65_536);
        assert_eq!(s.capacity(), 65_536);
        let a = fps(1, 30_000);
        assert!(
            a.iter().all(|&f| s.insert(f)),
            "distinct fingerprints are new"
        );
        let found = a.iter().filter(|&&f| !s.insert(f)).count();
        assert!(found >= 29_400, "only {found} of 30,000 remembered");
        let flood = fps(2, 5 * 65_536);
        let new = flood.iter().filter(|&&f| s.insert(f)).count();
        assert!(new > 5 * 65_536 - 100, "{new}");
        let last = flood
            .iter()
            .rev()
            .take(1_000)
            .filter(|&&f| !s.insert(f))
            .count();
        assert!(last > 500, "only {last} of the newest 1,000 found");
        // One bucket: the seventeenth fingerprint replaces one of the sixteen.
        let mut one = FingerprintSet::new(BUCKET_WAYS);
        let seventeen = fps(3, BUCKET_WAYS + 1);
        assert!(seventeen.iter().all(|&f| one.insert(f)));
        // Asked one at a time (a miss would insert and push out another).
        let kept = seventeen
            .iter()
            .filter(|&&f| !one.clone().insert(f))
            .count();
        assert_eq!(kept, BUCKET_WAYS, "sixteen kept, one replaced");
        assert!(!one.insert(seventeen[BUCKET_WAYS]), "the newest is kept");
        assert!(!one.insert(0) || !one.insert(0), "0 is stored (as 1)");
    }

    #[test]
    fn bounded_and_recent_entries_survive() {
        let mut m: GenMap<u32, u32> = GenMap::new(8);
        let mut dropped = 0;
        for i in 0..100u32 {
            dropped += m.insert(i, i, |_| true);
            // key 0 is used all the time: it must never be dropped
            let (v, d) = m.get_mut(&0, |_| true);
            dropped += d;
            if i > 0 {
                assert!(v.is_some(), "entry in use was evicted at {i}");
            }
            assert!(m.len() <= 8, "{} entries", m.len());
        }
        assert!(m.contains_key(&99) && !m.contains_key(&50));
        assert!(dropped > 80, "drops counted: {dropped}");
    }

    #[test]
    fn dead_entries_are_not_counted() {
        let mut m: GenMap<u32, bool> = GenMap::new(4);
        let mut dropped = 0;
        for i in 0..20u32 {
            dropped += m.insert(i, i % 2 == 0, |live| *live);
        }
        // Only the live (even) values that were pushed out count.
        assert!(dropped > 0 && dropped <= 10, "{dropped}");
        assert_eq!(m.remove(&19), Some(false));
        assert!(m.get(&19).is_none());
    }

    #[test]
    fn recent_keys_remember_times_and_count_live_entries_pushed_out() {
        // (Every assertion holds whatever the run's hash seed: which keys
        // share a bucket is left to chance only where it cannot matter.)
        let mut r: RecentKeys<u64> = RecentKeys::new(64);
        assert_eq!(r.capacity(), 128);
        assert_eq!(r.remove(&1), None);
        assert_eq!(r.insert(&1, 10, |_| true), 0);
        assert_eq!(r.get(&1), Some(10));
        // Seen again: the time moves on, nothing is pushed out.
        assert_eq!(r.insert(&1, 20, |_| true), 0);
        assert_eq!(r.get(&1), Some(20));
        assert_eq!(r.remove(&1), Some(20));
        assert_eq!(r.get(&1), None);
        assert_eq!(r.remove(&1), None);
        // A flood of live keys: every key pushed out is counted, and the
        // newest is held.
        let mut dropped = 0;
        for k in 1_000..11_000u64 {
            dropped += r.insert(&k, k, |_| true);
        }
        let held = (1_000..11_000u64).filter(|k| r.get(k).is_some()).count();
        assert_eq!(held as u64 + dropped, 10_000);
        assert!(held <= r.capacity());
        assert_eq!(r.get(&10_999), Some(10_999));
        // Four keys can never fill a bucket: once the flood's keys are no
        // longer live, four new ones take their places uncounted.
        let mut d = 0;
        for k in 20_000..20_004u64 {
            d += r.insert(&k, k, |t| t >= 20_000);
        }
        assert_eq!(d, 0);
        assert!((20_000..20_004u64).all(|k| r.get(&k) == Some(k)));

        // One bucket (a table sized for two keys has four ways): four keys
        // fit; a fifth live one takes the oldest's way, counted; one whose
        // oldest is no longer live takes that way uncounted.
        let mut one: RecentKeys<u64> = RecentKeys::new(2);
        assert_eq!(one.capacity(), 4);
        for k in 0..4u64 {
            assert_eq!(one.insert(&k, 100 + k, |_| true), 0, "key {k}");
        }
        assert!((0..4u64).all(|k| one.get(&k) == Some(100 + k)));
        assert_eq!(one.insert(&4, 110, |_| true), 1);
        assert_eq!(one.get(&0), None);
        assert!((1..5u64).all(|k| one.get(&k).is_some()));
        assert_eq!(one.insert(&5, 120, |t| t >= 102), 0);
        assert_eq!(one.get(&1), None);
        assert!((2..6u64).all(|k| one.get(&k).is_some()));
        // A removed key's way is free again.
        assert_eq!(one.remove(&2), Some(102));
        assert_eq!(one.insert(&6, 130, |_| true), 0);
        assert!([3u64, 4, 5, 6].iter().all(|k| one.get(k).is_some()));
    }

    /// The two generations as plain maps, rotating by the same rule: what
    /// a [`GenMap`] must hold and answer after any sequence of operations.
    struct TwoMaps {
        cur: std::collections::HashMap<u32, u32>,
        old: std::collections::HashMap<u32, u32>,
        half: usize,
    }

    impl TwoMaps {
        fn rotate(&mut self, live: impl Fn(&u32) -> bool) -> u64 {
            if self.cur.len() < self.half {
                return 0;
            }
            let dropped = self.old.values().filter(|v| live(v)).count() as u64;
            self.old = std::mem::take(&mut self.cur);
            dropped
        }
    }

    #[test]
    fn generations_rotate_as_two_plain_maps_do() {
        // Small generations, many rotations: every answer (and every count
        // of dropped live entries) must be the plain maps'. A key filter
        // that answered "absent" for a key in a generation would show here
        // as a missed get, a double entry (len) or a wrong drop count.
        let live = |v: &u32| v % 3 != 0;
        for max in [2, 8, 64] {
            let mut m: GenMap<u32, u32> = GenMap::new(max);
            let mut w = TwoMaps {
                cur: Default::default(),
                old: Default::default(),
                half: max / 2,
            };
            let mut x = 0x9e37_79b9_u32;
            for step in 0..60_000u32 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let k = (x >> 8) % (max as u32 * 3);
                let at = format!("max {max} step {step} key {k}");
                match x % 5 {
                    0 => {
                        let got = m.insert(k, step, live);
                        let mut dropped = 0;
                        if w.cur.len() >= w.half && !w.cur.contains_key(&k) {
                            w.old.remove(&k);
                            dropped = w.rotate(live);
                        }
                        if w.cur.insert(k, step).is_none() {
                            w.old.remove(&k);
                        }
                        assert_eq!(got, dropped, "insert, {at}");
                    }
                    1 => {
                        let got = m.insert_new(k, step, live);
                        let want = if w.cur.contains_key(&k) || w.old.contains_key(&k) {
                            None
                        } else {
                            let d = w.rotate(live);
                            w.cur.insert(k, step);
                            Some(d)
                        };
                        assert_eq!(got, want, "insert_new, {at}");
                    }
                    2 => {
                        let (got, d) = m.get_mut(&k, live);
                        let got = got.map(|v| *v);
                        let (want, wd) = if let Some(v) = w.cur.get(&k) {
                            (Some(*v), 0)
                        } else if let Some(v) = w.old.remove(&k) {
                            let d = w.rotate(live);
                            w.cur.insert(k, v);
                            (Some(v), d)
                        } else {
                            (None, 0)
                        };
                        assert_eq!((got, d), (want, wd), "get_mut, {at}");
                    }
                    3 => {
                        let want = w.cur.remove(&k).or_else(|| w.old.remove(&k));
                        assert_eq!(m.remove(&k), want, "remove, {at}");
                    }
                    _ => {
                        let want = w.cur.get(&k).or_else(|| w.old.get(&k));
                        assert_eq!(m.get(&k), want, "get, {at}");
                        assert_eq!(m.contains_key(&k), want.is_some(), "contains, {at}");
                    }
                }
                assert_eq!(m.len(), w.cur.len() + w.old.len(), "len, {at}");
            }
        }
    }

    #[test]
    fn generation_matches_a_map_through_removals() {
        // Within one generation's bound nothing rotates: after any mix of
        // inserts, replacements and removals (each removal moves the last
        // entry into the hole and repoints its index slot) every key must
        // read back as a plain map says, and the entries must be exactly
        // the map's.
        let mut m: GenMap<u32, u32> = GenMap::new(1 << 16);
        let mut want = std::collections::HashMap::new();
        let mut x = 0x2545_f491_u32;
        for step in 0..40_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let k = x % 3_000;
            if (x >> 24) % 3 == 0 {
                assert_eq!(m.remove(&k), want.remove(&k), "remove {k} at {step}");
            } else {
                assert_eq!(m.insert(k, step, |_| true), 0);
                want.insert(k, step);
            }
            if step % 1_000 == 0 {
                for k in 0..3_000 {
                    assert_eq!(m.get(&k), want.get(&k), "key {k} at {step}");
                }
            }
        }
        assert_eq!(m.len(), want.len());
        for (k, v) in &want {
            assert_eq!(m.get(k), Some(v), "key {k} at the end");
        }
    }

    fn order(l: &Lru<u32>) -> Vec<(u64, u32)> {
        let mut out = Vec::new();
        let mut i = l.head;
        while let Some(n) = l.node(i) {
            out.push((n.ts, n.key));
            i = n.next;
        }
        out
    }

    #[test]
    fn lru_orders_by_time_and_reuses_slots() {
        let mut l = Lru::default();
        let a = l.push(1, 10).unwrap();
        let b = l.push(2, 20).unwrap();
        let c = l.push(3, 30).unwrap();
        assert_eq!(l.front(), Some((10, 1)));
        l.touch(a, 40);
        assert_eq!(order(&l), vec![(20, 2), (30, 3), (40, 1)]);
        // Out of order: placed by time, not at the back.
        l.touch(b, 35);
        assert_eq!(order(&l), vec![(30, 3), (35, 2), (40, 1)]);
        // Equal times keep arrival order.
        let d = l.push(4, 40).unwrap();
        assert_eq!(order(&l), vec![(30, 3), (35, 2), (40, 1), (40, 4)]);
        l.remove(c);
        l.remove(d);
        assert_eq!(l.len(), 2);
        assert_eq!(l.front(), Some((35, 2)));
        // A freed slot is reused; an older time goes to the front.
        let e = l.push(5, 1).unwrap();
        assert!(e == c || e == d);
        assert_eq!(order(&l), vec![(1, 5), (35, 2), (40, 1)]);
        l.remove(a);
        l.remove(b);
        l.remove(e);
        assert!(l.is_empty() && l.front().is_none());
        // Removing twice or an unknown slot changes nothing.
        l.remove(e);
        l.touch(99, 5);
        assert!(l.is_empty());
    }

    #[test]
    fn lru_walk_is_bounded() {
        let mut l = Lru::default();
        for i in 0..1000u32 {
            l.push(i, 1000 + u64::from(i));
        }
        // Older than everything: walks MAX_ORDER_WALK steps, then stops.
        l.push(5000, 0);
        let o = order(&l);
        let at = o.iter().position(|x| x.1 == 5000).unwrap();
        assert_eq!(at, 1000 - MAX_ORDER_WALK);
        assert_eq!(o.len(), 1001);
    }

    /// Keys whose parts give the same words (an IPv4 address and its
    /// IPv4-compatible IPv6 form; query keys with the ends swapped) are
    /// still told apart by equality.
    #[test]
    fn pair_keys_that_share_words_stay_apart() {
        use std::net::IpAddr;
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let v6: IpAddr = "::10.1.2.3".parse().unwrap();
        let mut m: GenMap<IpAddr, u8> = GenMap::new(64);
        m.insert(v4, 4, |_| true);
        m.insert(v6, 6, |_| true);
        assert_eq!((m.get(&v4), m.get(&v6), m.len()), (Some(&4), Some(&6), 2));
        let mut q: GenMap<(IpAddr, IpAddr, u16, u16), u8> = GenMap::new(64);
        q.insert((v4, v6, 53, 7), 1, |_| true);
        q.insert((v6, v4, 53, 7), 2, |_| true);
        q.insert((v4, v6, 7, 53), 3, |_| true);
        assert_eq!(q.get(&(v4, v6, 53, 7)), Some(&1));
        assert_eq!(q.get(&(v6, v4, 53, 7)), Some(&2));
        assert_eq!(q.remove(&(v4, v6, 7, 53)), Some(3));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn a_flood_costs_constant_time_per_insert() {
        // 1M inserts into a 1024-entry map: quadratic behaviour would take minutes.
        let mut m: GenMap<u64, u64> = GenMap::new(1024);
        let mut dropped = 0;
        for i in 0..1_000_000u64 {
            dropped += m.insert(i, i, |_| true);
        }
        assert!(m.len() <= 1024);
        assert!(dropped >= 1_000_000 - 1024);
    }

    #[test]
    fn address_bits_never_forget_an_address() {
        use std::net::IpAddr;
        let mut bits = AddressBits::default();
        let added: Vec<IpAddr> = (0..5000u32)
            .map(|i| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i * 7919)))
            .chain((0..5000u128).map(|i| IpAddr::from(std::net::Ipv6Addr::from(i << 64 | i))))
            .collect();
        for a in &added {
            bits.set(a);
        }
        assert!(added.iter().all(|a| bits.maybe(a)));
        // Far from full, most other addresses answer "no".
        let others = (0..10_000u32)
            .map(|i| IpAddr::from(std::net::Ipv4Addr::from(0xc0a8_0000 + i)))
            .filter(|a| bits.maybe(a))
            .count();
        assert!(others < 2_500, "{others} false positives of 10000");
    }

    #[test]
    fn push_in_place_appends_what_it_builds() {
        let mut v: Vec<(u64, String)> = Vec::new();
        for i in 0..1000u64 {
            push_in_place(&mut v, || (i, i.to_string()));
            assert_eq!(v.len() as u64, i + 1);
        }
        assert!(v
            .iter()
            .enumerate()
            .all(|(i, (n, s))| *n == i as u64 && *s == i.to_string()));
    }
}
