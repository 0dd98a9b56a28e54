//! Flow state: a bounded table of TCP/UDP flows with idle expiry in packet
//! time, and per-direction TCP stream reassembly of just the prefix that can
//! carry a name (DNS-over-TCP messages, a TLS ClientHello, HTTP request
//! heads, through SOCKS4/5 and HTTP CONNECT proxy handshakes) or the update
//! protocol's magic (the first bytes of HTTP response bodies). This module
//! tracks connections and reassembles; what the bytes mean is asked of each
//! protocol's stream module: `proto::dns::tcp` (length-prefixed messages),
//! `proto::tls` (ClientHello records, a retried hello), `proto::socks`
//! (handshakes), `proto::http::stream` (heads, bodies stepped over,
//! response magic). In-order data is parsed in place from the packet
//! (zero-copy); only a message split across segments is buffered, up to
//! [`MAX_STREAM_BYTES`]. Once a direction is classified as carrying nothing
//! more of interest it is `Done`, and its later segments cost one hash
//! lookup. The pipeline worker owns one [`FlowTable`] and receives parsed
//! application units through the `emit` callback.

use crate::decode::{TcpInfo, TCP_FIN, TCP_RST, TCP_SYN};
use crate::proto::{dns, http, quic, socks, tls};
use crate::stats::{Counters, Layer, Limit};
use crate::table::{ip_words, Hashed, KeyBits, PairHash, PairKey};
use std::net::IpAddr;

/// Flows per worker. Only connections that can still carry a name are
/// kept (see [`FlowTable::tcp`]), in two generations of `MAX_FLOWS / 2`
/// each: when the current one is full the older one is dropped in one pass
/// (no sort, no allocation: both tables are allocated once, each at most
/// half full so hashbrown cleans its tombstones in place and never grows)
/// and a flow used again moves back into the current one, so a flow in use
/// survives at least `MAX_FLOWS / 2` new ones. Unfinished flows dropped
/// that way are counted in `limit_drops{limit="max_flows"}`.
pub const MAX_FLOWS: usize = 57_344;
/// Flows per generation.
const GEN_FLOWS: usize = MAX_FLOWS / 2;
/// Marks left by finished TCP connections (direct-mapped, 4 bytes each):
/// their later segments cost one probe here and are not classified again.
const MARKS: usize = 1 << 16;
/// Bits of the filter of keys that may have a flow (128 KiB): a segment
/// whose bit is clear has no flow, so it costs no table probe.
const PRESENT_BITS: usize = 1 << 20;
/// Bytes buffered per direction while a message is incomplete (a post-quantum
/// ClientHello is ~2 KB; 16 KiB also covers TLS's 16 KiB record limit).
pub const MAX_STREAM_BYTES: usize = 16 * 1024;
/// Out-of-order segments held per direction.
pub const MAX_PENDING_SEGMENTS: usize = 32;
/// Application messages parsed from one chunk of stream data.
pub const MAX_MESSAGES_PER_CHUNK: usize = 256;
/// HTTP requests parsed per direction (keep-alive update sessions are long).
pub const MAX_HTTP_REQUESTS_PER_FLOW: u32 = 10_000;
/// TCP flows idle this long (packet time) are forgotten.
pub const TCP_IDLE_NS: u64 = 600_000_000_000;
/// UDP flows idle this long (packet time) are forgotten.
pub const UDP_IDLE_NS: u64 = 120_000_000_000;
/// How often (packet time) the table is swept for idle flows.
const SWEEP_EVERY_NS: u64 = 5_000_000_000;

