//! The pipeline that every driver shares: `read`, `live`, tests and benches
//! push [`RawPacket`]s in; a [`Worker`] decodes, tracks flows and parses
//! names (one per core, each owning its flows and fragments); the [`Merger`]
//! matches nothing itself but applies the workers' observations in packet
//! order to the host table, the IP->name attribution map and the outputs.
//! Single-worker runs call both inline; multi-worker runs shard packets by a
//! symmetric hash of the innermost address pair so both directions and all
//! fragments of a datagram reach the same worker, and merge in sequence
//! order, so output is identical whatever the worker count.

use crate::capture::RawPacket;
use crate::decode::{self, Decoded, Packet, Transport, TunnelPath};
use crate::event::Event;
use crate::export::jsonlog::LineSink;
use crate::export::metrics::{Backfill, CallbackCounts, IfaceStats, Snapshot};
use crate::flow::{self, App, FlowKey, FlowTable, Scratch};
use crate::hosts::HostTable;
use crate::matcher::{Hit, Matcher};
use crate::proto::{dns, http, kupdate, name, quic, tls, Protocol};
use crate::signatures::Category;
use crate::stats::{Counters, Layer, Limit};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Where a packet came from: sequence number across the run, input index
/// (file or interface) and 1-based frame number within it.
#[derive(Clone, Copy, Debug, Default)]
pub struct PktMeta {
    pub seq: u64,
    pub input: u32,
    pub frame: u64,
}

/// Transport of an observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    Udp,
    Tcp,
}

impl L4 {
    pub fn as_str(self) -> &'static str {
        match self {
            L4::Udp => "udp",
            L4::Tcp => "tcp",
        }
    }
}

/// A name seen on the wire (owned: only built for matches, or for every
/// name with `--all-names`).
#[derive(Clone, Debug)]
pub struct Obs {
    pub meta: PktMeta,
    pub ts: u64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub l4: L4,
    pub src_mac: Option<[u8; 6]>,
    pub tunnel: TunnelPath,
    pub protocol: Protocol,
    /// Normalised name used for matching.
    pub name: String,
    /// Name as shown in `--all-names` when it differs (HTTP Host keeps `:port`).
    pub shown: Option<String>,
    pub hit: Option<Hit>,
    pub alpn: Option<String>,
    pub ech: Option<bool>,
    /// DNS transaction id (queries and responses), to pair them.
    pub dns_id: u16,
    pub kind: ObsKind,
}

/// What an observation carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ObsKind {
    /// A name seen in a query, hello or request.
    #[default]
    Name,
    /// A client opened a connection (TCP SYN, first datagram of a UDP flow)
    /// to `dst`: a callback if `dst` was resolved from a matching name.
    Conn,
    /// A DNS response to a matching question: addresses for the attribution map.
    Resolved(Vec<dns::Resolution>),
}

/// ClientHellos taken from one QUIC flow (the first and one after a Retry).
pub const MAX_QUIC_HELLOS: u8 = 2;

/// Worker settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerConfig {
    /// Keep every extracted name, matched or not (`--all-names`).
    pub all_names: bool,
}

/// Decode + flow + parse, for one shard of the traffic.
pub struct Worker {
    matcher: Arc<Matcher>,
    cfg: WorkerConfig,
    flows: FlowTable,
    frags: decode::frag::Reassembler,
    scratch: Scratch,
    pub counters: Counters,
    app_counters: Counters,
    /// Observations produced since the last [`Worker::take`].
    pub out: Vec<Obs>,
}

/// Per-packet context for building observations.
#[derive(Clone, Copy)]
struct Ctx<'p> {
    meta: PktMeta,
    ts: u64,
    pkt: &'p Packet<'p>,
    sport: u16,
    dport: u16,
    l4: L4,
}

impl Worker {
    pub fn new(matcher: Arc<Matcher>, cfg: WorkerConfig) -> Self {
        Worker {
            matcher,
            cfg,
            flows: FlowTable::default(),
            frags: decode::frag::Reassembler::default(),
            scratch: Scratch::default(),
            counters: Counters::default(),
            app_counters: Counters::default(),
            out: Vec::new(),
        }
    }

    /// Counters of this worker (decode + application layers).
    pub fn counters(&self) -> Counters {
        let mut c = self.counters.clone();
        c.merge(&self.app_counters);
        c
    }

