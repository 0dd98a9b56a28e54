//! What a callback rests on ([`Evidence`]), what kind of host made it
//! ([`Role`]), and which of them make a host a *device* ([`Selection`], from
//! `--evidence` and `--count-resolvers`). Set by the pipeline on every
//! callback; read by the host table, the report, events and metrics.

use std::fmt;

crate::stats::counter_enum! {
    /// The evidence behind one callback, strongest first.
    #[derive(PartialOrd, Ord)]
    Evidence {
        /// A Kaspersky name the host itself put on the wire: DNS query, TLS or
        /// QUIC SNI, HTTP Host or proxy target.
        Name => "name",
        /// Kaspersky's update protocol recognised by content: request path or
        /// response magic bytes.
        Content => "content",
        /// Only that the destination address was resolved from a Kaspersky name
        /// (the connection itself named nothing, the address serves nothing else).
        Address => "address",
        /// A completed connection on a Kaspersky management port (KSC server,
        /// Network Agent): the port alone, other software may use it too.
        Port => "port",
    }
}

impl Evidence {
    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of evidence kinds (`--evidence name,content`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvidenceSet(u8);

impl EvidenceSet {
    /// The default: what the host itself said. Address evidence alone does
    /// not make a device (CDN addresses are shared; see the README).
    pub const DEFAULT: EvidenceSet = EvidenceSet(0b011);
    pub const ALL: EvidenceSet = EvidenceSet(0b1111);

    pub fn contains(self, e: Evidence) -> bool {
        self.0 & e.bit() != 0
    }

    /// Parse a comma-separated list; the error names the bad word.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut set = 0u8;
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let e = Evidence::ALL
                .into_iter()
                .find(|e| e.as_str() == w)
                .ok_or_else(|| format!("unknown evidence `{w}` (name, content, address, port)"))?;
            set |= e.bit();
        }
        if set == 0 {
            return Err("empty evidence list (name, content, address, port)".into());
        }
        Ok(EvidenceSet(set))
    }
}

impl Default for EvidenceSet {
    fn default() -> Self {
        EvidenceSet::DEFAULT
    }
}

impl fmt::Display for EvidenceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<&str> = Evidence::ALL
            .into_iter()
            .filter(|e| self.contains(*e))
            .map(Evidence::as_str)
            .collect();
        f.write_str(&words.join(","))
    }
}

crate::stats::counter_enum! {
    /// What kind of host made a callback.
    #[derive(Default, PartialOrd, Ord)]
    Role {
        /// An end host: its callbacks are its own.
        #[default]
        Device => "device",
        /// A host that answers DNS queries for other hosts: its Kaspersky
        /// queries are its clients' lookups, forwarded.
        Resolver => "resolver",
    }
}

/// Which hosts the report and the device counts call devices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub evidence: EvidenceSet,
    /// `--count-resolvers`: resolvers count as devices too.
    pub count_resolvers: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_show() {
        let s = EvidenceSet::parse("name, address").unwrap();
        assert!(s.contains(Evidence::Name) && s.contains(Evidence::Address));
        assert!(!s.contains(Evidence::Content));
        assert_eq!(s.to_string(), "name,address");
        assert_eq!(EvidenceSet::default().to_string(), "name,content");
        assert!(EvidenceSet::parse("name,ip").unwrap_err().contains("`ip`"));
        assert!(EvidenceSet::parse("").is_err());
    }
}
