//! Helpers shared by the integration tests: run the real binary, locate the
//! public capture corpus beside the checkout, a tiny pcap writer, an
//! Ethernet-only copy of a capture (libpcap, hence tcpreplay, cannot read
//! pcapng files that mix link types), a Prometheus server runner and tool
//! checks that skip with a message.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_kaswatch")
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/captures-public` beside the checkout (present in CI).
pub fn corpus() -> Option<PathBuf> {
    let p = root().join("../shared/captures-public");
    p.join("MANIFEST.md").is_file().then_some(p)
}

pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(root())
        .output()
        .expect("run kaswatch")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kaswatch-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Turn kaswatch's escaped text form (\DDD, \., \\) back into bytes and
/// render them the way tshark does: control bytes as octal `\ooo`, invalid
/// UTF-8 as U+FFFD.
pub fn tshark_form(name: &str) -> String {
    let b = name.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v: u32 = std::str::from_utf8(&b[i + 1..i + 4])
                .unwrap()
                .parse()
                .unwrap();
            if v < 0x20 || v == 0x7f {
                out.extend_from_slice(format!("\\{v:03o}").as_bytes());
            } else {
                out.push(v as u8);
            }
            i += 4;
        } else if b[i] == b'\\' && i + 1 < b.len() {
            out.push(b[i + 1]);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).to_ascii_lowercase()
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

pub fn capture(name: &str) -> PathBuf {
    root().join("captures").join(name)
}

pub fn signatures() -> PathBuf {
    root().join("signatures")
}

/// Is `tool` on PATH? Prints a skip message when not.
pub fn have(tool: &str, test: &str) -> bool {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIP {test}: {tool} not installed (apt-get install prometheus / tcpreplay; `make test` installs them)");
    }
    ok
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Minimal classic pcap writer (microsecond timestamps).
pub struct PcapWriter {
    out: std::io::BufWriter<std::fs::File>,
}

impl PcapWriter {
    pub fn create(path: &Path, linktype: u32) -> Self {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        out.write_all(&0xa1b2_c3d4u32.to_le_bytes()).unwrap();
        out.write_all(&2u16.to_le_bytes()).unwrap();
        out.write_all(&4u16.to_le_bytes()).unwrap();
        out.write_all(&0i32.to_le_bytes()).unwrap();
        out.write_all(&0u32.to_le_bytes()).unwrap();
        out.write_all(&65535u32.to_le_bytes()).unwrap();
        out.write_all(&linktype.to_le_bytes()).unwrap();
        PcapWriter { out }
    }
    pub fn packet(&mut self, ts_ns: u64, data: &[u8]) {
        let (s, us) = (
            (ts_ns / 1_000_000_000) as u32,
            ((ts_ns % 1_000_000_000) / 1000) as u32,
        );
        for v in [s, us, data.len() as u32, data.len() as u32] {
            self.out.write_all(&v.to_le_bytes()).unwrap();
        }
        self.out.write_all(data).unwrap();
    }
}

fn csum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Ethernet/IPv4/UDP DNS query for `name` from `src` to 192.0.2.53.
pub fn dns_query(src: [u8; 4], id: u16, name: &str) -> Vec<u8> {
    let mut dns = Vec::new();
    dns.extend_from_slice(&id.to_be_bytes());
    dns.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for l in name.split('.') {
        dns.push(l.len() as u8);
        dns.extend_from_slice(l.as_bytes());
    }
    dns.extend_from_slice(&[0, 0, 1, 0, 1]);
    let udp_len = 8 + dns.len();
    let mut udp = Vec::new();
    udp.extend_from_slice(&40000u16.to_be_bytes());
    udp.extend_from_slice(&53u16.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&dns);
    let dst = [192, 0, 2, 53];
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = csum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = vec![
        0x02, 0, 0, 0, 0, 0x53, 0x02, 0, src[0], src[1], src[2], src[3], 0x08, 0x00,
    ];
    f.extend_from_slice(&ip);
    f.extend_from_slice(&udp);
    f
}

/// Copy the Ethernet frames of any capture into a classic pcap that
/// libpcap/tcpreplay can read; returns (written, skipped) frame counts.
pub fn ethernet_only(src: &Path, dst: &Path) -> (u64, u64) {
    let mut w = PcapWriter::create(dst, 1);
    let (mut n, mut skipped) = (0, 0);
    let f = kaswatch::capture::file::CaptureFile::open(src).unwrap();
    f.for_each(|_, raw| {
        if raw.linktype == 1 {
            w.packet(raw.ts, raw.data);
            n += 1;
        } else {
            skipped += 1;
        }
    });
    w.out.flush().unwrap();
    (n, skipped)
}

/// A port nobody listens on right now (in this network namespace).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills and reaps a child on drop.
pub struct ChildGuard(pub Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Run `cmd` (an argv) until `ok(stdout)` or the timeout; returns the last stdout.
pub fn poll_cmd(argv: &[&str], timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let out = Command::new(argv[0])
            .args(&argv[1..])
            .stderr(Stdio::null())
            .output();
        let s = out
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if ok(&s) || start.elapsed() > timeout {
            return s;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// (host, category) -> value from a Prometheus instant-query JSON answer.
pub fn query_hosts(json: &str) -> std::collections::BTreeMap<(String, String), String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or(serde_json::Value::Null);
    let mut m = std::collections::BTreeMap::new();
    if let Some(r) = v["data"]["result"].as_array() {
        for s in r {
            let host = s["metric"]["host"].as_str().unwrap_or("").to_string();
            let cat = s["metric"]["category"].as_str().unwrap_or("").to_string();
            let val = s["value"][1]
                .as_str()
                .or_else(|| {
                    s["values"]
                        .as_array()
                        .and_then(|a| a.last())
                        .and_then(|p| p[1].as_str())
                })
                .unwrap_or("")
                .to_string();
            m.insert((host, cat), val);
        }
    }
    m
}

/// Expected (host, category) -> count for the Ethernet frames of demo.pcapng.
pub fn demo_expected() -> Vec<((String, String), String)> {
    [
        ("192.168.10.21", "ksn", "2"),
        ("192.168.10.21", "update", "1"),
        ("192.168.10.22", "activation", "1"),
        ("192.168.10.22", "update", "1"),
        ("192.168.10.26", "update", "2"),
        ("2001:db8:10::23", "ksn", "1"),
        ("2001:db8:10::23", "update", "1"),
    ]
    .iter()
    .map(|(h, c, v)| ((h.to_string(), c.to_string()), v.to_string()))
    .collect()
}

/// A Prometheus server on a temporary data dir; killed on drop. `netns`
/// runs it inside a network namespace (then query with [`Prometheus::query`]).
pub struct Prometheus {
    pub port: u16,
    pub netns: Option<String>,
    _child: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// `scrape`: optional target host:port scraped every second.
    pub fn start(
        data: Option<&Path>,
        scrape: Option<&str>,
        netns: Option<&str>,
        port: u16,
    ) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n");
        if let Some(t) = scrape {
            cfg.push_str(&format!("scrape_configs:\n  - job_name: kaswatch\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['{t}']\n"));
        }
        let cfg_path = dir.path().join("prometheus.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let data = data
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.path().join("data"));
        let mut argv: Vec<String> = Vec::new();
        if let Some(ns) = netns {
            argv.extend(["ip", "netns", "exec", ns].map(String::from));
        }
        argv.extend([
            "prometheus".to_string(),
            format!("--config.file={}", cfg_path.display()),
            format!("--storage.tsdb.path={}", data.display()),
            "--storage.tsdb.retention.time=100y".into(),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ]);
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let p = Prometheus {
            port,
            netns: netns.map(String::from),
            _child: ChildGuard(Some(child)),
            _dir: dir,
        };
        let ready = p.get("/-/ready", Duration::from_secs(60), |s| s.contains("Ready"));
        assert!(
            ready.contains("Ready"),
            "prometheus did not become ready: {}",
            p.log()
        );
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    fn curl_argv(&self, url: &str) -> Vec<String> {
        let mut argv: Vec<String> = Vec::new();
        if let Some(ns) = &self.netns {
            argv.extend(["ip", "netns", "exec", ns.as_str()].map(String::from));
        }
        argv.extend(["curl", "-s", "-g", "--max-time", "5"].map(String::from));
        argv.push(url.to_string());
        argv
    }

    /// GET a path until `ok` or timeout.
    pub fn get(&self, path: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        let argv = self.curl_argv(&format!("http://127.0.0.1:{}{path}", self.port));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        poll_cmd(&argv, timeout, ok)
    }
}

/// Percent-encode a PromQL expression for a query string.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
