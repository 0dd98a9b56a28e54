//! The per-shard half of the pipeline: a [`Worker`] decodes packets,
//! reassembles fragments, tracks flows (`flow.rs`), runs the parsers
//! (`proto/`) and the matcher, and pushes [`Obs`]ervations for the merger:
//! matched names, connection opens and the decision of what each
//! connection's client named, and the addresses DNS responses hand out.
//! Owns its flow table and fragment reassembler; shares only the matcher.

use super::{AddrList, Head, Named, Obs, ObsKind, PktMeta, Resolved, ANSWERS_PER_OBS, L4};
use crate::capture::RawPacket;
use crate::decode::{self, Decoded, Packet, Transport};
use crate::evidence::Evidence;
use crate::flow::{self, App, ConnTrack, FlowKey, FlowTable, Scratch};
use crate::identity::Ident;
use crate::matcher::{Hit, Matcher};
use crate::proto::{dns, http, ident, kupdate, name, quic, tls, Protocol};
use crate::stats::{Counters, Layer, Limit};
use crate::table::push_in_place;
use crate::text::Text;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// ClientHellos taken from one QUIC flow (the first and one after a Retry).
pub const MAX_QUIC_HELLOS: u8 = 2;

/// Datagrams held back at most while new QUIC connections wait for their
/// keys (see [`HeldInitials`]).
pub const MAX_HELD_DATAGRAMS: usize = 32;
/// Payload bytes held back at most (a datagram is at most
/// `quic::MAX_DATAGRAM_LEN`, so one always fits).
pub const MAX_HELD_BYTES: usize = 256 * 1024;

/// Packets seen at most while datagrams are held (each may add a flow, so
/// the flow table's generation cannot turn over meanwhile: see
/// [`Worker::hold`]).
pub const MAX_HOLD_PACKETS: u64 = 1024;

/// A datagram held back: what [`Worker::packet`] needs to see it again.
struct Held {
    meta: PktMeta,
    ts: u64,
    key: FlowKey,
    src_mac: Option<[u8; 6]>,
    tunnel: decode::TunnelPath,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    payload: std::ops::Range<usize>,
}

/// Client Initials of new QUIC connections held back so that their keys
/// are derived together ([`quic::KeyBatch`]: eight SHA-256 blocks at a
/// time), on CPUs without the SHA extensions only. A held datagram has
/// touched nothing yet (no flow, no observation); later datagrams of its
/// flow are held behind it. When [`quic::MAX_KEY_BATCH`] connections wait,
/// when [`MAX_HELD_DATAGRAMS`] or [`MAX_HELD_BYTES`] would be passed, after
/// [`MAX_HOLD_PACKETS`] packets, before the flow table's upkeep (a sweep, a
/// generation turning over) and before any observation leaves the worker
/// ([`Worker::flush_held`]), the
/// keys are derived and the datagrams go through the worker in their
/// order; their observations are then moved to their place by packet
/// sequence. So the output is what it would have been without holding
/// (fixture `held_initials_change_no_output`).
struct HeldInitials {
    keys: quic::KeyBatch,
    datagrams: Vec<Held>,
    bytes: Vec<u8>,
    /// The held datagrams are going through the worker: hold nothing.
    replaying: bool,
    /// Connections whose keys came from a batch of two or more.
    batched: u64,
}

impl HeldInitials {
    fn new() -> Box<Self> {
        Box::new(HeldInitials {
            keys: quic::KeyBatch::default(),
            datagrams: Vec::with_capacity(MAX_HELD_DATAGRAMS),
            bytes: Vec::with_capacity(MAX_HELD_BYTES),
            replaying: false,
            batched: 0,
        })
    }

    /// Room for one more datagram of `len` bytes.
    fn room(&self, len: usize) -> bool {
        self.datagrams.len() < MAX_HELD_DATAGRAMS && self.bytes.len() + len <= MAX_HELD_BYTES
    }
}

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
    names: Box<NameBufs>,
    /// Where QUIC Initials are decrypted, for every connection (at most one
    /// datagram: `quic::MAX_DATAGRAM_LEN` bytes).
    quic_plain: Vec<u8>,
    pub counters: Counters,
    app_counters: Counters,
    /// Observations produced since the last [`Worker::take`]. Call
    /// [`Worker::flush_held`] before reading them directly.
    pub out: Vec<Obs>,
    /// QUIC Initials waiting for their keys (None: keys one at a time).
    held: Option<Box<HeldInitials>>,
    /// While datagrams are held: the packet time at which the flow table
    /// would sweep and the packet count at which [`MAX_HOLD_PACKETS`] have
    /// passed (both `u64::MAX` otherwise): held datagrams go through first.
    hold_until_ts: u64,
    hold_until_packet: u64,
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

/// UDP ports whose payload is DNS by convention (DNS, mDNS, LLMNR).
fn dns_port(p: u16) -> bool {
    p == 53 || p == 5353 || p == 5355
}

/// NetBIOS name and datagram services: DNS-shaped, but their names are
/// encoded NetBIOS names, not DNS names; never read as DNS.
fn netbios_port(p: u16) -> bool {
    p == 137 || p == 138
}

