//! SOCKS4/4a and SOCKS5 client handshakes (RFC 1928; the SOCKS4 and 4a
//! notes): recognise a client's first bytes and measure each handshake
//! message so the flow layer can step over it to the tunnelled protocol's
//! start. The names inside (4a host, SOCKS5 domain) are not matched: the
//! tunnelled ClientHello or request carries them again. Pure functions of
//! the unparsed stream prefix; the per-direction state (which message is
//! next, layers unwrapped) is kept by `flow::Dir`.

/// Longest SOCKS4 user id / SOCKS4a host name we wait for.
pub const MAX_SOCKS4_FIELD: usize = 256;

/// What a direction's first bytes say about SOCKS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sniff {
    /// A SOCKS5 greeting has started but its method list is incomplete.
    NeedMore,
    /// SOCKS5 greeting: 05, n methods (1..=16), known method codes.
    Socks5Greeting,
    /// SOCKS4/4a request: 04, CONNECT or BIND.
    Socks4,
    /// Not a SOCKS client.
    No,
}

/// Recognise a SOCKS client's first message.
pub fn sniff(b: &[u8]) -> Sniff {
    match (b.first(), b.get(1)) {
        (Some(5), Some(&n)) if (1..=16).contains(&n) => {
            let n = usize::from(n);
            let Some(methods) = b.get(2..2 + n) else {
                return Sniff::NeedMore;
            };
            let ok = methods
                .iter()
                .all(|&m| m <= 9 || (0x80..=0xfe).contains(&m));
            let next = b.get(2 + n);
            if ok && (next.is_none() || next == Some(&5)) {
                Sniff::Socks5Greeting
            } else {
                Sniff::No
            }
        }
        (Some(4), Some(1 | 2)) if b.len() >= 9 => Sniff::Socks4,
        _ => Sniff::No,
    }
}

/// One handshake message at the start of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    NeedMore,
    /// Not a valid message: nothing more to follow on this direction.
    Invalid,
    /// A complete message of this many bytes.
    Len(usize),
}

/// SOCKS5 greeting: VER NMETHODS METHODS (already recognised by [`sniff`]).
/// The length is taken as declared: the method bytes may still be arriving.
pub fn socks5_greeting(b: &[u8]) -> Frame {
    match b.get(1) {
        Some(&n) => Frame::Len(2 + usize::from(n)),
        None => Frame::NeedMore,
    }
}

/// SOCKS5 request: VER CMD RSV ATYP DST.ADDR DST.PORT.
pub fn socks5_request(b: &[u8]) -> Frame {
    let (Some(&ver), Some(&cmd), Some(&atyp)) = (b.first(), b.get(1), b.get(3)) else {
        return Frame::NeedMore;
    };
    let n = match atyp {
        1 => 10,
        4 => 22,
        3 => match b.get(4) {
            Some(&l) => 7 + usize::from(l),
            None => return Frame::NeedMore,
        },
        _ => 0,
    };
    if ver != 5 || !(1..=3).contains(&cmd) || n == 0 {
        return Frame::Invalid;
    }
    if b.len() < n {
        return Frame::NeedMore;
    }
    Frame::Len(n)
}

/// SOCKS4 request: VER CMD PORT(2) IP(4) USERID NUL, then HOST NUL when the
/// IP is 0.0.0.x (SOCKS4a). Fields longer than [`MAX_SOCKS4_FIELD`] are invalid.
pub fn socks4_request(b: &[u8]) -> Frame {
    let socks4a = b.get(4..7) == Some(&[0, 0, 0]) && b.get(7).is_some_and(|&x| x != 0);
    let fields = if socks4a { 2 } else { 1 };
    let mut pos = 8usize;
    for _ in 0..fields {
        let window = b.get(pos..).unwrap_or(&[]);
        match window.iter().take(MAX_SOCKS4_FIELD).position(|&x| x == 0) {
            Some(z) => pos += z + 1,
            None if window.len() >= MAX_SOCKS4_FIELD => return Frame::Invalid,
            None => return Frame::NeedMore,
        }
    }
    Frame::Len(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs() {
        assert_eq!(sniff(&[5, 1, 0]), Sniff::Socks5Greeting);
        assert_eq!(sniff(&[5, 2, 0]), Sniff::NeedMore);
        assert_eq!(sniff(&[5, 1, 0, 5]), Sniff::Socks5Greeting);
        assert_eq!(sniff(&[5, 1, 0, 1]), Sniff::No, "junk after the greeting");
        assert_eq!(sniff(&[5, 1, 0x20]), Sniff::No, "unknown method");
        assert_eq!(sniff(&[4, 1, 0, 80, 1, 2, 3, 4, 0]), Sniff::Socks4);
        assert_eq!(sniff(&[4, 1, 0, 80]), Sniff::No, "too short to tell");
        assert_eq!(sniff(b"GET"), Sniff::No);
    }

    #[test]
    fn frames() {
        assert_eq!(socks5_greeting(&[5, 2]), Frame::Len(4));
        assert_eq!(
            socks5_request(&[5, 1, 0, 1, 1, 2, 3, 4, 0]),
            Frame::NeedMore
        );
        assert_eq!(
            socks5_request(&[5, 1, 0, 1, 1, 2, 3, 4, 0, 80]),
            Frame::Len(10)
        );
        assert_eq!(
            socks5_request(&[5, 1, 0, 3, 3, b'a', b'.', b'b', 0, 80]),
            Frame::Len(10)
        );
        assert_eq!(socks5_request(&[5, 9, 0, 1]), Frame::Invalid);
        assert_eq!(
            socks4_request(&[4, 1, 0, 80, 1, 2, 3, 4, b'u', 0]),
            Frame::Len(10)
        );
        assert_eq!(
            socks4_request(&[4, 1, 0, 80, 0, 0, 0, 1, 0, b'h', 0]),
            Frame::Len(11)
        );
        assert_eq!(
            socks4_request(&[4, 1, 0, 80, 0, 0, 0, 1, 0, b'h']),
            Frame::NeedMore
        );
        let long = [&[4u8, 1, 0, 80, 1, 2, 3, 4][..], &[b'u'; MAX_SOCKS4_FIELD]].concat();
        assert_eq!(socks4_request(&long), Frame::Invalid);
    }
}
