//! The ordered half of the pipeline: the [`Merger`] applies the workers'
//! observations in packet order. It turns matches into callbacks (host
//! table, events, aggregate counts), gives each its evidence and the host's
//! role, pairs DNS queries with responses (one-way mirrors), and runs the
//! [`AddressBook`] that decides address evidence per connection. Read by
//! the exporters (report, metrics) through its host table and counters.

use super::address::{AddressBook, Release};
use super::{Head, Obs, ObsKind, L4};
use crate::event::Event;
use crate::evidence::{Evidence, Role};
use crate::export::jsonlog::LineSink;
use crate::export::metrics::{Backfill, CallbackCounts, IfaceStats, Snapshot};
use crate::hosts::{DeviceKey, HostTable, Record};
use crate::identity::IdentityBook;
use crate::matcher::{Hit, Matcher};
use crate::proto::Protocol;
use crate::signatures::Category;
use crate::stats::{Counters, Limit};
use crate::table::{AddressBits, RecentKeys};
use std::net::IpAddr;
use std::sync::Arc;

/// Matched DNS queries remembered until their response (a busy client sends a
/// few per second; responses come within seconds): the table is sized for
/// this many ([`RecentKeys`]: twice as many ways, 512 KiB). A query whose
/// bucket's four ways are taken forgets the oldest there (counted when that
/// one was still awaited).
pub const MAX_PENDING_QUERIES: usize = 16_384;
/// A query whose response has not come after this long is forgotten.
pub const QUERY_WAIT_NS: u64 = 30_000_000_000;

/// Matched names asked of a host (as a DNS server) remembered to spot it
/// forwarding them: (server, name fingerprint) -> packet time. Sized as
/// [`MAX_PENDING_QUERIES`] is (256 KiB).
pub const MAX_ASKED: usize = 8_192;
/// A host that asks for a name it was asked for within this long is
/// forwarding its client's lookup.
pub const FORWARD_WINDOW_NS: u64 = 10_000_000_000;

/// (client, server, client port, DNS id) of a matched query.
type QueryKey = (IpAddr, IpAddr, u16, u16);

/// Applies observations, in packet order, to the host table and outputs.
pub struct Merger {
    matcher: Arc<Matcher>,
    /// The set before the last reload: hits made just before it are still
    /// named by the set that made them.
    previous: Option<Arc<Matcher>>,
    /// Active signature version (`file=version,...`).
    pub signature_version: String,
    /// Signature reloads that took effect / were refused (`live`).
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub hosts: HostTable,
    pub events: Option<LineSink>,
    pub all_names: Option<LineSink>,
    /// Input names (files or interfaces), indexed by `PktMeta::input`.
    pub inputs: Vec<String>,
    pub callbacks: u64,
    /// Further matches on connections that already made their callback.
    pub repeats: u64,
    pub names_seen: u64,
    /// Attributions, shared addresses, held connections, resolvers.
    pub address: AddressBook,
    /// Who devices say they are (DHCP, mDNS, NetBIOS), MAC bindings.
    pub identity: IdentityBook,
    /// Matched DNS queries awaiting their response -> packet time. A
    /// response whose query was captured is not counted twice; one whose
    /// query was not (one-way mirror) still counts.
    queries: RecentKeys<QueryKey>,
    /// Matched names asked of DNS servers, to spot forwarders at once.
    asked: RecentKeys<(IpAddr, u64)>,
    /// Every address ever asked a matched name (one bit per hash of it,
    /// never cleared): a query from an address whose bit is clear cannot be
    /// a forwarded one, so it costs no lookup in `asked`. A false positive
    /// only costs that lookup.
    askers: AddressBits,
    /// Drops at limits owned by the merger.
    pub counters: Counters,
    /// Callbacks by category and protocol, all hosts (survives evictions).
    pub by_category: CallbackCounts,
    /// Callbacks by evidence, all hosts.
    pub by_evidence: [u64; Evidence::ALL.len()],
    /// Signatures loaded per category (for the metrics).
    pub signature_counts: Vec<(Category, usize)>,
    /// `read --backfill`: sampled at step boundaries of packet time.
    pub backfill: Option<Backfill>,
    /// Latest packet time of an observation.
    pub last_ts: u64,
    /// `--inventory`: marks hosts managed.
    pub inventory: Option<Arc<crate::inventory::Inventory>>,
    released: Vec<Release>,
}

