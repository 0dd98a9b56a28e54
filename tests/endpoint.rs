//! The live HTTP endpoint, attacked and locked down:
//! - `--web-config` (TLS + basic auth, exporter-toolkit format) with a real
//!   Prometheus scraping over TLS with basic auth in a network namespace,
//!   asserting the host table arrives, while jobs with a wrong password, no
//!   credentials and plain HTTP are refused (`up` is 0 for them); curl gets
//!   401 without or with wrong credentials, 200 with the right ones, and
//!   plain HTTP to the TLS port fails;
//! - bad web-config files: one line naming the file and the problem, exit 1;
//! - limits on loopback with curl and raw sockets: only GET/HEAD (405), known
//!   paths (404), no bodies (413), head size and header count (431), a cap
//!   on connections, slowloris and idle connections closed after the head
//!   timeout, security headers on every response, every refusal counted in
//!   `kaswatch_http_rejected_total{reason}`.
//!
//! Certificates are made at test time with openssl; bcrypt hashes with the
//! bcrypt crate. Tests that need root or a tool skip visibly (and fail under
//! CI=true).

// Test code through and through: clippy.toml's allow-*-in-tests applies.
#![cfg(test)]

mod common;
#[path = "common/netns.rs"]
mod netns;

use common::*;
use netns::{sh, Netns};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "prometheus";
const PASSWORD: &str = "s3cret-Pa55";
/// bcrypt cost of the test hashes (real deployments use 10 or more; the
/// debug build verifies a cost-10 hash in about a second).
const COST: u32 = 8;

/// A CA and a server certificate for 127.0.0.1/localhost signed by it, and
/// a second, unrelated key; returns (ca.crt, server.crt, server.key, other.key).
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=kaswatch test CA",
        ],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &[
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    ]
    .concat());
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    // A client certificate signed by the same CA, for client_auth_type.
    run(&[
        &["req"][..],
        &ec,
        &[
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=scraper",
        ],
    ]
    .concat());
    std::fs::write(
        p("client.cnf"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "client.crt",
        "-days",
        "2",
        "-extfile",
        "client.cnf",
    ]);
    run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "other.key",
    ]);
    (
        p("ca.crt"),
        p("server.crt"),
        p("server.key"),
        p("other.key"),
    )
}

/// A web config with TLS (relative paths: next to the file) and one user.
fn write_web_config(dir: &Path) -> PathBuf {
    let hash = bcrypt::hash(PASSWORD, COST).unwrap();
    let p = dir.join("web.yml");
    std::fs::write(
        &p,
        format!(
            "# exporter-toolkit format\ntls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
             basic_auth_users:\n  {USER}: '{hash}'\n"
        ),
    )
    .unwrap();
    p
}

/// `curl -s` with `args`; returns (status code, headers lowercased, exit ok).
fn curl(prefix: &[String], args: &[&str]) -> (String, String, bool) {
    let mut argv: Vec<String> = prefix.to_vec();
    argv.extend(
        [
            "curl",
            "-s",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-w",
            "\n%{http_code}",
        ]
        .map(String::from),
    );
    argv.extend(args.iter().map(|s| s.to_string()));
    let o = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let (head, code) = out.rsplit_once('\n').unwrap_or(("", &out));
    (
        code.to_string(),
        head.to_ascii_lowercase(),
        o.status.success(),
    )
}

/// The security headers every response must carry.
fn assert_security_headers(head: &str, what: &str) {
    for h in [
        "x-content-type-options: nosniff",
        "x-frame-options: deny",
        "cache-control: no-store",
        "referrer-policy: no-referrer",
        "content-security-policy: default-src 'none'",
    ] {
        assert!(head.contains(h), "{what}: no `{h}` in:\n{head}");
    }
}

