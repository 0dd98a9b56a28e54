//! `kaswatch live --web-config FILE`: TLS and HTTP basic auth for the
//! endpoint, in the web-config format of the Prometheus exporter toolkit
//! (node_exporter's `--web.config.file`), so one file serves both:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt        # PEM chain, leaf first; relative to this file
//!   key_file: server.key         # PEM private key (PKCS#8, PKCS#1 or SEC1)
//!   min_version: TLS12           # optional: TLS12 (default) or TLS13
//!   max_version: TLS13           # optional
//!   client_auth_type: RequireAndVerifyClientCert   # optional, with client_ca_file
//!   client_ca_file: clients.pem
//! http_server_config:
//!   http2: false                 # accepted and ignored: the endpoint speaks HTTP/1.1
//! basic_auth_users:
//!   prometheus: $2y$10$...       # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\n')
//! ```
//!
//! Every key is checked: a key kaswatch does not implement (`cipher_suites`,
//! `headers`, inline `cert`, ...) is an error naming it, never silently
//! ignored, because an ignored security setting would be a silent downgrade.
//! Any problem is one line naming the file: `--web-config FILE: problem`.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Largest web-config file read.
pub const MAX_WEB_CONFIG_BYTES: u64 = 1 << 20;
/// Verified credentials remembered (a hash of user, password and bcrypt
/// hash), so a scrape every few seconds costs one bcrypt run, not one each.
/// Failed attempts are never cached: each costs a full bcrypt run.
pub const MAX_AUTH_CACHE: usize = 64;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    tls_server_config: Option<RawTls>,
    /// Accepted for files shared with exporters; kaswatch speaks HTTP/1.1 only.
    #[serde(rename = "http_server_config")]
    _http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(rename = "http2")]
    _http2: Option<bool>,
}

/// What `--web-config` asks for.
#[derive(Clone, Default)]
pub struct WebConfig {
    /// TLS on the listener (else plain HTTP).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Basic auth on every path (else open).
    pub auth: Option<Arc<BasicAuth>>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("auth", &self.auth.as_ref().map(|a| a.users.len()))
            .finish()
    }
}

/// Users and their bcrypt hashes.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// Verified against when the user is unknown, so that an unknown user
    /// takes as long as a wrong password.
    dummy: String,
    cache: Mutex<HashSet<[u8; 32]>>,
}

impl BasicAuth {
    /// The cache key of credentials, and the hash to verify them against
    /// (a dummy one for an unknown user), if the header is Basic auth.
    fn key(&self, authorization: Option<&[u8]>) -> Option<([u8; 32], Vec<u8>, &str, bool)> {
        let (user, pass) = authorization.and_then(parse_basic)?;
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.as_str(), true),
            None => (self.dummy.as_str(), false),
        };
        let mut d = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [user.as_bytes(), pass.as_slice(), hash.as_bytes()] {
            d.update(&(part.len() as u64).to_le_bytes());
            d.update(part);
        }
        let key = <[u8; 32]>::try_from(d.finish().as_ref()).ok()?;
        Some((key, pass, hash, known))
    }

    /// Were these credentials verified before? Cheap (no bcrypt): lets a
    /// regular scraper through without waiting behind bcrypt runs.
    pub fn verified(&self, authorization: Option<&[u8]>) -> bool {
        self.key(authorization)
            .is_some_and(|(key, ..)| self.cache.lock().is_ok_and(|c| c.contains(&key)))
    }

    /// Does an `Authorization` header value carry valid credentials? Runs
    /// bcrypt (tens of milliseconds) unless they were verified before: call
    /// it off the async runtime.
    pub fn check(&self, authorization: Option<&[u8]>) -> bool {
        let Some((key, pass, hash, known)) = self.key(authorization) else {
            return false;
        };
        if known && self.cache.lock().is_ok_and(|c| c.contains(&key)) {
            return true;
        }
        let ok = bcrypt::verify(&pass, hash).unwrap_or(false) && known;
        if ok {
            if let Ok(mut c) = self.cache.lock() {
                if c.len() >= MAX_AUTH_CACHE {
                    c.clear();
                }
                c.insert(key);
            }
        }
        ok
    }
}

/// `Basic base64(user:password)` -> (user, password bytes).
fn parse_basic(v: &[u8]) -> Option<(String, Vec<u8>)> {
    use base64::Engine;
    let v = std::str::from_utf8(v).ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let colon = raw.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(raw.get(..colon)?.to_vec()).ok()?;
    let pass = raw.get(colon + 1..)?.to_vec();
    Some((user, pass))
}

