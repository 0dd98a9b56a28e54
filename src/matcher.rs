//! Compiled signatures: exact and label-boundary suffix matching of names.
//! Built from a [`SignatureSet`]; called by the pipeline with a normalised
//! name (ASCII-lowercased, no trailing dot, see `proto::name`). Lookups cost
//! one hash probe per label: no linear scan, so 100k entries stay fast.
//! Precedence: an exact entry beats any suffix; among suffixes the longest
//! (most specific) wins.

use crate::signatures::{Category, ContentKind, MatchKind, PortSide, SignatureSet};
use std::collections::HashMap;

/// Most labels a DNS name can have: the one bound, defined with the DNS parser.
pub use crate::proto::dns::MAX_LABELS;

/// Result of a successful match: index into the signature list of the
/// matcher `set` (a matcher's id, so a hit made just before a reload is
/// still named by the set that made it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    pub sig: u32,
    pub category: Category,
    pub set: u32,
}

/// Ids handed to matchers as they are built (see [`Hit::set`]).
static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// The entries of one pattern text.
#[derive(Clone, Copy, Default)]
struct NameEntry {
    exact: Option<Hit>,
    suffix: Option<Hit>,
}

/// Compiled matcher.
pub struct Matcher {
    /// Pattern -> (exact entry, suffix entry): one table, so a name's
    /// full-length lookup is one hash for both kinds.
    names: HashMap<Box<[u8]>, NameEntry, ahash::RandomState>,
    /// Some suffix pattern exists (otherwise only the full name is looked up).
    any_suffix: bool,
    patterns: Vec<String>,
    max_len: usize,
    /// (tcp, port) -> hit and which end is the Kaspersky host.
    ports: HashMap<(bool, u16), (Hit, PortSide), ahash::RandomState>,
    /// This matcher's id (in every [`Hit`] it makes).
    pub id: u32,
    paths: Vec<(crate::glob::Glob, Hit)>,
    agents: Vec<(crate::glob::Glob, Hit)>,
    magics: Vec<(Vec<u8>, Hit)>,
    /// (prefix length, masked address) -> hit; lengths present, longest first.
    cidrs: HashMap<(u8, std::net::IpAddr), Hit, ahash::RandomState>,
    cidr_lens: Vec<u8>,
}

impl Matcher {
    pub fn new(set: &SignatureSet) -> Self {
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut names: HashMap<Box<[u8]>, NameEntry, ahash::RandomState> =
            HashMap::with_hasher(ahash::RandomState::new());
        let mut any_suffix = false;
        let mut patterns = Vec::with_capacity(set.signatures.len());
        let mut max_len = 0;
        for (i, s) in set.signatures.iter().enumerate() {
            let hit = Hit {
                sig: i as u32,
                category: s.category,
                set: id,
            };
            let key: Box<[u8]> = s.pattern.as_bytes().into();
            max_len = max_len.max(key.len());
            // First entry wins: later files may add, never silently override.
            let e = names.entry(key).or_default();
            match s.kind {
                MatchKind::Exact => e.exact.get_or_insert(hit),
                MatchKind::Suffix => {
                    any_suffix = true;
                    e.suffix.get_or_insert(hit)
                }
            };
            patterns.push(s.pattern.clone());
        }
        let mut ports = HashMap::with_hasher(ahash::RandomState::new());
        for p in &set.ports {
            let hit = Hit {
                sig: patterns.len() as u32,
                category: p.category,
                set: id,
            };
            patterns.push(p.pattern());
            ports.entry((p.tcp, p.port)).or_insert((hit, p.side));
        }
        let (mut paths, mut agents, mut magics) = (Vec::new(), Vec::new(), Vec::new());
        let mut cidrs = HashMap::with_hasher(ahash::RandomState::new());
        let mut cidr_lens: Vec<u8> = Vec::new();
        for c in &set.content {
            let hit = Hit {
                sig: patterns.len() as u32,
                category: c.category,
                set: id,
            };
            patterns.push(c.label());
            match &c.kind {
                ContentKind::HttpPath(g) => paths.push((g.clone(), hit)),
                ContentKind::UserAgent(g) => agents.push((g.clone(), hit)),
                ContentKind::BodyMagic(b) => magics.push((b.clone(), hit)),
                ContentKind::Address(a, l) => {
                    cidrs.entry((*l, *a)).or_insert(hit);
                    if !cidr_lens.contains(l) {
                        cidr_lens.push(*l);
                    }
                }
            }
        }
        cidr_lens.sort_unstable_by(|a, b| b.cmp(a));
        Matcher {
            names,
            any_suffix,
            patterns,
            max_len,
            ports,
            id,
            paths,
            agents,
            magics,
            cidrs,
            cidr_lens,
        }
    }

