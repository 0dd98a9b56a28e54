//! Who a device is, from what it says about itself on the local segment:
//! DHCPv4 (RFC 2131/2132: client MAC, leased address, option 12 host name,
//! 81 client FQDN (RFC 4702), 60 vendor class), DHCPv6 (RFC 8415: DUID with
//! a link-layer address, option 39 client FQDN (RFC 4704)), NetBIOS name
//! registrations and answers (RFC 1002), and the MAC inside an EUI-64 IPv6
//! address. Pure functions over borrowed bytes; the pipeline worker calls
//! them for UDP 67/68, 546/547 and 137, and turns the result into an
//! identity observation (mDNS/LLMNR self-announcements go through `dns`).

use crate::bytes::{be16, be32};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// DHCP options walked per message (each is at least 1 byte; 312 bytes of
/// options in a standard message, more with overload: bounded anyway).
pub const MAX_DHCP_OPTIONS: usize = 256;
/// Longest host name or vendor class kept (option lengths are one byte).
pub const MAX_IDENT_LEN: usize = 255;

/// What a DHCPv4 message says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dhcp4<'a> {
    /// 1 = from a client (BOOTREQUEST), 2 = from a server (BOOTREPLY).
    pub op: u8,
    /// Option 53 (1 DISCOVER, 3 REQUEST, 5 ACK, 8 INFORM, ...).
    pub msg_type: u8,
    pub chaddr: [u8; 6],
    /// The address the server assigns (ACK) or 0.0.0.0.
    pub yiaddr: Ipv4Addr,
    /// The client's current address (renewals, INFORM) or 0.0.0.0.
    pub ciaddr: Ipv4Addr,
    /// Option 50: the address a client asks for.
    pub requested: Option<Ipv4Addr>,
    /// Option 51, seconds.
    pub lease_secs: Option<u32>,
    pub hostname: Option<&'a [u8]>,
    /// Option 81's name, wire form (labels) or ASCII, as sent.
    pub fqdn: Option<Fqdn<'a>>,
    pub vendor_class: Option<&'a [u8]>,
}

/// A client FQDN option's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fqdn<'a> {
    /// DNS wire format (length-prefixed labels).
    Wire(&'a [u8]),
    /// Deprecated ASCII form.
    Ascii(&'a [u8]),
}

impl Fqdn<'_> {
    /// Dotted text, lowercased, printable ASCII only (else `None`).
    pub fn text(&self) -> Option<String> {
        match self {
            Fqdn::Ascii(a) => printable(a),
            Fqdn::Wire(w) => {
                let mut out = String::new();
                let mut rest = *w;
                for _ in 0..128 {
                    let (&len, tail) = rest.split_first()?;
                    if len == 0 {
                        break;
                    }
                    let label = tail.get(..usize::from(len))?;
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(&printable(label)?);
                    rest = tail.get(usize::from(len)..)?;
                    if rest.is_empty() {
                        break;
                    }
                }
                (!out.is_empty()).then_some(out)
            }
        }
    }
}

/// Bytes as lowercase text if every byte is printable ASCII (a trailing
/// NUL and outer spaces trimmed).
pub fn printable(b: &[u8]) -> Option<String> {
    let b = b.strip_suffix(&[0]).unwrap_or(b).trim_ascii();
    if b.is_empty()
        || b.len() > MAX_IDENT_LEN
        || !b.iter().all(|c| c.is_ascii_graphic() || *c == b' ')
    {
        return None;
    }
    Some(String::from_utf8_lossy(b).to_ascii_lowercase())
}

const COOKIE: [u8; 4] = [99, 130, 83, 99];