    /// Process one packet.
    pub fn process(&mut self, meta: PktMeta, raw: &RawPacket<'_>) {
        self.counters.packets += 1;
        self.counters.bytes += u64::from(raw.wire_len.max(raw.data.len() as u32));
        match decode::decode(raw.linktype, raw.data, &mut self.counters) {
            Decoded::Packet(p) => self.packet(meta, raw.ts, &p),
            Decoded::Fragment(f) => {
                if let Some(r) = self.frags.push(&f, raw.ts, &mut self.counters) {
                    let view = r.as_fragment();
                    match decode::decode_ip_payload(&view, &r.data, &mut self.counters) {
                        Decoded::Packet(p) => self.packet(meta, raw.ts, &p),
                        Decoded::Fragment(_) => self.counters.decode_error(Layer::Fragment),
                        Decoded::Skip => {}
                    }
                }
            }
            Decoded::Skip => {}
        }
    }

    fn packet(&mut self, meta: PktMeta, ts: u64, p: &Packet<'_>) {
        match p.transport {
            Transport::Udp {
                sport,
                dport,
                payload,
            } => {
                let ctx = Ctx {
                    meta,
                    ts,
                    pkt: p,
                    sport,
                    dport,
                    l4: L4::Udp,
                };
                let dns_port = |x: u16| x == 53 || x == 5353 || x == 5355;
                if dns_port(sport) || dns_port(dport) {
                    self.dns_message(&ctx, payload);
                    return;
                }
                self.udp_conn(&ctx);
                if !self.quic(&ctx, payload) && dns::plausible(payload) {
                    self.dns_message(&ctx, payload);
                }
            }
            Transport::Tcp(tcp, payload) => {
                let (key, dir) = FlowKey::new(p.src, p.dst, tcp.sport, tcp.dport, 6);
                let Worker {
                    flows,
                    scratch,
                    counters,
                    app_counters,
                    matcher,
                    cfg,
                    out,
                    ..
                } = self;
                let Some(l) = flows.get(key, dir, ts, true, counters) else {
                    return;
                };
                let ctx = Ctx {
                    meta,
                    ts,
                    pkt: p,
                    sport: tcp.sport,
                    dport: tcp.dport,
                    l4: L4::Tcp,
                };
                if tcp.flags & (decode::TCP_SYN | decode::TCP_ACK) == decode::TCP_SYN && l.created {
                    out.push(Obs::conn(&ctx));
                }
                let Some(d) = l.flow.dirs.get_mut(dir) else {
                    return;
                };
                let mut emit = |app: App<'_>| {
                    let mut e = Emitter {
                        matcher,
                        cfg: *cfg,
                        out,
                        c: app_counters,
                    };
                    match app {
                        App::Dns(msg) => e.dns_message(&ctx, msg),
                        App::Tls(h) => e.hello(&ctx, Protocol::Tls, &h),
                        App::Http(r) => e.http(&ctx, &r),
                        App::UpdateMagic(rule) => e.update_magic(&ctx, rule),
                    }
                };
                flow::tcp_segment(d, &tcp, payload, scratch, counters, &mut emit);
                if tcp.flags & decode::TCP_FIN != 0 {
                    d.fin = true;
                }
                // A reset or a FIN from both sides ends the connection: forget it now.
                if tcp.flags & decode::TCP_RST != 0 || l.flow.closed() {
                    flows.remove(&key);
                }
            }
            Transport::Other(_) => {}
        }
    }

    fn dns_message(&mut self, ctx: &Ctx<'_>, msg: &[u8]) {
        let mut e = Emitter {
            matcher: &self.matcher,
            cfg: self.cfg,
            out: &mut self.out,
            c: &mut self.app_counters,
        };
        e.dns_message(ctx, msg);
    }

    /// First datagram of a UDP flow: a connection candidate for attribution.
    fn udp_conn(&mut self, ctx: &Ctx<'_>) {
        let p = ctx.pkt;
        let (key, dir) = FlowKey::new(p.src, p.dst, ctx.sport, ctx.dport, 17);
        if let Some(l) = self.flows.get(key, dir, ctx.ts, false, &mut self.counters) {
            if l.created {
                self.out.push(Obs::conn(ctx));
            }
        }
    }

    /// QUIC Initials; returns true when the datagram was QUIC.
    fn quic(&mut self, ctx: &Ctx<'_>, payload: &[u8]) -> bool {
        let p = ctx.pkt;
        let initial = quic::peek_initial(payload);
        let (key, dir) = FlowKey::new(p.src, p.dst, ctx.sport, ctx.dport, 17);
        let Worker {
            flows,
            counters,
            app_counters,
            matcher,
            cfg,
            out,
            ..
        } = self;
        let Some(l) = (if initial.is_some() {
            flows.get(key, dir, ctx.ts, false, counters)
        } else {
            None
        }) else {
            return false;
        };
        let q = l.flow.quic.get_or_insert_with(Box::default);
        if q.done {
            // After a Retry the client starts over with a new DCID and repeats its hello.
            let new_conn = initial.is_some_and(|h| usize::from(q.dir) == dir && q.dcid() != h.dcid);
            if !new_conn || q.hellos >= MAX_QUIC_HELLOS {
                return true;
            }
            q.done = false;
        }
        if q.state.is_none() {
            let Some(h) = initial else { return false };
            match quic::QuicClientState::new(h.version, h.dcid) {
                Some(s) => {
                    q.state = Some(Box::new(s));
                    q.dir = dir as u8;
                    q.set_dcid(h.dcid);
                }
                None => return false,
            }
        }
        if usize::from(q.dir) != dir {
            return true;
        }
        let Some(st) = q.state.as_mut() else {
            return false;
        };
        match st.push_datagram(payload) {
            quic::QuicProgress::Limit(_) => app_counters.limit(Limit::QuicCrypto),
            quic::QuicProgress::NotQuic => return false,
            _ => {}
        }
        if let Some(hello) = st.client_hello() {
            let mut e = Emitter {
                matcher,
                cfg: *cfg,
                out,
                c: app_counters,
            };
            match tls::scan_handshake(hello) {
                tls::TlsScan::Hello(h) => e.hello(ctx, Protocol::Quic, &h),
                _ => e.c.decode_error(Layer::Quic),
            }
            q.done = true;
            q.hellos += 1;
            q.state = None;
        }
        true
    }

    /// Take the observations produced so far.
    pub fn take(&mut self) -> Vec<Obs> {
        std::mem::take(&mut self.out)
    }
}