/// UDP ports whose service the worker reads by port: DNS, mDNS, LLMNR,
/// NetBIOS, DHCP and DHCPv6.
fn service_port(p: u16) -> bool {
    dns_port(p) || netbios_port(p) || matches!(p, 67 | 68 | 547)
}

impl Worker {
    pub fn new(matcher: Arc<Matcher>, cfg: WorkerConfig) -> Self {
        Worker {
            matcher,
            cfg,
            flows: FlowTable::default(),
            frags: decode::frag::Reassembler::default(),
            scratch: Scratch::default(),
            names: Box::new(NameBufs::new()),
            quic_plain: Vec::new(),
            counters: Counters::default(),
            app_counters: Counters::default(),
            out: Vec::new(),
            held: quic::KeyBatch::worth_it().then(HeldInitials::new),
            hold_until_ts: u64::MAX,
            hold_until_packet: u64::MAX,
        }
    }

    /// Derive new QUIC connections' keys together (on) or one at a time
    /// (off); the default is on where that saves work
    /// ([`quic::KeyBatch::worth_it`]). Same output either way.
    pub fn batch_quic_keys(&mut self, on: bool) {
        self.flush_held();
        self.held = on.then(HeldInitials::new);
    }

    /// New QUIC connections keyed in batches of two or more so far.
    pub fn quic_keys_batched(&self) -> u64 {
        self.held.as_ref().map_or(0, |h| h.batched)
    }

    /// Hold `payload` back if it is the client Initial of a new QUIC
    /// connection or follows a held datagram of its flow (see
    /// [`HeldInitials`]). May first run the held datagrams to make room.
    fn hold(
        &mut self,
        ctx: &Ctx<'_>,
        payload: &[u8],
        initial: Option<&quic::InitialHeader<'_>>,
    ) -> bool {
        let Some(h) = self.held.as_deref() else {
            return false;
        };
        if h.replaying {
            return false;
        }
        let p = ctx.pkt;
        // Nothing is held across the flow table's upkeep: not when this
        // packet's lookup would sweep, nor when the packets that may come
        // while it waits could fill the table's generation.
        let more = h.datagrams.len() + MAX_HELD_DATAGRAMS + MAX_HOLD_PACKETS as usize;
        if self.flows.upkeep_due(ctx.ts, more) {
            self.flush_held();
            return false;
        }
        let (key, _) = FlowKey::new(p.src, p.dst, ctx.sport, ctx.dport, 17);
        if h.datagrams.iter().any(|d| d.key == key) {
            if !h.room(payload.len()) {
                // Its flow's held datagrams go first, then this one in place.
                self.flush_held();
                return false;
            }
        } else {
            let Some(i) = initial else {
                return false;
            };
            // Keys are derived for a flow's first Initial only.
            let keyed = self
                .flows
                .peek(key)
                .and_then(|f| f.quic.as_ref())
                .is_some_and(|q| q.state.is_some() || q.done);
            if keyed {
                return false;
            }
            if !h.room(payload.len()) || h.keys.is_full() {
                self.flush_held();
            }
            let Some(h) = self.held.as_deref_mut() else {
                return false;
            };
            if !h.keys.want(i.version, i.dcid) {
                return false;
            }
        }
        let Some(h) = self.held.as_deref_mut() else {
            return false;
        };
        let start = h.bytes.len();
        h.bytes.extend_from_slice(payload);
        h.datagrams.push(Held {
            meta: ctx.meta,
            ts: ctx.ts,
            key,
            src_mac: p.src_mac,
            tunnel: p.tunnel,
            src: p.src,
            dst: p.dst,
            sport: ctx.sport,
            dport: ctx.dport,
            payload: start..h.bytes.len(),
        });
        if h.datagrams.len() == 1 {
            self.hold_until_ts = self.flows.next_sweep();
            self.hold_until_packet = self.counters.packets + MAX_HOLD_PACKETS;
        }
        if h.keys.is_full() {
            self.flush_held();
        }
        true
    }

    /// Derive the held connections' keys and run their datagrams through
    /// the worker, then put their observations in packet order. Called
    /// before observations leave the worker ([`Worker::take`]).
    pub fn flush_held(&mut self) {
        self.hold_until_ts = u64::MAX;
        self.hold_until_packet = u64::MAX;
        let Some(h) = self.held.as_deref_mut() else {
            return;
        };
        let Some(first_seq) = h.datagrams.first().map(|d| d.meta.seq) else {
            return;
        };
        let n = h.keys.derive();
        if n > 1 {
            h.batched += n as u64;
        }
        h.replaying = true;
        let datagrams = std::mem::take(&mut h.datagrams);
        let bytes = std::mem::take(&mut h.bytes);
        let before = self.out.len();
        for d in &datagrams {
            let p = Packet {
                src_mac: d.src_mac,
                tunnel: d.tunnel,
                src: d.src,
                dst: d.dst,
                transport: Transport::Udp {
                    sport: d.sport,
                    dport: d.dport,
                    payload: bytes.get(d.payload.clone()).unwrap_or(&[]),
                },
            };
            self.packet(d.meta, d.ts, &p);
        }
        if self.out.len() > before {
            // Observations made since the first held datagram, and the
            // held ones' after them: one stable sort puts them in order.
            let from = self
                .out
                .get(..before)
                .map_or(0, |o| o.partition_point(|o| o.meta.seq < first_seq));
            if let Some(tail) = self.out.get_mut(from..) {
                tail.sort_by_key(|o| o.meta.seq);
            }
        }
        if let Some(h) = self.held.as_deref_mut() {
            let (mut datagrams, mut bytes) = (datagrams, bytes);
            datagrams.clear();
            bytes.clear();
            h.datagrams = datagrams;
            h.bytes = bytes;
            h.replaying = false;
        }
    }

