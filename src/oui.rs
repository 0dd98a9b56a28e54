//! MAC vendor names from the IEEE registries, read at run time from the
//! files Debian's `ieee-data` package keeps up to date
//! (`/usr/share/ieee-data/{oui,mam,oui36}.csv`; `$KASWATCH_IEEE_DATA` names
//! another directory). Loaded once, on first use, by the exporters (report,
//! events, metrics). Without the files the vendor is empty, except for
//! locally administered (randomised) addresses, which no registry names.
//!
//! Loading keeps each file's text and indexes it by prefix: per line only
//! the Assignment field is parsed (and the organisation checked for being
//! non-empty); the name itself is unquoted and trimmed on lookup. The
//! results are those of splitting every line into CSV fields (`"` toggles
//! quoting, `""` inside quotes is a literal quote, lines end at `\n` with
//! one `\r` dropped) and keeping the last non-empty name per prefix, in
//! ~21 M instructions instead of ~338 M (see BENCHMARKS.md).

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Largest registry file read (the MA-L file is ~3 MB).
pub const MAX_REGISTRY_BYTES: u64 = 32 << 20;
/// Entries kept from all registries (MA-L has ~35k).
pub const MAX_REGISTRY_ENTRIES: usize = 200_000;

/// Where an organisation's line is: (text number, byte offset of the line).
#[derive(Clone, Copy)]
struct LineRef {
    text: u32,
    offset: u32,
}

/// Hasher for index keys (one u64 each): a folded multiply, cheap and
/// well mixed in both the low bits (bucket) and the high bits (tag).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        let p = u128::from(self.0 ^ x) * 0x9E37_79B9_7F4A_7C15;
        self.0 = (p as u64) ^ ((p >> 64) as u64);
    }
}

/// Registry texts and an index: prefix (left-aligned in a u64, its bit
/// length in the low byte) -> the line naming its organisation.
#[derive(Default)]
pub struct Registry {
    texts: Vec<String>,
    index: HashMap<u64, LineRef, BuildHasherDefault<KeyHasher>>,
}

fn dir() -> PathBuf {
    std::env::var_os("KASWATCH_IEEE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/ieee-data"))
}

fn mac_bits(m: [u8; 6]) -> u64 {
    m.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b)) << 16
}

/// Index key of a left-aligned prefix of `bits` bits (24, 28 or 36: the
/// low 28 bits of `aligned` are free).
fn key(bits: u8, aligned: u64) -> u64 {
    aligned | u64::from(bits)
}

/// End of the CSV field starting at `start` (the unquoted `,` ending it, or
/// the line's length) and whether it holds a `"`. Every `"` toggles
/// quoting here: a doubled `""` inside quotes toggles twice with nothing
/// between, so it splits fields exactly as a literal quote does.
fn field_end(b: &[u8], start: usize) -> (usize, bool) {
    let mut quoted = false;
    let mut any_quote = false;
    for (i, c) in b.iter().enumerate().skip(start) {
        match c {
            b'"' => {
                quoted = !quoted;
                any_quote = true;
            }
            b',' if !quoted => return (i, any_quote),
            _ => {}
        }
    }
    (b.len(), any_quote)
}

/// A field's text without its quoting (`"` toggles, `""` inside quotes is
/// one `"`): borrowed when it holds no quote.
fn unquote(raw: &str) -> Cow<'_, str> {
    if !raw.contains('"') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut quoted = false;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                out.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether the field starting at `start` of `line`, unquoted and trimmed,
