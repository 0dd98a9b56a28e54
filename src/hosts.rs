//! Per-host state for hosts that contacted a Kaspersky endpoint: first/last
//! seen (packet time), callbacks by category and protocol, MAC, distinct names
//! (capped). Bounded by `--max-hosts` (least recently seen evicted) and
//! `--host-idle` (packet time). Owned by the pipeline's merger; read by the
//! exporters (report, metrics). The same code serves `read` and `live`.

use crate::proto::Protocol;
use crate::signatures::Category;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

/// Distinct names kept per host; further distinct names are only counted.
pub const MAX_NAMES_PER_HOST: usize = 64;
/// Distinct overflow names remembered (as hashes) to count "+N more".
pub const MAX_OVERFLOW_NAMES: usize = 4096;
/// Default host-table cap (`--max-hosts`).
pub const DEFAULT_MAX_HOSTS: usize = 10_000;

const NCAT: usize = Category::ALL.len();
const NPROTO: usize = Protocol::ALL.len();

/// One host.
#[derive(Clone, Debug)]
pub struct Host {
    pub ip: IpAddr,
    pub mac: Option<[u8; 6]>,
    pub first_seen: u64,
    pub last_seen: u64,
    pub counts: [[u64; NPROTO]; NCAT],
    pub names: Vec<String>,
    overflow: HashSet<u64>,
    pub overflow_names: u64,
    pub managed: bool,
    pub inventory_name: Option<String>,
}

impl Host {
    pub fn count(&self, c: Category, p: Protocol) -> u64 {
        self.counts[c as usize][p as usize]
    }
    pub fn category_total(&self, c: Category) -> u64 {
        self.counts[c as usize].iter().sum()
    }
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }
    pub fn protocols(&self) -> Vec<Protocol> {
        Protocol::ALL
            .into_iter()
            .filter(|p| self.counts.iter().any(|row| row[*p as usize] > 0))
            .collect()
    }
    pub fn mac_string(&self) -> Option<String> {
        self.mac.map(fmt_mac)
    }
}

pub fn fmt_mac(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Why a host left the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    Capacity,
    Idle,
}

/// The bounded host table.
pub struct HostTable {
    map: HashMap<IpAddr, Host, ahash::RandomState>,
    /// (last_seen, ip): the front is the least recently seen host.
    order: BTreeSet<(u64, IpAddr)>,
    max_hosts: usize,
    idle_ns: Option<u64>,
    pub evicted_capacity: u64,
    pub evicted_idle: u64,
    pub names_capped: u64,
    /// Random hasher for the overflow-name fingerprints (names are attacker-chosen).
    name_hasher: ahash::RandomState,
}

