//! The live HTTP endpoint (tokio + axum): `GET /metrics` renders the
//! exposition in the format the Accept header asks for (OpenMetrics or
//! Prometheus text) by asking the live merger thread (`live.rs`) for a fresh
//! snapshot over a channel; `GET /healthz` answers `ok`; `GET /` and
//! `GET /api/hosts` are the status page (`status.rs`). Stops gracefully
//! when the shutdown future completes.

use crate::export::metrics::Format;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::time::Duration;

/// How long a scrape waits for the merger thread.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// A request for a rendered exposition.
pub struct Scrape {
    pub format: Format,
    pub reply: tokio::sync::oneshot::Sender<String>,
}

async fn metrics(
    State(tx): State<crossbeam_channel::Sender<Scrape>>,
    headers: HeaderMap,
) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = Format::from_accept(accept);
    let (reply, rx) = tokio::sync::oneshot::channel();
    if tx.send(Scrape { format, reply }).is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "kaswatch is stopping\n").into_response();
    }
    match tokio::time::timeout(SCRAPE_TIMEOUT, rx).await {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics snapshot not available\n",
        )
            .into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Serve until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    scrapes: crossbeam_channel::Sender<Scrape>,
    status: crossbeam_channel::Sender<crate::export::status::Request>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(scrapes)
        .merge(crate::export::status::routes(status));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