/// Parse a DHCPv4 message (the UDP payload of port 67/68 traffic). `None`
/// unless it is Ethernet-addressed BOOTP with the DHCP magic cookie.
pub fn dhcp4(b: &[u8]) -> Option<Dhcp4<'_>> {
    let op = *b.first()?;
    let (htype, hlen) = (*b.get(1)?, *b.get(2)?);
    if !(op == 1 || op == 2) || htype != 1 || hlen != 6 || b.get(236..240)? != COOKIE {
        return None;
    }
    let ip4 = |at: usize| -> Option<Ipv4Addr> {
        let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(s))
    };
    let mut d = Dhcp4 {
        op,
        msg_type: 0,
        ciaddr: ip4(12)?,
        yiaddr: ip4(16)?,
        chaddr: b.get(28..34)?.try_into().ok()?,
        requested: None,
        lease_secs: None,
        hostname: None,
        fqdn: None,
        vendor_class: None,
    };
    let mut off = 240usize;
    for _ in 0..MAX_DHCP_OPTIONS {
        let Some(&code) = b.get(off) else { break };
        match code {
            0 => {
                off += 1;
                continue;
            }
            255 => break,
            _ => {}
        }
        let len = usize::from(*b.get(off + 1)?);
        let v = b.get(off + 2..off + 2 + len)?;
        match code {
            53 => d.msg_type = *v.first()?,
            12 if !v.is_empty() => d.hostname = Some(v),
            60 if !v.is_empty() => d.vendor_class = Some(v),
            50 if len == 4 => {
                d.requested = <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from);
            }
            51 if len == 4 => d.lease_secs = be32(v, 0),
            81 if len > 3 => {
                let flags = *v.first()?;
                let name = v.get(3..)?;
                d.fqdn = Some(if flags & 0x04 != 0 {
                    Fqdn::Wire(name)
                } else {
                    Fqdn::Ascii(name)
                });
            }
            _ => {}
        }
        off += 2 + len;
    }
    (d.msg_type != 0).then_some(d)
}

/// What a DHCPv6 client message says about its sender.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dhcp6<'a> {
    pub msg_type: u8,
    /// Link-layer address from a DUID-LLT or DUID-LL (hardware type 1).
    pub mac: Option<[u8; 6]>,
    /// Option 39, wire form.
    pub fqdn: Option<&'a [u8]>,
}

/// Parse a DHCPv6 client message (UDP to port 547). Relay messages and
/// server messages give `None`.
pub fn dhcp6(b: &[u8]) -> Option<Dhcp6<'_>> {
    let msg_type = *b.first()?;
    // SOLICIT, REQUEST, CONFIRM, RENEW, REBIND, RELEASE, DECLINE, INFORMATION-REQUEST.
    if !matches!(msg_type, 1 | 3 | 4 | 5 | 6 | 8 | 9 | 11) {
        return None;
    }
    let mut d = Dhcp6 {
        msg_type,
        ..Dhcp6::default()
    };
    let mut off = 4usize;
    for _ in 0..MAX_DHCP_OPTIONS {
        let (Some(code), Some(len)) = (be16(b, off), be16(b, off + 2)) else {
            break;
        };
        let v = b.get(off + 4..off + 4 + usize::from(len))?;
        match code {
            1 => {
                // DUID-LLT: type 1, hw type, time, lladdr; DUID-LL: type 3, hw type, lladdr.
                let ll = match (be16(v, 0), be16(v, 2)) {
                    (Some(1), Some(1)) => v.get(8..14),
                    (Some(3), Some(1)) => v.get(4..10),
                    _ => None,
                };
                d.mac = ll.and_then(|m| m.try_into().ok());
            }
            39 if len > 1 => d.fqdn = v.get(1..),
            _ => {}
        }
        off += 4 + usize::from(len);
    }
    Some(d)
}

/// A NetBIOS name a host claims for an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetbiosName {
    /// The 15-character name, trimmed, lowercased.
    pub name: String,
    /// The 16th byte: 0x00 workstation, 0x20 file server, 0x1d/0x1e groups...
    pub suffix: u8,
    pub addr: Ipv4Addr,
}

