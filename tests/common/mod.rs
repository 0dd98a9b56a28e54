//! Helpers shared by the integration tests: run the real binary, the public
//! capture corpus (tests/corpus, plus what ../shared/captures-public beside
//! the checkout adds), a tiny pcap writer, an Ethernet-only copy of a
//! capture (libpcap, hence tcpreplay, cannot read pcapng files that mix link
//! types), a Prometheus server runner, world-readable copies for processes
//! that drop privileges, and the one way a test skips ([`skip`]: visibly,
//! and never under CI).
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

/// `../shared/captures-public` beside the checkout (present in CI): the
/// whole public corpus, including the captures whose licences do not allow
/// redistribution (tests/corpus/not-included.txt).
pub fn corpus() -> Option<PathBuf> {
    let p = root().join("../shared/captures-public");
    p.join("MANIFEST.md").is_file().then_some(p)
}

/// The redistributable part of the public corpus, kept in the repository
/// (tests/corpus/NOTICE.md lists sources and licences).
pub fn repo_corpus() -> PathBuf {
    root().join("tests/corpus")
}

/// Is CI=true (or 1) set? Then no test may skip.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The one way a test skips: prints `SKIPPED <test>: <reason>` on stderr;
/// under CI (CI=true, as `.ci/run` sets it) it fails instead, because there
/// every test must run. The caller returns right after.
pub fn skip(test: &str, reason: &str) {
    eprintln!("SKIPPED {test}: {reason}");
    assert!(
        !under_ci(),
        "{test} would be skipped ({reason}); under CI every test must run"
    );
}

/// One capture of the public corpus: read from `base`, at `rel`
/// (`<source>/<path in the source repository>`), truth in
/// `base/truth/<rel>.tsv`.
pub struct PublicCapture {
    pub base: PathBuf,
    pub rel: String,
}

impl PublicCapture {
    pub fn path(&self) -> PathBuf {
        self.base.join(&self.rel)
    }
    pub fn truth(&self) -> PathBuf {
        self.base.join("truth").join(format!("{}.tsv", self.rel))
    }
    pub fn in_repo(&self) -> bool {
        self.base == repo_corpus()
    }
}

/// Relative paths (sorted, `/`-separated) of the captures below `dir`,
/// outside its `truth/`.
pub fn capture_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p != dir.join("truth") {
                    stack.push(p);
                }
            } else if ["pcap", "pcapng", "cap"]
                .iter()
                .any(|x| p.extension().is_some_and(|e| e == *x))
            {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Files below `dir` with extension `ext` (recursive, unsorted).
fn files_with_ext(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_with_ext(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
}

/// Truth rows of tests/corpus (all of its truth files), to check that a
/// test compared every one of them.
pub fn repo_truth_rows() -> usize {
    let mut tsv = Vec::new();
    files_with_ext(&repo_corpus().join("truth"), "tsv", &mut tsv);
    tsv.iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .filter(|l| !l.is_empty())
                .count()
        })
        .sum()
}

/// Captures of the public corpus left out of tests/corpus (their licences do
/// not allow redistribution): path -> why, from tests/corpus/not-included.txt.
pub fn not_included() -> Vec<(String, String)> {
    std::fs::read_to_string(repo_corpus().join("not-included.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (p, why) = l.split_once('\t').expect("not-included line: path<TAB>why");
            (p.to_string(), why.to_string())
        })
        .collect()
}

