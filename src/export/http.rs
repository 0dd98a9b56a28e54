//! The live HTTP endpoint: hyper (HTTP/1.1) under our own accept loop, with
//! optional TLS (rustls) and basic auth from `--web-config` (`webconfig.rs`),
//! and axum routing. `GET /metrics` renders the exposition in the format the
//! Accept header asks for (OpenMetrics or Prometheus text) by asking the live
//! merger thread (`live.rs`) for a fresh snapshot over a channel;
//! `GET /healthz` answers `ok`; `GET /` and `GET /api/hosts` are the status
//! page (`status.rs`). Stops gracefully when the shutdown future completes.
//!
//! Hardening (each limit a named `MAX_*` constant, each refusal counted in
//! `kaswatch_http_rejected_total{reason}`):
//! - only GET and HEAD (405 otherwise), on known paths (404 otherwise), and
//!   no request bodies (413);
//! - request head at most [`MAX_REQUEST_HEAD_BYTES`] and [`MAX_HEADERS`]
//!   header fields (431, from hyper);
//! - at most [`MAX_CONNECTIONS`] connections at once (further ones are
//!   closed at accept); a request head must arrive within
//!   [`MAX_HEAD_READ_TIME`] of the connection or the previous response
//!   (slowloris; idle keep-alive connections close then too), a TLS
//!   handshake within [`MAX_TLS_HANDSHAKE_TIME`], and a connection lives at
//!   most [`MAX_CONNECTION_TIME`];
//! - with basic auth, every path needs credentials (401 with
//!   `WWW-Authenticate`); bcrypt runs off the runtime, at most
//!   [`MAX_CONCURRENT_AUTH`] at once;
//! - every response that reaches the router or the guard carries
//!   `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
//!   `Cache-Control: no-store`, `Referrer-Policy: no-referrer` and a
//!   `Content-Security-Policy` (`default-src 'none'` for anything but HTML;
//!   an HTML page keeps its own policy or gets a same-origin one). The bare
//!   431/400 that hyper writes itself for a head it cannot parse carries no
//!   body.

use crate::export::metrics::Format;
use crate::export::webconfig::{BasicAuth, WebConfig};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

/// How long a scrape waits for the merger thread.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more are closed as they are accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// Request line plus header fields, bytes.
pub const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;
/// Header fields in one request (Prometheus sends 6, curl 3).
pub const MAX_HEADERS: usize = 32;
/// Per-connection read buffer (hyper's minimum).
const MAX_READ_BUFFER: usize = 8 * 1024;
/// A request head must be complete this long after the connection opened or
/// the previous response went out.
pub const MAX_HEAD_READ_TIME: Duration = Duration::from_secs(5);
/// A TLS handshake must be complete this long after accept.
pub const MAX_TLS_HANDSHAKE_TIME: Duration = Duration::from_secs(10);
/// A connection is asked to close after this long (then given
/// [`CLOSE_GRACE`] to finish its request).
pub const MAX_CONNECTION_TIME: Duration = Duration::from_secs(300);
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// bcrypt verifications running at once (each takes tens of ms of CPU);
/// credentials verified before skip the queue.
pub const MAX_CONCURRENT_AUTH: usize = 1;
/// Back off this long when accept fails (out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Why a connection or request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Over [`MAX_CONNECTIONS`].
    Connections,
    /// TLS handshake failed or took too long (includes plain HTTP to a TLS port).
    Tls,
    /// Request head not complete within [`MAX_HEAD_READ_TIME`].
    Timeout,
    /// Request head over [`MAX_REQUEST_HEAD_BYTES`] or [`MAX_HEADERS`].
    TooLarge,
    /// Unparseable request head.
    BadRequest,
    /// Not GET or HEAD.
    Method,
    /// Unknown path.
    NotFound,
    /// A request with a body.
    Body,
    /// Missing or wrong credentials.
    Unauthorized,
}