/// A NetBIOS name service registration, refresh or positive answer (UDP
/// 137) for a unique name: the name a host claims and its address.
pub fn netbios(b: &[u8]) -> Option<NetbiosName> {
    let flags = be16(b, 2)?;
    let opcode = (flags >> 11) & 0xf;
    let response = flags & 0x8000 != 0;
    // Registration (5), refresh (8/9) requests, or a positive query response.
    let registration = !response && matches!(opcode, 5 | 8 | 9);
    let answer = response && opcode == 0 && flags & 0xf == 0;
    if !(registration || answer) {
        return None;
    }
    // The name in the question (registration) or the answer (response):
    // either way the first name after the header.
    let (&len, rest) = b.get(12..)?.split_first()?;
    if len != 32 {
        return None;
    }
    let enc = rest.get(..32)?;
    let mut raw = [0u8; 16];
    for (i, pair) in enc.chunks_exact(2).enumerate() {
        let (Some(&hi), Some(&lo)) = (pair.first(), pair.get(1)) else {
            return None;
        };
        if !(b'A'..=b'P').contains(&hi) || !(b'A'..=b'P').contains(&lo) {
            return None;
        }
        *raw.get_mut(i)? = ((hi - b'A') << 4) | (lo - b'A');
    }
    let suffix = *raw.get(15)?;
    let name = printable(raw.get(..15)?.trim_ascii_end())?;
    // After the name (terminating 0 + type + class): for a registration the
    // additional record (pointer, type, class, TTL, rdlength) holds NB flags
    // and the address; for an answer the record follows directly.
    let after = 13 + 32 + 1;
    let rdata_at = if registration {
        after + 4 + 2 + 4 + 4 + 2
    } else {
        after + 4 + 4 + 2
    };
    let nb_flags = be16(b, rdata_at)?;
    if nb_flags & 0x8000 != 0 {
        return None; // a group name says nothing about one host
    }
    let a: [u8; 4] = b.get(rdata_at + 2..rdata_at + 6)?.try_into().ok()?;
    Some(NetbiosName {
        name,
        suffix,
        addr: Ipv4Addr::from(a),
    })
}

