//! Signature files (`signatures/*.toml`): schema, loading, normalisation and
//! validation. Produces a [`SignatureSet`] that `matcher.rs` compiles. Errors
//! name the file, line and reason. Format documented in signatures/README.md.

use crate::error::{io_reason, Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Longest DNS name (RFC 1035: 255 octets on the wire, 253 in text form).
pub const MAX_PATTERN_LEN: usize = 253;
/// Cap on entries across all files: keeps a runaway file from eating memory;
/// the matcher is benchmarked at 100k entries.
pub const MAX_SIGNATURES: usize = 1_000_000;
/// Largest signature file read (bytes).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// What a matched name says about the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Update,
    Ksn,
    Activation,
    Management,
    Portal,
    Other,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::Update,
        Category::Ksn,
        Category::Activation,
        Category::Management,
        Category::Portal,
        Category::Other,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Update => "update",
            Category::Ksn => "ksn",
            Category::Activation => "activation",
            Category::Management => "management",
            Category::Portal => "portal",
            Category::Other => "other",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// `exact`: the whole name; `suffix`: the name or any name ending in `.` + pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchKind {
    Exact,
    Suffix,
}

/// One validated signature.
#[derive(Clone, Debug)]
pub struct Signature {
    /// Lowercased, no trailing dot.
    pub pattern: String,
    pub kind: MatchKind,
    pub category: Category,
    pub source: String,
    pub file: PathBuf,
    pub line: usize,
}

/// Which end of a connection on a signature port runs Kaspersky software.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortSide {
    /// The port is a Kaspersky server's (KSC Administration Server,
    /// distribution point): the host that connects to it is the device.
    Server,
    /// The port is the Network Agent's own listener: the host that answers
    /// on it is the device.
    Agent,
}

/// One validated port signature (`[[port]]`).
#[derive(Clone, Debug)]
pub struct PortSignature {
    pub port: u16,
    pub tcp: bool,
    pub side: PortSide,
    pub category: Category,
    pub source: String,
    pub file: PathBuf,
    pub line: usize,
}

impl PortSignature {
    /// `tcp/13000`, as events and `check-signatures` show it.
    pub fn pattern(&self) -> String {
        format!("{}/{}", if self.tcp { "tcp" } else { "udp" }, self.port)
    }
}

/// Kinds of content signature (besides names and ports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContentKind {
    /// Glob over an HTTP request's path (`[[http_path]]`).
    HttpPath(crate::glob::Glob),
    /// Glob over an HTTP request's User-Agent (`[[user_agent]]`).
    UserAgent(crate::glob::Glob),
    /// Bytes an HTTP response body opens with (`[[body_magic]]`, hex).
    BodyMagic(Vec<u8>),
    /// A destination network (`[[address]]`, IP or CIDR); completed
    /// connections only.
    Address(std::net::IpAddr, u8),
}

/// Bytes of a response body compared with `[[body_magic]]` entries.
pub const MAX_BODY_MAGIC: usize = 8;

/// One validated content signature.
#[derive(Clone, Debug)]
pub struct ContentSignature {
    pub kind: ContentKind,
    /// As written in the file (shown in events as `path:...`, `ua:...`,
    /// `magic:...`, `cidr:...`).
    pub pattern: String,
    pub category: Category,
    pub source: String,
    pub file: PathBuf,
    pub line: usize,
}

impl ContentSignature {
    /// The label events and `check-signatures` show.
    pub fn label(&self) -> String {
        let kind = match self.kind {
            ContentKind::HttpPath(_) => "path",
            ContentKind::UserAgent(_) => "ua",
            ContentKind::BodyMagic(_) => "magic",
            ContentKind::Address(..) => "cidr",
        };
        match &self.kind {
            ContentKind::BodyMagic(b) if b.iter().all(|c| c.is_ascii_alphanumeric()) => {
                format!("{kind}:{}", String::from_utf8_lossy(b))
            }
            _ => format!("{kind}:{}", self.pattern),
        }
    }
}

/// Parse `1.2.3.0/24`, `2001:db8::/32` or a bare address; host bits are masked.
pub fn parse_cidr(s: &str) -> std::result::Result<(std::net::IpAddr, u8), String> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: std::net::IpAddr = a
        .trim()
        .parse()
        .map_err(|_| format!("{a:?} is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("prefix length must be 0..={max}"))?,
        None => max,
    };
    Ok((mask(addr, len), len))
}

