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
/// usual case) is copied and lowercased in one go.
#[inline]
pub fn push_label(label: &[u8], out: &mut [u8], n: &mut usize) -> bool {
    let plain = label
        .iter()
        .all(|b| matches!(b, 0x21..=0x7e) && *b != b'.' && *b != b'\\');
    if plain {
        return match out.get_mut(*n..*n + label.len()) {
            Some(dst) => {
                dst.copy_from_slice(label);
                dst.make_ascii_lowercase();
                *n += label.len();
                true
            }
            None => false,
        };
    }
    label.iter().all(|&b| push_label_byte(b, out, n))
}

/// Normalise a dotted name from SNI, Host or text: lowercase, drop one
/// trailing dot, escape odd bytes (dots stay separators). `None` if empty or
/// too long.
pub fn normalise(raw: &[u8], out: &mut [u8; MAX_NAME_LEN]) -> Option<usize> {
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

    #[test]
    fn push_label_equals_byte_by_byte() {
        // Every byte value alone, then pseudo-random labels of mixed bytes.
        let mut labels: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b'a', b, b'Z']).collect();
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
