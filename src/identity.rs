//! Who each device is, learned by the merger from what devices say about
//! themselves ([`Ident`] observations made by the pipeline worker from
//! DHCP, DHCPv6, mDNS/LLMNR and NetBIOS) and from EUI-64 IPv6 addresses:
//! per MAC a host name, FQDN and vendor class; per address the MAC it is
//! bound to on the local segment (a DHCP lease, a DHCPv6 DUID, an EUI-64
//! address) and names it announced. Read by the merger when it records a
//! callback, to group a device's addresses and label it. Bounded
//! ([`GenMap`]), drops counted.

use crate::proto::ident::eui64_mac;
use crate::stats::{Counters, Limit};
use crate::table::GenMap;
use std::net::IpAddr;

/// MACs whose names are remembered.
pub const MAX_IDENTITIES: usize = 65_536;
/// Address -> MAC bindings and per-address names remembered.
pub const MAX_BINDINGS: usize = 131_072;

/// What a device said about itself, as the worker hands it over.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ident {
    /// The device's MAC (DHCP chaddr, DUID link-layer address, frame source).
    pub mac: Option<[u8; 6]>,
    /// The address this is about (a lease, the announcer's own address).
    pub addr: Option<IpAddr>,
    /// `mac` and `addr` belong together on the local segment (a DHCP ACK,
    /// a DHCPv6 DUID from the sender): addresses may be grouped under it.
    pub binding: bool,
    pub hostname: Option<String>,
    pub fqdn: Option<String>,
    pub vendor_class: Option<String>,
    /// `dhcp`, `dhcpv6`, `mdns`, `llmnr` or `netbios`.
    pub source: &'static str,
}

/// Names known for one device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    pub hostname: Option<String>,
    pub fqdn: Option<String>,
    pub vendor_class: Option<String>,
}

impl Names {
    fn update(&mut self, id: &Ident) {
        if id.hostname.is_some() {
            self.hostname.clone_from(&id.hostname);
        }
        if id.fqdn.is_some() {
            self.fqdn.clone_from(&id.fqdn);
        }
        if id.vendor_class.is_some() {
            self.vendor_class.clone_from(&id.vendor_class);
        }
    }

    /// Fill what `self` lacks from `o`.
    fn or(mut self, o: &Names) -> Names {
        if self.hostname.is_none() {
            self.hostname.clone_from(&o.hostname);
        }
        if self.fqdn.is_none() {
            self.fqdn.clone_from(&o.fqdn);
        }
        if self.vendor_class.is_none() {
            self.vendor_class.clone_from(&o.vendor_class);
        }
        self
    }
}

/// See the module doc.
pub struct IdentityBook {
    by_mac: GenMap<[u8; 6], Names>,
    /// Address -> (MAC bound on the local segment, if any; names it announced).
    by_addr: GenMap<IpAddr, (Option<[u8; 6]>, Names)>,
}

impl Default for IdentityBook {
    fn default() -> Self {
        IdentityBook {
            by_mac: GenMap::new(MAX_IDENTITIES),
            by_addr: GenMap::new(MAX_BINDINGS),
        }
    }
}

impl IdentityBook {
    /// Learn from one observation. Returns a new address -> MAC binding
    /// (so the host table can group what it holds under the MAC).
    pub fn learn(&mut self, id: &Ident, c: &mut Counters) -> Option<(IpAddr, [u8; 6])> {
        if let Some(m) = id.mac {
            let (slot, d) = self.by_mac.get_mut(&m, |_| true);
            let mut dropped = d;
            match slot {
                Some(n) => n.update(id),
                None => {
                    let mut n = Names::default();
                    n.update(id);
                    dropped += self.by_mac.insert(m, n, |_| true);
                }
            }
            c.limit_n(Limit::Identities, dropped);
        }
        let addr = id.addr?;
        let bind = if id.binding { id.mac } else { None };
        let (slot, d) = self.by_addr.get_mut(&addr, |_| true);
        let mut dropped = d;
        let mut new_binding = None;
        match slot {
            Some((m, n)) => {
                if bind.is_some() && *m != bind {
                    *m = bind;
                    new_binding = bind.map(|b| (addr, b));
                }
                if id.mac.is_none() || !id.binding {
                    n.update(id);
                }
            }
            None => {
                let mut n = Names::default();
                if !id.binding {
                    n.update(id);
                }
                dropped += self.by_addr.insert(addr, (bind, n), |_| true);
                new_binding = bind.map(|b| (addr, b));
            }
        }
        c.limit_n(Limit::Identities, dropped);
        new_binding
    }

    /// The MAC an address is bound to on the local segment: a lease or
    /// DUID, or the MAC inside an EUI-64 IPv6 address.
    pub fn mac_of(&self, addr: &IpAddr) -> Option<[u8; 6]> {
        self.by_addr
            .get(addr)
            .and_then(|(m, _)| *m)
            .or_else(|| eui64_mac(addr))
    }

    /// Names for a device seen at `addr` with MAC `mac` (the device's own
    /// announcements first, then what its MAC said in DHCP).
    /// Nothing announced or bound yet.
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty() && self.by_mac.is_empty()
    }

    pub fn names(&self, addr: &IpAddr, mac: Option<[u8; 6]>) -> Names {
        let by_addr = self
            .by_addr
            .get(addr)
            .map(|(_, n)| n.clone())
            .unwrap_or_default();
        let mac = mac.or_else(|| self.mac_of(addr));
        match mac.and_then(|m| self.by_mac.get(&m)) {
            Some(n) => n.clone().or(&by_addr),
            None => by_addr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_binds_and_names_follow_the_mac() {
        let mut b = IdentityBook::default();
        let mut c = Counters::default();
        let m = [0, 0x1b, 0x21, 1, 2, 3];
        let a1: IpAddr = "10.40.0.57".parse().unwrap();
        let a2: IpAddr = "10.40.0.99".parse().unwrap();
        // Request carries the name; the ACK binds the address.
        let req = Ident {
            mac: Some(m),
            hostname: Some("laptop-57".into()),
            vendor_class: Some("msft 5.0".into()),
            source: "dhcp",
            ..Ident::default()
        };
        assert_eq!(b.learn(&req, &mut c), None);
        let ack = Ident {
            mac: Some(m),
            addr: Some(a1),
            binding: true,
            source: "dhcp",
            ..Ident::default()
        };
        assert_eq!(b.learn(&ack, &mut c), Some((a1, m)));
        assert_eq!(b.learn(&ack, &mut c), None, "known binding is not new");
        assert_eq!(
            b.learn(
                &Ident {
                    addr: Some(a2),
                    ..ack.clone()
                },
                &mut c
            ),
            Some((a2, m))
        );
        assert_eq!(b.mac_of(&a2), Some(m));
        assert_eq!(b.names(&a2, None).hostname.as_deref(), Some("laptop-57"));
        // A NetBIOS name for an address without a lease: no binding.
        let a3: IpAddr = "10.40.0.7".parse().unwrap();
        let nb = Ident {
            mac: None,
            addr: Some(a3),
            hostname: Some("printer".into()),
            source: "netbios",
            ..Ident::default()
        };
        assert_eq!(b.learn(&nb, &mut c), None);
        assert_eq!(b.mac_of(&a3), None);
        assert_eq!(b.names(&a3, None).hostname.as_deref(), Some("printer"));
        // EUI-64 addresses carry their MAC.
        let v6: IpAddr = "fe80::21b:21ff:fe01:203".parse().unwrap();
        assert_eq!(b.mac_of(&v6), Some(m));
    }
}