impl Obs {
    /// An observation of this packet; optional fields empty.
    fn at(
        ctx: &Ctx<'_>,
        protocol: Protocol,
        name: String,
        hit: Option<Hit>,
        kind: ObsKind,
    ) -> Self {
        Obs {
            meta: ctx.meta,
            ts: ctx.ts,
            src: ctx.pkt.src,
            dst: ctx.pkt.dst,
            sport: ctx.sport,
            dport: ctx.dport,
            l4: ctx.l4,
            src_mac: ctx.pkt.src_mac,
            tunnel: ctx.pkt.tunnel,
            protocol,
            name,
            shown: None,
            hit,
            alpn: None,
            ech: None,
            dns_id: 0,
            kind,
        }
    }

    /// A connection candidate (no name; no allocation).
    fn conn(ctx: &Ctx<'_>) -> Self {
        Obs::at(ctx, Protocol::Ip, String::new(), None, ObsKind::Conn)
    }
}

/// Builds observations from parsed application data.
struct Emitter<'a> {
    matcher: &'a Matcher,
    cfg: WorkerConfig,
    out: &'a mut Vec<Obs>,
    c: &'a mut Counters,
}

impl Emitter<'_> {
    fn push(
        &mut self,
        ctx: &Ctx<'_>,
        protocol: Protocol,
        norm: &[u8],
        shown: Option<&[u8]>,
        alpn: Option<&[u8]>,
        ech: Option<bool>,
    ) {
        let hit = if norm.is_empty() {
            None
        } else {
            self.matcher.lookup(norm)
        };
        if hit.is_none() && !self.cfg.all_names {
            return;
        }
        let mut o = Obs::at(ctx, protocol, name::to_string(norm), hit, ObsKind::Name);
        o.shown = shown.map(name::to_string);
        o.alpn = alpn.map(|a| String::from_utf8_lossy(a).into_owned());
        o.ech = ech;
        self.out.push(o);
    }

    fn dns_message(&mut self, ctx: &Ctx<'_>, msg: &[u8]) {
        let Some(h) = dns::header(msg) else {
            self.c.decode_error(Layer::Dns);
            return;
        };
        if h.opcode() != 0 {
            return;
        }
        if h.is_response() {
            // Answers to a matching question feed the IP->name attribution map.
            let mut first: Option<(Hit, String)> = None;
            dns::questions(msg, |q| {
                if first.is_none() {
                    if let Some(hit) = self.matcher.lookup(q.name) {
                        first = Some((hit, name::to_string(q.name)));
                    }
                }
            });
            if let Some((hit, qname)) = first {
                // Also emitted without answers: a response whose query was not
                // captured (one-way mirror) is still the client's callback.
                let kind = ObsKind::Resolved(dns::answers(msg));
                let mut o = Obs::at(ctx, Protocol::Dns, qname, Some(hit), kind);
                o.dns_id = h.id;
                self.out.push(o);
            }
            return;
        }
        let before = self.out.len();
        let walk = dns::questions(msg, |q| {
            if q.name.is_empty() {
                self.push(ctx, Protocol::Dns, b"", Some(b"<root>"), None, None);
            } else {
                self.push(ctx, Protocol::Dns, q.name, None, None, None);
            }
        });
        for o in self.out.iter_mut().skip(before) {
            o.dns_id = h.id;
        }
        match walk {
            Some(w) => {
                match w.error {
                    Some(dns::NameError::TooLong) => self.c.limit(Limit::DnsNameLen),
                    Some(_) => self.c.decode_error(Layer::Dns),
                    None => {}
                }
                if w.capped > 0 {
                    self.c.limit(Limit::DnsQuestions);
                }
            }
            None => self.c.decode_error(Layer::Dns),
        }
    }

    fn hello(&mut self, ctx: &Ctx<'_>, protocol: Protocol, h: &tls::ClientHello<'_>) {
        let Some(sni) = h.sni else { return };
        let mut buf = [0u8; name::MAX_NAME_LEN];
        let Some(n) = name::normalise(sni, &mut buf) else {
            return;
        };
        let norm = buf.get(..n).unwrap_or(&[]);
        self.push(ctx, protocol, norm, None, h.alpn, Some(h.ech));
    }

    fn http(&mut self, ctx: &Ctx<'_>, r: &http::HttpRequest<'_>) {
        let hostport = r.host.or(r.authority).unwrap_or_default();
        let mut shown = [0u8; name::MAX_NAME_LEN];
        let shown_n = hostport.len().min(shown.len());
        for (d, s) in shown.iter_mut().zip(hostport) {
            *d = s.to_ascii_lowercase();
        }
        let shown = shown.get(..shown_n).unwrap_or(&[]);
        let mut buf = [0u8; name::MAX_NAME_LEN];
        let n = http::host_for_match(hostport)
            .and_then(|h| name::normalise(h, &mut buf))
            .unwrap_or(0);
        let norm = buf.get(..n).unwrap_or(&[]);
        let hit = if norm.is_empty() {
            None
        } else {
            self.matcher.lookup(norm)
        };
        if hit.is_none() && r.method != b"CONNECT" {
            // No Kaspersky name: the update protocol may still show in the path.
            if let Some(rule) = kupdate::match_path(r.target) {
                let label = if norm.is_empty() {
                    ctx.pkt.dst.to_string().into_bytes()
                } else {
                    norm.to_vec()
                };
                self.push_hit(ctx, Protocol::Http, &label, Matcher::path_hit(rule));
                return;
            }
        }
        if norm.is_empty() {
            return;
        }
        self.push(
            ctx,
            Protocol::Http,
            norm,
            (shown != norm).then_some(shown),
            None,
            None,
        );
    }

    /// A response body with update magic: the callback is the client's, the
    /// packet's destination; the name is the server's address.
    fn update_magic(&mut self, ctx: &Ctx<'_>, rule: usize) {
        let server = ctx.pkt.src.to_string();
        let mut o = Obs::at(
            ctx,
            Protocol::Http,
            server,
            Some(Matcher::path_hit(rule)),
            ObsKind::Name,
        );
        std::mem::swap(&mut o.src, &mut o.dst);
        std::mem::swap(&mut o.sport, &mut o.dport);
        o.src_mac = None;
        self.out.push(o);
    }

    /// An observation with a hit decided by a content rule.
    fn push_hit(&mut self, ctx: &Ctx<'_>, protocol: Protocol, label: &[u8], hit: Hit) {
        self.out.push(Obs::at(
            ctx,
            protocol,
            name::to_string(label),
            Some(hit),
            ObsKind::Name,
        ));
    }
}

