//! Per-host state for hosts that contacted a Kaspersky endpoint: first/last
//! seen (packet time), callbacks by category, protocol and evidence, role
//! (device or resolver), MAC, distinct names (capped), every address of
//! the device and what it calls itself. Keyed by [`DeviceKey`]: a device's
//! addresses are one host when they are bound to one MAC on the local
//! segment (`--group-by mac`), else each address is a host. Bounded by
//! `--max-hosts` (at a full table a new host enters at its second callback,
//! evicting the least recently seen) and `--host-idle` (packet time). Owned
//! by the pipeline's merger; read by the exporters (report, metrics). The
//! same code serves `read` and `live`.

use crate::evidence::{Evidence, Role, Selection};
use crate::proto::Protocol;
use crate::signatures::Category;
use crate::table::{FingerprintSet, Lru};
use std::collections::HashMap;
use std::net::IpAddr;

/// Distinct names kept per host; further distinct names are only counted.
pub const MAX_NAMES_PER_HOST: usize = 64;
/// Overflow-name fingerprints remembered across all hosts, to count each
/// host's "+N more" distinct names. One set for all hosts (a per-host set
/// of 4,096 was ~70 KB a host: 700 MB for a full table of spoofed hosts),
/// in cache-line buckets (256 KiB, see [`FingerprintSet`]); a name pushed
/// out of its bucket by newer ones may be counted again.
pub const MAX_OVERFLOW_NAMES: usize = 65_536;
/// Bits of the full table's doorkeeper (128 KiB, two bits per refused
/// host): it remembers which new hosts were refused once.
pub const DOORKEEPER_BITS: usize = 1 << 20;
/// Refusals after which the doorkeeper starts afresh (a sixteenth of its
/// bits: a one-time host then slips in about once in 200 refusals).
pub const DOORKEEPER_RESET: u64 = (DOORKEEPER_BITS / 16) as u64;
/// Default host-table cap (`--max-hosts`).
pub const DEFAULT_MAX_HOSTS: usize = 10_000;

/// Distinct (category, protocol, evidence) counters per host: bounded by
/// the product of the three enums (6 x 5 x 3), kept as a short list because a
/// host rarely has more than a few.
pub const MAX_COUNTERS_PER_HOST: usize =
    Category::ALL.len() * Protocol::ALL.len() * Evidence::ALL.len();

/// One callback, as the host table records it.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub ip: IpAddr,
    pub mac: Option<[u8; 6]>,
    /// The MAC `ip` is bound to on the local segment, if known: with
    /// `--group-by mac` the callback goes to that MAC's host.
    pub bound: Option<[u8; 6]>,
    pub ts: u64,
    pub category: Category,
    pub protocol: Protocol,
    pub evidence: Evidence,
    pub role: Role,
    pub name: &'a str,
    /// [`HostTable::name_key`] of `name` when the caller has it already
    /// (the merger hashes a name once for all its uses).
    pub name_key: Option<u64>,
}

/// One host (a device: one address, or every address bound to one MAC).
#[derive(Clone, Debug)]
pub struct Host {
    pub key: DeviceKey,
    /// The address of the latest callback.
    pub ip: IpAddr,
    /// Every address the device called back from (capped).
    pub addresses: Vec<IpAddr>,
    pub mac: Option<[u8; 6]>,
    /// What the device says it is called (DHCP option 12, mDNS, NetBIOS).
    pub hostname: Option<String>,
    /// DHCP client FQDN (option 81, DHCPv6 option 39).
    pub fqdn: Option<String>,
    /// DHCP vendor class (option 60).
    pub vendor_class: Option<String>,
    /// On-site Kaspersky Security Center servers it talked to (management ports).
    pub ksc_servers: Vec<IpAddr>,
    pub first_seen: u64,
    pub last_seen: u64,
    /// Callbacks by (category, protocol, evidence); each triple once.
    pub counts: Vec<(Category, Protocol, Evidence, u64)>,
    pub role: Role,
    pub names: Vec<String>,
    /// Fingerprints of `names`, index for index (a membership test without
    /// comparing every name).
    name_keys: Vec<u64>,
    /// One bit per fingerprint (of 256): a name whose bit is clear is new
    /// without looking at `name_keys` (most of a flood of new names).
    name_bloom: [u64; 8],
    pub overflow_names: u64,
    /// Mixed into its names' fingerprints in the table's set of names
    /// beyond [`MAX_NAMES_PER_HOST`] (a hash of its key, made once).
    name_salt: u64,
    pub managed: bool,
    pub inventory_name: Option<String>,
    /// Its slot in the table's eviction order.
    lru: u32,
}