/// A unit handed to the worker.
pub enum App<'a> {
    /// One complete DNS message (from TCP; UDP messages do not pass here).
    Dns(&'a [u8]),
    Tls(tls::ClientHello<'a>),
    Http(http::HttpRequest<'a>),
    /// The first bytes (up to `signatures::MAX_BODY_MAGIC`) of an HTTP
    /// response body, for `[[body_magic]]` signatures.
    Body(&'a [u8]),
}

/// Symmetric flow key: endpoints in canonical order. Addresses are held as
/// two 64-bit words (IPv4 in the low word) so that ordering, hashing and
/// comparing are a few word operations.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FlowKey {
    a: [u64; 2],
    b: [u64; 2],
    pa: u16,
    pb: u16,
    proto: u8,
    v6: bool,
}

impl PairKey for FlowKey {
    #[inline]
    fn parts(&self) -> ([u64; 2], [u64; 2], u64) {
        let tail = u64::from(self.pa)
            | u64::from(self.pb) << 16
            | u64::from(self.proto) << 32
            | u64::from(self.v6) << 40;
        (self.a, self.b, tail)
    }
}

impl FlowKey {
    /// Key and the direction of this packet (0 = a->b).
    #[inline]
    pub fn new(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, proto: u8) -> (Self, usize) {
        let v6 = src.is_ipv6();
        let (s, d) = (ip_words(src), ip_words(dst));
        if (s, sport) <= (d, dport) {
            (
                FlowKey {
                    a: s,
                    b: d,
                    pa: sport,
                    pb: dport,
                    proto,
                    v6,
                },
                0,
            )
        } else {
            (
                FlowKey {
                    a: d,
                    b: s,
                    pa: dport,
                    pb: sport,
                    proto,
                    v6,
                },
                1,
            )
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    New,
    Dns,
    Tls,
    /// After a ClientHello: a second one may follow a HelloRetryRequest.
    TlsNext,
    Http,
    /// Server side of HTTP: response heads, and the first bytes of each body.
    HttpResp,
    Socks5Greeting,
    Socks5Request,
    Socks4,
    Done,
}

/// ClientHellos parsed per direction (the first, and one after a HelloRetryRequest).
pub const MAX_TLS_HELLOS: u8 = 2;
/// Proxy handshakes (SOCKS4/5, HTTP CONNECT) unwrapped per direction (a proxy chain of two).
pub const MAX_SOCKS_LAYERS: u8 = 2;
pub use crate::proto::socks::MAX_SOCKS4_FIELD;

/// One direction of a TCP connection.
#[derive(Debug)]
pub struct Dir {
    state: State,
    started: bool,
    next_seq: u32,
    /// Bytes of the in-order stream still to discard (HTTP bodies, huge DNS messages).
    skip: u64,
    /// Held bytes, only while a message is incomplete or segments are out of order.
    bufs: Option<Box<Bufs>>,
    requests: u32,
    hellos: u8,
    socks: u8,
    /// This direction sent FIN.
    pub fin: bool,
}

impl Default for Dir {
    fn default() -> Self {
        Dir {
            state: State::New,
            started: false,
            next_seq: 0,
            skip: 0,
            bufs: None,
            requests: 0,
            hellos: 0,
            socks: 0,
            fin: false,
        }
    }
}

/// Bytes a direction holds: the unparsed tail of the in-order stream and
/// segments that arrived ahead of a hole (boxed: most flows never need it).
#[derive(Debug, Default)]
struct Bufs {
    buf: Vec<u8>,
    pending: Vec<(u32, Vec<u8>)>,
}

impl Dir {
    /// Classified as carrying nothing more of interest.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }
    fn buf_len(&self) -> usize {
        self.bufs.as_ref().map_or(0, |b| b.buf.len())
    }
    fn pending_len(&self) -> usize {
        self.bufs.as_ref().map_or(0, |b| b.pending.len())
    }
    fn bufs(&mut self) -> &mut Bufs {
        self.bufs.get_or_insert_with(Box::default)
    }
    /// Free the buffers once nothing is held.
    fn tidy(&mut self) {
        if self
            .bufs
            .as_ref()
            .is_some_and(|b| b.buf.is_empty() && b.pending.is_empty())
        {
            self.bufs = None;
        }
    }
}

/// What the pipeline remembers of a connection for address evidence and
/// for "one connection, one callback" (a few bits; no buffers).
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnTrack {
    /// Direction of the client (the SYN's sender, the first datagram's).
    pub client: u8,
    /// Opened under our eyes and not yet settled: the merger holds a
    /// possible address callback until the client names something or not.
    pub pending: bool,
    /// A callback was already made on this connection: later matches on it
    /// are logged as repeats, not counted again.
    pub called: bool,
    /// The connection named a non-Kaspersky site (reported once).
    pub named_other: bool,
    /// Opened under our eyes (SYN or first datagram seen): `client` is known.
    pub opened: bool,
    /// The server answered (SYN-ACK, or a datagram back).
    pub answered: bool,
    /// Port signatures were checked on the completed connection.
    pub port_checked: bool,
}

/// Per-flow state.
#[derive(Debug, Default)]
pub struct Flow {
    pub last_ts: u64,
    pub conn: ConnTrack,
    pub dirs: [Dir; 2],
    /// QUIC state, only for UDP flows that carried an Initial.
    pub quic: Option<Box<quic::QuicFlow>>,
    pub is_tcp: bool,
}

impl Flow {
    /// Nothing more to learn from this flow: both TCP directions classified and
    /// finished, or a UDP flow with no QUIC hello pending. Such flows are the
    /// first evicted when the table is full (re-creating one costs a lookup and
    /// a look at its next segment).
    pub fn finished(&self) -> bool {
        if self.is_tcp {
            self.dirs.iter().all(|d| d.state == State::Done)
        } else {
            self.quic.as_ref().is_none_or(|q| q.done)
        }
    }

    /// Both directions sent FIN (or one sent RST): the connection is over.
    pub fn closed(&self) -> bool {
        self.dirs.iter().all(|d| d.fin && d.pending_len() == 0)
    }
}

/// Reusable scratch space for parsers.
#[derive(Default)]
pub struct Scratch {
    pub tls: Vec<u8>,
}

/// A flow key with its hash, computed once per packet with the table's
/// random seed (the keys are chosen by whoever sends packets).
type HKey = Hashed<FlowKey>;

/// A generation: flows in a dense `Vec` behind a `u32` index (see
/// [`crate::table::Gen`]): a SYN flood appends flows instead of writing a
/// random line of a multi-MiB table per SYN.
type Gen = crate::table::Gen<FlowKey, Flow>;

/// Bounded flow table: two generations (see [`MAX_FLOWS`]) and the marks of
/// finished connections.
pub struct FlowTable {
    cur: Gen,
    old: Gen,
    seed: PairHash,
    marks: Box<[u32]>,
    /// Set for every key inserted; rebuilt from the survivors at each
    /// rotation (stale bits only cost a probe).
    present: KeyBits,
    last_sweep: u64,
}

impl Default for FlowTable {
    fn default() -> Self {
        let seed = PairHash::new();
        // Sized once: a generation's flows, and an index for twice as many
        // (see MAX_FLOWS); pages are only touched as flows arrive.
        let gen = || Gen::with_capacity(GEN_FLOWS, 2 * GEN_FLOWS);
        FlowTable {
            cur: gen(),
            old: gen(),
            seed,
            marks: vec![0u32; MARKS].into_boxed_slice(),
            present: KeyBits::with_bits(PRESENT_BITS),
            last_sweep: 0,
        }
    }
}

/// Result of looking up a flow for a packet.
pub struct Lookup<'t> {
    pub flow: &'t mut Flow,
    pub dir: usize,
    pub created: bool,
}

impl Flow {
    fn new(ts: u64, tcp: bool) -> Self {
        Flow {
            last_ts: ts,
            is_tcp: tcp,
            ..Flow::default()
        }
    }

    /// A TCP connection with nothing more to learn and no decision pending:
    /// it can leave the table (a mark remains).
    fn spent(&self) -> bool {
        self.is_tcp && !self.conn.pending && self.finished()
    }
}

impl FlowTable {
    pub fn len(&self) -> usize {
        self.cur.len() + self.old.len()
    }
    pub fn is_empty(&self) -> bool {
        self.cur.is_empty() && self.old.is_empty()
    }

    #[inline]
    fn key(&self, k: FlowKey) -> HKey {
        Hashed::with_hash(self.seed.key(&k), k)
    }

    /// Slot and tag of a key's mark.
    #[inline]
    fn mark_of(h: u64) -> (usize, u32) {
        ((h >> 7) as usize & (MARKS - 1), (h >> 32) as u32 | 1)
    }

    /// Whether a lookup at `ts` would sweep idle flows or, with `more`
    /// flows created first, turn a generation over: held packets
    /// (`Worker`'s QUIC Initials) must go through before that.
    pub fn upkeep_due(&self, ts: u64, more: usize) -> bool {
        ts >= self.next_sweep() || self.cur.len() + more >= GEN_FLOWS
    }

    /// Packet time from which a lookup sweeps idle flows.
    pub fn next_sweep(&self) -> u64 {
        self.last_sweep.saturating_add(SWEEP_EVERY_NS)
    }

    /// Periodic idle sweep, and rotation when the current generation is full.
    #[inline]
    fn upkeep(&mut self, ts: u64, c: &mut Counters) {
        if ts >= self.next_sweep() {
            self.sweep(ts, c);
        }
        if self.cur.len() >= GEN_FLOWS {
            self.rotate(c);
        }
    }

    /// Find or create the flow for a packet (UDP; tests). Always creates.
    pub fn get(
        &mut self,
        key: FlowKey,
        dir: usize,
        ts: u64,
        tcp: bool,
        c: &mut Counters,
    ) -> Option<Lookup<'_>> {
        self.upkeep(ts, c);
        let hk = self.key(key);
        let mut created = false;
        let flow = match self.cur.pos(&hk) {
            Some(i) => self.cur.value_mut(i)?,
            None => match self.old.remove(&hk) {
                Some(f) => self.cur.push(hk, f)?,
                None => {
                    created = true;
                    self.present.set(hk.hash());
                    self.cur.push_with(hk, || Flow::new(ts, tcp))?
                }
            },
        };
        flow.last_ts = flow.last_ts.max(ts);
        Some(Lookup { flow, dir, created })
    }

    /// The flow of `key`, if any, without touching the table (no upkeep,
    /// no move between generations).
    pub fn peek(&self, key: FlowKey) -> Option<&Flow> {
        let hk = self.key(key);
        if !self.present.maybe(hk.hash()) {
            return None;
        }
        match self.cur.pos(&hk) {
            Some(i) => self.cur.value(i),
            None => self.old.pos(&hk).and_then(|i| self.old.value(i)),
        }
    }

    /// The flow of a TCP segment, or `None` when the segment can teach
    /// nothing. State is kept only for connections that can still carry a
    /// name: a segment of an unknown connection creates a flow only when it
    /// is a SYN or its payload can start a message (DNS over TCP, TLS
    /// record, HTTP request/response, SOCKS; see [`may_start`]). A pure ACK
    /// (no payload, no SYN/FIN/RST) never touches the table. A connection
    /// with both directions finished and no decision pending is removed at
    /// its next segment and leaves a 4-byte mark, so its later segments are
    /// ignored as before without being classified again.
    pub fn tcp(
        &mut self,
        key: FlowKey,
        dir: usize,
        ts: u64,
        tcp: &TcpInfo,
        payload: &[u8],
        c: &mut Counters,
    ) -> Option<Lookup<'_>> {
        let syn = tcp.flags & TCP_SYN != 0;
        if payload.is_empty() && tcp.flags & (TCP_SYN | TCP_FIN | TCP_RST) == 0 {
            return None;
        }
        self.upkeep(ts, c);
        let hk = self.key(key);
        let (slot, tag) = Self::mark_of(hk.hash());
        let absent = !self.present.maybe(hk.hash());
        if !syn && absent {
            // No flow: the same decision as a miss below, without the probes.
            if payload.is_empty() || !may_start(payload, tcp) || self.marks.get(slot) == Some(&tag)
            {
                return None;
            }
        }
        let mut created = false;
        let flow = match self.cur.pos(&hk) {
            Some(i) => {
                let spent = self.cur.value_mut(i).is_some_and(|f| f.spent());
                if spent && !syn {
                    self.cur.remove_at(i);
                    set_mark(&mut self.marks, slot, tag);
                    return None;
                }
                let f = self.cur.value_mut(i)?;
                if spent {
                    // The tuple reused by a new connection.
                    *f = Flow::new(ts, true);
                    created = true;
                }
                f
            }
            // A clear bit also answers for the older generation (a new
            // connection's SYN: one probe fewer, the one that misses cache).
            None => match (!absent).then(|| self.old.remove(&hk)).flatten() {
                Some(f) if !f.spent() => self.cur.push(hk, f)?,
                found => {
                    if found.is_some() && !syn {
                        set_mark(&mut self.marks, slot, tag);
                        return None;
                    }
                    if !syn {
                        if payload.is_empty()
                            || !may_start(payload, tcp)
                            || self.marks.get(slot) == Some(&tag)
                        {
                            return None;
                        }
                    } else if let Some(m) = self.marks.get_mut(slot).filter(|m| **m == tag) {
                        *m = 0;
                    }
                    created = true;
                    self.present.set(hk.hash());
                    self.cur.push_with(hk, || Flow::new(ts, true))?
                }
            },
        };
        flow.last_ts = flow.last_ts.max(ts);
        Some(Lookup { flow, dir, created })
    }

    /// The current generation is full: drop the older one in one pass
    /// (its allocation is reused) and make the current one the older.
    /// Unfinished flows dropped are counted as limit drops.
    fn rotate(&mut self, c: &mut Counters) {
        c.flows_evicted += self.old.len() as u64;
        let dropped = self.old.clear_counting(|f| !f.finished());
        c.limit_n(Limit::Flows, dropped as u64);
        std::mem::swap(&mut self.cur, &mut self.old);
        self.present.clear();
        for (k, _) in self.old.iter() {
            self.present.set(k.hash());
        }
    }

    /// Forget flows idle past their timeout.
    pub fn sweep(&mut self, now: u64, c: &mut Counters) {
        self.last_sweep = now;
        let before = self.len();
        let fresh = |f: &mut Flow| {
            let idle = if f.is_tcp { TCP_IDLE_NS } else { UDP_IDLE_NS };
            now.saturating_sub(f.last_ts) < idle
        };
        self.cur.retain(fresh);
        self.old.retain(fresh);
        c.flows_expired += (before - self.len()) as u64;
    }

    pub fn remove(&mut self, key: &FlowKey) {
        let hk = self.key(*key);
        if self.cur.remove(&hk).is_none() {
            self.old.remove(&hk);
        }
    }
}

#[inline]
fn set_mark(marks: &mut [u32], slot: usize, tag: u32) {
    if let Some(m) = marks.get_mut(slot) {
        *m = tag;
    }
}

/// Whether a segment of an unknown connection may start something worth a
/// flow: anything [`classify`] does not rule out at once.
/// Same answer as `classify(..) != Some(State::Done)`, but a mid-stream
/// segment is ruled out from its first byte where it can be (most bulk data
/// costs a handful of comparisons, not the whole classifier).
#[inline]
pub fn may_start(b: &[u8], tcp: &TcpInfo) -> bool {
    if tcp.sport == 53 || tcp.dport == 53 {
        return true;
    }
    let dns = || dns::tcp::looks_like_dns(b) != Some(false);
    match b.first() {
        None => true,
        Some(4 | 5) => classify(b, tcp) != Some(State::Done),
        Some(0x16 | 0x80..=0xff) => tls::looks_like_tls(b) == Some(true) || dns(),
        Some(b'A'..=b'Z') => {
            http::looks_like_http(b) == Some(true)
                || http::looks_like_response(b) == Some(true)
                || dns()
        }
        Some(_) => dns(),
    }
}

/// Feed one TCP segment of one direction.
pub fn tcp_segment(
    d: &mut Dir,
    tcp: &TcpInfo,
    payload: &[u8],
    scratch: &mut Scratch,
    c: &mut Counters,
    emit: &mut dyn FnMut(App<'_>),
) {
    if d.state == State::Done {
        return;
    }
    if tcp.flags & TCP_RST != 0 {
        return;
    }
    let mut seq = tcp.seq;
    if tcp.flags & TCP_SYN != 0 {
        seq = seq.wrapping_add(1);
        if !d.started || d.buf_len() == 0 {
            d.next_seq = seq;
            d.started = true;
        }
    }
    if payload.is_empty() {
        return;
    }
    if !d.started {
        d.next_seq = seq;
        d.started = true;
    }
    let rel = seq.wrapping_sub(d.next_seq) as i32;
    if rel > 0 {
        // A hole before this segment: hold it (bounded) until the hole fills.
        let far =
            rel as usize + payload.len() > MAX_STREAM_BYTES + d.buf_len().max(MAX_STREAM_BYTES);
        if far || d.pending_len() >= MAX_PENDING_SEGMENTS {
            c.limit(Limit::StreamGapSegments);
            return;
        }
        let held = &mut d.bufs().pending;
        if !held
            .iter()
            .any(|(s, p)| *s == seq && p.len() >= payload.len())
        {
            held.push((seq, payload.to_vec()));
        }
        return;
    }
    let already = rel.unsigned_abs() as usize;
    if let Some(fresh) = payload.get(already..) {
        if !fresh.is_empty() {
            deliver(d, fresh, tcp, scratch, c, emit);
        }
    }
    // Drain held segments that now connect (bounded by the pending cap).
    for _ in 0..MAX_PENDING_SEGMENTS {
        if d.pending_len() == 0 || d.state == State::Done {
            break;
        }
        let next = d.next_seq;
        let held = &mut d.bufs().pending;
        let Some(i) = held.iter().position(|(s, p)| {
            let r = s.wrapping_sub(next) as i32;
            r <= 0 && (r.unsigned_abs() as usize) < p.len()
        }) else {
            // Drop segments entirely behind us.
            held.retain(|(s, p)| {
                let r = s.wrapping_sub(next) as i32;
                r > 0 || (r.unsigned_abs() as usize) < p.len()
            });
            break;
        };
        let (s, p) = held.swap_remove(i);
        let already = s.wrapping_sub(next).wrapping_neg() as usize;
        if let Some(fresh) = p.get(already..) {
            deliver(d, fresh, tcp, scratch, c, emit);
        }
    }
    if d.state == State::Done {
        d.bufs = None;
    } else {
        d.tidy();
    }
}

fn deliver(
    d: &mut Dir,
    data: &[u8],
    tcp: &TcpInfo,
    scratch: &mut Scratch,
    c: &mut Counters,
    emit: &mut dyn FnMut(App<'_>),
) {
    d.next_seq = d.next_seq.wrapping_add(data.len() as u32);
    let mut data = data;
    if d.skip > 0 {
        let n = (d.skip.min(data.len() as u64)) as usize;
        d.skip -= n as u64;
        data = data.get(n..).unwrap_or(&[]);
        if data.is_empty() {
            return;
        }
    }
    if d.buf_len() == 0 {
        // Zero-copy: parse straight from the packet.
        let consumed = run(d, data, tcp, scratch, c, emit);
        if d.state != State::Done {
            if let Some(rest) = data.get(consumed..) {
                if !rest.is_empty() {
                    if rest.len() > MAX_STREAM_BYTES {
                        limit_done(d, c);
                        return;
                    }
                    d.bufs().buf.extend_from_slice(rest);
                }
            }
        }
    } else {
        if d.buf_len() + data.len() > MAX_STREAM_BYTES {
            limit_done(d, c);
            return;
        }
        d.bufs().buf.extend_from_slice(data);
        let mut buf = std::mem::take(&mut d.bufs().buf);
        let consumed = run(d, &buf, tcp, scratch, c, emit);
        if d.state == State::Done {
            d.bufs = None;
        } else {
            buf.drain(..consumed.min(buf.len()));
            d.bufs().buf = buf;
            d.tidy();
        }
    }
}

fn limit_done(d: &mut Dir, c: &mut Counters) {
    c.limit(Limit::StreamBytes);
    d.state = State::Done;
    d.bufs = None;
}

/// Parse as much of `bytes` as possible; returns bytes consumed (including
/// skipped bodies). May change `d.state` and set `d.skip` for data beyond.
/// Each state hands the unparsed bytes to its protocol's stream module
/// (`proto::{dns::tcp, tls, socks, http::stream}`) and acts on the answer.
fn run(
    d: &mut Dir,
    bytes: &[u8],
    tcp: &TcpInfo,
    scratch: &mut Scratch,
    c: &mut Counters,
    emit: &mut dyn FnMut(App<'_>),
) -> usize {
    let mut off = 0usize;
    for _ in 0..MAX_MESSAGES_PER_CHUNK {
        let rest = bytes.get(off..).unwrap_or(&[]);
        if rest.is_empty() || d.state == State::Done {
            return off;
        }
        let step = match d.state {
            State::New => new_state(d, rest, tcp),
            State::Dns => dns_message(d, rest, c, emit),
            State::Tls => tls_hello(d, rest, scratch, emit),
            State::TlsNext => match tls::after_hello(rest) {
                tls::AfterHello::NeedMore => Step::Stop,
                tls::AfterHello::ChangeCipherSpec(n) if n > rest.len() => {
                    Step::SkipBeyond((n - rest.len()) as u64)
                }
                tls::AfterHello::ChangeCipherSpec(n) => Step::Next(n),
                tls::AfterHello::Hello => {
                    d.state = State::Tls;
                    Step::Next(0)
                }
                tls::AfterHello::Other => Step::Done,
            },
            State::Socks5Greeting => {
                socks_message(d, socks::socks5_greeting(rest), State::Socks5Request)
            }
            State::Socks5Request => socks_message(d, socks::socks5_request(rest), State::New),
            State::Socks4 => socks_message(d, socks::socks4_request(rest), State::New),
            State::Http => http_request(d, rest, bytes.len(), off, c, emit),
            State::HttpResp => http_response(d, rest, bytes.len(), off, c, emit),
            State::Done => Step::Stop,
        };
        match step {
            Step::Next(n) => off += n,
            Step::At(o) => off = o,
            Step::Stop => return off,
            Step::StopAt(o) => return o,
            Step::Done => {
                d.state = State::Done;
                return off;
            }
            Step::SkipBeyond(n) => {
                d.skip = n;
                return bytes.len();
            }
        }
    }
    off
}

/// What [`run`] does after one state's look at the bytes.
enum Step {
    /// Consumed this many bytes; go on (in the state now set).
    Next(usize),
    /// Go on at this offset of the chunk.
    At(usize),
    /// Need more bytes: stop here.
    Stop,
    /// Stop, having consumed up to this offset of the chunk.
    StopAt(usize),
    /// Nothing more of interest: the direction is done.
    Done,
    /// The current message runs past the chunk: skip this many bytes of
    /// later segments, the chunk is consumed.
    SkipBeyond(u64),
}

/// First bytes of a direction (or of a tunnel's inside): classify them.
fn new_state(d: &mut Dir, rest: &[u8], tcp: &TcpInfo) -> Step {
    match classify(rest, tcp) {
        Some(State::Socks5Greeting | State::Socks4) if d.socks >= MAX_SOCKS_LAYERS => Step::Done,
        Some(s) => {
            if matches!(s, State::Socks5Greeting | State::Socks4) {
                d.socks += 1;
            }
            d.state = s;
            Step::Next(0)
        }
        None => Step::Stop,
    }
}

fn dns_message(d: &mut Dir, rest: &[u8], c: &mut Counters, emit: &mut dyn FnMut(App<'_>)) -> Step {
    match dns::tcp::frame(rest, MAX_STREAM_BYTES) {
        dns::tcp::Frame::NeedMore => Step::Stop,
        dns::tcp::Frame::Invalid => {
            c.decode_error(Layer::Dns);
            d.state = State::Done;
            Step::Stop
        }
        dns::tcp::Frame::Message(msg) => {
            emit(App::Dns(msg));
            Step::Next(2 + msg.len())
        }
        dns::tcp::Frame::Skip(n) => {
            // Too big to buffer (large responses): skip it, keep the stream.
            c.limit(Limit::StreamBytes);
            Step::SkipBeyond(n)
        }
    }
}

fn tls_hello(
    d: &mut Dir,
    rest: &[u8],
    scratch: &mut Scratch,
    emit: &mut dyn FnMut(App<'_>),
) -> Step {
    match tls::scan_client_stream(rest, &mut scratch.tls) {
        tls::TlsScan::NeedMore => Step::Stop,
        tls::TlsScan::NotTls | tls::TlsScan::NoClientHello => Step::Done,
        tls::TlsScan::Hello(h) => {
            emit(App::Tls(h));
            d.hellos += 1;
            match tls::hello_extent(rest) {
                Some(n) if d.hellos < MAX_TLS_HELLOS => {
                    d.state = State::TlsNext;
                    Step::Next(n)
                }
                _ => Step::Done,
            }
        }
    }
}

/// One SOCKS handshake message; `then` is the state after it.
fn socks_message(d: &mut Dir, frame: socks::Frame, then: State) -> Step {
    match frame {
        socks::Frame::NeedMore => Step::Stop,
        socks::Frame::Invalid => Step::Done,
        socks::Frame::Len(n) => {
            d.state = then;
            Step::Next(n)
        }
    }
}

fn http_request(
    d: &mut Dir,
    rest: &[u8],
    len: usize,
    off: usize,
    c: &mut Counters,
    emit: &mut dyn FnMut(App<'_>),
) -> Step {
    match http::scan_request(rest) {
        http::HttpScan::NeedMore => Step::Stop,
        http::HttpScan::NotHttp => Step::Done,
        http::HttpScan::Request(r) => {
            let body = http::stream::request_body(&r);
            let hl = r.header_len;
            let connect = r.method == b"CONNECT";
            emit(App::Http(r));
            if connect && d.socks < MAX_SOCKS_LAYERS {
                // A proxy tunnel: what follows is the tunnelled
                // protocol's start (a ClientHello, usually).
                d.socks += 1;
                d.requests += 1;
                d.state = State::New;
                return Step::Next(hl);
            }
            next_message(d, len, off + hl, body, c)
        }
    }
}

fn http_response(
    d: &mut Dir,
    rest: &[u8],
    len: usize,
    off: usize,
    c: &mut Counters,
    emit: &mut dyn FnMut(App<'_>),
) -> Step {
    match http::stream::response(rest) {
        http::stream::Response::NeedMore => Step::Stop,
        http::stream::Response::NotHttp => Step::Done,
        http::stream::Response::Head {
            header_len,
            body,
            first,
        } => {
            if !first.is_empty() {
                emit(App::Body(first));
            }
            next_message(d, len, off + header_len, body, c)
        }
    }
}

/// After an HTTP head ending at `off` of a `len`-byte chunk: step over a
/// body of `body` bytes ([`http::stream::after_head`]; an unframed body
/// ends the direction). Counts messages against [`MAX_HTTP_REQUESTS_PER_FLOW`].
fn next_message(d: &mut Dir, len: usize, off: usize, body: Option<u64>, c: &mut Counters) -> Step {
    d.requests += 1;
    match http::stream::after_head(len, off, body) {
        http::stream::Next::Unframed => {
            d.state = State::Done;
            Step::StopAt(off)
        }
        http::stream::Next::Skip(n) => {
            d.skip = n;
            Step::StopAt(len)
        }
        http::stream::Next::At(next) => {
            if d.requests >= MAX_HTTP_REQUESTS_PER_FLOW {
                c.limit(Limit::HttpRequests);
                d.state = State::Done;
            }
            Step::At(next)
        }
    }
}

/// Decide what a direction carries from its first bytes; `None` = need more.
fn classify(b: &[u8], tcp: &TcpInfo) -> Option<State> {
    if tcp.dport == 53 {
        return Some(State::Dns);
    }
    if tls::looks_like_tls(b) == Some(true) {
        return Some(State::Tls);
    }
    if http::looks_like_http(b) == Some(true) {
        return Some(State::Http);
    }
    // From port 53 a server's DNS, unless it was a hello or request (a
    // client whose own port is 53, above).
    if tcp.sport == 53 {
        return Some(State::Dns);
    }
    if http::looks_like_response(b) == Some(true) {
        return Some(State::HttpResp);
    }
    match socks::sniff(b) {
        socks::Sniff::NeedMore => return None,
        socks::Sniff::Socks5Greeting => return Some(State::Socks5Greeting),
        socks::Sniff::Socks4 => return Some(State::Socks4),
        socks::Sniff::No => {}
    }
    Some(if dns::tcp::looks_like_dns(b)? {
        State::Dns
    } else {
        State::Done
    })
}

#[cfg(test)]
mod tests;