    /// Match with another signature set from the next packet on (a reload).
    pub fn set_matcher(&mut self, m: Arc<Matcher>) {
        self.matcher = m;
    }

    /// Counters of this worker (decode + application layers).
    pub fn counters(&self) -> Counters {
        let mut c = self.counters.clone();
        c.merge(&self.app_counters);
        c
    }

    /// Process one packet.
    pub fn process(&mut self, meta: PktMeta, raw: &RawPacket<'_>) {
        if raw.ts >= self.hold_until_ts || self.counters.packets >= self.hold_until_packet {
            // Held datagrams go through before the flow table's upkeep
            // could run (as they would have, in their place).
            self.flush_held();
        }
        self.counters.packets += 1;
        self.counters.bytes += u64::from(raw.wire_len.max(raw.data.len() as u32));
        // Matched by reference: a decoded packet is ~200 bytes, not copied again.
        match &decode::decode(raw.linktype, raw.data, &mut self.counters) {
            Decoded::Packet(p) => self.packet(meta, raw.ts, p),
            Decoded::Fragment(f) => {
                if let Some(r) = self.frags.push(f, raw.ts, &mut self.counters) {
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
                // A client Initial to a port of none of these services is
                // QUIC whatever its source port: a client's own port can
                // be 5353 (or, through a NAT, anything). Otherwise either
                // port tells the service (a response comes from the
                // service's port). A client pads its Initials' datagrams
                // to 1,200 bytes (servers drop smaller ones, RFC 9000
                // §14.1), so most DNS responses are ruled out by their
                // length alone.
                if !service_port(dport)
                    && service_port(sport)
                    && payload.len() >= quic::MIN_INITIAL_DATAGRAM
                    && quic::peek_initial(payload).is_some()
                {
                    self.udp(&ctx, payload);
                    return;
                }
                if dns_port(sport) || dns_port(dport) {
                    self.emitter().dns_message(&ctx, payload);
                    if sport == 5353 || sport == 5355 {
                        self.emitter().self_announcement(&ctx, payload);
                    }
                    return;
                }
                if netbios_port(sport) || netbios_port(dport) {
                    if sport == 137 {
                        self.emitter().netbios(&ctx, payload);
                    }
                    return;
                }
                if matches!((sport, dport), (67 | 68, 67 | 68)) {
                    self.emitter().dhcp4(&ctx, payload);
                    return;
                }
                if dport == 547 {
                    self.emitter().dhcp6(&ctx, payload);
                    return;
                }
                if !self.udp(&ctx, payload) && dns::plausible(payload) {
                    self.emitter().dns_message(&ctx, payload);
                }
            }
            Transport::Tcp(tcp, payload) => self.tcp(meta, ts, p, &tcp, payload),
            Transport::Other(_) => {}
        }
    }

    fn emitter(&mut self) -> Emitter<'_> {
        Emitter {
            matcher: &self.matcher,
            cfg: self.cfg,
            out: &mut self.out,
            c: &mut self.app_counters,
            names: Some(&mut self.names),
        }
    }

    fn tcp(
        &mut self,
        meta: PktMeta,
        ts: u64,
        p: &Packet<'_>,
        tcp: &decode::TcpInfo,
        payload: &[u8],
    ) {
        let (key, dir) = FlowKey::new(p.src, p.dst, tcp.sport, tcp.dport, 6);
        let Worker {
            flows,
            scratch,
            names,
            counters,
            app_counters,
            matcher,
            cfg,
            out,
            ..
        } = self;
        let Some(l) = flows.tcp(key, dir, ts, tcp, payload, counters) else {
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
        let flow = l.flow;
        let from_client = track_handshake(&mut flow.conn, l.created, dir, tcp, &ctx, matcher, out);
        let Some(d) = flow.dirs.get_mut(dir) else {
            return;
        };
        let conn = &mut flow.conn;
        let mut named: Option<Named> = None;
        let mut emit = |app: App<'_>| {
            let mut e = Emitter {
                matcher,
                cfg: *cfg,
                out,
                c: app_counters,
                names: Some(&mut **names),
            };
            let n = match app {
                App::Dns(msg) => {
                    e.dns_message(&ctx, msg);
                    Named::Nothing
                }
                App::Tls(h) => e.hello(&ctx, Protocol::Tls, &h, conn),
                App::Http(r) => e.http(&ctx, &r, conn),
                App::Body(head) => {
                    if !e.update_magic(&ctx, head, conn) {
                        return;
                    }
                    Named::Kaspersky
                }
            };
            // The first thing the connection says decides it.
            if named.is_none() {
                named = Some(n);
            }
        };
        flow::tcp_segment(d, tcp, payload, scratch, counters, &mut emit);
        if tcp.flags & decode::TCP_FIN != 0 {
            d.fin = true;
        }
        let client_done = from_client && !payload.is_empty() && d.is_done();
        let ended = tcp.flags & decode::TCP_RST != 0 || flow.closed();
        settle_tcp(
            &mut flow.conn,
            named,
            from_client,
            client_done || ended,
            &ctx,
            out,
        );
        // A reset or a FIN from both sides ends the connection: forget it now.
        if ended {
            flows.remove(&key);
        }
    }

