//! The pipeline that every driver shares: `read`, `live`, tests and benches
//! push [`RawPacket`](crate::capture::RawPacket)s into a [`Worker`] (decode,
//! flows, parsers; one per shard of the traffic), which turns what it finds
//! into [`Obs`]ervations; the [`Merger`] applies them in packet order to the
//! host table and the outputs, deciding address evidence
//! ([`address::AddressBook`]) along the way.
//!
//! - `worker.rs`: [`Worker`] and its emitter (names, connection opens and
//!   decisions, DNS answers).
//! - `merger.rs`: [`Merger`]: callbacks, evidence, roles, events, pending
//!   DNS queries.
//! - `address.rs`: which addresses were resolved from Kaspersky names, which
//!   are shared with other names, held connections, resolvers.
//!
//! - `shard.rs`: [`shard::Sharder`]: which worker gets each packet of a
//!   multi-worker run (innermost addresses; fragments follow their
//!   datagram's first fragment).
//!
//! Single-worker runs call both inline; multi-worker runs shard packets by
//! innermost address pair ([`shard::Sharder`]) and merge in
//! sequence order, so output is identical whatever the worker count.

pub mod address;
mod merger;
pub mod shard;
mod worker;

pub use merger::{Merger, MAX_PENDING_QUERIES, QUERY_WAIT_NS};
pub use worker::{Worker, WorkerConfig, MAX_QUIC_HELLOS};

use crate::decode::TunnelPath;
use crate::evidence::Evidence;
use crate::matcher::Hit;
use crate::proto::Protocol;
use std::net::IpAddr;

/// Where a packet came from: sequence number across the run, input index
/// (file or interface) and 1-based frame number within it.
#[derive(Clone, Copy, Debug, Default)]
pub struct PktMeta {
    pub seq: u64,
    pub input: u32,
    pub frame: u64,
}

/// Transport of an observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// What a connection's client said about where it is going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    /// No name: no payload, a hello without SNI, an IP-literal Host, an
    /// unknown protocol. Only such a connection can be address evidence.
    Nothing,
    /// A Kaspersky name (that callback has evidence `name`), or the
    /// connection already made a callback by content.
    Kaspersky,
    /// Another site's name: the destination address is shared.
    Other,
}

/// Up to [`ANSWERS_PER_OBS`] addresses from one DNS response (no allocation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddrList {
    pub addrs: [Option<(IpAddr, u32)>; ANSWERS_PER_OBS],
}

/// Addresses carried by one [`ObsKind::Answers`]; a response with more
/// makes several observations (bounded by `dns::MAX_ANSWERS`).
pub const ANSWERS_PER_OBS: usize = 4;

impl AddrList {
    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, u32)> + '_ {
        self.addrs.iter().flatten().copied()
    }
}

/// The addresses of a response to a matching question, in answer order:
/// the first [`ANSWERS_PER_OBS`] inline, any further ones (rare; at most
/// `dns::MAX_ANSWERS` in all) in `more`, so the usual answer allocates nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    head: AddrList,
    more: Vec<(IpAddr, u32)>,
}

impl Resolved {
    pub fn push(&mut self, addr: IpAddr, ttl: u32) {
        match self.head.addrs.iter_mut().find(|s| s.is_none()) {
            Some(slot) => *slot = Some((addr, ttl)),
            None => self.more.push((addr, ttl)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, u32)> + '_ {
        self.head.iter().chain(self.more.iter().copied())
    }
}

/// What an observation carries.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum ObsKind {
    /// A name seen in a query, hello or request (matched, or any name with
    /// `--all-names`), or update-protocol content.
    #[default]
    Name,
    /// A client opened a connection (TCP SYN, first datagram of a UDP flow)
    /// to `dst`; `Some` when this same packet already settles what it names.
    Open(Option<Named>),
    /// The connection's client settled what it names (its first message, or
    /// the connection ended without one); `true` when the TCP handshake was
    /// seen to complete (the server's SYN-ACK, then the client's ACK).
    Decided(Named, bool),
    /// A DNS response to a matching question: addresses for attribution.
    Resolved(Resolved),
    /// A DNS response to other questions: addresses that serve other names.
    Answers(AddrList),
    /// What a device said about itself (DHCP, DHCPv6, mDNS, LLMNR, NetBIOS).
    Identity(Box<crate::identity::Ident>),
}

