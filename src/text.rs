//! [`Text`]: a short string kept inline (no allocation up to
//! [`INLINE_TEXT`] bytes, nearly every DNS, SNI or Host name), boxed when
//! longer. Observations (`pipeline::Obs`) carry their name in it from the
//! workers to the merger, and attributions keep theirs in it, so a flood
//! of matched names allocates and frees nothing per packet. Pure data: no
//! I/O, talks to no other module.

use arrayvec::ArrayString;
use std::fmt;

/// Bytes of a text kept inline (longer ones are boxed). A [`Text`] is 56
/// bytes.
pub const INLINE_TEXT: usize = 48;

/// A short string, inline up to [`INLINE_TEXT`] bytes. (`arrayvec`'s
/// `ArrayString` keeps the UTF-8 guarantee, so reading it back checks
/// nothing: a `from_utf8` per read cost more than the allocation saved.)
#[derive(Clone)]
pub enum Text {
    Inline(ArrayString<INLINE_TEXT>),
    Boxed(Box<str>),
}

/// `b` as a `str` when it is ASCII. (A word-at-a-time ASCII check costs a
/// fifth of `from_utf8`'s byte loop on a short name, and every matched name
/// comes through here.)
#[inline]
fn ascii(b: &[u8]) -> Option<&str> {
    // SAFETY: ASCII bytes are valid UTF-8.
    b.is_ascii()
        .then(|| unsafe { std::str::from_utf8_unchecked(b) })
}

impl Default for Text {
    fn default() -> Self {
        Text::Inline(ArrayString::new())
    }
}

impl Text {
    /// A copy of `s`.
    pub fn new(s: &str) -> Self {
        match ArrayString::from(s) {
            Ok(a) => Text::Inline(a),
            Err(_) => Text::Boxed(s.into()),
        }
    }

    /// `b` as text: a copy when it is UTF-8 (a normalised name always is:
    /// odd bytes are escaped), otherwise with invalid sequences replaced.
    pub fn from_bytes(b: &[u8]) -> Self {
        if let Some(s) = ascii(b) {
            return Text::new(s);
        }
        match std::str::from_utf8(b) {
            Ok(s) => Text::new(s),
            Err(_) => Text::Boxed(String::from_utf8_lossy(b).into()),
        }
    }

    /// Make this text [`Self::from_bytes`]`(b)` where it lies: an inline
    /// text is overwritten in place. (Built elsewhere and then moved in,
    /// the move's wide loads waited on the narrower stores of the copy
    /// that built it: a store-forwarding stall costing 4 % of a DNS flood.)
    #[inline]
    pub fn set_from_bytes(&mut self, b: &[u8]) {
        if let (Text::Inline(a), Some(s)) = (&mut *self, ascii(b)) {
            a.clear();
            if a.try_push_str(s).is_ok() {
                return;
            }
        }
        *self = Text::from_bytes(b);
    }

    pub fn as_str(&self) -> &str {
        match self {
            Text::Inline(a) => a.as_str(),
            Text::Boxed(s) => s,
        }
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        match ArrayString::from(&s) {
            Ok(a) => Text::Inline(a),
            Err(_) => Text::Boxed(s.into_boxed_str()),
        }
    }
}

impl From<&Text> for Text {
    fn from(t: &Text) -> Self {
        t.clone()
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text::new(s)
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Hashes as the `str` it holds (so as a `String` of the same text).
impl std::hash::Hash for Text {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length round-trips, inline up to INLINE_TEXT and boxed beyond;
    /// bytes that are not UTF-8 are replaced as `from_utf8_lossy` does.
    #[test]
    fn texts_round_trip_inline_and_boxed() {
        for n in 0..300 {
            let s: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            let t = Text::new(&s);
            assert_eq!(t.as_str(), s);
            assert_eq!(Text::from(s.clone()), t);
            assert_eq!(Text::from_bytes(s.as_bytes()), t);
            assert_eq!(matches!(t, Text::Inline(..)), n <= INLINE_TEXT, "{n}");
        }
        let wide = "é.日本.kaspersky.com".repeat(3);
        assert_eq!(Text::new(&wide).as_str(), wide);
        assert_eq!(Text::from_bytes(wide.as_bytes()).as_str(), wide);
        let bad = b"ab\xffcd";
        assert_eq!(Text::from_bytes(bad).as_str(), String::from_utf8_lossy(bad));
        assert_eq!(Text::default().as_str(), "");
        // Set in place over any earlier text (inline or boxed): the same as
        // built anew, whatever the length or the bytes.
        let mut t = Text::default();
        for b in [
            &b"a.kaspersky.com"[..],
            &[b'x'; INLINE_TEXT][..],
            &[b'y'; INLINE_TEXT + 1][..],
            b"",
            wide.as_bytes(),
            bad,
            b"short",
        ] {
            t.set_from_bytes(b);
            assert_eq!(t, Text::from_bytes(b), "{b:?}");
            assert_eq!(
                matches!(t, Text::Inline(..)),
                matches!(Text::from_bytes(b), Text::Inline(..)),
                "{b:?}"
            );
        }
        assert_eq!(
            format!("{}|{:?}", Text::new("x.y"), Text::new("x.y")),
            "x.y|\"x.y\""
        );
    }
}