/// The MAC inside a modified EUI-64 interface identifier (SLAAC without
/// privacy extensions), if the address has one.
pub fn eui64_mac(a: &IpAddr) -> Option<[u8; 6]> {
    let IpAddr::V6(v6) = a else { return None };
    let o = v6.octets();
    let iid: [u8; 8] = o.get(8..16)?.try_into().ok()?;
    let [a0, a1, a2, ff, fe, a3, a4, a5] = iid;
    if ff != 0xff || fe != 0xfe || *v6 == Ipv6Addr::UNSPECIFIED {
        return None;
    }
    Some([a0 ^ 0x02, a1, a2, a3, a4, a5])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DHCPv4 message with the given options (code, value).
    pub(crate) fn dhcp(op: u8, chaddr: [u8; 6], yiaddr: [u8; 4], opts: &[(u8, &[u8])]) -> Vec<u8> {
        let mut m = vec![0u8; 240];
        m[0] = op;
        m[1] = 1;
        m[2] = 6;
        m[16..20].copy_from_slice(&yiaddr);
        m[28..34].copy_from_slice(&chaddr);
        m[236..240].copy_from_slice(&COOKIE);
        for (c, v) in opts {
            m.push(*c);
            m.push(v.len() as u8);
            m.extend_from_slice(v);
        }
        m.push(255);
        m
    }

    #[test]
    fn dhcp_ack_with_name_fqdn_and_vendor() {
        let mut fq = vec![0x05, 0, 0];
        for l in ["laptop-57", "corp", "example"] {
            fq.push(l.len() as u8);
            fq.extend_from_slice(l.as_bytes());
        }
        fq.push(0);
        let m = dhcp(
            2,
            [0, 0x1b, 0x21, 1, 2, 3],
            [10, 40, 0, 57],
            &[
                (53, &[5]),
                (51, &[0, 0, 0x0e, 0x10]),
                (12, b"LAPTOP-57"),
                (81, &fq),
                (60, b"MSFT 5.0"),
            ],
        );
        let d = dhcp4(&m).unwrap();
        assert_eq!((d.op, d.msg_type), (2, 5));
        assert_eq!(d.yiaddr, Ipv4Addr::new(10, 40, 0, 57));
        assert_eq!(d.lease_secs, Some(3600));
        assert_eq!(printable(d.hostname.unwrap()).unwrap(), "laptop-57");
        assert_eq!(d.fqdn.unwrap().text().unwrap(), "laptop-57.corp.example");
        assert_eq!(printable(d.vendor_class.unwrap()).unwrap(), "msft 5.0");
        for n in 0..m.len() {
            let _ = dhcp4(&m[..n]);
        }
        assert!(dhcp4(b"junk").is_none());
    }

    #[test]
    fn dhcpv6_duid_mac_and_fqdn() {
        // SOLICIT, xid, client id (DUID-LLT, hw type 1), client FQDN (flags, wire name).
        let mut m = vec![1, 0x12, 0x34, 0x56];
        m.extend_from_slice(&[0, 1, 0, 14, 0, 1, 0, 1, 0x2a, 0x2b, 0x2c, 0x2d]);
        m.extend_from_slice(&[0, 0x1b, 0x21, 1, 2, 3]);
        let mut fq = vec![0x01];
        for l in ["laptop-57", "corp", "example"] {
            fq.push(l.len() as u8);
            fq.extend_from_slice(l.as_bytes());
        }
        fq.push(0);
        m.extend_from_slice(&[0, 39, 0, fq.len() as u8]);
        m.extend_from_slice(&fq);
        let d = dhcp6(&m).unwrap();
        assert_eq!(d.mac, Some([0, 0x1b, 0x21, 1, 2, 3]));
        assert_eq!(
            Fqdn::Wire(d.fqdn.unwrap()).text().unwrap(),
            "laptop-57.corp.example"
        );
        // DUID-LL (type 3) too; a server's ADVERTISE (2) says nothing of the client.
        let ll = [1, 0, 0, 1, 0, 1, 0, 10, 0, 3, 0, 1, 0, 0x1b, 0x21, 9, 9, 9];
        assert_eq!(dhcp6(&ll).unwrap().mac, Some([0, 0x1b, 0x21, 9, 9, 9]));
        assert!(dhcp6(&[2, 0, 0, 0]).is_none());
        for n in 0..m.len() {
            let _ = dhcp6(&m[..n]);
        }
    }

    #[test]
    fn eui64_and_netbios() {
        let a: IpAddr = "fe80::21b:21ff:fe01:203".parse().unwrap();
        assert_eq!(eui64_mac(&a), Some([0, 0x1b, 0x21, 1, 2, 3]));
        assert_eq!(eui64_mac(&"2001:db8::1".parse().unwrap()), None);
        // Registration of unique name "LAPTOP-57" <00> at 10.40.0.57.
        let mut m = vec![0x80, 0x01, 0x29, 0x10, 0, 1, 0, 0, 0, 0, 0, 1, 32];
        let mut raw = *b"LAPTOP-57      \x00";
        raw[15] = 0;
        for c in raw {
            m.push(b'A' + (c >> 4));
            m.push(b'A' + (c & 0xf));
        }
        m.extend_from_slice(&[0, 0, 0x20, 0, 1]);
        m.extend_from_slice(&[
            0xc0, 12, 0, 0x20, 0, 1, 0, 0, 0x0e, 0x10, 0, 6, 0, 0, 10, 40, 0, 57,
        ]);
        let n = netbios(&m).unwrap();
        assert_eq!((n.name.as_str(), n.suffix), ("laptop-57", 0));
        assert_eq!(n.addr, Ipv4Addr::new(10, 40, 0, 57));
        for k in 0..m.len() {
            let _ = netbios(&m[..k]);
        }
    }
}