impl HostTable {
    pub fn new(max_hosts: usize, idle_ns: Option<u64>) -> Self {
        HostTable {
            map: HashMap::with_hasher(ahash::RandomState::new()),
            order: BTreeSet::new(),
            max_hosts: max_hosts.max(1),
            idle_ns,
            evicted_capacity: 0,
            evicted_idle: 0,
            names_capped: 0,
            name_hasher: ahash::RandomState::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn get(&self, ip: &IpAddr) -> Option<&Host> {
        self.map.get(ip)
    }
    pub fn get_mut(&mut self, ip: &IpAddr) -> Option<&mut Host> {
        self.map.get_mut(ip)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Host> {
        self.map.values()
    }

    /// Record one callback. Returns the hosts evicted to make room.
    pub fn record(
        &mut self,
        ip: IpAddr,
        mac: Option<[u8; 6]>,
        ts: u64,
        cat: Category,
        proto: Protocol,
        name: &str,
    ) -> Vec<(IpAddr, Eviction)> {
        let mut evicted = self.expire(ts);
        if !self.map.contains_key(&ip) {
            while self.map.len() >= self.max_hosts {
                let Some(&(t, victim)) = self.order.iter().next() else {
                    break;
                };
                self.order.remove(&(t, victim));
                self.map.remove(&victim);
                self.evicted_capacity += 1;
                evicted.push((victim, Eviction::Capacity));
            }
            self.map.insert(
                ip,
                Host {
                    ip,
                    mac,
                    first_seen: ts,
                    last_seen: ts,
                    counts: [[0; NPROTO]; NCAT],
                    names: Vec::new(),
                    overflow: HashSet::new(),
                    overflow_names: 0,
                    managed: false,
                    inventory_name: None,
                },
            );
            self.order.insert((ts, ip));
        }
        let Some(h) = self.map.get_mut(&ip) else {
            return evicted;
        };
        if mac.is_some() {
            h.mac = mac;
        }
        if ts > h.last_seen {
            self.order.remove(&(h.last_seen, ip));
            h.last_seen = ts;
            self.order.insert((ts, ip));
        }
        h.first_seen = h.first_seen.min(ts);
        h.counts[cat as usize][proto as usize] += 1;
        if !h.names.iter().any(|n| n == name) {
            if h.names.len() < MAX_NAMES_PER_HOST {
                h.names.push(name.to_string());
            } else {
                let k = self.name_hasher.hash_one(name);
                if h.overflow.len() < MAX_OVERFLOW_NAMES {
                    if h.overflow.insert(k) {
                        h.overflow_names += 1;
                        self.names_capped += 1;
                    }
                } else {
                    h.overflow_names += 1;
                    self.names_capped += 1;
                }
            }
        }
        evicted
    }

    /// Drop hosts whose last callback is older than the idle limit at `now`.
    pub fn expire(&mut self, now: u64) -> Vec<(IpAddr, Eviction)> {
        let mut out = Vec::new();
        let Some(idle) = self.idle_ns else { return out };
        while let Some(&(t, ip)) = self.order.iter().next() {
            if now.saturating_sub(t) <= idle {
                break;
            }
            self.order.remove(&(t, ip));
            self.map.remove(&ip);
            self.evicted_idle += 1;
            out.push((ip, Eviction::Idle));
        }
        out
    }

    /// Hosts sorted by last seen, most recent first (ties by address).
    pub fn sorted(&self) -> Vec<&Host> {
        let mut v: Vec<&Host> = self.map.values().collect();
        v.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.ip.cmp(&b.ip)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
    }

    #[test]
    fn counts_and_names() {
        let mut t = HostTable::new(10, None);
        t.record(
            ip(1),
            None,
            5,
            Category::Update,
            Protocol::Dns,
            "a.kaspersky.com",
        );
        t.record(
            ip(1),
            Some([1, 2, 3, 4, 5, 6]),
            3,
            Category::Ksn,
            Protocol::Tls,
            "a.kaspersky.com",
        );
        let h = t.get(&ip(1)).unwrap();
        assert_eq!((h.first_seen, h.last_seen, h.total()), (3, 5, 2));
        assert_eq!(h.names, vec!["a.kaspersky.com"]);
        assert_eq!(h.protocols(), vec![Protocol::Dns, Protocol::Tls]);
        assert_eq!(h.mac_string().as_deref(), Some("01:02:03:04:05:06"));
    }

    #[test]
    fn evicts_least_recently_seen_and_idle() {
        let mut t = HostTable::new(2, Some(100));
        t.record(ip(1), None, 10, Category::Update, Protocol::Dns, "x");
        t.record(ip(2), None, 20, Category::Update, Protocol::Dns, "x");
        t.record(ip(1), None, 30, Category::Update, Protocol::Dns, "x");
        let ev = t.record(ip(3), None, 40, Category::Update, Protocol::Dns, "x");
        assert_eq!(ev, vec![(ip(2), Eviction::Capacity)]);
        assert_eq!(t.evicted_capacity, 1);
        let ev = t.expire(135);
        assert_eq!(ev, vec![(ip(1), Eviction::Idle)]);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn names_capped() {
        let mut t = HostTable::new(2, None);
        for i in 0..(MAX_NAMES_PER_HOST + 10) {
            t.record(
                ip(1),
                None,
                1,
                Category::Other,
                Protocol::Dns,
                &format!("n{i}.kaspersky.com"),
            );
            t.record(
                ip(1),
                None,
                1,
                Category::Other,
                Protocol::Dns,
                &format!("n{i}.kaspersky.com"),
            );
        }
        let h = t.get(&ip(1)).unwrap();
        assert_eq!(h.names.len(), MAX_NAMES_PER_HOST);
        assert_eq!(h.overflow_names, 10);
    }
}
