//! DNS over TCP (RFC 1035 §4.2.2, RFC 7766): each message is preceded by a
//! two-byte length. Recognises a stream of them on any port and cuts it into
//! messages for [`super::questions`] and [`super::answers`]; the flow layer keeps
//! the direction's state and the bytes still to skip.

use crate::bytes::be16;

/// Smallest message worth a look: header (12) + a one-label question (5).
const MIN_QUERY: u16 = 17;

/// DNS over TCP on another port: a length prefix and a plausible header
/// (`None` = need more bytes).
#[inline]
pub fn looks_like_dns(b: &[u8]) -> Option<bool> {
    let (Some(len), Some(hdr)) = (be16(b, 0), b.get(2..14)) else {
        return None;
    };
    Some(super::header(hdr).is_some_and(|x| {
        len >= MIN_QUERY
            && x.opcode() == 0
            && (1..=4).contains(&x.qdcount)
            && (x.is_response() || (x.ancount == 0 && x.nscount == 0 && x.arcount <= 2))
    }))
}

/// One length-prefixed message at the start of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    NeedMore,
    /// Shorter than a DNS header: not DNS.
    Invalid,
    /// A whole message (without its length prefix); it and the prefix take
    /// `2 + msg.len()` bytes of the stream.
    Message(&'a [u8]),
    /// A message longer than `max` bytes that is not all here: skip this
    /// many bytes of later segments.
    Skip(u64),
}

/// Cut the next message off `b`; messages that would need more than `max`
/// bytes of buffer are skipped instead of held.
pub fn frame(b: &[u8], max: usize) -> Frame<'_> {
    let Some(len) = be16(b, 0) else {
        return Frame::NeedMore;
    };
    let len = usize::from(len);
    if len < 12 {
        return Frame::Invalid;
    }
    match b.get(2..2 + len) {
        Some(msg) => Frame::Message(msg),
        None if 2 + len > max => Frame::Skip((2 + len - b.len()) as u64),
        None => Frame::NeedMore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        assert_eq!(frame(&[0], 100), Frame::NeedMore);
        assert_eq!(frame(&[0, 11], 100), Frame::Invalid);
        let mut m = vec![0u8, 12];
        m.extend_from_slice(&[0; 12]);
        m.push(9);
        assert_eq!(frame(&m, 100), Frame::Message(&[0; 12]));
        assert_eq!(frame(&m[..10], 100), Frame::NeedMore);
        assert_eq!(frame(&m[..10], 13), Frame::Skip(4));
    }

    #[test]
    fn recognises() {
        // id, flags (standard query), qd=1, an=ns=ar=0
        let mut q = vec![0u8, 30, 0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(looks_like_dns(&q[..13]), None);
        assert_eq!(looks_like_dns(&q), Some(true));
        q[1] = 16;
        assert_eq!(looks_like_dns(&q), Some(false), "too short for a question");
        q[1] = 30;
        q[9] = 1; // an answer in a query
        assert_eq!(looks_like_dns(&q), Some(false));
    }
}
