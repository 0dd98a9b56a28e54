//! `kaswatch read --backfill`: the OpenMetrics file is accepted by
//! `promtool tsdb create-blocks-from openmetrics`, and a Prometheus server
//! started on the resulting data dir answers a range query with the
//! capture's hosts at the capture's time (2026-03-02T09:00Z).

// Test code through and through: clippy.toml's allow-*-in-tests applies.
#![cfg(test)]

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn backfill_blocks_answer_range_query() {
    if !have("promtool", "backfill_blocks_answer_range_query")
        || !have("prometheus", "backfill_blocks_answer_range_query")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let om = dir.path().join("history.om");
    let st = Command::new(bin())
        .args(["read", "-q", "--step", "1m", "--backfill"])
        .arg(&om)
        .arg("-s")
        .arg(signatures())
        .arg(capture("demo.pcapng"))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let text = std::fs::read_to_string(&om).unwrap();
    assert!(text.ends_with("# EOF\n"));
    assert!(
        text.contains("\n# TYPE kaswatch_host_callbacks counter\n")
            || text.starts_with("# HELP kaswatch_host_callbacks ")
    );
    // 09:00:00-09:00:01 of packet time -> one sample at the 09:01:00 boundary.
    assert!(text.contains("kaswatch_host_callbacks_total{host=\"192.168.10.21\",category=\"ksn\",protocol=\"dns\",evidence=\"name\",role=\"device\",managed=\"false\"} 2 1772442060\n"));

    let data = dir.path().join("data");
    let o = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "promtool rejected the backfill: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    let port = free_port();
    let prom = Prometheus::start(Some(&data), None, None, port);
    // 2026-03-02T09:00:00Z .. 09:10:00Z.
    let q = format!(
        "/api/v1/query_range?query={}&start=1772442000&end=1772442600&step=60",
        urlencode("kaswatch_host_callbacks_total")
    );
    let json = prom.get(&q, Duration::from_secs(30), |s| s.contains("192.168.10.26"));
    let got = query_hosts(&json);
    let mut want: Vec<((String, String), String)> = demo_expected();
    want.push((("10.8.0.6".into(), "update".into()), "1".into()));
    want.sort();
    let got: Vec<_> = got.into_iter().collect();
    assert_eq!(got, want, "range query answer: {json}");
    // The samples sit at the capture's time.
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let first_t = v["data"]["result"][0]["values"][0][0].as_f64().unwrap();
    assert!((1772442060.0..1772442600.0).contains(&first_t), "{first_t}");
}
