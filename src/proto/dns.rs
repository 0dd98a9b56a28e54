//! DNS message parsing. The hot path is zero-copy: [`questions`] walks the
//! question section straight from the packet and writes each name, lowercased
//! and escaped, into a stack buffer. Answers (A/AAAA/CNAME/HTTPS hints) are
//! parsed with hickory-proto in [`answers`], only for responses whose question
//! matched a signature, to feed the IP->name attribution map. Called by the
//! pipeline worker for UDP payloads and for messages cut from TCP streams.

pub mod tcp;

use super::name::{plain_name_word, push_label, MAX_NAME_LEN};
use crate::bytes::be16;
use std::net::IpAddr;

/// Questions read per message (mDNS packs many; RFC 1035 practice is 1).
pub const MAX_QUESTIONS: usize = 64;
/// Labels per name (255-byte wire limit / 2 bytes per label).
pub const MAX_LABELS: usize = 128;
/// Compression pointers followed per name; pointers must also go strictly backwards.
pub const MAX_POINTERS: usize = 64;
/// Answer records turned into resolutions per message.
pub const MAX_ANSWERS: usize = 64;
/// Largest wire-form name (RFC 1035 2.3.4).
pub const MAX_WIRE_NAME: usize = 255;

/// Fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }
}

pub fn header(msg: &[u8]) -> Option<Header> {
    Some(Header {
        id: be16(msg, 0)?,
        flags: be16(msg, 2)?,
        qdcount: be16(msg, 4)?,
        ancount: be16(msg, 6)?,
        nscount: be16(msg, 8)?,
        arcount: be16(msg, 10)?,
    })
}

/// Why a name could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    Truncated,
    PointerLoop,
    TooLong,
    BadLabel,
}

/// Read a (possibly compressed) name at `off`. Writes the text form into
/// `out` (root = empty) and returns (text length, offset after the name).
/// The usual name (uncompressed, or one pointer back to an uncompressed
/// name, with nothing to escape) is copied in one pass of whole words
/// ([`read_plain_name`]); any other name, and every error, is read label
/// by label ([`read_name_labels`]), with the same results.
#[inline]
pub fn read_name(
    msg: &[u8],
    off: usize,
    out: &mut [u8; MAX_NAME_LEN],
) -> Result<(usize, usize), NameError> {
    let first = msg.get(off).copied().unwrap_or(0);
    let plain = if first & 0xc0 == 0xc0 {
        // One pointer, strictly backwards, to a plain name.
        let target = msg
            .get(off + 1)
            .map(|lo| (usize::from(first & 0x3f) << 8) | usize::from(*lo))
            .filter(|t| *t < off);
        target
            .and_then(|t| read_plain_name(msg, t, out))
            .map(|(n, _)| (n, off + 2))
    } else {
        read_plain_name(msg, off, out)
    };
    match plain {
        Some(r) => Ok(r),
        None => read_name_labels(msg, off, out),
    }
}

/// The fast path of [`read_name`]: an uncompressed name at `off` whose
/// labels need no escape, written a word at a time while its length bytes
/// are walked (text byte `t` is wire byte `off + 1 + t`). `None` for
/// anything else (a pointer inside, an obsolete label type, an escape, a
/// name past the end of `msg` or longer than [`MAX_WIRE_NAME`]):
/// [`read_name_labels`] then decides, errors included.
#[inline]
fn read_plain_name(msg: &[u8], off: usize, out: &mut [u8; MAX_NAME_LEN]) -> Option<(usize, usize)> {
    let first = usize::from(*msg.get(off)?);
    if first == 0 {
        return Some((0, off + 1));
    }
    if first & 0xc0 != 0 {
        return None;
    }
    let base = off + 1;
    // Text position of the next length byte, and the wire length so far.
    let mut next = first;
    let mut wire = first + 1;
    let mut bad = 0u64;
    let mut at = 0usize;
    // A wire name of at most 255 bytes has at most 32 words of text.
    for d in out.chunks_exact_mut(8).take(MAX_WIRE_NAME / 8 + 1) {
        let x = match msg.get(base + at..base + at + 8) {
            Some(w) => u64::from_le_bytes(w.try_into().ok()?),
            // The message ends inside this word: its last 8 bytes, shifted
            // down (the bytes past its end read as 0).
            None => {
                let avail = msg.len().checked_sub(base + at)?;
                let last = msg.get(msg.len().checked_sub(8)?..)?;
                let shift = 8 * (8 - avail as u32);
                u64::from_le_bytes(last.try_into().ok()?)
                    .checked_shr(shift)
                    .unwrap_or(0)
            }
        };
        let mut sep = 0u64;
        let mut end = None;
        while next < at + 8 {
            let len = usize::from(*msg.get(base + next)?);
            if len == 0 {
                end = Some(next);
                break;
            }
            if len & 0xc0 != 0 {
                return None;
            }
            sep |= 0xff << (8 * (next - at));
            next += len + 1;
            wire += len + 1;
            if wire > MAX_WIRE_NAME {
                return None;
            }
        }
        // The name's bytes in this word: all, or those before its root.
        let keep = match end.map(|e| e - at) {
            None => u64::MAX,
            Some(0) => return (bad == 0).then_some((at, base + at + 1)),
            Some(r) => u64::MAX >> (64 - 8 * r),
        };
        let (text, b) = plain_name_word(x, sep, keep);
        bad |= b;
        d.copy_from_slice(&text.to_le_bytes());
        if let Some(e) = end {
            return (bad == 0).then_some((e, base + e + 1));
        }
        at += 8;
    }
    None
}

