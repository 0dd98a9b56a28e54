//! Name normalisation shared by every protocol: ASCII lowercase, one trailing
//! dot removed, non-printable and non-ASCII bytes escaped as `\DDD` (the
//! zone-file convention) so a hostile byte can never create a false label
//! boundary or break a log line. Writes into caller-provided stack buffers.

/// Longest name in text form: 255 wire bytes, each possibly escaped to 4 bytes.
pub const MAX_NAME_LEN: usize = 1024;

/// Appends one raw label byte in text form; `false` when `out` is full.
#[inline]
pub fn push_label_byte(b: u8, out: &mut [u8], n: &mut usize) -> bool {
    let lower = b.to_ascii_lowercase();
    let mut tmp = [0u8; 4];
    let src: &[u8] = match lower {
        b'.' | b'\\' => {
            tmp[0] = b'\\';
            tmp[1] = lower;
            &tmp[..2]
        }
        0x21..=0x7e => {
            tmp[0] = lower;
            &tmp[..1]
        }
        _ => {
            tmp = [b'\\', b'0' + b / 100, b'0' + (b / 10) % 10, b'0' + b % 10];
            &tmp[..]
        }
    };
    match out.get_mut(*n..*n + src.len()) {
        Some(dst) => {
            dst.copy_from_slice(src);
            *n += src.len();
            true
        }
        None => false,
    }
}

/// Appends a whole raw label in text form (as [`push_label_byte`] for each
/// byte); `false` when `out` is full. A label of plain printable bytes (the
/// usual case) is checked, lowercased and copied eight bytes at a time.
/// Bytes of `out` past the text written may be overwritten (at most 7).
#[inline]
pub fn push_label(label: &[u8], out: &mut [u8], n: &mut usize) -> bool {
    let Some(dst) = out.get_mut(*n..).filter(|d| d.len() >= label.len()) else {
        // Too long as plain text; escaping only makes it longer.
        return false;
    };
    if copy_plain(label, dst) {
        *n += label.len();
        return true;
    }
    label.iter().all(|&b| push_label_byte(b, out, n))
}

