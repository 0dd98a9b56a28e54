//! HTTP/1.x message framing on a reassembled stream: where the next message
//! starts after a head (bodies are stepped over, not buffered) and, on the
//! server side, the first body bytes of each response looked at for the
//! update protocol's magic (`[[body_magic]]` signatures, matched by the
//! worker). The
//! heads themselves are parsed by [`super::scan_request`] and
//! [`super::scan_response`]; the per-direction counters live in `flow::Dir`.

use super::{HttpRequest, RespScan};

/// Body bytes looked at for update magic.
pub const MAGIC_LEN: usize = crate::signatures::MAX_BODY_MAGIC;
/// Body bytes enough to look at when a close-delimited body has no more yet.
pub const MIN_MAGIC_LEN: usize = 4;

/// Body length of a request: `None` when chunked (nothing more to frame).
pub fn request_body(r: &HttpRequest<'_>) -> Option<u64> {
    if r.chunked {
        None
    } else {
        Some(r.content_length.unwrap_or(0))
    }
}

/// A response head with the first bytes of its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response<'a> {
    /// Head or first body bytes incomplete.
    NeedMore,
    NotHttp,
    Head {
        header_len: usize,
        /// Body length (`None` = chunked or until close).
        body: Option<u64>,
        /// The first bytes of the body (up to [`MAGIC_LEN`]; may be empty).
        first: &'a [u8],
    },
}

/// Scan the response head at the start of `b` and the first
/// [`MAGIC_LEN`] bytes of its body (fewer when the body is shorter).
pub fn response(b: &[u8]) -> Response<'_> {
    match super::scan_response(b) {
        RespScan::NeedMore => Response::NeedMore,
        RespScan::NotHttp => Response::NotHttp,
        RespScan::Response(r) => {
            let body = r.body_len();
            let head = MAGIC_LEN.min(body.map_or(MAGIC_LEN, |n| n.min(MAGIC_LEN as u64) as usize));
            // Wait for the first body bytes (bounded by the stream buffer):
            // all `head` of them, or at least MIN_MAGIC_LEN of a body that
            // ends at the connection's close when no more have come.
            let avail = b.len().saturating_sub(r.header_len).min(head);
            if avail < head.min(MIN_MAGIC_LEN) || (avail < head && body.is_some()) {
                return Response::NeedMore;
            }
            match b.get(r.header_len..r.header_len + avail) {
                None => Response::NeedMore,
                Some(first) => Response::Head {
                    header_len: r.header_len,
                    body,
                    first,
                },
            }
        }
    }
}

/// Where the stream goes after a head that ends at `off` of a `len`-byte chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// The body is unframed (chunked or until close): nothing more to find.
    Unframed,
    /// The body ends past this chunk: skip this many bytes of later segments.
    Skip(u64),
    /// The next message starts at this offset of the chunk.
    At(usize),
}

/// Step over a body of `body` bytes (see [`request_body`], `body_len`).
pub fn after_head(len: usize, off: usize, body: Option<u64>) -> Next {
    let Some(n) = body else {
        return Next::Unframed;
    };
    let avail = len.saturating_sub(off) as u64;
    if n > avail {
        Next::Skip(n - avail)
    } else {
        Next::At(off + n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_over_bodies() {
        assert_eq!(after_head(100, 40, None), Next::Unframed);
        assert_eq!(after_head(100, 40, Some(60)), Next::At(100));
        assert_eq!(after_head(100, 40, Some(70)), Next::Skip(10));
        assert_eq!(after_head(100, 40, Some(0)), Next::At(40));
    }

    #[test]
    fn response_heads() {
        assert_eq!(response(b"HTTP/1.1 200 OK\r\n"), Response::NeedMore);
        assert_eq!(response(b"SSH-2.0"), Response::NotHttp);
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(
            response(head),
            Response::NeedMore,
            "waits for the body's first bytes"
        );
        let full = [&head[..], b"0123456789"].concat();
        assert_eq!(
            response(&full),
            Response::Head {
                header_len: head.len(),
                body: Some(10),
                first: b"01234567"
            }
        );
        // A close-delimited body: four bytes are enough to look at.
        let close = b"HTTP/1.0 200 OK\r\n\r\nKLD2";
        assert!(matches!(
            response(close),
            Response::Head {
                body: None,
                first: b"KLD2",
                ..
            }
        ));
        let empty = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert!(matches!(
            response(empty),
            Response::Head { body: Some(0), .. }
        ));
    }
}
