//! Checked reads over borrowed bytes, shared by every parser: fixed-offset
//! big- and little-endian integers ([`be16`], [`be32`], [`le16`], [`le32`])
//! and a [`Reader`] cursor for length-prefixed structures. Every read returns
//! `None` past the end instead of panicking; nothing allocates.

/// Byte at `at`.
#[inline]
pub fn byte(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

#[inline]
fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Big-endian u16 at `at`.
#[inline]
pub fn be16(b: &[u8], at: usize) -> Option<u16> {
    array(b, at).map(u16::from_be_bytes)
}

/// Big-endian u32 at `at`.
#[inline]
pub fn be32(b: &[u8], at: usize) -> Option<u32> {
    array(b, at).map(u32::from_be_bytes)
}

/// Little-endian u16 at `at`.
#[inline]
pub fn le16(b: &[u8], at: usize) -> Option<u16> {
    array(b, at).map(u16::from_le_bytes)
}

/// Little-endian u32 at `at`.
#[inline]
pub fn le32(b: &[u8], at: usize) -> Option<u32> {
    array(b, at).map(u32::from_le_bytes)
}

/// Big-endian 24-bit length at `at` (TLS handshake headers).
#[inline]
pub fn be24(b: &[u8], at: usize) -> Option<usize> {
    let [x, y, z] = array::<3>(b, at)?;
    Some(usize::from(x) << 16 | usize::from(y) << 8 | usize::from(z))
}

/// Cursor over a byte slice (network byte order); every read is checked and
/// a failed read leaves the position where it was. Holds the unread rest, so
/// a read is one length check and a split.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
    len: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            rest: buf,
            len: buf.len(),
        }
    }

    /// Bytes read so far.
    pub fn pos(&self) -> usize {
        self.len - self.rest.len()
    }

    /// Bytes not yet read.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    #[inline]
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.rest.split_at_checked(n)?;
        self.rest = tail;
        Some(head)
    }

    #[inline]
    fn chunk<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, tail) = self.rest.split_first_chunk::<N>()?;
        self.rest = tail;
        Some(*head)
    }

    #[inline]
    pub fn u8(&mut self) -> Option<u8> {
        let (&b, tail) = self.rest.split_first()?;
        self.rest = tail;
        Some(b)
    }

    #[inline]
    pub fn u16(&mut self) -> Option<u16> {
        self.chunk().map(u16::from_be_bytes)
    }

    #[inline]
    pub fn u32(&mut self) -> Option<u32> {
        self.chunk().map(u32::from_be_bytes)
    }

    /// `opaque x<0..2^8-1>`: a one-byte length, then that many bytes.
    #[inline]
    pub fn vec8(&mut self) -> Option<&'a [u8]> {
        let (&n, tail) = self.rest.split_first()?;
        let (v, tail) = tail.split_at_checked(usize::from(n))?;
        self.rest = tail;
        Some(v)
    }

    /// `opaque x<0..2^16-1>`: a two-byte length, then that many bytes.
    #[inline]
    pub fn vec16(&mut self) -> Option<&'a [u8]> {
        let (n, tail) = self.rest.split_first_chunk::<2>()?;
        let (v, tail) = tail.split_at_checked(usize::from(u16::from_be_bytes(*n)))?;
        self.rest = tail;
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_offsets() {
        let b = [0x12, 0x34, 0x56, 0x78, 0x9a];
        assert_eq!(be16(&b, 0), Some(0x1234));
        assert_eq!(le16(&b, 0), Some(0x3412));
        assert_eq!(be32(&b, 1), Some(0x3456_789a));
        assert_eq!(le32(&b, 0), Some(0x7856_3412));
        assert_eq!(be24(&b, 2), Some(0x56_789a));
        assert_eq!(byte(&b, 4), Some(0x9a));
        assert_eq!(be16(&b, 4), None);
        assert_eq!(be32(&b, 2), None);
        assert_eq!(le32(&b, usize::MAX), None);
        assert_eq!(byte(&b, 5), None);
    }

    #[test]
    fn reader() {
        let mut r = Reader::new(&[2, 0xaa, 0xbb, 0, 1, 7, 0, 9]);
        assert_eq!(r.vec8(), Some(&[0xaa, 0xbb][..]));
        assert_eq!(r.vec16(), Some(&[7][..]));
        assert_eq!(r.pos(), 6);
        assert_eq!(r.vec16(), None, "length runs past the end");
        assert_eq!(r.pos(), 6, "a failed read does not move");
        assert_eq!(r.u16(), Some(9));
        assert!(r.is_empty());
        assert_eq!(r.u8(), None);
        assert_eq!(r.take(0), Some(&[][..]));
        assert_eq!(r.rest(), &[] as &[u8]);
    }
}