/// [`read_name`] label by label: any name, escapes and errors included.
pub fn read_name_labels(
    msg: &[u8],
    off: usize,
    out: &mut [u8; MAX_NAME_LEN],
) -> Result<(usize, usize), NameError> {
    let mut pos = off;
    let mut n = 0usize;
    let mut wire = 0usize;
    let mut end_after: Option<usize> = None;
    let mut pointers = 0usize;
    let mut lowest_target = off;
    for _ in 0..MAX_LABELS + MAX_POINTERS {
        let len = *msg.get(pos).ok_or(NameError::Truncated)?;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    return Ok((n, end_after.unwrap_or(pos + 1)));
                }
                let l = usize::from(len);
                wire += l + 1;
                if wire > MAX_WIRE_NAME {
                    return Err(NameError::TooLong);
                }
                let label = msg.get(pos + 1..pos + 1 + l).ok_or(NameError::Truncated)?;
                if n > 0 {
                    *out.get_mut(n).ok_or(NameError::TooLong)? = b'.';
                    n += 1;
                }
                if !push_label(label, out, &mut n) {
                    return Err(NameError::TooLong);
                }
                pos += 1 + l;
            }
            0xc0 => {
                let lo = *msg.get(pos + 1).ok_or(NameError::Truncated)?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(lo);
                if end_after.is_none() {
                    end_after = Some(pos + 2);
                }
                pointers += 1;
                // Strictly backwards from every earlier hop: loops are impossible.
                if target >= lowest_target || pointers > MAX_POINTERS {
                    return Err(NameError::PointerLoop);
                }
                lowest_target = target;
                pos = target;
            }
            _ => return Err(NameError::BadLabel), // 0x40/0x80: obsolete label types
        }
    }
    Err(NameError::TooLong)
}

/// One question, as seen by the callback of [`questions`].
#[derive(Clone, Copy, Debug)]
pub struct Question<'n> {
    /// Lowercased text form, no trailing dot; empty for the root.
    pub name: &'n [u8],
    pub qtype: u16,
    pub qclass: u16,
}

/// Outcome of walking the question section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Walk {
    pub header: Header,
    /// Questions delivered to the callback.
    pub delivered: usize,
    /// Questions skipped at [`MAX_QUESTIONS`].
    pub capped: usize,
    /// Offset after the last question read.
    pub end: usize,
    /// First name error, if the walk stopped early.
    pub error: Option<NameError>,
}

