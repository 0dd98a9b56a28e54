//! Kaspersky's update protocol recognised by content: the request paths its
//! updaters fetch over plain HTTP (index files, database and module archives)
//! and the magic bytes that open the responses, for requests whose Host is an
//! address or a site's own mirror, so no Kaspersky name is on the wire. Pure
//! functions of bytes; called by the pipeline for HTTP requests whose host
//! matched no signature and for the first body bytes of responses. Layout
//! from the LBNL Zeek package detect-kaspersky (120 observed paths):
//! `/updaters/updater.xml.dif`, `/index/u0607g.xml.dif`,
//! `/updates/<component>/<component>-0607g.xml.klz`, `/updates/kdb/i386/*.kdc.klzu`.

/// Rule labels, reported as the event's `signature`.
pub const RULES: [&str; 5] = [
    "path:/updaters/*",
    "path:/index/u*g.xml.*",
    "path:/updates/*.(klz|dif|klzu|kdc|kdl|mft)",
    "magic:KLD2",
    "magic:KLZF",
];

/// Response bodies that open with these bytes are update index diffs
/// (`KLD2`, application/x-kaspavupdate) and compressed databases (`KLZF`,
/// application/x-kaspavdb): Zeek's `file-kaspdbdif` / `file-kaspdb` magic.
const MAGIC: [(&[u8; 4], usize); 2] = [(b"KLD2", 3), (b"KLZF", 4)];

/// Which magic rule (index into [`RULES`]) a response body's first bytes match.
pub fn match_magic(body: &[u8]) -> Option<usize> {
    let head = body.get(..4)?;
    MAGIC
        .iter()
        .find(|(m, _)| head == m.as_slice())
        .map(|(_, r)| *r)
}
/// Longest target examined.
pub const MAX_TARGET: usize = 2048;

/// File suffixes of update archives and indexes.
const SUFFIXES: [&[u8]; 6] = [b".klz", b".dif", b".klzu", b".kdc", b".kdl", b".mft"];

fn ends_with_ci(s: &[u8], suf: &[u8]) -> bool {
    s.len() >= suf.len()
        && s.get(s.len() - suf.len()..)
            .is_some_and(|t| t.eq_ignore_ascii_case(suf))
}

fn find_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// Which update-path rule a request target matches (index into [`RULES`]).
pub fn match_path(target: &[u8]) -> Option<usize> {
    let t = target.get(..target.len().min(MAX_TARGET))?;
    // Absolute form: drop scheme and authority.
    let t = crate::proto::http::split_absolute(t).map_or(t, |(_, rest)| rest);
    let path = t.get(
        ..t.iter()
            .position(|&b| b == b'?' || b == b'#')
            .unwrap_or(t.len()),
    )?;
    let archive = SUFFIXES.iter().any(|s| ends_with_ci(path, s));
    if !archive {
        return None;
    }
    if let Some(i) = find_ci(path, b"/updaters/") {
        let file = path.get(i + 10..)?;
        if find_ci(file, b"updater.").is_some() {
            return Some(0);
        }
    }
    if let Some(i) = find_ci(path, b"/index/u") {
        let name = path.get(i + 8..)?;
        let digits = name.iter().take_while(|b| b.is_ascii_digit()).count();
        let rest = name.get(digits..)?;
        if digits > 0
            && (rest.eq_ignore_ascii_case(b"g.xml.dif") || rest.eq_ignore_ascii_case(b"g.xml.klz"))
        {
            return Some(1);
        }
    }
    if find_ci(path, b"/updates/").is_some() {
        return Some(2);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_paths_match() {
        for (p, r) in [
            (&b"/updaters/updater.xml.dif"[..], 0),
            (b"/updaters/11.0.0.0/win/x64/updater.kdl.klz", 0),
            (b"/index/u0607g.xml.dif", 1),
            (b"/INDEX/U1313G.XML.KLZ?x=1", 1),
            (b"/updates/ksn/ksn-0607g.xml.klz", 2),
            (b"/updates/kdb/i386/base001.kdc.klzu", 2),
            (b"/mirror/kes/updates/apu/diffs/apu.xml.dif", 2),
            (
                b"http://203.0.113.5/updates/bin/kes10/kes10-0607g.xml.dif",
                2,
            ),
            (b"HTTP://u:p@h:80/index/u0607g.xml.dif", 1),
            // `://` in the query of an origin-form target is no authority.
            (b"/updates/ksn/ksn-0607g.xml.klz?ref=http://a/b", 2),
        ] {
            assert_eq!(match_path(p), Some(r), "{}", String::from_utf8_lossy(p));
        }
    }

    #[test]
    fn magic_bytes() {
        assert_eq!(match_magic(b"KLZF\x01\x02"), Some(4));
        assert_eq!(match_magic(b"KLD2"), Some(3));
        assert_eq!(match_magic(b"KLZ"), None);
        assert_eq!(match_magic(b"<html>"), None);
    }

    #[test]
    fn lookalike_paths_do_not() {
        for p in [
            &b"/updates/readme.txt"[..],
            b"/blog/kaspersky-updates.html",
            b"/index.html",
            b"/index/u0607g.xml",
            b"/?r=/updates/x.klz",
            b"/patches/fix.dif",
            b"",
        ] {
            assert_eq!(match_path(p), None, "{}", String::from_utf8_lossy(p));
        }
    }
}
