//! HTTP/1.x head scanner. Requests ([`scan_request`]): pulls method, target, Host, absolute-form or CONNECT authority, User-Agent and body framing out of a client's request. The flow layer calls [`scan_request`] with the client's reassembled TCP stream bytes from the start of the connection (possibly only a prefix), and again at the next request for pipelined requests. Responses ([`scan_response`]): status line and body framing, so the flow layer can look at the first bytes of each body for the update protocol's magic.
//!
//! Detection is by content only: the stream must start with a known method
//! token and a space ([`looks_like_http`]), so other protocols are rejected
//! from their first bytes and the caller can stop buffering. The head is
//! parsed by `httparse` into a fixed stack array of [`MAX_HTTP_HEADERS`]
//! headers; nothing is allocated and every returned slice borrows the input.
pub mod stream;

/// Most headers parsed in one request head (httparse's fixed array). Browsers
/// send 10–20; proxies and API clients rarely exceed 40. A request with more
/// is reported as [`HttpScan::NotHttp`].
pub const MAX_HTTP_HEADERS: usize = 64;

/// Largest request head (request line + headers + final CRLFCRLF) scanned:
/// 8 KiB, the default limit of nginx (`large_client_header_buffers` 8k
/// per line) and Apache (`LimitRequestFieldSize` 8190). A head that is not
/// complete within this many bytes is [`HttpScan::NotHttp`].
pub const MAX_HTTP_HEADER_BYTES: usize = 8 * 1024;

/// Longest URI scheme looked for in an absolute-form target ("https" is 5;
/// RFC 3986 sets no limit, registered schemes are far below 32).
pub const MAX_SCHEME_LEN: usize = 32;

/// Longest known method token plus its trailing space ("CONNECT ", "OPTIONS ").
pub const MAX_METHOD_PREFIX: usize = 8;

/// Methods accepted as the start of an HTTP/1 request (RFC 9110 §9 plus
/// PATCH, RFC 5789). WebDAV and other extension methods are not looked for.
const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"CONNECT ",
    b"OPTIONS ",
    b"TRACE ",
    b"PATCH ",
];

/// The head of one HTTP/1.x request. Slices borrow the input, as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpRequest<'a> {
    /// Method token, one of the known methods (see [`looks_like_http`]).
    pub method: &'a [u8],
    /// Request target as sent (origin-, absolute-, authority- or asterisk-form).
    pub target: &'a [u8],
    /// First Host header value, as sent incl. any `:port`; `None` if absent or empty.
    pub host: Option<&'a [u8]>,
    /// `host[:port]` (possibly with `userinfo@`) from an absolute-form target
    /// (`GET http://h:80/x`) or the authority-form target of CONNECT.
    pub authority: Option<&'a [u8]>,
    /// First User-Agent header value; `None` if absent or empty.
    pub user_agent: Option<&'a [u8]>,
    /// First Content-Length as a plain decimal; `None` if absent or invalid.
    pub content_length: Option<u64>,
    /// Transfer-Encoding's final coding is `chunked` (then the body length is
    /// not known from the head and Content-Length must be ignored).
    pub chunked: bool,
    /// Bytes of the head, including the final CRLFCRLF. The next pipelined
    /// request starts at `header_len + content_length` when `!chunked`.
    pub header_len: usize,
}

/// Result of scanning a stream prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpScan<'a> {
    /// Could still be an HTTP request; call again with more bytes.
    NeedMore,
    /// Not an HTTP/1.x request, or its head exceeds [`MAX_HTTP_HEADER_BYTES`]
    /// or [`MAX_HTTP_HEADERS`]. Stop buffering.
    NotHttp,
    /// A complete request head.
    Request(HttpRequest<'a>),
}