#[test]
fn web_config_errors_are_one_line() {
    let test = "web_config_errors_are_one_line";
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut cases: Vec<(PathBuf, &str)> = Vec::new();
    let file = |name: &str, text: &str| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    cases.push((d.join("missing.yml"), "no such file"));
    cases.push((file("yaml.yml", "basic_auth_users: [\n"), "line"));
    cases.push((
        file("hash.yml", "basic_auth_users:\n  u: plaintext\n"),
        "not a bcrypt hash",
    ));
    cases.push((
        file(
            "key.yml",
            "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n",
        ),
        "no such file",
    ));
    cases.push((
        file(
            "unknown.yml",
            "tls_server_config:\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
        ),
        "cipher_suites",
    ));
    cases.push((
        file(
            "version.yml",
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS10\n",
        ),
        "no such file",
    ));
    cases.push((file("auth.yml", "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAnyClientCert\n"), "no such file"));
    if have("openssl", &format!("{test} (certificate cases)")) {
        make_certs(d);
        cases.push((
            file(
                "mismatch.yml",
                "tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n",
            ),
            "server.crt",
        ));
        cases.push((
            file(
                "notcert.yml",
                "tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n",
            ),
            "no certificate",
        ));
        cases.push((file("v.yml", "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS10\n"), "TLS10 is not supported"));
        cases.push((file("ca.yml", "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n"), "needs client_ca_file"));
    }
    for (path, want) in &cases {
        // The web config is read before any capture opens: no root needed.
        let o = Command::new(bin())
            .args([
                "live",
                "-i",
                "lo",
                "--listen",
                "127.0.0.1:0",
                "--web-config",
            ])
            .arg(path)
            .arg("-s")
            .arg(signatures())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{}: {err}", path.display());
        assert_eq!(err.lines().count(), 1, "{}: {err}", path.display());
        assert!(
            err.contains(path.to_str().unwrap()) && err.contains(want),
            "{}: want {want:?}: {err}",
            path.display()
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// `kaswatch live -i lo` on a free loopback port (root: capture on lo).
struct LoSensor {
    guard: ChildGuard,
    port: u16,
    log: PathBuf,
}

impl LoSensor {
    fn start(dir: &Path, extra: &[&str]) -> LoSensor {
        let port = free_port();
        let log = dir.join("kaswatch.err");
        let child = Command::new(bin())
            .args(["live", "-i", "lo", "--bpf", "udp port 9", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-s")
            .arg(signatures())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let s = LoSensor {
            guard: ChildGuard(Some(child)),
            port,
            log,
        };
        let t = Instant::now();
        while !s.log().contains("capturing on") && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(s.log().contains("capturing on"), "{}", s.log());
        s
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s
    }
    /// Send `req` on a fresh connection; the whole answer (until close or 3 s).
    fn raw(&self, req: &[u8]) -> String {
        let mut s = self.connect();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let _ = s.write_all(req);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Wait until the server closes `s` (read gives EOF or an error); how long it took.
fn closed_after(mut s: TcpStream, t0: Instant) -> Duration {
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) | Err(_) => return t0.elapsed(),
            Ok(_) => {}
        }
    }
}

fn rejected(metrics: &str, reason: &str) -> u64 {
    let series = format!("kaswatch_http_rejected_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series}in\n{metrics}"))
}

#[test]
fn endpoint_limits_on_loopback() {
    let test = "endpoint_limits_on_loopback";
    if !is_root() {
        skip(test, "needs root (capture on lo); run `sudo cargo test`");
        return;
    }
    if !have("curl", test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = LoSensor::start(dir.path(), &[]);
    let none: Vec<String> = Vec::new();

    // Known paths, GET and HEAD: 200, with the security headers.
    let (code, head, _) = curl(&none, &[&s.url("/metrics")]);
    assert_eq!(code, "200", "{}", s.log());
    assert_security_headers(&head, "GET /metrics");
    let (code, head, _) = curl(&none, &["-I", &s.url("/healthz")]);
    assert_eq!(code, "200");
    assert_security_headers(&head, "HEAD /healthz");

    // Other methods: 405 with Allow; unknown paths: 404; both with headers.
    for m in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"] {
        let (code, head, _) = curl(&none, &["-X", m, &s.url("/metrics")]);
        assert_eq!(code, "405", "{m}");
        assert!(head.contains("allow: get, head"), "{m}: {head}");
        assert_security_headers(&head, m);
    }
    for p in [
        "/nope",
        "/metrics/",
        "/admin",
        "/../etc/passwd",
        "/healthz?x=1x",
    ] {
        let (code, head, _) = curl(&none, &["--path-as-is", &s.url(p)]);
        let want = if p == "/healthz?x=1x" { "200" } else { "404" };
        assert_eq!(code, want, "{p}");
        assert_security_headers(&head, p);
    }

    // Request bodies: 413.
    let r = s.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    // Head over MAX_REQUEST_HEAD_BYTES (8 KiB), more than MAX_HEADERS (32): 431.
    let mut big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 9000));
    big.extend_from_slice(b"\r\n\r\n");
    let r = s.raw(&big);
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    let mut many = b"GET /metrics HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..40 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let r = s.raw(&many);
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    // 32 headers are fine.
    let mut ok = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_vec();
    for i in 0..30 {
        ok.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    ok.extend_from_slice(b"\r\n");
    let r = s.raw(&ok);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // Garbage: 400.
    let r = s.raw(b"\x16\x03\x01 not http at all\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");

    // Connection cap: MAX_CONNECTIONS (64) idle connections are held; the
    // next ones are closed at once; the endpoint serves again after.
    let t0 = Instant::now();
    let held: Vec<TcpStream> = (0..64).map(|_| s.connect()).collect();
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        let took = closed_after(s.connect(), Instant::now());
        assert!(
            took < Duration::from_secs(2),
            "over the cap: closed after {took:?}"
        );
    }
    let (code, _, _) = curl(&none, &["--max-time", "2", &s.url("/healthz")]);
    assert_eq!(
        code, "000",
        "a 66th connection must be refused while 64 are held"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "the held ones must still be open"
    );
    drop(held);
    let h = poll_cmd(
        &["curl", "-s", &s.url("/healthz")],
        Duration::from_secs(5),
        |o| o == "ok\n",
    );
    assert_eq!(h, "ok\n");

    // Slowloris (a head dripping in) and an idle connection: both closed
    // MAX_HEAD_READ_TIME (5 s) after they opened, not later.
    let t0 = Instant::now();
    let idle = s.connect();
    let mut slow = s.connect();
    let drip = std::thread::spawn(move || {
        let _ = slow.write_all(b"GET /metrics HTTP/1.1\r\n");
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(500));
            if slow.write_all(b"X-a: b\r\n").is_err() {
                break;
            }
        }
        slow
    });
    let idle_took = closed_after(idle, t0);
    let slow = drip.join().unwrap();
    let slow_took = closed_after(slow, t0);
    for (what, took) in [("idle", idle_took), ("slowloris", slow_took)] {
        assert!(
            took >= Duration::from_secs(4) && took < Duration::from_secs(9),
            "{what} connection closed after {took:?}"
        );
    }

    // Every refusal is counted.
    let m = poll_cmd(
        &["curl", "-s", &s.url("/metrics")],
        Duration::from_secs(5),
        |o| o.contains("kaswatch_http_rejected_total"),
    );
    assert!(rejected(&m, "method") >= 6, "{m}");
    assert!(rejected(&m, "not_found") >= 4, "{m}");
    assert!(rejected(&m, "body") >= 1, "{m}");
    assert!(rejected(&m, "head_too_large") >= 2, "{m}");
    assert!(rejected(&m, "bad_request") >= 1, "{m}");
    assert!(rejected(&m, "max_connections") >= 6, "{m}");
    assert!(rejected(&m, "read_timeout") >= 2, "{m}");
    assert_eq!(rejected(&m, "unauthorized"), 0, "{m}");
    assert_eq!(rejected(&m, "tls_handshake"), 0, "{m}");
    drop(s.guard);
}