    /// A UDP datagram off the DNS ports: connection tracking for address
    /// evidence and QUIC Initials. Returns true when the datagram was QUIC.
    fn udp(&mut self, ctx: &Ctx<'_>, payload: &[u8]) -> bool {
        let p = ctx.pkt;
        let initial = quic::peek_initial(payload);
        if self.held.is_some() && self.hold(ctx, payload, initial.as_ref()) {
            // Seen again when it is let go: true, so that it is not read
            // as DNS meanwhile (the same test decides then).
            return true;
        }
        let (key, dir) = FlowKey::new(p.src, p.dst, ctx.sport, ctx.dport, 17);
        let Worker {
            flows,
            names,
            counters,
            app_counters,
            matcher,
            cfg,
            out,
            quic_plain,
            held,
            ..
        } = self;
        let Some(l) = flows.get(key, dir, ctx.ts, false, counters) else {
            return false;
        };
        let flow = l.flow;
        if l.created {
            // A datagram that is not a QUIC Initial names nothing; an
            // Initial is settled by its ClientHello.
            let pending = initial.is_some();
            flow.conn = ConnTrack {
                client: dir as u8,
                pending,
                ..ConnTrack::default()
            };
            let settled = (!pending).then_some(Named::Nothing);
            push_in_place(out, || Obs::at(ctx, Protocol::Ip, ObsKind::Open(settled)));
            flow.conn.opened = true;
        } else if flow.conn.opened
            && !flow.conn.port_checked
            && usize::from(flow.conn.client) != dir
        {
            // UDP went both ways: a completed exchange on a Kaspersky port.
            flow.conn.port_checked = true;
            port_signature(matcher, out, ctx, false, false, &mut flow.conn);
        }
        let Some(h) = initial else {
            return flow.quic.is_some();
        };
        let q = flow.quic.get_or_insert_with(Box::default);
        if q.done {
            // After a Retry the client starts over with a new DCID and repeats its hello.
            let new_conn = usize::from(q.dir) == dir && q.dcid() != h.dcid;
            if !new_conn || q.hellos >= MAX_QUIC_HELLOS {
                return true;
            }
            q.done = false;
        }
        if q.state.is_none() {
            let made = match held.as_deref_mut() {
                Some(b) => quic::QuicClientState::new_in(h.version, h.dcid, &mut b.keys),
                None => quic::QuicClientState::new(h.version, h.dcid),
            };
            match made {
                Some(s) => {
                    q.state = Some(Box::new(s));
                    q.dir = dir as u8;
                    q.set_dcid(h.dcid);
                }
                None => {
                    settle(out, ctx, &mut flow.conn, Named::Nothing);
                    return false;
                }
            }
        }
        if usize::from(q.dir) != dir {
            return true;
        }
        let Some(st) = q.state.as_mut() else {
            return false;
        };
        match st.push_datagram_in(payload, quic_plain) {
            quic::QuicProgress::Limit(_) => app_counters.limit(Limit::QuicCrypto),
            quic::QuicProgress::NotQuic => {
                settle(out, ctx, &mut flow.conn, Named::Nothing);
                return false;
            }
            _ => {}
        }
        if let Some(hello) = st.client_hello() {
            let mut e = Emitter {
                matcher,
                cfg: *cfg,
                out,
                c: app_counters,
                names: Some(&mut **names),
            };
            let n = match tls::scan_handshake(hello) {
                tls::TlsScan::Hello(h) => e.hello(ctx, Protocol::Quic, &h, &mut flow.conn),
                _ => {
                    e.c.decode_error(Layer::Quic);
                    Named::Nothing
                }
            };
            settle(out, ctx, &mut flow.conn, n);
            q.done = true;
            q.hellos += 1;
            q.state = None;
        }
        true
    }

    /// Take the observations produced so far (held datagrams first run).
    pub fn take(&mut self) -> Vec<Obs> {
        self.flush_held();
        std::mem::take(&mut self.out)
    }
}