    /// Pattern text of a hit's signature.
    pub fn pattern(&self, sig: u32) -> &str {
        self.patterns
            .get(sig as usize)
            .map(String::as_str)
            .unwrap_or("")
    }

    /// An `[[http_path]]` entry matching a request path (no query).
    pub fn http_path(&self, path: &[u8]) -> Option<Hit> {
        self.paths
            .iter()
            .find(|(g, _)| g.matches(path))
            .map(|x| x.1)
    }

    /// A `[[user_agent]]` entry matching a User-Agent value.
    pub fn user_agent(&self, ua: &[u8]) -> Option<Hit> {
        self.agents.iter().find(|(g, _)| g.matches(ua)).map(|x| x.1)
    }

    /// A `[[body_magic]]` entry a response body opens with.
    pub fn body_magic(&self, head: &[u8]) -> Option<Hit> {
        self.magics
            .iter()
            .find(|(m, _)| head.starts_with(m))
            .map(|x| x.1)
    }

    /// An `[[address]]` entry containing `a` (longest prefix).
    pub fn address(&self, a: &std::net::IpAddr) -> Option<Hit> {
        if self.cidr_lens.is_empty() {
            return None;
        }
        let max = if a.is_ipv4() { 32 } else { 128 };
        self.cidr_lens.iter().filter(|l| **l <= max).find_map(|l| {
            self.cidrs
                .get(&(*l, crate::signatures::mask(*a, *l)))
                .copied()
        })
    }