/// Walk the question section, calling `f` for each question. `None` if the
/// header is short. No allocation.
pub fn questions(msg: &[u8], f: impl FnMut(Question<'_>)) -> Option<Walk> {
    questions_in(msg, &mut [0u8; MAX_NAME_LEN], f)
}

/// [`questions`] with a caller's name buffer (no 1 KiB buffer to clear per call).
pub fn questions_in(
    msg: &[u8],
    buf: &mut [u8; MAX_NAME_LEN],
    mut f: impl FnMut(Question<'_>),
) -> Option<Walk> {
    let h = header(msg)?;
    let mut off = 12usize;
    let mut w = Walk {
        header: h,
        delivered: 0,
        capped: 0,
        end: off,
        error: None,
    };
    let qd = usize::from(h.qdcount);
    for i in 0..qd {
        if i >= MAX_QUESTIONS {
            w.capped = qd - i;
            break;
        }
        match read_name(msg, off, buf) {
            Ok((n, next)) => {
                let (Some(qtype), Some(qclass)) = (be16(msg, next), be16(msg, next + 2)) else {
                    w.error = Some(NameError::Truncated);
                    break;
                };
                off = next + 4;
                w.end = off;
                w.delivered += 1;
                f(Question {
                    name: buf.get(..n).unwrap_or(&[]),
                    qtype,
                    qclass,
                });
            }
            Err(e) => {
                w.error = Some(e);
                break;
            }
        }
    }
    Some(w)
}

/// Heuristic for DNS on ports that are not 53/5353/5355: a standard query
/// or response with 1..=4 questions of class IN/CH/HS/ANY (mDNS QU bit
/// allowed), every question readable, counts that fit the message.
pub fn plausible(msg: &[u8]) -> bool {
    let Some(h) = header(msg) else { return false };
    if h.opcode() != 0 || h.qdcount == 0 || h.qdcount > 4 || msg.len() > 65_535 {
        return false;
    }
    if (h.flags & 0x0040) != 0 {
        return false; // Z bit must be zero
    }
    if !h.is_response() && (h.ancount != 0 || h.nscount != 0 || h.arcount > 2) {
        return false;
    }
    let min_rr = 11usize;
    let rrs = usize::from(h.ancount) + usize::from(h.nscount) + usize::from(h.arcount);
    let mut ok = true;
    let w = questions(msg, |q| {
        let class = q.qclass & 0x7fff;
        if !matches!(class, 1 | 3 | 4 | 255) || q.qtype == 0 {
            ok = false;
        }
    });
    let Some(w) = w else { return false };
    ok && w.error.is_none() && w.end + rrs * min_rr <= msg.len()
}

/// Skip a (possibly compressed) name at `off`; the offset after it. Bounded
/// by [`MAX_LABELS`] labels; a pointer ends the name.
fn skip_name(msg: &[u8], mut off: usize) -> Option<usize> {
    for _ in 0..MAX_LABELS {
        let len = *msg.get(off)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Some(off + 1),
            0x00 => off += 1 + usize::from(len),
            0xc0 => return Some(off + 2),
            _ => return None,
        }
    }
    None
}

/// Walk the answer section without allocating, calling `f(address, ttl)` for
/// each A and AAAA record (at most [`MAX_ANSWERS`]). Used for every response,
/// whatever its question, to learn which addresses serve which kind of name.
/// Returns the number of address records delivered.
pub fn answer_addrs(msg: &[u8], f: impl FnMut(IpAddr, u32)) -> usize {
    questions(msg, |_| {}).map_or(0, |w| answer_addrs_after(msg, &w, f))
}

/// [`answer_addrs`] for a message whose questions the caller walked (`w`).
pub fn answer_addrs_after(msg: &[u8], w: &Walk, mut f: impl FnMut(IpAddr, u32)) -> usize {
    let mut n = 0usize;
    for_each_answer_after(msg, w, |a| {
        if let Some(addr) = record_addr(a) {
            f(addr, a.ttl);
            n += 1;
        }
        true
    });
    n
}

/// The address of an A or AAAA record of class IN with data of its size.
fn record_addr(a: &Answer<'_>) -> Option<IpAddr> {
    if a.class & 0x7fff != 1 {
        return None;
    }
    match (a.rtype, a.rdata.len()) {
        (1, 4) => <[u8; 4]>::try_from(a.rdata).ok().map(IpAddr::from),
        (28, 16) => <[u8; 16]>::try_from(a.rdata).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The addresses [`answers`] gives for `msg` (its `Resolution::Addr`
/// records, in order), without allocating, for a message whose questions the
/// caller walked (`w`). `false`: the message needs [`answers`] itself (an
/// HTTPS/SVCB record, or a record the zero-copy walker cannot take); the
/// caller then discards what `f` was given. Owner names are checked as
/// [`answers`] reads them; the usual owner, a pointer to the first
/// question, is known good from `w` and not read again.
pub fn resolved_addrs(
    msg: &[u8],
    w: &Walk,
    buf: &mut [u8; MAX_NAME_LEN],
    mut f: impl FnMut(IpAddr, u32),
) -> bool {
    // A pointer to offset 12 names the first question, which `w` read.
    let mut good_ptr: Option<(u8, u8)> = (w.delivered > 0).then_some((0xc0, 12));
    let mut ok = true;
    let complete = for_each_answer_after(msg, w, |a| {
        let ptr = a.owner_pointer(msg);
        if ptr.is_none() || ptr != good_ptr {
            if read_name(msg, a.owner_at, buf).is_err() {
                ok = false;
                return false;
            }
            if ptr.is_some() {
                good_ptr = ptr;
            }
        }
        ok = match (a.rtype, a.class & 0x7fff) {
            (64 | 65, _) => false,
            (1 | 28, 1) => match record_addr(a) {
                Some(addr) => {
                    f(addr, a.ttl);
                    true
                }
                None => false,
            },
            (5, 1) => a.cname_target(msg, buf).is_some(),
            _ => true,
        };
        ok
    });
    complete == Some(true) && ok
}

/// Like [`answer_addrs`], with each record's owner name (lowercased text):
/// mDNS and LLMNR responders announce their own names this way.
pub fn answer_owned_addrs(msg: &[u8], mut f: impl FnMut(&[u8], IpAddr, u32)) -> usize {
    let mut buf = [0u8; MAX_NAME_LEN];
    let mut n = 0usize;
    for_each_answer(msg, |a| {
        let Ok((owner_len, _)) = read_name(msg, a.owner_at, &mut buf) else {
            return false;
        };
        if let Some(addr) = record_addr(a) {
            f(buf.get(..owner_len).unwrap_or(&[]), addr, a.ttl);
            n += 1;
        }
        true
    });
    n
}

/// One record of the answer section, as [`for_each_answer`] finds it.
struct Answer<'m> {
    /// Offset of the owner name (often a compression pointer).
    owner_at: usize,
    rtype: u16,
    class: u16,
    ttl: u32,
    /// Offset of the record data, and the data.
    rdata_at: usize,
    rdata: &'m [u8],
}

impl Answer<'_> {
    /// The owner's compression pointer bytes, when the owner is one.
    fn owner_pointer(&self, msg: &[u8]) -> Option<(u8, u8)> {
        match (msg.get(self.owner_at), msg.get(self.owner_at + 1)) {
            (Some(&x), Some(&y)) if x & 0xc0 == 0xc0 => Some((x, y)),
            _ => None,
        }
    }

    /// A CNAME's target read into `buf` (its length), `None` unless the
    /// name is readable and fills the record data exactly.
    fn cname_target(&self, msg: &[u8], buf: &mut [u8; MAX_NAME_LEN]) -> Option<usize> {
        let (n, after) = read_name(msg, self.rdata_at, buf).ok()?;
        (after == self.rdata_at + self.rdata.len()).then_some(n)
    }
}

/// Walk the first [`MAX_ANSWERS`] records of the answer section in order,
/// calling `f` for each until it returns false. `Some(true)`: every record
/// up to the bound was read; `Some(false)`: stopped, by `f` or at a record
/// that cannot be read; `None`: the question section cannot be read.
fn for_each_answer<'m>(msg: &'m [u8], f: impl FnMut(&Answer<'m>) -> bool) -> Option<bool> {
    let w = questions(msg, |_| {})?;
    for_each_answer_after(msg, &w, f)
}

/// [`for_each_answer`] for a message whose question section the caller
/// has already walked (`w`, from [`questions`] on the same `msg`).
fn for_each_answer_after<'m>(
    msg: &'m [u8],
    w: &Walk,
    mut f: impl FnMut(&Answer<'m>) -> bool,
) -> Option<bool> {
    if w.error.is_some() || w.capped > 0 {
        return None;
    }
    let mut off = w.end;
    for _ in 0..usize::from(w.header.ancount).min(MAX_ANSWERS) {
        let Some(p) = skip_name(msg, off) else {
            return Some(false);
        };
        let (Some(rtype), Some(class), Some(t1), Some(t2), Some(rdlen)) = (
            be16(msg, p),
            be16(msg, p + 2),
            be16(msg, p + 4),
            be16(msg, p + 6),
            be16(msg, p + 8),
        ) else {
            return Some(false);
        };
        let rdata_at = p + 10;
        let end = rdata_at + usize::from(rdlen);
        let Some(rdata) = msg.get(rdata_at..end) else {
            return Some(false);
        };
        let a = Answer {
            owner_at: off,
            rtype,
            class,
            ttl: u32::from(t1) << 16 | u32::from(t2),
            rdata_at,
            rdata,
        };
        if !f(&a) {
            return Some(false);
        }
        off = end;
    }
    Some(true)
}

/// A resolution learned from an answer section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    Addr {
        owner: String,
        addr: IpAddr,
        ttl: u32,
    },
    Cname {
        owner: String,
        target: String,
        ttl: u32,
    },
}