/// is non-empty; reads only up to its first non-blank character.
fn nonblank(line: &str, start: usize) -> bool {
    let b = line.as_bytes();
    let mut quoted = false;
    let mut i = start;
    while let Some(&c) = b.get(i) {
        if c == b'"' {
            if quoted && b.get(i + 1) == Some(&b'"') {
                return true; // a literal quote
            }
            quoted = !quoted;
            i += 1;
        } else if c == b',' && !quoted {
            return false;
        } else if c.is_ascii() {
            if !char::from(c).is_whitespace() {
                return true;
            }
            i += 1;
        } else {
            // Only whole characters were stepped over: `i` is a boundary.
            match line.get(i..).and_then(|s| s.chars().next()) {
                Some(ch) if ch.is_whitespace() => i += ch.len_utf8(),
                Some(_) => return true,
                None => return false,
            }
        }
    }
    false
}

/// Value of a hex digit.
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `u64::from_str_radix(s, 16)`: an optional `+`, then hex digits.
fn hex_value(s: &[u8]) -> Option<u64> {
    let digits = match s {
        [b'+', rest @ ..] if !rest.is_empty() => rest,
        [] => return None,
        _ => s,
    };
    let digit = |c: &u8| hex_digit(*c);
    if digits.len() <= 15 {
        // 15 digits cannot overflow.
        return digits
            .iter()
            .try_fold(0u64, |v, c| Some((v << 4) | u64::from(digit(c)?)));
    }
    digits.iter().try_fold(0u64, |v, c| {
        v.checked_mul(16)?.checked_add(u64::from(digit(c)?))
    })
}

/// The index key for an Assignment field's text, if it is a prefix in hex
/// of 6, 7 or 9 digits.
fn assignment_key(hex: &[u8]) -> Option<u64> {
    // As `(len * 4) as u8` did: a length of 70 digits counts as 24 bits.
    let bits = (hex.len().wrapping_mul(4) & 0xff) as u8;
    if !(bits == 24 || bits == 28 || bits == 36) {
        return None;
    }
    let v = hex_value(hex)?;
    Some(key(bits, v << (64 - u32::from(bits))))
}

/// The index key a registry line assigns, if it names an organisation:
/// field 1 is the prefix in hex (6, 7 or 9 digits), field 2 the name.
/// Any line: quotes anywhere, blanks, non-ASCII.
fn line_key(line: &str) -> Option<u64> {
    let b = line.as_bytes();
    let (end0, _) = field_end(b, 0);
    let start1 = end0.checked_add(1).filter(|s| *s <= b.len())?;
    let (end1, quoted1) = field_end(b, start1);
    let start2 = end1.checked_add(1).filter(|s| *s <= b.len())?;
    let raw1 = line.get(start1..end1)?;
    let hex = if quoted1 {
        unquote(raw1)
    } else {
        Cow::Borrowed(raw1)
    };
    let k = assignment_key(hex.as_bytes())?;
    nonblank(line, start2).then_some(k)
}

/// `line_key` for the common line: no quote in the first two fields and a
/// name starting with a printable ASCII character. `b` is the whole text
/// and the line starts at `start`. Returns the key (if any) and where the
/// search for the line's end may start, or `None` for any other line:
/// `line_key` then decides.
fn line_key_fast(b: &[u8], start: usize) -> Option<(Option<u64>, usize)> {
    let end0 = next_of(b, start, SEPARATORS);
    match b.get(end0) {
        Some(b',') => {}
        Some(b'"') => return None,
        _ => return Some((None, end0)), // one field
    }
    let end1 = next_of(b, end0 + 1, SEPARATORS);
    match b.get(end1) {
        Some(b',') => {}
        Some(b'"') => return None,
        _ => return Some((None, end1)), // two fields
    }
    let printable = |c: &u8| c.is_ascii_graphic() && *c != b'"';
    let named = match b.get(end1 + 1)? {
        b',' | b'\n' => false, // an empty name
        // An opening quote, then a character of the name.
        b'"' => b.get(end1 + 2).is_some_and(printable).then_some(true)?,
        c => printable(c).then_some(true)?,
    };
    let k = if named {
        assignment_key(b.get(end0 + 1..end1)?)
    } else {
        None
    };
    Some((k, end1 + 1))
}