/// Applies observations, in packet order, to the host table and outputs.
pub struct Merger {
    matcher: Arc<Matcher>,
    pub hosts: HostTable,
    pub events: Option<LineSink>,
    pub all_names: Option<LineSink>,
    /// Input names (files or interfaces), indexed by `PktMeta::input`.
    pub inputs: Vec<String>,
    pub callbacks: u64,
    pub names_seen: u64,
    /// Server address -> the matching name it was resolved from.
    attrib: HashMap<IpAddr, Attribution, ahash::RandomState>,
    /// Matched DNS queries awaiting their response: (client, server, client
    /// port, id) -> packet time. A response whose query was captured is not
    /// counted twice; one whose query was not (one-way mirror) still counts.
    queries: HashMap<(IpAddr, IpAddr, u16, u16), u64, ahash::RandomState>,
    /// Drops at limits owned by the merger.
    pub counters: Counters,
    /// Callbacks by category and protocol, all hosts (survives evictions).
    pub by_category: CallbackCounts,
    /// Signatures loaded per category (for the metrics).
    pub signature_counts: Vec<(Category, usize)>,
    /// `read --backfill`: sampled at step boundaries of packet time.
    pub backfill: Option<Backfill>,
    /// Latest packet time of an observation.
    pub last_ts: u64,
    /// `--inventory`: marks hosts managed.
    pub inventory: Option<Arc<crate::inventory::Inventory>>,
}