/// A SYN opening a connection under our eyes starts its [`ConnTrack`]; the
/// handshake's completion (SYN-ACK back, then the client's ACK) checks the
/// port signatures. Returns whether this segment is the client's.
fn track_handshake(
    conn: &mut ConnTrack,
    created: bool,
    dir: usize,
    tcp: &decode::TcpInfo,
    ctx: &Ctx<'_>,
    matcher: &Matcher,
    out: &mut Vec<Obs>,
) -> bool {
    if tcp.flags & (decode::TCP_SYN | decode::TCP_ACK) == decode::TCP_SYN && created {
        *conn = ConnTrack {
            client: dir as u8,
            pending: true,
            opened: true,
            ..ConnTrack::default()
        };
        push_in_place(out, || Obs::at(ctx, Protocol::Ip, ObsKind::Open(None)));
    }
    let from_client = usize::from(conn.client) == dir;
    if conn.opened && !conn.port_checked {
        let syn_ack = decode::TCP_SYN | decode::TCP_ACK;
        if !from_client && tcp.flags & syn_ack == syn_ack {
            conn.answered = true;
        } else if from_client
            && conn.answered
            && tcp.flags & (decode::TCP_ACK | decode::TCP_RST) == decode::TCP_ACK
        {
            // The handshake completed: a connection on a Kaspersky port.
            conn.port_checked = true;
            port_signature(matcher, out, ctx, true, from_client, conn);
        }
    }
    from_client
}

/// A connection the merger holds for address evidence is decided by the
/// first thing it named (the client's, or anything once a callback was
/// made), or as naming nothing once the client is done or it `ended`.
fn settle_tcp(
    conn: &mut ConnTrack,
    named: Option<Named>,
    from_client: bool,
    ended: bool,
    ctx: &Ctx<'_>,
    out: &mut Vec<Obs>,
) {
    if !conn.pending {
        return;
    }
    let decided = match named {
        Some(_) if conn.called => Some(Named::Kaspersky),
        Some(n) if from_client => Some(n),
        _ if ended => Some(Named::Nothing),
        _ => None,
    };
    if decided.is_some() {
        conn.pending = false;
    }
    // A non-Kaspersky name was already reported (and settles the merger's hold).
    if let Some(n) = decided.filter(|n| *n != Named::Other || !conn.named_other) {
        let done = conn.port_checked;
        push_in_place(out, || {
            let mut o = Obs::at(ctx, Protocol::Ip, ObsKind::Decided(n, done));
            o.client_first(from_client);
            o
        });
    }
}

/// A completed connection on a port signature: a callback (evidence
/// `port`) of the end that runs Kaspersky software: the client of a KSC
/// server port, the responder on a Network Agent port. `from_client`: the
/// packet is the client's.
fn port_signature(
    matcher: &Matcher,
    out: &mut Vec<Obs>,
    ctx: &Ctx<'_>,
    tcp: bool,
    from_client: bool,
    conn: &mut ConnTrack,
) {
    let server_port = if from_client { ctx.dport } else { ctx.sport };
    let listener = if from_client {
        ctx.pkt.dst
    } else {
        ctx.pkt.src
    };
    let Some((hit, side)) = matcher.port(tcp, server_port) else {
        return;
    };
    let mut o = Obs::at(ctx, Protocol::Ip, ObsKind::Name);
    // The callback is the Kaspersky end's: the client of a server port, the
    // listener of an agent port.
    let device_sent = (side == crate::signatures::PortSide::Server) == from_client;
    if !device_sent {
        o.reverse();
    }
    o.name = format!("{listener}:{server_port}").into();
    o.hit = Some(hit);
    o.evidence = Evidence::Port;
    o.repeat = conn.called;
    conn.called = true;
    out.push(o);
}

/// Settle a pending connection (once) from its client's packet.
fn settle(out: &mut Vec<Obs>, ctx: &Ctx<'_>, conn: &mut ConnTrack, n: Named) {
    if conn.pending {
        conn.pending = false;
        let n = if conn.called { Named::Kaspersky } else { n };
        push_in_place(out, || {
            Obs::at(ctx, Protocol::Ip, ObsKind::Decided(n, false))
        });
    }
}

impl Obs {
    /// An observation of this packet; optional fields empty (no allocation).
    fn at(ctx: &Ctx<'_>, protocol: Protocol, kind: ObsKind) -> Self {
        let (src, dst) = ((ctx.pkt.src, ctx.sport), (ctx.pkt.dst, ctx.dport));
        Head {
            src_mac: ctx.pkt.src_mac,
            tunnel: ctx.pkt.tunnel.boxed(),
            ..Head::of(ctx.meta, ctx.ts, ctx.l4, protocol, src, dst)
        }
        .obs(kind)
    }

    /// Orient a connection observation client first (the packet may be the
    /// server's: a reset, a FIN).
    fn client_first(&mut self, from_client: bool) {
        if !from_client {
            self.reverse();
        }
    }
}

/// Builds observations from parsed application data.
struct Emitter<'a> {
    matcher: &'a Matcher,
    cfg: WorkerConfig,
    out: &'a mut Vec<Obs>,
    c: &'a mut Counters,
    /// The worker's name buffers, lent out by [`Emitter::with_names`].
    names: Option<&'a mut NameBufs>,
}

/// Two name buffers a worker reuses for every message (a name is read or
/// normalised into [`name::MAX_NAME_LEN`] bytes: clearing fresh buffers per
/// DNS message cost more than reading the names).
struct NameBufs {
    a: [u8; name::MAX_NAME_LEN],
    b: [u8; name::MAX_NAME_LEN],
}