/// Something the worker saw, for the merger. Owned, but built without
/// allocation unless it carries a name (only for matches, or with
/// `--all-names`).
#[derive(Clone, Debug)]
pub struct Obs {
    /// Where, when and what it rests on (`o.src` etc. read through to it).
    pub head: Head,
    /// Normalised name used for matching.
    pub name: crate::text::Text,
    /// Name as shown in `--all-names` when it differs (HTTP Host keeps `:port`).
    pub shown: Option<String>,
    pub kind: ObsKind,
}

impl std::ops::Deref for Obs {
    type Target = Head;
    fn deref(&self) -> &Head {
        &self.head
    }
}

impl std::ops::DerefMut for Obs {
    fn deref_mut(&mut self) -> &mut Head {
        &mut self.head
    }
}

impl Obs {
    /// The observation told from the other end (a response's or a server's
    /// packet, from the client's side) for a callback: the addresses and
    /// ports swapped, the MAC dropped (it is the other end's or a router's),
    /// and none of the owned payload (name, answers) copied: a [`Head`].
    pub fn reversed_head(&self) -> Head {
        let mut head = self.head.clone();
        head.reverse();
        head
    }

    /// Key of the connection this observation belongs to, client first.
    pub fn conn_key(&self) -> ConnKey {
        (self.src, self.dst, self.sport, self.dport, self.l4)
    }
}

/// An observation without its name and its kind's payload (a third of its
/// size): what a held connection keeps until it is released.
#[derive(Clone, Debug)]
pub struct Head {
    pub meta: PktMeta,
    pub ts: u64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub l4: L4,
    pub src_mac: Option<[u8; 6]>,
    /// Encapsulations crossed, boxed when there are any (most packets have
    /// none; the path is 150 bytes an observation would otherwise carry).
    pub tunnel: Option<Box<TunnelPath>>,
    pub protocol: Protocol,
    pub hit: Option<Hit>,
    pub evidence: Evidence,
    /// A further match on a connection that already made its callback:
    /// logged with `--all-names`, not counted again.
    pub repeat: bool,
    pub alpn: Option<String>,
    pub ech: Option<bool>,
    /// DNS transaction id (queries and responses), to pair them.
    pub dns_id: u16,
}

impl Head {
    /// A head for a packet from `src` to `dst` (address, port) with nothing
    /// found yet: no MAC, tunnel, hit, TLS detail or DNS id.
    pub fn of(
        meta: PktMeta,
        ts: u64,
        l4: L4,
        protocol: Protocol,
        (src, sport): (IpAddr, u16),
        (dst, dport): (IpAddr, u16),
    ) -> Head {
        Head {
            meta,
            ts,
            src,
            dst,
            sport,
            dport,
            l4,
            src_mac: None,
            tunnel: None,
            protocol,
            hit: None,
            evidence: Evidence::Name,
            repeat: false,
            alpn: None,
            ech: None,
            dns_id: 0,
        }
    }

    /// Swap the two ends (a response's or a server's packet, told from the
    /// client's side). The MAC is the other end's, so it is dropped.
    pub fn reverse(&mut self) {
        std::mem::swap(&mut self.src, &mut self.dst);
        std::mem::swap(&mut self.sport, &mut self.dport);
        self.src_mac = None;
    }

    /// The observation again, with no name and `kind`.
    pub fn obs(self, kind: ObsKind) -> Obs {
        Obs {
            head: self,
            name: crate::text::Text::default(),
            shown: None,
            kind,
        }
    }
}

/// A connection: client, server, client port, server port, transport.
pub type ConnKey = (IpAddr, IpAddr, u16, u16, L4);

/// Worker of an address pair, whichever way round.
#[inline]
pub fn pair_shard(a: IpAddr, b: IpAddr, workers: usize, seed: &ahash::RandomState) -> usize {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    (seed.hash_one((lo, hi)) % workers.max(1) as u64) as usize
}

#[cfg(test)]
mod tests;