/// `a` with all but the first `len` bits cleared.
pub fn mask(a: std::net::IpAddr, len: u8) -> std::net::IpAddr {
    match a {
        std::net::IpAddr::V4(v) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            std::net::IpAddr::V4((u32::from(v) & m).into())
        }
        std::net::IpAddr::V6(v) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            std::net::IpAddr::V6((u128::from(v) & m).into())
        }
    }
}

/// Metadata of one loaded file.
#[derive(Clone, Debug)]
pub struct FileMeta {
    pub path: PathBuf,
    pub version: String,
    pub date: String,
}

/// All signatures from one or more files, in load order.
#[derive(Clone, Debug, Default)]
pub struct SignatureSet {
    pub signatures: Vec<Signature>,
    /// Port signatures (KSC / Network Agent), callbacks only on completed connections.
    pub ports: Vec<PortSignature>,
    /// Content signatures: HTTP paths, User-Agents, body magic, addresses.
    pub content: Vec<ContentSignature>,
    pub files: Vec<FileMeta>,
    /// (pattern, kind) -> index in `signatures`, for duplicate detection.
    seen: std::collections::HashMap<(String, MatchKind), usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    meta: Spanned<RawMeta>,
    #[serde(default)]
    signature: Vec<Spanned<RawSig>>,
    #[serde(default)]
    port: Vec<Spanned<RawPort>>,
    #[serde(default)]
    http_path: Vec<Spanned<RawContent>>,
    #[serde(default)]
    user_agent: Vec<Spanned<RawContent>>,
    #[serde(default)]
    body_magic: Vec<Spanned<RawContent>>,
    #[serde(default)]
    address: Vec<Spanned<RawContent>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContent {
    pattern: Spanned<String>,
    category: Spanned<String>,
    source: Spanned<String>,
    /// When the entry was last checked (required for addresses, which move).
    #[serde(default)]
    date: Option<Spanned<String>>,
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    port: Spanned<i64>,
    transport: Spanned<String>,
    #[serde(default)]
    side: Option<Spanned<String>>,
    category: Spanned<String>,
    source: Spanned<String>,
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    version: String,
    date: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSig {
    pattern: Spanned<String>,
    #[serde(rename = "match")]
    kind: Spanned<String>,
    category: Spanned<String>,
    source: Spanned<String>,
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
}

/// An entry's category, checked, and its source, required.
fn category_and_source(
    category: &Spanned<String>,
    source: &Spanned<String>,
    err: &dyn Fn(usize, String) -> Error,
) -> Result<Category> {
    let c = Category::parse(category.get_ref()).ok_or_else(|| {
        err(
            category.span().start,
            format!(
                "unknown category {:?} (one of update, ksn, activation, management, portal, other)",
                category.get_ref()
            ),
        )
    })?;
    if source.get_ref().trim().is_empty() {
        return Err(err(
            source.span().start,
            "source is empty: cite where the entry comes from".into(),
        ));
    }
    Ok(c)
}

/// The file being loaded: names it and its lines in errors.
struct FileCtx<'a> {
    path: &'a Path,
    lines: Lines,
}

impl FileCtx<'_> {
    fn err(&self, offset: usize, reason: String) -> Error {
        Error::Signature {
            path: self.path.to_path_buf(),
            line: self.lines.of(offset),
            reason,
        }
    }
}

/// Byte offsets of line starts, for turning spans into line numbers.
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Self {
        // match_indices finds '\n' with memchr (a word at a time), not a
        // compare per byte: this runs on every file, the fuzzer's included.
        let mut v = vec![0];
        v.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines(v)
    }
    /// 1-based line of a byte offset.
    fn of(&self, offset: usize) -> usize {
        self.0.partition_point(|&s| s <= offset)
    }
}