/// Scans `buf` (starting at a request) for a complete request head. Only the
/// first [`MAX_HTTP_HEADER_BYTES`] bytes are looked at; the body is not.
pub fn scan_request(buf: &[u8]) -> HttpScan<'_> {
    match looks_like_http(buf) {
        None => return HttpScan::NeedMore,
        Some(false) => return HttpScan::NotHttp,
        Some(true) => {}
    }
    let window = buf.get(..MAX_HTTP_HEADER_BYTES).unwrap_or(buf);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HTTP_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => match (req.method, req.path) {
            (Some(m), Some(p)) => Some((m.as_bytes(), p.as_bytes(), n)),
            _ => return HttpScan::NotHttp,
        },
        Ok(httparse::Status::Partial) if window.len() < MAX_HTTP_HEADER_BYTES => {
            return HttpScan::NeedMore
        }
        Ok(httparse::Status::Partial) => return HttpScan::NotHttp,
        Err(_) => None,
    };
    let mut lenient_headers = [httparse::EMPTY_HEADER; MAX_HTTP_HEADERS];
    let (method, target, header_len, hdrs): (&[u8], &[u8], usize, &[httparse::Header<'_>]) =
        match parsed {
            Some((m, p, n)) => (m, p, n, &*req.headers),
            None => match lenient(window, &mut lenient_headers) {
                Lenient::Done(m, p, n, count) => {
                    (m, p, n, lenient_headers.get(..count).unwrap_or(&[]))
                }
                Lenient::NeedMore if window.len() < MAX_HTTP_HEADER_BYTES => {
                    return HttpScan::NeedMore
                }
                Lenient::NeedMore | Lenient::Bad => return HttpScan::NotHttp,
            },
        };

    let mut out = HttpRequest {
        method,
        target,
        host: None,
        authority: None,
        user_agent: None,
        content_length: None,
        chunked: false,
        header_len,
    };
    let mut seen_length = false;
    // Bounded by MAX_HTTP_HEADERS (the array httparse filled).
    for h in hdrs.iter() {
        let value = h.value.trim_ascii();
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"host") {
            if out.host.is_none() && !value.is_empty() {
                out.host = Some(value);
            }
        } else if name.eq_ignore_ascii_case(b"user-agent") {
            if out.user_agent.is_none() && !value.is_empty() {
                out.user_agent = Some(value);
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if !seen_length {
                seen_length = true;
                out.content_length = parse_decimal(value);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // RFC 9112 §6.3: chunked framing iff chunked is the final coding.
            let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
            out.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
        }
    }
    out.authority = if method == b"CONNECT" {
        (!target.is_empty()).then_some(target)
    } else {
        absolute_authority(target)
    };
    HttpScan::Request(out)
}

enum Lenient<'a> {
    Done(&'a [u8], &'a [u8], usize, usize),
    NeedMore,
    Bad,
}

/// Fallback for request lines httparse rejects but servers (and tshark)
/// accept, such as a space or raw byte inside the target: `METHOD SP target
/// SP HTTP/1.x CRLF`, then ordinary headers.
fn lenient<'a>(buf: &'a [u8], headers: &mut [httparse::Header<'a>]) -> Lenient<'a> {
    let Some(eol) = buf.iter().position(|&b| b == b'\n') else {
        return Lenient::NeedMore;
    };
    let line = buf.get(..eol).unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(sp) = line.iter().position(|&b| b == b' ') else {
        return Lenient::Bad;
    };
    let method = line.get(..sp).unwrap_or_default();
    let Some(rest) = line.get(sp + 1..) else {
        return Lenient::Bad;
    };
    let Some(target) = rest
        .strip_suffix(b" HTTP/1.1")
        .or_else(|| rest.strip_suffix(b" HTTP/1.0"))
    else {
        return Lenient::Bad;
    };
    let target = target.trim_ascii();
    if target.is_empty() || target.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Lenient::Bad;
    }
    let Some(after) = buf.get(eol + 1..) else {
        return Lenient::NeedMore;
    };
    match httparse::parse_headers(after, headers) {
        Ok(httparse::Status::Complete((n, h))) => {
            Lenient::Done(method, target, eol + 1 + n, h.len())
        }
        Ok(httparse::Status::Partial) => Lenient::NeedMore,
        Err(_) => Lenient::Bad,
    }
}

/// Cheap test of a stream's first bytes: `Some(true)` once they start with a
/// known method token and a space, `Some(false)` as soon as no known method
/// can match, `None` while the bytes are a proper prefix of one (at most
/// [`MAX_METHOD_PREFIX`] bytes are needed).
pub fn looks_like_http(prefix: &[u8]) -> Option<bool> {
    let head = prefix.get(..MAX_METHOD_PREFIX).unwrap_or(prefix);
    let mut undecided = false;
    for m in METHODS {
        if head.starts_with(m) {
            return Some(true);
        }
        if m.starts_with(head) {
            undecided = true;
        }
    }
    if undecided {
        None
    } else {
        Some(false)
    }
}

/// A response head: status and how its body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Bytes up to and including the blank line.
    pub header_len: usize,
    pub content_length: Option<u64>,
    pub chunked: bool,
}