/// Byte patterns (repeated in each byte of a word) searched for.
const NEWLINE: u64 = 0x0a0a_0a0a_0a0a_0a0a;
/// `,`, `"` or `\n`: the bytes that end or quote a field or end a line.
const SEPARATORS: [u64; 3] = [0x2c2c_2c2c_2c2c_2c2c, 0x2222_2222_2222_2222, NEWLINE];
const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The 8 bytes of `b` from `at` as a little-endian word, zero past the end.
fn word(b: &[u8], at: usize) -> u64 {
    match b.get(at..at.saturating_add(8)) {
        Some(s) => s.try_into().map_or(0, u64::from_le_bytes),
        None => {
            let mut w = [0u8; 8];
            let tail = b.get(at..).unwrap_or_default();
            w.iter_mut().zip(tail).for_each(|(d, s)| *d = *s);
            u64::from_le_bytes(w)
        }
    }
}

/// High bit of each byte of `w` equal to the byte repeated in `pattern`;
/// the lowest one set is exact (bits above it may be spurious).
fn matches(w: u64, pattern: u64) -> u64 {
    let x = w ^ pattern;
    x.wrapping_sub(LOW_BITS) & !x & HIGH_BITS
}

/// Index of the first byte of `b` from `at` that is one of `patterns`
/// (bytes repeated in a word; never 0), or `b.len()`. 8 bytes a step: for
/// short distances.
fn next_of<const N: usize>(b: &[u8], mut at: usize, patterns: [u64; N]) -> usize {
    while at < b.len() {
        let w = word(b, at);
        let m = patterns.iter().fold(0, |m, p| m | matches(w, *p));
        if m != 0 {
            return (at + (m.trailing_zeros() / 8) as usize).min(b.len());
        }
        at += 8;
    }
    b.len()
}

/// Index of the first `\n` of `b` from `at`, or `b.len()` (memchr: vector
/// compares of 16 or 32 bytes a step).
fn next_newline(b: &[u8], at: usize) -> usize {
    let rest = b.get(at..).unwrap_or_default();
    memchr::memchr(b'\n', rest).map_or(b.len(), |i| at + i)
}

/// The organisation named by a registry line (field 2, unquoted, trimmed).
fn line_org(line: &str) -> Option<String> {
    let b = line.as_bytes();
    let mut start = 0;
    for _ in 0..2 {
        start = field_end(b, start).0.checked_add(1)?;
    }
    let (end, _) = field_end(b, start);
    let org = unquote(line.get(start..end)?);
    let org = org.trim();
    (!org.is_empty()).then(|| org.to_string())
}

/// Lines as `str::lines` yields them, with each one's byte offset.
fn lines_at(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split_inclusive('\n').scan(0usize, |at, piece| {
        let offset = *at;
        *at += piece.len();
        let line = match piece.strip_suffix('\n') {
            Some(l) => l.strip_suffix('\r').unwrap_or(l),
            None => piece,
        };
        Some((offset, line))
    })
}

impl Registry {
    /// Parse registry CSV text (`Registry,Assignment,Organization Name,...`).
    pub fn add_csv(&mut self, text: &str) {
        self.add_text(text.to_string());
    }

    /// Index one registry text and keep it if any line is used. Later lines
    /// replace earlier ones for a prefix; once MAX_REGISTRY_ENTRIES
    /// prefixes are known, the rest (of this and later texts) is ignored.
    fn add_text(&mut self, text: String) {
        let Ok(n) = u32::try_from(self.texts.len()) else {
            return;
        };
        let room = MAX_REGISTRY_ENTRIES.saturating_sub(self.index.len());
        self.index.reserve((text.len() / 64).min(room));
        let mut used = false;
        let b = text.as_bytes();
        // Lines as `str::lines` splits them, the first (header) skipped.
        let mut start = next_newline(b, 0).saturating_add(1);
        while start < b.len() && self.index.len() < MAX_REGISTRY_ENTRIES {
            let (k, nl) = match line_key_fast(b, start) {
                Some((k, from)) => (k, next_newline(b, from)),
                None => {
                    let nl = next_newline(b, start);
                    let line = text.get(start..nl).unwrap_or_default();
                    let line = match nl < b.len() {
                        true => line.strip_suffix('\r').unwrap_or(line),
                        false => line,
                    };
                    (line_key(line), nl)
                }
            };
            if let (Some(k), Ok(offset)) = (k, u32::try_from(start)) {
                self.index.insert(k, LineRef { text: n, offset });
                used = true;
            }
            start = nl + 1;
        }
        if used {
            self.texts.push(text);
        }
    }

