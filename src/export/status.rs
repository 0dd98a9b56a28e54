//! The status page on the metrics listener: `GET /` answers one
//! self-contained HTML page (`status.html`: no external assets, works
//! offline) that fetches `GET /api/hosts` every few seconds and shows the
//! hosts table (sortable, filterable), totals and sensor health.
//!
//! `/api/hosts` is the report of `read --format json` (sections `hosts`,
//! `resolvers`, `other`, same rows) plus `totals` and `health`. The state
//! belongs to the driver's merger thread (`live.rs`, or `read --serve` in
//! `run.rs`): the handler sends it a [`Request`] and awaits the rendered
//! JSON, as `/metrics` does with a scrape.

use crate::export::metrics::Snapshot;
use crate::export::report;
use crate::hosts::Section;
use crate::signatures::Category;
use crate::timefmt::rfc3339;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use std::time::{Duration, Instant};

/// The page, embedded in the binary.
pub const PAGE: &str = include_str!("status.html");

/// How long `/api/hosts` waits for the merger thread.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A request for the rendered `/api/hosts` JSON.
pub struct Request {
    pub reply: tokio::sync::oneshot::Sender<String>,
}

/// What the driver knows beyond the merger's snapshot.
pub struct Info {
    /// `live` or `read`.
    pub mode: &'static str,
    /// Interfaces (live) or capture files (read).
    pub sources: Vec<String>,
    /// When the sensor started.
    pub started: Instant,
    /// `--max-hosts`.
    pub max_hosts: usize,
}

/// The routes `/` and `/api/hosts`, answered through `requests`.
pub fn routes(requests: crossbeam_channel::Sender<Request>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/hosts", get(api))
        .with_state(requests)
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, page_csp()),
        ],
        PAGE,
    )
        .into_response()
}

/// The page's own Content-Security-Policy: nothing but its one inline
/// style and script (allowed by their SHA-256, not by 'unsafe-inline') and
/// requests back to this origin (`/api/hosts`).
fn page_csp() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        use base64::Engine;
        let hash = |open: &str, close: &str| -> String {
            let body = PAGE
                .split_once(open)
                .and_then(|(_, rest)| rest.split_once(close))
                .map_or("", |(b, _)| b);
            let d = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(d.as_ref())
            )
        };
        format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            hash("<script>", "</script>"),
            hash("<style>", "</style>")
        )
    })
}

async fn api(State(tx): State<crossbeam_channel::Sender<Request>>) -> Response {
    let (reply, rx) = tokio::sync::oneshot::channel();
    if tx.send(Request { reply }).is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "kaswatch is stopping\n").into_response();
    }
    match tokio::time::timeout(TIMEOUT, rx).await {
        Ok(Ok(body)) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "host table not available\n",
        )
            .into_response(),
    }
}

/// The `/api/hosts` document: the JSON report plus `totals` and `health`.
pub fn render(snap: &Snapshot<'_>, info: &Info) -> String {
    let hosts = snap.hosts;
    let sel = hosts.selection;
    let (mut devices, mut resolvers, mut other, mut managed) = (0u64, 0u64, 0u64, 0u64);
    for h in hosts.iter() {
        match h.section(&sel) {
            Section::Devices => {
                devices += 1;
                managed += u64::from(h.managed);
            }
            Section::Resolvers => resolvers += 1,
            Section::Other => other += 1,
        }
    }
    let by_category: serde_json::Map<String, serde_json::Value> = Category::ALL
        .iter()
        .zip(snap.callbacks.iter())
        .map(|(c, per_proto)| (c.as_str().to_string(), json!(per_proto.iter().sum::<u64>())))
        .collect();
    let callbacks: u64 = snap.callbacks.iter().flatten().sum();
    let c = snap.counters;
    let kernel: u64 = snap.interfaces.iter().map(|i| i.dropped_kernel).sum();
    let iface: u64 = snap.interfaces.iter().map(|i| i.dropped_interface).sum();
    let limit_drops: u64 = c.limit_drops.iter().sum();
    let interfaces: Vec<serde_json::Value> = snap
        .interfaces
        .iter()
        .map(|i| {
            json!({"name": i.name, "packets": i.packets, "bytes": i.bytes,
                   "dropped_kernel": i.dropped_kernel, "dropped_interface": i.dropped_interface})
        })
        .collect();
    let signatures: usize = snap.signatures.iter().map(|(_, n)| n).sum();
    let newest = hosts.iter().map(|h| h.last_seen).max();
    let extra = json!({
        "totals": {
            "hosts": devices,
            "managed": managed,
            "unmanaged": devices - managed,
            "resolvers": resolvers,
            "other": other,
            "callbacks": callbacks,
            "by_category": by_category,
        },
        "health": {
            "version": snap.version,
            "mode": info.mode,
            "sources": info.sources,
            "uptime_seconds": info.started.elapsed().as_secs(),
            "packets": c.packets,
            "bytes": c.bytes,
            "decode_errors": c.total_decode_errors(),
            "limit_drops": limit_drops,
            "dropped_kernel": kernel,
            "dropped_interface": iface,
            "interfaces": interfaces,
            "hosts_tracked": hosts.len(),
            "max_hosts": info.max_hosts,
            "evicted_capacity": hosts.evicted_capacity,
            "refused": hosts.refused,
            "evicted_idle": hosts.evicted_idle,
            "signatures": signatures,
            "event_write_errors": snap.event_write_errors,
            "last_packet": newest.map(rfc3339),
            "evidence": sel.evidence.to_string(),
        },
    });
    splice(&report::render(hosts, report::Format::Json), &extra)
}

/// Add the members of `extra` (an object) to the JSON object `report`.
fn splice(report: &str, extra: &serde_json::Value) -> String {
    let extra = extra.to_string();
    let (Some(body), Some(inner)) = (
        report.trim_end().strip_suffix('}'),
        extra.strip_prefix('{').and_then(|e| e.strip_suffix('}')),
    ) else {
        return extra;
    };
    let body = body.trim_end();
    let sep = if body.ends_with('{') { "" } else { "," };
    format!("{body}{sep}{inner}}}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_adds_members() {
        let extra = json!({"totals": {"hosts": 1}});
        let s = splice("{\n  \"hosts\": []\n}\n", &extra);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["hosts"], json!([]));
        assert_eq!(v["totals"]["hosts"], json!(1));
        let s = splice("{}\n", &extra);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["totals"]["hosts"], json!(1));
    }

    #[test]
    fn page_is_self_contained() {
        for external in ["http://", "https://", "src=\"//", "@import"] {
            assert!(!PAGE.contains(external), "page refers to {external}");
        }
        assert!(PAGE.contains("/api/hosts") && PAGE.contains("/metrics"));
    }
}