impl HttpResponse {
    /// Bytes of body that follow the head, when known (`None` = until close).
    pub fn body_len(&self) -> Option<u64> {
        if self.status < 200 || self.status == 204 || self.status == 304 {
            Some(0)
        } else if self.chunked {
            None
        } else {
            self.content_length
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespScan {
    NeedMore,
    NotHttp,
    Response(HttpResponse),
}

/// `Some(true)` once the bytes start with `HTTP/1.`, `None` while they are a prefix of it.
pub fn looks_like_response(prefix: &[u8]) -> Option<bool> {
    const P: &[u8] = b"HTTP/1.";
    let n = prefix.len().min(P.len());
    if prefix.get(..n) != P.get(..n) {
        Some(false)
    } else if n < P.len() {
        None
    } else {
        Some(true)
    }
}

/// Scan a response head (server side of a connection), headers only.
pub fn scan_response(buf: &[u8]) -> RespScan {
    match looks_like_response(buf) {
        None => return RespScan::NeedMore,
        Some(false) => return RespScan::NotHttp,
        Some(true) => {}
    }
    let window = buf.get(..MAX_HTTP_HEADER_BYTES).unwrap_or(buf);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HTTP_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let header_len = match resp.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if window.len() < MAX_HTTP_HEADER_BYTES => {
            return RespScan::NeedMore
        }
        _ => return RespScan::NotHttp,
    };
    let mut out = HttpResponse {
        status: resp.code.unwrap_or(0),
        header_len,
        content_length: None,
        chunked: false,
    };
    let mut seen_length = false;
    for h in resp.headers.iter() {
        let value = h.value.trim_ascii();
        if h.name.eq_ignore_ascii_case("content-length") && !seen_length {
            seen_length = true;
            out.content_length = parse_decimal(value);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
            out.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
        }
    }
    RespScan::Response(out)
}

/// Host part of a `host[:port]` (Host header or authority) for name matching:
/// strips `userinfo@`, `:port`, and the brackets of an IPv6 literal. A bare
/// IPv6 address (two or more colons, no brackets) is returned whole. `None`
/// when nothing is left or a `[` is never closed. Not lowercased.
pub fn host_for_match(hostport: &[u8]) -> Option<&[u8]> {
    let hp = hostport.trim_ascii();
    let hp = match hp.iter().rposition(|&b| b == b'@') {
        Some(at) => hp.get(at + 1..)?,
        None => hp,
    };
    let host = if let Some(inner) = hp.strip_prefix(b"[") {
        let close = inner.iter().position(|&b| b == b']')?;
        inner.get(..close)?
    } else {
        let mut colons = hp.iter().enumerate().filter(|&(_, &b)| b == b':');
        match (colons.next(), colons.next()) {
            (Some((i, _)), None) => hp.get(..i)?,
            _ => hp,
        }
    };
    (!host.is_empty()).then_some(host)
}

/// Authority of an absolute-form target `scheme://authority[/?#...]`.
fn absolute_authority(target: &[u8]) -> Option<&[u8]> {
    split_absolute(target)
        .map(|(authority, _)| authority)
        .filter(|a| !a.is_empty())
}

/// Split an absolute-form request target (RFC 9112 §3.2.2)
/// `scheme://authority[/path][?query][#fragment]` into its authority
/// (possibly empty) and what follows it (from the `/`, `?` or `#`; possibly
/// empty). `None` for origin-form and anything whose scheme (looked for in
/// the first [`MAX_SCHEME_LEN`] bytes) is not `ALPHA *(ALPHA / DIGIT / + - .)`.
/// The one `://` parser: Host matching and update-path matching both use it.
pub fn split_absolute(target: &[u8]) -> Option<(&[u8], &[u8])> {
    let head = target.get(..MAX_SCHEME_LEN + 3).unwrap_or(target);
    let sep = head.windows(3).position(|w| w == b"://")?;
    let scheme = target.get(..sep)?;
    let valid_scheme = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !valid_scheme {
        return None;
    }
    // Linear in the target, which is bounded by MAX_HTTP_HEADER_BYTES.
    let rest = target.get(sep + 3..)?;
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    Some((rest.get(..end)?, rest.get(end..)?))
}

/// Plain decimal (no sign, no spaces) that fits a u64.
fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(buf: &[u8]) -> HttpRequest<'_> {
        match scan_request(buf) {
            HttpScan::Request(r) => r,
            other => panic!("expected Request, got {other:?}"),
        }
    }

