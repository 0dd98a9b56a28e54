//! Sensor health counters: decode errors by layer, drops at named limits,
//! evictions. Each worker owns a [`Counters`]; the pipeline merges them and the
//! exporters (summary line, Prometheus) read the merged copy. Plain arrays
//! indexed by enums: bumping a counter on the hot path is one add.

/// A fieldless enum with a stable lowercase word per variant: `ALL` (in
/// declaration order, which is also the discriminant), `COUNT` and `as_str`.
/// Used for counter indices here and for the label enums (`Evidence`, `Role`,
/// `Protocol`) shown in reports, events and metrics. Extra derives and
/// per-variant attributes (docs, `#[default]`) pass through.
macro_rules! counter_enum {
    ($(#[$m:meta])* $name:ident {
        $($(#[$vm:meta])* $var:ident => $label:literal),+ $(,)?
    }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $var),+ }
        impl $name {
            pub const ALL: [$name; [$($label),+].len()] = [$($name::$var),+];
            pub const COUNT: usize = Self::ALL.len();
            /// Stable word used in metrics, reports, events and the summary.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $label),+ }
            }
        }
    };
}
pub(crate) use counter_enum;

counter_enum! {
    /// Where a packet failed to decode.
    Layer {
        Link => "link",
        UnknownLinkType => "unknown_linktype",
        Vlan => "vlan",
        Mpls => "mpls",
        Tunnel => "tunnel",
        Ipv4 => "ipv4",
        Ipv6 => "ipv6",
        Fragment => "fragment",
        Tcp => "tcp",
        Udp => "udp",
        Dns => "dns",
        Tls => "tls",
        Quic => "quic",
        Http => "http",
        File => "file",
    }
}

counter_enum! {
    /// A named limit at which data was dropped.
    Limit {
        EncapDepth => "max_encap_depth",
        VlanDepth => "max_vlan_depth",
        Ipv6ExtHeaders => "max_ipv6_ext_headers",
        FragDatagrams => "max_frag_datagrams",
        FragsPerDatagram => "max_frags_per_datagram",
        FragBytes => "max_frag_bytes",
        FragOverlap => "frag_overlap",
        FragTimeout => "frag_timeout",
        /// `read --workers N`: a reader-side fragment table (held fragments
        /// waiting for their datagram's first fragment, or datagram routes)
        /// was full; the fragments went to the worker of their own addresses.
        ShardFragments => "max_shard_fragments",
        /// `read --workers N`: fragments held for their datagram's first
        /// fragment waited past the timeout and went to the worker of their
        /// own addresses.
        ShardTimeout => "shard_fragment_timeout",
        Flows => "max_flows",
        StreamBytes => "max_stream_bytes",
        StreamGapSegments => "max_stream_pending_segments",
        DnsQuestions => "max_dns_questions",
        DnsPendingQueries => "max_dns_pending_queries",
        QuicCrypto => "max_quic_crypto_bytes",
        HttpRequests => "max_http_requests_per_flow",
        NamesPerHost => "max_names_per_host",
        Hosts => "max_hosts",
        Resolutions => "max_resolutions",
        SharedAddresses => "max_shared_addresses",
        HeldConnections => "max_held_connections",
        Resolvers => "max_resolvers",
        ForwardedQuestions => "max_forwarded_questions",
        Identities => "max_identities",
        AddressesPerHost => "max_addresses_per_host",
        DnsNameLen => "max_dns_name_len",
        Events => "events_write_errors",
    }
}

/// Counters owned by one worker (or the whole run after merging).
#[derive(Clone, Debug, Default)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
    /// Flows forgotten after their idle timeout (normal, not a drop).
    pub flows_expired: u64,
    /// Finished flows dropped early because the flow table was full.
    pub flows_evicted: u64,
    pub decode_errors: [u64; Layer::COUNT],
    pub limit_drops: [u64; Limit::COUNT],
    /// Link types seen that we cannot decode (linktype -> count), small.
    pub unknown_linktypes: Vec<(u32, u64)>,
}

impl Counters {
    #[inline]
    pub fn decode_error(&mut self, l: Layer) {
        // In range by construction (`Layer::COUNT` entries); the check folds away.
        if let Some(n) = self.decode_errors.get_mut(l as usize) {
            *n += 1;
        }
    }
    #[inline]
    pub fn limit(&mut self, l: Limit) {
        self.limit_n(l, 1);
    }
    /// `n` drops at one limit (a table generation cleared at once).
    pub fn limit_n(&mut self, l: Limit, n: u64) {
        if let Some(c) = self.limit_drops.get_mut(l as usize) {
            *c += n;
        }
    }
    pub fn unknown_linktype(&mut self, lt: u32) {
        self.decode_error(Layer::UnknownLinkType);
        if let Some(e) = self.unknown_linktypes.iter_mut().find(|(t, _)| *t == lt) {
            e.1 += 1;
        } else if self.unknown_linktypes.len() < 64 {
            self.unknown_linktypes.push((lt, 1));
        }
    }
    pub fn merge(&mut self, o: &Counters) {
        self.packets += o.packets;
        self.flows_expired += o.flows_expired;
        self.flows_evicted += o.flows_evicted;
        self.bytes += o.bytes;
        for (a, b) in self.decode_errors.iter_mut().zip(o.decode_errors.iter()) {
            *a += b;
        }
        for (a, b) in self.limit_drops.iter_mut().zip(o.limit_drops.iter()) {
            *a += b;
        }
        for &(lt, n) in &o.unknown_linktypes {
            if let Some(e) = self.unknown_linktypes.iter_mut().find(|(t, _)| *t == lt) {
                e.1 += n;
            } else {
                self.unknown_linktypes.push((lt, n));
            }
        }
    }
    pub fn total_decode_errors(&self) -> u64 {
        self.decode_errors.iter().sum()
    }
    pub fn get_limit(&self, l: Limit) -> u64 {
        self.limit_drops.get(l as usize).copied().unwrap_or(0)
    }
    pub fn get_decode(&self, l: Layer) -> u64 {
        self.decode_errors.get(l as usize).copied().unwrap_or(0)
    }
}