/// The resolutions of a response's answer section: A, AAAA and CNAME
/// records (class IN) and HTTPS/SVCB address hints. Allocates; call only for
/// responses whose question matched. Owner and target names are in the same
/// lowercased text form as questions ([`read_name`]), so CNAME chains link
/// to the question. At most [`MAX_ANSWERS`] resolutions.
///
/// A, AAAA and CNAME are read by the zero-copy walker; a message holding an
/// HTTPS or SVCB record, or one the walker cannot read to the end of its
/// answer section, goes to hickory-proto (8x the cost, measured on a flood
/// of answers: issue 16).
pub fn answers(msg: &[u8]) -> Vec<Resolution> {
    answers_walk(msg).unwrap_or_else(|| answers_hickory(msg))
}

/// `None`: leave the message to hickory-proto.
fn answers_walk(msg: &[u8]) -> Option<Vec<Resolution>> {
    let text = super::name::to_string;
    let mut buf = [0u8; MAX_NAME_LEN];
    let mut out = Vec::new();
    // Owners are mostly one compression pointer, the same for every record:
    // decoded once.
    let mut last: Option<(u8, u8, String)> = None;
    let mut readable = true;
    let mut record = |a: &Answer<'_>| -> Option<()> {
        let ptr = a.owner_pointer(msg);
        let owner = match (&last, ptr) {
            (Some((x, y, t)), Some(p)) if (*x, *y) == p => t.clone(),
            _ => {
                let (n, _) = read_name(msg, a.owner_at, &mut buf).ok()?;
                let t = text(buf.get(..n)?);
                if let Some((x, y)) = ptr {
                    last = Some((x, y, t.clone()));
                }
                t
            }
        };
        match (a.rtype, a.class & 0x7fff) {
            (64 | 65, _) => return None,
            (1 | 28, 1) => out.push(Resolution::Addr {
                owner,
                addr: record_addr(a)?,
                ttl: a.ttl,
            }),
            (5, 1) => {
                let n = a.cname_target(msg, &mut buf)?;
                out.push(Resolution::Cname {
                    owner,
                    target: text(buf.get(..n)?),
                    ttl: a.ttl,
                });
            }
            _ => {}
        }
        Some(())
    };
    // The first MAX_ANSWERS records, as hickory's path reads them; a record
    // the walker cannot take leaves the message to hickory.
    let complete = for_each_answer(msg, |a| {
        readable = record(a).is_some();
        readable
    })?;
    (complete && readable).then_some(out)
}