/// An address learned from a DNS answer to a matching question.
#[derive(Clone, Debug)]
struct Attribution {
    name: String,
    hit: Hit,
    expires: u64,
}

/// Matched DNS queries remembered until their response (a busy client sends a
/// few per second; responses come within seconds).
pub const MAX_PENDING_QUERIES: usize = 16_384;
/// A query whose response has not come after this long is forgotten.
pub const QUERY_WAIT_NS: u64 = 30_000_000_000;

/// Addresses kept in the attribution map (each answer to a matching name adds a few).
pub const MAX_RESOLUTIONS: usize = 65_536;
/// Shortest time an answer is trusted, whatever its TTL says (clients keep
/// answers a little past short TTLs).
pub const MIN_ATTRIBUTION_NS: u64 = 300_000_000_000;
/// Longest time an answer is trusted: a day-long TTL should not keep a CDN
/// address attributed to Kaspersky for longer than that.
pub const MAX_ATTRIBUTION_NS: u64 = 86_400_000_000_000;

impl Merger {
    pub fn new(matcher: Arc<Matcher>, hosts: HostTable) -> Self {
        Merger {
            matcher,
            hosts,
            events: None,
            all_names: None,
            inputs: Vec::new(),
            callbacks: 0,
            names_seen: 0,
            attrib: HashMap::with_hasher(ahash::RandomState::new()),
            queries: HashMap::with_hasher(ahash::RandomState::new()),
            counters: Counters::default(),
            by_category: Default::default(),
            signature_counts: Vec::new(),
            backfill: None,
            last_ts: 0,
            inventory: None,
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
            counters,
            interfaces,
            signatures: &self.signature_counts,
            version: env!("CARGO_PKG_VERSION"),
            event_write_errors: self.events.as_ref().map_or(0, |e| e.errors),
        }
    }

    /// Addresses currently attributed to matching names.
    pub fn attributed(&self) -> usize {
        self.attrib.len()
    }

    fn learn(&mut self, o: &Obs, answers: &[dns::Resolution]) {
        let Some(hit) = o.hit else { return };
        for r in answers {
            let dns::Resolution::Addr { addr, ttl, .. } = r else {
                continue;
            };
            let life =
                (u64::from(*ttl) * 1_000_000_000).clamp(MIN_ATTRIBUTION_NS, MAX_ATTRIBUTION_NS);
            if self.attrib.len() >= MAX_RESOLUTIONS && !self.attrib.contains_key(addr) {
                let now = o.ts;
                self.attrib.retain(|_, a| a.expires >= now);
                if self.attrib.len() >= MAX_RESOLUTIONS {
                    self.counters.limit(Limit::Resolutions);
                    continue;
                }
            }
            let a = Attribution {
                name: o.name.clone(),
                hit,
                expires: o.ts.saturating_add(life),
            };
            self.attrib.insert(*addr, a);
        }
    }