impl Host {
    /// Two bits of the 512-bit filter per name: with a full list of
    /// [`MAX_NAMES_PER_HOST`] names about 5 % of new names need the key
    /// scan (one bit of 256 let 22 % through).
    fn bloom_bits(key: u64) -> [(usize, u64); 2] {
        let bit = |k: u64| (((k >> 6) & 7) as usize, 1 << (k & 63));
        [bit(key), bit(key >> 32)]
    }

    fn add_name(&mut self, key: u64, name: String) {
        for (w, bit) in Self::bloom_bits(key) {
            if let Some(x) = self.name_bloom.get_mut(w) {
                *x |= bit;
            }
        }
        self.names.push(name);
        self.name_keys.push(key);
    }

    fn has_name(&self, key: u64, name: &str) -> bool {
        if Self::bloom_bits(key)
            .iter()
            .any(|&(w, bit)| self.name_bloom.get(w).is_some_and(|x| x & bit == 0))
        {
            return false;
        }
        // Keys first (a tight loop over u64s); the text only on a key match.
        self.name_keys
            .iter()
            .enumerate()
            .filter(|(_, k)| **k == key)
            .any(|(i, _)| self.names.get(i).is_some_and(|n| n == name))
    }

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
    /// The MAC's vendor from the IEEE registry (see `oui.rs`).
    pub fn vendor(&self) -> Option<String> {
        vendor_of(self.mac)
    }
    pub fn mac_string(&self) -> Option<String> {
        self.mac.map(fmt_mac)
    }
}

/// The MAC vendor registry's name for `mac`, if it has one.
pub fn vendor_of(mac: Option<[u8; 6]>) -> Option<String> {
    let v = crate::oui::vendor(mac?);
    (!v.is_empty()).then_some(v)
}

pub fn fmt_mac(m: [u8; 6]) -> String {
    let mut s = String::with_capacity(17);
    push_mac(&mut s, m);
    s
}

/// Append [`fmt_mac`]'s text.
pub fn push_mac(s: &mut String, m: [u8; 6]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in m.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        for nib in [b >> 4, b & 15] {
            s.push(char::from(
                HEX.get(usize::from(nib)).copied().unwrap_or(b'0'),
            ));
        }
    }
}

/// An address in text form. IPv4 is written digit by digit (`Display`
/// goes through the `fmt` machinery: ~10x the cost, paid per host in every
/// report and scrape and per event); IPv6 uses `Display` (RFC 5952 form).
pub fn ip_text(a: &IpAddr) -> String {
    let mut s = String::with_capacity(15);
    push_ip(&mut s, a);
    s
}

/// Append [`ip_text`]'s text.
pub fn push_ip(s: &mut String, a: &IpAddr) {
    match a {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                if *o >= 100 {
                    s.push(char::from(b'0' + o / 100));
                }
                if *o >= 10 {
                    s.push(char::from(b'0' + (o / 10) % 10));
                }
                s.push(char::from(b'0' + o % 10));
            }
        }
        IpAddr::V6(_) => {
            use std::fmt::Write;
            let _ = write!(s, "{a}");
        }
    }
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

/// How a device is keyed: by the MAC it is bound to on the local segment
/// (a DHCP lease, a DHCPv6 DUID, an EUI-64 address; `--group-by mac`), or
/// by its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeviceKey {
    Mac([u8; 6]),
    Ip(IpAddr),
}

/// One or two words per key (a derived `Hash` fed the hasher the variant,
/// the address family and each byte run separately: several times the
/// work, on every callback's lookup). Equal keys write equal words.
impl std::hash::Hash for DeviceKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            DeviceKey::Mac(m) => {
                let mut w = [0u8; 8];
                for (d, s) in w.iter_mut().zip(m) {
                    *d = *s;
                }
                state.write_u64(u64::from_le_bytes(w) | 1 << 63);
            }
            DeviceKey::Ip(IpAddr::V4(a)) => state.write_u64(u64::from(u32::from(*a))),
            DeviceKey::Ip(IpAddr::V6(a)) => {
                let x = u128::from(*a);
                state.write_u64((x >> 64) as u64);
                state.write_u64(x as u64 | 1 << 62);
            }
        }
    }
}

