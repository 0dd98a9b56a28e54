//! HTTP request and response heads, Host handling and the update-path and
//! body-magic rules applied to what they yield.
#![no_main]

use kaswatch::proto::name::{self, MAX_NAME_LEN};
use kaswatch::proto::{http, kupdate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|buf: &[u8]| {
    let _ = http::looks_like_http(buf);
    let _ = http::looks_like_response(buf);
    if let http::HttpScan::Request(r) = http::scan_request(buf) {
        assert!(r.header_len <= buf.len());
        let _ = kupdate::match_path(r.target);
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
        let _ = kupdate::match_magic(buf.get(r.header_len..).unwrap_or(&[]));
    }
    let _ = http::host_for_match(buf);
    let _ = kupdate::match_path(buf);
});
