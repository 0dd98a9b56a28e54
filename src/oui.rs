//! MAC vendor names from the IEEE registries, read at run time from the
//! files Debian's `ieee-data` package keeps up to date
//! (`/usr/share/ieee-data/{oui,mam,oui36}.csv`; `$KASWATCH_IEEE_DATA` names
//! another directory). Loaded once, on first use, by the exporters (report,
//! events, metrics). Without the files the vendor is empty, except for
//! locally administered (randomised) addresses, which no registry names.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Largest registry file read (the MA-L file is ~3 MB).
pub const MAX_REGISTRY_BYTES: u64 = 32 << 20;
/// Entries kept from all registries (MA-L has ~35k).
pub const MAX_REGISTRY_ENTRIES: usize = 200_000;

/// Prefix (left-aligned in a u64, with its bit length) -> organisation.
#[derive(Default)]
pub struct Registry {
    by_prefix: HashMap<(u8, u64), String>,
}

fn dir() -> PathBuf {
    std::env::var_os("KASWATCH_IEEE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/ieee-data"))
}

fn mac_bits(m: [u8; 6]) -> u64 {
    m.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b)) << 16
}

/// Split one CSV line (quotes allowed) into fields.
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

impl Registry {
    /// Parse registry CSV text (`Registry,Assignment,Organization Name,...`).
    pub fn add_csv(&mut self, text: &str) {
        for line in text.lines().skip(1) {
            if self.by_prefix.len() >= MAX_REGISTRY_ENTRIES {
                break;
            }
            let f = fields(line);
            let (Some(hex), Some(org)) = (f.get(1), f.get(2)) else {
                continue;
            };
            let bits = (hex.len() * 4) as u8;
            if !(bits == 24 || bits == 28 || bits == 36) {
                continue;
            }
            let Ok(v) = u64::from_str_radix(hex, 16) else {
                continue;
            };
            let org = org.trim();
            if !org.is_empty() {
                self.by_prefix
                    .insert((bits, v << (64 - u32::from(bits))), org.to_string());
            }
        }
    }

    /// Load the registries from the ieee-data directory (missing files are
    /// skipped: the vendor is then empty).
    pub fn load() -> Self {
        let mut r = Registry::default();
        let d = dir();
        for f in ["oui.csv", "mam.csv", "oui36.csv"] {
            let p = d.join(f);
            let small = std::fs::metadata(&p).is_ok_and(|m| m.len() <= MAX_REGISTRY_BYTES);
            if let (true, Ok(text)) = (small, std::fs::read_to_string(&p)) {
                r.add_csv(&text);
            }
        }
        r
    }

    pub fn len(&self) -> usize {
        self.by_prefix.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }

    /// The organisation a MAC's prefix is assigned to (longest prefix).
    pub fn vendor(&self, m: [u8; 6]) -> Option<String> {
        if m[0] & 0x02 != 0 {
            return Some("locally administered".into());
        }
        let v = mac_bits(m);
        [36u8, 28, 24].into_iter().find_map(|bits| {
            let mask = !0u64 << (64 - u32::from(bits));
            self.by_prefix.get(&(bits, v & mask)).cloned()
        })
    }
}

/// The registry, loaded on first use.
pub fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::load)
}

/// Vendor of a MAC from the installed registry (empty string when unknown).
pub fn vendor(m: [u8; 6]) -> String {
    registry().vendor(m).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_and_quotes() {
        let mut r = Registry::default();
        r.add_csv(
            "Registry,Assignment,Organization Name,Organization Address\n\
             MA-L,001B21,Intel Corporate,\"Lot 8, Jalan\"\n\
             MA-S,001B21ABC,\"Tiny \"\"Co\"\", Ltd\",x\n",
        );
        assert_eq!(
            r.vendor([0, 0x1b, 0x21, 1, 2, 3]).as_deref(),
            Some("Intel Corporate")
        );
        assert_eq!(
            r.vendor([0, 0x1b, 0x21, 0xab, 0xc1, 3]).as_deref(),
            Some("Tiny \"Co\", Ltd")
        );
        assert_eq!(r.vendor([0, 0x1c, 0, 0, 0, 0]), None);
        assert_eq!(
            r.vendor([0x02, 0, 0, 0, 0, 1]).as_deref(),
            Some("locally administered")
        );
    }

    #[test]
    fn installed_registry_names_a_known_prefix() {
        // Debian's ieee-data is installed by `make test`.
        let r = Registry::load();
        if r.is_empty() {
            let msg = "ieee-data not installed (/usr/share/ieee-data/oui.csv)";
            assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
            eprintln!("SKIPPED installed_registry_names_a_known_prefix: {msg}");
            return;
        }
        assert!(r.len() > 10_000, "{}", r.len());
        assert_eq!(
            r.vendor([0, 0x1b, 0x21, 1, 2, 3]).as_deref(),
            Some("Intel Corporate")
        );
    }
}