impl DeviceKey {
    /// The MAC the device is keyed by, if any.
    pub fn mac(&self) -> Option<[u8; 6]> {
        match self {
            DeviceKey::Mac(m) => Some(*m),
            DeviceKey::Ip(_) => None,
        }
    }

    /// The `host` label of metrics and the `device` field of reports.
    pub fn label(&self) -> String {
        let mut s = String::with_capacity(17);
        self.push_label(&mut s);
        s
    }

    /// Append [`Self::label`]'s text.
    pub fn push_label(&self, s: &mut String) {
        match self {
            DeviceKey::Mac(m) => push_mac(s, *m),
            DeviceKey::Ip(a) => push_ip(s, a),
        }
    }
}

/// Addresses remembered per device (DHCP renewals, SLAAC, privacy addresses).
pub const MAX_ADDRESSES_PER_HOST: usize = 16;

/// The bounded host table.
pub struct HostTable {
    /// Boxed: a host is a few hundred bytes, moved on every insert and
    /// eviction and on every rehash otherwise.
    map: HashMap<DeviceKey, Box<Host>, ahash::RandomState>,
    /// Keys by last seen: the front is the least recently seen host.
    order: Lru<DeviceKey>,
    /// Every address of every host in the table -> its host.
    by_ip: HashMap<IpAddr, DeviceKey, ahash::RandomState>,
    max_hosts: usize,
    idle_ns: Option<u64>,
    /// Which hosts are devices (`--evidence`, `--count-resolvers`).
    pub selection: Selection,
    /// `--group-by mac` (the default): addresses bound to one MAC are one host.
    pub group_by_mac: bool,
    pub evicted_capacity: u64,
    pub evicted_idle: u64,
    pub names_capped: u64,
    /// Addresses not remembered at [`MAX_ADDRESSES_PER_HOST`].
    pub addresses_capped: u64,
    /// Names beyond MAX_NAMES_PER_HOST already counted: (host, fingerprint).
    overflow: FingerprintSet,
    /// Hasher of name fingerprints (a host's names, and (host, name) for
    /// the overflow set). Fixed seeds, so a capture read twice gives the
    /// same counts: a sender who crafts names can at worst make its own
    /// host's "+N more" count off (names that look alike, or that push
    /// each other out of a bucket); lookups stay bounded (64 names a host,
    /// eight fingerprints a bucket).
    name_hasher: ahash::RandomState,
    /// New hosts refused once at a full table (see [`Doorkeeper`]).
    doorkeeper: Doorkeeper,
    /// New hosts not entered because the table was full and their key was
    /// not yet known to the doorkeeper (their callback still counts in the
    /// totals and the events).
    pub refused: u64,
}

/// Admission to a full host table. A new host would evict the least
/// recently seen one; under a flood of one-time sources (spoofed addresses,
/// a scan) that turns the whole table over for nothing and costs an
/// eviction per packet. So at a full table a new host is refused at its
/// first callback and its key noted in a bit set; a second callback (every
/// Kaspersky device calls back again: its lookup then its connection, its
/// next update check) finds the note and enters, evicting as before. The
/// bit set starts afresh every [`DOORKEEPER_RESET`] refusals, so one-time
/// keys do not fill it.
///
/// Its hash has fixed seeds, so a capture read twice gives the same report:
/// a chosen key can at worst look noted (and be admitted as it is today);
/// a bit set has no chains to lengthen.
struct Doorkeeper {
    bits: Vec<u64>,
    noted: u64,
    hasher: ahash::RandomState,
}

impl Doorkeeper {
    fn new() -> Self {
        Doorkeeper {
            bits: vec![0; DOORKEEPER_BITS / 64],
            noted: 0,
            hasher: ahash::RandomState::with_seeds(
                0x6b61_7377_6174_6368,
                0x646f_6f72_6b65_6570,
                0x9e37_79b9_7f4a_7c15,
                0x243f_6a88_85a3_08d3,
            ),
        }
    }

    /// Two bit positions from one hash.
    fn at(h: u64) -> [(usize, u64); 2] {
        let mask = DOORKEEPER_BITS as u64 - 1;
        let (a, b) = (h & mask, (h >> 32) & mask);
        [
            ((a >> 6) as usize, 1 << (a & 63)),
            ((b >> 6) as usize, 1 << (b & 63)),
        ]
    }