/// Normalise and check a pattern: ASCII lowercase, one trailing dot removed,
/// LDH labels (plus `_`), 1..=63 bytes per label, at most 253 bytes.
pub fn normalise_pattern(p: &str) -> std::result::Result<String, String> {
    let p = p.trim();
    let p = p.strip_suffix('.').unwrap_or(p);
    if p.is_empty() {
        return Err("empty pattern".into());
    }
    if p.len() > MAX_PATTERN_LEN {
        return Err(format!("pattern longer than {MAX_PATTERN_LEN} bytes"));
    }
    if p.starts_with("*.") {
        return Err("write suffix patterns without '*.' and set match = \"suffix\"".into());
    }
    for label in p.split('.') {
        if label.is_empty() {
            return Err(format!("empty label in {p:?}"));
        }
        if label.len() > 63 {
            return Err(format!("label longer than 63 bytes in {p:?}"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "character {c:?} in {p:?} (use punycode xn-- for international names)"
            ));
        }
    }
    Ok(p.to_ascii_lowercase())
}

impl SignatureSet {
    /// Load one file or every `*.toml` in a directory (sorted), appending.
    pub fn load_path(&mut self, path: &Path) -> Result<()> {
        let md = std::fs::metadata(path).map_err(|e| Error::input(path, io_reason(&e)))?;
        if md.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| Error::input(path, io_reason(&e)))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(Error::input(
                    path,
                    "no *.toml signature files in this directory",
                ));
            }
            for f in files {
                self.load_file(&f)?;
            }
            Ok(())
        } else {
            self.load_file(path)
        }
    }

    /// Load one signature file.
    pub fn load_file(&mut self, path: &Path) -> Result<()> {
        let md = std::fs::metadata(path).map_err(|e| Error::input(path, io_reason(&e)))?;
        if md.len() > MAX_FILE_BYTES {
            return Err(Error::input(
                path,
                format!("larger than {MAX_FILE_BYTES} bytes"),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::input(path, io_reason(&e)))?;
        self.load_str(path, &text)
    }

    /// Parse signature text as if read from `path` (used by tests too).
    pub fn load_str(&mut self, path: &Path, text: &str) -> Result<()> {
        let cx = FileCtx {
            path,
            lines: Lines::new(text),
        };
        let err = |offset: usize, reason: String| cx.err(offset, reason);
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let off = e.span().map(|s| s.start).unwrap_or(0);
            let msg = e.message().trim().replace('\n', " ");
            err(off, msg)
        })?;
        let meta = raw.meta.get_ref();
        if meta.version.trim().is_empty() {
            return Err(err(raw.meta.span().start, "meta.version is empty".into()));
        }
        if raw.signature.is_empty()
            && raw.port.is_empty()
            && raw.http_path.is_empty()
            && raw.user_agent.is_empty()
            && raw.body_magic.is_empty()
            && raw.address.is_empty()
        {
            return Err(err(text.len(), "no entries ([[signature]], [[port]], [[http_path]], [[user_agent]], [[body_magic]] or [[address]])".into()));
        }
        self.load_content(&raw, &cx)?;
        self.load_ports(&raw, &cx)?;
        self.load_names(&raw, &cx)?;
        self.files.push(FileMeta {
            path: path.to_path_buf(),
            version: meta.version.clone(),
            date: meta.date.clone(),
        });
        Ok(())
    }

    /// The `[[port]]` entries of one parsed file.
    fn load_ports(&mut self, raw: &RawFile, cx: &FileCtx<'_>) -> Result<()> {
        let err = |offset: usize, reason: String| cx.err(offset, reason);
        let (path, lines) = (cx.path, &cx.lines);
        for s in &raw.port {
            let r = s.get_ref();
            let port = u16::try_from(*r.port.get_ref())
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| err(r.port.span().start, "port must be 1..=65535".into()))?;
            let tcp = match r.transport.get_ref().as_str() {
                "tcp" => true,
                "udp" => false,
                other => {
                    return Err(err(
                        r.transport.span().start,
                        format!("transport must be \"tcp\" or \"udp\", not {other:?}"),
                    ))
                }
            };
            let side = match r.side.as_ref().map(|s| s.get_ref().as_str()) {
                None | Some("server") => PortSide::Server,
                Some("agent") => PortSide::Agent,
                Some(other) => {
                    let at = r.side.as_ref().map_or(0, |s| s.span().start);
                    return Err(err(
                        at,
                        format!("side must be \"server\" or \"agent\", not {other:?}"),
                    ));
                }
            };
            let category = category_and_source(&r.category, &r.source, &err)?;
            if let Some(prev) = self.ports.iter().find(|p| p.port == port && p.tcp == tcp) {
                return Err(err(
                    r.port.span().start,
                    format!(
                        "duplicate of {} line {} ({})",
                        prev.file.display(),
                        prev.line,
                        prev.pattern()
                    ),
                ));
            }
            self.ports.push(PortSignature {
                port,
                tcp,
                side,
                category,
                source: r.source.get_ref().clone(),
                file: path.to_path_buf(),
                line: lines.of(s.span().start),
            });
        }
        Ok(())
    }

    /// The `[[signature]]` (name) entries of one parsed file.
    fn load_names(&mut self, raw: &RawFile, cx: &FileCtx<'_>) -> Result<()> {
        let err = |offset: usize, reason: String| cx.err(offset, reason);
        let (path, lines) = (cx.path, &cx.lines);
        for s in &raw.signature {
            let r = s.get_ref();
            let pattern = normalise_pattern(r.pattern.get_ref())
                .map_err(|m| err(r.pattern.span().start, format!("bad pattern: {m}")))?;
            let kind = match r.kind.get_ref().as_str() {
                "exact" => MatchKind::Exact,
                "suffix" => MatchKind::Suffix,
                other => {
                    return Err(err(
                        r.kind.span().start,
                        format!("match must be \"exact\" or \"suffix\", not {other:?}"),
                    ))
                }
            };
            let category = Category::parse(r.category.get_ref()).ok_or_else(|| {
                err(
                    r.category.span().start,
                    format!(
                        "unknown category {:?} (one of update, ksn, activation, management, portal, other)",
                        r.category.get_ref()
                    ),
                )
            })?;
            if r.source.get_ref().trim().is_empty() {
                return Err(err(
                    r.source.span().start,
                    "source is empty: cite where the name comes from".into(),
                ));
            }
            if let Some(prev) = self
                .seen
                .get(&(pattern.clone(), kind))
                .and_then(|&i| self.signatures.get(i))
            {
                return Err(err(
                    r.pattern.span().start,
                    format!(
                        "duplicate of {} line {} ({:?} {})",
                        prev.file.display(),
                        prev.line,
                        prev.kind,
                        prev.pattern
                    ),
                ));
            }
            if self.signatures.len() >= MAX_SIGNATURES {
                return Err(err(
                    s.span().start,
                    format!("more than {MAX_SIGNATURES} signatures"),
                ));
            }
            self.seen
                .insert((pattern.clone(), kind), self.signatures.len());
            self.signatures.push(Signature {
                pattern,
                kind,
                category,
                source: r.source.get_ref().clone(),
                file: path.to_path_buf(),
                line: lines.of(s.span().start),
            });
        }
        Ok(())
    }

    /// The content kinds of one parsed file.
    fn load_content(&mut self, raw: &RawFile, cx: &FileCtx<'_>) -> Result<()> {
        let err = &|offset: usize, reason: String| cx.err(offset, reason);
        let path = cx.path.to_path_buf();
        let kinds: [(&str, &Vec<Spanned<RawContent>>); 4] = [
            ("http_path", &raw.http_path),
            ("user_agent", &raw.user_agent),
            ("body_magic", &raw.body_magic),
            ("address", &raw.address),
        ];
        for (table, entries) in kinds {
            for s in entries {
                let r = s.get_ref();
                let at = r.pattern.span().start;
                let p = r.pattern.get_ref().trim();
                let glob = |p: &str| {
                    crate::glob::Glob::new(p).map_err(|m| err(at, format!("bad pattern: {m}")))
                };
                let kind = match table {
                    "http_path" => {
                        if !p.starts_with('/') && !p.starts_with('*') {
                            return Err(err(
                                at,
                                "an http_path pattern starts with '/' or '*'".into(),
                            ));
                        }
                        ContentKind::HttpPath(glob(p)?)
                    }
                    "user_agent" => ContentKind::UserAgent(glob(p)?),
                    "body_magic" => {
                        let bytes: Option<Vec<u8>> = (0..p.len() / 2)
                            .map(|i| {
                                p.get(2 * i..2 * i + 2)
                                    .and_then(|b| u8::from_str_radix(b, 16).ok())
                            })
                            .collect();
                        match bytes {
                            Some(b)
                                if p.len() % 2 == 0
                                    && (1..=MAX_BODY_MAGIC).contains(&b.len()) =>
                            {
                                ContentKind::BodyMagic(b)
                            }
                            _ => {
                                return Err(err(
                                    at,
                                    format!(
                                        "body_magic pattern is 1..={MAX_BODY_MAGIC} bytes in hex, e.g. \"4b4c5a46\""
                                    ),
                                ))
                            }
                        }
                    }
                    _ => {
                        let (a, l) =
                            parse_cidr(p).map_err(|m| err(at, format!("bad address: {m}")))?;
                        if r.date
                            .as_ref()
                            .is_none_or(|d| d.get_ref().trim().is_empty())
                        {
                            return Err(err(
                                at,
                                "an address entry needs a date (addresses move)".into(),
                            ));
                        }
                        ContentKind::Address(a, l)
                    }
                };
                let category = category_and_source(&r.category, &r.source, err)?;
                if let Some(prev) = self.content.iter().find(|c| c.kind == kind) {
                    return Err(err(
                        at,
                        format!(
                            "duplicate of {} line {} ({})",
                            prev.file.display(),
                            prev.line,
                            prev.label()
                        ),
                    ));
                }
                let line = cx.lines.of(s.span().start);
                self.content.push(ContentSignature {
                    kind,
                    pattern: p.to_string(),
                    category,
                    source: r.source.get_ref().clone(),
                    file: path.clone(),
                    line,
                });
            }
        }
        Ok(())
    }

    /// Load several paths in order.
    pub fn load_paths(paths: &[PathBuf]) -> Result<Self> {
        let mut set = SignatureSet::default();
        for p in paths {
            set.load_path(p)?;
        }
        Ok(set)
    }

    pub fn count_by_category(&self) -> Vec<(Category, usize)> {
        Category::ALL
            .into_iter()
            .map(|c| {
                (
                    c,
                    self.signatures.iter().filter(|s| s.category == c).count(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(t: &str) -> Result<SignatureSet> {
        let mut s = SignatureSet::default();
        s.load_str(Path::new("t.toml"), t)?;
        Ok(s)
    }
    const HEAD: &str = "[meta]\nversion = \"1\"\ndate = \"2026-01-01\"\n";

    #[test]
    fn loads_and_normalises() {
        let s = load(&format!(
            "{HEAD}[[signature]]\npattern = \"Upd.Kaspersky.COM.\"\nmatch = \"suffix\"\ncategory = \"update\"\nsource = \"x\"\n"
        ))
        .unwrap();
        assert_eq!(s.signatures[0].pattern, "upd.kaspersky.com");
        assert_eq!(s.signatures[0].kind, MatchKind::Suffix);
        assert_eq!(s.signatures[0].line, 4);
    }

    #[test]
    fn bad_category_names_line() {
        let e = load(&format!(
            "{HEAD}\n[[signature]]\npattern = \"a.com\"\nmatch = \"exact\"\ncategory = \"bogus\"\nsource = \"x\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "t.toml:8: unknown category \"bogus\" (one of update, ksn, activation, management, portal, other)"
        );
    }

    #[test]
    fn ports_load_and_errors_name_the_line() {
        let port = |p: &str, t: &str, side: &str| {
            load(&format!(
                "{HEAD}[[port]]\nport = {p}\ntransport = \"{t}\"\nside = \"{side}\"\ncategory = \"management\"\nsource = \"x\"\n"
            ))
        };
        let s = port("13000", "tcp", "server").unwrap();
        assert_eq!((s.ports[0].port, s.ports[0].tcp), (13000, true));
        assert_eq!(s.ports[0].side, PortSide::Server);
        assert_eq!(s.ports[0].pattern(), "tcp/13000");
        let e = port("70000", "tcp", "server").unwrap_err().to_string();
        assert_eq!(e, "t.toml:5: port must be 1..=65535");
        let e = port("15000", "sctp", "agent").unwrap_err().to_string();
        assert!(e.starts_with("t.toml:6: transport must be"), "{e}");
        let e = port("15000", "udp", "client").unwrap_err().to_string();
        assert!(e.starts_with("t.toml:7: side must be"), "{e}");
        let mut s = port("13000", "tcp", "server").unwrap();
        let again = format!(
            "{HEAD}[[port]]\nport = 13000\ntransport = \"tcp\"\ncategory = \"other\"\nsource = \"y\"\n"
        );
        let e = s
            .load_str(Path::new("u.toml"), &again)
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate of t.toml line 4 (tcp/13000)"), "{e}");
    }

    #[test]
    fn content_kinds_load_and_errors_name_the_line() {
        let one = |table: &str, pattern: &str, extra: &str| {
            load(&format!(
                "{HEAD}[[{table}]]\npattern = \"{pattern}\"\ncategory = \"update\"\nsource = \"x\"\n{extra}"
            ))
        };
        let s = one("http_path", "*/index/u#g.xml.{dif,klz}", "").unwrap();
        assert!(matches!(s.content[0].kind, ContentKind::HttpPath(_)));
        assert_eq!(s.content[0].label(), "path:*/index/u#g.xml.{dif,klz}");
        let s = one("body_magic", "4b4c5a46", "").unwrap();
        assert_eq!(s.content[0].kind, ContentKind::BodyMagic(b"KLZF".to_vec()));
        assert_eq!(s.content[0].label(), "magic:KLZF");
        let s = one("address", "203.0.113.99/28", "date = \"2026-11-30\"\n").unwrap();
        assert_eq!(
            s.content[0].kind,
            ContentKind::Address("203.0.113.96".parse().unwrap(), 28)
        );
        for (table, pattern, extra, want) in [
            (
                "http_path",
                "index/*",
                "",
                "t.toml:5: an http_path pattern starts with",
            ),
            (
                "http_path",
                "/a/{b",
                "",
                "t.toml:5: bad pattern: '{' is never closed",
            ),
            ("body_magic", "4b4", "", "t.toml:5: body_magic pattern is"),
            ("body_magic", "zz", "", "t.toml:5: body_magic pattern is"),
            (
                "address",
                "10.0.0.0/40",
                "date = \"x\"\n",
                "t.toml:5: bad address: prefix length",
            ),
            (
                "address",
                "10.0.0.0/8",
                "",
                "t.toml:5: an address entry needs a date",
            ),
        ] {
            let e = one(table, pattern, extra).unwrap_err().to_string();
            assert!(e.starts_with(want), "{table} {pattern}: {e}");
        }
    }

    #[test]
    fn syntax_error_names_line() {
        let e = load(&format!("{HEAD}[[signature]]\npattern = \"a.com\n"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.toml:5: "), "{e}");
    }

    #[test]
    fn rejects_bad_patterns_and_duplicates() {
        for (p, why) in [
            ("*.a.com", "'*.'"),
            ("a..com", "empty label"),
            ("a b.com", "character"),
            ("", "empty pattern"),
        ] {
            let e = load(&format!(
                "{HEAD}[[signature]]\npattern = \"{p}\"\nmatch = \"exact\"\ncategory = \"other\"\nsource = \"x\"\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(e.contains(why), "{p}: {e}");
            assert!(e.starts_with("t.toml:5: bad pattern"), "{e}");
        }
        let one = "[[signature]]\npattern = \"a.com\"\nmatch = \"exact\"\ncategory = \"other\"\nsource = \"x\"\n";
        let e = load(&format!("{HEAD}{one}{one}")).unwrap_err().to_string();
        assert!(
            e.starts_with("t.toml:10: duplicate of t.toml line 4"),
            "{e}"
        );
        let e = load(&format!("{HEAD}{}", one.replace("exact", "regex")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("match must be"), "{e}");
        let e = load(&format!(
            "{HEAD}{}",
            one.replace("source = \"x\"", "source = \" \"")
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("source is empty"), "{e}");
        let e = load(&format!("{HEAD}{}", one.replace("source", "sauce")))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.toml:"), "{e}");
    }

    #[test]
    fn shipped_set_loads_with_every_category() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("signatures");
        let s = SignatureSet::load_paths(&[dir]).unwrap();
        for (c, n) in s.count_by_category() {
            assert!(n > 0, "no signatures for {c:?}");
        }
        assert!(s.signatures.iter().all(|x| !x.source.is_empty()));
    }
}