    const GET: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: www.kaspersky.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

    #[test]
    fn plain_get() {
        let r = req(GET);
        assert_eq!(r.method, b"GET");
        assert_eq!(r.target, b"/index.html");
        assert_eq!(r.host, Some(&b"www.kaspersky.com"[..]));
        assert_eq!(r.user_agent, Some(&b"curl/8.5.0"[..]));
        assert_eq!(r.authority, None);
        assert_eq!(r.content_length, None);
        assert!(!r.chunked);
        assert_eq!(r.header_len, GET.len());
    }

    #[test]
    fn lower_case_host_with_port() {
        let r =
            req(b"GET / HTTP/1.1\r\nhost: ksn.kaspersky-labs.com:8080\r\nuser-agent: x\r\n\r\n");
        assert_eq!(r.host, Some(&b"ksn.kaspersky-labs.com:8080"[..]));
        assert_eq!(r.user_agent, Some(&b"x"[..]));
        assert_eq!(
            host_for_match(r.host.unwrap()),
            Some(&b"ksn.kaspersky-labs.com"[..])
        );
    }

    #[test]
    fn absolute_form_target() {
        let r = req(b"GET http://upd.kaspersky.com/x HTTP/1.1\r\nHost: upd.kaspersky.com\r\n\r\n");
        assert_eq!(r.target, b"http://upd.kaspersky.com/x");
        assert_eq!(r.authority, Some(&b"upd.kaspersky.com"[..]));
        let r = req(b"GET HTTP://u:p@upd.kaspersky.com:80?q HTTP/1.1\r\n\r\n");
        assert_eq!(r.authority, Some(&b"u:p@upd.kaspersky.com:80"[..]));
        assert_eq!(
            host_for_match(r.authority.unwrap()),
            Some(&b"upd.kaspersky.com"[..])
        );
        assert_eq!(req(b"GET /a://b HTTP/1.1\r\n\r\n").authority, None);
    }

    #[test]
    fn connect_target_is_authority() {
        let r = req(b"CONNECT dc1.ksn.kaspersky-labs.com:443 HTTP/1.1\r\nHost: dc1.ksn.kaspersky-labs.com:443\r\n\r\n");
        assert_eq!(r.method, b"CONNECT");
        assert_eq!(r.authority, Some(&b"dc1.ksn.kaspersky-labs.com:443"[..]));
        assert_eq!(
            host_for_match(r.authority.unwrap()),
            Some(&b"dc1.ksn.kaspersky-labs.com"[..])
        );
    }

    #[test]
    fn every_prefix_needs_more() {
        for n in 0..GET.len() {
            assert_eq!(scan_request(&GET[..n]), HttpScan::NeedMore, "prefix {n}");
        }
    }

    #[test]
    fn pipelined_requests() {
        let mut buf =
            b"POST /a HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\nhello".to_vec();
        buf.extend_from_slice(b"GET /b HTTP/1.1\r\nHost: b.example\r\n\r\n");
        let first = req(&buf);
        assert_eq!(first.host, Some(&b"a.example"[..]));
        assert_eq!(first.content_length, Some(5));
        let next = first.header_len + usize::try_from(first.content_length.unwrap()).unwrap();
        let second = req(&buf[next..]);
        assert_eq!(second.method, b"GET");
        assert_eq!(second.host, Some(&b"b.example"[..]));
        assert_eq!(next + second.header_len, buf.len());
    }

