//! Metrics exposition of `kaswatch read --metrics-out`: the exact text for
//! captures/demo.pcapng against tests/fixtures/demo.prom, the OpenMetrics
//! variant, `promtool check metrics`, and the --max-hosts cardinality cap
//! with 50k matching hosts.

// Test code through and through: clippy.toml's allow-*-in-tests applies.
#![cfg(test)]

mod common;

use common::*;
use std::process::Command;

fn read_metrics(capture: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> String {
    let st = Command::new(bin())
        .arg("read")
        .arg(capture)
        .arg("-s")
        .arg(signatures())
        .arg("--metrics-out")
        .arg(out)
        .arg("-q")
        .args(extra)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "kaswatch read failed: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    std::fs::read_to_string(out).unwrap()
}

/// The build version is the only line that changes between releases.
fn normalise(s: &str) -> String {
    s.lines()
        .map(|l| {
            if l.starts_with("kaswatch_build_info{") {
                "kaswatch_build_info{version=\"VERSION\"} 1"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn demo_exposition_matches_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let text = read_metrics(&capture("demo.pcapng"), &dir.path().join("demo.prom"), &[]);
    let expected = std::fs::read_to_string(root().join("tests/fixtures/demo.prom")).unwrap();
    assert_eq!(
        normalise(&text),
        normalise(&expected),
        "exposition differs from tests/fixtures/demo.prom"
    );
    assert!(text.contains(&format!(
        "kaswatch_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    )));
}

#[test]
fn demo_exposition_names_types_labels() {
    let dir = tempfile::tempdir().unwrap();
    let text = read_metrics(&capture("demo.pcapng"), &dir.path().join("demo.prom"), &[]);
    for (name, ty) in [
        ("kaswatch_host_callbacks_total", "counter"),
        ("kaswatch_host_first_seen_timestamp_seconds", "gauge"),
        ("kaswatch_host_last_seen_timestamp_seconds", "gauge"),
        ("kaswatch_host_info", "gauge"),
        ("kaswatch_hosts", "gauge"),
        ("kaswatch_callbacks_total", "counter"),
        ("kaswatch_packets_total", "counter"),
        ("kaswatch_bytes_total", "counter"),
        ("kaswatch_capture_dropped_packets_total", "counter"),
        ("kaswatch_decode_errors_total", "counter"),
        ("kaswatch_limit_drops_total", "counter"),
        ("kaswatch_hosts_evicted_total", "counter"),
        ("kaswatch_hosts_refused_total", "counter"),
        ("kaswatch_signatures", "gauge"),
        ("kaswatch_build_info", "gauge"),
    ] {
        assert!(
            text.contains(&format!("\n# TYPE {name} {ty}\n")),
            "missing TYPE for {name}"
        );
    }
    for line in [
        "kaswatch_host_callbacks_total{host=\"192.168.10.21\",category=\"ksn\",protocol=\"dns\",evidence=\"name\",role=\"device\",managed=\"false\"} 2",
        "kaswatch_host_callbacks_total{host=\"2001:db8:10::23\",category=\"update\",protocol=\"dns\",evidence=\"name\",role=\"device\",managed=\"false\"} 1",
        "kaswatch_host_first_seen_timestamp_seconds{host=\"192.168.10.21\",managed=\"false\"} 1772442000.011",
        "kaswatch_host_info{host=\"192.168.10.22\",mac=\"00:1b:21:aa:00:22\",vendor=\"Intel Corporate\",hostname=\"\",address=\"192.168.10.22\",role=\"device\",section=\"hosts\",managed=\"false\",inventory_name=\"\"} 1",
        "kaswatch_host_info{host=\"10.8.0.6\",mac=\"\",vendor=\"\",hostname=\"\",address=\"10.8.0.6\",role=\"device\",section=\"hosts\",managed=\"false\",inventory_name=\"\"} 1",
        "kaswatch_hosts{managed=\"false\"} 5",
        "kaswatch_callbacks_total{category=\"update\",protocol=\"dns\"} 6",
        "kaswatch_callbacks_total{category=\"ksn\",protocol=\"dns\"} 3",
        "kaswatch_packets_total{interface=\"file\"} 74",
        "kaswatch_bytes_total{interface=\"file\"} 5949",
        "kaswatch_capture_dropped_packets_total{interface=\"file\",reason=\"kernel\"} 0",
        "kaswatch_hosts_evicted_total{reason=\"capacity\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "missing line: {line}");
    }
    // No timestamps, no instance label.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        assert_eq!(
            l.rsplit('}').next().unwrap_or(l).split_whitespace().count(),
            if l.contains('}') { 1 } else { 2 },
            "{l}"
        );
        assert!(!l.contains("instance="), "{l}");
    }
}

#[test]
fn demo_openmetrics_variant() {
    let dir = tempfile::tempdir().unwrap();
    let text = read_metrics(&capture("demo.pcapng"), &dir.path().join("demo.om"), &[]);
    assert!(
        text.contains("\n# TYPE kaswatch_host_callbacks counter\nkaswatch_host_callbacks_total{")
    );
    assert!(text.contains("\n# TYPE kaswatch_host info\nkaswatch_host_info{"));
    assert!(text.contains("\n# TYPE kaswatch_build info\nkaswatch_build_info{"));
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn promtool_check_metrics_clean() {
    if !have("promtool", "promtool_check_metrics_clean") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for cap in ["demo.pcapng", "tunnels.pcap"] {
        let out = dir.path().join(format!("{cap}.prom"));
        read_metrics(&capture(cap), &out, &[]);
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!("promtool check metrics < '{}'", out.display()))
            .output()
            .unwrap();
        let msg = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.status.success() && msg.trim().is_empty(),
            "promtool check metrics on {cap}: {msg}"
        );
    }
}

#[test]
fn cardinality_capped_by_max_hosts() {
    const N: u32 = 50_000;
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("many.pcap");
    let mut w = PcapWriter::create(&pcap, 1);
    let t0 = 1_772_442_000_000_000_000u64;
    for i in 0..N {
        let src = [10, (i >> 16) as u8 + 100, (i >> 8) as u8, i as u8];
        w.packet(
            t0 + u64::from(i) * 1_000_000,
            &dns_query(src, i as u16, "s01.upd.kaspersky.com"),
        );
    }
    drop(w);
    let text = read_metrics(
        &pcap,
        &dir.path().join("many.prom"),
        &["--max-hosts", "1000", "--workers", "1"],
    );
    let series = |p: &str| text.lines().filter(|l| l.starts_with(p)).count();
    assert_eq!(series("kaswatch_host_callbacks_total{"), 1000);
    assert_eq!(series("kaswatch_host_info{"), 1000);
    assert_eq!(series("kaswatch_host_last_seen_timestamp_seconds{"), 1000);
    for line in [
        "kaswatch_hosts{managed=\"false\"} 1000",
        "kaswatch_limit_drops_total{limit=\"max_hosts\"} 49000",
        "kaswatch_callbacks_total{category=\"update\",protocol=\"dns\"} 50000",
        "kaswatch_packets_total{interface=\"file\"} 50000",
    ] {
        assert!(text.lines().any(|l| l == line), "missing line: {line}");
    }
    // At the full table each one-time sender is refused (a few slip past
    // the doorkeeper and evict): refused + evicted = 49000, nearly all refused.
    let value = |p: &str| -> u64 {
        let l = text.lines().find(|l| l.starts_with(p)).unwrap();
        l.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let evicted = value("kaswatch_hosts_evicted_total{reason=\"capacity\"}");
    let refused = value("kaswatch_hosts_refused_total ");
    assert_eq!(evicted + refused, 49_000);
    assert!(evicted < 1_000, "{evicted} evicted");
}

#[test]
fn inventory_marks_hosts_managed() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.csv");
    std::fs::write(
        &inv,
        "address,name\n192.168.10.21,\"Reception PC\"\n2001:db8:10::/64\n",
    )
    .unwrap();
    let text = read_metrics(
        &capture("demo.pcapng"),
        &dir.path().join("inv.prom"),
        &["--inventory", inv.to_str().unwrap()],
    );
    for line in [
        "kaswatch_hosts{managed=\"false\"} 3",
        "kaswatch_hosts{managed=\"true\"} 2",
        "kaswatch_host_callbacks_total{host=\"192.168.10.21\",category=\"ksn\",protocol=\"dns\",evidence=\"name\",role=\"device\",managed=\"true\"} 2",
        "kaswatch_host_info{host=\"192.168.10.21\",mac=\"00:1b:21:aa:00:21\",vendor=\"Intel Corporate\",hostname=\"\",address=\"192.168.10.21\",role=\"device\",section=\"hosts\",managed=\"true\",inventory_name=\"Reception PC\"} 1",
        "kaswatch_host_info{host=\"2001:db8:10::23\",mac=\"00:1b:21:aa:00:23\",vendor=\"Intel Corporate\",hostname=\"\",address=\"2001:db8:10::23\",role=\"device\",section=\"hosts\",managed=\"true\",inventory_name=\"\"} 1",
        "kaswatch_host_info{host=\"192.168.10.22\",mac=\"00:1b:21:aa:00:22\",vendor=\"Intel Corporate\",hostname=\"\",address=\"192.168.10.22\",role=\"device\",section=\"hosts\",managed=\"false\",inventory_name=\"\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing line: {line}");
    }
    std::fs::write(&inv, "192.168.10.21\nnot-an-address\n").unwrap();
    let o = Command::new(bin())
        .arg("read")
        .arg(capture("demo.pcapng"))
        .arg("--inventory")
        .arg(&inv)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("inventory.csv:2:"), "{err}");
}