    /// Load the registries from the ieee-data directory (missing files are
    /// skipped: the vendor is then empty).
    pub fn load() -> Self {
        Self::load_from(&dir())
    }

    /// Load the registries from `d` (files missing, unreadable, not UTF-8 or
    /// over MAX_REGISTRY_BYTES are skipped).
    pub fn load_from(d: &Path) -> Self {
        let mut r = Registry::default();
        for f in ["oui.csv", "mam.csv", "oui36.csv"] {
            let p = d.join(f);
            let small = std::fs::metadata(&p).is_ok_and(|m| m.len() <= MAX_REGISTRY_BYTES);
            if let (true, Ok(text)) = (small, std::fs::read_to_string(&p)) {
                r.add_text(text);
            }
        }
        r
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The organisation assigned a prefix of `bits` bits (left-aligned).
    fn org(&self, bits: u8, aligned: u64) -> Option<String> {
        let at = self.index.get(&key(bits, aligned))?;
        let text = self.texts.get(usize::try_from(at.text).ok()?)?;
        let rest = text.get(usize::try_from(at.offset).ok()?..)?;
        let (_, line) = lines_at(rest).next()?;
        line_org(line)
    }

    /// The organisation a MAC's prefix is assigned to (longest prefix).
    pub fn vendor(&self, m: [u8; 6]) -> Option<String> {
        if m[0] & 0x02 != 0 {
            return Some("locally administered".into());
        }
        let v = mac_bits(m);
        [36u8, 28, 24].into_iter().find_map(|bits| {
            let mask = !0u64 << (64 - u32::from(bits));
            self.org(bits, v & mask)
        })
    }
}

/// The registry, loaded on first use.
pub fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::load)
}