impl Reject {
    pub const ALL: [Reject; 9] = [
        Reject::Connections,
        Reject::Tls,
        Reject::Timeout,
        Reject::TooLarge,
        Reject::BadRequest,
        Reject::Method,
        Reject::NotFound,
        Reject::Body,
        Reject::Unauthorized,
    ];
    pub fn label(self) -> &'static str {
        match self {
            Reject::Connections => "max_connections",
            Reject::Tls => "tls_handshake",
            Reject::Timeout => "read_timeout",
            Reject::TooLarge => "head_too_large",
            Reject::BadRequest => "bad_request",
            Reject::Method => "method",
            Reject::NotFound => "not_found",
            Reject::Body => "body",
            Reject::Unauthorized => "unauthorized",
        }
    }
}

/// Refusals by reason, shared by the accept loop and the handlers.
#[derive(Debug, Default)]
pub struct HttpStats {
    rejected: [AtomicU64; Reject::ALL.len()],
}

impl HttpStats {
    pub fn reject(&self, r: Reject) {
        if let Some(n) = self.rejected.get(r as usize) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub fn rejected(&self, r: Reject) -> u64 {
        self.rejected
            .get(r as usize)
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }
    /// The `kaswatch_http_rejected` family in format `f`.
    pub fn render(&self, f: Format) -> String {
        let help = "HTTP connections or requests refused by the endpoint, by reason.";
        let mut out = match f {
            Format::OpenMetrics => format!(
                "# HELP kaswatch_http_rejected {help}\n# TYPE kaswatch_http_rejected counter\n"
            ),
            Format::Prometheus => format!(
                "# HELP kaswatch_http_rejected_total {help}\n# TYPE kaswatch_http_rejected_total counter\n"
            ),
        };
        for r in Reject::ALL {
            out.push_str(&format!(
                "kaswatch_http_rejected_total{{reason=\"{}\"}} {}\n",
                r.label(),
                self.rejected(r)
            ));
        }
        out
    }
}

/// A request for a rendered exposition.
pub struct Scrape {
    pub format: Format,
    pub reply: tokio::sync::oneshot::Sender<String>,
}

/// State of the routes.
#[derive(Clone)]
pub struct AppState {
    pub scrapes: crossbeam_channel::Sender<Scrape>,
    pub stats: Arc<HttpStats>,
}

async fn metrics(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = Format::from_accept(accept);
    let (reply, rx) = tokio::sync::oneshot::channel();
    if st.scrapes.send(Scrape { format, reply }).is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "kaswatch is stopping\n").into_response();
    }
    match tokio::time::timeout(SCRAPE_TIMEOUT, rx).await {
        Ok(Ok(mut body)) => {
            // The endpoint's own family goes before OpenMetrics' `# EOF`.
            let own = st.stats.render(format);
            match body.strip_suffix("# EOF\n").map(str::len) {
                Some(n) => body.insert_str(n, &own),
                None => body.push_str(&own),
            }
            ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
        }
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

/// The routes (GET, and HEAD through it). Add pages here.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(state)
}

/// What the guard in front of the routes needs.
struct Guard {
    auth: Option<Arc<BasicAuth>>,
    auth_slots: Semaphore,
    stats: Arc<HttpStats>,
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Method, body and auth checks before routing; security headers after.
async fn guard(State(g): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let mut resp = check(&g, req, next).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        let html = h
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/html"));
        let csp = if html {
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        } else {
            "default-src 'none'; frame-ancestors 'none'"
        };
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        );
    }
    resp
}

async fn check(g: &Guard, req: Request, next: Next) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        g.stats.reject(Reject::Method);
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if has_body {
        g.stats.reject(Reject::Body);
        let mut r = plain(StatusCode::PAYLOAD_TOO_LARGE, "no request body accepted\n");
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    if let Some(auth) = &g.auth {
        let value = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes().to_vec());
        let ok = auth.verified(value.as_deref())
            || match g.auth_slots.acquire().await {
                Ok(_slot) => {
                    let auth = auth.clone();
                    tokio::task::spawn_blocking(move || auth.check(value.as_deref()))
                        .await
                        .unwrap_or(false)
                }
                Err(_) => false,
            };
        if !ok {
            g.stats.reject(Reject::Unauthorized);
            let mut r = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"kaswatch\", charset=\"UTF-8\""),
            );
            return r;
        }
    }
    let resp = next.run(req).await;
    if resp.status() == StatusCode::NOT_FOUND {
        g.stats.reject(Reject::NotFound);
    }
    resp
}

