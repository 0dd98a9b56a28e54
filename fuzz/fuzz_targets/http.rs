//! HTTP request and response heads, Host handling, and the shipped content
//! signatures (update paths as globs, body magic) applied to what they yield.
#![no_main]

use kaswatch::matcher::Matcher;
use kaswatch::proto::name::{self, MAX_NAME_LEN};
use kaswatch::proto::{http, kupdate};
use kaswatch::signatures::SignatureSet;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn matcher() -> &'static Matcher {
    static M: OnceLock<Matcher> = OnceLock::new();
    M.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../signatures");
        Matcher::new(&SignatureSet::load_paths(&[dir]).unwrap_or_default())
    })
}

fuzz_target!(|buf: &[u8]| {
    let m = matcher();
    let _ = http::looks_like_http(buf);
    let _ = http::looks_like_response(buf);
    if let http::HttpScan::Request(r) = http::scan_request(buf) {
        assert!(r.header_len <= buf.len());
        if let Some(p) = kupdate::request_path(r.target) {
            let _ = m.http_path(p);
        }
        if let Some(ua) = r.user_agent {
            let _ = m.user_agent(ua);
        }
        let mut out = [0u8; MAX_NAME_LEN];
        for h in [r.host, r.authority].into_iter().flatten() {
            if let Some(host) = http::host_for_match(h) {
                let _ = name::normalise(host, &mut out);
            }
        }
    }
    if let http::RespScan::Response(r) = http::scan_response(buf) {
        assert!(r.header_len <= buf.len());
        let _ = r.body_len();
        let _ = m.body_magic(buf.get(r.header_len..).unwrap_or(&[]));
    }
    let _ = http::host_for_match(buf);
    let _ = m.http_path(buf);
    let _ = kupdate::request_path(buf);
});