/// The answer section through hickory-proto: for messages with HTTPS/SVCB
/// records (address hints) or that the walker below cannot read.
fn answers_hickory(msg: &[u8]) -> Vec<Resolution> {
    use hickory_proto::rr::RData;
    let Ok(m) = hickory_proto::op::Message::from_vec(msg) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let text = |n: &hickory_proto::rr::Name| {
        let s = n.to_ascii().to_ascii_lowercase();
        s.strip_suffix('.').map(str::to_owned).unwrap_or(s)
    };
    for r in m.answers.iter().take(MAX_ANSWERS) {
        let owner = text(&r.name);
        let ttl = r.ttl;
        match &r.data {
            RData::A(a) => out.push(Resolution::Addr {
                owner,
                addr: IpAddr::V4(a.0),
                ttl,
            }),
            RData::AAAA(a) => out.push(Resolution::Addr {
                owner,
                addr: IpAddr::V6(a.0),
                ttl,
            }),
            RData::CNAME(c) => out.push(Resolution::Cname {
                owner,
                target: text(&c.0),
                ttl,
            }),
            RData::HTTPS(hickory_proto::rr::rdata::HTTPS(svcb)) | RData::SVCB(svcb) => {
                use hickory_proto::rr::rdata::svcb::SvcParamValue;
                for (_, v) in svcb.svc_params.iter() {
                    match v {
                        SvcParamValue::Ipv4Hint(h) => {
                            for a in &h.0 {
                                out.push(Resolution::Addr {
                                    owner: owner.clone(),
                                    addr: IpAddr::V4(a.0),
                                    ttl,
                                });
                            }
                        }
                        SvcParamValue::Ipv6Hint(h) => {
                            for a in &h.0 {
                                out.push(Resolution::Addr {
                                    owner: owner.clone(),
                                    addr: IpAddr::V6(a.0),
                                    ttl,
                                });
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        if out.len() >= MAX_ANSWERS {
            out.truncate(MAX_ANSWERS);
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests;
