//! Issue 14: who the device is (DHCP, DHCPv6/EUI-64, mDNS, NetBIOS, the
//! MAC's vendor, `--group-by`) and Kaspersky Security Center ports, on
//! `captures/identity.pcap` and `captures/ksc.pcap` (made by
//! `captures/make_identity.py`).

// Test code through and through: clippy.toml's allow-*-in-tests applies.
#![cfg(test)]

mod common;
use common::*;
use serde_json::Value;

fn report(args: &[&str]) -> Value {
    let mut a = vec!["read", "-q", "--format", "json"];
    a.extend_from_slice(args);
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn find<'a>(v: &'a Value, section: &str, key: &str, want: &str) -> &'a Value {
    v[section]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[key] == want)
        .unwrap_or_else(|| panic!("no {section} row with {key}={want}: {v:#}"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn dhcp_laptop_is_one_device_with_both_leases() {
    let v = report(&["captures/identity.pcap"]);
    let l = find(&v, "hosts", "device", "00:1b:21:57:00:01");
    assert_eq!(strs(&l["addresses"]), ["10.40.0.57", "10.40.0.99"]);
    assert_eq!(l["host"], "10.40.0.99", "latest address");
    assert_eq!(l["hostname"], "laptop-57");
    assert_eq!(l["fqdn"], "laptop-57.corp.example");
    assert_eq!(l["vendor_class"], "msft 5.0");
    assert_eq!(l["vendor"], "Intel Corporate");
    assert_eq!(l["callbacks"]["update"], 1);
    assert_eq!(l["callbacks"]["ksn"], 1);
}

#[test]
fn eui64_ipv6_and_leased_ipv4_are_one_device() {
    let v = report(&["captures/identity.pcap"]);
    let s = find(&v, "hosts", "device", "00:1b:21:57:00:03");
    let mut a = strs(&s["addresses"]);
    a.sort();
    assert_eq!(a, ["10.40.0.70", "2001:db8:40:0:21b:21ff:fe57:3"]);
    assert_eq!(s["hostname"], "scanner-3");
}

#[test]
fn mdns_and_netbios_names_label_hosts_without_a_lease() {
    let v = report(&["captures/identity.pcap"]);
    let p = find(&v, "hosts", "host", "10.40.0.60");
    assert_eq!(p["device"], "10.40.0.60", "no lease seen: keyed by address");
    assert_eq!(p["hostname"], "macbook-p");
    assert_eq!(p["vendor"], "Apple, Inc.");
    let n = find(&v, "hosts", "host", "10.40.0.80");
    assert_eq!(n["hostname"], "filesrv-9");
}

#[test]
fn hosts_behind_a_router_are_not_merged() {
    let v = report(&["captures/identity.pcap"]);
    for ip in ["192.0.2.10", "192.0.2.11"] {
        let h = find(&v, "hosts", "host", ip);
        assert_eq!(h["device"], ip);
        assert_eq!(strs(&h["addresses"]), [ip]);
    }
    assert_eq!(v["hosts"].as_array().unwrap().len(), 6, "{v:#}");
}

#[test]
fn group_by_ip_keeps_one_row_per_address() {
    let v = report(&["captures/identity.pcap", "--group-by", "ip"]);
    assert_eq!(v["hosts"].as_array().unwrap().len(), 8, "{v:#}");
    let l = find(&v, "hosts", "host", "10.40.0.57");
    assert_eq!(l["device"], "10.40.0.57");
    // Names still come from the lease.
    assert_eq!(l["hostname"], "laptop-57");
}

#[test]
fn identity_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("i.prom");
    let o = run(&[
        "read",
        "-q",
        "captures/identity.pcap",
        "--metrics-out",
        prom.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&prom).unwrap();
    let line = "kaswatch_host_info{host=\"00:1b:21:57:00:01\",mac=\"00:1b:21:57:00:01\",vendor=\"Intel Corporate\",hostname=\"laptop-57\",address=\"10.40.0.99\",role=\"device\",section=\"hosts\",managed=\"false\",inventory_name=\"\"} 1";
    assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
}

#[test]
fn ksc_completed_connections_only() {
    let v = report(&["captures/ksc.pcap", "--evidence", "name,content,port"]);
    let a = find(&v, "hosts", "host", "10.50.0.21");
    assert_eq!(a["callbacks"]["management"], 1);
    assert_eq!(a["evidence"]["port"], 1);
    assert_eq!(strs(&a["ksc_servers"]), ["10.50.0.5"], "managed by KSC");
    assert_eq!(a["names"][0], "10.50.0.5:13000");
    // The agent answering on its own port 15000 is the Kaspersky end.
    let c = find(&v, "hosts", "host", "10.50.0.23");
    assert_eq!(c["names"][0], "10.50.0.23:15000");
    assert_eq!(c["mac"], "00:1b:21:50:00:23");
    // SYNs refused and an unanswered datagram raise nobody; the server is no device.
    let all: Vec<&str> = ["hosts", "resolvers", "other"]
        .iter()
        .flat_map(|s| v[*s].as_array().unwrap())
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(all.len(), 2, "{all:?}");
    // By default port evidence alone lists them apart, not as devices.
    let d = report(&["captures/ksc.pcap"]);
    assert!(d["hosts"].as_array().unwrap().is_empty());
    assert_eq!(d["other"].as_array().unwrap().len(), 2);
}

#[test]
fn capture_is_what_the_generator_describes() {
    // tshark as the oracle: the DHCP names and the NetBIOS registration are on the wire.
    if !have("tshark", "capture_is_what_the_generator_describes") {
        return;
    }
    let o = std::process::Command::new("tshark")
        .args([
            "-r",
            "captures/identity.pcap",
            "-T",
            "fields",
            "-e",
            "dhcp.option.hostname",
            "-e",
            "nbns.name",
            "-e",
            "dns.resp.name",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_lowercase();
    for want in ["laptop-57", "scanner-3", "filesrv-9", "macbook-p.local"] {
        assert!(out.contains(want), "tshark does not see {want}:\n{out}");
    }
}

#[test]
fn site_content_signatures_address_and_user_agent() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site.toml");
    std::fs::write(
        &site,
        "[meta]\nversion = \"site-1\"\ndate = \"2026-11-30\"\n\n\
         [[address]]\npattern = \"203.0.113.96/28\"\ncategory = \"update\"\nsource = \"site list\"\ndate = \"2026-11-30\"\n\n\
         [[user_agent]]\npattern = \"KLUpdater/*\"\ncategory = \"update\"\nsource = \"site list\"\n",
    )
    .unwrap();
    let o = run(&[
        "read",
        "-q",
        "--events",
        "-",
        "captures/content.pcap",
        "-s",
        "signatures",
        "-s",
        site.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ev: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rows = columns(
        &ev,
        &["src_ip", "evidence", "protocol", "name", "signature"],
    );
    assert_eq!(
        rows,
        [
            // Completed handshake, names nothing: the listed address.
            [
                "10.60.0.5",
                "address",
                "ip",
                "cidr:203.0.113.96/28",
                "cidr:203.0.113.96/28"
            ],
            // The User-Agent a site lists (the Host names another site).
            [
                "10.60.0.7",
                "content",
                "http",
                "downloads.example.net",
                "ua:KLUpdater/*"
            ],
        ],
        "refused SYN, /blog/updates/ and a KLD1 body must not match"
    );
}