/// One word of a DNS name's text for [`crate::proto::dns::read_name`]: the
/// 8 wire bytes `x` lowercased, the bytes `sep` marks (0xff in each byte
/// that is a length byte) written as `.`, the bytes `keep` leaves out (0 in
/// each byte past the name's end) as anything. Also returns the high bit of
/// every kept byte other than a length byte that is not printable ASCII, or
/// is `.` or `\\` (then the label needs escapes: not a plain name). A
/// name's uncompressed wire form from its second byte is its text with each
/// later length byte where a dot goes (lengths, 1-63, are not capitals:
/// lowering leaves them).
#[inline]
pub fn plain_name_word(x: u64, sep: u64, keep: u64) -> (u64, u64) {
    const PAD: u64 = u64::from_le_bytes([b'a'; 8]);
    const DOTS: u64 = ONES * b'.' as u64;
    let x = (x & keep) | (PAD & !keep);
    let bad = bad_bytes(x) & !sep;
    ((lower_word(x) & !sep) | (DOTS & sep), bad)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `x` that is not printable ASCII other than
/// `.` and `\\` (the exact SWAR forms "hasless", "hasmore", "haszero").
#[inline]
fn bad_bytes(x: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    ((x.wrapping_sub(ONES * 0x21) & !x)
        | (x.wrapping_add(ONES) | x)
        | zero(x ^ (ONES * u64::from(b'.')))
        | zero(x ^ (ONES * u64::from(b'\\'))))
        & HIGH
}

/// `x` with ASCII capitals lowercased (exact when no byte is bad: every
/// byte below 0x80, so no carries).
#[inline]
fn lower_word(x: u64) -> u64 {
    let upper = x.wrapping_add(ONES * (0x80 - 0x41)) & !x.wrapping_add(ONES * (0x80 - 0x5b));
    x | ((upper & HIGH) >> 2)
}

/// The last bytes of `src`, `rest` (1 to 7 of them, what 8-byte steps
/// left), as a little-endian word with zeros above. Built in a register:
/// bytes stored to a stack buffer and loaded back as one word stall store
/// forwarding (a third of a DNS name's decoding time, most labels being
/// short). From a source of 8 bytes or more, its last 8 bytes are loaded
/// and shifted down.
#[inline]
fn tail_word(src: &[u8], rest: &[u8]) -> u64 {
    let r = rest.len();
    let last8 = src
        .len()
        .checked_sub(8)
        .and_then(|at| src.get(at..))
        .and_then(|t| <[u8; 8]>::try_from(t).ok());
    match last8 {
        Some(t) => u64::from_le_bytes(t) >> (8 * (8 - r)),
        None => rest
            .iter()
            .enumerate()
            .take(7)
            .fold(0u64, |x, (i, b)| x | (u64::from(*b) << (8 * i))),
    }
}

/// Copies `src` lowercased into the start of `dst` (at least as long) when
/// every byte is printable ASCII other than `.` and `\\`; `false` otherwise
/// (`dst` then holds partial output the caller overwrites). Eight bytes per
/// step, stored as whole words: the last word may write up to 7 bytes of
/// `dst` past `src.len()` when `dst` has room.
#[inline]
fn copy_plain(src: &[u8], dst: &mut [u8]) -> bool {
    let mut bad = 0u64;
    let mut s = src.chunks_exact(8);
    let mut at = 0;
    for sc in &mut s {
        let x = u64::from_le_bytes(<[u8; 8]>::try_from(sc).unwrap_or([0; 8]));
        bad |= bad_bytes(x);
        if let Some(d) = dst.get_mut(at..at + 8) {
            d.copy_from_slice(&lower_word(x).to_le_bytes());
        }
        at += 8;
    }
    let sr = s.remainder();
    if !sr.is_empty() {
        // Pad with a plain byte so only the real bytes can be bad.
        const PAD: u64 = u64::from_le_bytes([b'a'; 8]);
        let r = sr.len();
        let x = tail_word(src, sr);
        let keep = u64::MAX >> (8 * (8 - r));
        let x = (x & keep) | (PAD & !keep);
        bad |= bad_bytes(x);
        let w = lower_word(x).to_le_bytes();
        match dst.get_mut(at..at + 8) {
            Some(d) => d.copy_from_slice(&w),
            None => {
                for (o, b) in dst.iter_mut().skip(at).zip(w).take(r) {
                    *o = b;
                }
            }
        }
    }
    bad == 0
}

/// High bit set in exactly the bytes of `x` that are `.` (no false
/// positives above a match, unlike the borrow-based "haszero").
#[inline]
fn dot_bytes(x: u64) -> u64 {
    const DOTS: u64 = ONES * b'.' as u64;
    let t = x ^ DOTS;
    !(((t & !HIGH).wrapping_add(!HIGH)) | t) & HIGH
}

/// [`copy_plain`] for a whole dotted name: `src` lowercased into the start
/// of `out` when every byte is printable ASCII other than `\\` (dots are
/// separators, kept as they are), eight bytes per step; `false` otherwise
/// or when it does not fit (`out` then holds partial output).
#[inline]
fn copy_plain_dotted(src: &[u8], out: &mut [u8; MAX_NAME_LEN]) -> bool {
    if src.len() > MAX_NAME_LEN {
        return false;
    }
    let mut bad = 0u64;
    let mut words = src.chunks_exact(8);
    let mut dst = out.chunks_exact_mut(8);
    for (w, d) in (&mut words).zip(&mut dst) {
        let x = u64::from_le_bytes(<[u8; 8]>::try_from(w).unwrap_or([0; 8]));
        let (text, b) = plain_name_word(x, (dot_bytes(x) >> 7).wrapping_mul(0xff), u64::MAX);
        bad |= b;
        d.copy_from_slice(&text.to_le_bytes());
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let r = tail.len();
        let x = tail_word(src, tail);
        let keep = u64::MAX >> (8 * (8 - r));
        let sep = (dot_bytes(x) >> 7).wrapping_mul(0xff) & keep;
        let (text, b) = plain_name_word(x, sep, keep);
        bad |= b;
        // `out` has room for a whole word here: src.len() <= MAX_NAME_LEN,
        // a multiple of 8.
        match out.get_mut(src.len() - r..src.len() - r + 8) {
            Some(d) => d.copy_from_slice(&text.to_le_bytes()),
            None => return false,
        }
    }
    bad == 0
}

/// Normalise a dotted name from SNI, Host or text: lowercase, drop one
/// trailing dot, escape odd bytes (dots stay separators). `None` if empty or
/// too long. A plain name (printable ASCII, no `\\`) is copied eight bytes
/// at a time ([`copy_plain_dotted`]), any other label by label through
/// [`push_label`]; the same text as byte by byte (fixture
/// `normalise_equals_byte_by_byte`). Up to 7 bytes of `out` past the text
/// may be overwritten.
pub fn normalise(raw: &[u8], out: &mut [u8; MAX_NAME_LEN]) -> Option<usize> {
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    if raw.is_empty() {
        return None;
    }
    if copy_plain_dotted(raw, out) {
        return Some(raw.len());
    }
    let mut n = 0usize;
    // As many labels as dots + 1, each adding at least its dot: `out` (and
    // so the loop) ends within MAX_NAME_LEN steps.
    for (i, label) in raw.split(|&b| b == b'.').enumerate() {
        if i > 0 {
            *out.get_mut(n)? = b'.';
            n += 1;
        }
        if !push_label(label, out, &mut n) {
            return None;
        }
    }
    Some(n)
}

/// Text form as a `String` (only for events and reports).
pub fn to_string(name: &[u8]) -> String {
    // Normalised names are ASCII: the plain check is the fast path.
    match std::str::from_utf8(name) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(name).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-by-byte normalisation [`normalise`] must equal.
    fn normalise_bytewise(raw: &[u8], out: &mut [u8; MAX_NAME_LEN]) -> Option<usize> {
        let raw = raw.strip_suffix(b".").unwrap_or(raw);
        if raw.is_empty() {
            return None;
        }
        let mut n = 0usize;
        for &b in raw {
            if b == b'.' {
                *out.get_mut(n)? = b'.';
                n += 1;
            } else if !push_label_byte(b, out, &mut n) {
                return None;
            }
        }
        Some(n)
    }

    #[test]
    fn normalise_equals_byte_by_byte() {
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b".".to_vec(),
            b"..".to_vec(),
            b"a..b.".to_vec(),
            b"DnL-01.GEO.Kaspersky.COM.".to_vec(),
            b".leading.dot".to_vec(),
            b"x\\y.\x00z".to_vec(),
            vec![b'a'; 300],
            vec![b'.'; 1100],
            vec![0xff; 256],
            vec![0xff; 257],
            [vec![b'a'; 1020], b".b".to_vec()].concat(),
            [vec![b'a'; 1023], b".".to_vec()].concat(),
            [vec![b'a'; 1024], b".".to_vec()].concat(),
        ];
        // Every byte value at every place of a short dotted name.
        for b in 0..=255u8 {
            for at in 0..14 {
                let mut l = b"Ab.cd-EfGhIj.k".to_vec();
                l[at] = b;
                cases.push(l);
            }
        }
        // Pseudo-random names over a small alphabet heavy in dots and odd bytes.
        let alphabet = b"aZ.-_\\\x00\x7f\xff.9";
        let mut rng = crate::testrng::XorShift64(0x2545_f491_4f6c_dd1d);
        for _ in 0..20_000 {
            let x = rng.next();
            let len = (x % 90) as usize;
            let name: Vec<u8> = (0..len)
                .map(|i| alphabet[((x >> (i % 60)) as usize + i) % alphabet.len()])
                .collect();
            cases.push(name);
        }
        for raw in &cases {
            let (mut a, mut b) = ([0u8; MAX_NAME_LEN], [0u8; MAX_NAME_LEN]);
            let (na, nb) = (normalise(raw, &mut a), normalise_bytewise(raw, &mut b));
            assert_eq!(na, nb, "{raw:?}");
            if let Some(n) = na {
                assert_eq!(a[..n], b[..n], "{raw:?}");
            }
        }
    }

    #[test]
    fn push_label_equals_byte_by_byte() {
        // Every byte value alone, then pseudo-random labels of mixed bytes.
        let mut labels: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b'a', b, b'Z']).collect();
        // Every byte value at every place of a label longer than two 8-byte steps.
        for b in 0..=255u8 {
            for at in 0..19 {
                let mut l = b"Ab-Z0_xYzAbCdEfGhIj".to_vec();
                l[at] = b;
                labels.push(l);
            }
        }
        // Every byte value at every place of every length up to two words:
        // the tail word is built from the source's last 8 bytes (8 or more)
        // or byte by byte (shorter).
        for len in 1..17usize {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut l = b"AbCdEfGhIjKlMnOpQ"[..len].to_vec();
                    l[at] = b;
                    labels.push(l);
                }
            }
        }
        let mut x = 0x9e37_79b9_u32;
        for len in 0..64usize {
            let l = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    // Mostly printable, sometimes anything.
                    if x % 7 == 0 {
                        (x >> 8) as u8
                    } else {
                        0x21 + (x >> 8) as u8 % 94
                    }
                })
                .collect();
            labels.push(l);
        }
        for l in &labels {
            let (mut a, mut b) = ([0u8; MAX_NAME_LEN], [0u8; MAX_NAME_LEN]);
            let (mut na, mut nb) = (0, 0);
            assert!(push_label(l, &mut a, &mut na));
            assert!(l.iter().all(|&c| push_label_byte(c, &mut b, &mut nb)));
            assert_eq!(a[..na], b[..nb], "{l:?}");
        }
        // Full buffer: refused, like the byte path.
        let mut small = [0u8; 4];
        let mut n = 0;
        assert!(!push_label(b"abcde", &mut small, &mut n));
        // A buffer with no room for a whole last word: the tail is stored
        // byte by byte, nothing past it.
        for len in 1..20 {
            let label = &b"AbCdEfGhIjKlMnOpQrS"[..len];
            let mut exact = vec![0u8; len];
            let mut n = 0;
            assert!(push_label(label, &mut exact, &mut n));
            assert_eq!(exact, label.to_ascii_lowercase(), "{len}");
        }
    }

    fn norm(s: &[u8]) -> Option<String> {
        let mut b = [0u8; MAX_NAME_LEN];
        normalise(s, &mut b).map(|n| String::from_utf8(b[..n].to_vec()).unwrap())
    }

    #[test]
    fn lowercases_strips_one_dot_escapes() {
        assert_eq!(norm(b"KASPERSKY.COM.").as_deref(), Some("kaspersky.com"));
        assert_eq!(norm(b"a.com..").as_deref(), Some("a.com."));
        assert_eq!(norm(b"").as_deref(), None);
        assert_eq!(norm(b".").as_deref(), None);
        assert_eq!(norm(b"a\x00b\xff.com").as_deref(), Some("a\\000b\\255.com"));
        assert_eq!(norm(b"a\\b").as_deref(), Some("a\\\\b"));
        assert_eq!(norm(&[b'a'; 2000]), None);
    }
}