    #[test]
    fn chunked_and_bad_length() {
        let r = req(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\nContent-Length: +3\r\n\r\n",
        );
        assert!(r.chunked);
        assert_eq!(r.content_length, None);
        let r = req(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
        assert!(!r.chunked);
    }

    #[test]
    fn http10_without_host() {
        let r = req(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(r.host, None);
        assert_eq!(r.user_agent, None);
        assert_eq!(r.header_len, 18);
    }

    #[test]
    fn binary_junk_is_not_http() {
        assert_eq!(scan_request(&[0x16, 0x03, 0x01, 0x00]), HttpScan::NotHttp);
        assert_eq!(
            scan_request(b"\x00\xff\x10GET / HTTP/1.1\r\n\r\n"),
            HttpScan::NotHttp
        );
        assert_eq!(scan_request(b"EHLO mail.example\r\n"), HttpScan::NotHttp);
        assert_eq!(
            scan_request(b"GET / HTTP/1.1\r\nHo\x00st: a\r\n\r\n"),
            HttpScan::NotHttp
        );
        assert_eq!(looks_like_http(b"X"), Some(false));
        assert_eq!(looks_like_http(b"GE"), None);
        assert_eq!(looks_like_http(b"GET"), None);
        assert_eq!(looks_like_http(b"GET "), Some(true));
        assert_eq!(looks_like_http(b"GETX"), Some(false));
        assert_eq!(looks_like_http(b""), None);
    }

    #[test]
    fn oversized_head_is_not_http() {
        let mut buf = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        buf.resize(MAX_HTTP_HEADER_BYTES + 10, b'a');
        assert_eq!(scan_request(&buf), HttpScan::NotHttp);
        // Exactly at the cap but unfinished: still not HTTP.
        assert_eq!(
            scan_request(&buf[..MAX_HTTP_HEADER_BYTES]),
            HttpScan::NotHttp
        );
        assert_eq!(
            scan_request(&buf[..MAX_HTTP_HEADER_BYTES - 1]),
            HttpScan::NeedMore
        );
    }

    #[test]
    fn too_many_headers_is_not_http() {
        let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HTTP_HEADERS {
            buf.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        assert_eq!(scan_request(&buf), HttpScan::NotHttp);
    }

    #[test]
    fn host_for_match_forms() {
        assert_eq!(
            host_for_match(b"[2001:db8::1]:8080"),
            Some(&b"2001:db8::1"[..])
        );
        assert_eq!(host_for_match(b"[2001:db8::1]"), Some(&b"2001:db8::1"[..]));
        assert_eq!(host_for_match(b"2001:db8::1"), Some(&b"2001:db8::1"[..]));
        assert_eq!(
            host_for_match(b"Example.COM:443"),
            Some(&b"Example.COM"[..])
        );
        assert_eq!(
            host_for_match(b"user:pw@kaspersky.com:80"),
            Some(&b"kaspersky.com"[..])
        );
        assert_eq!(
            host_for_match(b"kaspersky.com."),
            Some(&b"kaspersky.com."[..])
        );
        assert_eq!(host_for_match(b""), None);
        assert_eq!(host_for_match(b":80"), None);
        assert_eq!(host_for_match(b"[]:80"), None);
        assert_eq!(host_for_match(b"[2001:db8::1"), None);
        assert_eq!(host_for_match(b"u@"), None);
    }

    #[test]
    fn random_input_never_panics() {
        let mut rng = crate::testrng::XorShift64(0x243f_6a88_85a3_08d3);
        let mut next = move || rng.next();
        let alphabet = b"GET /:@[]\r\nHost: a.b\x00\xff";
        for _ in 0..20_000 {
            let len = (next() % 200) as usize;
            let mut buf: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() as usize) % alphabet.len()])
                .collect();
            if next() % 2 == 0 {
                buf.splice(0..0, b"GET ".iter().copied());
            }
            if let HttpScan::Request(r) = scan_request(&buf) {
                assert!(r.header_len <= buf.len());
                if let Some(h) = r.host {
                    let _ = host_for_match(h);
                }
            }
            let _ = host_for_match(&buf);
        }
    }
}
