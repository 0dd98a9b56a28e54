//! Inventory CSV text into the parser; a parsed inventory answers lookups.
#![no_main]

use kaswatch::inventory::Inventory;
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Inventory::parse(text) {
        Ok(inv) => {
            let b = data.iter().fold(0u8, |a, b| a.wrapping_add(*b));
            let probes = [
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, b)),
                IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)),
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(b))),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ];
            for ip in probes {
                let _ = inv.lookup(ip, Some([0, 0x11, 0x22, 0x33, 0x44, b]));
                let _ = inv.lookup(ip, None);
            }
        }
        Err((line, why)) => {
            assert!(
                line >= 1 && line <= text.lines().count().max(1),
                "line {line}"
            );
            assert!(!why.is_empty());
        }
    }
});