/// A Prometheus server with the given scrape configs, in `ns`.
struct Prom {
    ns: String,
    port: u16,
    _child: ChildGuard,
    dir: tempfile::TempDir,
}

impl Prom {
    fn start(ns: &str, scrape_configs: &str) -> Prom {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{scrape_configs}"
            ),
        )
        .unwrap();
        let port = 9090;
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "prometheus"])
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap();
        let p = Prom {
            ns: ns.to_string(),
            port,
            _child: ChildGuard(Some(child)),
            dir,
        };
        let ready = p.get("/-/ready", Duration::from_secs(60), |s| s.contains("Ready"));
        assert!(ready.contains("Ready"), "prometheus: {}", p.log());
        p
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
    fn get(&self, path: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        poll_cmd(
            &[
                "ip",
                "netns",
                "exec",
                &self.ns,
                "curl",
                "-s",
                "-g",
                "--max-time",
                "5",
                &url,
            ],
            timeout,
            ok,
        )
    }
    /// `up` per job.
    fn up(
        &self,
        timeout: Duration,
        ok: impl Fn(&[(String, String)]) -> bool,
    ) -> Vec<(String, String)> {
        let parse = |s: &str| {
            let v: serde_json::Value = serde_json::from_str(s).unwrap_or_default();
            let mut out: Vec<(String, String)> = v["data"]["result"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .map(|x| {
                            (
                                x["metric"]["job"].as_str().unwrap_or("").to_string(),
                                x["value"][1].as_str().unwrap_or("").to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.sort();
            out
        };
        let s = self.get("/api/v1/query?query=up", timeout, |s| ok(&parse(s)));
        parse(&s)
    }
}

#[test]
fn prometheus_scrapes_over_tls_with_basic_auth() {
    let test = "prometheus_scrapes_over_tls_with_basic_auth";
    if !is_root() {
        skip(
            test,
            "needs root (network namespaces, capture); run `sudo cargo test`",
        );
        return;
    }
    if !(have("ip", test)
        && have("tcpreplay", test)
        && have("prometheus", test)
        && have("curl", test)
        && have("openssl", test))
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, _, _, _) = make_certs(dir.path());
    let web = write_web_config(dir.path());
    let demo = dir.path().join("demo-ethernet.pcap");
    ethernet_only(&capture("demo.pcapng"), &demo);

    let ns = Netns::new();
    let port = 10470;
    let log = dir.path().join("kaswatch.err");
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.sensor,
            bin(),
            "live",
            "-i",
            &ns.sensor_if,
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--web-config")
        .arg(&web)
        .arg("-s")
        .arg(signatures())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _sensor = ChildGuard(Some(child));
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let x = ns.exec();
    let ca_s = ca.to_str().unwrap();
    let https = |p: &str| format!("https://127.0.0.1:{port}{p}");
    let good = format!("{USER}:{PASSWORD}");
    let t = Instant::now();
    loop {
        let (code, _, _) = curl(&x, &["--cacert", ca_s, "-u", &good, &https("/healthz")]);
        if code == "200" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "not up: {}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(read_log().contains("metrics on https://"), "{}", read_log());

    // curl: no credentials, a wrong password, an unknown user: 401 with
    // WWW-Authenticate and the security headers, on every path.
    for (args, what) in [
        (vec![], "no credentials"),
        (vec!["-u", "prometheus:wrong"], "wrong password"),
        (vec!["-u", "nobody:s3cret-Pa55"], "unknown user"),
    ] {
        for p in ["/metrics", "/healthz", "/nope"] {
            let mut a = vec!["--cacert", ca_s];
            a.extend(&args);
            let u = https(p);
            a.push(&u);
            let (code, head, _) = curl(&x, &a);
            assert_eq!(code, "401", "{what} {p}");
            assert!(head.contains("www-authenticate: basic"), "{what}: {head}");
            assert_security_headers(&head, what);
        }
    }
    // The right credentials: 200; the certificate verifies against the CA.
    let (code, head, _) = curl(&x, &["--cacert", ca_s, "-u", &good, &https("/metrics")]);
    assert_eq!(code, "200");
    assert_security_headers(&head, "authorised /metrics");
    // Plain HTTP to the TLS port fails (no HTTP answer at all).
    let (code, _, ok) = curl(
        &x,
        &["-u", &good, &format!("http://127.0.0.1:{port}/metrics")],
    );
    assert!(
        !ok && code == "000",
        "plain HTTP to the TLS port answered {code}"
    );
    // Without the CA the certificate is not trusted.
    let (code, _, ok) = curl(&x, &["-u", &good, &https("/metrics")]);
    assert!(
        !ok && code == "000",
        "untrusted certificate accepted: {code}"
    );

    // A real Prometheus: the right job scrapes over TLS with basic auth, the
    // others are refused.
    let job = |name: &str, scheme: &str, auth: Option<(&str, &str)>| {
        let mut s = format!(
            "  - job_name: {name}\n    scheme: {scheme}\n    tls_config:\n      ca_file: {ca_s}\n"
        );
        if let Some((u, p)) = auth {
            s.push_str(&format!(
                "    basic_auth:\n      username: {u}\n      password: '{p}'\n"
            ));
        }
        s.push_str(&format!(
            "    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ));
        s
    };
    let cfg = [
        job("kaswatch", "https", Some((USER, PASSWORD))),
        job("wrong_password", "https", Some((USER, "guess"))),
        job("no_auth", "https", None),
        job("plain_http", "http", Some((USER, PASSWORD))),
    ]
    .concat();
    let prom = Prom::start(&ns.sensor, &cfg);
    ns.replay(&demo);
    let want_up = vec![
        ("kaswatch".to_string(), "1".to_string()),
        ("no_auth".into(), "0".into()),
        ("plain_http".into(), "0".into()),
        ("wrong_password".into(), "0".into()),
    ];
    let up = prom.up(Duration::from_secs(30), |u| u == want_up.as_slice());
    assert_eq!(up, want_up, "{}\n{}", prom.log(), read_log());

    // The host table arrives through the authenticated TLS scrape.
    let q = format!(
        "/api/v1/query?query={}",
        urlencode("kaswatch_host_callbacks_total{job=\"kaswatch\"}")
    );
    let mut want = demo_expected();
    want.sort();
    let table = |s: &str| query_hosts(s).into_iter().collect::<Vec<_>>();
    let json = prom.get(&q, Duration::from_secs(30), |s| table(s) == want);
    assert_eq!(table(&json), want, "{json}\nkaswatch: {}", read_log());

    // The refusals are counted and visible to the scraper.
    let q = format!(
        "/api/v1/query?query={}",
        urlencode("kaswatch_http_rejected_total{job=\"kaswatch\",reason=\"unauthorized\"} > 2")
    );
    let json = prom.get(&q, Duration::from_secs(15), |s| s.contains("\"value\""));
    assert!(json.contains("\"value\""), "{json}");
    let q = format!(
        "/api/v1/query?query={}",
        urlencode("kaswatch_http_rejected_total{job=\"kaswatch\",reason=\"tls_handshake\"} > 0")
    );
    let json = prom.get(&q, Duration::from_secs(15), |s| s.contains("\"value\""));
    assert!(json.contains("\"value\""), "{json}");
    drop(prom);
    sh(&["true"]);
}

#[test]
fn client_certificates_when_required() {
    let test = "client_certificates_when_required";
    if !is_root() {
        skip(test, "needs root (capture on lo); run `sudo cargo test`");
        return;
    }
    if !(have("curl", test) && have("openssl", test)) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca, _, _, _) = make_certs(d);
    let web = d.join("mtls.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS13\n",
    )
    .unwrap();
    let s = LoSensor::start(d, &["--web-config", web.to_str().unwrap()]);
    let url = format!("https://127.0.0.1:{}/healthz", s.port);
    let none: Vec<String> = Vec::new();
    let ca = ca.to_str().unwrap();
    let (cert, key) = (d.join("client.crt"), d.join("client.key"));
    let (code, head, _) = curl(
        &none,
        &[
            "--cacert",
            ca,
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            &url,
        ],
    );
    assert_eq!(code, "200", "{}", s.log());
    assert_security_headers(&head, "mTLS /healthz");
    // No client certificate, or one the CA did not sign (the server's own
    // key with a self-signed certificate): the handshake fails.
    let (code, _, ok) = curl(&none, &["--cacert", ca, &url]);
    assert!(!ok && code == "000", "no client certificate: {code}");
    let (code, _, ok) = curl(
        &none,
        &[
            "--cacert",
            ca,
            "--cert",
            d.join("ca.crt").to_str().unwrap(),
            "--key",
            d.join("ca.key").to_str().unwrap(),
            &url,
        ],
    );
    assert!(
        !ok && code == "000",
        "CA certificate as client certificate: {code}"
    );
    // min_version TLS13: a TLS 1.2 client is refused.
    let (code, _, ok) = curl(
        &none,
        &[
            "--cacert",
            ca,
            "--tls-max",
            "1.2",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            &url,
        ],
    );
    assert!(!ok && code == "000", "TLS 1.2 accepted: {code}");
    let m = poll_cmd(
        &[
            "curl",
            "-s",
            "--cacert",
            ca,
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            &url.replace("/healthz", "/metrics"),
        ],
        Duration::from_secs(5),
        |o| o.contains("kaswatch_http_rejected_total"),
    );
    assert!(rejected(&m, "tls_handshake") >= 3, "{m}");
}

#[test]
fn password_guessing_does_not_delay_a_known_scraper() {
    let test = "password_guessing_does_not_delay_a_known_scraper";
    if !is_root() {
        skip(test, "needs root (capture on lo); run `sudo cargo test`");
        return;
    }
    if !have("curl", test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("auth.yml");
    let hash = bcrypt::hash(PASSWORD, COST).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  {USER}: '{hash}'\n")).unwrap();
    let s = LoSensor::start(dir.path(), &["--web-config", web.to_str().unwrap()]);
    assert!(
        s.log().contains("passwords cross the network in clear"),
        "basic auth without TLS is warned about: {}",
        s.log()
    );
    let none: Vec<String> = Vec::new();
    let good = format!("{USER}:{PASSWORD}");
    let url = s.url("/metrics");
    let (code, _, _) = curl(&none, &["-u", &good, &url]);
    assert_eq!(code, "200");
    // 40 guesses at once: each costs a bcrypt run, one at a time.
    let guesses: Vec<std::process::Child> = (0..40)
        .map(|i| {
            Command::new("curl")
                .args(["-s", "-o", "/dev/null", "--max-time", "60", "-u"])
                .arg(format!("{USER}:guess{i}"))
                .arg(&url)
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let (code, _, _) = curl(&none, &["-u", &good, &url]);
    let took = t.elapsed();
    assert_eq!(code, "200");
    let mut guesses = guesses;
    for g in guesses.iter_mut() {
        let _ = g.wait();
    }
    let queued = t.elapsed();
    eprintln!("{test}: known scraper answered in {took:?}; 40 guesses took {queued:?}");
    assert!(
        took * 4 < queued && took < Duration::from_secs(2),
        "the known scraper waited behind the guesses: {took:?} (guesses {queued:?})"
    );
    let (code, _, _) = curl(&none, &["-u", &good, &url]);
    assert_eq!(code, "200");
    let m = poll_cmd(
        &["curl", "-s", "-u", &good, &url],
        Duration::from_secs(5),
        |o| o.contains("kaswatch_http_rejected_total"),
    );
    assert_eq!(rejected(&m, "unauthorized"), 40, "{m}");
}