impl NameBufs {
    fn new() -> Self {
        NameBufs {
            a: [0; name::MAX_NAME_LEN],
            b: [0; name::MAX_NAME_LEN],
        }
    }
}

impl<'a> Emitter<'a> {
    /// Run `f` with the worker's name buffers (fresh ones if they are
    /// already lent out, which no caller does).
    fn with_names<R>(&mut self, f: impl FnOnce(&mut Self, &mut NameBufs) -> R) -> R {
        match self.names.take() {
            Some(n) => {
                let r = f(self, &mut *n);
                self.names = Some(n);
                r
            }
            None => f(self, &mut NameBufs::new()),
        }
    }

    /// A name the client sent; returns what it says about the connection.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        ctx: &Ctx<'_>,
        protocol: Protocol,
        norm: &[u8],
        shown: Option<&[u8]>,
        alpn: Option<&[u8]>,
        ech: Option<bool>,
        conn: Option<&mut ConnTrack>,
    ) -> Named {
        let hit = if norm.is_empty() {
            None
        } else {
            self.matcher.lookup(norm)
        };
        let named = match hit {
            Some(_) => Named::Kaspersky,
            None if norm.is_empty() || is_ip_literal(norm) => Named::Nothing,
            None => Named::Other,
        };
        let mut repeat = false;
        if let Some(conn) = conn {
            match named {
                Named::Kaspersky => {
                    repeat = conn.called;
                    conn.called = true;
                }
                Named::Other if !conn.named_other => {
                    // The destination serves another site: shared.
                    conn.named_other = true;
                    push_in_place(self.out, || {
                        let mut o =
                            Obs::at(ctx, Protocol::Ip, ObsKind::Decided(Named::Other, false));
                        o.protocol = protocol;
                        o
                    });
                }
                _ => {}
            }
        }
        if hit.is_none() && !self.cfg.all_names {
            return named;
        }
        push_in_place(self.out, || {
            let mut o = Obs::at(ctx, protocol, ObsKind::Name);
            o.name.set_from_bytes(norm);
            o.hit = hit;
            o.repeat = repeat;
            o.shown = shown.map(name::to_string);
            o.alpn = alpn.map(|a| String::from_utf8_lossy(a).into_owned());
            o.ech = ech;
            o
        });
        named
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
            self.dns_response(ctx, msg, h.id);
            return;
        }
        let before = self.out.len();
        let walk = self.with_names(|e, nb| {
            dns::questions_in(msg, &mut nb.a, |q| {
                if q.name.is_empty() {
                    e.push(ctx, Protocol::Dns, b"", Some(b"<root>"), None, None, None);
                } else {
                    e.push(ctx, Protocol::Dns, q.name, None, None, None, None);
                }
            })
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

    /// A response: to a matching question, addresses for attribution (and
    /// the client's callback on a one-way mirror); to any other question,
    /// the addresses it maps to other names. Either also tells the merger
    /// who answers DNS (resolvers).
    fn dns_response(&mut self, ctx: &Ctx<'_>, msg: &[u8], id: u16) {
        self.with_names(|e, nb| e.dns_response_in(ctx, msg, id, &mut nb.a));
    }

    fn dns_response_in(
        &mut self,
        ctx: &Ctx<'_>,
        msg: &[u8],
        id: u16,
        buf: &mut [u8; name::MAX_NAME_LEN],
    ) {
        let mut first: Option<(Hit, Text)> = None;
        let mut questions = 0usize;
        let matcher = self.matcher;
        let Some(walk) = dns::questions_in(msg, buf, |q| {
            questions += 1;
            if first.is_none() {
                if let Some(hit) = matcher.lookup(q.name) {
                    first = Some((hit, Text::from_bytes(q.name)));
                }
            }
        }) else {
            return;
        };
        if let Some((hit, qname)) = first {
            push_in_place(self.out, || {
                let mut o = Obs::at(ctx, Protocol::Dns, ObsKind::Resolved(Resolved::default()));
                o.name = qname;
                o.hit = Some(hit);
                o.dns_id = id;
                o
            });
            // The addresses go straight into the observation: a list built
            // apart and then moved in stalled on its own narrower stores.
            if let Some(ObsKind::Resolved(addrs)) = self.out.last_mut().map(|o| &mut o.kind) {
                if !dns::resolved_addrs(msg, &walk, buf, |a, t| addrs.push(a, t)) {
                    // HTTPS/SVCB hints, or records only hickory-proto reads.
                    *addrs = Resolved::default();
                    for r in dns::answers(msg) {
                        if let dns::Resolution::Addr { addr, ttl, .. } = r {
                            addrs.push(addr, ttl);
                        }
                    }
                }
            }
            return;
        }
        if questions == 0 {
            return;
        }
        // mDNS and LLMNR answers are hosts naming themselves, not resolvers.
        if ctx.sport == 5353 || ctx.sport == 5355 {
            return;
        }
        let mut list = AddrList::default();
        let mut n = 0usize;
        let mut sent = false;
        dns::answer_addrs_after(msg, &walk, |addr, ttl| {
            if let Some(slot) = list.addrs.get_mut(n) {
                *slot = Some((addr, ttl));
                n += 1;
            }
            if n == ANSWERS_PER_OBS {
                push_in_place(self.out, || answers_obs(ctx, list, id));
                list = AddrList::default();
                n = 0;
                sent = true;
            }
        });
        if n > 0 || (!sent && ctx.sport == 53) {
            push_in_place(self.out, || answers_obs(ctx, list, id));
        }
    }

    fn hello(
        &mut self,
        ctx: &Ctx<'_>,
        protocol: Protocol,
        h: &tls::ClientHello<'_>,
        conn: &mut ConnTrack,
    ) -> Named {
        let Some(sni) = h.sni else {
            return if conn.called {
                Named::Kaspersky
            } else {
                Named::Nothing
            };
        };
        self.with_names(|e, nb| {
            let Some(n) = name::normalise(sni, &mut nb.a) else {
                return Named::Nothing;
            };
            let norm = nb.a.get(..n).unwrap_or(&[]);
            e.push(ctx, protocol, norm, None, h.alpn, Some(h.ech), Some(conn))
        })
    }

    fn http(&mut self, ctx: &Ctx<'_>, r: &http::HttpRequest<'_>, conn: &mut ConnTrack) -> Named {
        self.with_names(|e, nb| e.http_in(ctx, r, conn, nb))
    }

    fn http_in(
        &mut self,
        ctx: &Ctx<'_>,
        r: &http::HttpRequest<'_>,
        conn: &mut ConnTrack,
        nb: &mut NameBufs,
    ) -> Named {
        let hostport = r.host.or(r.authority).unwrap_or_default();
        let shown_n = hostport.len().min(nb.b.len());
        for (d, s) in nb.b.iter_mut().zip(hostport) {
            *d = s.to_ascii_lowercase();
        }
        let shown = nb.b.get(..shown_n).unwrap_or(&[]);
        let buf = &mut nb.a;
        let n = http::host_for_match(hostport)
            .and_then(|h| name::normalise(h, buf))
            .unwrap_or(0);
        let norm = buf.get(..n).unwrap_or(&[]);
        let hit = if norm.is_empty() {
            None
        } else {
            self.matcher.lookup(norm)
        };
        if hit.is_none() && r.method != b"CONNECT" {
            // No Kaspersky name: the update protocol may still show in the
            // path (`[[http_path]]`) or the User-Agent (`[[user_agent]]`).
            let content = kupdate::request_path(r.target)
                .and_then(|p| self.matcher.http_path(p))
                .or_else(|| r.user_agent.and_then(|ua| self.matcher.user_agent(ua)));
            if let Some(hit) = content {
                let label = if norm.is_empty() {
                    ctx.pkt.dst.to_string().into()
                } else {
                    Text::from_bytes(norm)
                };
                let mut o = Obs::at(ctx, Protocol::Http, ObsKind::Name);
                o.name = label;
                o.hit = Some(hit);
                o.evidence = Evidence::Content;
                o.repeat = conn.called;
                conn.called = true;
                self.out.push(o);
                return Named::Kaspersky;
            }
        }
        if norm.is_empty() {
            return if conn.called {
                Named::Kaspersky
            } else {
                Named::Nothing
            };
        }
        self.push(
            ctx,
            Protocol::Http,
            norm,
            (shown != norm).then_some(shown),
            None,
            None,
            Some(conn),
        )
    }

    /// The first bytes of an HTTP response body: with update magic
    /// (`[[body_magic]]`) the callback is the client's, the packet's
    /// destination; the name is the server's address. True on a match.
    fn update_magic(&mut self, ctx: &Ctx<'_>, head: &[u8], conn: &mut ConnTrack) -> bool {
        let Some(hit) = self.matcher.body_magic(head) else {
            return false;
        };
        let mut o = Obs::at(ctx, Protocol::Http, ObsKind::Name);
        o.name = ctx.pkt.src.to_string().into();
        o.hit = Some(hit);
        o.evidence = Evidence::Content;
        o.repeat = conn.called;
        conn.called = true;
        o.reverse();
        self.out.push(o);
        true
    }
}

impl Emitter<'_> {
    fn ident(&mut self, ctx: &Ctx<'_>, id: Ident) {
        self.out
            .push(Obs::at(ctx, Protocol::Dns, ObsKind::Identity(Box::new(id))));
    }

    /// DHCPv4: a client's request (its MAC, name, vendor class) or a
    /// server's ACK (the lease: MAC <-> address, bound on the local segment).
    fn dhcp4(&mut self, ctx: &Ctx<'_>, payload: &[u8]) {
        let Some(d) = ident::dhcp4(payload) else {
            return;
        };
        let text = |v: Option<&[u8]>| v.and_then(ident::printable);
        let unspecified = |a: Ipv4Addr| (!a.is_unspecified()).then_some(IpAddr::V4(a));
        let (addr, binding) = match (d.op, d.msg_type) {
            (2, 5) => (unspecified(d.yiaddr).or(unspecified(d.ciaddr)), true),
            (1, _) => (unspecified(d.ciaddr), false),
            _ => return,
        };
        self.ident(
            ctx,
            Ident {
                mac: Some(d.chaddr),
                addr,
                binding: binding && addr.is_some(),
                hostname: text(d.hostname),
                fqdn: d.fqdn.and_then(|f| f.text()),
                vendor_class: text(d.vendor_class),
                source: "dhcp",
            },
        );
    }

    /// DHCPv6 from a client: the MAC in its DUID is bound to the address it
    /// sends from (link-local, on this segment); option 39 names it.
    fn dhcp6(&mut self, ctx: &Ctx<'_>, payload: &[u8]) {
        let Some(d) = ident::dhcp6(payload) else {
            return;
        };
        let fqdn = d.fqdn.and_then(|w| ident::Fqdn::Wire(w).text());
        if d.mac.is_none() && fqdn.is_none() {
            return;
        }
        self.ident(
            ctx,
            Ident {
                mac: d.mac,
                addr: Some(ctx.pkt.src),
                binding: d.mac.is_some(),
                hostname: fqdn
                    .as_deref()
                    .and_then(|f| f.split('.').next())
                    .map(str::to_string),
                fqdn,
                vendor_class: None,
                source: "dhcpv6",
            },
        );
    }

    /// A NetBIOS registration or answer for a unique name.
    fn netbios(&mut self, ctx: &Ctx<'_>, payload: &[u8]) {
        let Some(n) = ident::netbios(payload) else {
            return;
        };
        // Workstation (0x00) and server (0x20) names name the machine.
        if n.suffix != 0 && n.suffix != 0x20 {
            return;
        }
        self.ident(
            ctx,
            Ident {
                mac: None,
                addr: Some(IpAddr::V4(n.addr)),
                binding: false,
                hostname: Some(n.name),
                fqdn: None,
                vendor_class: None,
                source: "netbios",
            },
        );
    }

    /// An mDNS or LLMNR response that gives the responder's own address a
    /// name: `<name>.local` (mDNS) or `<name>` (LLMNR).
    fn self_announcement(&mut self, ctx: &Ctx<'_>, payload: &[u8]) {
        let Some(h) = dns::header(payload) else {
            return;
        };
        if !h.is_response() {
            return;
        }
        let me = ctx.pkt.src;
        let mut found: Option<String> = None;
        dns::answer_owned_addrs(payload, |owner, addr, _| {
            if found.is_none() && addr == me && !owner.is_empty() {
                let o = owner.strip_suffix(b".local").unwrap_or(owner);
                found = ident::printable(o);
            }
        });
        let Some(name) = found else { return };
        let source = if ctx.sport == 5353 { "mdns" } else { "llmnr" };
        self.ident(
            ctx,
            Ident {
                mac: None,
                addr: Some(me),
                binding: false,
                hostname: Some(name),
                fqdn: None,
                vendor_class: None,
                source,
            },
        );
    }
}