    /// True when `key` was noted before (admit); otherwise note it.
    fn admit(&mut self, key: &DeviceKey) -> bool {
        let pos = Self::at(self.hasher.hash_one(key));
        if pos
            .iter()
            .all(|&(w, b)| self.bits.get(w).is_some_and(|x| x & b != 0))
        {
            return true;
        }
        if self.noted >= DOORKEEPER_RESET {
            self.bits.fill(0);
            self.noted = 0;
        }
        for (w, b) in pos {
            if let Some(x) = self.bits.get_mut(w) {
                *x |= b;
            }
        }
        self.noted += 1;
        false
    }
}

impl HostTable {
    pub fn new(max_hosts: usize, idle_ns: Option<u64>) -> Self {
        HostTable {
            map: HashMap::with_hasher(ahash::RandomState::new()),
            order: Lru::default(),
            by_ip: HashMap::with_hasher(ahash::RandomState::new()),
            max_hosts: max_hosts.max(1),
            idle_ns,
            selection: Selection::default(),
            group_by_mac: true,
            evicted_capacity: 0,
            evicted_idle: 0,
            names_capped: 0,
            addresses_capped: 0,
            overflow: FingerprintSet::new(MAX_OVERFLOW_NAMES),
            name_hasher: ahash::RandomState::with_seeds(
                0x6e61_6d65_6b65_7973,
                0x6f76_6572_666c_6f77,
                0x4528_21e6_38d0_1377,
                0xbe54_66cf_34e9_0c6c,
            ),
            doorkeeper: Doorkeeper::new(),
            refused: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// The host an address belongs to.
    pub fn get(&self, ip: &IpAddr) -> Option<&Host> {
        self.by_ip
            .get(ip)
            .and_then(|k| self.map.get(k))
            .map(|h| &**h)
    }
    pub fn get_mut(&mut self, ip: &IpAddr) -> Option<&mut Host> {
        let k = *self.by_ip.get(ip)?;
        self.map.get_mut(&k).map(|h| &mut **h)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Host> {
        self.map.values().map(|h| &**h)
    }
    pub fn get_key_mut(&mut self, k: &DeviceKey) -> Option<&mut Host> {
        self.map.get_mut(k).map(|h| &mut **h)
    }

    /// The key a host's name set holds `name` by (fixed seeds: the same
    /// names give the same keys, and so the same overflow counts, every run;
    /// a collision only ever undercounts an overflow, the text is compared).
    #[inline]
    pub fn name_key(&self, name: &str) -> u64 {
        self.name_hasher.hash_one(name)
    }

    /// The key a callback from `ip` (bound to `bound` on the segment) is
    /// recorded under.
    pub fn key_for(&self, ip: IpAddr, bound: Option<[u8; 6]>) -> DeviceKey {
        match bound {
            Some(m) if self.group_by_mac => DeviceKey::Mac(m),
            _ => DeviceKey::Ip(ip),
        }
    }

    fn remove(&mut self, k: &DeviceKey) -> Option<Box<Host>> {
        let h = self.map.remove(k)?;
        self.order.remove(h.lru);
        for a in &h.addresses {
            if self.by_ip.get(a) == Some(k) {
                self.by_ip.remove(a);
            }
        }
        Some(h)
    }

    /// Remove `k`, the front of the eviction order. False when no host has
    /// that key (the front entry is stale): it is dropped so the caller's
    /// loop moves on.
    fn remove_oldest(&mut self, k: &DeviceKey) -> bool {
        if self.remove(k).is_some() {
            return true;
        }
        self.order.pop_front();
        false
    }

    /// An address turned out to be bound to `mac` on the local segment:
    /// its host (keyed by address so far) joins the MAC's host.
    pub fn bind(&mut self, ip: IpAddr, mac: [u8; 6]) {
        let from = DeviceKey::Ip(ip);
        if !self.group_by_mac || self.by_ip.get(&ip) != Some(&from) {
            return;
        }
        let Some(h) = self.remove(&from) else { return };
        self.absorb(DeviceKey::Mac(mac), h);
    }

    /// Put `h` under `key`, merging with a host already there.
    fn absorb(&mut self, key: DeviceKey, mut h: Box<Host>) {
        if let Some(mut into) = self.remove(&key) {
            into.first_seen = into.first_seen.min(h.first_seen);
            if h.last_seen >= into.last_seen {
                into.last_seen = h.last_seen;
                into.ip = h.ip;
            }
            for (c, p, e, n) in h.counts.drain(..) {
                match into
                    .counts
                    .iter_mut()
                    .find(|x| (x.0, x.1, x.2) == (c, p, e))
                {
                    Some(x) => x.3 += n,
                    None => into.counts.push((c, p, e, n)),
                }
            }
            for (k, n) in h.name_keys.drain(..).zip(h.names.drain(..)) {
                if !into.has_name(k, &n) && into.names.len() < MAX_NAMES_PER_HOST {
                    into.add_name(k, n);
                }
            }
            into.overflow_names += h.overflow_names;
            for a in h.addresses.drain(..) {
                push_address(&mut into.addresses, a, &mut self.addresses_capped);
            }
            if h.role == Role::Resolver {
                into.role = Role::Resolver;
            }
            into.managed |= h.managed;
            if into.inventory_name.is_none() {
                into.inventory_name = h.inventory_name.take();
            }
            into.mac = into.mac.or(h.mac);
            h = into;
        }
        h.key = key;
        if let DeviceKey::Mac(m) = key {
            h.mac = Some(m);
        }
        for a in &h.addresses {
            self.by_ip.insert(*a, key);
        }
        h.lru = self.order.push(key, h.last_seen).unwrap_or(u32::MAX);
        self.map.insert(key, h);
    }

    /// Record one callback. Returns how many hosts left the table (idle,
    /// or the least recently seen to make room; both counted in the table).
    /// At a full table a new host enters at its second callback (see
    /// [`Doorkeeper`]); its first is counted in [`Self::refused`].
    pub fn record(&mut self, r: &Record<'_>) -> usize {
        let Record { ip, mac, ts, .. } = *r;
        let mut evicted = self.expire(ts).len();
        let key = self.key_for(ip, r.bound);
        if matches!(key, DeviceKey::Mac(_)) {
            self.bind(ip, r.bound.unwrap_or_default());
        }
        // A host this address already maps to (nearly every callback): one
        // lookup in each table instead of a presence check, the address
        // check and the lookup. Without MAC grouping a host's key is its
        // address, which `by_ip` maps to that same key for as long as the
        // host is in the table: only grouping by MAC needs the check.
        let present = match self.map.get_mut(&key) {
            Some(h) => {
                if !self.group_by_mac || self.by_ip.get(&ip) == Some(&key) {
                    update_host(
                        h,
                        r,
                        key,
                        &mut self.order,
                        &self.name_hasher,
                        &mut self.overflow,
                        &mut self.addresses_capped,
                        &mut self.names_capped,
                    );
                    return evicted;
                }
                true
            }
            None => false,
        };
        if !present {
            if self.map.len() >= self.max_hosts && !self.doorkeeper.admit(&key) {
                self.refused += 1;
                return evicted;
            }
            while self.map.len() >= self.max_hosts {
                let Some((_, victim)) = self.order.front() else {
                    break;
                };
                if !self.remove_oldest(&victim) {
                    continue;
                }
                self.evicted_capacity += 1;
                evicted += 1;
            }
            let lru = self.order.push(key, ts).unwrap_or(u32::MAX);
            self.map.insert(
                key,
                Box::new(Host {
                    key,
                    ip,
                    addresses: Vec::with_capacity(1),
                    mac,
                    hostname: None,
                    fqdn: None,
                    vendor_class: None,
                    ksc_servers: Vec::new(),
                    first_seen: ts,
                    last_seen: ts,
                    counts: Vec::with_capacity(2),
                    role: r.role,
                    names: Vec::with_capacity(2),
                    name_keys: Vec::with_capacity(2),
                    name_bloom: [0; 8],
                    overflow_names: 0,
                    name_salt: self.name_hasher.hash_one(key),
                    managed: false,
                    inventory_name: None,
                    lru,
                }),
            );
        }
        if self.by_ip.get(&ip) != Some(&key) {
            // A lease moved this address to another device: it is this one's now.
            if let Some(old) = self.by_ip.insert(ip, key) {
                if let Some(h) = self.map.get_mut(&old) {
                    h.addresses.retain(|a| *a != ip);
                }
            }
        }
        let Some(h) = self.map.get_mut(&key) else {
            return evicted;
        };
        update_host(
            h,
            r,
            key,
            &mut self.order,
            &self.name_hasher,
            &mut self.overflow,
            &mut self.addresses_capped,
            &mut self.names_capped,
        );
        evicted
    }

    /// Drop hosts whose last callback is older than the idle limit at `now`.
    pub fn expire(&mut self, now: u64) -> Vec<(DeviceKey, Eviction)> {
        let mut out = Vec::new();
        let Some(idle) = self.idle_ns else { return out };
        while let Some((t, k)) = self.order.front() {
            if now.saturating_sub(t) <= idle {
                break;
            }
            if !self.remove_oldest(&k) {
                continue;
            }
            self.evicted_idle += 1;
            out.push((k, Eviction::Idle));
        }
        out
    }

    /// Mark a host as a resolver (it answered DNS for others).
    pub fn set_resolver(&mut self, ip: &IpAddr) {
        if let Some(h) = self.get_mut(ip) {
            h.role = Role::Resolver;
        }
    }

    /// Hosts sorted by last seen, most recent first (ties by key).
    pub fn sorted(&self) -> Vec<&Host> {
        // The sort keys beside each host (comparing through the pointers
        // chased two boxed hosts per comparison: 2,000 instructions a host
        // on a full table). Keys are unique, so an unstable sort gives the
        // one order.
        let mut v: Vec<(std::cmp::Reverse<u64>, DeviceKey, &Host)> = self
            .map
            .values()
            .map(|h| (std::cmp::Reverse(h.last_seen), h.key, &**h))
            .collect();
        v.sort_unstable_by_key(|e| (e.0, e.1));
        v.into_iter().map(|(_, _, h)| h).collect()
    }
}

/// A callback's changes to its host: addresses, MAC, times, role, counts
/// and names (the part of [`HostTable::record`] after the host is found).
#[allow(clippy::too_many_arguments)]
fn update_host(
    h: &mut Host,
    r: &Record<'_>,
    key: DeviceKey,
    order: &mut Lru<DeviceKey>,
    name_hasher: &ahash::RandomState,
    overflow: &mut FingerprintSet,
    addresses_capped: &mut u64,
    names_capped: &mut u64,
) {
    let Record {
        ip, mac, ts, name, ..
    } = *r;
    push_address(&mut h.addresses, ip, addresses_capped);
    if mac.is_some() && !matches!(key, DeviceKey::Mac(_)) {
        h.mac = mac;
    }
    if ts >= h.last_seen {
        if ts > h.last_seen {
            order.touch(h.lru, ts);
        }
        h.last_seen = ts;
        h.ip = ip;
    }
    h.first_seen = h.first_seen.min(ts);
    if r.role == Role::Resolver {
        h.role = Role::Resolver;
    }
    let ck = (r.category, r.protocol, r.evidence);
    let full = h.counts.len() >= MAX_COUNTERS_PER_HOST;
    match h.counts.iter_mut().find(|x| (x.0, x.1, x.2) == ck) {
        Some(x) => x.3 += 1,
        None if !full => h.counts.push((ck.0, ck.1, ck.2, 1)),
        None => {}
    }
    let k = r.name_key.unwrap_or_else(|| name_hasher.hash_one(name));
    if !h.has_name(k, name) {
        if h.names.len() < MAX_NAMES_PER_HOST {
            h.add_name(k, name.to_string());
        } else {
            if overflow.insert(overflow_fingerprint(h.name_salt, k)) {
                h.overflow_names += 1;
                *names_capped += 1;
            }
        }
    }
}

/// Fingerprint of name hash `k` of the host salted `salt` in the shared
/// overflow set: a host's salt is a hash of its key, so distinct (host,
/// name) pairs give distinct, well-spread fingerprints (the set takes a
/// bucket from the top bits, so the multiply spreads all 64).
#[inline]
fn overflow_fingerprint(salt: u64, k: u64) -> u64 {
    let x = salt ^ k;
    let x = (x ^ (x >> 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^ (x >> 29)
}

fn push_address(v: &mut Vec<IpAddr>, a: IpAddr, capped: &mut u64) {
    if v.contains(&a) {
        return;
    }
    if v.len() < MAX_ADDRESSES_PER_HOST {
        v.push(a);
    } else {
        *capped += 1;
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
            bound: None,
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
            name_key: None,
        }
    }

    #[test]
    fn text_forms_equal_display() {
        for a in [
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            [10, 0, 100, 9],
            [1, 22, 133, 200],
        ] {
            let ip = IpAddr::from(a);
            assert_eq!(ip_text(&ip), ip.to_string());
        }
        for n in 0..=255u8 {
            let ip = IpAddr::from([n, n.wrapping_mul(7), 100u8.wrapping_add(n), 9]);
            assert_eq!(ip_text(&ip), ip.to_string());
        }
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(ip_text(&v6), "2001:db8::1");
        let m = [0x00, 0x1b, 0x21, 0xab, 0xcd, 0xef];
        assert_eq!(
            fmt_mac(m),
            format!(
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            )
        );
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
        // Full: a new host's first callback is refused, its second enters
        // in place of the least recently seen.
        let ev = t.record(&rec(ip(3), None, 35, Category::Update, Protocol::Dns, "x"));
        assert_eq!((ev, t.refused, t.len()), (0, 1, 2));
        assert!(t.get(&ip(3)).is_none());
        let ev = t.record(&rec(ip(3), None, 40, Category::Update, Protocol::Dns, "x"));
        assert_eq!(ev, 1);
        assert!(t.get(&ip(2)).is_none() && t.get(&ip(1)).is_some());
        assert_eq!((t.evicted_capacity, t.refused), (1, 1));
        assert_eq!(t.get(&ip(3)).map(|h| h.first_seen), Some(40));
        let ev = t.expire(135);
        assert_eq!(ev, vec![(DeviceKey::Ip(ip(1)), Eviction::Idle)]);
        assert_eq!(t.len(), 1);
    }

    /// A flood of one-time sources at a full table: the hosts already there
    /// stay (almost every newcomer is refused, not one eviction per packet),
    /// and a device that calls back twice during the flood still enters.
    #[test]
    fn full_table_refuses_one_time_hosts() {
        let v4 = |n: u32| IpAddr::V4(Ipv4Addr::from(n));
        let mut t = HostTable::new(100, None);
        for i in 0..100u32 {
            t.record(&rec(
                v4(i + 1),
                None,
                1,
                Category::Update,
                Protocol::Dns,
                "x",
            ));
        }
        let flood = 10_000u32;
        for i in 0..flood {
            let a = v4(0x0b00_0000 + i);
            t.record(&rec(a, None, 2, Category::Update, Protocol::Dns, "x"));
            if i == 5_000 || i == 5_001 {
                t.record(&rec(
                    v4(0x0c00_0001),
                    None,
                    3,
                    Category::Ksn,
                    Protocol::Tls,
                    "y",
                ));
            }
        }
        assert_eq!(t.len(), 100);
        // Every newcomer is refused or evicts once (the twice-seen host both).
        assert_eq!(t.evicted_capacity + t.refused, u64::from(flood) + 2);
        // Early in the doorkeeper's cycle hardly a one-time key looks noted
        // (about one in 200 over a whole cycle).
        assert!(t.evicted_capacity < 20, "{}", t.evicted_capacity);
        assert!(
            t.get(&v4(0x0c00_0001)).is_some(),
            "a twice-seen host enters"
        );
        let kept = (0..100u32).filter(|i| t.get(&v4(i + 1)).is_some()).count();
        assert!(kept >= 80, "only {kept} of the first hosts kept");
    }

    /// Hosts that each send ever new names (a flood of random subdomains
    /// from many sources): the overflow fingerprints stay within one global
    /// bound, however many hosts overflow; distinct names are still counted.
    #[test]
    fn overflow_names_are_bounded_across_hosts() {
        let mut t = HostTable::new(100, None);
        let per_host = MAX_NAMES_PER_HOST + 5_000;
        for h in 0..40u8 {
            for i in 0..per_host {
                let name = format!("r{i}.kaspersky.com");
                t.record(&rec(ip(h), None, 1, Category::Other, Protocol::Dns, &name));
            }
            assert!(
                t.overflow.capacity() <= MAX_OVERFLOW_NAMES,
                "{}",
                t.overflow.capacity()
            );
        }
        for h in 0..40u8 {
            let host = t.get(&ip(h)).unwrap();
            assert_eq!(host.names.len(), MAX_NAMES_PER_HOST);
            assert_eq!(host.overflow_names, 5_000, "host {h}");
        }
        assert_eq!(t.names_capped, 40 * 5_000);
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
