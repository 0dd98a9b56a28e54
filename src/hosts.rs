//! Per-host state for hosts that contacted a Kaspersky endpoint: first/last
//! seen (packet time), callbacks by category, protocol and evidence, role
//! (device or resolver), MAC, distinct names (capped). Bounded by `--max-hosts` (least recently seen evicted) and
//! `--host-idle` (packet time). Owned by the pipeline's merger; read by the
//! exporters (report, metrics). The same code serves `read` and `live`.

use crate::evidence::{Evidence, Role, Selection};
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

/// Distinct (category, protocol, evidence) counters per host: bounded by
/// the product of the three enums (6 x 5 x 3), kept as a short list because a
/// host rarely has more than a few.
pub const MAX_COUNTERS_PER_HOST: usize = Category::ALL.len() * Protocol::ALL.len() * 3;

/// One callback, as the host table records it.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub ip: IpAddr,
    pub mac: Option<[u8; 6]>,
    pub ts: u64,
    pub category: Category,
    pub protocol: Protocol,
    pub evidence: Evidence,
    pub role: Role,
    pub name: &'a str,
}

/// One host.
#[derive(Clone, Debug)]
pub struct Host {
    pub ip: IpAddr,
    pub mac: Option<[u8; 6]>,
    pub first_seen: u64,
    pub last_seen: u64,
    /// Callbacks by (category, protocol, evidence); each triple once.
    pub counts: Vec<(Category, Protocol, Evidence, u64)>,
    pub role: Role,
    pub names: Vec<String>,
    overflow: HashSet<u64>,
    pub overflow_names: u64,
    pub managed: bool,
    pub inventory_name: Option<String>,
}

impl Host {
    pub fn category_total(&self, c: Category) -> u64 {
        self.counts.iter().filter(|x| x.0 == c).map(|x| x.3).sum()
    }
    pub fn evidence_total(&self, e: Evidence) -> u64 {
        self.counts.iter().filter(|x| x.2 == e).map(|x| x.3).sum()
    }
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|x| x.3).sum()
    }
    pub fn protocols(&self) -> Vec<Protocol> {
        Protocol::ALL
            .into_iter()
            .filter(|p| self.counts.iter().any(|x| x.1 == *p))
            .collect()
    }
    /// Evidence kinds this host's callbacks rest on, strongest first.
    pub fn evidence(&self) -> Vec<Evidence> {
        Evidence::ALL
            .into_iter()
            .filter(|e| self.counts.iter().any(|x| x.2 == *e))
            .collect()
    }
    /// Which section of the report the host belongs to under `sel`.
    pub fn section(&self, sel: &Selection) -> Section {
        if self.role == Role::Resolver && !sel.count_resolvers {
            Section::Resolvers
        } else if self.counts.iter().any(|x| sel.evidence.contains(x.2)) {
            Section::Devices
        } else {
            Section::Other
        }
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

/// Where a host stands in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Phoned home on evidence the selection accepts.
    Devices,
    /// Answers DNS for other hosts; its lookups are its clients'.
    Resolvers,
    /// Only evidence outside the selection (by default: address alone).
    Other,
}

impl Section {
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Devices => "hosts",
            Section::Resolvers => "resolvers",
            Section::Other => "other",
        }
    }
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
    /// Which hosts are devices (`--evidence`, `--count-resolvers`).
    pub selection: Selection,
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
            selection: Selection::default(),
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
    pub fn record(&mut self, r: &Record<'_>) -> Vec<(IpAddr, Eviction)> {
        let Record {
            ip, mac, ts, name, ..
        } = *r;
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
                    counts: Vec::new(),
                    role: r.role,
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
        if r.role == Role::Resolver {
            h.role = Role::Resolver;
        }
        let key = (r.category, r.protocol, r.evidence);
        let full = h.counts.len() >= MAX_COUNTERS_PER_HOST;
        match h.counts.iter_mut().find(|x| (x.0, x.1, x.2) == key) {
            Some(x) => x.3 += 1,
            None if !full => h.counts.push((key.0, key.1, key.2, 1)),
            None => {}
        }
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

    /// Mark a host as a resolver (it answered DNS for others).
    pub fn set_resolver(&mut self, ip: &IpAddr) {
        if let Some(h) = self.map.get_mut(ip) {
            h.role = Role::Resolver;
        }
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

    fn rec(
        ip: IpAddr,
        mac: Option<[u8; 6]>,
        ts: u64,
        category: Category,
        protocol: Protocol,
        name: &str,
    ) -> Record<'_> {
        Record {
            ip,
            mac,
            ts,
            category,
            protocol,
            evidence: if protocol == Protocol::Ip {
                Evidence::Address
            } else {
                Evidence::Name
            },
            role: Role::Device,
            name,
        }
    }

    #[test]
    fn counts_and_names() {
        let mut t = HostTable::new(10, None);
        t.record(&rec(
            ip(1),
            None,
            5,
            Category::Update,
            Protocol::Dns,
            "a.kaspersky.com",
        ));
        t.record(&rec(
            ip(1),
            Some([1, 2, 3, 4, 5, 6]),
            3,
            Category::Ksn,
            Protocol::Tls,
            "a.kaspersky.com",
        ));
        let h = t.get(&ip(1)).unwrap();
        assert_eq!((h.first_seen, h.last_seen, h.total()), (3, 5, 2));
        assert_eq!(h.names, vec!["a.kaspersky.com"]);
        assert_eq!(h.protocols(), vec![Protocol::Dns, Protocol::Tls]);
        assert_eq!(h.mac_string().as_deref(), Some("01:02:03:04:05:06"));
    }

    #[test]
    fn evicts_least_recently_seen_and_idle() {
        let mut t = HostTable::new(2, Some(100));
        t.record(&rec(ip(1), None, 10, Category::Update, Protocol::Dns, "x"));
        t.record(&rec(ip(2), None, 20, Category::Update, Protocol::Dns, "x"));
        t.record(&rec(ip(1), None, 30, Category::Update, Protocol::Dns, "x"));
        let ev = t.record(&rec(ip(3), None, 40, Category::Update, Protocol::Dns, "x"));
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
            t.record(&rec(
                ip(1),
                None,
                1,
                Category::Other,
                Protocol::Dns,
                &format!("n{i}.kaspersky.com"),
            ));
            t.record(&rec(
                ip(1),
                None,
                1,
                Category::Other,
                Protocol::Dns,
                &format!("n{i}.kaspersky.com"),
            ));
        }
        let h = t.get(&ip(1)).unwrap();
        assert_eq!(h.names.len(), MAX_NAMES_PER_HOST);
        assert_eq!(h.overflow_names, 10);
    }
}