/// Serve the routes on `listener` as `web` says, until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    scrapes: crossbeam_channel::Sender<Scrape>,
    status: crossbeam_channel::Sender<crate::export::status::Request>,
    web: WebConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stats = Arc::new(HttpStats::default());
    let app = routes(AppState {
        scrapes,
        stats: stats.clone(),
    })
    .merge(crate::export::status::routes(status));
    serve_app(listener, app, web, stats, shutdown).await
}

/// The accept loop around any router: connection cap, TLS, guard.
pub async fn serve_app(
    listener: tokio::net::TcpListener,
    app: Router,
    web: WebConfig,
    stats: Arc<HttpStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let g = Arc::new(Guard {
        auth: web.auth.clone(),
        auth_slots: Semaphore::new(MAX_CONCURRENT_AUTH),
        stats: stats.clone(),
    });
    let app = app.layer(axum::middleware::from_fn_with_state(g, guard));
    let tls = web.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (close_tx, close_rx) = watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => {
                let stream = match r {
                    Ok((s, _)) => s,
                    Err(_) => {
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    stats.reject(Reject::Connections);
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (tls, app, stats, close) = (tls.clone(), app.clone(), stats.clone(), close_rx.clone());
                conns.spawn(async move {
                    let _slot = slot;
                    match tls {
                        Some(acceptor) => {
                            match tokio::time::timeout(MAX_TLS_HANDSHAKE_TIME, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => connection(TokioIo::new(s), app, &stats, close).await,
                                _ => stats.reject(Reject::Tls),
                            }
                        }
                        None => connection(TokioIo::new(stream), app, &stats, close).await,
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    // Stop accepting; let requests in flight finish (the caller bounds the wait).
    drop(listener);
    let _ = close_tx.send(true);
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// One HTTP/1.1 connection with the head limits and timeouts.
async fn connection<I>(io: I, app: Router, stats: &HttpStats, mut close: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(MAX_HEAD_READ_TIME)
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_REQUEST_HEAD_BYTES)
        .max_buf_size(MAX_READ_BUFFER.max(MAX_REQUEST_HEAD_BYTES))
        .keep_alive(true);
    let conn = b.serve_connection(io, TowerToHyperService::new(app));
    tokio::pin!(conn);
    let r = tokio::select! {
        r = conn.as_mut() => r,
        _ = tokio::time::sleep(MAX_CONNECTION_TIME) => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await.unwrap_or(Ok(()))
        }
        _ = close.changed() => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await.unwrap_or(Ok(()))
        }
    };
    if let Err(e) = r {
        if e.is_timeout() {
            stats.reject(Reject::Timeout);
        } else if e.is_parse_too_large() {
            stats.reject(Reject::TooLarge);
        } else if e.is_parse() {
            stats.reject(Reject::BadRequest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejected_family_in_both_formats() {
        let s = HttpStats::default();
        s.reject(Reject::Unauthorized);
        s.reject(Reject::Unauthorized);
        let p = s.render(Format::Prometheus);
        assert!(p.starts_with("# HELP kaswatch_http_rejected_total "), "{p}");
        assert!(p.contains("kaswatch_http_rejected_total{reason=\"unauthorized\"} 2\n"));
        assert!(p.contains("kaswatch_http_rejected_total{reason=\"max_connections\"} 0\n"));
        let o = s.render(Format::OpenMetrics);
        assert!(o.contains("# TYPE kaswatch_http_rejected counter\n"), "{o}");
        assert_eq!(o.lines().count(), 2 + Reject::ALL.len());
    }
}