fn answers_obs(ctx: &Ctx<'_>, list: AddrList, id: u16) -> Obs {
    let mut o = Obs::at(ctx, Protocol::Dns, ObsKind::Answers(list));
    o.dns_id = id;
    o
}

/// A normalised host that is an IPv4 or IPv6 literal: it names no site.
/// Only hex digits, dots and colons can make one: any other byte (a
/// name's top-level label, usually its last byte) answers without the
/// address parser, which cost ~200 instructions per name.
fn is_ip_literal(norm: &[u8]) -> bool {
    let literal_byte = |b: &u8| b.is_ascii_hexdigit() || *b == b'.' || *b == b':';
    if !norm.last().is_some_and(literal_byte) || !norm.iter().all(literal_byte) {
        return false;
    }
    std::str::from_utf8(norm).is_ok_and(|s| s.parse::<std::net::IpAddr>().is_ok())
}

#[cfg(test)]
mod literal_tests {
    use super::is_ip_literal;

    #[test]
    fn ip_literal_matches_the_address_parser() {
        let cases = [
            "1.2.3.4",
            "10.0.0.255",
            "256.1.1.1",
            "1.2.3",
            "::1",
            "::",
            "fe80::1",
            "::ffff:1.2.3.4",
            "2001:db8::abcd",
            "2001:db8:::1",
            "cafe.de",
            "dead.beef",
            "abc",
            "a.b.c.d",
            "1.2.3.4.example.com",
            "kaspersky.com",
            "deadbeef",
            "",
            ".",
            ":",
            "1.2.3.4:443",
            "[::1]",
            "fe80::1%eth0",
        ];
        for c in cases {
            let want = c.parse::<std::net::IpAddr>().is_ok();
            assert_eq!(is_ip_literal(c.as_bytes()), want, "{c}");
        }
        // Every two-byte string over a mixed alphabet agrees too.
        let alphabet = b"09af:.gz[]%";
        for &a in alphabet {
            for &b in alphabet {
                let s = [a, b, b':', a, b'.', b];
                let want = std::str::from_utf8(&s)
                    .unwrap()
                    .parse::<std::net::IpAddr>()
                    .is_ok();
                assert_eq!(is_ip_literal(&s), want, "{:?}", std::str::from_utf8(&s));
            }
        }
    }
}