    /// Apply one observation (in packet order).
    pub fn apply(&mut self, o: &Obs) {
        if let Some(mut b) = self.backfill.take() {
            let none = Counters::default();
            b.advance(o.ts, &self.snapshot(&none, &[]));
            self.backfill = Some(b);
        }
        self.last_ts = self.last_ts.max(o.ts);
        match &o.kind {
            ObsKind::Name => {}
            ObsKind::Resolved(answers) => {
                self.response(o);
                return self.learn(o, answers);
            }
            ObsKind::Conn => {
                let Some(a) = self.attrib.get(&o.dst) else {
                    return;
                };
                if o.ts > a.expires {
                    self.attrib.remove(&o.dst);
                    return;
                }
                let (hit, name) = (a.hit, a.name.clone());
                return self.callback(o, hit, &name);
            }
        }
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
        if let Some(hit) = o.hit {
            if o.protocol == Protocol::Dns {
                self.note_query(o);
            }
            self.callback(o, hit, &o.name);
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
        let unicast = match o.dst {
            IpAddr::V4(a) => !(a.is_multicast() || a.is_broadcast() || a.is_unspecified()),
            IpAddr::V6(a) => !(a.is_multicast() || a.is_unspecified()),
        };
        if !unicast {
            return; // mDNS/LLMNR answers to a group are not a host's callback
        }
        let mut c = o.clone();
        std::mem::swap(&mut c.src, &mut c.dst);
        std::mem::swap(&mut c.sport, &mut c.dport);
        c.src_mac = None; // the response's source MAC is the resolver's or the router's
        self.callback(&c, hit, &o.name);
    }

    /// Remember a matched query until its response.
    fn note_query(&mut self, o: &Obs) {
        if self.queries.len() >= MAX_PENDING_QUERIES {
            let now = o.ts;
            self.queries
                .retain(|_, t| now.saturating_sub(*t) < QUERY_WAIT_NS);
            if self.queries.len() >= MAX_PENDING_QUERIES {
                self.counters.limit(Limit::DnsPendingQueries);
                return;
            }
        }
        self.queries.insert((o.src, o.dst, o.sport, o.dns_id), o.ts);
    }

    fn callback(&mut self, o: &Obs, hit: Hit, name: &str) {
        self.callbacks += 1;
        if let Some(n) = self
            .by_category
            .get_mut(hit.category as usize)
            .and_then(|r| r.get_mut(o.protocol as usize))
        {
            *n += 1;
        }
        self.hosts
            .record(o.src, o.src_mac, o.ts, hit.category, o.protocol, name);
        if let Some(inv) = &self.inventory {
            if let Some(h) = self.hosts.get_mut(&o.src) {
                if let Some(name) = inv.lookup(h.ip, h.mac) {
                    h.managed = true;
                    h.inventory_name = (!name.is_empty()).then(|| name.to_string());
                }
            }
        }
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
            src_ip: o.src.to_string(),
            src_mac: o.src_mac.map(crate::hosts::fmt_mac),
            dst_ip: o.dst.to_string(),
            dst_port: o.dport,
            transport: o.l4.as_str(),
            protocol: o.protocol.as_str(),
            name: name.to_string(),
            category: hit.category.as_str(),
            signature: self.matcher.pattern(hit.sig).to_string(),
            file: input.to_string(),
            frame: o.meta.frame,
            alpn: o.alpn.clone(),
            ech: o.ech,
            tunnel: o.tunnel.labels(),
            managed: self.hosts.get(&o.src).is_some_and(|h| h.managed),
        };
        s.event(&e);
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

/// Symmetric shard key of a packet: the outermost address pair, order-free,
/// so both directions, every IP fragment and every tunnelled packet of a flow
/// reach the same worker (inner addresses are unknown for non-first
/// fragments of a tunnel). Non-IP frames go to worker 0. `seed` is a
/// per-run random hasher, so crafted addresses cannot pile onto one worker.
pub fn shard_of(raw: &RawPacket<'_>, workers: usize, seed: &ahash::RandomState) -> usize {
    if workers <= 1 {
        return 0;
    }
    let Some((a, b)) = decode::outer_addrs(raw.linktype, raw.data) else {
        return 0;
    };
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    (seed.hash_one((lo, hi)) % workers as u64) as usize
}
