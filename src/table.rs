//! Bounded maps for state that traffic (and so an attacker) can grow: the
//! merger's address attributions, shared-address marks, pending DNS queries
//! and resolvers. A [`GenMap`] keeps two generations of at most `max / 2`
//! entries each; when the current one is full the older generation is
//! cleared in one pass and the current one becomes the older. Insert, lookup
//! and eviction are O(1) amortised (no scan per insert, no sort, no
//! allocation after the first fill), and an entry that is used again moves
//! back into the current generation, so live entries survive a flood of new
//! ones for at least `max / 2` inserts. Used by `pipeline::merger` and
//! `pipeline::address`; the callers count what was dropped.

use std::collections::HashMap;
use std::hash::Hash;

/// A map bounded to `max` entries with generational eviction.
pub struct GenMap<K, V> {
    cur: HashMap<K, V, ahash::RandomState>,
    old: HashMap<K, V, ahash::RandomState>,
    half: usize,
}

impl<K: Hash + Eq + Copy, V> GenMap<K, V> {
    /// A map of at most `max` entries (at least 2). Random per-run hasher:
    /// keys (addresses, ports, ids) are chosen by whoever sends packets.
    pub fn new(max: usize) -> Self {
        let half = (max / 2).max(1);
        let seed = ahash::RandomState::new();
        GenMap {
            cur: HashMap::with_hasher(seed.clone()),
            old: HashMap::with_hasher(seed),
            half,
        }
    }

    /// Entries held (both generations).
    pub fn len(&self) -> usize {
        self.cur.len() + self.old.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cur.is_empty() && self.old.is_empty()
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.cur.get(k).or_else(|| self.old.get(k))
    }

    pub fn contains_key(&self, k: &K) -> bool {
        self.cur.contains_key(k) || self.old.contains_key(k)
    }

    /// Mutable access; an entry of the older generation moves to the
    /// current one (it is in use). Returns the value and the number of
    /// entries for which `live` held that a rotation dropped.
    pub fn get_mut(&mut self, k: &K, live: impl Fn(&V) -> bool) -> (Option<&mut V>, u64) {
        if self.cur.contains_key(k) {
            return (self.cur.get_mut(k), 0);
        }
        match self.old.remove(k) {
            Some(v) => {
                let dropped = self.make_room(&live);
                (Some(self.cur.entry(*k).or_insert(v)), dropped)
            }
            None => (None, 0),
        }
    }

    /// Insert or replace. Returns how many entries for which `live` held
    /// were dropped to make room (0 almost always).
    pub fn insert(&mut self, k: K, v: V, live: impl Fn(&V) -> bool) -> u64 {
        if let Some(slot) = self.cur.get_mut(&k) {
            *slot = v;
            return 0;
        }
        self.old.remove(&k);
        let dropped = self.make_room(&live);
        self.cur.insert(k, v);
        dropped
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        self.cur.remove(k).or_else(|| self.old.remove(k))
    }

    /// Entries of both generations, current first.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.cur.iter().chain(self.old.iter())
    }

    /// Rotate when the current generation is full: the older one is
    /// cleared (its allocation reused), the current one becomes the older.
    fn make_room(&mut self, live: &impl Fn(&V) -> bool) -> u64 {
        if self.cur.len() < self.half {
            return 0;
        }
        let dropped = self.old.values().filter(|v| live(v)).count() as u64;
        self.old.clear();
        std::mem::swap(&mut self.cur, &mut self.old);
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
