//! Kaspersky's update protocol recognised by content: the path of a plain
//! HTTP request, for requests whose Host is an address or a site's own
//! mirror (no Kaspersky name on the wire). The layout itself (`/updaters/`,
//! `/index/u<N>g.xml.dif`, `/updates/.../*.klz`, and the response magic
//! `KLD2`/`KLZF`) is data: `[[http_path]]` and `[[body_magic]]` entries in
//! `signatures/update-content.toml`, from the LBNL Zeek package
//! detect-kaspersky. This module only cuts the path out of a request target;
//! the pipeline worker hands it to the matcher.

/// Longest target examined.
pub const MAX_TARGET: usize = 2048;

/// The path of a request target: an absolute form loses its scheme and
/// authority (`http::split_absolute`, so a `://` inside a query is no
/// authority), and any target its query and fragment. `None` when nothing
/// path-like is left.
pub fn request_path(target: &[u8]) -> Option<&[u8]> {
    let t = target.get(..target.len().min(MAX_TARGET))?;
    let t = crate::proto::http::split_absolute(t).map_or(t, |(_, rest)| rest);
    let end = t
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(t.len());
    t.get(..end).filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cut_out_of_targets() {
        assert_eq!(
            request_path(b"/index/u0607g.xml.dif?x=1"),
            Some(&b"/index/u0607g.xml.dif"[..])
        );
        assert_eq!(
            request_path(b"http://203.0.113.5/updates/a.klz#f"),
            Some(&b"/updates/a.klz"[..])
        );
        assert_eq!(
            request_path(b"HTTP://u:p@h:80/index/u0607g.xml.dif"),
            Some(&b"/index/u0607g.xml.dif"[..])
        );
        // `://` in the query of an origin-form target is no authority.
        assert_eq!(
            request_path(b"/updates/ksn/ksn-0607g.xml.klz?ref=http://a/b"),
            Some(&b"/updates/ksn/ksn-0607g.xml.klz"[..])
        );
        assert_eq!(request_path(b"http://host"), None);
        assert_eq!(request_path(b""), None);
    }
}
