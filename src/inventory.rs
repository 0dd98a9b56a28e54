//! Managed-device inventory (`--inventory FILE`): a CSV of `address[,name]`
//! lines where the address is an IP, a CIDR or a MAC. Hosts that match are
//! `managed="true"` with `inventory_name` in the metrics and events. Loaded
//! once by the drivers (`run.rs`, `live.rs`), consulted by the pipeline's
//! merger when a host is recorded. Lines starting with `#`, blank lines and
//! a header line (`ip`, `cidr`, `mac` or `address` first) are skipped.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

/// Most inventory entries (a larger file is refused).
pub const MAX_ENTRIES: usize = 1_000_000;

/// The loaded inventory.
#[derive(Debug, Default)]
pub struct Inventory {
    ips: HashMap<IpAddr, String>,
    /// (network address, prefix length, name), checked in file order.
    cidrs: Vec<(IpAddr, u8, String)>,
    macs: HashMap<[u8; 6], String>,
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(parts) {
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    Some(m)
}

fn masked(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

impl Inventory {
    /// `--inventory`, when given, loaded and shared between threads.
    pub fn load_opt(
        path: Option<&std::path::Path>,
    ) -> crate::error::Result<Option<std::sync::Arc<Self>>> {
        path.map(Self::load)
            .transpose()
            .map(|o| o.map(std::sync::Arc::new))
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::input(path, crate::error::io_reason(&e)))?;
        Self::parse(&text).map_err(|(line, why)| Error::Signature {
            path: path.to_path_buf(),
            line,
            reason: why,
        })
    }

    /// Parse CSV text; errors carry the 1-based line number.
    pub fn parse(text: &str) -> std::result::Result<Self, (usize, String)> {
        let mut inv = Inventory::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.splitn(2, ',');
            let addr = fields.next().unwrap_or("").trim();
            let name = fields
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"')
                .to_string();
            if i == 0
                && ["ip", "cidr", "mac", "address"].contains(&addr.to_ascii_lowercase().as_str())
            {
                continue;
            }
            if inv.ips.len() + inv.cidrs.len() + inv.macs.len() >= MAX_ENTRIES {
                return Err((i + 1, format!("more than {MAX_ENTRIES} entries")));
            }
            if let Ok(ip) = addr.parse::<IpAddr>() {
                inv.ips.insert(ip, name);
            } else if let Some((net, len)) = addr.split_once('/') {
                let ip: IpAddr = net
                    .parse()
                    .map_err(|_| (i + 1, format!("{addr:?} is not an IP, CIDR or MAC address")))?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let len: u8 = len
                    .parse()
                    .ok()
                    .filter(|l| *l <= max)
                    .ok_or((i + 1, format!("{addr:?}: prefix length must be 0..={max}")))?;
                inv.cidrs.push((masked(ip, len), len, name));
            } else if let Some(m) = parse_mac(addr) {
                inv.macs.insert(m, name);
            } else {
                return Err((i + 1, format!("{addr:?} is not an IP, CIDR or MAC address")));
            }
        }
        Ok(inv)
    }

    /// The inventory name of a host (empty when listed without a name), or
    /// None when the host is not in the inventory.
    pub fn lookup(&self, ip: IpAddr, mac: Option<[u8; 6]>) -> Option<&str> {
        if let Some(n) = self.ips.get(&ip) {
            return Some(n);
        }
        if let Some(n) = mac.and_then(|m| self.macs.get(&m)) {
            return Some(n);
        }
        self.cidrs
            .iter()
            .find(|(net, len, _)| net.is_ipv4() == ip.is_ipv4() && masked(ip, *len) == *net)
            .map(|(_, _, n)| n.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_cidr_mac() {
        let inv = Inventory::parse("address,name\n192.168.10.21,pc21\n10.99.0.0/24,lab\n2001:db8:10::/64\n00:1b:21:aa:00:26,pc26\n").unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(inv.lookup(ip("192.168.10.21"), None), Some("pc21"));
        assert_eq!(inv.lookup(ip("10.99.0.7"), None), Some("lab"));
        assert_eq!(inv.lookup(ip("10.99.1.7"), None), None);
        assert_eq!(inv.lookup(ip("2001:db8:10::23"), None), Some(""));
        assert_eq!(
            inv.lookup(ip("192.168.10.26"), Some([0, 0x1b, 0x21, 0xaa, 0, 0x26])),
            Some("pc26")
        );
        assert_eq!(Inventory::parse("1.2.3.4\nbogus,x\n").unwrap_err().0, 2);
        assert_eq!(Inventory::parse("1.2.3.0/33\n").unwrap_err().0, 1);
    }
}