/// Load and check `path`; every problem is an error naming the file.
pub fn load(path: &Path) -> Result<WebConfig> {
    let bad = |reason: String| Error::input(path, reason);
    let meta = std::fs::metadata(path).map_err(|e| bad(crate::error::io_reason(&e)))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    if meta.len() > MAX_WEB_CONFIG_BYTES {
        return Err(bad(format!(
            "larger than {MAX_WEB_CONFIG_BYTES} bytes, not a web config"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(crate::error::io_reason(&e)))?;
    let raw: RawConfig = if text.trim().is_empty() {
        RawConfig::default()
    } else {
        serde_norway::from_str::<Option<RawConfig>>(&text)
            .map_err(|e| bad(one_line(&e.to_string())))?
            .unwrap_or_default()
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let tls = match raw.tls_server_config {
        Some(t) => Some(Arc::new(tls_config(t, base).map_err(bad)?)),
        None => None,
    };
    let auth = match raw.basic_auth_users {
        Some(users) if !users.is_empty() => Some(Arc::new(basic_auth(users).map_err(bad)?)),
        _ => None,
    };
    Ok(WebConfig { tls, auth })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn basic_auth(users: BTreeMap<String, String>) -> std::result::Result<BasicAuth, String> {
    use std::str::FromStr;
    let mut cost = bcrypt::DEFAULT_COST;
    for (u, h) in &users {
        if u.is_empty() || u.contains(':') {
            return Err(format!(
                "basic_auth_users: user name {u:?} is empty or contains ':'"
            ));
        }
        let parts = bcrypt::HashParts::from_str(h).map_err(|e| {
            format!("basic_auth_users: {u}: not a bcrypt hash ({e}); make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`")
        })?;
        cost = parts.get_cost();
    }
    let dummy = bcrypt::hash("kaswatch: no such user", cost)
        .map_err(|e| format!("basic_auth_users: {e}"))?;
    Ok(BasicAuth {
        users,
        dummy,
        cache: Mutex::new(HashSet::new()),
    })
}

/// A TLS version name -> its rank (1.2 -> 2, 1.3 -> 3).
fn version(key: &str, v: &str) -> std::result::Result<u8, String> {
    match v {
        "TLS12" => Ok(2),
        "TLS13" => Ok(3),
        "TLS10" | "TLS11" => Err(format!(
            "tls_server_config: {key}: {v} is not supported (TLS12 or TLS13)"
        )),
        _ => Err(format!(
            "tls_server_config: {key}: unknown version {v:?} (TLS12 or TLS13)"
        )),
    }
}

/// A PEM file that could not be read, in the words of the other errors.
fn pem_err(key: &str, p: &Path, e: rustls_pki_types::pem::Error) -> String {
    let why = match e {
        rustls_pki_types::pem::Error::Io(e) => crate::error::io_reason(&e),
        rustls_pki_types::pem::Error::NoItemsFound => "no PEM item of the right kind".into(),
        other => format!("{other:?}"),
    };
    format!("tls_server_config: {key} {}: {why}", p.display())
}

/// The client CAs of `client_ca_file` (at least one).
fn client_roots(ca_path: &Path) -> std::result::Result<rustls::RootCertStore, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for c in
        CertificateDer::pem_file_iter(ca_path).map_err(|e| pem_err("client_ca_file", ca_path, e))?
    {
        let c = c.map_err(|e| pem_err("client_ca_file", ca_path, e))?;
        roots.add(c).map_err(|e| {
            format!(
                "tls_server_config: client_ca_file {}: {e}",
                ca_path.display()
            )
        })?;
    }
    if roots.is_empty() {
        return Err(format!(
            "tls_server_config: client_ca_file {}: no certificate in it",
            ca_path.display()
        ));
    }
    Ok(roots)
}

fn tls_config(t: RawTls, base: &Path) -> std::result::Result<rustls::ServerConfig, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let resolve = |p: &str| -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let (Some(cert_file), Some(key_file)) = (t.cert_file.as_deref(), t.key_file.as_deref()) else {
        return Err("tls_server_config: cert_file and key_file are both required".into());
    };
    let cert_path = resolve(cert_file);
    let key_path = resolve(key_file);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| pem_err("cert_file", &cert_path, e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| pem_err("cert_file", &cert_path, e))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config: cert_file {}: no certificate in it",
            cert_path.display()
        ));
    }
    let key =
        PrivateKeyDer::from_pem_file(&key_path).map_err(|e| pem_err("key_file", &key_path, e))?;

    let min = version("min_version", t.min_version.as_deref().unwrap_or("TLS12"))?;
    let max = version("max_version", t.max_version.as_deref().unwrap_or("TLS13"))?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(2, &rustls::version::TLS12), (3, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(rank, _)| (min..=max).contains(rank))
            .map(|(_, v)| v)
            .collect();
    if versions.is_empty() {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let auth_type = t.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let builder = match auth_type {
        "NoClientCert" => {
            if t.client_ca_file.is_some() {
                return Err("tls_server_config: client_ca_file needs client_auth_type RequireAndVerifyClientCert or VerifyClientCertIfGiven".into());
            }
            builder.with_no_client_auth()
        }
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
            let Some(ca) = t.client_ca_file.as_deref() else {
                return Err(format!(
                    "tls_server_config: client_auth_type {auth_type} needs client_ca_file"
                ));
            };
            let roots = client_roots(&resolve(ca))?;
            let mut v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            if auth_type == "VerifyClientCertIfGiven" {
                v = v.allow_unauthenticated();
            }
            let v = v.build().map_err(|e| format!("tls_server_config: client_ca_file: {e}"))?;
            builder.with_client_cert_verifier(v)
        }
        other => {
            return Err(format!(
                "tls_server_config: client_auth_type {other:?} is not supported (NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
            ))
        }
    };
    let mut cfg = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "tls_server_config: cert_file {} / key_file {}: {e}",
            cert_path.display(),
            key_path.display()
        )
    })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn basic_header_parsing() {
        assert_eq!(
            parse_basic(b"Basic dXNlcjpwYTpzcw=="),
            Some(("user".into(), b"pa:ss".to_vec()))
        );
        assert_eq!(parse_basic(b"Bearer xyz"), None);
        assert_eq!(parse_basic(b"Basic !!!"), None);
        assert_eq!(parse_basic(b"Basic dXNlcg=="), None); // no colon
        assert_eq!(parse_basic(b"\xff\xfe"), None);
    }

    #[test]
    fn auth_checks_hash_and_caches_only_success() {
        let h = bcrypt::hash("secret", 4).unwrap();
        let a = basic_auth([("prom".to_string(), h)].into_iter().collect()).unwrap();
        use base64::Engine;
        let hdr = |u: &str, p: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        };
        assert!(!a.verified(Some(hdr("prom", "secret").as_bytes())));
        assert!(a.check(Some(hdr("prom", "secret").as_bytes())));
        assert!(a.verified(Some(hdr("prom", "secret").as_bytes())));
        assert!(a.check(Some(hdr("prom", "secret").as_bytes())));
        assert!(!a.verified(Some(hdr("prom", "wrong").as_bytes())));
        assert!(!a.check(Some(hdr("prom", "wrong").as_bytes())));
        assert!(!a.check(Some(hdr("other", "secret").as_bytes())));
        assert!(!a.check(None));
        assert_eq!(a.cache.lock().unwrap().len(), 1);
    }

    #[test]
    fn bad_files_are_one_line_naming_the_problem() {
        let d = tempfile::tempdir().unwrap();
        let cases: &[(&str, &str)] = &[
            ("basic_auth_users:\n  u: plain\n", "not a bcrypt hash"),
            (
                "tls_server_config:\n  cert_file: x.crt\n",
                "cert_file and key_file",
            ),
            (
                "tls_server_config:\n  cert_file: none.crt\n  key_file: none.key\n",
                "no such file",
            ),
            ("tls_server_config:\n  cipher_suites: []\n", "cipher_suites"),
            ("nonsense: 1\n", "nonsense"),
            ("basic_auth_users: [\n", "line"),
            ("basic_auth_users:\n  'a:b': $2y$10$x\n", "contains ':'"),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let p = write(d.path(), &format!("w{i}.yml"), text);
            let e = load(&p).unwrap_err().to_string();
            assert!(e.contains(&p.display().to_string()), "{e}");
            assert!(e.contains(want), "{text:?}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
        let e = load(&d.path().join("missing.yml")).unwrap_err().to_string();
        assert!(e.contains("no such file"), "{e}");
    }

    #[test]
    fn empty_file_is_plain_and_open() {
        let d = tempfile::tempdir().unwrap();
        let w = load(&write(d.path(), "e.yml", "")).unwrap();
        assert!(w.tls.is_none() && w.auth.is_none());
        let w = load(&write(d.path(), "e2.yml", "basic_auth_users: {}\n")).unwrap();
        assert!(w.auth.is_none());
    }
}