    /// A port signature for a completed connection to `port`.
    #[inline]
    pub fn port(&self, tcp: bool, port: u16) -> Option<(Hit, PortSide)> {
        if self.ports.is_empty() {
            return None;
        }
        self.ports.get(&(tcp, port)).copied()
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Match a normalised name (lowercase ASCII, no trailing dot).
    #[inline]
    pub fn lookup(&self, name: &[u8]) -> Option<Hit> {
        if name.is_empty() {
            return None;
        }
        // The whole name: an exact entry beats any suffix.
        if name.len() <= self.max_len {
            if let Some(e) = self.names.get(name) {
                if let Some(h) = e.exact.or(e.suffix) {
                    return Some(h);
                }
            }
        }
        if !self.any_suffix {
            return None;
        }
        // Walk label boundaries from the left: the first hit is the longest suffix.
        let mut start = name.iter().position(|&b| b == b'.')? + 1;
        for _ in 1..MAX_LABELS {
            let rest = name.get(start..)?;
            if rest.len() <= self.max_len {
                if let Some(h) = self.names.get(rest).and_then(|e| e.suffix) {
                    return Some(h);
                }
            }
            let dot = rest.iter().position(|&b| b == b'.')?;
            start += dot + 1;
        }
        None
    }

    /// Normalise then match an arbitrary name (for `check-signatures --test`
    /// and tests). Allocates; not for the hot path.
    pub fn lookup_str(&self, name: &str) -> Option<Hit> {
        let mut buf = [0u8; crate::proto::name::MAX_NAME_LEN];
        let n = crate::proto::name::normalise(name.as_bytes(), &mut buf)?;
        self.lookup(buf.get(..n)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn shipped() -> Matcher {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("signatures");
        Matcher::new(&SignatureSet::load_paths(&[dir]).unwrap())
    }

    #[test]
    fn label_boundary_table() {
        let m = shipped();
        let yes = [
            ("dnl-01.geo.kaspersky.com", Category::Update),
            ("KASPERSKY.COM.", Category::Other),
            ("Kaspersky.Com", Category::Other),
            ("kaspersky.com", Category::Other),
            ("DnL-01.GEO.kaspersky.COM", Category::Update),
            ("s07.upd.kaspersky.com", Category::Update),
            ("x.y.upd.kaspersky.com", Category::Update),
            ("dc1.ksn.kaspersky-labs.com", Category::Ksn),
            ("ksn-file-geo.kaspersky-labs.com", Category::Ksn),
            ("activation-v2.kaspersky.com", Category::Activation),
            ("activate.activation-v2.kaspersky.com", Category::Activation),
            ("my.kaspersky.com", Category::Portal),
            ("www.kaspersky.com.cn", Category::Other),
            ("s024.cloud.kaspersky.com", Category::Management),
            ("www.dnl-01.geo.kaspersky.com", Category::Update),
        ];
        for (n, c) in yes {
            let h = m
                .lookup_str(n)
                .unwrap_or_else(|| panic!("{n} did not match"));
            assert_eq!(h.category, c, "{n}");
        }
        let no = [
            "notkaspersky.com",
            "kaspersky.com.evil.example",
            "mykaspersky-labs.com",
            "kaspersky-labs.com.attacker.test",
            "upd.kaspersky.com.cdn.example",
            "app-kaspersky.com.cn",
            "www.gw-kaspersky.com.cn",
            "www.kasperskyzh.com",
            "kasserver.com",
            "kavkaz-uzel.eu",
            "xn--kaspersky-8ya.com",
            "k\u{430}spersky.com",
            "com",
            "",
            ".",
            "kaspersky.co",
            "kaspersky.comx",
        ];
        for n in no {
            assert_eq!(m.lookup_str(n), None, "{n} must not match");
        }
    }

    #[test]
    fn exact_beats_suffix_and_longest_suffix_wins() {
        let m = shipped();
        let h = m.lookup_str("ksn-mdr.geoksn.kaspersky.com").unwrap();
        assert_eq!(h.category, Category::Management);
        assert_eq!(m.pattern(h.sig), "ksn-mdr.geoksn.kaspersky.com");
        let h = m.lookup_str("ksn-url.geoksn.kaspersky.com").unwrap();
        assert_eq!(m.pattern(h.sig), "geoksn.kaspersky.com");
        let h = m.lookup_str("a.upd.kaspersky.com").unwrap();
        assert_eq!(m.pattern(h.sig), "upd.kaspersky.com");
    }

    #[test]
    fn hundred_thousand_entries() {
        let mut set = SignatureSet::default();
        let mut text = String::from("[meta]\nversion=\"1\"\ndate=\"x\"\n");
        for i in 0..100_000 {
            text.push_str(&format!(
                "[[signature]]\npattern=\"h{i}.example{}.net\"\nmatch=\"{}\"\ncategory=\"other\"\nsource=\"synthetic\"\n",
                i % 97,
                if i % 2 == 0 { "exact" } else { "suffix" }
            ));
        }
        set.load_str(Path::new("big.toml"), &text).unwrap();
        let m = Matcher::new(&set);
        assert_eq!(m.len(), 100_000);
        assert!(m.lookup_str("h0.example0.net").is_some());
        assert!(m.lookup_str("x.h0.example0.net").is_none()); // exact only
        assert!(m.lookup_str("x.h1.example1.net").is_some()); // suffix
        assert!(m.lookup_str("h1.example2.net").is_none());
    }
}