impl Merger {
    pub fn new(matcher: Arc<Matcher>, hosts: HostTable) -> Self {
        Merger {
            matcher,
            previous: None,
            signature_version: String::new(),
            reloads_ok: 0,
            reloads_failed: 0,
            hosts,
            events: None,
            all_names: None,
            inputs: Vec::new(),
            callbacks: 0,
            repeats: 0,
            names_seen: 0,
            address: AddressBook::default(),
            identity: IdentityBook::default(),
            queries: RecentKeys::new(MAX_PENDING_QUERIES),
            asked: RecentKeys::new(MAX_ASKED),
            askers: AddressBits::default(),
            counters: Counters::default(),
            by_category: Default::default(),
            by_evidence: [0; Evidence::ALL.len()],
            signature_counts: Vec::new(),
            backfill: None,
            last_ts: 0,
            inventory: None,
            released: Vec::new(),
        }
    }

    /// A metrics snapshot of the merger's state plus the drivers' counters.
    pub fn snapshot<'a>(
        &'a self,
        counters: &'a Counters,
        interfaces: &'a [IfaceStats],
    ) -> Snapshot<'a> {
        Snapshot {
            hosts: &self.hosts,
            callbacks: &self.by_category,
            by_evidence: &self.by_evidence,
            address: self.address.stats,
            counters,
            interfaces,
            signatures: &self.signature_counts,
            signature_version: &self.signature_version,
            reloads: (self.reloads_ok, self.reloads_failed),
            version: env!("CARGO_PKG_VERSION"),
            event_write_errors: self.events.as_ref().map_or(0, |e| e.errors),
        }
    }

    /// Addresses currently attributed to matching names.
    pub fn attributed(&self) -> usize {
        self.address.attributed()
    }

    /// Apply one observation (in packet order).
    pub fn apply(&mut self, o: &Obs) {
        if let Some(mut b) = self.backfill.take() {
            let none = Counters::default();
            b.advance(o.ts, &self.snapshot(&none, &[]));
            self.backfill = Some(b);
        }
        self.last_ts = self.last_ts.max(o.ts);
        self.tick(o.ts);
        match &o.kind {
            ObsKind::Name => self.name(o),
            ObsKind::Open(settled) => {
                // An `[[address]]` signature stands for a DNS answer that
                // never expires (asked only for a destination not attributed).
                let matcher = &self.matcher;
                let listed = || {
                    (o.l4 == L4::Tcp)
                        .then(|| matcher.address(&o.dst))
                        .flatten()
                        .map(|h| (matcher.pattern(h.sig).to_string(), h))
                };
                let r = self.address.open(o, *settled, listed, &mut self.counters);
                self.release(r);
            }
            ObsKind::Decided(named, completed) => {
                let r = self
                    .address
                    .decided(o, *named, *completed, &mut self.counters);
                self.release(r);
            }
            ObsKind::Resolved(_) => {
                self.responder(o);
                self.response(o);
                self.learn(o);
            }
            ObsKind::Identity(id) => self.identity_seen(id),
            ObsKind::Answers(list) => {
                self.responder(o);
                for (addr, ttl) in list.iter() {
                    self.address
                        .learn_other(addr, o.ts, ttl, &mut self.counters);
                }
            }
        }
    }

    /// Packet time moved on to `now`: release held connections whose
    /// client stayed silent too long. `live` calls this on a timer too.
    pub fn tick(&mut self, now: u64) {
        if !self.address.expires_by(now) {
            return;
        }
        let mut out = std::mem::take(&mut self.released);
        self.address.expire(now, &mut out);
        self.release_all(&mut out);
        self.released = out;
    }

    /// End of input: decide every connection still held.
    pub fn finish(&mut self) {
        let mut out = std::mem::take(&mut self.released);
        self.address.drain(self.last_ts, &mut out);
        self.release_all(&mut out);
        self.released = out;
    }

    fn release_all(&mut self, out: &mut Vec<Release>) {
        for r in out.drain(..) {
            self.release(Some(r));
        }
    }

    fn release(&mut self, r: Option<Release>) {
        if let Some(r) = r {
            let mut o = r.open;
            o.protocol = Protocol::Ip;
            o.evidence = Evidence::Address;
            let key = self.hosts.name_key(&r.name);
            self.callback(&o, r.hit, &r.name, key);
        }
    }

    fn name(&mut self, o: &Obs) {
        self.names_seen += 1;
        if let Some(s) = self.all_names.as_mut() {
            let input = self
                .inputs
                .get(o.meta.input as usize)
                .map(String::as_str)
                .unwrap_or("");
            let shown = o.shown.as_deref().unwrap_or(&o.name);
            let detail = format!("{}/{}", o.l4.as_str(), o.dport);
            s.line(&format!(
                "{input}\t{}\t{}\t{}\t{}\t{detail}",
                o.meta.frame,
                o.src,
                o.protocol.name_kind(),
                shown
            ));
        }
        let Some(hit) = o.hit else { return };
        if o.repeat {
            self.repeats += 1;
            return;
        }
        // One hash of the name for the forwarding check and the host's names.
        let key = self.hosts.name_key(&o.name);
        if o.protocol == Protocol::Dns {
            // Both tables' lines asked for at once (their misses overlap).
            self.queries.prefetch(&(o.src, o.dst, o.sport, o.dns_id));
            if o.dport == 53 {
                self.asked.prefetch(&(o.dst, key));
            }
            self.note_query(o);
            self.forwarding(o, key);
        }
        self.callback(o, hit, &o.name, key);
    }

    /// A resolver is known by its answers, but its first forwarded query
    /// may come before any answer: a host that asks for a name it was just
    /// asked for (at port 53) is forwarding, and is a resolver from now on.
    fn forwarding(&mut self, o: &Obs, k: u64) {
        let now = o.ts;
        let asked = self.askers.maybe(&o.src)
            && self
                .asked
                .get(&(o.src, k))
                .is_some_and(|t| now.saturating_sub(t) <= FORWARD_WINDOW_NS);
        if asked && self.address.mark_resolver(o.src, &mut self.counters) {
            self.hosts.set_resolver(&o.src);
        }
        if o.dport == 53 && o.src != o.dst {
            self.askers.set(&o.dst);
            let dropped = self.asked.insert(&(o.dst, k), now, |t| {
                now.saturating_sub(t) <= FORWARD_WINDOW_NS
            });
            self.counters.limit_n(Limit::ForwardedQuestions, dropped);
        }
    }

    /// A device said who it is: remember it, group its addresses, label it.
    fn identity_seen(&mut self, id: &crate::identity::Ident) {
        if let Some((ip, mac)) = self.identity.learn(id, &mut self.counters) {
            self.hosts.bind(ip, mac);
        }
        if let Some(a) = id.addr {
            self.refresh_names(&a);
        }
        if let Some(m) = id.mac {
            if let Some(h) = self.hosts.get_key_mut(&DeviceKey::Mac(m)) {
                let ip = h.ip;
                self.refresh_names(&ip);
            }
        }
    }

    /// Copy what is known of the device at `ip` into its host entry.
    fn refresh_names(&mut self, ip: &IpAddr) {
        if self.identity.is_empty() {
            // Nothing announced on this segment yet: no lookups per callback.
            return;
        }
        let Some(h) = self.hosts.get_mut(ip) else {
            return;
        };
        let n = self.identity.names(ip, h.key.mac());
        if n.hostname.is_some() {
            h.hostname = n.hostname;
        }
        if n.fqdn.is_some() {
            h.fqdn = n.fqdn;
        }
        if n.vendor_class.is_some() {
            h.vendor_class = n.vendor_class;
        }
    }

    /// A DNS response from port 53 to another host: its sender is a resolver.
    fn responder(&mut self, o: &Obs) {
        if o.sport != 53 || o.src == o.dst || !unicast(&o.dst) {
            return;
        }
        if self.address.mark_resolver(o.src, &mut self.counters) {
            self.hosts.set_resolver(&o.src);
        }
    }

    /// The addresses of a matched response now stand for its name.
    fn learn(&mut self, o: &Obs) {
        let Some(hit) = o.hit else { return };
        let ObsKind::Resolved(answers) = &o.kind else {
            return;
        };
        for (addr, ttl) in answers.iter() {
            self.address
                .learn(addr, &o.name, hit, o.ts, ttl, &mut self.counters);
        }
    }

    /// A response to a matching question: the client's callback unless its
    /// query was seen.
    fn response(&mut self, o: &Obs) {
        let Some(hit) = o.hit else { return };
        if self
            .queries
            .remove(&(o.dst, o.src, o.dport, o.dns_id))
            .is_some()
        {
            return;
        }
        if !unicast(&o.dst) {
            return; // mDNS/LLMNR answers to a group are not a host's callback
        }
        // The response's source MAC is the resolver's or the router's.
        let key = self.hosts.name_key(&o.name);
        self.callback(&o.reversed_head(), hit, &o.name, key);
    }

    /// Remember a matched query until its response.
    fn note_query(&mut self, o: &Obs) {
        let now = o.ts;
        let dropped = self
            .queries
            .insert(&(o.src, o.dst, o.sport, o.dns_id), now, |t| {
                now.saturating_sub(t) < QUERY_WAIT_NS
            });
        self.counters.limit_n(Limit::DnsPendingQueries, dropped);
    }

    fn callback(&mut self, o: &Head, hit: Hit, name: &str, name_key: u64) {
        self.callbacks += 1;
        if let Some(n) = self
            .by_category
            .get_mut(hit.category as usize)
            .and_then(|r| r.get_mut(o.protocol as usize))
        {
            *n += 1;
        }
        if let Some(n) = self.by_evidence.get_mut(o.evidence as usize) {
            *n += 1;
        }
        let role = if self.address.is_resolver(&o.src) {
            Role::Resolver
        } else {
            Role::Device
        };
        let bound = self.identity.mac_of(&o.src);
        self.hosts.record(&Record {
            ip: o.src,
            mac: o.src_mac,
            bound,
            ts: o.ts,
            category: hit.category,
            protocol: o.protocol,
            evidence: o.evidence,
            role,
            name,
            name_key: Some(name_key),
        });
        self.refresh_names(&o.src);
        if o.evidence == Evidence::Port && on_site(&o.dst) {
            // Talking to an on-site KSC server: managed by KSC (still Kaspersky).
            if let Some(h) = self.hosts.get_mut(&o.src) {
                if !h.ksc_servers.contains(&o.dst) && h.ksc_servers.len() < MAX_KSC_SERVERS {
                    h.ksc_servers.push(o.dst);
                }
            }
        }
        if let Some(inv) = &self.inventory {
            if let Some(h) = self.hosts.get_mut(&o.src) {
                if let Some(name) = inv.lookup(h.ip, h.mac) {
                    h.managed = true;
                    h.inventory_name = (!name.is_empty()).then(|| name.to_string());
                }
            }
        }
        if self.events.is_none() {
            return;
        }
        let signature = self.pattern(hit).to_string();
        let host = self.hosts.get(&o.src);
        let (device, hostname, vendor) = match host {
            Some(h) => (h.key.label(), h.hostname.clone(), h.vendor()),
            None => {
                // Refused at a full host table: what its entry would say.
                let key = self.hosts.key_for(o.src, bound);
                let hostname = (!self.identity.is_empty())
                    .then(|| self.identity.names(&o.src, key.mac()))
                    .and_then(|n| n.hostname);
                (key.label(), hostname, crate::hosts::vendor_of(o.src_mac))
            }
        };
        let Some(s) = self.events.as_mut() else {
            return;
        };
        let input = self
            .inputs
            .get(o.meta.input as usize)
            .map(String::as_str)
            .unwrap_or("");
        let e = Event {
            ts: crate::timefmt::rfc3339_micros(o.ts),
            src_ip: crate::hosts::ip_text(&o.src),
            src_mac: o.src_mac.map(crate::hosts::fmt_mac),
            dst_ip: crate::hosts::ip_text(&o.dst),
            dst_port: o.dport,
            transport: o.l4.as_str(),
            protocol: o.protocol.as_str(),
            name: name.to_string(),
            category: hit.category.as_str(),
            evidence: o.evidence.as_str(),
            role: role.as_str(),
            signature,
            file: input.to_string(),
            frame: o.meta.frame,
            alpn: o.alpn.clone(),
            ech: o.ech,
            tunnel: o
                .tunnel
                .as_deref()
                .map(crate::decode::TunnelPath::labels)
                .unwrap_or_default(),
            // A host refused at a full table is still looked up.
            managed: match host {
                Some(h) => h.managed,
                None => self
                    .inventory
                    .as_ref()
                    .is_some_and(|inv| inv.lookup(o.src, o.src_mac).is_some()),
            },
            device,
            hostname,
            vendor,
        };
        s.event(&e);
    }

    /// The pattern a hit names, in the set that made it.
    fn pattern(&self, hit: Hit) -> &str {
        match &self.previous {
            Some(p) if hit.set == p.id && hit.set != self.matcher.id => p.pattern(hit.sig),
            _ => self.matcher.pattern(hit.sig),
        }
    }

    /// A reloaded signature set (and inventory) takes over.
    pub fn replace_signatures(&mut self, l: crate::reload::Loaded) {
        let old = std::mem::replace(&mut self.matcher, l.matcher);
        self.previous = Some(old);
        self.signature_counts = l.counts;
        self.signature_version = l.version;
        self.inventory = l.inventory;
        self.reloads_ok += 1;
    }

    /// Write the backfill file (final sample included); `Some(true)` when
    /// it stopped at its size limit.
    pub fn finish_backfill(&mut self) -> crate::error::Result<Option<bool>> {
        let Some(b) = self.backfill.take() else {
            return Ok(None);
        };
        let truncated = b.truncated;
        let none = Counters::default();
        b.finish(&self.snapshot(&none, &[]))?;
        Ok(Some(truncated))
    }

    pub fn flush(&mut self) {
        if let Some(s) = self.events.as_mut() {
            s.flush();
        }
        if let Some(s) = self.all_names.as_mut() {
            s.flush();
        }
    }
}

/// KSC servers remembered per host.
pub const MAX_KSC_SERVERS: usize = 4;

/// A private, unique-local or link-local address: on the site's own network.
fn on_site(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => a.is_private() || a.is_link_local(),
        IpAddr::V6(a) => {
            let s = a.segments()[0];
            (s & 0xfe00) == 0xfc00 || (s & 0xffc0) == 0xfe80
        }
    }
}

fn unicast(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => !(a.is_multicast() || a.is_broadcast() || a.is_unspecified()),
        IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified()),
    }
}