/// Vendor of a MAC from the installed registry (empty string when unknown).
pub fn vendor(m: [u8; 6]) -> String {
    registry().vendor(m).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The parser this module had before the index (every line split into
    /// owned fields, every name stored): the oracle for the one above.
    mod old {
        use super::super::{mac_bits, MAX_REGISTRY_ENTRIES};
        use std::collections::HashMap;

        pub type Map = HashMap<(u8, u64), String>;

        fn fields(line: &str) -> Vec<String> {
            let mut out = Vec::new();
            let mut cur = String::new();
            let mut quoted = false;
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '"' if quoted && chars.peek() == Some(&'"') => {
                        cur.push('"');
                        chars.next();
                    }
                    '"' => quoted = !quoted,
                    ',' if !quoted => out.push(std::mem::take(&mut cur)),
                    _ => cur.push(c),
                }
            }
            out.push(cur);
            out
        }

        pub fn add_csv(by_prefix: &mut Map, text: &str) {
            for line in text.lines().skip(1) {
                if by_prefix.len() >= MAX_REGISTRY_ENTRIES {
                    break;
                }
                let f = fields(line);
                let (Some(hex), Some(org)) = (f.get(1), f.get(2)) else {
                    continue;
                };
                let bits = (hex.len() * 4) as u8;
                if !(bits == 24 || bits == 28 || bits == 36) {
                    continue;
                }
                let Ok(v) = u64::from_str_radix(hex, 16) else {
                    continue;
                };
                let org = org.trim();
                if !org.is_empty() {
                    by_prefix.insert((bits, v << (64 - u32::from(bits))), org.to_string());
                }
            }
        }

        pub fn vendor(by_prefix: &Map, m: [u8; 6]) -> Option<String> {
            if m[0] & 0x02 != 0 {
                return Some("locally administered".into());
            }
            let v = mac_bits(m);
            [36u8, 28, 24].into_iter().find_map(|bits| {
                let mask = !0u64 << (64 - u32::from(bits));
                by_prefix.get(&(bits, v & mask)).cloned()
            })
        }
    }

    /// Every prefix the index holds, with its name, as the old map held them.
    fn entries(r: &Registry) -> old::Map {
        r.index
            .keys()
            .map(|k| {
                let (bits, aligned) = ((k & 0xff) as u8, k & !0xff);
                let org = r.org(bits, aligned).expect("an indexed line names an org");
                ((bits, aligned), org)
            })
            .collect()
    }

    fn both(texts: &[&str]) -> (Registry, old::Map) {
        let mut r = Registry::default();
        let mut o = old::Map::new();
        for t in texts {
            r.add_csv(t);
            old::add_csv(&mut o, t);
        }
        (r, o)
    }

    /// A MAC whose first `bits` bits are the prefix, the rest `fill`.
    fn mac_in(bits: u8, aligned: u64, fill: u64) -> [u8; 6] {
        let low = fill & !(!0u64 << (48 - u32::from(bits)));
        let v = (aligned >> 16) | low;
        let b = v.to_be_bytes();
        [b[2], b[3], b[4], b[5], b[6], b[7]]
    }

    const HEADER: &str = "Registry,Assignment,Organization Name,Organization Address\n";

    #[test]
    fn longest_prefix_and_quotes() {
        let mut r = Registry::default();
        r.add_csv(
            "Registry,Assignment,Organization Name,Organization Address\n\
             MA-L,001B21,Intel Corporate,\"Lot 8, Jalan\"\n\
             MA-S,001B21ABC,\"Tiny \"\"Co\"\", Ltd\",x\n",
        );
        assert_eq!(
            r.vendor([0, 0x1b, 0x21, 1, 2, 3]).as_deref(),
            Some("Intel Corporate")
        );
        assert_eq!(
            r.vendor([0, 0x1b, 0x21, 0xab, 0xc1, 3]).as_deref(),
            Some("Tiny \"Co\", Ltd")
        );
        assert_eq!(r.vendor([0, 0x1c, 0, 0, 0, 0]), None);
        assert_eq!(
            r.vendor([0x02, 0, 0, 0, 0, 1]).as_deref(),
            Some("locally administered")
        );
    }

    #[test]
    fn prefix_lengths_and_longest_wins() {
        let text = format!(
            "{HEADER}MA-L,AABBCC,Large,addr\r\n\
             MA-M,AABBCCD,\"Medium, Inc.\",addr\r\n\
             MA-S,aabbccdde,  Small  ,\"a, b\"\r\n"
        );
        let (r, o) = both(&[&text]);
        assert_eq!(r.len(), 3);
        assert_eq!(entries(&r), o);
        let m = |x: [u8; 6]| r.vendor(x);
        assert_eq!(m([0xa8, 0xbb, 0xcc, 0, 0, 0]).as_deref(), None);
        assert_eq!(
            m([0xa8 | 2, 0xbb, 0xcc, 0, 0, 0]).as_deref(),
            Some("locally administered")
        );
        let r2 = {
            let mut r2 = Registry::default();
            r2.add_csv(&text.replace("AABBCC", "A8BBCC").replace("aabbcc", "a8bbcc"));
            r2
        };
        assert_eq!(
            r2.vendor([0xa8, 0xbb, 0xcc, 0x00, 0, 0]).as_deref(),
            Some("Large")
        );
        assert_eq!(
            r2.vendor([0xa8, 0xbb, 0xcc, 0xd0, 0, 0]).as_deref(),
            Some("Medium, Inc.")
        );
        assert_eq!(
            r2.vendor([0xa8, 0xbb, 0xcc, 0xdd, 0xe0, 0]).as_deref(),
            Some("Small")
        );
        assert_eq!(
            r2.vendor([0xa8, 0xbb, 0xcc, 0xdd, 0xf0, 0]).as_deref(),
            Some("Medium, Inc.")
        );
    }

    #[test]
    fn malformed_lines_and_odd_quoting_match_the_old_parser() {
        let long = "0".repeat(64) + "1B21AB";
        let long9 = "0".repeat(64) + "1B21ABCDE";
        let over = "1".repeat(64) + "1B21AB";
        let text = format!(
            "{HEADER}\
             MA-L,001122\n\
             MA-L\n\
             \n\
             MA-L,00112,Short,x\n\
             MA-L,0011223,Seven digits,x\n\
             MA-L,00112G,Not hex,x\n\
             MA-L,-01122,Minus,x\n\
             MA-L,+01122,Plus,x\n\
             MA-L,+,Plus alone,x\n\
             MA-L,++0112,Two plus,x\n\
             MA-L,\"334455\",Quoted hex,x\n\
             MA-L,33\"44\"56,Half quoted hex,x\n\
             \"MA,L\",334457,Quoted registry with comma,x\n\
             MA-L,334458,,empty org\n\
             MA-L,334459,   ,blank org\n\
             MA-L,33445A,\"\",quoted empty org\n\
             MA-L,33445B,\"\"\"\",a literal quote\n\
             MA-L,33445C,\u{a0}\u{2003} ,unicode blanks\n\
             MA-L,33445D,\u{a0}Nbsp Co\u{a0},x\n\
             MA-L,33445E,Ünïcode GmbH,x\n\
             MA-L,33445F,Trailing CR\r\n\
             MA-L,334460,\"Open quote, never closed\n\
             MA-L,334461,Two\r\r\n\
             MA-L,{long},Seventy digits,x\n\
             MA-L,{long9},Seventy-three digits,x\n\
             MA-L,{over},Seventy digits overflowing,x\n\
             MA-L,AABBCC,First,x\n\
             MA-L,AABBCC,Second,x\n\
             MA-L,AABBCC,,x\n\
             MA-L,AABBCC, \"\" ,x\n\
             MA-L,DDEEFF,\"Multi\n\
             line, address\",x\n\
             x,DDEEF0,continuation,\"\n\
             MA-L,DDEEF1,No newline at end",
        );
        let (r, o) = both(&[&text]);
        assert_eq!(entries(&r), o);
        assert!(o.len() > 10, "{o:?}");
        let get = |hex: u64| r.org(24, hex << 40);
        // `+01122` parses (as from_str_radix did) and is 6 characters long.
        assert_eq!(get(0x001122).as_deref(), Some("Plus"));
        assert_eq!(get(0x334455).as_deref(), Some("Quoted hex"));
        assert_eq!(get(0x334456).as_deref(), Some("Half quoted hex"));
        assert_eq!(get(0x334457).as_deref(), Some("Quoted registry with comma"));
        assert_eq!(get(0x334458), None);
        assert_eq!(get(0x334459), None);
        assert_eq!(get(0x33445A), None);
        assert_eq!(get(0x33445B).as_deref(), Some("\""));
        assert_eq!(get(0x33445C), None);
        assert_eq!(get(0x33445D).as_deref(), Some("Nbsp Co"));
        assert_eq!(get(0x33445E).as_deref(), Some("Ünïcode GmbH"));
        assert_eq!(get(0x33445F).as_deref(), Some("Trailing CR"));
        assert_eq!(get(0x334460).as_deref(), Some("Open quote, never closed"));
        assert_eq!(get(0x334461).as_deref(), Some("Two"));
        assert_eq!(get(0x1B21AB).as_deref(), Some("Seventy digits"));
        assert_eq!(get(0xAABBCC).as_deref(), Some("Second"));
        assert_eq!(get(0xDDEEFF).as_deref(), Some("Multi"));
        assert_eq!(get(0xDDEEF1).as_deref(), Some("No newline at end"));
    }

    #[test]
    fn later_texts_replace_earlier_ones() {
        let a = format!("{HEADER}MA-L,001B21,Old name,x\nMA-L,001B22,Kept,x\n");
        let b = format!("{HEADER}MA-L,001B21,New name,x\nMA-L,001B22,,x\n");
        let (r, o) = both(&[&a, &b]);
        assert_eq!(entries(&r), o);
        assert_eq!(r.org(24, 0x001B21 << 40).as_deref(), Some("New name"));
        assert_eq!(r.org(24, 0x001B22 << 40).as_deref(), Some("Kept"));
        // A text with no usable line is not kept.
        let mut r = Registry::default();
        r.add_csv(&format!("{HEADER}MA-L,001B21,,x\n"));
        assert!(r.is_empty() && r.texts.is_empty());
    }

    #[test]
    fn entries_stop_at_the_limit_as_before() {
        let mut text = String::from(HEADER);
        for i in 0..MAX_REGISTRY_ENTRIES {
            text.push_str(&format!("MA-L,{i:06X},Org {i}\n"));
            if i == 10 {
                // A repeated prefix does not count towards the limit.
                text.push_str("MA-L,000001,Again\n");
            }
        }
        text.push_str("MA-L,000002,After the limit\nMA-L,FFFFFF,Beyond\n");
        let later = format!("{HEADER}MA-L,FFFFFE,Later text\n");
        let mut r = Registry::default();
        r.add_csv(&text);
        r.add_csv(&later);
        assert_eq!(r.len(), MAX_REGISTRY_ENTRIES);
        assert_eq!(r.org(24, 0).as_deref(), Some("Org 0"));
        assert_eq!(r.org(24, 1 << 40).as_deref(), Some("Again"));
        assert_eq!(r.org(24, 2 << 40).as_deref(), Some("Org 2"));
        let last = (MAX_REGISTRY_ENTRIES as u64 - 1) << 40;
        assert_eq!(
            r.org(24, last),
            Some(format!("Org {}", MAX_REGISTRY_ENTRIES - 1))
        );
        assert_eq!(r.org(24, 0xFFFFFF << 40), None);
        assert_eq!(r.org(24, 0xFFFFFE << 40), None);
        assert_eq!(r.texts.len(), 1);
    }

    #[test]
    fn hex_value_is_from_str_radix() {
        for s in [
            "",
            "+",
            "-",
            "++1",
            "+1",
            "-1",
            "0",
            "1b21",
            "001B21",
            "ffffffffffffffff",
            "10000000000000000",
            "0000000000000000000001",
            "g",
            " 1",
            "1 ",
            "é1",
            "+-1",
        ] {
            assert_eq!(
                hex_value(s.as_bytes()),
                u64::from_str_radix(s, 16).ok(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn missing_unreadable_and_oversize_files_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        assert!(Registry::load_from(d.path()).is_empty());
        assert!(Registry::load_from(&d.path().join("absent")).is_empty());
        std::fs::write(
            d.path().join("mam.csv"),
            format!("{HEADER}MA-M,0011223,Mam Co,x\n"),
        )
        .unwrap();
        let mut bad = format!("{HEADER}MA-L,001122,Bad Co,x\n").into_bytes();
        bad.push(0xff); // not UTF-8: the whole file is skipped, as before
        std::fs::write(d.path().join("oui.csv"), bad).unwrap();
        std::fs::create_dir(d.path().join("oui36.csv")).unwrap();
        let r = Registry::load_from(d.path());
        assert_eq!(r.len(), 1);
        assert_eq!(
            r.vendor([0, 0x11, 0x22, 0x30, 0, 0]).as_deref(),
            Some("Mam Co")
        );
        assert_eq!(r.vendor([0, 0x11, 0x22, 0x40, 0, 0]), None);
    }

    /// One CSV field made of pieces that matter to the splitting: quotes,
    /// blanks, line ends inside quotes, hex, a sign, non-ASCII.
    fn field() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop::sample::select(vec![
                "\"", "\"\"", " ", "\u{a0}", "\t", "\r", "\n", "é", "+", "MA-L", "001B21", "1B2",
                "ab", "F", "0", "Co", "Inc.", ",",
            ]),
            0..4,
        )
        .prop_map(|p| p.concat())
    }

    /// Assignments, mostly well-formed, some repeated, some quoted.
    const HEXES: &[&str] = &[
        "001B21",
        "001B22",
        "001B21F",
        "001B21ABC",
        "+01B21",
        "\"001B21\"",
        "00\"1B\"22",
        "1B2",
        "0x1B21",
        "001b21abc",
    ];

    proptest! {
        /// Random registry texts index as the old parser stored them, and
        /// MACs under every prefix get the same vendor.
        #[test]
        fn random_csv_matches_the_old_parser(
            lines in proptest::collection::vec(
                (
                    prop_oneof![
                        proptest::collection::vec(field(), 1..5),
                        (field(), prop::sample::select(HEXES), field(), field()).prop_map(
                            |(a, h, c, d)| vec![a, h.to_string(), c, d]
                        ),
                    ],
                    prop::sample::select(vec!["\n", "\r\n", "\r\r\n", ""]),
                ),
                0..30,
            ),
            macs in proptest::collection::vec(any::<[u8; 6]>(), 4),
        ) {
            let text: String = lines.iter().map(|(f, end)| f.join(",") + end).collect();
            let (r, o) = both(&[&text, &format!("{HEADER}{text}")]);
            prop_assert_eq!(entries(&r), o.clone());
            for (bits, aligned) in o.keys() {
                for m in &macs {
                    let fill = u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]);
                    let x = mac_in(*bits, *aligned, fill);
                    prop_assert_eq!(r.vendor(x), old::vendor(&o, x));
                }
            }
        }
    }

    #[test]
    fn installed_registry_matches_the_old_parser() {
        let d = dir();
        let texts: Vec<String> = ["oui.csv", "mam.csv", "oui36.csv"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(d.join(f)).ok())
            .collect();
        if texts.is_empty() {
            let msg = format!("ieee-data not installed ({})", d.display());
            assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
            eprintln!("SKIPPED installed_registry_matches_the_old_parser: {msg}");
            return;
        }
        let mut o = old::Map::new();
        for t in &texts {
            old::add_csv(&mut o, t);
        }
        let r = Registry::load();
        assert_eq!(r.len(), o.len());
        for ((bits, aligned), org) in &o {
            assert_eq!(
                r.org(*bits, *aligned).as_ref(),
                Some(org),
                "{bits} {aligned:x}"
            );
            for fill in [0, 0x5a5a_5a5a_5a5a, !0] {
                let m = mac_in(*bits, *aligned, fill);
                assert_eq!(r.vendor(m), old::vendor(&o, m), "{m:02x?}");
            }
        }
    }

    #[test]
    fn installed_registry_names_a_known_prefix() {
        // Debian's ieee-data is installed by `make test`.
        let r = Registry::load();
        if r.is_empty() {
            let msg = "ieee-data not installed (/usr/share/ieee-data/oui.csv)";
            assert!(std::env::var("CI").map_or(true, |v| v != "true"), "{msg}");
            eprintln!("SKIPPED installed_registry_names_a_known_prefix: {msg}");
            return;
        }
        assert!(r.len() > 10_000, "{}", r.len());
        assert_eq!(
            r.vendor([0, 0x1b, 0x21, 1, 2, 3]).as_deref(),
            Some("Intel Corporate")
        );
    }
}