/// Every capture of tests/corpus, then each capture of
/// ../shared/captures-public that tests/corpus lacks (when ../shared is
/// beside the checkout). Says on stderr what `test` adds from ../shared or,
/// without it, which captures it cannot check. Asserts that tests/corpus is
/// there and complete: at least one capture, one truth file per capture and
/// no truth file without its capture.
pub fn public_captures(test: &str) -> Vec<PublicCapture> {
    let repo = repo_corpus();
    let in_repo = capture_files(&repo);
    assert!(
        !in_repo.is_empty(),
        "{test}: no captures in {}",
        repo.display()
    );
    let mut tsv = Vec::new();
    files_with_ext(&repo.join("truth"), "tsv", &mut tsv);
    for f in &in_repo {
        assert!(
            repo.join("truth").join(format!("{f}.tsv")).is_file(),
            "{test}: tests/corpus/{f} has no truth file"
        );
    }
    assert_eq!(
        tsv.len(),
        in_repo.len(),
        "{test}: tests/corpus/truth has truth files without their capture"
    );
    let mut out: Vec<PublicCapture> = in_repo
        .iter()
        .map(|rel| PublicCapture {
            base: repo.clone(),
            rel: rel.clone(),
        })
        .collect();
    match corpus() {
        Some(shared) => {
            let extra: Vec<String> = capture_files(&shared)
                .into_iter()
                .filter(|f| !in_repo.contains(f))
                .collect();
            eprintln!(
                "{test}: {} captures of tests/corpus and {} more from {}",
                in_repo.len(),
                extra.len(),
                shared.display()
            );
            out.extend(extra.into_iter().map(|rel| PublicCapture {
                base: shared.clone(),
                rel,
            }));
        }
        None => {
            let left = not_included();
            let list: Vec<String> = left
                .iter()
                .map(|(p, why)| format!("  {p}  ({why})"))
                .collect();
            eprintln!(
                "{test}: checks the {} captures of tests/corpus; ../shared/captures-public is not \
                 beside the checkout, so these {} captures (not redistributable, hence not in the \
                 repository) are SKIPPED:\n{}",
                in_repo.len(),
                left.len(),
                list.join("\n")
            );
        }
    }
    out
}

pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(root())
        .output()
        .expect("run kaswatch")
}

/// `kaswatch read CAP --format json --events - --workers N` plus `extra`:
/// events on stdout, the report (and the summary unless `-q`) on stderr.
pub fn read_json_events(cap: &str, workers: &str, extra: &[&str]) -> Output {
    let mut a = vec![
        "read",
        "--format",
        "json",
        "--events",
        "-",
        "--workers",
        workers,
    ];
    a.extend_from_slice(extra);
    a.push(cap);
    run(&a)
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
        skip(
            test,
            &format!("{tool} not installed (`make test` installs the test tools: tools/deps.sh)"),
        );
    }
    ok
}

/// Copies of `srcs` (files or directories) in a fresh temporary directory
/// that every user may read (directories 0755, files 0644, executables
/// 0755), for a process that drops privileges: the checkout may live where
/// such a process cannot go (a clone in root's 0700 home, say). Returns the
/// directory (removed on drop) and the copies' paths, in order.
pub fn world_readable_copies(srcs: &[&Path]) -> (tempfile::TempDir, Vec<PathBuf>) {
    use std::os::unix::fs::PermissionsExt;
    fn copy(src: &Path, dst: &Path) {
        let meta = std::fs::metadata(src).unwrap();
        if meta.is_dir() {
            std::fs::create_dir(dst).unwrap();
            std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o755)).unwrap();
            for e in std::fs::read_dir(src).unwrap().flatten() {
                copy(&e.path(), &dst.join(e.file_name()));
            }
        } else {
            std::fs::copy(src, dst).unwrap();
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("kaswatch-readable-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = srcs
        .iter()
        .map(|src| {
            let dst = dir.path().join(src.file_name().unwrap());
            copy(src, &dst);
            dst
        })
        .collect();
    (dir, out)
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

/// Selected event fields as text rows (strings unquoted, numbers as written).
pub fn columns(ev: &[serde_json::Value], keys: &[&str]) -> Vec<Vec<String>> {
    ev.iter()
        .map(|e| {
            keys.iter()
                .map(|k| {
                    e[*k]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| e[*k].to_string())
                })
                .collect()
        })
        .collect()
}
